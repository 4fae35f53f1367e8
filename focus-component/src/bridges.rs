//! The brewery: the bridges the focus can use, learnt from their presence in
//! the brewery MUC (`<stats xmlns='http://jitsi.org/protocol/colibri'>`), and
//! bridge selection as Jicofo's `BridgeSelector` does it.
//!
//! A bridge is a candidate for a participant when it is operational
//! (healthy stat, no failed health check within the last minute), neither
//! in graceful shutdown nor draining, and of the version of the
//! conference's bridges (Jicofo never mixes versions in a conference). Its
//! load is the corrected stress: `stress_level + recently added endpoints ×
//! average_participant_stress`; at 0.8 or more it is overloaded. The
//! candidates, least loaded first, go to the configured [`Strategy`] (see
//! [`crate::selection`]).
//!
//! Options (in `jitsi_focus = { ... }`, or `lilt focus` flags):
//! `bridge_selection` (`"single"`, the default, `"split"`, `"region"`,
//! `"intra_region"`), `octo` (false: whether a conference may span bridges,
//! relayed to each other; `split` always may), `max_bridge_participants`
//! (80 participants of one conference per bridge, 0 for no limit) and
//! `local_region` (the region `region` falls back to).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xmpp_core::Element;

use crate::ns;
use crate::selection::{Candidate, Selection, Strategy};

/// Jicofo's `bridge.*` settings that selection uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionConfig {
    pub stress_threshold: f64,
    pub default_participant_stress: f64,
    /// How long an endpoint counts as recently added.
    pub participant_rampup: Duration,
    /// How long a bridge stays non-operational after a failure.
    pub failure_reset: Duration,
    /// Jicofo's `max-bridge-participants`: per bridge per conference (0:
    /// no limit).
    pub max_participants_per_bridge: usize,
    pub strategy: Strategy,
    /// Jicofo's `octo.enabled`: conferences may span bridges.
    pub octo: bool,
    /// Jicofo's `local-region`.
    pub local_region: Option<String>,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            stress_threshold: 0.8,
            default_participant_stress: 0.01,
            participant_rampup: Duration::from_secs(20),
            failure_reset: Duration::from_secs(60),
            max_participants_per_bridge: 80,
            strategy: Strategy::Single,
            octo: false,
            local_region: None,
        }
    }
}

/// One bridge of the brewery, keyed by its occupant JID.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub jid: String,
    pub stress: f64,
    pub average_participant_stress: Option<f64>,
    pub graceful_shutdown: bool,
    pub draining: bool,
    pub healthy: bool,
    pub region: Option<String>,
    pub relay_id: Option<String>,
    pub version: Option<String>,
    /// The `release` stat (Jicofo's release id).
    pub release: Option<String>,
    pub failed_at: Option<Instant>,
    recently_added: Vec<Instant>,
}

impl Bridge {
    fn new(jid: &str) -> Bridge {
        Bridge {
            jid: jid.to_string(),
            stress: 0.0,
            average_participant_stress: None,
            graceful_shutdown: false,
            draining: false,
            healthy: true,
            region: None,
            relay_id: None,
            version: None,
            release: None,
            failed_at: None,
            recently_added: Vec::new(),
        }
    }

    /// Operational: reports itself healthy and has not failed recently.
    pub fn is_operational(&self, now: Instant, config: &SelectionConfig) -> bool {
        self.healthy
            && self
                .failed_at
                .is_none_or(|at| now.saturating_duration_since(at) >= config.failure_reset)
    }

    pub fn corrected_stress(&self, now: Instant, config: &SelectionConfig) -> f64 {
        let recent = self
            .recently_added
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < config.participant_rampup)
            .count() as f64;
        self.stress
            + recent
                * self
                    .average_participant_stress
                    .unwrap_or(config.default_participant_stress)
    }

    pub fn is_overloaded(&self, now: Instant, config: &SelectionConfig) -> bool {
        self.corrected_stress(now, config) >= config.stress_threshold
    }

    /// Reads the `<stat name value>`s of a brewery presence.
    fn update(&mut self, stats: &Element) {
        let get = |name: &str| {
            stats
                .children()
                .find(|s| s.name() == "stat" && s.get_attr("name") == Some(name))
                .and_then(|s| s.get_attr("value"))
                .map(str::to_string)
        };
        let flag = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(s) = get("stress_level").and_then(|v| v.parse::<f64>().ok())
            && s.is_finite()
        {
            self.stress = s;
        }
        self.average_participant_stress = get("average_participant_stress")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite());
        self.graceful_shutdown = flag(get("graceful_shutdown")) || flag(get("shutting_down"));
        self.draining = flag(get("drain"));
        self.healthy = get("healthy").is_none_or(|v| v.eq_ignore_ascii_case("true"));
        self.region = get("region");
        self.relay_id = get("relay_id");
        self.version = get("version");
        self.release = get("release");
    }

    /// Jicofo's `fullVersion`: `version-release`, or the version alone.
    pub fn full_version(&self) -> Option<String> {
        match (&self.version, &self.release) {
            (Some(v), Some(r)) => Some(format!("{v}-{r}")),
            (v, _) => v.clone(),
        }
    }
}

