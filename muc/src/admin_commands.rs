//! mod_muc's ad-hoc commands for service admins (XEP-0050, through the
//! `adhoc` module of the `modules` crate), as Prosody 13:
//!
//! - `http://prosody.im/protocol/muc#destroy` "Destroy Rooms": a form
//!   listing every room (live and stored, sorted) in `rooms`; each room
//!   submitted is destroyed (without a reason) and the note lists those
//!   that were, "The following rooms were destroyed:\n<jid>...";
//! - `http://prosody.im/protocol/muc#set-affiliation` "Set affiliation in
//!   room": `room`, `jid`, `affiliation` (owner, admin, member, none,
//!   outcast), `reason`; set with the room's own authority. A missing room
//!   is "No such room", a refusal "Affiliation change failed: type:condition"
//!   (both canceled), success "Affiliation updated".
//!
//! Both need the `admin` permission (the global or the component's
//! `admins`). A form with problems completes with an error note listing
//! them, `field: problem` per line.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use xmpp_core::Host;
use xmpp_core::adhoc::{self, Command, Field, FieldValue, Form, Permission, Reply};

use crate::room::{Actor, AffiliationData, Room};
use crate::service::{Lookup, MucService};
use crate::util::Affiliation;

pub const NODE_DESTROY: &str = "http://prosody.im/protocol/muc#destroy";
pub const NODE_SET_AFFILIATION: &str = "http://prosody.im/protocol/muc#set-affiliation";

fn room(service: &MucService, jid: &str) -> Option<Arc<Room>> {
    match service.get_room(jid) {
        Lookup::Live(r) | Lookup::Creating(r) => Some(r),
        _ => None,
    }
}

fn destroy_layout() -> Form {
    Form {
        title: Some("Destroy rooms".into()),
        instructions: Some("Select the rooms to destroy".into()),
        fields: vec![
            Field::new("FORM_TYPE", "hidden").value(NODE_DESTROY),
            Field::new("rooms", "list-multi")
                .required()
                .label("Rooms to destroy:"),
        ],
    }
}

fn set_affiliation_layout() -> Form {
    Form {
        title: Some("Set affiliation".into()),
        instructions: None,
        fields: vec![
            Field::new("FORM_TYPE", "hidden").value(NODE_SET_AFFILIATION),
            Field::new("room", "jid-single").required().label("Room"),
            Field::new("jid", "jid-single").required().label("JID"),
            Field::new("affiliation", "list-single")
                .required()
                .label("Affiliation")
                .options(&["owner", "admin", "member", "none", "outcast"]),
            Field::new("reason", "text-single"),
        ],
    }
}

fn destroy_command(service: Weak<MucService>) -> Command {
    let listing = service.clone();
    let initial = move |_: &adhoc::Request<'_>| {
        let mut rooms: Vec<String> = listing
            .upgrade()
            .map(|s| s.all_rooms().iter().map(|r| r.jid.clone()).collect())
            .unwrap_or_default();
        rooms.sort();
        BTreeMap::from([("rooms".to_string(), rooms)])
    };
    let handler = adhoc::simple_form(
        destroy_layout(),
        Some(Box::new(initial)),
        move |_, fields, errors| {
            if !errors.is_empty() {
                return Reply::completed().error_note(adhoc::errors_text(&errors));
            }
            let Some(service) = service.upgrade() else {
                return Reply::canceled();
            };
            let mut destroyed = Vec::new();
            for jid in fields.get("rooms").map(FieldValue::as_list).unwrap_or(&[]) {
                if let Some(r) = room(&service, jid)
                    && r.destroy(None, None, None).is_ok()
                {
                    destroyed.push(r.jid.clone());
                }
            }
            Reply::completed().info(format!(
                "The following rooms were destroyed:\n{}",
                destroyed.join("\n")
            ))
        },
    );
    Command::new("Destroy Rooms", NODE_DESTROY, Permission::Admin, handler)
}

fn set_affiliation_command(service: Weak<MucService>) -> Command {
    let handler = adhoc::simple_form(set_affiliation_layout(), None, move |_, fields, errors| {
        if !errors.is_empty() {
            return Reply::completed().error_note(adhoc::errors_text(&errors));
        }
        let text = |k: &str| fields.get(k).and_then(FieldValue::as_text).unwrap_or("");
        let Some(r) = service.upgrade().and_then(|s| room(&s, text("room"))) else {
            return Reply::canceled().error_note("No such room");
        };
        let reason = Some(text("reason")).filter(|r| !r.is_empty());
        let result = match Affiliation::parse(text("affiliation")) {
            Ok(affiliation) => r.set_affiliation(
                Actor::Room,
                text("jid"),
                affiliation,
                reason,
                AffiliationData::Keep,
            ),
            Err(_) => Err(xmpp_core::error::StanzaError::new(
                xmpp_core::ErrorType::Modify,
                "not-acceptable",
            )),
        };
        match result {
            Ok(()) => Reply::completed().info("Affiliation updated"),
            Err(e) => Reply::canceled().error_note(format!(
                "Affiliation change failed: {}:{}",
                e.type_.as_str(),
                e.condition
            )),
        }
    });
    Command::new(
        "Set affiliation in room",
        NODE_SET_AFFILIATION,
        Permission::Admin,
        handler,
    )
}

/// Registers the commands on the MUC host (Prosody's `module:provides("adhoc", ...)`).
pub fn register(host: &Host, service: &Arc<MucService>) {
    adhoc::register(host, destroy_command(Arc::downgrade(service)));
    adhoc::register(host, set_affiliation_command(Arc::downgrade(service)));
}
