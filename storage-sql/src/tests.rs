//! The driver against real databases: SQLite in a temporary directory and
//! a throw-away PostgreSQL cluster (skipped, saying so, when PostgreSQL is
//! not installed).

use std::path::Path;
use std::sync::Arc;

use xmpp_core::config::ServerConfig;
use xmpp_core::stanza::Element;
use xmpp_core::storage::{ArchiveQuery, StorageDriver};
use xmpp_core::value::{Table, Value};

use crate::testing::PgCluster;
use crate::{SqlDriver, SqlParams};

fn driver_for(sql: Option<Value>, data: &Path) -> SqlDriver {
    let mut config = ServerConfig::default();
    if let Some(v) = sql {
        config.global.set("sql", v);
    }
    SqlDriver::with_config(&config, data)
}

fn pg_option(pg: &PgCluster, db: &str) -> Value {
    let mut t = Table::new();
    t.insert("driver", Value::str("PostgreSQL"));
    t.insert("database", Value::str(db));
    t.insert("username", Value::str("postgres"));
    t.insert("host", Value::str("127.0.0.1"));
    t.insert("port", Value::Integer(i64::from(pg.port)));
    Value::Table(t)
}

fn account() -> Value {
    let mut t = Table::new();
    t.insert("stored_key", Value::str("abc"));
    t.insert("iteration_count", Value::Integer(4096));
    t.insert("salt", Value::str("s"));
    Value::Table(t)
}

fn roster() -> Value {
    let mut item = Table::new();
    item.insert("subscription", Value::str("both"));
    let mut groups = Table::new();
    groups.insert("Friends", Value::Bool(true));
    item.insert("groups", Value::Table(groups));
    let mut meta = Table::new();
    meta.insert("version", Value::Integer(2));
    meta.insert("pending", Value::Table(Table::new()));
    let mut t = Table::new();
    t.insert("juliet@example.com", Value::Table(item));
    t.insert("false", Value::Table(meta));
    Value::Table(t)
}

fn message(n: usize) -> Element {
    Element::new("message", "jabber:client")
        .attr("to", "juliet@example.com")
        .attr("type", "chat")
        .child(Element::new("body", "jabber:client").text(format!("hello {n}")))
}

/// Everything the store API promises, on one driver.
fn exercise(driver: &SqlDriver) {
    let host = "example.com";
    let accounts = driver.open_keyval(host, "accounts").unwrap();
    assert_eq!(accounts.get(Some("romeo")).unwrap(), None);
    accounts.set(Some("romeo"), Some(account())).unwrap();
    assert_eq!(accounts.get(Some("romeo")).unwrap(), Some(account()));
    assert!(!accounts.create(Some("romeo"), account()).unwrap());
    assert!(accounts.create(Some("juliet"), account()).unwrap());
    let mut users = accounts.users().unwrap();
    users.sort();
    assert_eq!(users, ["juliet", "romeo"]);
    accounts.set(Some("juliet"), None).unwrap();
    assert_eq!(accounts.get(Some("juliet")).unwrap(), None);

    // Roster: metadata under the boolean key, items per JID.
    let rosters = driver.open_keyval(host, "roster").unwrap();
    rosters.set(Some("romeo"), Some(roster())).unwrap();
    assert_eq!(rosters.get(Some("romeo")).unwrap(), Some(roster()));
    // Host data (no user).
    let mut t = Table::new();
    t.insert("x", Value::Number(1.5));
    rosters.set(None, Some(Value::Table(t.clone()))).unwrap();
    assert_eq!(rosters.get(None).unwrap(), Some(Value::Table(t)));

    // Map: private XML as a preserialised element.
    let private = driver.open_map(host, "private").unwrap();
    let bookmarks = crate::codec::element_to_value(
        &Element::new("storage", "storage:bookmarks")
            .child(Element::new("conference", "storage:bookmarks").attr("jid", "r@c")),
    );
    private
        .set(
            Some("romeo"),
            "storage:storage:bookmarks",
            Some(bookmarks.clone()),
        )
        .unwrap();
    assert_eq!(
        private
            .get(Some("romeo"), "storage:storage:bookmarks")
            .unwrap(),
        Some(bookmarks)
    );
    private
        .set(Some("romeo"), "storage:storage:bookmarks", None)
        .unwrap();
    assert_eq!(
        private
            .get(Some("romeo"), "storage:storage:bookmarks")
            .unwrap(),
        None
    );

    // Archive.
    let archive = driver.open_archive(host, "archive").unwrap();
    let mut keys = Vec::new();
    for n in 0..6 {
        let with = if n % 2 == 0 {
            "juliet@example.com"
        } else {
            "nurse@example.com"
        };
        keys.push(
            archive
                .append(Some("romeo"), &message(n), 1000.0 + n as f64, with)
                .unwrap(),
        );
    }
    let all = archive
        .find(Some("romeo"), &ArchiveQuery::default())
        .unwrap();
    assert_eq!(
        all.iter().map(|i| &i.key).collect::<Vec<_>>(),
        keys.iter().collect::<Vec<_>>()
    );
    assert_eq!(all[2].stanza, message(2));
    assert_eq!(all[2].when, 1002.0);
    let q = ArchiveQuery {
        with: Some("juliet@example.com".into()),
        ..Default::default()
    };
    assert_eq!(archive.find(Some("romeo"), &q).unwrap().len(), 3);
    let q = ArchiveQuery {
        after: Some(keys[1].clone()),
        limit: Some(2),
        ..Default::default()
    };
    let page: Vec<_> = archive
        .find(Some("romeo"), &q)
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(page, keys[2..4]);
    let q = ArchiveQuery {
        before: Some(keys[4].clone()),
        limit: Some(2),
        reverse: true,
        ..Default::default()
    };
    let page: Vec<_> = archive
        .find(Some("romeo"), &q)
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(page, [keys[3].clone(), keys[2].clone()]);
    let q = ArchiveQuery {
        start: Some(1001.0),
        end: Some(1002.0),
        ..Default::default()
    };
    assert_eq!(archive.find(Some("romeo"), &q).unwrap().len(), 2);
    let missing = ArchiveQuery {
        after: Some("nope".into()),
        ..Default::default()
    };
    let err = archive.find(Some("romeo"), &missing).unwrap_err();
    assert!(err.to_string().contains("item-not-found"), "{err}");
    let q = ArchiveQuery {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(archive.delete(Some("romeo"), &q).unwrap(), 2);
    assert_eq!(
        archive
            .find(Some("romeo"), &ArchiveQuery::default())
            .unwrap()
            .len(),
        4
    );

    // Keyed appends (PEP's item stores): the key's old item goes, the new
    // one is last.
    let items = driver.open_archive(host, "pep_node").unwrap();
    for (key, n) in [("a", 0), ("b", 1), ("a", 2)] {
        let got = items
            .append_keyed(Some("romeo"), key, &message(n), 1000.0, "")
            .unwrap();
        assert_eq!(got, key);
    }
    let stored: Vec<_> = items
        .find(Some("romeo"), &ArchiveQuery::default())
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.stanza))
        .collect();
    assert_eq!(
        stored,
        [("b".to_string(), message(1)), ("a".to_string(), message(2))]
    );

    let (kv, arch) = driver.stores(host).unwrap();
    assert_eq!(kv, ["accounts", "roster"]);
    assert_eq!(arch, ["archive", "pep_node"]);

    driver.purge_user(host, "romeo").unwrap();
    assert_eq!(accounts.get(Some("romeo")).unwrap(), None);
    assert_eq!(
        archive
            .find(Some("romeo"), &ArchiveQuery::default())
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn sqlite_store_api() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver_for(None, dir.path());
    exercise(&driver);
    assert!(dir.path().join("prosody.sqlite").exists());
}

