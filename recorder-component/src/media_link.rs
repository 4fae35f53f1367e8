//! The recorder's media link to the bridge, sans-IO: the focus's Jingle
//! `session-initiate` answered as a receive-only browser answers it, over
//! str0m's direct API (no SDP) in RTP mode.
//!
//! - The answer (`session-accept`): the offered contents (audio and
//!   video) with `senders='initiator'` (the recorder sends nothing), the
//!   offer's payload types and header-extension ids, the recorder's ICE-UDP
//!   transport (ufrag, pwd, sha-256 fingerprint with `setup='active'`, the
//!   host candidates given by the runtime) and no sources.
//! - ICE controlled (the bridge is controlling), DTLS active, TWCC
//!   feedback sent (the bridge estimates the recorder's bandwidth from it).
//! - Every SSRC the focus announces (`session-initiate`, `source-add`,
//!   json-message sources) is expected as a receive stream, with its FID
//!   retransmission SSRC.
//! - Retransmissions as a browser has them: the offer's `rtx` payload
//!   types (`apt`) are kept in the answer and configured in str0m, which
//!   then NACKs lost video packets and turns the bridge's RTX packets back
//!   into the original ones (SSRC, sequence number) before they come out
//!   here; the depacketizer's reorder buffer waits long enough
//!   ([`crate::depacketizer::MAX_WAIT_TICKS`]) for them. Audio is not NACKed
//!   (browsers do not NACK Opus; a lost 20 ms is concealed as silence).
//! - Datagrams and time in; datagrams to send, decrypted RTP (re-serialized
//!   as plain RTP packets) and RTCP sender reports out, for
//!   [`crate::Recording::handle_packet`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use media_signalling::xml::{
    header_extension_element, ns as mns, parse_jingle_description, parse_jingle_sources,
    parse_transport, payload_type_element, transport_element,
};
use media_signalling::{
    Candidate as JingleCandidate, Fingerprint, IceTransport, MediaDescription, MediaKind, Source,
};
use str0m::format::Codec;
use str0m::media::{Frequency, KeyframeRequestKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::rtcp::Rtcp;
use str0m::rtp::{Extension, RawPacket, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use xmpp_core::Element;

use crate::rtp::build as build_rtp;

/// Why an offer cannot be answered or a datagram not taken.
#[derive(Debug, thiserror::Error)]
pub enum MediaLinkError {
    #[error("the offer has no {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Xml(#[from] media_signalling::xml::XmlError),
    #[error("str0m: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("candidate: {0}")]
    Candidate(String),
    #[error("fingerprint {0:?}")]
    Fingerprint(String),
}

/// What the link gives the runtime.
#[derive(Debug)]
pub enum LinkOutput {
    /// A datagram to send from `source` to `destination`.
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// An RTP or RTCP packet for the recording (plain, decrypted).
    Packet(Vec<u8>),
    /// ICE and DTLS are up.
    Connected,
    /// ICE gave up.
    Disconnected,
}

/// One recording's Jingle session with the bridge.
pub struct MediaLink {
    rtc: Rtc,
    sid: String,
    mids: Vec<(MediaKind, Mid)>,
    out: VecDeque<LinkOutput>,
    /// The bridge channel's URL from the offer.
    web_socket: Option<String>,
    local: Vec<SocketAddr>,
    connected: bool,
    /// str0m's next deadline, as the last drain left it (every input and
    /// every use of str0m's API here ends in a drain, so it stays right
    /// until the next one).
    deadline: Option<Instant>,
}

/// The content name, media and description of each offered content.
fn offered_contents(jingle: &Element) -> Vec<(&Element, MediaKind, &Element)> {
    jingle
        .children()
        .filter(|c| c.is("content", mns::JINGLE))
        .filter_map(|c| {
            let desc = c.get_child("description", mns::RTP)?;
            let kind = desc
                .get_attr("media")
                .and_then(MediaKind::parse)
                .or_else(|| c.get_attr("name").and_then(MediaKind::parse))?;
            Some((c, kind, desc))
        })
        .collect()
}

/// str0m's name for a header-extension URI Jitsi uses.
fn extension_of(uri: &str) -> Option<Extension> {
    match uri {
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level" => Some(Extension::AudioLevel),
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time" => {
            Some(Extension::AbsoluteSendTime)
        }
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01" => {
            Some(Extension::TransportSequenceNumber)
        }
        "urn:3gpp:video-orientation" => Some(Extension::VideoOrientation),
        _ => None,
    }
}

