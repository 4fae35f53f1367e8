//! Jicofo's observability: health (an operational bridge), the stats JSON
//! and OpenMetrics, and the HTTP answers of `lilt focus --http`.

use crate::common;

use std::time::Duration;

use common::*;
use focus_component::cli::http_response;

#[test]
fn health_and_stats_follow_the_focus() {
    let mut h = Harness::new();
    let st = h.focus.stats(h.now);
    assert!(!st.healthy(), "no bridge: unhealthy");
    assert_eq!(
        http_response("/about/health", Some(&st)).0,
        "500 Internal Server Error"
    );

    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let alloc = h.join("aaaa", PLAIN_FEATURES);
    let out = h.answer_allocation(&alloc);
    let sid = sid_of(&offer_to(&out, "aaaa").unwrap());
    h.accept("aaaa", &sid, &src(5, "a a"), "");

    let st = h.focus.stats(h.now);
    assert!(st.healthy());
    assert_eq!(http_response("/about/health", Some(&st)).0, "200 OK");
    let json = st.to_json();
    assert_eq!(json["conferences"], 1);
    assert_eq!(json["participants"], 1);
    assert_eq!(json["jingle_sessions"], 1);
    assert_eq!(json["bridge_selector"]["bridge_count"], 1);
    assert_eq!(json["bridge_selector"]["operational_bridge_count"], 1);
    let (status, ctype, body) = http_response("/stats", Some(&st));
    assert_eq!((status, ctype), ("200 OK", "application/json"));
    assert!(body.contains("\"conferences\":1"));
    let (_, ctype, metrics) = http_response("/metrics", Some(&st));
    assert!(ctype.starts_with("application/openmetrics-text"));
    assert!(metrics.contains("jicofo_participants 1\n"));
    assert!(metrics.ends_with("# EOF\n"));
    assert_eq!(http_response("/nope", Some(&st)).0, "404 Not Found");

    // The only bridge stops answering: unhealthy.
    h.advance(Duration::from_secs(16));
    let st = h.focus.stats(h.now);
    assert_eq!(st.operational_bridges, 0);
    assert!(!st.healthy());
    assert_eq!(st.counters.health_check_failures, 1);
}
