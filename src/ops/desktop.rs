//! The agent desktop at `/agent`: the page a browser agent works in all day, its script
//! and style (built into the binary from `web/`), JsSIP (built from `desktop/`'s lock
//! file by `scripts/desktop-bundle`, never committed, read from disk at run time), and the
//! two endpoints only the page needs.
//!
//! - `POST /agent/session`, with the agent's API token (`Authorization: Bearer TOKEN`),
//!   exchanges it for what the page needs to register the agent's softphone over
//!   `ws(s)://HOST/sip`: the agent's name, SIP user and password, and the pause reasons of
//!   `[desktop] pause_reasons`. The agent types one secret; the token already lets its
//!   holder log the agent in and out, so the SIP password it hands back grants nothing
//!   more. A supervisor token names no agent and is refused.
//! - `GET /agent/events?token=TOKEN` is a WebSocket of the agent's own desk, one JSON text
//!   message each time it changes: the agent as `/api/agents/{name}` shows it, the call it
//!   rings or talks on (caller, number dialled, queue, how long the caller waited), and
//!   the wrap-up time left. `/api/events` is the whole queue log, for supervisors; this is
//!   what an agent token may see. A desk is recomputed on every committed queue-log record
//!   and every [`REFRESH`], and sent only when it differs from the last one sent.
//!
//! The page's actions (ready, pause, log out, more wrap-up) are the API's own
//! (`/api/agents/{name}/...`), with the same token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use amico_core::{AcdSnapshot, AgentState};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::ops::access::{ApiError, Principal};
use crate::ops::pages::file;
use crate::ops::state::HttpState;
use crate::records::store::Record;

/// The page: the login form, the agent's state, the call, the wrap-up.
const HTML: &str = include_str!("../../web/agent.html");
/// The script: logs in, drives JsSIP and the API, follows the desk.
const SCRIPT: &str = include_str!("../../web/agent.js");
/// The style sheet.
const STYLE: &str = include_str!("../../web/agent.css");

/// Where `scripts/desktop-bundle` writes JsSIP when run without arguments: the build
/// tree's `target/desktop/jssip.js`, so that `cargo run` finds it from any folder. An
/// installed server names its copy in `[desktop] bundle`.
pub(crate) const DEFAULT_BUNDLE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/target/desktop/jssip.js");

/// The pause reasons offered without `[desktop] pause_reasons`.
pub(crate) const DEFAULT_PAUSE_REASONS: [&str; 5] =
    ["break", "lunch", "training", "meeting", "back_office"];

/// How often a desk is recomputed between queue-log records: the ACD publishes its
/// snapshot up to 100 ms after a change, which may come after the record.
const REFRESH: Duration = Duration::from_millis(250);

/// `[desktop]`: the agent desktop.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "DesktopFields")]
pub(crate) struct DesktopSection {
    /// The JsSIP bundle served at `/agent/jssip.js` (default [`DEFAULT_BUNDLE`]).
    pub(crate) bundle: Option<PathBuf>,
    /// The pause reason codes an agent chooses from (default [`DEFAULT_PAUSE_REASONS`]).
    pub(crate) pause_reasons: Vec<String>,
}

impl Default for DesktopSection {
    fn default() -> Self {
        DesktopSection {
            bundle: None,
            pause_reasons: DEFAULT_PAUSE_REASONS.map(str::to_owned).to_vec(),
        }
    }
}

/// `[desktop]` as written, checked into a [`DesktopSection`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DesktopFields {
    #[serde(default)]
    bundle: Option<PathBuf>,
    #[serde(default)]
    pause_reasons: Option<Vec<String>>,
}

impl TryFrom<DesktopFields> for DesktopSection {
    type Error = String;

    fn try_from(fields: DesktopFields) -> Result<Self, Self::Error> {
        let mut section = DesktopSection {
            bundle: fields.bundle,
            ..DesktopSection::default()
        };
        if let Some(reasons) = fields.pause_reasons {
            if reasons.is_empty() {
                return Err("desktop.pause_reasons: name at least one reason".into());
            }
            for (i, reason) in reasons.iter().enumerate() {
                // The API's own rule for a pause reason (POST /api/agents/{name}/pause).
                if reason.trim() != reason || reason.is_empty() || reason.chars().count() > 64 {
                    return Err(format!(
                        "desktop.pause_reasons[{i}]: '{reason}' must be 1 to 64 characters \
                         without spaces around"
                    ));
                }
                if reasons[..i].contains(reason) {
                    return Err(format!("desktop.pause_reasons[{i}]: '{reason}' is twice"));
                }
            }
            section.pause_reasons = reasons;
        }
        Ok(section)
    }
}

