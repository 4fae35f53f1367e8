//! lilt's whole-server tests that share nothing process-wide, one binary (one
//! link, one process): each file below is a module; `cargo test -p lilt --test
//! integration FILE::` runs one. Tests that measure this process's memory, set
//! a global log subscriber or run inside their own namespace stay separate
//! binaries (`tests/hardening*.rs`, `tests/stalled_*.rs`, `tests/s2s.rs`).

mod client_link;
mod component;
mod in_process;
mod media_settings;
mod racing_register;
mod service;
