//! Operations: what supervisors, engineers and tools reach over HTTP, and the reload.
//!
//! Imports run one way: [`http`] (the router, `/health`, `/metrics`) → [`api`] (`/api`
//! and its OpenAPI document) → [`stream`] (`/api/events`) → [`access`] (tokens, who is
//! asking, JSON errors) → [`state`] (what the handlers read) → [`reload`] → [`tokens`].
//! [`pages`] serves the wallboard; [`desktop`] the agent desktop (`/agent`);
//! [`metrics`] builds the Prometheus registry; [`websocket`] carries SIP for browsers
//! (`/sip`).

pub(crate) mod access;
pub(crate) mod api;
pub(crate) mod desktop;
pub(crate) mod http;
pub(crate) mod https;
pub(crate) mod metrics;
pub(crate) mod pages;
pub(crate) mod reload;
pub(crate) mod state;
pub(crate) mod stream;
pub(crate) mod tokens;
pub(crate) mod websocket;
