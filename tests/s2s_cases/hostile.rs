//! Hostile input on the s2s port (issue 19), against a running lilt and,
//! where Debian's Prosody 0.12 is installed, the same raw attacks against
//! Prosody, whose answers lilt's must equal ("compatibility is proven by
//! difference").
//!
//! The attacker (`s2s_support::attacker`) speaks XML by hand over plain
//! TCP to a server with `s2s_require_encryption = false` (what is attacked
//! is authentication, not encryption). It claims `evil.lilt`, whose
//! address (127.0.0.11) is its own authoritative server answering every
//! dialback key valid; `b.lilt` (a real lilt) is the victim whose name it
//! cannot prove. The attacks, each with the answer Prosody's
//! `mod_dialback.lua` and `core/stanza_router.lua` give:
//!
//! 1. a forged `<db:result from='b.lilt'>`: b.lilt denies the key, the
//!    answer is `<db:result type='invalid'>` and the stream stays; a
//!    stanza from b.lilt then closes it with `not-authorized` (Prosody
//!    drops it silently: see [`PROSODY_DIFFERS`]);
//! 2. authenticated for evil.lilt (legitimately), a stanza from
//!    `other.lilt`: `not-authorized` (Prosody's condition for any domain
//!    not authenticated on the stream; not `invalid-from`);
//! 3. a `<db:verify>` for a stream nobody opened: `type='invalid'`, the
//!    stream stays and authenticates nothing;
//! 4. a stanza before any authentication (`not-authorized`; Prosody drops
//!    it silently), and garbage that is not XML (`not-well-formed`).
//!
//! Meanwhile alice, logged in on the attacked server, gets the one
//! legitimate message from evil.lilt and a last marker, nothing else.

use std::time::Duration;

use super::*;
use s2s_support::attacker::{Attacker, Authoritative};

