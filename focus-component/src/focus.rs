//! The [`Focus`]: lilt's conference focus as a sans-IO state machine.
//!
//! Stanzas in ([`Focus::handle_stanza`]) with the current time, stanzas out
//! ([`Focus::poll_output`]), and a deadline ([`Focus::next_timeout`]) at
//! which [`Focus::handle_timeout`] must be called (health checks, IQ
//! timeouts, batched source signalling). No sockets, no clock, no threads:
//! [`crate::run`] drives it over a [`xmpp_core::client::ClientLink`], tests
//! drive it directly with virtual time.
//!
//! The handlers live next to their concept: [`crate::conference_iq`],
//! [`crate::occupants`] (presence: rooms and brewery), [`crate::invite`]
//! (bridge allocation, offers, failover), [`crate::jingle`],
//! [`crate::mute`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use xmpp_core::{Element, StanzaError};

use crate::bridges::{Brewery, SelectionConfig};
use crate::ns;
use crate::restart::RestartLimits;
use crate::room::{self, Conference};
use crate::sources::SourceLimits;
use crate::stats::Counters;

/// The focus's nick in every room.
pub const FOCUS_NICK: &str = "focus";

/// How long a participant's disco#info may take.
const DISCO_TIMEOUT: Duration = Duration::from_secs(5);

/// A deployment with authentication (Jicofo's XMPP authentication): users
/// logged in on `login_domain` are moderators and may create rooms; guests
/// join rooms that exist.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub login_domain: String,
}

/// How the focus is set up (Jicofo's `jicofo.conf` subset).
#[derive(Debug, Clone)]
pub struct FocusOptions {
    /// The focus's own full JID as bound (`focus@auth.D/resource`).
    pub jid: String,
    /// The main domain, `D`.
    pub domain: String,
    /// The conference MUC, `conference.D`.
    pub muc: String,
    /// The bridges' brewery room, `jvbbrewery@internal.auth.D`.
    pub brewery: String,
    pub jibri_brewery: Option<String>,
    /// The `client_proxy` component clients reach the focus through
    /// (`focus.D`): it is sent a directed presence at start, so that it
    /// knows the focus's resource even where no roster subscription was
    /// set up (Jitsi's installers run `mod_roster_command` for that).
    pub client_proxy: Option<String>,
    pub authentication: Option<AuthOptions>,
    /// `(audio, video)` start muted for every participant.
    pub start_muted: Option<(bool, bool)>,
    /// Jicofo's `source-signaling-delays`: by conference size (the
    /// largest key not above the participant count), how long source
    /// changes are batched before they are signalled. Empty (Jicofo's
    /// default): no delay.
    pub source_signaling_delays: BTreeMap<usize, Duration>,
    pub source_limits: SourceLimits,
    pub selection: SelectionConfig,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    /// How long any other IQ may stay unanswered.
    pub iq_timeout: Duration,
    /// How long a room the focus joined may wait for its first
    /// participant (Jicofo's `conference.initial-timeout`).
    pub initial_timeout: Duration,
    /// Jicofo's `conference.restart-request-rate-limits`.
    pub restart_limits: RestartLimits,
}

impl FocusOptions {
    /// Jicofo's defaults for a domain, logged in as `jid`.
    pub fn new(jid: &str, domain: &str) -> FocusOptions {
        FocusOptions {
            jid: jid.to_string(),
            domain: domain.to_string(),
            muc: format!("conference.{domain}"),
            brewery: format!("jvbbrewery@internal.auth.{domain}"),
            jibri_brewery: None,
            client_proxy: Some(format!("focus.{domain}")),
            authentication: None,
            start_muted: None,
            source_signaling_delays: BTreeMap::new(),
            source_limits: SourceLimits::default(),
            selection: SelectionConfig::default(),
            health_interval: Duration::from_secs(10),
            health_timeout: Duration::from_secs(5),
            iq_timeout: Duration::from_secs(15),
            initial_timeout: Duration::from_secs(15),
            restart_limits: RestartLimits::default(),
        }
    }

