//! `amico report`: interval and daily reports from the store.
//!
//! The stored queue log is replayed through the core's [`Tally`], which counts with the
//! same code as the live ACD, so a report's figures are the ones `/metrics` showed at the
//! time, by the same formulas (named in the JSON output and in `amico_core::metrics`).
//! Intervals are aligned in the report's time zone (local midnight for `day`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use amico_core::metrics::{AgentFigures, Counters, QueueSummary, SurveyCounts};
use amico_core::tally::Tally;
use amico_core::{AgentId, AgentStatus, Event, QueueId, Thresholds, Timestamp};
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::records::store::{Record, Store};

/// How a report is asked for.
#[derive(Debug)]
pub(crate) struct Request {
    /// The database setting (`sqlite:FILE` or `postgres://…`).
    pub(crate) database: String,
    /// Start of the period (inclusive) and its end (exclusive).
    pub(crate) from: jiff::ZonedDateTime,
    pub(crate) to: jiff::ZonedDateTime,
    /// Interval length; `None`: only the period's totals.
    pub(crate) interval: Option<Duration>,
    /// Thresholds by queue name; others get the defaults.
    pub(crate) thresholds: HashMap<String, Thresholds>,
    /// Which rows.
    pub(crate) by: By,
    /// Output format.
    pub(crate) format: Format,
}

/// Rows per queue, per agent, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum By {
    /// Queues.
    Queue,
    /// Agents.
    Agent,
    /// Queues, then agents (not with --format csv).
    Both,
}

/// How the report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A readable table.
    Table,
    /// Comma-separated values with a header line (one kind of row: --by queue or agent).
    Csv,
    /// One JSON object.
    Json,
}

/// Parses a report time in `zone`: `2026-11-26` (midnight), `2026-11-26T08:30[:00]`, or an
/// RFC 3339 instant with its offset (`2026-11-26T08:30:00Z`).
pub(crate) fn parse_time(
    text: &str,
    zone: &jiff::tz::TimeZone,
) -> anyhow::Result<jiff::ZonedDateTime> {
    let text = text.trim();
    if let Ok(instant) = text.parse::<jiff::Timestamp>() {
        return Ok(instant.to_zoned_datetime(zone.clone()));
    }
    if let Ok(datetime) = text.parse::<jiff::civil::DateTime>() {
        return Ok(datetime.to_zoned_datetime(zone.clone())?);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return Ok(date.to_zoned_datetime(zone.clone())?);
    }
    bail!(
        "'{text}' is not a date (2026-11-26), a local time (2026-11-26T08:30) or an instant (2026-11-26T08:30:00Z)"
    )
}

/// A report's interval length; `None`: the period's totals only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interval(pub(crate) Option<Duration>);

/// Parses an interval: `15m`, `30m`, `1h`, `day`, a number of seconds, or `none`.
pub(crate) fn parse_interval(text: &str) -> Result<Interval, String> {
    interval_length(text).map(Interval)
}

fn interval_length(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    let secs = match text {
        "none" | "total" => return Ok(None),
        "day" | "1d" | "24h" => 86_400,
        _ => {
            let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
                Some(i) => text.split_at(i),
                None => (text, "s"),
            };
            let n: u64 = number
                .parse()
                .map_err(|_| format!("'{text}': use 15m, 30m, 1h, day, seconds, or none"))?;
            let unit = match unit {
                "s" => 1,
                "m" | "min" => 60,
                "h" => 3600,
                _ => return Err(format!("'{text}': the unit must be s, m or h")),
            };
            n * unit
        }
    };
    if secs == 0 || 86_400 % secs != 0 {
        return Err(format!(
            "'{text}': an interval must divide a day evenly (15m, 30m, 1h, day)"
        ));
    }
    Ok(Some(Duration::from_secs(secs)))
}

/// Names to the dense ids the core's events use, in order of appearance.
#[derive(Debug, Default)]
struct Ids {
    queues: Names,
    agents: Names,
}

/// Names numbered in order of appearance, each found by its name in one lookup: a replay
/// asks for an agent's id for most records, and a centre has thousands of agents.
#[derive(Debug, Default)]
struct Names {
    /// The names, by id.
    list: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        id
    }
}

