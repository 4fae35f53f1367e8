//! Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3).

use crate::stanza::{Element, NS_STANZAS, NS_STREAM_ERRORS, NS_STREAMS};

/// Declares [`StreamErrorCondition`] with each condition's element name.
macro_rules! stream_error_conditions {
    ($($variant:ident => $name:literal,)*) => {
        /// A stream-level error condition; sending one closes the stream.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum StreamErrorCondition {
            $($variant,)*
        }

        impl StreamErrorCondition {
            /// Every condition, in RFC 6120's order.
            pub const ALL: &[StreamErrorCondition] = &[$(StreamErrorCondition::$variant,)*];

            /// The condition's element name (`system-shutdown`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(StreamErrorCondition::$variant => $name,)*
                }
            }
        }
    };
}

stream_error_conditions! {
    BadFormat => "bad-format",
    BadNamespacePrefix => "bad-namespace-prefix",
    Conflict => "conflict",
    ConnectionTimeout => "connection-timeout",
    HostGone => "host-gone",
    HostUnknown => "host-unknown",
    ImproperAddressing => "improper-addressing",
    InternalServerError => "internal-server-error",
    InvalidFrom => "invalid-from",
    InvalidNamespace => "invalid-namespace",
    InvalidXml => "invalid-xml",
    NotAuthorized => "not-authorized",
    NotWellFormed => "not-well-formed",
    PolicyViolation => "policy-violation",
    RemoteConnectionFailed => "remote-connection-failed",
    Reset => "reset",
    ResourceConstraint => "resource-constraint",
    RestrictedXml => "restricted-xml",
    SeeOtherHost => "see-other-host",
    SystemShutdown => "system-shutdown",
    UndefinedCondition => "undefined-condition",
    UnsupportedEncoding => "unsupported-encoding",
    UnsupportedFeature => "unsupported-feature",
    UnsupportedStanzaType => "unsupported-stanza-type",
    UnsupportedVersion => "unsupported-version",
}

impl StreamErrorCondition {
    /// The condition named `name` (`system-shutdown`, ...).
    pub fn from_name(name: &str) -> Option<StreamErrorCondition> {
        Self::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

/// A stream error with an optional human-readable text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream error {}{}", condition.as_str(), text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct StreamError {
    pub condition: StreamErrorCondition,
    pub text: Option<String>,
}

impl StreamError {
    pub fn new(condition: StreamErrorCondition) -> StreamError {
        StreamError {
            condition,
            text: None,
        }
    }
    pub fn with_text(condition: StreamErrorCondition, text: impl Into<String>) -> StreamError {
        StreamError {
            condition,
            text: Some(text.into()),
        }
    }
    /// `<stream:error>` as an element in the streams namespace.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("error", NS_STREAMS)
            .child(Element::new(self.condition.as_str(), NS_STREAM_ERRORS));
        if let Some(t) = &self.text {
            e.push_child(Element::new("text", NS_STREAM_ERRORS).text(t.clone()));
        }
        e
    }
    /// Serialised as written inside a stream (`stream:` prefix bound).
    pub fn to_xml(&self) -> String {
        let mut s = format!(
            "<stream:error><{} xmlns='{NS_STREAM_ERRORS}'/>",
            self.condition.as_str()
        );
        if let Some(t) = &self.text {
            s.push_str(&format!(
                "<text xmlns='{NS_STREAM_ERRORS}'>{}</text>",
                crate::stanza::escape(t)
            ));
        }
        s.push_str("</stream:error>");
        s
    }
}

/// The `type` of a stanza error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// A stanza error: type, defined condition, optional text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stanza error {} ({}){}", condition, type_.as_str(), text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct StanzaError {
    pub type_: ErrorType,
    /// The defined condition, e.g. `service-unavailable`.
    pub condition: &'static str,
    pub text: Option<String>,
}

impl StanzaError {
    pub fn new(type_: ErrorType, condition: &'static str) -> StanzaError {
        StanzaError {
            type_,
            condition,
            text: None,
        }
    }
    pub fn with_text(mut self, text: impl Into<String>) -> StanzaError {
        self.text = Some(text.into());
        self
    }
    pub fn service_unavailable() -> StanzaError {
        StanzaError::new(ErrorType::Cancel, "service-unavailable")
    }
    pub fn feature_not_implemented() -> StanzaError {
        StanzaError::new(ErrorType::Cancel, "feature-not-implemented")
    }
    pub fn bad_request() -> StanzaError {
        StanzaError::new(ErrorType::Modify, "bad-request")
    }
    pub fn not_allowed() -> StanzaError {
        StanzaError::new(ErrorType::Cancel, "not-allowed")
    }
    pub fn forbidden() -> StanzaError {
        StanzaError::new(ErrorType::Auth, "forbidden")
    }
    pub fn item_not_found() -> StanzaError {
        StanzaError::new(ErrorType::Cancel, "item-not-found")
    }
    pub fn jid_malformed() -> StanzaError {
        StanzaError::new(ErrorType::Modify, "jid-malformed")
    }
    pub fn internal_server_error() -> StanzaError {
        StanzaError::new(ErrorType::Wait, "internal-server-error")
    }
    pub fn remote_server_not_found() -> StanzaError {
        StanzaError::new(ErrorType::Cancel, "remote-server-not-found")
    }
    pub fn recipient_unavailable() -> StanzaError {
        StanzaError::new(ErrorType::Wait, "recipient-unavailable")
    }

    /// The `<error/>` child element.
    pub fn to_element(&self, ns: &str) -> Element {
        let mut e = Element::new("error", ns)
            .attr("type", self.type_.as_str())
            .child(Element::new(self.condition, NS_STANZAS));
        if let Some(t) = &self.text {
            e.push_child(Element::new("text", NS_STANZAS).text(t.clone()));
        }
        e
    }

    /// The error reply to `stanza` (Prosody's `st.error_reply`): addresses
    /// swapped, `type='error'`, the original children kept for messages and
    /// presences as Prosody does not (it keeps none), so none are kept here.
    pub fn reply_to(&self, stanza: &Element) -> Element {
        let mut r = stanza.reply();
        r.set_attr("type", Some("error".into()));
        let ns = r.ns().to_string();
        r.push_child(self.to_element(&ns));
        r
    }
}
