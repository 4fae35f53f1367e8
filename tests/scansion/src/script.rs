//! The `.scs` script format: metadata, `[Client]` declarations, a separator
//! line of dashes, then actions.
//!
//! ```text
//! # Title
//! # Description
//! ## tag
//!
//! [Client] Romeo
//!     jid: romeo@localhost
//!     password: password
//!
//! ---------
//!
//! Romeo connects
//!
//! Romeo sends:
//!     <presence/>
//!
//! Romeo receives:
//!     <presence from="${Romeo's full JID}"/>
//!
//! Romeo receives: nothing
//! ```
//!
//! (Property lines and stanza lines are indented with tabs in real scripts.)
//! Comments are lines starting with `#` (after the header), `//` or `--`
//! (but a line made only of dashes is the separator). The colon after
//! `sends`/`receives` is optional, as scansion accepts both forms.

use crate::xml::{Element, NS_CLIENT, XmlError, parse_fragment};

/// One `[Client]` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDecl {
    pub name: String,
    /// As declared; may carry a resource.
    pub jid: String,
    pub password: String,
    /// `resource:` property, or the resource part of `jid`.
    pub resource: Option<String>,
    pub connect_host: Option<String>,
    pub connect_port: Option<u16>,
    pub line: usize,
}

impl ClientDecl {
    /// The declared JID without its resource.
    pub fn bare_jid(&self) -> &str {
        self.jid.split_once('/').map_or(&self.jid, |(bare, _)| bare)
    }

    /// The local part, for authentication.
    pub fn username(&self) -> &str {
        let bare = self.bare_jid();
        bare.split_once('@').map_or("", |(node, _)| node)
    }

    /// The domain part: the stream's `to`.
    pub fn domain(&self) -> &str {
        let bare = self.bare_jid();
        bare.split_once('@').map_or(bare, |(_, domain)| domain)
    }
}

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    Connect,
    Disconnect,
    Send(Element),
    Receive(Element),
    ReceiveNothing,
}

/// One step of a script, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub line: usize,
    pub client: String,
    pub kind: ActionKind,
}

impl Action {
    /// The action line as a script would spell it, for reports.
    pub fn describe(&self) -> String {
        let verb = match self.kind {
            ActionKind::Connect => "connects",
            ActionKind::Disconnect => "disconnects",
            ActionKind::Send(_) => "sends",
            ActionKind::Receive(_) => "receives",
            ActionKind::ReceiveNothing => "receives: nothing",
        };
        format!("{} {}", self.client, verb)
    }
}

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub clients: Vec<ClientDecl>,
    pub actions: Vec<Action>,
}

impl Script {
    pub fn client(&self, name: &str) -> Option<&ClientDecl> {
        self.clients.iter().find(|c| c.name == name)
    }
}

/// Why a script could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("line {line}: stanza: {source}")]
    Xml { line: usize, source: XmlError },
}

fn syntax(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError::Syntax {
        line,
        reason: reason.into(),
    }
}

const VERBS: [&str; 4] = ["connects", "disconnects", "sends", "receives"];

/// An action line split into client name, verb and what follows the colon.
fn split_action(line: &str) -> Option<(&str, &str, &str)> {
    for verb in VERBS {
        let needle = format!(" {verb}");
        let mut search_from = 0;
        while let Some(i) = line[search_from..].find(&needle) {
            let at = search_from + i;
            let after = &line[at + needle.len()..];
            let extra = match after.strip_prefix(':') {
                Some(rest) => Some(rest.trim()),
                None if after.trim().is_empty() => Some(""),
                None => None,
            };
            if let Some(extra) = extra {
                let name = line[..at].trim();
                if !name.is_empty() {
                    return Some((name, verb, extra));
                }
            }
            search_from = at + needle.len();
        }
    }
    None
}

fn is_separator(line: &str) -> bool {
    line.len() >= 3 && line.chars().all(|c| c == '-')
}

fn is_comment(line: &str) -> bool {
    line.starts_with('#') || line.starts_with("//") || line.starts_with("--")
}

/// A `sends`/`receives` waiting for its indented stanza block.
struct PendingBlock {
    line: usize,
    client: String,
    sends: bool,
    text: String,
}

