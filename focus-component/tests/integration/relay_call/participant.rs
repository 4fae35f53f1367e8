//! A str0m participant for the relay call: what a browser does with the
//! focus's offer (ICE controlled, DTLS active, its audio source in the
//! session-accept), a new `Rtc` for each new session (after a
//! session-terminate, as Jicofo's RestartJingle), Opus-shaped audio every
//! 20 ms when it sends, and a count of the audio packets it receives from
//! the sender's SSRC.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media_signalling::xml::{
    header_extension_element, jingle_source_elements, ns as mns, payload_type_element,
    transport_element,
};
use media_signalling::{MediaKind, Source};
use str0m::format::Codec;
use str0m::media::{Frequency, Mid, Pt};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Event, Output, Rtc};
use testkit::media::{
    local_transport, offered_descriptions, offered_transport, receive_or_timeout,
    use_remote_transport,
};
use tokio::net::UdpSocket;
use xmpp_core::Element;

/// What the test reads of a participant while it runs.
#[derive(Default)]
pub struct Counters {
    /// Audio packets received from the sender's SSRC.
    pub received: AtomicU64,
    /// New sessions after the first (offers handled).
    pub replaced: AtomicU64,
    /// session-terminate received from the focus.
    pub terminated: AtomicU64,
    /// The bridge's media port of the current session.
    pub bridge_port: AtomicU64,
    /// The current session: its sid and bridge-session id.
    pub session: Mutex<(String, String)>,
    /// Answers to our `ice-*` requests: accepted, refused
    /// (`resource-constraint`).
    pub restarts_accepted: AtomicU64,
    pub restarts_refused: AtomicU64,
    pub stop: AtomicBool,
}

impl Counters {
    /// Notes the session an offer opens.
    pub fn session_from(&self, offer: &Element) {
        let jingle = offer.get_child("jingle", mns::JINGLE).unwrap();
        let bsid = jingle
            .get_child("bridge-session", "http://jitsi.org/protocol/focus")
            .and_then(|b| b.get_attr("id"))
            .unwrap_or("");
        *self.session.lock().unwrap() = (
            jingle.get_attr("sid").unwrap().to_string(),
            bsid.to_string(),
        );
    }
}

/// One media session: the `Rtc` on its socket.
pub struct Media {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    opus_pt: u8,
    /// Our audio SSRC when we send.
    send_ssrc: Option<u32>,
    connected: bool,
    seq: u64,
}

/// Builds the session from a session-initiate and returns it with the
/// session-accept's `<jingle>`.
pub async fn answer(
    offer: &Element,
    endpoint: &str,
    send_ssrc: Option<u32>,
    expect_ssrc: Option<u32>,
) -> (Media, Element, u16) {
    let jingle = offer.get_child("jingle", mns::JINGLE).unwrap();
    let descs = offered_descriptions(jingle);
    let remote = offered_transport(jingle).unwrap();
    let opus_pt = descs
        .iter()
        .flat_map(|(_, d)| &d.payload_types)
        .find(|p| p.name.eq_ignore_ascii_case("opus"))
        .map(|p| p.id)
        .unwrap();
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .clear_extension_map();
    config.codec_config().add_config(
        Pt::new_with_value(opus_pt),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        Default::default(),
    );
    let mut rtc = config.build(Instant::now());
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    rtc.add_local_candidate(str0m::Candidate::host(local, "udp").unwrap());
    let bridge_port = use_remote_transport(&mut rtc, &remote);
    {
        let mut api = rtc.direct_api();
        api.declare_media(Mid::from("0"), str0m::media::MediaKind::Audio);
        if let Some(ssrc) = send_ssrc {
            api.declare_stream_tx(Ssrc::from(ssrc), None, Mid::from("0"), None);
        }
        if let Some(ssrc) = expect_ssrc {
            api.expect_stream_rx(Ssrc::from(ssrc), None, Mid::from("0"), None);
        }
        api.start_dtls(true).unwrap();
    }
    let transport = local_transport(&mut rtc, local);
    let mut reply = Element::new("jingle", mns::JINGLE)
        .attr("action", "session-accept")
        .attr("sid", jingle.get_attr("sid").unwrap().to_string());
    for (name, d) in &descs {
        let mut desc = Element::new("description", mns::RTP).attr("media", d.kind.as_str());
        for pt in &d.payload_types {
            desc.push_child(payload_type_element(pt));
        }
        for e in &d.header_extensions {
            desc.push_child(header_extension_element(e));
        }
        if let (MediaKind::Audio, Some(ssrc)) = (d.kind, send_ssrc) {
            let source = Source {
                kind: MediaKind::Audio,
                name: format!("{endpoint}-a0"),
                ssrcs: vec![ssrc],
                groups: vec![],
                video_type: None,
                msid: Some(format!("stream-{endpoint} track-a")),
            };
            for e in jingle_source_elements(&[source], None) {
                desc.push_child(e);
            }
        }
        reply.push_child(
            Element::new("content", mns::JINGLE)
                .attr("creator", "initiator")
                .attr("name", name.clone())
                .attr("senders", "both")
                .child(desc)
                .child(transport_element(&transport)),
        );
    }
    let media = Media {
        rtc,
        socket,
        local,
        opus_pt,
        send_ssrc,
        connected: false,
        seq: 1,
    };
    (media, reply, bridge_port)
}

impl Media {
    /// Goes on with the RTP sequence of the session this one replaces
    /// (same SSRC, so the receivers' streams continue).
    pub fn continue_from(&mut self, old: &Media) {
        self.seq = old.seq;
    }

    /// Runs the session until `deadline` (or until a datagram or the next
    /// timer has been handled): one turn of the participant's loop.
    pub async fn turn(&mut self, deadline: Instant, next_send: &mut Instant, counters: &Counters) {
        let mut buf = vec![0u8; 2048];
        let timeout = loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::RtpPacket(p))) => {
                    if Some(*p.header.ssrc) != self.send_ssrc {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(_) => return,
            }
        };
        let now = Instant::now();
        if let Some(ssrc) = self.send_ssrc
            && self.connected
            && now >= *next_send
        {
            *next_send = now + Duration::from_millis(20);
            let ts = (self.seq * 960) as u32;
            let payload = vec![0xf8, 0xff, 0xfe, (self.seq & 0xff) as u8];
            if let Some(tx) = self.rtc.direct_api().stream_tx(&Ssrc::from(ssrc)) {
                tx.write_rtp(RtpWrite::new(
                    Pt::new_with_value(self.opus_pt),
                    self.seq.into(),
                    ts,
                    now,
                    payload,
                ));
            }
            self.seq += 1;
            return;
        }
        let mut wake = timeout.min(deadline);
        if self.send_ssrc.is_some() && self.connected {
            wake = wake.min(*next_send);
        }
        let wait = wake.saturating_duration_since(Instant::now());
        receive_or_timeout(&mut self.rtc, &self.socket, self.local, &mut buf, wait).await;
    }
}
