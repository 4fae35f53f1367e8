//! mod_muc's ad-hoc commands for admins (through mod_adhoc):
//! `muc#destroy` and `muc#set-affiliation`, as Prosody 13.

use crate::common;

use common::*;
use muc::Affiliation;
use xmpp_core::stanza::Element;
use xmpp_core::{Table, Value};

const CMD: &str = "http://jabber.org/protocol/commands";
const ITEMS: &str = "http://jabber.org/protocol/disco#items";
const DESTROY: &str = "http://prosody.im/protocol/muc#destroy";
const SET_AFFILIATION: &str = "http://prosody.im/protocol/muc#set-affiliation";

fn harness() -> Harness {
    Harness::with(Setup {
        global: vec![(
            "admins",
            Value::Table(Table {
                seq: vec![Value::str("admin@localhost")],
                ..Table::default()
            }),
        )],
        ..Setup::default()
    })
}

fn field(var: &str, values: &[&str]) -> Element {
    let mut f = Element::new("field", NS_DATA).attr("var", var);
    for v in values {
        f.push_child(Element::new("value", NS_DATA).text(*v));
    }
    f
}

fn command(node: &str, fields: Option<Vec<Element>>) -> Element {
    let mut c = Element::new("command", CMD).attr("node", node);
    if let Some(fields) = fields {
        let mut x = Element::new("x", NS_DATA);
        for f in fields {
            x.push_child(f);
        }
        c.push_child(x);
    }
    iq("set", "cmd", MUC, c)
}

fn note(r: &Element) -> (String, String) {
    let n = r
        .get_child("command", CMD)
        .and_then(|c| c.get_child("note", CMD))
        .unwrap_or_else(|| panic!("no note: {}", r.to_xml()));
    (
        n.get_attr("type").unwrap_or_default().to_string(),
        n.text_content(),
    )
}

#[test]
fn listed_for_admins_only() {
    let h = harness();
    let mut admin = h.connect("admin", "a");
    let mut user = h.connect("romeo", "r");
    let list = || {
        iq(
            "get",
            "items",
            MUC,
            Element::new("query", ITEMS).attr("node", CMD),
        )
    };
    let r = admin.iq(list());
    let nodes: Vec<&str> = r
        .get_child("query", ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.get_attr("node"))
        .collect();
    assert_eq!(nodes, [DESTROY, SET_AFFILIATION]);
    let r = user.iq(list());
    assert_eq!(r.get_child("query", ITEMS).unwrap().children().count(), 0);
    let r = user.iq(command(
        DESTROY,
        Some(vec![field("rooms", &[&room_jid("x")])]),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
}

/// The end of muc_create_destroy.scs.
#[test]
fn destroy_rooms() {
    let h = harness();
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "elsewhere", "romeo");
    instant_room(&mut romeo, "another", "romeo");
    let mut admin = h.connect("admin", "a");

    // Without a form: the form, listing the rooms sorted.
    let r = admin.iq(command(DESTROY, None));
    let c = r.get_child("command", CMD).unwrap();
    assert_eq!(c.get_attr("status"), Some("executing"));
    let x = c.get_child("x", NS_DATA).unwrap();
    assert_eq!(
        x.get_child_text("title", NS_DATA).as_deref(),
        Some("Destroy rooms")
    );
    let rooms = x
        .children()
        .find(|f| f.get_attr("var") == Some("rooms"))
        .unwrap();
    assert_eq!(rooms.get_attr("type"), Some("list-multi"));
    let offered: Vec<String> = rooms
        .children()
        .filter(|o| o.name() == "option")
        .filter_map(|o| o.get_child_text("value", NS_DATA))
        .collect();
    assert_eq!(offered, [room_jid("another"), room_jid("elsewhere")]);

    // With the form: destroyed, occupants told with an empty <destroy/>.
    let r = admin.iq(command(
        DESTROY,
        Some(vec![field("rooms", &[&room_jid("elsewhere")])]),
    ));
    assert_eq!(r.type_(), Some("result"));
    let c = r.get_child("command", CMD).unwrap();
    assert_eq!(c.get_attr("status"), Some("completed"));
    assert!(c.get_attr("sessionid").is_some());
    assert_eq!(
        note(&r),
        (
            "info".to_string(),
            format!(
                "The following rooms were destroyed:\n{}",
                room_jid("elsewhere")
            )
        )
    );
    let got = romeo.drain();
    let p = find(
        &got,
        "presence",
        &format!("{}/romeo", room_jid("elsewhere")),
    );
    assert_eq!(p.type_(), Some("unavailable"));
    let d = p
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("destroy", NS_MUC_USER))
        .expect("destroy");
    assert_eq!(d.children().count(), 0);
    assert!(h.room("elsewhere").is_none());
    assert!(h.room("another").is_some());

    // Rooms that do not exist are not listed as destroyed; no rooms at all
    // is a form error.
    let r = admin.iq(command(
        DESTROY,
        Some(vec![field("rooms", &[&room_jid("nowhere")])]),
    ));
    assert_eq!(note(&r).1, "The following rooms were destroyed:\n");
    let r = admin.iq(command(DESTROY, Some(vec![])));
    assert_eq!(
        note(&r),
        (
            "error".to_string(),
            "rooms: Required value missing".to_string()
        )
    );
}

#[test]
fn set_affiliation() {
    let h = harness();
    let mut romeo = h.connect("romeo", "r");
    instant_room(&mut romeo, "garden", "romeo");
    let mut admin = h.connect("admin", "a");
    let form = |room: &str, jid: &str, aff: &str| {
        Some(vec![
            field("room", &[room]),
            field("jid", &[jid]),
            field("affiliation", &[aff]),
        ])
    };
    let r = admin.iq(command(
        SET_AFFILIATION,
        form(&room_jid("garden"), "juliet@localhost", "member"),
    ));
    assert_eq!(
        note(&r),
        ("info".to_string(), "Affiliation updated".to_string())
    );
    let room = h.room("garden").unwrap();
    assert_eq!(
        room.get_affiliation("juliet@localhost"),
        Some(Affiliation::Member)
    );
    let r = admin.iq(command(
        SET_AFFILIATION,
        form(&room_jid("nothing"), "juliet@localhost", "member"),
    ));
    let c = r.get_child("command", CMD).unwrap();
    assert_eq!(c.get_attr("status"), Some("canceled"));
    assert_eq!(note(&r), ("error".to_string(), "No such room".to_string()));
    let r = admin.iq(command(
        SET_AFFILIATION,
        form(&room_jid("garden"), "juliet@localhost", "king"),
    ));
    assert_eq!(
        note(&r).1,
        "Affiliation change failed: modify:not-acceptable"
    );
}
