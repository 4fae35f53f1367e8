//! Retransmissions on the recorder's media link: the bridge (a str0m peer
//! in memory, ICE controlling and DTLS passive as Videobridge, virtual
//! time) sends real VP8 (ffmpeg's libvpx, one keyframe at the start) and
//! every 8th media datagram to the recorder is lost. With RTX negotiated
//! as browsers negotiate it (an `rtx` payload type with `apt`, the FID
//! group's SSRC), the link NACKs the losses, the bridge resends them on
//! the RTX SSRC, and the file has every frame, decodes without errors and
//! lost none. The same loss without RTX leaves the file without every
//! frame after the first loss (the depacketizer waits for a keyframe), so
//! the check can fail.

use crate::call::count_video_frames;
use crate::support;

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::xml::{ns as mns, parse_transport};
use recorder_component::media_link::{LinkOutput, MediaLink};
use recorder_component::recording::{Media, Recording};
use recorder_component::replies::CALL_FEATURES;
use recorder_component::vp8::packetize;
use str0m::format::Codec;
use str0m::media::{Frequency, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Event, Input, Output, Rtc};
use support::*;
use xmpp_core::stream::parse_element;

const VIDEO_SSRC: u32 = 2001;
const RTX_SSRC: u32 = 2002;

fn offer(ufrag: &str, pwd: &str, fingerprint: &str, bridge: SocketAddr, rtx: bool) -> String {
    let rtx_pt = if rtx {
        "<payload-type id='96' name='rtx' clockrate='90000'><parameter name='apt' value='100'/>\
         <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='ccm' subtype='fir'/>\
         <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
         <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/></payload-type>"
    } else {
        ""
    };
    let fid = if rtx {
        format!(
            "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{RTX_SSRC}' name='ep1-v0'/>\
             <ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'>\
             <source ssrc='{VIDEO_SSRC}'/><source ssrc='{RTX_SSRC}'/></ssrc-group>"
        )
    } else {
        String::new()
    };
    format!(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='rtx1'>\
  <content creator='initiator' name='video' senders='both'>\
    <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
      <payload-type id='100' name='VP8' clockrate='90000'>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>\
      </payload-type>{rtx_pt}\
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{VIDEO_SSRC}' name='ep1-v0'/>{fid}\
    </description>\
    <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='{ufrag}' pwd='{pwd}'>\
      <rtcp-mux/>\
      <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>{fingerprint}</fingerprint>\
      <candidate component='1' foundation='1' generation='0' id='c1' ip='{}' network='0' port='{}' priority='1' protocol='udp' type='host'/>\
    </transport>\
  </content>\
  <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'><content name='video'/></group>\
</jingle>",
        bridge.ip(),
        bridge.port()
    )
}

/// The SSRC of an (S)RTP datagram (its header is in the clear), if it is
/// RTP and not RTCP.
fn rtp_ssrc(d: &[u8]) -> Option<u32> {
    if d.len() < 12 || d[0] & 0xC0 != 0x80 || (192..=223).contains(&d[1]) {
        return None;
    }
    Some(u32::from_be_bytes([d[8], d[9], d[10], d[11]]))
}

struct Outcome {
    frames_sent: usize,
    stats: recorder_component::recording::RecordingStats,
    resent: usize,
    dropped: usize,
    file: std::path::PathBuf,
}

