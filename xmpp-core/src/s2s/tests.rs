//! The sans-IO s2s streams driven against each other: an outgoing stream
//! of one server talks to the incoming stream of another, byte for byte.

use std::sync::Arc;

use super::Action;
use super::dialback::Dialback;
use super::filter::DomainFilter;
use super::incoming::IncomingStream;
use super::outgoing::OutgoingStream;
use super::policy::{CertStatus, PeerCert, Policy};
use crate::stanza::{Element, NS_CLIENT};
use crate::stream::StreamLimits;

/// Dialback verification requests on outgoing streams.
mod verify;

fn policy(local: &str) -> Policy {
    Policy {
        local_hosts: [local.to_string()].into_iter().collect(),
        require_encryption: false,
        tls_available: false,
        ..Policy::default()
    }
}

/// What each side did besides writing.
#[derive(Default, Debug)]
struct Seen {
    out: Vec<Action>,
    inc: Vec<Action>,
    /// Everything the incoming side wrote.
    inc_wrote: String,
}

/// Moves bytes between the two until neither writes.
fn pump(o: &mut OutgoingStream, i: &mut IncomingStream, first: Vec<Action>, seen: &mut Seen) {
    let mut to_inc: Vec<Action> = first;
    loop {
        let mut to_out = Vec::new();
        for a in to_inc.drain(..) {
            match a {
                Action::Write(s) => to_out.extend(i.handle_bytes(s.as_bytes())),
                other => seen.out.push(other),
            }
        }
        if to_out.is_empty() {
            return;
        }
        for a in to_out {
            match a {
                Action::Write(s) => {
                    seen.inc_wrote.push_str(&s);
                    to_inc.extend(o.handle_bytes(s.as_bytes()));
                }
                other => seen.inc.push(other),
            }
        }
        if to_inc.is_empty() {
            return;
        }
    }
}

fn writes(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

fn cert(valid_for: &'static [&'static str]) -> PeerCert {
    Arc::new(move |d: &str| {
        if valid_for.contains(&d) {
            CertStatus::Valid
        } else {
            CertStatus::NameMismatch
        }
    })
}

fn message(from: &str, to: &str) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("from", from)
        .attr("to", to)
        .attr("type", "chat")
        .child(Element::new("body", NS_CLIENT).text("hello"))
}

/// a.example connects to b.example; b.example asks a.example's
/// authoritative server (over its own outgoing stream) about the key.
fn dialback_pair() -> (OutgoingStream, IncomingStream, Seen) {
    dialback_pair_with(policy)
}

fn dialback_pair_with(make: fn(&str) -> Policy) -> (OutgoingStream, IncomingStream, Seen) {
    let a_secret = Dialback::new(Some("a-secret"));
    let b_secret = Dialback::new(Some("b-secret"));
    let limits = StreamLimits::default();
    let mut o = OutgoingStream::new(
        make("a.example"),
        a_secret.clone(),
        limits.clone(),
        "a.example",
        "b.example",
        false,
    );
    let mut r = IncomingStream::new(make("b.example"), b_secret.clone(), limits.clone());
    let mut seen = Seen::default();
    let first = o.open();
    pump(&mut o, &mut r, first, &mut seen);
    let Some(Action::Verify {
        local,
        remote,
        id,
        key,
    }) = seen.inc.pop()
    else {
        panic!("no verify request: {seen:?}");
    };
    assert_eq!(
        (local.as_str(), remote.as_str()),
        ("b.example", "a.example")
    );
    assert_eq!(id, r.stream_id());

    // b.example → a.example (the authoritative server) with <db:verify>.
    let mut o2 = OutgoingStream::new(
        make("b.example"),
        b_secret,
        limits.clone(),
        "b.example",
        "a.example",
        false,
    );
    let mut a_in = IncomingStream::new(make("a.example"), a_secret, limits);
    let mut seen2 = Seen::default();
    let mut first = o2.open();
    first.extend(o2.verify(&id, &key));
    pump(&mut o2, &mut a_in, first, &mut seen2);
    let answer = seen2
        .out
        .iter()
        .find_map(|a| match a {
            Action::VerifyResult { valid, id: vid, .. } if *vid == id => Some(*valid),
            _ => None,
        })
        .expect("a verify answer");
    assert!(answer, "a.example vouches for its own key");

    let back = r.verified("b.example", "a.example", answer);
    pump(&mut o, &mut r, Vec::new(), &mut seen);
    let mut to_o = Vec::new();
    for a in back {
        match a {
            Action::Write(s) => to_o.extend(o.handle_bytes(s.as_bytes())),
            other => seen.inc.push(other),
        }
    }
    seen.out.extend(to_o);
    (o, r, seen)
}

