//! The runtime's client side of the relay bridge channel: when the focus
//! gave this bridge the peer's `<web-socket>`, the bridge task connects to
//! it here (`ws://`, or `wss://` with rustls) and moves text messages
//! between the socket and the sans-IO bridge, exactly as an endpoint's
//! colibri-ws is served (`http.rs`), under the relay's channel key.

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::channel::MAX_MESSAGE_SIZE;
use crate::media::relay_key;
use crate::run::{CHANNEL_QUEUE, ChannelOut, Command};

/// Connects relay `relay`'s channel of `conference` to `url` and serves it
/// until either side closes. `commands` is the bridge task's queue (weak:
/// the channel does not keep a stopped bridge alive).
pub async fn run_relay_channel(
    url: String,
    insecure_tls: bool,
    commands: mpsc::WeakSender<Command>,
    conference: String,
    relay: String,
) {
    let result = if url.starts_with("wss://") {
        match connect_tls(&url, insecure_tls).await {
            Ok(ws) => serve(ws, &commands, &conference, &relay).await,
            Err(e) => Err(e),
        }
    } else {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => serve(ws, &commands, &conference, &relay).await,
            Err(e) => Err(e.to_string()),
        }
    };
    if let Err(e) = result {
        tracing::warn!(%conference, %relay, %url, error = %e, "relay bridge channel");
    }
}

async fn send(commands: &mpsc::WeakSender<Command>, command: Command) -> bool {
    match commands.upgrade() {
        Some(tx) => tx.send(command).await.is_ok(),
        None => false,
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    ws: WebSocketStream<S>,
    commands: &mpsc::WeakSender<Command>,
    conference: &str,
    relay: &str,
) -> Result<(), String> {
    let (tx, mut from_bridge) = mpsc::channel(CHANNEL_QUEUE);
    let (reply_tx, reply_rx) = oneshot::channel();
    let connected = Command::RelayChannelConnected {
        conference: conference.to_string(),
        relay: relay.to_string(),
        sink: tx,
        reply: reply_tx,
    };
    if !send(commands, connected).await {
        return Ok(());
    }
    let Ok(serial) = reply_rx.await else {
        return Ok(());
    };
    tracing::info!(%conference, %relay, "relay bridge channel connected");
    let key = relay_key(relay);
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            out = from_bridge.recv() => match out {
                Some(ChannelOut::Text(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(ChannelOut::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if text.len() > MAX_MESSAGE_SIZE {
                        continue;
                    }
                    let message = Command::ChannelMessage {
                        conference: conference.to_string(),
                        endpoint: key.clone(),
                        text: text.to_string(),
                    };
                    if !send(commands, message).await {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let close = Command::ChannelClose {
        conference: conference.to_string(),
        endpoint: key,
        serial,
    };
    send(commands, close).await;
    Ok(())
}

async fn connect_tls(
    url: &str,
    insecure: bool,
) -> Result<WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>, String> {
    let (host, port) = host_port(url).ok_or_else(|| format!("bad URL {url}"))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let connector =
        tokio_rustls::TlsConnector::from(xmpp_core::client::tls::client_config(insecure, None)?);
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}: {e}"))?;
    let (ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// The host and port of a `wss://` URL (443 when none is given).
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("wss://")?;
    let authority = rest.split(['/', '?']).next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 443,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn wss_host_and_port() {
        assert_eq!(
            host_port("wss://meet.example.com/colibri-relay-ws/a/b/c?pwd=x"),
            Some(("meet.example.com".into(), 443))
        );
        assert_eq!(
            host_port("wss://[::1]:8443/colibri-relay-ws/a/b/c"),
            Some(("::1".into(), 8443))
        );
        assert_eq!(host_port("ws://h/x"), None);
    }
}
