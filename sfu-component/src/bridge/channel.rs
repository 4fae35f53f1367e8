//! The bridge's side of each endpoint's bridge channel (colibri-ws): accept
//! with the endpoint's password, ServerHello, relay endpoint messages and
//! stats, store what receivers ask for.

use std::time::Instant;

use super::Bridge;
use super::relay_channel::relay_of;
use crate::allocation;
use crate::channel::{ClientMessage, outgoing, parse_client_message};

/// Why a bridge channel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelRefused {
    #[error("no conference {0}")]
    UnknownConference(String),
    #[error("no endpoint {0}")]
    UnknownEndpoint(String),
    #[error("wrong password")]
    BadPassword,
}

impl Bridge {
    /// A WebSocket arrived for `/colibri-ws/<bridge>/<conference>/<endpoint>?pwd=`.
    /// On success the channel is open and ServerHello (then the current
    /// forwarding and dominant speaker) is queued for it. A second channel
    /// for the same endpoint replaces the first.
    pub fn handle_channel_open(
        &mut self,
        now: Instant,
        conference: &str,
        endpoint: &str,
        pwd: &str,
    ) -> Result<(), ChannelRefused> {
        self.last_now = Some(now);
        if let Some(relay) = relay_of(endpoint) {
            return self.accept_relay_channel(conference, relay, pwd);
        }
        let conf = self
            .conferences
            .get_mut(conference)
            .ok_or_else(|| ChannelRefused::UnknownConference(conference.to_string()))?;
        let speakers = conf.speakers.clone();
        let silence = conf.silence;
        let ep = conf
            .endpoints
            .get_mut(endpoint)
            .ok_or_else(|| ChannelRefused::UnknownEndpoint(endpoint.to_string()))?;
        if !constant_time_eq(ep.pwd.as_bytes(), pwd.as_bytes()) {
            return Err(ChannelRefused::BadPassword);
        }
        ep.channel_open = true;
        // A new channel has been told nothing yet.
        ep.sent_forwarded = None;
        ep.sent_last_n.clear();
        ep.sent_sender_constraints.clear();
        tracing::debug!(%conference, %endpoint, "bridge channel open");
        let hello = outgoing::server_hello(Some(&self.config.version));
        self.send_channel(conference, endpoint, hello);
        if let Some((speaker, previous)) = speakers.split_first() {
            let m = outgoing::dominant_speaker(speaker, previous, silence);
            self.send_channel(conference, endpoint, m);
        }
        self.update_allocation(conference);
        Ok(())
    }

    /// The endpoint's channel closed (the endpoint itself stays: it may
    /// reconnect, as with Videobridge).
    pub fn handle_channel_close(&mut self, now: Instant, conference: &str, endpoint: &str) {
        self.last_now = Some(now);
        if let Some(relay) = relay_of(endpoint) {
            self.relay_channel_closed(conference, relay);
            return;
        }
        if let Some(ep) = self
            .conferences
            .get_mut(conference)
            .and_then(|c| c.endpoints.get_mut(endpoint))
        {
            ep.channel_open = false;
        }
    }

