//! The sans-IO bookkeeping of one BOSH session (XEP-0124), as Prosody's
//! mod_bosh keeps it: request ids and their window, the requests held open
//! for long polling, the data waiting for a request, the last responses for
//! retransmission, `wait`, `inactivity`, `pause` and `terminate`.
//!
//! Requests are named by a caller-chosen [`RequestId`]; time is passed in.
//! The caller feeds a request with [`BoshState::receive`], processes the
//! stanza batches it returns through the XMPP stream (pushing whatever the
//! stream sends with [`BoshState::push`]), then calls
//! [`BoshState::finish`]; it answers requests as [`Output::Respond`] says,
//! reports requests whose HTTP connection went away
//! ([`BoshState::request_gone`]) and calls [`BoshState::handle_timeout`] at
//! [`BoshState::poll_timeout`].
//!
//! As Prosody: `hold` is 1 and `requests` 2 whatever the client asks; a
//! request whose `rid` is one ahead of the last is processed; two ahead is
//! kept until the missing one arrives; a repeated `rid` whose response is
//! still known (the last two) gets that response again, the current one is
//! held without its stanzas being processed twice; anything else is
//! answered `item-not-found` (the session stays, as in Prosody). A session
//! with no request open for `inactivity` seconds expires.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use xmpp_core::stanza::Element;

use super::body::{self, Creation, HOLD};

/// The caller's name for one HTTP request.
pub type RequestId = u64;

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Answer request `id` with this body (HTTP 200, `text/xml`).
    Respond { id: RequestId, body: String },
    /// The session expired (no request for `inactivity` seconds): destroy
    /// it (unavailable presence, ...) with this reason.
    Expired { reason: String },
}

/// What [`BoshState::receive`] made of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Process these batches of stanzas in order, then call
    /// [`BoshState::finish`].
    Process(Vec<Vec<Element>>),
    /// Nothing to process (the request was answered, held or deferred).
    Done,
}

/// The limits of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub wait: Duration,
    pub inactivity: Duration,
    pub polling: Duration,
    pub max_pause: Duration,
}

#[derive(Debug)]
struct Held {
    id: RequestId,
    rid: u64,
    deadline: Instant,
}

#[derive(Debug)]
struct Deferred {
    id: RequestId,
    rid: u64,
    stanzas: Vec<Element>,
    terminate: bool,
}

/// One BOSH session's state.
#[derive(Debug)]
pub struct BoshState {
    sid: String,
    host: String,
    settings: Settings,
    /// The last rid processed.
    rid: u64,
    held: VecDeque<Held>,
    buffer: Vec<String>,
    buffer_bytes: usize,
    /// What was still buffered when the session closed.
    undelivered: Vec<String>,
    /// The last responses, by rid (Prosody keeps HOLD + 1).
    responses: VecDeque<(u64, String)>,
    deferred: Option<Deferred>,
    /// Stanzas of a request are being processed: responses wait.
    processing: bool,
    terminating: bool,
    /// The first response carries the session's attributes.
    created: bool,
    /// Since when no request has been open.
    idle_since: Option<Instant>,
    /// A `pause` in force until the next request.
    paused: Option<Duration>,
    closed: bool,
    outputs: VecDeque<Output>,
}

impl BoshState {
    /// A session created by a request with `rid`, which the caller then
    /// feeds to [`BoshState::receive`].
    pub fn new(sid: String, host: String, rid: u64, settings: Settings, now: Instant) -> BoshState {
        BoshState {
            sid,
            host,
            settings,
            rid: rid.wrapping_sub(1),
            held: VecDeque::new(),
            buffer: Vec::new(),
            buffer_bytes: 0,
            undelivered: Vec::new(),
            responses: VecDeque::new(),
            deferred: None,
            processing: false,
            terminating: false,
            created: false,
            idle_since: Some(now),
            paused: None,
            closed: false,
            outputs: VecDeque::new(),
        }
    }

    pub fn sid(&self) -> &str {
        &self.sid
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }
    /// Bytes waiting for a request to carry them.
    pub fn pending_bytes(&self) -> usize {
        self.buffer_bytes
    }
    /// Requests held open.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// A request for this session arrived.
    pub fn receive(
        &mut self,
        now: Instant,
        id: RequestId,
        rid: u64,
        terminate: bool,
        pause: Option<u64>,
        stanzas: Vec<Element>,
    ) -> Admitted {
        if self.closed {
            self.respond(id, body::unknown_sid());
            return Admitted::Done;
        }
        let diff = i128::from(rid) - i128::from(self.rid);
        if diff == 2 {
            // The one before was lost (or is still on its way): keep this
            // one, unprocessed, until it arrives.
            if let Some(old) = self.deferred.take() {
                self.respond(old.id, self.empty_body());
            }
            self.deferred = Some(Deferred {
                id,
                rid,
                stanzas,
                terminate,
            });
            return Admitted::Done;
        }
        if diff != 1 {
            if let Some((_, response)) = self.responses.iter().find(|(r, _)| *r == rid) {
                let response = response.clone();
                self.respond(id, response);
            } else if diff == 0 {
                // The current request again (its connection dropped before
                // an answer): hold it, its stanzas were processed already.
                self.hold(now, id, rid);
                self.settle(now);
            } else {
                self.respond(id, body::terminate("item-not-found"));
            }
            return Admitted::Done;
        }
        self.rid = rid;
        self.paused = None;
        self.hold(now, id, rid);
        self.terminating |= terminate;
        if let Some(seconds) = pause {
            let pause = Duration::from_secs(seconds);
            if pause > self.settings.max_pause {
                self.close_with(body::terminate("policy-violation"));
                return Admitted::Done;
            }
            self.paused = Some(pause);
        }
        self.processing = true;
        let mut batches = vec![stanzas];
        if let Some(d) = self.deferred.take_if(|d| d.rid == rid + 1) {
            self.rid = d.rid;
            self.hold(now, d.id, d.rid);
            self.terminating |= d.terminate;
            batches.push(d.stanzas);
        }
        Admitted::Process(batches)
    }

