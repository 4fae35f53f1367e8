//! The parts of a str0m participant (RTP mode, direct API) that answer
//! the focus's Jingle offer as a browser does: ICE controlled, DTLS active,
//! one host candidate on 127.0.0.1.

use std::net::SocketAddr;

use media_signalling::xml::{ns, parse_jingle_description, parse_transport};
use media_signalling::{
    Candidate, Fingerprint, IceTransport, MediaDescription, MediaKind, Source, SsrcGroup,
};
use str0m::Rtc;
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
