//! The recorder's settings and what it tells the runtime: its options
//! (Jibri's `xmpp.environments` and limits), the events, the outputs and
//! why a recording stopped.

use std::path::PathBuf;
use std::time::Duration;

use xmpp_core::Element;

use crate::files::Metadata;

/// How the recorder is set up (Jibri's `xmpp.environments` and limits).
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// The control connection's full JID (`jibri@auth.D/res`).
    pub jid: String,
    /// The brewery room, `jibribrewery@internal.auth.D`.
    pub brewery: String,
    /// Our nick in the brewery (default: `<localpart>_<resource>`).
    pub brewery_nick: String,
    /// The call connection's full JID (`recorder@recorder.D/res`).
    pub recorder_jid: String,
    /// Where recordings go: `<dir>/<session id>/`.
    pub dir: PathBuf,
    pub max_concurrent: usize,
    pub max_duration: Option<Duration>,
    pub empty_timeout: Duration,
    pub min_free_bytes: u64,
    /// `https://D` for meeting URLs; else derived from the room's domain
    /// without its first label (`conference.D` → `https://D`).
    pub meeting_base_url: Option<String>,
    /// Accept any certificate on a `wss://` bridge channel (`--insecure-tls`).
    pub insecure_tls: bool,
}

impl RecorderOptions {
    pub fn new(jid: &str, brewery: &str, recorder_jid: &str, dir: PathBuf) -> RecorderOptions {
        // The localpart, and the resource when there is one, so that several
        // recorders on one account do not take each other's nick.
        let local = jid.split('@').next().unwrap_or("jibri");
        let resource: String = jid
            .split_once('/')
            .map(|(_, r)| r)
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let nick = if resource.is_empty() {
            local.to_string()
        } else {
            format!("{local}_{resource}")
        };
        RecorderOptions {
            jid: jid.into(),
            brewery: brewery.into(),
            brewery_nick: nick,
            recorder_jid: recorder_jid.into(),
            dir,
            max_concurrent: 4,
            max_duration: None,
            empty_timeout: Duration::from_secs(30),
            min_free_bytes: 1 << 30,
            meeting_base_url: None,
            insecure_tls: false,
        }
    }
}

/// Why a recording stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `action='stop'` from the focus.
    Requested,
    RoomDestroyed,
    /// Only the focus and hidden participants were left.
    Empty,
    MaxDuration,
    LowDiskSpace,
    /// The room refused the recorder (the stanza error condition).
    JoinFailed(String),
    /// Removed from the room by someone else.
    Kicked,
    /// The media side failed (set by the runtime).
    Media(String),
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum RecorderEvent {
    /// A recording was accepted: create `dir`, open the file, get ready for
    /// the Jingle session the focus will offer on the call link.
    Started {
        session_id: String,
        room: String,
        dir: PathBuf,
    },
    ParticipantJoined {
        session_id: String,
        endpoint: String,
        name: Option<String>,
    },
    ParticipantLeft {
        session_id: String,
        endpoint: String,
    },
    /// An IQ for the recorder's occupant in the room (Jingle from the
    /// focus): the media side answers it.
    CallIq { session_id: String, iq: Element },
    /// A recording ended: close the file, write `metadata`, run the
    /// finalize script on `dir`.
    Stopped {
        session_id: String,
        dir: PathBuf,
        reason: StopReason,
        metadata: Metadata,
    },
}

/// One output of the recorder.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// To send on the control link (`jibri@auth.D`).
    Control(Element),
    /// To send on the call link (`recorder@recorder.D`).
    Call(Element),
    Event(RecorderEvent),
}
