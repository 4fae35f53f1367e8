//! Relays in the media core: the link to a peer bridge of the same
//! conference is an [`Endpoint`] flagged `relay`, keyed [`relay_key`], with
//! its own str0m `Rtc` (ICE with the role the focus gave, DTLS client or
//! server as the focus forced it, SRTP), demultiplexed on the shared port
//! by its ICE ufrag like any endpoint.
//!
//! What differs from an endpoint (`streams.rs`, `route.rs`):
//! - it *sends* the media of the peer bridge's endpoints (the relayed
//!   endpoints): their SSRCs are `StreamRx`s on the relay's `Rtc`, owned in
//!   `Conference::ssrcs` by the relayed endpoint with `via` the relay, so
//!   dominant speaker, allocation and keyframe requests see the real
//!   sender; a keyframe request for one goes out on the relay as a PLI;
//! - it *receives* every layer of every local endpoint's sources on the
//!   original SSRCs, sequence numbers and timestamps (the peer bridge
//!   chooses layers for its own receivers); a PLI from the peer reaches the
//!   sender of that layer;
//! - nothing goes from one relay to another.

use std::time::Instant;

use media_signalling::{IceTransport, MediaDescription, Source};

use super::conference::Conference;
use super::{MediaCore, MediaError};

/// The key of relay `relay_id` among a conference's endpoints.
pub fn relay_key(relay_id: &str) -> String {
    format!("relay:{relay_id}")
}

impl Conference {
    /// A relay's sources are the union of its relayed endpoints'.
    pub(super) fn refresh_relay_sources(&mut self, relay: &str) {
        let mut ids: Vec<&String> = self
            .relayed
            .iter()
            .filter(|(_, (r, _))| r == relay)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        let sources: Vec<Source> = ids
            .into_iter()
            .filter_map(|id| self.relayed.get(id))
            .flat_map(|(_, s)| s.iter().cloned())
            .collect();
        if let Some(e) = self.endpoints.get_mut(relay) {
            e.sources = sources;
        }
    }
}

impl MediaCore {
    /// Creates the relay to the peer bridge `relay_id`; returns the
    /// bridge's transport for it (as [`MediaCore::create_endpoint`]).
    pub fn create_relay(
        &mut self,
        now: Instant,
        conference: &str,
        relay_id: &str,
        ice_controlling: bool,
    ) -> Result<IceTransport, MediaError> {
        let key = relay_key(relay_id);
        let transport = self.create_endpoint(now, conference, &key, ice_controlling)?;
        if let Some(e) = self
            .conferences
            .get_mut(conference)
            .and_then(|c| c.endpoints.get_mut(&key))
        {
            e.relay = true;
            // A relay is not timed out for silence before it connects.
        }
        Ok(transport)
    }

    pub fn has_relay(&self, conference: &str, relay_id: &str) -> bool {
        self.conferences
            .get(conference)
            .is_some_and(|c| c.endpoints.contains_key(&relay_key(relay_id)))
    }

    /// Whether the relay's ICE and DTLS are up.
    pub fn relay_connected(&self, conference: &str, relay_id: &str) -> bool {
        self.conferences
            .get(conference)
            .and_then(|c| c.endpoints.get(&relay_key(relay_id)))
            .is_some_and(|e| e.connected)
    }

    /// The relay's payload types and header extensions (`<media>`).
    pub fn set_relay_media(
        &mut self,
        conference: &str,
        relay_id: &str,
        media: &[MediaDescription],
    ) -> Result<(), MediaError> {
        self.set_media(conference, &relay_key(relay_id), media)
    }

    /// The peer bridge's transport; `dtls_active`: this bridge is the DTLS
    /// client (the focus set `setup='active'`). Starts ICE and DTLS.
    pub fn set_relay_transport(
        &mut self,
        now: Instant,
        conference: &str,
        relay_id: &str,
        transport: &IceTransport,
        dtls_active: bool,
    ) -> Result<(), MediaError> {
        let key = relay_key(relay_id);
        if let Some(e) = self
            .conferences
            .get_mut(conference)
            .and_then(|c| c.endpoints.get_mut(&key))
            && e.rtc.is_none()
        {
            e.dtls_active = dtls_active;
        }
        self.set_remote_transport(now, conference, &key, transport)
    }

    /// Sets (or creates) the sources of `endpoint` of the peer bridge
    /// behind relay `relay_id`.
    pub fn set_relayed_sources(
        &mut self,
        conference: &str,
        relay_id: &str,
        endpoint: &str,
        sources: &[Source],
    ) -> Result<(), MediaError> {
        let key = relay_key(relay_id);
        let conf = self
            .conferences
            .get_mut(conference)
            .ok_or_else(|| MediaError::UnknownConference(conference.to_string()))?;
        if conf.endpoints.contains_key(endpoint) {
            return Err(MediaError::EndpointExists(endpoint.to_string()));
        }
        conf.apply_sources(endpoint, Some(&key), sources)
    }

    /// A relayed endpoint left the peer bridge: its streams stop.
    pub fn remove_relayed_endpoint(&mut self, conference: &str, endpoint: &str) {
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        let Some((relay, _)) = conf.relayed.remove(endpoint) else {
            return;
        };
        conf.ssrcs.retain(|_, i| i.owner != endpoint);
        let ssrcs = &conf.ssrcs;
        conf.video.retain(|visible, _| ssrcs.contains_key(visible));
        conf.keyframe_requested
            .retain(|ssrc, _| ssrcs.contains_key(ssrc));
        conf.speaker.remove(endpoint);
        conf.refresh_relay_sources(&relay);
        conf.declare_all_streams();
    }

    /// The relayed endpoints of a conference (all relays), sorted.
    pub fn relayed_endpoints(&self, conference: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .conferences
            .get(conference)
            .map(|c| c.relayed.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The video sources (names) the peer bridge's receivers want through
    /// relay `relay_id`; `None`: all (before the peer said anything).
    pub fn set_relay_wanted(
        &mut self,
        conference: &str,
        relay_id: &str,
        sources: Option<std::collections::HashSet<String>>,
    ) {
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        let key = relay_key(relay_id);
        match sources {
            Some(s) => conf.relay_wanted.insert(key, s),
            None => conf.relay_wanted.remove(&key),
        };
    }

    /// Removes the relay and everything behind it.
    pub fn expire_relay(&mut self, conference: &str, relay_id: &str) {
        self.expire_endpoint(conference, &relay_key(relay_id));
    }
}

impl MediaCore {
    /// The ICE pwd of the bridge's side of a relay (also the `pwd` of its
    /// colibri-relay-ws URL).
    pub fn relay_pwd(&self, conference: &str, relay_id: &str) -> Option<&str> {
        self.conferences
            .get(conference)
            .and_then(|c| c.endpoints.get(&relay_key(relay_id)))
            .map(|e| e.pwd.as_str())
    }
}
