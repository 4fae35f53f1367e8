//! Jicofo's bridge selection strategies over made-up brewery presences:
//! single, split, region-based, intra-region; the per-conference maximum,
//! octo and relay ids, versions, and bridges that must not get new
//! participants.

use crate::common;

use std::time::Instant;

use common::*;
use focus_component::bridges::{Brewery, SelectionConfig};
use focus_component::selection::Strategy;
use xmpp_core::Element;

fn stats_presence(nick: &str, stats: &[(&str, &str)]) -> Element {
    let stats: String = stats
        .iter()
        .map(|(n, v)| format!("<stat name='{n}' value='{v}'/>"))
        .collect();
    el(&format!(
        "<presence from='{BREWERY}/{nick}'><stats xmlns='http://jitsi.org/protocol/colibri'>{stats}</stats></presence>"
    ))
}

type Row<'a> = (&'a str, &'a [(&'a str, &'a str)]);

fn brewery(config: SelectionConfig, rows: &[Row]) -> Brewery {
    let mut b = Brewery::new(config);
    for (nick, stats) in rows {
        b.on_presence(&format!("{BREWERY}/{nick}"), &stats_presence(nick, stats));
    }
    b
}

fn config(strategy: Strategy, octo: bool) -> SelectionConfig {
    SelectionConfig {
        strategy,
        octo,
        ..SelectionConfig::default()
    }
}

/// Selection for a conference on `conference` (nick, participants), by nick.
fn pick(b: &Brewery, conference: &[(&str, usize)], region: Option<&str>) -> Option<String> {
    let jids: Vec<(String, usize)> = conference
        .iter()
        .map(|(n, c)| (format!("{BREWERY}/{n}"), *c))
        .collect();
    let conf: Vec<(&str, usize)> = jids.iter().map(|(j, c)| (j.as_str(), *c)).collect();
    b.select(Instant::now(), &conf, region)
        .map(|j| j.rsplit('/').next().unwrap().to_string())
}

const TWO_RELAYS: &[Row] = &[
    ("a", &[("stress_level", "0.1"), ("relay_id", "ra")]),
    ("b", &[("stress_level", "0.2"), ("relay_id", "rb")]),
];

#[test]
fn strategies_are_parsed_from_their_option_names_and_jicofos_class_names() {
    for (text, s) in [
        ("single", Strategy::Single),
        ("split", Strategy::Split),
        ("region", Strategy::RegionBased),
        ("region_based", Strategy::RegionBased),
        ("intra_region", Strategy::IntraRegion),
        ("SplitBridgeSelectionStrategy", Strategy::Split),
        (
            "org.jitsi.jicofo.bridge.RegionBasedBridgeSelectionStrategy",
            Strategy::RegionBased,
        ),
        ("IntraRegionBridgeSelectionStrategy", Strategy::IntraRegion),
    ] {
        assert_eq!(text.parse::<Strategy>().unwrap(), s, "{text}");
    }
    assert!("roundrobin".parse::<Strategy>().is_err());
}

#[test]
fn single_keeps_a_conference_on_one_bridge_even_with_octo() {
    for octo in [false, true] {
        let b = brewery(config(Strategy::Single, octo), TWO_RELAYS);
        assert_eq!(pick(&b, &[], None).as_deref(), Some("a"));
        assert_eq!(pick(&b, &[("b", 3)], None).as_deref(), Some("b"));
        // Past the per-bridge maximum it still stays: single is single.
        assert_eq!(pick(&b, &[("b", 200)], None).as_deref(), Some("b"));
    }
}

#[test]
fn split_spreads_a_conference_over_every_bridge() {
    // Split forces octo on, as Jicofo does.
    let b = brewery(config(Strategy::Split, false), TWO_RELAYS);
    assert_eq!(pick(&b, &[], None).as_deref(), Some("a"));
    assert_eq!(pick(&b, &[("a", 1)], None).as_deref(), Some("b"));
    assert_eq!(pick(&b, &[("a", 1), ("b", 1)], None).as_deref(), Some("a"));
    assert_eq!(pick(&b, &[("a", 2), ("b", 1)], None).as_deref(), Some("b"));
}

