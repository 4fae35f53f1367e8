//! `http://jabber.org/protocol/muc#owner`: the configuration form
//! (`muc-config-form` builds it, `muc-config-submitted` and
//! `muc-config-submitted/<field>` apply it) and room destruction.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Session, Value};

use super::Room;
use crate::events::{Ctx, EventExt, lock, mutable_of, take_mutable};
use crate::form::{Field, FieldValue, Form};
use crate::util::{Affiliation, NS_DATA, NS_MUC_OWNER, NS_MUC_USER};

pub const NS_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";

impl Room {
    /// The configuration form for `actor` (`muc-config-form`).
    pub fn get_form_layout(self: &Arc<Self>, ctx: &Ctx, actor: &str) -> Form {
        let form = Form {
            title: Some(format!("Configuration for {}", self.jid)),
            instructions: Some("Complete and submit this form to configure the room.".into()),
            fields: vec![
                Field::new("FORM_TYPE", "hidden")
                    .value(Some(FieldValue::Text(NS_ROOMCONFIG.into()))),
            ],
        };
        let mut ev = ctx
            .room_event("muc-config-form", self)
            .with_field("actor", actor)
            .mutable("form", form.clone());
        ctx.fire("muc-config-form", &mut ev);
        take_mutable::<Form>(&ev, "form").unwrap_or(form)
    }

    fn is_owner(&self, jid: &str) -> bool {
        self.get_affiliation(jid) == Some(Affiliation::Owner)
    }

    pub(crate) fn handle_owner_get(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: &Element,
    ) {
        let actor = stanza.from().unwrap_or_default();
        if !self.is_owner(actor) {
            origin.send(
                StanzaError::forbidden()
                    .with_text("Only owners can configure rooms")
                    .reply_to(stanza),
            );
            return;
        }
        let form = self.get_form_layout(ctx, actor).render(None, "form");
        origin.send(
            stanza
                .reply()
                .child(Element::new("query", NS_MUC_OWNER).child(form)),
        );
    }

    pub(crate) fn handle_owner_set(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        if !self.is_owner(stanza.from().unwrap_or_default()) {
            origin.send(
                StanzaError::forbidden()
                    .with_text("Only owners can configure rooms")
                    .reply_to(&stanza),
            );
            return;
        }
        let Some(child) = stanza.first_child().and_then(|q| q.first_child()).cloned() else {
            origin.send(StanzaError::bad_request().reply_to(&stanza));
            return;
        };
        if child.name() == "destroy" {
            let newjid = child.get_attr("jid").map(str::to_string);
            let reason = child.get_child_text("reason", child.ns());
            let password = child.get_child_text("password", child.ns());
            match self.destroy(newjid.as_deref(), reason.as_deref(), password.as_deref()) {
                Ok(()) => origin.send(stanza.reply()),
                Err(e) => origin.send(e.reply_to(&stanza)),
            };
        } else if child.is("x", NS_DATA) {
            self.process_form(ctx, origin, &stanza, &child);
        } else {
            origin.send(StanzaError::service_unavailable().reply_to(&stanza));
        }
    }

    /// Applies a submitted configuration form. A form with errors (a field
    /// of the wrong type) is refused whole, leaving the room as it was.
    fn process_form(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: &Element,
        form: &Element,
    ) {
        match form.type_() {
            Some("cancel") => {
                origin.send(stanza.reply());
                return;
            }
            Some("submit") => {}
            _ => {
                origin.send(
                    StanzaError::new(ErrorType::Cancel, "bad-request")
                        .with_text("Not a submitted form")
                        .reply_to(stanza),
                );
                return;
            }
        }
        let actor = stanza.from().unwrap_or_default().to_string();
        let (values, present) = if form.first_child().is_none() {
            // An instant room: the defaults.
            (HashMap::new(), Vec::new())
        } else {
            let read = self.get_form_layout(ctx, &actor).read(form);
            let form_type = read.values.get("FORM_TYPE").and_then(FieldValue::as_text);
            if form_type != Some(NS_ROOMCONFIG) {
                origin.send(
                    StanzaError::new(ErrorType::Cancel, "bad-request")
                        .with_text("Form is not of type room configuration")
                        .reply_to(stanza),
                );
                return;
            }
            if !read.errors.is_empty() {
                let text: Vec<String> = read
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                origin.send(
                    StanzaError::bad_request()
                        .with_text(text.join("\n"))
                        .reply_to(stanza),
                );
                return;
            }
            (read.values, read.present)
        };
        let codes: Arc<std::sync::Mutex<BTreeSet<String>>> = Default::default();
        let mut ev = ctx
            .room_event("muc-config-submitted", self)
            .with_origin(origin)
            .with_stanza(stanza.clone())
            .with_field("actor", actor.as_str())
            .with_object("status_codes", codes.clone())
            .mutable("fields", values.clone());
        ctx.fire("muc-config-submitted", &mut ev);
        for field in &present {
            let name = format!("muc-config-submitted/{field}");
            let mut ev = ctx
                .room_event(&name, self)
                .with_origin(origin)
                .with_stanza(stanza.clone())
                .with_field("actor", actor.as_str())
                .with_field("field", field.as_str())
                .with_object("status_codes", codes.clone());
            if let Some(v) = values.get(field) {
                ev.fields.insert("value".into(), v.to_value());
            }
            ctx.fire(&name, &mut ev);
        }
        self.save(true);
        origin.send(stanza.reply());
        let codes = lock(&codes).clone();
        if !codes.is_empty() {
            let mut x = Element::new("x", NS_MUC_USER);
            for code in codes {
                x.push_child(Element::new("status", NS_MUC_USER).attr("code", code));
            }
            let msg = Element::new("message", NS_CLIENT)
                .attr("type", "groupchat")
                .attr("from", self.jid.as_str())
                .child(x);
            self.broadcast_message(msg);
        }
    }
}

/// Adds a status code to a `muc-config-submitted` event (Prosody's
/// `event.status_codes[code] = true`).
pub fn add_status_code(event: &xmpp_core::Event, code: &str) {
    if let Some(codes) = event.object::<std::sync::Mutex<BTreeSet<String>>>("status_codes") {
        lock(&codes).insert(code.to_string());
    }
}

/// The value of a `muc-config-submitted/<field>` event.
pub fn submitted_value(event: &xmpp_core::Event) -> Option<&Value> {
    event.fields.get("value")
}

/// Adds a field to the form of a `muc-config-form` event.
pub fn add_config_field(event: &xmpp_core::Event, field: Field) {
    if let Some(form) = mutable_of::<Form>(event, "form") {
        lock(&form).fields.push(field);
    }
}