/// Parses a whole script.
pub fn parse_script(src: &str) -> Result<Script, ParseError> {
    let mut script = Script::default();
    let mut in_header = true;
    let mut current_client: Option<ClientDecl> = None;
    let mut pending: Option<PendingBlock> = None;

    for (idx, raw) in src.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim_end_matches('\r');
        let indented = line.starts_with('\t') || line.starts_with(' ');
        let trimmed = line.trim();

        if let Some(block) = pending.as_mut() {
            if indented || trimmed.is_empty() {
                block.text.push_str(line);
                block.text.push('\n');
                continue;
            }
            let done = pending.take();
            finish_block(&mut script, done)?;
        }
        if trimmed.is_empty() {
            continue;
        }
        if indented {
            let Some(client) = current_client.as_mut() else {
                return Err(syntax(
                    line_no,
                    format!("unexpected indented line {trimmed:?}"),
                ));
            };
            set_property(client, trimmed, line_no)?;
            continue;
        }
        if let Some(done) = current_client.take() {
            script.clients.push(done);
        }
        if in_header && line.starts_with('#') {
            if let Some(tag) = line.strip_prefix("##") {
                script.tags.push(tag.trim().to_string());
            } else {
                let text = line.trim_start_matches('#').trim().to_string();
                if script.title.is_none() {
                    script.title = Some(text);
                } else if script.description.is_none() {
                    script.description = Some(text);
                }
            }
            continue;
        }
        in_header = false;
        if is_separator(trimmed) || is_comment(trimmed) {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some((class, name)) = rest.split_once(']') else {
                return Err(syntax(line_no, "unterminated object class"));
            };
            if class != "Client" {
                return Err(syntax(
                    line_no,
                    format!("unsupported object class [{class}]"),
                ));
            }
            let name = name.trim().trim_end_matches(':').trim();
            if name.is_empty() {
                return Err(syntax(line_no, "client without a name"));
            }
            if script.client(name).is_some() {
                return Err(syntax(line_no, format!("client {name} declared twice")));
            }
            current_client = Some(ClientDecl {
                name: name.to_string(),
                jid: String::new(),
                password: String::new(),
                resource: None,
                connect_host: None,
                connect_port: None,
                line: line_no,
            });
            continue;
        }
        let Some((name, verb, extra)) = split_action(trimmed) else {
            return Err(syntax(line_no, format!("not an action: {trimmed:?}")));
        };
        if script.client(name).is_none() {
            return Err(syntax(line_no, format!("{name} is not a declared client")));
        }
        let client = name.to_string();
        let kind = match (verb, extra) {
            ("connects", "") => ActionKind::Connect,
            ("disconnects", "") => ActionKind::Disconnect,
            ("receives", "nothing") => ActionKind::ReceiveNothing,
            ("sends" | "receives", _) => {
                pending = Some(PendingBlock {
                    line: line_no,
                    client,
                    sends: verb == "sends",
                    text: format!("{extra}\n"),
                });
                continue;
            }
            _ => {
                return Err(syntax(
                    line_no,
                    format!("unexpected text after {verb}: {extra:?}"),
                ));
            }
        };
        script.actions.push(Action {
            line: line_no,
            client,
            kind,
        });
    }
    if let Some(done) = current_client.take() {
        script.clients.push(done);
    }
    finish_block(&mut script, pending.take())?;
    for client in &script.clients {
        if client.jid.is_empty() {
            return Err(syntax(
                client.line,
                format!("client {} has no jid", client.name),
            ));
        }
    }
    Ok(script)
}

fn set_property(client: &mut ClientDecl, trimmed: &str, line: usize) -> Result<(), ParseError> {
    let Some((key, value)) = trimmed.split_once(':') else {
        return Err(syntax(
            line,
            format!("expected `key: value`, got {trimmed:?}"),
        ));
    };
    let value = value.trim().to_string();
    match key.trim() {
        "jid" => {
            if let Some((_, resource)) = value.split_once('/') {
                client.resource.get_or_insert_with(|| resource.to_string());
            }
            client.jid = value;
        }
        "password" => client.password = value,
        "resource" => client.resource = Some(value),
        "connect_host" => client.connect_host = Some(value),
        "connect_port" => {
            let port = value
                .parse()
                .map_err(|_| syntax(line, format!("connect_port {value:?} is not a port")))?;
            client.connect_port = Some(port);
        }
        // scansion ignores properties it does not know; so do we.
        _ => {}
    }
    Ok(())
}

