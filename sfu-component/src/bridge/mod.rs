//! The sans-IO bridge: Videobridge's signalling around lilt's media core.
//!
//! A [`Bridge`] owns the [`MediaCore`] and the signalling state
//! (conferences by meeting-id, endpoints, what each bridge channel was
//! told). Inputs: stanzas from the XMPP link ([`Bridge::handle_stanza`]),
//! bridge-channel events ([`Bridge::handle_channel_open`] /
//! `_message` / `_close`), UDP datagrams ([`Bridge::handle_datagram`]) and
//! time ([`Bridge::handle_timeout`]). Outputs come from
//! [`Bridge::poll_output`]; the next deadline from [`Bridge::next_timeout`].
//! No socket, clock or thread inside: `run.rs` owns those.

mod allocate;
mod channel;
mod colibri;
mod debug;
mod relay;
mod relay_channel;

pub use channel::ChannelRefused;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use xmpp_core::{Element, StanzaError};

use crate::allocation::AllocationConfig;
use crate::brewery::{Brewery, BreweryConfig};
use crate::channel::outgoing;
use crate::colibri2::NS_COLIBRI2;
use crate::conference::Conference;
use crate::media::{MediaConfig, MediaCore, MediaEvent, MediaOutput};
use crate::stats::{self, BridgeStats};

/// How the bridge is set up.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The id in colibri-ws URLs (Videobridge's `websocket.server-id`).
    pub bridge_id: String,
    /// Public base of the colibri-ws URL, e.g. `wss://meet.example.com/colibri-ws`.
    pub ws_url_base: String,
    pub media: MediaConfig,
    /// Join this brewery room with the stats presence; `None`: no brewery.
    pub brewery: Option<BreweryConfig>,
    pub region: Option<String>,
    pub relay_id: Option<String>,
    pub version: String,
    /// How long a conference may stay without endpoints before it expires.
    pub empty_conference_timeout: Duration,
    /// Bandwidth allocation (Videobridge's `videobridge.cc`).
    pub allocation: AllocationConfig,
}

impl BridgeConfig {
    pub fn new(bridge_id: &str, ws_url_base: &str, media: MediaConfig) -> BridgeConfig {
        BridgeConfig {
            bridge_id: bridge_id.to_string(),
            ws_url_base: ws_url_base.trim_end_matches('/').to_string(),
            media,
            brewery: None,
            region: None,
            relay_id: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
            empty_conference_timeout: Duration::from_secs(60),
            allocation: AllocationConfig::default(),
        }
    }
}

/// What the bridge asks its runtime to do.
#[derive(Debug)]
pub enum Output {
    /// Send on the XMPP link.
    Stanza(Element),
    /// Send a text message on an endpoint's bridge channel.
    Channel {
        conference: String,
        endpoint: String,
        message: String,
    },
    /// Close an endpoint's bridge channel (the endpoint is gone).
    CloseChannel {
        conference: String,
        endpoint: String,
    },
    /// Send a UDP datagram.
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// Graceful shutdown is complete: the brewery was left, no conference
    /// remains; the runtime may stop.
    Finished,
}

/// Counters of the signalling side.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub conferences_created: u64,
    pub conferences_completed: u64,
    pub participants_created: u64,
    pub dominant_speaker_changes: u64,
    pub channel_messages_received: u64,
    pub channel_messages_sent: u64,
    /// Malformed, unknown or oversized channel messages.
    pub channel_messages_dropped: u64,
    /// Received messages by `colibriClass`.
    pub channel_messages_by_class: BTreeMap<String, u64>,
}

pub struct Bridge {
    config: BridgeConfig,
    media: MediaCore,
    /// Conferences by their id (colibri-ws URLs, media core).
    conferences: HashMap<String, Conference>,
    /// meeting-id → conference id.
    by_meeting_id: HashMap<String, String>,
    brewery: Option<Brewery>,
    outputs: VecDeque<Output>,
    counters: Counters,
    graceful_shutdown: bool,
    drain: bool,
    finished: bool,
    last_now: Option<Instant>,
    /// The relay bridge channels (`relay_channel.rs`).
    relay_channels: relay_channel::RelayChannels,
}

