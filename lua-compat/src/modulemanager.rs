//! Module selection (stub, being written).
