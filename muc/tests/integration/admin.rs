//! Roles and affiliations (muc#admin), the owner's configuration form
//! (muc#owner), including forms with wrong types that must leave the room
//! as it was, and room destruction.

use crate::common;

use common::*;
use xmpp_core::Value;
use xmpp_core::stanza::Element;

fn room_with(h: &Harness, owner: &mut Client, others: &mut [&mut Client]) {
    instant_room(owner, "garden", "Owner");
    for (i, c) in others.iter_mut().enumerate() {
        c.join("garden", &format!("User{i}"));
    }
    owner.drain();
    for c in others.iter_mut() {
        c.drain();
    }
    let _ = h;
}

#[test]
fn kick_grant_voice_and_moderator_seen_by_all() {
    let h = Harness::new();
    let mut owner = h.connect("owner", "o");
    let mut a = h.connect("a", "1");
    let mut b = h.connect("b", "1");
    room_with(&h, &mut owner, &mut [&mut a, &mut b]);
    let room = room_jid("garden");

    // Make a moderator; everyone sees the new role, the owner as actor.
    let r = owner.iq(iq(
        "set",
        "r1",
        &room,
        admin_item(&[("nick", "User0"), ("role", "moderator")], None),
    ));
    assert_eq!(r.type_(), Some("result"));
    let seen_by_b = b.drain();
    assert_eq!(items(&seen_by_b[0])[0].get_attr("role"), Some("moderator"));
    let own = a.drain();
    assert_eq!(codes(&own[0]), ["110"]);
    let item = &items(&own[0])[0];
    assert_eq!(item.get_attr("role"), Some("moderator"));
    let actor = item.get_child("actor", NS_MUC_USER).unwrap();
    assert_eq!(actor.get_attr("nick"), Some("Owner"));
    assert!(
        actor.get_attr("jid").is_none(),
        "one's own presence hides the actor's JID"
    );

    // A moderator cannot kick the owner, but can kick a participant.
    let r = a.iq(iq(
        "set",
        "k0",
        &room,
        admin_item(&[("nick", "Owner"), ("role", "none")], None),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
    let r = a.iq(iq(
        "set",
        "k1",
        &room,
        admin_item(&[("nick", "User1"), ("role", "none")], Some("Out")),
    ));
    assert_eq!(r.type_(), Some("result"));
    let got = b.drain();
    assert_eq!(got[0].type_(), Some("unavailable"));
    assert_eq!(codes(&got[0]), ["307", "110"]);
    assert_eq!(
        items(&got[0])[0]
            .get_child_text("reason", NS_MUC_USER)
            .as_deref(),
        Some("Out")
    );
    let got = owner.drain();
    let kicked = find(&got, "presence", "garden@conference.localhost/User1");
    assert_eq!(codes(kicked), ["307"]);
    // A participant may not list moderators; a moderator may.
    let r = b.iq(iq(
        "get",
        "l0",
        &room,
        admin_item(&[("role", "moderator")], None),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let r = a.iq(iq(
        "get",
        "l1",
        &room,
        admin_item(&[("role", "moderator")], None),
    ));
    let listed: Vec<_> = r
        .first_child()
        .unwrap()
        .children()
        .filter_map(|i| i.get_attr("nick"))
        .collect();
    assert_eq!(listed, ["Owner", "User0"]);
}

#[test]
fn affiliations_granted_revoked_and_listed() {
    let h = Harness::new();
    let mut owner = h.connect("owner", "o");
    let mut a = h.connect("a", "1");
    room_with(&h, &mut owner, &mut [&mut a]);
    let room = room_jid("garden");
    let mut notices = Vec::new();
    for (jid, aff) in [
        ("a@localhost", "admin"),
        ("m@localhost", "member"),
        ("n@localhost", "member"),
    ] {
        owner.send(iq(
            "set",
            "g",
            &room,
            admin_item(&[("jid", jid), ("affiliation", aff)], None),
        ));
        let got = owner.drain();
        let r = got.iter().find(|e| e.name() == "iq").unwrap();
        assert_eq!(r.type_(), Some("result"), "{}", r.to_xml());
        notices.extend(got.into_iter().filter(|e| e.name() == "message"));
    }
    // a, present, became a moderator admin; the absent members were announced.
    let got = a.drain();
    assert_eq!(items(&got[0])[0].get_attr("affiliation"), Some("admin"));
    assert_eq!(items(&got[0])[0].get_attr("role"), Some("moderator"));
    assert_eq!(
        notices.len(),
        2,
        "out-of-room affiliation changes: {}",
        xml_list(&notices)
    );
    assert_eq!(items(&notices[0])[0].get_attr("jid"), Some("m@localhost"));
    assert!(items(&notices[0])[0].get_attr("role").is_none());
    // An admin cannot make owners, nor touch another admin.
    let r = a.iq(iq(
        "set",
        "x",
        &room,
        admin_item(&[("jid", "z@localhost"), ("affiliation", "owner")], None),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
    // Lists: an admin sees members, not owners.
    let r = a.iq(iq(
        "get",
        "l",
        &room,
        admin_item(&[("affiliation", "member")], None),
    ));
    let jids: Vec<_> = r
        .first_child()
        .unwrap()
        .children()
        .filter_map(|i| i.get_attr("jid"))
        .collect();
    assert_eq!(jids, ["m@localhost", "n@localhost"]);
    let r = a.iq(iq(
        "get",
        "l2",
        &room,
        admin_item(&[("affiliation", "owner")], None),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    // The last owner cannot step down.
    let r = owner.iq(iq(
        "set",
        "s",
        &room,
        admin_item(
            &[("jid", "owner@localhost"), ("affiliation", "admin")],
            None,
        ),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    // Malformed items.
    let r = owner.iq(iq(
        "set",
        "b",
        &room,
        admin_item(
            &[("jid", "a@localhost/res"), ("affiliation", "member")],
            None,
        ),
    ));
    assert_eq!(
        error_text(&r).as_deref(),
        Some("Bare JID expected, got full JID")
    );
    let r = owner.iq(iq(
        "set",
        "b2",
        &room,
        admin_item(&[("jid", "a@localhost"), ("affiliation", "king")], None),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    let r = owner.iq(iq("set", "b3", &room, Element::new("query", NS_MUC_ADMIN)));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
}

#[test]
fn component_admins_are_owners() {
    let h = Harness::with(Setup {
        muc_options: vec![(
            "admins",
            Value::Table(xmpp_core::Table {
                seq: vec![Value::str("Boss@localhost")],
                map: Default::default(),
            }),
        )],
        ..Setup::default()
    });
    let mut owner = h.connect("owner", "o");
    let mut boss = h.connect("boss", "b");
    instant_room(&mut owner, "garden", "Owner");
    let got = boss.join("garden", "Boss");
    let own = find(&got, "presence", "garden@conference.localhost/Boss");
    assert_eq!(items(own)[0].get_attr("affiliation"), Some("owner"));
    assert_eq!(items(own)[0].get_attr("role"), Some("moderator"));
    let r = owner.iq(iq(
        "set",
        "x",
        &room_jid("garden"),
        admin_item(&[("jid", "boss@localhost"), ("affiliation", "none")], None),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
}

#[test]
fn config_form_lists_prosodys_fields_and_only_owners_get_it() {
    let h = Harness::new();
    let mut owner = h.connect("owner", "o");
    let mut a = h.connect("a", "1");
    room_with(&h, &mut owner, &mut [&mut a]);
    let r = owner.iq(iq(
        "get",
        "f",
        &room_jid("garden"),
        Element::new("query", NS_MUC_OWNER),
    ));
    let x = r
        .first_child()
        .and_then(|q| q.get_child("x", NS_DATA))
        .unwrap();
    let vars: Vec<_> = x.children().filter_map(|f| f.get_attr("var")).collect();
    for expected in [
        "FORM_TYPE",
        "muc#roomconfig_roomname",
        "muc#roomconfig_roomdesc",
        "muc#roomconfig_lang",
        "muc#roomconfig_persistentroom",
        "muc#roomconfig_publicroom",
        "muc#roomconfig_roomsecret",
        "muc#roomconfig_membersonly",
        "{http://prosody.im/protocol/muc}roomconfig_allowmemberinvites",
        "muc#roomconfig_changesubject",
        "muc#roomconfig_moderatedroom",
        "muc#roomconfig_whois",
        "muc#roomconfig_historylength",
        "muc#roomconfig_defaulthistorymessages",
        "muc#roomconfig_presencebroadcast",
        "muc#roomconfig_allowpm",
    ] {
        assert!(vars.contains(&expected), "{expected} missing from {vars:?}");
    }
    let fixed: Vec<_> = x
        .children()
        .filter(|f| f.get_attr("type") == Some("fixed"))
        .map(|f| f.get_child_text("value", NS_DATA).unwrap_or_default())
        .collect();
    assert_eq!(
        fixed,
        [
            "Room information",
            "Access to the room",
            "Permissions in the room",
            "Other options"
        ]
    );
    let r = a.iq(iq(
        "get",
        "f2",
        &room_jid("garden"),
        Element::new("query", NS_MUC_OWNER),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    assert_eq!(
        error_text(&r).as_deref(),
        Some("Only owners can configure rooms")
    );
}

#[test]
fn config_forms_with_wrong_types_are_refused_and_change_nothing() {
    let h = Harness::new();
    let mut owner = h.connect("owner", "o");
    let mut a = h.connect("a", "1");
    room_with(&h, &mut owner, &mut [&mut a]);
    let room = h.room("garden").unwrap();
    let before = room.freeze(false).0;
    let r = owner.iq(iq(
        "set",
        "bad",
        &room_jid("garden"),
        config_form(&[
            ("muc#roomconfig_roomname", &["Renamed"]),
            ("muc#roomconfig_membersonly", &["maybe"]),
            ("muc#roomconfig_historylength", &["lots"]),
        ]),
    ));
    assert_eq!(r.type_(), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    assert_eq!(
        error_text(&r).as_deref(),
        Some(
            "muc#roomconfig_historylength: not a number\nmuc#roomconfig_membersonly: Invalid boolean representation:maybe"
        )
    );
    assert_eq!(room.freeze(false).0, before, "room state unchanged");
    assert_eq!(room.get_name(), None);
    assert!(a.drain().is_empty(), "no 104 broadcast");
    // Not a room configuration form at all.
    let mut wrong = config_form(&[]);
    if let Some(x) = wrong.get_child_mut("x", NS_DATA) {
        x.remove_children(|_| true);
        x.push_child(
            Element::new("field", NS_DATA)
                .attr("var", "FORM_TYPE")
                .child(Element::new("value", NS_DATA).text("urn:other")),
        );
    }
    let r = owner.iq(iq("set", "bad2", &room_jid("garden"), wrong));
    assert_eq!(
        error_text(&r).as_deref(),
        Some("Form is not of type room configuration")
    );
    // A good form: applied, 104 broadcast.
    let r = owner.iq(iq(
        "set",
        "good",
        &room_jid("garden"),
        config_form(&[
            ("muc#roomconfig_roomname", &["Garden"]),
            ("muc#roomconfig_whois", &["anyone"]),
        ]),
    ));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(room.get_name().as_deref(), Some("Garden"));
    assert_eq!(room.get_whois(), "anyone");
    let got = a.drain();
    assert_eq!(codes(&got[0]), ["104", "172"]);
}

#[test]
fn destroy_with_alternate_venue_and_tombstone() {
    let h = Harness::new();
    let mut owner = h.connect("owner", "o");
    let mut a = h.connect("a", "1");
    room_with(&h, &mut owner, &mut [&mut a]);
    owner.iq(iq(
        "set",
        "p",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_persistentroom", &["1"])]),
    ));
    a.drain();
    let destroy = Element::new("query", NS_MUC_OWNER).child(
        Element::new("destroy", NS_MUC_OWNER)
            .attr("jid", "lawn@conference.localhost")
            .child(Element::new("reason", NS_MUC_OWNER).text("Moving")),
    );
    let r = owner.iq(iq("set", "d", &room_jid("garden"), destroy));
    assert_eq!(r.type_(), Some("result"));
    let got = a.drain();
    let x = got[0].get_child("x", NS_MUC_USER).unwrap();
    let d = x.get_child("destroy", NS_MUC_USER).unwrap();
    assert_eq!(d.get_attr("jid"), Some("lawn@conference.localhost"));
    assert_eq!(
        d.get_child_text("reason", NS_MUC_USER).as_deref(),
        Some("Moving")
    );
    assert_eq!(codes(&got[0]), ["110"]);
    // The tombstone answers 'gone' with the new venue.
    let got = a.join("garden", "User0");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("gone"));
    let gone = got[0]
        .get_child("error", xmpp_core::stanza::NS_CLIENT)
        .and_then(|e| e.get_child("gone", xmpp_core::stanza::NS_STANZAS))
        .unwrap();
    assert_eq!(gone.text_content(), "xmpp:lawn@conference.localhost?join");
}
