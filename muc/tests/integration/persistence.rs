//! Persistent rooms in storage as Prosody keeps them, restored by a new
//! server over the same data (memory driver and Prosody's data directory),
//! `muc_room_cache_size` swapping idle rooms out with their occupants, and
//! non-persistent rooms leaving nothing behind.

use crate::common;

use std::sync::Arc;

use common::*;
use xmpp_core::storage::StorageDriver;
use xmpp_core::{Table, Value};

fn make_persistent_room(h: &Harness) {
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    let r = romeo.iq(iq(
        "set",
        "c",
        &room_jid("garden"),
        config_form(&[
            ("muc#roomconfig_persistentroom", &["1"]),
            ("muc#roomconfig_roomname", &["Garden"]),
            ("muc#roomconfig_roomsecret", &["secret"]),
            ("muc#roomconfig_membersonly", &["1"]),
        ]),
    ));
    assert_eq!(r.type_(), Some("result"));
    for (jid, aff) in [
        ("juliet@localhost", "member"),
        ("tybalt@localhost", "outcast"),
        ("nurse@localhost", "admin"),
    ] {
        let r = romeo.iq(iq(
            "set",
            "a",
            &room_jid("garden"),
            admin_item(&[("jid", jid), ("affiliation", aff)], None),
        ));
        assert_eq!(r.type_(), Some("result"));
    }
    romeo.send(presence(&format!("{}/Romeo", room_jid("garden"))).attr("type", "unavailable"));
}

fn check_restored(h: &Harness) {
    let room = h.room("garden").expect("restored from storage");
    assert!(room.get_persistent());
    assert_eq!(room.get_name().as_deref(), Some("Garden"));
    assert_eq!(room.get_password().as_deref(), Some("secret"));
    assert!(room.get_members_only());
    assert!(!room.has_occupant());
    let mut affs: Vec<(String, &str)> = room
        .each_affiliation(None)
        .into_iter()
        .map(|(j, a, _)| (j, a.as_str()))
        .collect();
    affs.sort();
    assert_eq!(
        affs,
        [
            ("juliet@localhost".to_string(), "member"),
            ("nurse@localhost".to_string(), "admin"),
            ("romeo@localhost".to_string(), "owner"),
            ("tybalt@localhost".to_string(), "outcast"),
        ]
    );
    // And it works: a member joins with the password.
    let mut juliet = h.connect("juliet", "j");
    let mut p = join("garden", "Juliet");
    if let Some(x) = p.get_child_mut("x", NS_MUC) {
        x.push_child(xmpp_core::Element::new("password", NS_MUC).text("secret"));
    }
    juliet.send(p);
    let got = juliet.drain();
    assert_eq!(codes(&got[0]), ["110"], "{}", xml_list(&got));
}

#[test]
fn a_persistent_room_survives_a_restart_with_the_memory_driver() {
    let memory = Arc::new(modules::storage::MemoryDriver::new());
    {
        let h = Harness::with(Setup {
            memory: Some(memory.clone()),
            ..Setup::default()
        });
        make_persistent_room(&h);
        assert!(
            h.room("garden").is_some(),
            "persistent rooms stay when empty"
        );
        // Stored as Prosody does.
        let config = memory
            .open_keyval(MUC, "config")
            .unwrap()
            .get(Some("garden"))
            .unwrap()
            .unwrap();
        assert_eq!(
            config.get("_jid"),
            Some(&Value::str("garden@conference.localhost"))
        );
        assert_eq!(config.get("romeo@localhost"), Some(&Value::str("owner")));
        assert_eq!(
            config.get("_data").and_then(|d| d.get("persistent")),
            Some(&Value::Bool(true))
        );
        let list = memory
            .open_keyval(MUC, "persistent")
            .unwrap()
            .get(None)
            .unwrap()
            .unwrap();
        assert_eq!(
            list.get("garden@conference.localhost"),
            Some(&Value::Bool(true))
        );
    }
    let h = Harness::with(Setup {
        memory: Some(memory),
        ..Setup::default()
    });
    check_restored(&h);
}

#[test]
fn a_persistent_room_survives_a_restart_in_prosodys_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let h = Harness::with(Setup {
            data_path: Some(dir.path().to_path_buf()),
            ..Setup::default()
        });
        make_persistent_room(&h);
    }
    // Prosody's layout: data/<host>/<store>/<node>.dat, `%2e` for dots.
    let config = dir.path().join("conference%2elocalhost/config/garden.dat");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("[\"_jid\"] = \"garden@conference.localhost\""),
        "{text}"
    );
    assert!(
        dir.path()
            .join("conference%2elocalhost/persistent.dat")
            .exists()
    );
    let h = Harness::with(Setup {
        data_path: Some(dir.path().to_path_buf()),
        ..Setup::default()
    });
    check_restored(&h);
}

