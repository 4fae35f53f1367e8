//! The directory settings of a host, from either of the two ways Prosody
//! deployments write them, into one [`LdapSettings`]:
//!
//! - `authentication = "ldap"` (Prosody's own `mod_auth_ldap`): `ldap_server`
//!   (default `"localhost"`; space-separated `host[:port]`s), `ldap_rootdn`
//!   and `ldap_password` (default empty: anonymous search), `ldap_tls`
//!   (StartTLS), `ldap_scope` (`"subtree"` as Prosody 0.12/13; `"onelevel"`,
//!   `"base"`), `ldap_filter` (default `"(uid=$user)"`; `$user`, `$host`),
//!   `ldap_base` (required), `ldap_mode` (`"bind"`, `"getpasswd"`), `realm`
//!   (what `$host` stands for). lilt adds `ldap_namefield`: an attribute
//!   holding the user's display name (none by default).
//! - `authentication = "ldap2"` (prosody-modules' `mod_auth_ldap2` with
//!   `mod_lib_ldap`): the `ldap` table, `hostname`, `bind_dn`,
//!   `bind_password`, `use_tls` (StartTLS) and `user = { basedn, filter,
//!   usernamefield, namefield }` (required, as mod_lib_ldap documents);
//!   `groups` and `admin` are for rosters and admin rights, accepted and
//!   not used for authentication. Searches use the subtree scope.
//!
//! A server given as a URL (`ldap://`, `ldaps://`) is used as is, so ldaps
//! works as with lualdap's URIs; `host[:port]` means `ldap://host:port`.

use xmpp_core::config::OptionError;
use xmpp_core::{Host, Value};

use super::filter;

/// How a password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bind as the user's entry with the password (the default).
    Bind,
    /// Read `userPassword` and compare (Prosody's `ldap_mode = "getpasswd"`;
    /// only works with clear-text `userPassword` values, as in Prosody).
    GetPasswd,
}

/// The search scope under the base DN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Base,
    OneLevel,
    Subtree,
}

/// How the user's entry is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserFilter {
    /// `mod_auth_ldap`'s template with `$user` and `$host`.
    Template { template: String, host: String },
    /// `mod_auth_ldap2`'s `(&(filter)(usernamefield=user))`.
    Field {
        filter: Option<String>,
        usernamefield: String,
    },
}

impl UserFilter {
    /// The filter for `username` (escaped).
    pub fn for_user(&self, username: &str) -> String {
        match self {
            UserFilter::Template { template, host } => filter::substitute(template, username, host),
            UserFilter::Field {
                filter,
                usernamefield,
            } => filter::user_filter(filter.as_deref(), usernamefield, username),
        }
    }
}

/// Everything the provider needs to talk to the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    /// Which option style these came from (`ldap` or `ldap2`).
    pub provider: &'static str,
    /// Server URLs, tried in order.
    pub servers: Vec<String>,
    /// DN and password for searching; empty means an anonymous search.
    pub bind_dn: String,
    pub bind_password: String,
    /// StartTLS on `ldap://` connections.
    pub starttls: bool,
    pub base: String,
    pub scope: Scope,
    pub filter: UserFilter,
    pub mode: Mode,
    /// Attribute holding the display name (`user.namefield`).
    pub namefield: Option<String>,
}

fn string_option(host: &Host, name: &str, default: &str) -> Result<String, OptionError> {
    match host.option(name) {
        None => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => {
            Err(host.option_error(name, format!("must be a string, not a {}", v.type_name())))
        }
    }
}

/// `host[:port]` or a URL → a URL.
fn server_url(entry: &str) -> String {
    if entry.contains("://") {
        entry.to_string()
    } else {
        format!("ldap://{entry}")
    }
}

