//! lilt's side: the bridge started pinned to the server core, endpoints
//! allocated with Colibri2 `conference-modify` IQs shaped as Jicofo sends
//! them (first the allocation with `<media>` and `<transport
//! ice-controlling='true'/>`, then the endpoint's own ICE-UDP transport and
//! `<sources>` once its session is accepted), each answer's transport handed
//! to a str0m client with the direct API (no SDP).
//!
//! The IQs go over the focus's XMPP session to `lilt bridge`
//! (`lilt_xmpp.rs`), or over a pipe to `bench --media-bridge-host`
//! (`bridge_host.rs`: lilt's `Bridge` in a thin loop of this crate, the
//! bridge without its runtime).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use media_signalling::xml::ns;
use str0m::media::Mid;
use str0m::rtp::Ssrc;

use super::MediaError;
use super::allocation::{answered_transport, configure_client};
use super::peer::{self, Kind, OutStream, Peer};
use super::pump::Pump;
use super::simulcast;

/// How Colibri2 IQs reach the bridge.
enum Link {
    /// `bench --media-bridge-host`: one IQ per line each way.
    Pipe {
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    },
    /// `lilt bridge` behind lilt: the focus's XMPP session.
    Xmpp(Box<super::lilt_xmpp::Focus>),
}

/// A running bridge (and, for `lilt bridge`, the lilt server it logs in to).
pub struct LiltBridge {
    link: Link,
    /// Started processes, stopped in reverse order.
    children: Vec<Child>,
    /// The process that forwards the media (measured).
    pub pid: u32,
    next_id: u64,
    /// Allocation on (`simulcast.rs`): simulcast senders, constrained
    /// receivers.
    simulcast: bool,
}

