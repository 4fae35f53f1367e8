//! The Prosody config loader (`lua_compat::config::load_str`): config
//! text as an admin writes it, run as Prosody runs it.
//!
//! A config file is Lua and the admin's own program: `while true do end`
//! hangs Prosody as it hangs lilt, and `Include "/dev/zero"` reads forever.
//! So inputs that loop or reach the file system are skipped: what is under
//! test is that no config text makes the loader panic.

use std::path::Path;

/// Words that let a config loop, recurse for long, allocate without bound
/// or read files. Sorted (byte order), for a binary search: this check
/// runs on every identifier of every input.
const SKIPPED: &[&str] = &[
    "Credential",
    "FileContents",
    "FileLine",
    "FileLines",
    "Include",
    "RunScript",
    "collectgarbage",
    "coroutine",
    "debug",
    "dofile",
    "for",
    "function",
    "goto",
    "include",
    "io",
    "load",
    "loadfile",
    "os",
    "rep",
    "repeat",
    "require",
    "setmetatable",
    "while",
];

/// Is `word` one of [`SKIPPED`]?
fn skipped(word: &str) -> bool {
    // Every skipped word has 2 to 14 bytes: most identifiers end here.
    (2..=14).contains(&word.len()) && SKIPPED.binary_search(&word).is_ok()
}

fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if identifiers(text).any(skipped) {
        return;
    }
    if let Ok(config) = lua_compat::config::load_str(text, Path::new("/nonexistent/fuzz.cfg.lua")) {
        let _ = lua_compat::config::check(&config);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_skipped_words_are_sorted_and_found() {
        assert!(super::SKIPPED.windows(2).all(|w| w[0] < w[1]));
        assert!(super::SKIPPED.iter().all(|w| super::skipped(w)));
        assert!(!super::skipped("VirtualHost") && !super::skipped(""));
    }

    #[test]
    fn the_small_seed_loads() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/config/small"))
                .unwrap();
        assert!(!super::identifiers(&text).any(super::skipped));
        let cfg =
            lua_compat::config::load_str(&text, std::path::Path::new("/nonexistent/x.cfg.lua"));
        assert!(cfg.is_ok(), "{cfg:?}");
    }
}
