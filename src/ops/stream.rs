//! `/api/events`: the queue log as a WebSocket stream.
//!
//! Each message is one committed [`Record`] as a JSON text frame:
//! `{"seq":…,"at_us":…,"kind":"call_queued","call":…,"queue":…,"agent":…,"body":{…}}`.
//! `seq` runs without gaps. A client that reconnects with `?after=SEQ` (the last `seq` it
//! saw) gets every record after it, from the store, then the live ones: nothing is missed
//! and nothing comes twice. Only committed records are sent, so whatever a client saw is
//! in the database.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use crate::ops::access::{ApiError, Principal};
use crate::ops::state::HttpState;
use crate::records::log::Feed;
use crate::records::store::Record;

/// Records read from the store per query when catching up.
const PAGE: u32 = 1000;

/// Where the stream starts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Resume {
    /// Resume after this record (the last `seq` seen; 0 is the beginning). Without it,
    /// the stream starts with what happens next.
    #[serde(default)]
    after: Option<u64>,
    /// The token, for browsers (a WebSocket cannot carry an Authorization header).
    #[serde(default)]
    #[allow(dead_code)]
    token: Option<String>,
}

/// The queue log, live, over a WebSocket (supervisors): one JSON text message per
/// committed record, `{"seq", "at_us", "kind", "call", "queue", "agent", "body"}`, `seq`
/// without gaps; reconnect with `?after=SEQ` to resume.
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(Resume),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, body = crate::ops::access::ErrorBody),
        (status = 403, body = crate::ops::access::ErrorBody)))]
pub(crate) async fn events(
    who: Principal,
    upgrade: WebSocketUpgrade,
    Query(resume): Query<Resume>,
    State(state): State<Arc<HttpState>>,
) -> Result<Response, ApiError> {
    who.supervisor()?;
    let feed = state.feed.clone();
    // Without `after`, the stream starts with what happens next.
    let after = resume.after.unwrap_or_else(|| *feed.committed.borrow());
    Ok(upgrade
        .on_upgrade(move |socket| stream(socket, feed, after))
        .into_response())
}

async fn stream(mut socket: WebSocket, feed: Feed, mut last: u64) {
    // Subscribe first, then catch up from the store: a record committed in between is in
    // both, and the sequence numbers drop the copy.
    let mut live = feed.records.subscribe();
    if catch_up(&mut socket, &feed, &mut last).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            record = live.recv() => match record {
                Ok(record) => {
                    if record.seq <= last {
                        continue;
                    }
                    if record.seq > last + 1 && catch_up(&mut socket, &feed, &mut last).await.is_err() {
                        return;
                    }
                    if record.seq == last + 1 && send(&mut socket, &record, &mut last).await.is_err() {
                        return;
                    }
                }
                // Too slow for the live feed: the store has everything that was dropped.
                Err(RecvError::Lagged(_)) => {
                    if catch_up(&mut socket, &feed, &mut last).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by axum; anything else from the client is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends every committed record after `last` from the store.
async fn catch_up(socket: &mut WebSocket, feed: &Feed, last: &mut u64) -> Result<(), ()> {
    loop {
        let committed = *feed.committed.borrow();
        if *last >= committed {
            return Ok(());
        }
        let page = match feed.store.records_after(*last, PAGE).await {
            Ok(page) => page,
            Err(error) => {
                debug!(%error, "event stream: the store could not be read");
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1011,
                        reason: "the store could not be read".into(),
                    })))
                    .await;
                return Err(());
            }
        };
        if page.is_empty() {
            return Ok(());
        }
        for record in &page {
            send(socket, record, last).await?;
        }
    }
}

async fn send(socket: &mut WebSocket, record: &Record, last: &mut u64) -> Result<(), ()> {
    let text = serde_json::to_string(record).map_err(|_| ())?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| ())?;
    *last = record.seq;
    Ok(())
}
