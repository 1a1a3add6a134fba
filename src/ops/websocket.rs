//! `/sip`: SIP over WebSocket (RFC 7118) on the HTTP listener, for agents in a browser.
//!
//! The upgrade must offer the `sip` subprotocol (RFC 7118 §4.1), and is refused to a
//! banned address. Each WebSocket message in is one SIP message for the SIP edge
//! ([`amico_sip::WebSocketFlow`]); each message the edge sends the browser goes out as one
//! text message. Everything SIP does to a phone (digest, throttles, calls, probes)
//! happens the same way over it.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::debug;

use crate::ops::https::RemoteAddr;
use crate::ops::state::HttpState;

/// The upgrade: `sip` subprotocol or 400.
pub(crate) async fn upgrade(
    upgrade: WebSocketUpgrade,
    ConnectInfo(RemoteAddr(remote)): ConnectInfo<RemoteAddr>,
    State(state): State<Arc<HttpState>>,
) -> Response {
    let upgrade = upgrade
        .protocols(["sip"])
        .max_message_size(amico_sip::websocket::MAX_MESSAGE);
    if upgrade.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            "SIP over WebSocket needs the 'sip' subprotocol (Sec-WebSocket-Protocol: sip, RFC 7118 §4.1)\n",
        )
            .into_response();
    }
    let Some(flow) = state.edge.websocket(state.http_addr, remote).await else {
        return StatusCode::FORBIDDEN.into_response();
    };
    upgrade.on_upgrade(move |socket| carry(socket, flow))
}

/// Carries SIP messages both ways until either side ends.
async fn carry(mut socket: WebSocket, mut flow: amico_sip::WebSocketFlow) {
    loop {
        tokio::select! {
            message = socket.recv() => {
                let bytes = match message {
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if let Some(answer) = flow.received(&bytes)
                    && socket.send(text(answer)).await.is_err()
                {
                    break;
                }
            }
            outgoing = flow.next() => {
                let Some(bytes) = outgoing else { break };
                if socket.send(text(bytes)).await.is_err() {
                    break;
                }
            }
        }
    }
    debug!(remote = %flow.remote(), "SIP WebSocket closed");
}

/// A SIP message as a WebSocket message: text when it is UTF-8, as SIP nearly always is
/// (RFC 7118 §5.1 allows both).
fn text(bytes: Vec<u8>) -> Message {
    match String::from_utf8(bytes) {
        Ok(text) => Message::Text(text.into()),
        Err(error) => Message::Binary(error.into_bytes().into()),
    }
}
