//! Messages an endpoint sends on its bridge channel, parsed from JSON.
//!
//! Parsing never panics: anything that is not a JSON object with a known
//! `colibriClass` and the fields that class needs becomes a
//! [`ChannelError`], which the bridge counts and otherwise ignores.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::MAX_MESSAGE_SIZE;

/// Why a message from an endpoint was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("no colibriClass")]
    NoClass,
    #[error("unknown colibriClass {0}")]
    UnknownClass(String),
    #[error("malformed {class}: {reason}")]
    Malformed { class: String, reason: String },
}

/// Video constraints for one source or endpoint (`{"maxHeight":N}`;
/// `maxFrameRate` where given). `-1` means unconstrained, as Videobridge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoConstraints {
    pub max_height: i64,
    pub max_frame_rate: Option<f64>,
}

/// A receiver's wishes about the video it gets, from
/// `ReceiverVideoConstraints` of either generation. The keys of
/// `constraints`, `selected` and `on_stage` are source names (current
/// clients) or endpoint ids (2.6726); the bridge resolves which. A field
/// the message did not carry is `None`: it leaves the receiver's previous
/// setting as it was (Videobridge merges these messages field by field).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReceiverConstraints {
    pub last_n: Option<i64>,
    pub selected: Option<Vec<String>>,
    pub on_stage: Option<Vec<String>>,
    pub default_constraints: Option<VideoConstraints>,
    pub constraints: Option<BTreeMap<String, VideoConstraints>>,
    pub assumed_bandwidth_bps: Option<i64>,
}

/// `ReceiverAudioSubscription`: which audio sources an endpoint wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSubscription {
    #[default]
    All,
    None,
    Custom {
        include: Vec<String>,
        exclude: Vec<String>,
    },
}

/// One message from an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    ClientHello,
    /// To be relayed: `to` empty means every other endpoint. `fields` are
    /// all fields but `colibriClass`, `to` and `from`, kept for the relay.
    EndpointMessage {
        to: String,
        fields: Map<String, Value>,
    },
    /// Relayed to the other endpoints with `from` set.
    EndpointStats {
        fields: Map<String, Value>,
    },
    /// `LastNChangedEvent {lastN}`.
    LastN(i64),
    /// `ReceiverVideoConstraints` (both key shapes).
    ReceiverVideoConstraints(ReceiverConstraints),
    /// 2021 `ReceiverVideoConstraint {maxFrameHeight}`.
    ReceiverVideoConstraint {
        max_frame_height: i64,
    },
    /// 2021 `SelectedEndpointsChangedEvent {selectedEndpoints}`.
    SelectedEndpoints(Vec<String>),
    /// 2021 `PinnedEndpointsChangedEvent {pinnedEndpoints}`.
    PinnedEndpoints(Vec<String>),
    /// `SourceVideoTypeMessage {sourceName, videoType}`.
    SourceVideoType {
        source_name: String,
        video_type: String,
    },
    /// 2021 `VideoTypeMessage {videoType}` (endpoint-level).
    VideoType {
        video_type: String,
    },
    ReceiverAudioSubscription(AudioSubscription),
}

impl ClientMessage {
    /// The `colibriClass` this message came as (for counters).
    pub fn class(&self) -> &'static str {
        match self {
            ClientMessage::ClientHello => "ClientHello",
            ClientMessage::EndpointMessage { .. } => "EndpointMessage",
            ClientMessage::EndpointStats { .. } => "EndpointStats",
            ClientMessage::LastN(_) => "LastNChangedEvent",
            ClientMessage::ReceiverVideoConstraints(_) => "ReceiverVideoConstraints",
            ClientMessage::ReceiverVideoConstraint { .. } => "ReceiverVideoConstraint",
            ClientMessage::SelectedEndpoints(_) => "SelectedEndpointsChangedEvent",
            ClientMessage::PinnedEndpoints(_) => "PinnedEndpointsChangedEvent",
            ClientMessage::SourceVideoType { .. } => "SourceVideoTypeMessage",
            ClientMessage::VideoType { .. } => "VideoTypeMessage",
            ClientMessage::ReceiverAudioSubscription(_) => "ReceiverAudioSubscription",
        }
    }
}

