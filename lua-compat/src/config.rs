//! Loading `prosody.cfg.lua` (stub, being written).
