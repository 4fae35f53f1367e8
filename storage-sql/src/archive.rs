//! Archive stores on the `prosodyarchive` table: one row per item, in
//! `sort_id` order, the stanza as `xml`, `when` in whole seconds.
//!
//! Queries follow Prosody's SQL driver: `with`, `start`/`end` (inclusive)
//! filter; `after`/`before` must name an item of the archive (else
//! `item-not-found`) and bound `sort_id`; `limit` counts in result order.
//! `storage_archive_item_limit`, when set, refuses appends beyond it with
//! `quota-limit`.

use std::sync::Arc;

use sqlx::{AnyPool, Row};
use xmpp_core::stanza::Element;
use xmpp_core::storage::{ArchiveItem, ArchiveQuery, ArchiveStore, StorageResult};

use crate::SqlError;
use crate::codec;
use crate::engine::Database;
use crate::keyval::Scope;

pub struct SqlArchive {
    pub db: Arc<Database>,
    pub scope: Scope,
    pub item_limit: Option<usize>,
}

/// A query parameter.
#[derive(Clone, Debug)]
enum Arg {
    Text(String),
    Float(f64),
    Int(i64),
}

/// A WHERE clause under construction, with `$N` placeholders.
#[derive(Clone, Default)]
struct Where {
    parts: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    fn push(&mut self, cond: &str, arg: Arg) {
        self.args.push(arg);
        let n = self.args.len();
        self.parts.push(cond.replace('?', &format!("${n}")));
    }
    fn sql(&self) -> String {
        self.parts.join(" AND ")
    }
    fn bind<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Float(f) => q.bind(*f),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// The WHERE clause of a query on one user's archive; looks up the
/// `after`/`before` items.
async fn conditions(
    pool: &AnyPool,
    scope: &Scope,
    user: &str,
    q: &ArchiveQuery,
) -> Result<Where, SqlError> {
    let mut w = Where::default();
    w.push(r#""host" = ?"#, Arg::Text(scope.host.clone()));
    w.push(r#""user" = ?"#, Arg::Text(user.to_string()));
    w.push(r#""store" = ?"#, Arg::Text(scope.store.clone()));
    if let Some(s) = q.start {
        w.push(r#""when" >= ?"#, Arg::Float(s));
    }
    if let Some(e) = q.end {
        w.push(r#""when" <= ?"#, Arg::Float(e));
    }
    if let Some(with) = &q.with {
        w.push(r#""with" = ?"#, Arg::Text(with.clone()));
    }
    for (key, cond) in [
        (&q.after, r#""sort_id" > ?"#),
        (&q.before, r#""sort_id" < ?"#),
    ] {
        let Some(key) = key else { continue };
        let row = sqlx::query(
            r#"SELECT "sort_id" FROM "prosodyarchive" WHERE "key" = $1 AND "host" = $2 AND "user" = $3 AND "store" = $4 LIMIT 1"#,
        )
        .bind(key.clone())
        .bind(scope.host.clone())
        .bind(user.to_string())
        .bind(scope.store.clone())
        .fetch_optional(pool)
        .await?;
        let Some(row) = row else {
            return Err(SqlError::ItemNotFound(key.clone()));
        };
        w.push(cond, Arg::Int(row.try_get(0)?));
    }
    Ok(w)
}

/// A new item key, as Prosody's SQL driver makes them (a random UUID).
fn new_key() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    // Version 4, variant 1.
    let v = format!("4{}", &hex[13..16]);
    let var = ((u8::from_str_radix(&hex[16..17], 16).unwrap_or(0) & 0x3) | 0x8) as u32;
    format!(
        "{}-{}-{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        v,
        var,
        &hex[17..20],
        &hex[20..32]
    )
}

impl SqlArchive {
    /// Appends an item with a given key (replacing an item with that key),
    /// as Prosody's `archive:append(user, key, ...)`; for migrations.
    pub fn append_keyed(
        &self,
        user: Option<&str>,
        key: Option<&str>,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let scope = self.scope.clone();
        let user = user.unwrap_or("").to_string();
        // A new item (a fresh random key) with no item limit to check is one
        // INSERT: no transaction, and no lock shared with every other archive
        // (MAM appends of all users would otherwise queue behind each other's
        // commits). A given key (replacing its item) or a limit (counting
        // first) take the lock, so two such appends cannot interleave.
        let plain = key.is_none() && self.item_limit.is_none();
        let key = key.map_or_else(new_key, str::to_string);
        let text = codec::stanza_text(stanza);
        let with = with.to_string();
        let limit = self.item_limit;
        let when = when.floor() as i64;
        let db = self.db.clone();
        Ok(self.db.run(move |pool| {
            let (scope, user, key, text, with, db) = (
                scope.clone(),
                user.clone(),
                key.clone(),
                text.clone(),
                with.clone(),
                db.clone(),
            );
            async move {
                let insert = sqlx::query(r#"INSERT INTO "prosodyarchive" ("host", "user", "store", "when", "with", "key", "type", "value") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#)
                    .bind(scope.host.clone())
                    .bind(user.clone())
                    .bind(scope.store.clone())
                    .bind(when)
                    .bind(with.clone())
                    .bind(key.clone())
                    .bind("xml".to_string())
                    .bind(text.clone());
                if plain {
                    insert.execute(&pool).await?;
                    return Ok(key);
                }
                let _guard = db.create_lock.lock().await;
                let mut tx = pool.begin().await?;
                sqlx::query(r#"DELETE FROM "prosodyarchive" WHERE "host" = $1 AND "user" = $2 AND "store" = $3 AND "key" = $4"#)
                    .bind(scope.host.clone())
                    .bind(user.clone())
                    .bind(scope.store.clone())
                    .bind(key.clone())
                    .execute(&mut *tx)
                    .await?;
                if let Some(limit) = limit {
                    let row = sqlx::query(r#"SELECT COUNT(*) FROM "prosodyarchive" WHERE "host" = $1 AND "user" = $2 AND "store" = $3"#)
                        .bind(scope.host.clone())
                        .bind(user.clone())
                        .bind(scope.store.clone())
                        .fetch_one(&mut *tx)
                        .await?;
                    let count: i64 = row.try_get(0)?;
                    if usize::try_from(count).unwrap_or(usize::MAX) >= limit {
                        tx.rollback().await?;
                        return Err(SqlError::QuotaLimit(limit));
                    }
                }
                insert.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(key)
            }
        })?)
    }

    /// The users with items in this archive (for migrations).
    pub fn users(&self) -> StorageResult<Vec<String>> {
        let scope = self.scope.clone();
        Ok(self.db.run(move |pool| {
            let scope = scope.clone();
            async move {
                let rows = sqlx::query(r#"SELECT DISTINCT "user" FROM "prosodyarchive" WHERE "host" = $1 AND "store" = $2"#)
                    .bind(scope.host.clone())
                    .bind(scope.store.clone())
                    .fetch_all(&pool)
                    .await?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>(0).map_err(SqlError::from))
                    .collect()
            }
        })?)
    }
}

impl ArchiveStore for SqlArchive {
    fn append(
        &self,
        user: Option<&str>,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        SqlArchive::append_keyed(self, user, None, stanza, when, with)
    }

    /// Prosody's SQL driver: the item with that key goes, the new one is
    /// inserted with a new `sort_id` (so it moves to the end), as PEP's item
    /// stores rely on.
    fn append_keyed(
        &self,
        user: Option<&str>,
        key: &str,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        SqlArchive::append_keyed(self, user, Some(key), stanza, when, with)
    }

    fn find(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<Vec<ArchiveItem>> {
        let scope = self.scope.clone();
        let user = user.unwrap_or("").to_string();
        let q = query.clone();
        let rows = self.db.run(move |pool| {
            let (scope, user, q) = (scope.clone(), user.clone(), q.clone());
            async move {
                let mut w = conditions(&pool, &scope, &user, &q).await?;
                let mut sql = format!(
                    r#"SELECT "key", "type", "value", CAST("when" AS DOUBLE PRECISION), "with" FROM "prosodyarchive" WHERE {} ORDER BY "sort_id" {}"#,
                    w.sql(),
                    if q.reverse { "DESC" } else { "ASC" }
                );
                if let Some(limit) = q.limit {
                    w.args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
                    sql.push_str(&format!(" LIMIT ${}", w.args.len()));
                }
                let rows = w.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).fetch_all(&pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get::<String, _>(0)?,
                            r.try_get::<String, _>(1)?,
                            r.try_get::<String, _>(2)?,
                            r.try_get::<f64, _>(3)?,
                            r.try_get::<String, _>(4)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, SqlError>>()
            }
        })?;
        let mut items = Vec::with_capacity(rows.len());
        for (key, ty, text, when, with) in rows {
            items.push(ArchiveItem {
                stanza: codec::parse_stanza(&ty, &text)?,
                key,
                when,
                with,
            });
        }
        Ok(items)
    }

    fn delete(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<usize> {
        let scope = self.scope.clone();
        let user = user.unwrap_or("").to_string();
        let q = query.clone();
        Ok(self.db.run(move |pool| {
            let (scope, user, q) = (scope.clone(), user.clone(), q.clone());
            async move {
                let mut w = conditions(&pool, &scope, &user, &q).await?;
                let sql = match q.limit {
                    None => format!(r#"DELETE FROM "prosodyarchive" WHERE {}"#, w.sql()),
                    Some(limit) => {
                        w.args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
                        format!(
                            r#"DELETE FROM "prosodyarchive" WHERE "sort_id" IN (SELECT "sort_id" FROM "prosodyarchive" WHERE {} ORDER BY "sort_id" {} LIMIT ${})"#,
                            w.sql(),
                            if q.reverse { "DESC" } else { "ASC" },
                            w.args.len()
                        )
                    }
                };
                let done = w.bind(sqlx::query(sqlx::AssertSqlSafe(sql))).execute(&pool).await?;
                Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
            }
        })?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_uuids() {
        let k = super::new_key();
        assert_eq!(k.len(), 36);
        assert_eq!(&k[14..15], "4");
        assert!("89ab".contains(&k[19..20]));
    }
}