/// Parses one text message from an endpoint.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ChannelError> {
    if text.len() > MAX_MESSAGE_SIZE {
        return Err(ChannelError::TooLarge(text.len()));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| ChannelError::NotJson(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(ChannelError::NotJson("not an object".into()));
    };
    let class = match obj.remove("colibriClass") {
        Some(Value::String(c)) => c,
        _ => return Err(ChannelError::NoClass),
    };
    let bad = |reason: &str| ChannelError::Malformed {
        class: class.clone(),
        reason: reason.to_string(),
    };
    let msg = match class.as_str() {
        "ClientHello" => ClientMessage::ClientHello,
        "EndpointMessage" => {
            let to = match obj.remove("to") {
                Some(Value::String(s)) => s,
                None | Some(Value::Null) => String::new(),
                Some(_) => return Err(bad("to is not a string")),
            };
            obj.remove("from");
            ClientMessage::EndpointMessage { to, fields: obj }
        }
        "EndpointStats" => {
            obj.remove("from");
            ClientMessage::EndpointStats { fields: obj }
        }
        "LastNChangedEvent" => {
            ClientMessage::LastN(int_field(&obj, "lastN").ok_or_else(|| bad("no lastN"))?)
        }
        "ReceiverVideoConstraints" => ClientMessage::ReceiverVideoConstraints(
            receiver_constraints(&obj).map_err(|r| bad(&r))?,
        ),
        "ReceiverVideoConstraint" => ClientMessage::ReceiverVideoConstraint {
            max_frame_height: int_field(&obj, "maxFrameHeight")
                .ok_or_else(|| bad("no maxFrameHeight"))?,
        },
        "SelectedEndpointsChangedEvent" => ClientMessage::SelectedEndpoints(
            string_list(obj.get("selectedEndpoints"))
                .map_err(|r| bad(&r))?
                .unwrap_or_default(),
        ),
        "PinnedEndpointsChangedEvent" => ClientMessage::PinnedEndpoints(
            string_list(obj.get("pinnedEndpoints"))
                .map_err(|r| bad(&r))?
                .unwrap_or_default(),
        ),
        "SourceVideoTypeMessage" => ClientMessage::SourceVideoType {
            source_name: string_field(&obj, "sourceName").ok_or_else(|| bad("no sourceName"))?,
            video_type: video_type(&obj).ok_or_else(|| bad("bad videoType"))?,
        },
        "VideoTypeMessage" => ClientMessage::VideoType {
            video_type: video_type(&obj).ok_or_else(|| bad("bad videoType"))?,
        },
        "ReceiverAudioSubscription" => {
            ClientMessage::ReceiverAudioSubscription(audio_subscription(&obj).map_err(|r| bad(&r))?)
        }
        _ => return Err(ChannelError::UnknownClass(class)),
    };
    Ok(msg)
}

fn int_field(obj: &Map<String, Value>, name: &str) -> Option<i64> {
    match obj.get(name)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Option<String> {
    match obj.get(name)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `videoType` as Videobridge's enum (case-insensitive): camera, desktop,
/// desktop_high_fps, none; written back lower-case.
fn video_type(obj: &Map<String, Value>) -> Option<String> {
    let v = string_field(obj, "videoType")?.to_ascii_lowercase();
    matches!(
        v.as_str(),
        "camera" | "desktop" | "desktop_high_fps" | "none"
    )
    .then_some(v)
}

fn string_list(v: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err("list item is not a string".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err("not a list".into()),
    }
}

fn video_constraints(v: &Value) -> Result<VideoConstraints, String> {
    let Value::Object(o) = v else {
        return Err("constraints are not an object".into());
    };
    let max_height = match o.get("maxHeight") {
        None | Some(Value::Null) => -1,
        Some(_) => int_field(o, "maxHeight").ok_or("maxHeight is not a number")?,
    };
    let max_frame_rate = o.get("maxFrameRate").and_then(Value::as_f64);
    Ok(VideoConstraints {
        max_height,
        max_frame_rate,
    })
}

fn receiver_constraints(obj: &Map<String, Value>) -> Result<ReceiverConstraints, String> {
    let mut rc = ReceiverConstraints {
        last_n: int_field(obj, "lastN"),
        assumed_bandwidth_bps: int_field(obj, "assumedBandwidthBps"),
        ..Default::default()
    };
    // Current clients name sources; 2.6726 names endpoints.
    rc.selected = match string_list(obj.get("selectedSources"))? {
        Some(l) => Some(l),
        None => string_list(obj.get("selectedEndpoints"))?,
    };
    rc.on_stage = match string_list(obj.get("onStageSources"))? {
        Some(l) => Some(l),
        None => string_list(obj.get("onStageEndpoints"))?,
    };
    if let Some(d) = obj.get("defaultConstraints").filter(|v| !v.is_null()) {
        rc.default_constraints = Some(video_constraints(d)?);
    }
    match obj.get("constraints") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            let mut constraints = BTreeMap::new();
            for (k, v) in map {
                constraints.insert(k.clone(), video_constraints(v)?);
            }
            rc.constraints = Some(constraints);
        }
        Some(_) => return Err("constraints is not an object".into()),
    }
    Ok(rc)
}

