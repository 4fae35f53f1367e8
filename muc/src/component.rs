//! mod_muc's hooks on the component host: stanzas to rooms and occupants
//! (at priority -2, as Prosody, after anything else that wants them), the
//! service's disco identity, features and room list, room creation policy
//! and defaults, tracking, and what happens to destroyed and empty rooms.

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host};

use crate::events::{lock, room_of};
use crate::room::{Method, reply_error};
use crate::service::MucService;
use crate::settings::RoomCreation;
use crate::util::{NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC_UNIQUE, NS_OCCUPANT_ID, host_of, uuid};

const ROUTES: &[(&str, Method)] = &[
    (
        "iq-get/bare/http://jabber.org/protocol/disco#info:query",
        Method::DiscoInfo,
    ),
    (
        "iq-get/bare/http://jabber.org/protocol/disco#items:query",
        Method::DiscoItems,
    ),
    (
        "iq-set/bare/http://jabber.org/protocol/muc#admin:query",
        Method::AdminSet,
    ),
    (
        "iq-get/bare/http://jabber.org/protocol/muc#admin:query",
        Method::AdminGet,
    ),
    (
        "iq-set/bare/http://jabber.org/protocol/muc#owner:query",
        Method::OwnerSet,
    ),
    (
        "iq-get/bare/http://jabber.org/protocol/muc#owner:query",
        Method::OwnerGet,
    ),
    ("message/bare", Method::MessageToRoom),
    ("presence/bare", Method::PresenceToRoom),
    ("iq/bare/jabber:iq:register:query", Method::Register),
    (
        "iq-get/host/http://jabber.org/protocol/disco#info:query",
        Method::DiscoInfo,
    ),
    (
        "iq-get/host/http://jabber.org/protocol/disco#items:query",
        Method::DiscoItems,
    ),
    (
        "iq-set/host/http://jabber.org/protocol/muc#admin:query",
        Method::AdminSet,
    ),
    (
        "iq-get/host/http://jabber.org/protocol/muc#admin:query",
        Method::AdminGet,
    ),
    (
        "iq-set/host/http://jabber.org/protocol/muc#owner:query",
        Method::OwnerSet,
    ),
    (
        "iq-get/host/http://jabber.org/protocol/muc#owner:query",
        Method::OwnerGet,
    ),
    ("message/host", Method::MessageToRoom),
    ("presence/host", Method::PresenceToRoom),
    ("presence/full", Method::PresenceToOccupant),
    ("iq/full", Method::IqToOccupant),
    ("message/full", Method::MessageToOccupant),
];

/// Adds an element to the service's disco#info (the `host-disco-info`
/// event the disco module assembles it from).
fn add_host_disco(host: &Host, element: Element) {
    host.events.hook("host-disco-info", 0, move |event| {
        if let Some(q) = event
            .stanza
            .as_mut()
            .and_then(|iq| iq.get_child_mut("query", NS_DISCO_INFO))
        {
            q.push_child(element.clone());
        }
        false
    });
}

/// Is `from` a registered user of the parent host (not a guest: an
/// anonymous login or a user of another host)?
fn is_registered(event: &Event, service: &MucService, from: &str) -> bool {
    let domain = host_of(from);
    domain == service.settings().host_suffix
        && crate::util::bare_of(from).contains('@')
        && event.server.host(domain).is_some_and(|h| {
            h.auth_provider()
                .is_some_and(|a| !matches!(a.name(), "anonymous" | "jitsi-anonymous"))
        })
}

fn service_of(event: &Event) -> Option<Arc<MucService>> {
    crate::service_for(event.host.as_ref()?)
}

