//! Prosody's `.dat` and `.list` data files (`lua_compat::datfile`), read
//! as lilt reads a data directory, and written back.

use lua_compat::datfile::{Limits, parse_dat, parse_list, serialize};

pub fn run(data: &[u8]) {
    let limits = Limits {
        max_file_size: 1 << 20,
    };
    if let Ok(Some(value)) = parse_dat(data, "fuzz.dat", &limits) {
        let _ = serialize(&value);
    }
    if let Ok(items) = parse_list(data, "fuzz.list", &limits) {
        for item in items {
            let _ = serialize(&item);
        }
    }
}
