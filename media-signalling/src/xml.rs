//! Each type of [`crate::types`] to and from its element, as Jicofo,
//! Videobridge and lib-jitsi-meet write them in Jingle and Colibri2.
//!
//! Readers are lenient where the clients are (an unknown child or attribute
//! is ignored, a candidate lilt cannot use is skipped) and strict where a
//! wrong value would break media (a payload type or SSRC that is not a
//! number is an error naming the element).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use xmpp_core::Element;

use crate::types::{
    Candidate, Fingerprint, HeaderExtension, IceTransport, MediaDescription, MediaKind,
    PayloadType, RtcpFeedback, Source, SsrcGroup,
};

/// The namespaces of the elements read and written here.
pub mod ns {
    pub const JINGLE: &str = "urn:xmpp:jingle:1";
    pub const RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
    pub const RTCP_FB: &str = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
    pub const HDREXT: &str = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
    pub const SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";
    pub const ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
    pub const DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
    pub const GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
    pub const COLIBRI: &str = "http://jitsi.org/protocol/colibri";
    pub const COLIBRI2: &str = "jitsi:colibri2";
    pub const JITMEET: &str = "http://jitsi.org/jitmeet";
}

/// An element that cannot be read: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad <{element}>: {reason}")]
pub struct XmlError {
    pub element: &'static str,
    pub reason: String,
}

pub(crate) fn bad(element: &'static str, reason: impl Into<String>) -> XmlError {
    XmlError {
        element,
        reason: reason.into(),
    }
}

/// A required numeric attribute.
fn number<T: std::str::FromStr>(
    el: &Element,
    element: &'static str,
    attr: &str,
) -> Result<T, XmlError> {
    let value = el
        .get_attr(attr)
        .ok_or_else(|| bad(element, format!("no '{attr}'")))?;
    value
        .trim()
        .parse()
        .map_err(|_| bad(element, format!("'{attr}' is not a number: {value:?}")))
}

