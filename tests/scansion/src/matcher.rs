//! scansion's matching rules, applied to an expected stanza (from a script)
//! and a received one.
//!
//! - Non-strict (the default): every attribute of the expected element must
//!   be present with the same value, extra attributes are allowed; every
//!   expected child element must match some received child, extra children
//!   are allowed and order is ignored.
//! - Strict: additionally no extra attributes, and the child elements must
//!   match one to one, in order.
//! - An element that declares its own namespace (`xmlns='...'`) is strict,
//!   unless it says `scansion:strict='false'`; `scansion:strict='true'`
//!   makes any element strict. Children inherit their parent's mode.
//! - `{scansion:any}` as an attribute value accepts any value (the attribute
//!   must be present). `{scansion:capture:NAME}` accepts any value the first
//!   time and records it; later uses of NAME must see the same value.
//! - Character data is compared (whitespace-trimmed) when the expected
//!   element has some; an expected element without text accepts any text.
//!
//! `${Name's full JID}` and `${Name's JID}` are replaced before matching, by
//! [`substitute`].

use std::collections::HashMap;

use crate::xml::{Element, Node};

/// Variables captured with `{scansion:capture:NAME}` during one script run.
pub type Captures = HashMap<String, String>;

const ANY: &str = "{scansion:any}";
const CAPTURE_PREFIX: &str = "{scansion:capture:";

/// Where and why a received stanza differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Element path from the stanza root, e.g. `iq/query/item`.
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}: {}", self.path, self.reason)
    }
}

/// A `${...}` that names no known client property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variable ${{{0}}}")]
pub struct UnknownVariable(pub String);

/// Replaces every `${key}` in attribute values and text with `vars[key]`.
/// Keys are scansion's `Name's full JID` and `Name's JID`.
pub fn substitute(
    el: &Element,
    vars: &HashMap<String, String>,
) -> Result<Element, UnknownVariable> {
    let mut out = el.clone();
    for (_, value) in out.attrs.iter_mut() {
        *value = substitute_str(value, vars)?;
    }
    for child in out.children.iter_mut() {
        match child {
            Node::Element(e) => *e = substitute(e, vars)?,
            Node::Text(t) => *t = substitute_str(t, vars)?,
        }
    }
    Ok(out)
}