#[test]
fn dialback_authenticates_and_stanzas_flow() {
    let (mut o, mut r, seen) = dialback_pair();
    assert!(o.is_ready(), "{seen:?}");
    assert!(r.is_authed("a.example"));
    assert!(
        seen.out
            .iter()
            .any(|a| matches!(a, Action::Authenticated { remote } if remote == "b.example"))
    );
    let w = o.send(&message("alice@a.example/x", "bob@b.example"));
    let xml = writes(&w);
    assert!(xml.starts_with("<message"), "{xml}");
    assert!(
        !xml.contains("jabber:client"),
        "stanzas take the stream's namespace: {xml}"
    );
    let delivered = r.handle_bytes(xml.as_bytes());
    let Some(Action::Deliver(e)) = delivered.first() else {
        panic!("not delivered: {delivered:?}");
    };
    assert_eq!(e.ns(), NS_CLIENT);
    assert_eq!(
        e.get_child_text("body", NS_CLIENT).as_deref(),
        Some("hello")
    );
}

#[test]
fn a_key_the_authoritative_server_did_not_make_is_invalid() {
    // Someone claims to be a.example with a made-up key; a.example's
    // authoritative server says it is not its key.
    let a_secret = Dialback::new(Some("a-secret"));
    let mut a_in = IncomingStream::new(policy("a.example"), a_secret, StreamLimits::default());
    let mut o2 = OutgoingStream::new(
        policy("b.example"),
        Dialback::new(Some("b-secret")),
        StreamLimits::default(),
        "b.example",
        "a.example",
        false,
    );
    let mut seen = Seen::default();
    let mut first = o2.open();
    first.extend(o2.verify("some-stream-we-never-opened", "deadbeef"));
    pump(&mut o2, &mut a_in, first, &mut seen);
    assert!(
        seen.inc_wrote.contains("type='invalid'"),
        "{}",
        seen.inc_wrote
    );
    assert!(
        seen.out
            .iter()
            .any(|a| matches!(a, Action::VerifyResult { valid: false, .. }))
    );

    // The receiving server then refuses the claimant, who gets nothing in.
    let mut r = IncomingStream::new(
        policy("b.example"),
        Dialback::new(None),
        StreamLimits::default(),
    );
    let mut w = r.handle_bytes(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>\
          <db:result from='a.example' to='b.example'>deadbeef</db:result>",
    );
    assert!(w.iter().any(|a| matches!(a, Action::Verify { .. })));
    w = r.verified("b.example", "a.example", false);
    assert!(writes(&w).contains("type='invalid'"));
    let w = r.handle_bytes(
        b"<message from='mallory@a.example' to='bob@b.example'><body>x</body></message>",
    );
    assert!(!w.iter().any(|a| matches!(a, Action::Deliver(_))));
    assert!(writes(&w).contains("<not-authorized"), "{}", writes(&w));
}

const HEADER: &[u8] =
    b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
    xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>";

#[test]
fn stanzas_from_another_domain_than_the_authenticated_one_close_the_stream() {
    let (_o, mut r, _) = dialback_pair();
    let w = r
        .handle_bytes(b"<message from='eve@c.example' to='bob@b.example'><body>x</body></message>");
    assert!(!w.iter().any(|a| matches!(a, Action::Deliver(_))));
    let xml = writes(&w);
    assert!(xml.contains("<not-authorized"), "{xml}");
    assert!(w.contains(&Action::Close));
}

