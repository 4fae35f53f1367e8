//! For tests that check signalling rather than media: a stand-in bridge's
//! answer to the focus's Colibri2 allocation (a fixed ICE-UDP transport on
//! 127.0.0.1 for every endpoint created), so a whole deployment can be set
//! up without media. Tests of media use a real bridge (`sfu-component`).

use xmpp_core::Element;

/// The `conference-modified` result for `request` (a `conference-modify`
/// IQ): a transport for each `<endpoint create='true'>`, then `extra`
/// (e.g. the bridge's `<sources>`).
pub fn allocation_answer(request: &Element, extra: &str) -> String {
    let cm = request
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap();
    let endpoints: String = cm
        .children()
        .filter(|c| c.name() == "endpoint" && c.get_attr("create") == Some("true"))
        .map(|e| {
            format!(
                "<endpoint id='{}'><transport><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bu' pwd='bp'>\
                 <rtcp-mux/><fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>AA:BB</fingerprint>\
                 <candidate component='1' foundation='1' generation='0' id='c1' ip='127.0.0.1' network='0' port='10000' priority='1' protocol='udp' type='host'/>\
                 </transport></transport></endpoint>",
                e.get_attr("id").unwrap()
            )
        })
        .collect();
    format!(
        "<iq type='result' id='{}' to='{}'><conference-modified xmlns='jitsi:colibri2'>{endpoints}{extra}</conference-modified></iq>",
        request.id().unwrap(),
        request.from().unwrap()
    )
}

/// The bridges' brewery room of [`crate::JitsiConfig`]'s deployment.
pub const BREWERY: &str = "jvbbrewery@internal.auth.example.com";

/// A stand-in bridge: `jvb@auth.example.com/jvb`, in the brewery as `jvb1`
/// with stress 0.1, returned once its own brewery presence came back (it
/// answers nothing by itself: the test answers with
/// [`allocation_answer`]).
pub async fn stand_in_bridge(server: &std::sync::Arc<xmpp_core::Server>) -> crate::Peer {
    let mut bridge = crate::Peer::local(server, "jvb@auth.example.com/jvb");
    bridge.send("<presence/>");
    bridge.send(&format!(
        "<presence to='{BREWERY}/jvb1'><x xmlns='http://jabber.org/protocol/muc'/>\
         <stats xmlns='http://jitsi.org/protocol/colibri'><stat name='stress_level' value='0.1'/></stats></presence>"
    ));
    bridge
        .expect("the bridge in the brewery", |s| {
            s.name() == "presence" && s.from() == Some(&format!("{BREWERY}/jvb1"))
        })
        .await;
    bridge
}