impl Bridge {
    pub fn new(config: BridgeConfig) -> Bridge {
        let brewery = config.brewery.clone().map(Brewery::new);
        Bridge {
            media: MediaCore::new(config.media.clone()),
            config,
            conferences: HashMap::new(),
            by_meeting_id: HashMap::new(),
            brewery,
            outputs: VecDeque::new(),
            counters: Counters::default(),
            graceful_shutdown: false,
            drain: false,
            finished: false,
            last_now: None,
            relay_channels: relay_channel::RelayChannels::default(),
        }
    }

    pub fn config(&self) -> &BridgeConfig {
        &self.config
    }

    /// Joins the brewery (if configured). Call once the link is up.
    pub fn start(&mut self, now: Instant) {
        self.last_now = Some(now);
        let stats = self.stats();
        if let Some(b) = self.brewery.as_mut() {
            let p = b.join(now, &stats);
            self.outputs.push_back(Output::Stanza(p));
        }
    }

    /// Graceful shutdown: no new conferences, `graceful_shutdown` in the
    /// stats; once the last conference ends the brewery is left and
    /// [`Output::Finished`] given.
    pub fn graceful_shutdown(&mut self, now: Instant) {
        self.graceful_shutdown = true;
        self.refresh_presence(now);
    }

    /// Drain mode (`drain` in the stats): focuses place no new endpoints
    /// here; existing conferences go on.
    pub fn set_drain(&mut self, now: Instant, drain: bool) {
        self.drain = drain;
        self.refresh_presence(now);
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn refresh_presence(&mut self, now: Instant) {
        let stats = self.stats();
        if let Some(p) = self
            .brewery
            .as_mut()
            .and_then(|b| b.refresh_now(now, &stats))
        {
            self.outputs.push_back(Output::Stanza(p));
        }
    }

    /// Ends a graceful shutdown once no conference is left; called when
    /// every other output has been taken, so answers go before the leave.
    fn check_finished(&mut self) {
        if self.graceful_shutdown && !self.finished && self.conferences.is_empty() {
            if let Some(p) = self.brewery.as_mut().and_then(Brewery::leave) {
                self.outputs.push_back(Output::Stanza(p));
            }
            self.finished = true;
            self.outputs.push_back(Output::Finished);
        }
    }

    pub fn healthy(&self) -> bool {
        !self.finished
    }

    /// A stanza from the XMPP link.
    pub fn handle_stanza(&mut self, now: Instant, stanza: Element) {
        self.last_now = Some(now);
        match stanza.name() {
            "iq" => self.handle_iq(now, stanza),
            "presence" => {
                if let Some(b) = self.brewery.as_mut() {
                    b.handle_presence(&stanza);
                }
            }
            _ => {}
        }
    }

    fn handle_iq(&mut self, now: Instant, iq: Element) {
        let kind = iq.type_().unwrap_or("");
        if kind != "get" && kind != "set" {
            return;
        }
        let reply = if stats::is_healthcheck(&iq) {
            stats::healthcheck_reply(&iq, self.healthy())
        } else if let Some(reply) = crate::identity::answer(&iq, &self.config.version) {
            reply
        } else if kind == "set"
            && let Some(cm) = iq.get_child("conference-modify", NS_COLIBRI2)
        {
            let cm = cm.clone();
            self.handle_conference_modify(now, &iq, &cm)
        } else {
            StanzaError::service_unavailable().reply_to(&iq)
        };
        self.outputs.push_back(Output::Stanza(reply));
    }

    /// A datagram that arrived on the bridge's UDP socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.last_now = Some(now);
        self.media
            .handle_receive(now, source, destination, contents);
    }

