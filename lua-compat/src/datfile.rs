//! Prosody `.dat` files (stub, being written).
