//! Entering and leaving rooms: creation, status codes, the order of the
//! presences a joining session gets, nickname changes and conflicts, several
//! sessions under one nickname, leaving by disconnecting, locked rooms,
//! passwords, members-only rooms, bans, invalid nicknames and floods.

use crate::common;

use common::*;
use xmpp_core::Value;
use xmpp_core::stanza::{Element, NS_CLIENT};

#[test]
fn creating_a_room_gives_201_110_owner_and_an_empty_subject() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    let got = romeo.join("garden", "Romeo");
    assert_eq!(got.len(), 2, "{}", xml_list(&got));
    let p = &got[0];
    assert_eq!(p.from(), Some("garden@conference.localhost/Romeo"));
    assert_eq!(codes(p), ["201", "110"]);
    let item = &items(p)[0];
    assert_eq!(item.get_attr("affiliation"), Some("owner"));
    assert_eq!(item.get_attr("role"), Some("moderator"));
    assert_eq!(item.get_attr("jid"), Some(romeo.full().as_str()));
    assert!(
        p.get_child("occupant-id", "urn:xmpp:occupant-id:0")
            .is_some()
    );
    let subject = &got[1];
    assert_eq!(subject.type_(), Some("groupchat"));
    assert_eq!(subject.from(), Some("garden@conference.localhost"));
    assert_eq!(
        subject.get_child_text("subject", NS_CLIENT).as_deref(),
        Some("")
    );
}

#[test]
fn a_locked_room_keeps_others_out_until_configured() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    let mut juliet = h.connect("juliet", "j1");
    romeo.join("garden", "Romeo");
    let got = juliet.join("garden", "Juliet");
    assert_eq!(got[0].type_(), Some("error"));
    assert_eq!(error_condition(&got[0]).as_deref(), Some("item-not-found"));
    let r = romeo.iq(iq("set", "c1", &room_jid("garden"), config_form(&[])));
    assert_eq!(r.type_(), Some("result"));
    let got = juliet.join("garden", "Juliet");
    assert_eq!(got.len(), 3, "{}", xml_list(&got));
    // Existing occupants first, then one's own presence with 110, then the subject.
    assert_eq!(got[0].from(), Some("garden@conference.localhost/Romeo"));
    assert!(
        items(&got[0])[0].get_attr("jid").is_none(),
        "semi-anonymous"
    );
    assert_eq!(got[1].from(), Some("garden@conference.localhost/Juliet"));
    assert_eq!(codes(&got[1]), ["110"]);
    assert!(got[2].get_child("subject", NS_CLIENT).is_some());
    let seen = romeo.drain();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        items(&seen[0])[0].get_attr("jid"),
        Some(juliet.full().as_str())
    );
}

#[test]
fn no_locking_when_muc_room_locking_is_false() {
    let h = Harness::with(Setup {
        muc_options: vec![("muc_room_locking", Value::Bool(false))],
        ..Setup::default()
    });
    let mut romeo = h.connect("romeo", "r1");
    let mut juliet = h.connect("juliet", "j1");
    romeo.join("garden", "Romeo");
    let got = juliet.join("garden", "Juliet");
    assert_eq!(codes(&got[1]), ["110"], "{}", xml_list(&got));
}

#[test]
fn non_anonymous_rooms_say_100() {
    let h = Harness::with(Setup {
        muc_options: vec![("muc_room_default_public_jids", Value::Bool(true))],
        ..Setup::default()
    });
    let mut romeo = h.connect("romeo", "r1");
    let got = romeo.join("garden", "Romeo");
    assert_eq!(codes(&got[0]), ["201", "100", "110"]);
}

#[test]
fn nickname_conflict_and_nickname_change() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    let mut juliet = h.connect("juliet", "j1");
    instant_room(&mut romeo, "garden", "Romeo");
    let got = juliet.join("garden", "Romeo");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("conflict"));
    juliet.join("garden", "Juliet");
    romeo.drain();
    juliet.send(presence(&format!("{}/Jules", room_jid("garden"))));
    let got = juliet.drain();
    assert_eq!(got.len(), 2, "{}", xml_list(&got));
    assert_eq!(got[0].type_(), Some("unavailable"));
    assert_eq!(codes(&got[0]), ["303", "110"]);
    assert_eq!(items(&got[0])[0].get_attr("nick"), Some("Jules"));
    assert_eq!(got[1].from(), Some("garden@conference.localhost/Jules"));
    let seen = romeo.drain();
    assert_eq!(seen.len(), 2);
    assert_eq!(codes(&seen[0]), ["303"]);
    let room = h.room("garden").unwrap();
    assert!(
        room.get_occupant_by_nick(&format!("{}/Juliet", room_jid("garden")))
            .is_none()
    );
    assert_eq!(
        room.get_occupant_jid(&juliet.full()).as_deref(),
        Some("garden@conference.localhost/Jules")
    );
}