impl DesktopSection {
    /// The bundle's path, configured or the default.
    pub(crate) fn bundle_path(&self) -> &Path {
        self.bundle
            .as_deref()
            .unwrap_or_else(|| Path::new(DEFAULT_BUNDLE))
    }
}

/// The desktop's routes: `/agent` and its files (served as the wallboard's are),
/// `/agent/session`, `/agent/events`.
pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route(
            "/agent",
            get(|| async { file(HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/agent/agent.js",
            get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/agent/agent.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/agent/jssip.js", get(bundle))
        .route("/agent/session", post(session))
        .route("/agent/events", get(events))
        .with_state(state)
}

/// `GET /agent/jssip.js`: the bundle from disk, or 503 saying how to build it.
async fn bundle(State(state): State<Arc<HttpState>>) -> Response {
    let config = state.reloader.running();
    let path = config.desktop.bundle_path();
    match tokio::fs::read(path).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bundle_missing(path, &error),
        )
            .into_response(),
    }
}

/// What `/agent/jssip.js` says when the bundle cannot be read.
fn bundle_missing(path: &Path, error: &std::io::Error) -> String {
    format!(
        "The agent desktop's JsSIP bundle is not built: {} cannot be read ({error}). \
         Run scripts/desktop-bundle (it writes target/desktop/jssip.js), or name the file \
         in [desktop] bundle.\n",
        path.display()
    )
}

/// What the page needs to register the agent's softphone.
#[derive(Debug, Serialize)]
struct Session {
    /// The agent's name, for `/api/agents/{name}`.
    agent: String,
    /// SIP credentials for the REGISTER over `/sip`.
    sip: SipCredentials,
    /// The pause reason codes to choose from.
    pause_reasons: Vec<String>,
}

/// The agent's SIP account, as `[[agents]]` holds it.
#[derive(Debug, Serialize)]
struct SipCredentials {
    /// `sip_username`, or the agent's name.
    user: String,
    /// `sip_password`.
    password: String,
}

/// `POST /agent/session`: an agent token exchanged for its agent's SIP credentials.
async fn session(
    who: Principal,
    State(state): State<Arc<HttpState>>,
) -> Result<Response, ApiError> {
    let (token, agent) = match who {
        Principal::Agent { token, agent } => (token, agent),
        Principal::Supervisor(token) => {
            return Err(ApiError::forbidden(format!(
                "token '{token}' is a supervisor token: the agent desktop needs the agent's \
                 own token (scope = \"agent\")"
            )));
        }
    };
    let config = state.reloader.running();
    let section = config
        .agents
        .iter()
        .find(|a| a.name == agent)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "token '{token}' acts for agent '{agent}', which is not configured"
            ))
        })?;
    let body = Session {
        agent: agent.clone(),
        sip: SipCredentials {
            user: section.sip_username.clone().unwrap_or(agent),
            password: section.sip_password.clone(),
        },
        pause_reasons: config.desktop.pause_reasons.clone(),
    };
    // A password: never kept by a cache on the way.
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}

/// `/agent/events`' query: the token, which a browser cannot send as a header on a
/// WebSocket.
#[derive(Deserialize)]
struct EventsQuery {
    token: Option<String>,
}

/// `GET /agent/events?token=TOKEN`: the agent's desk, live (agent tokens only).
async fn events(
    who: Principal,
    upgrade: WebSocketUpgrade,
    Query(query): Query<EventsQuery>,
    State(state): State<Arc<HttpState>>,
) -> Result<Response, ApiError> {
    let Principal::Agent { agent, .. } = who else {
        return Err(ApiError::forbidden(
            "the desk stream is an agent's own: use the agent's token",
        ));
    };
    // The Principal came from the header or from ?token=; the stream ends when that token
    // no longer stands for this agent (a reload took it away).
    let secret = query.token.unwrap_or_default();
    Ok(upgrade
        .on_upgrade(move |socket| desk_stream(socket, state, agent, secret))
        .into_response())
}