pub fn register(host: &Arc<Host>, service: &Arc<MucService>) {
    let settings = service.settings();
    add_host_disco(
        host,
        Element::new("identity", NS_DISCO_INFO)
            .attr("category", "conference")
            .attr("type", "text")
            .attr("name", settings.name.as_str()),
    );
    let mut features = vec!["http://jabber.org/protocol/muc", NS_MUC_UNIQUE];
    if settings.occupant_id {
        features.push(NS_OCCUPANT_ID);
    }
    for var in features {
        add_host_disco(
            host,
            Element::new("feature", NS_DISCO_INFO).attr("var", var),
        );
    }

    let ev = &host.events;
    // mod_muc_unique: a fresh room name.
    ev.hook(
        "iq-get/host/http://jabber.org/protocol/muc#unique:unique",
        0,
        |event| {
            let reply = event
                .stanza()
                .reply()
                .child(Element::new("unique", NS_MUC_UNIQUE).text(uuid()));
            event.reply(reply);
            true
        },
    );

    // The room list: public rooms.
    ev.hook("host-disco-items", 0, |event| {
        let Some(service) = service_of(event) else {
            return false;
        };
        let mut items: Vec<(String, String)> = lock(&service.items_cache)
            .iter()
            .map(|(j, n)| (j.clone(), n.clone()))
            .collect();
        if items.is_empty() {
            for room in service.all_rooms() {
                if !room.get_hidden() {
                    let name = room.get_name().unwrap_or_default();
                    lock(&service.items_cache).insert(room.jid.clone(), name.clone());
                    items.push((room.jid.clone(), name));
                }
            }
        }
        if let Some(q) = event
            .stanza
            .as_mut()
            .and_then(|iq| iq.get_child_mut("query", NS_DISCO_ITEMS))
        {
            for (jid, name) in items {
                q.push_child(
                    Element::new("item", NS_DISCO_ITEMS)
                        .attr("jid", jid)
                        .attr_opt("name", (!name.is_empty()).then_some(name)),
                );
            }
        }
        false
    });

    // Empty rooms that are not persistent go away.
    ev.hook("muc-occupant-left", -1, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let destroying = room.state().destroying.is_some();
        if destroying || room.has_occupant() || room.get_persistent() {
            return false;
        }
        if let Some(ctx) = room.ctx() {
            let mut ev = ctx.room_event("muc-room-destroyed", &room);
            ctx.fire("muc-room-destroyed", &mut ev);
        }
        false
    });

    ev.hook("muc-room-pre-create", 1, |event| {
        let (Some(room), Some(service)) = (room_of(event), service_of(event)) else {
            return false;
        };
        let lang = event.stanza().get_attr("xml:lang").map(str::to_string);
        crate::features::defaults::apply(&room, &service.settings(), lang.as_deref());
        false
    });
    ev.hook("muc-room-pre-create", 0, |event| {
        let Some(service) = service_of(event) else {
            return false;
        };
        let from = event.stanza().from().unwrap_or_default();
        let allowed = match service.settings().room_creation {
            RoomCreation::Anyone => true,
            RoomCreation::Admins => service.is_admin(from),
            RoomCreation::Local => service.is_admin(from) || is_registered(event, &service, from),
        };
        if allowed {
            return false;
        }
        if let Some(origin) = event.origin.clone() {
            reply_error(
                &origin,
                event.stanza(),
                StanzaError::not_allowed().with_text("Room creation is restricted"),
                &service.host_name,
            );
        }
        true
    });
    ev.hook("muc-room-pre-create", -1000, |event| {
        let (Some(room), Some(service)) = (room_of(event), service_of(event)) else {
            return false;
        };
        if service.track_room(&room) {
            return false;
        }
        if let Some(origin) = event.origin.clone() {
            reply_error(
                &origin,
                event.stanza(),
                StanzaError::new(xmpp_core::ErrorType::Wait, "resource-constraint"),
                &service.host_name,
            );
        }
        true
    });

    ev.hook("muc-room-destroyed", 0, |event| {
        let (Some(room), Some(service)) = (room_of(event), service_of(event)) else {
            return false;
        };
        service.forget_room(&room);
        service.delete_room(&room);
        false
    });
    if settings.tombstones {
        ev.hook(
            "muc-room-destroyed",
            -10,
            crate::features::tombstone::on_destroyed,
        );
    }

    for (name, method) in ROUTES {
        let method = *method;
        ev.hook(name, -2, move |event| {
            let (Some(service), Some(origin), Some(stanza)) =
                (service_of(event), event.origin.clone(), event.stanza.take())
            else {
                return false;
            };
            match service.dispatch(&origin, stanza, method) {
                Ok(()) => true,
                Err(stanza) => {
                    event.stanza = Some(stanza);
                    false
                }
            }
        });
    }
}