fn substitute_str(s: &str, vars: &HashMap<String, String>) -> Result<String, UnknownVariable> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let key = &after[..end];
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None => return Err(UnknownVariable(key.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Matches a received top-level stanza against the expected one. On success
/// new captures are added to `captures`; on failure `captures` is unchanged.
pub fn match_stanza(
    expected: &Element,
    received: &Element,
    captures: &mut Captures,
) -> Result<(), Mismatch> {
    let mut trial = captures.clone();
    match_element(expected, received, false, &mut trial, &expected.name)?;
    *captures = trial;
    Ok(())
}

fn is_strict(expected: &Element, inherited: bool) -> bool {
    match expected.attr("scansion:strict") {
        Some(v) => matches!(v.trim(), "true" | "1" | "yes"),
        None => inherited || expected.declares_ns,
    }
}

/// Attributes of an expected element that take part in matching.
fn significant(key: &str) -> bool {
    !(key == "xmlns" || key.starts_with("xmlns:") || key.starts_with("scansion:"))
}

fn fail(path: &str, reason: String) -> Result<(), Mismatch> {
    Err(Mismatch {
        path: path.to_string(),
        reason,
    })
}

fn match_element(
    expected: &Element,
    received: &Element,
    inherited_strict: bool,
    captures: &mut Captures,
    path: &str,
) -> Result<(), Mismatch> {
    if expected.name != received.name {
        return fail(
            path,
            format!("expected <{}>, received <{}>", expected.name, received.name),
        );
    }
    if expected.declares_ns && expected.ns != received.ns {
        return fail(
            path,
            format!(
                "namespace: expected '{}', received '{}'",
                expected.ns, received.ns
            ),
        );
    }
    let strict = is_strict(expected, inherited_strict);
    match_attributes(expected, received, strict, captures, path)?;

    let want_text = expected.text();
    let want_text = want_text.trim();
    if !want_text.is_empty() {
        let got_text = received.text();
        if got_text.trim() != want_text {
            return fail(
                path,
                format!(
                    "text: expected {want_text:?}, received {:?}",
                    got_text.trim()
                ),
            );
        }
    }

    let want: Vec<&Element> = expected.elements().collect();
    let got: Vec<&Element> = received.elements().collect();
    if strict {
        for (i, w) in want.iter().enumerate() {
            let child_path = format!("{path}/{}", w.name);
            let Some(g) = got.get(i) else {
                return fail(
                    path,
                    format!(
                        "child {} <{}> missing: received only {} child element(s) (strict)",
                        i + 1,
                        w.name,
                        got.len()
                    ),
                );
            };
            match_element(w, g, true, captures, &child_path)?;
        }
        if got.len() > want.len() {
            return fail(
                path,
                format!(
                    "unexpected child <{}> (strict: expected {} child element(s), received {})",
                    got[want.len()].name,
                    want.len(),
                    got.len()
                ),
            );
        }
        return Ok(());
    }
    for w in want {
        let child_path = format!("{path}/{}", w.name);
        let mut closest: Option<Mismatch> = None;
        let mut same_named = 0;
        let mut matched = false;
        for g in &got {
            let mut trial = captures.clone();
            match match_element(w, g, false, &mut trial, &child_path) {
                Ok(()) => {
                    *captures = trial;
                    matched = true;
                    break;
                }
                Err(m) => {
                    if g.name == w.name {
                        same_named += 1;
                        // The first same-named candidate explains the failure best.
                        closest.get_or_insert(m);
                    }
                }
            }
        }
        if matched {
            continue;
        }
        return Err(match closest {
            Some(m) if same_named == 1 => m,
            Some(m) => Mismatch {
                path: path.to_string(),
                reason: format!(
                    "none of the {same_named} received <{}> children matches {} (the first: {})",
                    w.name,
                    w.to_xml(&expected.ns),
                    m.reason
                ),
            },
            None => Mismatch {
                path: path.to_string(),
                reason: format!("no child <{}> received", w.name),
            },
        });
    }
    Ok(())
}

fn match_attributes(
    expected: &Element,
    received: &Element,
    strict: bool,
    captures: &mut Captures,
    path: &str,
) -> Result<(), Mismatch> {
    for (key, want) in expected.attrs.iter().filter(|(k, _)| significant(k)) {
        let Some(got) = received.attr(key) else {
            return fail(
                path,
                format!("attribute '{key}' missing (expected {want:?})"),
            );
        };
        if want == ANY {
            continue;
        }
        if let Some(name) = want
            .strip_prefix(CAPTURE_PREFIX)
            .and_then(|rest| rest.strip_suffix('}'))
        {
            match captures.get(name) {
                Some(prev) if prev != got => {
                    return fail(
                        path,
                        format!(
                            "attribute '{key}': expected captured {name} = {prev:?}, received {got:?}"
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    captures.insert(name.to_string(), got.to_string());
                }
            }
            continue;
        }
        if want != got {
            return fail(
                path,
                format!("attribute '{key}': expected {want:?}, received {got:?}"),
            );
        }
    }
    if strict {
        for (key, got) in &received.attrs {
            if expected.attr(key).is_none() {
                return fail(
                    path,
                    format!("unexpected attribute '{key}'={got:?} (strict)"),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{NS_CLIENT, parse_fragment};

    fn el(src: &str) -> Element {
        parse_fragment(src, NS_CLIENT).unwrap().remove(0)
    }

    fn matches(expected: &str, received: &str) -> Result<(), Mismatch> {
        match_stanza(&el(expected), &el(received), &mut Captures::new())
    }

    #[test]
    fn non_strict_allows_extra_attributes_and_children_in_any_order() {
        matches(
            "<presence from='a'><x/><y/></presence>",
            "<presence from='a' to='b'><y/><z/><x/></presence>",
        )
        .unwrap();
        let m = matches("<presence type='unavailable'/>", "<presence/>").unwrap_err();
        assert_eq!(m.path, "presence");
        assert!(m.reason.contains("'type' missing"), "{m}");
        let m = matches("<iq type='result'/>", "<iq type='error'/>").unwrap_err();
        assert_eq!(
            m.reason,
            "attribute 'type': expected \"result\", received \"error\""
        );
        let m = matches("<message><body/></message>", "<message/>").unwrap_err();
        assert_eq!(m.reason, "no child <body> received");
    }

    #[test]
    fn own_namespace_makes_an_element_and_its_children_strict() {
        let expected = "<iq><query xmlns='jabber:iq:roster'><item jid='n@h'/></query></iq>";
        matches(
            expected,
            "<iq><query xmlns='jabber:iq:roster'><item jid='n@h'/></query></iq>",
        )
        .unwrap();
        let m = matches(
            expected,
            "<iq><query xmlns='jabber:iq:roster' ver='1'><item jid='n@h'/></query></iq>",
        )
        .unwrap_err();
        assert_eq!(m.path, "iq/query");
        assert!(m.reason.contains("unexpected attribute 'ver'"), "{m}");
        // Children inherit strictness.
        let m = matches(
            expected,
            "<iq><query xmlns='jabber:iq:roster'><item jid='n@h' name='N'/></query></iq>",
        )
        .unwrap_err();
        assert_eq!(m.path, "iq/query/item");
        // Extra and reordered children are rejected.
        let m = matches("<q xmlns='u'><a/><b/></q>", "<q xmlns='u'><a/><b/><c/></q>").unwrap_err();
        assert!(m.reason.contains("unexpected child <c>"), "{m}");
        assert!(matches("<q xmlns='u'><a/><b/></q>", "<q xmlns='u'><b/><a/></q>").is_err());
        // The namespace itself must agree.
        let m = matches("<q xmlns='u'/>", "<q xmlns='v'/>").unwrap_err();
        assert!(m.reason.contains("namespace"), "{m}");
    }

    #[test]
    fn scansion_strict_attribute_overrides_the_default() {
        matches(
            "<iq><query xmlns='urn:x' scansion:strict='false'><a/></query></iq>",
            "<iq><query xmlns='urn:x' extra='1'><b/><a/></query></iq>",
        )
        .unwrap();
        assert!(
            matches(
                "<message scansion:strict='true'/>",
                "<message><body>x</body></message>"
            )
            .is_err()
        );
        matches("<message scansion:strict='true'/>", "<message/>").unwrap();
        // A non-strict child inside a strict parent.
        matches(
            "<query xmlns='jabber:iq:version' scansion:strict='true'><name>Prosody</name><version scansion:strict='false'/></query>",
            "<query xmlns='jabber:iq:version'><name>Prosody</name><version>0.12.3</version></query>",
        )
        .unwrap();
    }

    #[test]
    fn text_is_compared_only_when_expected() {
        matches("<body>Hello</body>", "<body>\n  Hello  </body>").unwrap();
        let m = matches("<body>Hello</body>", "<body>Bye</body>").unwrap_err();
        assert_eq!(m.reason, "text: expected \"Hello\", received \"Bye\"");
        matches(
            "<put xmlns='u'><header name='Authorization'></header></put>",
            "<put xmlns='u'><header name='Authorization'>Bearer x</header></put>",
        )
        .unwrap();
    }

    #[test]
    fn any_accepts_every_value_but_requires_presence() {
        matches("<iq id='{scansion:any}'/>", "<iq id='x1'/>").unwrap();
        let m = matches("<iq id='{scansion:any}'/>", "<iq/>").unwrap_err();
        assert!(m.reason.contains("'id' missing"), "{m}");
    }

    #[test]
    fn captures_bind_on_first_use_and_must_agree_later() {
        let mut caps = Captures::new();
        let first = el("<start id='{scansion:capture:first}'/>");
        match_stanza(&first, &el("<start id='abc'/>"), &mut caps).unwrap();
        assert_eq!(caps.get("first").map(String::as_str), Some("abc"));
        match_stanza(&first, &el("<start id='abc'/>"), &mut caps).unwrap();
        let m = match_stanza(&first, &el("<start id='xyz'/>"), &mut caps).unwrap_err();
        assert!(m.reason.contains("captured first = \"abc\""), "{m}");
        // A failed match does not leave captures behind.
        let mut caps = Captures::new();
        let two = el("<r><a id='{scansion:capture:v}'/><b/></r>");
        assert!(match_stanza(&two, &el("<r><a id='1'/></r>"), &mut caps).is_err());
        assert!(caps.is_empty());
    }

    #[test]
    fn non_strict_search_tries_every_candidate_with_its_own_captures() {
        let mut caps = Captures::new();
        caps.insert("v".into(), "2".into());
        let expected = el("<r><item id='{scansion:capture:v}' n='b'/></r>");
        let received = el("<r><item id='1' n='a'/><item id='2' n='b'/></r>");
        match_stanza(&expected, &received, &mut caps).unwrap();
        // With one same-named candidate, its own mismatch is the reason.
        let m = matches("<r><item n='c'/></r>", "<r><other/><item n='a'/></r>").unwrap_err();
        assert_eq!(m.path, "r/item");
        assert_eq!(m.reason, "attribute 'n': expected \"c\", received \"a\"");
        // With several, the reason names the wanted child and the first try.
        let m = matches(
            "<r><item n='c'/></r>",
            "<r><other/><item n='a'/><item n='b'/></r>",
        )
        .unwrap_err();
        assert_eq!(m.path, "r");
        assert_eq!(
            m.reason,
            "none of the 2 received <item> children matches <item n='c'/> (the first: attribute 'n': expected \"c\", received \"a\")"
        );
    }

    #[test]
    fn substitution_replaces_jid_variables_everywhere() {
        let mut vars = HashMap::new();
        vars.insert("Romeo's full JID".to_string(), "romeo@h/r".to_string());
        vars.insert("Romeo's JID".to_string(), "romeo@h".to_string());
        let s = substitute(
            &el("<m to='${Romeo&apos;s JID}' from=\"${Romeo's full JID}\"><b>hi ${Romeo's JID}</b></m>"),
            &vars,
        )
        .unwrap();
        assert_eq!(s.attr("to"), Some("romeo@h"));
        assert_eq!(s.attr("from"), Some("romeo@h/r"));
        assert_eq!(s.elements().next().unwrap().text(), "hi romeo@h");
        let err = substitute(&el("<m to=\"${Juliet's JID}\"/>"), &vars).unwrap_err();
        assert_eq!(err.to_string(), "unknown variable ${Juliet's JID}");
    }

    #[test]
    fn namespace_declarations_and_scansion_attributes_are_not_compared() {
        matches(
            "<iq xmlns:stream='http://etherx.jabber.org/streams' type='result' scansion:strict='true'/>",
            "<iq type='result'/>",
        )
        .unwrap();
    }
}
