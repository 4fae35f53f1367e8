//! Colibri2 (`jitsi:colibri2`) as Videobridge reads and answers it: a
//! `<conference-modify>` IQ from the focus becomes a typed
//! [`ConferenceModify`]; the answer is a `<conference-modified>` built by
//! [`conference_modified`], or an error IQ from a [`Colibri2Error`] with
//! Videobridge's condition and `<error xmlns='jitsi:colibri2' reason>`.

use media_signalling::xml::{
    self, colibri2_media_source_element, ns, parse_colibri2_media, parse_colibri2_sources,
    parse_transport, transport_element,
};
use media_signalling::{IceTransport, MediaDescription, Source};
use xmpp_core::Element;
use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::NS_STANZAS;

pub const NS_COLIBRI2: &str = ns::COLIBRI2;

/// One `<conference-modify>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConferenceModify {
    pub meeting_id: String,
    pub name: Option<String>,
    pub create: bool,
    pub expire: bool,
    pub endpoints: Vec<EndpointRequest>,
    /// `<relay>` children: bridge-to-bridge relays (see [`crate::relay`]).
    pub relays: Vec<crate::relay::RelayRequest>,
}

/// `<endpoint>` of a conference-modify.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointRequest {
    pub id: String,
    pub create: bool,
    pub expire: bool,
    pub stats_id: Option<String>,
    /// `muc-role` (`visitor` endpoints may not send).
    pub muc_role: Option<String>,
    pub media: Vec<MediaDescription>,
    pub transport: Option<TransportRequest>,
    /// `Some` when `<sources>` is present (even empty: clears them).
    pub sources: Option<Vec<Source>>,
    pub capabilities: Vec<String>,
    pub initial_last_n: Option<i64>,
    /// `<force-mute audio video>`.
    pub force_mute: Option<(bool, bool)>,
}

impl EndpointRequest {
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }
}

/// `<transport ice-controlling>` of an endpoint, with the endpoint's own
/// ICE-UDP transport inside when the focus forwards it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransportRequest {
    pub ice_controlling: bool,
    pub remote: Option<IceTransport>,
    /// `<sctp>` asked for (a data channel; not offered by this bridge).
    pub sctp: bool,
}

/// A Colibri2 request the bridge refuses, as Videobridge words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Colibri2Error {
    #[error("Conference not found for ID: {0}")]
    ConferenceNotFound(String),
    #[error("Conference already exists for ID: {0}")]
    ConferenceAlreadyExists(String),
    /// `conflict` with Videobridge's text (a relay that exists).
    #[error("{0}")]
    Conflict(String),
    #[error("Endpoint with ID {0} already exists")]
    EndpointExists(String),
    /// Videobridge answers `bad-request` here, not `item-not-found`.
    #[error("Unknown endpoint {0}")]
    UnknownEndpoint(String),
    #[error("In graceful shutdown")]
    GracefulShutdown,
    #[error("{0}")]
    FeatureNotImplemented(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

impl Colibri2Error {
    /// The stanza error condition and type Videobridge gives.
    pub fn condition(&self) -> (&'static str, ErrorType) {
        match self {
            Colibri2Error::ConferenceNotFound(_) => ("item-not-found", ErrorType::Cancel),
            Colibri2Error::ConferenceAlreadyExists(_)
            | Colibri2Error::EndpointExists(_)
            | Colibri2Error::Conflict(_) => ("conflict", ErrorType::Cancel),
            Colibri2Error::UnknownEndpoint(_) | Colibri2Error::BadRequest(_) => {
                ("bad-request", ErrorType::Modify)
            }
            Colibri2Error::GracefulShutdown => ("service-unavailable", ErrorType::Cancel),
            Colibri2Error::FeatureNotImplemented(_) => {
                ("feature-not-implemented", ErrorType::Cancel)
            }
            Colibri2Error::Internal(_) => ("internal-server-error", ErrorType::Wait),
        }
    }

    /// `reason` of `<error xmlns='jitsi:colibri2'/>`, where Videobridge adds
    /// one (Jicofo tells a bridge's answer from the MUC's by it).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Colibri2Error::ConferenceNotFound(_) => Some("conference_not_found"),
            Colibri2Error::ConferenceAlreadyExists(_) => Some("conference_already_exists"),
            Colibri2Error::GracefulShutdown => Some("graceful_shutdown"),
            Colibri2Error::FeatureNotImplemented(_) => Some("feature_not_implemented"),
            _ => None,
        }
    }

    /// The error reply to `iq`.
    pub fn reply_to(&self, iq: &Element) -> Element {
        let (condition, type_) = self.condition();
        let mut reply = StanzaError::new(type_, condition)
            .with_text(self.to_string())
            .reply_to(iq);
        if let Some(reason) = self.reason() {
            let ns = reply.ns().to_string();
            if let Some(err) = reply.get_child_mut("error", &ns) {
                err.push_child(Element::new("error", NS_COLIBRI2).attr("reason", reason));
            }
        }
        reply
    }
}

