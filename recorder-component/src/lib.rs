//! # recorder-component
pub mod ebml;
pub mod mixer;
pub mod webm;
