//! The signalling state of a conference and its endpoints, as the focus and
//! the bridge channel made it: ids, passwords, signalled sources, what each
//! receiver asked for and what the bridge last told it. The media state
//! (ICE, DTLS, RTP) lives in the media core under the same ids.

use std::collections::BTreeMap;
use std::time::Instant;

use media_signalling::{MediaKind, Source};

use crate::allocation::{AllocationConfig, ReceiverAllocation};
use crate::channel::AudioSubscription;

/// One conference (Videobridge's `Conference`), known to the focus by its
/// `meeting-id` and to the media core and colibri-ws URLs by `id`.
#[derive(Debug, Clone)]
pub struct Conference {
    pub id: String,
    pub meeting_id: String,
    pub name: Option<String>,
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The bridge's own sources (`jvb-a0`/`jvb-v0`) answered to the focus.
    pub feedback_sources: Vec<Source>,
    /// Dominant speaker first, then the previous speakers (most recent
    /// first), as the media core last reported.
    pub speakers: Vec<String>,
    pub silence: bool,
    /// When the conference last became empty (it expires after a while).
    pub empty_since: Option<Instant>,
    /// When bandwidth allocation last ran for it.
    pub last_allocation: Option<Instant>,
    /// How many endpoints joined so far (each endpoint's `join_order`).
    joined: u64,
}

impl Conference {
    pub fn new(id: String, meeting_id: String, name: Option<String>, now: Instant) -> Conference {
        Conference {
            id,
            meeting_id,
            name,
            endpoints: BTreeMap::new(),
            feedback_sources: Vec::new(),
            speakers: Vec::new(),
            silence: false,
            empty_since: Some(now),
            last_allocation: None,
            joined: 0,
        }
    }

    /// Adds an endpoint after those that joined before it.
    pub fn add_endpoint(&mut self, mut endpoint: Endpoint) {
        self.joined += 1;
        endpoint.join_order = self.joined;
        self.endpoints.insert(endpoint.id.clone(), endpoint);
    }

    /// The endpoint that already signalled `ssrc`, other than `except`.
    pub fn ssrc_owner(&self, ssrc: u32, except: &str) -> Option<&str> {
        self.endpoints
            .values()
            .filter(|e| e.id != except)
            .find(|e| e.sources.iter().any(|s| s.ssrcs.contains(&ssrc)))
            .map(|e| e.id.as_str())
    }

    /// Endpoint ids with the dominant speaker and recent speakers first,
    /// then the rest in the order they joined (as Videobridge's
    /// `ConferenceSpeechActivity` appends new endpoints).
    pub fn speaker_order(&self) -> Vec<String> {
        let mut order: Vec<String> = self
            .speakers
            .iter()
            .filter(|s| self.endpoints.contains_key(*s))
            .cloned()
            .collect();
        let mut rest: Vec<&Endpoint> = self
            .endpoints
            .values()
            .filter(|e| !order.contains(&e.id))
            .collect();
        rest.sort_by_key(|e| e.join_order);
        order.extend(rest.into_iter().map(|e| e.id.clone()));
        order
    }
}

/// One endpoint (a participant's connection to this bridge).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub stats_id: Option<String>,
    /// The ICE pwd of the bridge's transport, also the colibri-ws `pwd`.
    pub pwd: String,
    pub channel_open: bool,
    /// `<capability name='source-names'/>` was given.
    pub source_names: bool,
    pub visitor: bool,
    pub sources: Vec<Source>,
    pub force_mute: (bool, bool),
    /// When it joined among the conference's endpoints (1 first; 0 if
    /// added without [`Conference::add_endpoint`]).
    pub join_order: u64,
    /// What this endpoint asked for as a receiver (constraints, last-N of
    /// either client generation and Colibri2) and what it was allocated.
    pub allocation: ReceiverAllocation,
    pub audio_subscription: AudioSubscription,
    /// `SourceVideoTypeMessage`/`VideoTypeMessage`: source name → type.
    pub video_types: BTreeMap<String, String>,
    /// What the bridge last told this endpoint, to send only changes.
    pub sent_forwarded: Option<Vec<String>>,
    pub sent_last_n: Vec<String>,
    pub sent_sender_constraints: BTreeMap<String, i64>,
    /// An endpoint of a peer bridge, behind this relay (its media arrives
    /// on the relay; it is a sender for allocation, never a receiver here).
    pub relay: Option<String>,
}

impl Endpoint {
    /// An endpoint with Videobridge's default allocation settings.
    pub fn new(id: String, pwd: String) -> Endpoint {
        Endpoint::with_config(id, pwd, &AllocationConfig::default())
    }

    pub fn with_config(id: String, pwd: String, config: &AllocationConfig) -> Endpoint {
        Endpoint {
            id,
            stats_id: None,
            pwd,
            channel_open: false,
            source_names: false,
            visitor: false,
            sources: Vec::new(),
            force_mute: (false, false),
            join_order: 0,
            allocation: ReceiverAllocation::new(config),
            audio_subscription: AudioSubscription::All,
            video_types: BTreeMap::new(),
            sent_forwarded: None,
            sent_last_n: Vec::new(),
            sent_sender_constraints: BTreeMap::new(),
            relay: None,
        }
    }

    /// The video sources this endpoint sends (none while video is
    /// force-muted).
    pub fn video_sources(&self) -> impl Iterator<Item = &Source> {
        let muted = self.force_mute.1;
        self.sources
            .iter()
            .filter(move |s| !muted && s.kind == MediaKind::Video && !s.ssrcs.is_empty())
    }
}