#[test]
fn rooms_prosody_stored_are_read() {
    // The old storage format ({ jid, _data, _affiliations }) too.
    let memory = Arc::new(modules::storage::MemoryDriver::new());
    let mut data = Table::new();
    data.insert("persistent", Value::Bool(true));
    data.insert("name", Value::str("Old"));
    let mut affs = Table::new();
    affs.insert("romeo@localhost", Value::str("owner"));
    let mut old = Table::new();
    old.insert("jid", Value::str("old@conference.localhost"));
    old.insert("_data", Value::Table(data));
    old.insert("_affiliations", Value::Table(affs));
    memory
        .open_keyval(MUC, "config")
        .unwrap()
        .set(Some("old"), Some(Value::Table(old)))
        .unwrap();
    let h = Harness::with(Setup {
        memory: Some(memory),
        ..Setup::default()
    });
    let room = h.room("old").unwrap();
    assert_eq!(room.get_name().as_deref(), Some("Old"));
    assert_eq!(
        room.get_affiliation("romeo@localhost/x"),
        Some(muc::Affiliation::Owner)
    );
}

#[test]
fn temporary_rooms_leave_nothing_in_storage() {
    let h = Harness::new();
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    romeo.iq(iq(
        "set",
        "a",
        &room_jid("garden"),
        admin_item(
            &[("jid", "juliet@localhost"), ("affiliation", "member")],
            None,
        ),
    ));
    romeo.send(presence(&format!("{}/Romeo", room_jid("garden"))).attr("type", "unavailable"));
    assert!(h.room("garden").is_none());
    let config = h.memory.open_keyval(MUC, "config").unwrap();
    assert_eq!(config.get(Some("garden")).unwrap(), None);
}

#[test]
fn idle_rooms_are_swapped_out_beyond_the_cache_size_and_come_back_with_their_occupants() {
    let h = Harness::with(Setup {
        muc_options: vec![("muc_room_cache_size", Value::Integer(2))],
        ..Setup::default()
    });
    let mut users: Vec<Client> = (0..3).map(|i| h.connect(&format!("u{i}"), "r")).collect();
    for (i, u) in users.iter_mut().enumerate() {
        instant_room(u, &format!("room{i}"), "Owner");
    }
    assert_eq!(h.service().live_rooms().len(), 2);
    // room0 was swapped out with its state...
    let state = h
        .memory
        .open_keyval(MUC, "state")
        .unwrap()
        .get(Some("room0"))
        .unwrap();
    assert!(state.is_some());
    // ...and comes back when used, its occupant still there.
    let mut guest = h.connect("guest", "g");
    let got = guest.join("room0", "Guest");
    let owner = find(&got, "presence", "room0@conference.localhost/Owner");
    assert_eq!(items(owner)[0].get_attr("affiliation"), Some("owner"));
    users[0].send(groupchat("room0", "still here"));
    let got = guest.drain();
    assert!(got.iter().any(|m| {
        m.get_child_text("body", xmpp_core::stanza::NS_CLIENT)
            .as_deref()
            == Some("still here")
    }));
}

#[test]
fn muc_max_rooms_refuses_new_rooms() {
    let h = Harness::with(Setup {
        muc_options: vec![("muc_max_rooms", Value::Integer(1))],
        ..Setup::default()
    });
    let mut a = h.connect("a", "r");
    let mut b = h.connect("b", "r");
    instant_room(&mut a, "one", "A");
    let got = b.join("two", "B");
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("resource-constraint")
    );
}

#[test]
fn at_shutdown_live_rooms_are_saved_and_occupants_told_332() {
    let memory = Arc::new(modules::storage::MemoryDriver::new());
    {
        let h = Harness::with(Setup {
            memory: Some(memory.clone()),
            ..Setup::default()
        });
        let mut romeo = h.connect("romeo", "r");
        instant_room(&mut romeo, "garden", "Romeo");
        let mut ev = xmpp_core::Event::new(&h.server, "server-stopping");
        h.server.fire_global("server-stopping", &mut ev);
        let got = romeo.drain();
        assert_eq!(got[0].type_(), Some("unavailable"));
        assert_eq!(codes(&got[0]), ["332", "110"]);
    }
    // The temporary room comes back with its occupant (as Prosody swaps rooms to disk).
    let h = Harness::with(Setup {
        memory: Some(memory),
        ..Setup::default()
    });
    let room = h.room("garden").expect("saved at shutdown");
    assert_eq!(room.occupant_count(), 1);
}
