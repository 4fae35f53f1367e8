//! Whose media is on an SSRC: the sources the focus announces in its
//! Jingle `session-initiate`, `source-add` and `source-remove` (as Jicofo
//! writes them: `<source ssrc name>` with `<ssrc-info owner='room/endpoint'>`
//! and `<ssrc-group>`s), kept as SSRC → endpoint, audio or video, and
//! whether it is a retransmission (RTX) SSRC. The bridge's own sources
//! (owner `jvb`) are not participants.

use std::collections::HashMap;

use media_signalling::json::parse_json_sources;
use media_signalling::xml::{XmlError, ns as mns, parse_jingle_sources};
use media_signalling::{MediaKind, Source};
use xmpp_core::Element;

use crate::recording::Media;

/// The participant behind one SSRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcOwner {
    pub endpoint: String,
    pub media: Media,
    /// An RTX SSRC (FID group's second): not recorded as media.
    pub rtx: bool,
}

/// The SSRCs of a conference as the recorder was told of them.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    by_ssrc: HashMap<u32, SsrcOwner>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn lookup(&self, ssrc: u32) -> Option<&SsrcOwner> {
        self.by_ssrc.get(&ssrc)
    }

    /// The primary video SSRCs of an endpoint (where a PLI goes).
    pub fn video_ssrcs(&self, endpoint: &str) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .by_ssrc
            .iter()
            .filter(|(_, o)| o.endpoint == endpoint && o.media == Media::Video && !o.rtx)
            .map(|(s, _)| *s)
            .collect();
        v.sort_unstable();
        v
    }

    /// The endpoints that have at least one source.
    pub fn endpoints(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_ssrc.values().map(|o| o.endpoint.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Applies a `<jingle>` element: `session-initiate` and `source-add`
    /// add its sources, `source-remove` removes them; other actions are
    /// ignored.
    pub fn apply(&mut self, jingle: &Element) -> Result<(), XmlError> {
        let remove = match jingle.get_attr("action") {
            Some("session-initiate") | Some("source-add") | Some("transport-replace") => false,
            Some("source-remove") => true,
            _ => return Ok(()),
        };
        for content in jingle.children().filter(|c| c.name() == "content") {
            let Some(desc) = content.get_child("description", mns::RTP) else {
                continue;
            };
            let kind = desc
                .get_attr("media")
                .and_then(MediaKind::parse)
                .or_else(|| content.get_attr("name").and_then(MediaKind::parse));
            let media = match kind {
                Some(MediaKind::Audio) => Media::Audio,
                Some(MediaKind::Video) => Media::Video,
                _ => continue,
            };
            let owners = ssrc_owners(desc);
            let Some(kind) = kind else { continue };
            for source in parse_jingle_sources(desc, kind)? {
                if remove {
                    for s in &source.ssrcs {
                        self.by_ssrc.remove(s);
                    }
                    continue;
                }
                let Some(endpoint) = owner_of(&source, &owners) else {
                    continue;
                };
                self.insert(&endpoint, media, &source);
            }
        }
        // Sources as a json-message (Jicofo's compact JSON, keyed by
        // endpoint), when the focus sends them that way.
        if let Some(json) = jingle.get_child("json-message", mns::JITMEET) {
            for (endpoint, sources) in parse_json_sources(&json.text_content())? {
                for source in &sources {
                    if remove {
                        for s in &source.ssrcs {
                            self.by_ssrc.remove(s);
                        }
                    } else if endpoint != "jvb" && !endpoint.is_empty() {
                        let media = match source.kind {
                            MediaKind::Audio => Media::Audio,
                            MediaKind::Video => Media::Video,
                        };
                        self.insert(&endpoint, media, source);
                    }
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, endpoint: &str, media: Media, source: &Source) {
        let primary = source.primary_ssrcs();
        for s in &source.ssrcs {
            self.by_ssrc.insert(
                *s,
                SsrcOwner {
                    endpoint: endpoint.to_string(),
                    media,
                    rtx: !primary.contains(s),
                },
            );
        }
    }
}

/// SSRC → the resource of its `<ssrc-info owner>`.
fn ssrc_owners(desc: &Element) -> HashMap<u32, String> {
    desc.children()
        .filter(|c| c.is("source", mns::SSMA))
        .filter_map(|c| {
            let ssrc = c.get_attr("ssrc")?.parse().ok()?;
            let owner = c.get_child("ssrc-info", mns::JITMEET)?.get_attr("owner")?;
            let endpoint = owner.rsplit_once('/').map(|(_, r)| r).unwrap_or(owner);
            Some((ssrc, endpoint.to_string()))
        })
        .collect()
}

/// The endpoint of a source: its `ssrc-info` owner, else its name's
/// prefix (`<endpoint>-v0`); `None` for the bridge's own sources.
fn owner_of(source: &Source, owners: &HashMap<u32, String>) -> Option<String> {
    let from_info = source.ssrcs.iter().find_map(|s| owners.get(s).cloned());
    let endpoint =
        from_info.or_else(|| source.name.rsplit_once('-').map(|(e, _)| e.to_string()))?;
    (endpoint != "jvb" && !endpoint.is_empty()).then_some(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::stream::parse_element;

    const ROOM: &str = "room1@conference.example.com";

    fn source(ssrc: u32, name: &str, owner: &str) -> String {
        format!(
            "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{ssrc}' name='{name}'>\
             <ssrc-info xmlns='http://jitsi.org/jitmeet' owner='{owner}'/>\
             <parameter name='msid' value='s t-{name}'/></source>"
        )
    }

    fn jingle(action: &str, audio: &str, video: &str) -> Element {
        parse_element(&format!(
            "<jingle xmlns='urn:xmpp:jingle:1' action='{action}' sid='s1'>\
             <content creator='initiator' name='audio'>\
             <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>{audio}</description></content>\
             <content creator='initiator' name='video'>\
             <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>{video}</description></content>\
             </jingle>"
        ))
        .unwrap()
    }

    #[test]
    fn session_initiate_add_and_remove() {
        let a = format!("{ROOM}/aaaa1111");
        let init = jingle(
            "session-initiate",
            &format!(
                "{}{}",
                source(1001, "aaaa1111-a0", &a),
                source(411, "jvb-a0", "jvb")
            ),
            &format!(
                "{}{}<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'>\
                 <source ssrc='2001'/><source ssrc='2002'/></ssrc-group>{}",
                source(2001, "aaaa1111-v0", &a),
                source(2002, "aaaa1111-v0", &a),
                source(422, "jvb-v0", "jvb")
            ),
        );
        let mut m = SourceMap::new();
        m.apply(&init).unwrap();
        assert_eq!(
            m.lookup(1001),
            Some(&SsrcOwner {
                endpoint: "aaaa1111".into(),
                media: Media::Audio,
                rtx: false
            })
        );
        assert_eq!(
            m.lookup(2001).map(|o| (o.media, o.rtx)),
            Some((Media::Video, false))
        );
        assert_eq!(m.lookup(2002).map(|o| o.rtx), Some(true));
        assert_eq!(m.lookup(411), None, "the bridge's own source");
        assert_eq!(m.video_ssrcs("aaaa1111"), [2001]);
        assert_eq!(m.endpoints(), ["aaaa1111"]);

        // A late joiner's sources, named only (no ssrc-info).
        let add = parse_element(
            "<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s1'>\
             <content name='video'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
             <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='3001' name='bbbb2222-v0'/>\
             </description></content></jingle>",
        )
        .unwrap();
        m.apply(&add).unwrap();
        assert_eq!(
            m.lookup(3001).map(|o| o.endpoint.as_str()),
            Some("bbbb2222")
        );

        let remove = jingle("source-remove", &source(1001, "aaaa1111-a0", &a), "");
        m.apply(&remove).unwrap();
        assert_eq!(m.lookup(1001), None);
        assert!(m.lookup(2001).is_some());

        // A bad SSRC is an error, not a panic.
        let bad = jingle(
            "source-add",
            "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='x'/>",
            "",
        );
        assert!(m.apply(&bad).is_err());

        // A late joiner's sources as a json-message, then removed that way.
        let json = |action: &str| {
            parse_element(&format!(
                "<jingle xmlns='urn:xmpp:jingle:1' action='{action}' sid='s1'>\
                 <json-message xmlns='http://jitsi.org/jitmeet'>\
                 {{\"sources\":{{\"cccc3333\":[[{{\"s\":4001,\"n\":\"cccc3333-v0\"}},{{\"s\":4002,\"n\":\"cccc3333-v0\"}}],\
                 [[\"f\",4001,4002]],[{{\"s\":4003,\"n\":\"cccc3333-a0\"}}]]}}}}\
                 </json-message></jingle>"
            ))
            .unwrap()
        };
        m.apply(&json("source-add")).unwrap();
        assert_eq!(
            m.lookup(4003).map(|o| (o.endpoint.as_str(), o.media)),
            Some(("cccc3333", Media::Audio))
        );
        assert_eq!(m.lookup(4002).map(|o| o.rtx), Some(true));
        assert_eq!(m.video_ssrcs("cccc3333"), [4001]);
        m.apply(&json("source-remove")).unwrap();
        assert_eq!(m.lookup(4001), None);
        assert_eq!(m.lookup(4003), None);
    }
}
