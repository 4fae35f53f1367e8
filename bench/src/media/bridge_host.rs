//! `bench --media-bridge-host PORT`: lilt's sans-IO bridge
//! (`sfu_component::bridge::Bridge`, its Colibri2 handling and `MediaCore`)
//! in a process of its own with a thin loop: one UDP socket on
//! 127.0.0.1:PORT, Colibri2 IQs one per line on stdin, the bridge's answers
//! one per line on stdout. The driver starts it pinned to the server core
//! as the `lilt-core` server: the bridge without `lilt bridge`'s runtime
//! and XMPP link, to compare with `lilt-bridge`. Lines `channel
//! CONFERENCE ENDPOINT PWD JSON` on stdin stand for bridge-channel
//! messages (`lilt-core-alloc`: the receivers' ReceiverVideoConstraints).
//! A line `latency` is answered with the server's own added latency since
//! the last such line (`host_latency.rs`).

use std::io::{BufRead, ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sfu_component::bridge::{Bridge, BridgeConfig, Output};
use sfu_component::media::MediaConfig;

use super::host_latency::{self, Latency};

/// Longest sleep of the loop while nothing happens (so stanzas from stdin
/// are looked at).
const IDLE: Duration = Duration::from_millis(2);

/// Runs the bridge until stdin closes.
pub fn run(port: u16) -> Result<(), String> {
    let socket = UdpSocket::bind(("127.0.0.1", port)).map_err(|e| format!("UDP {port}: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let media = MediaConfig {
        candidate_addresses: vec![local],
        endpoint_timeout: Duration::from_secs(60),
    };
    let mut bridge = Bridge::new(BridgeConfig::new(
        "bench",
        "ws://127.0.0.1:9/colibri-ws",
        media,
    ));
    bridge.start(Instant::now());
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stdout = std::io::stdout();
    writeln!(stdout.lock(), "ready {local}").map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    if let Err(e) = host_latency::enable_timestamps(&socket) {
        eprintln!("bridge host: no kernel receive timestamps: {e}");
    }
    let mut latency = Latency::new(Instant::now());
    let mut buf = vec![0u8; 2048];
    loop {
        loop {
            match rx.try_recv() {
                Ok(line) if line.starts_with("channel ") => channel(&mut bridge, &line),
                Ok(line) if line == "latency" => {
                    let mut lock = stdout.lock();
                    writeln!(lock, "{}", latency.report()).map_err(|e| e.to_string())?;
                    lock.flush().map_err(|e| e.to_string())?;
                }
                Ok(line) => match xmpp_core::stream::parse_element(&line) {
                    Ok(el) => bridge.handle_stanza(Instant::now(), el),
                    Err(e) => eprintln!("bridge host: unparsable stanza: {e}"),
                },
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        flush(&mut bridge, &socket, &stdout, &mut latency)?;
        // Every queued datagram, without sleeping.
        loop {
            match host_latency::recv_stamped(&socket, &mut buf) {
                Ok((len, source, stamp)) => {
                    let now = Instant::now();
                    if let Some(data) = buf.get(..len) {
                        latency.on_receive(data, stamp, now);
                        bridge.handle_datagram(now, source, local, data);
                    }
                    if bridge.next_timeout().is_some_and(|t| t <= now) {
                        bridge.handle_timeout(now);
                    }
                    flush(&mut bridge, &socket, &stdout, &mut latency)?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => return Err(format!("UDP receive: {e}")),
            }
        }
        let now = Instant::now();
        if bridge.next_timeout().is_some_and(|t| t <= now) {
            bridge.handle_timeout(now);
            flush(&mut bridge, &socket, &stdout, &mut latency)?;
        }
        let wait = bridge
            .next_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(IDLE)
            .min(IDLE);
        let mut fd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: wait.as_nanos().min(999_999_999) as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        unsafe { libc::ppoll(&mut fd, 1, &ts, std::ptr::null()) };
    }
}

/// `channel CONFERENCE ENDPOINT PWD JSON`: a bridge-channel message of an
/// endpoint (the channel opened first if it is not), in place of its
/// WebSocket.
fn channel(bridge: &mut Bridge, line: &str) {
    let mut parts = line.splitn(5, ' ').skip(1);
    let (Some(conference), Some(endpoint), Some(pwd), Some(json)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        eprintln!("bridge host: bad channel line");
        return;
    };
    let now = Instant::now();
    let open = bridge
        .open_channels(conference)
        .iter()
        .any(|e| e == endpoint);
    if !open && let Err(e) = bridge.handle_channel_open(now, conference, endpoint, pwd) {
        eprintln!("bridge host: channel of {endpoint}: {e}");
        return;
    }
    bridge.handle_channel_message(now, conference, endpoint, json);
}

fn flush(
    bridge: &mut Bridge,
    socket: &UdpSocket,
    stdout: &std::io::Stdout,
    latency: &mut Latency,
) -> Result<(), String> {
    while let Some(out) = bridge.poll_output() {
        match out {
            Output::Transmit {
                destination,
                contents,
                ..
            } => {
                send(socket, destination, &contents);
                latency.on_send(&contents, Instant::now(), host_latency::realtime_ns());
            }
            Output::Stanza(el) => {
                let text = el.to_string().replace('\n', " ");
                let mut lock = stdout.lock();
                writeln!(lock, "{text}").map_err(|e| e.to_string())?;
                lock.flush().map_err(|e| e.to_string())?;
            }
            Output::Channel { .. } | Output::CloseChannel { .. } | Output::Finished => {}
        }
    }
    Ok(())
}

fn send(socket: &UdpSocket, destination: SocketAddr, contents: &[u8]) {
    if let Err(e) = socket.send_to(contents, destination)
        && !matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::ConnectionRefused
        )
    {
        eprintln!("bridge host: UDP send to {destination}: {e}");
    }
}
