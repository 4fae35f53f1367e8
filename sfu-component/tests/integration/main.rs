//! sfu-component's integration tests, one binary (one link, one process): each file
//! below is a module; `cargo test -p sfu-component --test integration FILE::` runs one.

mod bridge_net;
mod media_harness;

mod allocation_calls;
mod colibri2;
mod http;
mod media_forwarding;
mod media_layers;
mod media_pacing;
mod media_simulcast;
mod media_svc;
mod relay;
mod relay_runtime;
mod udp;