impl Ids {
    fn queue(&mut self, name: &str) -> QueueId {
        QueueId(self.queues.id(name))
    }

    fn agent(&mut self, name: &str) -> AgentId {
        AgentId(self.agents.id(name))
    }
}

/// Records of the server and the call flow, not of the ACD.
const NOT_ACD: [&str; 6] = [
    "acd_started",
    "announced",
    "call_arrived",
    "call_offered",
    "leg_ended",
    "call_ended",
];

/// The fields of ACD events that are durations: stored as seconds, they were whole
/// microseconds (differences of the ACD's microsecond timestamps).
const DURATIONS: [&str; 7] = [
    "wait",
    "ring",
    "talk",
    "wrap_up",
    "predicted",
    "actual",
    "estimated_wait",
];

/// A stored ACD event back as the core's [`Event`], with names turned into this report's
/// ids and its time shifted by `shift_us` like the report's clock. Other records: `None`.
fn acd_event(record: &Record, ids: &mut Ids, shift_us: i64) -> Option<Event> {
    if NOT_ACD.contains(&record.entry.kind.as_str()) {
        return None;
    }
    let Value::Object(mut body) = record.entry.body.clone() else {
        return None;
    };
    for key in DURATIONS {
        if let Some(value) = body.get_mut(key)
            && let Some(secs) = value.as_f64()
        {
            let duration = Duration::from_micros((secs * 1e6).round().max(0.0) as u64);
            *value = serde_json::to_value(duration).ok()?;
        }
    }
    if let Some(name) = body.get("queue").and_then(Value::as_str) {
        let id = ids.queue(name).0;
        body.insert("queue".into(), id.into());
    }
    if let Some(name) = body.get("agent").and_then(Value::as_str) {
        let id = ids.agent(name).0;
        body.insert("agent".into(), id.into());
    }
    // An overflow's `to` is {"queue": name}, {"external": name} or "hangup"; a transfer's
    // is the queue's name.
    let transfer = record.entry.kind == "call_transferred";
    if let Some(to) = body.get_mut("to") {
        let id = match to.get_mut("queue") {
            Some(inner) => Some(inner),
            None => transfer.then_some(to),
        };
        if let Some(id) = id
            && let Some(name) = id.as_str()
        {
            *id = ids.queue(name).0.into();
        }
    }
    for key in ["made_at", "until"] {
        if let Some(at) = body.get_mut(key)
            && let Some(utc) = at.as_i64()
        {
            *at = ((utc + shift_us).max(0) as u64).into();
        }
    }
    serde_json::from_value(Value::Object(body)).ok()
}

/// The report's rows and their context.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    from: String,
    to: String,
    time_zone: String,
    interval_secs: Option<u64>,
    /// How each figure is computed.
    formulas: &'static [(&'static str, &'static str)],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    queues: Vec<QueueRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    agents: Vec<AgentRow>,
    /// Stored events that could not be read back (a newer version's, say).
    unreadable_events: u64,
}

/// The formulas, as in `amico_core::metrics`.
const FORMULAS: &[(&str, &str)] = &[
    ("abandon_rate", "abandoned / (answered + abandoned)"),
    (
        "abandon_rate_excluding_short",
        "(abandoned - short) / (answered + abandoned - short)",
    ),
    (
        "abandon_after_threshold_rate",
        "abandoned after waiting more than the threshold (47 s) / (answered + abandoned)",
    ),
    (
        "service_level",
        "answered within T / (answered + abandoned - short)",
    ),
    (
        "service_level_abandons_met",
        "(answered within T + abandoned within T) / (answered + abandoned)",
    ),
    ("asa", "sum of the waits of answered calls / answered"),
    ("aht", "(sum of talk + sum of wrap-up) / completed calls"),
    (
        "occupancy",
        "(reserved + on call + wrap-up) / (that + available); pauses excluded",
    ),
    (
        "survey shares",
        "votes of a kind / votes cast (surveys without a vote left out)",
    ),
    (
        "estimate_accuracy",
        "wait predictions within 20 % of the actual wait / predictions, answered calls",
    ),
    (
        "wait percentiles",
        "nearest rank: the smallest wait with at least that share of the waits at or below it, to the millisecond",
    ),
];

