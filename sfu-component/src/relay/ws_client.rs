//! The runtime's client side of the relay bridge channel: when the focus
//! gave this bridge the peer's `<web-socket>`, the bridge task connects to
//! it here (`ws://`, or `wss://` with rustls) and moves text messages
//! between the socket and the sans-IO bridge, exactly as an endpoint's
//! colibri-ws is served (`http.rs`), under the relay's channel key.

use futures_util::{SinkExt, StreamExt};
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
    let result = match xmpp_core::client::websocket::connect(&url, insecure_tls).await {
        Ok(ws) => serve(ws, &commands, &conference, &relay).await,
        Err(e) => Err(e),
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