    /// Time passed: media timers, brewery refresh, empty conferences.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.media.handle_timeout(now);
        let stats = self.stats();
        if let Some(p) = self
            .brewery
            .as_mut()
            .and_then(|b| b.poll_refresh(now, &stats))
        {
            self.outputs.push_back(Output::Stanza(p));
        }
        let timeout = self.config.empty_conference_timeout;
        let stale: Vec<String> = self
            .conferences
            .values()
            .filter(|c| c.empty_since.is_some_and(|t| now >= t + timeout))
            .map(|c| c.id.clone())
            .collect();
        for id in stale {
            tracing::info!(conference = %id, "expiring empty conference");
            self.expire_conference(&id);
        }
        self.periodic_allocation(now);
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        let empty = self
            .conferences
            .values()
            .filter_map(|c| c.empty_since)
            .map(|t| t + self.config.empty_conference_timeout)
            .min();
        [
            self.media.next_timeout(),
            self.brewery.as_ref().and_then(Brewery::next_timeout),
            empty,
            self.next_allocation(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(o) = self.outputs.pop_front() {
                return Some(o);
            }
            let Some(media_output) = self.media.poll_output() else {
                self.check_finished();
                return self.outputs.pop_front();
            };
            match media_output {
                MediaOutput::Transmit {
                    source,
                    destination,
                    contents,
                } => {
                    return Some(Output::Transmit {
                        source,
                        destination,
                        contents,
                    });
                }
                MediaOutput::Event(e) => self.handle_media_event(e),
            }
        }
    }

