//! The relay scenario's focus: lilt's bridges as `bench
//! --media-bridge-host` processes (Colibri2 one IQ per line over a pipe),
//! endpoints allocated on them as Jicofo allocates them (the allocation,
//! then the endpoint's transport and sources), and the two bridges relayed
//! with Colibri2 `<relay>` as Jicofo relays them (see the stanza shapes at
//! the top of `sfu-component/src/relay/mod.rs`): a create on each side
//! with the other side's endpoints and their sources, bridge A the
//! initiator (ICE controlling, DTLS client, given B's relay web-socket),
//! then each side's answered transport copied to the other.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use media_signalling::IceTransport;
use media_signalling::xml::{ns, transport_element};
use str0m::media::Mid;
use str0m::rtp::Ssrc;
use xmpp_core::Element;

use super::MediaError;
use super::allocation::{answered_transport, configure_client};
use super::peer::{self, Kind, OutStream, Peer};
use super::pump::Pump;

/// Each bridge's `relay_id` (what the other side's `<relay id>` names).
pub const RELAY_IDS: [&str; 2] = ["bench-jvb-a", "bench-jvb-b"];

/// Where the focus's Colibri2 requests go: a bridge host process, or (in
/// the tests) a `Bridge` in this process.
pub trait Colibri2 {
    /// One `conference-modify` of `body` (the conference named and
    /// created with `create`); the `<conference-modified>` of its result.
    fn modify(&mut self, meeting: &str, create: bool, body: &str) -> Result<Element, MediaError>;
}

/// The `<iq>` of one `conference-modify`.
fn modify_iq(id: &str, meeting: &str, create: bool, body: &str) -> String {
    let create = if create {
        " name='bench@conference.localhost' create='true'"
    } else {
        ""
    };
    format!(
        "<iq xmlns='jabber:client' type='set' id='{id}' from='focus@auth.localhost/focus' \
         to='jvb@auth.localhost/bench'><conference-modify xmlns='{c2}' meeting-id='{meeting}'{create}>\
         {body}</conference-modify></iq>",
        c2 = ns::COLIBRI2
    )
}

/// The `<conference-modified>` of `answer` if it is the result of `id`;
/// `None` for another stanza.
fn modified_of(answer: &Element, id: &str) -> Option<Result<Element, MediaError>> {
    if answer.name() != "iq" || answer.id() != Some(id) {
        return None;
    }
    if answer.type_() != Some("result") {
        return Some(Err(MediaError::Protocol(format!(
            "bridge refused: {answer:?}"
        ))));
    }
    Some(
        answer
            .get_child("conference-modified", ns::COLIBRI2)
            .cloned()
            .ok_or_else(|| MediaError::Protocol("no conference-modified".into())),
    )
}

/// One `bench --media-bridge-host` process.
pub struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub pid: u32,
    next_id: u64,
}

impl Host {
    /// Starts a bridge host on UDP `port`, pinned to `cpus`.
    pub fn start(cpus: &str, port: u16) -> Result<Host, MediaError> {
        let exe = std::env::current_exe().map_err(MediaError::io("finding bench"))?;
        let mut child = Command::new("taskset")
            .args(["-c", cpus])
            .arg(exe)
            .arg("--media-bridge-host")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(MediaError::io("starting a bridge host"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(MediaError::Protocol("bridge host without pipes".into()));
        };
        let mut host = Host {
            pid: child.id(),
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            next_id: 0,
        };
        for _ in 0..20 {
            match host.read_line() {
                Ok(line) if line.starts_with("ready") => return Ok(host),
                Ok(_) => {}
                Err(e) => {
                    host.stop();
                    return Err(e);
                }
            }
        }
        host.stop();
        Err(MediaError::Protocol(
            "the bridge host never said ready".into(),
        ))
    }

    fn read_line(&mut self) -> Result<String, MediaError> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(MediaError::io("reading a bridge host"))?;
        if n == 0 {
            return Err(MediaError::Protocol("a bridge host exited".into()));
        }
        Ok(line.trim().to_string())
    }