#[test]
fn a_second_bridge_needs_relay_ids_and_the_same_version() {
    // The conference's bridge has no relay id: it stays there.
    let b = brewery(
        config(Strategy::Split, true),
        &[
            ("a", &[("stress_level", "0.1")]),
            ("b", &[("stress_level", "0.2"), ("relay_id", "rb")]),
        ],
    );
    assert_eq!(pick(&b, &[("a", 1)], None).as_deref(), Some("a"));
    // A candidate without a relay id is never added to a conference.
    let b = brewery(
        config(Strategy::Split, true),
        &[
            ("a", &[("stress_level", "0.1"), ("relay_id", "ra")]),
            ("b", &[("stress_level", "0.2")]),
        ],
    );
    assert_eq!(pick(&b, &[("a", 1)], None).as_deref(), Some("a"));
    // Versions are never mixed in a conference.
    let b = brewery(
        config(Strategy::Split, true),
        &[
            (
                "a",
                &[
                    ("stress_level", "0.1"),
                    ("relay_id", "ra"),
                    ("version", "1"),
                ],
            ),
            (
                "b",
                &[
                    ("stress_level", "0.2"),
                    ("relay_id", "rb"),
                    ("version", "2"),
                ],
            ),
            (
                "c",
                &[
                    ("stress_level", "0.3"),
                    ("relay_id", "rc"),
                    ("version", "1"),
                ],
            ),
        ],
    );
    assert_eq!(pick(&b, &[("a", 1)], None).as_deref(), Some("c"));
    assert_eq!(pick(&b, &[("b", 1)], None).as_deref(), Some("b"));
    // Jicofo's full version: the release id counts too.
    let b = brewery(
        config(Strategy::Split, true),
        &[
            (
                "a",
                &[("relay_id", "ra"), ("version", "1"), ("release", "r7")],
            ),
            (
                "b",
                &[("relay_id", "rb"), ("version", "1"), ("release", "r8")],
            ),
        ],
    );
    assert_eq!(pick(&b, &[("a", 1)], None).as_deref(), Some("a"));
}

#[test]
fn region_based_prefers_the_participants_region_then_load() {
    let rows: &[Row] = &[
        (
            "eu1",
            &[
                ("stress_level", "0.1"),
                ("region", "eu"),
                ("relay_id", "e1"),
            ],
        ),
        (
            "eu2",
            &[
                ("stress_level", "0.3"),
                ("region", "eu"),
                ("relay_id", "e2"),
            ],
        ),
        (
            "us1",
            &[
                ("stress_level", "0.2"),
                ("region", "us"),
                ("relay_id", "u1"),
            ],
        ),
        (
            "us2",
            &[
                ("stress_level", "0.4"),
                ("region", "us"),
                ("relay_id", "u2"),
            ],
        ),
    ];
    let b = brewery(config(Strategy::RegionBased, true), rows);
    // Happy case: the least loaded in the region.
    assert_eq!(pick(&b, &[], Some("us")).as_deref(), Some("us1"));
    // A conference bridge in the region is preferred over a less loaded one.
    assert_eq!(pick(&b, &[("eu2", 2)], Some("eu")).as_deref(), Some("eu2"));
    // The conference has no bridge in the region: one is added.
    assert_eq!(pick(&b, &[("eu1", 2)], Some("us")).as_deref(), Some("us1"));
    // No bridge in the region: the conference's bridge, not overloaded.
    assert_eq!(pick(&b, &[("eu2", 2)], Some("ap")).as_deref(), Some("eu2"));
    assert_eq!(pick(&b, &[], Some("ap")).as_deref(), Some("eu1"));
    // The conference's bridge in the region is full (80 of its
    // participants): another in the region.
    assert_eq!(pick(&b, &[("us1", 80)], Some("us")).as_deref(), Some("us2"));
    // Everything in the region loaded: the conference's bridge there.
    assert_eq!(
        pick(&b, &[("us1", 80), ("us2", 80)], Some("us")).as_deref(),
        Some("us1")
    );
    // Without octo the conference stays where it is.
    let b = brewery(config(Strategy::RegionBased, false), rows);
    assert_eq!(pick(&b, &[("eu1", 2)], Some("us")).as_deref(), Some("eu1"));
}

#[test]
fn region_based_falls_back_to_the_local_region() {
    let rows: &[Row] = &[
        ("eu1", &[("stress_level", "0.5"), ("region", "eu")]),
        ("us1", &[("stress_level", "0.2"), ("region", "us")]),
    ];
    let mut c = config(Strategy::RegionBased, true);
    c.local_region = Some("eu".into());
    let b = brewery(c, rows);
    assert_eq!(pick(&b, &[], None).as_deref(), Some("eu1"));
    assert_eq!(pick(&b, &[], Some("ap")).as_deref(), Some("eu1"));
    assert_eq!(pick(&b, &[], Some("us")).as_deref(), Some("us1"));
}

