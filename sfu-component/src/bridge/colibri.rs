//! The bridge's handling of a Colibri2 `conference-modify`, in the order
//! Videobridge's `Colibri2ConferenceHandler` applies it.

use std::collections::HashSet;
use std::time::Instant;

use xmpp_core::Element;

use super::{Bridge, random_hex, random_ssrc};
use crate::colibri2::{
    Colibri2Error, ConferenceModify, EndpointAnswer, EndpointRequest,
    conference_modified_with_relays, feedback_sources, parse_conference_modify,
};
use crate::conference::{Conference, Endpoint};
use crate::media::MediaError;

pub(super) fn media_error(e: MediaError) -> Colibri2Error {
    match e {
        MediaError::EndpointExists(id) => Colibri2Error::EndpointExists(id),
        MediaError::UnknownEndpoint(id) => Colibri2Error::UnknownEndpoint(id),
        MediaError::SsrcConflict { ssrc, owner } => {
            Colibri2Error::BadRequest(format!("SSRC {ssrc} is already used by endpoint {owner}"))
        }
        MediaError::InvalidSources(r) => Colibri2Error::BadRequest(r),
        MediaError::UnknownConference(c) => Colibri2Error::Internal(format!("no media for {c}")),
        MediaError::Rtc(r) => Colibri2Error::Internal(r),
    }
}

impl Bridge {
    /// Answers `<conference-modify>` (`cm`, the child of `iq`).
    pub(super) fn handle_conference_modify(
        &mut self,
        now: Instant,
        iq: &Element,
        cm: &Element,
    ) -> Element {
        let request = match parse_conference_modify(cm) {
            Ok(r) => r,
            Err(e) => return e.reply_to(iq),
        };
        let created_here = request.create;
        match self.apply_conference_modify(now, iq, &request) {
            Ok(reply) => reply,
            Err((conference, e)) => {
                tracing::warn!(meeting_id = %request.meeting_id, error = %e, "conference-modify refused");
                if created_here && let Some(id) = conference {
                    // Nothing of a conference this request made stays.
                    self.expire_if_empty(&id);
                }
                e.reply_to(iq)
            }
        }
    }

    fn apply_conference_modify(
        &mut self,
        now: Instant,
        iq: &Element,
        request: &ConferenceModify,
    ) -> Result<Element, (Option<String>, Colibri2Error)> {
        let existing = self.by_meeting_id.get(&request.meeting_id).cloned();
        let conference = if request.create {
            if existing.is_some() {
                return Err((
                    None,
                    Colibri2Error::ConferenceAlreadyExists(request.meeting_id.clone()),
                ));
            }
            if self.graceful_shutdown {
                return Err((None, Colibri2Error::GracefulShutdown));
            }
            self.create_conference(now, request)
        } else {
            match existing {
                Some(id) => id,
                None => {
                    return Err((
                        None,
                        Colibri2Error::ConferenceNotFound(request.meeting_id.clone()),
                    ));
                }
            }
        };
        let fail = |e| (Some(conference.clone()), e);
        let mut answers = Vec::new();
        for ep in &request.endpoints {
            answers.push(self.apply_endpoint(now, &conference, ep).map_err(fail)?);
        }
        let mut relays = Vec::new();
        for relay in &request.relays {
            relays.push(self.apply_relay(now, &conference, relay).map_err(fail)?);
        }
        let any_created = request.create || request.endpoints.iter().any(|e| e.create);
        let feedback = if any_created {
            self.conferences
                .get(&conference)
                .map(|c| c.feedback_sources.clone())
        } else {
            None
        };
        let reply = conference_modified_with_relays(iq, &answers, &relays, feedback.as_deref());
        if request.expire {
            tracing::info!(%conference, "focus expired the conference");
            self.expire_conference(&conference);
        } else if !request.create {
            self.expire_if_empty(&conference);
        }
        self.update_allocation(&conference);
        Ok(reply)
    }

    fn create_conference(&mut self, now: Instant, request: &ConferenceModify) -> String {
        let mut id = random_hex(16);
        while self.conferences.contains_key(&id) {
            id = random_hex(16);
        }
        let mut conf = Conference::new(
            id.clone(),
            request.meeting_id.clone(),
            request.name.clone(),
            now,
        );
        let audio = random_ssrc();
        let mut video = random_ssrc();
        while video == audio {
            video = random_ssrc();
        }
        conf.feedback_sources = feedback_sources(audio, video);
        tracing::info!(conference = %id, meeting_id = %request.meeting_id, name = ?request.name, "conference created");
        self.conferences.insert(id.clone(), conf);
        self.by_meeting_id
            .insert(request.meeting_id.clone(), id.clone());
        self.counters.conferences_created += 1;
        id
    }

    pub(super) fn web_socket_url(&self, conference: &str, endpoint: &str, pwd: &str) -> String {
        format!(
            "{}/{}/{}/{}?pwd={}",
            self.config.ws_url_base, self.config.bridge_id, conference, endpoint, pwd
        )
    }

