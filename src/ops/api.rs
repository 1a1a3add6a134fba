//! The HTTP API under `/api`: agents, queues, calls, statistics, and the event stream.
//!
//! Every route is declared with its OpenAPI description ([`utoipa`]), and the document is
//! served at `/api/openapi.json`, so the two cannot drift apart. Callers authenticate with
//! a token from `[[api.tokens]]`: `Authorization: Bearer TOKEN`, or `?token=TOKEN` where a
//! browser cannot set a header (WebSockets). A `supervisor` token may do everything; an
//! `agent` token reads agents and queues and changes its own agent only. Every error is
//! JSON, `{"error": {"code": "...", "message": "..."}}`, and its message names what is
//! wrong.

use std::sync::Arc;

use amico_core::metrics::{DistributionSummary, QueueSummary, SurveyCounts};
use amico_core::{AcdSnapshot, AgentId, AgentState, CallId, Input, QueueSnapshot};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ops::access::{ApiError, Body, ErrorBody, ErrorDetail, Principal, named};
use crate::ops::state::HttpState;

/// The document's frame; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Amico",
        description = "The HTTP API of Amico, an ACD engine: agents, queues, calls, \
                       statistics and the event stream. Authenticate with a token from \
                       `[[api.tokens]]` as `Authorization: Bearer TOKEN`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "agents", description = "Agents and their states"),
        (name = "queues", description = "Queues, live"),
        (name = "calls", description = "Calls in progress"),
        (name = "statistics", description = "Statistics by interval, from the store"),
        (name = "events", description = "The queue log, live"),
        (name = "configuration", description = "Reloading the configuration")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The `/api` routes and their OpenAPI document.
pub(crate) fn router(state: Arc<HttpState>) -> axum::Router {
    let (router, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_agents))
        .routes(routes!(get_agent))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(ready))
        .routes(routes!(pause))
        .routes(routes!(extend_wrap_up))
        .routes(routes!(list_queues))
        .routes(routes!(get_queue, update_queue))
        .routes(routes!(list_calls))
        .routes(routes!(get_call, hang_up))
        .routes(routes!(move_call))
        .routes(routes!(set_priority))
        .routes(routes!(reload))
        .routes(routes!(statistics))
        .routes(routes!(crate::ops::stream::events))
        .split_for_parts();
    let document = Arc::new(document);
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such API route (see /api/openapi.json)",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method (see /api/openapi.json)",
            )
        })
        .with_state(state)
}

// ---------------------------------------------------------------------------------------
// Views

/// Survey counts and shares.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SurveyView {
    satisfied: u64,
    sufficient: u64,
    unsatisfied: u64,
    /// Surveys played without a vote in time.
    no_vote: u64,
    /// Shares of the votes cast (surveys without a vote left out); null without votes.
    satisfied_share: Option<f64>,
    sufficient_share: Option<f64>,
    unsatisfied_share: Option<f64>,
}

impl From<SurveyCounts> for SurveyView {
    fn from(s: SurveyCounts) -> Self {
        let shares = s.shares();
        SurveyView {
            satisfied: s.satisfied,
            sufficient: s.sufficient,
            unsatisfied: s.unsatisfied,
            no_vote: s.no_vote,
            satisfied_share: shares.map(|x| x.0),
            sufficient_share: shares.map(|x| x.1),
            unsatisfied_share: shares.map(|x| x.2),
        }
    }
}

/// An agent, live.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentView {
    name: String,
    /// `logged_out`, `available`, `reserved` (ringing), `on_call`, `wrap_up` or `paused`.
    state: String,
    /// The pause reason, when paused.
    reason: Option<String>,
    /// The call it rings or talks on.
    call: Option<u64>,
    /// When it entered its state (RFC 3339, UTC).
    since: String,
    /// Seconds in its state so far.
    seconds_in_state: f64,
    /// When its wrap-up ends.
    wrap_up_until: Option<String>,
    /// Calls answered since it logged in.
    calls_answered: u32,
    survey: SurveyView,
}

