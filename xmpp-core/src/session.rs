//! Sessions: one per client stream (c2s), component connection, or the
//! host itself as the origin of what modules send (Prosody's `hosts[host]`).
//!
//! A [`Session`] is shared (`Arc`) between its connection task, the
//! [`SessionRegistry`] and modules. Sending queues a stanza for the
//! connection task; the task serialises and writes it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

#[cfg(test)]
use tokio::sync::mpsc;

use crate::error::StreamError;
use crate::jid::Jid;
use crate::stanza::Element;
use crate::transport::TransportInfo;

mod outbound;
pub use outbound::{
    OutboundRx, OutboundTx, QUEUE_LIMIT, QueueRx, QueueTx, outbound_queue,
    outbound_queue_with_limit,
};

/// What is queued for a connection task.
#[derive(Debug)]
pub enum Outbound {
    Stanza(Element),
    /// Close the stream, with an error or cleanly.
    Close(Option<StreamError>),
    /// A stanza serialised once and shared by many recipients (a MUC
    /// broadcast): the parts, written one after the other as they are, form
    /// one complete stanza that declares its own namespace
    /// (`<message xmlns='jabber:client' ...>`), so any transport can frame it.
    Raw(Vec<bytes::Bytes>),
}

impl Outbound {
    /// About the bytes this item takes on the wire (see
    /// [`Element::approx_size`]), as an outbound queue accounts it.
    pub fn queued_size(&self) -> usize {
        match self {
            Outbound::Stanza(e) => e.approx_size(),
            Outbound::Close(_) => 64,
            Outbound::Raw(parts) => parts.iter().map(|p| p.len()).sum(),
        }
    }
}

/// The type of session, as Prosody's `session.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// An unauthenticated client stream.
    C2sUnauthed,
    C2s,
    Component,
    /// An authenticated incoming server-to-server stream (Prosody's
    /// `s2sin`); its `host` is the local host the remote addressed.
    S2sIn,
    /// A host itself, as origin of stanzas sent by modules.
    Local,
}

/// Mutable per-session state that modules read and update.
#[derive(Debug, Default)]
pub struct SessionState {
    pub username: Option<String>,
    pub resource: Option<String>,
    pub full_jid: Option<Jid>,
    /// The stream is encrypted (TLS, or a transport considered secure).
    pub secure: bool,
    /// The last available presence broadcast (None until initial presence,
    /// and again after unavailable).
    pub presence: Option<Element>,
    pub priority: i32,
    /// The client asked for its roster (receives roster pushes).
    pub interested: bool,
    /// JIDs this session sent directed presence to (to send unavailable later).
    pub directed: HashSet<Jid>,
    /// The SASL mechanism used to authenticate.
    pub auth_mechanism: Option<String>,
    /// Other per-session facts, as Prosody modules keep `session.*` fields
    /// (Lua-shaped): what authentication learnt (a token's claims under
    /// Jitsi's names `jitsi_meet_room`, `jitsi_meet_context_user`, ..., an
    /// LDAP display name) and what modules add.
    pub attributes: crate::value::Table,
}

/// A per-session outbound filter (Prosody's `filters.add_filter(session,
/// "stanzas/out", f)`): it sees every stanza queued to the session and
/// returns it (changed or not), or `None` to drop it.
pub type OutboundFilter = Arc<dyn Fn(&Session, Element) -> Option<Element> + Send + Sync>;

/// Which stanzas an outbound filter is for, by their `from` attribute (`""`
/// when there is none). It lets a shared broadcast ([`Outbound::Raw`]) whose
/// sender no filter is for be queued without being parsed.
pub type FromPredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
struct FilterEntry {
    priority: i32,
    from: Option<FromPredicate>,
    filter: OutboundFilter,
}

impl FilterEntry {
    fn applies(&self, from: &str) -> bool {
        self.from.as_ref().is_none_or(|p| p(from))
    }
}