    /// The source-signalling delay for a conference of `size`.
    pub fn source_signaling_delay(&self, size: usize) -> Duration {
        self.source_signaling_delays
            .range(..=size)
            .next_back()
            .map_or(Duration::ZERO, |(_, d)| *d)
    }

    /// The focus's bare JID (`focusjid` of the conference IQ).
    pub fn bare_jid(&self) -> &str {
        self.jid.split('/').next().unwrap_or(&self.jid)
    }
}

/// What an IQ the focus sent is waiting for.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    RoomConfig {
        room: String,
    },
    Disco {
        room: String,
        nick: String,
    },
    Allocate {
        room: String,
        bridge: String,
        endpoints: Vec<String>,
    },
    ColibriUpdate {
        room: String,
        bridge: String,
    },
    /// A relay's creation on `bridge` (`relay_id`: the other bridge's).
    RelayCreate {
        room: String,
        bridge: String,
        relay_id: String,
    },
    Offer {
        room: String,
        nick: String,
        sid: String,
    },
    HealthCheck {
        bridge: String,
    },
    JibriStart {
        room: String,
        jibri: String,
    },
    /// Anything whose answer only matters for the logs.
    Other,
}

#[derive(Debug)]
pub(crate) struct PendingIq {
    pub kind: Pending,
    pub deadline: Instant,
}

/// lilt's conference focus. See the module documentation.
pub struct Focus {
    pub(crate) options: FocusOptions,
    pub(crate) conferences: BTreeMap<String, Conference>,
    pub(crate) brewery: Brewery,
    pub(crate) pending: HashMap<String, PendingIq>,
    pub(crate) out: VecDeque<Element>,
    pub(crate) next_id: u64,
    pub(crate) next_health_check: Instant,
    /// session-id → (identity, machine-uid) of authenticated users.
    pub(crate) auth_sessions: HashMap<String, (String, String)>,
    /// Full JIDs that authenticated (directly or with a session-id).
    pub(crate) authenticated: HashSet<String>,
    pub(crate) counters: Counters,
    pub(crate) jibris: crate::jibri::Jibris,
}

impl Focus {
    /// A focus that has just logged in: it announces itself and joins the
    /// brewery rooms.
    pub fn new(options: FocusOptions, now: Instant) -> Focus {
        let mut f = Focus {
            brewery: Brewery::new(options.selection.clone()),
            next_health_check: now + options.health_interval,
            options,
            conferences: BTreeMap::new(),
            pending: HashMap::new(),
            out: VecDeque::new(),
            next_id: 0,
            auth_sessions: HashMap::new(),
            authenticated: HashSet::new(),
            counters: Counters::default(),
            jibris: crate::jibri::Jibris::default(),
        };
        f.out.push_back(Element::new("presence", ns::CLIENT));
        if let Some(proxy) = &f.options.client_proxy {
            let directed = Element::new("presence", ns::CLIENT).attr("to", proxy.as_str());
            f.out.push_back(directed);
        }
        let brewery = format!("{}/{}", f.options.brewery, FOCUS_NICK);
        f.out.push_back(room::plain_join(&brewery));
        if let Some(jb) = &f.options.jibri_brewery {
            let occupant = format!("{jb}/{FOCUS_NICK}");
            f.out.push_back(room::plain_join(&occupant));
        }
        f
    }

    pub fn options(&self) -> &FocusOptions {
        &self.options
    }

    /// The next stanza to send.
    pub fn poll_output(&mut self) -> Option<Element> {
        self.out.pop_front()
    }

