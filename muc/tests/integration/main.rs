//! muc's integration tests, one binary (one link, one process): each file
//! below is a module; `cargo test -p muc --test integration FILE::` runs one.

mod common;

mod admin;
mod admin_commands;
mod api;
mod join;
mod mam;
mod messages;
mod persistence;
mod room_vcard;
mod throughput;
