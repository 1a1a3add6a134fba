//! The HTTP surface: `/health`, `/metrics`, and the API under `/api` (see [`crate::api`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;

/// What the handlers read.
pub(crate) struct HttpState {
    pub(crate) registry: Registry,
    pub(crate) acd: crate::runner::AcdHandle,
    pub(crate) sip_udp: std::net::SocketAddr,
    pub(crate) sip_tcp: std::net::SocketAddr,
    /// Calls in progress.
    pub(crate) calls: Arc<crate::callflow::Calls>,
    /// Committed queue-log records.
    pub(crate) feed: crate::events::Feed,
    /// Who may use the API (replaced by a reload).
    pub(crate) tokens: Arc<arc_swap::ArcSwap<crate::api::Tokens>>,
    /// Each queue's thresholds by name, for statistics from the store.
    pub(crate) thresholds: Arc<arc_swap::ArcSwap<HashMap<String, amico_core::Thresholds>>>,
    /// Applies the configuration file again.
    pub(crate) reloader: Arc<crate::reload::Reloader>,
    /// The ACD's clock, to show its times in UTC.
    pub(crate) clock: crate::runner::Clock,
    /// Each queue's figures since midnight.
    pub(crate) today: crate::today::Today,
    /// The contact centre's time zone (`[reports] time_zone`).
    pub(crate) zone: jiff::tz::TimeZone,
}

pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(crate::api::router(state))
        .merge(crate::web::router())
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
