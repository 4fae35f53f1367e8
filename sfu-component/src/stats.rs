//! The bridge's statistics with Videobridge's names: the brewery presence's
//! `<stats xmlns='http://jitsi.org/protocol/colibri'>`, `/colibri/stats`
//! JSON and the OpenMetrics text of `/metrics`, all from one
//! [`BridgeStats`] snapshot; and the health-check IQ
//! (`<healthcheck xmlns='http://jitsi.org/protocol/healthcheck'/>`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use xmpp_core::Element;

use crate::media::MediaStats;

pub const NS_COLIBRI_STATS: &str = "http://jitsi.org/protocol/colibri";
pub const NS_HEALTHCHECK: &str = "http://jitsi.org/protocol/healthcheck";

/// Buckets of the conference size histogram (Videobridge: 22).
pub const CONFERENCE_SIZE_BUCKETS: usize = 22;

/// Packet rate (packets per second, both directions) at which the bridge
/// reports a stress level of 1.0 (Videobridge's load threshold default).
pub const LOAD_THRESHOLD_PPS: f64 = 50_000.0;

/// What Jicofo reads to pick a bridge (Bridge.kt) and what operators
/// graph, at one instant.
#[derive(Debug, Clone, Default)]
pub struct BridgeStats {
    pub media: MediaStats,
    pub conferences: u64,
    pub participants: u64,
    pub largest_conference: u64,
    /// `conference_sizes[i]`: conferences with `i` endpoints (the last
    /// bucket: that many or more), as Videobridge's histogram.
    pub conference_sizes: Vec<u64>,
    pub total_conferences_created: u64,
    pub total_conferences_completed: u64,
    pub total_participants: u64,
    pub total_dominant_speaker_changes: u64,
    pub total_colibri_web_socket_messages_received: u64,
    pub total_colibri_web_socket_messages_sent: u64,
    pub channel_messages_dropped: u64,
    pub endpoints_with_channel: u64,
    /// Receivers with a wanted source suspended for lack of bandwidth.
    pub endpoints_with_suspended_sources: u64,
    /// Receivers allocated more than their estimate (an on-stage screen
    /// share), Videobridge's `num_eps_oversending`.
    pub endpoints_oversending: u64,
    /// Receivers whose allocation is limited by their bandwidth estimate
    /// (some source below its ideal layer).
    pub endpoints_bandwidth_limited: u64,
    /// Sum over receivers of the target and ideal bit rates (bps).
    pub total_target_bps: u64,
    pub total_ideal_bps: u64,
    pub graceful_shutdown: bool,
    pub drain: bool,
    pub healthy: bool,
    pub version: String,
    pub release: String,
    pub region: Option<String>,
    pub relay_id: Option<String>,
    /// Unix time in milliseconds when the snapshot was made.
    pub current_timestamp_ms: u64,
}

impl BridgeStats {
    /// Packet rate against [`LOAD_THRESHOLD_PPS`], as Videobridge's
    /// `JvbLoadManager` reports it.
    pub fn stress_level(&self) -> f64 {
        let pps = (self.media.packet_rate_download + self.media.packet_rate_upload) as f64;
        pps / LOAD_THRESHOLD_PPS
    }

    /// Stress per participant (Jicofo adds it for each recently placed one).
    pub fn average_participant_stress(&self) -> f64 {
        if self.participants == 0 {
            0.01
        } else {
            (self.stress_level() / self.participants as f64).max(0.001)
        }
    }