/// A stream the server talks to.
pub struct Session {
    pub id: String,
    pub kind: SessionKind,
    /// The local host this session belongs to.
    pub host: String,
    pub peer: Option<SocketAddr>,
    /// The HTTP request a BOSH or WebSocket session was opened with (None
    /// for TCP streams and hosts).
    pub transport: Option<Arc<TransportInfo>>,
    tx: Option<OutboundTx>,
    state: Mutex<SessionState>,
    /// Outbound filters, highest priority first; `filtered` says whether
    /// there is any, so that sending stays one atomic load when none is.
    filters: RwLock<Vec<FilterEntry>>,
    filtered: AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({} {:?} {})", self.id, self.kind, self.host)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh short session id (`c2s1a`, ... as Prosody logs them).
pub fn new_session_id(prefix: &str) -> String {
    format!("{prefix}{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

impl Session {
    /// A session whose outbound queue is `tx`.
    pub fn new(
        kind: SessionKind,
        host: &str,
        peer: Option<SocketAddr>,
        tx: impl Into<OutboundTx>,
    ) -> Session {
        Session {
            id: new_session_id(match kind {
                SessionKind::Component => "comp",
                SessionKind::Local => "local",
                SessionKind::S2sIn => "s2sin",
                _ => "c2s",
            }),
            kind,
            host: host.to_string(),
            peer,
            transport: None,
            tx: Some(tx.into()),
            state: Mutex::new(SessionState::default()),
            filters: RwLock::new(Vec::new()),
            filtered: AtomicBool::new(false),
        }
    }

    /// The session standing for a host itself; what is sent to it is dropped.
    pub fn local(host: &str) -> Session {
        Session {
            id: new_session_id("local"),
            kind: SessionKind::Local,
            host: host.to_string(),
            peer: None,
            transport: None,
            tx: None,
            state: Mutex::new(SessionState::default()),
            filters: RwLock::new(Vec::new()),
            filtered: AtomicBool::new(false),
        }
    }

    /// Locks the session state.
    pub fn state(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an outbound filter (Prosody's `filters.add_filter(session,
    /// "stanzas/out", filter, priority)`): filters run on every stanza
    /// queued by [`Session::send`] and [`Session::send_raw`], highest
    /// priority first; one that returns `None` drops the stanza.
    pub fn add_outbound_filter(&self, priority: i32, filter: OutboundFilter) {
        self.insert_filter(FilterEntry {
            priority,
            from: None,
            filter,
        });
    }

    /// Adds an outbound filter that only sees stanzas whose `from` the
    /// predicate accepts (see [`FromPredicate`]).
    pub fn add_outbound_filter_from(
        &self,
        priority: i32,
        from: FromPredicate,
        filter: OutboundFilter,
    ) {
        self.insert_filter(FilterEntry {
            priority,
            from: Some(from),
            filter,
        });
    }

    fn insert_filter(&self, entry: FilterEntry) {
        let mut filters = self.filters.write().unwrap_or_else(|e| e.into_inner());
        let at = filters
            .iter()
            .position(|f| f.priority < entry.priority)
            .unwrap_or(filters.len());
        filters.insert(at, entry);
        self.filtered.store(true, Ordering::Release);
    }

    /// Does this session have outbound filters?
    pub fn has_outbound_filters(&self) -> bool {
        self.filtered.load(Ordering::Acquire)
    }

    fn filter_entries(&self) -> Vec<FilterEntry> {
        self.filters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs the outbound filters on a stanza.
    fn filter_out(&self, mut stanza: Element) -> Option<Element> {
        for entry in self.filter_entries() {
            if entry.applies(stanza.from().unwrap_or("")) {
                stanza = (entry.filter)(self, stanza)?;
            }
        }
        Some(stanza)
    }

    /// Queues a stanza; `false` if the connection is gone (or this is a host).
    /// A stanza an outbound filter drops counts as sent.
    pub fn send(&self, stanza: Element) -> bool {
        let stanza = if self.has_outbound_filters() {
            match self.filter_out(stanza) {
                Some(s) => s,
                None => return self.tx.as_ref().is_some_and(|tx| !tx.is_closed()),
            }
        } else {
            stanza
        };
        match &self.tx {
            Some(tx) => tx.send(Outbound::Stanza(stanza)).is_ok(),
            None => {
                tracing::debug!(host = %self.host, "dropping stanza sent to host origin: {}", stanza.to_xml());
                false
            }
        }
    }

    /// Queues a pre-serialised stanza (see [`Outbound::Raw`]); `false` if
    /// the connection is gone (or this is a host). With outbound filters,
    /// the stanza is parsed and goes through them as one [`Session::send`]s;
    /// without, the shared bytes are queued as they are.
    pub fn send_raw(&self, parts: Vec<bytes::Bytes>) -> bool {
        let needs_filtering = self.has_outbound_filters()
            && match raw_from(&parts) {
                Some(from) => self.filter_entries().iter().any(|f| f.applies(&from)),
                None => true,
            };
        if needs_filtering {
            return match crate::smacks::registry::parse_raw(&parts) {
                Some(stanza) => self.send(stanza),
                None => {
                    tracing::warn!(session = %self.id, "dropping an unparsable shared stanza");
                    false
                }
            };
        }
        match &self.tx {
            Some(tx) => tx.send(Outbound::Raw(parts)).is_ok(),
            None => false,
        }
    }

    /// Asks the connection task to close the stream.
    pub fn close(&self, error: Option<StreamError>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Outbound::Close(error));
        }
    }

    pub fn full_jid(&self) -> Option<Jid> {
        self.state().full_jid.clone()
    }
    pub fn username(&self) -> Option<String> {
        self.state().username.clone()
    }
    /// The account's bare JID, once authenticated.
    pub fn bare_jid(&self) -> Option<Jid> {
        let user = self.username()?;
        Jid::from_parts(Some(&user), &self.host, None).ok()
    }
    /// Has this session sent initial presence (and not gone unavailable)?
    pub fn is_available(&self) -> bool {
        self.state().presence.is_some()
    }
    pub fn priority(&self) -> i32 {
        self.state().priority
    }
}

/// The `from` of a pre-serialised stanza, read from its opening tag without
/// parsing (`""` when it has none); `None` when it cannot be read that way
/// (an escaped character in it).
fn raw_from(parts: &[bytes::Bytes]) -> Option<String> {
    let mut tag = Vec::new();
    for p in parts {
        match p.iter().position(|b| *b == b'>') {
            Some(end) => {
                tag.extend_from_slice(&p[..end]);
                break;
            }
            None => tag.extend_from_slice(p),
        }
    }
    let tag = std::str::from_utf8(&tag).ok()?;
    // A value never holds a quote (the serialiser escapes them), so the
    // text ` from='` is the attribute; both quote styles are read.
    for q in ['\'', '"'] {
        if let Some(i) = tag.find(&format!(" from={q}")) {
            let rest = &tag[i + 7..];
            let value = &rest[..rest.find(q)?];
            return (!value.contains('&')).then(|| value.to_string());
        }
    }
    Some(String::new())
}

/// Bound resources, as Prosody's `full_sessions` and `bare_sessions`.
#[derive(Default)]
pub struct SessionRegistry {
    full: RwLock<HashMap<Jid, Arc<Session>>>,
    bare: RwLock<HashMap<Jid, Vec<Arc<Session>>>>,
}

impl SessionRegistry {
    /// Registers a bound resource. Returns the session previously bound to
    /// the same full JID, if any (the caller resolves the conflict).
    pub fn bind(&self, jid: &Jid, session: &Arc<Session>) -> Option<Arc<Session>> {
        let old = self.full_write().insert(jid.clone(), session.clone());
        let mut bare = self.bare.write().unwrap_or_else(|e| e.into_inner());
        let list = bare.entry(jid.to_bare()).or_default();
        if let Some(o) = &old {
            list.retain(|s| !Arc::ptr_eq(s, o));
        }
        list.push(session.clone());
        old
    }

    /// Removes a bound resource if it is still this session's.
    pub fn unbind(&self, jid: &Jid, session: &Arc<Session>) -> bool {
        let mut full = self.full_write();
        if !full.get(jid).is_some_and(|s| Arc::ptr_eq(s, session)) {
            return false;
        }
        full.remove(jid);
        let mut bare = self.bare.write().unwrap_or_else(|e| e.into_inner());
        let bare_jid = jid.to_bare();
        if let Some(list) = bare.get_mut(&bare_jid) {
            list.retain(|s| !Arc::ptr_eq(s, session));
            if list.is_empty() {
                bare.remove(&bare_jid);
            }
        }
        true
    }

    /// The session bound to a full JID.
    pub fn get_full(&self, jid: &Jid) -> Option<Arc<Session>> {
        self.full
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(jid)
            .cloned()
    }

    /// All bound sessions of an account (bare JID), available or not.
    pub fn resources(&self, bare: &Jid) -> Vec<Arc<Session>> {
        self.bare
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&bare.to_bare())
            .cloned()
            .unwrap_or_default()
    }

    /// Sessions of an account that sent available presence.
    pub fn available_resources(&self, bare: &Jid) -> Vec<Arc<Session>> {
        self.resources(bare)
            .into_iter()
            .filter(|s| s.is_available())
            .collect()
    }

    /// Every bound session (for shutdown and statistics).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.full
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn full_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Jid, Arc<Session>>> {
        self.full.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::NS_CLIENT;

    fn session() -> (Session, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Session::new(SessionKind::C2s, "x.org", None, tx), rx)
    }

    fn from_of(out: Outbound) -> Option<String> {
        match out {
            Outbound::Stanza(s) => s.from().map(str::to_string),
            other => panic!("expected a stanza, got {other:?}"),
        }
    }

    #[test]
    fn without_filters_raw_parts_stay_shared() {
        let (s, mut rx) = session();
        assert!(!s.has_outbound_filters());
        let parts = vec![bytes::Bytes::from_static(
            b"<message xmlns='jabber:client' from='a@x.org'/>",
        )];
        assert!(s.send_raw(parts));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Raw(_))));
    }