#[test]
fn stanzas_to_a_host_not_served_here_are_host_unknown() {
    let (_o, mut r, _) = dialback_pair();
    let w = r.handle_bytes(b"<message from='alice@a.example' to='bob@elsewhere.example'/>");
    assert!(writes(&w).contains("<host-unknown"), "{}", writes(&w));
}

#[test]
fn a_stream_to_a_host_not_served_here_is_host_unknown() {
    let mut r = IncomingStream::new(
        policy("other.example"),
        Dialback::new(None),
        StreamLimits::default(),
    );
    let w = r.handle_bytes(HEADER);
    assert!(writes(&w).contains("<host-unknown"), "{}", writes(&w));
    assert!(w.contains(&Action::Close));
}

#[test]
fn stanzas_before_authentication_are_refused() {
    let mut r = IncomingStream::new(
        policy("b.example"),
        Dialback::new(None),
        StreamLimits::default(),
    );
    let mut w = r.handle_bytes(HEADER);
    w.extend(r.handle_bytes(b"<message from='alice@a.example' to='bob@b.example'/>"));
    assert!(!w.iter().any(|a| matches!(a, Action::Deliver(_))));
    assert!(writes(&w).contains("<not-authorized"));
}

#[test]
fn dialback_answers_on_an_incoming_stream_are_ignored() {
    // A peer that sends <db:result type='valid'> to authenticate itself.
    let mut r = IncomingStream::new(
        policy("b.example"),
        Dialback::new(None),
        StreamLimits::default(),
    );
    let mut w = r.handle_bytes(HEADER);
    w.extend(r.handle_bytes(b"<db:result from='a.example' to='b.example' type='valid'/>"));
    w.extend(r.handle_bytes(b"<message from='alice@a.example' to='bob@b.example'/>"));
    assert!(!r.is_authed("a.example"));
    assert!(writes(&w).contains("<not-authorized"));
}

#[test]
fn secure_auth_refuses_an_untrusted_certificate() {
    let mut p = policy("b.example");
    p.secure_auth = true;
    let mut r = IncomingStream::new(p, Dialback::new(None), StreamLimits::default());
    r.tls_established(Arc::new(|_: &str| CertStatus::Untrusted));
    let mut w = r.handle_bytes(HEADER);
    let features = writes(&w);
    assert!(
        !features.contains("EXTERNAL"),
        "untrusted chains get no EXTERNAL: {features}"
    );
    w.extend(r.handle_bytes(b"<db:result from='a.example' to='b.example'>k</db:result>"));
    let xml = writes(&w);
    assert!(xml.contains("<not-authorized"), "{xml}");
    assert!(xml.contains("certificate is not trusted"), "{xml}");
    assert!(!w.iter().any(|a| matches!(a, Action::Verify { .. })));
}

#[test]
fn secure_auth_outgoing_gives_up_on_a_certificate_for_another_name() {
    let mut p = policy("a.example");
    p.secure_auth = true;
    let mut o = OutgoingStream::new(
        p,
        Dialback::new(None),
        StreamLimits::default(),
        "a.example",
        "b.example",
        true,
    );
    o.tls_established(cert(&["c.example"]));
    let mut w = o.open();
    w.extend(o.handle_bytes(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          from='b.example' id='x1' version='1.0'><stream:features/>",
    ));
    assert!(
        w.iter()
            .any(|a| matches!(a, Action::Failed(r) if r.contains("not valid for this name"))),
        "{w:?}"
    );
    assert!(!writes(&w).contains("db:result"));
}

/// a.example's outgoing stream to b.example and b.example's incoming one,
/// over direct TLS: the outgoing side sees b.example's certificate, the
/// incoming side a certificate for `client_names`.
fn tls_pair(client_names: &'static [&'static str]) -> (OutgoingStream, IncomingStream) {
    let mut pa = policy("a.example");
    pa.tls_available = true;
    let mut pb = policy("b.example");
    pb.tls_available = true;
    let mut o = OutgoingStream::new(
        pa,
        Dialback::new(None),
        StreamLimits::default(),
        "a.example",
        "b.example",
        true,
    );
    let mut r = IncomingStream::new(pb, Dialback::new(None), StreamLimits::default());
    o.tls_established(cert(&["b.example"]));
    r.tls_established(cert(client_names));
    (o, r)
}

