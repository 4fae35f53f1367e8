//! MAM queries (XEP-0313 with XEP-0059 Result Set Management), as Prosody
//! 0.12's mod_mam answers them.
//!
//! - the form (`with`, `start`, `end`) filters; RSM `<max/>` (default 20,
//!   at most `max_archive_query_results`), `<after/>` pages forwards,
//!   `<before/>` (empty: the last page) backwards; `<flip-page/>` reverses
//!   the order a page is sent in;
//! - each result is a `<message>` with `<result queryid id>` holding the
//!   `<forwarded/>` message and its `<delay/>`; then the IQ result with
//!   `<fin complete?>` and the RSM `first`/`last`/`count`;
//! - a key that names no item: `modify/item-not-found`.

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::{ArchiveQuery, ArchiveStore};
use xmpp_core::value::Value;
use xmpp_core::{Event, Jid};

use lua_compat::datfile::archive::{datetime, parse_datetime};

use super::prefs::{self, Prefs};
use super::{MAM_REQUESTED, NS_MAM, Options};
use crate::storage::query::is_item_not_found;

pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_DATA: &str = "jabber:x:data";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_DELAY: &str = "urn:xmpp:delay";
/// A page when the client does not ask for a size.
pub const DEFAULT_MAX_ITEMS: usize = 20;

fn internal_error(stanza: &Element, text: String) -> Element {
    StanzaError::new(ErrorType::Cancel, "internal-server-error")
        .with_text(text)
        .reply_to(stanza)
}

/// `<prefs/>` get and set.
pub fn handle_prefs(event: &mut Event, opts: &Options) -> bool {
    let (Some(host), Some(user)) = (
        event.host.clone(),
        event.origin.as_ref().and_then(|o| o.username()),
    ) else {
        return false;
    };
    let stanza = event.stanza().clone();
    if stanza.type_() == Some("set")
        && let Some(p) = stanza.get_child("prefs", NS_MAM)
        && let Err(e) = prefs::set(&host, opts, &user, &Prefs::from_element(p))
    {
        event.reply(internal_error(
            &stanza,
            format!("Error storing preferences: {e}"),
        ));
        return true;
    }
    let reply = match prefs::get(&host, opts, &user, true) {
        Ok(p) => stanza.reply().child(p.to_element()),
        Err(e) => internal_error(&stanza, e.to_string()),
    };
    event.reply(reply);
    true
}

fn field(var: &str, type_: &str) -> Element {
    Element::new("field", NS_DATA)
        .attr("var", var)
        .attr("type", type_)
}

/// The query form.
pub fn handle_form(event: &mut Event, opts: &Options) -> bool {
    if let (Some(host), Some(user)) = (
        event.host.clone(),
        event.origin.as_ref().and_then(|o| o.username()),
    ) {
        let _ = prefs::get(&host, opts, &user, true);
    }
    let reply = event.stanza().reply().child(query_form());
    event.reply(reply);
    true
}

/// The `<query/>` with the search form (`with`, `start`, `end`).
pub fn query_form() -> Element {
    let form = Element::new("x", NS_DATA)
        .attr("type", "form")
        .child(field("FORM_TYPE", "hidden").child(Element::new("value", NS_DATA).text(NS_MAM)))
        .child(field("with", "jid-single"))
        .child(field("start", "text-single"))
        .child(field("end", "text-single"));
    Element::new("query", NS_MAM).child(form)
}

/// The first and last item of the archive.
pub fn handle_metadata(event: &mut Event, opts: &Options) -> bool {
    let (Some(host), Some(user)) = (
        event.host.clone(),
        event.origin.as_ref().and_then(|o| o.username()),
    ) else {
        return false;
    };
    let stanza = event.stanza().clone();
    let mut meta = Element::new("metadata", NS_MAM);
    let archive = match host.open_archive(&opts.archive_store) {
        Ok(a) => a,
        Err(e) => {
            event.reply(internal_error(&stanza, e.to_string()));
            return true;
        }
    };
    for (name, reverse) in [("start", false), ("end", true)] {
        let q = ArchiveQuery {
            limit: Some(1),
            reverse,
            ..ArchiveQuery::default()
        };
        match archive.find(Some(&user), &q) {
            Ok(items) => {
                if let Some(i) = items.first() {
                    meta.push_child(
                        Element::new(name, NS_MAM)
                            .attr("id", &i.key)
                            .attr("timestamp", datetime(i.when)),
                    );
                }
            }
            Err(e) => {
                event.reply(internal_error(&stanza, e.to_string()));
                return true;
            }
        }
    }
    event.reply(stanza.reply().child(meta));
    true
}

