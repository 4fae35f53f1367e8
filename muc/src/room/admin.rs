//! `http://jabber.org/protocol/muc#admin`: changing affiliations (with
//! reserved nicknames) and roles, and reading the lists (Prosody's
//! `handle_admin_query_set_command` and `handle_admin_query_get_command`).

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::{Jid, Session, Table, Value};

use super::Room;
use super::affiliation::{Actor, AffiliationData};
use crate::events::Ctx;
use crate::util::{Affiliation, NS_MUC_ADMIN, Role, affiliation_rank, prep_nick, role_rank};

impl Room {
    pub(crate) fn handle_admin_set(
        self: &Arc<Self>,
        _ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        let item = stanza.first_child().and_then(|q| q.first_child()).cloned();
        self.admin_set_item(origin, &stanza, item);
    }

    /// Jitsi's override of `handle_admin_query_set_command` (its lobby
    /// approves several knockers in one IQ): every item of the query is
    /// applied in turn, each answered as a query of its own; the first
    /// malformed item ends it.
    pub fn handle_admin_set_items(self: &Arc<Self>, origin: &Arc<Session>, stanza: &Element) {
        let items: Vec<Element> = stanza
            .first_child()
            .map(|q| q.children().cloned().collect())
            .unwrap_or_default();
        for item in items {
            if self.admin_set_item(origin, stanza, Some(item)) {
                return;
            }
        }
    }

    /// One item of an admin query set; `true` when it was refused before
    /// being applied (a missing item, a malformed JID or nickname).
    fn admin_set_item(
        self: &Arc<Self>,
        origin: &Arc<Session>,
        stanza: &Element,
        item: Option<Element>,
    ) -> bool {
        let stanza = stanza.clone();
        let Some(item) = item else {
            origin.send(StanzaError::new(ErrorType::Cancel, "bad-request").reply_to(&stanza));
            return true;
        };
        let mut jid = None;
        if let Some(raw) = item.get_attr("jid") {
            match Jid::parse(raw) {
                Err(_) => {
                    origin.send(StanzaError::jid_malformed().reply_to(&stanza));
                    return true;
                }
                Ok(j) if j.is_full() => {
                    origin.send(
                        StanzaError::jid_malformed()
                            .with_text("Bare JID expected, got full JID")
                            .reply_to(&stanza),
                    );
                    return true;
                }
                Ok(j) => jid = Some(j.to_string()),
            }
        }
        let mut nick = None;
        if let Some(raw) = item.get_attr("nick") {
            match prep_nick(raw) {
                Some(n) => nick = Some(n),
                None => {
                    origin.send(
                        StanzaError::jid_malformed()
                            .with_text("invalid nickname")
                            .reply_to(&stanza),
                    );
                    return true;
                }
            }
        }
        let affiliation = item.get_attr("affiliation");
        let role = item.get_attr("role");
        if jid.is_none() && nick.is_some() {
            // COMPAT: clients that give the nickname instead of the JID.
            if let Some(o) = self.get_occupant_by_nick(&format!(
                "{}/{}",
                self.jid,
                nick.as_deref().unwrap_or_default()
            )) {
                jid = Some(o.bare_jid);
            }
        } else if role.is_some() && nick.is_none() && jid.is_some() {
            // Role changes name a nickname; find it from the JID.
            if let Some(n) = jid.as_deref().and_then(|j| self.get_occupant_jid(j)) {
                nick = n.split_once('/').map(|(_, r)| r.to_string());
            }
        }
        let actor = stanza.from().unwrap_or_default().to_string();
        let reason = item.get_child_text("reason", item.ns());
        let result = match (affiliation, &jid, role, &nick) {
            (Some(aff), Some(jid), None, _) => {
                let mut data = AffiliationData::Keep;
                if let Some(n) = &nick {
                    let room_nick = format!("{}/{n}", self.jid);
                    if let Some(existing) = self.get_occupant_by_nick(&room_nick)
                        && existing.bare_jid != *jid
                    {
                        let _ = self.set_role(
                            Actor::Room,
                            &room_nick,
                            None,
                            Some("This nickname is reserved"),
                        );
                    }
                    let mut t = Table::new();
                    t.insert("reserved_nickname", Value::str(n.clone()));
                    data = AffiliationData::Set(t);
                }
                match Affiliation::parse(aff) {
                    Ok(a) => {
                        self.set_affiliation(Actor::Jid(&actor), jid, a, reason.as_deref(), data)
                    }
                    Err(_) => Err(StanzaError::new(ErrorType::Modify, "not-acceptable")),
                }
            }
            (None, _, Some(role), Some(nick)) => match Role::parse(role) {
                Ok(r) => self.set_role(
                    Actor::Jid(&actor),
                    &format!("{}/{nick}", self.jid),
                    r,
                    reason.as_deref(),
                ),
                Err(_) => Err(StanzaError::new(ErrorType::Modify, "not-acceptable")),
            },
            _ => Err(StanzaError::new(ErrorType::Cancel, "bad-request")),
        };
        self.save(true);
        match result {
            Ok(()) => origin.send(stanza.reply()),
            Err(e) => origin.send(e.reply_to(&stanza)),
        };
        false
    }

