//! The relay bridge channel (Videobridge's `colibri-relay-ws`): a
//! WebSocket between two bridges of a conference, one per relay. The side
//! the focus gave a `<web-socket>` connects to the other's
//! `/colibri-relay-ws/<bridge-id>/<conference>/<relay-id>?pwd=` (the
//! relay's ICE pwd). It carries what Videobridge relays:
//!
//! - `EndpointMessage` (`to` a relayed endpoint, or everyone), delivered to
//!   local endpoints as if sent here;
//! - `SourceVideoTypeMessage` (`sourceName`, `videoType`) of each side's
//!   endpoints, so allocation ranks screen shares alike on both bridges;
//! - `AddReceiver` / `RemoveReceiver` (`bridgeId`, `sourceName`,
//!   `videoConstraints {maxHeight, maxFrameRate}`): the largest height this
//!   bridge's receivers want of each relayed source, after every
//!   allocation that changed it.
//!
//! To the runtime the channel looks like an endpoint's: its key is
//! [`relay_key`] (`relay:<relay-id>`), opened with
//! [`Bridge::handle_channel_open`] (server side) or
//! [`Bridge::handle_relay_channel_connected`] (client side, for each URL
//! from [`Bridge::take_relay_connects`]), fed with
//! [`Bridge::handle_channel_message`], closed with
//! [`Bridge::handle_channel_close`]; what it sends comes as
//! [`super::Output::Channel`] with that key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde_json::{Value, json};

use super::{Bridge, ChannelRefused};
use crate::media::relay_key;

/// Relay channels of every conference.
#[derive(Debug, Default)]
pub(super) struct RelayChannels {
    /// (conference, relay id) with an open channel.
    open: HashSet<(String, String)>,
    /// Channels to connect: (conference, relay id, URL).
    to_connect: Vec<(String, String, String)>,
    /// The `AddReceiver` heights last sent per source, by channel.
    sent: HashMap<(String, String), BTreeMap<String, i64>>,
    /// What the peer's receivers want of local sources, by channel.
    pub(super) wanted: HashMap<(String, String), BTreeMap<String, i64>>,
}

/// The relay id of a relay channel key.
pub(super) fn relay_of(endpoint: &str) -> Option<&str> {
    endpoint.strip_prefix("relay:")
}

impl Bridge {
    /// Relay channels this bridge must connect, as (conference id, relay
    /// id, URL); each is given once. The runtime connects a WebSocket and
    /// calls [`Bridge::handle_relay_channel_connected`].
    pub fn take_relay_connects(&mut self) -> Vec<(String, String, String)> {
        std::mem::take(&mut self.relay_channels.to_connect)
    }

    pub(super) fn connect_relay_channel(&mut self, conference: &str, relay: &str, url: &str) {
        self.relay_channels.to_connect.push((
            conference.to_string(),
            relay.to_string(),
            url.to_string(),
        ));
    }

    /// The runtime's WebSocket to the peer's colibri-relay-ws is up.
    pub fn handle_relay_channel_connected(&mut self, now: Instant, conference: &str, relay: &str) {
        self.last_now = Some(now);
        if self.media.has_relay(conference, relay) {
            self.relay_channel_opened(conference, relay);
        }
    }

    /// A colibri-relay-ws arrived (via [`Bridge::handle_channel_open`]).
    pub(super) fn accept_relay_channel(
        &mut self,
        conference: &str,
        relay: &str,
        pwd: &str,
    ) -> Result<(), ChannelRefused> {
        if !self.conferences.contains_key(conference) {
            return Err(ChannelRefused::UnknownConference(conference.to_string()));
        }
        let Some(expected) = self.media.relay_pwd(conference, relay) else {
            return Err(ChannelRefused::UnknownEndpoint(relay_key(relay)));
        };
        if !super::channel::constant_time_eq(expected.as_bytes(), pwd.as_bytes()) {
            return Err(ChannelRefused::BadPassword);
        }
        self.relay_channel_opened(conference, relay);
        Ok(())
    }

