//! Storage drivers (stub, being written).