fn audio_subscription(obj: &Map<String, Value>) -> Result<AudioSubscription, String> {
    match string_field(obj, "mode").as_deref() {
        Some("All") => Ok(AudioSubscription::All),
        Some("None") => Ok(AudioSubscription::None),
        Some("Custom") => Ok(AudioSubscription::Custom {
            include: string_list(obj.get("include"))?.unwrap_or_default(),
            exclude: string_list(obj.get("exclude"))?.unwrap_or_default(),
        }),
        _ => Err("unknown mode".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_constraints_by_source_name() {
        let m = parse_client_message(
            r#"{"colibriClass":"ReceiverVideoConstraints","lastN":3,
                "selectedSources":["abcd-v0"],"onStageSources":["efgh-v0"],
                "defaultConstraints":{"maxHeight":180},
                "constraints":{"efgh-v0":{"maxHeight":720,"maxFrameRate":30}}}"#,
        )
        .unwrap();
        let ClientMessage::ReceiverVideoConstraints(rc) = m else {
            panic!("{m:?}")
        };
        assert_eq!(rc.last_n, Some(3));
        assert_eq!(rc.selected, Some(vec!["abcd-v0".to_string()]));
        assert_eq!(rc.on_stage, Some(vec!["efgh-v0".to_string()]));
        assert_eq!(rc.default_constraints.unwrap().max_height, 180);
        let c = rc.constraints.unwrap();
        assert_eq!(c["efgh-v0"].max_height, 720);
        assert_eq!(c["efgh-v0"].max_frame_rate, Some(30.0));
    }

    #[test]
    fn constraints_2_6726_by_endpoint_id() {
        let m = parse_client_message(
            r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,
                "selectedEndpoints":[],"onStageEndpoints":["efgh5678"],
                "defaultConstraints":{"maxHeight":180},
                "constraints":{"efgh5678":{"maxHeight":360}}}"#,
        )
        .unwrap();
        let ClientMessage::ReceiverVideoConstraints(rc) = m else {
            panic!("{m:?}")
        };
        assert_eq!(rc.on_stage, Some(vec!["efgh5678".to_string()]));
        assert_eq!(rc.selected, Some(vec![]));
        assert_eq!(rc.constraints.unwrap()["efgh5678"].max_height, 360);
        // Fields left out stay None (the receiver's earlier values hold).
        let m = parse_client_message(r#"{"colibriClass":"ReceiverVideoConstraints","lastN":2}"#)
            .unwrap();
        let ClientMessage::ReceiverVideoConstraints(rc) = m else {
            panic!("{m:?}")
        };
        assert_eq!(rc.last_n, Some(2));
        assert!(rc.selected.is_none() && rc.on_stage.is_none() && rc.constraints.is_none());
    }

    #[test]
    fn legacy_messages() {
        assert_eq!(
            parse_client_message(
                r#"{"colibriClass":"ReceiverVideoConstraint","maxFrameHeight":360}"#
            ),
            Ok(ClientMessage::ReceiverVideoConstraint {
                max_frame_height: 360
            })
        );
        assert_eq!(
            parse_client_message(
                r#"{"colibriClass":"SelectedEndpointsChangedEvent","selectedEndpoints":["a","b"]}"#
            ),
            Ok(ClientMessage::SelectedEndpoints(vec![
                "a".into(),
                "b".into()
            ]))
        );
        assert_eq!(
            parse_client_message(r#"{"colibriClass":"LastNChangedEvent","lastN":"4"}"#),
            Ok(ClientMessage::LastN(4))
        );
        assert_eq!(
            parse_client_message(r#"{"colibriClass":"VideoTypeMessage","videoType":"DESKTOP"}"#),
            Ok(ClientMessage::VideoType {
                video_type: "desktop".into()
            })
        );
    }

    #[test]
    fn endpoint_message_keeps_payload_and_drops_spoofed_from() {
        let m = parse_client_message(
            r#"{"colibriClass":"EndpointMessage","to":"","from":"spoof","msgPayload":{"type":"e2e"}}"#,
        )
        .unwrap();
        let ClientMessage::EndpointMessage { to, fields } = m else {
            panic!()
        };
        assert_eq!(to, "");
        assert!(!fields.contains_key("from"));
        assert_eq!(fields["msgPayload"]["type"], "e2e");
    }

    #[test]
    fn audio_subscription_modes() {
        assert_eq!(
            parse_client_message(
                r#"{"colibriClass":"ReceiverAudioSubscription","mode":"Custom","include":["a-a0"]}"#
            ),
            Ok(ClientMessage::ReceiverAudioSubscription(
                AudioSubscription::Custom {
                    include: vec!["a-a0".into()],
                    exclude: vec![]
                }
            ))
        );
        assert!(
            parse_client_message(r#"{"colibriClass":"ReceiverAudioSubscription","mode":"x"}"#)
                .is_err()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "null",
            "[1,2]",
            "{\"colibriClass\":5}",
            "{\"colibriClass\":\"Nope\"}",
            "{\"colibriClass\":\"LastNChangedEvent\"}",
            "{\"colibriClass\":\"ReceiverVideoConstraints\",\"constraints\":[1]}",
            "{\"colibriClass\":\"ReceiverVideoConstraints\",\"constraints\":{\"a\":{\"maxHeight\":\"x\"}}}",
            "{\"colibriClass\":\"EndpointMessage\",\"to\":7}",
            "{\"colibriClass\":\"SourceVideoTypeMessage\",\"sourceName\":\"a\",\"videoType\":\"bogus\"}",
        ] {
            assert!(parse_client_message(text).is_err(), "{text}");
        }
        let big = format!(
            "{{\"colibriClass\":\"EndpointStats\",\"x\":\"{}\"}}",
            "a".repeat(MAX_MESSAGE_SIZE)
        );
        assert!(matches!(
            parse_client_message(&big),
            Err(ChannelError::TooLarge(_))
        ));
    }

    /// Random values in the known fields of every class: never a panic.
    #[test]
    fn random_fields_never_panic() {
        use rand::{Rng, SeedableRng};
        let classes = [
            "ClientHello",
            "EndpointMessage",
            "EndpointStats",
            "LastNChangedEvent",
            "ReceiverVideoConstraints",
            "ReceiverVideoConstraint",
            "SelectedEndpointsChangedEvent",
            "PinnedEndpointsChangedEvent",
            "SourceVideoTypeMessage",
            "VideoTypeMessage",
            "ReceiverAudioSubscription",
        ];
        let keys = [
            "to",
            "from",
            "lastN",
            "maxFrameHeight",
            "selectedEndpoints",
            "selectedSources",
            "onStageSources",
            "onStageEndpoints",
            "defaultConstraints",
            "constraints",
            "sourceName",
            "videoType",
            "mode",
            "include",
            "exclude",
            "maxHeight",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        fn value(rng: &mut rand::rngs::StdRng, keys: &[&str], depth: u32) -> Value {
            match rng.gen_range(0..7) {
                0 => Value::Null,
                1 => Value::Bool(rng.r#gen()),
                2 => Value::from(rng.gen_range(-5i64..5000)),
                3 => Value::from(rng.r#gen::<f64>() * 1e20),
                4 => Value::from(["camera", "DESKTOP", "All", "Custom", "x"][rng.gen_range(0..5)]),
                5 if depth < 3 => Value::Array(
                    (0..rng.gen_range(0..4))
                        .map(|_| value(rng, keys, depth + 1))
                        .collect(),
                ),
                _ if depth < 3 => {
                    let mut m = Map::new();
                    for _ in 0..rng.gen_range(0..4) {
                        let k = keys[rng.gen_range(0..keys.len())];
                        m.insert(k.into(), value(rng, keys, depth + 1));
                    }
                    Value::Object(m)
                }
                _ => Value::Null,
            }
        }
        for _ in 0..5000 {
            let mut m = Map::new();
            m.insert(
                "colibriClass".into(),
                classes[rng.gen_range(0..classes.len())].into(),
            );
            for _ in 0..rng.gen_range(0..5) {
                let k = keys[rng.gen_range(0..keys.len())];
                m.insert(k.into(), value(&mut rng, &keys, 0));
            }
            let _ = parse_client_message(&Value::Object(m).to_string());
        }
    }
}
