//! Bridge selection strategies, as Jicofo's `BridgeSelectionStrategy`
//! subclasses: given the usable bridges (ordered least loaded first), the
//! bridges a conference already uses with their participant counts and
//! the participant's region, which bridge gets the participant.
//!
//! - `single` (Jicofo's default): a conference stays on one bridge; the
//!   first participant gets the least loaded bridge in its region, or the
//!   least loaded one.
//! - `split` (for tests): a bridge the conference does not use yet, else the
//!   conference's bridge with the fewest participants. Always multi-bridge.
//! - `region`: the participant's region (or `local_region`) first: a bridge
//!   of the conference in the region that is not overloaded, then any not
//!   overloaded bridge in the region, then the least loaded ones, then any.
//! - `intra_region`: several bridges for load, all in the region of the
//!   conference's first bridge.
//!
//! A bridge counts as overloaded for a conference when its corrected stress
//! reaches the threshold or it already has `max_bridge_participants` of the
//! conference's participants. A second bridge is only considered when
//! `octo` is on (or the strategy is `split`) and the conference's first
//! bridge has a `relay_id`.

use std::str::FromStr;

/// Which strategy picks the bridge (`bridge_selection` in `jitsi_focus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Single,
    Split,
    RegionBased,
    IntraRegion,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown bridge selection strategy {0:?} (single, split, region or intra_region; or Jicofo's class names)"
)]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Strategy, UnknownStrategy> {
        let key = s
            .trim()
            .trim_start_matches("org.jitsi.jicofo.bridge.")
            .trim_end_matches("BridgeSelectionStrategy")
            .replace(['_', '-'], "")
            .to_ascii_lowercase();
        match key.as_str() {
            "single" | "singlebridge" => Ok(Strategy::Single),
            "split" => Ok(Strategy::Split),
            "region" | "regionbased" => Ok(Strategy::RegionBased),
            "intraregion" => Ok(Strategy::IntraRegion),
            _ => Err(UnknownStrategy(s.to_string())),
        }
    }
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Single => "single",
            Strategy::Split => "split",
            Strategy::RegionBased => "region",
            Strategy::IntraRegion => "intra_region",
        }
    }
}

/// A bridge as selection sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub jid: &'a str,
    pub region: Option<&'a str>,
    /// Overloaded by its own stress (the per-conference limit is added here).
    pub overloaded: bool,
}

/// What selection needs to know about one decision.
pub struct Selection<'a> {
    /// Usable bridges, least loaded first.
    pub bridges: &'a [Candidate<'a>],
    /// The conference's (operational) bridges in the order it took them,
    /// with their participant counts.
    pub conference: &'a [(&'a str, usize)],
    pub region: Option<&'a str>,
    /// The region of the conference's first bridge.
    pub conference_region: Option<&'a str>,
    pub local_region: Option<&'a str>,
    /// 0: no maximum.
    pub max_participants_per_bridge: usize,
}

impl Selection<'_> {
    fn count(&self, jid: &str) -> Option<usize> {
        self.conference
            .iter()
            .find(|(j, _)| *j == jid)
            .map(|(_, n)| *n)
    }

    fn in_conference(&self, jid: &str) -> bool {
        self.count(jid).is_some()
    }

    fn overloaded(&self, b: &Candidate) -> bool {
        b.overloaded
            || (self.max_participants_per_bridge > 0
                && self
                    .count(b.jid)
                    .is_some_and(|n| n >= self.max_participants_per_bridge))
    }

    fn first(&self, f: impl Fn(&Candidate) -> bool) -> Option<String> {
        self.bridges
            .iter()
            .find(|b| f(b))
            .map(|b| b.jid.to_string())
    }

    fn not_loaded_in_conference_in(&self, region: Option<&str>) -> Option<String> {
        self.first(|b| {
            !self.overloaded(b)
                && self.in_conference(b.jid)
                && region.is_some_and(|r| b.region == Some(r))
        })
    }

    fn not_loaded_in(&self, region: Option<&str>) -> Option<String> {
        self.first(|b| !self.overloaded(b) && region.is_some_and(|r| b.region == Some(r)))
    }

    fn in_conference_in(&self, region: Option<&str>) -> Option<String> {
        self.first(|b| self.in_conference(b.jid) && region.is_some_and(|r| b.region == Some(r)))
    }

    fn least_loaded_in(&self, region: Option<&str>) -> Option<String> {
        self.first(|b| region.is_some_and(|r| b.region == Some(r)))
    }

    fn not_loaded_in_conference(&self) -> Option<String> {
        self.first(|b| !self.overloaded(b) && self.in_conference(b.jid))
    }

    fn least_loaded(&self) -> Option<String> {
        self.first(|_| true)
    }
}

impl Strategy {
    /// Jicofo's `BridgeSelectionStrategy.select`: the bridge for a
    /// participant, or None when no bridge can take it. `octo`: whether a
    /// conference may span bridges; `existing_relay_id`: whether the
    /// conference's first bridge has a relay id.
    pub fn select(self, s: &Selection, octo: bool, existing_has_relay_id: bool) -> Option<String> {
        if let Some((existing, _)) = s.conference.first() {
            let multi = octo || self == Strategy::Split;
            if !multi || !existing_has_relay_id {
                return Some(existing.to_string());
            }
        }
        self.do_select(s)
    }

    fn do_select(self, s: &Selection) -> Option<String> {
        if s.bridges.is_empty() {
            return None;
        }
        match self {
            Strategy::Single => match s.conference.first() {
                None => s.least_loaded_in(s.region).or_else(|| s.least_loaded()),
                Some((existing, _)) => Some(existing.to_string()),
            },
            Strategy::Split => s.first(|b| !s.in_conference(b.jid)).or_else(|| {
                s.conference
                    .iter()
                    .filter(|(j, _)| s.bridges.iter().any(|b| b.jid == *j))
                    .min_by_key(|(_, n)| *n)
                    .map(|(j, _)| j.to_string())
            }),
            Strategy::RegionBased => {
                let mut region = s.region.or(s.local_region);
                if let Some(local) = s.local_region
                    && !s
                        .bridges
                        .iter()
                        .any(|b| region.is_some() && b.region == region)
                {
                    region = Some(local);
                }
                s.not_loaded_in_conference_in(region)
                    .or_else(|| s.not_loaded_in(region))
                    .or_else(|| s.in_conference_in(region))
                    .or_else(|| s.least_loaded_in(region))
                    .or_else(|| s.not_loaded_in_conference())
                    .or_else(|| s.least_loaded())
            }
            Strategy::IntraRegion => match s.conference.first() {
                None => s.not_loaded_in(s.region).or_else(|| s.least_loaded()),
                Some(_) => {
                    // Bridges without a region form one region of their own.
                    let same = |b: &Candidate| b.region == s.conference_region;
                    s.first(|b| !s.overloaded(b) && s.in_conference(b.jid) && same(b))
                        .or_else(|| s.first(|b| !s.overloaded(b) && same(b)))
                        .or_else(|| s.first(|b| s.in_conference(b.jid) && same(b)))
                }
            },
        }
    }
}
