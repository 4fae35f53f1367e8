//! `storage-sql`: lilt's `sql` storage driver — Prosody's
//! `mod_storage_sql` tables (`prosody`, `prosodyarchive`) on SQLite or
//! PostgreSQL through sqlx's `Any` driver, one code path for both, so a
//! database Prosody 0.12 wrote is used in place and the reverse.
//!
//! Start with [`SqlDriver`] (what a host's `storage = "sql"` opens; the
//! `sql` option is read per host, see [`params`]), then [`keyval`] and
//! [`archive`] for the row layout, [`codec`] for Prosody's value encoding,
//! [`schema`] for the tables, and [`engine`] for the pool, the runtime the
//! queries run on and the retry policy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use xmpp_core::config::ServerConfig;
use xmpp_core::storage::{
    ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageError, StorageResult,
};

pub mod archive;
pub mod codec;
pub mod engine;
pub mod keyval;
pub mod params;
pub mod schema;
pub mod testing;

pub use archive::SqlArchive;
pub use engine::Database;
pub use keyval::{Scope, SqlKeyval};
pub use params::{Engine, SqlParams};

/// What can go wrong in this driver.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("sql configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("bad stored value: {0}")]
    Data(String),
    #[error("{0}")]
    Schema(String),
    #[error("item-not-found: no archived item with key {0:?}")]
    ItemNotFound(String),
    #[error("quota-limit: the archive holds {0} items already")]
    QuotaLimit(usize),
}

impl SqlError {
    /// A failure to reach the database (worth retrying), not a bad query.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SqlError::Unavailable(_))
    }
}

impl From<sqlx::Error> for SqlError {
    fn from(e: sqlx::Error) -> SqlError {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => SqlError::Unavailable(e.to_string()),
            sqlx::Error::Database(d) => {
                // PostgreSQL: connection exceptions (08xxx), shutting down
                // (57P01..57P03); SQLite: busy/locked for longer than the
                // busy timeout, cannot open.
                let code = d.code().map(|c| c.to_string()).unwrap_or_default();
                if code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "5"
                    || code == "6"
                    || code == "14"
                {
                    SqlError::Unavailable(e.to_string())
                } else {
                    SqlError::Database(e.to_string())
                }
            }
            _ => SqlError::Database(e.to_string()),
        }
    }
}

impl From<SqlError> for StorageError {
    fn from(e: SqlError) -> StorageError {
        match e {
            SqlError::Unavailable(reason) | SqlError::Config(reason) => StorageError::Unavailable {
                driver: "sql".to_string(),
                reason,
            },
            SqlError::Data(reason) => StorageError::Corrupt {
                path: "sql".to_string(),
                reason,
            },
            other => StorageError::Other(other.to_string()),
        }
    }
}

/// The `sql` driver: stores of every host, each host on the database its
/// `sql` option names (databases are opened on first use and shared
/// between hosts naming the same one).
pub struct SqlDriver {
    global: Result<SqlParams, String>,
    hosts: HashMap<String, Result<SqlParams, String>>,
    manage_tables: HashMap<String, bool>,
    manage_tables_default: bool,
    item_limit: Option<usize>,
    databases: Mutex<HashMap<SqlParams, Arc<Database>>>,
}

impl SqlDriver {
    /// The driver for a configuration (`sql`, `sql_manage_tables` and
    /// `storage_archive_item_limit`, per host or global), SQLite paths
    /// relative to `data_path`.
    pub fn with_config(config: &ServerConfig, data_path: &Path) -> SqlDriver {
        let read = |v| SqlParams::from_option(v, data_path).map_err(|e| e.to_string());
        let global = read(config.get_global("sql"));
        let mut hosts = HashMap::new();
        let mut manage_tables = HashMap::new();
        let manage = |v: Option<&xmpp_core::Value>| v.and_then(|v| v.as_bool());
        for h in &config.hosts {
            if let Some(v) = h.section.get("sql") {
                hosts.insert(h.name.clone(), read(Some(v)));
            }
            if let Some(m) = manage(h.section.get("sql_manage_tables")) {
                manage_tables.insert(h.name.clone(), m);
            }
        }
        SqlDriver {
            global,
            hosts,
            manage_tables,
            manage_tables_default: manage(config.get_global("sql_manage_tables")).unwrap_or(true),
            item_limit: config
                .get_global("storage_archive_item_limit")
                .and_then(|v| v.as_i64())
                .and_then(|n| usize::try_from(n).ok()),
            databases: Mutex::new(HashMap::new()),
        }
    }

