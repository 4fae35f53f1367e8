//! Archive queries with Prosody's semantics (`archive:find` in
//! `mod_storage_internal` and `mod_storage_memory`), shared by the drivers.
//!
//! Items are filtered by `with`, `start` and `end`; then, going forwards,
//! results start after `after` (which must exist) and stop at `before`;
//! going in reverse, they start after `before` (which must exist) and stop
//! at `after`. `limit` counts from the starting point. A key that must exist
//! and does not is Prosody's `item-not-found`.

use xmpp_core::storage::{ArchiveQuery, StorageError};

/// Prosody's error text when `after`/`before` names no item.
pub const ITEM_NOT_FOUND: &str = "item-not-found";

/// Is this the `item-not-found` error of an archive query?
pub fn is_item_not_found(e: &StorageError) -> bool {
    matches!(e, StorageError::Other(m) if m.starts_with(ITEM_NOT_FOUND))
}

fn item_not_found(key: &str) -> StorageError {
    StorageError::Other(format!(
        "{ITEM_NOT_FOUND}: no archived item with key {key:?}"
    ))
}

/// What a query needs to know about an item.
pub struct ItemMeta<'a> {
    pub key: std::borrow::Cow<'a, str>,
    pub when: f64,
    pub with: &'a str,
}

/// The query has no condition at all (delete everything).
pub fn is_empty(q: &ArchiveQuery) -> bool {
    q.start.is_none()
        && q.end.is_none()
        && q.with.is_none()
        && q.after.is_none()
        && q.before.is_none()
        && q.limit.is_none()
        && !q.reverse
}

/// The error a query gets from an archive that does not exist.
pub fn check_empty_archive(q: &ArchiveQuery) -> Result<(), StorageError> {
    match q.after.as_deref().or(q.before.as_deref()) {
        Some(key) => Err(item_not_found(key)),
        None => Ok(()),
    }
}

/// The positions (in `items`) of the query's results, in result order.
pub fn select(items: &[ItemMeta<'_>], q: &ArchiveQuery) -> Result<Vec<usize>, StorageError> {
    let mut order: Vec<usize> = (0..items.len())
        .filter(|&i| q.with.as_deref().is_none_or(|w| items[i].with == w))
        .filter(|&i| q.start.is_none_or(|s| items[i].when >= s))
        .filter(|&i| q.end.is_none_or(|e| items[i].when <= e))
        .collect();
    let find = |order: &[usize], key: &str| order.iter().position(|&i| items[i].key == key);
    let (skip, stop_at) = if q.reverse {
        order.reverse();
        let skip = match &q.before {
            Some(b) => find(&order, b).ok_or_else(|| item_not_found(b))? + 1,
            None => 0,
        };
        (skip, q.after.as_deref())
    } else if let Some(a) = &q.after {
        (
            find(&order, a).ok_or_else(|| item_not_found(a))? + 1,
            q.before.as_deref(),
        )
    } else {
        (0, q.before.as_deref())
    };
    let mut out: Vec<usize> = order.into_iter().skip(skip).collect();
    if let Some(limit) = q.limit {
        out.truncate(limit);
    }
    if let Some(stop) = stop_at
        && let Some(p) = out.iter().position(|&i| items[i].key == stop)
    {
        out.truncate(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<ItemMeta<'static>> {
        (1..=6)
            .map(|i| ItemMeta {
                key: format!("k{i}").into(),
                when: f64::from(i * 10),
                with: if i % 2 == 0 { "even@x" } else { "odd@x" },
            })
            .collect()
    }

    fn keys(items: &[ItemMeta<'_>], q: &ArchiveQuery) -> Vec<String> {
        select(items, q)
            .unwrap()
            .into_iter()
            .map(|i| items[i].key.to_string())
            .collect()
    }

    #[test]
    fn forwards_and_backwards() {
        let it = items();
        let q = |f: fn(&mut ArchiveQuery)| {
            let mut q = ArchiveQuery::default();
            f(&mut q);
            q
        };
        assert_eq!(keys(&it, &q(|_| {})), ["k1", "k2", "k3", "k4", "k5", "k6"]);
        assert_eq!(
            keys(&it, &q(|q| q.with = Some("even@x".into()))),
            ["k2", "k4", "k6"]
        );
        assert_eq!(
            keys(&it, &q(|q| (q.start, q.end) = (Some(20.0), Some(40.0)))),
            ["k2", "k3", "k4"]
        );
        assert_eq!(
            keys(
                &it,
                &q(|q| (q.after, q.limit) = (Some("k2".into()), Some(2)))
            ),
            ["k3", "k4"]
        );
        assert_eq!(
            keys(&it, &q(|q| q.before = Some("k3".into()))),
            ["k1", "k2"]
        );
        assert_eq!(
            keys(&it, &q(|q| (q.reverse, q.limit) = (true, Some(2)))),
            ["k6", "k5"]
        );
        assert_eq!(
            keys(
                &it,
                &q(|q| (q.reverse, q.before) = (true, Some("k5".into())))
            ),
            ["k4", "k3", "k2", "k1"]
        );
        assert_eq!(
            keys(
                &it,
                &q(|q| (q.reverse, q.after) = (true, Some("k3".into())))
            ),
            ["k6", "k5", "k4"]
        );
        // As Prosody: forwards with `before` and `limit`, the limit counts from the start.
        assert_eq!(
            keys(
                &it,
                &q(|q| (q.before, q.limit) = (Some("k5".into()), Some(2)))
            ),
            ["k1", "k2"]
        );
    }

    #[test]
    fn unknown_keys_are_item_not_found() {
        let it = items();
        let q = ArchiveQuery {
            after: Some("nope".into()),
            ..Default::default()
        };
        assert!(select(&it, &q).is_err_and(|e| is_item_not_found(&e)));
        let q = ArchiveQuery {
            before: Some("nope".into()),
            reverse: true,
            ..Default::default()
        };
        assert!(select(&it, &q).is_err_and(|e| is_item_not_found(&e)));
        // Going forwards, `before` only stops the results.
        let q = ArchiveQuery {
            before: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(select(&it, &q).unwrap().len(), 6);
        assert!(check_empty_archive(&q).is_err());
    }
}