#[test]
fn sqlite_in_wal_mode_with_prosodys_schema() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver_for(None, dir.path());
    driver
        .open_keyval("h", "accounts")
        .unwrap()
        .set(Some("u"), Some(account()))
        .unwrap();
    let db = dir.path().join("prosody.sqlite");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA journal_mode; SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name; SELECT key, type, value FROM prosody ORDER BY key;")
        .output();
    let Ok(out) = out else {
        eprintln!("sqlite3 is not installed; schema not inspected");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "wal\nprosody_index\nprosodyarchive_index\nprosodyarchive_sort\nprosodyarchive_when\nprosodyarchive_with_when\niteration_count|number|4096\nsalt|string|s\nstored_key|string|abc\n"
    );
}

#[test]
fn within_a_tokio_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let driver = Arc::new(driver_for(None, dir.path()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let d = driver.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let s = d.open_keyval("h", "accounts").unwrap();
            s.set(Some("u"), Some(account())).unwrap();
            s.get(Some("u")).unwrap()
        })
        .await
        .unwrap()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        driver
            .open_keyval("h", "accounts")
            .unwrap()
            .get(Some("u"))
            .unwrap()
    });
    assert_eq!(got, Some(account()));
}

#[test]
fn postgres_store_api_and_outage() {
    let mut pg = match PgCluster::start("lilt") {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("SKIPPED: no PostgreSQL cluster: {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let driver = driver_for(Some(pg_option(&pg, "lilt")), dir.path());
    exercise(&driver);
    let schema = pg
        .psql(
            "lilt",
            "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'prosody%' ORDER BY indexname",
        )
        .unwrap();
    assert_eq!(
        schema,
        "prosody_index\nprosodyarchive_index\nprosodyarchive_pkey\nprosodyarchive_sort\nprosodyarchive_when\nprosodyarchive_with_when\n"
    );
    // The database goes away: a write fails (after retrying), and works
    // again once it is back.
    let accounts = driver.open_keyval("example.com", "accounts").unwrap();
    pg.stop();
    let err = accounts.set(Some("x"), Some(account())).unwrap_err();
    assert!(
        err.to_string().contains("unavailable") || err.to_string().contains("not available"),
        "{err}"
    );
    pg.restart().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match accounts.set(Some("x"), Some(account())) {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
            Err(_) => {}
        }
    }
    assert_eq!(accounts.get(Some("x")).unwrap(), Some(account()));
}

#[test]
fn bad_sql_option_is_reported() {
    let mut t = Table::new();
    t.insert("driver", Value::str("MySQL"));
    let err = SqlParams::from_option(Some(&Value::Table(t)), Path::new("/")).unwrap_err();
    assert!(err.to_string().contains("MySQL"));
    let mut t = Table::new();
    t.insert("driver", Value::str("MySQL"));
    let driver = driver_for(Some(Value::Table(t)), Path::new("/"));
    assert!(driver.open_keyval("h", "accounts").is_err());
}