/// Sends `frames` through a bridge with (or without) RTX, losing every
/// 8th first transmission, into a recording.
fn record_through_loss(dir: &std::path::Path, frames: &[IvfFrame], rtx: bool) -> Outcome {
    let bridge_addr: SocketAddr = "10.9.0.1:10000".parse().unwrap();
    let rec_addr: SocketAddr = "10.9.0.2:5000".parse().unwrap();
    let t0 = Instant::now();
    let mut now = t0;
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .clear_extension_map();
    config.codec_config().add_config(
        Pt::new_with_value(100),
        rtx.then(|| Pt::new_with_value(96)),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        Default::default(),
    );
    let mut bridge = config.build(now);
    bridge.add_local_candidate(str0m::Candidate::host(bridge_addr, "udp").unwrap());
    bridge.add_remote_candidate(str0m::Candidate::host(rec_addr, "udp").unwrap());
    let creds = bridge.direct_api().local_ice_credentials();
    let fp: String = bridge
        .direct_api()
        .local_dtls_fingerprint()
        .bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let offer = parse_element(&offer(&creds.ufrag, &creds.pass, &fp, bridge_addr, rtx)).unwrap();
    let (mut link, accept) = MediaLink::accept(now, &offer, "r@x/y", &[rec_addr]).unwrap();
    let d = accept
        .children()
        .find_map(|c| c.get_child("description", mns::RTP))
        .unwrap();
    assert_eq!(
        d.children().any(|p| p.get_attr("name") == Some("rtx")),
        rtx,
        "the answer keeps the offered rtx: {d}"
    );
    let t = parse_transport(
        accept
            .children()
            .find_map(|c| c.get_child("transport", mns::ICE_UDP))
            .unwrap(),
    )
    .unwrap();
    {
        let mut api = bridge.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(str0m::IceCreds {
            ufrag: t.ufrag.clone(),
            pass: t.pwd.clone(),
        });
        api.set_remote_fingerprint(
            format!("sha-256 {}", t.fingerprints[0].value)
                .parse()
                .unwrap(),
        );
        api.declare_media(Mid::from("0"), str0m::media::MediaKind::Video);
        api.declare_stream_tx(
            Ssrc::from(VIDEO_SSRC),
            rtx.then(|| Ssrc::from(RTX_SSRC)),
            Mid::from("0"),
            None,
        );
        api.start_dtls(false).unwrap();
    }

    let file = dir.join(if rtx { "rtx.webm" } else { "no-rtx.webm" });
    let mut rec =
        Recording::new(BufWriter::new(File::create(&file).unwrap()), t0, 320, 240).unwrap();
    let mut bridge_connected = false;
    let (mut sent, mut seq, mut media_datagrams) = (0usize, 1u64, 0usize);
    let (mut dropped, mut resent) = (0usize, 0usize);
    let mut next_frame = None;
    let mut last_sent_at = None;
    for _ in 0..20_000 {
        now += Duration::from_millis(2);
        bridge.handle_input(Input::Timeout(now)).unwrap();
        if link.next_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        if bridge_connected && link.is_connected() && sent < frames.len() {
            let due = *next_frame.get_or_insert(now);
            if now >= due {
                next_frame = Some(due + Duration::from_micros(33_333));
                let parts = packetize(&frames[sent].data, 1_000);
                let last = parts.len() - 1;
                for (i, p) in parts.into_iter().enumerate() {
                    let mut api = bridge.direct_api();
                    let tx = api.stream_tx(&Ssrc::from(VIDEO_SSRC)).unwrap();
                    tx.write_rtp(
                        RtpWrite::new(
                            Pt::new_with_value(100),
                            seq.into(),
                            (sent as u32) * 3_000,
                            now,
                            p,
                        )
                        .marker(i == last)
                        .nackable(true),
                    );
                    seq += 1;
                }
                sent += 1;
                last_sent_at = Some(now);
            }
        }
        if rec.next_timeout() <= now {
            rec.handle_timeout(now).unwrap();
        }
        // Move datagrams both ways until quiet.
        for _ in 0..100 {
            let mut moved = false;
            loop {
                match bridge.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        moved = true;
                        match rtp_ssrc(&t.contents) {
                            Some(VIDEO_SSRC) => {
                                media_datagrams += 1;
                                if media_datagrams % 8 == 5 {
                                    dropped += 1;
                                    continue;
                                }
                            }
                            Some(RTX_SSRC) => resent += 1,
                            _ => {}
                        }
                        link.handle_receive(now, t.source, t.destination, &t.contents);
                    }
                    Output::Event(Event::Connected) => bridge_connected = true,
                    Output::Event(_) => {}
                }
            }
            while let Some(out) = link.poll_output() {
                match out {
                    LinkOutput::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        moved = true;
                        let input = Input::Receive(
                            now,
                            Receive {
                                proto: Protocol::Udp,
                                source,
                                destination,
                                contents: contents.as_slice().try_into().unwrap(),
                            },
                        );
                        bridge.handle_input(input).unwrap();
                    }
                    LinkOutput::Packet(p) => {
                        if rtp_ssrc(&p) == Some(VIDEO_SSRC) {
                            rec.handle_rtp(now, "ep1", Media::Video, &p).unwrap();
                        }
                    }
                    LinkOutput::Connected | LinkOutput::Disconnected => {}
                }
            }
            if !moved {
                break;
            }
        }
        // Half a second after the last frame, everything recoverable is in.
        if last_sent_at.is_some_and(|t| now >= t + Duration::from_millis(500)) {
            break;
        }
    }
    assert!(bridge_connected && link.is_connected(), "connected");
    assert_eq!(sent, frames.len(), "every frame sent");
    let stats = rec.stats().clone();
    rec.finish(now).unwrap();
    Outcome {
        frames_sent: sent,
        stats,
        resent,
        dropped,
        file,
    }
}

#[test]
fn the_recorder_says_it_takes_rtx() {
    assert!(CALL_FEATURES.contains(&"urn:ietf:rfc:4588"));
}

#[test]
fn rtx_fills_the_losses_so_the_file_has_every_frame() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    // 3 s of 320x240 VP8 with one keyframe: a loss not repaired would cost
    // every frame after it.
    let frames = vp8_frames(dir.path(), 3, 300, "320x240");
    assert_eq!(frames.len(), 90);

    let with = record_through_loss(dir.path(), &frames, true);
    assert!(with.dropped >= 10, "{} datagrams lost", with.dropped);
    assert!(
        with.resent >= with.dropped,
        "{} RTX resends for {} losses",
        with.resent,
        with.dropped
    );
    assert_eq!(with.stats.video_frames_lost, 0, "{:?}", with.stats);
    assert_eq!(count_video_frames(&with.file), with.frames_sent as u64);
    let errors = decode_errors(&with.file);
    assert!(errors.trim().is_empty(), "decoding errors: {errors}");

    let without = record_through_loss(dir.path(), &frames, false);
    assert!(without.dropped >= 10);
    assert_eq!(without.resent, 0);
    let kept = count_video_frames(&without.file);
    assert!(
        kept < without.frames_sent as u64 / 2,
        "without RTX the frames after the first loss are gone: {kept} of {}",
        without.frames_sent
    );
}