fn codec_of(name: &str) -> Option<Codec> {
    match name.to_ascii_lowercase().as_str() {
        "opus" => Some(Codec::Opus),
        "vp8" => Some(Codec::Vp8),
        "vp9" => Some(Codec::Vp9),
        "av1" => Some(Codec::Av1),
        "h264" => Some(Codec::H264),
        _ => None,
    }
}

impl MediaLink {
    /// Answers a `session-initiate` (the `<jingle>` element) at `now`,
    /// with host candidates on `local` (the runtime's socket addresses).
    /// Returns the link and the `<jingle action='session-accept'>` to send
    /// to the focus as `responder`.
    pub fn accept(
        now: Instant,
        offer: &Element,
        responder: &str,
        local: &[SocketAddr],
    ) -> Result<(MediaLink, Element), MediaLinkError> {
        let sid = offer
            .get_attr("sid")
            .ok_or(MediaLinkError::Missing("sid"))?
            .to_string();
        let contents = offered_contents(offer);
        if contents.is_empty() {
            return Err(MediaLinkError::Missing("audio or video content"));
        }
        let mut descriptions: Vec<(String, MediaDescription)> = Vec::new();
        for (c, _, desc) in &contents {
            let name = c.get_attr("name").unwrap_or_default().to_string();
            descriptions.push((name, parse_jingle_description(desc)?));
        }
        let remote = contents
            .iter()
            .find_map(|(c, _, _)| c.get_child("transport", mns::ICE_UDP))
            .ok_or(MediaLinkError::Missing("ICE-UDP transport"))?;
        let remote = parse_transport(remote)?;

        // Codecs and header extensions exactly as offered (those str0m knows).
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .enable_raw_packets(true)
            .clear_codecs()
            .clear_extension_map();
        for (_, d) in &descriptions {
            for e in &d.header_extensions {
                if let Some(ext) = extension_of(&e.uri) {
                    config = config.set_extension(e.id, ext);
                }
            }
        }
        {
            let codecs = config.codec_config();
            for (_, d) in &descriptions {
                for pt in &d.payload_types {
                    let Some(codec) = codec_of(&pt.name) else {
                        continue;
                    };
                    let id = pt.id;
                    let rtx = d
                        .payload_types
                        .iter()
                        .filter(|r| r.name.eq_ignore_ascii_case("rtx"))
                        .find(|r| r.parameter("apt") == Some(pt.id.to_string().as_str()))
                        .map(|r| Pt::new_with_value(r.id));
                    let clock = match pt.clockrate {
                        48_000 => Frequency::FORTY_EIGHT_KHZ,
                        _ => Frequency::NINETY_KHZ,
                    };
                    codecs.add_config(
                        Pt::new_with_value(id),
                        rtx,
                        codec,
                        clock,
                        pt.channels,
                        Default::default(),
                    );
                }
            }
        }
        let mut rtc = config.build(now);
        for addr in local {
            let c = Candidate::host(*addr, "udp")
                .map_err(|e| MediaLinkError::Candidate(e.to_string()))?;
            rtc.add_local_candidate(c);
        }
        for c in &remote.candidates {
            if c.protocol != "udp" {
                continue;
            }
            if let Ok(c) = Candidate::host(c.address, "udp") {
                rtc.add_remote_candidate(c);
            }
        }
        let fp = remote
            .fingerprints
            .iter()
            .find(|f| f.hash.eq_ignore_ascii_case("sha-256"))
            .ok_or(MediaLinkError::Missing("sha-256 fingerprint"))?;
        let fingerprint: str0m::config::Fingerprint = format!("sha-256 {}", fp.value)
            .parse()
            .map_err(|_| MediaLinkError::Fingerprint(fp.value.clone()))?;
        let mut mids = Vec::new();
        {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(false);
            // Transport-wide congestion control feedback, as a browser
            // sends it: the bridge's bandwidth estimate for the recorder.
            api.enable_twcc_feedback();
            api.set_remote_ice_credentials(str0m::IceCreds {
                ufrag: remote.ufrag.clone(),
                pass: remote.pwd.clone(),
            });
            api.set_remote_fingerprint(fingerprint);
            for (i, (_, kind, _)) in contents.iter().enumerate() {
                let mid = Mid::from(i.to_string().as_str());
                let k = match kind {
                    MediaKind::Audio => str0m::media::MediaKind::Audio,
                    MediaKind::Video => str0m::media::MediaKind::Video,
                };
                api.declare_media(mid, k);
                mids.push((*kind, mid));
            }
            api.start_dtls(true)?;
        }
        let mut link = MediaLink {
            rtc,
            sid: sid.clone(),
            mids,
            out: VecDeque::new(),
            web_socket: remote.web_socket.clone(),
            local: local.to_vec(),
            connected: false,
            deadline: None,
        };
        link.add_sources(offer)?;
        let answer = link.answer(responder, &contents, &descriptions);
        link.drain();
        Ok((link, answer))
    }

