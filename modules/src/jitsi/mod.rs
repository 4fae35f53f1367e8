//! Jitsi Meet's Prosody modules that do not need the MUC (one file per
//! module, Jitsi's names and options).

pub mod features_identity;
