//! Muting: `<mute>` / `<mute-video>` / `<mute-desktop>` IQs (sent to the
//! focus's occupant JID) and AV moderation, as Jicofo's `MuteIqHandler` and
//! `AvModerationHandler` do it.
//!
//! A moderator may mute anyone; anyone may mute themselves; only the
//! participant may unmute itself, and under AV moderation only when
//! whitelisted (or a moderator). A mute is forced at the bridge
//! (`<force-mute>` on the endpoint) and told to the participant with a
//! `<mute actor>` IQ. When the av_moderation component tells the room that
//! moderation started, every participant who is neither a moderator nor
//! whitelisted is force-muted for that media type.

use std::time::Instant;

use serde_json::Value;
use xmpp_core::{Element, StanzaError};

use crate::colibri;
use crate::focus::{Focus, Pending};
use crate::ns;
use crate::participant::Allocation;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Media {
    Audio,
    Video,
}

impl Focus {
    pub(crate) fn on_mute_iq(&mut self, now: Instant, iq: &Element) {
        let Some(payload) = iq.first_child() else {
            return;
        };
        let media = if payload.ns() == ns::MUTE_AUDIO {
            Media::Audio
        } else {
            Media::Video
        };
        let from = iq.from().unwrap_or("");
        let (room, actor_nick) = from.split_once('/').unwrap_or((from, ""));
        let room = room.to_lowercase();
        let target = payload.get_attr("jid").unwrap_or("");
        let target_nick = target.split_once('/').map(|(_, n)| n).unwrap_or(target);
        let mute = match payload.text_content().trim() {
            "true" => true,
            "false" => false,
            _ => {
                self.reply_error(iq, StanzaError::bad_request());
                return;
            }
        };
        let Some(c) = self.conferences.get_mut(&room) else {
            self.reply_error(iq, StanzaError::item_not_found());
            return;
        };
        let Some(actor) = c.participants.get(actor_nick) else {
            self.reply_error(iq, StanzaError::forbidden());
            return;
        };
        let actor_moderator = actor.is_moderator() || actor.granted_owner;
        let whitelisted = {
            let list = match media {
                Media::Audio => &c.av_moderation.audio_whitelist,
                Media::Video => &c.av_moderation.video_whitelist,
            };
            let enabled = match media {
                Media::Audio => c.av_moderation.audio_enabled,
                Media::Video => c.av_moderation.video_enabled,
            };
            !enabled
                || list
                    .iter()
                    .any(|j| j == from || j.ends_with(&format!("/{actor_nick}")))
        };
        if !c.participants.contains_key(target_nick) {
            self.reply_error(iq, StanzaError::item_not_found());
            return;
        }
        let myself = target_nick == actor_nick;
        let allowed = if mute {
            myself || actor_moderator
        } else {
            myself && (actor_moderator || whitelisted)
        };
        if !allowed {
            self.reply_error(iq, StanzaError::not_allowed());
            return;
        }
        self.send(iq.reply());
        self.force_mute(now, &room, target_nick, media, mute);
        if !myself {
            let target_jid = c_occupant(&room, target_nick);
            let (name, namespace) = match media {
                Media::Audio => ("mute", ns::MUTE_AUDIO),
                Media::Video => ("mute-video", ns::MUTE_VIDEO),
            };
            let id = self.id();
            let notify = Element::new("iq", ns::CLIENT)
                .attr("to", target_jid)
                .attr("type", "set")
                .attr("id", id)
                .child(
                    Element::new(name, namespace)
                        .attr("actor", from)
                        .text(mute.to_string()),
                );
            self.request(now, notify, Pending::Other);
        }
        self.counters.mutes += 1;
    }

    fn force_mute(&mut self, now: Instant, room: &str, nick: &str, media: Media, mute: bool) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let Some(p) = c.participants.get_mut(nick) else {
            return;
        };
        match media {
            Media::Audio => p.force_muted_audio = mute,
            Media::Video => p.force_muted_video = mute,
        }
        let (audio, video) = (p.force_muted_audio, p.force_muted_video);
        let Allocation::Allocated { bridge, .. } = &p.allocation else {
            return;
        };
        let (bridge, meeting_id) = (bridge.clone(), c.meeting_id.clone());
        let id = self.id();
        let iq = colibri::conference_modify(
            &bridge,
            &id,
            &meeting_id,
            room,
            false,
            vec![colibri::endpoint_force_mute(nick, audio, video)],
        );
        self.request(now, iq, Pending::Other);
    }

    /// Messages: the av_moderation component's `json-message`s.
    pub(crate) fn on_message(&mut self, now: Instant, message: &Element) {
        let Some(body) = message.get_child("json-message", ns::JITMEET) else {
            return;
        };
        let Ok(json) = serde_json::from_str::<Value>(&body.text_content()) else {
            return;
        };
        if json.get("type").and_then(Value::as_str) != Some("av_moderation") {
            return;
        }
        let Some(room) = json.get("room").and_then(Value::as_str) else {
            return;
        };
        let room = room.to_lowercase();
        let Some(c) = self.conferences.get_mut(&room) else {
            return;
        };
        let mut newly_enabled = Vec::new();
        if let (Some(enabled), Some(media)) = (
            json.get("enabled").and_then(Value::as_bool),
            json.get("mediaType").and_then(Value::as_str),
        ) {
            let slot = match media {
                "audio" => Some(&mut c.av_moderation.audio_enabled),
                "video" => Some(&mut c.av_moderation.video_enabled),
                _ => None,
            };
            if let Some(slot) = slot {
                if enabled && !*slot {
                    newly_enabled.push(if media == "audio" {
                        Media::Audio
                    } else {
                        Media::Video
                    });
                }
                *slot = enabled;
            }
        }
        if let Some(lists) = json.get("whitelists").and_then(Value::as_object) {
            let read = |m: &str| -> Vec<String> {
                lists
                    .get(m)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            c.av_moderation.audio_whitelist = read("audio");
            c.av_moderation.video_whitelist = read("video");
        }
        let targets: Vec<String> = c
            .participants
            .values()
            .filter(|p| !(p.is_moderator() || p.granted_owner))
            .map(|p| p.endpoint_id.clone())
            .collect();
        for media in newly_enabled {
            for nick in &targets {
                self.force_mute(now, &room, nick, media, true);
            }
        }
    }

    /// A newcomer to a moderated room starts force-muted.
    pub(crate) fn apply_av_moderation_to(&mut self, _now: Instant, room: &str, nick: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let (audio, video) = (c.av_moderation.audio_enabled, c.av_moderation.video_enabled);
        if let Some(p) = c.participants.get_mut(nick)
            && !(p.is_moderator() || p.granted_owner)
        {
            p.force_muted_audio |= audio;
            p.force_muted_video |= video;
        }
    }
}

fn c_occupant(room: &str, nick: &str) -> String {
    format!("{room}/{nick}")
}