impl LdapSettings {
    /// Prosody's `mod_auth_ldap` options of `host`.
    pub fn from_ldap_options(host: &Host) -> Result<LdapSettings, OptionError> {
        let servers: Vec<String> = string_option(host, "ldap_server", "localhost")?
            .split_whitespace()
            .map(server_url)
            .collect();
        if servers.is_empty() {
            return Err(host.option_error("ldap_server", "names no server".to_string()));
        }
        let base = match host.option("ldap_base") {
            None => {
                return Err(host.option_error(
                    "ldap_base",
                    "is required for authentication = \"ldap\" (the DN under which users are searched)".to_string(),
                ));
            }
            Some(_) => string_option(host, "ldap_base", "")?,
        };
        let scope = match string_option(host, "ldap_scope", "subtree")?.as_str() {
            "subtree" => Scope::Subtree,
            "onelevel" => Scope::OneLevel,
            "base" => Scope::Base,
            other => {
                return Err(host.option_error(
                    "ldap_scope",
                    format!("must be \"subtree\", \"onelevel\" or \"base\", not {other:?}"),
                ));
            }
        };
        let mode = match string_option(host, "ldap_mode", "bind")?.as_str() {
            "bind" => Mode::Bind,
            "getpasswd" => Mode::GetPasswd,
            other => {
                return Err(host.option_error(
                    "ldap_mode",
                    format!("must be \"bind\" or \"getpasswd\", not {other:?} (Prosody: Unsupported ldap_mode)"),
                ));
            }
        };
        if host.option("ldap_admin_filter").is_some() || host.option("ldap_admins").is_some() {
            tracing::error!(host = %host.name, "The 'ldap_admin_filter' option has been deprecated, and will be ignored.");
        }
        let namefield = match host.option("ldap_namefield") {
            None => None,
            Some(_) => Some(string_option(host, "ldap_namefield", "")?).filter(|s| !s.is_empty()),
        };
        Ok(LdapSettings {
            provider: "ldap",
            servers,
            bind_dn: string_option(host, "ldap_rootdn", "")?,
            bind_password: string_option(host, "ldap_password", "")?,
            starttls: host.option_bool("ldap_tls", false)?,
            base,
            scope,
            filter: UserFilter::Template {
                template: string_option(host, "ldap_filter", "(uid=$user)")?,
                host: string_option(host, "realm", &host.name)?,
            },
            mode,
            namefield,
        })
    }

