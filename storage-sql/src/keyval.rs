//! Keyval and map stores on the `prosody` table, as Prosody 0.12 lays
//! them out: one row per top-level string key of a user's table
//! (`user` is `''` for the host's own data), everything else (boolean and
//! numeric keys, such as the roster's `[false]` metadata) together in a
//! JSON row under the key `''`. A map store is the same rows, addressed one
//! key at a time.

use std::sync::Arc;

use sqlx::{AnyPool, Row};
use xmpp_core::storage::{KeyValueStore, MapStore, StorageResult};
use xmpp_core::value::{Table, Value};

use crate::SqlError;
use crate::codec;
use crate::engine::Database;

/// Which rows a store's operations touch.
#[derive(Clone)]
pub struct Scope {
    pub host: String,
    pub store: String,
}

/// A keyval store (also the map view: same table, same rows).
pub struct SqlKeyval {
    pub db: Arc<Database>,
    pub scope: Scope,
}

type Row3 = (String, String, String);

const SELECT_USER: &str = r#"SELECT "key", "type", "value" FROM "prosody" WHERE "host" = $1 AND "user" = $2 AND "store" = $3"#;
const DELETE_USER: &str =
    r#"DELETE FROM "prosody" WHERE "host" = $1 AND "user" = $2 AND "store" = $3"#;
const INSERT: &str = r#"INSERT INTO "prosody" ("host", "user", "store", "key", "type", "value") VALUES ($1, $2, $3, $4, $5, $6)"#;
const SELECT_KEY: &str = r#"SELECT "type", "value" FROM "prosody" WHERE "host" = $1 AND "user" = $2 AND "store" = $3 AND "key" = $4 LIMIT 1"#;
const DELETE_KEY: &str =
    r#"DELETE FROM "prosody" WHERE "host" = $1 AND "user" = $2 AND "store" = $3 AND "key" = $4"#;

/// The rows Prosody writes for a user's table.
pub fn rows_of(value: &Value) -> Result<Vec<Row3>, SqlError> {
    let Value::Table(t) = value else {
        return Err(SqlError::Data(format!(
            "a keyval store holds tables, not a {}",
            value.type_name()
        )));
    };
    let mut rows = Vec::new();
    let mut extra = Table::new();
    extra.seq = t.seq.clone();
    for (k, v) in &t.map {
        if k.is_empty() || k == "true" || k == "false" {
            extra.insert(k.clone(), v.clone());
        } else {
            let (ty, text) = codec::serialize(v);
            rows.push((k.clone(), ty.to_string(), text));
        }
    }
    if !extra.is_empty() {
        let (ty, text) = codec::serialize(&Value::Table(extra));
        rows.push((String::new(), ty.to_string(), text));
    }
    Ok(rows)
}

/// A user's table from its rows (`None` when there are none).
pub fn value_of(rows: Vec<Row3>) -> Result<Option<Value>, SqlError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut t = Table::new();
    for (k, ty, text) in rows {
        let Some(v) = codec::deserialize(&ty, &text)? else {
            continue;
        };
        if !k.is_empty() {
            t.insert(k, v);
        } else if let Value::Table(extra) = v {
            t.seq.extend(extra.seq);
            t.map.extend(extra.map);
        }
    }
    Ok(Some(Value::Table(t)))
}

