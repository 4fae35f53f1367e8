//! Messages and IQs through a room: groupchat with stanza-id and
//! occupant-id, subject changes, history on join (maxstanzas, maxchars,
//! seconds, since, max_history_messages), private messages, mediated
//! invitations, voice requests, and an IQ routed to an occupant with its
//! reply routed back.

use crate::common;

use common::*;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Clock, Value};

const NS_DELAY: &str = "urn:xmpp:delay";

fn history_join(nick: &str, attrs: &[(&str, &str)]) -> Element {
    let mut h = Element::new("history", NS_MUC);
    for (k, v) in attrs {
        h.set_attr(k, Some(v.to_string()));
    }
    presence(&format!("{}/{nick}", room_jid("garden"))).child(Element::new("x", NS_MUC).child(h))
}

fn bodies(got: &[Element]) -> Vec<String> {
    got.iter()
        .filter(|e| e.name() == "message")
        .filter_map(|e| e.get_child_text("body", NS_CLIENT))
        .collect()
}

#[test]
fn groupchat_is_broadcast_with_ids_and_kept_in_history() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    instant_room(&mut romeo, "garden", "Romeo");
    juliet.join("garden", "Juliet");
    romeo.drain();
    let mut m = groupchat("garden", "hello");
    m.push_child(
        Element::new("stanza-id", "urn:xmpp:sid:0")
            .attr("by", "garden@conference.localhost")
            .attr("id", "forged"),
    );
    romeo.send(m.attr("id", "m1"));
    let to_juliet = juliet.drain();
    let to_romeo = romeo.drain();
    for got in [&to_juliet, &to_romeo] {
        let msg = &got[0];
        assert_eq!(msg.from(), Some("garden@conference.localhost/Romeo"));
        assert_eq!(msg.id(), Some("m1"));
        let ids: Vec<_> = msg
            .children()
            .filter(|c| c.is("stanza-id", "urn:xmpp:sid:0"))
            .map(|c| c.get_attr("id").unwrap_or_default().to_string())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_ne!(ids[0], "forged");
        assert!(
            msg.get_child("occupant-id", "urn:xmpp:occupant-id:0")
                .is_some()
        );
    }
    assert_eq!(to_juliet[0].to(), Some(juliet.full().as_str()));
    // A visitor may not speak; someone not in the room neither.
    let mut nurse = h.connect("nurse", "n");
    nurse.send(groupchat("garden", "psst"));
    assert_eq!(
        error_condition(&nurse.drain()[0]).as_deref(),
        Some("not-acceptable")
    );
    // History: the late joiner gets it, with a delay from the room.
    let mut late = h.connect("late", "l");
    let got = late.join("garden", "Late");
    assert_eq!(bodies(&got), ["hello"]);
    let delayed = got
        .iter()
        .find(|e| e.name() == "message" && e.get_child("body", NS_CLIENT).is_some())
        .unwrap();
    let delay = delayed.get_child("delay", NS_DELAY).unwrap();
    assert_eq!(delay.get_attr("from"), Some("garden@conference.localhost"));
    assert_eq!(delay.get_attr("stamp"), Some("2008-08-22T21:09:04Z"));
}

#[test]
fn history_requests() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    for i in 0..25 {
        romeo.send(groupchat("garden", &format!("m{i}")));
    }
    romeo.drain();
    let mut j = h.connect("juliet", "j");
    j.send(history_join("J1", &[]));
    let got = bodies(&j.drain());
    assert_eq!(got.len(), 20, "the default is 20");
    assert_eq!(got[0], "m5");
    j.send(history_join("J1", &[("maxstanzas", "3")]));
    assert_eq!(bodies(&j.drain()), ["m22", "m23", "m24"]);
    j.send(history_join("J1", &[("maxstanzas", "0")]));
    assert!(bodies(&j.drain()).is_empty());
    j.send(history_join("J1", &[("maxchars", "0")]));
    assert!(bodies(&j.drain()).is_empty());
    j.send(history_join("J1", &[("since", "2030-01-01T00:00:00Z")]));
    assert!(bodies(&j.drain()).is_empty());
    j.send(history_join(
        "J1",
        &[("seconds", "10"), ("maxstanzas", "2")],
    ));
    assert_eq!(bodies(&j.drain()), ["m23", "m24"]);
}