/// An optional numeric attribute (absent or unreadable: `None`).
fn optional_number<T: std::str::FromStr>(el: &Element, attr: &str) -> Option<T> {
    el.get_attr(attr).and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------
// Payload types and header extensions

/// `<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1'>` with its parameters
/// and `<rtcp-fb>` children (Jingle's description and Colibri2's `<media>`).
pub fn payload_type_element(pt: &PayloadType) -> Element {
    let mut el = Element::new("payload-type", ns::RTP)
        .attr("id", pt.id.to_string())
        .attr("name", pt.name.clone())
        .attr("clockrate", pt.clockrate.to_string())
        .attr_opt("channels", pt.channels.map(|c| c.to_string()));
    for (name, value) in &pt.parameters {
        el.push_child(
            Element::new("parameter", ns::RTP)
                .attr("name", name.clone())
                .attr("value", value.clone()),
        );
    }
    for fb in &pt.feedback {
        el.push_child(
            Element::new("rtcp-fb", ns::RTCP_FB)
                .attr("type", fb.kind.clone())
                .attr_opt("subtype", fb.subtype.clone()),
        );
    }
    el
}

pub fn parse_payload_type(el: &Element) -> Result<PayloadType, XmlError> {
    const E: &str = "payload-type";
    let name = el.get_attr("name").unwrap_or_default().to_string();
    let parameters = el
        .children()
        .filter(|c| c.name() == "parameter")
        .filter_map(|c| {
            Some((
                c.get_attr("name")?.to_string(),
                c.get_attr("value")?.to_string(),
            ))
        })
        .collect();
    let feedback = el
        .children()
        .filter(|c| c.is("rtcp-fb", ns::RTCP_FB))
        .filter_map(|c| {
            Some(RtcpFeedback {
                kind: c.get_attr("type")?.to_string(),
                subtype: c.get_attr("subtype").map(str::to_string),
            })
        })
        .collect();
    Ok(PayloadType {
        id: number(el, E, "id")?,
        name,
        clockrate: optional_number(el, "clockrate").unwrap_or(0),
        channels: optional_number(el, "channels"),
        parameters,
        feedback,
    })
}

/// `<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id uri>`.
pub fn header_extension_element(ext: &HeaderExtension) -> Element {
    Element::new("rtp-hdrext", ns::HDREXT)
        .attr("id", ext.id.to_string())
        .attr("uri", ext.uri.clone())
}

pub fn parse_header_extension(el: &Element) -> Result<HeaderExtension, XmlError> {
    const E: &str = "rtp-hdrext";
    Ok(HeaderExtension {
        id: number(el, E, "id")?,
        uri: el
            .get_attr("uri")
            .ok_or_else(|| bad(E, "no 'uri'"))?
            .to_string(),
    })
}

/// The payload types and header extensions among `parent`'s children (a
/// Jingle `<description>` or a Colibri2 `<media>`).
pub fn parse_codecs(
    parent: &Element,
) -> Result<(Vec<PayloadType>, Vec<HeaderExtension>), XmlError> {
    let mut payload_types = Vec::new();
    let mut extensions = Vec::new();
    for child in parent.children() {
        if child.is("payload-type", ns::RTP) {
            payload_types.push(parse_payload_type(child)?);
        } else if child.is("rtp-hdrext", ns::HDREXT) {
            extensions.push(parse_header_extension(child)?);
        }
    }
    Ok((payload_types, extensions))
}

/// Colibri2's `<media xmlns='jitsi:colibri2' type>` of an endpoint or relay.
pub fn colibri2_media_element(media: &MediaDescription) -> Element {
    let mut el = Element::new("media", ns::COLIBRI2).attr("type", media.kind.as_str());
    for pt in &media.payload_types {
        el.push_child(payload_type_element(pt));
    }
    for ext in &media.header_extensions {
        el.push_child(header_extension_element(ext));
    }
    el
}

pub fn parse_colibri2_media(el: &Element) -> Result<MediaDescription, XmlError> {
    let kind = el
        .get_attr("type")
        .and_then(MediaKind::parse)
        .ok_or_else(|| bad("media", "'type' is not audio or video"))?;
    let (payload_types, header_extensions) = parse_codecs(el)?;
    Ok(MediaDescription {
        kind,
        payload_types,
        header_extensions,
    })
}

/// A Jingle `<description xmlns='urn:xmpp:jingle:apps:rtp:1' media>`'s
/// codecs (its sources are read by [`parse_jingle_sources`]).
pub fn parse_jingle_description(el: &Element) -> Result<MediaDescription, XmlError> {
    let kind = el
        .get_attr("media")
        .and_then(MediaKind::parse)
        .ok_or_else(|| bad("description", "'media' is not audio or video"))?;
    let (payload_types, header_extensions) = parse_codecs(el)?;
    Ok(MediaDescription {
        kind,
        payload_types,
        header_extensions,
    })
}

// ---------------------------------------------------------------------------
// ICE-UDP transport

/// `<candidate>` in the ICE-UDP namespace, with Jitsi's attributes.
pub fn candidate_element(c: &Candidate) -> Element {
    Element::new("candidate", ns::ICE_UDP)
        .attr("component", c.component.to_string())
        .attr("foundation", c.foundation.clone())
        .attr("generation", c.generation.to_string())
        .attr_opt("id", c.id.clone())
        .attr("network", "0")
        .attr("priority", c.priority.to_string())
        .attr("protocol", c.protocol.clone())
        .attr("ip", c.address.ip().to_string())
        .attr("port", c.address.port().to_string())
        .attr("type", c.kind.clone())
}

/// A candidate with a literal IP address; `None` for what lilt cannot use
/// (an mDNS `.local` name, a missing port).
pub fn parse_candidate(el: &Element) -> Option<Candidate> {
    let ip: IpAddr = el.get_attr("ip")?.trim().parse().ok()?;
    let port: u16 = optional_number(el, "port")?;
    Some(Candidate {
        foundation: el.get_attr("foundation").unwrap_or("1").to_string(),
        component: optional_number(el, "component").unwrap_or(1),
        protocol: el
            .get_attr("protocol")
            .unwrap_or("udp")
            .to_ascii_lowercase(),
        priority: optional_number(el, "priority").unwrap_or(0),
        address: SocketAddr::new(ip, port),
        kind: el.get_attr("type").unwrap_or("host").to_string(),
        generation: optional_number(el, "generation").unwrap_or(0),
        id: el.get_attr("id").map(str::to_string),
    })
}

/// `<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag pwd>` with
/// `<rtcp-mux/>`, the DTLS fingerprints, the candidates and the bridge
/// channel's `<web-socket>`, in the order Jicofo writes them.
pub fn transport_element(t: &IceTransport) -> Element {
    let mut el = Element::new("transport", ns::ICE_UDP)
        .attr("ufrag", t.ufrag.clone())
        .attr("pwd", t.pwd.clone());
    if t.rtcp_mux {
        el.push_child(Element::new("rtcp-mux", ns::ICE_UDP));
    }
    for fp in &t.fingerprints {
        el.push_child(
            Element::new("fingerprint", ns::DTLS)
                .attr("hash", fp.hash.clone())
                .attr_opt("setup", fp.setup.clone())
                .text(fp.value.clone()),
        );
    }
    for c in &t.candidates {
        el.push_child(candidate_element(c));
    }
    if let Some(url) = &t.web_socket {
        el.push_child(Element::new("web-socket", ns::COLIBRI).attr("url", url.clone()));
    }
    el
}

pub fn parse_transport(el: &Element) -> Result<IceTransport, XmlError> {
    if !el.is("transport", ns::ICE_UDP) {
        return Err(bad(
            "transport",
            format!("namespace {:?} is not ICE-UDP", el.ns()),
        ));
    }
    let mut t = IceTransport {
        ufrag: el.get_attr("ufrag").unwrap_or_default().to_string(),
        pwd: el.get_attr("pwd").unwrap_or_default().to_string(),
        ..IceTransport::default()
    };
    for child in el.children() {
        match child.name() {
            "rtcp-mux" => t.rtcp_mux = true,
            "fingerprint" if child.ns() == ns::DTLS => t.fingerprints.push(Fingerprint {
                hash: child
                    .get_attr("hash")
                    .unwrap_or("sha-256")
                    .to_ascii_lowercase(),
                value: child.text_content().trim().to_string(),
                setup: child.get_attr("setup").map(str::to_string),
            }),
            "candidate" => t.candidates.extend(parse_candidate(child)),
            "web-socket" => t.web_socket = child.get_attr("url").map(str::to_string),
            _ => {}
        }
    }
    Ok(t)
}

// ---------------------------------------------------------------------------
// Sources

fn ssrc_group_element(group: &SsrcGroup) -> Element {
    let mut el = Element::new("ssrc-group", ns::SSMA).attr("semantics", group.semantics.clone());
    for ssrc in &group.ssrcs {
        el.push_child(Element::new("source", ns::SSMA).attr("ssrc", ssrc.to_string()));
    }
    el
}

fn parse_ssrc_group(el: &Element) -> Result<SsrcGroup, XmlError> {
    const E: &str = "ssrc-group";
    let semantics = el
        .get_attr("semantics")
        .ok_or_else(|| bad(E, "no 'semantics'"))?
        .to_string();
    let ssrcs = el
        .children()
        .filter(|c| c.name() == "source")
        .map(|c| number(c, E, "ssrc"))
        .collect::<Result<Vec<u32>, _>>()?;
    Ok(SsrcGroup { semantics, ssrcs })
}

/// Jingle's `<source>`/`<ssrc-group>` children of a `<description>` for
/// `sources` (one `<source>` per SSRC, each with the source's name, msid
/// and, when `owner` is given, `<ssrc-info owner>`, in Jicofo's order).
pub fn jingle_source_elements(sources: &[Source], owner: Option<&str>) -> Vec<Element> {
    let mut out = Vec::new();
    for source in sources {
        for ssrc in &source.ssrcs {
            let mut el = Element::new("source", ns::SSMA)
                .attr("ssrc", ssrc.to_string())
                .attr_opt(
                    "name",
                    (!source.name.is_empty()).then(|| source.name.clone()),
                )
                .attr_opt("videoType", source.video_type.clone());
            // Jicofo's order: `<ssrc-info>`, then the msid `<parameter>`.
            if let Some(owner) = owner {
                el.push_child(Element::new("ssrc-info", ns::JITMEET).attr("owner", owner));
            }
            if let Some(msid) = &source.msid {
                el.push_child(
                    Element::new("parameter", ns::SSMA)
                        .attr("name", "msid")
                        .attr("value", msid.clone()),
                );
            }
            out.push(el);
        }
    }
    for source in sources {
        out.extend(source.groups.iter().map(ssrc_group_element));
    }
    out
}

/// One SSRC as a description lists it, before grouping into sources.
pub(crate) struct SsrcEntry {
    pub(crate) ssrc: u32,
    pub(crate) name: Option<String>,
    pub(crate) msid: Option<String>,
    pub(crate) video_type: Option<String>,
}

/// The sources among a Jingle `<description>`'s children: SSRCs joined
/// into one source when a group links them, or they share a name or an
/// msid (the 2021 clients send no names).
pub fn parse_jingle_sources(
    description: &Element,
    kind: MediaKind,
) -> Result<Vec<Source>, XmlError> {
    let mut entries = Vec::new();
    let mut groups = Vec::new();
    for child in description.children() {
        if child.is("source", ns::SSMA) {
            let msid = child
                .children()
                .find(|p| p.name() == "parameter" && p.get_attr("name") == Some("msid"))
                .and_then(|p| p.get_attr("value"))
                .map(str::to_string);
            entries.push(SsrcEntry {
                ssrc: number(child, "source", "ssrc")?,
                name: child.get_attr("name").map(str::to_string),
                msid,
                video_type: child.get_attr("videoType").map(str::to_string),
            });
        } else if child.is("ssrc-group", ns::SSMA) {
            groups.push(parse_ssrc_group(child)?);
        }
    }
    group_into_sources(kind, entries, groups)
}

/// Joins SSRC entries into sources (union of groups, names and msids),
/// in the order their first SSRC appeared. A group naming an SSRC that is
/// not among the entries, an empty group, or SSRC 0 is an error (Jicofo
/// refuses them too).
pub(crate) fn group_into_sources(
    kind: MediaKind,
    entries: Vec<SsrcEntry>,
    groups: Vec<SsrcGroup>,
) -> Result<Vec<Source>, XmlError> {
    if entries.iter().any(|e| e.ssrc == 0) {
        return Err(bad("source", "SSRC 0"));
    }
    for group in &groups {
        if group.ssrcs.is_empty() {
            return Err(bad(
                "ssrc-group",
                format!("{} group without SSRCs", group.semantics),
            ));
        }
        if let Some(missing) = group
            .ssrcs
            .iter()
            .find(|s| !entries.iter().any(|e| e.ssrc == **s))
        {
            return Err(bad(
                "ssrc-group",
                format!(
                    "{} group contains an SSRC that hasn't been signaled: {missing}",
                    group.semantics
                ),
            ));
        }
    }
    let n = entries.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    };
    let index_of = |ssrc: u32| entries.iter().position(|e| e.ssrc == ssrc);
    for group in &groups {
        let members: Vec<usize> = group.ssrcs.iter().filter_map(|s| index_of(*s)).collect();
        for pair in members.windows(2) {
            union(&mut parent, pair[0], pair[1]);
        }
    }
    for i in 0..n {
        for j in (i + 1)..n {
            let same_name = entries[i].name.is_some() && entries[i].name == entries[j].name;
            let same_msid = entries[i].msid.is_some() && entries[i].msid == entries[j].msid;
            if same_name || same_msid {
                union(&mut parent, i, j);
            }
        }
    }
    let mut by_root: BTreeMap<usize, Source> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let root = find(&mut parent, i);
        let source = by_root.entry(root).or_insert_with(|| Source {
            kind,
            name: String::new(),
            ssrcs: Vec::new(),
            groups: Vec::new(),
            video_type: None,
            msid: None,
        });
        if !source.ssrcs.contains(&entry.ssrc) {
            source.ssrcs.push(entry.ssrc);
        }
        if source.name.is_empty() {
            source.name = entry.name.clone().unwrap_or_default();
        }
        source.msid = source.msid.take().or_else(|| entry.msid.clone());
        source.video_type = source
            .video_type
            .take()
            .or_else(|| entry.video_type.clone());
    }
    for group in groups {
        let Some(first) = group.ssrcs.first().and_then(|s| index_of(*s)) else {
            continue;
        };
        let root = find(&mut parent, first);
        if let Some(source) = by_root.get_mut(&root) {
            source.groups.push(group);
        }
    }
    Ok(by_root.into_values().collect())
}

