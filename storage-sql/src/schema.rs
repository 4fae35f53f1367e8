//! Prosody's tables, as `mod_storage_sql` (0.12) creates them when
//! `sql_manage_tables` is on (the default): `prosody` for keyval and map
//! stores, `prosodyarchive` for archives, with the same column types and
//! index names, so either server can open the other's database.

use sqlx::{AnyPool, Executor};

use crate::SqlError;
use crate::engine::Database;
use crate::params::Engine;

const PROSODY: &str = r#"CREATE TABLE IF NOT EXISTS "prosody" ("host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL);"#;
const PROSODY_INDEX: &str =
    r#"CREATE INDEX IF NOT EXISTS "prosody_index" ON "prosody" ("host", "user", "store", "key");"#;

fn archive_table(engine: Engine) -> String {
    let sort_id = match engine {
        Engine::Sqlite => r#""sort_id" INTEGER PRIMARY KEY AUTOINCREMENT"#,
        Engine::Postgres => r#""sort_id" BIGSERIAL PRIMARY KEY"#,
    };
    format!(
        r#"CREATE TABLE IF NOT EXISTS "prosodyarchive" ({sort_id}, "host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "when" INTEGER NOT NULL, "with" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL);"#
    )
}

const ARCHIVE_INDEXES: [&str; 4] = [
    r#"CREATE UNIQUE INDEX IF NOT EXISTS "prosodyarchive_index" ON "prosodyarchive" ("host", "user", "store", "key");"#,
    r#"CREATE INDEX IF NOT EXISTS "prosodyarchive_with_when" ON "prosodyarchive" ("host", "user", "store", "with", "when");"#,
    r#"CREATE INDEX IF NOT EXISTS "prosodyarchive_when" ON "prosodyarchive" ("host", "user", "store", "when");"#,
    r#"CREATE INDEX IF NOT EXISTS "prosodyarchive_sort" ON "prosodyarchive" ("host", "user", "store", "sort_id");"#,
];

/// Creates the tables (when managed) and checks what is there.
pub async fn prepare(pool: &AnyPool, db: &Database) -> Result<(), SqlError> {
    if db.manage_tables {
        pool.execute(PROSODY).await?;
        pool.execute(PROSODY_INDEX).await?;
        sqlx::query(sqlx::AssertSqlSafe(archive_table(db.params.engine)))
            .execute(pool)
            .await?;
        for index in ARCHIVE_INDEXES {
            pool.execute(index).await?;
        }
    }
    check(pool, db).await
}

/// Names a schema this driver does not know (a newer Prosody's): the
/// columns it reads must all be there.
async fn check(pool: &AnyPool, db: &Database) -> Result<(), SqlError> {
    let probes = [
        (
            "prosody",
            r#"SELECT "host", "user", "store", "key", "type", "value" FROM "prosody" WHERE 1 = 0"#,
        ),
        (
            "prosodyarchive",
            r#"SELECT "sort_id", "host", "user", "store", "key", "when", "with", "type", "value" FROM "prosodyarchive" WHERE 1 = 0"#,
        ),
    ];
    for (table, probe) in probes {
        if let Err(e) = pool.fetch_all(probe).await {
            let e = SqlError::from(e);
            if e.is_unavailable() {
                return Err(e);
            }
            return Err(SqlError::Schema(format!(
                "table {table:?} in {} is not Prosody 0.12's layout ({e}); \
                 it may come from a newer Prosody or need `sql_manage_tables`",
                db.params.describe()
            )));
        }
    }
    let index_query = match db.params.engine {
        Engine::Sqlite => {
            r#"SELECT "name" FROM "sqlite_master" WHERE "type" = 'index' AND "name" LIKE 'prosody%'"#
        }
        Engine::Postgres => {
            r#"SELECT CAST("indexname" AS TEXT) FROM "pg_indexes" WHERE "indexname" LIKE 'prosody%'"#
        }
    };
    let known = [
        "prosody_index",
        "prosodyarchive_index",
        "prosodyarchive_with_when",
        "prosodyarchive_when",
        "prosodyarchive_sort",
        "prosodyarchive_pkey",
    ];
    use sqlx::Row;
    for row in pool.fetch_all(index_query).await? {
        let name: String = row.try_get(0)?;
        if !known.contains(&name.as_str()) && !name.starts_with("sqlite_") {
            tracing::info!(
                "database {} has index {name:?}, which Prosody 0.12 does not make \
                 (a newer Prosody's schema); lilt uses the tables as they are",
                db.params.describe()
            );
        }
    }
    Ok(())
}