impl LiltBridge {
    /// Starts `bench --media-bridge-host PORT` pinned to `cpus`.
    /// With `simulcast`, the senders send three layers and every endpoint
    /// constrains what it receives (`simulcast.rs`).
    pub fn start_host(cpus: &str, port: u16, simulcast: bool) -> Result<LiltBridge, MediaError> {
        let exe = std::env::current_exe().map_err(MediaError::io("finding bench"))?;
        // A profiler in front of the host (memory investigations), e.g.
        // LILT_BENCH_HOST_WRAP="heaptrack -o /tmp/host" (then
        // `heaptrack_print -f /tmp/host.zst --print-peaks 1`; the CPU and
        // RSS columns are then the wrapper's, not the host's).
        let wrap = std::env::var("LILT_BENCH_HOST_WRAP").unwrap_or_default();
        let mut child = Command::new("taskset")
            .args(["-c", cpus])
            .args(wrap.split_whitespace())
            .arg(exe)
            .arg("--media-bridge-host")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(MediaError::io("starting the bridge host"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(MediaError::Protocol("bridge host without pipes".into()));
        };
        let mut bridge = LiltBridge {
            pid: child.id(),
            children: vec![child],
            link: Link::Pipe {
                stdin,
                stdout: BufReader::new(stdout),
            },
            next_id: 0,
            simulcast,
        };
        // A wrapper (heaptrack) may print its own lines first.
        let mut said = Vec::new();
        loop {
            let line = bridge.read_line()?;
            if line.starts_with("ready") {
                return Ok(bridge);
            }
            said.push(line);
            if said.len() >= 20 {
                return Err(MediaError::Protocol(format!("bridge host said {said:?}")));
            }
        }
    }

    /// A `lilt bridge` already started, reached through the focus's link.
    pub fn with_focus(
        focus: super::lilt_xmpp::Focus,
        children: Vec<Child>,
        pid: u32,
    ) -> LiltBridge {
        LiltBridge {
            link: Link::Xmpp(Box::new(focus)),
            children,
            pid,
            next_id: 0,
            simulcast: false,
        }
    }

    fn read_line(&mut self) -> Result<String, MediaError> {
        let Link::Pipe { stdout, .. } = &mut self.link else {
            return Err(MediaError::Protocol("not a pipe".into()));
        };
        let mut line = String::new();
        let n = stdout
            .read_line(&mut line)
            .map_err(MediaError::io("reading the bridge host"))?;
        if n == 0 {
            return Err(MediaError::Protocol("the bridge host exited".into()));
        }
        Ok(line.trim().to_string())
    }

    /// A line to the bridge host that it does not answer.
    fn send_line(&mut self, line: &str) -> Result<(), MediaError> {
        let Link::Pipe { stdin, .. } = &mut self.link else {
            return Err(MediaError::Protocol("not a pipe".into()));
        };
        writeln!(stdin, "{line}").map_err(MediaError::io("writing to the bridge host"))
    }

    /// Asks the bridge host for its added latency since the last ask
    /// (`host_latency.rs`); the answer is read later with
    /// [`LiltBridge::host_latency`], so the pump is not held up. `false`
    /// for `lilt bridge` (no such line).
    pub fn mark_latency(&mut self) -> bool {
        matches!(self.link, Link::Pipe { .. }) && self.send_line("latency").is_ok()
    }

    /// The answer to the `nth` (1-based) [`LiltBridge::mark_latency`] since
    /// the last call, skipping the earlier answers and anything else.
    pub fn host_latency(&mut self, nth: usize) -> Option<super::host_latency::HostLatency> {
        let mut seen = 0;
        for _ in 0..64 {
            let line = self.read_line().ok()?;
            if line.starts_with("latency ") {
                seen += 1;
                if seen == nth {
                    return super::host_latency::HostLatency::parse(&line);
                }
            }
        }
        None
    }

    /// Sends one conference-modify and returns the answer.
    fn request(&mut self, body: &str) -> Result<xmpp_core::Element, MediaError> {
        self.next_id += 1;
        let id = format!("c2-{}", self.next_id);
        let answer = match &mut self.link {
            Link::Pipe { stdin, .. } => {
                let iq = format!(
                    "<iq xmlns='jabber:client' type='set' id='{id}' from='focus@auth.localhost/focus' \
                     to='jvb@auth.localhost/bench'>{body}</iq>"
                );
                writeln!(stdin, "{iq}").map_err(MediaError::io("writing to the bridge host"))?;
                self.read_line()?
            }
            Link::Xmpp(focus) => focus.request(&id, body)?,
        };
        let el = xmpp_core::stream::parse_element(&answer)
            .map_err(|e| MediaError::Protocol(format!("answer {answer}: {e}")))?;
        if el.type_() != Some("result") {
            return Err(MediaError::Protocol(format!("bridge refused: {answer}")));
        }
        Ok(el)
    }

    /// Allocates `senders + receivers` endpoints in one conference, connects
    /// them, and returns each stream's fan-out.
    pub fn connect(
        &mut self,
        pump: &mut Pump,
        senders: usize,
        receivers: usize,
    ) -> Result<HashMap<u32, u64>, MediaError> {
        let meeting = format!("bench-{}", rand::random::<u32>());
        let total = senders + receivers;
        let mut streams = 0u32;
        // Simulcast: streams no receiver gets, SSRCs receivers never see.
        let mut silent: Vec<u32> = Vec::new();
        let mut hidden: Vec<Ssrc> = Vec::new();
        for i in 0..total {
            let name = format!("{:08x}", 0x1000_0000u32 + i as u32);
            let mut rtc = peer::rtc_config().build(Instant::now());
            rtc.direct_api().set_ice_controlling(false);
            let mut p = Peer::new(name.clone(), rtc, [127, 0, 0, 1].into())?;
            let answer = self.request(&allocation(&meeting, &name, i == 0))?;
            let modified = answer
                .get_child("conference-modified", ns::COLIBRI2)
                .ok_or_else(|| MediaError::Protocol("answer without conference-modified".into()))?;
            let remote = answered_transport(modified, "endpoint", &name)?;
            configure_client(&mut p, &remote)?;
            let mut video_xml = None;
            if i < senders && self.simulcast {
                let audio = Ssrc::from(0x0100_0000 + 16 * i as u32);
                p.outgoing
                    .push(OutStream::new(streams, Kind::Audio, audio, None));
                p.rtc
                    .direct_api()
                    .declare_stream_tx(audio, None, Mid::from("a"), None);
                let layers = simulcast::add_sender(&mut p, i, streams + 1, pump.video);
                for (number, ssrc, _, layer) in &layers {
                    if *layer != simulcast::FORWARDED_LAYER {
                        silent.push(*number);
                    }
                    if *layer != 0 {
                        hidden.push(Ssrc::from(*ssrc));
                    }
                }
                streams += 1 + layers.len() as u32;
                video_xml = Some(simulcast::video_source_xml(&name, &layers));
            } else if i < senders {
                let audio = Ssrc::from(0x0100_0000 + 16 * i as u32);
                let video = Ssrc::from(0x0100_0000 + 16 * i as u32 + 1);
                let rtx = Ssrc::from(0x0100_0000 + 16 * i as u32 + 2);
                p.outgoing
                    .push(OutStream::new(streams, Kind::Audio, audio, None));
                p.outgoing
                    .push(OutStream::new(streams + 1, Kind::Video, video, Some(rtx)));
                streams += 2;
                let mut api = p.rtc.direct_api();
                api.declare_stream_tx(audio, None, Mid::from("a"), None);
                api.declare_stream_tx(video, Some(rtx), Mid::from("v"), None);
            }
            if self.simulcast {
                let line = remote
                    .web_socket
                    .as_deref()
                    .and_then(|url| simulcast::channel_line(url, simulcast::CONSTRAINTS))
                    .ok_or_else(|| MediaError::Protocol(format!("no bridge channel for {name}")))?;
                self.send_line(&line)?;
            }
            let local = local_transport(&mut p);
            let sources = p
                .outgoing
                .iter()
                .filter(|s| video_xml.is_none() || s.kind == Kind::Audio)
                .map(|s| (s.kind, *s.ssrc, s.rtx.map(|r| *r)))
                .collect::<Vec<_>>();
            let accept = session_accept(&meeting, &name, &local, &sources, video_xml.as_deref());
            self.request(&accept)?;
            p.rtc
                .direct_api()
                .start_dtls(true)
                .map_err(|e| MediaError::Protocol(format!("{name}: dtls: {e}")))?;
            pump.peers.push(p);
        }
        // Every endpoint learns the others' sources (source-add).
        let all: Vec<(usize, Kind, Ssrc, Option<Ssrc>)> = pump
            .peers
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.outgoing.iter().map(move |s| (i, s.kind, s.ssrc, s.rtx)))
            .collect();
        for (i, p) in pump.peers.iter_mut().enumerate() {
            let mut api = p.rtc.direct_api();
            for (owner, kind, ssrc, rtx) in &all {
                if *owner != i && !hidden.contains(ssrc) {
                    let mid = if *kind == Kind::Audio { "a" } else { "v" };
                    api.expect_stream_rx(*ssrc, *rtx, Mid::from(mid), None);
                }
            }
        }
        let fan_out = (total as u64).saturating_sub(1);
        Ok((0..streams)
            .map(|s| (s, if silent.contains(&s) { 0 } else { fan_out }))
            .collect())
    }

