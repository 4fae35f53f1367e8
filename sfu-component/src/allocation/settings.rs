//! What one receiver asked for (Videobridge's `AllocationSettings`), kept
//! up to date from the bridge-channel messages of both client generations:
//! `ReceiverVideoConstraints` (merged field by field, as Videobridge's
//! `AllocationSettingsWrapper`), `LastNChangedEvent`, and the 2021 clients'
//! `SelectedEndpointsChangedEvent` / `ReceiverVideoConstraint`, translated
//! as Videobridge's `VideoConstraintsCompatibility` did.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::config::AllocationConfig;
use crate::channel::{ReceiverConstraints, VideoConstraints};

/// Videobridge's `VideoConstraints`: `max_height` -1 means unlimited, 0
/// that the source is not wanted; `max_frame_rate` -1 unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constraints {
    pub max_height: i64,
    pub max_frame_rate: f64,
}

impl Constraints {
    /// The source is not wanted (outside last-N, or asked for at 0).
    pub const NOTHING: Constraints = Constraints {
        max_height: 0,
        max_frame_rate: 0.0,
    };
    pub const UNLIMITED: Constraints = Constraints {
        max_height: -1,
        max_frame_rate: -1.0,
    };

    pub fn height(max_height: i64) -> Constraints {
        Constraints {
            max_height,
            max_frame_rate: -1.0,
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.max_height == 0 || self.max_frame_rate == 0.0
    }

    pub fn height_is_limited(&self) -> bool {
        self.max_height >= 0
    }

    pub fn to_json(&self) -> Value {
        json!({"maxHeight": self.max_height, "maxFrameRate": self.max_frame_rate})
    }
}

impl From<VideoConstraints> for Constraints {
    fn from(v: VideoConstraints) -> Constraints {
        Constraints {
            max_height: v.max_height,
            max_frame_rate: v.max_frame_rate.unwrap_or(-1.0),
        }
    }
}

/// The 2021 clients' endpoint-level messages, before translation.
#[derive(Debug, Clone, PartialEq)]
struct Legacy {
    selected: Vec<String>,
    max_frame_height: i64,
}

/// One receiver's allocation settings. Names in `on_stage`, `selected` and
/// the keys of `constraints` are source names (current clients) or
/// endpoint ids (2021 clients); [`AllocationSettings::constraints_for`]
/// and friends accept either.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationSettings {
    pub on_stage: Vec<String>,
    pub selected: Vec<String>,
    pub constraints: BTreeMap<String, Constraints>,
    pub default_constraints: Constraints,
    /// -1: unlimited.
    pub last_n: i64,
    /// A non-negative value replaces the bandwidth estimate.
    pub assumed_bandwidth_bps: i64,
    legacy: Option<Legacy>,
}

impl AllocationSettings {
    /// A receiver's settings before it said anything.
    pub fn new(config: &AllocationConfig) -> AllocationSettings {
        AllocationSettings {
            on_stage: Vec::new(),
            selected: Vec::new(),
            constraints: BTreeMap::new(),
            default_constraints: Constraints::height(config.initial_max_height),
            last_n: config.initial_last_n,
            assumed_bandwidth_bps: -1,
            legacy: None,
        }
    }

    /// Merges a `ReceiverVideoConstraints`; true if anything changed.
    pub fn apply(&mut self, rc: &ReceiverConstraints, config: &AllocationConfig) -> bool {
        let before = self.clone();
        if let Some(n) = rc.last_n {
            self.last_n = n;
        }
        if let Some(s) = &rc.selected {
            self.selected = s.clone();
        }
        if let Some(s) = &rc.on_stage {
            self.on_stage = s.clone();
        }
        if let Some(d) = rc.default_constraints {
            self.default_constraints = d.into();
        }
        if let Some(c) = &rc.constraints {
            self.constraints = c.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
        }
        if let (Some(bps), Some(limit)) =
            (rc.assumed_bandwidth_bps, config.assumed_bandwidth_limit_bps)
        {
            self.assumed_bandwidth_bps = bps.min(limit);
        }
        *self != before
    }

    /// `LastNChangedEvent` or Colibri2's `initial-last-n`.
    pub fn set_last_n(&mut self, n: i64) -> bool {
        let changed = self.last_n != n;
        self.last_n = n;
        changed
    }

    /// 2021 `SelectedEndpointsChangedEvent` / `PinnedEndpointsChangedEvent`.
    pub fn set_legacy_selected(
        &mut self,
        selected: Vec<String>,
        config: &AllocationConfig,
    ) -> bool {
        let legacy = self.legacy.get_or_insert(Legacy {
            selected: Vec::new(),
            max_frame_height: i64::MAX,
        });
        legacy.selected = selected;
        self.translate_legacy(config)
    }

    /// 2021 `ReceiverVideoConstraint {maxFrameHeight}`.
    pub fn set_legacy_max_frame_height(&mut self, height: i64, config: &AllocationConfig) -> bool {
        let legacy = self.legacy.get_or_insert(Legacy {
            selected: Vec::new(),
            max_frame_height: i64::MAX,
        });
        legacy.max_frame_height = height;
        self.translate_legacy(config)
    }

