//! Whole SCRAM exchanges driven as a client would, against each provider.

use crate::common;

use std::sync::Arc;

use auth::{AccountProvider, provider_for_host};
use common::*;
use xmpp_core::Value;
use xmpp_core::auth::SaslStep;

const EXPORTER: &[u8] = b"0123456789abcdef0123456789abcdef";

fn hashed() -> (Arc<dyn AccountProvider>, Arc<common::MemDriver>) {
    let (_server, host, driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("juliet", Some("pencil")).unwrap();
    (p, driver)
}

fn success(step: SaslStep, client: &ScramClient) -> String {
    match step {
        SaslStep::Success {
            username,
            additional: Some(v),
        } => {
            assert!(
                client.verify(&v),
                "server signature {:?}",
                String::from_utf8_lossy(&v)
            );
            username
        }
        other => panic!("expected success, got {other:?}"),
    }
}

#[test]
fn scram_sha1_logs_in_and_proves_the_server() {
    let (p, _) = hashed();
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
    let first = client.first();
    let sf = challenge(ex.step(Some(&first)));
    let sf_text = String::from_utf8(sf.clone()).unwrap();
    assert!(
        sf_text.contains(",i=10000"),
        "Prosody's default iteration count: {sf_text}"
    );
    let step = ex.step(Some(&client.last(&sf)));
    assert_eq!(success(step, &client), "juliet");
    // Nothing more is accepted once done.
    assert_eq!(
        failure(ex.step(Some(b"x"))),
        ("not-authorized", Some("Out of order SASL element".into()))
    );
}

#[test]
fn usernames_are_prepared() {
    let (p, _) = hashed();
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "JULIET", "pencil");
    assert_eq!(
        success(scram_login(&mut ex, &mut client), &client),
        "juliet"
    );
}

#[test]
fn wrong_password_is_not_authorized() {
    let (p, _) = hashed();
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil2");
    let (condition, text) = failure(scram_login(&mut ex, &mut client));
    assert_eq!(condition, "not-authorized");
    assert_eq!(
        text.as_deref(),
        Some("The response provided by the client doesn't match the one we calculated.")
    );
}

#[test]
fn unknown_user_is_answered_as_a_wrong_password() {
    // RFC 5802 §5.1: a missing account gets a salt (the same each time)
    // and the usual iteration count, and fails at the proof as a wrong
    // password does, so the two cannot be told apart.
    let (p, _) = hashed();
    let salt_and_count = || {
        let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
        let mut client = ScramClient::new(Hash::Sha1, "romeo", "pencil");
        let server_first = String::from_utf8(challenge(ex.step(Some(&client.first())))).unwrap();
        let field = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .unwrap()
                .to_string()
        };
        (field("s="), field("i="))
    };
    let (salt, count) = salt_and_count();
    assert_eq!((salt.clone(), count.clone()), salt_and_count());
    assert_eq!(count, "10000");
    assert_eq!(unb64(&salt).len(), 36, "UUID-shaped as Prosody's salts");
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "romeo", "pencil");
    let (condition, text) = failure(scram_login(&mut ex, &mut client));
    assert_eq!(condition, "not-authorized");
    assert_eq!(
        text.as_deref(),
        Some("The response provided by the client doesn't match the one we calculated.")
    );
}

#[test]
fn account_without_password_cannot_log_in() {
    let (p, _) = hashed();
    p.create_user("nopass", None).unwrap();
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "nopass", "");
    assert_eq!(
        failure(scram_login(&mut ex, &mut client)).0,
        "not-authorized"
    );
}

