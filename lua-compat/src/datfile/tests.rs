use super::*;

fn limits() -> Limits {
    Limits::default()
}

const ACCOUNT: &str = "return {\n\t[\"stored_key\"] = \"8f5317a1a288eda73d2374c7858ea36f9ff077b7\";\n\t[\"iteration_count\"] = 10000;\n\t[\"server_key\"] = \"32dda920e15ae6e7b215e22389fa9b0381759c27\";\n\t[\"salt\"] = \"68e4748b-1050-4a12-bd7c-e871f5152777\";\n};\n";

#[test]
fn reparsing_gives_the_same_bytes() {
    let v = parse_dat(ACCOUNT.as_bytes(), "alice.dat", &limits())
        .unwrap()
        .unwrap();
    assert_eq!(dat_bytes(&v, "alice.dat").unwrap(), ACCOUNT.as_bytes());
}

#[test]
fn other_lua_syntax_is_read_in_canonical_order() {
    let src = b"local t = { b = 1, a = 'x' .. 'y' } t[false] = { 1, 2 } return t";
    let v = parse_dat(src, "t.dat", &limits()).unwrap().unwrap();
    assert_eq!(
        String::from_utf8(dat_bytes(&v, "t.dat").unwrap()).unwrap(),
        "return {\n\t[false] = {\n\t\t1;\n\t\t2;\n\t};\n\t[\"a\"] = \"xy\";\n\t[\"b\"] = 1;\n};\n"
    );
}

#[test]
fn sandbox_has_no_globals() {
    for src in [
        "return os.exit(1)",
        "return io.open('/etc/passwd')",
        "return require('os')",
        "return _G",
        "return print",
    ] {
        match parse_dat(src.as_bytes(), "evil.dat", &limits()) {
            Err(DatError::Lua { path, .. }) => assert_eq!(path, "evil.dat"),
            Ok(None) => {} // `return _G` is nil in an empty environment
            other => panic!("{src}: {other:?}"),
        }
    }
}

#[test]
fn functions_are_not_data() {
    let err = parse_dat(b"return { f = function() end }", "f.dat", &limits()).unwrap_err();
    assert!(matches!(err, DatError::NotData { .. }), "{err}");
    assert!(err.to_string().contains("value[f]"), "{err}");
}

#[test]
fn endless_loops_are_stopped() {
    let err = parse_dat(b"while true do end", "loop.dat", &limits()).unwrap_err();
    assert!(matches!(err, DatError::Lua { .. }), "{err}");
}

#[test]
fn memory_bombs_are_stopped() {
    let err = parse_dat(
        b"local s = 'x' for i = 1, 40 do s = s .. s end return s",
        "bomb.dat",
        &limits(),
    )
    .unwrap_err();
    assert!(matches!(err, DatError::Lua { .. }), "{err}");
}

#[test]
fn shared_and_cyclic_tables_are_refused() {
    let err = parse_dat(b"local t = {} t.self = t return t", "cycle.dat", &limits()).unwrap_err();
    assert!(matches!(err, DatError::NotData { .. }), "{err}");
    let mut src = String::from("local a = {}");
    for i in 0..40 {
        src.push_str(&format!(" a = {{ a, a }} -- {i}\n"));
    }
    src.push_str(" return a");
    let err = parse_dat(src.as_bytes(), "dag.dat", &limits()).unwrap_err();
    assert!(matches!(err, DatError::NotData { .. }), "{err}");
}

#[test]
fn a_bare_table_without_return_is_refused_as_prosody_does() {
    assert!(parse_dat(b"{ a = 1 }", "bare.dat", &limits()).is_err());
    assert_eq!(parse_dat(b"a = 1", "assign.dat", &limits()).unwrap(), None);
}

#[test]
fn bytecode_is_refused() {
    let err = parse_dat(b"\x1bLua\x54\x00", "bin.dat", &limits()).unwrap_err();
    assert!(matches!(err, DatError::Lua { .. }), "{err}");
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    for cut in [1, 10, ACCOUNT.len() / 2, ACCOUNT.len() - 4] {
        let err = parse_dat(
            &ACCOUNT.as_bytes()[..cut],
            "/data/x/accounts/a.dat",
            &limits(),
        )
        .expect_err(&format!("cut at {cut}"));
        assert_eq!(err.path(), "/data/x/accounts/a.dat");
    }
}