    /// Videobridge's compatibility rule: selected endpoints get the
    /// on-stage ideal height (capped by maxFrameHeight); one selected
    /// endpoint is the on-stage one (preferred height and frame rate), more
    /// than one is tile view (no preference); the rest get the default.
    fn translate_legacy(&mut self, config: &AllocationConfig) -> bool {
        let Some(legacy) = self.legacy.clone() else {
            return false;
        };
        let before = self.clone();
        let height = config.onstage_ideal_height.min(legacy.max_frame_height);
        self.constraints = legacy
            .selected
            .iter()
            .map(|e| (e.clone(), Constraints::height(height)))
            .collect();
        if legacy.selected.len() == 1 {
            self.on_stage = legacy.selected.clone();
            self.selected = Vec::new();
        } else {
            self.on_stage = Vec::new();
            self.selected = legacy.selected.clone();
        }
        *self != before
    }

    /// The constraints for a source, by its name or its owner's id, else
    /// the default.
    pub fn constraints_for(&self, owner: &str, name: &str) -> Constraints {
        self.constraints
            .get(name)
            .or_else(|| self.constraints.get(owner))
            .copied()
            .unwrap_or(self.default_constraints)
    }

    pub fn is_on_stage(&self, owner: &str, name: &str) -> bool {
        self.on_stage.iter().any(|x| x == name || x == owner)
    }

    pub fn is_selected(&self, owner: &str, name: &str) -> bool {
        self.selected.iter().any(|x| x == name || x == owner)
    }

    /// Where a source ranks among the on-stage then selected ones (`None`:
    /// neither), as Videobridge joins the two lists.
    pub fn selection_rank(&self, owner: &str, name: &str) -> Option<usize> {
        self.on_stage
            .iter()
            .chain(self.selected.iter())
            .position(|x| x == name || x == owner)
    }

    /// Videobridge's `AllocationSettings.toJson()` (debug output).
    pub fn to_json(&self) -> Value {
        let constraints: serde_json::Map<String, Value> = self
            .constraints
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        json!({
            "on_stage_sources": self.on_stage,
            "selected_sources": self.selected,
            "video_constraints": constraints,
            "last_n": self.last_n,
            "default_constraints": self.default_constraints.to_json(),
            "assumed_bandwidth_bps": self.assumed_bandwidth_bps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ClientMessage, parse_client_message};

    fn rc(text: &str) -> ReceiverConstraints {
        match parse_client_message(text).unwrap() {
            ClientMessage::ReceiverVideoConstraints(rc) => rc,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_merge_field_by_field() {
        let config = AllocationConfig::default();
        let mut s = AllocationSettings::new(&config);
        assert_eq!(s.constraints_for("a", "a-v0").max_height, 180);
        assert!(s.apply(
            &rc(
                r#"{"colibriClass":"ReceiverVideoConstraints","lastN":3,"onStageSources":["a-v0"],
                 "defaultConstraints":{"maxHeight":180},"constraints":{"a-v0":{"maxHeight":720}}}"#
            ),
            &config
        ));
        assert_eq!(s.constraints_for("a", "a-v0").max_height, 720);
        assert_eq!(s.constraints_for("b", "b-v0").max_height, 180);
        assert!(s.is_on_stage("a", "a-v0"));
        // Only lastN: the rest stays.
        assert!(s.apply(
            &rc(r#"{"colibriClass":"ReceiverVideoConstraints","lastN":1}"#),
            &config
        ));
        assert_eq!(s.last_n, 1);
        assert!(s.is_on_stage("a", "a-v0"));
        // The same again changes nothing.
        assert!(!s.apply(
            &rc(r#"{"colibriClass":"ReceiverVideoConstraints","lastN":1}"#),
            &config
        ));
        // Assumed bandwidth is ignored unless the bridge allows it.
        s.apply(
            &rc(r#"{"colibriClass":"ReceiverVideoConstraints","assumedBandwidthBps":100}"#),
            &config,
        );
        assert_eq!(s.assumed_bandwidth_bps, -1);
    }

    #[test]
    fn endpoint_keys_of_2021_clients() {
        let config = AllocationConfig::default();
        let mut s = AllocationSettings::new(&config);
        s.apply(
            &rc(
                r#"{"colibriClass":"ReceiverVideoConstraints","onStageEndpoints":["abcd"],
                 "constraints":{"abcd":{"maxHeight":360}}}"#,
            ),
            &config,
        );
        assert_eq!(s.constraints_for("abcd", "abcd-v0").max_height, 360);
        assert!(s.is_on_stage("abcd", "abcd-v0"));
        assert_eq!(s.selection_rank("abcd", "abcd-v0"), Some(0));
    }

    #[test]
    fn legacy_selected_endpoints() {
        let config = AllocationConfig::default();
        let mut s = AllocationSettings::new(&config);
        // Stage view: one selected endpoint.
        assert!(s.set_legacy_selected(vec!["a".into()], &config));
        assert!(s.is_on_stage("a", "a-v0"));
        assert_eq!(s.constraints_for("a", "a-v0").max_height, 1080);
        assert!(s.set_legacy_max_frame_height(720, &config));
        assert_eq!(s.constraints_for("a", "a-v0").max_height, 720);
        // Tile view: several selected, none on stage.
        s.set_legacy_max_frame_height(360, &config);
        s.set_legacy_selected(vec!["a".into(), "b".into()], &config);
        assert!(!s.is_on_stage("a", "a-v0"));
        assert!(s.is_selected("b", "b-v0"));
        assert_eq!(s.constraints_for("b", "b-v0").max_height, 360);
        assert_eq!(s.constraints_for("c", "c-v0").max_height, 180);
    }
}
