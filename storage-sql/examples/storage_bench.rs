//! Storage benchmark through the store API: keyval writes and reads,
//! archive appends and queries per second on the `internal` driver (a data
//! directory), SQLite and PostgreSQL (a throw-away cluster, skipped when
//! PostgreSQL is not installed), printed as a table with ratios to internal.
//!
//!     cargo run -p storage-sql --example storage_bench [-- OPS]

use std::sync::Arc;
use std::time::Instant;

use xmpp_core::config::ServerConfig;
use xmpp_core::stanza::Element;
use xmpp_core::storage::{ArchiveQuery, StorageDriver};
use xmpp_core::value::{Table, Value};

fn roster(n: usize) -> Value {
    let mut t = Table::new();
    for i in 0..n {
        let mut item = Table::new();
        item.insert("subscription", Value::str("both"));
        item.insert("name", Value::str(format!("contact {i}")));
        t.insert(format!("c{i}@example.com"), Value::Table(item));
    }
    Value::Table(t)
}

/// Operations per second of each step.
fn run(driver: &dyn StorageDriver, ops: usize) -> [f64; 4] {
    let host = "bench.example";
    let kv = driver.open_keyval(host, "roster").expect("open keyval");
    let value = roster(20);
    let rate = |n: usize, t: Instant| n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..ops {
        kv.set(Some(&format!("u{}", i % 100)), Some(value.clone()))
            .expect("keyval set");
    }
    let writes = rate(ops, t);
    let t = Instant::now();
    for i in 0..ops {
        kv.get(Some(&format!("u{}", i % 100))).expect("keyval get");
    }
    let reads = rate(ops, t);
    let archive = driver.open_archive(host, "archive").expect("open archive");
    let msg = Element::new("message", "jabber:client")
        .attr("to", "juliet@example.com")
        .attr("type", "chat")
        .child(Element::new("body", "jabber:client").text("hello"));
    let t = Instant::now();
    for i in 0..ops {
        archive
            .append(
                Some(&format!("u{}", i % 10)),
                &msg,
                1_700_000_000.0 + i as f64,
                "juliet@example.com",
            )
            .expect("append");
    }
    let appends = rate(ops, t);
    let t = Instant::now();
    let q = ArchiveQuery {
        limit: Some(20),
        reverse: true,
        ..Default::default()
    };
    for i in 0..ops {
        archive
            .find(Some(&format!("u{}", i % 10)), &q)
            .expect("find");
    }
    let queries = rate(ops, t);
    [writes, reads, appends, queries]
}

fn main() {
    let ops: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results: Vec<(&str, [f64; 4])> = Vec::new();
    let internal = modules::storage::InternalDriver::new(dir.path().join("internal"));
    results.push(("internal", run(&internal, ops)));
    let sqlite = storage_sql::SqlDriver::with_config(&ServerConfig::default(), dir.path());
    results.push(("sqlite", run(&sqlite, ops)));
    match storage_sql::testing::PgCluster::start("bench") {
        Ok(pg) => {
            let mut config = ServerConfig::default();
            let mut t = Table::new();
            t.insert("driver", Value::str("PostgreSQL"));
            t.insert("database", Value::str("bench"));
            t.insert("username", Value::str("postgres"));
            t.insert("host", Value::str("127.0.0.1"));
            t.insert("port", Value::Integer(i64::from(pg.port)));
            config.global.set("sql", Value::Table(t));
            let driver = Arc::new(storage_sql::SqlDriver::with_config(&config, dir.path()));
            results.push(("postgresql", run(driver.as_ref(), ops)));
        }
        Err(e) => eprintln!("PostgreSQL skipped: {e}"),
    }
    let base = results[0].1;
    println!(
        "{:<11} {:>18} {:>18} {:>18} {:>18}",
        "driver", "keyval set/s", "keyval get/s", "archive append/s", "archive query/s"
    );
    for (name, r) in &results {
        let cells: Vec<String> = r
            .iter()
            .zip(base.iter())
            .map(|(v, b)| format!("{v:>9.0} ({:>4.2}x)", v / b))
            .collect();
        println!(
            "{name:<11} {:>18} {:>18} {:>18} {:>18}",
            cells[0], cells[1], cells[2], cells[3]
        );
    }
    println!("({ops} operations each; ratios to internal)");
}