fn flag(el: &Element, name: &str) -> bool {
    matches!(el.get_attr(name), Some("true") | Some("1"))
}

fn bad(e: xml::XmlError) -> Colibri2Error {
    Colibri2Error::BadRequest(e.to_string())
}

/// Reads a `<conference-modify xmlns='jitsi:colibri2'>`.
pub fn parse_conference_modify(el: &Element) -> Result<ConferenceModify, Colibri2Error> {
    let meeting_id = el
        .get_attr("meeting-id")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Colibri2Error::BadRequest("conference-modify without meeting-id".into()))?
        .to_string();
    let mut request = ConferenceModify {
        meeting_id,
        name: el.get_attr("name").map(str::to_string),
        create: flag(el, "create"),
        expire: flag(el, "expire"),
        ..Default::default()
    };
    for child in el.children() {
        match child.name() {
            "endpoint" if child.ns() == NS_COLIBRI2 => {
                request.endpoints.push(parse_endpoint(child)?)
            }
            // Jicofo wraps endpoints in <endpoints> in some versions.
            "endpoints" if child.ns() == NS_COLIBRI2 => {
                for e in child.children().filter(|c| c.name() == "endpoint") {
                    request.endpoints.push(parse_endpoint(e)?);
                }
            }
            "relay" if child.ns() == NS_COLIBRI2 => request
                .relays
                .push(crate::relay::request::parse_relay(child)?),
            _ => {}
        }
    }
    Ok(request)
}

pub(crate) fn parse_endpoint(el: &Element) -> Result<EndpointRequest, Colibri2Error> {
    let id = el
        .get_attr("id")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Colibri2Error::BadRequest("endpoint without id".into()))?
        .to_string();
    let mut ep = EndpointRequest {
        id,
        create: flag(el, "create"),
        expire: flag(el, "expire"),
        stats_id: el.get_attr("stats-id").map(str::to_string),
        muc_role: el.get_attr("muc-role").map(str::to_string),
        ..Default::default()
    };
    for child in el.children() {
        match child.name() {
            "media" => ep.media.push(parse_colibri2_media(child).map_err(bad)?),
            "transport" if child.ns() == NS_COLIBRI2 => {
                let remote = match child.get_child("transport", ns::ICE_UDP) {
                    Some(t) => Some(parse_transport(t).map_err(bad)?),
                    None => None,
                };
                ep.transport = Some(TransportRequest {
                    ice_controlling: flag(child, "ice-controlling"),
                    remote,
                    sctp: child.get_child("sctp", NS_COLIBRI2).is_some(),
                });
            }
            "sources" => ep.sources = Some(parse_colibri2_sources(child).map_err(bad)?),
            "capability" => {
                if let Some(name) = child.get_attr("name") {
                    ep.capabilities.push(name.to_string());
                }
            }
            "initial-last-n" => {
                let value = child
                    .get_attr("value")
                    .map(str::to_string)
                    .unwrap_or_else(|| child.text_content());
                ep.initial_last_n = value.trim().parse().ok();
            }
            "force-mute" => ep.force_mute = Some((flag(child, "audio"), flag(child, "video"))),
            _ => {}
        }
    }
    Ok(ep)
}

/// What the answer says about one endpoint of the request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointAnswer {
    pub id: String,
    pub expire: bool,
    /// The bridge's transport, for a created endpoint.
    pub transport: Option<IceTransport>,
}

/// The bridge's feedback sources (`jvb-a0`/`jvb-v0`, owner `jvb`) for a
/// conference's local SSRCs.
pub fn feedback_sources(audio_ssrc: u32, video_ssrc: u32) -> Vec<Source> {
    use media_signalling::MediaKind;
    let source = |kind: MediaKind, name: &str, ssrc: u32, label: &str| Source {
        kind,
        name: name.to_string(),
        ssrcs: vec![ssrc],
        groups: Vec::new(),
        video_type: None,
        msid: Some(format!("mixedmslabel {label}")),
    };
    vec![
        source(MediaKind::Audio, "jvb-a0", audio_ssrc, "mixedlabelaudio0"),
        source(MediaKind::Video, "jvb-v0", video_ssrc, "mixedlabelvideo0"),
    ]
}