    /// Every stat as (name, JSON value), in Videobridge's names.
    pub fn entries(&self) -> Vec<(&'static str, Value)> {
        let m = &self.media;
        let mut v: Vec<(&'static str, Value)> = vec![
            ("stress_level", json!(self.stress_level())),
            (
                "average_participant_stress",
                json!(self.average_participant_stress()),
            ),
            ("conferences", json!(self.conferences)),
            ("participants", json!(self.participants)),
            ("endpoints", json!(self.participants)),
            ("largest_conference", json!(self.largest_conference)),
            ("conference_sizes", json!(self.conference_sizes)),
            ("endpoints_sending_audio", json!(m.endpoints_sending_audio)),
            ("endpoints_sending_video", json!(m.endpoints_sending_video)),
            ("bit_rate_download", json!(m.bitrate_download_bps / 1000)),
            ("bit_rate_upload", json!(m.bitrate_upload_bps / 1000)),
            ("packet_rate_download", json!(m.packet_rate_download)),
            ("packet_rate_upload", json!(m.packet_rate_upload)),
            ("total_packets_received", json!(m.packets_received)),
            ("total_packets_sent", json!(m.packets_sent)),
            ("total_bytes_received", json!(m.bytes_received)),
            ("total_bytes_sent", json!(m.bytes_sent)),
            ("total_packets_dropped", json!(m.packets_dropped)),
            ("total_nacks_received", json!(m.nacks_received)),
            ("total_retransmissions_sent", json!(m.retransmissions_sent)),
            ("total_keyframe_requests", json!(m.keyframe_requests)),
            (
                "total_conferences_created",
                json!(self.total_conferences_created),
            ),
            (
                "total_conferences_completed",
                json!(self.total_conferences_completed),
            ),
            ("total_participants", json!(self.total_participants)),
            (
                "total_dominant_speaker_changes",
                json!(self.total_dominant_speaker_changes),
            ),
            (
                "total_colibri_web_socket_messages_received",
                json!(self.total_colibri_web_socket_messages_received),
            ),
            (
                "total_colibri_web_socket_messages_sent",
                json!(self.total_colibri_web_socket_messages_sent),
            ),
            (
                "endpoints_with_suspended_sources",
                json!(self.endpoints_with_suspended_sources),
            ),
            ("num_eps_oversending", json!(self.endpoints_oversending)),
            (
                "endpoints_bandwidth_limited",
                json!(self.endpoints_bandwidth_limited),
            ),
            ("total_target_bitrate_bps", json!(self.total_target_bps)),
            ("total_ideal_bitrate_bps", json!(self.total_ideal_bps)),
            ("graceful_shutdown", json!(self.graceful_shutdown)),
            ("shutting_down", json!(self.graceful_shutdown)),
            ("drain", json!(self.drain)),
            ("healthy", json!(self.healthy)),
            ("version", json!(self.version)),
            ("release", json!(self.release)),
            ("colibri2", json!(true)),
        ];
        if self.current_timestamp_ms > 0 {
            v.push(("current_timestamp", json!(self.current_timestamp_ms)));
        }
        if let Some(r) = &self.region {
            v.push(("region", json!(r)));
        }
        if let Some(r) = &self.relay_id {
            v.push(("relay_id", json!(r)));
        }
        v
    }

    /// `<stats xmlns='http://jitsi.org/protocol/colibri'>` with one
    /// `<stat name value/>` per entry (the brewery presence's payload).
    pub fn to_element(&self) -> Element {
        let mut stats = Element::new("stats", NS_COLIBRI_STATS);
        for (name, value) in self.entries() {
            if value.is_array() {
                continue;
            }
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            stats.push_child(
                Element::new("stat", NS_COLIBRI_STATS)
                    .attr("name", name)
                    .attr("value", text),
            );
        }
        stats
    }

    /// The `/colibri/stats` JSON object.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        for (name, value) in self.entries() {
            obj.insert(name.to_string(), value);
        }
        Value::Object(obj)
    }

    /// OpenMetrics text for `/metrics` (`jitsi_jvb_` prefix as
    /// Videobridge's Prometheus names).
    pub fn to_openmetrics(&self) -> String {
        let m = &self.media;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# TYPE jitsi_jvb_{name} counter\n# HELP jitsi_jvb_{name} {help}\njitsi_jvb_{name}_total {value}\n"
            ));
        };
        counter(
            "packets_received",
            "RTP/RTCP packets received.",
            m.packets_received,
        );
        counter("packets_sent", "RTP/RTCP packets sent.", m.packets_sent);
        counter("bytes_received", "Bytes received.", m.bytes_received);
        counter("bytes_sent", "Bytes sent.", m.bytes_sent);
        counter(
            "packets_dropped",
            "Datagrams dropped as malformed or unknown.",
            m.packets_dropped,
        );
        counter("nacks_received", "NACKs received.", m.nacks_received);
        counter(
            "retransmissions_sent",
            "Retransmissions sent.",
            m.retransmissions_sent,
        );
        counter(
            "keyframe_requests",
            "Keyframe requests (PLI/FIR) routed.",
            m.keyframe_requests,
        );
        counter(
            "conferences_created",
            "Conferences created.",
            self.total_conferences_created,
        );
        counter(
            "colibri_web_socket_messages_received",
            "Bridge channel messages received.",
            self.total_colibri_web_socket_messages_received,
        );
        counter(
            "colibri_web_socket_messages_dropped",
            "Bridge channel messages ignored as malformed or unknown.",
            self.channel_messages_dropped,
        );
        let mut gauge = |name: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# TYPE jitsi_jvb_{name} gauge\n# HELP jitsi_jvb_{name} {help}\njitsi_jvb_{name} {value}\n"
            ));
        };
        gauge(
            "conferences",
            "Current conferences.",
            self.conferences.to_string(),
        );
        gauge(
            "endpoints",
            "Current endpoints.",
            self.participants.to_string(),
        );
        gauge("stress", "Stress level.", self.stress_level().to_string());
        gauge(
            "healthy",
            "1 when healthy.",
            u8::from(self.healthy).to_string(),
        );
        gauge(
            "endpoints_with_suspended_sources",
            "Endpoints with video suspended for lack of bandwidth.",
            self.endpoints_with_suspended_sources.to_string(),
        );
        gauge(
            "endpoints_oversending",
            "Endpoints sent more than their bandwidth estimate.",
            self.endpoints_oversending.to_string(),
        );
        out.push_str("# EOF\n");
        out
    }
}