pub(crate) async fn fetch_rows(
    pool: &AnyPool,
    host: &str,
    user: &str,
    store: &str,
) -> Result<Vec<Row3>, SqlError> {
    let rows = sqlx::query(SELECT_USER)
        .bind(host.to_string())
        .bind(user.to_string())
        .bind(store.to_string())
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

async fn write_rows(
    conn: &mut sqlx::AnyConnection,
    scope: &Scope,
    user: &str,
    rows: &[Row3],
) -> Result<(), SqlError> {
    for (k, ty, text) in rows {
        sqlx::query(INSERT)
            .bind(scope.host.clone())
            .bind(user.to_string())
            .bind(scope.store.clone())
            .bind(k.clone())
            .bind(ty.clone())
            .bind(text.clone())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl SqlKeyval {
    fn user(user: Option<&str>) -> String {
        user.unwrap_or("").to_string()
    }
}

impl KeyValueStore for SqlKeyval {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>> {
        let scope = self.scope.clone();
        let user = Self::user(user);
        let rows = self.db.run(move |pool| {
            let (scope, user) = (scope.clone(), user.clone());
            async move { fetch_rows(&pool, &scope.host, &user, &scope.store).await }
        })?;
        Ok(value_of(rows)?)
    }

    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()> {
        let rows = match &value {
            Some(v) => rows_of(v)?,
            None => Vec::new(),
        };
        let scope = self.scope.clone();
        let user = Self::user(user);
        Ok(self.db.run(move |pool| {
            let (scope, user, rows) = (scope.clone(), user.clone(), rows.clone());
            async move {
                let mut tx = pool.begin().await?;
                sqlx::query(DELETE_USER)
                    .bind(scope.host.clone())
                    .bind(user.clone())
                    .bind(scope.store.clone())
                    .execute(&mut *tx)
                    .await?;
                write_rows(&mut tx, &scope, &user, &rows).await?;
                tx.commit().await?;
                Ok(())
            }
        })?)
    }

    fn users(&self) -> StorageResult<Vec<String>> {
        let scope = self.scope.clone();
        Ok(self.db.run(move |pool| {
            let scope = scope.clone();
            async move {
                let rows = sqlx::query(
                    r#"SELECT DISTINCT "user" FROM "prosody" WHERE "host" = $1 AND "store" = $2"#,
                )
                .bind(scope.host.clone())
                .bind(scope.store.clone())
                .fetch_all(&pool)
                .await?;
                let mut users = Vec::new();
                for r in rows {
                    let u: String = r.try_get(0)?;
                    if !u.is_empty() {
                        users.push(u);
                    }
                }
                Ok(users)
            }
        })?)
    }

    fn create(&self, user: Option<&str>, value: Value) -> StorageResult<bool> {
        let rows = rows_of(&value)?;
        let scope = self.scope.clone();
        let user = Self::user(user);
        let db = self.db.clone();
        Ok(self.db.run(move |pool| {
            let (scope, user, rows, db) = (scope.clone(), user.clone(), rows.clone(), db.clone());
            async move {
                let _guard = db.create_lock.lock().await;
                let mut tx = pool.begin().await?;
                let existing = sqlx::query(
                    r#"SELECT "key" FROM "prosody" WHERE "host" = $1 AND "user" = $2 AND "store" = $3 LIMIT 1"#,
                )
                .bind(scope.host.clone())
                .bind(user.clone())
                .bind(scope.store.clone())
                .fetch_optional(&mut *tx)
                .await?;
                if existing.is_some() {
                    tx.rollback().await?;
                    return Ok(false);
                }
                write_rows(&mut tx, &scope, &user, &rows).await?;
                tx.commit().await?;
                Ok(true)
            }
        })?)
    }
}

impl MapStore for SqlKeyval {
    fn get(&self, user: Option<&str>, key: &str) -> StorageResult<Option<Value>> {
        let scope = self.scope.clone();
        let user = Self::user(user);
        let key = key.to_string();
        let row = self.db.run(move |pool| {
            let (scope, user, key) = (scope.clone(), user.clone(), key.clone());
            async move {
                let row = sqlx::query(SELECT_KEY)
                    .bind(scope.host.clone())
                    .bind(user)
                    .bind(scope.store.clone())
                    .bind(key)
                    .fetch_optional(&pool)
                    .await?;
                Ok(match row {
                    Some(r) => Some((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)),
                    None => None,
                })
            }
        })?;
        match row {
            Some((ty, text)) => Ok(codec::deserialize(&ty, &text)?),
            None => Ok(None),
        }
    }

    fn set(&self, user: Option<&str>, key: &str, value: Option<Value>) -> StorageResult<()> {
        let encoded = value.as_ref().map(|v| {
            let (ty, text) = codec::serialize(v);
            (ty.to_string(), text)
        });
        let scope = self.scope.clone();
        let user = Self::user(user);
        let key = key.to_string();
        Ok(self.db.run(move |pool| {
            let (scope, user, key, encoded) =
                (scope.clone(), user.clone(), key.clone(), encoded.clone());
            async move {
                let mut tx = pool.begin().await?;
                sqlx::query(DELETE_KEY)
                    .bind(scope.host.clone())
                    .bind(user.clone())
                    .bind(scope.store.clone())
                    .bind(key.clone())
                    .execute(&mut *tx)
                    .await?;
                if let Some((ty, text)) = encoded {
                    write_rows(&mut tx, &scope, &user, &[(key, ty, text)]).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        })?)
    }
}
