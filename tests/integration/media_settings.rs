//! `jitsi_focus` / `jitsi_videobridge` on the Jitsi fixtures of ../shared:
//! every address derived from the hosts the deployment already has.
//! Needs ../shared (skipped, saying so, without it).

use std::path::{Path, PathBuf};

use lilt::media::settings;

fn fixture(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(name)
        .join("prosody.cfg.lua");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipping: ../shared not found ({} is missing)",
            path.display()
        );
        None
    }
}

/// Loads the fixture with `extra` appended (through an Include, as a user's
/// own conf.d file would add it).
fn load(name: &str, extra: &str) -> Option<xmpp_core::ServerConfig> {
    let main = fixture(name)?;
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("prosody.cfg.lua");
    let fixture_dir = main.parent().unwrap().parent().unwrap().to_path_buf();
    std::fs::write(dir.path().join("media.cfg.lua"), extra).unwrap();
    std::fs::write(
        &top,
        format!(
            "Include {:?}\nInclude {:?}\n",
            fixture_dir.join(name).join("prosody.cfg.lua"),
            dir.path().join("media.cfg.lua")
        ),
    )
    .unwrap();
    let options = lua_compat::config::LoadOptions {
        credential_fallback: lua_compat::config::CredentialFallback::Warn,
        ..Default::default()
    };
    Some(lua_compat::config::load_with(&top, &options).unwrap())
}

#[test]
fn debian_defaults() {
    let Some(config) = load(
        "jitsi-debian",
        "jitsi_focus = {}\njitsi_videobridge = true\n",
    ) else {
        return;
    };
    let s = settings(&config).unwrap();
    let focus = s.focus.unwrap();
    assert_eq!(focus.jid.to_string(), "focus@auth.meet.example.com");
    assert_eq!(focus.domain, "meet.example.com");
    assert_eq!(focus.muc, "conference.meet.example.com");
    assert_eq!(
        focus.brewery.to_string(),
        "jvbbrewery@internal.auth.meet.example.com"
    );
    let bridge = s.bridge.unwrap();
    assert_eq!(bridge.jid.to_string(), "jvb@auth.meet.example.com");
    assert_eq!(bridge.brewery, focus.brewery);
    assert_eq!(bridge.udp_port, 10000);
    assert_eq!(
        bridge.ws_url_base.as_deref(),
        Some("wss://meet.example.com/colibri-ws")
    );
}

