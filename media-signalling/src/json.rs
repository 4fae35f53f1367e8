//! The compact JSON form of sources that Jicofo sends and lib-jitsi-meet
//! reads in `<json-message xmlns='http://jitsi.org/jitmeet'>`:
//! `{"sources":{"<owner>":[videoSources, videoGroups, audioSources,
//! audioGroups]}}`, a source per SSRC as `{"s":ssrc,"n":name,"m":msid,
//! "v":"d" for a screen share}`, a group as `["f"|"s", ssrc...]`.

use xmpp_core::Element;

use crate::types::{MediaKind, Source, SsrcGroup};
use crate::xml::{SsrcEntry, XmlError, bad, group_into_sources, ns};

fn compact_source(source: &Source, ssrc: u32) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("s".into(), ssrc.into());
    obj.insert("n".into(), source.name.clone().into());
    if let Some(msid) = &source.msid {
        obj.insert("m".into(), msid.clone().into());
    }
    if source.video_type.as_deref() == Some("desktop") {
        obj.insert("v".into(), "d".into());
    }
    serde_json::Value::Object(obj)
}

fn compact_group(group: &SsrcGroup) -> serde_json::Value {
    let tag = match group.semantics.as_str() {
        "FID" => "f".to_string(),
        "SIM" => "s".to_string(),
        other => other.to_string(),
    };
    let mut items = vec![serde_json::Value::from(tag)];
    items.extend(group.ssrcs.iter().map(|s| serde_json::Value::from(*s)));
    serde_json::Value::Array(items)
}

/// The compact form of each owner's sources: `{"<owner>": [videoSources,
/// videoGroups, audioSources, audioGroups]}`, the value of `"sources"` in
/// a json-message; an empty audio-groups list is left out, as Jicofo's
/// `EndpointSourceSet.compactJson` writes it.
pub fn compact_sources(owners: &[(&str, &[Source])]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (owner, sources) in owners {
        let mut lists = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for source in sources.iter() {
            let base = if source.kind == MediaKind::Video {
                0
            } else {
                2
            };
            lists[base].extend(source.ssrcs.iter().map(|s| compact_source(source, *s)));
            lists[base + 1].extend(source.groups.iter().map(compact_group));
        }
        if lists[3].is_empty() {
            lists.pop();
        }
        map.insert(
            owner.to_string(),
            serde_json::Value::Array(lists.into_iter().map(serde_json::Value::Array).collect()),
        );
    }
    serde_json::Value::Object(map)
}

/// `<json-message xmlns='http://jitsi.org/jitmeet'>{"sources":{...}}</json-message>`.
pub fn json_sources_element(owners: &[(&str, &[Source])]) -> Element {
    let body = serde_json::json!({ "sources": compact_sources(owners) });
    Element::new("json-message", ns::JITMEET).text(body.to_string())
}

fn json_ssrc(value: &serde_json::Value) -> Option<u32> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a json-message's `"sources"`: each owner with its sources.
pub fn parse_json_sources(text: &str) -> Result<Vec<(String, Vec<Source>)>, XmlError> {
    const E: &str = "json-message";
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(E, format!("not JSON: {e}")))?;
    let owners = json
        .get("sources")
        .and_then(|s| s.as_object())
        .ok_or_else(|| bad(E, "no \"sources\" object"))?;
    let mut out = Vec::new();
    for (owner, lists) in owners {
        let lists = lists.as_array().map(Vec::as_slice).unwrap_or_default();
        let list = |i: usize| {
            lists
                .get(i)
                .and_then(|l| l.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let mut sources = Vec::new();
        for (kind, base) in [(MediaKind::Video, 0), (MediaKind::Audio, 2)] {
            let mut entries = Vec::new();
            for item in list(base) {
                let ssrc = item
                    .get("s")
                    .and_then(json_ssrc)
                    .ok_or_else(|| bad(E, format!("a source of {owner} has no ssrc")))?;
                entries.push(SsrcEntry {
                    ssrc,
                    name: item.get("n").and_then(|n| n.as_str()).map(str::to_string),
                    msid: item.get("m").and_then(|m| m.as_str()).map(str::to_string),
                    video_type: item
                        .get("v")
                        .and_then(|v| v.as_str())
                        .map(|v| if v == "d" { "desktop" } else { "camera" }.to_string()),
                });
            }
            let mut groups = Vec::new();
            for item in list(base + 1) {
                let parts = item.as_array().map(Vec::as_slice).unwrap_or_default();
                let semantics = match parts.first().and_then(|p| p.as_str()) {
                    Some("f") => "FID".to_string(),
                    Some("s") => "SIM".to_string(),
                    Some(other) => other.to_string(),
                    None => return Err(bad(E, format!("a group of {owner} has no semantics"))),
                };
                let ssrcs = parts
                    .get(1..)
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        json_ssrc(p)
                            .ok_or_else(|| bad(E, format!("a group of {owner} has a bad ssrc")))
                    })
                    .collect::<Result<Vec<u32>, _>>()?;
                groups.push(SsrcGroup { semantics, ssrcs });
            }
            sources.extend(group_into_sources(kind, entries, groups)?);
        }
        out.push((owner.clone(), sources));
    }
    Ok(out)
}
