//! The recorder and its files together: three conferences recorded at once
//! by one recorder, from the focus's start IQ to the finalized directory —
//! Jibri's layout, metadata.json, the finalize script, and a WebM that
//! ffprobe and ffmpeg accept. The media comes in as raw packets,
//! demultiplexed by the SSRCs of the focus's Jingle offer.

use crate::support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use recorder_component::recordings::Recordings;
use recorder_component::rtp::build;
use recorder_component::vp8::packetize;
use recorder_component::{Output, Recorder, RecorderEvent, RecorderOptions};
use support::*;
use xmpp_core::stream::parse_element;

const JIBRI: &str = "jibri@auth.meet.test/ctl";
const REC: &str = "recorder@recorder.meet.test/call";
const FOCUS: &str = "jibribrewery@internal.auth.meet.test/focus";

fn pump(r: &mut Recorder, files: &mut Recordings, now: Instant, log: &mut Vec<Output>) {
    while let Some(o) = r.poll_output() {
        if let Output::Event(e) = &o {
            files.handle_event(now, e).unwrap();
        }
        log.push(o);
    }
}

#[test]
fn three_conferences_recorded_at_once() {
    if !have_ffmpeg() {
        return;
    }
    let media = tmp();
    let video = vp8_frames(media.path(), 4, 30, "320x240");
    let audio = opus_packets(media.path(), 4, 440);

    let base = tmp();
    let script = base.path().join("finalize.sh");
    std::fs::write(&script, "#!/bin/sh\ntouch \"$1/finalized\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rec_dir = base.path().join("recordings");

    let t0 = Instant::now();
    let mut o = RecorderOptions::new(
        JIBRI,
        "jibribrewery@internal.auth.meet.test",
        REC,
        rec_dir.clone(),
    );
    o.max_concurrent = 3;
    let mut r = Recorder::new(o, t0);
    let mut files = Recordings::new(&rec_dir, Some(script));
    let mut log = Vec::new();
    let rooms = ["alpha", "beta", "gamma"];
    for (i, room) in rooms.iter().enumerate() {
        let iq = format!(
            "<iq type='set' id='start{i}' from='{FOCUS}' to='{JIBRI}'>\
             <jibri xmlns='http://jitsi.org/protocol/jibri' action='start' recording_mode='file' \
             room='{room}@conference.meet.test' session_id='sess{i}'/></iq>"
        );
        r.handle_stanza(t0, parse_element(&iq).unwrap());
        for nick in ["focus", "p1", "p2"] {
            let p = format!(
                "<presence from='{room}@conference.meet.test/{nick}' to='{REC}'>\
                 <nick xmlns='http://jabber.org/protocol/nick'>{nick}-name</nick></presence>"
            );
            r.handle_stanza(t0, parse_element(&p).unwrap());
        }
        let me = format!(
            "<presence from='{room}@conference.meet.test/recorder_sess{i}' to='{REC}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>"
        );
        r.handle_stanza(t0, parse_element(&me).unwrap());
        // The focus's Jingle offer: p1's sources (audio 1, video 2 with its
        // RTX 3) and the bridge's own.
        let ssma = "xmlns='urn:xmpp:jingle:apps:rtp:ssma:0'";
        let info = format!(
            "<ssrc-info xmlns='http://jitsi.org/jitmeet' owner='{room}@conference.meet.test/p1'/>"
        );
        let offer = format!(
            "<iq type='set' id='j{i}' from='{room}@conference.meet.test/focus' to='{REC}'>             <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s{i}'>             <content creator='initiator' name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>             <source {ssma} ssrc='1' name='p1-a0'>{info}</source>             <source {ssma} ssrc='411' name='jvb-a0'><ssrc-info xmlns='http://jitsi.org/jitmeet' owner='jvb'/></source>             </description></content>             <content creator='initiator' name='video'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>             <source {ssma} ssrc='2' name='p1-v0'>{info}</source><source {ssma} ssrc='3' name='p1-v0'>{info}</source>             <ssrc-group {ssma} semantics='FID'><source ssrc='2'/><source ssrc='3'/></ssrc-group>             </description></content></jingle></iq>"
        );
        r.handle_stanza(t0, parse_element(&offer).unwrap());
        pump(&mut r, &mut files, t0, &mut log);
        let rec = files.recording_mut(&format!("sess{i}")).unwrap();
        assert_eq!(rec.sources().endpoints(), ["p1"]);
        assert_eq!(rec.pli_for("p1", 99), [recorder_component::rtp::pli(99, 2)]);
    }
    let xml: String = log
        .iter()
        .filter_map(|o| match o {
            Output::Control(e) => Some(e.to_xml()),
            _ => None,
        })
        .collect();
    assert_eq!(xml.matches("status='pending'").count(), 3, "{xml}");
    assert_eq!(xml.matches("status='on'").count(), 3, "{xml}");
    assert!(xml.contains("status='busy'"), "{xml}");

    // 4 s of media for each conference (p1 talking, on camera).
    for ms in (0..4_000u64).step_by(10) {
        let now = t0 + Duration::from_millis(ms);
        for i in 0..3 {
            let rec = files.recording_mut(&format!("sess{i}")).unwrap();
            if ms % 20 == 0 {
                let n = (ms / 20) as usize;
                let p = build(
                    111,
                    false,
                    n as u16,
                    n as u32 * 960,
                    1,
                    &audio[n % audio.len()],
                );
                rec.handle_packet(now, &p).unwrap();
            }
            let k = (ms * 3).div_ceil(100);
            if (k * 100).div_ceil(3) < ms + 10 {
                let f = &video[k as usize % video.len()];
                let parts = packetize(&f.data, 1_100);
                let last = parts.len() - 1;
                for (j, part) in parts.iter().enumerate() {
                    let seq = (k * 10 + j as u64) as u16;
                    let p = build(100, j == last, seq, k as u32 * 3_000, 2, part);
                    rec.handle_packet(now, &p).unwrap();
                }
            }
        }
        assert!(files.handle_timeout(now).is_empty());
    }

    // Stop: by the focus, by destroying the room, by everyone leaving.
    let end = t0 + Duration::from_secs(4);
    r.handle_stanza(
        end,
        parse_element(&format!(
            "<iq type='set' id='stop0' from='{FOCUS}' to='{JIBRI}'>\
             <jibri xmlns='http://jitsi.org/protocol/jibri' action='stop' session_id='sess0'/></iq>"
        ))
        .unwrap(),
    );
    r.handle_stanza(
        end,
        parse_element(&format!(
            "<presence type='unavailable' from='beta@conference.meet.test/recorder_sess1' to='{REC}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><destroy/><status code='110'/></x></presence>"
        ))
        .unwrap(),
    );
    pump(&mut r, &mut files, end, &mut log);
    for nick in ["p1", "p2"] {
        r.handle_stanza(
            end - Duration::from_secs(30),
            parse_element(&format!(
                "<presence type='unavailable' from='gamma@conference.meet.test/{nick}' to='{REC}'/>"
            ))
            .unwrap(),
        );
    }
    r.handle_timeout(end);
    pump(&mut r, &mut files, end, &mut log);
    assert_eq!(r.sessions().count(), 0);
    files.wait_finalizers();

    let stopped = log
        .iter()
        .filter(|o| matches!(o, Output::Event(RecorderEvent::Stopped { .. })))
        .count();
    assert_eq!(stopped, 3);
    for (i, room) in rooms.iter().enumerate() {
        let dir: PathBuf = rec_dir.join(format!("sess{i}"));
        assert!(
            dir.join("finalized").exists(),
            "finalize script ran for {room}"
        );
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap())
                .unwrap();
        assert_eq!(meta["meeting_url"], format!("https://meet.test/{room}"));
        assert_eq!(meta["participants"][0]["id"], "p1");
        assert_eq!(meta["participants"][1]["name"], "p2-name");
        let webm: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "webm"))
            .collect();
        assert_eq!(webm.len(), 1, "{webm:?}");
        assert!(
            webm[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{room}_"))
        );
        let p = probe(&webm[0]);
        assert_eq!((p.video_streams, p.audio_streams), (1, 1), "{}", p.raw);
        assert!(
            (p.duration - 4.0).abs() < 0.3,
            "{room}: {} {}",
            p.duration,
            p.raw
        );
        let errors = decode_errors(&webm[0]);
        assert!(errors.trim().is_empty(), "{room}: {errors}");
        assert!(mean_volume(&webm[0], 0.5, 3.5) > -35.0);
    }
}
