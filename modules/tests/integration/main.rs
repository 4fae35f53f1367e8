//! modules's integration tests, one binary (one link, one process): each file
//! below is a module; `cargo test -p modules --test integration FILE::` runs one.

mod im_common;

mod im_adhoc_vcard;
mod im_debug_reset;
mod im_http_file_share;
mod im_message;
mod im_presence;
mod im_prosody_files;
mod im_pubsub;
mod im_roster;
mod im_services;
mod im_subscription;
mod im_tombstones;
mod im_welcome_motd;
mod storage_cost;
mod storage_prosody;
