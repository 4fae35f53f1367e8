//! Jicofo's observability: `/about/health` (healthy while at least one
//! bridge is operational) and the stats JSON (conferences, participants,
//! bridges, Jingle sessions, failures), plus the same counters in the
//! OpenMetrics text format. Each bridge's load (stress, and the
//! conferences and participants the focus put on it) is under
//! `bridge_selector.bridges`.

use std::time::Instant;

use serde_json::json;

use crate::focus::Focus;

/// Monotonic counters kept by the focus.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub conference_requests: u64,
    pub conferences_created: u64,
    pub participants_joined: u64,
    pub participants_left: u64,
    pub participants_moved: u64,
    pub offers_sent: u64,
    pub offer_failures: u64,
    pub jingle_errors: u64,
    pub source_signaling: u64,
    pub colibri_failures: u64,
    pub health_check_failures: u64,
    pub mutes: u64,
}

/// One bridge of the brewery as the focus uses it.
#[derive(Debug, Clone)]
pub struct BridgeLoad {
    pub jid: String,
    pub relay_id: Option<String>,
    pub region: Option<String>,
    pub version: Option<String>,
    pub stress: f64,
    pub operational: bool,
    /// Conferences with a session on the bridge.
    pub conferences: usize,
    /// Participants allocated on the bridge.
    pub participants: usize,
}

/// A snapshot of the focus.
#[derive(Debug, Clone)]
pub struct Stats {
    pub conferences: usize,
    pub participants: usize,
    pub jingle_sessions: usize,
    pub bridges: usize,
    pub operational_bridges: usize,
    /// Bridge sessions over all conferences (a conference on two bridges
    /// counts two).
    pub conference_bridges: usize,
    pub per_bridge: Vec<BridgeLoad>,
    pub counters: Counters,
}

impl Stats {
    pub fn collect(focus: &Focus, now: Instant) -> Stats {
        let participants = focus
            .conferences
            .values()
            .map(|c| c.participants.len())
            .sum();
        let jingle_sessions = focus
            .conferences
            .values()
            .flat_map(|c| c.participants.values())
            .filter(|p| p.session_active())
            .count();
        let per_bridge = focus
            .brewery
            .iter()
            .map(|b| BridgeLoad {
                jid: b.jid.clone(),
                relay_id: b.relay_id.clone(),
                region: b.region.clone(),
                version: b.version.clone(),
                stress: b.corrected_stress(now, &focus.brewery.config),
                operational: b.is_operational(now, &focus.brewery.config),
                conferences: focus
                    .conferences
                    .values()
                    .filter(|c| c.session(&b.jid).is_some())
                    .count(),
                participants: focus
                    .conferences
                    .values()
                    .map(|c| c.on_bridge(&b.jid).len())
                    .sum(),
            })
            .collect();
        Stats {
            conference_bridges: focus.conferences.values().map(|c| c.bridges.len()).sum(),
            per_bridge,
            conferences: focus.conferences.len(),
            participants,
            jingle_sessions,
            bridges: focus.brewery.len(),
            operational_bridges: focus.brewery.operational_count(now),
            counters: focus.counters.clone(),
        }
    }

    /// Jicofo's health: some bridge can take a conference.
    pub fn healthy(&self) -> bool {
        self.operational_bridges > 0
    }

    /// The stats JSON (Jicofo's `/stats` names where they exist).
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.counters;
        let bridges: serde_json::Map<String, serde_json::Value> = self
            .per_bridge
            .iter()
            .map(|b| {
                (
                    b.jid.clone(),
                    json!({
                        "relay_id": b.relay_id,
                        "region": b.region,
                        "version": b.version,
                        "stress": b.stress,
                        "operational": b.operational,
                        "conferences": b.conferences,
                        "participants": b.participants,
                    }),
                )
            })
            .collect();
        json!({
            "conferences": self.conferences,
            "participants": self.participants,
            "jingle_sessions": self.jingle_sessions,
            "bridge_selector": {
                "bridge_count": self.bridges,
                "operational_bridge_count": self.operational_bridges,
                "bridges": bridges,
            },
            "conference_bridges": self.conference_bridges,
            "total_conferences_created": c.conferences_created,
            "total_participants": c.participants_joined,
            "total_participants_moved": c.participants_moved,
            "conference_requests": c.conference_requests,
            "jingle": {
                "offers_sent": c.offers_sent,
                "offer_failures": c.offer_failures,
                "errors": c.jingle_errors,
                "source_signaling": c.source_signaling,
            },
            "colibri_failures": c.colibri_failures,
            "health_check_failures": c.health_check_failures,
            "mutes": c.mutes,
        })
    }

    /// OpenMetrics text.
    pub fn to_openmetrics(&self) -> String {
        let c = &self.counters;
        let mut out = String::new();
        let mut gauge = |name: &str, v: u64| {
            out.push_str(&format!("# TYPE jicofo_{name} gauge\njicofo_{name} {v}\n"));
        };
        gauge("conferences", self.conferences as u64);
        gauge("participants", self.participants as u64);
        gauge("jingle_sessions", self.jingle_sessions as u64);
        gauge("bridges", self.bridges as u64);
        gauge("bridges_operational", self.operational_bridges as u64);
        gauge("conference_bridges", self.conference_bridges as u64);
        let mut counter = |name: &str, v: u64| {
            out.push_str(&format!(
                "# TYPE jicofo_{name} counter\njicofo_{name}_total {v}\n"
            ));
        };
        counter("conferences_created", c.conferences_created);
        counter("participants", c.participants_joined);
        counter("participants_moved", c.participants_moved);
        counter("conference_requests", c.conference_requests);
        counter("offers", c.offers_sent);
        counter("offer_failures", c.offer_failures);
        counter("jingle_errors", c.jingle_errors);
        counter("colibri_failures", c.colibri_failures);
        counter("health_check_failures", c.health_check_failures);
        out.push_str("# EOF\n");
        out
    }
}