/// All known bridges.
#[derive(Debug, Default)]
pub struct Brewery {
    pub config: SelectionConfig,
    bridges: BTreeMap<String, Bridge>,
}

/// What a brewery presence changed.
#[derive(Debug, PartialEq, Eq)]
pub enum BreweryChange {
    Updated,
    /// The bridge left the brewery (or went unhealthy): its conferences move.
    Gone(String),
    Ignored,
}

impl Brewery {
    pub fn new(config: SelectionConfig) -> Brewery {
        Brewery {
            config,
            bridges: BTreeMap::new(),
        }
    }

    pub fn get(&self, jid: &str) -> Option<&Bridge> {
        self.bridges.get(jid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bridge> {
        self.bridges.values()
    }

    pub fn len(&self) -> usize {
        self.bridges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bridges.is_empty()
    }

    pub fn operational_count(&self, now: Instant) -> usize {
        self.bridges
            .values()
            .filter(|b| b.is_operational(now, &self.config))
            .count()
    }

    /// A presence from `from` (an occupant of the brewery room).
    pub fn on_presence(&mut self, from: &str, presence: &Element) -> BreweryChange {
        if presence.type_() == Some("unavailable") {
            return match self.bridges.remove(from) {
                Some(_) => BreweryChange::Gone(from.to_string()),
                None => BreweryChange::Ignored,
            };
        }
        if presence.type_().is_some() {
            return BreweryChange::Ignored;
        }
        let Some(stats) = presence.get_child("stats", ns::COLIBRI) else {
            return BreweryChange::Ignored;
        };
        let bridge = self
            .bridges
            .entry(from.to_string())
            .or_insert_with(|| Bridge::new(from));
        let was_healthy = bridge.healthy;
        bridge.update(stats);
        if was_healthy && !bridge.healthy {
            return BreweryChange::Gone(from.to_string());
        }
        BreweryChange::Updated
    }

    /// A failed health check or Colibri2 request: non-operational for
    /// `failure_reset`.
    pub fn mark_failed(&mut self, jid: &str, now: Instant) {
        if let Some(b) = self.bridges.get_mut(jid) {
            b.failed_at = Some(now);
        }
    }

    /// A health check answered: operational again.
    pub fn mark_healthy(&mut self, jid: &str) {
        if let Some(b) = self.bridges.get_mut(jid) {
            b.failed_at = None;
        }
    }

    /// Counts an endpoint allocated on a bridge (the stress correction).
    pub fn endpoint_added(&mut self, jid: &str, now: Instant) {
        let rampup = self.config.participant_rampup;
        if let Some(b) = self.bridges.get_mut(jid) {
            b.recently_added
                .retain(|t| now.saturating_duration_since(*t) < rampup);
            b.recently_added.push(now);
        }
    }

    /// The bridge for a participant of a conference that uses
    /// `conference` (its bridges in the order it took them, with their
    /// participant counts), or None when no bridge can take it.
    pub fn select(
        &self,
        now: Instant,
        conference: &[(&str, usize)],
        participant_region: Option<&str>,
    ) -> Option<String> {
        let config = &self.config;
        // Only the conference's operational bridges count (Jicofo's
        // getBridges).
        let conference: Vec<(&str, usize)> = conference
            .iter()
            .filter(|(j, _)| {
                self.bridges
                    .get(*j)
                    .is_some_and(|b| b.is_operational(now, config))
            })
            .copied()
            .collect();
        let first = conference.first().and_then(|(j, _)| self.bridges.get(*j));
        let version = first.and_then(|b| b.full_version());
        let multi = !conference.is_empty();
        let mut usable: Vec<&Bridge> = self
            .bridges
            .values()
            .filter(|b| b.is_operational(now, config) && !b.graceful_shutdown && !b.draining)
            .filter(|b| version.is_none() || b.full_version() == version)
            // A second bridge must be able to relay.
            .filter(|b| {
                !multi || b.relay_id.is_some() || conference.iter().any(|(j, _)| *j == b.jid)
            })
            .collect();
        usable.sort_by(|a, b| {
            a.corrected_stress(now, config)
                .total_cmp(&b.corrected_stress(now, config))
        });
        let candidates: Vec<Candidate> = usable
            .iter()
            .map(|b| Candidate {
                jid: &b.jid,
                region: b.region.as_deref(),
                overloaded: b.is_overloaded(now, config),
            })
            .collect();
        let selection = Selection {
            bridges: &candidates,
            conference: &conference,
            region: participant_region,
            conference_region: first.and_then(|b| b.region.as_deref()),
            local_region: config.local_region.as_deref(),
            max_participants_per_bridge: config.max_participants_per_bridge,
        };
        let existing_relay = first.is_some_and(|b| b.relay_id.is_some());
        config
            .strategy
            .select(&selection, config.octo, existing_relay)
    }
}
