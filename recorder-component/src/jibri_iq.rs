//! The `<jibri xmlns='http://jitsi.org/protocol/jibri'/>` IQ child, as
//! Jitsi's JibriIq writes it: `action` (start/stop) from the focus,
//! `status` (pending/on/off) with `failure_reason` (busy/error) and
//! `should_retry` from the recorder, and the request's `recording_mode`,
//! `room`, `session_id`, `streamid`, `app_data`.

use xmpp_core::Element;

use crate::ns;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    On,
    Off,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::On => "on",
            Status::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    Busy,
    Error,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Busy => "busy",
            FailureReason::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingMode {
    File,
    Stream,
}

impl RecordingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingMode::File => "file",
            RecordingMode::Stream => "stream",
        }
    }
}

/// The attributes of one `<jibri/>` element; unknown values read as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JibriIq {
    pub action: Option<Action>,
    pub status: Option<Status>,
    pub recording_mode: Option<RecordingMode>,
    pub room: Option<String>,
    pub stream_id: Option<String>,
    pub session_id: Option<String>,
    pub failure_reason: Option<FailureReason>,
    pub should_retry: Option<bool>,
    pub app_data: Option<String>,
}

impl JibriIq {
    /// Reads the `<jibri/>` child of an IQ, if it has one.
    pub fn from_iq(iq: &Element) -> Option<JibriIq> {
        let j = iq.get_child("jibri", ns::JIBRI)?;
        let action = match j.get_attr("action") {
            Some(a) if a.eq_ignore_ascii_case("start") => Some(Action::Start),
            Some(a) if a.eq_ignore_ascii_case("stop") => Some(Action::Stop),
            _ => None,
        };
        let status = match j.get_attr("status") {
            Some("pending") => Some(Status::Pending),
            Some("on") => Some(Status::On),
            Some("off") => Some(Status::Off),
            _ => None,
        };
        let stream_id = j.get_attr("streamid").map(str::to_string);
        // Jicofo's rule: without recording_mode, a stream id means stream.
        let recording_mode = match j.get_attr("recording_mode") {
            Some("file") => Some(RecordingMode::File),
            Some("stream") => Some(RecordingMode::Stream),
            _ if stream_id.is_some() => Some(RecordingMode::Stream),
            _ => Some(RecordingMode::File),
        };
        Some(JibriIq {
            action,
            status,
            recording_mode,
            room: j.get_attr("room").map(str::to_string),
            stream_id,
            session_id: j.get_attr("session_id").map(str::to_string),
            failure_reason: match j.get_attr("failure_reason") {
                Some("busy") => Some(FailureReason::Busy),
                Some("error") => Some(FailureReason::Error),
                _ => None,
            },
            should_retry: j.get_attr("should_retry").map(|v| v == "true"),
            app_data: j.get_attr("app_data").map(str::to_string),
        })
    }

    /// A status answer: `status` with the session id, and for a failure its
    /// reason and whether the focus should try another recorder.
    pub fn status(
        status: Status,
        session_id: Option<&str>,
        failure: Option<(FailureReason, bool)>,
    ) -> JibriIq {
        JibriIq {
            status: Some(status),
            session_id: session_id.map(str::to_string),
            failure_reason: failure.map(|f| f.0),
            should_retry: failure.map(|f| f.1),
            ..JibriIq::default()
        }
    }

    /// The element, attributes in JibriIq's order.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("jibri", ns::JIBRI);
        if let Some(a) = self.action {
            e = e.attr(
                "action",
                match a {
                    Action::Start => "start",
                    Action::Stop => "stop",
                },
            );
        }
        e = e
            .attr_opt("status", self.status.map(Status::as_str))
            .attr_opt(
                "recording_mode",
                self.recording_mode
                    .filter(|_| self.action.is_some())
                    .map(RecordingMode::as_str),
            )
            .attr_opt("room", self.room.as_deref())
            .attr_opt("streamid", self.stream_id.as_deref())
            .attr_opt("session_id", self.session_id.as_deref())
            .attr_opt(
                "failure_reason",
                self.failure_reason.map(FailureReason::as_str),
            )
            .attr_opt(
                "should_retry",
                self.should_retry.map(|r| if r { "true" } else { "false" }),
            )
            .attr_opt("app_data", self.app_data.as_deref());
        e
    }
}
