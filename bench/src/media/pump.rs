//! The driver's one loop over every simulated endpoint: datagrams from the
//! sockets into each `Rtc`, due packets written, each `Rtc`'s output sent
//! or counted, and `ppoll` on all sockets until the next deadline. One
//! thread on the generator's core, like the other scenarios' clients.

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};

use super::MediaError;
use super::payload::{self, VideoShape};
use super::peer::Peer;
use super::tally::Tally;

/// Every endpoint of a run and what they counted.
pub struct Pump {
    pub peers: Vec<Peer>,
    pub epoch: Instant,
    pub tally: Tally,
    pub video: VideoShape,
    /// Whether senders send (off while connecting).
    pub sending: bool,
    buf: Vec<u8>,
    written: Vec<(u32, u32)>,
    fds: Vec<libc::pollfd>,
}

impl Pump {
    /// Senders start now, each stream at a random phase of its frame
    /// interval, as real ones do; returns that now.
    pub fn start_sending(&mut self) -> Instant {
        use rand::Rng;
        let now = Instant::now();
        let mut rng = rand::thread_rng();
        for peer in self.peers.iter_mut() {
            for s in peer.outgoing.iter_mut() {
                s.next_due = now + Duration::from_micros(rng.gen_range(0..33_000));
            }
        }
        self.sending = true;
        now
    }

    pub fn new(video: VideoShape) -> Pump {
        Pump {
            peers: Vec::new(),
            epoch: Instant::now(),
            tally: Tally::default(),
            video,
            sending: false,
            buf: vec![0u8; 2048],
            written: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// Runs until `until` or until `done` says so (checked every pass).
    pub fn run(
        &mut self,
        until: Instant,
        mut done: impl FnMut(&Pump) -> bool,
    ) -> Result<(), MediaError> {
        loop {
            let now = Instant::now();
            if now >= until || done(self) {
                return Ok(());
            }
            for i in 0..self.peers.len() {
                if self.sending && self.peers[i].connected {
                    self.written.clear();
                    let (epoch, video) = (self.epoch, self.video);
                    self.peers[i].send_due(now, epoch, video, &mut self.written);
                    let at = now.saturating_duration_since(self.epoch);
                    for &(stream, count) in &self.written {
                        self.tally.on_sent(stream, count, at);
                    }
                    self.drain(i)?;
                }
                if self.peers[i].timeout <= now {
                    let _ = self.peers[i].rtc.handle_input(Input::Timeout(now));
                    self.drain(i)?;
                }
            }
            let mut wake = until;
            for p in &self.peers {
                wake = wake.min(p.timeout);
                if self.sending
                    && p.connected
                    && let Some(t) = p.next_send()
                {
                    wake = wake.min(t);
                }
            }
            self.wait(wake)?;
        }
    }

    /// Sleeps in `ppoll` until a socket is readable or `wake`, then reads
    /// every readable socket dry.
    fn wait(&mut self, wake: Instant) -> Result<(), MediaError> {
        self.fds.clear();
        self.fds.extend(self.peers.iter().map(|p| libc::pollfd {
            fd: p.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        let left = wake.saturating_duration_since(Instant::now());
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: fds points at `fds.len()` initialised pollfd structs that
        // live across the call; ts is a valid timespec; no signal mask.
        let n = unsafe {
            libc::ppoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if n <= 0 {
            return Ok(());
        }
        for i in 0..self.fds.len() {
            if self.fds[i].revents & libc::POLLIN != 0 {
                self.read(i)?;
            }
        }
        Ok(())
    }

    fn read(&mut self, i: usize) -> Result<(), MediaError> {
        loop {
            let (len, source) = match self.peers[i].socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(()),
                Err(e) => return Err(MediaError::io("receiving UDP")(e)),
            };
            let now = Instant::now();
            let Some(data) = self.buf.get(..len) else {
                continue;
            };
            let Ok(contents) = data.try_into() else {
                continue;
            };
            let peer = &mut self.peers[i];
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: peer.local,
                    contents,
                },
            );
            let _ = peer.rtc.handle_input(input);
            self.drain(i)?;
        }
    }

    /// Takes everything the `Rtc` of peer `i` has to give.
    fn drain(&mut self, i: usize) -> Result<(), MediaError> {
        loop {
            let peer = &mut self.peers[i];
            let out = match peer.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    return Err(MediaError::Protocol(format!("{}: rtc: {e}", peer.name)));
                }
            };
            match out {
                Output::Timeout(t) => {
                    peer.timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    if let Err(e) = peer.socket.send_to(&t.contents, t.destination)
                        && e.kind() != ErrorKind::WouldBlock
                        && e.kind() != ErrorKind::ConnectionRefused
                    {
                        return Err(MediaError::io("sending UDP")(e));
                    }
                }
                Output::Event(Event::Connected) => peer.connected = true,
                Output::Event(Event::RtpPacket(packet)) => {
                    if let Some(probe) = payload::read_probe(&packet.payload) {
                        let at = Instant::now().saturating_duration_since(self.epoch);
                        self.tally.on_received(i, probe, at);
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Whether every endpoint has ICE and DTLS up.
    pub fn all_connected(&self) -> bool {
        self.peers.iter().all(|p| p.connected)
    }

    /// Drives the endpoints until all are connected, or fails after `limit`.
    pub fn connect_all(&mut self, limit: Duration) -> Result<(), MediaError> {
        let until = Instant::now() + limit;
        self.run(until, Pump::all_connected)?;
        if self.all_connected() {
            return Ok(());
        }
        let missing: Vec<&str> = self
            .peers
            .iter()
            .filter(|p| !p.connected)
            .map(|p| p.name.as_str())
            .collect();
        Err(MediaError::Protocol(format!(
            "{} of {} endpoints did not connect within {} s: {}",
            missing.len(),
            self.peers.len(),
            limit.as_secs(),
            missing
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}