    fn answer(
        &mut self,
        responder: &str,
        contents: &[(&Element, MediaKind, &Element)],
        descriptions: &[(String, MediaDescription)],
    ) -> Element {
        let transport = self.transport();
        let mut jingle = Element::new("jingle", mns::JINGLE)
            .attr("action", "session-accept")
            .attr("sid", self.sid.clone())
            .attr("responder", responder.to_string());
        let mut group =
            Element::new("group", mns::GROUPING).attr("semantics", "BUNDLE".to_string());
        for ((content, kind, _), (name, d)) in contents.iter().zip(descriptions) {
            let mut desc = Element::new("description", mns::RTP).attr("media", kind.as_str());
            for pt in &d.payload_types {
                desc.push_child(payload_type_element(pt));
            }
            for ext in &d.header_extensions {
                desc.push_child(header_extension_element(ext));
            }
            let creator = content.get_attr("creator").unwrap_or("initiator");
            jingle.push_child(
                Element::new("content", mns::JINGLE)
                    .attr("creator", creator.to_string())
                    .attr("name", name.clone())
                    .attr("senders", "initiator")
                    .child(desc)
                    .child(transport_element(&transport)),
            );
            group.push_child(Element::new("content", mns::GROUPING).attr("name", name.clone()));
        }
        jingle.child(group)
    }

    /// The recorder's ICE-UDP transport, as its session-accept carries it.
    pub fn transport(&mut self) -> IceTransport {
        let creds = self.rtc.direct_api().local_ice_credentials();
        let fp = self.rtc.direct_api().local_dtls_fingerprint().clone();
        let value = fp
            .bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        IceTransport {
            ufrag: creds.ufrag,
            pwd: creds.pass,
            fingerprints: vec![Fingerprint {
                hash: "sha-256".into(),
                value,
                setup: Some("active".into()),
            }],
            candidates: self
                .local
                .iter()
                .enumerate()
                .map(|(i, a)| JingleCandidate {
                    foundation: (i + 1).to_string(),
                    component: 1,
                    protocol: "udp".into(),
                    priority: 2_130_706_431 - i as u32,
                    address: *a,
                    kind: "host".into(),
                    generation: 0,
                    id: Some(format!("rec{i}")),
                })
                .collect(),
            rtcp_mux: true,
            web_socket: None,
        }
    }

