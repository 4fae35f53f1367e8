//! Room vCards and avatars as Prosody 13 serves them: owners set the
//! room's vCard, anyone gets it, anyone else's set is forbidden; the avatar
//! hash in the room's disco#info, announced to occupants when it changes
//! and to each joining session; kept in the `vcard_muc` store across a
//! restart (memory driver and Prosody's data directory).

use crate::common;

use std::sync::Arc;

use common::*;
use xmpp_core::Value;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::StorageDriver;

const VCARD: &str = "vcard-temp";
const UPDATE: &str = "vcard-temp:x:update";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// SHA-1 of "hello" (`aGVsbG8=`).
const HELLO_SHA1: &str = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";

fn room_vcard(photo: Option<&str>) -> Element {
    let mut v = Element::new("vCard", VCARD).child(Element::new("FN", VCARD).text("The Garden"));
    if let Some(p) = photo {
        v.push_child(
            Element::new("PHOTO", VCARD)
                .child(Element::new("TYPE", VCARD).text("image/png"))
                .child(Element::new("BINVAL", VCARD).text(p)),
        );
    }
    v
}

fn get_vcard(client: &mut Client, node: &str, id: &str) -> Element {
    client.iq(iq("get", id, &room_jid(node), Element::new("vCard", VCARD)))
}

fn set_vcard(client: &mut Client, node: &str, id: &str, vcard: Element) -> Element {
    client.iq(iq("set", id, &room_jid(node), vcard))
}

/// Romeo owns `garden`, Juliet is in it as a participant.
fn garden(h: &Harness) -> (Client, Client) {
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    let mut juliet = h.connect("juliet", "j");
    juliet.join("garden", "Juliet");
    romeo.drain();
    (romeo, juliet)
}

/// The `<photo/>` of a vcard-temp:x:update presence from the room.
fn photo_of(e: &Element) -> Option<String> {
    e.get_child("x", UPDATE)
        .and_then(|x| x.get_child("photo", UPDATE))
        .map(Element::text_content)
}

fn avatar_presences(got: &[Element]) -> Vec<&Element> {
    got.iter()
        .filter(|e| {
            e.name() == "presence"
                && e.from() == Some(room_jid("garden").as_str())
                && e.get_child("x", UPDATE).is_some()
        })
        .collect()
}

fn status_104(got: &[Element]) -> Vec<&Element> {
    got.iter()
        .filter(|e| {
            e.name() == "message"
                && e.type_() == Some("groupchat")
                && e.from() == Some(room_jid("garden").as_str())
                && codes(e) == ["104"]
        })
        .collect()
}

fn disco_info(client: &mut Client, node: &str) -> Element {
    client.iq(iq(
        "get",
        "disco",
        &room_jid(node),
        Element::new("query", DISCO_INFO),
    ))
}

/// The values of a field of the roominfo form, `None` if the field is absent.
fn roominfo_values(reply: &Element, var: &str) -> Option<Vec<String>> {
    let form = reply
        .get_child("query", DISCO_INFO)?
        .get_child("x", NS_DATA)?;
    let field = form
        .children()
        .find(|f| f.name() == "field" && f.get_attr("var") == Some(var))?;
    Some(
        field
            .children()
            .filter(|v| v.name() == "value")
            .map(Element::text_content)
            .collect(),
    )
}

#[test]
fn the_owner_sets_and_a_participant_and_a_stranger_get() {
    let h = Harness::new();
    let (mut romeo, mut juliet) = garden(&h);
    // No vCard yet: item-not-found.
    let r = get_vcard(&mut juliet, "garden", "g0");
    assert_eq!(r.type_(), Some("error"), "{}", r.to_xml());
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    assert_eq!(
        r.get_child("error", NS_CLIENT)
            .and_then(|e| e.get_attr("type")),
        Some("cancel")
    );

    let r = set_vcard(&mut romeo, "garden", "s1", room_vcard(Some("aGVsbG8=")));
    assert_eq!(r.type_(), Some("result"), "{}", r.to_xml());
    assert_eq!(r.from(), Some(room_jid("garden").as_str()));
    assert!(r.first_child().is_none());

    let r = get_vcard(&mut juliet, "garden", "g1");
    assert_eq!(r.type_(), Some("result"), "{}", r.to_xml());
    let v = r.get_child("vCard", VCARD).expect("the room's vCard");
    assert_eq!(v.get_child_text("FN", VCARD).as_deref(), Some("The Garden"));
    assert_eq!(
        v.get_child("PHOTO", VCARD)
            .and_then(|p| p.get_child_text("BINVAL", VCARD))
            .as_deref(),
        Some("aGVsbG8=")
    );
    // Someone not in the room may get it too.
    let mut nurse = h.connect("nurse", "n");
    let r = get_vcard(&mut nurse, "garden", "g2");
    assert!(r.get_child("vCard", VCARD).is_some(), "{}", r.to_xml());
}

