//! The bridge's datagram handling (`sfu_component::media::MediaCore::
//! handle_receive`): a fresh endpoint is allocated as the focus would
//! (Colibri2 media, the remote transport with a fingerprint), a STUN
//! binding request naming its ufrag makes the bridge learn the sender's
//! address, and then each part of the input arrives as one datagram from
//! that address, read as STUN, DTLS, RTP or RTCP by the core; the clock
//! then moves on and every output is drained.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::xml::parse_colibri2_media;
use media_signalling::{Fingerprint, IceTransport, MediaDescription};
use sfu_component::media::{MediaConfig, MediaCore};
use xmpp_core::stream::parse_element;

const CONFERENCE: &str = "fuzz";
const AUDIO: &str = "<media xmlns='jitsi:colibri2' type='audio'>\
<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/></payload-type>\
<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
</media>";
const VIDEO: &str = "<media xmlns='jitsi:colibri2' type='video'>\
<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='100' name='VP8' clockrate='90000'>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/></payload-type>\
<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='96' name='rtx' clockrate='90000'>\
<parameter xmlns='urn:xmpp:jingle:apps:rtp:1' name='apt' value='100'/></payload-type>\
</media>";

struct Bridge {
    core: MediaCore,
    media: Vec<MediaDescription>,
    now: Instant,
    next: u64,
    local: SocketAddr,
}

thread_local! {
    static BRIDGE: RefCell<Option<Bridge>> = const { RefCell::new(None) };
}

fn media() -> Vec<MediaDescription> {
    [AUDIO, VIDEO]
        .iter()
        .filter_map(|xml| parse_element(xml).ok())
        .filter_map(|el| parse_colibri2_media(&el).ok())
        .collect()
}

fn bridge() -> Bridge {
    let local: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 10000));
    Bridge {
        core: MediaCore::new(MediaConfig {
            candidate_addresses: vec![local],
            endpoint_timeout: Duration::from_secs(60),
        }),
        media: media(),
        now: Instant::now(),
        next: 0,
        local,
    }
}

/// A STUN binding request whose USERNAME is `username` (no integrity: the
/// bridge's demultiplexer learns the address from the name alone).
pub fn binding_request(username: &str) -> Vec<u8> {
    let name = username.as_bytes();
    let padded = name.len().div_ceil(4) * 4;
    let mut out = Vec::with_capacity(24 + padded);
    out.extend_from_slice(&[0x00, 0x01]);
    out.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    out.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    out.extend_from_slice(b"fuzz-txid-12");
    out.extend_from_slice(&[0x00, 0x06]);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name);
    out.resize(24 + padded, 0);
    out
}

fn remote_transport() -> IceTransport {
    let value = (0..32u8)
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    IceTransport {
        ufrag: "fuzzufrag".into(),
        pwd: "fuzzpasswordfuzzpassword".into(),
        fingerprints: vec![Fingerprint {
            hash: "sha-256".into(),
            value,
            setup: Some("active".into()),
        }],
        candidates: Vec::new(),
        rtcp_mux: true,
        web_socket: None,
    }
}

/// Allocates an endpoint; `Err` says which step failed.
pub fn allocate(core: &mut MediaCore, now: Instant, endpoint: &str) -> Result<String, String> {
    let local = core
        .create_endpoint(now, CONFERENCE, endpoint, false)
        .map_err(|e| format!("create: {e}"))?;
    core.set_media(CONFERENCE, endpoint, &media())
        .map_err(|e| format!("media: {e}"))?;
    core.set_remote_transport(now, CONFERENCE, endpoint, &remote_transport())
        .map_err(|e| format!("transport: {e}"))?;
    Ok(local.ufrag)
}

pub fn run(data: &[u8]) {
    BRIDGE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let bridge = slot.get_or_insert_with(bridge);
        bridge.next += 1;
        let endpoint = format!("e{}", bridge.next);
        let _ = &bridge.media;
        let Ok(ufrag) = allocate(&mut bridge.core, bridge.now, &endpoint) else {
            return;
        };
        let port = 20000 + (bridge.next % 20000) as u16;
        let source = SocketAddr::from(([127, 0, 0, 2], port));
        let local = bridge.local;
        let stun = binding_request(&format!("{ufrag}:fuzzufrag"));
        bridge.core.handle_receive(bridge.now, source, local, &stun);
        for part in crate::parts::split(data) {
            bridge.now += Duration::from_millis(5);
            bridge.core.handle_receive(bridge.now, source, local, part);
            while bridge.core.poll_output().is_some() {}
        }
        bridge.now += Duration::from_millis(50);
        bridge.core.handle_timeout(bridge.now);
        while bridge.core.poll_output().is_some() {}
        bridge.core.expire_endpoint(CONFERENCE, &endpoint);
        while bridge.core.poll_output().is_some() {}
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_endpoint_is_allocated() {
        let mut core = sfu_component::media::MediaCore::new(sfu_component::media::MediaConfig {
            candidate_addresses: vec!["127.0.0.1:10000".parse().unwrap()],
            endpoint_timeout: std::time::Duration::from_secs(60),
        });
        assert_eq!(super::media().len(), 2);
        super::allocate(&mut core, std::time::Instant::now(), "e").unwrap();
    }
}