    /// The database a host's stores live in.
    pub fn database(&self, host: &str) -> StorageResult<Arc<Database>> {
        let params = self
            .hosts
            .get(host)
            .unwrap_or(&self.global)
            .clone()
            .map_err(|reason| StorageError::Unavailable {
                driver: "sql".into(),
                reason,
            })?;
        let mut dbs = self.databases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = dbs.get(&params) {
            return Ok(db.clone());
        }
        let manage = self
            .manage_tables
            .get(host)
            .copied()
            .unwrap_or(self.manage_tables_default);
        let db = Database::open(params.clone(), manage)?;
        dbs.insert(params, db.clone());
        Ok(db)
    }

    fn scope(host: &str, store: &str) -> Scope {
        Scope {
            host: host.to_string(),
            store: store.to_string(),
        }
    }

    /// A host's archive store with the driver's own extras (keyed appends,
    /// user listing).
    pub fn archive(&self, host: &str, store: &str) -> StorageResult<SqlArchive> {
        Ok(SqlArchive {
            db: self.database(host)?,
            scope: Self::scope(host, store),
            item_limit: self.item_limit,
        })
    }

    /// The keyval stores and archive stores that hold data for `host`.
    pub fn stores(&self, host: &str) -> StorageResult<(Vec<String>, Vec<String>)> {
        use sqlx::Row;
        let host = host.to_string();
        Ok(self.database(&host)?.run(move |pool| {
            let host = host.clone();
            async move {
                let mut out = (Vec::new(), Vec::new());
                for (table, list) in [("prosody", &mut out.0), ("prosodyarchive", &mut out.1)] {
                    let sql = format!(
                        r#"SELECT DISTINCT "store" FROM "{table}" WHERE "host" = $1 ORDER BY "store""#
                    );
                    for r in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(host.clone()).fetch_all(&pool).await? {
                        list.push(r.try_get::<String, _>(0)?);
                    }
                }
                Ok(out)
            }
        })?)
    }
}

impl StorageDriver for SqlDriver {
    fn name(&self) -> &str {
        "sql"
    }

    fn open_keyval(&self, host: &str, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        Ok(Arc::new(SqlKeyval {
            db: self.database(host)?,
            scope: Self::scope(host, store),
        }))
    }

    fn open_map(&self, host: &str, store: &str) -> StorageResult<Arc<dyn MapStore>> {
        Ok(Arc::new(SqlKeyval {
            db: self.database(host)?,
            scope: Self::scope(host, store),
        }))
    }

    fn open_archive(&self, host: &str, store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        Ok(Arc::new(self.archive(host, store)?))
    }

    fn purge_user(&self, host: &str, user: &str) -> StorageResult<()> {
        let (host, user) = (host.to_string(), user.to_string());
        Ok(self.database(&host)?.run(move |pool| {
            let (host, user) = (host.clone(), user.clone());
            async move {
                let mut tx = pool.begin().await?;
                for table in ["prosody", "prosodyarchive"] {
                    let sql = format!(r#"DELETE FROM "{table}" WHERE "host" = $1 AND "user" = $2"#);
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(host.clone())
                        .bind(user.clone())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        })?)
    }
}

#[cfg(test)]
mod tests;

/// Makes the `sql` driver known to `server` (databases open on first use).
pub fn register(server: &xmpp_core::Server, data_path: &Path) {
    server
        .storage
        .register(Arc::new(SqlDriver::with_config(&server.config, data_path)));
}
