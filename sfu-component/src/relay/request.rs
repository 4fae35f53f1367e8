//! The Colibri2 `<relay>` element of a `conference-modify` (see the module
//! docs of [`crate::relay`] for the shapes) and its answer.

use media_signalling::xml::{ns, parse_colibri2_media, parse_transport, transport_element};
use media_signalling::{IceTransport, MediaDescription};
use xmpp_core::Element;

use crate::colibri2::{Colibri2Error, EndpointRequest, NS_COLIBRI2, parse_endpoint};

/// One `<relay>` of a `conference-modify`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayRequest {
    /// The peer bridge's `relay_id`.
    pub id: String,
    pub create: bool,
    pub expire: bool,
    pub mesh_id: Option<String>,
    pub media: Vec<MediaDescription>,
    /// The peer bridge's endpoints (create, update, expire).
    pub endpoints: Vec<EndpointRequest>,
    /// `<transport>`, if present.
    pub transport: Option<RelayTransport>,
}

/// `<transport use-unique-port ice-controlling>` of a relay, with the peer
/// bridge's ICE-UDP transport inside once the focus has it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayTransport {
    pub use_unique_port: bool,
    pub ice_controlling: bool,
    pub remote: Option<IceTransport>,
    pub sctp: bool,
}

impl RelayTransport {
    /// The DTLS role the focus forced in the peer's fingerprint: `true`
    /// when this bridge is the DTLS client (`setup='active'`).
    pub fn dtls_active(&self) -> Option<bool> {
        let remote = self.remote.as_ref()?;
        let setup = remote
            .fingerprints
            .iter()
            .find_map(|f| f.setup.as_deref())?;
        Some(setup.eq_ignore_ascii_case("active"))
    }
}

fn flag(el: &Element, name: &str) -> bool {
    matches!(el.get_attr(name), Some("true") | Some("1"))
}

fn bad(e: media_signalling::xml::XmlError) -> Colibri2Error {
    Colibri2Error::BadRequest(e.to_string())
}

/// Reads one `<relay xmlns='jitsi:colibri2'>`.
pub fn parse_relay(el: &Element) -> Result<RelayRequest, Colibri2Error> {
    let id = el
        .get_attr("id")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Colibri2Error::BadRequest("relay without id".into()))?
        .to_string();
    let mut relay = RelayRequest {
        id,
        create: flag(el, "create"),
        expire: flag(el, "expire"),
        mesh_id: el.get_attr("mesh-id").map(str::to_string),
        ..Default::default()
    };
    for child in el.children() {
        match child.name() {
            "media" => relay.media.push(parse_colibri2_media(child).map_err(bad)?),
            "endpoint" if child.ns() == NS_COLIBRI2 => relay.endpoints.push(parse_endpoint(child)?),
            "endpoints" if child.ns() == NS_COLIBRI2 => {
                for e in child.children().filter(|c| c.name() == "endpoint") {
                    relay.endpoints.push(parse_endpoint(e)?);
                }
            }
            "transport" if child.ns() == NS_COLIBRI2 => {
                let remote = match child.get_child("transport", ns::ICE_UDP) {
                    Some(t) => Some(parse_transport(t).map_err(bad)?),
                    None => None,
                };
                relay.transport = Some(RelayTransport {
                    use_unique_port: flag(child, "use-unique-port"),
                    ice_controlling: flag(child, "ice-controlling"),
                    remote,
                    sctp: child.get_child("sctp", NS_COLIBRI2).is_some(),
                });
            }
            _ => {}
        }
    }
    Ok(relay)
}

/// What the answer says about one relay.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayAnswer {
    pub id: String,
    pub expire: bool,
    /// The bridge's transport for the relay, answered to a create.
    pub transport: Option<IceTransport>,
}

/// `<relay id [expire]>[<transport>…</transport>]</relay>` of a
/// `conference-modified`.
pub fn relay_answer_element(answer: &RelayAnswer) -> Element {
    let mut e = Element::new("relay", NS_COLIBRI2).attr("id", answer.id.clone());
    if answer.expire {
        e.set_attr("expire", Some("true".into()));
    }
    if let Some(t) = &answer.transport {
        e.push_child(Element::new("transport", NS_COLIBRI2).child(transport_element(t)));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colibri2::parse_conference_modify;
    use xmpp_core::stream::parse_element;

    /// A relay create as Jicofo's `Colibri2Session.Relay` builds it.
    pub(crate) const CREATE: &str = "<conference-modify xmlns='jitsi:colibri2' meeting-id='m-1'>\
        <relay id='jvb-b' create='true' mesh-id='0'>\
          <media type='audio'><payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'/>\
            <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/></media>\
          <media type='video'><payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='100' name='VP8' clockrate='90000'/></media>\
          <endpoints>\
            <endpoint id='b1' create='true' stats-id='Owl-1'><capability name='source-names'/>\
              <sources><media-source type='audio' id='b1-a0'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='21' name='b1-a0'/></media-source></sources>\
            </endpoint>\
          </endpoints>\
          <transport use-unique-port='true' ice-controlling='true'/>\
        </relay></conference-modify>";

    #[test]
    fn parses_jicofo_relay_create() {
        let el = parse_element(CREATE).unwrap();
        let cm = parse_conference_modify(&el).unwrap();
        assert_eq!(cm.relays.len(), 1);
        let r = &cm.relays[0];
        assert_eq!(r.id, "jvb-b");
        assert!(r.create);
        assert_eq!(r.mesh_id.as_deref(), Some("0"));
        assert_eq!(r.media.len(), 2);
        assert_eq!(r.endpoints.len(), 1);
        assert_eq!(r.endpoints[0].id, "b1");
        assert!(r.endpoints[0].create);
        assert_eq!(r.endpoints[0].sources.as_ref().unwrap()[0].ssrcs, vec![21]);
        let t = r.transport.as_ref().unwrap();
        assert!(t.use_unique_port && t.ice_controlling && !t.sctp);
        assert!(t.remote.is_none());
        assert_eq!(t.dtls_active(), None);
    }

    #[test]
    fn parses_peer_transport_and_expire() {
        let el = parse_element(
            "<conference-modify xmlns='jitsi:colibri2' meeting-id='m-1'>\
              <relay id='jvb-b'><transport>\
                <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u' pwd='p'>\
                  <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>AA:BB</fingerprint>\
                  <candidate foundation='1' component='1' protocol='udp' priority='1' ip='127.0.0.1' port='5000' type='host' generation='0' id='c'/>\
                </transport></transport></relay>\
              <relay id='jvb-c' expire='true'/>\
            </conference-modify>",
        )
        .unwrap();
        let cm = parse_conference_modify(&el).unwrap();
        let t = cm.relays[0].transport.as_ref().unwrap();
        assert_eq!(t.remote.as_ref().unwrap().ufrag, "u");
        assert_eq!(t.dtls_active(), Some(true));
        assert!(cm.relays[1].expire);
    }

    #[test]
    fn relay_without_id_is_bad_request() {
        let el = parse_element(
            "<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><relay create='true'/></conference-modify>",
        )
        .unwrap();
        assert!(matches!(
            parse_conference_modify(&el),
            Err(Colibri2Error::BadRequest(_))
        ));
    }

    #[test]
    fn answer_shape() {
        let e = relay_answer_element(&RelayAnswer {
            id: "jvb-b".into(),
            expire: true,
            transport: None,
        });
        assert_eq!(e.get_attr("id"), Some("jvb-b"));
        assert_eq!(e.get_attr("expire"), Some("true"));
    }
}