    fn handle_media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::BandwidthEstimate {
                conference,
                endpoint,
                bps,
            } => self.on_bandwidth_estimate(&conference, &endpoint, Some(bps)),
            MediaEvent::BandwidthEstimateLost {
                conference,
                endpoint,
            } => self.on_bandwidth_estimate(&conference, &endpoint, None),
            MediaEvent::LayersChanged { conference, .. } => self.update_allocation(&conference),
            MediaEvent::EndpointConnected {
                conference,
                endpoint,
            } => {
                tracing::info!(%conference, %endpoint, "endpoint connected");
                self.on_endpoint_connected(&conference, &endpoint);
            }
            MediaEvent::EndpointExpired {
                conference,
                endpoint,
            } => {
                tracing::info!(%conference, %endpoint, "endpoint expired by the media core");
                if let Some(relay) = relay_channel::relay_of(&endpoint) {
                    // A silent relay: everything behind it goes too.
                    let relay = relay.to_string();
                    self.expire_relay(&conference, &relay);
                    return;
                }
                self.remove_endpoint(&conference, &endpoint);
                self.expire_if_empty(&conference);
            }
            MediaEvent::DominantSpeakerChanged {
                conference,
                endpoint,
                previous,
                silence,
            } => {
                self.counters.dominant_speaker_changes += 1;
                let Some(conf) = self.conferences.get_mut(&conference) else {
                    return;
                };
                let mut speakers = vec![endpoint.clone()];
                speakers.extend(previous.iter().filter(|p| **p != endpoint).cloned());
                conf.speakers = speakers;
                conf.silence = silence;
                let message = outgoing::dominant_speaker(&endpoint, &previous, silence);
                let targets: Vec<String> = conf
                    .endpoints
                    .values()
                    .filter(|e| e.channel_open)
                    .map(|e| e.id.clone())
                    .collect();
                for t in targets {
                    self.send_channel(&conference, &t, message.clone());
                }
                self.update_allocation(&conference);
            }
        }
    }

    fn send_channel(&mut self, conference: &str, endpoint: &str, message: String) {
        self.counters.channel_messages_sent += 1;
        self.outputs.push_back(Output::Channel {
            conference: conference.to_string(),
            endpoint: endpoint.to_string(),
            message,
        });
    }

    /// Removes an endpoint's signalling state and media; closes its channel.
    fn remove_endpoint(&mut self, conference: &str, endpoint: &str) -> bool {
        self.media.expire_endpoint(conference, endpoint);
        let Some(conf) = self.conferences.get_mut(conference) else {
            return false;
        };
        let Some(ep) = conf.endpoints.remove(endpoint) else {
            return false;
        };
        if conf.endpoints.is_empty() {
            conf.empty_since = self.last_now;
        }
        if ep.channel_open {
            self.outputs.push_back(Output::CloseChannel {
                conference: conference.to_string(),
                endpoint: endpoint.to_string(),
            });
        }
        self.update_allocation(conference);
        true
    }

    /// Expires the conference if it has no endpoint left.
    fn expire_if_empty(&mut self, conference: &str) {
        if self
            .conferences
            .get(conference)
            .is_some_and(|c| c.endpoints.is_empty())
        {
            self.expire_conference(conference);
        }
    }

    fn expire_conference(&mut self, conference: &str) {
        let Some(conf) = self.conferences.remove(conference) else {
            return;
        };
        tracing::info!(conference = %conf.id, meeting_id = %conf.meeting_id, "conference expired");
        self.by_meeting_id.remove(&conf.meeting_id);
        for ep in conf.endpoints.values() {
            self.media.expire_endpoint(&conf.id, &ep.id);
            if ep.channel_open {
                self.outputs.push_back(Output::CloseChannel {
                    conference: conf.id.clone(),
                    endpoint: ep.id.clone(),
                });
            }
        }
        self.media.expire_conference(&conf.id);
        self.counters.conferences_completed += 1;
    }

    /// The conference id for a meeting-id (what colibri-ws URLs carry).
    pub fn conference_id(&self, meeting_id: &str) -> Option<&str> {
        self.by_meeting_id.get(meeting_id).map(String::as_str)
    }

    pub fn conference(&self, id: &str) -> Option<&Conference> {
        self.conferences.get(id)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A snapshot of every stat (the wall-clock timestamp left 0).
    pub fn stats(&self) -> BridgeStats {
        // Endpoints of this bridge (not those behind a relay).
        let local = |c: &Conference| c.endpoints.values().filter(|e| e.relay.is_none()).count();
        let participants: u64 = self.conferences.values().map(|c| local(c) as u64).sum();
        let largest = self
            .conferences
            .values()
            .map(|c| local(c) as u64)
            .max()
            .unwrap_or(0);
        let mut sizes = vec![0u64; stats::CONFERENCE_SIZE_BUCKETS];
        for c in self.conferences.values() {
            let i = local(c).min(stats::CONFERENCE_SIZE_BUCKETS - 1);
            if let Some(b) = sizes.get_mut(i) {
                *b += 1;
            }
        }
        let totals = self.allocation_totals();
        BridgeStats {
            media: self.media.stats(),
            endpoints_with_suspended_sources: totals.suspended,
            endpoints_oversending: totals.oversending,
            endpoints_bandwidth_limited: totals.bandwidth_limited,
            total_target_bps: totals.target_bps,
            total_ideal_bps: totals.ideal_bps,
            conference_sizes: sizes,
            conferences: self.conferences.len() as u64,
            participants,
            largest_conference: largest,
            total_conferences_created: self.counters.conferences_created,
            total_conferences_completed: self.counters.conferences_completed,
            total_participants: self.counters.participants_created,
            total_dominant_speaker_changes: self.counters.dominant_speaker_changes,
            total_colibri_web_socket_messages_received: self.counters.channel_messages_received,
            total_colibri_web_socket_messages_sent: self.counters.channel_messages_sent,
            channel_messages_dropped: self.counters.channel_messages_dropped,
            endpoints_with_channel: self
                .conferences
                .values()
                .flat_map(|c| c.endpoints.values())
                .filter(|e| e.channel_open)
                .count() as u64,
            graceful_shutdown: self.graceful_shutdown,
            drain: self.drain,
            healthy: self.healthy(),
            version: self.config.version.clone(),
            release: String::from("lilt"),
            region: self.config.region.clone(),
            relay_id: self.config.relay_id.clone(),
            current_timestamp_ms: 0,
        }
    }
}

/// Random lower-case hex of `len` digits (conference ids).
fn random_hex(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A random SSRC, never 0.
fn random_ssrc() -> u32 {
    rand::thread_rng().gen_range(1..=u32::MAX)
}

#[cfg(test)]
mod tests;