/// What the client asked for.
#[derive(Debug, Default, PartialEq)]
pub struct Request {
    pub with: Option<String>,
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub max: Option<usize>,
    pub after: Option<String>,
    /// `Some("")`: `<before/>` empty, the last page.
    pub before: Option<String>,
    pub flip: bool,
}

/// Reads the form and RSM of a `<query/>`; `Err`: the bad-request text.
pub fn parse_request(query: &Element) -> Result<Request, String> {
    let mut r = Request::default();
    if let Some(x) = query.get_child("x", NS_DATA) {
        for f in x.children().filter(|f| f.is("field", NS_DATA)) {
            let value = f
                .get_child("value", NS_DATA)
                .map(Element::text_content)
                .unwrap_or_default();
            let value = value.trim();
            match f.get_attr("var") {
                Some("FORM_TYPE") if value != NS_MAM => {
                    return Err(format!("Unexpected FORM_TYPE, expected '{NS_MAM}'"));
                }
                Some("with") if !value.is_empty() => {
                    let j = Jid::parse(value).map_err(|_| "with: Invalid JID".to_string())?;
                    r.with = Some(j.to_bare().to_string());
                }
                Some(name @ ("start" | "end")) if !value.is_empty() => {
                    let t = parse_datetime(value)
                        .ok_or_else(|| format!("{name}: Invalid timestamp"))?;
                    if name == "start" {
                        r.start = Some(t);
                    } else {
                        r.end = Some(t);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(set) = query.get_child("set", NS_RSM) {
        r.max = set
            .get_child_text("max", NS_RSM)
            .and_then(|m| m.trim().parse().ok());
        r.after = set.get_child_text("after", NS_RSM);
        r.before = set.get_child_text("before", NS_RSM);
    }
    r.flip = query.get_child("flip-page", NS_MAM).is_some();
    Ok(r)
}

/// The archive query.
pub fn handle_query(event: &mut Event, opts: &Options) -> bool {
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let Some(user) = origin.username() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let Some(query) = stanza.get_child("query", NS_MAM) else {
        return false;
    };
    origin
        .state()
        .attributes
        .insert(MAM_REQUESTED, Value::Bool(true));
    let _ = prefs::get(&host, opts, &user, true);
    let req = match parse_request(query) {
        Ok(r) => r,
        Err(text) => {
            event.reply(
                StanzaError::new(ErrorType::Modify, "bad-request")
                    .with_text(text)
                    .reply_to(&stanza),
            );
            return true;
        }
    };
    let archive = match host.open_archive(&opts.archive_store) {
        Ok(a) => a,
        Err(e) => {
            event.reply(internal_error(&stanza, e.to_string()));
            return true;
        }
    };
    let page = Page {
        owner: &user,
        with: req.with.clone(),
        max_results: opts.max_results,
        include_total: opts.include_total,
    };
    match answer(archive.as_ref(), &stanza, &req, &page, |_| {}) {
        Ok((messages, reply)) => {
            for m in messages {
                origin.send(m);
            }
            event.reply(reply);
        }
        Err(error) => event.reply(error),
    }
    true
}

/// Whose archive a query reads and how much it may return.
pub struct Page<'a> {
    /// The archive's user: an account, or a room's node.
    pub owner: &'a str,
    /// The `with` the items must have (a bare JID, or a type tag such as
    /// `message<groupchat`).
    pub with: Option<String>,
    /// `max_archive_query_results`.
    pub max_results: usize,
    /// Whether the RSM `<count/>` is given.
    pub include_total: bool,
}

/// Runs `req` on `archive`: the result messages, in the order to send
/// them, and the IQ reply with `<fin/>`; `Err`: the error reply.
/// `present` adjusts each archived stanza before it is forwarded.
pub fn answer(
    archive: &dyn ArchiveStore,
    stanza: &Element,
    req: &Request,
    page: &Page<'_>,
    mut present: impl FnMut(&mut Element),
) -> Result<(Vec<Element>, Element), Element> {
    let qid = stanza
        .get_child("query", NS_MAM)
        .and_then(|q| q.get_attr("queryid"))
        .map(str::to_string);
    let qmax = req.max.unwrap_or(DEFAULT_MAX_ITEMS).min(page.max_results);
    let reverse = req.before.is_some();
    let before = req.before.clone().filter(|b| !b.is_empty());
    let flip = reverse != req.flip;
    let q = ArchiveQuery {
        start: req.start,
        end: req.end,
        with: page.with.clone(),
        after: req.after.clone(),
        before,
        limit: Some(if qmax == 0 { 0 } else { qmax + 1 }),
        reverse,
    };
    let items = match archive.find(Some(page.owner), &q) {
        Ok(items) => items,
        Err(e) if is_item_not_found(&e) => {
            return Err(StanzaError::new(ErrorType::Modify, "item-not-found").reply_to(stanza));
        }
        Err(e) => {
            tracing::debug!("archive query failed: {e}");
            return Err(
                StanzaError::new(ErrorType::Cancel, "internal-server-error").reply_to(stanza)
            );
        }
    };
    let total = if page.include_total || qmax == 0 {
        let all = ArchiveQuery {
            start: req.start,
            end: req.end,
            with: page.with.clone(),
            ..ArchiveQuery::default()
        };
        archive.find(Some(page.owner), &all).ok().map(|v| v.len())
    } else {
        None
    };
    let complete = items.len() <= qmax;
    let items: Vec<_> = items.into_iter().take(qmax).collect();
    let mut messages: Vec<Element> = items
        .iter()
        .map(|item| {
            let mut m = item.stanza.clone();
            present(&mut m);
            m.set_ns(NS_CLIENT);
            Element::new("message", NS_CLIENT)
                .attr_opt("to", stanza.from())
                .attr_opt("from", stanza.to())
                .child(
                    Element::new("result", NS_MAM)
                        .attr_opt("queryid", qid.as_deref())
                        .attr("id", &item.key)
                        .child(
                            Element::new("forwarded", NS_FORWARD)
                                .child(
                                    Element::new("delay", NS_DELAY)
                                        .attr("stamp", datetime(item.when)),
                                )
                                .child(m),
                        ),
                )
        })
        .collect();
    if flip {
        messages.reverse();
    }
    let (mut first, mut last) = (
        items.first().map(|i| i.key.clone()),
        items.last().map(|i| i.key.clone()),
    );
    if reverse {
        std::mem::swap(&mut first, &mut last);
    }
    let mut set = Element::new("set", NS_RSM);
    if let Some(f) = first {
        set.push_child(Element::new("first", NS_RSM).text(f));
    }
    if let Some(l) = last {
        set.push_child(Element::new("last", NS_RSM).text(l));
    }
    if let Some(t) = total {
        set.push_child(Element::new("count", NS_RSM).text(t.to_string()));
    }
    let fin = Element::new("fin", NS_MAM)
        .attr_opt("complete", complete.then_some("true"))
        .child(set);
    Ok((messages, stanza.reply().child(fin)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let q = Element::new("query", NS_MAM)
            .child(
                Element::new("x", NS_DATA)
                    .attr("type", "submit")
                    .child(
                        field("FORM_TYPE", "hidden")
                            .child(Element::new("value", NS_DATA).text(NS_MAM)),
                    )
                    .child(
                        field("with", "jid-single")
                            .child(Element::new("value", NS_DATA).text("juliet@capulet.lit/x")),
                    )
                    .child(
                        field("start", "text-single")
                            .child(Element::new("value", NS_DATA).text("2010-06-07T00:00:00Z")),
                    ),
            )
            .child(
                Element::new("set", NS_RSM)
                    .child(Element::new("max", NS_RSM).text("10"))
                    .child(Element::new("before", NS_RSM)),
            );
        let r = parse_request(&q).unwrap();
        assert_eq!(r.with.as_deref(), Some("juliet@capulet.lit"));
        assert_eq!(r.start, Some(1_275_868_800.0));
        assert_eq!(r.max, Some(10));
        assert_eq!(r.before.as_deref(), Some(""));
        let bad =
            Element::new("query", NS_MAM).child(Element::new("x", NS_DATA).child(
                field("FORM_TYPE", "hidden").child(Element::new("value", NS_DATA).text("x")),
            ));
        assert!(parse_request(&bad).is_err());
    }
}
