use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::{ArchiveQuery, StorageDriver, StorageError};
use xmpp_core::value::{Table, Value};

use super::*;

fn account() -> Value {
    let mut t = Table::new();
    t.insert("salt", Value::str("68e4748b-1050-4a12-bd7c-e871f5152777"));
    t.insert("iteration_count", Value::Integer(10000));
    t.insert(
        "stored_key",
        Value::str("8f5317a1a288eda73d2374c7858ea36f9ff077b7"),
    );
    Value::Table(t)
}

fn message(n: usize) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("to", "bob@example.com")
        .attr("id", format!("m{n}"))
        .child(Element::new("body", NS_CLIENT).text(format!("hello {n} ✓")))
}

fn keyval_round_trip(d: &dyn StorageDriver) {
    let kv = d.open_keyval("example.com", "accounts").unwrap();
    assert_eq!(kv.get(Some("alice")).unwrap(), None);
    kv.set(Some("alice"), Some(account())).unwrap();
    kv.set(Some("bob"), Some(account())).unwrap();
    kv.set(None, Some(Value::str("host-wide"))).unwrap();
    assert_eq!(kv.get(Some("alice")).unwrap(), Some(account()));
    assert_eq!(kv.get(None).unwrap(), Some(Value::str("host-wide")));
    assert_eq!(kv.users().unwrap(), ["alice", "bob"]);
    kv.set(Some("alice"), None).unwrap();
    assert_eq!(kv.get(Some("alice")).unwrap(), None);
    assert_eq!(kv.users().unwrap(), ["bob"]);
    // Stores and hosts are separate.
    assert_eq!(
        d.open_keyval("example.com", "roster")
            .unwrap()
            .get(Some("bob"))
            .unwrap(),
        None
    );
    assert_eq!(
        d.open_keyval("other.example", "accounts")
            .unwrap()
            .get(Some("bob"))
            .unwrap(),
        None
    );
}

fn map_round_trip(d: &dyn StorageDriver) {
    let map = d.open_map("example.com", "private").unwrap();
    assert_eq!(map.get(Some("alice"), "a:b").unwrap(), None);
    map.set(Some("alice"), "a:b", Some(Value::Integer(1)))
        .unwrap();
    map.set(Some("alice"), "c:d", Some(Value::str("x")))
        .unwrap();
    assert_eq!(
        map.get(Some("alice"), "a:b").unwrap(),
        Some(Value::Integer(1))
    );
    map.set(Some("alice"), "a:b", None).unwrap();
    assert_eq!(map.get(Some("alice"), "a:b").unwrap(), None);
    assert_eq!(
        map.get(Some("alice"), "c:d").unwrap(),
        Some(Value::str("x"))
    );
    // The map is the keyval table of the same store, as Prosody's shim.
    let kv = d.open_keyval("example.com", "private").unwrap();
    assert_eq!(
        kv.get(Some("alice"))
            .unwrap()
            .and_then(|v| v.get("c:d").cloned()),
        Some(Value::str("x"))
    );
}

fn archive_round_trip(d: &dyn StorageDriver) {
    let ar = d.open_archive("example.com", "offline").unwrap();
    assert!(
        ar.find(Some("bob"), &ArchiveQuery::default())
            .unwrap()
            .is_empty()
    );
    let keys: Vec<String> = (0..5)
        .map(|n| {
            ar.append(
                Some("bob"),
                &message(n),
                1000.0 + n as f64,
                if n % 2 == 0 { "a@x" } else { "b@x" },
            )
            .unwrap()
        })
        .collect();
    assert!(keys.iter().all(|k| k.len() == 24), "{keys:?}");
    let all = ar.find(Some("bob"), &ArchiveQuery::default()).unwrap();
    assert_eq!(all.iter().map(|i| i.key.clone()).collect::<Vec<_>>(), keys);
    assert_eq!(all[3].stanza, message(3));
    assert_eq!((all[3].when, all[3].with.as_str()), (1003.0, "b@x"));
    let q = ArchiveQuery {
        with: Some("a@x".into()),
        reverse: true,
        limit: Some(2),
        ..Default::default()
    };
    let found = ar.find(Some("bob"), &q).unwrap();
    assert_eq!(
        found.iter().map(|i| i.stanza.clone()).collect::<Vec<_>>(),
        [message(4), message(2)]
    );
    let q = ArchiveQuery {
        after: Some("nope".into()),
        ..Default::default()
    };
    assert!(
        ar.find(Some("bob"), &q)
            .is_err_and(|e| is_item_not_found(&e))
    );
    let q = ArchiveQuery {
        end: Some(1001.0),
        ..Default::default()
    };
    assert_eq!(ar.delete(Some("bob"), &q).unwrap(), 2);
    assert_eq!(
        ar.find(Some("bob"), &ArchiveQuery::default())
            .unwrap()
            .len(),
        3
    );
    assert_eq!(ar.delete(Some("bob"), &ArchiveQuery::default()).unwrap(), 3);
    assert!(
        ar.find(Some("bob"), &ArchiveQuery::default())
            .unwrap()
            .is_empty()
    );
}