fn rfc3339(utc_us: i64) -> String {
    jiff::Timestamp::from_microsecond(utc_us)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub(crate) fn agent_view(state: &HttpState, agent: &amico_core::AgentSnapshot) -> AgentView {
    let status = serde_json::to_value(agent.state.status())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let (reason, call, until) = match &agent.state {
        AgentState::Paused { reason } => (Some(reason.clone()), None, None),
        AgentState::Reserved { call } | AgentState::OnCall { call } => (None, Some(call.0), None),
        AgentState::WrapUp { until } => (None, None, Some(rfc3339(state.clock.utc_micros(*until)))),
        _ => (None, None, None),
    };
    AgentView {
        name: agent.name.clone(),
        state: status,
        reason,
        call,
        since: rfc3339(state.clock.utc_micros(agent.since)),
        // Now, not when the snapshot was taken (up to 100 ms earlier).
        seconds_in_state: state
            .clock
            .now()
            .saturating_since(agent.since)
            .as_secs_f64(),
        wrap_up_until: until,
        calls_answered: agent.calls_answered,
        survey: agent.survey.into(),
    }
}

/// Agents of a queue by state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentCountsView {
    logged_in: u32,
    available: u32,
    reserved: u32,
    on_call: u32,
    wrap_up: u32,
    paused: u32,
}

/// Percentiles of a distribution, in seconds.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PercentilesView {
    count: u64,
    mean: Option<f64>,
    p50: f64,
    p90: f64,
    p95: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl From<&DistributionSummary> for PercentilesView {
    fn from(d: &DistributionSummary) -> Self {
        PercentilesView {
            count: d.count,
            mean: d.mean.map(|m| m.as_secs_f64()),
            p50: d.p50.as_secs_f64(),
            p90: d.p90.as_secs_f64(),
            p95: d.p95.as_secs_f64(),
            p99: d.p99.as_secs_f64(),
            p999: d.p999.as_secs_f64(),
            max: d.max.as_secs_f64(),
        }
    }
}

/// A queue's statistics over a span: counts, the derived figures (formulas in
/// `amico_core::metrics` and in `GET /api/stats`), and wait percentiles.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsView {
    offered: u64,
    answered: u64,
    abandoned: u64,
    short_abandoned: u64,
    abandoned_after_threshold: u64,
    overflowed: u64,
    /// Moved to another queue by a supervisor.
    transferred: u64,
    /// Ended by a supervisor before an answer; not abandons, outside every rate.
    removed: u64,
    answered_within_sl: u64,
    callbacks_requested: u64,
    callbacks_unanswered: u64,
    /// abandoned / (answered + abandoned)
    abandon_rate: Option<f64>,
    /// abandoned after the threshold (47 s) / (answered + abandoned)
    abandon_after_threshold_rate: Option<f64>,
    /// answered within T / (answered + abandoned − short abandons)
    service_level: Option<f64>,
    /// (answered within T + abandoned within T) / (answered + abandoned)
    service_level_abandons_met: Option<f64>,
    /// Average speed of answer, seconds.
    asa: Option<f64>,
    /// Average handle time (talk + wrap-up), seconds.
    aht: Option<f64>,
    wait: PercentilesView,
    time_to_abandon: PercentilesView,
    survey: SurveyView,
}

impl From<&QueueSummary> for StatsView {
    fn from(s: &QueueSummary) -> Self {
        let (c, r) = (&s.counters, &s.rates);
        StatsView {
            offered: c.offered,
            answered: c.answered,
            abandoned: c.abandoned,
            short_abandoned: c.short_abandoned,
            abandoned_after_threshold: c.abandoned_after_threshold,
            overflowed: c.overflowed,
            transferred: c.transferred,
            removed: c.removed,
            answered_within_sl: c.answered_within_sl,
            callbacks_requested: c.callbacks_requested,
            callbacks_unanswered: c.callbacks_unanswered,
            abandon_rate: r.abandon_rate,
            abandon_after_threshold_rate: r.abandon_after_threshold_rate,
            service_level: r.service_level,
            service_level_abandons_met: r.service_level_abandons_met,
            asa: r.asa.map(|d| d.as_secs_f64()),
            aht: r.aht.map(|d| d.as_secs_f64()),
            wait: (&s.wait).into(),
            time_to_abandon: (&s.abandon).into(),
            survey: c.survey.into(),
        }
    }
}