/// Colibri2's `<media-source type id>` for one source.
pub fn colibri2_media_source_element(source: &Source) -> Element {
    let mut el = Element::new("media-source", ns::COLIBRI2)
        .attr("type", source.kind.as_str())
        .attr("id", source.name.clone());
    for child in jingle_source_elements(std::slice::from_ref(source), None) {
        el.push_child(child);
    }
    el
}

/// The sources of a Colibri2 `<sources>` element (one per `<media-source>`).
pub fn parse_colibri2_sources(sources: &Element) -> Result<Vec<Source>, XmlError> {
    let mut out = Vec::new();
    for media_source in sources.children().filter(|c| c.name() == "media-source") {
        let kind = media_source
            .get_attr("type")
            .and_then(MediaKind::parse)
            .ok_or_else(|| bad("media-source", "'type' is not audio or video"))?;
        let name = media_source.get_attr("id").unwrap_or_default().to_string();
        let mut parsed = parse_jingle_sources(media_source, kind)?;
        // A media-source is one source even when its SSRCs are not linked.
        let mut source = Source {
            kind,
            name: name.clone(),
            ssrcs: Vec::new(),
            groups: Vec::new(),
            video_type: None,
            msid: None,
        };
        for part in parsed.drain(..) {
            source.ssrcs.extend(part.ssrcs);
            source.groups.extend(part.groups);
            source.video_type = source.video_type.or(part.video_type);
            source.msid = source.msid.or(part.msid);
            if source.name.is_empty() {
                source.name = part.name;
            }
        }
        out.push(source);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