    /// Closes its stdin (the host returns), killing it if it lingers.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Colibri2 for Host {
    fn modify(&mut self, meeting: &str, create: bool, body: &str) -> Result<Element, MediaError> {
        self.next_id += 1;
        let id = format!("relay-c2-{}", self.next_id);
        let iq = modify_iq(&id, meeting, create, body);
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| MediaError::Protocol("bridge host stopped".into()))?;
        writeln!(stdin, "{iq}").map_err(MediaError::io("writing to a bridge host"))?;
        for _ in 0..1000 {
            let line = self.read_line()?;
            let Ok(el) = xmpp_core::stream::parse_element(&line) else {
                continue;
            };
            if let Some(answer) = modified_of(&el, &id) {
                return answer;
            }
        }
        Err(MediaError::Protocol(format!("no answer to {id}")))
    }
}

/// An endpoint's sources as Colibri2 carries them.
#[derive(Debug, Clone)]
struct Member {
    endpoint: String,
    /// (kind, SSRC, RTX SSRC)
    sources: Vec<(Kind, u32, Option<u32>)>,
}

/// The conference as the focus sees it: who is on which bridge.
pub struct Conference {
    meeting: String,
    created: [bool; 2],
    members: [Vec<Member>; 2],
    streams: u32,
}

impl Default for Conference {
    fn default() -> Self {
        Conference::new()
    }
}

impl Conference {
    pub fn new() -> Conference {
        Conference {
            meeting: format!("bench-relay-{}", rand::random::<u32>()),
            created: [false; 2],
            members: [Vec::new(), Vec::new()],
            streams: 0,
        }
    }

    /// The `meeting-id` of the conference on every bridge.
    #[cfg(test)]
    pub fn meeting(&self) -> &str {
        &self.meeting
    }

    /// Allocates endpoint `name` on bridge `b` (`host`), a str0m client
    /// for it in `pump`; `sender`: its index among the senders (one Opus
    /// and one VP8 stream with RTX), `None` for a receive-only endpoint.
    pub fn join(
        &mut self,
        b: usize,
        host: &mut impl Colibri2,
        pump: &mut Pump,
        name: &str,
        sender: Option<usize>,
    ) -> Result<(), MediaError> {
        let slot = b.min(1);
        let mut rtc = peer::rtc_config().build(Instant::now());
        rtc.direct_api().set_ice_controlling(false);
        let mut p = Peer::new(name.to_string(), rtc, [127, 0, 0, 1].into())?;
        let create = !self.created[slot];
        self.created[slot] = true;
        let body = format!(
            "<endpoint id='{name}' create='true' stats-id='Bench-{name}' muc-role='participant'>\
             {media}<transport ice-controlling='true'/><capability name='source-names'/></endpoint>",
            media = media_xml()
        );
        let answer = host.modify(&self.meeting, create, &body)?;
        let remote = answered_transport(&answer, "endpoint", name)?;
        configure_client(&mut p, &remote)?;
        let mut member = Member {
            endpoint: name.to_string(),
            sources: Vec::new(),
        };
        if let Some(i) = sender {
            let base = 0x0200_0000u32.saturating_add(16u32.saturating_mul(i as u32));
            let (audio, video, rtx) = (base, base + 1, base + 2);
            p.outgoing.push(OutStream::new(
                self.streams,
                Kind::Audio,
                Ssrc::from(audio),
                None,
            ));
            p.outgoing.push(OutStream::new(
                self.streams + 1,
                Kind::Video,
                Ssrc::from(video),
                Some(Ssrc::from(rtx)),
            ));
            self.streams += 2;
            let mut api = p.rtc.direct_api();
            api.declare_stream_tx(Ssrc::from(audio), None, Mid::from("a"), None);
            api.declare_stream_tx(
                Ssrc::from(video),
                Some(Ssrc::from(rtx)),
                Mid::from("v"),
                None,
            );
            member.sources = vec![(Kind::Audio, audio, None), (Kind::Video, video, Some(rtx))];
        }
        let creds = p.rtc.direct_api().local_ice_credentials();
        let body = format!(
            "<endpoint id='{name}'><transport>\
             <transport xmlns='{ice}' ufrag='{ufrag}' pwd='{pwd}'><rtcp-mux/>\
             <fingerprint xmlns='{dtls}' hash='sha-256' setup='active'>{fp}</fingerprint>\
             <candidate component='1' foundation='1' generation='0' id='{name}-c1' network='0' \
             priority='2130706431' protocol='udp' ip='{ip}' port='{port}' type='host'/>\
             </transport></transport><sources>{sources}</sources></endpoint>",
            ice = ns::ICE_UDP,
            dtls = ns::DTLS,
            ufrag = creds.ufrag,
            pwd = creds.pass,
            fp = p.fingerprint(),
            ip = p.local.ip(),
            port = p.local.port(),
            sources = sources_xml(&member),
        );
        host.modify(&self.meeting, false, &body)?;
        p.rtc
            .direct_api()
            .start_dtls(true)
            .map_err(|e| MediaError::Protocol(format!("{name}: dtls: {e}")))?;
        pump.peers.push(p);
        self.members[slot].push(member);
        Ok(())
    }

