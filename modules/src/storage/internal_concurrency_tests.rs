//! The `internal` driver under concurrent use (per-file locks) and its
//! sync modes.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::{ArchiveQuery, StorageDriver};
use xmpp_core::value::Value;

use super::*;

/// Bound on an event that should happen at once; only a hang reaches it.
const EVENTUALLY: Duration = Duration::from_secs(60);
/// How long a blocked writer gets to show it is not blocked.
const GRACE: Duration = Duration::from_millis(200);

fn message(n: usize) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("id", format!("m{n}"))
        .child(Element::new("body", NS_CLIENT).text(format!("hello {n}")))
}

fn driver(sync: SyncMode) -> (tempfile::TempDir, Arc<InternalDriver>) {
    let tmp = tempfile::tempdir().unwrap();
    let d = InternalDriver::new(tmp.path().join("data")).with_sync(sync);
    (tmp, Arc::new(d))
}

/// Runs `f` on a thread; the receiver gets `()` once it has returned.
fn spawn(f: impl FnOnce() + Send + 'static) -> (std::thread::JoinHandle<()>, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    (t, rx)
}

#[test]
fn a_held_users_file_holds_up_only_its_own_writers() {
    let (_tmp, d) = driver(SyncMode::Never);
    let alice_file = d.data_path().join("h/private/alice.dat");
    let held = d.inner().locks.write(&alice_file);

    let (bob_t, bob_done) = {
        let d = d.clone();
        spawn(move || {
            let map = d.open_map("h", "private").unwrap();
            map.set(Some("bob"), "k", Some(Value::Integer(2))).unwrap();
        })
    };
    let (alice_t, alice_done) = {
        let d = d.clone();
        spawn(move || {
            let map = d.open_map("h", "private").unwrap();
            map.set(Some("alice"), "k", Some(Value::Integer(1)))
                .unwrap();
        })
    };
    bob_done
        .recv_timeout(EVENTUALLY)
        .expect("bob's write does not wait for alice's file");
    assert!(
        alice_done.recv_timeout(GRACE).is_err(),
        "alice's writer waits while her file is held"
    );
    assert!(!alice_file.exists());
    drop(held);
    alice_done
        .recv_timeout(EVENTUALLY)
        .expect("alice's write goes on once her file is free");
    alice_t.join().unwrap();
    bob_t.join().unwrap();

    let map = d.open_map("h", "private").unwrap();
    assert_eq!(
        map.get(Some("alice"), "k").unwrap(),
        Some(Value::Integer(1))
    );
    assert_eq!(map.get(Some("bob"), "k").unwrap(), Some(Value::Integer(2)));
    assert_eq!(d.inner().locks.in_use(), 0);
}

