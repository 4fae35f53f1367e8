//! # auth (stub, being written)
