//! [`connect`]: a c2s connection to any XMPP server, negotiated by
//! [`super::negotiate::Negotiation`] (STARTTLS with tokio-rustls, SASL,
//! binding), then a task moving stanzas both ways. TLS is STARTTLS only,
//! as Jicofo and Videobridge do (no direct TLS on 5223).
//!
//! The task reads the stream with [`XmlStream`] and writes what the
//! [`LinkSender`]s queue with [`Element::to_xml`]; it sends a whitespace
//! keepalive after [`KEEPALIVE`] without writing. A stream error, the
//! server's `</stream:stream>` or the connection's end ends the link:
//! [`ClientLink::recv`] returns `None` once what arrived before is read,
//! and sends return false. Dropping the [`ClientLink`] and every
//! [`LinkSender`] closes the stream.
//!
//! Backpressure: stanzas from the server wait in a channel of
//! [`INCOMING_QUEUE`] stanzas; while it is full the socket is not read
//! (so a flooding server is slowed by TCP, not buffered). What is sent is
//! queued without a bound: it is the component's own output, written as
//! fast as the socket takes it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::negotiate::{Negotiation, Output, stream_error_text};
use super::{ClientError, ClientLink, ConnectOptions, LinkSender};
use crate::stanza::{Element, NS_STREAMS};
use crate::stream::{StreamEvent, XmlStream};

/// Whitespace is sent after this long without writing.
pub const KEEPALIVE: Duration = Duration::from_secs(60);
/// Stanzas from the server waiting for [`ClientLink::recv`].
pub const INCOMING_QUEUE: usize = 256;
/// How long negotiation (TCP, TLS, SASL, bind) may take.
pub const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(30);

const READ_CHUNK: usize = 16 * 1024;

/// The socket, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
        }
    }
    async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }
    async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
        };
    }
}

/// Connects to `options.address`, negotiates as `options.jid` and returns
/// the bound session. Needs a tokio runtime (the link runs on a task).
pub async fn connect(options: &ConnectOptions) -> Result<ClientLink, ClientError> {
    let (conn, negotiation, jid) = tokio::time::timeout(NEGOTIATION_TIMEOUT, negotiate(options))
        .await
        .map_err(|_| {
            ClientError::Protocol(format!(
                "negotiation with {} took longer than {NEGOTIATION_TIMEOUT:?}",
                options.address
            ))
        })??;
    let (xml, after) = negotiation.into_stream();
    let (in_tx, in_rx) = mpsc::channel(INCOMING_QUEUE);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    tracing::info!(%jid, address = %options.address, "client link bound");
    tokio::spawn(run(conn, xml, after, in_tx, out_rx, jid.to_string()));
    Ok(ClientLink {
        jid,
        sender: LinkSender { tx: out_tx },
        incoming: in_rx,
    })
}

async fn negotiate(
    options: &ConnectOptions,
) -> Result<(Conn, Negotiation, crate::jid::Jid), ClientError> {
    let address = options.address.clone();
    let io_error = |source| ClientError::Connect {
        address: address.clone(),
        source,
    };
    let tls_error = |reason: String| ClientError::Tls {
        address: address.clone(),
        reason,
    };
    let tcp = TcpStream::connect(&options.address)
        .await
        .map_err(io_error)?;
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn::Plain(tcp);
    let mut negotiation = Negotiation::new(options.jid.clone(), &options.password, true);
    let mut outputs = negotiation.start();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        for output in std::mem::take(&mut outputs) {
            match output {
                Output::Write(s) => conn.write(s.as_bytes()).await.map_err(io_error)?,
                Output::StartTls => {
                    let Conn::Plain(tcp) = conn else {
                        return Err(ClientError::Protocol("STARTTLS twice".into()));
                    };
                    let config =
                        super::tls::client_config(options.insecure_tls, options.ca_file.as_deref())
                            .map_err(tls_error)?;
                    let name = super::tls::server_name(options.jid.domain()).map_err(tls_error)?;
                    let tls = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| tls_error(e.to_string()))?;
                    conn = Conn::Tls(Box::new(tls));
                    outputs.extend(negotiation.tls_established());
                }
                Output::Bound(jid) => return Ok((conn, negotiation, jid)),
            }
        }
        if !outputs.is_empty() {
            continue;
        }
        let n = conn.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            return Err(ClientError::Stream(
                "the connection closed during negotiation".into(),
            ));
        }
        outputs = negotiation.handle_bytes(&buf[..n])?;
    }
}