/// A queue at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueBrief {
    name: String,
    /// Callers waiting for an agent.
    waiting: u32,
    /// Callers ringing an agent.
    ringing: u32,
    /// The longest current wait, seconds.
    longest_wait: f64,
    agents: AgentCountsView,
    /// Since the last midnight in `[reports] time_zone`, from the stored queue log: what
    /// `GET /api/stats` gives for today, across restarts.
    today: StatsView,
    /// When today began (RFC 3339, UTC).
    today_since: String,
}

/// A caller in a queue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallerView {
    call: u64,
    /// 1 for the first in line; null while ringing an agent.
    position: Option<u32>,
    priority: u8,
    /// Seconds in this queue so far.
    waited: f64,
    /// Expected further wait, seconds; null when nobody who could answer is working.
    estimated_wait: Option<f64>,
    /// The agent it rings.
    ringing: Option<String>,
    /// The caller's identity, as its trunk sent it.
    caller: Option<String>,
    /// The number dialled.
    did: Option<String>,
}

/// A queue, live: its callers, its agents and its figures.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueView {
    #[serde(flatten)]
    brief: QueueBrief,
    /// Callers in line order, ringing ones last.
    callers: Vec<CallerView>,
    /// Agents serving the queue, each counted by its share when it serves several.
    staffed: f64,
    /// The current statistics interval.
    interval: StatsView,
    /// When the current interval began (RFC 3339, UTC).
    interval_start: String,
}

fn queue_brief(queue: &QueueSnapshot, today: &crate::records::today::DayView) -> QueueBrief {
    let a = queue.agents;
    let empty = amico_core::metrics::QueueSummary::default();
    QueueBrief {
        name: queue.name.clone(),
        waiting: queue.waiting,
        ringing: queue.ringing,
        longest_wait: queue.longest_wait.as_secs_f64(),
        agents: AgentCountsView {
            logged_in: a.logged_in,
            available: a.available,
            reserved: a.reserved,
            on_call: a.on_call,
            wrap_up: a.wrap_up,
            paused: a.paused,
        },
        today: today.queues.get(&queue.name).unwrap_or(&empty).into(),
        today_since: rfc3339(today.since_us),
    }
}

/// A call in progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallView {
    call: u64,
    caller: String,
    did: String,
    trunk: String,
    /// When it arrived (RFC 3339, UTC).
    arrived: String,
    /// `waiting`, `ringing`, `talking`, or `other` (the survey, a goodbye, a callback being
    /// dialled).
    state: String,
    queue: Option<String>,
    /// The agent it rings or talks to.
    agent: Option<String>,
    /// Its place in line while waiting.
    position: Option<u32>,
    /// The last position announcement the caller heard (none before the first).
    told: Option<ToldView>,
}

/// What a position announcement told the caller.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ToldView {
    /// Its place in line.
    position: u32,
    /// The estimated wait it was given, seconds (none when the estimate was not said).
    estimated_wait: Option<f64>,
    /// How many position announcements it heard in all.
    announcements: u32,
}

impl From<crate::call::flow::Told> for ToldView {
    fn from(told: crate::call::flow::Told) -> Self {
        ToldView {
            position: told.position,
            estimated_wait: told.estimated_wait,
            announcements: told.announcements,
        }
    }
}

fn call_view(info: &crate::call::flow::CallInfo, snapshot: &AcdSnapshot) -> CallView {
    let mut view = CallView {
        call: info.call.0,
        caller: info.caller.clone(),
        did: info.did.clone(),
        trunk: info.trunk.clone(),
        arrived: rfc3339(info.arrived_us),
        state: "other".into(),
        queue: None,
        agent: None,
        position: None,
        told: info.told.map(ToldView::from),
    };
    let agent_name = |id: AgentId| snapshot.agents.get(id.index()).map(|a| a.name.clone());
    for queue in &snapshot.queues {
        if let Some(caller) = queue.callers.iter().find(|c| c.call == info.call) {
            view.queue = Some(queue.name.clone());
            view.position = caller.position;
            view.state = if caller.ringing.is_some() {
                "ringing"
            } else {
                "waiting"
            }
            .into();
            view.agent = caller.ringing.and_then(agent_name);
            return view;
        }
    }
    if let Some(agent) = snapshot
        .agents
        .iter()
        .find(|a| matches!(a.state, AgentState::OnCall { call } if call == info.call))
    {
        view.state = "talking".into();
        view.agent = Some(agent.name.clone());
    }
    view
}

