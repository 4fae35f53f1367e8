//! muc_mam (Prosody 0.12's mod_muc_mam): groupchat archived in `muc_log`
//! under the room's node with the archive id as the broadcast's
//! `<stanza-id/>`, queries paged with RSM, history served from the archive
//! after a restart, archiving switched off by the room option, and the
//! archive removed with the room.

use crate::common;

use std::sync::Arc;

use common::*;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::{ArchiveQuery, StorageDriver};

const MAM: &str = "urn:xmpp:mam:2";
const RSM: &str = "http://jabber.org/protocol/rsm";
const SID: &str = "urn:xmpp:sid:0";
const FORWARD: &str = "urn:xmpp:forward:0";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

fn setup(memory: Option<Arc<modules::storage::MemoryDriver>>) -> Harness {
    Harness::with(Setup {
        memory,
        muc_modules: vec!["muc_mam"],
        ..Setup::default()
    })
}

fn archive_keys(h: &Harness, node: &str) -> Vec<(String, String)> {
    h.memory
        .open_archive(MUC, "muc_log")
        .unwrap()
        .find(Some(node), &ArchiveQuery::default())
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.with))
        .collect()
}

fn stanza_id(e: &Element) -> Option<String> {
    e.children()
        .find(|c| c.is("stanza-id", SID) && c.get_attr("by") == Some(room_jid("garden").as_str()))
        .and_then(|c| c.get_attr("id").map(str::to_string))
}

fn query(client: &mut Client, id: &str, set: Option<Element>) -> (Vec<Element>, Element) {
    let mut q = Element::new("query", MAM).attr("queryid", id);
    if let Some(s) = set {
        q.push_child(s);
    }
    client.send(iq("set", id, &room_jid("garden"), q));
    let got = client.drain();
    let fin = got
        .iter()
        .find(|e| e.name() == "iq" && e.id() == Some(id))
        .cloned()
        .unwrap_or_else(|| panic!("no reply:\n{}", xml_list(&got)));
    let results = got
        .into_iter()
        .filter(|e| e.name() == "message")
        .filter_map(|e| e.get_child("result", MAM).cloned())
        .collect();
    (results, fin)
}

fn forwarded_body(result: &Element) -> Option<String> {
    result
        .get_child("forwarded", FORWARD)?
        .get_child("message", NS_CLIENT)?
        .get_child_text("body", NS_CLIENT)
}

fn rsm_max(max: &str, after: Option<&str>) -> Element {
    let mut set = Element::new("set", RSM).child(Element::new("max", RSM).text(max));
    if let Some(a) = after {
        set.push_child(Element::new("after", RSM).text(a));
    }
    set
}

/// Romeo owns a persistent `garden`, Juliet is in it; Romeo says three things.
fn garden_with_messages(h: &Harness) -> (Client, Client, Vec<Element>) {
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    let reply = romeo.iq(iq(
        "set",
        "persist",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_persistentroom", &["1"])]),
    ));
    assert_eq!(reply.type_(), Some("result"), "{}", reply.to_xml());
    let mut juliet = h.connect("juliet", "j");
    juliet.join("garden", "Juliet");
    romeo.drain();
    for body in ["one", "two", "three"] {
        romeo.send(groupchat("garden", body));
    }
    romeo.drain();
    let got: Vec<Element> = juliet
        .drain()
        .into_iter()
        .filter(|e| e.name() == "message" && e.get_child("body", NS_CLIENT).is_some())
        .collect();
    (romeo, juliet, got)
}

