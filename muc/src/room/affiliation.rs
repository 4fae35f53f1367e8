//! Affiliations and roles: Prosody's `get_affiliation`, `set_affiliation`
//! (with mod_muc's server-admins-are-owners rule and XEP-0045's out-of-room
//! notifications), affiliation data, `set_role` and who may do what.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Table, Value};

use super::Room;
use crate::events::EventExt;
use crate::occupant::Occupant;
use crate::util::{
    Affiliation, NS_MUC_USER, Role, affiliation_name, affiliation_rank, role_name, role_rank,
};

/// Who does something: the room itself (Prosody's `actor = true`: the
/// service, a module, a registration) or a user (real full JID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    Room,
    Jid(&'a str),
}

impl<'a> Actor<'a> {
    pub fn jid(self) -> Option<&'a str> {
        match self {
            Actor::Room => None,
            Actor::Jid(j) => Some(j),
        }
    }
}

/// What `set_affiliation` does with the affiliation data.
#[derive(Debug, Clone, PartialEq)]
pub enum AffiliationData {
    /// Keep what there is (Prosody's `nil`).
    Keep,
    /// Remove it (Prosody's `false`).
    Clear,
    /// Replace it (an empty table clears).
    Set(Table),
}

pub use crate::util::{bare_of, host_of};

fn not_acceptable() -> StanzaError {
    StanzaError::new(ErrorType::Modify, "not-acceptable")
}

/// `<item/>` of a muc#user payload (Prosody's `add_item`).
pub(crate) fn item(
    affiliation: Option<Affiliation>,
    role: Option<&str>,
    jid: Option<&str>,
    nick: Option<&str>,
    actor_nick: Option<&str>,
    actor_jid: Option<&str>,
    reason: Option<&str>,
) -> Element {
    let mut item = Element::new("item", NS_MUC_USER)
        .attr("affiliation", affiliation_name(affiliation))
        .attr_opt("role", role)
        .attr_opt("jid", jid)
        .attr_opt("nick", nick);
    if actor_nick.is_some() || actor_jid.is_some() {
        item.push_child(
            Element::new("actor", NS_MUC_USER)
                .attr_opt("nick", actor_nick)
                .attr_opt("jid", actor_jid),
        );
    }
    if let Some(r) = reason {
        item.push_child(Element::new("reason", NS_MUC_USER).text(r));
    }
    item
}

impl Room {
    /// A JID's affiliation (by its bare JID; a banned domain bans everyone
    /// on it). Server admins are owners with `component_admins_as_room_owners`.
    pub fn get_affiliation(&self, jid: &str) -> Option<Affiliation> {
        if let Some(service) = self.service()
            && let Some(source) = service.affiliation_source.get()
            && let Some(affiliation) = source(self, jid)
        {
            return affiliation;
        }
        if let Some(service) = self.service()
            && service.settings().admins_as_owners
            && service.is_admin(jid)
        {
            return Some(Affiliation::Owner);
        }
        self.raw_affiliation(jid)
    }

    /// The stored affiliation, without the admin rule.
    pub fn raw_affiliation(&self, jid: &str) -> Option<Affiliation> {
        let st = self.state();
        st.affiliations.get(bare_of(jid)).copied().or_else(|| {
            (st.affiliations.get(host_of(jid)) == Some(&Affiliation::Outcast))
                .then_some(Affiliation::Outcast)
        })
    }

    /// (bare JID, affiliation, data) of every affiliated JID, or of those
    /// with `with` affiliation.
    pub fn each_affiliation(
        &self,
        with: Option<Affiliation>,
    ) -> Vec<(String, Affiliation, Option<Table>)> {
        let st = self.state();
        st.affiliations
            .iter()
            .filter(|(_, a)| with.is_none_or(|w| **a == w))
            .map(|(j, a)| (j.clone(), *a, st.affiliation_data.get(j).cloned()))
            .collect()
    }

    pub fn get_affiliation_data(&self, jid: &str) -> Option<Table> {
        self.state().affiliation_data.get(bare_of(jid)).cloned()
    }