#[test]
fn a_set_by_anyone_but_an_owner_is_forbidden() {
    let h = Harness::new();
    let (mut romeo, mut juliet) = garden(&h);
    let r = set_vcard(&mut romeo, "garden", "s1", room_vcard(None));
    assert_eq!(r.type_(), Some("result"));
    romeo.drain();
    juliet.drain();

    // A participant, an admin and a stranger may not.
    let r = romeo.iq(iq(
        "set",
        "a",
        &room_jid("garden"),
        admin_item(
            &[("jid", "nurse@localhost"), ("affiliation", "admin")],
            None,
        ),
    ));
    assert_eq!(r.type_(), Some("result"), "{}", r.to_xml());
    let mut nurse = h.connect("nurse", "n");
    let mut tybalt = h.connect("tybalt", "t");
    for c in [&mut juliet, &mut nurse, &mut tybalt] {
        let r = set_vcard(c, "garden", "s2", room_vcard(Some("aGVsbG8=")));
        assert_eq!(r.type_(), Some("error"), "{}", r.to_xml());
        assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
        assert_eq!(
            r.get_child("error", NS_CLIENT)
                .and_then(|e| e.get_attr("type")),
            Some("auth")
        );
    }
    // Nothing changed, nobody was told anything.
    let r = get_vcard(&mut juliet, "garden", "g");
    let v = r.get_child("vCard", VCARD).expect("vCard");
    assert!(v.get_child("PHOTO", VCARD).is_none());
    romeo.expect_nothing();

    // A room that does not exist has no owner.
    let r = set_vcard(&mut romeo, "nowhere", "s3", room_vcard(None));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    assert!(h.room("nowhere").is_none());
}

#[test]
fn the_avatar_hash_is_in_the_rooms_disco_info() {
    let h = Harness::new();
    let (mut romeo, mut juliet) = garden(&h);
    let r = disco_info(&mut juliet, "garden");
    let q = r.get_child("query", DISCO_INFO).expect("disco#info");
    assert!(
        q.children()
            .any(|f| f.name() == "feature" && f.get_attr("var") == Some(VCARD)),
        "{}",
        r.to_xml()
    );
    assert_eq!(
        roominfo_values(&r, "muc#roominfo_avatarhash"),
        Some(vec![]),
        "{}",
        r.to_xml()
    );

    set_vcard(&mut romeo, "garden", "s1", room_vcard(Some("aGVsbG8=")));
    let r = disco_info(&mut juliet, "garden");
    assert_eq!(
        roominfo_values(&r, "muc#roominfo_avatarhash"),
        Some(vec![HELLO_SHA1.to_string()]),
        "{}",
        r.to_xml()
    );

    // A vCard without a photo: no hash any more.
    set_vcard(&mut romeo, "garden", "s2", room_vcard(None));
    let r = disco_info(&mut juliet, "garden");
    assert_eq!(roominfo_values(&r, "muc#roominfo_avatarhash"), Some(vec![]));
}

#[test]
fn occupants_see_the_avatar_change_and_joiners_get_the_hash() {
    let h = Harness::new();
    let (mut romeo, mut juliet) = garden(&h);
    // The owner's client sees it too (after the result of its set).
    romeo.send(iq(
        "set",
        "s1",
        &room_jid("garden"),
        room_vcard(Some("aGVsbG8=")),
    ));
    for c in [&mut romeo, &mut juliet] {
        let got = c.drain();
        let p = avatar_presences(&got);
        assert_eq!(p.len(), 1, "{}", xml_list(&got));
        assert_eq!(p[0].to(), Some(c.full().as_str()));
        assert_eq!(p[0].type_(), None);
        assert_eq!(photo_of(p[0]).as_deref(), Some(HELLO_SHA1));
        assert_eq!(status_104(&got).len(), 1, "{}", xml_list(&got));
    }

    // A new session gets the hash when it joins, the others nothing more.
    let mut nurse = h.connect("nurse", "n");
    let got = nurse.join("garden", "Nurse");
    let p = avatar_presences(&got);
    assert_eq!(p.len(), 1, "{}", xml_list(&got));
    assert_eq!(p[0].to(), Some(nurse.full().as_str()));
    assert_eq!(photo_of(p[0]).as_deref(), Some(HELLO_SHA1));
    assert!(avatar_presences(&juliet.drain()).is_empty());

    // Removing the photo announces an empty <photo/>.
    set_vcard(&mut romeo, "garden", "s2", room_vcard(None));
    let got = juliet.drain();
    let p = avatar_presences(&got);
    assert_eq!(p.len(), 1, "{}", xml_list(&got));
    assert_eq!(photo_of(p[0]).as_deref(), Some(""));
    // And a room without an avatar says nothing to joiners.
    let mut tybalt = h.connect("tybalt", "t");
    let got = tybalt.join("garden", "Tybalt");
    assert!(avatar_presences(&got).is_empty(), "{}", xml_list(&got));
    // None of it went into the room's history.
    let mut benvolio = h.connect("benvolio", "b");
    let got = benvolio.join("garden", "Benvolio");
    assert!(status_104(&got).is_empty(), "{}", xml_list(&got));
}

