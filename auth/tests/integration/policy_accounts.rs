//! mod_saslauth's options, provider selection, and account management.

use crate::common;

use auth::{AuthError, provider_for_host};
use common::*;
use xmpp_core::Value;
use xmpp_core::config::Source;

#[test]
fn encryption_required_by_default() {
    let (_server, host, _driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    assert!(p.sasl_mechanisms(&insecure_ctx()).is_empty());
    for mech in ["PLAIN", "SCRAM-SHA-1", "X-UNKNOWN"] {
        assert_eq!(
            p.sasl_start(mech, &insecure_ctx()).err().unwrap().condition,
            "encryption-required",
            "{mech}"
        );
    }
    assert_eq!(
        p.sasl_start("X-UNKNOWN", &tls_ctx())
            .err()
            .unwrap()
            .condition,
        "invalid-mechanism"
    );
}

#[test]
fn plain_is_insecure_unless_allowed() {
    let (_server, host, _driver) = host_with(&[("c2s_require_encryption", Value::Bool(false))]);
    let p = provider_for_host(&host).unwrap();
    assert_eq!(p.sasl_mechanisms(&insecure_ctx()), vec!["SCRAM-SHA-1"]);
    assert_eq!(
        p.sasl_start("PLAIN", &insecure_ctx())
            .err()
            .unwrap()
            .condition,
        "encryption-required"
    );
    assert!(p.sasl_start("SCRAM-SHA-1", &insecure_ctx()).is_ok());

    let (_server, host, _driver) = host_with(&[
        ("c2s_require_encryption", Value::Bool(false)),
        ("allow_unencrypted_plain_auth", Value::Bool(true)),
    ]);
    let p = provider_for_host(&host).unwrap();
    assert_eq!(
        p.sasl_mechanisms(&insecure_ctx()),
        vec!["SCRAM-SHA-1", "PLAIN"]
    );
    assert!(p.sasl_start("PLAIN", &insecure_ctx()).is_ok());
}

#[test]
fn require_encryption_is_the_fallback_name() {
    let (_server, host, _driver) = host_with(&[("require_encryption", Value::Bool(false))]);
    let p = provider_for_host(&host).unwrap();
    assert_eq!(p.sasl_mechanisms(&insecure_ctx()), vec!["SCRAM-SHA-1"]);
    let (_server, host, _driver) = host_with(&[
        ("require_encryption", Value::Bool(false)),
        ("c2s_require_encryption", Value::Bool(true)),
    ]);
    assert!(
        provider_for_host(&host)
            .unwrap()
            .sasl_mechanisms(&insecure_ctx())
            .is_empty()
    );
}

#[test]
fn insecure_and_disabled_mechanism_lists() {
    let (_server, host, _driver) = host_with(&[
        ("c2s_require_encryption", Value::Bool(false)),
        ("insecure_sasl_mechanisms", list(&["SCRAM-SHA-1"])),
        ("disable_sasl_mechanisms", Value::str("PLAIN")),
    ]);
    let p = provider_for_host(&host).unwrap();
    assert!(p.sasl_mechanisms(&insecure_ctx()).is_empty());
    assert_eq!(p.sasl_mechanisms(&tls_ctx()), vec!["SCRAM-SHA-1"]);
    assert_eq!(
        p.sasl_start("SCRAM-SHA-1", &insecure_ctx())
            .err()
            .unwrap()
            .condition,
        "encryption-required"
    );
    assert_eq!(
        p.sasl_start("PLAIN", &tls_ctx()).err().unwrap().condition,
        "invalid-mechanism"
    );

    // The jitsi-docker fixture's list.
    let (_server, host, _driver) = host_with(&[(
        "disable_sasl_mechanisms",
        list(&["DIGEST-MD5", "OAUTHBEARER"]),
    )]);
    let p = provider_for_host(&host).unwrap();
    assert_eq!(p.sasl_mechanisms(&tls_ctx()), vec!["SCRAM-SHA-1", "PLAIN"]);
}

#[test]
fn bad_option_values_name_the_option() {
    let (_server, host, _driver) = host_with(&[("c2s_require_encryption", Value::str("yes"))]);
    let err = provider_for_host(&host).err().unwrap();
    assert!(err.to_string().contains("c2s_require_encryption"), "{err}");
    let (_server, host, _driver) = host_with(&[("password_hash", Value::str("MD5"))]);
    assert!(
        provider_for_host(&host)
            .err()
            .unwrap()
            .to_string()
            .contains("password_hash")
    );
    let (_server, host, _driver) = host_with(&[("default_iteration_count", Value::Integer(0))]);
    assert!(
        provider_for_host(&host)
            .err()
            .unwrap()
            .to_string()
            .contains("default_iteration_count")
    );
}

#[test]
fn unknown_and_later_providers() {
    let (_server, host, _driver) = host_with(&[("authentication", Value::str("sql"))]);
    let err = provider_for_host(&host).err().unwrap();
    assert!(
        matches!(err, AuthError::ProviderNotYetImplemented { ref provider, .. } if provider == "sql"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("'authentication'")
            && text.contains("\"sql\"")
            && text.contains("not implemented in lilt yet"),
        "{text}"
    );

    // ldap is implemented; without its required ldap_base the error names it.
    let (_server, host, _driver) = host_with(&[("authentication", Value::str("ldap"))]);
    let err = provider_for_host(&host).err().unwrap();
    assert!(err.to_string().contains("ldap_base"), "{err}");

    let (_server, host, _driver) = host_with(&[("authentication", Value::str("made_up"))]);
    let err = provider_for_host(&host).err().unwrap();
    assert!(matches!(err, AuthError::UnknownProvider { .. }), "{err}");

    // The error says where the option was set.
    let mut section = xmpp_core::config::Section::default();
    section.set("authentication", Value::str("sql"));
    section.sources.insert(
        "authentication".into(),
        Source {
            file: "/etc/prosody/conf.d/meet.cfg.lua".into(),
            line: 36,
        },
    );
    let cfg = xmpp_core::ServerConfig {
        hosts: vec![xmpp_core::HostConfig {
            name: "meet".into(),
            kind: xmpp_core::HostKind::VirtualHost,
            section,
            defined_at: Default::default(),
        }],
        ..Default::default()
    };
    let server = xmpp_core::Server::new(cfg, xmpp_core::Clock::System);
    let err = provider_for_host(&server.host("meet").unwrap())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("/etc/prosody/conf.d/meet.cfg.lua:36: option 'authentication'"),
        "{err}"
    );
}

#[test]
fn missing_storage_driver_is_a_storage_error() {
    let (_server, host, _driver) = host_with(&[("storage", Value::str("sql"))]);
    let err = provider_for_host(&host).err().unwrap();
    assert!(matches!(err, AuthError::Storage { .. }), "{err}");
    assert!(err.to_string().contains("sql"), "{err}");
}

#[test]
fn records_are_written_as_prosody_writes_them() {
    let (_server, host, driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("juliet", Some("pencil")).unwrap();
    let record = driver.record("juliet").unwrap();
    let keys: Vec<&str> = record.map.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["iteration_count", "salt", "server_key", "stored_key"]
    );
    assert_eq!(record.get("iteration_count"), Some(&Value::Integer(10000)));
    let salt = record.get("salt").unwrap().as_str().unwrap();
    assert_eq!(
        (salt.len(), salt.matches('-').count()),
        (36, 4),
        "a UUID: {salt}"
    );
    for k in ["stored_key", "server_key"] {
        let hex = record.get(k).unwrap().as_str().unwrap();
        assert_eq!(hex.len(), 40);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "lowercase hex: {hex}"
        );
    }
    assert!(record.seq.is_empty());

    // A password change keeps the iteration count at least the default,
    // and draws a new salt.
    p.set_password("juliet", "pencil2").unwrap();
    let changed = driver.record("juliet").unwrap();
    assert_ne!(changed.get("salt"), record.get("salt"));
    assert!(p.test_password("juliet", "pencil2").unwrap());
    assert!(!p.test_password("juliet", "pencil").unwrap());
    assert!(!p.test_password("nobody", "pencil").unwrap());

    // No password: an empty record, as create_user(username, nil).
    p.create_user("bare", None).unwrap();
    assert!(driver.record("bare").unwrap().is_empty());
    assert!(!p.test_password("bare", "").unwrap());
}