    fn relay_channel_opened(&mut self, conference: &str, relay: &str) {
        tracing::debug!(%conference, %relay, "relay bridge channel open");
        let key = (conference.to_string(), relay.to_string());
        self.relay_channels.open.insert(key.clone());
        // The peer has been told nothing on this channel yet.
        self.relay_channels.sent.remove(&key);
        let hello = crate::channel::outgoing::server_hello(Some(&self.config.version));
        self.send_channel(conference, &relay_key(relay), hello);
        // Local video types, then what local receivers want.
        let types: Vec<(String, String)> = self
            .conferences
            .get(conference)
            .map(|c| {
                c.endpoints
                    .values()
                    .filter(|e| e.relay.is_none())
                    .flat_map(|e| e.video_types.iter())
                    .map(|(s, t)| (s.clone(), t.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (source, video_type) in types {
            self.send_channel(
                conference,
                &relay_key(relay),
                source_video_type(&source, &video_type),
            );
        }
        self.update_relay_receivers(conference);
    }

    pub(super) fn relay_channel_closed(&mut self, conference: &str, relay: &str) {
        let key = (conference.to_string(), relay.to_string());
        self.relay_channels.open.remove(&key);
        self.relay_channels.sent.remove(&key);
        self.relay_channels.wanted.remove(&key);
        self.media.set_relay_wanted(conference, relay, None);
    }

    /// Forgets a relay's channel (the relay expired).
    pub(super) fn forget_relay_channel(&mut self, conference: &str, relay: &str) {
        if self
            .relay_channels
            .open
            .contains(&(conference.to_string(), relay.to_string()))
        {
            self.outputs.push_back(super::Output::CloseChannel {
                conference: conference.to_string(),
                endpoint: relay_key(relay),
            });
        }
        self.relay_channel_closed(conference, relay);
        self.relay_channels
            .to_connect
            .retain(|(c, r, _)| !(c == conference && r == relay));
    }

    /// Relays of `conference` with an open channel.
    fn open_relays(&self, conference: &str) -> Vec<String> {
        let mut relays: Vec<String> = self
            .relay_channels
            .open
            .iter()
            .filter(|(c, _)| c == conference)
            .map(|(_, r)| r.clone())
            .collect();
        relays.sort();
        relays
    }

    /// A local endpoint's `EndpointMessage`: to the relay of a relayed
    /// `to`, or to every relay when it is for everyone.
    pub(super) fn relay_endpoint_message(&mut self, conference: &str, to: &str, message: &str) {
        let targets: Vec<String> = if to.is_empty() {
            self.open_relays(conference)
        } else {
            self.conferences
                .get(conference)
                .and_then(|c| c.endpoints.get(to))
                .and_then(|e| e.relay.clone())
                .into_iter()
                .filter(|r| {
                    self.relay_channels
                        .open
                        .contains(&(conference.to_string(), r.clone()))
                })
                .collect()
        };
        for relay in targets {
            self.send_channel(conference, &relay_key(&relay), message.to_string());
        }
    }

    /// A local endpoint's source video type, to every relay.
    pub(super) fn relay_video_type(&mut self, conference: &str, source: &str, video_type: &str) {
        for relay in self.open_relays(conference) {
            self.send_channel(
                conference,
                &relay_key(&relay),
                source_video_type(source, video_type),
            );
        }
    }

    /// A message from the peer bridge on relay `relay`'s channel.
    pub(super) fn handle_relay_message(&mut self, conference: &str, relay: &str, text: &str) {
        let key = (conference.to_string(), relay.to_string());
        if !self.relay_channels.open.contains(&key) {
            return;
        }
        self.counters.channel_messages_received += 1;
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
            self.counters.channel_messages_dropped += 1;
            return;
        };
        let class = message
            .get("colibriClass")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let text_of = |name: &str| {
            message
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match class.as_str() {
            "EndpointMessage" => {
                let to = text_of("to");
                let targets: Vec<String> = self
                    .conferences
                    .get(conference)
                    .map(|c| {
                        c.endpoints
                            .values()
                            .filter(|e| e.relay.is_none() && e.channel_open)
                            .filter(|e| to.is_empty() || e.id == to)
                            .map(|e| e.id.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let text = Value::Object(message).to_string();
                for t in targets {
                    self.send_channel(conference, &t, text.clone());
                }
            }
            "SourceVideoTypeMessage" => {
                let (source, video_type) = (text_of("sourceName"), text_of("videoType"));
                let mut changed = false;
                if let Some(conf) = self.conferences.get_mut(conference)
                    && let Some(ep) = conf.endpoints.values_mut().find(|e| {
                        e.relay.as_deref() == Some(relay)
                            && e.sources.iter().any(|s| s.name == source)
                    })
                {
                    changed = ep.video_types.insert(source, video_type.clone()) != Some(video_type);
                }
                if changed {
                    self.update_allocation(conference);
                }
            }
            "AddReceiver" => {
                let source = text_of("sourceName");
                let height = message
                    .get("videoConstraints")
                    .and_then(|v| v.get("maxHeight"))
                    .and_then(Value::as_i64)
                    .unwrap_or(-1);
                if !source.is_empty() {
                    self.relay_channels
                        .wanted
                        .entry(key)
                        .or_default()
                        .insert(source, height);
                    self.apply_relay_wants(conference);
                }
            }
            "RemoveReceiver" => {
                let source = match text_of("sourceName") {
                    s if s.is_empty() => text_of("endpointId"),
                    s => s,
                };
                if let Some(w) = self.relay_channels.wanted.get_mut(&key) {
                    w.remove(&source);
                }
                self.apply_relay_wants(conference);
            }
            _ => {}
        }
    }

    /// Sends `AddReceiver`/`RemoveReceiver` where the largest height this
    /// bridge's receivers want of a relayed source changed.
    pub(super) fn update_relay_receivers(&mut self, conference: &str) {
        let relays = self.open_relays(conference);
        if relays.is_empty() {
            return;
        }
        let Some(conf) = self.conferences.get(conference) else {
            return;
        };
        let mut wanted: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
        for receiver in conf.endpoints.values().filter(|e| e.relay.is_none()) {
            for s in &receiver.allocation.allocation.sources {
                // Wanted by its constraints (whether or not a layer flows
                // yet: the sender may be waiting for this very message).
                if s.constraints.max_height == 0 {
                    continue;
                }
                let Some(relay) = conf.endpoints.get(&s.owner).and_then(|o| o.relay.clone()) else {
                    continue;
                };
                let h = s.constraints.max_height;
                let entry = wanted.entry(relay).or_default();
                let combined = match entry.get(&s.name) {
                    Some(old) if *old < 0 || h < 0 => -1,
                    Some(old) => (*old).max(h),
                    None => h,
                };
                entry.insert(s.name.clone(), combined);
            }
        }
        let bridge_id = self
            .config
            .relay_id
            .clone()
            .unwrap_or_else(|| self.config.bridge_id.clone());
        for relay in relays {
            let key = (conference.to_string(), relay.clone());
            let now = wanted.remove(&relay).unwrap_or_default();
            let before = self
                .relay_channels
                .sent
                .get(&key)
                .cloned()
                .unwrap_or_default();
            let mut messages = Vec::new();
            for (source, h) in &now {
                if before.get(source) != Some(h) {
                    messages.push(
                        json!({
                            "colibriClass": "AddReceiver",
                            "bridgeId": bridge_id,
                            "sourceName": source,
                            "videoConstraints": {"maxHeight": h, "maxFrameRate": 30.0},
                        })
                        .to_string(),
                    );
                }
            }
            for source in before.keys().filter(|s| !now.contains_key(*s)) {
                messages.push(
                    json!({
                        "colibriClass": "RemoveReceiver",
                        "bridgeId": bridge_id,
                        "endpointId": source,
                        "sourceName": source,
                    })
                    .to_string(),
                );
            }
            for m in messages {
                self.send_channel(conference, &relay_key(&relay), m);
            }
            self.relay_channels.sent.insert(key, now);
        }
    }

    /// Lets what the peer's receivers want (`AddReceiver`) count as a
    /// receiver here, so local senders are asked for it: the first relayed
    /// endpoint of each relay with an open channel receives with those
    /// constraints, the others ask for nothing. Without a channel relayed
    /// endpoints keep the default constraints (senders keep sending).
    pub(super) fn apply_relay_wants(&mut self, conference: &str) {
        let mut changed = false;
        for relay in self.open_relays(conference) {
            let key = (conference.to_string(), relay.clone());
            // Nothing said yet: the defaults stay.
            let Some(wanted) = self.relay_channels.wanted.get(&key).cloned() else {
                continue;
            };
            // Only what the peer's receivers want crosses the relay.
            let names = wanted
                .iter()
                .filter(|(_, h)| **h != 0)
                .map(|(s, _)| s.clone())
                .collect();
            self.media.set_relay_wanted(conference, &relay, Some(names));
            let constraints: serde_json::Map<String, Value> = wanted
                .iter()
                .map(|(s, h)| {
                    let h = if *h < 0 { 2160 } else { *h };
                    (s.clone(), json!({ "maxHeight": h }))
                })
                .collect();
            let Some(conf) = self.conferences.get_mut(conference) else {
                return;
            };
            let mut behind: Vec<&mut crate::conference::Endpoint> = conf
                .endpoints
                .values_mut()
                .filter(|e| e.relay.as_deref() == Some(relay.as_str()))
                .collect();
            behind.sort_by(|a, b| a.id.cmp(&b.id));
            for (i, ep) in behind.into_iter().enumerate() {
                let text = json!({
                    "colibriClass": "ReceiverVideoConstraints",
                    "lastN": -1,
                    "onStageSources": if i == 0 { wanted.keys().cloned().collect::<Vec<_>>() } else { Vec::new() },
                    "defaultConstraints": {"maxHeight": 0},
                    "constraints": if i == 0 { constraints.clone() } else { serde_json::Map::new() },
                })
                .to_string();
                if let Ok(crate::channel::ClientMessage::ReceiverVideoConstraints(rc)) =
                    crate::channel::parse_client_message(&text)
                {
                    changed |= ep.allocation.settings.apply(&rc, &self.config.allocation);
                }
            }
        }
        if changed {
            self.update_allocation(conference);
        }
    }

    /// What the peer bridge's receivers asked of a local source on relay
    /// `relay` (`AddReceiver`'s `maxHeight`), for tests and debug.
    pub fn relay_receiver_height(
        &self,
        conference: &str,
        relay: &str,
        source: &str,
    ) -> Option<i64> {
        self.relay_channels
            .wanted
            .get(&(conference.to_string(), relay.to_string()))
            .and_then(|w| w.get(source))
            .copied()
    }
}

fn source_video_type(source: &str, video_type: &str) -> String {
    json!({
        "colibriClass": "SourceVideoTypeMessage",
        "sourceName": source,
        "videoType": video_type,
    })
    .to_string()
}
