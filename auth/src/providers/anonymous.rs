//! `authentication = "anonymous"`: only `ANONYMOUS`, no accounts, as
//! Prosody's `mod_auth_anonymous`. (Its side effects on storage and s2s,
//! `allow_anonymous_storage` and `allow_anonymous_s2s`, belong to the
//! modules that store and route.)

use crate::backend::{Backend, Profile};

pub struct Anonymous {
    host: String,
}

impl Anonymous {
    pub fn new(host: &str) -> Anonymous {
        Anonymous {
            host: host.to_string(),
        }
    }
}

impl Backend for Anonymous {
    fn name(&self) -> &'static str {
        "anonymous"
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn profile(&self) -> Profile {
        Profile {
            anonymous: true,
            ..Profile::default()
        }
    }
}
