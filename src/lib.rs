//! lilt
