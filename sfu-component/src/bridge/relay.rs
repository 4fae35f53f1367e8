//! The bridge's handling of a Colibri2 `<relay>` (see [`crate::relay`]),
//! in the order Videobridge's `Colibri2ConferenceHandler` applies it:
//! expire, create (or find), transport, media, relayed endpoints.

use std::time::Instant;

use super::Bridge;
use super::colibri::media_error;
use crate::colibri2::{Colibri2Error, EndpointRequest};
use crate::conference::Endpoint;
use crate::relay::{RelayAnswer, RelayRequest};

impl Bridge {
    pub(super) fn apply_relay(
        &mut self,
        now: Instant,
        conference: &str,
        req: &RelayRequest,
    ) -> Result<RelayAnswer, Colibri2Error> {
        let mut answer = RelayAnswer {
            id: req.id.clone(),
            ..Default::default()
        };
        if req.expire {
            self.expire_relay(conference, &req.id);
            answer.expire = true;
            return Ok(answer);
        }
        let exists = self.media.has_relay(conference, &req.id);
        if req.create {
            if exists {
                return Err(Colibri2Error::Conflict(format!(
                    "Relay with ID {} already exists",
                    req.id
                )));
            }
            let Some(transport) = &req.transport else {
                return Err(Colibri2Error::BadRequest(format!(
                    "Attempt to create relay {} with no <transport>",
                    req.id
                )));
            };
            if transport.sctp {
                return Err(Colibri2Error::FeatureNotImplemented(
                    "SCTP is not supported for relays.".into(),
                ));
            }
            let mut local = self
                .media
                .create_relay(now, conference, &req.id, transport.ice_controlling)
                .map_err(media_error)?;
            local.web_socket = Some(self.relay_web_socket_url(conference, &req.id, &local.pwd));
            tracing::info!(%conference, relay = %req.id, mesh_id = ?req.mesh_id, "relay created");
            answer.transport = Some(local);
        } else if !exists {
            return Err(Colibri2Error::BadRequest(format!(
                "Unknown relay {}",
                req.id
            )));
        }
        if let Some(transport) = &req.transport {
            if transport.sctp {
                return Err(Colibri2Error::FeatureNotImplemented(
                    "SCTP is not supported for relays.".into(),
                ));
            }
            if let Some(remote) = &transport.remote {
                let dtls_active = transport.dtls_active().unwrap_or(false);
                if let Some(url) = &remote.web_socket {
                    // This side connects the relay bridge channel.
                    self.connect_relay_channel(conference, &req.id, url);
                }
                self.media
                    .set_relay_transport(now, conference, &req.id, remote, dtls_active)
                    .map_err(media_error)?;
            }
        }
        if !req.media.is_empty() {
            self.media
                .set_relay_media(conference, &req.id, &req.media)
                .map_err(media_error)?;
        }
        for ep in &req.endpoints {
            self.apply_relayed_endpoint(conference, &req.id, ep)?;
        }
        Ok(answer)
    }

    fn apply_relayed_endpoint(
        &mut self,
        conference: &str,
        relay: &str,
        req: &EndpointRequest,
    ) -> Result<(), Colibri2Error> {
        if req.expire {
            self.remove_relayed_endpoint(conference, &req.id);
            return Ok(());
        }
        let known = self
            .conferences
            .get(conference)
            .and_then(|c| c.endpoints.get(&req.id))
            .map(|e| e.relay.as_deref() == Some(relay));
        match known {
            Some(false) => return Err(Colibri2Error::EndpointExists(req.id.clone())),
            None if !req.create => {
                return Err(Colibri2Error::UnknownEndpoint(req.id.clone()));
            }
            None => {
                let mut ep =
                    Endpoint::with_config(req.id.clone(), String::new(), &self.config.allocation);
                ep.relay = Some(relay.to_string());
                ep.stats_id = req.stats_id.clone();
                ep.source_names = true;
                if let Some(conf) = self.conferences.get_mut(conference) {
                    conf.add_endpoint(ep);
                    conf.empty_since = None;
                }
                self.apply_relay_wants(conference);
            }
            Some(true) => {}
        }
        let sources = req.sources.clone().unwrap_or_default();
        if req.sources.is_some() || req.create {
            self.check_sources(conference, req, &sources)?;
            self.media
                .set_relayed_sources(conference, relay, &req.id, &sources)
                .map_err(media_error)?;
            if let Some(ep) = self.endpoint_mut(conference, &req.id) {
                ep.sources = sources;
            }
        }
        Ok(())
    }

    /// A relayed endpoint left its bridge.
    pub(super) fn remove_relayed_endpoint(&mut self, conference: &str, endpoint: &str) {
        self.media.remove_relayed_endpoint(conference, endpoint);
        if let Some(conf) = self.conferences.get_mut(conference)
            && conf
                .endpoints
                .get(endpoint)
                .is_some_and(|e| e.relay.is_some())
        {
            conf.endpoints.remove(endpoint);
            if conf.endpoints.is_empty() {
                conf.empty_since = self.last_now;
            }
        }
        self.update_allocation(conference);
    }

    /// Removes a relay and its relayed endpoints (unknown: nothing).
    pub(super) fn expire_relay(&mut self, conference: &str, relay: &str) {
        self.media.expire_relay(conference, relay);
        self.forget_relay_channel(conference, relay);
        let behind: Vec<String> = self
            .conferences
            .get(conference)
            .map(|c| {
                c.endpoints
                    .values()
                    .filter(|e| e.relay.as_deref() == Some(relay))
                    .map(|e| e.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for id in behind {
            self.remove_relayed_endpoint(conference, &id);
        }
        tracing::info!(%conference, %relay, "relay expired");
    }

    /// `…/colibri-relay-ws/<bridge-id>/<conference>/<relay-id>?pwd=…`
    /// (Videobridge's relay bridge-channel URL, beside colibri-ws).
    fn relay_web_socket_url(&self, conference: &str, relay: &str, pwd: &str) -> String {
        let base = &self.config.ws_url_base;
        let base = match base.strip_suffix("colibri-ws") {
            Some(prefix) => format!("{prefix}colibri-relay-ws"),
            None => format!("{base}/colibri-relay-ws"),
        };
        format!(
            "{}/{}/{}/{}?pwd={}",
            base, self.config.bridge_id, conference, relay, pwd
        )
    }
}

impl Bridge {
    /// Whether the relay to `relay_id` in conference `conference` (its
    /// id, not the meeting-id) has ICE and DTLS up.
    pub fn relay_connected(&self, conference: &str, relay_id: &str) -> bool {
        self.media.relay_connected(conference, relay_id)
    }

    /// The endpoints of peer bridges in a conference, sorted.
    pub fn relayed_endpoints(&self, conference: &str) -> Vec<String> {
        self.media.relayed_endpoints(conference)
    }
}