    pub(crate) fn handle_admin_get(
        self: &Arc<Self>,
        _ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: &Element,
    ) {
        let actor = stanza.from().unwrap_or_default();
        let affiliation = self.get_affiliation(actor);
        let item = stanza.first_child().and_then(|q| q.first_child());
        let want_aff = item.and_then(|i| i.get_attr("affiliation"));
        let want_role = item.and_then(|i| i.get_attr("role"));
        let forbidden = || StanzaError::forbidden().reply_to(stanza);
        match (want_aff.map(Affiliation::parse), want_role) {
            (Some(Ok(aff)), None) => {
                let rank = affiliation_rank(affiliation);
                let allowed = (rank >= affiliation_rank(Some(Affiliation::Admin))
                    && rank >= affiliation_rank(aff))
                    || (self.get_members_only()
                        && self.get_whois() == "anyone"
                        && rank >= affiliation_rank(Some(Affiliation::Member)));
                if !allowed {
                    origin.send(forbidden());
                    return;
                }
                let mut query = Element::new("query", NS_MUC_ADMIN);
                let listed: Vec<(String, Option<Table>)> = match aff {
                    Some(a) => self
                        .each_affiliation(Some(a))
                        .into_iter()
                        .map(|(j, _, d)| (j, d))
                        .collect(),
                    None => Vec::new(),
                };
                for (jid, data) in listed {
                    let field = |k: &str| {
                        data.as_ref()
                            .and_then(|d| d.get(k))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    };
                    let mut it = Element::new("item", NS_MUC_ADMIN)
                        .attr("affiliation", want_aff.unwrap_or("none"))
                        .attr("jid", jid.as_str())
                        .attr_opt("nick", field("reserved_nickname"));
                    if aff == Some(Affiliation::Outcast)
                        && let Some(r) = field("reason")
                    {
                        it.push_child(Element::new("reason", NS_MUC_ADMIN).text(r));
                    }
                    query.push_child(it);
                }
                origin.send(stanza.reply().child(query));
            }
            (None, Some(role)) if Role::parse(role).is_ok() => {
                let role = Role::parse(role).ok().flatten();
                let own = self
                    .get_occupant_jid(actor)
                    .and_then(|n| self.get_role(&n))
                    .or_else(|| self.get_default_role(affiliation));
                if role_rank(own) < role_rank(Some(Role::Moderator)) {
                    origin.send(forbidden());
                    return;
                }
                let mut query = Element::new("query", NS_MUC_ADMIN);
                for occupant in self.each_occupant() {
                    if occupant.role == role {
                        let nick = occupant.nickname().to_string();
                        let mut items = Element::new("query", NS_MUC_ADMIN);
                        self.build_item_list(
                            &occupant,
                            &mut items,
                            false,
                            Some(&nick),
                            None,
                            None,
                            None,
                        );
                        for mut it in items.children().cloned() {
                            it.set_ns(NS_MUC_ADMIN);
                            query.push_child(it);
                        }
                    }
                }
                origin.send(stanza.reply().child(query));
            }
            _ => {
                origin.send(StanzaError::new(ErrorType::Cancel, "bad-request").reply_to(stanza));
            }
        }
    }
}