#[test]
fn size_cap() {
    let err = parse_dat(ACCOUNT.as_bytes(), "big.dat", &Limits { max_file_size: 10 }).unwrap_err();
    assert!(
        matches!(err, DatError::TooLarge { size, max: 10, .. } if size == ACCOUNT.len() as u64)
    );
}

#[test]
fn list_files_round_trip() {
    let src = "item({\n\t{\n\t\t\"Salut\";\n\t\t[\"name\"] = \"body\";\n\t\t[\"attr\"] = {};\n\t};\n\t[\"when\"] = 1795241227;\n\t[\"with\"] = \"bob@example.com\";\n\t[\"key\"] = \"_RYFT_7pfYXndWWT1PFRfaVl\";\n\t[\"name\"] = \"message\";\n\t[\"attr\"] = {\n\t\t[\"id\"] = \"m2\";\n\t\t[\"stamp\"] = \"2026-11-21T06:07:07Z\";\n\t};\n});\nitem({\n\t[\"name\"] = \"message\";\n\t[\"attr\"] = {};\n});\n";
    let items = parse_list(src.as_bytes(), "a.list", &limits()).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(list_bytes(&items, "a.list").unwrap(), src.as_bytes());
    let item = archive::item_from_dat(&items[0], 1).unwrap();
    assert_eq!(
        item.stanza
            .get_child_text("body", xmpp_core::stanza::NS_CLIENT)
            .as_deref(),
        Some("Salut")
    );
}

#[test]
fn a_list_with_a_half_written_item_is_an_error() {
    let src = b"item({\n\t[\"name\"] = \"message\";\n\t[\"attr\"] = {};\n});\nitem({\n\t[\"name\"] = \"mes";
    let err = parse_list(src, "cut.list", &limits()).unwrap_err();
    assert_eq!(err.path(), "cut.list");
}

#[test]
fn values_convert_both_ways() {
    let v = parse_dat(ACCOUNT.as_bytes(), "alice.dat", &limits())
        .unwrap()
        .unwrap();
    let value = v.to_value().unwrap();
    assert_eq!(
        value.get("iteration_count"),
        Some(&xmpp_core::Value::Integer(10000))
    );
    let back = DatValue::from_value(&value, Some(&v));
    assert_eq!(dat_bytes(&back, "alice.dat").unwrap(), ACCOUNT.as_bytes());
}

#[test]
fn missing_files_are_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        read_dat_file(&dir.path().join("nope.dat"), &limits()).unwrap(),
        None
    );
    assert_eq!(
        read_list_file(&dir.path().join("nope.list"), &limits()).unwrap(),
        None
    );
}

#[test]
fn table_editing_keeps_order() {
    let mut t = DatTable::new();
    t.insert_str("b", DatValue::Integer(1));
    t.insert_str("a", DatValue::Integer(2));
    t.insert_str("c", DatValue::Integer(3));
    t.remove(&DatKey::str("a"));
    t.insert_str("b", DatValue::Integer(4));
    let keys: Vec<_> = t.iter().map(|(k, _)| k.to_display_string()).collect();
    assert_eq!(keys, ["b", "c"]);
    assert_eq!(t.get_str("c"), Some(&DatValue::Integer(3)));
}

#[test]
fn large_tables_are_indexed_and_keep_order() {
    let mut t = DatTable::new();
    for i in (0..50).rev() {
        t.insert_str(&format!("k{i}"), DatValue::Integer(i));
    }
    t.push(DatValue::str("first"));
    t.remove(&DatKey::str("k30"));
    t.insert_str("k10", DatValue::Integer(-10));
    assert_eq!(t.len(), 50);
    assert_eq!(t.get_str("k10"), Some(&DatValue::Integer(-10)));
    assert_eq!(t.get_str("k30"), None);
    assert_eq!(t.get(&DatKey::Integer(1)), Some(&DatValue::str("first")));
    let keys: Vec<_> = t
        .iter()
        .map(|(k, _)| k.to_display_string())
        .take(3)
        .collect();
    assert_eq!(keys, ["k49", "k48", "k47"]);
    t.sort_canonical();
    let keys: Vec<_> = t
        .iter()
        .map(|(k, _)| k.to_display_string())
        .take(3)
        .collect();
    assert_eq!(keys, ["1", "k0", "k1"]);
    assert_eq!(t.get_str("k49"), Some(&DatValue::Integer(49)));
}