#[test]
fn muc_avatar_advertise_hashes_chooses_how_changes_are_announced() {
    for (option, presence, message, on_join) in [
        ("presence", true, false, true),
        ("message", false, true, true),
        ("none", false, false, false),
    ] {
        let h = Harness::with(Setup {
            muc_options: vec![("muc_avatar_advertise_hashes", Value::str(option))],
            ..Setup::default()
        });
        let (mut romeo, mut juliet) = garden(&h);
        let r = set_vcard(&mut romeo, "garden", "s1", room_vcard(Some("aGVsbG8=")));
        assert_eq!(r.type_(), Some("result"));
        let got = juliet.drain();
        assert_eq!(
            avatar_presences(&got).len(),
            usize::from(presence),
            "{option}"
        );
        assert_eq!(status_104(&got).len(), usize::from(message), "{option}");
        let mut nurse = h.connect("nurse", "n");
        let got = nurse.join("garden", "Nurse");
        assert_eq!(
            avatar_presences(&got).len(),
            usize::from(on_join),
            "{option}"
        );
        // The hash is in disco#info whatever the option.
        let r = disco_info(&mut nurse, "garden");
        assert_eq!(
            roominfo_values(&r, "muc#roominfo_avatarhash"),
            Some(vec![HELLO_SHA1.to_string()]),
            "{option}"
        );
    }
}

fn make_room_with_avatar(h: &Harness) {
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    let r = romeo.iq(iq(
        "set",
        "c",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_persistentroom", &["1"])]),
    ));
    assert_eq!(r.type_(), Some("result"));
    let r = set_vcard(&mut romeo, "garden", "s1", room_vcard(Some("aGVsbG8=")));
    assert_eq!(r.type_(), Some("result"));
    romeo.send(presence(&format!("{}/Romeo", room_jid("garden"))).attr("type", "unavailable"));
}

fn check_avatar_restored(h: &Harness) {
    let mut juliet = h.connect("juliet", "j");
    let r = get_vcard(&mut juliet, "garden", "g");
    let v = r.get_child("vCard", VCARD).expect("the stored vCard");
    assert_eq!(v.get_child_text("FN", VCARD).as_deref(), Some("The Garden"));
    let r = disco_info(&mut juliet, "garden");
    assert_eq!(
        roominfo_values(&r, "muc#roominfo_avatarhash"),
        Some(vec![HELLO_SHA1.to_string()])
    );
    let got = juliet.join("garden", "Juliet");
    let p = avatar_presences(&got);
    assert_eq!(p.len(), 1, "{}", xml_list(&got));
    assert_eq!(photo_of(p[0]).as_deref(), Some(HELLO_SHA1));
}

#[test]
fn the_room_vcard_survives_a_restart_with_the_memory_driver() {
    let memory = Arc::new(modules::storage::MemoryDriver::new());
    {
        let h = Harness::with(Setup {
            memory: Some(memory.clone()),
            ..Setup::default()
        });
        make_room_with_avatar(&h);
        // Kept as Prosody keeps it: the preserialized <vCard/> under the
        // room's node in the component's `vcard_muc` store.
        let stored = memory
            .open_keyval(MUC, "vcard_muc")
            .unwrap()
            .get(Some("garden"))
            .unwrap()
            .expect("stored vCard");
        assert_eq!(stored.get("name"), Some(&Value::str("vCard")));
        assert_eq!(
            stored.get("attr").and_then(|a| a.get("xmlns")),
            Some(&Value::str(VCARD))
        );
    }
    let h = Harness::with(Setup {
        memory: Some(memory),
        ..Setup::default()
    });
    check_avatar_restored(&h);
}

#[test]
fn the_room_vcard_survives_a_restart_in_prosodys_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let h = Harness::with(Setup {
            data_path: Some(dir.path().to_path_buf()),
            ..Setup::default()
        });
        make_room_with_avatar(&h);
    }
    let file = dir
        .path()
        .join("conference%2elocalhost/vcard_muc/garden.dat");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("aGVsbG8="), "{text}");
    let h = Harness::with(Setup {
        data_path: Some(dir.path().to_path_buf()),
        ..Setup::default()
    });
    check_avatar_restored(&h);
}