/// One queue over one interval (or the whole period: `span` = "total").
#[derive(Debug, Serialize)]
struct QueueRow {
    queue: String,
    span: &'static str,
    start: String,
    end: String,
    offered: u64,
    answered: u64,
    abandoned: u64,
    short_abandoned: u64,
    abandoned_after_threshold: u64,
    overflowed: u64,
    /// Moved to another queue by a supervisor.
    transferred: u64,
    /// Ended by a supervisor before an answer.
    removed: u64,
    callbacks_requested: u64,
    callbacks_unanswered: u64,
    abandon_rate: Option<f64>,
    abandon_rate_excluding_short: Option<f64>,
    abandon_after_threshold_rate: Option<f64>,
    service_level: Option<f64>,
    service_level_abandons_met: Option<f64>,
    asa_secs: Option<f64>,
    aht_secs: Option<f64>,
    wait_p50_secs: f64,
    wait_p90_secs: f64,
    wait_p95_secs: f64,
    wait_p99_secs: f64,
    wait_max_secs: f64,
    estimate_accuracy: Option<f64>,
    #[serde(flatten)]
    survey: SurveyColumns,
}

/// One agent over one interval (or the whole period).
#[derive(Debug, Serialize)]
struct AgentRow {
    agent: String,
    span: &'static str,
    start: String,
    end: String,
    calls_answered: u64,
    offers_no_answer: u64,
    offers_rejected: u64,
    offers_unreachable: u64,
    talk_secs: f64,
    wrap_up_secs: f64,
    aht_secs: Option<f64>,
    available_secs: f64,
    busy_secs: f64,
    paused_secs: f64,
    occupancy: Option<f64>,
    #[serde(flatten)]
    survey: SurveyColumns,
}

#[derive(Debug, Serialize)]
struct SurveyColumns {
    survey_satisfied: u64,
    survey_sufficient: u64,
    survey_unsatisfied: u64,
    survey_no_vote: u64,
    survey_satisfied_share: Option<f64>,
    survey_sufficient_share: Option<f64>,
    survey_unsatisfied_share: Option<f64>,
}