/// The call an agent rings or talks on, as the desk shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
struct DeskCall {
    /// The ACD's id of the call.
    call: u64,
    /// `ringing` or `talking`.
    state: &'static str,
    /// The caller's From, as its trunk sent it.
    caller: Option<String>,
    /// The number dialled.
    did: Option<String>,
    /// The queue it came from.
    queue: Option<String>,
    /// Seconds the caller waited in the queue before this agent was rung (or answered).
    waited: Option<f64>,
    /// The last position announcement the caller heard: its place and the wait it was
    /// given.
    told: Option<crate::call::flow::Told>,
}

/// What a desk remembers of a call between snapshots: the ringing snapshot's queue and
/// wait, then the `call_connected` record's.
#[derive(Clone, Debug, Default)]
struct Known {
    queue: Option<String>,
    waited: Option<f64>,
}

/// Sends the agent's desk whenever it changes, until the page goes, the token stops
/// standing for the agent, or the agent is removed.
async fn desk_stream(mut socket: WebSocket, state: Arc<HttpState>, agent: String, secret: String) {
    let mut live = state.feed.records.subscribe();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut known: HashMap<u64, Known> = HashMap::new();
    let mut last_sent: Option<Value> = None;
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                if !secret.is_empty() && state.tokens.load().find(&secret).is_none_or(|p| {
                    !matches!(p, Principal::Agent { agent: ref a, .. } if *a == agent)
                }) {
                    let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1008,
                        reason: "the token is no longer valid".into(),
                    }))).await;
                    return;
                }
            }
            record = live.recv() => match record {
                Ok(record) => learn(&mut known, &record, &agent),
                // Only the snapshot matters here; a missed record loses at most a wait.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
        let snapshot = state.acd.snapshot();
        let Some(desk) = desk(&state, &snapshot, &agent, &mut known) else {
            let _ = socket
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1008,
                    reason: "the agent is no longer configured".into(),
                })))
                .await;
            return;
        };
        let unchanged = last_sent
            .as_ref()
            .is_some_and(|last| same_desk(last, &desk));
        if unchanged {
            continue;
        }
        let text = desk.to_string();
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
        last_sent = Some(desk);
    }
}

/// What a queue-log record tells a desk: the wait of a call this agent answered.
fn learn(known: &mut HashMap<u64, Known>, record: &Record, agent: &str) {
    let entry = &record.entry;
    if entry.kind != "call_connected" || entry.agent.as_deref() != Some(agent) {
        return;
    }
    let Some(call) = entry.call else { return };
    let slot = known.entry(call).or_default();
    if let Some(queue) = &entry.queue {
        slot.queue = Some(queue.clone());
    }
    if let Some(wait) = entry.body.get("wait").and_then(Value::as_f64) {
        slot.waited = Some(wait);
    }
}

/// The agent's desk now: `{"agent": AgentView, "call": DeskCall|null,
/// "wrap_up_remaining": seconds|null}`; `None` when the agent is gone.
fn desk(
    state: &HttpState,
    snapshot: &AcdSnapshot,
    agent: &str,
    known: &mut HashMap<u64, Known>,
) -> Option<Value> {
    let me = snapshot
        .agents
        .iter()
        .find(|a| a.name == agent && !a.retired)?;
    let now = state.clock.now();
    let (call, talking) = match &me.state {
        AgentState::Reserved { call } => (Some(*call), false),
        AgentState::OnCall { call } => (Some(*call), true),
        _ => (None, false),
    };
    // Only the current call is worth remembering.
    known.retain(|id, _| Some(*id) == call.map(|c| c.0));
    let call = call.map(|call| {
        let slot = known.entry(call.0).or_default();
        if let Some((queue, caller)) = snapshot.queues.iter().find_map(|q| {
            q.callers
                .iter()
                .find(|c| c.call == call)
                .map(|c| (q.name.clone(), c.waited.as_secs_f64()))
        }) {
            // The wait when the agent was rung: it would run on while ringing, and the
            // `call_connected` record gives the exact one at the answer.
            slot.queue.get_or_insert(queue);
            slot.waited.get_or_insert(caller);
        }
        let info = state.calls.get(call);
        DeskCall {
            call: call.0,
            state: if talking { "talking" } else { "ringing" },
            caller: info.as_ref().map(|i| i.caller.clone()),
            told: info.as_ref().and_then(|i| i.told),
            did: info.map(|i| i.did),
            queue: slot.queue.clone(),
            waited: slot.waited,
        }
    });
    let wrap_up_remaining = match &me.state {
        AgentState::WrapUp { until } => Some(until.saturating_since(now).as_secs_f64()),
        _ => None,
    };
    Some(serde_json::json!({
        "agent": crate::ops::api::agent_view(state, me),
        "call": call,
        "wrap_up_remaining": wrap_up_remaining,
    }))
}

