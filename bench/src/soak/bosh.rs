//! A BOSH client session (XEP-0124/0206) for the soak: a task that keeps
//! one request held by the server at all times and sends queued stanzas in
//! a second one (`requests='2'`), each request on its own keep-alive HTTP
//! connection, rids strictly in order; the contents of every response
//! body go to [`Bosh::receive`].

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::link::LinkError;
use crate::xml;

const NS_BOSH: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// Seconds the server may hold a request.
const WAIT: u32 = 20;

enum Command {
    Stanza(String),
    Restart(String),
    Terminate,
}

/// One BOSH session.
pub struct Bosh {
    commands: mpsc::UnboundedSender<Command>,
    /// Contents of response bodies; `None` (closed channel) when the
    /// session ended.
    inbox: mpsc::UnboundedReceiver<Vec<u8>>,
}

/// Writes one POST and reads its response body.
async fn post(stream: &mut TcpStream, at: SocketAddr, body: &str) -> Result<Vec<u8>, LinkError> {
    let request = format!(
        "POST /http-bind HTTP/1.1\r\nHost: {at}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(LinkError::Protocol(format!(
                    "BOSH answered {}",
                    head.lines().next().unwrap_or("")
                )));
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| LinkError::Protocol("BOSH response without length".into()))?;
            break (p + 4, length);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 && buf.is_empty() {
            return Err(LinkError::Closed);
        }
        if n == 0 {
            return Err(LinkError::Protocol("BOSH response cut short".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(LinkError::Protocol("BOSH response cut short".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf[head_end..head_end + length].to_vec())
}

/// The children of a `<body>`, and whether it terminates the session.
fn contents(body: &[u8]) -> (Vec<u8>, bool) {
    let terminate = xml::attr(body, "type") == Some(b"terminate");
    let Some(open_end) = body.iter().position(|&b| b == b'>') else {
        return (Vec::new(), terminate);
    };
    if open_end > 0 && body[open_end - 1] == b'/' {
        return (Vec::new(), terminate);
    }
    let close = body
        .windows(7)
        .rposition(|w| w == b"</body>")
        .unwrap_or(body.len());
    (
        body[open_end + 1..close.max(open_end + 1)].to_vec(),
        terminate,
    )
}

impl Bosh {
    /// Creates the session (the first request) and starts its task.
    pub async fn create(at: SocketAddr, domain: &str) -> Result<Bosh, LinkError> {
        let mut rid: u64 = 1_000_000 + u64::from(rand::random::<u32>());
        let mut stream = TcpStream::connect(at).await?;
        let _ = stream.set_nodelay(true);
        let body = format!(
            "<body xmlns='{NS_BOSH}' xmlns:xmpp='{NS_XBOSH}' content='text/xml; charset=utf-8' \
             hold='1' rid='{rid}' to='{}' ver='1.6' wait='{WAIT}' xml:lang='en' xmpp:version='1.0'/>",
            xml::escape(domain)
        );
        let reply = post(&mut stream, at, &body).await?;
        let sid = xml::attr(&reply, "sid")
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or_else(|| {
                LinkError::Protocol(format!("no sid in {}", String::from_utf8_lossy(&reply)))
            })?;
        let (first, _) = contents(&reply);
        let (commands, mut rx) = mpsc::unbounded_channel::<Command>();
        let (tx, inbox) = mpsc::unbounded_channel::<Vec<u8>>();
        if !first.is_empty() {
            let _ = tx.send(first);
        }
        tokio::spawn(async move {
            let mut idle: Vec<TcpStream> = vec![stream];
            let mut flight: JoinSet<(TcpStream, Result<Vec<u8>, LinkError>)> = JoinSet::new();
            let mut queue: Vec<String> = Vec::new();
            let mut restart: Option<String> = None;
            let mut terminate = false;
            let mut sent_terminate = false;
            let mut commands_open = true;
            loop {
                let wanted = !sent_terminate
                    && (flight.is_empty()
                        || (flight.len() < 2
                            && (!queue.is_empty() || restart.is_some() || terminate)));
                if wanted {
                    rid += 1;
                    let mut attrs = format!("rid='{rid}' sid='{sid}'");
                    if let Some(domain) = restart.take() {
                        attrs.push_str(&format!(
                            " xmlns:xmpp='{NS_XBOSH}' xmpp:restart='true' to='{}'",
                            xml::escape(&domain)
                        ));
                    }
                    if terminate {
                        attrs.push_str(" type='terminate'");
                        sent_terminate = true;
                    }
                    let body = format!("<body xmlns='{NS_BOSH}' {attrs}>{}</body>", queue.concat());
                    queue.clear();
                    let reused = idle.pop();
                    let fresh = reused.is_none();
                    let stream = match reused {
                        Some(s) => Some(s),
                        None => TcpStream::connect(at).await.ok(),
                    };
                    let Some(mut stream) = stream else { break };
                    let _ = stream.set_nodelay(true);
                    flight.spawn(async move {
                        let mut result = post(&mut stream, at, &body).await;
                        // A kept-alive connection the server closed while it
                        // was idle (hyper's header read timeout) answers
                        // nothing: send the request again on a new one, as
                        // browsers do (the server never saw it).
                        if !fresh && matches!(result, Err(LinkError::Closed | LinkError::Io(_))) {
                            match TcpStream::connect(at).await {
                                Ok(s) => {
                                    stream = s;
                                    let _ = stream.set_nodelay(true);
                                    result = post(&mut stream, at, &body).await;
                                }
                                Err(e) => result = Err(e.into()),
                            }
                        }
                        (stream, result)
                    });
                }
                tokio::select! {
                    command = rx.recv(), if commands_open => match command {
                        Some(Command::Stanza(s)) => queue.push(s),
                        Some(Command::Restart(d)) => restart = Some(d),
                        Some(Command::Terminate) | None => {
                            terminate = true;
                            commands_open = false;
                        }
                    },
                    done = flight.join_next(), if !flight.is_empty() => {
                        let Some(Ok((stream, result))) = done else { break };
                        let body = match result {
                            Ok(body) => body,
                            Err(e) => {
                                eprintln!("soak: BOSH {sid}: request failed: {e}");
                                break;
                            }
                        };
                        idle.push(stream);
                        let (content, ended) = contents(&body);
                        if !content.is_empty() && tx.send(content).is_err() && !sent_terminate {
                            terminate = true;
                        }
                        // The answer to our terminate may come before the
                        // one to the request the server held, which still
                        // carries stanzas: wait for that one too.
                        if ended && !sent_terminate {
                            eprintln!(
                                "soak: BOSH {sid}: terminated by the server: {}",
                                String::from_utf8_lossy(&body)
                            );
                            break;
                        }
                    }
                }
                if sent_terminate && flight.is_empty() {
                    break;
                }
            }
            flight.abort_all();
        });
        Ok(Bosh { commands, inbox })
    }

    pub fn send(&mut self, stanza: String) -> Result<(), LinkError> {
        self.commands
            .send(Command::Stanza(stanza))
            .map_err(|_| LinkError::Closed)
    }

    pub fn restart(&mut self, domain: &str) -> Result<(), LinkError> {
        self.commands
            .send(Command::Restart(domain.to_string()))
            .map_err(|_| LinkError::Closed)
    }

    pub fn terminate(&mut self) -> Result<(), LinkError> {
        self.commands
            .send(Command::Terminate)
            .map_err(|_| LinkError::Closed)
    }

    /// The next response's children; `None` once the session ended.
    pub async fn receive(&mut self) -> Option<Vec<u8>> {
        self.inbox.recv().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_contents() {
        let (c, t) =
            super::contents(b"<body xmlns='x' sid='a'><message id='1'/><presence/></body>");
        assert_eq!(c, b"<message id='1'/><presence/>");
        assert!(!t);
        let (c, t) = super::contents(b"<body type='terminate' xmlns='x'/>");
        assert!(c.is_empty() && t);
    }
}
