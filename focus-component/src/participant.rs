//! A participant of a conference as the focus sees it: an occupant of the
//! room other than the focus, with what its presence says (stats-id,
//! region, audio/video mute, SourceInfo, features) and the focus's state for
//! it (disco features, Jingle session, bridge allocation, signalled sources).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use media_signalling::Source;
use xmpp_core::Element;

use crate::codecs::OfferOptions;
use crate::ns;
use crate::restart::RestartRequests;

/// The Jingle session with a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JingleSession {
    pub sid: String,
    /// session-accept (or transport-accept) received.
    pub active: bool,
    /// The `bridge-session` id sent with the offer.
    pub bridge_session_id: String,
}

/// Where the participant's endpoint stands on the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Nothing asked yet (or moved off a failed bridge).
    #[default]
    None,
    /// Waiting for a bridge to appear in the brewery.
    NoBridge,
    /// A Colibri2 request is out (or queued until the conference exists).
    Pending { bridge: String },
    /// The bridge answered with its transport.
    Allocated { bridge: String, transport: Element },
}

impl Allocation {
    pub fn bridge(&self) -> Option<&str> {
        match self {
            Allocation::Pending { bridge } | Allocation::Allocated { bridge, .. } => Some(bridge),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Participant {
    /// The MUC nick, which is the endpoint id on the bridge.
    pub endpoint_id: String,
    pub occupant_jid: String,
    pub real_jid: Option<String>,
    pub role: String,
    pub affiliation: String,
    pub joined_at: Instant,
    /// 1 for the first participant of the conference, 2 for the next...
    pub join_order: u64,
    /// Set once disco#info answered (or failed): the client's features.
    pub features: Option<BTreeSet<String>>,
    pub stats_id: Option<String>,
    pub region: Option<String>,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub source_info: Option<String>,
    pub session: Option<JingleSession>,
    pub allocation: Allocation,
    /// The participant's own transport (session-accept / transport-info).
    pub transport: Option<Element>,
    /// Sources already signalled to this participant, by owner (`jvb` for
    /// the bridge).
    pub signaled: BTreeMap<String, Vec<Source>>,
    /// When queued source changes are to be sent.
    pub flush_at: Option<Instant>,
    pub force_muted_audio: bool,
    pub force_muted_video: bool,
    /// A moderator grant was asked for.
    pub granted_owner: bool,
    /// Its accepted restart requests (ICE failure), for the rate limit.
    pub restart_requests: RestartRequests,
}

impl Participant {
    pub fn new(endpoint_id: &str, occupant_jid: &str, now: Instant) -> Participant {
        Participant {
            endpoint_id: endpoint_id.to_string(),
            occupant_jid: occupant_jid.to_string(),
            real_jid: None,
            role: "participant".into(),
            affiliation: "none".into(),
            joined_at: now,
            join_order: 0,
            features: None,
            stats_id: None,
            region: None,
            audio_muted: false,
            video_muted: false,
            source_info: None,
            session: None,
            allocation: Allocation::None,
            transport: None,
            signaled: BTreeMap::new(),
            flush_at: None,
            force_muted_audio: false,
            force_muted_video: false,
            granted_owner: false,
            restart_requests: RestartRequests::default(),
        }
    }

    /// Reads an available presence of the occupant.
    pub fn update_from_presence(&mut self, presence: &Element) {
        if let Some(item) = presence
            .get_child("x", ns::MUC_USER)
            .and_then(|x| x.get_child("item", ns::MUC_USER))
        {
            if let Some(jid) = item.get_attr("jid") {
                self.real_jid = Some(jid.to_string());
            }
            if let Some(role) = item.get_attr("role") {
                self.role = role.to_string();
            }
            if let Some(aff) = item.get_attr("affiliation") {
                self.affiliation = aff.to_string();
            }
        }
        for child in presence.children() {
            match child.name() {
                "stats-id" => self.stats_id = Some(child.text_content()),
                "jitsi_participant_region" => {
                    let text = child.text_content().trim().to_string();
                    if !text.is_empty() {
                        self.region = Some(text);
                    }
                }
                "region" => {
                    self.region = child
                        .get_attr("id")
                        .map(str::to_string)
                        .or_else(|| Some(child.text_content()).filter(|s| !s.is_empty()))
                }
                "audiomuted" => self.audio_muted = child.text_content().trim() == "true",
                "videomuted" => self.video_muted = child.text_content().trim() == "true",
                "SourceInfo" => self.source_info = Some(child.text_content()),
                "features" => {
                    let vars: BTreeSet<String> = child
                        .children()
                        .filter(|f| f.name() == "feature")
                        .filter_map(|f| f.get_attr("var").map(str::to_string))
                        .collect();
                    if !vars.is_empty() {
                        self.features = Some(vars);
                    }
                }
                _ => {}
            }
        }
    }

    pub fn has_feature(&self, var: &str) -> bool {
        self.features.as_ref().is_some_and(|f| f.contains(var))
    }

    pub fn supports_json_sources(&self) -> bool {
        self.has_feature(ns::FEATURE_JSON_SOURCES)
    }

    /// The offer options Jicofo derives from the client's features; with no
    /// features known, Jicofo's defaults (rtx and tcc on).
    pub fn offer_options(&self) -> OfferOptions {
        match &self.features {
            Some(f) if !f.is_empty() => OfferOptions {
                rtx: f.contains(ns::FEATURE_RTX),
                tcc: f.contains(ns::FEATURE_TCC),
            },
            _ => OfferOptions::default(),
        }
    }

    pub fn is_moderator(&self) -> bool {
        self.role == "moderator" || matches!(self.affiliation.as_str(), "owner" | "admin")
    }

    pub fn session_active(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.active)
    }
}

/// The features of a disco#info result (`<feature var>`).
pub fn features_from_disco(query: &Element) -> BTreeSet<String> {
    query
        .children()
        .filter(|f| f.name() == "feature")
        .filter_map(|f| f.get_attr("var").map(str::to_string))
        .collect()
}