/// Files as `util.serialization` writes them, with every kind of value and
/// key it writes: read without Lua, they must read as Lua reads them.
const CANONICAL: &[&str] = &[
    ACCOUNT,
    "return {\n\t\"a\";\n\t\"b\";\n\t[4] = true;\n\t[\"x\"] = {\n\t\t[false] = -12;\n\t\t[1.5] = 0.100000000000000006;\n\t};\n\t[\"s\"] = \"\\000\\255\\\"\\\\\\n\";\n\t[\"inf\"] = (1/0);\n\t[\"minf\"] = (-1/0);\n\t[\"big\"] = 9223372036854775807;\n\t[\"neg\"] = -9.22337203685477581e+18;\n\t[\"e\"] = 1.00000000000000005e+300;\n};\n",
    "return \"just a string\";\n",
    "return {};\n",
    "return 1.5;\n",
];

#[test]
fn canonical_files_read_without_lua_as_lua_reads_them() {
    for src in CANONICAL {
        let fast = parse_dat(src.as_bytes(), "c.dat", &limits()).unwrap();
        let evaluated = parse_dat_evaluated(src.as_bytes(), "c.dat", &limits()).unwrap();
        assert_eq!(fast, evaluated, "{src}");
        let written = dat_bytes(fast.as_ref().unwrap(), "c.dat").unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), *src, "not canonical");
        let body = &src["return ".len()..src.len() - ";\n".len()];
        let list = format!("item({body});\nitem({body});\n");
        let fast = parse_list(list.as_bytes(), "c.list", &limits()).unwrap();
        let evaluated = parse_list_evaluated(list.as_bytes(), "c.list", &limits()).unwrap();
        assert_eq!(fast, evaluated, "{list}");
    }
}

#[test]
fn almost_canonical_files_are_still_evaluated() {
    // Each differs from what the serialiser writes, so Lua decides.
    for (src, expected) in [
        // A key written twice: Lua keeps the last one.
        ("return {\n\t[\"a\"] = 1;\n\t[\"a\"] = 2;\n};\n", Some(2)),
        // A positional item after an explicit [1].
        ("return {\n\t[1] = 1;\n\t2;\n};\n", None),
    ] {
        let v = parse_dat(src.as_bytes(), "d.dat", &limits())
            .unwrap()
            .unwrap();
        assert_eq!(
            v,
            parse_dat_evaluated(src.as_bytes(), "d.dat", &limits())
                .unwrap()
                .unwrap()
        );
        if let Some(a) = expected {
            assert_eq!(
                v.as_table().unwrap().get_str("a"),
                Some(&DatValue::Integer(a))
            );
        }
    }
}

#[test]
fn the_reused_lua_state_carries_nothing_from_one_file_to_the_next() {
    // A file that runs out of memory, then one that runs out of
    // instructions, then one that writes to its environment: the files
    // read after each are read as by a fresh state.
    let bomb = b"local s = 'x' for i = 1, 40 do s = s .. s end return s";
    assert!(parse_dat(bomb, "bomb.dat", &limits()).is_err());
    assert!(parse_dat(b"while true do end", "loop.dat", &limits()).is_err());
    assert_eq!(
        parse_dat(b"x = 1 return nil", "set.dat", &limits()).unwrap(),
        None
    );
    assert_eq!(parse_dat(b"return x", "get.dat", &limits()).unwrap(), None);
    let v = parse_dat(b"local t = {a = 1} return t", "after.dat", &limits())
        .unwrap()
        .unwrap();
    assert_eq!(
        v.as_table().unwrap().get_str("a"),
        Some(&DatValue::Integer(1))
    );
}
