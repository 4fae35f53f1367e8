//! What modules see: the `muc-*` events with the room in their payload,
//! handlers that refuse joins, change presences or count occupants, and
//! the room API (affiliations and roles from code, lookups by nickname and
//! real JID, routing to an occupant, creating and destroying rooms).

use crate::common;

use std::sync::{Arc, Mutex};

use common::*;
use muc::events::{occupant_of, room_of};
use muc::{Actor, Affiliation, AffiliationData, Role};
use xmpp_core::error::StanzaError;
use xmpp_core::stanza::{Element, NS_CLIENT};

#[test]
fn events_carry_the_room_and_handlers_can_refuse_or_decorate() {
    let h = Harness::new();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    for name in [
        "muc-room-pre-create",
        "muc-room-created",
        "muc-occupant-pre-join",
        "muc-occupant-joined",
        "muc-occupant-session-new",
        "muc-occupant-pre-leave",
        "muc-occupant-left",
        "muc-occupant-groupchat",
        "muc-broadcast-message",
        "muc-set-affiliation",
        "muc-room-destroyed",
    ] {
        let log = log.clone();
        h.muc.events.hook(name, 100, move |event| {
            let room = room_of(event).map(|r| r.jid.clone()).unwrap_or_default();
            log.lock().unwrap().push(format!("{} {room}", event.name));
            false
        });
    }
    // A module that keeps one nickname out (as Jitsi's modules do).
    h.muc.events.hook("muc-occupant-pre-join", 10, |event| {
        let nick = occupant_of(event, "occupant")
            .map(|o| o.nick.clone())
            .unwrap_or_default();
        if nick.ends_with("/focus") {
            if let Some(origin) = event.origin.clone() {
                origin.send(
                    StanzaError::not_allowed()
                        .with_text("reserved")
                        .reply_to(event.stanza()),
                );
            }
            return true;
        }
        false
    });
    // And one that adds to every broadcast presence.
    h.muc.events.hook("muc-broadcast-presence", 0, |event| {
        if let Some(p) = event.stanza.as_mut() {
            p.push_child(Element::new("stats", "urn:example:stats"));
        }
        false
    });
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    instant_room(&mut romeo, "garden", "Romeo");
    let got = juliet.join("garden", "focus");
    assert_eq!(error_text(&got[0]).as_deref(), Some("reserved"));
    juliet.join("garden", "Juliet");
    let seen = romeo.drain();
    assert!(seen[0].get_child("stats", "urn:example:stats").is_some());
    juliet.send(groupchat("garden", "hi"));
    juliet.send(presence(&format!("{}/Juliet", room_jid("garden"))).attr("type", "unavailable"));
    romeo.send(presence(&format!("{}/Romeo", room_jid("garden"))).attr("type", "unavailable"));
    let room = "garden@conference.localhost";
    let log = log.lock().unwrap().clone();
    let expected: Vec<String> = [
        "muc-room-pre-create",
        "muc-set-affiliation",
        "muc-occupant-pre-join",
        "muc-occupant-joined",
        "muc-occupant-session-new",
        "muc-room-created",
        "muc-occupant-pre-join",
        "muc-occupant-pre-join",
        "muc-occupant-joined",
        "muc-occupant-session-new",
        "muc-occupant-groupchat",
        "muc-broadcast-message",
        "muc-occupant-pre-leave",
        "muc-occupant-left",
        "muc-occupant-pre-leave",
        "muc-occupant-left",
        "muc-room-destroyed",
    ]
    .iter()
    .map(|n| format!("{n} {room}"))
    .collect();
    assert_eq!(log, expected);
}

#[test]
fn the_room_api_from_code() {
    let h = Harness::new();
    let service = h.service();
    let room = service
        .create_room("lounge@conference.localhost", None)
        .expect("created");
    assert!(
        service
            .create_room("lounge@conference.localhost", None)
            .is_none(),
        "exists"
    );
    assert!(
        service
            .create_room("a@conference.localhost/res", None)
            .is_none(),
        "not bare"
    );
    room.set_persistent(true);
    room.set_affiliation(
        Actor::Room,
        "romeo@localhost",
        Some(Affiliation::Owner),
        None,
        AffiliationData::Keep,
    )
    .unwrap();
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    let got = romeo.join("lounge", "Romeo");
    assert_eq!(items(&got[0])[0].get_attr("affiliation"), Some("owner"));
    juliet.join("lounge", "Juliet");
    romeo.drain();
    // Lookups.
    let nick = "lounge@conference.localhost/Juliet";
    let j = room.get_occupant_by_nick(nick).unwrap();
    assert_eq!(j.bare_jid, "juliet@localhost");
    assert_eq!(j.role, Some(Role::Participant));
    assert_eq!(
        room.get_occupant_by_real_jid(&juliet.full()).unwrap().nick,
        nick
    );
    assert_eq!(room.get_occupant_jid(&juliet.full()).as_deref(), Some(nick));
    assert_eq!(room.each_occupant().len(), 2);
    // Routing to an occupant.
    let note = Element::new("message", NS_CLIENT)
        .attr("from", "lounge@conference.localhost")
        .child(Element::new("body", NS_CLIENT).text("note"));
    room.route_to_occupant(&j, &note);
    let got = juliet.drain();
    assert_eq!(
        got[0].get_child_text("body", NS_CLIENT).as_deref(),
        Some("note")
    );
    assert_eq!(got[0].to(), Some(juliet.full().as_str()));
    // Roles from code.
    room.set_role(Actor::Room, nick, Some(Role::Visitor), Some("Quiet"))
        .unwrap();
    assert_eq!(room.get_role(nick), Some(Role::Visitor));
    let got = juliet.drain();
    assert_eq!(items(&got[0])[0].get_attr("role"), Some("visitor"));
    // Options, then destroy.
    assert!(room.set_whois("anyone"));
    assert!(!room.set_whois("everybody"));
    room.set_members_only(true);
    let got = juliet.drain();
    assert_eq!(codes(&got[0]), ["322", "110"]);
    room.destroy(None, Some("Closing"), None).unwrap();
    assert!(
        matches!(service.get_room("lounge@conference.localhost"), muc::Lookup::Live(r) if r.data_bool("destroyed"))
    );
}
