//! One console connection, sans-IO: the bytes of Prosody's admin stream in
//! (`<stream:stream xmlns='xmpp:prosody.im/admin'>`, then `<repl-input>`
//! lines), the bytes to send and the lines to run out. The runtime
//! (`super::serve`) runs each line and hands the reply back to
//! [`AdminStream::reply`].

use xmpp_core::stream::{STREAM_CLOSE, stream_header};
use xmpp_core::{Element, StreamEvent, StreamHeader, StreamLimits, XmlStream};

use super::commands::Reply;

/// The admin stream's default namespace (Prosody's `util.adminstream`).
pub const NS_ADMIN: &str = "xmpp:prosody.im/admin";

/// What the connection must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
    Send(String),
    /// Run this console line and give its reply to [`AdminStream::reply`].
    Run(String),
    /// Close the connection (after the bytes before it are written).
    Close,
}

/// The server side of one admin stream.
pub struct AdminStream {
    xml: XmlStream,
    id: String,
    closed: bool,
}

impl AdminStream {
    /// A stream whose header will carry `id`.
    pub fn new(id: impl Into<String>) -> AdminStream {
        AdminStream {
            // The console is local and trusted, but a line is still bounded.
            xml: XmlStream::new(StreamLimits::default()),
            id: id.into(),
            closed: false,
        }
    }

    fn header(&self) -> String {
        stream_header(&StreamHeader {
            ns: NS_ADMIN.into(),
            id: Some(self.id.clone()),
            ..StreamHeader::default()
        })
    }

    /// Bytes from the client.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.closed {
            return actions;
        }
        let mut events = Vec::new();
        let parsed = self.xml.feed(data, &mut events);
        for event in events {
            match event {
                StreamEvent::Open(_) => actions.push(Action::Send(self.header())),
                StreamEvent::Stanza(el) if el.name() == "repl-input" => {
                    actions.push(Action::Run(el.text_content()));
                }
                StreamEvent::Stanza(el) => {
                    let result = Element::new("repl-result", NS_ADMIN)
                        .attr("type", "error")
                        .text(format!(
                            "No module handled this query ({}). Is mod_admin_shell enabled?",
                            el.name()
                        ));
                    actions.push(Action::Send(result.to_xml_in(NS_ADMIN)));
                }
                StreamEvent::Close => {
                    actions.push(Action::Send(STREAM_CLOSE.into()));
                    actions.push(Action::Close);
                    self.closed = true;
                    return actions;
                }
            }
        }
        if let Err(e) = parsed {
            let error = e.to_xml();
            if !self.xml.is_open() {
                actions.push(Action::Send(self.header()));
            }
            actions.push(Action::Send(format!("{error}{STREAM_CLOSE}")));
            actions.push(Action::Close);
            self.closed = true;
        }
        actions
    }

    /// The client went away.
    pub fn eof(&mut self) -> Vec<Action> {
        self.closed = true;
        vec![Action::Close]
    }

    /// The reply to a line from [`Action::Run`]: its printed lines, then
    /// the result.
    pub fn reply(&self, reply: &Reply) -> Vec<Action> {
        let mut out = String::new();
        for line in &reply.output {
            out.push_str(
                &Element::new("repl-output", NS_ADMIN)
                    .text(line.clone())
                    .to_xml_in(NS_ADMIN),
            );
        }
        let (text, is_error) = reply.outcome.text();
        let mut result = Element::new("repl-result", NS_ADMIN);
        if is_error {
            result = result.attr("type", "error");
        }
        if !text.is_empty() {
            result = result.text(text);
        }
        out.push_str(&result.to_xml_in(NS_ADMIN));
        vec![Action::Send(out)]
    }
}

#[cfg(test)]
mod tests {
    use super::super::commands::{Effect, Outcome};
    use super::*;

    const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' xmlns='xmpp:prosody.im/admin' id=''>";

    #[test]
    fn a_line_and_its_reply() {
        let mut s = AdminStream::new("a1");
        let actions = s.feed(OPEN.as_bytes());
        assert!(
            matches!(&actions[..], [Action::Send(h)] if h.contains("xmlns='xmpp:prosody.im/admin'") && h.contains("id='a1'"))
        );
        let actions = s.feed(b"<repl-input>user:list(&quot;localhost&quot;)</repl-input>");
        assert_eq!(
            actions,
            vec![Action::Run("user:list(\"localhost\")".into())]
        );
        let reply = Reply {
            output: vec!["alice@localhost".into()],
            outcome: Outcome::Ok("Showing all 1 users".into()),
            effect: Effect::None,
        };
        assert_eq!(
            s.reply(&reply),
            vec![Action::Send(
                "<repl-output>alice@localhost</repl-output><repl-result>OK: Showing all 1 users</repl-result>".into()
            )]
        );
        let error = Reply {
            output: vec![],
            outcome: Outcome::Error("No such user".into()),
            effect: Effect::None,
        };
        assert_eq!(
            s.reply(&error),
            vec![Action::Send(
                "<repl-result type='error'>Error: No such user</repl-result>".into()
            )]
        );
        assert_eq!(
            s.feed(b"</stream:stream>"),
            vec![Action::Send("</stream:stream>".into()), Action::Close]
        );
    }

    #[test]
    fn bad_xml_closes_the_stream() {
        let mut s = AdminStream::new("a2");
        s.feed(OPEN.as_bytes());
        let actions = s.feed(b"<repl-input><</repl-input>");
        assert!(matches!(actions.last(), Some(Action::Close)), "{actions:?}");
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Send(x) if x.contains("not-well-formed"))),
            "{actions:?}"
        );
    }
}
