//! XEP-0045 registration and reserved nicknames (Prosody's `register`
//! library): affiliated users register a nickname (`jabber:iq:register`
//! with the `muc#register` form), nobody else may use it, and
//! `x-roomuser-item` tells users their reserved nickname.
//! `allow_unaffiliated_register` opens registration to anyone;
//! `enforce_registered_nickname` makes users use theirs.

use std::collections::HashMap;
use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::{Host, Session, Table, Value};

use crate::events::{Ctx, lock, mutable_of, occupant_of, room_of};
use crate::form::{Field, FieldValue, Form, form_type};
use crate::room::iq::add_disco_feature;
use crate::room::{Actor, AffiliationData, Room, reply_error};
use crate::util::{
    Affiliation, NS_DATA, NS_DISCO_INFO, NS_REGISTER, bare_of, is_strict_nick, prep_nick,
};

const NS_MUC_REGISTER: &str = "http://jabber.org/protocol/muc#register";

fn registration_form() -> Form {
    Form::new(vec![
        Field::new("FORM_TYPE", "hidden").value(Some(FieldValue::Text(NS_MUC_REGISTER.into()))),
        Field::new("muc#register_roomnick", "text-single")
            .label("Nickname")
            .required(),
    ])
}

impl Room {
    /// The nickname a bare JID registered, if any.
    pub fn get_registered_nick(&self, jid: &str) -> Option<String> {
        self.state()
            .affiliation_data
            .get(bare_of(jid))
            .and_then(|d| d.get("reserved_nickname"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The bare JID that registered a nickname, if any.
    pub fn get_registered_jid(&self, nick: &str) -> Option<String> {
        let mut st = self.state();
        if st.reserved_nicks.is_none() {
            let mut map = HashMap::new();
            for (jid, data) in &st.affiliation_data {
                if !st.affiliations.contains_key(jid) {
                    continue;
                }
                if let Some(n) = data.get("reserved_nickname").and_then(Value::as_str) {
                    map.insert(n.to_string(), jid.clone());
                }
            }
            st.reserved_nicks = Some(map);
        }
        st.reserved_nicks
            .as_ref()
            .and_then(|m| m.get(nick).cloned())
    }
}

fn enforce_nick_policy(event: &mut xmpp_core::Event) -> bool {
    let Some(room) = room_of(event) else {
        return false;
    };
    // `enforce_registered_nickname`, read at each join (a reload applies).
    let enforce = room
        .service()
        .is_some_and(|s| s.settings().enforce_registered_nickname);
    let stanza = event.stanza();
    let from = stanza.from().unwrap_or_default().to_string();
    let requested = stanza
        .to()
        .and_then(|t| t.split_once('/'))
        .map(|(_, n)| n.to_string());
    let reserved_by = requested
        .as_deref()
        .and_then(|n| room.get_registered_jid(n));
    let error = |event: &xmpp_core::Event, e: StanzaError| {
        if let Some(origin) = event.origin.clone() {
            reply_error(&origin, event.stanza(), e, &room.jid);
        }
        true
    };
    if reserved_by.as_deref().is_some_and(|j| j != bare_of(&from)) {
        return error(event, StanzaError::new(ErrorType::Cancel, "conflict"));
    }
    if enforce && let Some(nick) = room.get_registered_nick(&from) {
        let required = format!("{}/{nick}", room.jid);
        if occupant_of(event, "occupant").is_some() {
            event
                .fields
                .insert("dest_nick".into(), Value::str(required));
        } else if event.field_str("dest_nick") != Some(required.as_str()) {
            return error(event, StanzaError::new(ErrorType::Cancel, "not-acceptable"));
        }
    }
    false
}

pub fn register(host: &Arc<Host>) {
    host.events.hook("muc-set-affiliation", 0, |event| {
        if let Some(room) = room_of(event) {
            room.state().reserved_nicks = None;
        }
        false
    });
    host.events.hook("muc-disco#info", 0, |event| {
        add_disco_feature(event, NS_REGISTER);
        false
    });
    host.events
        .hook("muc-occupant-pre-join", 0, enforce_nick_policy);
    host.events
        .hook("muc-occupant-pre-change", 0, enforce_nick_policy);
    host.events
        .hook("muc-disco#info/x-roomuser-item", 0, |event| {
            let Some(room) = room_of(event) else {
                return false;
            };
            let from = event.stanza().from().unwrap_or_default().to_string();
            if let Some(nick) = room.get_registered_nick(&from)
                && let Some(reply) = mutable_of::<Element>(event, "reply")
                && let Some(q) = lock(&reply).get_child_mut("query", NS_DISCO_INFO)
            {
                q.push_child(
                    Element::new("identity", NS_DISCO_INFO)
                        .attr("category", "conference")
                        .attr("type", "text")
                        .attr("name", nick),
                );
            }
            false
        });
}

/// `jabber:iq:register` to a room.
pub(crate) fn handle_register_iq(
    room: &Arc<Room>,
    ctx: &Ctx,
    origin: &Arc<Session>,
    stanza: &Element,
) {
    let settings = ctx.service.settings();
    let user_jid = bare_of(stanza.from().unwrap_or_default()).to_string();
    let affiliation = room.get_affiliation(&user_jid);
    let send_error = |e: StanzaError| {
        origin.send(e.reply_to(stanza));
    };
    if affiliation == Some(Affiliation::Outcast) {
        return send_error(StanzaError::forbidden());
    }
    if affiliation.is_none() && !settings.allow_unaffiliated_register {
        return send_error(StanzaError::new(ErrorType::Auth, "registration-required"));
    }
    let registered = room.get_registered_nick(&user_jid);
    if stanza.type_() == Some("get") {
        let mut query = Element::new("query", NS_REGISTER);
        match &registered {
            Some(nick) => {
                query.push_child(Element::new("registered", NS_REGISTER));
                query.push_child(Element::new("username", NS_REGISTER).text(nick.clone()));
                if settings.registration_include_form
                    && let Some(data) = room.get_affiliation_data(&user_jid)
                {
                    let values: HashMap<String, FieldValue> = data
                        .map
                        .iter()
                        .filter_map(|(k, v)| {
                            v.as_str().map(|s| (k.clone(), FieldValue::Text(s.into())))
                        })
                        .collect();
                    query.push_child(registration_form().render(Some(&values), "result"));
                }
            }
            None => query.push_child(registration_form().render(None, "form")),
        }
        origin.send(stanza.reply().child(query));
        return;
    }
    let Some(query) = stanza.first_child() else {
        return;
    };
    if query.get_child("remove", NS_REGISTER).is_some() {
        // Keep any affiliation above member.
        let new = affiliation.filter(|a| *a != Affiliation::Member);
        match room.set_affiliation(Actor::Room, &user_jid, new, None, AffiliationData::Clear) {
            Ok(()) => origin.send(stanza.reply()),
            Err(e) => origin.send(e.reply_to(stanza)),
        };
        return;
    }
    let Some(form) = query.get_child("x", NS_DATA) else {
        return send_error(StanzaError::bad_request().with_text("Missing dataform"));
    };
    if form_type(form).as_deref() != Some(NS_MUC_REGISTER) {
        return send_error(StanzaError::bad_request().with_text("Error in form"));
    }
    let read = registration_form().read(form);
    let desired = read
        .values
        .get("muc#register_roomnick")
        .and_then(FieldValue::as_text)
        .and_then(prep_nick)
        .filter(|n| is_strict_nick(n));
    let Some(desired) = desired else {
        return send_error(StanzaError::bad_request().with_text("Invalid Nickname"));
    };
    let conflict = || StanzaError::new(ErrorType::Cancel, "conflict");
    if room
        .get_occupant_by_nick(&format!("{}/{desired}", room.jid))
        .is_some_and(|o| o.bare_jid != user_jid)
    {
        return send_error(conflict());
    }
    if room
        .get_registered_jid(&desired)
        .is_some_and(|j| j != user_jid)
    {
        return send_error(conflict());
    }
    if settings.enforce_registered_nickname {
        let required = format!("{}/{desired}", room.jid);
        for o in room.each_occupant() {
            if o.bare_jid == user_jid && o.nick != required {
                let _ = room.set_role(Actor::Room, &o.nick, None, None);
            }
        }
    }
    if registered.as_deref() != Some(desired.as_str()) {
        let mut data = Table::new();
        data.insert("reserved_nickname", Value::str(desired.clone()));
        let mut ev = ctx
            .room_event("muc-registration-submitted", room)
            .with_origin(origin)
            .with_stanza(stanza.clone());
        ev.fields
            .insert("affiliation_data".into(), Value::Table(data.clone()));
        ctx.fire("muc-registration-submitted", &mut ev);
        if let Some(Value::Table(t)) = ev.fields.get("affiliation_data") {
            data = t.clone();
        }
        let aff = affiliation.or(Some(Affiliation::Member));
        if let Err(e) = room.set_affiliation(
            Actor::Room,
            &user_jid,
            aff,
            None,
            AffiliationData::Set(data),
        ) {
            return send_error(e);
        }
    }
    origin.send(stanza.reply());
}
