//! PLAIN and ANONYMOUS exchanges, the insecure and null providers.

use crate::common;

use auth::{AuthError, provider_for_host};
use common::*;
use xmpp_core::Value;
use xmpp_core::auth::SaslStep;

fn plain(p: &dyn auth::AccountProvider, message: &[u8]) -> SaslStep {
    let mut ex = p.sasl_start("PLAIN", &tls_ctx()).unwrap();
    ex.step(Some(message))
}

#[test]
fn plain_with_internal_hashed() {
    let (_server, host, _driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("juliet", Some("pencil")).unwrap();
    assert_eq!(
        plain(&*p, b"\0juliet\0pencil"),
        SaslStep::Success {
            username: "juliet".into(),
            additional: None
        }
    );
    assert_eq!(
        plain(&*p, b"\0Juliet\0pencil"),
        SaslStep::Success {
            username: "juliet".into(),
            additional: None
        }
    );
    assert_eq!(
        plain(&*p, b"juliet@localhost\0juliet\0pencil"),
        SaslStep::Success {
            username: "juliet".into(),
            additional: None
        }
    );
    // Prosody ignores anything after the third field.
    assert_eq!(
        plain(&*p, b"\0juliet\0pencil\0junk"),
        SaslStep::Success {
            username: "juliet".into(),
            additional: None
        }
    );

    let not_authorized = (
        "not-authorized",
        Some(
            "Unable to authorize you with the authentication credentials you've sent.".to_string(),
        ),
    );
    assert_eq!(failure(plain(&*p, b"\0juliet\0pencil2")), not_authorized);
    assert_eq!(failure(plain(&*p, b"\0romeo\0pencil")), not_authorized);
    assert_eq!(
        failure(plain(&*p, b"romeo@localhost\0juliet\0pencil")).0,
        "invalid-authzid"
    );
    for bad in [
        &b""[..],
        b"juliet",
        b"\0juliet",
        b"\0juliet\0",
        b"\0\0pencil",
    ] {
        assert_eq!(
            failure(plain(&*p, bad)).0,
            "malformed-request",
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        failure(plain(&*p, b"\0a@b\0pencil")),
        (
            "malformed-request",
            Some("Invalid username or password.".into())
        )
    );
    assert_eq!(
        failure(plain(&*p, b"\0juliet\0\xff")).0,
        "malformed-request"
    );
    let mut ex = p.sasl_start("PLAIN", &tls_ctx()).unwrap();
    assert_eq!(failure(ex.step(None)).0, "malformed-request");
    assert_eq!(
        failure(ex.step(Some(b"\0juliet\0pencil"))).0,
        "not-authorized",
        "out of order"
    );
}

#[test]
fn plain_upgrades_plaintext_records() {
    let (_server, host, driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    let mut legacy = xmpp_core::Table::new();
    legacy.insert("password", Value::str("s3cret"));
    driver.put("localhost", "accounts", "old", Value::Table(legacy));
    assert_eq!(failure(plain(&*p, b"\0old\0wrong")).0, "not-authorized");
    assert!(
        driver.record("old").unwrap().get("password").is_some(),
        "no upgrade on a wrong password"
    );
    assert_eq!(
        plain(&*p, b"\0old\0s3cret"),
        SaslStep::Success {
            username: "old".into(),
            additional: None
        }
    );
    let record = driver.record("old").unwrap();
    assert!(record.get("password").is_none());
    assert!(record.get("stored_key").is_some());
    assert_eq!(
        plain(&*p, b"\0old\0s3cret"),
        SaslStep::Success {
            username: "old".into(),
            additional: None
        }
    );
}

#[test]
fn plain_with_internal_plain_uses_saslprep() {
    let (_server, host, driver) = host_with(&[("authentication", Value::str("internal_plain"))]);
    let p = provider_for_host(&host).unwrap();
    // U+00AD (soft hyphen) is mapped to nothing by SASLprep.
    p.create_user("juliet", Some("pen\u{ad}cil")).unwrap();
    assert_eq!(
        driver.record("juliet").unwrap().get("password"),
        Some(&Value::str("pencil"))
    );
    assert_eq!(
        plain(&*p, "\0juliet\0pen\u{ad}cil".as_bytes()),
        SaslStep::Success {
            username: "juliet".into(),
            additional: None
        }
    );
    assert_eq!(
        plain(&*p, b"\0juliet\0pencil"),
        SaslStep::Success {
            username: "juliet".into(),
            additional: None
        }
    );
    assert_eq!(failure(plain(&*p, b"\0juliet\0Pencil")).0, "not-authorized");
}

#[test]
fn anonymous_hands_out_random_nodes() {
    let (_server, host, _driver) = host_with(&[("authentication", Value::str("anonymous"))]);
    let p = provider_for_host(&host).unwrap();
    assert_eq!(
        p.sasl_mechanisms(&insecure_ctx()),
        Vec::<String>::new(),
        "c2s_require_encryption defaults to true"
    );
    assert_eq!(p.sasl_mechanisms(&tls_ctx()), vec!["ANONYMOUS"]);
    let mut names = std::collections::HashSet::new();
    for input in [None, Some(&b""[..]), Some(b"trace"), Some(b"\xff")] {
        let mut ex = p.sasl_start("ANONYMOUS", &tls_ctx()).unwrap();
        match ex.step(input) {
            SaslStep::Success {
                username,
                additional: None,
            } => {
                assert_eq!(xmpp_core::jid::nodeprep(&username).unwrap(), username);
                assert!(names.insert(username));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        p.sasl_start("PLAIN", &tls_ctx()).err().unwrap().condition,
        "invalid-mechanism"
    );
    assert!(!p.user_exists("anyone").unwrap());
    assert!(matches!(
        p.create_user("x", Some("y")),
        Err(AuthError::NotSupported { .. })
    ));
    assert!(matches!(
        p.test_password("x", "y"),
        Err(AuthError::NotSupported { .. })
    ));
    assert_eq!(p.users().unwrap(), Vec::<String>::new());
}

#[test]
fn anonymous_login_is_the_old_name_for_anonymous() {
    let (_server, host, _driver) = host_with(&[("anonymous_login", Value::Bool(true))]);
    assert_eq!(provider_for_host(&host).unwrap().name(), "anonymous");
}

#[test]
fn insecure_needs_prosodys_confirmation() {
    for value in [None, Some(Value::Bool(true)), Some(Value::str("yes"))] {
        let mut options = vec![("authentication", Value::str("insecure"))];
        if let Some(v) = value.clone() {
            options.push(("insecure_open_authentication", v));
        }
        let (_server, host, _driver) = host_with(&options);
        let err = provider_for_host(&host).err().expect("refused");
        assert!(
            matches!(err, AuthError::InsecureRefused { .. }),
            "{value:?}: {err}"
        );
        assert!(
            err.to_string().contains("insecure_open_authentication"),
            "{err}"
        );
    }
    let (_server, host, _driver) = host_with(&[
        ("authentication", Value::str("insecure")),
        (
            "insecure_open_authentication",
            Value::str("Yes please, I know what I'm doing!"),
        ),
    ]);
    let p = provider_for_host(&host).unwrap();
    assert_eq!(p.sasl_mechanisms(&tls_ctx()), vec!["PLAIN"]);
    assert_eq!(
        plain(&*p, b"\0anybody\0anything"),
        SaslStep::Success {
            username: "anybody".into(),
            additional: None
        }
    );
    assert!(p.user_exists("whoever").unwrap());
    assert!(p.test_password("whoever", "whatever").unwrap());
}

#[test]
fn null_offers_nothing() {
    let (_server, host, _driver) = host_with(&[("authentication", Value::str("null"))]);
    let p = provider_for_host(&host).unwrap();
    assert!(p.sasl_mechanisms(&tls_ctx()).is_empty());
    assert_eq!(
        p.sasl_start("PLAIN", &tls_ctx()).err().unwrap().condition,
        "invalid-mechanism"
    );
    assert!(p.users().is_err());
}