#[test]
fn higher_iteration_counts_are_kept() {
    let (_server, host, driver) = host_with(&[("default_iteration_count", Value::Integer(4096))]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("juliet", Some("pencil")).unwrap();
    assert_eq!(
        driver.record("juliet").unwrap().get("iteration_count"),
        Some(&Value::Integer(4096))
    );
    let mut record = driver.record("juliet").unwrap();
    record.insert("iteration_count", Value::Integer(20000));
    driver.put("localhost", "accounts", "juliet", Value::Table(record));
    p.set_password("juliet", "new").unwrap();
    assert_eq!(
        driver.record("juliet").unwrap().get("iteration_count"),
        Some(&Value::Integer(20000))
    );
}

#[test]
fn account_lifecycle() {
    let (_server, host, driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    assert!(matches!(
        p.set_password("ghost", "x"),
        Err(AuthError::NoAccount { .. })
    ));
    p.create_user("Juliet", Some("pencil")).unwrap();
    p.create_user("romeo", Some("pencil")).unwrap();
    assert!(p.user_exists("juliet").unwrap());
    let mut users = p.users().unwrap();
    users.sort();
    assert_eq!(users, ["juliet", "romeo"]);
    driver.put("localhost", "roster", "juliet", Value::str("her roster"));

    p.delete_user("juliet").unwrap();
    assert!(!p.user_exists("juliet").unwrap());
    assert_eq!(p.users().unwrap(), ["romeo"]);
    assert_eq!(
        *driver.purged.lock().unwrap(),
        [("localhost".to_string(), "juliet".to_string())]
    );
    assert!(
        driver
            .cells
            .lock()
            .unwrap()
            .keys()
            .all(|(_, _, u)| u != "juliet"),
        "her data is purged"
    );

    assert!(matches!(
        p.create_user("a b", Some("x")),
        Err(AuthError::InvalidUsername { .. })
    ));
    // An unassigned code point fails SASLprep.
    assert!(matches!(
        p.create_user("c", Some("\u{0221}")),
        Err(AuthError::PasswordFailsSaslprep { .. })
    ));
}

#[test]
fn the_core_sees_an_auth_provider() {
    let (_server, host, _driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("juliet", Some("pencil")).unwrap();
    host.set_auth_provider(p.clone().as_auth_provider());
    assert!(host.user_exists("juliet"));
    assert!(!host.user_exists("romeo"));
    assert_eq!(host.auth_provider().unwrap().name(), "internal_hashed");
}