#[test]
fn two_sessions_under_one_nickname_and_leaving_by_disconnecting() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    let mut juliet = h.connect("juliet", "laptop");
    let mut phone = h.connect("juliet", "phone");
    instant_room(&mut romeo, "garden", "Romeo");
    juliet.join("garden", "Juliet");
    romeo.drain();
    let got = phone.join("garden", "Juliet");
    assert_eq!(got.len(), 3, "{}", xml_list(&got));
    let seen = romeo.drain();
    assert_eq!(
        items(&seen[0]).len(),
        2,
        "one item per session: {}",
        xml_list(&seen)
    );
    // Both sessions see their own presence again.
    assert_eq!(codes(&juliet.drain()[0]), ["110"]);
    // The laptop goes away: the occupant stays with one session.
    h.disconnect(&juliet);
    let seen = romeo.drain();
    assert_eq!(seen.len(), 1, "{}", xml_list(&seen));
    assert_eq!(seen[0].type_(), None);
    assert_eq!(
        items(&seen[0]).len(),
        2,
        "the leaving session is still listed"
    );
    let room = h.room("garden").unwrap();
    assert_eq!(room.occupant_count(), 2);
    assert!(room.get_occupant_by_real_jid(&juliet.full()).is_none());
    h.disconnect(&phone);
    let seen = romeo.drain();
    assert_eq!(seen[0].type_(), Some("unavailable"));
    assert_eq!(items(&seen[0])[0].get_attr("role"), Some("none"));
    assert_eq!(room.occupant_count(), 1);
}

#[test]
fn the_last_occupant_leaving_destroys_a_temporary_room() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    instant_room(&mut romeo, "garden", "Romeo");
    romeo.send(presence(&format!("{}/Romeo", room_jid("garden"))).attr("type", "unavailable"));
    let got = romeo.drain();
    assert_eq!(codes(&got[0]), ["110"]);
    assert!(h.room("garden").is_none());
    // A message to it now: the room does not exist.
    romeo.send(groupchat("garden", "anyone?"));
    assert_eq!(
        error_condition(&romeo.drain()[0]).as_deref(),
        Some("item-not-found")
    );
}

#[test]
fn invalid_nicknames_are_refused() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    instant_room(&mut romeo, "garden", "Romeo");
    let mut juliet = h.connect("juliet", "j1");
    let got = juliet.join("garden", " ");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("not-allowed"));
    assert_eq!(
        error_text(&got[0]).as_deref(),
        Some("Invisible Nicknames are forbidden")
    );
    let got = juliet.join("garden", "\u{1F916}\u{FE0F}");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("jid-malformed"));
    assert_eq!(got[0].from(), Some("garden@conference.localhost/\u{1F916}"));
    assert_eq!(
        error_text(&got[0]).as_deref(),
        Some("Nickname must pass strict validation")
    );
    // A nickname the router refuses never reaches the room.
    juliet.send(presence("garden@conference.localhost/a\u{7}b").child(Element::new("x", NS_MUC)));
    assert_eq!(
        error_condition(&juliet.drain()[0]).as_deref(),
        Some("jid-malformed")
    );
    assert_eq!(h.room("garden").unwrap().occupant_count(), 1);
    assert!(romeo.drain().is_empty());
}

#[test]
fn join_without_muc_payload_and_presence_types() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    romeo.send(presence(&format!("{}/Romeo", room_jid("plain"))));
    assert_eq!(
        error_condition(&romeo.drain()[0]).as_deref(),
        Some("item-not-found")
    );
    instant_room(&mut romeo, "garden", "Romeo");
    let mut juliet = h.connect("juliet", "j1");
    juliet.send(presence(&format!("{}/Juliet", room_jid("garden"))));
    let got = juliet.drain();
    assert_eq!(error_condition(&got[0]).as_deref(), Some("item-not-found"));
    assert_eq!(
        error_text(&got[0]).as_deref(),
        Some("You are not currently connected to this chat")
    );
    juliet.send(join("garden", "Juliet"));
    juliet.drain();
    juliet.send(presence(&format!("{}/Juliet", room_jid("garden"))).attr("type", "bogus"));
    assert_eq!(
        error_condition(&juliet.drain()[0]).as_deref(),
        Some("bad-request")
    );
}

