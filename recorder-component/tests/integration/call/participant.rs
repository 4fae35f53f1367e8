//! The str0m participant of the call tests: what a browser does with the
//! focus's offer (ICE controlled, DTLS active, its sources in the
//! session-accept) and its media (real VP8 frames and Opus packets, with
//! the audio-level extension, a keyframe on request).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use media_signalling::MediaKind;
use media_signalling::xml::{
    header_extension_element, jingle_source_elements, ns as mns, payload_type_element,
    transport_element,
};
use recorder_component::vp8::packetize;
use str0m::media::{Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc};
use str0m::{Event, Output, Rtc};
use testkit::media::{
    local_transport, offered_descriptions, offered_transport, receive_or_timeout, rtx_of,
    sender_config, sender_source, use_remote_transport,
};
use tokio::net::UdpSocket;
use xmpp_core::Element;

/// What a participant sends: real VP8 frames and Opus packets.
pub struct MediaFiles {
    pub video: Vec<Vec<u8>>,
    pub keyframes: Vec<bool>,
    pub audio: Vec<Vec<u8>>,
}

/// A str0m participant: answers the focus's offer, then sends media.
pub struct Sender {
    rtc: Rtc,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    audio_ssrc: u32,
    video_ssrc: u32,
    opus_pt: u8,
    vp8_pt: u8,
}

/// Builds the participant's `Rtc` from the focus's offer and returns it
/// with the session-accept's `<jingle>`.
pub async fn answer_offer(offer: &Element, endpoint: &str, base_ssrc: u32) -> (Sender, Element) {
    let jingle = offer.get_child("jingle", mns::JINGLE).unwrap();
    let descriptions = offered_descriptions(jingle);
    let remote = offered_transport(jingle).unwrap();
    let pt_of = |name: &str| {
        descriptions
            .iter()
            .flat_map(|(_, d)| &d.payload_types)
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.id)
            .unwrap()
    };
    let (opus_pt, vp8_pt) = (pt_of("opus"), pt_of("vp8"));
    // VP8's retransmission payload type, when offered (a browser's RTX).
    let rtx_pt = rtx_of(&descriptions, vp8_pt);
    let config = sender_config(&descriptions, opus_pt, vp8_pt, rtx_pt);
    let mut rtc = config.build(Instant::now());
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    rtc.add_local_candidate(str0m::Candidate::host(local, "udp").unwrap());
    use_remote_transport(&mut rtc, &remote);
    let (audio_ssrc, video_ssrc) = (base_ssrc, base_ssrc + 1);
    // The video's FID (RTX) SSRC, as browsers send one when RTX is offered.
    let rtx_ssrc = rtx_pt.map(|_| base_ssrc + 2);
    {
        let mut api = rtc.direct_api();
        api.declare_media(Mid::from("0"), str0m::media::MediaKind::Audio);
        api.declare_media(Mid::from("1"), str0m::media::MediaKind::Video);
        api.declare_stream_tx(Ssrc::from(audio_ssrc), None, Mid::from("0"), None);
        api.declare_stream_tx(
            Ssrc::from(video_ssrc),
            rtx_ssrc.map(Ssrc::from),
            Mid::from("1"),
            None,
        );
        api.start_dtls(true).unwrap();
    }
    let transport = local_transport(&mut rtc, local);
    let mut accept = Element::new("jingle", mns::JINGLE)
        .attr("action", "session-accept")
        .attr("sid", jingle.get_attr("sid").unwrap().to_string());
    for (name, d) in &descriptions {
        let mut desc = Element::new("description", mns::RTP).attr("media", d.kind.as_str());
        for pt in &d.payload_types {
            desc.push_child(payload_type_element(pt));
        }
        for e in &d.header_extensions {
            desc.push_child(header_extension_element(e));
        }
        let s = match d.kind {
            MediaKind::Audio => sender_source(endpoint, MediaKind::Audio, audio_ssrc, None),
            MediaKind::Video => sender_source(endpoint, MediaKind::Video, video_ssrc, rtx_ssrc),
        };
        for e in jingle_source_elements(&[s], None) {
            desc.push_child(e);
        }
        accept.push_child(
            Element::new("content", mns::JINGLE)
                .attr("creator", "initiator")
                .attr("name", name.clone())
                .attr("senders", "both")
                .child(desc)
                .child(transport_element(&transport)),
        );
    }
    (
        Sender {
            rtc,
            socket: Arc::new(socket),
            local,
            audio_ssrc,
            video_ssrc,
            opus_pt,
            vp8_pt,
        },
        accept,
    )
}