fn purge(d: &dyn StorageDriver) {
    d.open_keyval("example.com", "roster")
        .unwrap()
        .set(Some("carol"), Some(account()))
        .unwrap();
    d.open_archive("example.com", "archive")
        .unwrap()
        .append(Some("carol"), &message(1), 1.0, "x@y")
        .unwrap();
    d.open_keyval("example.com", "roster")
        .unwrap()
        .set(Some("dave"), Some(account()))
        .unwrap();
    d.purge_user("example.com", "carol").unwrap();
    assert_eq!(
        d.open_keyval("example.com", "roster")
            .unwrap()
            .get(Some("carol"))
            .unwrap(),
        None
    );
    assert!(
        d.open_archive("example.com", "archive")
            .unwrap()
            .find(Some("carol"), &Default::default())
            .unwrap()
            .is_empty()
    );
    assert!(
        d.open_keyval("example.com", "roster")
            .unwrap()
            .get(Some("dave"))
            .unwrap()
            .is_some()
    );
}

fn all_kinds(d: &dyn StorageDriver) {
    keyval_round_trip(d);
    map_round_trip(d);
    archive_round_trip(d);
    purge(d);
}

#[test]
fn internal_driver_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    all_kinds(&InternalDriver::new(dir.path().join("data")));
}

#[test]
fn memory_driver_round_trips() {
    all_kinds(&MemoryDriver::new());
}

#[test]
fn memory_drivers_do_not_share() {
    let (a, b) = (MemoryDriver::new(), MemoryDriver::new());
    a.open_keyval("h", "s")
        .unwrap()
        .set(Some("u"), Some(Value::Integer(1)))
        .unwrap();
    assert_eq!(
        b.open_keyval("h", "s").unwrap().get(Some("u")).unwrap(),
        None
    );
}

#[test]
fn none_driver_stores_nothing() {
    let d = NoneDriver;
    let kv = d.open_keyval("h", "accounts").unwrap();
    assert!(matches!(
        kv.set(Some("u"), Some(account())),
        Err(StorageError::Unavailable { .. })
    ));
    assert_eq!(kv.get(Some("u")).unwrap(), Some(Value::Table(Table::new())));
    assert!(kv.users().unwrap().is_empty());
    let map = d.open_map("h", "private").unwrap();
    assert!(map.set(Some("u"), "k", Some(Value::Integer(1))).is_err());
    assert_eq!(map.get(Some("u"), "k").unwrap(), None);
    let ar = d.open_archive("h", "offline").unwrap();
    assert!(ar.append(Some("u"), &message(1), 1.0, "").is_err());
    assert!(
        ar.find(Some("u"), &ArchiveQuery::default())
            .unwrap()
            .is_empty()
    );
    assert_eq!(ar.delete(Some("u"), &ArchiveQuery::default()).unwrap(), 0);
    d.purge_user("h", "u").unwrap();
}