#[test]
fn groupchat_is_archived_with_its_stanza_id_and_paged_through() {
    let h = setup(None);
    let (_romeo, mut juliet, got) = garden_with_messages(&h);
    assert_eq!(got.len(), 3, "{}", xml_list(&got));
    let keys = archive_keys(&h, "garden");
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|(_, with)| with == "message<groupchat"));
    // The broadcast carries the archive's id, once.
    for (m, (key, _)) in got.iter().zip(&keys) {
        assert_eq!(
            stanza_id(m).as_deref(),
            Some(key.as_str()),
            "{}",
            m.to_xml()
        );
        assert_eq!(m.children().filter(|c| c.is("stanza-id", SID)).count(), 1);
    }

    let (page, fin) = query(&mut juliet, "q1", Some(rsm_max("2", None)));
    assert_eq!(fin.type_(), Some("result"), "{}", fin.to_xml());
    let bodies: Vec<_> = page.iter().filter_map(forwarded_body).collect();
    assert_eq!(bodies, ["one", "two"]);
    assert_eq!(page[0].get_attr("id"), Some(keys[0].0.as_str()));
    assert_eq!(page[0].get_attr("queryid"), Some("q1"));
    let fin_el = fin.get_child("fin", MAM).unwrap();
    assert_eq!(fin_el.get_attr("complete"), None);
    let set = fin_el.get_child("set", RSM).unwrap();
    assert_eq!(set.get_child_text("count", RSM).as_deref(), Some("3"));
    let last = set.get_child_text("last", RSM).unwrap();
    // Real JIDs are not shown in a semi-anonymous room.
    let fwd = page[0]
        .get_child("forwarded", FORWARD)
        .and_then(|f| f.get_child("message", NS_CLIENT))
        .unwrap();
    assert_eq!(
        fwd.from(),
        Some(format!("{}/Romeo", room_jid("garden")).as_str())
    );
    assert!(fwd.get_child("x", NS_MUC_USER).is_none());
    assert!(fwd.to().is_none());

    let (page, fin) = query(&mut juliet, "q2", Some(rsm_max("2", Some(&last))));
    let bodies: Vec<_> = page.iter().filter_map(forwarded_body).collect();
    assert_eq!(bodies, ["three"]);
    assert_eq!(
        fin.get_child("fin", MAM).unwrap().get_attr("complete"),
        Some("true")
    );

    // Advertised in the room's disco#info.
    let info = juliet.iq(iq(
        "get",
        "d",
        &room_jid("garden"),
        Element::new("query", DISCO_INFO),
    ));
    let features: Vec<_> = info
        .get_child("query", DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.get_attr("var"))
        .map(str::to_string)
        .collect();
    assert!(features.iter().any(|f| f == MAM), "{features:?}");
}

#[test]
fn joining_after_a_restart_gets_history_from_the_archive() {
    let memory = Arc::new(modules::storage::MemoryDriver::new());
    let keys = {
        let h = setup(Some(memory.clone()));
        let (romeo, juliet, _) = garden_with_messages(&h);
        h.disconnect(&romeo);
        h.disconnect(&juliet);
        archive_keys(&h, "garden")
    };
    let h = setup(Some(memory));
    let mut nurse = h.connect("nurse", "n");
    let got = nurse.join("garden", "Nurse");
    let history: Vec<_> = got
        .iter()
        .filter(|e| e.name() == "message" && e.get_child("body", NS_CLIENT).is_some())
        .collect();
    let bodies: Vec<_> = history
        .iter()
        .filter_map(|e| e.get_child_text("body", NS_CLIENT))
        .collect();
    assert_eq!(bodies, ["one", "two", "three"], "{}", xml_list(&got));
    for (m, (key, _)) in history.iter().zip(&keys) {
        assert_eq!(stanza_id(m).as_deref(), Some(key.as_str()));
        assert!(m.get_child("delay", "urn:xmpp:delay").is_some());
        assert_eq!(m.to(), Some(nurse.full().as_str()));
    }
    // maxstanzas is honoured.
    let mut tybalt = h.connect("tybalt", "t");
    let got = tybalt.join_with_history("garden", "Tybalt", "1");
    let bodies: Vec<_> = got
        .iter()
        .filter_map(|e| e.get_child_text("body", NS_CLIENT))
        .collect();
    assert_eq!(bodies, ["three"]);
}