// ---------------------------------------------------------------------------------------
// Handlers: agents

fn find_agent<'a>(
    snapshot: &'a AcdSnapshot,
    name: &str,
) -> Result<&'a amico_core::AgentSnapshot, ApiError> {
    snapshot
        .agents
        .iter()
        .find(|a| a.name == name && !a.retired)
        .ok_or_else(|| ApiError::not_found(format!("agent '{name}' does not exist")))
}

/// Every agent with its state.
#[utoipa::path(get, path = "/api/agents", tag = "agents",
    responses((status = 200, body = Vec<AgentView>), (status = 401, body = ErrorBody)))]
async fn list_agents(
    _who: Principal,
    State(state): State<Arc<HttpState>>,
) -> axum::Json<Vec<AgentView>> {
    let snapshot = state.acd.snapshot();
    axum::Json(
        snapshot
            .agents
            .iter()
            .filter(|a| !a.retired)
            .map(|a| agent_view(&state, a))
            .collect(),
    )
}

/// One agent.
#[utoipa::path(get, path = "/api/agents/{name}", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
async fn get_agent(
    _who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<AgentView>, ApiError> {
    let snapshot = state.acd.snapshot();
    let agent = find_agent(&snapshot, &name)?;
    Ok(axum::Json(agent_view(&state, agent)))
}

/// Applies an agent action and answers with the agent's new state.
async fn act(
    who: &Principal,
    state: &HttpState,
    name: &str,
    input: impl FnOnce(AgentId) -> Input,
) -> Result<axum::Json<AgentView>, ApiError> {
    who.may_act_for(name)?;
    let snapshot = state.acd.snapshot();
    let id = find_agent(&snapshot, name)?.id;
    state
        .acd
        .request(input(id))
        .await
        .map_err(|refused| ApiError::refused(refused, &snapshot))?;
    let snapshot = state.acd.snapshot();
    let agent = find_agent(&snapshot, name)?;
    Ok(axum::Json(agent_view(state, agent)))
}

/// Logs the agent in (available for calls). Registering its phone does this too.
#[utoipa::path(post, path = "/api/agents/{name}/login", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn login(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<AgentView>, ApiError> {
    act(&who, &state, &name, |agent| Input::Login { agent }).await
}

/// Logs the agent out; a call it rings goes back to its place.
#[utoipa::path(post, path = "/api/agents/{name}/logout", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn logout(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<AgentView>, ApiError> {
    act(&who, &state, &name, |agent| Input::Logout { agent }).await
}

/// Makes the agent available: ends a pause or a wrap-up.
#[utoipa::path(post, path = "/api/agents/{name}/ready", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ready(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<AgentView>, ApiError> {
    act(&who, &state, &name, |agent| Input::Ready { agent }).await
}

/// A pause and its reason code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseBody {
    /// The reason code (`lunch`, `training`, ...): 1 to 64 characters.
    reason: String,
}

/// Pauses the agent with a reason code.
#[utoipa::path(post, path = "/api/agents/{name}/pause", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    request_body = PauseBody,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn pause(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    Body(body): Body<PauseBody>,
) -> Result<axum::Json<AgentView>, ApiError> {
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "reason: a pause needs a reason code of 1 to 64 characters",
        ));
    }
    act(&who, &state, &name, |agent| Input::Pause { agent, reason }).await
}

/// More wrap-up time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrapUpBody {
    /// Seconds to add to the wrap-up, above 0 and at most 3600.
    extend: f64,
}