#[test]
fn registration_on_a_server() {
    let server = xmpp_core::Server::for_tests();
    let dir = tempfile::tempdir().unwrap();
    register_builtin_drivers(&server, dir.path().to_path_buf());
    for name in ["internal", "memory", "none"] {
        assert_eq!(
            server
                .storage
                .get(name)
                .map(|d| d.name().to_string())
                .as_deref(),
            Some(name)
        );
    }
    let host = server.host("localhost").unwrap();
    host.open_keyval("accounts")
        .unwrap()
        .set(Some("u"), Some(account()))
        .unwrap();
    assert!(dir.path().join("localhost/accounts/u.dat").is_file());
}

// -- internal: the files themselves --------------------------------------------------

fn internal() -> (tempfile::TempDir, InternalDriver) {
    let dir = tempfile::tempdir().unwrap();
    let d = InternalDriver::new(dir.path().join("data"));
    (dir, d)
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_where_and_as_prosody_has_them() {
    let (_tmp, d) = internal();
    let root = d.data_path().to_path_buf();
    d.open_keyval("example.com", "accounts")
        .unwrap()
        .set(Some("e.ve"), Some(account()))
        .unwrap();
    d.open_keyval("example.com", "pep_urn:xmpp:vcard4")
        .unwrap()
        .set(None, Some(Value::Integer(1)))
        .unwrap();
    d.open_archive("example.com", "offline")
        .unwrap()
        .append(Some("bob"), &message(1), 1795241225.0, "")
        .unwrap();
    let account_file = root.join("example%2ecom/accounts/e%2eve.dat");
    assert!(account_file.is_file());
    assert!(
        root.join("example%2ecom/pep_urn%3axmpp%3avcard4.dat")
            .is_file()
    );
    let list = root.join("example%2ecom/offline/bob.list");
    assert!(list.is_file());
    // Prosody's umask 027.
    assert_eq!(mode(&root.join("example%2ecom")), 0o750);
    assert_eq!(mode(&root.join("example%2ecom/accounts")), 0o750);
    assert_eq!(mode(&account_file), 0o640);
    assert_eq!(mode(&list), 0o640);
    // No scratch file is left behind.
    assert!(!root.join("example%2ecom/accounts/e%2eve.dat~").exists());
    let text = std::fs::read_to_string(&account_file).unwrap();
    assert_eq!(
        text,
        "return {\n\t[\"iteration_count\"] = 10000;\n\t[\"salt\"] = \"68e4748b-1050-4a12-bd7c-e871f5152777\";\n\t[\"stored_key\"] = \"8f5317a1a288eda73d2374c7858ea36f9ff077b7\";\n};\n"
    );
    let list_text = std::fs::read_to_string(&list).unwrap();
    assert!(list_text.starts_with("item({\n\t{\n\t\t\"hello 1 \\226\\156\\147\";\n\t\t[\"name\"] = \"body\";\n\t\t[\"attr\"] = {};\n\t};\n\t[\"name\"] = \"message\";\n\t[\"attr\"] = {\n\t\t[\"to\"] = \"bob@example.com\";\n\t\t[\"id\"] = \"m1\";\n\t\t[\"stamp\"] = \"2026-11-21T06:07:05Z\";\n\t};\n\t[\"key\"] = \""), "{list_text}");
    assert!(
        list_text.ends_with("\";\n\t[\"when\"] = 1795241225;\n\t[\"with\"] = \"\";\n});\n"),
        "{list_text}"
    );
}

#[test]
fn empty_tables_delete_the_file() {
    let (_tmp, d) = internal();
    let kv = d.open_keyval("h", "roster").unwrap();
    kv.set(Some("u"), Some(account())).unwrap();
    kv.set(Some("u"), Some(Value::Table(Table::new()))).unwrap();
    assert!(!d.data_path().join("h/roster/u.dat").exists());
    let map = d.open_map("h", "private").unwrap();
    map.set(Some("u"), "k", Some(Value::Integer(1))).unwrap();
    map.set(Some("u"), "k", None).unwrap();
    assert!(!d.data_path().join("h/private/u.dat").exists());
}

#[test]
fn rewriting_keeps_prosodys_key_order_and_types() {
    let (_tmp, d) = internal();
    let path = d.data_path().join("h/roster/u.dat");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let prosody = "return {\n\t[false] = {\n\t\t[\"version\"] = 2;\n\t\t[\"pending\"] = {};\n\t};\n\t[\"bob@example.com\"] = {\n\t\t[\"ask\"] = \"subscribe\";\n\t\t[\"groups\"] = {\n\t\t\t[\"Friends\"] = true;\n\t\t\t[\"\\195\\156n\\195\\175code\"] = true;\n\t\t};\n\t\t[\"subscription\"] = \"none\";\n\t\t[\"name\"] = \"Bob & \\\"B\\\"\";\n\t};\n};\n";
    std::fs::write(&path, prosody).unwrap();
    let kv = d.open_keyval("h", "roster").unwrap();
    let roster = kv.get(Some("u")).unwrap().unwrap();
    assert_eq!(
        roster.get("false").and_then(|m| m.get("version")),
        Some(&Value::Integer(2))
    );
    kv.set(Some("u"), Some(roster.clone())).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), prosody);
    // A change touches only what changed.
    let mut changed = roster;
    if let Some(Value::Table(meta)) = changed.as_table_mut().and_then(|t| t.map.get_mut("false")) {
        meta.insert("version", Value::Integer(3));
    }
    kv.set(Some("u"), Some(changed)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        prosody.replace("= 2;", "= 3;")
    );
}

