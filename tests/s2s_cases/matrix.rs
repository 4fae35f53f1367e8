//! The resolution and authentication matrix against Debian's Prosody 0.12
//! and Debian's ejabberd 23.01 (issue 19), each peer started once per test.
//!
//! One lilt (127.0.0.2) serves three domains and each peer three more,
//! one per way of being found (see `s2s_support::zone`):
//!
//! | found by                      | lilt      | Prosody   | ejabberd  |
//! |-------------------------------|-----------|-----------|-----------|
//! | A record only (port 5269)     | `a.lilt`  | `p.lilt`  | `x.lilt`  |
//! | `_xmpp-server._tcp` SRV only  | `sa.lilt` | `ps.lilt` | `xs.lilt` |
//! | `_xmpps-server._tcp` SRV only | `ta.lilt` | `pt.lilt` | `xt.lilt` |
//!
//! The SRV-only domains have no address record of their own; their SRV
//! target is another name (`srv.<domain>`, port 5270; `tls.<domain>`,
//! port 5271 with direct TLS, XEP-0368). Each row is a pair of domains
//! federating (messages both ways, a subscription and presence): the
//! first message makes lilt find the peer's domain, the reply makes the
//! peer find lilt's, so each cell is crossed in both directions. That the
//! SRV and direct TLS listeners were used is checked on the sockets.
//!
//! Both peers do every cell: Prosody 0.12 listens for direct TLS with
//! `s2s_direct_tls_ports` (mod_s2s's `s2s_direct_tls` service) and looks
//! up `_xmpps-server._tcp` before `_xmpp-server._tcp` for outgoing
//! streams (mod_s2s.lua's `resolver_chain`); ejabberd 23.01 has the
//! `tls: true` listener option for `ejabberd_s2s_in` and its
//! xmpp_stream_out looks up `_xmpps-server._tcp` when STARTTLS is on.
//!
//! Authentication: lilt's three domains use SASL EXTERNAL with certificates
//! from the test CA (dialback only is checked in `lilt_federates_with_*`);
//! `s2s_secure_auth = true` on lilt refuses Prosody's `pe.lilt` (a
//! self-signed certificate) both ways, and Prosody's `s2s_secure_auth`
//! refuses lilt's `e.lilt` (self-signed) both ways: nothing is delivered,
//! the senders get the bounce errors. ejabberd without mod_s2s_dialback
//! (SASL EXTERNAL only, peer certificates verified) refuses `e.lilt` both
//! ways too.

use super::*;

/// lilt serving `a.lilt`, `sa.lilt`, `ta.lilt` (with `s2s_secure_auth`)
/// and the MUC `rooms.a.lilt`, listening on 5269, 5270 and (direct TLS)
/// 5271.
async fn matrix_lilt(net: &s2s_support::Net) -> Server {
    start_server_with(
        net,
        "a.lilt",
        "127.0.0.2",
        5269,
        "s2s_ports = { 5269, 5270 }\ns2s_direct_tls_ports = { 5271 }\ns2s_secure_auth = true",
        "Component \"rooms.a.lilt\" \"muc\"\n    muc_room_locking = false\n\
         VirtualHost \"sa.lilt\"\nVirtualHost \"ta.lilt\"\n",
    )
    .await
}

