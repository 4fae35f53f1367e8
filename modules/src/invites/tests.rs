//! [`Invites`] on the internal storage driver: the records land where
//! Prosody keeps them, and tokens are good, expired or spent as Prosody's
//! mod_invites says.

use std::path::Path;
use std::sync::Arc;

use xmpp_core::{Clock, Host, Server};

use super::*;

const NOW: i64 = 1_000_000;

fn host(extra: &str) -> (tempfile::TempDir, Arc<Server>, Arc<Host>) {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "data_path = {:?}\nstorage = \"internal\"\n{extra}\nVirtualHost \"example.com\"\n",
        dir.path().to_str().unwrap()
    );
    let config = lua_compat::config::load_str(&source, Path::new("test.cfg.lua")).unwrap();
    let server = Server::new(config, Clock::Fixed(NOW as f64));
    crate::storage::register_builtin_drivers(&server, dir.path().to_path_buf());
    let host = server.host("example.com").unwrap();
    (dir, server, host)
}

#[test]
fn account_invite_is_good_once() {
    let (dir, _server, host) = host("");
    let invites = Invites::open(&host).unwrap();
    let invite = invites.create_account(None, None, None, NOW).unwrap();
    assert_eq!(invite.token.len(), 24);
    assert_eq!(
        invite.uri,
        format!("xmpp:example.com?register;preauth={}", invite.token)
    );
    assert_eq!(invite.expires, NOW + DEFAULT_EXPIRY);
    // Prosody's layout: the host's map store file.
    let file = dir.path().join("example%2ecom").join("invite_token.dat");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&invite.token), "{text}");

    let valid = invites.get(Some(&invite.token), None, NOW + 10).unwrap();
    assert_eq!(
        (valid.kind.as_str(), valid.inviter.as_deref()),
        ("register", None)
    );
    valid.spend(&invites).unwrap();
    assert_eq!(
        invites.get(Some(&invite.token), None, NOW + 10),
        Err(InviteError::TokenInvalid)
    );
    assert_eq!(invites.get(None, None, NOW), Err(InviteError::NoToken));
}

#[test]
fn expiry_from_the_option_and_per_invite() {
    let (_dir, _server, host) = host("invite_expiry = 60");
    let invites = Invites::open(&host).unwrap();
    let invite = invites.create_account(None, None, None, NOW).unwrap();
    assert!(invites.get(Some(&invite.token), None, NOW + 60).is_ok());
    assert_eq!(
        invites.get(Some(&invite.token), None, NOW + 61),
        Err(InviteError::TokenExpired)
    );
    let reset = invites.create_account_reset("alice", None, NOW).unwrap();
    assert_eq!(reset.expires, NOW + 86400);
    assert_eq!(reset.jid, "alice@example.com");
    let valid = invites.get(Some(&reset.token), None, NOW).unwrap();
    assert_eq!(
        valid.data("allow_reset").and_then(Value::as_str),
        Some("alice")
    );
}

#[test]
fn contact_invites() {
    let (dir, _server, host) = host("");
    let invites = Invites::open(&host).unwrap();
    // Without registration: only in alice's own map.
    let plain = invites
        .create_contact("alice", false, None, None, NOW)
        .unwrap();
    assert!(!plain.uri.ends_with(";ibr=y"));
    let user_file = dir
        .path()
        .join("example%2ecom")
        .join("invite_token")
        .join("alice.dat");
    assert!(
        std::fs::read_to_string(&user_file)
            .unwrap()
            .contains(&plain.token)
    );
    assert_eq!(
        invites.get(Some(&plain.token), None, NOW),
        Err(InviteError::TokenInvalid)
    );
    let valid = invites.get(Some(&plain.token), Some("alice"), NOW).unwrap();
    assert_eq!(valid.kind, "roster");
    assert_eq!(
        valid.uri,
        format!("xmpp:alice@example.com?roster;preauth={}", plain.token)
    );
    valid.spend(&invites).unwrap();
    assert!(invites.get(Some(&plain.token), Some("alice"), NOW).is_err());

    // With registration: an account invite whose inviter is alice.
    let ibr = invites
        .create_contact("alice", true, None, None, NOW)
        .unwrap();
    assert!(ibr.uri.ends_with(";ibr=y"), "{}", ibr.uri);
    let valid = invites.get(Some(&ibr.token), None, NOW).unwrap();
    assert_eq!(valid.inviter.as_deref(), Some("alice"));
    assert_eq!(valid.username.as_deref(), Some("alice"));
    valid.spend(&invites).unwrap();
    // Spent from both maps.
    assert!(invites.get(Some(&ibr.token), None, NOW).is_err());
    assert!(invites.get(Some(&ibr.token), Some("alice"), NOW).is_err());
}

#[test]
fn bad_expiry_option() {
    let (_dir, _server, host) = host("invite_expiry = \"soon\"");
    assert!(Invites::open(&host).is_err());
}
