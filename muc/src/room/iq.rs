//! IQs: routed through the room to an occupant (any payload: Jingle,
//! Colibri, Jibri, vCards...) with the reply routed back, and the room's
//! own service discovery.
//!
//! A get/set from an occupant to `room@service/nick` goes to that
//! occupant's primary session, from the sender's occupant JID, with an id
//! that encodes the sender's session, the original id and a salted hash of
//! the sender (Prosody's `construct_stanza_id`); the reply to that id is
//! routed back with the original id (`deconstruct_stanza_id`).

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use xmpp_core::Session;
use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;

use super::Room;
use super::presence::reply_error;
use crate::events::{Ctx, EventExt, lock};
use crate::form::Form;
use crate::util::{NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, bare_of};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// HMAC-SHA256 of `data` keyed with `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => Vec::new(),
    }
}

impl Room {
    pub(crate) fn handle_iq_to_occupant(
        self: &Arc<Self>,
        _ctx: &Ctx,
        origin: &Arc<Session>,
        mut stanza: Element,
    ) {
        let from = stanza.from().unwrap_or_default().to_string();
        let to = stanza.to().unwrap_or_default().to_string();
        let id = stanza.id().unwrap_or_default().to_string();
        let occupant = self.get_occupant_by_nick(&to);
        match stanza.type_() {
            Some("error") | Some("result") => {
                let Some(occupant) = occupant else { return };
                let Ok(decoded) = B64.decode(id.as_bytes()) else {
                    return;
                };
                let mut parts = decoded.splitn(3, |b| *b == 0);
                let (Some(from_jid), Some(orig_id), Some(hash)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return;
                };
                let (Ok(from_jid), Ok(orig_id)) =
                    (std::str::from_utf8(from_jid), std::str::from_utf8(orig_id))
                else {
                    return;
                };
                if from_jid.is_empty()
                    || hash.is_empty()
                    || !(from == from_jid || from == bare_of(from_jid))
                {
                    return;
                }
                let Some(from_occupant_jid) = self.get_occupant_jid(from_jid) else {
                    return;
                };
                let salt = self.get_salt();
                let Some(session_jid) = occupant
                    .session_jids()
                    .find(|j| hmac_sha256(salt.as_bytes(), j.as_bytes()).get(..8) == Some(hash))
                    .map(str::to_string)
                else {
                    return;
                };
                stanza.set_attr("from", Some(from_occupant_jid));
                stanza.set_attr("to", Some(session_jid));
                stanza.set_attr("id", Some(orig_id.to_string()));
                self.route_stanza(stanza);
            }
            _ => {
                let Some(current_nick) = self.get_occupant_jid(&from) else {
                    reply_error(
                        origin,
                        &stanza,
                        StanzaError::new(ErrorType::Cancel, "not-acceptable")
                            .with_text("You are not currently connected to this chat"),
                        &self.jid,
                    );
                    return;
                };
                let Some(occupant) = occupant else {
                    reply_error(
                        origin,
                        &stanza,
                        StanzaError::item_not_found().with_text("Recipient not in room"),
                        &self.jid,
                    );
                    return;
                };
                // XEP-0410 self-ping: answered by the room.
                if to == current_nick
                    && stanza.type_() == Some("get")
                    && stanza.first_child().is_some_and(|c| c.is("ping", NS_PING))
                {
                    self.route_stanza(stanza.reply());
                    return;
                }
                let Some(target) = occupant.jid.clone() else {
                    return;
                };
                let salt = self.get_salt();
                let mut raw = Vec::with_capacity(target.len() + id.len() + 10);
                raw.extend_from_slice(target.as_bytes());
                raw.push(0);
                raw.extend_from_slice(id.as_bytes());
                raw.push(0);
                raw.extend_from_slice(&hmac_sha256(salt.as_bytes(), from.as_bytes())[..8]);
                stanza.set_attr("id", Some(B64.encode(raw)));
                stanza.set_attr("from", Some(current_nick));
                let payload_ns = stanza.first_child().map(|c| c.ns().to_string());
                let to_bare = matches!(
                    payload_ns.as_deref(),
                    Some("vcard-temp")
                        | Some("http://jabber.org/protocol/pubsub")
                        | Some("urn:ietf:params:xml:ns:vcard-4.0")
                );
                let target = if to_bare {
                    bare_of(&target).to_string()
                } else {
                    target
                };
                stanza.set_attr("to", Some(target));
                self.route_stanza(stanza);
            }
        }
    }

    /// The room's disco#info (`muc-disco#info`, or `muc-disco#info/<node>`).
    pub fn get_disco_info(self: &Arc<Self>, ctx: &Ctx, stanza: &Element) -> Element {
        let node = stanza
            .first_child()
            .and_then(|q| q.get_attr("node"))
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let reply = stanza
            .reply()
            .child(Element::new("query", NS_DISCO_INFO).attr_opt("node", node.clone()));
        let name = match &node {
            Some(n) => format!("muc-disco#info/{n}"),
            None => "muc-disco#info".to_string(),
        };
        let form = node.is_none().then(|| {
            Form::new(vec![crate::form::Field::new("FORM_TYPE", "hidden").value(
                Some(crate::form::FieldValue::Text(
                    "http://jabber.org/protocol/muc#roominfo".into(),
                )),
            )])
        });
        let mut ev = ctx
            .room_event(&name, self)
            .with_stanza(stanza.clone())
            .mutable("reply", reply);
        if let Some(f) = form {
            ev = ev.mutable("form", f).mutable(
                "formdata",
                std::collections::HashMap::<String, crate::form::FieldValue>::new(),
            );
        }
        ctx.fire(&name, &mut ev);
        let mut reply =
            crate::events::take_mutable::<Element>(&ev, "reply").unwrap_or_else(|| stanza.reply());
        if let (Some(form), Some(data)) = (
            crate::events::take_mutable::<Form>(&ev, "form"),
            crate::events::mutable_of::<std::collections::HashMap<String, crate::form::FieldValue>>(
                &ev, "formdata",
            ),
        ) {
            let data = lock(&data).clone();
            if let Some(q) = reply.get_child_mut("query", NS_DISCO_INFO) {
                q.push_child(form.render(Some(&data), "result"));
            }
        }
        reply
    }

    pub(crate) fn handle_disco_info(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: &Element,
    ) {
        origin.send(self.get_disco_info(ctx, stanza));
    }

    pub(crate) fn handle_disco_items(&self, origin: &Arc<Session>, stanza: &Element) {
        origin.send(stanza.reply().child(Element::new("query", NS_DISCO_ITEMS)));
    }
}

/// Appends a `<feature/>` to the reply of a `muc-disco#info` event.
pub fn add_disco_feature(event: &xmpp_core::Event, var: &str) {
    if let Some(reply) = crate::events::mutable_of::<Element>(event, "reply")
        && let Some(q) = lock(&reply).get_child_mut("query", NS_DISCO_INFO)
    {
        q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", var));
    }
}

/// Adds a field (and its value) to the roominfo form of a `muc-disco#info` event.
pub fn add_disco_field(
    event: &xmpp_core::Event,
    field: crate::form::Field,
    value: Option<crate::form::FieldValue>,
) {
    let Some(form) = crate::events::mutable_of::<Form>(event, "form") else {
        return;
    };
    if let (Some(name), Some(v)) = (field.name.clone(), value)
        && let Some(data) = crate::events::mutable_of::<
            std::collections::HashMap<String, crate::form::FieldValue>,
        >(event, "formdata")
    {
        lock(&data).insert(name, v);
    }
    lock(&form).fields.push(field);
}
