//! Prosody's `.dat` and `.list` data files (`lua_compat::datfile`), read
//! as lilt reads a data directory, and written back.
//!
//! A file exactly as `util.serialization` writes it is read by the literal
//! parser alone (no Lua); whenever an input is such a file, it is also
//! evaluated by Lua (`parse_*_evaluated`) and the two readings must agree:
//! a differential check of that shortcut.

use lua_compat::datfile::{
    Limits, dat_bytes, list_bytes, parse_dat, parse_dat_evaluated, parse_list,
    parse_list_evaluated, serialize,
};

pub fn run(data: &[u8]) {
    let limits = Limits {
        max_file_size: 1 << 20,
    };
    if let Ok(Some(value)) = parse_dat(data, "fuzz.dat", &limits) {
        let _ = serialize(&value);
        if dat_bytes(&value, "fuzz.dat").is_ok_and(|bytes| bytes == data) {
            match parse_dat_evaluated(data, "fuzz.dat", &limits) {
                Ok(Some(evaluated)) => assert!(
                    evaluated == value,
                    "Lua reads {evaluated:?}, the literal parser {value:?}"
                ),
                other => panic!("Lua reads {other:?}, the literal parser {value:?}"),
            }
        }
    }
    if let Ok(items) = parse_list(data, "fuzz.list", &limits) {
        for item in &items {
            let _ = serialize(item);
        }
        if list_bytes(&items, "fuzz.list").is_ok_and(|bytes| bytes == data) {
            match parse_list_evaluated(data, "fuzz.list", &limits) {
                Ok(evaluated) => assert!(
                    evaluated == items,
                    "Lua reads {evaluated:?}, the literal parser {items:?}"
                ),
                Err(e) => panic!("Lua fails ({e}), the literal parser reads {items:?}"),
            }
        }
    }
}