/// Two desks show the same thing: all but the times that run on by themselves.
fn same_desk(a: &Value, b: &Value) -> bool {
    let steady = |desk: &Value| {
        let mut desk = desk.clone();
        if let Some(agent) = desk.get_mut("agent").and_then(Value::as_object_mut) {
            agent.remove("seconds_in_state");
        }
        if let Some(object) = desk.as_object_mut() {
            object.remove("wrap_up_remaining");
        }
        desk
    };
    steady(a) == steady(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<DesktopSection, String> {
        #[derive(Deserialize)]
        struct File {
            desktop: DesktopSection,
        }
        toml::from_str::<File>(text)
            .map(|f| f.desktop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_name_the_build_tree_bundle_and_five_reasons() {
        let desktop = DesktopSection::default();
        assert!(desktop.bundle_path().ends_with("target/desktop/jssip.js"));
        assert_eq!(desktop.pause_reasons.len(), 5);
        let desktop = section("[desktop]\n").expect("an empty table");
        assert_eq!(
            desktop.pause_reasons,
            DesktopSection::default().pause_reasons
        );
    }

    #[test]
    fn configured_reasons_and_bundle_are_taken_and_bad_ones_named() {
        let desktop =
            section("[desktop]\nbundle = \"/srv/jssip.js\"\npause_reasons = [\"pranzo\"]\n")
                .expect("valid");
        assert_eq!(desktop.bundle_path(), Path::new("/srv/jssip.js"));
        assert_eq!(desktop.pause_reasons, ["pranzo"]);
        for (text, says) in [
            ("pause_reasons = []", "at least one"),
            ("pause_reasons = [\"\"]", "pause_reasons[0]"),
            ("pause_reasons = [\"a\", \" b\"]", "pause_reasons[1]"),
            ("pause_reasons = [\"a\", \"a\"]", "twice"),
            ("colour = \"red\"", "unknown field"),
        ] {
            let error = section(&format!("[desktop]\n{text}\n")).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_missing_bundle_says_how_to_build_it() {
        let error = std::io::Error::from(std::io::ErrorKind::NotFound);
        let said = bundle_missing(Path::new("/nowhere/jssip.js"), &error);
        assert!(said.contains("scripts/desktop-bundle"), "{said}");
        assert!(said.contains("/nowhere/jssip.js"), "{said}");
        assert!(said.contains("[desktop] bundle"), "{said}");
    }

    #[test]
    fn a_file_carries_its_type_and_no_cache() {
        let response = file(SCRIPT, "text/javascript; charset=utf-8");
        let headers = response.headers();
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn the_page_loads_only_what_amico_serves() {
        for source in [
            r#"src="/agent/jssip.js""#,
            r#"src="/agent/agent.js""#,
            r#"href="/agent/agent.css""#,
        ] {
            assert!(HTML.contains(source), "{source} is missing from the page");
        }
        // Nothing from elsewhere: an agent's PC may reach only the contact centre.
        for text in [HTML, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }

    #[test]
    fn desks_differ_only_by_what_they_show() {
        let a = serde_json::json!({"agent": {"state": "paused", "seconds_in_state": 1.0},
            "call": null, "wrap_up_remaining": null});
        let b = serde_json::json!({"agent": {"state": "paused", "seconds_in_state": 9.0},
            "call": null, "wrap_up_remaining": null});
        let c = serde_json::json!({"agent": {"state": "available", "seconds_in_state": 0.0},
            "call": null, "wrap_up_remaining": null});
        assert!(same_desk(&a, &b));
        assert!(!same_desk(&a, &c));
    }
}
