//! Janus's side: Debian's `janus` with only the VideoRoom plugin and the
//! HTTP transport, on 127.0.0.1, pinned to the server core, ICE gathering
//! only on 127.0.0.1. Each sender publishes (str0m's SDP offer, Janus's
//! answer); each endpoint subscribes to every other sender's feed with one
//! multistream subscription (Janus's offer, str0m's answer), so the
//! forwarded streams are the same as through lilt's bridge.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};

use super::MediaError;
use super::peer::{self, Kind, OutStream, Peer};
use super::pump::Pump;

const PLUGINS: &str = "/usr/lib/x86_64-linux-gnu/janus";
const ROOM: u64 = 4242;

/// Where the endpoints talking to Janus bind: the namespace's 127.0.0.2.
fn peer_ip() -> std::net::IpAddr {
    super::NETNS_ADDR
        .parse()
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// A running Janus.
pub struct Janus {
    child: Child,
    pub pid: u32,
    http: SocketAddr,
    session: u64,
    /// Events read but not yet asked for.
    events: VecDeque<Value>,
    transaction: u64,
}

/// Writes Janus's configuration into `dir`.
fn configure(
    dir: &Path,
    http_port: u16,
    rtp_ports: (u16, u16),
    event_loops: usize,
) -> Result<(), MediaError> {
    std::fs::create_dir_all(dir).map_err(MediaError::io("creating the Janus directory"))?;
    let disabled_plugins = [
        "audiobridge",
        "echotest",
        "nosip",
        "recordplay",
        "sip",
        "streaming",
        "textroom",
        "videocall",
        "voicemail",
        "duktape",
        "lua",
    ]
    .map(|p| format!("libjanus_{p}.so"))
    .join(",");
    let disabled_transports = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"]
        .map(|p| format!("libjanus_{p}.so"))
        .join(",");
    let main = format!(
        "general: {{\n configs_folder = \"{d}\"\n plugins_folder = \"{PLUGINS}/plugins\"\n \
         transports_folder = \"{PLUGINS}/transports\"\n events_folder = \"{PLUGINS}/events\"\n \
         loggers_folder = \"{PLUGINS}/loggers\"\n debug_level = 3\n session_timeout = 0\n{loops}}}\n\
         media: {{\n ipv6 = false\n rtp_port_range = \"{lo}-{hi}\"\n}}\n\
         nat: {{\n ice_enforce_list = \"{iface}\"\n ignore_mdns = true\n}}\n\
         plugins: {{\n disable = \"{disabled_plugins}\"\n}}\n\
         transports: {{\n disable = \"{disabled_transports}\"\n}}\n\
         events: {{\n broadcast = false\n}}\nloggers: {{\n disable = \"libjanus_jsonlog.so\"\n}}\n",
        d = dir.display(),
        loops = if event_loops > 0 {
            format!(" event_loops = {event_loops}\n")
        } else {
            String::new()
        },
        iface = super::NETNS_IFACE,
        lo = rtp_ports.0,
        hi = rtp_ports.1,
    );
    let http = format!(
        "general: {{\n json = \"compact\"\n base_path = \"/janus\"\n http = true\n port = {http_port}\n \
         ip = \"127.0.0.1\"\n https = false\n}}\nadmin: {{\n admin_http = false\n}}\n"
    );
    for (name, text) in [
        ("janus.jcfg", main),
        ("janus.transport.http.jcfg", http),
        ("janus.plugin.videoroom.jcfg", "general: {\n}\n".to_string()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(MediaError::io("writing Janus's config"))?;
    }
    Ok(())
}

impl Janus {
    /// Starts Janus pinned to `cpus` (`event_loops` shared handle loops, 0:
    /// Janus's default of one thread per handle), waits for its HTTP API,
    /// creates a session and the room.
    pub fn start(
        dir: &Path,
        cpus: &str,
        http_port: u16,
        publishers: usize,
        event_loops: usize,
    ) -> Result<Janus, MediaError> {
        configure(dir, http_port, (30000, 39999), event_loops)?;
        let log = std::fs::File::create(dir.join("janus.log"))
            .map_err(MediaError::io("creating Janus's log"))?;
        let err = log.try_clone().map_err(MediaError::io("Janus's log"))?;
        let child = Command::new("taskset")
            .args(["-c", cpus, "janus", "-C"])
            .arg(dir.join("janus.jcfg"))
            .arg("-F")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(MediaError::io("starting janus"))?;
        let mut janus = Janus {
            pid: child.id(),
            child,
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            session: 0,
            events: VecDeque::new(),
            transaction: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match janus.post("/janus", json!({"janus": "create"})) {
                Ok(v) => {
                    janus.session = v["data"]["id"]
                        .as_u64()
                        .ok_or_else(|| MediaError::Protocol(format!("create: {v}")))?;
                    break;
                }
                Err(e) if Instant::now() > deadline => {
                    janus.stop();
                    return Err(e);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        let handle = janus.attach()?;
        let created = janus.post(
            &format!("/janus/{}/{handle}", janus.session),
            json!({"janus": "message", "body": {
                "request": "create", "room": ROOM, "publishers": publishers + 1,
                "bitrate": 0, "fir_freq": 0, "audiocodec": "opus", "videocodec": "vp8",
                "notify_joining": false, "audiolevel_event": false,
            }}),
        )?;
        if created["plugindata"]["data"]["videoroom"] != "created" {
            return Err(MediaError::Protocol(format!("room: {created}")));
        }
        Ok(janus)
    }

    fn attach(&mut self) -> Result<u64, MediaError> {
        let v = self.post(
            &format!("/janus/{}", self.session),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )?;
        v["data"]["id"]
            .as_u64()
            .ok_or_else(|| MediaError::Protocol(format!("attach: {v}")))
    }

    /// POSTs a Janus API request (a transaction id is added).
    fn post(&mut self, path: &str, mut body: Value) -> Result<Value, MediaError> {
        self.transaction += 1;
        body["transaction"] = json!(format!("t{}", self.transaction));
        let v = http(self.http, "POST", path, Some(&body.to_string()))?;
        if v["janus"] == "error" {
            return Err(MediaError::Protocol(format!("janus: {v}")));
        }
        Ok(v)
    }

    /// Sends a message to a handle and waits for the plugin's event on it.
    fn message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value, MediaError> {
        let mut req = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        self.post(&format!("/janus/{}/{handle}", self.session), req)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(pos) = self
                .events
                .iter()
                .position(|e| e["sender"].as_u64() == Some(handle) && e["janus"] == "event")
            {
                let Some(event) = self.events.remove(pos) else {
                    continue;
                };
                let data = &event["plugindata"]["data"];
                if data.get("error").is_some() {
                    return Err(MediaError::Protocol(format!("videoroom: {data}")));
                }
                return Ok(event);
            }
            if Instant::now() > deadline {
                return Err(MediaError::Protocol(format!("no event on handle {handle}")));
            }
            let polled = http(
                self.http,
                "GET",
                &format!("/janus/{}?maxev=20", self.session),
                None,
            )?;
            match polled {
                Value::Array(list) => self.events.extend(list),
                other => self.events.push_back(other),
            }
        }
    }

    /// Publishes every sender and subscribes every endpoint to the other
    /// senders; returns each stream's fan-out.
    pub fn connect(
        &mut self,
        pump: &mut Pump,
        senders: usize,
        receivers: usize,
    ) -> Result<HashMap<u32, u64>, MediaError> {
        let mut feeds = Vec::new();
        let mut streams = 0u32;
        for i in 0..senders {
            let handle = self.attach()?;
            let mut p = Peer::new(
                format!("pub{i}"),
                peer::rtc_config().build(Instant::now()),
                peer_ip(),
            )?;
            let mut api = p.rtc.sdp_api();
            let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            let Some((offer, pending)) = api.apply() else {
                return Err(MediaError::Protocol("no SDP offer".into()));
            };
            let event = self.message(
                handle,
                json!({"request": "joinandconfigure", "room": ROOM, "ptype": "publisher",
                       "display": p.name, "audio": true, "video": true}),
                Some(json!({"type": "offer", "sdp": offer.to_sdp_string()})),
            )?;
            let sdp = event["jsep"]["sdp"]
                .as_str()
                .ok_or_else(|| MediaError::Protocol(format!("publish: no answer: {event}")))?;
            if std::env::var_os("BENCH_MEDIA_DEBUG").is_some() {
                eprintln!("offer:\n{}\nanswer:\n{sdp}", offer.to_sdp_string());
            }
            let answer = SdpAnswer::from_sdp_string(sdp)
                .map_err(|e| MediaError::Protocol(format!("Janus's answer: {e}")))?;
            p.rtc
                .sdp_api()
                .accept_answer(pending, answer)
                .map_err(|e| MediaError::Protocol(format!("accepting Janus's answer: {e}")))?;
            let feed = event["plugindata"]["data"]["id"]
                .as_u64()
                .ok_or_else(|| MediaError::Protocol(format!("publish: no id: {event}")))?;
            feeds.push(feed);
            for (mid, kind) in [(a, Kind::Audio), (v, Kind::Video)] {
                let ssrc = p
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(mid, None)
                    .map(|s| s.ssrc())
                    .ok_or_else(|| MediaError::Protocol("no send stream after SDP".into()))?;
                p.outgoing.push(OutStream::new(streams, kind, ssrc, None));
                streams += 1;
            }
            pump.peers.push(p);
        }
        // A feed can be subscribed to once its PeerConnection is up.
        pump.connect_all(Duration::from_secs(30))?;
        for j in 0..senders + receivers {
            let others: Vec<Value> = feeds
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != j)
                .map(|(_, f)| json!({"feed": f}))
                .collect();
            if others.is_empty() {
                continue;
            }
            let handle = self.attach()?;
            let mut p = Peer::new(
                format!("sub{j}"),
                peer::rtc_config().build(Instant::now()),
                peer_ip(),
            )?;
            let event = self.message(
                handle,
                json!({"request": "join", "room": ROOM, "ptype": "subscriber", "streams": others}),
                None,
            )?;
            let sdp = event["jsep"]["sdp"]
                .as_str()
                .ok_or_else(|| MediaError::Protocol(format!("subscribe: no offer: {event}")))?;
            let offer = SdpOffer::from_sdp_string(sdp)
                .map_err(|e| MediaError::Protocol(format!("Janus's offer: {e}")))?;
            let answer = p
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|e| MediaError::Protocol(format!("accepting Janus's offer: {e}")))?;
            self.message(
                handle,
                json!({"request": "start", "room": ROOM}),
                Some(json!({"type": "answer", "sdp": answer.to_sdp_string()})),
            )?;
            pump.peers.push(p);
            // Keep the endpoints already up alive between HTTP requests.
            pump.run(Instant::now() + Duration::from_millis(1), |_| false)?;
        }
        let fan_out = (senders + receivers).saturating_sub(1) as u64;
        Ok((0..streams).map(|s| (s, fan_out)).collect())
    }

    pub fn stop(mut self) {
        crate::procfs::signal(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 request on a fresh connection; the JSON body of the answer.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Value, MediaError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(MediaError::io("connecting to Janus"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .map_err(MediaError::io("Janus socket"))?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(MediaError::io("writing to Janus"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(MediaError::io("reading Janus"))?;
    let text = String::from_utf8_lossy(&answer);
    let Some((head, json)) = text.split_once("\r\n\r\n") else {
        return Err(MediaError::Protocol(format!("Janus answered {text:?}")));
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(MediaError::Protocol(format!("Janus answered {head}")));
    }
    let json = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(json)
    } else {
        json.to_string()
    };
    serde_json::from_str(&json)
        .map_err(|e| MediaError::Protocol(format!("Janus's JSON: {e}: {json}")))
}

/// The body of a chunked HTTP answer.
fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        let Some(chunk) = rest.get(..n) else {
            break;
        };
        out.push_str(chunk);
        text = rest.get(n..).unwrap_or("").trim_start_matches("\r\n");
    }
    out
}
