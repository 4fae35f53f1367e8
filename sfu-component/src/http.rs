//! The bridge's HTTP side (axum), as Videobridge serves it:
//! `/colibri-ws/<bridge-id>/<conference-id>/<endpoint-id>?pwd=...` (the
//! bridge channel over WebSocket: ServerHello on accept), `/colibri/stats`
//! (JSON with Videobridge's stat names), `/about/health` (200 when
//! healthy, 500 otherwise), `/metrics` (OpenMetrics text) and, on the
//! bridge's own listener only (Videobridge serves it on its private
//! interface), `/debug`, `/debug/<conference-id>` and
//! `/debug/<conference-id>/<endpoint-id>` (Videobridge's debug JSON with
//! each endpoint's bitrate-controller state; refreshed every second).
//!
//! [`router`] gives the routes of the bridge's own listener (`--http`),
//! [`shared_router`] those lilt's own HTTP server adds when the bridge runs
//! in-process; both talk to the bridge task through a [`BridgeHandle`].

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::channel::MAX_MESSAGE_SIZE;
use crate::run::{BridgeHandle, CHANNEL_QUEUE, ChannelOut, Command};
use crate::stats::BridgeStats;

/// The bridge's routes (its own listener's).
pub fn router(handle: BridgeHandle) -> Router {
    Router::new()
        .route(
            "/colibri-ws/{bridge}/{conference}/{endpoint}",
            get(colibri_ws),
        )
        .route(
            "/colibri-relay-ws/{bridge}/{conference}/{relay}",
            get(colibri_relay_ws),
        )
        .route("/colibri/stats", get(colibri_stats))
        .route("/about/health", get(health))
        .route("/metrics", get(metrics))
        .route("/debug", get(debug_bridge))
        .route("/debug/{conference}", get(debug_conference))
        .route("/debug/{conference}/{endpoint}", get(debug_endpoint))
        .with_state(handle)
}

/// The routes lilt's own HTTP server adds for an in-process bridge: the
/// bridge channel and `/colibri/stats` (health and metrics stay on the
/// bridge's listener: lilt's server has its own `/metrics`).
pub fn shared_router(handle: BridgeHandle) -> Router {
    Router::new()
        .route(
            "/colibri-ws/{bridge}/{conference}/{endpoint}",
            get(colibri_ws),
        )
        .route(
            "/colibri-relay-ws/{bridge}/{conference}/{relay}",
            get(colibri_relay_ws),
        )
        .route("/colibri/stats", get(colibri_stats))
        .with_state(handle)
}

fn stamped(mut stats: BridgeStats) -> BridgeStats {
    stats.current_timestamp_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    stats
}

async fn colibri_stats(State(handle): State<BridgeHandle>) -> Response {
    let stats = stamped(handle.stats());
    (
        [(header::CONTENT_TYPE, "application/json")],
        stats.to_json().to_string(),
    )
        .into_response()
}

async fn debug_response(
    handle: &BridgeHandle,
    conference: Option<&str>,
    endpoint: Option<&str>,
) -> Response {
    let Some(debug) = handle.debug_states().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the bridge has stopped").into_response();
    };
    let stats = stamped(handle.stats());
    match crate::stats::debug_json(&stats, &debug, conference, endpoint) {
        Some(v) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such conference or endpoint").into_response(),
    }
}

async fn debug_bridge(State(handle): State<BridgeHandle>) -> Response {
    debug_response(&handle, None, None).await
}

async fn debug_conference(
    State(handle): State<BridgeHandle>,
    Path(conference): Path<String>,
) -> Response {
    debug_response(&handle, Some(&conference), None).await
}

async fn debug_endpoint(
    State(handle): State<BridgeHandle>,
    Path((conference, endpoint)): Path<(String, String)>,
) -> Response {
    debug_response(&handle, Some(&conference), Some(&endpoint)).await
}

async fn health(State(handle): State<BridgeHandle>) -> Response {
    if handle.stats().healthy {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "unhealthy").into_response()
    }
}

async fn metrics(State(handle): State<BridgeHandle>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        handle.stats().to_openmetrics(),
    )
        .into_response()
}

/// A peer bridge's relay bridge channel: served as an endpoint's, under
/// the relay's channel key (`relay:<relay-id>`).
async fn colibri_relay_ws(
    state: State<BridgeHandle>,
    Path((bridge, conference, relay)): Path<(String, String, String)>,
    query: Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let key = crate::media::relay_key(&relay);
    colibri_ws(state, Path((bridge, conference, key)), query, ws).await
}

async fn colibri_ws(
    State(handle): State<BridgeHandle>,
    Path((bridge, conference, endpoint)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    if bridge != handle.bridge_id() {
        return (StatusCode::NOT_FOUND, "unknown bridge id").into_response();
    }
    let pwd = query.get("pwd").cloned().unwrap_or_default();
    let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
    let (reply_tx, reply_rx) = oneshot::channel();
    let sent = handle
        .send_command(Command::ChannelOpen {
            conference: conference.clone(),
            endpoint: endpoint.clone(),
            pwd,
            sink: tx,
            reply: reply_tx,
        })
        .await;
    if !sent {
        return (StatusCode::SERVICE_UNAVAILABLE, "bridge stopped").into_response();
    }
    let serial = match reply_rx.await {
        Ok(Ok(serial)) => serial,
        Ok(Err(refused)) => {
            tracing::debug!(%conference, %endpoint, %refused, "colibri-ws refused");
            return (StatusCode::FORBIDDEN, refused.to_string()).into_response();
        }
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "bridge stopped").into_response(),
    };
    ws.max_message_size(MAX_MESSAGE_SIZE)
        .on_upgrade(move |socket| serve_channel(socket, rx, handle, conference, endpoint, serial))
}

/// Moves messages between one endpoint's WebSocket and the bridge task.
async fn serve_channel(
    socket: WebSocket,
    mut from_bridge: mpsc::Receiver<ChannelOut>,
    handle: BridgeHandle,
    conference: String,
    endpoint: String,
    serial: u64,
) {
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            out = from_bridge.recv() => match out {
                Some(ChannelOut::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
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
                    handle.send_command(Command::ChannelMessage {
                        conference: conference.clone(),
                        endpoint: endpoint.clone(),
                        text: text.to_string(),
                    }).await;
                }
                Some(Ok(Message::Binary(_))) => {
                    handle.send_command(Command::ChannelMessage {
                        conference: conference.clone(),
                        endpoint: endpoint.clone(),
                        text: String::new(),
                    }).await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
        }
    }
    handle
        .send_command(Command::ChannelClose {
            conference,
            endpoint,
            serial,
        })
        .await;
}