    /// Stops the bridge (SIGTERM, then SIGKILL) and whatever else was
    /// started, last first.
    pub fn stop(self) {
        let LiltBridge { link, children, .. } = self;
        drop(link);
        for mut child in children.into_iter().rev() {
            crate::procfs::signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The client's own transport: ICE credentials, fingerprint, one host
/// candidate.
struct LocalTransport {
    ufrag: String,
    pwd: String,
    fingerprint: String,
    address: SocketAddr,
}

fn local_transport(p: &mut Peer) -> LocalTransport {
    let creds = p.rtc.direct_api().local_ice_credentials();
    LocalTransport {
        ufrag: creds.ufrag,
        pwd: creds.pass,
        fingerprint: p.fingerprint(),
        address: p.local,
    }
}

const AUDIO_MEDIA: &str = "<media type='audio'>\
<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'>\
<parameter name='minptime' value='10'/><parameter name='useinbandfec' value='1'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/></payload-type>\
<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='5' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
</media>";

const VIDEO_MEDIA: &str = "<media type='video'>\
<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='100' name='VP8' clockrate='90000'>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='ccm' subtype='fir'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/></payload-type>\
<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='96' name='rtx' clockrate='90000'>\
<parameter name='apt' value='100'/></payload-type>\
<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='5' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
</media>";

/// Jicofo's first request for a participant: create it (and the conference
/// with the first), its media, the bridge as ICE controller.
fn allocation(meeting: &str, endpoint: &str, create_conference: bool) -> String {
    let create = if create_conference {
        " create='true'"
    } else {
        ""
    };
    format!(
        "<conference-modify xmlns='jitsi:colibri2' meeting-id='{meeting}' \
         name='bench@conference.localhost'{create}>\
         <endpoint id='{endpoint}' create='true' stats-id='Bench-{endpoint}' muc-role='participant'>\
         {AUDIO_MEDIA}{VIDEO_MEDIA}<transport ice-controlling='true'/>\
         <capability name='source-names'/></endpoint></conference-modify>"
    )
}

/// Jicofo's second request, after the participant's session-accept: its
/// ICE-UDP transport and its sources (video with an rtx FID group).
fn session_accept(
    meeting: &str,
    endpoint: &str,
    local: &LocalTransport,
    sources: &[(Kind, u32, Option<u32>)],
    video_xml: Option<&str>,
) -> String {
    let mut s = video_xml.unwrap_or_default().to_string();
    for (kind, ssrc, rtx) in sources {
        let (kind, name) = match kind {
            Kind::Audio => ("audio", format!("{endpoint}-a0")),
            Kind::Video => ("video", format!("{endpoint}-v0")),
        };
        let ssma = "urn:xmpp:jingle:apps:rtp:ssma:0";
        let msid = format!("{name}-stream {name}-track");
        s.push_str(&format!(
            "<media-source type='{kind}' id='{name}'><source xmlns='{ssma}' ssrc='{ssrc}' name='{name}'>\
             <parameter name='msid' value='{msid}'/></source>"
        ));
        if let Some(rtx) = rtx {
            s.push_str(&format!(
                "<source xmlns='{ssma}' ssrc='{rtx}' name='{name}'><parameter name='msid' value='{msid}'/></source>\
                 <ssrc-group xmlns='{ssma}' semantics='FID'><source ssrc='{ssrc}'/><source ssrc='{rtx}'/></ssrc-group>"
            ));
        }
        s.push_str("</media-source>");
    }
    format!(
        "<conference-modify xmlns='jitsi:colibri2' meeting-id='{meeting}'>\
         <endpoint id='{endpoint}'><transport>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='{ufrag}' pwd='{pwd}'><rtcp-mux/>\
         <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>{fp}</fingerprint>\
         <candidate component='1' foundation='1' generation='0' id='{endpoint}c1' network='0' \
         priority='2130706431' protocol='udp' ip='{ip}' port='{port}' type='host'/>\
         </transport></transport><sources>{s}</sources></endpoint></conference-modify>",
        ufrag = local.ufrag,
        pwd = local.pwd,
        fp = local.fingerprint,
        ip = local.address.ip(),
        port = local.address.port(),
    )
}
