//! The Prosody config loader (`lua_compat::config::load_str`): config
//! text as an admin writes it, run as Prosody runs it.
//!
//! A config file is Lua and the admin's own program: `while true do end`
//! hangs Prosody as it hangs lilt, and `Include "/dev/zero"` reads forever.
//! So inputs that loop or reach the file system are skipped: what is under
//! test is that no config text makes the loader panic.

use std::path::Path;

/// Words that let a config loop, recurse for long, allocate without bound
/// or read files.
const SKIPPED: &[&str] = &[
    "while",
    "repeat",
    "for",
    "goto",
    "function",
    "rep",
    "Include",
    "include",
    "dofile",
    "loadfile",
    "require",
    "io",
    "os",
    "load",
    "Credential",
    "FileContents",
    "FileLine",
    "FileLines",
    "RunScript",
    "collectgarbage",
    "setmetatable",
    "debug",
    "coroutine",
];

fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if identifiers(text).any(|word| SKIPPED.contains(&word)) {
        return;
    }
    if let Ok(config) = lua_compat::config::load_str(text, Path::new("/nonexistent/fuzz.cfg.lua")) {
        let _ = lua_compat::config::check(&config);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_small_seed_loads() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/config/small"))
                .unwrap();
        assert!(!super::identifiers(&text).any(|w| super::SKIPPED.contains(&w)));
        let cfg =
            lua_compat::config::load_str(&text, std::path::Path::new("/nonexistent/x.cfg.lua"));
        assert!(cfg.is_ok(), "{cfg:?}");
    }
}