/// Moves stanzas between the stream and the link until either ends.
async fn run(
    mut conn: Conn,
    mut xml: XmlStream,
    after: Vec<StreamEvent>,
    in_tx: mpsc::Sender<Element>,
    mut out_rx: mpsc::UnboundedReceiver<Element>,
    jid: String,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    // Parsed, not yet taken by the link.
    let mut pending: VecDeque<Element> = VecDeque::new();
    // The server's stream ended (what is pending is still delivered).
    let mut ended = sort_events(after, &mut pending, &jid);
    let mut consumer_gone = false;
    let mut keepalive_at = Instant::now() + KEEPALIVE;
    let mut we_closed = false;
    loop {
        if ended && (pending.is_empty() || consumer_gone) {
            break;
        }
        tokio::select! {
            biased;
            permit = in_tx.reserve(), if !pending.is_empty() && !consumer_gone => match permit {
                Ok(permit) => {
                    if let Some(e) = pending.pop_front() {
                        permit.send(e);
                    }
                }
                // The ClientLink is gone: what arrives is dropped.
                Err(_) => {
                    consumer_gone = true;
                    pending.clear();
                }
            },
            out = out_rx.recv(), if !we_closed && !ended => match out {
                Some(stanza) => {
                    if conn.write(stanza.to_xml().as_bytes()).await.is_err() {
                        break;
                    }
                    keepalive_at = Instant::now() + KEEPALIVE;
                }
                // The ClientLink and every LinkSender are gone: close, and
                // wait (a little) for the server's </stream:stream>.
                None => {
                    we_closed = true;
                    if conn.write(crate::stream::STREAM_CLOSE.as_bytes()).await.is_err() {
                        break;
                    }
                    keepalive_at = Instant::now() + Duration::from_secs(5);
                }
            },
            read = conn.read(&mut buf), if pending.is_empty() && !ended => match read {
                Ok(0) | Err(_) => {
                    tracing::info!(%jid, "client link: the connection ended");
                    ended = true;
                }
                Ok(n) => {
                    let mut events = Vec::new();
                    let result = xml.feed(&buf[..n], &mut events);
                    ended = sort_events(events, &mut pending, &jid);
                    if consumer_gone {
                        pending.clear();
                    }
                    if let Err(e) = result {
                        tracing::warn!(%jid, "client link: the server's stream is broken: {e}");
                        let _ = conn.write(e.to_xml().as_bytes()).await;
                        ended = true;
                    }
                    if ended && !we_closed {
                        let _ = conn.write(crate::stream::STREAM_CLOSE.as_bytes()).await;
                        we_closed = true;
                    }
                }
            },
            _ = tokio::time::sleep_until(keepalive_at), if !ended => {
                if we_closed {
                    // The server did not close its side in time.
                    break;
                }
                if conn.write(b" ").await.is_err() {
                    break;
                }
                keepalive_at = Instant::now() + KEEPALIVE;
            }
        }
    }
    out_rx.close();
    conn.shutdown().await;
    tracing::debug!(%jid, "client link closed");
}

/// Queues the stanzas among `events`; true when the stream ended (its
/// close tag or a stream error).
fn sort_events(events: Vec<StreamEvent>, pending: &mut VecDeque<Element>, jid: &str) -> bool {
    let mut ended = false;
    for ev in events {
        match ev {
            StreamEvent::Stanza(e) if e.is("error", NS_STREAMS) => {
                tracing::warn!(%jid, "client link: stream error from the server: {}", stream_error_text(&e));
                ended = true;
            }
            StreamEvent::Stanza(e) if !ended && e.is_stanza() => pending.push_back(e),
            StreamEvent::Stanza(e) => {
                tracing::debug!(%jid, "client link: ignoring <{}/>", e.name());
            }
            StreamEvent::Close => ended = true,
            StreamEvent::Open(_) => {}
        }
    }
    ended
}

#[cfg(test)]
mod tests {
    //! The link's task over a loopback TCP pair, the test writing what a
    //! server would.

    use super::*;
    use tokio::net::TcpListener;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='x' version='1.0'>";

    /// A running link task and the server's end of its socket.
    async fn link() -> (TcpStream, mpsc::Receiver<Element>, LinkSender) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut xml = XmlStream::new(Default::default());
        xml.feed(HEADER.as_bytes(), &mut Vec::new()).unwrap();
        let (in_tx, in_rx) = mpsc::channel(INCOMING_QUEUE);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            Conn::Plain(client),
            xml,
            Vec::new(),
            in_tx,
            out_rx,
            "t@localhost/r".into(),
        ));
        (server, in_rx, LinkSender { tx: out_tx })
    }

    #[tokio::test]
    async fn a_flooding_server_is_not_read_while_the_queue_is_full() {
        let (mut server, mut incoming, _sender) = link().await;
        let message = format!(
            "<message xmlns='jabber:client' to='t@localhost/r'><body>{}</body></message>",
            "x".repeat(1000)
        );
        // Nobody takes what arrives: once the queue and the socket buffers
        // are full, the server's writes stall.
        let mut written = 0usize;
        while let Ok(Ok(())) = tokio::time::timeout(
            Duration::from_millis(500),
            server.write_all(message.as_bytes()),
        )
        .await
        {
            written += 1;
            assert!(written < 50_000, "the link reads without a bound");
        }
        assert!(written > INCOMING_QUEUE, "{written}");
        // Taking stanzas lets reading go on, in order and complete.
        for _ in 0..written {
            let m = tokio::time::timeout(Duration::from_secs(10), incoming.recv())
                .await
                .expect("a stanza")
                .expect("the link is up");
            assert_eq!(m.name(), "message");
            assert_eq!(
                m.get_child_text("body", "jabber:client").unwrap().len(),
                1000
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn whitespace_keepalive_and_the_end_of_the_stream() {
        let (mut server, mut incoming, sender) = link().await;
        let mut buf = [0u8; 256];
        tokio::time::sleep(KEEPALIVE + Duration::from_secs(1)).await;
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b" ");
        // A stanza out, one in.
        assert!(sender.send(Element::new("presence", crate::stanza::NS_CLIENT)));
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"<presence/>");
        server
            .write_all(b"<iq xmlns='jabber:client' type='get' id='1'/>")
            .await
            .unwrap();
        assert_eq!(incoming.recv().await.unwrap().id(), Some("1"));
        // A stream error ends the link: the client closes its side too.
        server
            .write_all(b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
            .await
            .unwrap();
        assert!(incoming.recv().await.is_none());
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, crate::stream::STREAM_CLOSE.as_bytes());
        assert!(!sender.send(Element::new("presence", crate::stanza::NS_CLIENT)));
    }
}