#[test]
fn corrupt_and_truncated_files_are_corrupt_errors_naming_the_path() {
    let (_tmp, d) = internal();
    let kv = d.open_keyval("h", "accounts").unwrap();
    kv.set(Some("u"), Some(account())).unwrap();
    let ar = d.open_archive("h", "offline").unwrap();
    ar.append(Some("u"), &message(1), 1.0, "").unwrap();
    ar.append(Some("u"), &message(2), 2.0, "").unwrap();
    let dat = d.data_path().join("h/accounts/u.dat");
    let list = d.data_path().join("h/offline/u.list");
    let dat_bytes = std::fs::read(&dat).unwrap();
    let list_bytes = std::fs::read(&list).unwrap();
    let cases: Vec<(&std::path::Path, Vec<u8>)> = vec![
        (&dat, dat_bytes[..dat_bytes.len() / 2].to_vec()),
        (&dat, b"return { os.exit() }".to_vec()),
        (&dat, b"return { [\"x\"] = \"\\255\" }".to_vec()),
        (&dat, vec![0xff, 0xfe, 0, 1]),
        (&list, list_bytes[..list_bytes.len() - 10].to_vec()),
        (&list, b"item(function() end);".to_vec()),
        (&list, b"item(\"just a string\");".to_vec()),
    ];
    for (path, bytes) in cases {
        std::fs::write(path, &bytes).unwrap();
        let err = if path == dat {
            kv.get(Some("u")).unwrap_err()
        } else {
            ar.find(Some("u"), &ArchiveQuery::default()).unwrap_err()
        };
        match err {
            StorageError::Corrupt { path: p, .. } => assert_eq!(p, path.display().to_string()),
            other => panic!("{}: {other}", String::from_utf8_lossy(&bytes)),
        }
    }
}