#[test]
fn sasl_external_with_valid_certificates() {
    // Direct TLS: both sides see each other's certificates.
    let (mut o, mut r) = tls_pair(&["a.example"]);
    let mut seen = Seen::default();
    let first = o.open();
    pump(&mut o, &mut r, first, &mut seen);
    assert!(seen.inc_wrote.contains("<success"), "{}", seen.inc_wrote);
    assert!(o.is_ready());
    assert!(r.is_authed("a.example"));
    assert!(
        !seen.inc.iter().any(|a| matches!(a, Action::Verify { .. })),
        "no dialback needed"
    );
}

#[test]
fn sasl_external_for_a_name_the_certificate_lacks_falls_back_to_dialback() {
    let (mut o, mut r) = tls_pair(&["c.example"]);
    let mut seen = Seen::default();
    let first = o.open();
    pump(&mut o, &mut r, first, &mut seen);
    assert!(seen.inc_wrote.contains("<failure"), "{}", seen.inc_wrote);
    assert!(
        seen.inc.iter().any(|a| matches!(a, Action::Verify { .. })),
        "{seen:?}"
    );
    assert!(!r.is_authed("a.example"));
}

#[test]
fn starttls_is_negotiated_and_required_when_encryption_is() {
    let mut pb = policy("b.example");
    pb.tls_available = true;
    pb.require_encryption = true;
    let mut r = IncomingStream::new(pb, Dialback::new(None), StreamLimits::default());
    let w = r.handle_bytes(HEADER);
    let xml = writes(&w);
    assert!(
        xml.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"),
        "{xml}"
    );
    assert!(
        !xml.contains("urn:xmpp:features:dialback"),
        "no dialback before TLS when it is required: {xml}"
    );
    // Dialback on the plain stream is a policy violation.
    let w = r.handle_bytes(b"<db:result from='a.example' to='b.example'>k</db:result>");
    assert!(writes(&w).contains("<policy-violation"));

    // The outgoing side answers the offer with <starttls/>, then TLS.
    let mut pa = policy("a.example");
    pa.tls_available = true;
    pa.require_encryption = true;
    let mut o = OutgoingStream::new(
        pa,
        Dialback::new(None),
        StreamLimits::default(),
        "a.example",
        "b.example",
        false,
    );
    let mut r = IncomingStream::new(
        policy_tls("b.example"),
        Dialback::new(None),
        StreamLimits::default(),
    );
    let mut seen = Seen::default();
    let first = o.open();
    pump(&mut o, &mut r, first, &mut seen);
    assert!(seen.out.contains(&Action::StartTls), "{seen:?}");
    assert!(seen.inc.contains(&Action::StartTls), "{seen:?}");
}

fn policy_tls(local: &str) -> Policy {
    let mut p = policy(local);
    p.tls_available = true;
    p.require_encryption = true;
    p
}

#[test]
fn outgoing_refuses_a_plain_stream_when_encryption_is_required() {
    let mut pa = policy("a.example");
    pa.require_encryption = true;
    let mut o = OutgoingStream::new(
        pa,
        Dialback::new(None),
        StreamLimits::default(),
        "a.example",
        "b.example",
        false,
    );
    let mut w = o.open();
    w.extend(o.handle_bytes(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          from='b.example' id='x1' version='1.0'><stream:features/>",
    ));
    assert!(writes(&w).contains("<policy-violation"), "{}", writes(&w));
    assert!(w.iter().any(|a| matches!(a, Action::Failed(_))));
    assert!(o.had_stream());
}