    #[test]
    fn filters_rewrite_drop_and_see_raw_stanzas() {
        let (s, mut rx) = session();
        s.add_outbound_filter(
            0,
            Arc::new(|_, mut st: Element| {
                st.set_attr("from", Some(format!("{}!", st.from().unwrap_or(""))));
                Some(st)
            }),
        );
        // Higher priority runs first: it drops iqs before the rewrite.
        s.add_outbound_filter(
            10,
            Arc::new(|_, st: Element| (st.name() != "iq").then_some(st)),
        );
        assert!(s.send(Element::new("presence", NS_CLIENT).attr("from", "a")));
        assert_eq!(from_of(rx.try_recv().unwrap()).as_deref(), Some("a!"));
        assert!(s.send(Element::new("iq", NS_CLIENT).attr("from", "a")));
        assert!(rx.try_recv().is_err());
        let parts = vec![
            bytes::Bytes::from_static(b"<message xmlns='jabber:client'"),
            bytes::Bytes::from_static(b" to='u@x.org/r'"),
            bytes::Bytes::from_static(b" from='b'/>"),
        ];
        assert!(s.send_raw(parts));
        assert_eq!(from_of(rx.try_recv().unwrap()).as_deref(), Some("b!"));
    }

    #[test]
    fn raw_stanzas_no_filter_is_for_stay_shared() {
        let (s, mut rx) = session();
        s.add_outbound_filter_from(
            0,
            Arc::new(|from: &str| from.starts_with('[')),
            Arc::new(|_, mut st: Element| {
                st.set_attr("from", Some("virtual".to_string()));
                Some(st)
            }),
        );
        let raw = |from: &'static [u8]| {
            vec![
                bytes::Bytes::from_static(b"<message xmlns='jabber:client'"),
                bytes::Bytes::from_static(b" to='u@x.org/r'"),
                bytes::Bytes::from_static(from),
            ]
        };
        assert!(s.send_raw(raw(b" from='r@muc/n'><body>&gt;</body></message>")));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Raw(_))));
        assert!(s.send_raw(raw(b" from='[t]r@muc/n'/>")));
        assert_eq!(from_of(rx.try_recv().unwrap()).as_deref(), Some("virtual"));
        // A stanza sent as an element is filtered the same way.
        assert!(s.send(Element::new("presence", NS_CLIENT).attr("from", "r@muc")));
        assert_eq!(from_of(rx.try_recv().unwrap()).as_deref(), Some("r@muc"));
    }

    #[test]
    fn from_of_raw_opening_tags() {
        let b = |s: &'static str| vec![bytes::Bytes::from_static(s.as_bytes())];
        assert_eq!(
            raw_from(&b("<iq from='a@b/c' id='1'/>")).as_deref(),
            Some("a@b/c")
        );
        assert_eq!(
            raw_from(&b("<iq id='1'><x from='a'/></iq>")).as_deref(),
            Some("")
        );
        assert_eq!(raw_from(&b("<iq from=\"a\"/>")).as_deref(), Some("a"));
        assert_eq!(raw_from(&b("<iq from='a&amp;b'/>")), None);
    }
}
