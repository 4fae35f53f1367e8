//! A call through lilt for the recorder's tests: lilt in-process with its
//! own focus and bridge on 127.0.0.1, participants that join through the
//! focus and answer its Jingle offer with str0m (ICE controlled, DTLS
//! active, as browsers), sending real VP8 and Opus over UDP, and ffprobe
//! checks of the files.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod participant;

pub use participant::*;

use recorder_component::replies::CALL_FEATURES;
use recorder_component::{RecorderOptions, run_with_links};
use testkit::JitsiConfig;
pub use testkit::{Peer, jingle_action};
use xmpp_core::client::local;
use xmpp_core::{Element, Jid};

/// lilt's config for the calls: HTTP, the recorder domain, lilt's own
/// focus and bridge.
pub const CONFIG: JitsiConfig = JitsiConfig {
    http: true,
    recorder_domain: true,
    focus_and_bridge: true,
    quiet: false,
};

pub const ROOM: &str = "room1@conference.example.com";
pub const JIBRI_BREWERY: &str = "jibribrewery@internal.auth.example.com";
pub const JIBRI_NS: &str = "http://jitsi.org/protocol/jibri";
pub const RECORD_FOR: Duration = Duration::from_secs(10);

/// Joins the conference through the focus, answers its offer; returns
/// the participant and its started media.
pub async fn join(
    server: &Arc<xmpp_core::Server>,
    user: &str,
    nick: &str,
    ssrc: u32,
) -> (Peer, Sender) {
    join_room(server, ROOM, user, nick, ssrc).await
}