#[test]
fn passwords() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    let mut juliet = h.connect("juliet", "j1");
    instant_room(&mut romeo, "garden", "Romeo");
    let r = romeo.iq(iq(
        "set",
        "c1",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_roomsecret", &["cauldronburn"])]),
    ));
    assert_eq!(r.type_(), Some("result"));
    let got = juliet.join("garden", "Juliet");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("not-authorized"));
    let mut j = join("garden", "Juliet");
    if let Some(x) = j.get_child_mut("x", NS_MUC) {
        x.push_child(Element::new("password", NS_MUC).text("cauldronburn"));
    }
    juliet.send(j);
    let got = juliet.drain();
    assert_eq!(codes(&got[1]), ["110"], "{}", xml_list(&got));
}

#[test]
fn members_only_rooms_and_bans() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r1");
    let mut juliet = h.connect("juliet", "j1");
    let mut tybalt = h.connect("tybalt", "t1");
    instant_room(&mut romeo, "garden", "Romeo");
    tybalt.join("garden", "Tybalt");
    romeo.drain();
    let r = romeo.iq(iq(
        "set",
        "c1",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_membersonly", &["1"])]),
    ));
    assert_eq!(r.type_(), Some("result"));
    // Tybalt, not a member, is removed with 322.
    let got = tybalt.drain();
    assert_eq!(got[0].type_(), Some("unavailable"));
    assert_eq!(codes(&got[0]), ["322", "110"]);
    let got = juliet.join("garden", "Juliet");
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("registration-required")
    );
    let r = romeo.iq(iq(
        "set",
        "m1",
        &room_jid("garden"),
        admin_item(
            &[("affiliation", "member"), ("jid", "juliet@localhost")],
            None,
        ),
    ));
    assert_eq!(r.type_(), Some("result"));
    let got = juliet.join("garden", "Juliet");
    assert_eq!(codes(&got[1]), ["110"], "{}", xml_list(&got));
    // Banned: kicked with 301 and kept out.
    romeo.drain();
    let r = romeo.iq(iq(
        "set",
        "b1",
        &room_jid("garden"),
        admin_item(
            &[("affiliation", "outcast"), ("jid", "juliet@localhost")],
            Some("Begone"),
        ),
    ));
    assert_eq!(r.type_(), Some("result"));
    let got = juliet.drain();
    assert_eq!(codes(&got[0]), ["301", "110"]);
    assert_eq!(
        items(&got[0])[0]
            .get_child_text("reason", NS_MUC_USER)
            .as_deref(),
        Some("Begone")
    );
    // In a members-only room that is (as in Prosody) registration-required;
    // in an open room, forbidden.
    let got = juliet.join("garden", "Juliet");
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("registration-required")
    );
    romeo.iq(iq(
        "set",
        "c2",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_membersonly", &["0"])]),
    ));
    let got = juliet.join("garden", "Juliet");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("forbidden"));
    let got = romeo.iq(iq(
        "get",
        "l1",
        &room_jid("garden"),
        admin_item(&[("affiliation", "outcast")], None),
    ));
    let item = got.first_child().and_then(|q| q.first_child()).unwrap();
    assert_eq!(item.get_attr("jid"), Some("juliet@localhost"));
    assert_eq!(
        item.get_child_text("reason", NS_MUC_ADMIN).as_deref(),
        Some("Begone")
    );
}