    /// Sets one key of a JID's affiliation data
    /// (`muc-set-affiliation-data/<key>` when it changes).
    pub fn set_affiliation_data(self: &Arc<Self>, jid: &str, key: &str, value: Option<Value>) {
        let jid = bare_of(jid).to_string();
        let old = {
            let mut st = self.state();
            let old = st
                .affiliation_data
                .get(&jid)
                .and_then(|d| d.get(key))
                .cloned();
            match &value {
                Some(v) => st
                    .affiliation_data
                    .entry(jid.clone())
                    .or_default()
                    .insert(key, v.clone()),
                None => {
                    if let Some(d) = st.affiliation_data.get_mut(&jid) {
                        d.map.remove(key);
                    }
                }
            }
            st.reserved_nicks = None;
            old
        };
        if old != value
            && let Some(ctx) = self.ctx()
        {
            let name = format!("muc-set-affiliation-data/{key}");
            let mut ev = ctx
                .room_event(&name, self)
                .with_field("jid", jid.as_str())
                .with_field("key", key);
            if let Some(v) = value {
                ev.fields.insert("value".into(), v);
            }
            if let Some(v) = old {
                ev.fields.insert("old_value".into(), v);
            }
            ctx.fire(&name, &mut ev);
        }
        self.save(true);
    }

