//! The `sql` option: which database a host's `sql` storage lives in.
//!
//! Prosody's shape: `sql = { driver = "SQLite3"|"PostgreSQL", database,
//! username, password, host, port }`, per host or global, defaulting to
//! `{ driver = "SQLite3" }`. An SQLite database path is taken relative to
//! `data_path` and defaults to `prosody.sqlite`; `:memory:` is kept as is.

use std::path::{Path, PathBuf};

use xmpp_core::value::Value;

use crate::SqlError;

/// The database engines the driver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Where the data is, as the `sql` option gives it (normalised).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqlParams {
    pub engine: Engine,
    /// SQLite: an absolute file path (or `:memory:`); PostgreSQL: the database name.
    pub database: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl SqlParams {
    /// Reads an `sql` option value (`None`: the option is not set).
    pub fn from_option(value: Option<&Value>, data_path: &Path) -> Result<SqlParams, SqlError> {
        let field = |name: &str| -> Option<String> {
            value
                .and_then(|v| v.get(name))
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Integer(i) => Some(i.to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
        };
        if let Some(v) = value
            && v.as_table().is_none()
        {
            return Err(SqlError::Config(format!(
                "the sql option must be a table, not a {}",
                v.type_name()
            )));
        }
        let driver = field("driver").unwrap_or_else(|| "SQLite3".to_string());
        let engine = match driver.as_str() {
            "SQLite3" => Engine::Sqlite,
            "PostgreSQL" => Engine::Postgres,
            other => {
                return Err(SqlError::Config(format!(
                    "sql driver {other:?} is not supported (SQLite3 or PostgreSQL)"
                )));
            }
        };
        let port = match field("port") {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| SqlError::Config(format!("sql port {p:?} is not a port")))?,
            ),
        };
        let database = match engine {
            Engine::Sqlite => {
                let db = field("database").unwrap_or_else(|| "prosody.sqlite".to_string());
                if db == ":memory:" {
                    db
                } else {
                    let p = PathBuf::from(&db);
                    let p = if p.is_absolute() {
                        p
                    } else {
                        data_path.join(p)
                    };
                    p.to_string_lossy().into_owned()
                }
            }
            Engine::Postgres => field("database").ok_or_else(|| {
                SqlError::Config("sql: PostgreSQL needs a database name".to_string())
            })?,
        };
        Ok(SqlParams {
            engine,
            database,
            username: field("username"),
            password: field("password"),
            host: field("host"),
            port,
        })
    }

    /// The connection URL sqlx's `Any` driver takes.
    pub fn url(&self) -> String {
        match self.engine {
            Engine::Sqlite if self.database == ":memory:" => "sqlite::memory:".to_string(),
            Engine::Sqlite => format!("sqlite://{}?mode=rwc", encode(&self.database, true)),
            Engine::Postgres => {
                let mut url = String::from("postgres://");
                if let Some(u) = &self.username {
                    url.push_str(&encode(u, false));
                    if let Some(p) = &self.password {
                        url.push(':');
                        url.push_str(&encode(p, false));
                    }
                    url.push('@');
                }
                let host = self.host.as_deref().unwrap_or("localhost");
                if host.starts_with('/') {
                    // A socket directory: given as a query parameter.
                    url.push_str("localhost");
                } else if host.contains(':') {
                    url.push_str(&format!("[{host}]"));
                } else {
                    url.push_str(&encode(host, false));
                }
                if let Some(port) = self.port {
                    url.push_str(&format!(":{port}"));
                }
                url.push('/');
                url.push_str(&encode(&self.database, false));
                if host.starts_with('/') {
                    url.push_str("?host=");
                    url.push_str(&encode(host, false));
                }
                url
            }
        }
    }

    /// A description for logs (no password).
    pub fn describe(&self) -> String {
        match self.engine {
            Engine::Sqlite => format!("SQLite3 {}", self.database),
            Engine::Postgres => format!(
                "PostgreSQL {} on {}:{}",
                self.database,
                self.host.as_deref().unwrap_or("localhost"),
                self.port.unwrap_or(5432)
            ),
        }
    }
}

/// Percent-encodes everything but unreserved characters (and `/` in paths).
fn encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (path && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::value::Table;

    fn table(pairs: &[(&str, &str)]) -> Value {
        let mut t = Table::new();
        for (k, v) in pairs {
            t.insert(*k, Value::str(*v));
        }
        Value::Table(t)
    }

    #[test]
    fn sqlite_defaults_to_prosody_sqlite_in_data_path() {
        let p = SqlParams::from_option(None, Path::new("/var/lib/prosody")).unwrap();
        assert_eq!(p.engine, Engine::Sqlite);
        assert_eq!(p.database, "/var/lib/prosody/prosody.sqlite");
        assert_eq!(p.url(), "sqlite:///var/lib/prosody/prosody.sqlite?mode=rwc");
        let p = SqlParams::from_option(
            Some(&table(&[("driver", "SQLite3"), ("database", "x y.db")])),
            Path::new("/d"),
        )
        .unwrap();
        assert_eq!(p.url(), "sqlite:///d/x%20y.db?mode=rwc");
    }

    #[test]
    fn postgres_url() {
        let p = SqlParams::from_option(
            Some(&table(&[
                ("driver", "PostgreSQL"),
                ("database", "prosody"),
                ("username", "pro"),
                ("password", "p@ss"),
                ("host", "127.0.0.1"),
                ("port", "5433"),
            ])),
            Path::new("/d"),
        )
        .unwrap();
        assert_eq!(p.url(), "postgres://pro:p%40ss@127.0.0.1:5433/prosody");
        assert!(
            SqlParams::from_option(Some(&table(&[("driver", "MySQL")])), Path::new("/d")).is_err()
        );
    }
}