#[test]
fn muc_max_occupants_with_its_whitelist() {
    let h = Harness::with(Setup {
        muc_options: vec![
            ("muc_max_occupants", Value::Integer(2)),
            (
                "muc_access_whitelist",
                Value::Table(xmpp_core::Table {
                    seq: vec![Value::str("focus@localhost")],
                    map: Default::default(),
                }),
            ),
            ("muc_room_locking", Value::Bool(false)),
        ],
        muc_modules: vec!["muc_max_occupants"],
        ..Setup::default()
    });
    let mut focus = h.connect("focus", "f");
    let mut a = h.connect("a", "1");
    let mut b = h.connect("b", "1");
    let mut c = h.connect("c", "1");
    focus.join("conf", "focus");
    assert_eq!(codes(&a.join("conf", "A")[1]), ["110"]);
    assert_eq!(codes(&b.join("conf", "B")[2]), ["110"]);
    let got = c.join("conf", "C");
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[test]
fn restricted_room_creation() {
    let h = Harness::with(Setup {
        muc_options: vec![("restrict_room_creation", Value::Bool(true))],
        global: vec![(
            "admins",
            Value::Table(xmpp_core::Table {
                seq: vec![Value::str("Admin@localhost")],
                map: Default::default(),
            }),
        )],
        ..Setup::default()
    });
    let mut romeo = h.connect("romeo", "r1");
    let got = romeo.join("garden", "Romeo");
    assert_eq!(error_condition(&got[0]).as_deref(), Some("not-allowed"));
    assert_eq!(
        error_text(&got[0]).as_deref(),
        Some("Room creation is restricted")
    );
    assert!(h.room("garden").is_none());
    let mut admin = h.connect("admin", "a1");
    let got = admin.join("garden", "Admin");
    assert_eq!(codes(&got[0]), ["201", "110"]);
    // Unset (Prosody 13: `:create-room` for registered users) and "local":
    // users of the parent host, not guests.
    for option in [None, Some(Value::str("local"))] {
        let local = Harness::with(Setup {
            muc_options: option
                .clone()
                .map(|v| ("restrict_room_creation", v))
                .into_iter()
                .collect(),
            ..Setup::default()
        });
        let mut romeo = local.connect("romeo", "r1");
        assert_eq!(codes(&romeo.join("garden", "Romeo")[0]), ["201", "110"]);
        let guests = Harness::with(Setup {
            muc_options: option
                .map(|v| ("restrict_room_creation", v))
                .into_iter()
                .collect(),
            auth: "anonymous",
            ..Setup::default()
        });
        let mut guest = guests.connect("guest", "g");
        assert_eq!(
            error_condition(&guest.join("garden", "Guest")[0]).as_deref(),
            Some("not-allowed")
        );
    }
    let open = Harness::with(Setup {
        muc_options: vec![("restrict_room_creation", Value::Bool(false))],
        auth: "anonymous",
        ..Setup::default()
    });
    let mut guest = open.connect("guest", "g");
    assert_eq!(codes(&guest.join("garden", "Guest")[0]), ["201", "110"]);
}

#[test]
fn a_flood_of_joins_and_leaves_leaves_a_consistent_room() {
    let h = Harness::new();
    let mut owner = h.connect("owner", "o");
    instant_room(&mut owner, "flood", "Owner");
    let mut clients: Vec<Client> = (0..100).map(|i| h.connect(&format!("u{i}"), "r")).collect();
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(join("flood", &format!("n{i}")));
        }
        assert_eq!(
            h.room("flood").unwrap().occupant_count(),
            101,
            "round {round}"
        );
        for (i, c) in clients.iter_mut().enumerate() {
            if i % 2 == 0 {
                c.send(
                    presence(&format!("{}/n{i}", room_jid("flood"))).attr("type", "unavailable"),
                );
            } else {
                h.disconnect(c);
                let jid = c.jid.clone();
                h.server.sessions.bind(&jid, &c.session);
            }
        }
        let room = h.room("flood").unwrap();
        assert_eq!(room.occupant_count(), 1, "round {round}");
        assert!(room.get_occupant_by_real_jid(&owner.full()).is_some());
        for c in clients.iter_mut() {
            c.drain();
        }
        owner.drain();
    }
}

#[test]
fn joins_and_messages_from_many_threads_at_once() {
    let h = Harness::new();
    let mut owner = h.connect("owner", "o");
    instant_room(&mut owner, "busy", "Owner");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let clients: Vec<Client> = (0..25)
                .map(|i| h.connect(&format!("t{t}u{i}"), "r"))
                .collect();
            std::thread::spawn(move || {
                for (i, c) in clients.iter().enumerate() {
                    c.send(join("busy", &format!("t{t}n{i}")));
                }
                for c in &clients {
                    c.send(groupchat("busy", "hi"));
                }
                clients
            })
        })
        .collect();
    let mut clients: Vec<Client> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let room = h.room("busy").unwrap();
    assert_eq!(room.occupant_count(), 201);
    // Every message reached the owner, in one piece.
    let got = owner.drain();
    let messages = got.iter().filter(|e| e.name() == "message").count();
    assert_eq!(messages, 200);
    let last_joined = clients.last_mut().unwrap().drain();
    assert!(last_joined.iter().any(|e| e.name() == "message"));
}