    /// Relays bridge 0 (`hosts[0]`) and bridge 1 as Jicofo does.
    pub fn relay(&mut self, hosts: &mut [impl Colibri2]) -> Result<(), MediaError> {
        if hosts.len() != 2 {
            return Err(MediaError::Usage("a relay needs two bridges".into()));
        }
        let mut answered: Vec<IceTransport> = Vec::new();
        for (b, host) in hosts.iter_mut().enumerate() {
            let peer = RELAY_IDS[1 - b];
            let initiator = b == 0;
            let endpoints: String = self.members[1 - b]
                .iter()
                .map(|m| {
                    let sources = if m.sources.is_empty() {
                        String::new()
                    } else {
                        format!("<sources>{}</sources>", sources_xml(m))
                    };
                    format!(
                        "<endpoint id='{id}' create='true' stats-id='Bench-{id}'>\
                         <capability name='source-names'/>{sources}</endpoint>",
                        id = m.endpoint
                    )
                })
                .collect();
            let body = format!(
                "<relay id='{peer}' create='true' mesh-id='0'>{media}<endpoints>{endpoints}</endpoints>\
                 <transport use-unique-port='{initiator}' ice-controlling='{initiator}'/></relay>",
                media = media_xml()
            );
            let answer = host.modify(&self.meeting, false, &body)?;
            answered.push(answered_transport(&answer, "relay", peer)?);
        }
        for (b, host) in hosts.iter_mut().enumerate() {
            let Some(mut t) = answered.get(1 - b).cloned() else {
                return Err(MediaError::Protocol("a relay without its transport".into()));
            };
            let setup = if b == 0 { "active" } else { "passive" };
            for f in &mut t.fingerprints {
                f.setup = Some(setup.into());
            }
            if b != 0 {
                t.web_socket = None;
            }
            let mut relay = Element::new("relay", ns::COLIBRI2).attr("id", RELAY_IDS[1 - b]);
            relay.push_child(Element::new("transport", ns::COLIBRI2).child(transport_element(&t)));
            host.modify(&self.meeting, false, &relay.to_string())?;
        }
        Ok(())
    }