    fn apply_endpoint(
        &mut self,
        now: Instant,
        conference: &str,
        req: &EndpointRequest,
    ) -> Result<EndpointAnswer, Colibri2Error> {
        let mut answer = EndpointAnswer {
            id: req.id.clone(),
            ..Default::default()
        };
        if super::relay_channel::relay_of(&req.id).is_some() {
            // The media core keys relays so.
            return Err(Colibri2Error::BadRequest(format!(
                "Endpoint ID {} is reserved for relays",
                req.id
            )));
        }
        if req.expire {
            self.remove_endpoint(conference, &req.id);
            answer.expire = true;
            return Ok(answer);
        }
        let relayed = self
            .conferences
            .get(conference)
            .and_then(|c| c.endpoints.get(&req.id))
            .is_some_and(|e| e.relay.is_some());
        if req.create && relayed {
            // An endpoint moved here from a peer bridge (that bridge
            // failed): it is local from now on.
            tracing::info!(%conference, endpoint = %req.id, "relayed endpoint moved to this bridge");
            self.remove_relayed_endpoint(conference, &req.id);
        }
        let exists = self
            .conferences
            .get(conference)
            .is_some_and(|c| c.endpoints.contains_key(&req.id));
        if req.create {
            if exists {
                return Err(Colibri2Error::EndpointExists(req.id.clone()));
            }
            let Some(transport) = &req.transport else {
                return Err(Colibri2Error::BadRequest(format!(
                    "Attempt to create endpoint {} with no <transport>",
                    req.id
                )));
            };
            if transport.sctp {
                return Err(Colibri2Error::FeatureNotImplemented(
                    "SCTP support is not configured".into(),
                ));
            }
            let mut local = self
                .media
                .create_endpoint(now, conference, &req.id, transport.ice_controlling)
                .map_err(media_error)?;
            local.web_socket = Some(self.web_socket_url(conference, &req.id, &local.pwd));
            let mut ep =
                Endpoint::with_config(req.id.clone(), local.pwd.clone(), &self.config.allocation);
            ep.stats_id = req.stats_id.clone();
            ep.source_names = req.has_capability("source-names");
            if let Some(conf) = self.conferences.get_mut(conference) {
                conf.add_endpoint(ep);
                conf.empty_since = None;
            }
            self.counters.participants_created += 1;
            answer.transport = Some(local);
        } else if !exists {
            return Err(Colibri2Error::UnknownEndpoint(req.id.clone()));
        }
        if let Some(role) = &req.muc_role
            && let Some(ep) = self.endpoint_mut(conference, &req.id)
        {
            ep.visitor = role == "visitor";
        }
        if !req.media.is_empty() {
            self.media
                .set_media(conference, &req.id, &req.media)
                .map_err(media_error)?;
        }
        if let Some(remote) = req.transport.as_ref().and_then(|t| t.remote.as_ref()) {
            self.media
                .set_remote_transport(now, conference, &req.id, remote)
                .map_err(media_error)?;
        }
        if let Some(sources) = &req.sources {
            self.check_sources(conference, req, sources)?;
            self.media
                .set_sources(conference, &req.id, sources)
                .map_err(media_error)?;
            if let Some(ep) = self.endpoint_mut(conference, &req.id) {
                ep.sources = sources.clone();
            }
        }
        if let Some((audio, video)) = req.force_mute {
            self.media
                .force_mute(conference, &req.id, audio, video)
                .map_err(media_error)?;
            if let Some(ep) = self.endpoint_mut(conference, &req.id) {
                ep.force_mute = (audio, video);
            }
        }
        if let Some(n) = req.initial_last_n
            && let Some(ep) = self.endpoint_mut(conference, &req.id)
        {
            ep.allocation.settings.set_last_n(n);
        }
        Ok(answer)
    }

    /// Refuses sources a visitor may not send, an SSRC given twice, or an
    /// SSRC another endpoint of the conference already signalled.
    pub(super) fn check_sources(
        &self,
        conference: &str,
        req: &EndpointRequest,
        sources: &[media_signalling::Source],
    ) -> Result<(), Colibri2Error> {
        let Some(conf) = self.conferences.get(conference) else {
            return Ok(());
        };
        if conf.endpoints.get(&req.id).is_some_and(|e| e.visitor) && !sources.is_empty() {
            return Err(Colibri2Error::BadRequest(format!(
                "Attempt to set sources for visitor endpoint {}",
                req.id
            )));
        }
        let mut seen = HashSet::new();
        for s in sources {
            for ssrc in &s.ssrcs {
                if !seen.insert(*ssrc) {
                    return Err(Colibri2Error::BadRequest(format!(
                        "SSRC {ssrc} is signalled twice by endpoint {}",
                        req.id
                    )));
                }
                if let Some(owner) = conf.ssrc_owner(*ssrc, &req.id) {
                    return Err(Colibri2Error::BadRequest(format!(
                        "SSRC {ssrc} is already used by endpoint {owner}"
                    )));
                }
            }
            for g in &s.groups {
                if let Some(missing) = g.ssrcs.iter().find(|x| !s.ssrcs.contains(x)) {
                    return Err(Colibri2Error::BadRequest(format!(
                        "ssrc-group {} names SSRC {missing} that the source lacks",
                        g.semantics
                    )));
                }
            }
        }
        Ok(())
    }

    pub(super) fn endpoint_mut(
        &mut self,
        conference: &str,
        endpoint: &str,
    ) -> Option<&mut Endpoint> {
        self.conferences
            .get_mut(conference)?
            .endpoints
            .get_mut(endpoint)
    }
}
