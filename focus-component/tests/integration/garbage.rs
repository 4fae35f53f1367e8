//! Nothing a peer sends makes the focus panic or stop serving the others:
//! odd stanzas in every state, then the conference still works.

use crate::common;

use common::*;

#[test]
fn odd_stanzas_are_survived() {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let alloc = h.join("aaaa", PLAIN_FEATURES);
    let out = h.answer_allocation(&alloc);
    let sid = sid_of(&offer_to(&out, "aaaa").unwrap());
    let garbage = [
        "<iq type='set'/>".to_string(),
        "<iq type='result'/>".to_string(),
        "<iq type='error' id='lilt-focus-1'/>".to_string(),
        "<iq type='weird' id='1'><x xmlns='y'/></iq>".to_string(),
        "<presence/>".to_string(),
        "<presence type='unavailable'/>".to_string(),
        format!("<presence from='{ROOM}'/>"),
        format!("<presence from='{ROOM}/'/>"),
        format!("<presence from='{ROOM}/ghost' type='unavailable'/>"),
        format!("<presence from='{ROOM}/focus' type='error'/>").replace(ROOM, "other@conference.example.com"),
        format!("<presence from='{BREWERY}/jvbX'><stats xmlns='http://jitsi.org/protocol/colibri'><stat/><stat name='stress_level'/><stat name='stress_level' value='-1e400'/></stats></presence>"),
        format!("<presence from='{BREWERY}/jvbY' type='unavailable'/>"),
        "<message><json-message xmlns='http://jitsi.org/jitmeet'>{\"type\":\"av_moderation\",\"room\":5}</json-message></message>".to_string(),
        "<message><json-message xmlns='http://jitsi.org/jitmeet'>[]</json-message></message>".to_string(),
        format!("<iq type='set' id='g1' from='{ROOM}/aaaa'><jingle xmlns='urn:xmpp:jingle:1'/></iq>"),
        format!("<iq type='set' id='g2' from='{ROOM}/aaaa'><jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='{sid}'><content/></jingle></iq>"),
        format!("<iq type='set' id='g3' from='{ROOM}/aaaa'><jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='{sid}'><content name='video'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='99999999999'/></description></content></jingle></iq>"),
        format!("<iq type='set' id='g4' from='{ROOM}/aaaa'><jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='{sid}'><content name='video'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'><ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='SIM'/></description></content></jingle></iq>"),
        format!("<iq type='set' id='g5' from='{ROOM}/aaaa'><jingle xmlns='urn:xmpp:jingle:1' action='source-remove' sid='{sid}'/></iq>"),
        format!("<iq type='set' id='g6' from='{ROOM}/aaaa'><mute xmlns='http://jitsi.org/jitmeet/audio'/></iq>"),
        format!("<iq type='set' id='g7' from='{ROOM}/aaaa'><jibri xmlns='http://jitsi.org/protocol/jibri'/></iq>"),
        format!("<iq type='set' id='g8' from='{ROOM}/aaaa'><conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}'><property/></conference></iq>"),
        format!("<iq type='result' id='{}' from='{BREWERY}/jvb1'><conference-modified xmlns='jitsi:colibri2'><endpoint/><endpoint id='zzz'><transport/></endpoint><sources><media-source/></sources></conference-modified></iq>", alloc.id().unwrap()),
    ];
    for g in &garbage {
        let out = h.feed(g);
        for e in &out {
            if e.name() == "iq" && e.type_() == Some("error") {
                assert!(
                    error_condition(e).is_some(),
                    "an error reply names its condition: {e}"
                );
            }
        }
    }
    // Requests among them were all answered.
    for id in ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8"] {
        assert!(h.out.iter().any(|e| e.id() == Some(id)), "{id} answered");
    }
    // And the conference goes on.
    let out = h.accept("aaaa", &sid, &src(7, "a a"), "");
    assert_eq!(out[0].type_(), Some("result"), "{}", out[0]);
    let st = h.focus.stats(h.now);
    assert_eq!(
        (st.conferences, st.participants, st.jingle_sessions),
        (1, 1, 1)
    );
}