    /// Every endpoint learns every other's sources (source-add); the
    /// fan-out of each stream (every other endpoint receives it).
    pub fn expect_all(&self, pump: &mut Pump) -> HashMap<u32, u64> {
        let all: Vec<(usize, Kind, Ssrc, Option<Ssrc>)> = pump
            .peers
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.outgoing.iter().map(move |s| (i, s.kind, s.ssrc, s.rtx)))
            .collect();
        for (i, p) in pump.peers.iter_mut().enumerate() {
            let mut api = p.rtc.direct_api();
            for (owner, kind, ssrc, rtx) in &all {
                if *owner != i {
                    let mid = if *kind == Kind::Audio { "a" } else { "v" };
                    api.expect_stream_rx(*ssrc, *rtx, Mid::from(mid), None);
                }
            }
        }
        let fan_out = (pump.peers.len() as u64).saturating_sub(1);
        (0..self.streams).map(|s| (s, fan_out)).collect()
    }
}

/// The `<media>` of audio and video, as the bench's endpoints send them.
fn media_xml() -> String {
    let (rtp, fb, ext) = (ns::RTP, ns::RTCP_FB, ns::HDREXT);
    let twcc = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
    format!(
        "<media type='audio'>\
         <payload-type xmlns='{rtp}' id='{opus}' name='opus' clockrate='48000' channels='2'>\
         <parameter name='minptime' value='10'/><parameter name='useinbandfec' value='1'/>\
         <rtcp-fb xmlns='{fb}' type='transport-cc'/></payload-type>\
         <rtp-hdrext xmlns='{ext}' id='{level}' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
         <rtp-hdrext xmlns='{ext}' id='{tcc}' uri='{twcc}'/></media>\
         <media type='video'>\
         <payload-type xmlns='{rtp}' id='{vp8}' name='VP8' clockrate='90000'>\
         <rtcp-fb xmlns='{fb}' type='ccm' subtype='fir'/><rtcp-fb xmlns='{fb}' type='nack'/>\
         <rtcp-fb xmlns='{fb}' type='nack' subtype='pli'/><rtcp-fb xmlns='{fb}' type='transport-cc'/>\
         </payload-type>\
         <payload-type xmlns='{rtp}' id='{rtx}' name='rtx' clockrate='90000'>\
         <parameter name='apt' value='{vp8}'/></payload-type>\
         <rtp-hdrext xmlns='{ext}' id='{tcc}' uri='{twcc}'/></media>",
        opus = peer::PT_OPUS,
        vp8 = peer::PT_VP8,
        rtx = peer::PT_VP8_RTX,
        level = peer::EXT_AUDIO_LEVEL,
        tcc = peer::EXT_TWCC,
    )
}