    /// Sets an affiliation (Prosody's `set_affiliation`): checks the actor's
    /// rights, updates the roles of occupants of that JID and tells the room.
    pub fn set_affiliation(
        self: &Arc<Self>,
        actor: Actor<'_>,
        jid: &str,
        affiliation: Option<Affiliation>,
        reason: Option<&str>,
        data: AffiliationData,
    ) -> Result<(), StanzaError> {
        let Some(ctx) = self.ctx() else {
            return Err(StanzaError::internal_server_error());
        };
        if affiliation != Some(Affiliation::Owner)
            && ctx.service.settings().admins_as_owners
            && ctx.service.is_admin(jid)
        {
            return Err(not_acceptable());
        }
        let jid = bare_of(jid).to_string();
        if jid.is_empty() || jid.ends_with('@') {
            return Err(not_acceptable());
        }
        let is_host_only = !jid.contains('@');
        let target = self.state().affiliations.get(&jid).copied();
        let is_downgrade = affiliation_rank(target) > affiliation_rank(affiliation);

        if let Actor::Jid(actor_jid) = actor {
            let actor_affiliation = self.get_affiliation(actor_jid);
            if actor_affiliation == Some(Affiliation::Owner) {
                if bare_of(actor_jid) == jid && is_downgrade {
                    let other_owner = self
                        .each_affiliation(Some(Affiliation::Owner))
                        .iter()
                        .any(|(j, _, _)| *j != jid);
                    if !other_owner {
                        return Err(StanzaError::new(ErrorType::Cancel, "conflict"));
                    }
                }
            } else if matches!(affiliation, Some(Affiliation::Owner | Affiliation::Admin))
                || actor_affiliation != Some(Affiliation::Admin)
                || matches!(target, Some(Affiliation::Owner | Affiliation::Admin))
            {
                return Err(StanzaError::not_allowed());
            }
        }

        let previous_data = self.state().affiliation_data.get(&jid).cloned();
        let mut ev = ctx
            .room_event("muc-pre-set-affiliation", self)
            .with_field("jid", jid.as_str())
            .with_field("affiliation", affiliation_name(affiliation))
            .with_field("previous_affiliation", affiliation_name(target));
        if let Some(a) = actor.jid() {
            ev.fields.insert("actor".into(), Value::str(a));
        }
        if let Some(r) = reason {
            ev.fields.insert("reason".into(), Value::str(r));
        }
        if let AffiliationData::Set(t) = &data {
            ev.fields.insert("data".into(), Value::Table(t.clone()));
        }
        ctx.fire("muc-pre-set-affiliation", &mut ev);
        if ev.fields.get("allowed") == Some(&Value::Bool(false)) {
            let condition = match ev.field_str("error_condition") {
                Some("forbidden") => "forbidden",
                Some("not-acceptable") => "not-acceptable",
                Some("conflict") => "conflict",
                _ => "not-allowed",
            };
            let type_ = match ev.field_str("error_type") {
                Some("modify") => ErrorType::Modify,
                Some("auth") => ErrorType::Auth,
                Some("wait") => ErrorType::Wait,
                _ => ErrorType::Cancel,
            };
            return Err(StanzaError::new(type_, condition));
        }
        let mut data = data;
        if affiliation.is_some()
            && data == AffiliationData::Keep
            && let Some(Value::Table(t)) = ev.fields.get("data")
        {
            data = AffiliationData::Set(t.clone());
        }
        // Prosody 13 keeps the reason of a ban.
        if affiliation == Some(Affiliation::Outcast)
            && let Some(r) = reason
        {
            let mut t = match &data {
                AffiliationData::Set(t) => t.clone(),
                _ => Table::new(),
            };
            t.insert("reason", Value::str(r));
            data = AffiliationData::Set(t);
        }

        {
            let mut st = self.state();
            match affiliation {
                Some(a) => st.affiliations.insert(jid.clone(), a),
                None => st.affiliations.remove(&jid),
            };
            match (&data, affiliation) {
                (_, None) | (AffiliationData::Clear, _) => {
                    st.affiliation_data.remove(&jid);
                }
                (AffiliationData::Set(t), _) if t.is_empty() => {
                    st.affiliation_data.remove(&jid);
                }
                (AffiliationData::Set(t), _) => {
                    st.affiliation_data.insert(jid.clone(), t.clone());
                }
                (AffiliationData::Keep, _) => {}
            }
            st.reserved_nicks = None;
        }

        let role = self.get_default_role(affiliation);
        let mut updated: Vec<(Occupant, Option<Role>)> = Vec::new();
        for mut occupant in self.each_occupant() {
            let matches = occupant.bare_jid == jid
                || (is_host_only
                    && affiliation == Some(Affiliation::Outcast)
                    && host_of(&occupant.bare_jid) == jid);
            if !matches {
                continue;
            }
            let old_role = occupant.role;
            if occupant.role != role && (is_downgrade || role_rank(occupant.role) < role_rank(role))
            {
                occupant.role = role;
                self.save_occupant(&occupant);
            }
            updated.push((occupant, old_role));
        }

        let mut x = Element::new("x", NS_MUC_USER);
        if role.is_none() {
            let code = if affiliation == Some(Affiliation::Outcast) {
                "301"
            } else {
                "321"
            };
            x.push_child(Element::new("status", NS_MUC_USER).attr("code", code));
        }
        let semi_anonymous = self.get_whois() == "moderators";
        let in_room = !updated.is_empty();
        for (occupant, old_role) in &updated {
            self.publicise_occupant_status(
                &ctx,
                occupant,
                &super::XTemplates::single(x.clone()),
                None,
                actor.jid(),
                reason,
                *old_role,
                false,
                None,
            );
            if occupant.role.is_none() {
                self.fire_left(&ctx, occupant, None, None);
            } else if semi_anonymous
                && ((*old_role == Some(Role::Moderator))
                    != (occupant.role == Some(Role::Moderator)))
            {
                // Whether they see real JIDs changed: send the others' presences again.
                for real_jid in occupant.session_jids() {
                    self.send_occupant_list(&ctx, real_jid, &|o: Option<&Occupant>| {
                        o.is_none_or(|o| o.bare_jid != jid)
                    });
                }
            }
        }
        if !in_room {
            // XEP-0045 example 195: an affiliation change of someone not in the room.
            let mut announce_x = x.clone();
            announce_x.push_child(item(
                affiliation,
                None,
                Some(&jid),
                None,
                None,
                None,
                reason,
            ));
            let msg = Element::new("message", NS_CLIENT)
                .attr("from", self.jid.as_str())
                .child(announce_x);
            let min = if semi_anonymous {
                Some(Role::Moderator)
            } else {
                None
            };
            self.broadcast(
                &msg,
                Some(&|o: &Occupant| role_rank(o.role) >= role_rank(min)),
            );
        }
        self.save(true);

        let mut ev = ctx
            .room_event("muc-set-affiliation", self)
            .with_field("jid", jid.as_str())
            .with_field("affiliation", affiliation_name(affiliation))
            .with_field("previous_affiliation", affiliation_name(target))
            .with_field("in_room", in_room);
        if let Some(a) = actor.jid() {
            ev.fields.insert("actor".into(), Value::str(a));
        }
        if let Some(r) = reason {
            ev.fields.insert("reason".into(), Value::str(r));
        }
        if let Some(d) = self.state().affiliation_data.get(&jid) {
            ev.fields.insert("data".into(), Value::Table(d.clone()));
        }
        if let Some(d) = previous_data {
            ev.fields.insert("previous_data".into(), Value::Table(d));
        }
        ctx.fire("muc-set-affiliation", &mut ev);
        Ok(())
    }