    /// When [`Focus::handle_timeout`] is due.
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut t = Some(self.next_health_check);
        let mut consider = |x: Instant| {
            t = Some(t.map_or(x, |cur| cur.min(x)));
        };
        for p in self.pending.values() {
            consider(p.deadline);
        }
        for c in self.conferences.values() {
            if let Some(at) = c.initial_deadline.filter(|_| c.joins == 0) {
                consider(at);
            }
            for p in c.participants.values() {
                if let Some(at) = p.flush_at {
                    consider(at);
                }
            }
        }
        t
    }

    /// Health checks, timed-out IQs, queued source signalling.
    pub fn handle_timeout(&mut self, now: Instant) {
        // In the order they were due (then sent), whatever the map's order.
        let mut expired: Vec<(Instant, u64, String)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, p)| {
                let n = id
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                (p.deadline, n, id.clone())
            })
            .collect();
        expired.sort();
        let expired = expired.into_iter().map(|(_, _, id)| id);
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                self.on_iq_failure(now, p.kind, None);
            }
        }
        if now >= self.next_health_check {
            self.next_health_check = now + self.options.health_interval;
            self.send_health_checks(now);
        }
        let abandoned: Vec<String> = self
            .conferences
            .iter()
            .filter(|(_, c)| c.joins == 0 && c.initial_deadline.is_some_and(|t| t <= now))
            .map(|(room, _)| room.clone())
            .collect();
        for room in abandoned {
            tracing::info!(room, "nobody joined: the focus leaves the room");
            self.end_conference(now, &room, true);
        }
        self.flush_due_sources(now);
    }

    /// One stanza from the server.
    pub fn handle_stanza(&mut self, now: Instant, stanza: Element) {
        match stanza.name() {
            "iq" => self.on_iq(now, stanza),
            "presence" => self.on_presence(now, &stanza),
            "message" => self.on_message(now, &stanza),
            _ => {}
        }
        // Source changes due now (no signalling delay) go out at once.
        self.flush_due_sources(now);
    }

    pub(crate) fn id(&mut self) -> String {
        self.next_id += 1;
        format!("lilt-focus-{}", self.next_id)
    }

    pub(crate) fn send(&mut self, stanza: Element) {
        self.out.push_back(stanza);
    }

    /// Sends an IQ request and remembers what its answer is for.
    pub(crate) fn request(&mut self, now: Instant, iq: Element, kind: Pending) {
        let timeout = match kind {
            Pending::HealthCheck { .. } => self.options.health_timeout,
            // A client that does not answer disco is invited with
            // Jicofo's default features soon, not after a long wait.
            Pending::Disco { .. } => DISCO_TIMEOUT,
            _ => self.options.iq_timeout,
        };
        if let Some(id) = iq.id() {
            self.pending.insert(
                id.to_string(),
                PendingIq {
                    kind,
                    deadline: now + timeout,
                },
            );
        }
        self.send(iq);
    }

    pub(crate) fn reply_error(&mut self, stanza: &Element, error: StanzaError) {
        self.send(error.reply_to(stanza));
    }

    fn on_iq(&mut self, now: Instant, iq: Element) {
        match iq.type_() {
            Some("result") | Some("error") => {
                let Some(pending) = iq.id().and_then(|id| self.pending.remove(id)) else {
                    return;
                };
                if iq.type_() == Some("result") {
                    self.on_iq_result(now, pending.kind, &iq);
                } else {
                    self.on_iq_failure(now, pending.kind, Some(&iq));
                }
            }
            Some("get") | Some("set") => self.on_iq_request(now, &iq),
            _ => {}
        }
    }

    fn on_iq_request(&mut self, now: Instant, iq: &Element) {
        let Some(payload) = iq.first_child() else {
            self.reply_error(iq, StanzaError::bad_request());
            return;
        };
        let is_set = iq.type_() == Some("set");
        match (payload.name(), payload.ns(), is_set) {
            ("conference", ns::FOCUS, true) => self.on_conference_iq(now, iq),
            ("jingle", ns::JINGLE, true) => self.on_jingle(now, iq),
            ("mute", ns::MUTE_AUDIO, true)
            | ("mute-video", ns::MUTE_VIDEO, true)
            | ("mute-desktop", ns::MUTE_DESKTOP, true) => self.on_mute_iq(now, iq),
            ("jibri", ns::JIBRI, true) => self.on_jibri_iq(now, iq),
            ("ping", "urn:xmpp:ping", false) => self.send(iq.reply()),
            ("query", ns::DISCO_INFO, false) => {
                let q = Element::new("query", ns::DISCO_INFO)
                    .child(
                        Element::new("identity", ns::DISCO_INFO)
                            .attr("category", "component")
                            .attr("type", "focus")
                            .attr("name", "lilt focus"),
                    )
                    .child(Element::new("feature", ns::DISCO_INFO).attr("var", ns::DISCO_INFO))
                    .child(Element::new("feature", ns::DISCO_INFO).attr("var", ns::FOCUS));
                self.send(iq.reply().child(q));
            }
            _ => self.reply_error(iq, StanzaError::service_unavailable()),
        }
    }

    fn on_iq_result(&mut self, now: Instant, kind: Pending, iq: &Element) {
        match kind {
            Pending::RoomConfig { room } => self.room_configured(&room),
            Pending::Disco { room, nick } => {
                let features = iq
                    .get_child("query", ns::DISCO_INFO)
                    .map(crate::participant::features_from_disco)
                    .unwrap_or_default();
                self.features_known(now, &room, &nick, Some(features));
            }
            Pending::Allocate {
                room,
                bridge,
                endpoints,
            } => self.on_allocated(now, &room, &bridge, &endpoints, iq),
            Pending::HealthCheck { bridge } => self.brewery.mark_healthy(&bridge),
            Pending::RelayCreate {
                room,
                bridge,
                relay_id,
            } => self.on_relay_created(now, &room, &bridge, &relay_id, iq),
            Pending::JibriStart { room, jibri } => {
                self.jibri_start_answered(now, &room, &jibri, true)
            }
            Pending::Offer { .. } | Pending::ColibriUpdate { .. } | Pending::Other => {}
        }
    }

    /// An IQ answered with an error, or not answered in time (`iq` None).
    fn on_iq_failure(&mut self, now: Instant, kind: Pending, iq: Option<&Element>) {
        match kind {
            Pending::RoomConfig { room } => self.room_configured(&room),
            Pending::Disco { room, nick } => self.features_known(now, &room, &nick, None),
            Pending::ColibriUpdate { room, bridge } => {
                // As Jicofo: a timed-out update is only logged; an unknown
                // endpoint is invited again; any other error fails the
                // bridge's session.
                let Some(iq) = iq else {
                    tracing::info!(room, bridge, "colibri2 update timed out");
                    return;
                };
                self.counters.colibri_failures += 1;
                match crate::colibri::unknown_endpoint(iq) {
                    Some(endpoint) => self.reinvite_endpoint(now, &room, &endpoint),
                    None => {
                        tracing::warn!(room, bridge, error = %iq, "colibri2 update failed");
                        self.bridge_failed(now, &bridge);
                    }
                }
            }
            Pending::RelayCreate { room, bridge, .. } => {
                // As Jicofo: the bridge's session failed.
                self.counters.colibri_failures += 1;
                tracing::warn!(room, bridge, error = ?iq.map(|e| e.to_string()), "relay creation failed");
                if self
                    .conferences
                    .get(&room)
                    .is_some_and(|c| c.session(&bridge).is_some())
                {
                    self.bridge_failed(now, &bridge);
                }
            }
            Pending::Allocate { room, bridge, .. } => {
                self.counters.colibri_failures += 1;
                tracing::warn!(room, bridge, error = ?iq.map(|e| e.to_string()), "colibri2 request failed");
                self.bridge_failed(now, &bridge);
            }
            Pending::HealthCheck { bridge } => {
                self.counters.health_check_failures += 1;
                tracing::warn!(bridge, "bridge failed its health check");
                self.bridge_failed(now, &bridge);
            }
            Pending::JibriStart { room, jibri } => {
                self.jibri_start_answered(now, &room, &jibri, false)
            }
            Pending::Offer { room, nick, sid } => {
                // As Jicofo: an unanswered offer counts as delivered; a
                // refused one ends the attempt (the endpoint expires, the
                // participant stays without a session).
                let Some(iq) = iq else {
                    tracing::info!(room, nick, sid, "offer unanswered");
                    return;
                };
                self.counters.offer_failures += 1;
                tracing::warn!(room, nick, sid, error = %iq, "offer refused");
                self.offer_refused(now, &room, &nick, &sid);
            }
            Pending::Other => {}
        }
    }

    /// The focus's stats (see [`crate::stats`]).
    pub fn stats(&self, now: Instant) -> crate::stats::Stats {
        crate::stats::Stats::collect(self, now)
    }
}
