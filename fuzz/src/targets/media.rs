//! The bridge's datagram handling (`sfu_component::media::MediaCore::
//! handle_receive`): a fresh endpoint is allocated as the focus would
//! (Colibri2 media, the remote transport with a fingerprint), a STUN
//! binding request naming its ufrag makes the bridge learn the sender's
//! address, and then each part of the input arrives as one datagram from
//! that address, read as STUN, DTLS, RTP or RTCP by the core; the clock
//! then moves on and every output is drained.
//!
//! Allocating the endpoint (its str0m `Rtc` with DTLS) costs about ten
//! times what the datagrams do, so one endpoint takes [`INPUTS_PER_ENDPOINT`]
//! inputs in a row before it is expired and a fresh one allocated (as a
//! real endpoint takes datagram after datagram). The first input after
//! start always gets a fresh endpoint, so `--replay` of a saved crash runs
//! it as the first one; a crash that needs an earlier input's state shows
//! as one that does not replay alone (then replay the inputs of its run
//! together).

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

/// Inputs one endpoint takes before a fresh one replaces it.
pub const INPUTS_PER_ENDPOINT: u32 = 64;

struct Bridge {
    core: MediaCore,
    now: Instant,
    next: u64,
    local: SocketAddr,
    /// The endpoint inputs go to, the address it learnt, and how many
    /// inputs it took.
    current: Option<Current>,
}

struct Current {
    endpoint: String,
    source: SocketAddr,
    inputs: u32,
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
        now: Instant::now(),
        next: 0,
        local,
        current: None,
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

impl Bridge {
    /// A fresh endpoint that learnt its remote address from a binding
    /// request; `None` if allocating failed.
    fn fresh(&mut self) -> Option<Current> {
        self.next += 1;
        let endpoint = format!("e{}", self.next);
        let ufrag = allocate(&mut self.core, self.now, &endpoint).ok()?;
        let port = 20000 + (self.next % 20000) as u16;
        let source = SocketAddr::from(([127, 0, 0, 2], port));
        let stun = binding_request(&format!("{ufrag}:fuzzufrag"));
        self.core
            .handle_receive(self.now, source, self.local, &stun);
        while self.core.poll_output().is_some() {}
        Some(Current {
            endpoint,
            source,
            inputs: 0,
        })
    }

    fn expire(&mut self, current: Current) {
        self.core.expire_endpoint(CONFERENCE, &current.endpoint);
        while self.core.poll_output().is_some() {}
    }
}

pub fn run(data: &[u8]) {
    // Taken out while in use: a panic drops the bridge, and the next input
    // starts from a fresh one.
    let mut bridge = BRIDGE
        .with(|cell| cell.borrow_mut().take())
        .unwrap_or_else(bridge);
    let mut current = match bridge.current.take() {
        Some(c) if c.inputs < INPUTS_PER_ENDPOINT => Some(c),
        Some(old) => {
            bridge.expire(old);
            bridge.fresh()
        }
        None => bridge.fresh(),
    };
    if let Some(current) = current.as_mut() {
        current.inputs += 1;
        let local = bridge.local;
        for part in crate::parts::split(data) {
            bridge.now += Duration::from_millis(5);
            bridge
                .core
                .handle_receive(bridge.now, current.source, local, part);
            while bridge.core.poll_output().is_some() {}
        }
        bridge.now += Duration::from_millis(50);
        bridge.core.handle_timeout(bridge.now);
        while bridge.core.poll_output().is_some() {}
    }
    bridge.current = current;
    BRIDGE.with(|cell| *cell.borrow_mut() = Some(bridge));
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

    #[test]
    fn one_endpoint_takes_a_run_of_inputs_then_a_fresh_one_replaces_it() {
        let endpoints = || {
            super::BRIDGE.with(|cell| {
                let slot = cell.borrow();
                let bridge = slot.as_ref().unwrap();
                let ids = bridge.core.endpoint_ids(super::CONFERENCE);
                let current = bridge.current.as_ref().map(|c| c.endpoint.clone());
                (ids, current)
            })
        };
        super::run(b"\x80\x60\x00\x01\x00\x00\x00\x01\x00\x00\x00\x02abc");
        let (ids, first) = endpoints();
        assert_eq!(ids, [first.clone().unwrap()]);
        for _ in 1..super::INPUTS_PER_ENDPOINT {
            super::run(b"\x16\xfe\xfd\x00");
        }
        assert_eq!(endpoints(), (vec![first.clone().unwrap()], first.clone()));
        super::run(b"");
        let (ids, next) = endpoints();
        assert_ne!(next, first);
        assert_eq!(ids, [next.unwrap()], "the old one expired");
    }
}