/// The rows of the matrix: (lilt's domain, the peer's domain).
fn rows(peer: [&'static str; 3]) -> [(&'static str, &'static str); 3] {
    [
        ("a.lilt", peer[0]),
        ("sa.lilt", peer[1]),
        ("ta.lilt", peer[2]),
    ]
}

/// Each row federates; returns lilt's user on `a.lilt` and the peer's on
/// its A-record domain, for more.
async fn cross_rows(
    net: &s2s_support::Net,
    lilt: &Server,
    peer: &Server,
    domains: [&'static str; 3],
    peer_ip: [u8; 4],
) -> (ClientLink, ClientLink) {
    let mut first = None;
    for (ours, theirs) in rows(domains) {
        let mut here = login(lilt, &format!("alice@{ours}"), &net.ca).await;
        let mut there = login(peer, &format!("alice@{theirs}"), &net.ca).await;
        federate(&mut here, &mut there).await;
        if first.is_none() {
            first = Some((here, there));
        }
    }
    // The SRV targets' and the direct TLS ports were used, both ways.
    for (ip, port, what) in [
        ([127, 0, 0, 2], 5270, "the peer → sa.lilt (SRV)"),
        ([127, 0, 0, 2], 5271, "the peer → ta.lilt (direct TLS)"),
        (peer_ip, 5270, "lilt → the peer's SRV domain"),
        (peer_ip, 5271, "lilt → the peer's direct TLS domain"),
    ] {
        assert!(connections_to(ip, port) >= 1, "no connection for {what}");
    }
    first.unwrap()
}

/// `from` sends a message to `to` and gets an error back (the bounce);
/// returns its condition.
async fn bounced(from: &mut ClientLink, to: &str) -> String {
    let id = format!("bounce-{to}");
    from.sender()
        .send(chat(to, "never delivered").attr("id", id.clone()));
    let err = wait_for(from, &format!("the bounce for {to}"), |e| {
        e.id() == Some(id.as_str())
    })
    .await;
    assert_eq!(err.type_(), Some("error"), "{err}");
    err.get_child("error", NS_CLIENT)
        .and_then(|e| e.children().next().map(|c| c.name().to_string()))
        .unwrap_or_default()
}

/// Checks that nothing `body` "never delivered" reached `link`, by
/// sending it a message from `marker` and waiting for that one.
async fn nothing_delivered(link: &mut ClientLink, marker: &mut ClientLink) {
    let to = link.jid.to_bare().to_string();
    marker.sender().send(chat(&to, "marker"));
    let got = wait_for(link, "the marker", |e| {
        e.name() == "message"
            && (body(e).as_deref() == Some("marker")
                || body(e).as_deref() == Some("never delivered"))
    })
    .await;
    assert_eq!(body(&got).as_deref(), Some("marker"), "delivered: {got}");
}

#[test]
fn resolution_and_secure_auth_matrix_with_prosody() {
    const NAME: &str = "matrix::resolution_and_secure_auth_matrix_with_prosody";
    if !prosody::installed(NAME) || !enter_namespace(NAME) {
        return;
    }
    let (net, rt) = setup();
    let mut child = prosody::start_with(
        &net,
        &[],
        "s2s_ports = { 5269, 5270 }\ns2s_direct_tls_ports = { 5271 }\ns2s_secure_auth = true",
        "VirtualHost \"ps.lilt\"\nVirtualHost \"pt.lilt\"\nVirtualHost \"pe.lilt\"\n",
    );
    let ((), log) = with_child(&mut child, &prosody::log(&net), || {
        rt.block_on(async {
            let a = matrix_lilt(&net).await;
            for port in [
                "127.0.0.7:5222",
                "127.0.0.7:5269",
                "127.0.0.7:5270",
                "127.0.0.7:5271",
            ] {
                wait_for_port(port).await;
            }
            let p = Server::other("127.0.0.7:5222");
            let (mut alice, mut palice) = cross_rows(
                &net,
                &a,
                &p,
                ["p.lilt", "ps.lilt", "pt.lilt"],
                [127, 0, 0, 7],
            )
            .await;

            // lilt's s2s_secure_auth refuses pe.lilt's self-signed
            // certificate, both ways.
            let mut pe = login(&p, "alice@pe.lilt", &net.ca).await;
            let cond = bounced(&mut alice, "alice@pe.lilt").await;
            assert_eq!(cond, "remote-server-timeout");
            let cond = bounced(&mut pe, "alice@a.lilt").await;
            assert_eq!(cond, "remote-server-timeout");

            // Prosody's s2s_secure_auth refuses e.lilt's, both ways.
            let e = start_server(&net, "e.lilt", "127.0.0.6", 5269, "").await;
            let mut eve = login(&e, "alice@e.lilt", &net.ca).await;
            let cond = bounced(&mut eve, "bob@p.lilt").await;
            assert_eq!(cond, "remote-server-timeout");
            let mut pbob = login(&p, "bob@p.lilt", &net.ca).await;
            let cond = bounced(&mut pbob, "alice@e.lilt").await;
            assert_eq!(cond, "remote-server-timeout");

            // Nothing got through.
            nothing_delivered(&mut alice, &mut palice).await;
            nothing_delivered(&mut pbob, &mut alice).await;
            let mut ebob = login(&e, "bob@e.lilt", &net.ca).await;
            nothing_delivered(&mut eve, &mut ebob).await;
            drop((a, e));
        })
    });
    if std::env::var_os("LILT_S2S_PROSODY_LOG").is_some() {
        eprintln!("{log}");
    }
    // Prosody says why it refused e.lilt.
    assert!(
        log.lines()
            .any(|l| l.contains("e.lilt") && (l.contains("not trusted") || l.contains("invalid"))),
        "Prosody's log does not show it refusing e.lilt's certificate:\n{log}"
    );
}

#[test]
fn resolution_matrix_and_muc_with_ejabberd() {
    const NAME: &str = "matrix::resolution_matrix_and_muc_with_ejabberd";
    if !ejabberd::installed(NAME) || !enter_namespace(NAME) {
        return;
    }
    let (net, rt) = setup();
    // No mod_s2s_dialback: SASL EXTERNAL only, certificates verified.
    let mut child = ejabberd::start(&net, false);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            ejabberd::ready(&net).await;
            for host in ["x.lilt", "xs.lilt", "xt.lilt"] {
                ejabberd::register_on(host, "alice").await;
            }
            ejabberd::register("bob").await;
            let a = matrix_lilt(&net).await;
            let x = Server::other(ejabberd::C2S);
            let (mut alice, mut xalice) = cross_rows(
                &net,
                &a,
                &x,
                ["x.lilt", "xs.lilt", "xt.lilt"],
                [127, 0, 0, 9],
            )
            .await;

            // An ejabberd user in a lilt room.
            room_exchange("lounge@rooms.a.lilt", &mut alice, &mut xalice).await;

            // lilt's s2s_secure_auth refuses xe.lilt's self-signed
            // certificate, both ways.
            ejabberd::register_on("xe.lilt", "alice").await;
            let mut xe = login(&x, "alice@xe.lilt", &net.ca).await;
            let cond = bounced(&mut alice, "alice@xe.lilt").await;
            assert_eq!(cond, "remote-server-timeout");
            let cond = bounced(&mut xe, "alice@a.lilt").await;
            eprintln!("ejabberd's bounce (xe.lilt → a.lilt): {cond}");
            nothing_delivered(&mut alice, &mut xalice).await;

            // ejabberd refuses e.lilt's self-signed certificate, both ways.
            let e = start_server(&net, "e.lilt", "127.0.0.6", 5269, "").await;
            let mut eve = login(&e, "alice@e.lilt", &net.ca).await;
            let cond = bounced(&mut eve, "bob@x.lilt").await;
            assert_eq!(cond, "remote-server-timeout");
            let mut xbob = login(&x, "bob@x.lilt", &net.ca).await;
            let cond = bounced(&mut xbob, "alice@e.lilt").await;
            assert_eq!(cond, "remote-server-timeout");
            nothing_delivered(&mut xbob, &mut xalice).await;
            let mut ebob = login(&e, "bob@e.lilt", &net.ca).await;
            nothing_delivered(&mut eve, &mut ebob).await;
            drop((a, e));
        })
    }));
    let log = ejabberd::log_with(&net, &[]);
    ejabberd::stop(&mut child);
    if let Err(panic) = outcome {
        eprintln!("ejabberd's log:\n{log}");
        std::panic::resume_unwind(panic);
    }
    if std::env::var_os("LILT_S2S_EJABBERD_LOG").is_some() {
        eprintln!("{log}");
    }
}