#[test]
fn docker_defaults() {
    let Some(config) = load(
        "jitsi-docker",
        "jitsi_focus = true\njitsi_videobridge = { addresses = { \"192.0.2.7\" }; http = \"127.0.0.1:0\" }\n",
    ) else {
        return;
    };
    let s = settings(&config).unwrap();
    let focus = s.focus.unwrap();
    assert_eq!(focus.domain, "meet.jitsi");
    assert_eq!(focus.muc, "muc.meet.jitsi");
    assert_eq!(
        focus.brewery.to_string(),
        "jvbbrewery@internal-muc.meet.jitsi"
    );
    assert_eq!(
        focus.jibri_brewery.unwrap().to_string(),
        "jibribrewery@internal-muc.meet.jitsi"
    );
    let bridge = s.bridge.unwrap();
    assert_eq!(
        bridge.addresses,
        vec!["192.0.2.7".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(bridge.ws_url_base, None, "derived from the bound port");
}

#[test]
fn a_bad_field_names_option_and_line() {
    let Some(config) = load(
        "jitsi-debian",
        "jitsi_videobridge = { udp_port = \"ten\" }\n",
    ) else {
        return;
    };
    let err = settings(&config).unwrap_err().to_string();
    assert!(err.contains("jitsi_videobridge.udp_port"), "{err}");
    assert!(err.contains("media.cfg.lua:1"), "{err}");
}

#[test]
fn absent_means_nothing_runs() {
    let Some(config) = load("jitsi-debian", "") else {
        return;
    };
    assert_eq!(
        settings(&config).unwrap(),
        lilt::media::MediaSettings::default()
    );
}

#[test]
fn the_bridge_listener_can_be_turned_off() {
    let Some(config) = load("jitsi-debian", "jitsi_videobridge = { http = false }\n") else {
        return;
    };
    let bridge = settings(&config).unwrap().bridge.unwrap();
    assert_eq!(bridge.http, None);
    assert_eq!(
        bridge.ws_url_base.as_deref(),
        Some("wss://meet.example.com/colibri-ws")
    );
}

#[test]
fn last_n_as_videobridge_has_it() {
    let Some(config) = load("jitsi-debian", "jitsi_videobridge = { last_n = 4 }\n") else {
        return;
    };
    let bridge = settings(&config).unwrap().bridge.unwrap();
    assert_eq!((bridge.initial_last_n, bridge.last_n), (-1, 4));
    let Some(config) = load(
        "jitsi-debian",
        "jitsi_videobridge = { initial_last_n = -2 }\n",
    ) else {
        return;
    };
    let err = settings(&config).unwrap_err().to_string();
    assert!(err.contains("jitsi_videobridge.initial_last_n"), "{err}");
}

#[test]
fn several_bridges_as_jicofo_and_videobridge_configure_them() {
    let Some(config) = load(
        "jitsi-debian",
        "jitsi_focus = { bridge_selection = \"split\", octo = true, max_bridge_participants = 20, local_region = \"eu\" }\n\
         jitsi_videobridge = { relay_id = \"jvb-eu-1\", region = \"eu\" }\n",
    ) else {
        return;
    };
    let media = settings(&config).unwrap();
    let selection = media.focus.unwrap().selection;
    assert_eq!(
        selection.strategy,
        focus_component::selection::Strategy::Split
    );
    assert!(selection.octo);
    assert_eq!(selection.max_participants_per_bridge, 20);
    assert_eq!(selection.local_region.as_deref(), Some("eu"));
    let bridge = media.bridge.unwrap();
    assert_eq!(bridge.relay_id.as_deref(), Some("jvb-eu-1"));
    assert_eq!(bridge.region.as_deref(), Some("eu"));
    // Defaults: one bridge per conference, as Jicofo.
    let Some(config) = load("jitsi-debian", "jitsi_focus = { }\n") else {
        return;
    };
    let selection = settings(&config).unwrap().focus.unwrap().selection;
    assert_eq!(
        selection.strategy,
        focus_component::selection::Strategy::Single
    );
    assert!(!selection.octo);
    assert_eq!(selection.max_participants_per_bridge, 80);
    for (bad, field) in [
        (
            "jitsi_focus = { bridge_selection = \"nearest\" }\n",
            "jitsi_focus.bridge_selection",
        ),
        ("jitsi_focus = { octo = \"yes\" }\n", "jitsi_focus.octo"),
        (
            "jitsi_focus = { max_bridge_participants = -1 }\n",
            "jitsi_focus.max_bridge_participants",
        ),
    ] {
        let Some(config) = load("jitsi-debian", bad) else {
            return;
        };
        let err = settings(&config).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains("media.cfg.lua:1"),
            "{err}"
        );
    }
}

#[test]
fn recorder_defaults() {
    let Some(config) = load("jitsi-debian", "jitsi_recorder = { dir = \"rec\" }\n") else {
        return;
    };
    let recorder = settings(&config).unwrap().recorder.unwrap();
    assert_eq!(recorder.jid.to_string(), "jibri@auth.meet.example.com");
    assert_eq!(
        recorder.recorder_jid.to_string(),
        "recorder@recorder.meet.example.com"
    );
    assert_eq!(
        recorder.brewery.to_string(),
        "jibribrewery@internal.auth.meet.example.com"
    );
    assert!(recorder.dir.ends_with("rec"), "{}", recorder.dir.display());
    assert_eq!(recorder.max_concurrent, 4);
    let Some(config) = load("jitsi-docker", "jitsi_recorder = true\n") else {
        return;
    };
    let recorder = settings(&config).unwrap().recorder.unwrap();
    assert_eq!(
        recorder.recorder_jid.to_string(),
        "recorder@hidden.meet.jitsi"
    );
    assert_eq!(
        recorder.brewery.to_string(),
        "jibribrewery@internal-muc.meet.jitsi"
    );
}