#[test]
fn oversized_files_are_refused() {
    let (_tmp, d) = internal();
    let d = d.with_limits(lua_compat::datfile::Limits { max_file_size: 64 });
    let kv = d.open_keyval("h", "accounts").unwrap();
    kv.set(Some("u"), Some(account())).unwrap();
    assert!(matches!(
        kv.get(Some("u")),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn hostile_names_cannot_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let d = InternalDriver::new(root.clone());
    let hostile = [
        "../../escape",
        "/etc/passwd",
        "..",
        ".",
        "a\0b",
        "x/../../y",
    ];
    for name in hostile {
        d.open_keyval(name, name)
            .unwrap()
            .set(Some(name), Some(Value::Integer(1)))
            .unwrap();
        d.open_keyval("h", name)
            .unwrap()
            .set(None, Some(Value::Integer(1)))
            .unwrap();
        d.open_archive(name, name)
            .unwrap()
            .append(Some(name), &message(1), 1.0, "")
            .unwrap();
        assert_eq!(
            d.open_keyval(name, name).unwrap().get(Some(name)).unwrap(),
            Some(Value::Integer(1))
        );
        assert_eq!(d.open_keyval(name, name).unwrap().users().unwrap(), [name]);
    }
    // Nothing outside the data directory.
    let mut outside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outside.sort();
    assert_eq!(outside, ["data"]);
    // Every file is exactly three levels down (host/store/user) or two (host/store).
    fn walk(dir: &std::path::Path, depth: usize, out: &mut Vec<usize>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, depth + 1, out)
            } else {
                out.push(depth)
            }
        }
    }
    let mut depths = Vec::new();
    walk(&root, 0, &mut depths);
    assert!(depths.iter().all(|d| *d == 1 || *d == 2), "{depths:?}");
    assert!(d.open_keyval("", "accounts").is_err());
}

#[test]
fn archive_quota() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = xmpp_core::ServerConfig::default();
    cfg.global
        .set("storage_archive_item_limit", Value::Integer(3));
    let d = InternalDriver::with_config(tmp.path().to_path_buf(), &cfg);
    let ar = d.open_archive("h", "archive").unwrap();
    for n in 0..3 {
        ar.append(Some("u"), &message(n), 1.0, "").unwrap();
    }
    assert!(
        ar.append(Some("u"), &message(9), 1.0, "")
            .is_err_and(|e| is_quota_limit(&e))
    );
    // A fresh driver counts the file.
    let d2 = InternalDriver::with_config(tmp.path().to_path_buf(), &cfg);
    assert!(
        d2.open_archive("h", "archive")
            .unwrap()
            .append(Some("u"), &message(9), 1.0, "")
            .is_err()
    );
    let mem = MemoryDriver::with_item_limit(1);
    let ar = mem.open_archive("h", "archive").unwrap();
    ar.append(Some("u"), &message(1), 1.0, "").unwrap();
    assert!(
        ar.append(Some("u"), &message(2), 1.0, "")
            .is_err_and(|e| is_quota_limit(&e))
    );
}

#[test]
fn deleting_some_items_keeps_the_others_byte_for_byte() {
    let (_tmp, d) = internal();
    let ar = d.open_archive("h", "archive").unwrap();
    for n in 0..4 {
        ar.append(Some("u"), &message(n), 10.0 * n as f64, "x@y")
            .unwrap();
    }
    let path = d.data_path().join("h/archive/u.list");
    let before = std::fs::read_to_string(&path).unwrap();
    let items: Vec<&str> = before.split_inclusive("});\n").collect();
    assert_eq!(items.len(), 4);
    let q = ArchiveQuery {
        start: Some(10.0),
        end: Some(20.0),
        ..Default::default()
    };
    assert_eq!(ar.delete(Some("u"), &q).unwrap(), 2);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}{}", items[0], items[3])
    );
    assert_eq!(ar.delete(Some("u"), &q).unwrap(), 0);
}

#[test]
fn concurrent_writers_do_not_lose_items() {
    let (_tmp, d) = internal();
    let d = Arc::new(d);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                let ar = d.open_archive("h", "archive").unwrap();
                let map = d.open_map("h", "private").unwrap();
                for n in 0..25 {
                    ar.append(Some("u"), &message(n), 1.0, "").unwrap();
                    map.set(
                        Some("u"),
                        &format!("t{t}n{n}"),
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
    assert_eq!(
        d.open_archive("h", "archive")
            .unwrap()
            .find(Some("u"), &Default::default())
            .unwrap()
            .len(),
        100
    );
    let all = d
        .open_keyval("h", "private")
        .unwrap()
        .get(Some("u"))
        .unwrap()
        .unwrap();
    assert_eq!(all.as_table().unwrap().map.len(), 100);
}

#[test]
fn ids_look_like_prosodys() {
    let id = new_id();
    assert_eq!(id.len(), 24);
    assert!(
        id.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_ne!(new_id(), id);
}