/// Gives an agent in wrap-up more time.
#[utoipa::path(post, path = "/api/agents/{name}/wrap-up", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    request_body = WrapUpBody,
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The agent is not in wrap-up")))]
async fn extend_wrap_up(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    Body(body): Body<WrapUpBody>,
) -> Result<axum::Json<AgentView>, ApiError> {
    if !(body.extend.is_finite() && body.extend > 0.0 && body.extend <= 3600.0) {
        return Err(ApiError::bad_request(format!(
            "extend: {} is not a number of seconds above 0 and at most 3600",
            body.extend
        )));
    }
    let by = std::time::Duration::from_secs_f64(body.extend);
    act(&who, &state, &name, |agent| Input::ExtendWrapUp {
        agent,
        by,
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Handlers: queues

/// Every queue at a glance.
#[utoipa::path(get, path = "/api/queues", tag = "queues",
    responses((status = 200, body = Vec<QueueBrief>), (status = 401, body = ErrorBody)))]
async fn list_queues(
    _who: Principal,
    State(state): State<Arc<HttpState>>,
) -> axum::Json<Vec<QueueBrief>> {
    let snapshot = state.acd.snapshot();
    let today = state.today.load();
    axum::Json(
        snapshot
            .queues
            .iter()
            .filter(|q| !q.closed)
            .map(|queue| queue_brief(queue, &today))
            .collect(),
    )
}

/// A queue, live: waiting callers with their wait and estimated wait, agents by state,
/// service level, abandonment, abandonment after the threshold, wait percentiles.
#[utoipa::path(get, path = "/api/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "The queue's name")),
    responses((status = 200, body = QueueView), (status = 404, body = ErrorBody)))]
async fn get_queue(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
) -> Result<axum::Json<QueueView>, ApiError> {
    let snapshot = state.acd.snapshot();
    let queue = find_queue(&snapshot, &name)?;
    // Callers' identities are for supervisors.
    let identities = who.supervisor().is_ok();
    let callers = queue
        .callers
        .iter()
        .map(|c| {
            let info = identities.then(|| state.calls.get(c.call)).flatten();
            CallerView {
                call: c.call.0,
                position: c.position,
                priority: c.priority,
                waited: c.waited.as_secs_f64(),
                estimated_wait: c.estimated_wait.map(|d| d.as_secs_f64()),
                ringing: c
                    .ringing
                    .and_then(|a| snapshot.agents.get(a.index()).map(|a| a.name.clone())),
                caller: info.as_ref().map(|i| i.caller.clone()),
                did: info.map(|i| i.did),
            }
        })
        .collect();
    Ok(axum::Json(QueueView {
        brief: queue_brief(queue, &state.today.load()),
        callers,
        staffed: queue.staffed,
        interval: (&queue.interval).into(),
        interval_start: rfc3339(state.clock.utc_micros(queue.interval_start)),
    }))
}

/// Changes a queue while it runs (supervisors). The body holds only what changes, with the
/// configuration file's field names and units (seconds): `skills`, `strategy`, `weight`,
/// `ring_timeout`, `retry_after`, `wrap_up`, `auto_pause_after`, `max_callers`,
/// `max_wait`, `overflow`, `when_no_agents`, `expansion`, `thresholds`,
/// `expected_handle_time`, `callback_attempts`, `callback_retry_after`; `null` clears
/// `auto_pause_after`, `max_callers` or `max_wait`. Waiting callers who now match a free
/// agent are offered at once; a lower `max_wait` applies to callers already waiting.
#[utoipa::path(patch, path = "/api/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "The queue's name")),
    request_body(content = serde_json::Value, description = "The fields that change",
        example = json!({"max_wait": 300, "skills": [{"skill": "general", "min_level": 3}]})),
    responses((status = 200, body = QueueView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn update_queue(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    Body(update): Body<amico_core::QueueUpdate>,
) -> Result<axum::Json<QueueView>, ApiError> {
    who.supervisor()?;
    let snapshot = state.acd.snapshot();
    let queue = find_queue(&snapshot, &name)?.id;
    let thresholds = update.thresholds;
    state
        .acd
        .request(Input::UpdateQueue { queue, update })
        .await
        .map_err(|refused| ApiError::refused(refused, &snapshot))?;
    // Reports from the store classify waits with the new thresholds from now on.
    if let Some(thresholds) = thresholds {
        let mut all = state.thresholds.load().as_ref().clone();
        all.insert(name.clone(), thresholds);
        state.thresholds.store(Arc::new(all));
    }
    get_queue(who, State(state), Path(name)).await
}

fn find_queue<'a>(snapshot: &'a AcdSnapshot, name: &str) -> Result<&'a QueueSnapshot, ApiError> {
    snapshot
        .queues
        .iter()
        .find(|q| q.name == name && !q.closed)
        .ok_or_else(|| ApiError::not_found(format!("queue '{name}' does not exist")))
}