    /// mod_lib_ldap's `ldap` table of `host`.
    pub fn from_ldap2_table(host: &Host) -> Result<LdapSettings, OptionError> {
        let table = match host.option("ldap") {
            Some(Value::Table(t)) => t,
            Some(v) => {
                return Err(host.option_error(
                    "ldap",
                    format!("must be a table (hostname, bind_dn, bind_password, use_tls, user = {{ ... }}), not a {}", v.type_name()),
                ));
            }
            None => {
                return Err(host.option_error(
                    "ldap",
                    "is required for authentication = \"ldap2\" (LDAP configuration required, as mod_lib_ldap says)".to_string(),
                ));
            }
        };
        let field = |t: &xmpp_core::value::Table, path: &str, key: &str, required: bool| {
            let name = format!("{path}{key}");
            match t.get(key) {
                None if required => Err(host.option_error("ldap", format!("{name} is required"))),
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(host.option_error(
                    "ldap",
                    format!(
                        "invalid type for parameter {name}: a {} where a string belongs",
                        v.type_name()
                    ),
                )),
            }
        };
        let hostname = field(table, "", "hostname", true)?.unwrap_or_default();
        let starttls = match table.get("use_tls") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| {
                host.option_error(
                    "ldap",
                    format!(
                        "invalid type for parameter use_tls: a {} where true or false belongs",
                        v.type_name()
                    ),
                )
            })?,
        };
        let user = match table.get("user") {
            Some(Value::Table(t)) => t,
            Some(v) => {
                return Err(host.option_error(
                    "ldap",
                    format!(
                        "invalid type for parameter user: a {} where a table belongs",
                        v.type_name()
                    ),
                ));
            }
            None => return Err(host.option_error("ldap", "user is required".to_string())),
        };
        let servers: Vec<String> = hostname.split_whitespace().map(server_url).collect();
        if servers.is_empty() {
            return Err(host.option_error("ldap", "hostname names no server".to_string()));
        }
        Ok(LdapSettings {
            provider: "ldap2",
            servers,
            bind_dn: field(table, "", "bind_dn", false)?.unwrap_or_default(),
            bind_password: field(table, "", "bind_password", false)?.unwrap_or_default(),
            starttls,
            base: field(user, "user.", "basedn", true)?.unwrap_or_default(),
            scope: Scope::Subtree,
            filter: UserFilter::Field {
                filter: field(user, "user.", "filter", false)?,
                usernamefield: field(user, "user.", "usernamefield", true)?.unwrap_or_default(),
            },
            mode: Mode::Bind,
            namefield: field(user, "user.", "namefield", false)?.filter(|s| !s.is_empty()),
        })
    }

    /// The attributes a user search asks for.
    pub fn search_attributes(&self) -> Vec<String> {
        let mut attrs = vec!["1.1".to_string()];
        if let Some(n) = &self.namefield {
            attrs = vec![n.clone()];
        }
        if self.mode == Mode::GetPasswd {
            attrs.retain(|a| a != "1.1");
            attrs.push("userPassword".to_string());
        }
        attrs
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use xmpp_core::config::{HostConfig, Section};
    use xmpp_core::{Clock, Host, HostKind, Server, ServerConfig, Table, Value};

    use super::*;

    fn host(options: &[(&str, Value)]) -> (Arc<Server>, Arc<Host>) {
        let mut section = Section::default();
        for (k, v) in options {
            section.set(*k, v.clone());
        }
        let cfg = ServerConfig {
            hosts: vec![HostConfig {
                name: "staff.example.com".into(),
                kind: HostKind::VirtualHost,
                section,
                defined_at: Default::default(),
            }],
            ..Default::default()
        };
        let server = Server::new(cfg, Clock::System);
        let host = server.host("staff.example.com").unwrap();
        (server, host)
    }

    fn table(entries: &[(&str, Value)]) -> Value {
        let mut t = Table::new();
        for (k, v) in entries {
            t.insert(*k, v.clone());
        }
        Value::Table(t)
    }

    #[test]
    fn ldap_options_with_prosody_defaults() {
        let (_s, h) = host(&[("ldap_base", Value::str("ou=people,dc=example,dc=org"))]);
        let s = LdapSettings::from_ldap_options(&h).unwrap();
        assert_eq!(s.servers, vec!["ldap://localhost"]);
        assert_eq!(s.bind_dn, "");
        assert!(!s.starttls);
        assert_eq!(s.scope, Scope::Subtree);
        assert_eq!(s.mode, Mode::Bind);
        assert_eq!(s.namefield, None);
        assert_eq!(s.filter.for_user("a*"), "(uid=a\\2a)");
        assert_eq!(s.search_attributes(), vec!["1.1"]);
    }

    #[test]
    fn ldap_options_as_the_fixture_writes_them() {
        let (_s, h) = host(&[
            (
                "ldap_server",
                Value::str("127.0.0.1:3389 ldaps://backup:636"),
            ),
            ("ldap_rootdn", Value::str("cn=admin,dc=example,dc=org")),
            ("ldap_password", Value::str("adminpw")),
            ("ldap_base", Value::str("ou=people,dc=example,dc=org")),
            ("ldap_filter", Value::str("(&(uid=$user)(o=$host))")),
            ("ldap_scope", Value::str("onelevel")),
            ("ldap_mode", Value::str("getpasswd")),
            ("ldap_tls", Value::Bool(true)),
            ("ldap_namefield", Value::str("displayName")),
        ]);
        let s = LdapSettings::from_ldap_options(&h).unwrap();
        assert_eq!(
            s.servers,
            vec!["ldap://127.0.0.1:3389", "ldaps://backup:636"]
        );
        assert_eq!(s.bind_password, "adminpw");
        assert!(s.starttls);
        assert_eq!(s.scope, Scope::OneLevel);
        assert_eq!(s.mode, Mode::GetPasswd);
        assert_eq!(
            s.filter.for_user("bob"),
            "(&(uid=bob)(o=staff.example.com))"
        );
        assert_eq!(s.search_attributes(), vec!["displayName", "userPassword"]);
    }

    #[test]
    fn ldap_option_errors_name_the_option() {
        let (_s, h) = host(&[]);
        let e = LdapSettings::from_ldap_options(&h).unwrap_err();
        assert_eq!(e.option, "ldap_base");
        let (_s, h) = host(&[
            ("ldap_base", Value::str("dc=x")),
            ("ldap_mode", Value::str("compare")),
        ]);
        let e = LdapSettings::from_ldap_options(&h).unwrap_err();
        assert_eq!(e.option, "ldap_mode");
        assert!(e.to_string().contains("compare"), "{e}");
        let (_s, h) = host(&[
            ("ldap_base", Value::str("dc=x")),
            ("ldap_scope", Value::str("sub")),
        ]);
        assert_eq!(
            LdapSettings::from_ldap_options(&h).unwrap_err().option,
            "ldap_scope"
        );
        let (_s, h) = host(&[
            ("ldap_base", Value::str("dc=x")),
            ("ldap_tls", Value::str("yes")),
        ]);
        assert_eq!(
            LdapSettings::from_ldap_options(&h).unwrap_err().option,
            "ldap_tls"
        );
        let (_s, h) = host(&[("ldap_base", Value::Integer(3))]);
        assert_eq!(
            LdapSettings::from_ldap_options(&h).unwrap_err().option,
            "ldap_base"
        );
    }

    fn fixture_table() -> Value {
        table(&[
            ("hostname", Value::str("127.0.0.1:3389")),
            ("bind_dn", Value::str("cn=admin,dc=example,dc=org")),
            ("bind_password", Value::str("adminpw")),
            ("use_tls", Value::Bool(false)),
            (
                "user",
                table(&[
                    ("usernamefield", Value::str("uid")),
                    ("basedn", Value::str("ou=people,dc=example,dc=org")),
                    ("filter", Value::str("(objectClass=inetOrgPerson)")),
                    ("namefield", Value::str("cn")),
                ]),
            ),
        ])
    }

    #[test]
    fn ldap2_table_as_the_fixture_writes_it() {
        let (_s, h) = host(&[("ldap", fixture_table())]);
        let s = LdapSettings::from_ldap2_table(&h).unwrap();
        assert_eq!(s.provider, "ldap2");
        assert_eq!(s.servers, vec!["ldap://127.0.0.1:3389"]);
        assert_eq!(s.bind_dn, "cn=admin,dc=example,dc=org");
        assert_eq!(s.base, "ou=people,dc=example,dc=org");
        assert_eq!(s.scope, Scope::Subtree);
        assert_eq!(s.namefield.as_deref(), Some("cn"));
        assert_eq!(
            s.filter.for_user("*)(uid=*"),
            "(&(objectClass=inetOrgPerson)(uid=\\2a\\29\\28uid=\\2a))"
        );
        assert_eq!(s.search_attributes(), vec!["cn"]);
    }

    #[test]
    fn ldap2_errors_name_the_parameter() {
        let (_s, h) = host(&[]);
        let e = LdapSettings::from_ldap2_table(&h).unwrap_err();
        assert_eq!(e.option, "ldap");
        let (_s, h) = host(&[("ldap", table(&[("hostname", Value::str("x"))]))]);
        let e = LdapSettings::from_ldap2_table(&h).unwrap_err();
        assert!(e.problem.contains("user is required"), "{e}");
        let (_s, h) = host(&[(
            "ldap",
            table(&[
                ("hostname", Value::str("x")),
                ("user", table(&[("basedn", Value::str("dc=x"))])),
            ]),
        )]);
        let e = LdapSettings::from_ldap2_table(&h).unwrap_err();
        assert!(e.problem.contains("user.usernamefield is required"), "{e}");
        let (_s, h) = host(&[(
            "ldap",
            table(&[
                ("hostname", Value::str("x")),
                ("use_tls", Value::str("yes")),
            ]),
        )]);
        let e = LdapSettings::from_ldap2_table(&h).unwrap_err();
        assert!(e.problem.contains("use_tls"), "{e}");
        let (_s, h) = host(&[("ldap", Value::str("ldap://x"))]);
        let e = LdapSettings::from_ldap2_table(&h).unwrap_err();
        assert!(e.problem.contains("must be a table"), "{e}");
    }
}
