//! What the storage drivers cost (ignored by default; run with
//! `cargo test -p modules --release --test integration storage_cost:: -- --ignored --nocapture`).

use std::time::Instant;

use lua_compat::datfile::{self, archive};
use modules::storage::{InternalDriver, MemoryDriver};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::{ArchiveQuery, StorageDriver};
use xmpp_core::value::{Table, Value};

fn message(n: usize) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("from", "alice@example.com/phone")
        .attr("to", "bob@example.com")
        .attr("type", "chat")
        .attr("id", format!("id-{n}"))
        .child(
            Element::new("body", NS_CLIENT)
                .text(format!("message number {n}, with some text in it ✓")),
        )
        .child(Element::new(
            "active",
            "http://jabber.org/protocol/chatstates",
        ))
}

fn account() -> Value {
    let mut t = Table::new();
    t.insert("salt", Value::str("68e4748b-1050-4a12-bd7c-e871f5152777"));
    t.insert("iteration_count", Value::Integer(10000));
    t.insert(
        "stored_key",
        Value::str("8f5317a1a288eda73d2374c7858ea36f9ff077b7"),
    );
    t.insert(
        "server_key",
        Value::str("32dda920e15ae6e7b215e22389fa9b0381759c27"),
    );
    Value::Table(t)
}

fn per_op(label: &str, n: usize, start: Instant) {
    let el = start.elapsed();
    println!(
        "{label}: {n} in {el:.2?} = {:.1} µs each",
        el.as_secs_f64() * 1e6 / n as f64
    );
}

#[test]
#[ignore]
fn internal_driver_costs() {
    let dir = tempfile::tempdir().unwrap();
    let d = InternalDriver::new(dir.path().to_path_buf());
    let kv = d.open_keyval("example.com", "accounts").unwrap();
    let n = 500;
    let t = Instant::now();
    for i in 0..n {
        kv.set(Some(&format!("user{i}")), Some(account())).unwrap();
    }
    per_op("keyval set (fsync'd rename)", n, t);
    let t = Instant::now();
    for i in 0..n {
        kv.get(Some(&format!("user{i}"))).unwrap().unwrap();
    }
    per_op("keyval get", n, t);

    let ar = d.open_archive("example.com", "archive").unwrap();
    let n = 1000;
    let t = Instant::now();
    for i in 0..n {
        ar.append(
            Some("appender"),
            &message(i),
            1.7e9 + i as f64,
            "alice@example.com",
        )
        .unwrap();
    }
    per_op("archive append (fsync'd)", n, t);

    // A full 10000-item archive (Prosody's default limit), written directly.
    let items: Vec<_> = (0..10_000)
        .map(|i| {
            archive::item_to_dat(
                &message(i),
                &format!("key{i}"),
                1.7e9 + i as f64,
                "alice@example.com",
            )
        })
        .collect();
    let bytes = datfile::list_bytes(&items, "big").unwrap();
    let path = dir.path().join("example%2ecom/archive/big.list");
    std::fs::write(&path, &bytes).unwrap();
    println!("10000-item .list: {} bytes", bytes.len());
    let t = Instant::now();
    let parsed = datfile::parse_list(&bytes, "big", &Default::default()).unwrap();
    per_op("parse_list of 10000 items (Lua + literal parser)", 1, t);
    assert_eq!(parsed.len(), 10_000);
    let t = Instant::now();
    let all = ar.find(Some("big"), &ArchiveQuery::default()).unwrap();
    per_op("find all 10000 (read, parse, stanzas)", 1, t);
    assert_eq!(all.len(), 10_000);
    let t = Instant::now();
    let page = ar
        .find(
            Some("big"),
            &ArchiveQuery {
                reverse: true,
                limit: Some(20),
                ..Default::default()
            },
        )
        .unwrap();
    per_op("find last 20 of 10000", 1, t);
    assert_eq!(page.len(), 20);
    let t = Instant::now();
    let q = ArchiveQuery {
        end: Some(1.7e9 + 99.0),
        ..Default::default()
    };
    assert_eq!(ar.delete(Some("big"), &q).unwrap(), 100);
    per_op("delete 100 of 10000 (rewrite)", 1, t);
}

#[test]
#[ignore]
fn memory_driver_costs() {
    let d = MemoryDriver::with_item_limit(100_000);
    let ar = d.open_archive("example.com", "archive").unwrap();
    let n = 10_000;
    let t = Instant::now();
    for i in 0..n {
        ar.append(
            Some("u"),
            &message(i),
            1.7e9 + i as f64,
            "alice@example.com",
        )
        .unwrap();
    }
    per_op("memory archive append", n, t);
    let t = Instant::now();
    let page = ar
        .find(
            Some("u"),
            &ArchiveQuery {
                reverse: true,
                limit: Some(20),
                ..Default::default()
            },
        )
        .unwrap();
    per_op("memory find last 20 of 10000", 1, t);
    assert_eq!(page.len(), 20);
}