#[test]
fn a_held_archive_holds_up_its_appends_and_queries_only() {
    let (_tmp, d) = driver(SyncMode::Never);
    let alice_list = d.data_path().join("h/archive/alice.list");
    let held = d.inner().locks.write(&alice_list);

    let (bob_t, bob_done) = {
        let d = d.clone();
        spawn(move || {
            let ar = d.open_archive("h", "archive").unwrap();
            ar.append(Some("bob"), &message(1), 1.0, "").unwrap();
            assert_eq!(
                ar.find(Some("bob"), &ArchiveQuery::default())
                    .unwrap()
                    .len(),
                1
            );
            // Another store of alice's is another file.
            let kv = d.open_keyval("h", "roster").unwrap();
            kv.set(Some("alice"), Some(Value::str("x"))).unwrap();
        })
    };
    let (alice_t, alice_done) = {
        let d = d.clone();
        spawn(move || {
            let ar = d.open_archive("h", "archive").unwrap();
            ar.append(Some("alice"), &message(2), 1.0, "").unwrap();
        })
    };
    let (query_t, query_done) = {
        let d = d.clone();
        spawn(move || {
            let ar = d.open_archive("h", "archive").unwrap();
            // Queued behind the append or not, it sees whole items only.
            let n = ar
                .find(Some("alice"), &ArchiveQuery::default())
                .unwrap()
                .len();
            assert!(n <= 1);
        })
    };
    bob_done
        .recv_timeout(EVENTUALLY)
        .expect("bob's archive and alice's roster do not wait for alice's archive");
    assert!(alice_done.recv_timeout(GRACE).is_err());
    assert!(
        query_done.try_recv().is_err(),
        "a query of a held archive waits"
    );
    assert!(!alice_list.exists());
    drop(held);
    alice_done.recv_timeout(EVENTUALLY).unwrap();
    query_done.recv_timeout(EVENTUALLY).unwrap();
    for t in [alice_t, bob_t, query_t] {
        t.join().unwrap();
    }
    let ar = d.open_archive("h", "archive").unwrap();
    assert_eq!(
        ar.find(Some("alice"), &ArchiveQuery::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn many_users_writing_at_once_all_land() {
    let (_tmp, d) = driver(SyncMode::Never);
    let threads: Vec<_> = (0..8)
        .map(|u| {
            let d = d.clone();
            std::thread::spawn(move || {
                let user = format!("user{u}");
                let ar = d.open_archive("h", "archive").unwrap();
                let map = d.open_map("h", "private").unwrap();
                for n in 0..30 {
                    ar.append(Some(&user), &message(n), n as f64, "").unwrap();
                    map.set(
                        Some(&user),
                        &format!("k{n}"),
                        Some(Value::Integer(n as i64)),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ar = d.open_archive("h", "archive").unwrap();
    let kv = d.open_keyval("h", "private").unwrap();
    for u in 0..8 {
        let user = format!("user{u}");
        assert_eq!(
            ar.find(Some(&user), &ArchiveQuery::default())
                .unwrap()
                .len(),
            30
        );
        let t = kv.get(Some(&user)).unwrap().unwrap();
        assert_eq!(t.as_table().unwrap().map.len(), 30, "{user}");
    }
    assert_eq!(d.inner().locks.in_use(), 0);
}

#[test]
fn queries_during_appends_never_see_a_torn_item() {
    let (_tmp, d) = driver(SyncMode::Never);
    // Items large enough that one append is more than one page of writes.
    let big = Element::new("message", NS_CLIENT)
        .child(Element::new("body", NS_CLIENT).text("x".repeat(20_000)));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let d = d.clone();
            let big = big.clone();
            std::thread::spawn(move || {
                let ar = d.open_archive("h", "archive").unwrap();
                for n in 0..40 {
                    ar.append(Some("u"), &big, n as f64, "").unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let d = d.clone();
        std::thread::spawn(move || {
            let ar = d.open_archive("h", "archive").unwrap();
            let mut last = 0;
            while last < 80 {
                let n = match ar.find(Some("u"), &ArchiveQuery::default()) {
                    Ok(items) => items.len(),
                    Err(e) => panic!("a query saw a torn archive: {e}"),
                };
                assert!(n >= last, "items went from {last} to {n}");
                last = n;
            }
        })
    };
    for t in writers {
        t.join().unwrap();
    }
    reader.join().unwrap();
}

#[test]
fn batched_sync_leaves_writes_pending_until_flushed() {
    let (_tmp, d) = driver(SyncMode::Batched(Duration::from_secs(3600)));
    let kv = d.open_keyval("h", "accounts").unwrap();
    kv.set(Some("u"), Some(Value::str("a"))).unwrap();
    let ar = d.open_archive("h", "archive").unwrap();
    ar.append(Some("u"), &message(1), 1.0, "").unwrap();
    // Written (readable at once) but not yet synced: the hour has not passed.
    assert_eq!(kv.get(Some("u")).unwrap(), Some(Value::str("a")));
    assert_eq!(d.inner().dir.pending_syncs(), 2);
    d.flush();
    assert_eq!(d.inner().dir.pending_syncs(), 0);
}

#[test]
fn batched_sync_runs_in_the_background() {
    let (_tmp, d) = driver(SyncMode::Batched(Duration::from_millis(10)));
    let kv = d.open_keyval("h", "accounts").unwrap();
    for n in 0..5 {
        kv.set(Some(&format!("u{n}")), Some(Value::str("a")))
            .unwrap();
    }
    let give_up = std::time::Instant::now() + EVENTUALLY;
    while d.inner().dir.pending_syncs() > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the sync thread never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn always_and_never_keep_nothing_pending() {
    for mode in [SyncMode::Always, SyncMode::Never] {
        let (_tmp, d) = driver(mode);
        let kv = d.open_keyval("h", "accounts").unwrap();
        kv.set(Some("u"), Some(Value::str("a"))).unwrap();
        assert!(kv.create(Some("v"), Value::str("b")).unwrap());
        let ar = d.open_archive("h", "archive").unwrap();
        ar.append(Some("u"), &message(1), 1.0, "").unwrap();
        ar.append(Some("u"), &message(2), 2.0, "").unwrap();
        assert_eq!(d.inner().dir.pending_syncs(), 0, "{mode:?}");
        assert_eq!(
            ar.find(Some("u"), &ArchiveQuery::default()).unwrap().len(),
            2
        );
    }
}

#[test]
fn sync_mode_from_the_configuration() {
    let mode = |opts: &[(&str, Value)]| {
        let mut cfg = xmpp_core::ServerConfig::default();
        for (k, v) in opts {
            cfg.global.set(*k, v.clone());
        }
        SyncMode::from_config(&cfg)
    };
    let second = Duration::from_secs(1);
    assert_eq!(mode(&[]), SyncMode::Batched(second));
    assert_eq!(
        mode(&[("internal_storage_sync", Value::str("always"))]),
        SyncMode::Always
    );
    assert_eq!(
        mode(&[("internal_storage_sync", Value::str("never"))]),
        SyncMode::Never
    );
    assert_eq!(
        mode(&[
            ("internal_storage_sync", Value::str("batched")),
            ("internal_storage_sync_interval", Value::Number(0.25)),
        ]),
        SyncMode::Batched(Duration::from_millis(250))
    );
    // Nonsense falls back to the default.
    assert_eq!(
        mode(&[("internal_storage_sync", Value::str("sometimes"))]),
        SyncMode::Batched(second)
    );
    assert_eq!(
        mode(&[("internal_storage_sync_interval", Value::Integer(-1))]),
        SyncMode::Batched(second)
    );
}