#[test]
fn intra_region_balances_within_the_conferences_region() {
    let rows: &[Row] = &[
        (
            "eu1",
            &[
                ("stress_level", "0.1"),
                ("region", "eu"),
                ("relay_id", "e1"),
            ],
        ),
        (
            "eu2",
            &[
                ("stress_level", "0.3"),
                ("region", "eu"),
                ("relay_id", "e2"),
            ],
        ),
        (
            "us1",
            &[
                ("stress_level", "0.0"),
                ("region", "us"),
                ("relay_id", "u1"),
            ],
        ),
    ];
    let mut c = config(Strategy::IntraRegion, true);
    c.max_participants_per_bridge = 2;
    let b = brewery(c, rows);
    assert_eq!(pick(&b, &[], Some("eu")).as_deref(), Some("eu1"));
    // A participant from elsewhere still joins the conference's region.
    assert_eq!(pick(&b, &[("eu1", 1)], Some("us")).as_deref(), Some("eu1"));
    // eu1 is full for this conference: eu2, never us1.
    assert_eq!(pick(&b, &[("eu1", 2)], Some("us")).as_deref(), Some("eu2"));
    // Both full: the least loaded of the conference's bridges in the region.
    assert_eq!(
        pick(&b, &[("eu1", 2), ("eu2", 2)], None).as_deref(),
        Some("eu1")
    );
}

#[test]
fn no_new_participants_on_stressed_unhealthy_draining_or_stopping_bridges() {
    let rows: &[Row] = &[
        ("a", &[("stress_level", "0.1"), ("relay_id", "ra")]),
        (
            "drain",
            &[
                ("stress_level", "0.0"),
                ("relay_id", "rd"),
                ("drain", "true"),
            ],
        ),
        (
            "stop",
            &[
                ("stress_level", "0.0"),
                ("relay_id", "rs"),
                ("graceful_shutdown", "true"),
            ],
        ),
        (
            "sick",
            &[
                ("stress_level", "0.0"),
                ("relay_id", "rk"),
                ("healthy", "false"),
            ],
        ),
        ("busy", &[("stress_level", "0.95"), ("relay_id", "rb")]),
    ];
    let b = brewery(config(Strategy::Split, true), rows);
    assert_eq!(pick(&b, &[], None).as_deref(), Some("a"));
    // Split: a bridge not yet in the conference, the stressed one last.
    assert_eq!(pick(&b, &[("a", 1)], None).as_deref(), Some("busy"));
    let b = brewery(config(Strategy::RegionBased, true), rows);
    // Region-based: the conference's bridge, not the overloaded one.
    assert_eq!(pick(&b, &[("a", 4)], None).as_deref(), Some("a"));
}

#[test]
fn lilt_focus_flags_set_the_selection_options() {
    use clap::Parser;
    use focus_component::FocusArgs;
    let base = [
        "focus",
        "--xmpp",
        "127.0.0.1:5222",
        "--jid",
        "focus@auth.example.com",
        "--domain",
        "example.com",
        "--muc",
        "conference.example.com",
        "--brewery",
        "jvbbrewery@internal.auth.example.com",
    ];
    let defaults = FocusArgs::try_parse_from(base).unwrap().options().selection;
    assert_eq!(defaults.strategy, Strategy::Single);
    assert!(!defaults.octo);
    assert_eq!(defaults.max_participants_per_bridge, 80);
    let mut argv = base.to_vec();
    argv.extend([
        "--bridge-selection",
        "region",
        "--octo",
        "--max-bridge-participants",
        "40",
        "--local-region",
        "eu-west",
    ]);
    let s = FocusArgs::try_parse_from(argv).unwrap().options().selection;
    assert_eq!(s.strategy, Strategy::RegionBased);
    assert!(s.octo);
    assert_eq!(s.max_participants_per_bridge, 40);
    assert_eq!(s.local_region.as_deref(), Some("eu-west"));
    let mut argv = base.to_vec();
    argv.extend(["--bridge-selection", "roundrobin"]);
    assert!(FocusArgs::try_parse_from(argv).is_err());
}
