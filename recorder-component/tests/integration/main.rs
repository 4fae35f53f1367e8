//! recorder-component's integration tests, one binary (one link, one process): each file
//! below is a module; `cargo test -p recorder-component --test integration FILE::` runs one.

mod call;
mod support;

mod calls_at_once;
mod codecs;
mod cpu;
mod end_to_end;
mod jibri_protocol;
mod media_link;
mod media_with_lilt;
mod recording;
mod rtx;
mod webm_file;
mod with_lilt;
