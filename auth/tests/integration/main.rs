//! auth's integration tests, one binary (one link, one process): each file
//! below is a module; `cargo test -p auth --test integration FILE::` runs one.

mod common;

mod cost;
mod plain_anonymous;
mod policy_accounts;
mod prosody_compat;
mod scram;
mod token_verify;
