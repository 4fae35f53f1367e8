//! `authentication = "null"`: Prosody's null provider, which offers no
//! mechanism and implements nothing (a host nobody logs in to).

use crate::backend::{Backend, Lookup, Profile};
use crate::error::AuthError;

pub struct Null {
    host: String,
}

impl Null {
    pub fn new(host: &str) -> Null {
        Null {
            host: host.to_string(),
        }
    }
}

impl Backend for Null {
    fn name(&self) -> &'static str {
        "null"
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn profile(&self) -> Profile {
        Profile::default()
    }
    fn test_password(&self, _username: &str, _password: &str) -> Result<Lookup<bool>, AuthError> {
        Err(self.unsupported("test_password"))
    }
    fn user_exists(&self, _username: &str) -> Result<bool, AuthError> {
        Ok(false)
    }
    fn set_password(&self, _username: &str, _password: &str) -> Result<(), AuthError> {
        Err(self.unsupported("set_password"))
    }
    fn create_user(&self, _username: &str, _password: Option<&str>) -> Result<(), AuthError> {
        Err(self.unsupported("create_user"))
    }
    fn delete_user(&self, _username: &str) -> Result<(), AuthError> {
        Err(self.unsupported("delete_user"))
    }
    fn users(&self) -> Result<Vec<String>, AuthError> {
        Err(self.unsupported("users"))
    }
}
