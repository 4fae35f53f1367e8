//! # lilt-fuzz
//!
//! Fuzz targets for every parser a peer (or an admin's files) feeds lilt,
//! and a small stable-toolchain harness that runs them (`src/bin/run.rs`).
//! Where to start reading: [`TARGETS`] (name → function), then one file in
//! [`targets`]; `README.md` says how to run them and why this harness.
//!
//! Each target takes arbitrary bytes and must neither panic, nor abort, nor
//! hang. Several targets take inputs in parts separated by [`SEPARATOR`]
//! (one SASL message per part, one XML chunk per part, ...).

pub mod harness;
pub mod parts;
pub mod targets;

/// A fuzz target: arbitrary bytes in, nothing out; a panic is a crash.
pub type Target = fn(&[u8]);

/// Every target, by the name `scripts/fuzz.sh` and the corpus directories use.
pub const TARGETS: &[(&str, Target)] = &[
    ("xml_stream", targets::xml_stream::run),
    ("sasl_plain", targets::sasl::plain),
    ("sasl_scram", targets::sasl::scram),
    ("sasl_anonymous", targets::sasl::anonymous),
    ("bosh_body", targets::bosh::run),
    ("websocket_frames", targets::websocket::run),
    ("config", targets::config::run),
    ("datfile", targets::datfile::run),
    ("jid", targets::jid::run),
    ("jwt", targets::jwt::run),
    ("bridge_channel", targets::bridge_channel::run),
    ("colibri2_jingle", targets::signalling::run),
    ("media_datagram", targets::media::run),
    ("av1_dependency_descriptor", targets::av1_dd::run),
];

/// Separates the parts of a multi-part input.
pub const SEPARATOR: &[u8] = b"\n#next\n";

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
