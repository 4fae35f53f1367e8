//! One database: a connection pool on a runtime of its own, Prosody's
//! tables, and the bridge from the synchronous store API to async sqlx.
//!
//! Every query runs on the engine's runtime (two worker threads); the
//! calling thread waits for the answer, telling tokio first when it is a
//! worker of a multi-thread runtime (`block_in_place`), so the server's
//! other tasks move on meanwhile. A failed connection is retried with
//! backoff (100 ms doubling, for up to [`RETRY_FOR`]); the outage is logged
//! once, and once more when the database is back. A query that still fails
//! returns an error, which the module turns into a stanza error.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, ConnectOptions};
use tokio::sync::OnceCell;

use crate::SqlError;
use crate::params::{Engine, SqlParams};

/// How long a query keeps retrying a database that is unreachable.
pub const RETRY_FOR: Duration = Duration::from_secs(5);

/// Shared by the driver and the stores on this database.
pub struct Database {
    pub params: SqlParams,
    pub manage_tables: bool,
    pool: AnyPool,
    handle: tokio::runtime::Handle,
    ready: OnceCell<()>,
    down: AtomicBool,
    /// Serialises check-then-insert (`create`) within this process.
    pub create_lock: tokio::sync::Mutex<()>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Database {
    /// Opens (lazily: nothing connects before the first query).
    pub fn open(params: SqlParams, manage_tables: bool) -> Result<Arc<Database>, SqlError> {
        sqlx::any::install_default_drivers();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lilt-sql")
            .enable_all()
            .build()
            .map_err(|e| SqlError::Config(format!("cannot start the SQL runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("lilt-sql-rt".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = rx.await;
                });
            })
            .map_err(|e| SqlError::Config(format!("cannot start the SQL thread: {e}")))?;
        let sqlite = params.engine == Engine::Sqlite;
        let memory = params.database == ":memory:";
        let mut opts = AnyPoolOptions::new()
            // SQLite has one writer at a time; a few readers help.
            .max_connections(if memory {
                1
            } else if sqlite {
                4
            } else {
                8
            })
            .acquire_timeout(Duration::from_secs(3));
        if sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    Ok(())
                })
            });
        }
        if memory {
            opts = opts.idle_timeout(None).max_lifetime(None);
        }
        let url = params.url();
        // sqlx logs every statement (multi-line SQL) at debug and slow ones at
        // warn through `tracing`; that would break Prosody's one-line log format,
        // and a store failure is reported by the driver itself.
        let connect = sqlx::any::AnyConnectOptions::from_str(&url)
            .map_err(|e| SqlError::Config(format!("{}: {e}", params.describe())))?
            .disable_statement_logging();
        let pool = {
            let _enter = handle.enter();
            opts.connect_lazy_with(connect)
        };
        Ok(Arc::new(Database {
            params,
            manage_tables,
            pool,
            handle,
            ready: OnceCell::new(),
            down: AtomicBool::new(false),
            create_lock: tokio::sync::Mutex::new(()),
            _shutdown: tx,
        }))
    }

    /// Runs `op` against the pool, retrying while the database is
    /// unreachable, and waits for its result.
    pub fn run<T, F, Fut>(self: &Arc<Self>, op: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: Fn(AnyPool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, SqlError>> + Send,
    {
        let db = self.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(db.run_async(op).await);
        });
        let wait = || {
            rx.recv()
                .unwrap_or_else(|_| Err(SqlError::Unavailable("the SQL runtime stopped".into())))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    async fn run_async<T, F, Fut>(&self, op: F) -> Result<T, SqlError>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, SqlError>>,
    {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = async {
                self.ready
                    .get_or_try_init(|| crate::schema::prepare(&self.pool, self))
                    .await?;
                op(self.pool.clone()).await
            };
            match attempt.await {
                Ok(v) => {
                    if self.down.swap(false, Ordering::SeqCst) {
                        tracing::info!("database {} is reachable again", self.params.describe());
                    }
                    return Ok(v);
                }
                Err(e) if e.is_unavailable() => {
                    if !self.down.swap(true, Ordering::SeqCst) {
                        tracing::error!(
                            "database {} is unreachable ({e}); retrying with backoff",
                            self.params.describe()
                        );
                    }
                    if started.elapsed() + backoff > RETRY_FOR {
                        return Err(e);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(1600));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
