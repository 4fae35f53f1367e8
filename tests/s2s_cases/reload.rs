//! Reloads that take federation away (issue 19): a host's own
//! `s2s_blacklist` (mod_s2s_blacklist enabled in its VirtualHost only),
//! then s2s disabled altogether. The streams no longer allowed are closed
//! (both directions), new stanzas are refused, and the other host of the
//! same server keeps federating until s2s goes.

use std::time::Duration;

use super::*;

/// Waits (at most 30 s) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `from` says something to `to`, which gets it.
async fn says(from: &mut ClientLink, to: &mut ClientLink, text: &str) {
    let (from_bare, to_bare) = (from.jid.to_bare().to_string(), to.jid.to_bare().to_string());
    from.sender().send(chat(&to_bare, text));
    let m = wait_for(to, &format!("{from_bare}'s {text:?}"), |e| {
        e.name() == "message" && bare(e) == from_bare && body(e).as_deref() == Some(text)
    })
    .await;
    assert_eq!(m.type_(), Some("chat"), "{m}");
}

/// a.lilt's config: also `sa.lilt` (found by SRV on port 5270), `section`
/// in a.lilt's VirtualHost, `extra` in the global section.
fn a_config(net: &s2s_support::Net, section: &str, extra: &str) -> String {
    config_text(
        net,
        "a.lilt",
        "127.0.0.2",
        5269,
        &format!("s2s_ports = {{ 5269, 5270 }}\n{extra}"),
        &format!("{section}\nVirtualHost \"sa.lilt\"\n"),
    )
}

#[test]
fn reload_closes_streams_no_longer_allowed() {
    const NAME: &str = "reload::reload_closes_streams_no_longer_allowed";
    if !enter_namespace(NAME) {
        return;
    }
    let (net, rt) = setup();
    rt.block_on(async move {
        let file = net.dir.path().join("a.lilt.cfg.lua");
        let open = a_config(&net, "", "");
        std::fs::write(&file, &open).unwrap();
        let config = lua_compat::config::load_str(&open, &file).unwrap();
        let a = start_from("a.lilt", config.clone()).await;
        let running = a.running.as_ref().unwrap();
        let mut reloader = lilt::reload::Reloader::new(
            file.clone(),
            Default::default(),
            config,
            running.certificates.clone(),
        )
        .with_server(running.server.clone())
        .with_listeners(running.listeners.clone());
        let b = start_server(&net, "b.lilt", "127.0.0.3", 5270, "").await;
        let mut alice = login(&a, "alice@a.lilt", &net.ca).await;
        let mut sally = login(&a, "alice@sa.lilt", &net.ca).await;
        let mut bob = login(&b, "bob@b.lilt", &net.ca).await;
        federate(&mut alice, &mut bob).await;
        federate(&mut sally, &mut bob).await;
        let (ma, mb) = (manager(&a), manager(&b));
        assert!(ma.has_route("a.lilt", "b.lilt") && mb.has_route("b.lilt", "a.lilt"));

        // a.lilt (only) blacklists b.lilt, in its own VirtualHost section.
        let section =
            "    modules_enabled = { \"s2s_blacklist\" }\n    s2s_blacklist = { \"b.lilt\" }";
        std::fs::write(&file, a_config(&net, section, "")).unwrap();
        let report = reloader.reload().unwrap();
        eventually("a.lilt's stream to b.lilt closed", || {
            !ma.has_route("a.lilt", "b.lilt")
        })
        .await;
        eventually("b.lilt's stream to a.lilt closed", || {
            !mb.has_route("b.lilt", "a.lilt")
        })
        .await;
        refused(&mut alice, "bob@b.lilt", "not-allowed").await;
        refused(&mut bob, "alice@a.lilt", "remote-server-timeout").await;
        // sa.lilt is not restricted: its streams stay, both ways.
        assert!(
            ma.has_route("sa.lilt", "b.lilt") && mb.has_route("b.lilt", "sa.lilt"),
            "{report}"
        );
        says(&mut sally, &mut bob, "still here").await;
        says(&mut bob, &mut sally, "still here too").await;

        // s2s off: every stream closes, the listeners too; nothing goes.
        std::fs::write(
            &file,
            a_config(&net, section, "modules_disabled = { \"s2s\" }"),
        )
        .unwrap();
        let report = reloader.reload().unwrap();
        eventually("every s2s stream of a closed", || {
            !ma.has_route("sa.lilt", "b.lilt")
                && !mb.has_route("b.lilt", "sa.lilt")
                && connections_to([127, 0, 0, 3], 5270) == 0
                && connections_to([127, 0, 0, 2], 5270) == 0
        })
        .await;
        assert!(
            !running.listeners.bound().iter().any(|(k, _)| *k == "s2s"),
            "the s2s listeners stayed open: {report}"
        );
        sally
            .sender()
            .send(chat("bob@b.lilt", "s2s is off").attr("id", "off"));
        let err = wait_for(&mut sally, "the refusal", |e| e.id() == Some("off")).await;
        assert_eq!(err.type_(), Some("error"), "{err}");
        refused(&mut bob, "alice@sa.lilt", "remote-server-not-found").await;
        drop((a, b));
    });
}