/// [`join`] in `room`.
pub async fn join_room(
    server: &Arc<xmpp_core::Server>,
    room: &str,
    user: &str,
    nick: &str,
    ssrc: u32,
) -> (Peer, Sender) {
    let mut p = Peer::new(
        local(
            server,
            &Jid::parse(&format!("{user}@example.com/web")).unwrap(),
        )
        .unwrap(),
    );
    // As a browser: the focus's source-add and the like are acked.
    p.ack_iqs = true;
    p.timeout = Duration::from_secs(10);
    p.send("<presence/>");
    // The focus may still be starting (no bridge yet): retry, as clients do.
    let mut answer = None;
    for attempt in 0..50 {
        let id = format!("conf{attempt}");
        p.send(&format!(
            "<iq type='set' id='{id}' to='focus.example.com'>\
             <conference xmlns='http://jitsi.org/protocol/focus' room='{room}' machine-uid='{user}'/></iq>"
        ));
        let r = p
            .expect("conference IQ answer", |s| s.id() == Some(id.as_str()))
            .await;
        if r.type_() == Some("result") {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answer = answer.expect("the focus answered the conference IQ");
    assert_eq!(answer.type_(), Some("result"), "{answer}");
    p.send(&format!(
        "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/>\
         <nick xmlns='http://jabber.org/protocol/nick'>{user}</nick></presence>"
    ));
    let disco = p
        .expect("disco#info from the focus", |s| {
            s.get_child("query", "http://jabber.org/protocol/disco#info")
                .is_some()
                && s.type_() == Some("get")
        })
        .await;
    let features: String = CALL_FEATURES
        .iter()
        .map(|f| format!("<feature var='{f}'/>"))
        .collect();
    p.send(&format!(
        "<iq type='result' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'>{features}</query></iq>",
        disco.id().unwrap(),
        disco.from().unwrap()
    ));
    let offer = p
        .expect("session-initiate", |s| {
            jingle_action(s) == Some("session-initiate")
        })
        .await;
    p.send(&format!(
        "<iq type='result' id='{}' to='{}'/>",
        offer.id().unwrap(),
        offer.from().unwrap()
    ));
    let (sender, accept) = answer_offer(&offer, nick, ssrc).await;
    let mut iq = Element::new("iq", "jabber:client")
        .attr("type", "set")
        .attr("id", "accept")
        .attr("to", offer.from().unwrap().to_string())
        .child(accept);
    iq.set_attr("xml:lang", None);
    assert!(p.tx.send(iq));
    let r = p
        .expect("session-accept answered", |s| s.id() == Some("accept"))
        .await;
    assert_eq!(r.type_(), Some("result"), "{r}");
    (p, sender)
}

/// The width of each video frame between `from` and `to` seconds.
pub fn frame_widths(file: &Path, from: f64, to: f64) -> Vec<u32> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-read_intervals"])
        .arg(format!("{from}%{to}"))
        .args(["-show_entries", "frame=width", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Video frames in a file, by ffprobe.
pub fn count_video_frames(file: &Path) -> u64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// lilt with its focus and bridge, in-process.
pub async fn start_lilt() -> (Arc<xmpp_core::Server>, lilt::startup::RunningServer) {
    let lilt = testkit::jitsi::start(&CONFIG, "recorder-media.cfg.lua")
        .await
        .unwrap();
    (lilt.server, lilt.running)
}

/// The recorder on its two accounts, writing into `dir`.
pub fn start_recorder(
    server: &Arc<xmpp_core::Server>,
    dir: &Path,
    max_concurrent: usize,
) -> tokio::task::JoinHandle<()> {
    let control = local(
        server,
        &Jid::parse("jibri@auth.example.com/jibri1").unwrap(),
    )
    .unwrap();
    let call = local(
        server,
        &Jid::parse("recorder@recorder.example.com/rec1").unwrap(),
    )
    .unwrap();
    let mut options = RecorderOptions::new("", JIBRI_BREWERY, "", dir.to_path_buf());
    options.brewery_nick = "jibri1".into();
    options.min_free_bytes = 0;
    options.max_concurrent = max_concurrent;
    tokio::spawn(run_with_links(control, call, options, None))
}

/// The moderator `p` starts a file recording of `room` through the focus
/// (retried while the recorder is not in the brewery yet) and sees it on.
pub async fn start_recording(p: &mut Peer, room: &str) {
    let mut started = false;
    let mut last = None;
    for attempt in 0..100 {
        let id = format!("rec{attempt}");
        p.send(&format!(
            "<iq type='set' id='{id}' to='{room}/focus'>\
             <jibri xmlns='{JIBRI_NS}' action='start' recording_mode='file'/></iq>"
        ));
        let r = p
            .expect("the start answer", |s| s.id() == Some(id.as_str()))
            .await;
        if r.type_() == Some("result") {
            started = true;
            break;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started,
        "the focus started no recording of {room}: {last:?}"
    );
    p.expect("the focus says on", |s| {
        s.get_child("jibri-recording-status", JIBRI_NS)
            .is_some_and(|st| st.get_attr("status") == Some("on"))
    })
    .await;
}

/// The moderator stops the recording of `room` and sees it off.
pub async fn stop_recording(p: &mut Peer, room: &str) {
    p.send(&format!(
        "<iq type='set' id='stop' to='{room}/focus'><jibri xmlns='{JIBRI_NS}' action='stop'/></iq>"
    ));
    let r = p
        .expect("the stop answer", |s| s.id() == Some("stop"))
        .await;
    assert_eq!(r.type_(), Some("result"), "{r}");
    p.expect("the focus says off", |s| {
        s.get_child("jibri-recording-status", JIBRI_NS)
            .is_some_and(|st| st.get_attr("status") == Some("off"))
    })
    .await;
}

/// The WebM files of the finished recordings in `dir` (those with their
/// metadata.json), once there are `n` (within 10 s).
pub async fn finished_files(dir: &Path, n: usize) -> Vec<std::path::PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map(|dirs| {
                dirs.filter_map(|d| d.ok())
                    .map(|d| d.path())
                    .filter(|d| d.join("metadata.json").exists())
                    .filter_map(|d| {
                        std::fs::read_dir(&d)
                            .ok()?
                            .filter_map(|e| e.ok())
                            .map(|e| e.path())
                            .find(|p| p.extension().is_some_and(|x| x == "webm"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if files.len() >= n {
            return files;
        }
        assert!(
            Instant::now() < deadline,
            "{} finished recordings of {n}",
            files.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