impl From<SurveyCounts> for SurveyColumns {
    fn from(survey: SurveyCounts) -> Self {
        let shares = survey.shares();
        SurveyColumns {
            survey_satisfied: survey.satisfied,
            survey_sufficient: survey.sufficient,
            survey_unsatisfied: survey.unsatisfied,
            survey_no_vote: survey.no_vote,
            survey_satisfied_share: shares.map(|s| s.0),
            survey_sufficient_share: shares.map(|s| s.1),
            survey_unsatisfied_share: shares.map(|s| s.2),
        }
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

fn queue_row(
    queue: &str,
    span: &'static str,
    start: String,
    end: String,
    summary: &QueueSummary,
) -> QueueRow {
    let (c, r) = (&summary.counters, &summary.rates);
    QueueRow {
        queue: queue.to_owned(),
        span,
        start,
        end,
        offered: c.offered,
        answered: c.answered,
        abandoned: c.abandoned,
        short_abandoned: c.short_abandoned,
        abandoned_after_threshold: c.abandoned_after_threshold,
        overflowed: c.overflowed,
        transferred: c.transferred,
        removed: c.removed,
        callbacks_requested: c.callbacks_requested,
        callbacks_unanswered: c.callbacks_unanswered,
        abandon_rate: r.abandon_rate,
        abandon_rate_excluding_short: r.abandon_rate_excluding_short,
        abandon_after_threshold_rate: r.abandon_after_threshold_rate,
        service_level: r.service_level,
        service_level_abandons_met: r.service_level_abandons_met,
        asa_secs: r.asa.map(secs),
        aht_secs: r.aht.map(secs),
        wait_p50_secs: secs(summary.wait.p50),
        wait_p90_secs: secs(summary.wait.p90),
        wait_p95_secs: secs(summary.wait.p95),
        wait_p99_secs: secs(summary.wait.p99),
        wait_max_secs: secs(summary.wait.max),
        estimate_accuracy: r.estimate_accuracy,
        survey: c.survey.into(),
    }
}

fn agent_row(
    agent: &str,
    span: &'static str,
    start: String,
    end: String,
    f: &AgentFigures,
) -> AgentRow {
    AgentRow {
        agent: agent.to_owned(),
        span,
        start,
        end,
        calls_answered: f.calls_answered,
        offers_no_answer: f.offers_failed.no_answer,
        offers_rejected: f.offers_failed.rejected,
        offers_unreachable: f.offers_failed.unreachable,
        talk_secs: secs(f.talk.sum),
        wrap_up_secs: secs(f.wrap_up.sum),
        aht_secs: f.aht().map(secs),
        available_secs: secs(f.time.available),
        busy_secs: secs(f.time.busy),
        paused_secs: secs(f.time.paused),
        occupancy: f.occupancy(),
        survey: f.survey.into(),
    }
}

/// The queue log from `from_us` on, folded into a [`Tally`] whose clock is local time in
/// the report's zone (so intervals fall on local quarter hours and midnights). Reports fold
/// a period and stop; the server's day (`records::today`) goes on with live records.
pub(crate) struct Replay {
    pub(crate) tally: Tally,
    ids: Ids,
    zone: jiff::tz::TimeZone,
    from_us: i64,
    /// Thresholds by queue name; others get the defaults.
    thresholds: HashMap<String, Thresholds>,
    /// Queues whose thresholds are set.
    known: std::collections::HashSet<String>,
    /// Stored records that should be ACD events and could not be read back.
    pub(crate) unreadable: u64,
}

impl Replay {
    pub(crate) fn new(
        zone: jiff::tz::TimeZone,
        from_us: i64,
        interval: Duration,
        thresholds: HashMap<String, Thresholds>,
    ) -> Replay {
        let mut replay = Replay {
            tally: Tally::new(interval),
            ids: Ids::default(),
            zone,
            from_us,
            thresholds,
            known: Default::default(),
            unreadable: 0,
        };
        replay.tally = Tally::new(interval).starting_at(replay.local(from_us));
        replay
    }

    /// Microseconds to add to a UTC instant for the zone's local time then.
    fn shift(&self, utc_us: i64) -> i64 {
        let instant =
            jiff::Timestamp::from_microsecond(utc_us).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        i64::from(self.zone.to_offset(instant).seconds()) * 1_000_000
    }

    /// A UTC instant on the tally's local clock.
    pub(crate) fn local(&self, utc_us: i64) -> Timestamp {
        Timestamp::from_micros((utc_us + self.shift(utc_us)).max(0) as u64)
    }

    /// Agents who were working when the period began: their state then, at its start.
    pub(crate) async fn agents_at_start(&mut self, store: &Store) -> anyhow::Result<()> {
        let states = sqlx::query(
            "SELECT s.agent, s.state, s.reason FROM agent_states s WHERE s.seq = \
             (SELECT MAX(t.seq) FROM agent_states t WHERE t.agent = s.agent AND t.at_us < $1)",
        )
        .bind(self.from_us)
        .fetch_all(store.pool())
        .await
        .context("reading agent states")?;
        let start = self.local(self.from_us);
        for row in &states {
            let state: String = row.try_get("state")?;
            let Ok(state) = serde_json::from_value::<AgentStatus>(state.into()) else {
                continue;
            };
            if state == AgentStatus::LoggedOut {
                continue;
            }
            let agent = self.ids.agent(&row.try_get::<String, _>("agent")?);
            let reason: Option<String> = row.try_get("reason")?;
            self.tally.record(
                start,
                &Event::AgentStateChanged {
                    agent,
                    state,
                    reason,
                },
            );
        }
        Ok(())
    }

    /// Folds in the records that happened in `[from_us, to_us)`, read a page at a time in
    /// `seq` order (a day of a large centre is millions of records). Returns the last
    /// `seq` read, 0 when there were none.
    pub(crate) async fn records_between(
        &mut self,
        store: &Store,
        from_us: i64,
        to_us: i64,
    ) -> anyhow::Result<u64> {
        const PAGE: u32 = 4096;
        let Some((first, last)) = store.seq_range(from_us, to_us).await? else {
            return Ok(0);
        };
        let mut cursor = first - 1;
        while cursor < last {
            let page = store.records_after(cursor, PAGE).await?;
            if page.is_empty() {
                break;
            }
            for record in page.iter().take_while(|r| r.seq <= last) {
                // A record out of time order among them belongs to another period.
                if (from_us..to_us).contains(&record.entry.at_us) {
                    self.record(record);
                }
                cursor = record.seq;
            }
            if page.last().is_some_and(|r| r.seq > last) {
                break;
            }
        }
        Ok(last)
    }

    /// Folds one stored record in.
    pub(crate) fn record(&mut self, record: &Record) {
        // A queue's configured thresholds before anything of it is counted.
        if let Some(queue) = record.entry.queue.as_deref()
            && !self.known.contains(queue)
        {
            self.known.insert(queue.to_owned());
            let id = self.ids.queue(queue);
            if let Some(thresholds) = self.thresholds.get(queue) {
                self.tally.set_thresholds(id, *thresholds);
            }
        }
        let (kind, at) = (record.entry.kind.as_str(), record.entry.at_us);
        let shift = self.shift(at);
        match acd_event(record, &mut self.ids, shift) {
            Some(event) => self.tally.record(self.local(at), &event),
            // The server restarted: a new ACD, every agent logged out, each queue's
            // thresholds as configured then.
            None if kind == "acd_started" => {
                self.tally.restart(self.local(at));
                let queues = record.entry.body["queues"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for queue in queues {
                    let (Some(name), Ok(thresholds)) = (
                        queue["name"].as_str(),
                        serde_json::from_value::<Thresholds>(queue["thresholds"].clone()),
                    ) else {
                        continue;
                    };
                    self.known.insert(name.to_owned());
                    let id = self.ids.queue(name);
                    self.tally.set_thresholds(id, thresholds);
                }
            }
            None if NOT_ACD.contains(&kind) => {}
            None => self.unreadable += 1,
        }
    }

    /// Each queue seen, by name, with its figures so far.
    pub(crate) fn queue_summaries(&self) -> HashMap<String, QueueSummary> {
        self.ids
            .queues
            .list
            .iter()
            .enumerate()
            .filter_map(|(index, name)| {
                let stats = self.tally.queue(QueueId(index as u32))?;
                Some((name.clone(), stats.summary()))
            })
            .collect()
    }
}

/// Builds the report from the store.
pub(crate) async fn build(request: &Request) -> anyhow::Result<Report> {
    check_period(request)?;
    let store = open_existing(&request.database).await?;
    let report = from_store(&store, request).await;
    store.close().await;
    report
}

/// Most intervals one report may hold (about three years of 15-minute intervals).
const MAX_INTERVALS: u64 = 100_000;

/// A period that starts before it ends and does not hold more than [`MAX_INTERVALS`].
pub(crate) fn check_period(request: &Request) -> anyhow::Result<()> {
    if request.from >= request.to {
        bail!(
            "--from ({}) must be before --to ({})",
            request.from,
            request.to
        );
    }
    if let Some(length) = request.interval {
        let span =
            request.to.timestamp().as_microsecond() - request.from.timestamp().as_microsecond();
        let intervals = (span as u64).div_ceil(length.as_micros().max(1) as u64);
        if intervals > MAX_INTERVALS {
            bail!(
                "{intervals} intervals of {} s from {} to {}: at most {MAX_INTERVALS}; \
                 ask for a longer interval (day, or none for totals) or a shorter period",
                length.as_secs(),
                request.from,
                request.to
            );
        }
    }
    Ok(())
}

/// Names with their ids, in the order of the names: a report lists queues and agents
/// alphabetically, whatever order they first appeared in.
fn by_name(names: &[String]) -> Vec<(usize, &String)> {
    let mut sorted: Vec<(usize, &String)> = names.iter().enumerate().collect();
    sorted.sort_by(|a, b| a.1.cmp(b.1));
    sorted
}

/// Builds the report from an open store (the server's, for the API).
pub(crate) async fn from_store(store: &Store, request: &Request) -> anyhow::Result<Report> {
    check_period(request)?;
    let zone = request.from.time_zone().clone();
    let (from_us, to_us) = (
        request.from.timestamp().as_microsecond(),
        request.to.timestamp().as_microsecond(),
    );
    // Without intervals only the totals are shown; the tally still needs some length.
    let length = request.interval.unwrap_or(Duration::from_secs(86_400));
    let mut replay = Replay::new(zone.clone(), from_us, length, request.thresholds.clone());
    replay.agents_at_start(store).await?;
    replay.records_between(store, from_us, to_us).await?;
    replay.tally.finish(replay.local(to_us));
    let Replay {
        tally,
        ids,
        unreadable,
        ..
    } = replay;

    let label = |t: Timestamp| -> String {
        // Back from the tally's local clock to the zone's civil time.
        let utc = t.as_micros() as i64;
        let civil = jiff::Timestamp::from_microsecond(utc)
            .map(|ts| ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).datetime())
            .unwrap_or_default();
        civil
            .to_zoned_datetime(zone.clone())
            .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
            .unwrap_or_else(|_| civil.to_string())
    };
    let (from_label, to_label) = (
        request.from.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        request.to.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    );

    let mut queues = Vec::new();
    if request.by != By::Agent {
        for (index, name) in by_name(&ids.queues.list) {
            let queue = QueueId(index as u32);
            if request.interval.is_some() {
                for report in tally.queue_intervals(queue) {
                    if report.summary.counters == Counters::default()
                        && report.summary.wrap_up.count == 0
                    {
                        continue;
                    }
                    queues.push(queue_row(
                        name,
                        "interval",
                        label(report.start),
                        label(report.end),
                        &report.summary,
                    ));
                }
            }
            if let Some(stats) = tally.queue(queue) {
                queues.push(queue_row(
                    name,
                    "total",
                    from_label.clone(),
                    to_label.clone(),
                    &stats.summary(),
                ));
            }
        }
    }
    let mut agents = Vec::new();
    if request.by != By::Queue {
        for (index, name) in by_name(&ids.agents.list) {
            let agent = AgentId(index as u32);
            if request.interval.is_some() {
                for report in tally.agent_intervals(agent) {
                    if report.figures.is_empty() {
                        continue;
                    }
                    agents.push(agent_row(
                        name,
                        "interval",
                        label(report.start),
                        label(report.end),
                        &report.figures,
                    ));
                }
            }
            if let Some(figures) = tally.agent(agent) {
                agents.push(agent_row(
                    name,
                    "total",
                    from_label.clone(),
                    to_label.clone(),
                    figures,
                ));
            }
        }
    }
    Ok(Report {
        from: from_label,
        to: to_label,
        time_zone: zone.iana_name().unwrap_or("UTC").to_owned(),
        interval_secs: request.interval.map(|i| i.as_secs()),
        formulas: FORMULAS,
        queues,
        agents,
        unreadable_events: unreadable,
    })
}

/// Opens a store that must already exist: a report never creates an empty database.
async fn open_existing(setting: &str) -> anyhow::Result<Store> {
    let (backend, url) = crate::records::store::database_url(setting)?;
    if backend == crate::records::store::Backend::Sqlite {
        let path = url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap_or_default();
        if !std::path::Path::new(path).is_file() {
            bail!("database '{setting}': no such file ({path})");
        }
    }
    Store::open(setting).await
}

impl Report {
    /// The report in `format`.
    pub(crate) fn render(&self, format: Format) -> anyhow::Result<String> {
        match format {
            Format::Json => Ok(serde_json::to_string_pretty(self)? + "\n"),
            Format::Csv => {
                if !self.queues.is_empty() && !self.agents.is_empty() {
                    bail!("--format csv prints one kind of row: add --by queue or --by agent");
                }
                if self.agents.is_empty() {
                    csv(&self.queues)
                } else {
                    csv(&self.agents)
                }
            }
            Format::Table => Ok(self.table()),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1} %", v * 100.0));
        let s = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} s"));
        let _ = writeln!(
            out,
            "Amico report, {} to {} ({})",
            self.from, self.to, self.time_zone
        );
        if self.queues.is_empty() && self.agents.is_empty() {
            let _ = writeln!(out, "\nNo calls and no agent activity in this period.");
        }
        if !self.queues.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<12} {:<25} {:>7} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>10}",
                "queue",
                "from",
                "offered",
                "answered",
                "abandoned",
                "aband>47s",
                "SL",
                "aband %",
                "ASA",
                "AHT",
                "wait p90",
                "satisfied"
            );
            for row in &self.queues {
                let from = row_from(row.span, &row.start);
                let _ = writeln!(
                    out,
                    "{:<12} {:<25} {:>7} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>10}",
                    row.queue,
                    from,
                    row.offered,
                    row.answered,
                    row.abandoned,
                    row.abandoned_after_threshold,
                    pct(row.service_level),
                    pct(row.abandon_rate),
                    s(row.asa_secs),
                    s(row.aht_secs),
                    s(Some(row.wait_p90_secs)),
                    pct(row.survey.survey_satisfied_share),
                );
            }
        }
        if !self.agents.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<12} {:<25} {:>8} {:>9} {:>8} {:>9} {:>10}",
                "agent", "from", "answered", "no answer", "AHT", "occupancy", "satisfied"
            );
            for row in &self.agents {
                let from = row_from(row.span, &row.start);
                let _ = writeln!(
                    out,
                    "{:<12} {:<25} {:>8} {:>9} {:>8} {:>9} {:>10}",
                    row.agent,
                    from,
                    row.calls_answered,
                    row.offers_no_answer,
                    s(row.aht_secs),
                    pct(row.occupancy),
                    pct(row.survey.survey_satisfied_share),
                );
            }
        }
        let _ = writeln!(
            out,
            "\nSL: answered within the service-level time / (answered + abandoned - short abandons). \
             The formulas are in --format json and in amico_core::metrics."
        );
        if self.unreadable_events > 0 {
            let _ = writeln!(
                out,
                "{} stored events could not be read back and were left out.",
                self.unreadable_events
            );
        }
        out
    }
}