fn finish_block(script: &mut Script, block: Option<PendingBlock>) -> Result<(), ParseError> {
    let Some(block) = block else { return Ok(()) };
    let elements = parse_fragment(&block.text, NS_CLIENT).map_err(|source| ParseError::Xml {
        line: block.line,
        source,
    })?;
    if elements.is_empty() {
        return Err(syntax(block.line, "expected a stanza after sends/receives"));
    }
    // A block holding several stanzas (a missing `receives:` line in a
    // script, for instance) sends, or expects, each of them in turn.
    for stanza in elements {
        let kind = if block.sends {
            ActionKind::Send(stanza)
        } else {
            ActionKind::Receive(stanza)
        };
        script.actions.push(Action {
            line: block.line,
            client: block.client.clone(),
            kind,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Title here\n# A description\n## tag1\n\n[Client] Romeo\n\tjid: romeo@localhost\n\tpassword: password\n\n// a comment between clients\n[Client] Juliet's phone\n\tjid: juliet@localhost/balcony\n\tpassword: pw\n\tresource: mobile\n\n-----\n\nRomeo connects\n\n# annotation\nRomeo sends:\n\t<presence/>\n\n-- Romeo sends:\n-- \t<presence/>\nJuliet's phone receives\n\t<message from=\"${Romeo's full JID}\">\n\n\t\t<body>Hi</body>\n\t</message>\n\nRomeo receives: nothing\n\nJuliet's phone disconnects\n";

    #[test]
    fn parses_header_clients_and_actions() {
        let s = parse_script(SAMPLE).unwrap();
        assert_eq!(s.title.as_deref(), Some("Title here"));
        assert_eq!(s.description.as_deref(), Some("A description"));
        assert_eq!(s.tags, vec!["tag1".to_string()]);
        assert_eq!(s.clients.len(), 2);
        let phone = s.client("Juliet's phone").unwrap();
        assert_eq!(phone.bare_jid(), "juliet@localhost");
        assert_eq!(phone.username(), "juliet");
        assert_eq!(phone.domain(), "localhost");
        assert_eq!(phone.resource.as_deref(), Some("mobile"));
        let kinds: Vec<String> = s.actions.iter().map(Action::describe).collect();
        assert_eq!(
            kinds,
            vec![
                "Romeo connects",
                "Romeo sends",
                "Juliet's phone receives",
                "Romeo receives: nothing",
                "Juliet's phone disconnects"
            ]
        );
        assert_eq!(s.actions[2].line, 25);
        let ActionKind::Receive(msg) = &s.actions[2].kind else {
            panic!("not a receive")
        };
        assert_eq!(msg.attr("from"), Some("${Romeo's full JID}"));
        assert_eq!(msg.elements().next().unwrap().text(), "Hi");
    }

    #[test]
    fn resource_comes_from_the_jid_when_not_given() {
        let s =
            parse_script("[Client] A\n\tjid: a@h/res1\n\tpassword: p\n---\nA connects\n").unwrap();
        assert_eq!(s.clients[0].resource.as_deref(), Some("res1"));
    }

    #[test]
    fn reports_unknown_clients_and_bad_stanzas_with_lines() {
        let err = parse_script("[Client] A\n\tjid: a@h\n---\nB connects\n").unwrap_err();
        assert_eq!(err.to_string(), "line 4: B is not a declared client");
        let err = parse_script("[Client] A\n\tjid: a@h\n---\nA sends:\n\t<iq>\n").unwrap_err();
        assert!(matches!(err, ParseError::Xml { line: 4, .. }), "{err}");
        let err =
            parse_script("[Client] A\n\tjid: a@h\n---\nA sends:\n\nA connects\n").unwrap_err();
        assert!(err.to_string().contains("expected a stanza"), "{err}");
    }

    #[test]
    fn a_block_of_several_stanzas_is_one_action_each() {
        let s = parse_script("[Client] A\n\tjid: a@h\n---\nA sends:\n\t<a/>\n\n\t<b/>\n").unwrap();
        assert_eq!(s.actions.len(), 2);
        assert!(matches!(&s.actions[1].kind, ActionKind::Send(b) if b.name == "b"));
    }

    #[test]
    fn parses_every_shared_conformance_script() {
        let Some(dir) = crate::shared_dir() else {
            eprintln!("skipping: ../shared not found");
            return;
        };
        let mut count = 0;
        for set in ["0.12", "13.0"] {
            let scripts = dir.join("conformance/prosody-scansion").join(set);
            for entry in std::fs::read_dir(&scripts).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "scs") {
                    let src = std::fs::read_to_string(&path).unwrap();
                    let script =
                        parse_script(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(!script.actions.is_empty(), "{}", path.display());
                    count += 1;
                }
            }
        }
        assert!(count >= 90, "only {count} scripts");
    }
}
