//! # focus-component
//!
//! lilt's conference focus: what Jicofo does (the conference IQ, bridge
//! selection, Colibri2 allocation, Jingle sessions with each participant).
