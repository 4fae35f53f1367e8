//! The client side of a Colibri2 allocation, shared by the runs that
//! drive lilt's bridge directly ([`super::lilt_bridge`]) and through a
//! relayed conference ([`super::relay_focus`]): the ICE-UDP transport the
//! bridge answered for an endpoint (or relay), and that transport applied
//! to a client's `Rtc` (the bridge controls ICE and is the DTLS server).

use media_signalling::IceTransport;
use media_signalling::xml::{ns, parse_transport};
use str0m::media::{MediaKind, Mid};
use str0m::{Candidate, IceCreds};
use xmpp_core::Element;

use super::MediaError;
use super::peer::{self, Peer};

/// The transport in `modified` (a `<conference-modified>`) for its
/// `<endpoint>` or `<relay>` (`child`) with id `id`.
pub fn answered_transport(
    modified: &Element,
    child: &str,
    id: &str,
) -> Result<IceTransport, MediaError> {
    let transport = modified
        .children()
        .filter(|c| c.name() == child && c.get_attr("id") == Some(id))
        .find_map(|e| e.get_child("transport", ns::COLIBRI2))
        .and_then(|t| t.get_child("transport", ns::ICE_UDP))
        .ok_or_else(|| MediaError::Protocol(format!("no transport for {child} {id}")))?;
    parse_transport(transport).map_err(|e| MediaError::Protocol(e.to_string()))
}

/// The bridge's transport into a client `Rtc`: its UDP candidates, ICE
/// credentials and sha-256 fingerprint; media `a` (audio) and `v` (video).
pub fn configure_client(p: &mut Peer, remote: &IceTransport) -> Result<(), MediaError> {
    let fp = remote
        .fingerprints
        .iter()
        .find(|f| f.hash.eq_ignore_ascii_case("sha-256"))
        .ok_or_else(|| MediaError::Protocol("a transport without sha-256".into()))?;
    let fingerprint = peer::parse_fingerprint(&fp.hash, &fp.value)?;
    for c in remote
        .candidates
        .iter()
        .filter(|c| c.protocol.eq_ignore_ascii_case("udp"))
    {
        if let Ok(candidate) = Candidate::host(c.address, "udp") {
            p.rtc.add_remote_candidate(candidate);
        }
    }
    let mut api = p.rtc.direct_api();
    api.set_remote_ice_credentials(IceCreds {
        ufrag: remote.ufrag.clone(),
        pass: remote.pwd.clone(),
    });
    api.set_remote_fingerprint(fingerprint);
    api.declare_media(Mid::from("a"), MediaKind::Audio);
    api.declare_media(Mid::from("v"), MediaKind::Video);
    Ok(())
}