/// Drives a participant's `Rtc` on its socket, sending audio every 20 ms
/// (audio level `level`) and a video frame every 33 ms once connected.
/// Returns whether it connected and how many keyframe requests (PLIs
/// through the bridge) it got; on a request the next frame it sends is a
/// keyframe, as an encoder would.
pub async fn send_media(
    mut s: Sender,
    media: Arc<MediaFiles>,
    level: i8,
    stop: Arc<AtomicBool>,
) -> (bool, usize) {
    let until = Instant::now() + Duration::from_secs(60);
    let mut connected = false;
    let mut keyframe_requests = 0;
    let mut keyframe_due = false;
    let mut buf = vec![0u8; 2048];
    let (mut next_audio, mut next_video) = (Instant::now(), Instant::now());
    let (mut audio_n, mut video_n, mut audio_seq, mut video_seq) = (0usize, 0usize, 1u64, 1u64);
    let mut started_video = false;
    let start = Instant::now();
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let timeout = loop {
            match s.rtc.poll_output().unwrap() {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = s.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::KeyframeRequest(_)) => {
                    keyframe_requests += 1;
                    keyframe_due = true;
                }
                Output::Event(_) => {}
            }
        };
        let now = Instant::now();
        if connected && now >= next_audio {
            next_audio += Duration::from_millis(20);
            let payload = media.audio[audio_n % media.audio.len()].clone();
            audio_n += 1;
            let ext = ExtensionValues {
                audio_level: Some(level),
                voice_activity: Some(level > -60),
                ..ExtensionValues::default()
            };
            let ts = (audio_seq * 960) as u32;
            if let Some(tx) = s.rtc.direct_api().stream_tx(&Ssrc::from(s.audio_ssrc)) {
                tx.write_rtp(
                    RtpWrite::new(
                        Pt::new_with_value(s.opus_pt),
                        audio_seq.into(),
                        ts,
                        now,
                        payload,
                    )
                    .ext_vals(ext),
                );
            }
            audio_seq += 1;
            continue;
        }
        if connected && now >= next_video {
            next_video += Duration::from_millis(33);
            // Start at a keyframe.
            if !started_video {
                video_n = media.keyframes.iter().position(|k| *k).unwrap();
                started_video = true;
            }
            if std::mem::take(&mut keyframe_due) {
                let len = media.video.len();
                video_n = (video_n..video_n + len)
                    .find(|n| media.keyframes[n % len])
                    .unwrap_or(video_n);
            }
            let frame = &media.video[video_n % media.video.len()];
            video_n += 1;
            let ts = (now.duration_since(start).as_micros() * 9 / 100) as u32;
            let packets = packetize(frame, 1100);
            let last = packets.len() - 1;
            for (i, p) in packets.into_iter().enumerate() {
                if let Some(tx) = s.rtc.direct_api().stream_tx(&Ssrc::from(s.video_ssrc)) {
                    tx.write_rtp(
                        RtpWrite::new(Pt::new_with_value(s.vp8_pt), video_seq.into(), ts, now, p)
                            .marker(i == last)
                            .nackable(true),
                    );
                }
                video_seq += 1;
            }
            continue;
        }
        let mut wake = timeout.min(until);
        if connected {
            wake = wake.min(next_audio).min(next_video);
        }
        let wait = wake.saturating_duration_since(Instant::now());
        receive_or_timeout(&mut s.rtc, &s.socket, s.local, &mut buf, wait).await;
    }
    (connected, keyframe_requests)
}

/// Real VP8 frames of `size` and Opus packets of a `tone` Hz sine.
pub fn media_of(dir: &Path, size: &str, tone: u32) -> Arc<MediaFiles> {
    let frames = vp8_frames(dir, 4, 30, size);
    Arc::new(MediaFiles {
        keyframes: frames
            .iter()
            .map(|f| f.data.first().is_some_and(|b| b & 1 == 0))
            .collect(),
        video: frames.into_iter().map(|f| f.data).collect(),
        audio: opus_packets(dir, 4, tone),
    })
}