    /// The role of the occupant with this occupant JID.
    pub fn get_role(&self, nick: &str) -> Option<Role> {
        self.state().occupants.get(nick).and_then(|o| o.role)
    }

    /// May `actor` give `occupant` this role (`muc-pre-set-role` first)?
    pub fn may_set_role(
        self: &Arc<Self>,
        actor: &str,
        occupant: &Occupant,
        role: Option<Role>,
    ) -> Result<(), StanzaError> {
        if let Some(ctx) = self.ctx() {
            let mut ev = ctx
                .room_event("muc-pre-set-role", self)
                .occupant("occupant", occupant)
                .with_field("actor", actor)
                .with_field("role", role_name(role));
            ctx.fire("muc-pre-set-role", &mut ev);
            match ev.fields.get("allowed") {
                Some(Value::Bool(true)) => return Ok(()),
                Some(Value::Bool(false)) => {
                    let condition = match ev.field_str("condition") {
                        Some("forbidden") => "forbidden",
                        Some("not-acceptable") => "not-acceptable",
                        _ => "not-allowed",
                    };
                    return Err(StanzaError::new(ErrorType::Cancel, condition));
                }
                _ => {}
            }
        }
        let actor_affiliation = self.get_affiliation(actor);
        let occupant_affiliation = self.get_affiliation(&occupant.bare_jid);
        if affiliation_rank(actor_affiliation) < affiliation_rank(occupant_affiliation) {
            return Err(StanzaError::not_allowed());
        }
        if (occupant.role == Some(Role::Moderator) || role == Some(Role::Moderator))
            && !matches!(
                actor_affiliation,
                Some(Affiliation::Owner | Affiliation::Admin)
            )
        {
            return Err(StanzaError::not_allowed());
        }
        match self.get_occupant_by_real_jid(actor) {
            Some(a) if a.role == Some(Role::Moderator) => Ok(()),
            _ => Err(StanzaError::not_allowed()),
        }
    }

    /// Sets the role of the occupant with this occupant JID (`None` kicks).
    pub fn set_role(
        self: &Arc<Self>,
        actor: Actor<'_>,
        occupant_jid: &str,
        role: Option<Role>,
        reason: Option<&str>,
    ) -> Result<(), StanzaError> {
        let Some(ctx) = self.ctx() else {
            return Err(StanzaError::internal_server_error());
        };
        let Some(mut occupant) = self.get_occupant_by_nick(occupant_jid) else {
            return Err(StanzaError::new(ErrorType::Modify, "item-not-found"));
        };
        if let Actor::Jid(a) = actor {
            self.may_set_role(a, &occupant, role)?;
        }
        let mut x = Element::new("x", NS_MUC_USER);
        if role.is_none() {
            x.push_child(Element::new("status", NS_MUC_USER).attr("code", "307"));
        }
        let prev_role = occupant.role;
        occupant.role = role;
        self.save_occupant(&occupant);
        self.publicise_occupant_status(
            &ctx,
            &occupant,
            &super::XTemplates::single(x),
            None,
            actor.jid(),
            reason,
            prev_role,
            false,
            None,
        );
        if role.is_none() {
            self.fire_left(&ctx, &occupant, None, None);
        }
        Ok(())
    }
}