    /// The Jingle session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The bridge channel (colibri-ws) URL the offer carried.
    pub fn web_socket(&self) -> Option<&str> {
        self.web_socket.as_deref()
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Another Jingle element of the session (`source-add`,
    /// `source-remove`, `transport-info`): streams expected or dropped,
    /// candidates added.
    pub fn handle_jingle(&mut self, jingle: &Element) -> Result<(), MediaLinkError> {
        match jingle.get_attr("action") {
            Some("source-add") => self.add_sources(jingle)?,
            Some("source-remove") => {
                let mut gone = Vec::new();
                for (kind, desc) in descriptions(jingle) {
                    gone.extend(parse_jingle_sources(desc, kind)?);
                }
                gone.extend(json_sources(jingle)?);
                let mut api = self.rtc.direct_api();
                for s in gone {
                    for ssrc in &s.ssrcs {
                        api.remove_stream_rx(Ssrc::from(*ssrc));
                    }
                }
            }
            Some("transport-info") => {
                for c in jingle.children().filter(|c| c.is("content", mns::JINGLE)) {
                    if let Some(t) = c.get_child("transport", mns::ICE_UDP) {
                        for cand in parse_transport(t)?.candidates {
                            if let Ok(c) = Candidate::host(cand.address, "udp") {
                                self.rtc.add_remote_candidate(c);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        self.drain();
        Ok(())
    }

    fn add_sources(&mut self, jingle: &Element) -> Result<(), MediaLinkError> {
        for (kind, desc) in descriptions(jingle) {
            let sources = parse_jingle_sources(desc, kind)?;
            self.expect(&sources);
        }
        let sources = json_sources(jingle)?;
        self.expect(&sources);
        Ok(())
    }

    fn expect(&mut self, sources: &[Source]) {
        for s in sources {
            let Some(mid) = self
                .mids
                .iter()
                .find(|(k, _)| *k == s.kind)
                .map(|(_, m)| *m)
            else {
                continue;
            };
            let mut api = self.rtc.direct_api();
            for primary in s.primary_ssrcs() {
                if api.stream_rx(&Ssrc::from(primary)).is_some() {
                    continue;
                }
                let rtx = s.rtx_for(primary).map(Ssrc::from);
                let rx = api.expect_stream_rx(Ssrc::from(primary), rtx, mid, None);
                if s.kind == MediaKind::Audio {
                    rx.suppress_nack(true);
                }
            }
        }
    }

    /// Asks the sender of `ssrc` for a keyframe (RTCP PLI through str0m).
    pub fn request_keyframe(&mut self, ssrc: u32) {
        if let Some(rx) = self.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.drain();
    }

    /// A datagram received on the runtime's socket.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        let Ok(contents) = contents.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(%e, "media link input");
        }
        self.drain();
    }

    /// When [`MediaLink::handle_timeout`] is due.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%e, "media link timeout");
        }
        self.drain();
    }

    /// Whether [`MediaLink::poll_output`] has something now.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn poll_output(&mut self) -> Option<LinkOutput> {
        self.out.pop_front()
    }

    /// Polls str0m until it waits (str0m's RTP mode gives one packet per
    /// input until polled).
    fn drain(&mut self) {
        self.drain_until_timeout();
    }

    fn drain_until_timeout(&mut self) -> Option<Instant> {
        self.deadline = self.poll_until_timeout();
        self.deadline
    }

    fn poll_until_timeout(&mut self) -> Option<Instant> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => self.out.push_back(LinkOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Ok(Output::Event(e)) => self.event(e),
                Err(e) => {
                    tracing::debug!(%e, "media link poll");
                    return None;
                }
            }
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.out.push_back(LinkOutput::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.out.push_back(LinkOutput::Disconnected);
            }
            Event::RtpPacket(p) => {
                let h = &p.header;
                self.out.push_back(LinkOutput::Packet(build_rtp(
                    *h.payload_type,
                    h.marker,
                    h.sequence_number,
                    h.timestamp,
                    *h.ssrc,
                    &p.payload,
                )));
            }
            Event::RawPacket(raw) => {
                if let RawPacket::RtcpRx(Rtcp::SenderReport(sr)) = *raw {
                    let info = sr.sender_info;
                    self.out.push_back(LinkOutput::Packet(sender_report(
                        *info.ssrc,
                        info.ntp_time,
                        info.rtp_time.numer() as u32,
                    )));
                }
            }
            _ => {}
        }
    }
}

/// The audio and video descriptions of a Jingle element's contents.
fn descriptions(jingle: &Element) -> Vec<(MediaKind, &Element)> {
    offered_contents(jingle)
        .into_iter()
        .map(|(_, k, d)| (k, d))
        .collect()
}

/// The sources of a Jingle element's json-message (Jicofo's compact JSON).
fn json_sources(jingle: &Element) -> Result<Vec<Source>, MediaLinkError> {
    let Some(json) = jingle.get_child("json-message", mns::JITMEET) else {
        return Ok(Vec::new());
    };
    Ok(
        media_signalling::json::parse_json_sources(&json.text_content())?
            .into_iter()
            .flat_map(|(_, sources)| sources)
            .collect(),
    )
}

/// An RTCP sender report with no report blocks (what the recording reads
/// for its clock alignment).
fn sender_report(ssrc: u32, ntp: SystemTime, rtp_time: u32) -> Vec<u8> {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let since = ntp.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    let ntp64 = (secs << 32) | frac;
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ntp64.to_be_bytes());
    p.extend_from_slice(&rtp_time.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p
}
