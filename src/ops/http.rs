//! The HTTP surface: `/health`, `/metrics`, SIP over WebSocket at `/sip`, and the API
//! under `/api` (see [`crate::ops::api`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::ops::state::HttpState;

pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/sip", get(crate::ops::websocket::upgrade))
        .with_state(state.clone())
        .merge(crate::ops::api::router(state.clone()))
        .merge(crate::ops::pages::router())
        .merge(crate::ops::desktop::router(state))
}

async fn health(State(state): State<Arc<HttpState>>) -> Response {
    let snapshot = state.acd.snapshot();
    let logged_in = snapshot
        .agents
        .iter()
        .filter(|a| a.state != amico_core::AgentState::LoggedOut)
        .count();
    let body = json!({
        "status": "ok",
        "sip": { "udp": state.sip_udp.to_string(), "tcp": state.sip_tcp.to_string() },
        "agents_logged_in": logged_in,
        "calls": state.calls.active(),
        "queues": snapshot.queues.iter().map(|q| json!({ "name": q.name, "waiting": q.waiting, "ringing": q.ringing })).collect::<Vec<_>>(),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        )
            .into_response(),
    }
}