// ---------------------------------------------------------------------------------------
// Handlers: calls

fn call_id(text: &str) -> Result<CallId, ApiError> {
    text.parse::<u64>()
        .map(CallId)
        .map_err(|_| ApiError::bad_request(format!("call id '{text}' is not a number")))
}

/// Every call in progress (supervisors).
#[utoipa::path(get, path = "/api/calls", tag = "calls",
    responses((status = 200, body = Vec<CallView>), (status = 403, body = ErrorBody)))]
async fn list_calls(
    who: Principal,
    State(state): State<Arc<HttpState>>,
) -> Result<axum::Json<Vec<CallView>>, ApiError> {
    who.supervisor()?;
    let snapshot = state.acd.snapshot();
    Ok(axum::Json(
        state
            .calls
            .list()
            .iter()
            .map(|info| call_view(info, &snapshot))
            .collect(),
    ))
}

/// One call in progress (supervisors).
#[utoipa::path(get, path = "/api/calls/{id}", tag = "calls",
    params(("id" = u64, Path, description = "The call's id")),
    responses((status = 200, body = CallView), (status = 404, body = ErrorBody)))]
async fn get_call(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<axum::Json<CallView>, ApiError> {
    who.supervisor()?;
    let call = call_id(&id)?;
    let info = state
        .calls
        .get(call)
        .ok_or_else(|| ApiError::not_found(format!("call {id} is not in progress")))?;
    Ok(axum::Json(call_view(&info, &state.acd.snapshot())))
}

/// Hangs a call up at once (supervisors). A call not yet answered counts as removed, not
/// abandoned: outside every rate. An answered call completes as usual.
#[utoipa::path(delete, path = "/api/calls/{id}", tag = "calls",
    params(("id" = u64, Path, description = "The call's id")),
    responses((status = 204, description = "The call is being ended"),
        (status = 404, body = ErrorBody)))]
async fn hang_up(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    who.supervisor()?;
    let call = call_id(&id)?;
    if state.calls.hang_up(call) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("call {id} is not in progress")))
    }
}

/// Where a waiting caller goes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    /// The queue's name.
    queue: String,
}

/// Moves a waiting (or ringing) caller to another queue (supervisors). It keeps its
/// arrival time for its place in line; the queue it left counts it as transferred, the new
/// one as offered, and its wait there counts from the move.
#[utoipa::path(post, path = "/api/calls/{id}/move", tag = "calls",
    params(("id" = u64, Path, description = "The call's id")),
    request_body = MoveBody,
    responses((status = 200, body = CallView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not waiting, the same queue, full, \
            or nobody there to answer")))]
async fn move_call(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    Body(body): Body<MoveBody>,
) -> Result<axum::Json<CallView>, ApiError> {
    who.supervisor()?;
    let call = call_id(&id)?;
    let snapshot = state.acd.snapshot();
    let queue = find_queue(&snapshot, &body.queue)
        .map_err(|_| ApiError::bad_request(format!("queue: '{}' does not exist", body.queue)))?
        .id;
    state
        .acd
        .request(Input::MoveCall { call, queue })
        .await
        .map_err(|refused| ApiError::refused(refused, &snapshot))?;
    get_call(who, State(state), Path(id)).await
}

/// A caller's new priority.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriorityBody {
    /// 0 (the default) to 255; higher is served first.
    priority: u8,
}

/// Changes a waiting caller's priority (supervisors); its place in line follows.
#[utoipa::path(post, path = "/api/calls/{id}/priority", tag = "calls",
    params(("id" = u64, Path, description = "The call's id")),
    request_body = PriorityBody,
    responses((status = 200, body = CallView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn set_priority(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    Body(body): Body<PriorityBody>,
) -> Result<axum::Json<CallView>, ApiError> {
    who.supervisor()?;
    let call = call_id(&id)?;
    let snapshot = state.acd.snapshot();
    state
        .acd
        .request(Input::SetPriority {
            call,
            priority: body.priority,
        })
        .await
        .map_err(|refused| ApiError::refused(refused, &snapshot))?;
    get_call(who, State(state), Path(id)).await
}

// ---------------------------------------------------------------------------------------
// Handlers: configuration

/// Reads the configuration file again and applies it without dropping calls
/// (supervisors); `SIGHUP` does the same. Queues and agents are matched by name; a bad file
/// is refused with the reason, and the running configuration stays.
#[utoipa::path(post, path = "/api/config/reload", tag = "configuration",
    responses((status = 200, body = crate::ops::reload::Reloaded),
        (status = 400, body = ErrorBody, description = "The file is wrong; the message names the field"),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "No file to read, or the ACD refused it")))]