#[test]
fn max_history_messages_caps_every_room() {
    let h = Harness::with(Setup {
        muc_options: vec![("max_history_messages", Value::Integer(2))],
        ..Setup::default()
    });
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    for i in 0..5 {
        romeo.send(groupchat("garden", &format!("m{i}")));
    }
    let mut j = h.connect("juliet", "j");
    assert_eq!(bodies(&j.join("garden", "J")), ["m3", "m4"]);
}

#[test]
fn subject_changes_by_moderators_and_history_of_seconds_on_a_moving_clock() {
    let h = Harness::with(Setup {
        clock: Clock::System,
        ..Setup::default()
    });
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    instant_room(&mut romeo, "garden", "Romeo");
    juliet.join("garden", "Juliet");
    romeo.drain();
    let subject = |s: &str| {
        Element::new("message", NS_CLIENT)
            .attr("to", room_jid("garden"))
            .attr("type", "groupchat")
            .child(Element::new("subject", NS_CLIENT).text(s))
    };
    juliet.send(subject("Mine"));
    let got = juliet.drain();
    assert_eq!(error_condition(&got[0]).as_deref(), Some("forbidden"));
    romeo.send(subject("Ours"));
    let got = juliet.drain();
    assert_eq!(got[0].from(), Some("garden@conference.localhost/Romeo"));
    assert_eq!(
        got[0].get_child_text("subject", NS_CLIENT).as_deref(),
        Some("Ours")
    );
    let room = h.room("garden").unwrap();
    assert_eq!(room.get_subject().1.as_deref(), Some("Ours"));
    let mut late = h.connect("late", "l");
    let got = late.join("garden", "Late");
    let last = got.last().unwrap();
    assert_eq!(
        last.get_child_text("subject", NS_CLIENT).as_deref(),
        Some("Ours")
    );
    assert!(last.get_child("delay", NS_DELAY).is_some());
    assert!(bodies(&got).is_empty(), "a subject change is not history");
}

#[test]
fn private_messages_and_their_restriction() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    instant_room(&mut romeo, "garden", "Romeo");
    juliet.join("garden", "Juliet");
    romeo.drain();
    let pm = |to: &str, body: &str| {
        Element::new("message", NS_CLIENT)
            .attr("to", format!("{}/{to}", room_jid("garden")))
            .attr("type", "chat")
            .attr("id", "pm")
            .child(Element::new("body", NS_CLIENT).text(body))
            .child(Element::new("x", NS_MUC_USER).child(Element::new("invite", NS_MUC_USER)))
    };
    juliet.send(pm("Romeo", "psst"));
    let got = romeo.drain();
    assert_eq!(got[0].from(), Some("garden@conference.localhost/Juliet"));
    assert_eq!(got[0].to(), Some(romeo.full().as_str()));
    let x = got[0].get_child("x", NS_MUC_USER).unwrap();
    assert!(
        x.first_child().is_none(),
        "the client's MUC payload is replaced"
    );
    juliet.send(pm("Nobody", "hello?"));
    assert_eq!(
        error_text(&juliet.drain()[0]).as_deref(),
        Some("Recipient not in room")
    );
    let mut nurse = h.connect("nurse", "n");
    nurse.send(pm("Romeo", "hi"));
    assert_eq!(
        error_condition(&nurse.drain()[0]).as_deref(),
        Some("not-acceptable")
    );
    // Only moderators may send private messages now.
    romeo.iq(iq(
        "set",
        "c",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_allowpm", &["moderator"])]),
    ));
    juliet.drain();
    juliet.send(pm("Romeo", "again"));
    let got = juliet.drain();
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("policy-violation")
    );
    assert_eq!(
        error_text(&got[0]).as_deref(),
        Some("Private messages are restricted from non-moderators")
    );
    assert!(romeo.drain().is_empty());
    romeo.send(pm("Juliet", "allowed"));
    assert_eq!(bodies(&juliet.drain()), ["allowed"]);
}

