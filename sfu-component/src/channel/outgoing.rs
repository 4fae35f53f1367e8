//! Messages the bridge sends on a bridge channel, as JSON strings.

use serde_json::{Map, Value, json};

/// `ServerHello`, sent when a channel is accepted.
pub fn server_hello(version: Option<&str>) -> String {
    match version {
        Some(v) => json!({"colibriClass": "ServerHello", "version": v}).to_string(),
        None => json!({"colibriClass": "ServerHello"}).to_string(),
    }
}

/// An `EndpointMessage` as relayed: the sender's fields with `to` kept and
/// `from` set to the sending endpoint.
pub fn endpoint_message(to: &str, from: &str, fields: &Map<String, Value>) -> String {
    let mut obj = fields.clone();
    obj.insert("colibriClass".into(), "EndpointMessage".into());
    obj.insert("to".into(), to.into());
    obj.insert("from".into(), from.into());
    Value::Object(obj).to_string()
}

/// `EndpointStats` as relayed, with `from` set.
pub fn endpoint_stats(from: &str, fields: &Map<String, Value>) -> String {
    let mut obj = fields.clone();
    obj.insert("colibriClass".into(), "EndpointStats".into());
    obj.insert("from".into(), from.into());
    Value::Object(obj).to_string()
}

/// `DominantSpeakerEndpointChangeEvent`.
pub fn dominant_speaker(speaker: &str, previous: &[String], silence: bool) -> String {
    json!({
        "colibriClass": "DominantSpeakerEndpointChangeEvent",
        "dominantSpeakerEndpoint": speaker,
        "previousSpeakers": previous,
        "silence": silence,
    })
    .to_string()
}

/// `ForwardedSources` (current clients): the video sources forwarded to
/// this endpoint.
pub fn forwarded_sources(sources: &[String]) -> String {
    json!({"colibriClass": "ForwardedSources", "forwardedSources": sources}).to_string()
}

/// `LastNEndpointsChangeEvent` (2021 clients): the endpoints whose video
/// this endpoint receives, and which of them have just entered.
pub fn last_n_endpoints(endpoints: &[String], entering: &[String]) -> String {
    json!({
        "colibriClass": "LastNEndpointsChangeEvent",
        "lastNEndpoints": endpoints,
        "endpointsEnteringLastN": entering,
    })
    .to_string()
}

/// `SenderSourceConstraints` (current clients): the largest height any
/// receiver wants of this sender's source.
pub fn sender_source_constraints(source_name: &str, max_height: i64) -> String {
    json!({
        "colibriClass": "SenderSourceConstraints",
        "sourceName": source_name,
        "maxHeight": max_height,
    })
    .to_string()
}

/// `SenderVideoConstraints` (2021 clients): the same, endpoint-level.
pub fn sender_video_constraints(ideal_height: i64) -> String {
    json!({
        "colibriClass": "SenderVideoConstraints",
        "videoConstraints": {"idealHeight": ideal_height},
    })
    .to_string()
}

/// `EndpointConnectivityStatusChangeEvent` (`active` is a string, as
/// Videobridge writes it).
pub fn connectivity_status(endpoint: &str, active: bool) -> String {
    json!({
        "colibriClass": "EndpointConnectivityStatusChangeEvent",
        "endpoint": endpoint,
        "active": active.to_string(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn shapes() {
        assert_eq!(
            parse(&server_hello(Some("1.0"))),
            json!({"colibriClass":"ServerHello","version":"1.0"})
        );
        let d = parse(&dominant_speaker("a", &["b".into()], false));
        assert_eq!(d["dominantSpeakerEndpoint"], "a");
        assert_eq!(d["previousSpeakers"], json!(["b"]));
        assert_eq!(d["silence"], false);
        let mut f = Map::new();
        f.insert("msgPayload".into(), json!({"x": 1}));
        let m = parse(&endpoint_message("", "a", &f));
        assert_eq!(m["from"], "a");
        assert_eq!(m["to"], "");
        assert_eq!(m["msgPayload"]["x"], 1);
        assert_eq!(
            parse(&sender_video_constraints(360))["videoConstraints"]["idealHeight"],
            360
        );
        assert_eq!(
            parse(&sender_source_constraints("a-v0", 720))["maxHeight"],
            720
        );
        assert_eq!(parse(&connectivity_status("a", true))["active"], "true");
    }
}