#[test]
fn sha256_only_with_password_hash_sha256() {
    let (p, _) = hashed();
    assert_eq!(p.sasl_mechanisms(&tls_ctx()), vec!["SCRAM-SHA-1", "PLAIN"]);
    assert_eq!(
        p.sasl_start("SCRAM-SHA-256", &tls_ctx())
            .err()
            .unwrap()
            .condition,
        "invalid-mechanism"
    );

    let (_server, host, driver) = host_with(&[("password_hash", Value::str("SHA-256"))]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("juliet", Some("pencil")).unwrap();
    assert_eq!(
        driver
            .record("juliet")
            .unwrap()
            .get("stored_key")
            .unwrap()
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(
        p.sasl_mechanisms(&tls_ctx()),
        vec!["SCRAM-SHA-256", "PLAIN"]
    );
    let mut ex = p.sasl_start("SCRAM-SHA-256", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha256, "juliet", "pencil");
    assert_eq!(
        success(scram_login(&mut ex, &mut client), &client),
        "juliet"
    );
}

#[test]
fn plus_variants_bind_to_tls_exporter() {
    let (p, _) = hashed();
    let ctx = tls13_ctx(EXPORTER);
    assert_eq!(
        p.sasl_mechanisms(&ctx),
        vec!["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"]
    );
    let mut ex = p.sasl_start("SCRAM-SHA-1-PLUS", &ctx).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil").plus(EXPORTER);
    assert_eq!(
        success(scram_login(&mut ex, &mut client), &client),
        "juliet"
    );

    // Not offered, and refused, without exporter data (TLS 1.2, or no TLS).
    assert_eq!(
        p.sasl_start("SCRAM-SHA-1-PLUS", &tls_ctx())
            .err()
            .unwrap()
            .condition,
        "invalid-mechanism"
    );
}

#[test]
fn channel_binding_mismatch_is_refused() {
    let (p, _) = hashed();
    let mut ex = p
        .sasl_start("SCRAM-SHA-1-PLUS", &tls13_ctx(EXPORTER))
        .unwrap();
    let mut client =
        ScramClient::new(Hash::Sha1, "juliet", "pencil").plus(b"another channel's exporter value!");
    let (condition, text) = failure(scram_login(&mut ex, &mut client));
    assert_eq!(
        (condition, text.as_deref()),
        ("malformed-request", Some("Invalid channel binding value."))
    );
}

#[test]
fn channel_binding_rules() {
    let (p, _) = hashed();
    let ctx = tls13_ctx(EXPORTER);
    let start = |mech: &str, gs2: &str| {
        let mut ex = p.sasl_start(mech, &ctx).unwrap();
        ex.step(Some(format!("{gs2}n=juliet,r=abcdef").as_bytes()))
    };
    // Unsupported type.
    assert_eq!(
        failure(start("SCRAM-SHA-1-PLUS", "p=tls-unique,,")),
        (
            "malformed-request",
            Some("Proposed channel binding type isn't supported.".into())
        )
    );
    // "y" while we offer -PLUS: a downgrade.
    assert_eq!(failure(start("SCRAM-SHA-1", "y,,")).0, "malformed-request");
    assert_eq!(
        failure(start("SCRAM-SHA-1-PLUS", "y,,")).0,
        "malformed-request"
    );
    // "p" with a mechanism that is not -PLUS.
    assert_eq!(
        failure(start("SCRAM-SHA-1", "p=tls-exporter,,")).0,
        "malformed-request"
    );
    // "y" is fine when we cannot bind.
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
    client.gs2_header = "y,,".into();
    assert_eq!(
        success(scram_login(&mut ex, &mut client), &client),
        "juliet"
    );
}

#[test]
fn client_first_without_binding_on_plus_is_accepted_as_prosody_does() {
    let (p, _) = hashed();
    let mut ex = p
        .sasl_start("SCRAM-SHA-1-PLUS", &tls13_ctx(EXPORTER))
        .unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
    assert_eq!(
        success(scram_login(&mut ex, &mut client), &client),
        "juliet"
    );
}

#[test]
fn malformed_messages() {
    let (p, _) = hashed();
    for bad in [
        &b""[..],
        b"n,,",
        b"n",
        b"x,,n=juliet,r=a",
        b"n,,n=juliet",
        b"n,,r=abc,n=juliet",
        b"n,,n=,r=abc",
        b"n,,n=jul=41iet,r=abc",
        b"\xff\xfe",
    ] {
        let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
        assert_eq!(
            failure(ex.step(Some(bad))).0,
            "malformed-request",
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    assert_eq!(failure(ex.step(None)).0, "malformed-request");
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    assert_eq!(
        failure(ex.step(Some(b"n,,n=a@b,r=abc"))),
        ("malformed-request", Some("Invalid username.".into()))
    );

    // Broken client-final messages, each on a fresh exchange.
    let finals: [fn(&str, &str) -> String; 6] = [
        |_, _| String::new(),
        |_, _| "c".into(),
        |cb, n| format!("c={cb},r={n}"),
        |cb, n| format!("r={n},c={cb},p=AAAA"),
        |cb, _| format!("c={cb},r=not-our-nonce,p=AAAA"),
        |cb, n| format!("c={cb},r={n},p=!!!!"),
    ];
    for (i, make) in finals.iter().enumerate() {
        let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
        let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
        let sf = String::from_utf8(challenge(ex.step(Some(&client.first())))).unwrap();
        let nonce = sf
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("r=")
            .to_string();
        let msg = make("biws", &nonce);
        let (condition, text) = failure(ex.step(Some(msg.as_bytes())));
        assert_eq!(condition, "malformed-request", "case {i}: {msg}");
        if i == 4 {
            assert_eq!(
                text.as_deref(),
                Some("Wrong nonce in client-final-message.")
            );
        }
    }
}

#[test]
fn authzid_must_be_the_user() {
    let (p, _) = hashed();
    for (authzid, ok) in [
        ("juliet@localhost", true),
        ("romeo@localhost", false),
        ("juliet@elsewhere", false),
        ("juliet@localhost/r", false),
    ] {
        let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
        let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
        client.gs2_header = format!("n,a={authzid},");
        let step = scram_login(&mut ex, &mut client);
        if ok {
            assert_eq!(success(step, &client), "juliet");
        } else {
            assert_eq!(failure(step).0, "invalid-authzid", "{authzid}");
        }
    }
}

#[test]
fn escaped_usernames() {
    // ',' and '=' are valid in a JID node; SCRAM escapes them as =2C and =3D.
    let (p, _) = hashed();
    p.create_user("a=b,c", Some("p,w=")).unwrap();
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "a=b,c", "p,w=");
    assert!(
        String::from_utf8(client.first())
            .unwrap()
            .contains("n=a=3Db=2Cc,")
    );
    assert_eq!(success(scram_login(&mut ex, &mut client), &client), "a=b,c");
}

#[test]
fn plaintext_record_is_upgraded_on_scram_login() {
    let (p, driver) = hashed();
    let mut legacy = xmpp_core::Table::new();
    legacy.insert("password", Value::str("s3cret"));
    driver.put("localhost", "accounts", "old", Value::Table(legacy));
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "old", "s3cret");
    assert_eq!(success(scram_login(&mut ex, &mut client), &client), "old");
    let record = driver.record("old").unwrap();
    assert!(record.get("password").is_none());
    assert_eq!(record.get("iteration_count"), Some(&Value::Integer(10000)));
}

#[test]
fn internal_plain_offers_every_scram_hash() {
    let (_server, host, _driver) = host_with(&[("authentication", Value::str("internal_plain"))]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("juliet", Some("pencil")).unwrap();
    let ctx = tls13_ctx(EXPORTER);
    assert_eq!(
        p.sasl_mechanisms(&ctx),
        vec![
            "SCRAM-SHA-256-PLUS",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN"
        ]
    );
    for (mech, hash, plus) in [
        ("SCRAM-SHA-1", Hash::Sha1, false),
        ("SCRAM-SHA-256", Hash::Sha256, false),
        ("SCRAM-SHA-1-PLUS", Hash::Sha1, true),
        ("SCRAM-SHA-256-PLUS", Hash::Sha256, true),
    ] {
        let mut ex = p.sasl_start(mech, &ctx).unwrap();
        let mut client = ScramClient::new(hash, "juliet", "pencil");
        if plus {
            client = client.plus(EXPORTER);
        }
        assert_eq!(
            success(scram_login(&mut ex, &mut client), &client),
            "juliet",
            "{mech}"
        );
        let mut ex = p.sasl_start(mech, &ctx).unwrap();
        let mut client = ScramClient::new(hash, "juliet", "wrong");
        if plus {
            client = client.plus(EXPORTER);
        }
        assert_eq!(
            failure(scram_login(&mut ex, &mut client)).0,
            "not-authorized",
            "{mech}"
        );
    }
}

#[test]
fn disabled_accounts_are_refused() {
    let (p, driver) = hashed();
    let mut record = driver.record("juliet").unwrap();
    record.insert("disabled", Value::Bool(true));
    driver.put("localhost", "accounts", "juliet", Value::Table(record));
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
    assert_eq!(
        failure(scram_login(&mut ex, &mut client)).0,
        "account-disabled"
    );
}

#[test]
fn corrupt_records_are_a_temporary_failure() {
    let (p, driver) = hashed();
    let mut record = driver.record("juliet").unwrap();
    record.insert("stored_key", Value::str("zz"));
    driver.put("localhost", "accounts", "juliet", Value::Table(record));
    let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
    let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
    assert_eq!(
        failure(ex.step(Some(&client.first()))).0,
        "temporary-auth-failure"
    );
}

#[test]
fn server_nonces_never_hold_quotes_or_backslashes() {
    // Some clients (@xmpp/client) mis-split nonces holding them; Prosody's
    // UUID nonces never do. Many logins, each with a fresh server nonce.
    let (p, _) = hashed();
    for _ in 0..60 {
        let mut ex = p.sasl_start("SCRAM-SHA-1", &tls_ctx()).unwrap();
        let mut client = ScramClient::new(Hash::Sha1, "juliet", "pencil");
        let first = client.first();
        let sf = String::from_utf8(challenge(ex.step(Some(&first)))).unwrap();
        let nonce = sf.split(',').find_map(|f| f.strip_prefix("r=")).unwrap();
        assert!(!nonce.contains(['"', '\\', '\'']), "{nonce}");
        let step = ex.step(Some(&client.last(sf.as_bytes())));
        assert_eq!(success(step, &client), "juliet");
    }
}