#[test]
fn mediated_invitations_and_declines() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    instant_room(&mut romeo, "garden", "Romeo");
    let invite = Element::new("message", NS_CLIENT)
        .attr("to", room_jid("garden"))
        .attr("id", "i1")
        .child(
            Element::new("x", NS_MUC_USER).child(
                Element::new("invite", NS_MUC_USER)
                    .attr("to", "juliet@localhost/j")
                    .child(Element::new("reason", NS_MUC_USER).text("Come")),
            ),
        );
    romeo.send(invite);
    let got = juliet.drain();
    let m = &got[0];
    assert_eq!(m.from(), Some("garden@conference.localhost"));
    let inv = m
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("invite", NS_MUC_USER))
        .unwrap();
    assert_eq!(
        inv.get_attr("from"),
        Some("garden@conference.localhost/Romeo")
    );
    assert_eq!(
        m.get_child_text("body", NS_CLIENT).as_deref(),
        Some(
            "garden@conference.localhost/Romeo invited you to the room garden@conference.localhost (Come)"
        )
    );
    let conf = m.get_child("x", "jabber:x:conference").unwrap();
    assert_eq!(conf.get_attr("jid"), Some("garden@conference.localhost"));
    let decline = Element::new("message", NS_CLIENT)
        .attr("to", room_jid("garden"))
        .child(
            Element::new("x", NS_MUC_USER)
                .child(Element::new("decline", NS_MUC_USER).attr("to", "romeo@localhost/r")),
        );
    juliet.send(decline);
    let got = romeo.drain();
    assert_eq!(
        got[0].get_child_text("body", NS_CLIENT).as_deref(),
        Some("juliet@localhost/j declined your invite to the room garden@conference.localhost")
    );
}

#[test]
fn voice_requests_in_moderated_rooms() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    instant_room(&mut romeo, "garden", "Romeo");
    romeo.iq(iq(
        "set",
        "c",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_moderatedroom", &["1"])]),
    ));
    let got = juliet.join("garden", "Juliet");
    let own = find(&got, "presence", "garden@conference.localhost/Juliet");
    assert_eq!(items(own)[0].get_attr("role"), Some("visitor"));
    romeo.drain();
    let request = |fields: &[(&str, &str)]| {
        let mut x = Element::new("x", NS_DATA).attr("type", "submit");
        for (k, v) in [("FORM_TYPE", "http://jabber.org/protocol/muc#request")]
            .iter()
            .chain(fields)
        {
            x.push_child(
                Element::new("field", NS_DATA)
                    .attr("var", *k)
                    .child(Element::new("value", NS_DATA).text(*v)),
            );
        }
        Element::new("message", NS_CLIENT)
            .attr("to", room_jid("garden"))
            .child(x)
    };
    juliet.send(request(&[("muc#role", "participant")]));
    let got = romeo.drain();
    let form = got[0].get_child("x", NS_DATA).unwrap();
    assert_eq!(
        form.get_child_text("title", NS_DATA).as_deref(),
        Some("Voice Request")
    );
    romeo.send(request(&[
        ("muc#jid", &juliet.full()),
        ("muc#request_allow", "true"),
    ]));
    let got = juliet.drain();
    let own = find(&got, "presence", "garden@conference.localhost/Juliet");
    assert_eq!(items(own)[0].get_attr("role"), Some("participant"));
}

