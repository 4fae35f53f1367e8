//! The runtime's side of the media links: for each recording whose
//! session the focus offers, a UDP socket (bound on the local address the
//! kernel routes to the bridge's first candidate), the sans-IO
//! [`MediaLink`] fed with its datagrams and time, the RTP it yields given
//! to the [`crate::Recording`], the recording's keyframe requests sent as
//! PLIs, and the bridge channel (colibri-ws, a WebSocket client) read for
//! `DominantSpeakerEndpointChangeEvent`s.
//!
//! Sockets and WebSockets are read by small tasks that send what they get
//! to the recorder's one loop ([`MediaInput`]); everything else happens in
//! that loop.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::Instant;

use media_signalling::xml::{ns as mns, parse_transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{Receiver, Sender, channel};
use tokio::task::JoinHandle;
use xmpp_core::Element;

use crate::bridge_channel::bridge_channel;
use crate::media_link::{LinkOutput, MediaLink};
use crate::ns;
use crate::recordings::Recordings;
use crate::replies::error_reply;

/// Something a socket or bridge channel task received.
#[derive(Debug)]
pub enum MediaInput {
    Datagram {
        session_id: String,
        source: SocketAddr,
        contents: Vec<u8>,
    },
    /// The bridge's dominant speaker changed.
    Speaker {
        session_id: String,
        endpoint: String,
    },
}

struct Active {
    link: MediaLink,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    /// When the offer was answered (the link must connect by
    /// [`CONNECT_TIMEOUT`] after).
    opened: Instant,
    /// The socket's and the bridge channel's reading tasks.
    tasks: Vec<JoinHandle<()>>,
}

/// Datagrams and speaker changes waiting for the recorder's loop.
const INPUT_QUEUE: usize = 4096;

/// A media link that has not connected (ICE and DTLS) this long after its
/// answer fails its recording, as Jibri fails when it cannot join.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl Drop for Active {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The media links of all recordings.
pub struct MediaLinks {
    active: BTreeMap<String, Active>,
    tx: Sender<MediaInput>,
    next_id: u64,
    /// Accept any certificate on a `wss://` bridge channel.
    insecure_tls: bool,
}

/// The receive buffer asked for on each media link's socket.
const LINK_RECV_BUFFER_BYTES: usize = 4 << 20;

/// The local address the kernel would use towards `remote` (no datagram
/// is sent: a UDP connect only picks the route).
fn local_ip_towards(remote: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if remote.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = StdUdpSocket::bind(bind).ok()?;
    s.connect(remote).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

impl MediaLinks {
    pub fn new(insecure_tls: bool) -> (MediaLinks, Receiver<MediaInput>) {
        // Bounded: when the loop falls behind, the sockets stop being read
        // and the kernel drops datagrams, as UDP does.
        let (tx, rx) = channel(INPUT_QUEUE);
        (
            MediaLinks {
                active: BTreeMap::new(),
                tx,
                next_id: 0,
                insecure_tls,
            },
            rx,
        )
    }

    /// A recording ended: its link, socket and channel go.
    pub fn stop(&mut self, session_id: &str) {
        self.active.remove(session_id);
    }

    /// A Jingle IQ from the focus for a recording; returns the stanzas to
    /// send on the call link (the IQ's answer first, then a session-accept
    /// for a session-initiate).
    pub fn call_iq(
        &mut self,
        now: Instant,
        session_id: &str,
        iq: &Element,
        responder: &str,
    ) -> Vec<Element> {
        let Some(jingle) = iq.get_child("jingle", mns::JINGLE) else {
            return vec![error_reply(iq, "cancel", "feature-not-implemented")];
        };
        let mut out = vec![iq.reply()];
        match jingle.get_attr("action") {
            Some("session-initiate") => {
                self.active.remove(session_id);
                match self.open(now, session_id, jingle, responder) {
                    Ok(accept) => {
                        self.next_id += 1;
                        let mut set = Element::new("iq", ns::CLIENT)
                            .attr("type", "set")
                            .attr("id", format!("rec-jingle-{}", self.next_id))
                            .attr("from", responder.to_string())
                            .child(accept);
                        set.set_attr("to", iq.from().map(str::to_string));
                        out.push(set);
                    }
                    Err(e) => {
                        tracing::warn!(session = %session_id, %e, "cannot answer the focus's offer");
                        out = vec![error_reply(iq, "cancel", "not-acceptable")];
                    }
                }
            }
            Some("session-terminate") => self.stop(session_id),
            _ => {
                if let Some(a) = self.active.get_mut(session_id)
                    && let Err(e) = a.link.handle_jingle(jingle)
                {
                    tracing::debug!(session = %session_id, %e, "jingle on the media link");
                }
            }
        }
        out
    }

    fn open(
        &mut self,
        now: Instant,
        session_id: &str,
        jingle: &Element,
        responder: &str,
    ) -> Result<Element, String> {
        let remote = jingle
            .children()
            .filter(|c| c.is("content", mns::JINGLE))
            .find_map(|c| c.get_child("transport", mns::ICE_UDP))
            .ok_or("no transport")?;
        let remote = parse_transport(remote).map_err(|e| e.to_string())?;
        let ip = remote
            .candidates
            .iter()
            .filter(|c| c.protocol == "udp")
            .find_map(|c| local_ip_towards(c.address))
            .ok_or("no reachable bridge candidate")?;
        let std_socket = StdUdpSocket::bind((ip, 0)).map_err(|e| e.to_string())?;
        // A recording's link carries every participant's media: room for a
        // burst while the loop is busy (best effort, capped by the kernel's
        // net.core.rmem_max).
        let _ = socket2::SockRef::from(&std_socket).set_recv_buffer_size(LINK_RECV_BUFFER_BYTES);
        std_socket
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let local = std_socket.local_addr().map_err(|e| e.to_string())?;
        let socket = Arc::new(UdpSocket::from_std(std_socket).map_err(|e| e.to_string())?);
        let (link, accept) =
            MediaLink::accept(now, jingle, responder, &[local]).map_err(|e| e.to_string())?;
        let mut tasks = vec![tokio::spawn(read_socket(
            socket.clone(),
            session_id.to_string(),
            self.tx.clone(),
        ))];
        if let Some(url) = link.web_socket() {
            tasks.push(tokio::spawn(bridge_channel(
                url.to_string(),
                self.insecure_tls,
                session_id.to_string(),
                self.tx.clone(),
            )));
        }
        tracing::info!(session = %session_id, %local, "media link answered");
        self.active.insert(
            session_id.to_string(),
            Active {
                link,
                socket,
                local,
                opened: now,
                tasks,
            },
        );
        Ok(accept)
    }

    /// What a task received; returns the sessions whose recording failed.
    pub fn input(
        &mut self,
        now: Instant,
        input: MediaInput,
        files: &mut Recordings,
    ) -> Vec<(String, String)> {
        match input {
            MediaInput::Datagram {
                session_id,
                source,
                contents,
            } => {
                if let Some(a) = self.active.get_mut(&session_id) {
                    a.link.handle_receive(now, source, a.local, &contents);
                }
                self.flush(now, &session_id, files)
            }
            MediaInput::Speaker {
                session_id,
                endpoint,
            } => {
                if let Some(r) = files.recording_mut(&session_id) {
                    r.set_speaker(now, &endpoint);
                }
                self.flush(now, &session_id, files)
            }
        }
    }

    /// The earliest deadline of the links.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        self.active
            .values_mut()
            .flat_map(|a| {
                let next = a.link.next_timeout();
                let connect = (!a.link.is_connected()).then_some(a.opened + CONNECT_TIMEOUT);
                // What polling for the deadline produced goes out now.
                let pending = a.link.has_output().then(Instant::now);
                [next, connect, pending]
            })
            .flatten()
            .min()
    }

    pub fn handle_timeout(
        &mut self,
        now: Instant,
        files: &mut Recordings,
    ) -> Vec<(String, String)> {
        let ids: Vec<String> = self.active.keys().cloned().collect();
        let mut failed = Vec::new();
        for id in ids {
            if let Some(a) = self.active.get_mut(&id)
                && a.link.next_timeout().is_some_and(|t| t <= now)
            {
                a.link.handle_timeout(now);
            }
            failed.extend(self.flush(now, &id, files));
            if let Some(a) = self.active.get(&id)
                && !a.link.is_connected()
                && now >= a.opened + CONNECT_TIMEOUT
            {
                self.active.remove(&id);
                failed.push((id, "the media link to the bridge did not connect".into()));
            }
        }
        failed
    }

    /// Sends what the link wants sent, gives the recording its packets and
    /// the link the recording's keyframe requests.
    fn flush(
        &mut self,
        now: Instant,
        session_id: &str,
        files: &mut Recordings,
    ) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        let Some(a) = self.active.get_mut(session_id) else {
            return failed;
        };
        let mut recording = files.recording_mut(session_id);
        for _ in 0..2 {
            while let Some(out) = a.link.poll_output() {
                match out {
                    LinkOutput::Transmit {
                        destination,
                        contents,
                        ..
                    } => {
                        if let Err(e) = a.socket.try_send_to(&contents, destination) {
                            tracing::debug!(%e, %destination, "media datagram not sent");
                        }
                    }
                    LinkOutput::Packet(p) => {
                        if let Some(r) = recording.as_deref_mut()
                            && let Err(e) = r.handle_packet(now, &p)
                        {
                            failed.push((session_id.to_string(), e.to_string()));
                        }
                    }
                    LinkOutput::Connected => {
                        tracing::info!(session = %session_id, "media link connected")
                    }
                    LinkOutput::Disconnected => {
                        tracing::warn!(session = %session_id, "media link disconnected")
                    }
                }
            }
            let Some(r) = recording.as_deref_mut() else {
                break;
            };
            let mut asked = false;
            while let Some(endpoint) = r.poll_keyframe_request() {
                for ssrc in r.sources().video_ssrcs(&endpoint) {
                    a.link.request_keyframe(ssrc);
                    asked = true;
                }
            }
            if !asked {
                break;
            }
        }
        failed
    }
}

async fn read_socket(socket: Arc<UdpSocket>, session_id: String, tx: Sender<MediaInput>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let contents = buf.get(..n).unwrap_or_default().to_vec();
                let sent = tx
                    .send(MediaInput::Datagram {
                        session_id: session_id.clone(),
                        source,
                        contents,
                    })
                    .await;
                if sent.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%e, "media socket");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