/// Videobridge's `/debug` JSON: the bridge's state and, for one
/// conference (`full`: with every endpoint's state, else endpoint ids to
/// stats ids) or all of them, the conferences; for one endpoint only that
/// endpoint. `None` when the conference or endpoint is unknown.
pub fn debug_json(
    stats: &BridgeStats,
    debug: &BTreeMap<String, Value>,
    conference: Option<&str>,
    endpoint: Option<&str>,
) -> Option<Value> {
    let mut conferences = Map::new();
    match conference {
        None => {
            for (id, c) in debug.iter() {
                conferences.insert(id.clone(), shallow(c));
            }
        }
        Some(wanted) => {
            let (id, c) = debug.iter().find(|(id, c)| {
                id.as_str() == wanted || c.get("meetingId").and_then(Value::as_str) == Some(wanted)
            })?;
            let mut c = c.clone();
            if let Some(ep) = endpoint {
                let endpoints = c.get_mut("endpoints")?.as_object_mut()?;
                let state = endpoints.remove(ep)?;
                endpoints.clear();
                endpoints.insert(ep.to_string(), state);
            }
            conferences.insert(id.clone(), c);
        }
    }
    let shutdown = if stats.graceful_shutdown {
        "GRACEFUL_SHUTDOWN"
    } else {
        "RUNNING"
    };
    Some(json!({
        "shutdownState": shutdown,
        "drain": stats.drain,
        "time": stats.current_timestamp_ms,
        "load-management": {"stress": stats.stress_level()},
        "conferences": conferences,
    }))
}

/// A conference's debug state without the endpoints' details (endpoint
/// id to stats id), as Videobridge's `/debug` lists conferences.
fn shallow(c: &Value) -> Value {
    let mut out = Map::new();
    for key in ["id", "name", "meetingId"] {
        if let Some(v) = c.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    let endpoints: Map<String, Value> = c
        .get("endpoints")
        .and_then(Value::as_object)
        .map(|eps| {
            eps.iter()
                .map(|(id, e)| (id.clone(), e.get("statsId").cloned().unwrap_or(Value::Null)))
                .collect()
        })
        .unwrap_or_default();
    out.insert("endpoints".into(), Value::Object(endpoints));
    Value::Object(out)
}

/// Is this stanza a health-check IQ?
pub fn is_healthcheck(iq: &Element) -> bool {
    iq.name() == "iq"
        && iq.type_() == Some("get")
        && iq.get_child("healthcheck", NS_HEALTHCHECK).is_some()
}

/// The answer to a health check: an empty result when healthy, else
/// `internal-server-error` as Videobridge.
pub fn healthcheck_reply(iq: &Element, healthy: bool) -> Element {
    if healthy {
        iq.reply()
    } else {
        xmpp_core::StanzaError::internal_server_error()
            .with_text("unhealthy")
            .reply_to(iq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_element_has_jicofo_names() {
        let s = BridgeStats {
            conferences: 2,
            participants: 5,
            healthy: true,
            version: "1.0".into(),
            region: Some("eu".into()),
            relay_id: Some("jvb-1".into()),
            ..Default::default()
        };
        let el = s.to_element();
        let get = |n: &str| {
            el.children()
                .find(|c| c.get_attr("name") == Some(n))
                .and_then(|c| c.get_attr("value"))
                .map(str::to_string)
        };
        assert_eq!(get("conferences").as_deref(), Some("2"));
        assert_eq!(get("participants").as_deref(), Some("5"));
        assert_eq!(get("stress_level").as_deref(), Some("0.0"));
        assert_eq!(get("healthy").as_deref(), Some("true"));
        assert_eq!(get("graceful_shutdown").as_deref(), Some("false"));
        assert_eq!(get("drain").as_deref(), Some("false"));
        assert_eq!(get("version").as_deref(), Some("1.0"));
        assert_eq!(get("region").as_deref(), Some("eu"));
        assert_eq!(get("relay_id").as_deref(), Some("jvb-1"));
        assert!(get("average_participant_stress").is_some());
        assert!(s.to_openmetrics().ends_with("# EOF\n"));
    }
}