#[test]
fn an_iq_goes_through_the_room_and_its_reply_comes_back() {
    let h = Harness::new();
    let mut focus = h.connect("focus", "f");
    let mut bridge = h.connect("bridge", "b");
    instant_room(&mut focus, "conf", "focus");
    bridge.join("conf", "bridge");
    focus.drain();
    let jingle = Element::new("jingle", "urn:xmpp:jingle:1").attr("action", "session-initiate");
    focus.send(iq(
        "set",
        "j1",
        &format!("{}/bridge", room_jid("conf")),
        jingle,
    ));
    let got = bridge.drain();
    let request = &got[0];
    assert_eq!(request.from(), Some("conf@conference.localhost/focus"));
    assert_eq!(request.to(), Some(bridge.full().as_str()));
    assert_ne!(request.id(), Some("j1"), "the id hides the sender");
    assert!(request.get_child("jingle", "urn:xmpp:jingle:1").is_some());
    // The bridge answers the occupant JID with the id it got.
    let reply = Element::new("iq", NS_CLIENT)
        .attr("type", "result")
        .attr("id", request.id().unwrap_or_default())
        .attr("to", "conf@conference.localhost/focus");
    bridge.send(reply);
    let got = focus.drain();
    assert_eq!(got.len(), 1, "{}", xml_list(&got));
    assert_eq!(got[0].type_(), Some("result"));
    assert_eq!(got[0].id(), Some("j1"));
    assert_eq!(got[0].from(), Some("conf@conference.localhost/bridge"));
    assert_eq!(got[0].to(), Some(focus.full().as_str()));
    // Self-ping (XEP-0410) is answered by the room.
    let ping = Element::new("ping", "urn:xmpp:ping");
    let r = bridge.iq(iq(
        "get",
        "p1",
        &format!("{}/bridge", room_jid("conf")),
        ping,
    ));
    assert_eq!(r.type_(), Some("result"));
    // Not in the room, or nobody there.
    let mut other = h.connect("other", "o");
    let r = other.iq(iq(
        "get",
        "x1",
        &format!("{}/bridge", room_jid("conf")),
        Element::new("q", "urn:x"),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    let r = bridge.iq(iq(
        "get",
        "x2",
        &format!("{}/nobody", room_jid("conf")),
        Element::new("q", "urn:x"),
    ));
    assert_eq!(error_text(&r).as_deref(), Some("Recipient not in room"));
}

#[test]
fn room_and_service_disco() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    romeo.iq(iq(
        "set",
        "c",
        &room_jid("garden"),
        config_form(&[
            ("muc#roomconfig_publicroom", &["1"]),
            ("muc#roomconfig_roomname", &["The Garden"]),
        ]),
    ));
    let r = romeo.iq(iq(
        "get",
        "d1",
        &room_jid("garden"),
        Element::new("query", "http://jabber.org/protocol/disco#info"),
    ));
    let q = r.first_child().unwrap();
    let features: Vec<_> = q.children().filter_map(|f| f.get_attr("var")).collect();
    for f in [
        "http://jabber.org/protocol/muc",
        "muc_public",
        "muc_temporary",
        "muc_semianonymous",
        "muc_unsecured",
        "muc_open",
        "muc_unmoderated",
        "jabber:iq:register",
        "urn:xmpp:occupant-id:0",
    ] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
    let identity = q.children().find(|c| c.name() == "identity").unwrap();
    assert_eq!(identity.get_attr("name"), Some("The Garden"));
    let form = q.get_child("x", NS_DATA).unwrap();
    let occupants = form
        .children()
        .find(|f| f.get_attr("var") == Some("muc#roominfo_occupants"))
        .and_then(|f| f.get_child_text("value", NS_DATA));
    assert_eq!(occupants.as_deref(), Some("1"));
    let r = romeo.iq(iq(
        "get",
        "d2",
        MUC,
        Element::new("query", "http://jabber.org/protocol/disco#items"),
    ));
    let items: Vec<_> = r
        .first_child()
        .unwrap()
        .children()
        .map(|i| {
            (
                i.get_attr("jid").unwrap_or_default().to_string(),
                i.get_attr("name").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        items,
        [(
            "garden@conference.localhost".to_string(),
            Some("The Garden".to_string())
        )]
    );
    let r = romeo.iq(iq(
        "get",
        "d3",
        MUC,
        Element::new("query", "http://jabber.org/protocol/disco#info"),
    ));
    let q = r.first_child().unwrap();
    let identity = q.children().find(|c| c.name() == "identity").unwrap();
    assert_eq!(identity.get_attr("category"), Some("conference"));
    assert_eq!(identity.get_attr("name"), Some("Prosody Chatrooms"));
    let r = romeo.iq(iq(
        "get",
        "u",
        MUC,
        Element::new("unique", "http://jabber.org/protocol/muc#unique"),
    ));
    assert_eq!(r.first_child().map(|u| u.text_content().len()), Some(36));
}