/// A member's `<media-source>` elements (video with its FID group).
fn sources_xml(m: &Member) -> String {
    let ssma = ns::SSMA;
    let mut s = String::new();
    for (kind, ssrc, rtx) in &m.sources {
        let (kind, name) = match kind {
            Kind::Audio => ("audio", format!("{}-a0", m.endpoint)),
            Kind::Video => ("video", format!("{}-v0", m.endpoint)),
        };
        let msid = format!("<parameter name='msid' value='{name}-stream {name}-track'/>");
        s.push_str(&format!(
            "<media-source type='{kind}' id='{name}'>\
             <source xmlns='{ssma}' ssrc='{ssrc}' name='{name}'>{msid}</source>"
        ));
        if let Some(rtx) = rtx {
            s.push_str(&format!(
                "<source xmlns='{ssma}' ssrc='{rtx}' name='{name}'>{msid}</source>\
                 <ssrc-group xmlns='{ssma}' semantics='FID'><source ssrc='{ssrc}'/>\
                 <source ssrc='{rtx}'/></ssrc-group>"
            ));
        }
        s.push_str("</media-source>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::payload::VideoShape;
    use sfu_component::bridge::{Bridge, BridgeConfig, Output};
    use sfu_component::media::MediaConfig;

    /// lilt's sans-IO bridge in this process, answering the focus.
    struct InProcess {
        bridge: Bridge,
        next_id: u64,
    }

    impl InProcess {
        fn new(port: u16) -> InProcess {
            let media = MediaConfig {
                candidate_addresses: vec![([127, 0, 0, 1], port).into()],
                endpoint_timeout: Duration::from_secs(60),
            };
            let mut bridge = Bridge::new(BridgeConfig::new(
                "bench",
                "ws://127.0.0.1:9/colibri-ws",
                media,
            ));
            bridge.start(Instant::now());
            InProcess { bridge, next_id: 0 }
        }
    }

    impl Colibri2 for InProcess {
        fn modify(
            &mut self,
            meeting: &str,
            create: bool,
            body: &str,
        ) -> Result<Element, MediaError> {
            self.next_id += 1;
            let id = format!("t{}", self.next_id);
            let iq = xmpp_core::stream::parse_element(&modify_iq(&id, meeting, create, body))
                .map_err(|e| MediaError::Protocol(e.to_string()))?;
            self.bridge.handle_stanza(Instant::now(), iq);
            while let Some(out) = self.bridge.poll_output() {
                if let Output::Stanza(s) = out
                    && let Some(answer) = modified_of(&s, &id)
                {
                    return answer;
                }
            }
            Err(MediaError::Protocol("no answer".into()))
        }
    }

    #[test]
    fn the_focus_relays_two_lilt_bridges_as_jicofo_does() {
        let mut hosts = [InProcess::new(10990), InProcess::new(10991)];
        let mut pump = Pump::new(VideoShape::new(1000, 30, 1100));
        let mut c = Conference::new();
        let [a, b] = &mut hosts;
        c.join(0, a, &mut pump, "s0", Some(0)).unwrap();
        c.join(0, a, &mut pump, "s1", Some(1)).unwrap();
        c.join(1, b, &mut pump, "r0", None).unwrap();
        c.join(1, b, &mut pump, "r1", None).unwrap();
        c.relay(&mut hosts).unwrap();
        let ids: Vec<String> = hosts
            .iter()
            .map(|h| h.bridge.conference_id(c.meeting()).unwrap().to_string())
            .collect();
        // Each bridge knows the other's endpoints as relayed ones.
        assert_eq!(hosts[1].bridge.relayed_endpoints(&ids[1]), ["s0", "s1"]);
        assert_eq!(hosts[0].bridge.relayed_endpoints(&ids[0]), ["r0", "r1"]);
        // Only A, the initiator, was given the peer's relay web-socket.
        let connects = hosts[0].bridge.take_relay_connects();
        assert_eq!(connects.len(), 1);
        assert_eq!(connects[0].1, RELAY_IDS[1]);
        assert!(connects[0].2.contains("/colibri-relay-ws/"));
        assert!(hosts[1].bridge.take_relay_connects().is_empty());
        // A second create of the same relay is refused, as Videobridge does.
        let again = format!(
            "<relay id='{}' create='true'><transport ice-controlling='true'/></relay>",
            RELAY_IDS[1]
        );
        assert!(hosts[0].modify(c.meeting(), false, &again).is_err());
        // Every endpoint gets every sender's two streams but its own.
        let fan_out = c.expect_all(&mut pump);
        assert_eq!(fan_out.len(), 4);
        assert!(fan_out.values().all(|&n| n == 3));
    }

    #[test]
    fn relay_creates_carry_the_peer_endpoints_and_sources() {
        let m = Member {
            endpoint: "s0".into(),
            sources: vec![(Kind::Audio, 10, None), (Kind::Video, 11, Some(12))],
        };
        let xml = format!("<x xmlns='{}'>{}</x>", ns::COLIBRI2, sources_xml(&m));
        let el = xmpp_core::stream::parse_element(&xml).unwrap();
        let kinds: Vec<_> = el.children().filter_map(|c| c.get_attr("type")).collect();
        assert_eq!(kinds, ["audio", "video"]);
        assert!(xml.contains("semantics='FID'><source ssrc='11'/><source ssrc='12'/>"));
    }
}
