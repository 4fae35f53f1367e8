//! The recorder's bridge channel: the colibri-ws WebSocket whose URL the
//! focus's offer carries (`<web-socket url>`), as a browser opens it. The
//! recorder asks for every participant's video (no last-N, up to 720p)
//! and reads the bridge's `DominantSpeakerEndpointChangeEvent`s, which go
//! to the recorder's loop as [`MediaInput::Speaker`].
//!
//! `ws://` is plain TCP; `wss://` is TLS with the system's trusted roots
//! (or any certificate with `--insecure-tls`, for self-signed deployments).

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::Sender;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::media_runtime::MediaInput;

/// What the recorder asks of the bridge on its channel: every
/// participant's video (no last-N), up to 720p.
pub const RECEIVER_CONSTRAINTS: &str = r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"defaultConstraints":{"maxHeight":720}}"#;

/// The dominant speaker named by a bridge channel message, if it is a
/// `DominantSpeakerEndpointChangeEvent`.
pub fn dominant_speaker(message: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(message).ok()?;
    if v.get("colibriClass")?.as_str()? != "DominantSpeakerEndpointChangeEvent" {
        return None;
    }
    Some(v.get("dominantSpeakerEndpoint")?.as_str()?.to_string())
}

/// Opens the channel at `url` and forwards dominant-speaker changes until
/// it closes.
pub async fn bridge_channel(
    url: String,
    insecure_tls: bool,
    session_id: String,
    tx: Sender<MediaInput>,
) {
    let result = match xmpp_core::client::websocket::connect(&url, insecure_tls).await {
        Ok(ws) => read(ws, &session_id, &tx).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(%url, %e, "bridge channel");
    }
}

async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    session_id: &str,
    tx: &Sender<MediaInput>,
) -> Result<(), String> {
    ws.send(Message::text(RECEIVER_CONSTRAINTS))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(msg) = ws.next().await {
        let text = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => t,
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        if let Some(endpoint) = dominant_speaker(&text) {
            let speaker = MediaInput::Speaker {
                session_id: session_id.to_string(),
                endpoint,
            };
            if tx.send(speaker).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dominant_speaker() {
        assert_eq!(
            dominant_speaker(
                r#"{"colibriClass":"DominantSpeakerEndpointChangeEvent","dominantSpeakerEndpoint":"abcd","previousSpeakers":[]}"#
            )
            .as_deref(),
            Some("abcd")
        );
        assert_eq!(
            dominant_speaker(r#"{"colibriClass":"EndpointStats"}"#),
            None
        );
        assert_eq!(dominant_speaker("not json"), None);
    }

    #[test]
    fn tls_configurations_build() {
        assert!(xmpp_core::client::tls::client_config(true, None).is_ok());
    }
}