    /// A text message on an endpoint's open channel. Unknown, malformed or
    /// oversized messages are counted and ignored.
    pub fn handle_channel_message(
        &mut self,
        now: Instant,
        conference: &str,
        endpoint: &str,
        text: &str,
    ) {
        self.last_now = Some(now);
        if let Some(relay) = relay_of(endpoint) {
            self.handle_relay_message(conference, relay, text);
            return;
        }
        let open = self
            .conferences
            .get(conference)
            .and_then(|c| c.endpoints.get(endpoint))
            .is_some_and(|e| e.channel_open);
        if !open {
            return;
        }
        self.counters.channel_messages_received += 1;
        let message = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%conference, %endpoint, error = %e, "bridge channel message ignored");
                self.counters.channel_messages_dropped += 1;
                return;
            }
        };
        *self
            .counters
            .channel_messages_by_class
            .entry(message.class().to_string())
            .or_default() += 1;
        self.apply_channel_message(conference, endpoint, message);
    }

    fn apply_channel_message(&mut self, conference: &str, endpoint: &str, message: ClientMessage) {
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        // Targets with an open channel, other than the sender.
        let others: Vec<String> = conf
            .endpoints
            .values()
            .filter(|e| e.channel_open && e.id != endpoint)
            .map(|e| e.id.clone())
            .collect();
        let Some(ep) = conf.endpoints.get_mut(endpoint) else {
            return;
        };
        let mut reallocate = false;
        match message {
            ClientMessage::ClientHello => {
                let hello = outgoing::server_hello(Some(&self.config.version));
                self.send_channel(conference, endpoint, hello);
            }
            ClientMessage::EndpointMessage { to, fields } => {
                let relayed = outgoing::endpoint_message(&to, endpoint, &fields);
                self.relay_endpoint_message(conference, &to, &relayed);
                if to.is_empty() {
                    for t in others {
                        self.send_channel(conference, &t, relayed.clone());
                    }
                } else if others.contains(&to) {
                    self.send_channel(conference, &to, relayed);
                } else {
                    tracing::debug!(%conference, %endpoint, %to, "endpoint message for an unknown endpoint");
                }
            }
            ClientMessage::EndpointStats { fields } => {
                let relayed = outgoing::endpoint_stats(endpoint, &fields);
                let targets: Vec<String> = others
                    .into_iter()
                    .filter(|t| {
                        self.conferences.get(conference).is_some_and(|c| {
                            c.endpoints
                                .get(t)
                                .is_some_and(|r| allocation::wants_stats_from(c, r, endpoint))
                        })
                    })
                    .collect();
                for t in targets {
                    self.send_channel(conference, &t, relayed.clone());
                }
            }
            ClientMessage::LastN(n) => {
                reallocate = ep.allocation.settings.set_last_n(n);
            }
            ClientMessage::ReceiverVideoConstraints(rc) => {
                reallocate = ep.allocation.settings.apply(&rc, &self.config.allocation);
            }
            ClientMessage::ReceiverVideoConstraint { max_frame_height } => {
                reallocate = ep
                    .allocation
                    .settings
                    .set_legacy_max_frame_height(max_frame_height, &self.config.allocation);
            }
            ClientMessage::SelectedEndpoints(list) | ClientMessage::PinnedEndpoints(list) => {
                reallocate = ep
                    .allocation
                    .settings
                    .set_legacy_selected(list, &self.config.allocation);
            }
            ClientMessage::SourceVideoType {
                source_name,
                video_type,
            } => {
                reallocate = ep
                    .video_types
                    .insert(source_name.clone(), video_type.clone())
                    != Some(video_type.clone());
                if reallocate {
                    self.relay_video_type(conference, &source_name, &video_type);
                }
            }
            ClientMessage::VideoType { video_type } => {
                let id = ep.id.clone();
                let names: Vec<String> = ep
                    .video_sources()
                    .enumerate()
                    .map(|(i, s)| crate::allocation::source::video_source_name(&id, i, &s.name))
                    .collect();
                for n in names {
                    reallocate |=
                        ep.video_types.insert(n, video_type.clone()) != Some(video_type.clone());
                }
            }
            ClientMessage::ReceiverAudioSubscription(sub) => {
                ep.audio_subscription = sub.clone();
                self.set_audio_subscription(conference, endpoint, &sub);
            }
        }
        if reallocate {
            self.update_allocation(conference);
        }
    }

    /// Endpoints with an open channel in `conference` (for the runtime).
    pub fn open_channels(&self, conference: &str) -> Vec<String> {
        self.conferences
            .get(conference)
            .map(|c| {
                c.endpoints
                    .values()
                    .filter(|e| e.channel_open)
                    .map(|e| e.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
