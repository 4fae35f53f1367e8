//! The recorder's presence in the JibriBrewery room, which the focus reads
//! to pick a recorder: `<jibri-status>` with `busy-status` (idle/busy) and
//! `health-status` (healthy/unhealthy), as Jibri's JibriStatusPacketExt.

use xmpp_core::Element;

use crate::ns;

/// What the brewery presence says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreweryStatus {
    pub busy: bool,
    pub healthy: bool,
}

/// The `<jibri-status/>` element.
pub fn jibri_status(status: BreweryStatus) -> Element {
    Element::new("jibri-status", ns::JIBRI)
        .child(
            Element::new("busy-status", ns::JIBRI)
                .attr("status", if status.busy { "busy" } else { "idle" }),
        )
        .child(Element::new("health-status", ns::HEALTH).attr(
            "status",
            if status.healthy {
                "healthy"
            } else {
                "unhealthy"
            },
        ))
}

/// The presence to `brewery/nick` (the first one also joins: `join`).
pub fn brewery_presence(
    from: &str,
    brewery: &str,
    nick: &str,
    status: BreweryStatus,
    join: bool,
) -> Element {
    let mut p = Element::new("presence", ns::CLIENT)
        .attr("from", from)
        .attr("to", format!("{brewery}/{nick}"));
    if join {
        p = p.child(Element::new("x", ns::MUC));
    }
    p.child(jibri_status(status))
}