#[test]
fn unauthenticated_peers_get_a_small_stanza_limit() {
    let mut r = IncomingStream::new(
        policy("b.example"),
        Dialback::new(None),
        StreamLimits::default(),
    );
    let mut w = r.handle_bytes(HEADER);
    let big = format!(
        "<db:result from='a.example' to='b.example'>{}</db:result>",
        "k".repeat(20_000)
    );
    w.extend(r.handle_bytes(big.as_bytes()));
    assert!(
        writes(&w).contains("<policy-violation") || writes(&w).contains("<not-well-formed"),
        "{}",
        writes(&w)
    );
    assert!(w.contains(&Action::Close));
    assert!(!w.iter().any(|a| matches!(a, Action::Verify { .. })));

    // Once authenticated, s2s_stanza_size_limit applies.
    let (o, mut r, _) = dialback_pair();
    drop(o);
    let body = "x".repeat(20_000);
    let xml =
        format!("<message from='alice@a.example' to='bob@b.example'><body>{body}</body></message>");
    let w = r.handle_bytes(xml.as_bytes());
    assert!(
        w.iter().any(|a| matches!(a, Action::Deliver(_))),
        "{}",
        writes(&w)
    );
}

fn bidi_policy(local: &str) -> Policy {
    Policy {
        bidi: true,
        ..policy(local)
    }
}

#[test]
fn bidi_carries_the_receivers_stanzas_back_on_the_same_stream() {
    let (mut o, mut r, seen) = dialback_pair_with(bidi_policy);
    assert!(o.is_ready(), "{seen:?}");
    assert!(o.is_bidi() && r.is_bidi(), "bidi was asked for");
    assert!(seen.inc_wrote.contains("urn:xmpp:features:bidi"));
    // b.example's stanza for a.example goes over a.example's stream.
    let xml = writes(&r.send(&message("bob@b.example/y", "alice@a.example")));
    let got = o.handle_bytes(xml.as_bytes());
    let Some(Action::Deliver(e)) = got.first() else {
        panic!("not delivered: {got:?}");
    };
    assert_eq!(e.ns(), NS_CLIENT);
    assert_eq!(e.to(), Some("alice@a.example"));
    // Only from the domain the stream is with.
    let xml = writes(&r.send(&message("mallory@c.example/y", "alice@a.example")));
    let got = o.handle_bytes(xml.as_bytes());
    assert!(
        writes(&got).contains("invalid-from"),
        "a stanza from another domain closes the stream: {got:?}"
    );
    assert!(!got.iter().any(|a| matches!(a, Action::Deliver(_))));
}

#[test]
fn without_bidi_a_stanza_on_an_outgoing_stream_is_refused() {
    let (mut o, mut r, _) = dialback_pair();
    assert!(!o.is_bidi() && !r.is_bidi());
    let xml = writes(&r.send(&message("bob@b.example/y", "alice@a.example")));
    let got = o.handle_bytes(xml.as_bytes());
    assert!(
        !got.iter().any(|a| matches!(a, Action::Deliver(_))),
        "{got:?}"
    );
    assert!(writes(&got).contains("unsupported-stanza-type"), "{got:?}");
}

#[test]
fn blacklisted_and_unlisted_domains_are_refused_at_the_stream_header() {
    let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        from='a.example' to='b.example' version='1.0'>";
    let black = Policy {
        filter: DomainFilter::global(None, ["a.example".to_string()].into_iter().collect()),
        ..policy("b.example")
    };
    let white = Policy {
        filter: DomainFilter::global(
            Some(["c.example".to_string()].into_iter().collect()),
            Default::default(),
        ),
        ..policy("b.example")
    };
    for p in [black, white] {
        let mut r = IncomingStream::new(p, Dialback::new(None), StreamLimits::default());
        let got = r.handle_bytes(header.as_bytes());
        let xml = writes(&got);
        assert!(xml.contains("policy-violation"), "{xml}");
        assert!(r.is_closed());
    }
    let listed = Policy {
        filter: DomainFilter::global(
            Some(["a.example".to_string()].into_iter().collect()),
            Default::default(),
        ),
        ..policy("b.example")
    };
    let mut r = IncomingStream::new(listed, Dialback::new(None), StreamLimits::default());
    let xml = writes(&r.handle_bytes(header.as_bytes()));
    assert!(xml.contains("<stream:features"), "{xml}");
    assert!(!r.is_closed());
}