/// What the attacked server answered to each step, as
/// `attacker::summary` lines.
type Transcript = Vec<(&'static str, Vec<String>)>;

/// What lilt answers: what Prosody 0.12 answers (read in its sources,
/// compared with Debian's Prosody by the test when it is installed), but
/// for the steps of [`PROSODY_DIFFERS`].
const EXPECTED: &[(&str, &[&str])] = &[
    ("forged db:result for b.lilt", &["db:result type=invalid"]),
    (
        "stanza from b.lilt after the refused key",
        &["stream-error not-authorized", "closed"],
    ),
    (
        "db:verify for an unknown stream",
        &["db:verify type=invalid", "open"],
    ),
    (
        "stanza before any authentication",
        &["stream-error not-authorized", "closed"],
    ),
    ("db:result for evil.lilt", &["db:result type=valid"]),
    ("stanza from evil.lilt", &["open"]),
    (
        "stanza from other.lilt on evil.lilt's stream",
        &["stream-error not-authorized", "closed"],
    ),
    ("garbage", &["stream-error not-well-formed", "closed"]),
];

/// Adds a step's answers to `t`, saying them (seen with `--nocapture`).
fn record(t: &mut Transcript, host: &str, (step, lines): (&'static str, Vec<String>)) {
    eprintln!("{host}: {step}: {lines:?}");
    t.push((step, lines));
}

fn message(from: &str, to: &str, body: &str) -> String {
    format!("<message from='{from}' to='{to}' type='chat'><body>{body}</body></message>")
}

/// Reads until the answer to a `<db:result>` (or the end of the stream).
async fn result_answer(a: &mut Attacker, host: &str) -> Vec<String> {
    // The probe `exchange` adds is answered at once, the result only once
    // the authoritative server was asked: drop the probe's answer.
    let mut got = a.exchange("", "evil.lilt", host).await;
    got.retain(|l| l != "open" && !l.starts_with("db:verify"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !got
        .iter()
        .any(|l| l.starts_with("db:result") || l == "closed")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{host} never answered the <db:result>"
        );
        let more = a.exchange("", "evil.lilt", host).await;
        got.extend(
            more.into_iter()
                .filter(|l| l != "open" && !l.starts_with("db:verify")),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

/// Authenticates as evil.lilt by dialback on a new stream.
async fn as_evil(addr: &str, host: &str) -> (Attacker, Vec<String>) {
    let mut a = Attacker::open(addr, "evil.lilt", host).await;
    a.send(&format!(
        "<db:result from='evil.lilt' to='{host}'>evil-key</db:result>"
    ))
    .await;
    let got = result_answer(&mut a, host).await;
    (a, got)
}

/// Every attack against the server of `host` listening on `addr`; `alice`
/// is logged in there.
async fn attack(addr: &str, host: &str, alice: &mut ClientLink) -> Transcript {
    let alice_jid = format!("alice@{host}");
    let mut t: Transcript = Vec::new();

    // 1. A domain it cannot prove.
    let mut a = Attacker::open(addr, "evil.lilt", host).await;
    a.send(&format!(
        "<db:result from='b.lilt' to='{host}'>forged-key</db:result>"
    ))
    .await;
    record(
        &mut t,
        host,
        (
            "forged db:result for b.lilt",
            result_answer(&mut a, host).await,
        ),
    );
    let m = message("mallory@b.lilt", &alice_jid, "hostile: forged");
    record(
        &mut t,
        host,
        (
            "stanza from b.lilt after the refused key",
            a.exchange(&m, "evil.lilt", host).await,
        ),
    );

    // 3. A key for a stream nobody opened, then 4. a stanza unauthenticated.
    let mut a = Attacker::open(addr, "evil.lilt", host).await;
    let verify =
        format!("<db:verify from='evil.lilt' to='{host}' id='no-such-stream'>a-key</db:verify>");
    record(
        &mut t,
        host,
        (
            "db:verify for an unknown stream",
            a.exchange(&verify, "evil.lilt", host).await,
        ),
    );
    let m = message("mallory@evil.lilt", &alice_jid, "hostile: unauthenticated");
    record(
        &mut t,
        host,
        (
            "stanza before any authentication",
            a.exchange(&m, "evil.lilt", host).await,
        ),
    );

    // 2. Authenticated for evil.lilt, a stanza from another domain.
    let (mut a, got) = as_evil(addr, host).await;
    record(&mut t, host, ("db:result for evil.lilt", got));
    let m = message("mallory@evil.lilt", &alice_jid, "legitimate");
    record(
        &mut t,
        host,
        (
            "stanza from evil.lilt",
            a.exchange(&m, "evil.lilt", host).await,
        ),
    );
    let m = message("mallory@other.lilt", &alice_jid, "hostile: other domain");
    record(
        &mut t,
        host,
        (
            "stanza from other.lilt on evil.lilt's stream",
            a.exchange(&m, "evil.lilt", host).await,
        ),
    );

    // Garbage.
    let mut a = Attacker::open(addr, "evil.lilt", host).await;
    record(
        &mut t,
        host,
        (
            "garbage",
            a.exchange("<<not xml & />", "evil.lilt", host).await,
        ),
    );

    // alice got the legitimate message, then the marker, nothing else.
    let (mut a, _) = as_evil(addr, host).await;
    let m = message("mallory@evil.lilt", &alice_jid, "marker");
    a.exchange(&m, "evil.lilt", host).await;
    let mut bodies = Vec::new();
    while bodies.last().map(String::as_str) != Some("marker") {
        let e = wait_for(alice, "the marker", |e| e.name() == "message").await;
        bodies.push(body(&e).unwrap_or_default());
    }
    assert_eq!(
        bodies,
        ["legitimate", "marker"],
        "{alice_jid} got {bodies:?}"
    );
    t
}

/// Where lilt answers otherwise than Prosody 0.12, on purpose: a stanza
/// on a stream where no domain is authenticated. Prosody's stanza router
/// hands it to no handler (the stream is still `s2sin_unauthed`) and
/// drops it without a word, the stream staying open; lilt closes the
/// stream with `not-authorized`, as RFC 6120 §4.9.3.12 says ("attempted
/// to send XML stanzas ... before the stream has been authenticated").
/// Neither delivers it. Prosody's answers with these steps put as lilt's
/// (checked to be what Prosody said, so a change on either side shows).
const PROSODY_DIFFERS: &[&str] = &[
    "stanza from b.lilt after the refused key",
    "stanza before any authentication",
];

fn with_prosody_differences(prosody: &Transcript) -> Transcript {
    prosody
        .iter()
        .map(|(step, lines)| {
            if PROSODY_DIFFERS.contains(step) {
                assert_eq!(lines, &["open"], "Prosody now answers {step:?} otherwise");
                let ours = EXPECTED.iter().find(|(s, _)| s == step).unwrap().1;
                (*step, ours.iter().map(|l| l.to_string()).collect())
            } else {
                (*step, lines.clone())
            }
        })
        .collect()
}

fn assert_expected(server: &str, t: &Transcript) {
    let expected: Transcript = EXPECTED
        .iter()
        .map(|(step, lines)| (*step, lines.iter().map(|l| l.to_string()).collect()))
        .collect();
    assert_eq!(t, &expected, "{server} answered the attacks otherwise");
}

/// The attacked lilt takes plain TCP, as the attacked Prosody does.
const ATTACKED: &str = "s2s_require_encryption = false";

#[test]
fn hostile_input_on_the_s2s_port_is_refused() {
    const NAME: &str = "hostile::hostile_input_on_the_s2s_port_is_refused";
    if !enter_namespace(NAME) {
        return;
    }
    let (net, rt) = setup();
    let with_prosody = prosody::installed(NAME);
    let mut child =
        with_prosody.then(|| prosody::start_with(&net, &[], "s2s_require_encryption = false", ""));
    let body = || {
        rt.block_on(async {
            let evil = Authoritative::start("127.0.0.11:5269").await;
            let a = start_server(&net, "a.lilt", "127.0.0.2", 5269, ATTACKED).await;
            let b = start_server(&net, "b.lilt", "127.0.0.3", 5270, "").await;
            let mut alice = login(&a, "alice@a.lilt", &net.ca).await;
            let lilt = attack("127.0.0.2:5269", "a.lilt", &mut alice).await;
            assert!(evil.verifies() > 0, "a.lilt never asked evil.lilt");
            // The forged key was refused by b.lilt, which a.lilt asked.
            assert!(
                manager(&a).has_route("a.lilt", "b.lilt"),
                "a.lilt never asked b.lilt"
            );
            assert_expected("lilt", &lilt);
            if with_prosody {
                wait_for_port("127.0.0.7:5222").await;
                let p = Server::other("127.0.0.7:5222");
                let mut palice = login(&p, "alice@p.lilt", &net.ca).await;
                let before = evil.verifies();
                let prosody = attack("127.0.0.7:5269", "p.lilt", &mut palice).await;
                assert!(evil.verifies() > before, "Prosody never asked evil.lilt");
                assert_eq!(
                    lilt,
                    with_prosody_differences(&prosody),
                    "lilt answers otherwise than Prosody (besides the known differences)"
                );
            }
            drop((a, b));
        })
    };
    match child.as_mut() {
        Some(child) => {
            let ((), log) = with_child(child, &prosody::log(&net), body);
            if std::env::var_os("LILT_S2S_PROSODY_LOG").is_some() {
                eprintln!("{log}");
            }
        }
        None => body(),
    }
}