#[test]
fn archiving_off_in_the_room_config_stores_nothing() {
    let h = setup(None);
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    let reply = romeo.iq(iq(
        "set",
        "off",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_enablearchiving", &["0"])]),
    ));
    assert_eq!(reply.type_(), Some("result"), "{}", reply.to_xml());
    romeo.send(groupchat("garden", "secret"));
    let got = romeo.drain();
    assert!(archive_keys(&h, "garden").is_empty());
    let m = got
        .iter()
        .find(|e| e.get_child_text("body", NS_CLIENT).as_deref() == Some("secret"))
        .unwrap();
    // Still a (random) stanza id from the room.
    assert!(stanza_id(m).is_some());
    let info = romeo.iq(iq(
        "get",
        "d",
        &room_jid("garden"),
        Element::new("query", DISCO_INFO),
    ));
    assert!(
        !info.to_xml().contains(MAM),
        "no MAM feature when off: {}",
        info.to_xml()
    );
}

#[test]
fn outcasts_cannot_query_and_destroying_the_room_removes_its_archive() {
    let h = setup(None);
    let (mut romeo, _juliet, _) = garden_with_messages(&h);
    let ban = romeo.iq(iq(
        "set",
        "ban",
        &room_jid("garden"),
        admin_item(
            &[("jid", "tybalt@localhost"), ("affiliation", "outcast")],
            None,
        ),
    ));
    assert_eq!(ban.type_(), Some("result"), "{}", ban.to_xml());
    let mut tybalt = h.connect("tybalt", "t");
    let (results, reply) = query(&mut tybalt, "q", None);
    assert!(results.is_empty());
    assert_eq!(error_condition(&reply).as_deref(), Some("forbidden"));

    assert_eq!(archive_keys(&h, "garden").len(), 3);
    let destroy = romeo.iq(iq(
        "set",
        "destroy",
        &room_jid("garden"),
        Element::new("query", NS_MUC_OWNER).child(Element::new("destroy", NS_MUC_OWNER)),
    ));
    assert_eq!(destroy.type_(), Some("result"), "{}", destroy.to_xml());
    assert!(archive_keys(&h, "garden").is_empty());
}

trait JoinWithHistory {
    fn join_with_history(&mut self, node: &str, nick: &str, maxstanzas: &str) -> Vec<Element>;
}

impl JoinWithHistory for Client {
    fn join_with_history(&mut self, node: &str, nick: &str, maxstanzas: &str) -> Vec<Element> {
        self.send(
            presence(&format!("{}/{nick}", room_jid(node))).child(
                Element::new("x", NS_MUC)
                    .child(Element::new("history", NS_MUC).attr("maxstanzas", maxstanzas)),
            ),
        );
        self.drain()
    }
}

#[test]
fn a_non_anonymous_room_keeps_and_shows_the_senders_real_jid() {
    let h = setup(None);
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "Romeo");
    let reply = romeo.iq(iq(
        "set",
        "open",
        &room_jid("garden"),
        config_form(&[("muc#roomconfig_whois", &["anyone"])]),
    ));
    assert_eq!(reply.type_(), Some("result"), "{}", reply.to_xml());
    romeo.send(groupchat("garden", "hello"));
    romeo.drain();
    let stored = h
        .memory
        .open_archive(MUC, "muc_log")
        .unwrap()
        .find(Some("garden"), &ArchiveQuery::default())
        .unwrap();
    assert_eq!(stored.len(), 1);
    let item = stored[0]
        .stanza
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("item", NS_MUC_USER))
        .cloned()
        .unwrap_or_else(|| panic!("{}", stored[0].stanza.to_xml()));
    assert_eq!(item.get_attr("jid"), Some("romeo@localhost"));
    assert_eq!(item.get_attr("affiliation"), Some("owner"));
    assert_eq!(item.get_attr("role"), Some("moderator"));
    let (results, _) = query(&mut romeo, "q", None);
    let fwd = results[0]
        .get_child("forwarded", FORWARD)
        .and_then(|f| f.get_child("message", NS_CLIENT))
        .unwrap();
    assert!(
        fwd.get_child("x", NS_MUC_USER).is_some(),
        "{}",
        fwd.to_xml()
    );
}
