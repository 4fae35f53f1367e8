//! The parts of a str0m participant (RTP mode, direct API) that answer
//! the focus's Jingle offer as a browser does: ICE controlled, DTLS active,
//! one host candidate on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Instant;

use media_signalling::xml::{ns, parse_jingle_description, parse_transport};
use media_signalling::{
    Candidate, Fingerprint, IceTransport, MediaDescription, MediaKind, Source, SsrcGroup,
};
use str0m::format::Codec;
use str0m::media::{Frequency, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Input, Rtc, RtcConfig};
use xmpp_core::Element;

/// The `Rtc`'s DTLS fingerprint, as Jingle writes it (`AA:BB:...`).
pub fn fingerprint_value(rtc: &mut Rtc) -> String {
    rtc.direct_api()
        .local_dtls_fingerprint()
        .bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The offer's contents with an RTP description: name and description.
pub fn offered_descriptions(jingle: &Element) -> Vec<(String, MediaDescription)> {
    jingle
        .children()
        .filter(|c| c.is("content", ns::JINGLE))
        .filter_map(|c| {
            let d = c.get_child("description", ns::RTP)?;
            Some((
                c.get_attr("name")?.to_string(),
                parse_jingle_description(d).ok()?,
            ))
        })
        .collect()
}

/// The bridge's transport in the offer (the first content's).
pub fn offered_transport(jingle: &Element) -> Option<IceTransport> {
    jingle
        .children()
        .filter(|c| c.is("content", ns::JINGLE))
        .find_map(|c| c.get_child("transport", ns::ICE_UDP))
        .and_then(|t| parse_transport(t).ok())
}

/// The bridge's transport into `rtc`: its loopback candidates, ICE
/// credentials (we are controlled) and sha-256 fingerprint. Returns the
/// bridge's media port (0 without a loopback candidate).
pub fn use_remote_transport(rtc: &mut Rtc, remote: &IceTransport) -> u16 {
    let mut port = 0;
    for c in &remote.candidates {
        // Loopback only.
        if c.address.ip().is_loopback() {
            port = c.address.port();
            rtc.add_remote_candidate(str0m::Candidate::host(c.address, "udp").unwrap());
        }
    }
    let mut api = rtc.direct_api();
    api.set_ice_controlling(false);
    api.set_remote_ice_credentials(str0m::IceCreds {
        ufrag: remote.ufrag.clone(),
        pass: remote.pwd.clone(),
    });
    let fp = &remote.fingerprints[0].value;
    api.set_remote_fingerprint(format!("sha-256 {fp}").parse().unwrap());
    port
}

/// Our transport for the answer: `rtc`'s ICE credentials and fingerprint
/// (`setup='active'`), one host candidate at `local`.
pub fn local_transport(rtc: &mut Rtc, local: SocketAddr) -> IceTransport {
    let creds = rtc.direct_api().local_ice_credentials();
    IceTransport {
        ufrag: creds.ufrag,
        pwd: creds.pass,
        fingerprints: vec![Fingerprint {
            hash: "sha-256".into(),
            value: fingerprint_value(rtc),
            setup: Some("active".into()),
        }],
        candidates: vec![Candidate {
            foundation: "1".into(),
            component: 1,
            protocol: "udp".into(),
            priority: 2_130_706_431,
            address: local,
            kind: "host".into(),
            generation: 0,
            id: None,
        }],
        rtcp_mux: true,
        web_socket: None,
    }
}

/// A browser's source for the session-accept: `<endpoint>-a0` /
/// `<endpoint>-v0` with its msid, a camera for video, and the video's
/// FID group when it sends RTX on `rtx`.
pub fn sender_source(endpoint: &str, kind: MediaKind, ssrc: u32, rtx: Option<u32>) -> Source {
    let letter = if kind == MediaKind::Video { 'v' } else { 'a' };
    let rtx = rtx.filter(|_| kind == MediaKind::Video);
    Source {
        kind,
        name: format!("{endpoint}-{letter}0"),
        ssrcs: match rtx {
            Some(rtx) => vec![ssrc, rtx],
            None => vec![ssrc],
        },
        groups: match rtx {
            Some(rtx) => vec![SsrcGroup {
                semantics: "FID".into(),
                ssrcs: vec![ssrc, rtx],
            }],
            None => vec![],
        },
        video_type: (kind == MediaKind::Video).then(|| "camera".into()),
        msid: Some(format!("stream-{endpoint} track-{letter}")),
    }
}

/// str0m's extension for a header extension the focus offers, where
/// str0m knows it (audio level, abs-send-time, transport-cc).
pub fn extension_of(uri: &str) -> Option<Extension> {
    match uri {
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level" => Some(Extension::AudioLevel),
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time" => {
            Some(Extension::AbsoluteSendTime)
        }
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01" => {
            Some(Extension::TransportSequenceNumber)
        }
        _ => None,
    }
}

/// The retransmission (RTX) payload type offered for `pt`, as a browser
/// picks it.
pub fn rtx_of(descriptions: &[(String, MediaDescription)], pt: u8) -> Option<u8> {
    descriptions
        .iter()
        .flat_map(|(_, d)| &d.payload_types)
        .filter(|p| p.name.eq_ignore_ascii_case("rtx"))
        .find(|p| p.parameter("apt") == Some(pt.to_string().as_str()))
        .map(|p| p.id)
}

/// An RTP-mode `Rtc` config for the offer's `descriptions`: the header
/// extensions str0m knows, Opus on `opus` and VP8 on `vp8` (with its RTX
/// payload type `rtx`).
pub fn sender_config(
    descriptions: &[(String, MediaDescription)],
    opus: u8,
    vp8: u8,
    rtx: Option<u8>,
) -> RtcConfig {
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .clear_extension_map();
    for (_, d) in descriptions {
        for e in &d.header_extensions {
            if let Some(ext) = extension_of(&e.uri) {
                config = config.set_extension(e.id, ext);
            }
        }
    }
    let codecs = config.codec_config();
    codecs.add_config(
        Pt::new_with_value(opus),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        Default::default(),
    );
    codecs.add_config(
        Pt::new_with_value(vp8),
        rtx.map(Pt::new_with_value),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        Default::default(),
    );
    config
}

/// One wait of a participant's loop: a datagram arriving on `socket`
/// within `wait` goes to `rtc` (as received at `local`; `buf` holds it),
/// else `rtc` gets its timeout.
pub async fn receive_or_timeout(
    rtc: &mut Rtc,
    socket: &tokio::net::UdpSocket,
    local: SocketAddr,
    buf: &mut [u8],
    wait: std::time::Duration,
) {
    tokio::select! {
        r = socket.recv_from(buf) => {
            if let Ok((n, source)) = r
                && let Some(Ok(contents)) = buf.get(..n).map(|b| b.try_into())
            {
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents,
                });
                let _ = rtc.handle_input(input);
            }
        }
        _ = tokio::time::sleep(wait) => {
            let _ = rtc.handle_input(Input::Timeout(Instant::now()));
        }
    }
}