async fn reload(
    who: Principal,
    State(state): State<Arc<HttpState>>,
) -> Result<axum::Json<crate::ops::reload::Reloaded>, ApiError> {
    use crate::ops::reload::ReloadError;
    who.supervisor()?;
    let snapshot = state.acd.snapshot();
    state
        .reloader
        .reload()
        .await
        .map(axum::Json)
        .map_err(|error| {
            let (status, code) = match &error {
                ReloadError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                ReloadError::NoFile | ReloadError::Refused(_) => (StatusCode::CONFLICT, "conflict"),
            };
            ApiError::new(status, code, named(&error.to_string(), &snapshot))
        })
}

// ---------------------------------------------------------------------------------------
// Handlers: statistics

/// Which statistics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// Start: `2026-11-26`, `2026-11-26T08:30` (in `tz`) or `2026-11-26T08:30:00Z`.
    /// Default: today's midnight.
    from: Option<String>,
    /// End (not included), in the same forms. Default: now.
    to: Option<String>,
    /// `15m` (default), `30m`, `1h`, `day`, or `none` for the totals only.
    interval: Option<String>,
    /// Time zone (IANA name) for dates and intervals. Default: `[reports] time_zone`, else
    /// the system's.
    tz: Option<String>,
    /// `queue`, `agent` or `both` (default).
    by: Option<String>,
}

/// Statistics per queue and per agent, by interval and for the whole period, replayed
/// from the store with the live ACD's own code; the response names every formula.
#[utoipa::path(get, path = "/api/stats", tag = "statistics",
    params(StatsQuery),
    responses((status = 200, description = "The report: `from`, `to`, `time_zone`, \
        `interval_secs`, `formulas`, `queues` and `agents` rows (as `amico report --format \
        json`)", body = serde_json::Value),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn statistics(
    who: Principal,
    State(state): State<Arc<HttpState>>,
    Query(query): Query<StatsQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    use crate::records::history;
    who.supervisor()?;
    let zone = match &query.tz {
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|e| ApiError::bad_request(format!("tz: '{name}': {e}")))?,
        None => state.zone.clone(),
    };
    let now = jiff::Timestamp::now().to_zoned_datetime(zone.clone());
    let from = match &query.from {
        Some(text) => history::parse_time(text, &zone)
            .map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
        None => now
            .start_of_day()
            .map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
    };
    let to = match &query.to {
        Some(text) => history::parse_time(text, &zone)
            .map_err(|e| ApiError::bad_request(format!("to: {e}")))?,
        None => now,
    };
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from ({from}) must be before to ({to})"
        )));
    }
    let interval = history::parse_interval(query.interval.as_deref().unwrap_or("15m"))
        .map_err(|e| ApiError::bad_request(format!("interval: {e}")))?;
    let by = match query.by.as_deref().unwrap_or("both") {
        "queue" => history::By::Queue,
        "agent" => history::By::Agent,
        "both" => history::By::Both,
        other => {
            return Err(ApiError::bad_request(format!(
                "by: '{other}' is not queue, agent or both"
            )));
        }
    };
    let request = history::Request {
        database: String::new(),
        from,
        to,
        interval: interval.0,
        thresholds: state.thresholds.load().as_ref().clone(),
        by,
        format: history::Format::Json,
    };
    history::check_period(&request).map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let report = history::from_store(&state.feed.store, &request)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the store could not be read: {e:#}"),
            )
        })?;
    serde_json::to_value(&report)
        .map(axum::Json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}
