//! A [`C2sStream`] over a framed transport (BOSH, WebSocket): parsed
//! stream events in, [`Frame`]s out, and the session announced with the
//! HTTP request that opened it.

use std::sync::Arc;

use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::hooks::Event;
use crate::host::Host;
use crate::session::Session;
use crate::stream::StreamEvent;
use crate::transport::TransportInfo;

use super::{Action, C2sStream, Frame, Phase};

impl C2sStream {
    /// Makes this a stream over a framed transport (BOSH, WebSocket): its
    /// output comes as [`Action::Frame`]s, its input through
    /// [`C2sStream::handle_stream_event`], and the session it creates keeps
    /// `transport` and is announced with `bosh-session` /
    /// `websocket-session`. Call before the first input.
    pub fn set_transport(&mut self, transport: Arc<TransportInfo>) {
        if transport.secure {
            self.secure = true;
        }
        self.transport = Some(transport);
    }

    /// A stream event parsed by a framed transport: the `<open/>` (or BOSH
    /// session request) as [`StreamEvent::Open`], each element as
    /// [`StreamEvent::Stanza`], `<close/>` (or a terminating body) as
    /// [`StreamEvent::Close`]. An element where the stream header should
    /// be is `invalid-namespace`, as on TCP (and as Prosody answers it).
    pub fn handle_stream_event(&mut self, ev: StreamEvent) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Closed {
            return out;
        }
        if self.phase == Phase::Header && matches!(ev, StreamEvent::Stanza(_)) {
            self.fail(
                &mut out,
                StreamError::with_text(Cond::InvalidNamespace, "the stream is not open"),
            );
            return out;
        }
        self.handle_event(ev, &mut out);
        out
    }

    /// Is the stream waiting for the peer's header (at the start, and after
    /// STARTTLS or SASL success asked for a restart)?
    pub fn awaiting_stream_open(&self) -> bool {
        self.phase == Phase::Header
    }

    /// Hands a unit of output to the transport: bytes on TCP, the frame
    /// itself on BOSH and WebSocket.
    pub(super) fn emit(&self, out: &mut Vec<Action>, frame: Frame) {
        match self.transport {
            Some(_) => out.push(Action::Frame(frame)),
            None => out.push(Action::Write(frame.to_tcp())),
        }
    }

    /// Fires `bosh-session` / `websocket-session` for a new session, as
    /// Prosody does: on the global bus (where Prosody's global mod_bosh and
    /// mod_websocket fire it, and Jitsi's modules hook it) and on the
    /// host's. The event's `origin` (and object `session`) is the session;
    /// its `request` field
    /// holds the HTTP request (`method`, `path`, `url.query`, `headers`
    /// with Prosody's `x_forwarded_for` names, `ip`, `secure`).
    pub(super) fn announce_transport(
        &self,
        host: &Arc<Host>,
        session: &Arc<Session>,
        transport: &TransportInfo,
    ) {
        let name = transport.kind.session_event();
        let request = crate::value::Value::Table(transport.request_table());
        // Prosody's payload is `{ session = ..., request = ... }`: the
        // session is also there under that name.
        let event = || {
            Event::new(&self.server, name)
                .with_origin(session)
                .with_object("session", session.clone())
                .with_field("request", request.clone())
        };
        self.server.fire_global(name, &mut event());
        self.server.fire_on_host(host, name, &mut event());
    }
}
