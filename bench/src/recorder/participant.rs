//! One simulated participant of `bench --recorder`: an in-process XMPP
//! session that joins a conference through lilt's focus as a browser does
//! (conference IQ, room presence, disco#info answered, the focus's Jingle
//! offer answered with str0m: ICE controlled, DTLS active, one audio and
//! one video source), then sends real Opus and VP8 over UDP to lilt's
//! bridge (a keyframe on request, as an encoder would).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use media_signalling::MediaKind;
use media_signalling::xml::{
    header_extension_element, jingle_source_elements, ns as mns, parse_jingle_description,
    parse_transport, payload_type_element, transport_element,
};
use recorder_component::replies::CALL_FEATURES;
use recorder_component::vp8::packetize;
use str0m::media::{Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc};
use str0m::{Event, Output, Rtc};
use testkit::media::{local_transport, receive_or_timeout, rtx_of, sender_config, sender_source};
use tokio::net::UdpSocket;
use xmpp_core::client::{ClientLink, LinkSender, local};
use xmpp_core::stream::parse_element;
use xmpp_core::{Element, Jid};

use super::RecorderBenchError as Error;
use super::media::MediaFiles;

pub const JIBRI_NS: &str = "http://jitsi.org/protocol/jibri";

fn proto(what: impl Into<String>) -> Error {
    Error::Protocol(what.into())
}

fn el(xml: &str) -> Result<Element, Error> {
    let mut e = parse_element(xml).map_err(|e| proto(format!("{e}: {xml}")))?;
    e.set_attr("xml:lang", None);
    Ok(e)
}

/// A participant's XMPP session.
pub struct Peer {
    link: ClientLink,
    tx: LinkSender,
    seen: Vec<Element>,
}

impl Peer {
    pub fn send(&self, xml: &str) -> Result<(), Error> {
        self.send_element(el(xml)?)
    }

    fn send_element(&self, e: Element) -> Result<(), Error> {
        if self.tx.send(e) {
            Ok(())
        } else {
            Err(proto("the participant's session ended"))
        }
    }