/// Rows as CSV: a header of the field names, then one line per row (RFC 4180 quoting).
/// A table row's first time column: its start, or "total".
fn row_from<'a>(span: &str, start: &'a str) -> &'a str {
    if span == "total" { "total" } else { start }
}

fn csv<T: Serialize>(rows: &[T]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(fields) = serde_json::to_value(row)? else {
            bail!("a report row is not an object");
        };
        if i == 0 {
            let header: Vec<String> = fields.keys().map(|k| quote(k)).collect();
            out.push_str(&header.join(","));
            out.push('\n');
        }
        let cells: Vec<String> = fields
            .values()
            .map(|value| match value {
                Value::Null => String::new(),
                Value::String(text) => quote(text),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

fn quote(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_named_plainly_and_must_divide_a_day() {
        assert_eq!(interval_length("15m"), Ok(Some(Duration::from_secs(900))));
        assert_eq!(interval_length("1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(
            interval_length("day"),
            Ok(Some(Duration::from_secs(86_400)))
        );
        assert_eq!(interval_length("none"), Ok(None));
        assert_eq!(interval_length("600"), Ok(Some(Duration::from_secs(600))));
        assert!(interval_length("7m").unwrap_err().contains("divide a day"));
        assert!(interval_length("2w").unwrap_err().contains("unit"));
        assert!(interval_length("soon").unwrap_err().contains("15m"));
    }

    #[test]
    fn times_are_dates_local_times_or_instants() {
        let rome = jiff::tz::TimeZone::get("Europe/Rome").expect("tzdb");
        let midnight = parse_time("2026-11-26", &rome).expect("a date");
        assert_eq!(midnight.timestamp().to_string(), "2026-11-25T23:00:00Z");
        let morning = parse_time("2026-11-26T08:30", &rome).expect("a local time");
        assert_eq!(morning.timestamp().to_string(), "2026-11-26T07:30:00Z");
        let instant = parse_time("2026-11-26T08:30:00Z", &rome).expect("an instant");
        assert_eq!(instant.timestamp().to_string(), "2026-11-26T08:30:00Z");
        let error = parse_time("yesterday", &rome).unwrap_err().to_string();
        assert!(error.contains("'yesterday' is not a date"), "{error}");
    }

    /// Every kind of ACD event survives the trip into the queue log and back.
    #[test]
    fn stored_events_read_back_as_the_events_that_were_stored() {
        use amico_core::{CallId, OfferFailure, OverflowReason, OverflowedTo, Vote, WaitOutcome};
        let (call, queue, other, agent) = (CallId(42), QueueId(0), QueueId(1), AgentId(0));
        let d = |micros: u64| Duration::from_micros(micros);
        let made_at = Timestamp::from_micros(1_795_700_000_123_456);
        let events = [
            Event::CallQueued {
                call,
                queue,
                position: 3,
                estimated_wait: Some(d(90_000_001)),
            },
            Event::CallQueued {
                call,
                queue,
                position: 1,
                estimated_wait: None,
            },
            Event::SkillsExpanded {
                call,
                queue,
                step: 2,
            },
            Event::OfferFailed {
                call,
                agent,
                queue,
                reason: OfferFailure::NoAnswer,
            },
            Event::CallConnected {
                call,
                agent,
                queue,
                wait: d(47_000_001),
                ring: d(5_123_457),
            },
            Event::CallAbandoned {
                call,
                queue,
                wait: d(4_999_999),
                position: 2,
            },
            Event::CallCompleted {
                call,
                agent,
                queue,
                talk: d(240_000_003),
            },
            Event::WrapUpEnded {
                call,
                agent,
                queue,
                wrap_up: d(10_000_000),
            },
            Event::CallOverflowed {
                call,
                queue,
                reason: OverflowReason::MaxWait,
                to: OverflowedTo::Queue(other),
                at_entry: false,
            },
            Event::CallOverflowed {
                call,
                queue,
                reason: OverflowReason::QueueFull,
                to: OverflowedTo::External("voicemail".into()),
                at_entry: true,
            },
            Event::CallOverflowed {
                call,
                queue,
                reason: OverflowReason::NoAgents,
                to: OverflowedTo::Hangup,
                at_entry: true,
            },
            Event::WaitPredictionResolved {
                call,
                queue,
                made_at,
                predicted: d(60_000_000),
                actual: d(61_234_567),
                outcome: WaitOutcome::Answered,
            },
            Event::AgentStateChanged {
                agent,
                state: AgentStatus::Paused,
                reason: Some("lunch".into()),
            },
            Event::CallbackRequested {
                call,
                queue,
                position: 4,
            },
            Event::CallbackDialing { call, agent, queue },
            Event::CallbackRetrying { call, failures: 2 },
            Event::CallbackUnanswered { call, queue },
            Event::SurveyRecorded {
                call,
                queue,
                agent,
                vote: Some(Vote::Sufficient),
            },
            Event::SurveyRecorded {
                call,
                queue,
                agent,
                vote: None,
            },
            Event::CallTransferred {
                call,
                queue,
                to: other,
                wait: d(12_345_678),
            },
            Event::CallRemoved {
                call,
                queue,
                wait: d(7_654_321),
                position: Some(2),
            },
            Event::CallRemoved {
                call,
                queue,
                wait: d(1),
                position: None,
            },
            Event::PriorityChanged {
                call,
                queue,
                priority: 9,
                position: Some(1),
            },
            Event::WrapUpExtended {
                agent,
                until: made_at,
            },
            Event::QueueConfigured {
                queue: other,
                name: "tributi".into(),
                change: amico_core::ConfigChange::Changed,
                thresholds: Thresholds {
                    service_level: d(30_000_000),
                    abandon: d(47_000_000),
                    short_abandon: d(5_000_000),
                },
            },
            Event::AgentConfigured {
                agent,
                name: "anna".into(),
                change: amico_core::ConfigChange::Added,
            },
        ];
        let names = crate::records::log::Names {
            queues: vec!["comune".into(), "tributi".into()],
            agents: vec!["anna".into()],
        };
        let clock = crate::runner::Clock::new();
        for event in events {
            let entry = crate::records::log::acd_entry(0, &event, &names, &clock)
                .unwrap_or_else(|| panic!("{event:?} is kept"));
            let stored = serde_json::to_string(&entry.body).expect("JSON");
            let record = Record {
                seq: 1,
                entry: crate::records::store::Entry {
                    body: serde_json::from_str(&stored).expect("JSON"),
                    ..entry
                },
            };
            // Ids as the report gives them: comune 0, tributi 1, anna 0.
            let mut ids = Ids::default();
            ids.queue("comune");
            ids.queue("tributi");
            ids.agent("anna");
            let shift = clock.utc_micros(Timestamp::ZERO);
            let back = acd_event(&record, &mut ids, -shift)
                .unwrap_or_else(|| panic!("{stored} reads back"));
            assert_eq!(back, event, "{stored}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(quote("comune"), "comune");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
