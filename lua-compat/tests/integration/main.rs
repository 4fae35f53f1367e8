//! lua-compat's integration tests, one binary (one link, one process): each file
//! below is a module; `cargo test -p lua-compat --test integration FILE::` runs one.

mod lua_host;

mod datfile_prosody;
mod fixtures;
mod lua_adhoc_shared;
mod lua_libs;
mod lua_modules;
mod lua_sandbox;
mod lua_survey;