    /// The first stanza (seen before or arriving within `secs`) matching
    /// `pred`; IQ requests that do not match are acknowledged (as a
    /// browser acknowledges the focus's source-add).
    pub async fn expect(
        &mut self,
        secs: u64,
        what: &str,
        pred: impl Fn(&Element) -> bool,
    ) -> Result<Element, Error> {
        if let Some(i) = self.seen.iter().position(&pred) {
            return Ok(self.seen.remove(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.link.recv()).await {
                Ok(Some(s)) if pred(&s) => return Ok(s),
                Ok(Some(s)) => {
                    if s.name() == "iq" && matches!(s.type_(), Some("set") | Some("get")) {
                        self.send_element(s.reply())?;
                    } else if s.name() == "iq" || recording_status(&s).is_some() {
                        // Only what a later wait may look for is kept (the
                        // room's other presences are many).
                        self.seen.push(s);
                    }
                }
                Ok(None) => return Err(proto(format!("session ended waiting for {what}"))),
                Err(_) => return Err(proto(format!("timed out waiting for {what}"))),
            }
        }
    }

    /// Acknowledges IQs that arrived meanwhile; other stanzas are dropped
    /// but for the recording's status.
    pub async fn ack_pending(&mut self) -> Result<(), Error> {
        while let Ok(Some(s)) =
            tokio::time::timeout(Duration::from_millis(1), self.link.recv()).await
        {
            if s.name() == "iq" && matches!(s.type_(), Some("set") | Some("get")) {
                self.send_element(s.reply())?;
            } else if recording_status(&s).is_some() {
                self.seen.push(s);
            }
        }
        // Statuses seen before the last "on" are old news.
        if let Some(last_on) = self
            .seen
            .iter()
            .rposition(|s| recording_status(s) == Some("on"))
        {
            self.seen.drain(..=last_on);
        }
        Ok(())
    }

    /// Starts a file recording of `room` through the focus (retried while
    /// the recorder is not in the brewery yet) and waits for "on".
    pub async fn start_recording(&mut self, room: &str) -> Result<(), Error> {
        for attempt in 0..100 {
            let id = format!("rec{attempt}");
            self.send(&format!(
                "<iq type='set' id='{id}' to='{room}/focus'>\
                 <jibri xmlns='{JIBRI_NS}' action='start' recording_mode='file'/></iq>"
            ))?;
            let r = self
                .expect(10, "the start answer", |s| s.id() == Some(id.as_str()))
                .await?;
            if r.type_() == Some("result") {
                self.expect(30, "the recording on", |s| {
                    recording_status(s) == Some("on")
                })
                .await?;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(proto(format!("the focus started no recording of {room}")))
    }

    /// Stops the recording of `room` and waits for "off".
    pub async fn stop_recording(&mut self, room: &str) -> Result<(), Error> {
        self.send(&format!(
            "<iq type='set' id='stop' to='{room}/focus'><jibri xmlns='{JIBRI_NS}' action='stop'/></iq>"
        ))?;
        self.expect(10, "the stop answer", |s| s.id() == Some("stop"))
            .await?;
        self.expect(60, "the recording off", |s| {
            recording_status(s) == Some("off")
        })
        .await?;
        Ok(())
    }
}

fn recording_status(s: &Element) -> Option<&str> {
    s.get_child("jibri-recording-status", JIBRI_NS)?
        .get_attr("status")
}

fn jingle_action(e: &Element) -> Option<&str> {
    e.get_child("jingle", mns::JINGLE)?.get_attr("action")
}

/// Joins `room` through the focus and answers its offer; returns the
/// session and the participant's media side, not yet sending.
pub async fn join(
    server: &Arc<xmpp_core::Server>,
    room: &str,
    user: &str,
    ssrc: u32,
) -> Result<(Peer, Sender), Error> {
    let jid = Jid::parse(&format!("{user}@example.com/web")).map_err(|e| proto(e.to_string()))?;
    let link = local(server, &jid).map_err(|e| proto(e.to_string()))?;
    let tx = link.sender();
    let mut p = Peer {
        link,
        tx,
        seen: Vec::new(),
    };
    p.send("<presence/>")?;
    // The focus may still be starting (no bridge yet): retry, as clients do.
    let mut accepted = false;
    for attempt in 0..50 {
        let id = format!("conf{attempt}");
        p.send(&format!(
            "<iq type='set' id='{id}' to='focus.example.com'>\
             <conference xmlns='http://jitsi.org/protocol/focus' room='{room}' machine-uid='{user}'/></iq>"
        ))?;
        let r = p
            .expect(10, "the conference IQ's answer", |s| {
                s.id() == Some(id.as_str())
            })
            .await?;
        if r.type_() == Some("result") {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !accepted {
        return Err(proto("the focus refused the conference"));
    }
    p.send(&format!(
        "<presence to='{room}/{user}'><x xmlns='http://jabber.org/protocol/muc'/>\
         <nick xmlns='http://jabber.org/protocol/nick'>{user}</nick></presence>"
    ))?;
    let disco = p
        .expect(20, "disco#info from the focus", |s| {
            s.type_() == Some("get")
                && s.get_child("query", "http://jabber.org/protocol/disco#info")
                    .is_some()
        })
        .await?;
    let features: String = CALL_FEATURES
        .iter()
        .map(|f| format!("<feature var='{f}'/>"))
        .collect();
    p.send(&format!(
        "<iq type='result' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'>{features}</query></iq>",
        disco.id().unwrap_or_default(),
        disco.from().unwrap_or_default()
    ))?;
    let offer = p
        .expect(20, "the focus's session-initiate", |s| {
            jingle_action(s) == Some("session-initiate")
        })
        .await?;
    let focus = offer.from().unwrap_or_default().to_string();
    p.send(&format!(
        "<iq type='result' id='{}' to='{focus}'/>",
        offer.id().unwrap_or_default()
    ))?;
    let (sender, accept) = answer_offer(&offer, user, ssrc).await?;
    let mut iq = Element::new("iq", "jabber:client")
        .attr("type", "set")
        .attr("id", "accept")
        .attr("to", focus)
        .child(accept);
    iq.set_attr("xml:lang", None);
    p.send_element(iq)?;
    let r = p
        .expect(10, "the session-accept's answer", |s| {
            s.id() == Some("accept")
        })
        .await?;
    if r.type_() != Some("result") {
        return Err(proto(format!("session-accept refused: {r}")));
    }
    let url = sender
        .channel_url
        .clone()
        .ok_or_else(|| proto("no bridge channel (web-socket) in the offer"))?;
    open_bridge_channel(url).await?;
    Ok((p, sender))
}

/// A participant's media: its str0m `Rtc` on its own UDP socket.
pub struct Sender {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    audio_ssrc: u32,
    video_ssrc: u32,
    opus_pt: u8,
    vp8_pt: u8,
    /// The bridge channel's URL from the offer (colibri-ws).
    channel_url: Option<String>,
}

/// What a participant asks of the bridge: no video. The bridge then
/// forwards each sender's video to the recorder only, so that this
/// machine's CPU goes to the recordings rather than to 3 × 80 simulated
/// receivers (their audio still flows, as the speaker detection needs).
const NO_VIDEO: &str = r#"{"colibriClass":"ReceiverVideoConstraints","lastN":0}"#;

/// Opens the participant's bridge channel, asks for no video and keeps
/// the channel open (reading and dropping what the bridge says) until the
/// bridge closes it.
async fn open_bridge_channel(url: String) -> Result<(), Error> {
    use futures_util::{SinkExt, StreamExt};
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| proto(format!("bridge channel {url}: {e}")))?;
    ws.send(tokio_tungstenite::tungstenite::Message::text(NO_VIDEO))
        .await
        .map_err(|e| proto(format!("bridge channel {url}: {e}")))?;
    tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    Ok(())
}

/// Builds the participant's `Rtc` from the focus's offer; returns it with
/// the session-accept's `<jingle>`.
async fn answer_offer(
    offer: &Element,
    endpoint: &str,
    ssrc: u32,
) -> Result<(Sender, Element), Error> {
    let jingle = offer
        .get_child("jingle", mns::JINGLE)
        .ok_or_else(|| proto("no jingle"))?;
    let mut descriptions = Vec::new();
    let mut remote = None;
    for c in jingle.children().filter(|c| c.is("content", mns::JINGLE)) {
        if let Some(d) = c.get_child("description", mns::RTP) {
            let d = parse_jingle_description(d).map_err(|e| proto(e.to_string()))?;
            descriptions.push((c.get_attr("name").unwrap_or_default().to_string(), d));
        }
        if remote.is_none()
            && let Some(t) = c.get_child("transport", mns::ICE_UDP)
        {
            remote = Some(parse_transport(t).map_err(|e| proto(e.to_string()))?);
        }
    }
    let remote = remote.ok_or_else(|| proto("no transport in the offer"))?;
    let pt_of = |name: &str| {
        descriptions
            .iter()
            .flat_map(|(_, d)| &d.payload_types)
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.id)
            .ok_or_else(|| proto(format!("no {name} offered")))
    };
    let (opus_pt, vp8_pt) = (pt_of("opus")?, pt_of("vp8")?);
    // VP8's retransmission payload type, when offered (a browser's RTX).
    let rtx_pt = rtx_of(&descriptions, vp8_pt);
    let config = sender_config(&descriptions, opus_pt, vp8_pt, rtx_pt);
    let mut rtc = config.build(Instant::now());
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(Error::io("binding a participant's socket"))?;
    // Room for what the bridge forwards while the generator is busy (as a
    // browser's socket has); capped by net.core.rmem_max.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
    let local = socket
        .local_addr()
        .map_err(Error::io("a participant's address"))?;
    let candidate = |a: SocketAddr| {
        str0m::Candidate::host(a, "udp").map_err(|e| proto(format!("candidate {a}: {e}")))
    };
    rtc.add_local_candidate(candidate(local)?);
    for c in remote.candidates.iter().filter(|c| c.protocol == "udp") {
        rtc.add_remote_candidate(candidate(c.address)?);
    }
    let (audio_ssrc, video_ssrc) = (ssrc, ssrc + 1);
    // The video's FID (RTX) SSRC, as browsers send one when RTX is offered.
    let rtx_ssrc = rtx_pt.map(|_| ssrc + 2);
    let fp = remote
        .fingerprints
        .first()
        .ok_or_else(|| proto("no fingerprint"))?;
    let fp = format!("sha-256 {}", fp.value)
        .parse()
        .map_err(|_| proto("bad fingerprint"))?;
    {
        let mut api = rtc.direct_api();
        api.set_ice_controlling(false);
        api.set_remote_ice_credentials(str0m::IceCreds {
            ufrag: remote.ufrag.clone(),
            pass: remote.pwd.clone(),
        });
        api.set_remote_fingerprint(fp);
        api.declare_media(Mid::from("0"), str0m::media::MediaKind::Audio);
        api.declare_media(Mid::from("1"), str0m::media::MediaKind::Video);
        api.declare_stream_tx(Ssrc::from(audio_ssrc), None, Mid::from("0"), None);
        api.declare_stream_tx(
            Ssrc::from(video_ssrc),
            rtx_ssrc.map(Ssrc::from),
            Mid::from("1"),
            None,
        );
        api.start_dtls(true).map_err(|e| proto(e.to_string()))?;
    }
    let transport = local_transport(&mut rtc, local);
    let mut accept = Element::new("jingle", mns::JINGLE)
        .attr("action", "session-accept")
        .attr(
            "sid",
            jingle.get_attr("sid").unwrap_or_default().to_string(),
        );
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
    Ok((
        Sender {
            rtc,
            socket,
            local,
            audio_ssrc,
            video_ssrc,
            opus_pt,
            vp8_pt,
            channel_url: remote.web_socket.clone(),
        },
        accept,
    ))
}

/// Drives a participant's `Rtc` until `stop`: once connected, an Opus
/// packet every 20 ms (audio level `level` dBov) and a VP8 frame every
/// 33 ms. Returns whether it connected.
pub async fn send_media(
    mut s: Sender,
    media: Arc<MediaFiles>,
    level: i8,
    phase: usize,
    stop: Arc<AtomicBool>,
) -> bool {
    let mut connected = false;
    let mut keyframe_due = false;
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let (mut next_audio, mut next_video) = (start, start);
    let mut audio_n = phase;
    let mut video_n = None;
    let (mut audio_seq, mut video_seq) = (1u64, 1u64);
    while !stop.load(Ordering::Relaxed) {
        let timeout = loop {
            match s.rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = s.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => connected = true,
                Ok(Output::Event(Event::KeyframeRequest(_))) => keyframe_due = true,
                Ok(Output::Event(_)) => {}
                Err(_) => return connected,
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
                let w = RtpWrite::new(
                    Pt::new_with_value(s.opus_pt),
                    audio_seq.into(),
                    ts,
                    now,
                    payload,
                );
                tx.write_rtp(w.ext_vals(ext));
            }
            audio_seq += 1;
            continue;
        }
        if connected && now >= next_video {
            next_video += Duration::from_millis(33);
            let len = media.video.len();
            // Start at a keyframe, and send one on request.
            let n = match video_n {
                Some(n) if !std::mem::take(&mut keyframe_due) => n,
                Some(n) => (n..n + len).find(|i| media.keyframes[i % len]).unwrap_or(n),
                None => media.keyframes.iter().position(|k| *k).unwrap_or(0),
            };
            video_n = Some(n + 1);
            let frame = &media.video[n % len];
            let ts = (now.duration_since(start).as_micros() * 9 / 100) as u32;
            let packets = packetize(frame, 1100);
            let last = packets.len().saturating_sub(1);
            for (i, p) in packets.into_iter().enumerate() {
                if let Some(tx) = s.rtc.direct_api().stream_tx(&Ssrc::from(s.video_ssrc)) {
                    let w =
                        RtpWrite::new(Pt::new_with_value(s.vp8_pt), video_seq.into(), ts, now, p);
                    tx.write_rtp(w.marker(i == last).nackable(true));
                }
                video_seq += 1;
            }
            continue;
        }
        let mut wake = timeout.min(now + Duration::from_millis(100));
        if connected {
            wake = wake.min(next_audio).min(next_video);
        }
        let wait = wake.saturating_duration_since(Instant::now());
        receive_or_timeout(&mut s.rtc, &s.socket, s.local, &mut buf, wait).await;
    }
    connected
}