    /// A request with `rid` arrived but could not be parsed: it counts as
    /// received (Prosody had read its tag), with nothing to process.
    pub fn skip(&mut self, rid: u64) {
        if !self.closed && rid == self.rid.wrapping_add(1) {
            self.rid = rid;
        }
    }

    /// Data for the client (a serialised stanza or stream element).
    pub fn push(&mut self, xml: String) {
        if self.closed {
            return;
        }
        self.buffer_bytes += xml.len();
        self.buffer.push(xml);
        if !self.processing {
            self.flush();
        }
    }

    /// The stanzas [`BoshState::receive`] handed out were processed.
    pub fn finish(&mut self, now: Instant) {
        self.processing = false;
        if self.closed {
            return;
        }
        self.settle(now);
        if self.paused.is_some() {
            // XEP-0124 §12: answer everything now, then wait for the pause.
            while !self.held.is_empty() {
                self.respond_oldest(now);
            }
        }
        if self.terminating {
            self.close_with(body::closing(None));
        }
    }

    /// Request `id`'s connection closed before it was answered.
    pub fn request_gone(&mut self, now: Instant, id: RequestId) {
        self.held.retain(|h| h.id != id);
        if self.deferred.as_ref().is_some_and(|d| d.id == id) {
            self.deferred = None;
        }
        self.mark_idle(now);
    }

    /// Ends the session: every held request is answered with a terminating
    /// body, carrying `stream_error` (serialised `<stream:error/>`) if any.
    pub fn close(&mut self, stream_error: Option<&str>) {
        self.close_with(body::closing(stream_error));
    }

    /// When [`BoshState::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let wait = self.held.iter().map(|h| h.deadline).min();
        let idle = self.idle_since.map(|t| t + self.inactivity());
        match (wait, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: held requests past `wait` get an empty response; a
    /// session idle for `inactivity` expires.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        while let Some(pos) = self.held.iter().position(|h| h.deadline <= now) {
            if let Some(h) = self.held.remove(pos) {
                let response = self.response_body();
                self.answer(h, response);
            }
        }
        self.mark_idle(now);
        if let Some(since) = self.idle_since
            && now >= since + self.inactivity()
        {
            self.closed = true;
            self.undelivered = std::mem::take(&mut self.buffer);
            self.buffer_bytes = 0;
            self.outputs.push_back(Output::Expired {
                reason: format!(
                    "BOSH client silent for over {} seconds",
                    self.inactivity().as_secs()
                ),
            });
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn inactivity(&self) -> Duration {
        self.paused.unwrap_or(self.settings.inactivity)
    }

    fn hold(&mut self, now: Instant, id: RequestId, rid: u64) {
        self.held.push_back(Held {
            id,
            rid,
            deadline: now + self.settings.wait,
        });
        self.idle_since = None;
    }

    /// Prosody's end of request handling: send what is buffered, and never
    /// hold more than `hold` requests.
    fn settle(&mut self, now: Instant) {
        self.flush();
        while self.held.len() > HOLD {
            self.respond_oldest(now);
        }
        self.mark_idle(now);
    }

    fn mark_idle(&mut self, now: Instant) {
        if self.held.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
    }

    /// Sends the buffer on the oldest held request, if both exist.
    fn flush(&mut self) {
        if self.buffer.is_empty() || self.processing {
            return;
        }
        if let Some(h) = self.held.pop_front() {
            let response = self.response_body();
            self.answer(h, response);
        }
    }

    fn respond_oldest(&mut self, now: Instant) {
        if let Some(h) = self.held.pop_front() {
            let response = self.response_body();
            self.answer(h, response);
        }
        self.mark_idle(now);
    }

    /// A response with everything buffered (possibly nothing).
    fn response_body(&mut self) -> String {
        let creation = (!self.created).then(|| Creation {
            host: self.host.clone(),
            wait: self.settings.wait,
            inactivity: self.settings.inactivity,
            polling: self.settings.polling,
            max_pause: self.settings.max_pause,
        });
        self.created = true;
        let mut out = body::open_tag(&self.sid, self.terminating, creation.as_ref());
        for part in self.buffer.drain(..) {
            out.push_str(&part);
        }
        self.buffer_bytes = 0;
        out.push_str("</body>");
        out
    }

    fn empty_body(&self) -> String {
        format!("{}</body>", body::open_tag(&self.sid, false, None))
    }

    fn answer(&mut self, h: Held, response: String) {
        self.responses.push_back((h.rid, response.clone()));
        while self.responses.len() > HOLD + 1 {
            self.responses.pop_front();
        }
        self.respond(h.id, response);
    }

    fn respond(&mut self, id: RequestId, body: String) {
        self.outputs.push_back(Output::Respond { id, body });
    }

    fn close_with(&mut self, response: String) {
        if self.closed {
            return;
        }
        for h in std::mem::take(&mut self.held) {
            self.respond(h.id, response.clone());
        }
        if let Some(d) = self.deferred.take() {
            self.respond(d.id, response.clone());
        }
        // Not sent: kept for the session's end (offline storage or an
        // error to the sender), never dropped.
        self.undelivered = std::mem::take(&mut self.buffer);
        self.buffer_bytes = 0;
        self.closed = true;
    }

    /// What was buffered for the client and never sent when the session
    /// closed (serialised stanzas, oldest first).
    pub fn take_undelivered(&mut self) -> Vec<String> {
        std::mem::take(&mut self.undelivered)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