/// The `<iq type='result'>` with `<conference-modified>` answering `iq`.
pub fn conference_modified(
    iq: &Element,
    endpoints: &[EndpointAnswer],
    feedback: Option<&[Source]>,
) -> Element {
    conference_modified_with_relays(iq, endpoints, &[], feedback)
}

/// [`conference_modified`] with the answers about `<relay>`s.
pub fn conference_modified_with_relays(
    iq: &Element,
    endpoints: &[EndpointAnswer],
    relays: &[crate::relay::RelayAnswer],
    feedback: Option<&[Source]>,
) -> Element {
    let mut modified = Element::new("conference-modified", NS_COLIBRI2);
    for ep in endpoints {
        let mut e = Element::new("endpoint", NS_COLIBRI2).attr("id", ep.id.clone());
        if ep.expire {
            e.set_attr("expire", Some("true".into()));
        }
        if let Some(t) = &ep.transport {
            e.push_child(Element::new("transport", NS_COLIBRI2).child(transport_element(t)));
        }
        modified.push_child(e);
    }
    for relay in relays {
        modified.push_child(crate::relay::relay_answer_element(relay));
    }
    if let Some(sources) = feedback {
        let mut s = Element::new("sources", NS_COLIBRI2);
        for source in sources {
            s.push_child(colibri2_media_source_element(source));
        }
        modified.push_child(s);
    }
    iq.reply().child(modified)
}

/// The `<error>` condition of an error reply (for tests and logs).
pub fn error_condition(reply: &Element) -> Option<String> {
    let err = reply.children().find(|c| c.name() == "error")?;
    err.children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::stream::parse_element;

    const REQUEST: &str = "<iq xmlns='jabber:client' type='set' id='c1' from='focus@auth.d/f' to='jvb@auth.d/b'>\
        <conference-modify xmlns='jitsi:colibri2' meeting-id='m-1' name='room@conference.d' create='true'>\
          <endpoint id='ep1' create='true' stats-id='Fox-1' muc-role='participant'>\
            <media type='audio'><payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'/></media>\
            <transport ice-controlling='true'/>\
            <sources><media-source type='audio' id='ep1-a0'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='11' name='ep1-a0'/></media-source></sources>\
            <capability name='source-names'/>\
            <initial-last-n value='5'/>\
            <force-mute audio='true' video='false'/>\
          </endpoint>\
          <endpoint id='ep0' expire='true'/>\
        </conference-modify></iq>";

    #[test]
    fn parses_jicofo_request() {
        let iq = parse_element(REQUEST).unwrap();
        let cm = parse_conference_modify(iq.first_child().unwrap()).unwrap();
        assert_eq!(cm.meeting_id, "m-1");
        assert_eq!(cm.name.as_deref(), Some("room@conference.d"));
        assert!(cm.create);
        let ep = &cm.endpoints[0];
        assert_eq!(ep.id, "ep1");
        assert!(ep.create);
        assert_eq!(ep.stats_id.as_deref(), Some("Fox-1"));
        assert_eq!(ep.media.len(), 1);
        assert!(ep.transport.as_ref().unwrap().ice_controlling);
        assert_eq!(ep.sources.as_ref().unwrap()[0].ssrcs, vec![11]);
        assert!(ep.has_capability("source-names"));
        assert_eq!(ep.initial_last_n, Some(5));
        assert_eq!(ep.force_mute, Some((true, false)));
        assert!(cm.endpoints[1].expire);
    }

    #[test]
    fn conference_not_found_error_shape() {
        let iq = parse_element(REQUEST).unwrap();
        let reply = Colibri2Error::ConferenceNotFound("m-1".into()).reply_to(&iq);
        assert_eq!(reply.type_(), Some("error"));
        assert_eq!(error_condition(&reply).as_deref(), Some("item-not-found"));
        let err = reply.get_child("error", "jabber:client").unwrap();
        let c2 = err.get_child("error", NS_COLIBRI2).unwrap();
        assert_eq!(c2.get_attr("reason"), Some("conference_not_found"));
    }

    #[test]
    fn missing_meeting_id_is_bad_request() {
        let el = Element::new("conference-modify", NS_COLIBRI2);
        assert!(matches!(
            parse_conference_modify(&el),
            Err(Colibri2Error::BadRequest(_))
        ));
    }
}
