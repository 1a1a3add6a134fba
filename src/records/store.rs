//! The store: the queue log and the records derived from it (CDRs, legs, survey votes,
//! agent states, wait predictions), in SQLite (the embedded default) or PostgreSQL, through
//! one sqlx code path and one migration set (`migrations/`).
//!
//! Every [`Record`] is written in the same transaction as the rows derived from it, so a
//! committed record always has its CDR, vote or state row beside it, and a record is
//! committed before anyone hears of it (the event stream and `/metrics` only show committed
//! sequence numbers). SQLite runs in WAL mode with `synchronous = FULL`: a commit survives
//! a crash of the process and of the machine.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

/// The migrations, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One event of the queue log, before it is numbered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// When it happened: UTC microseconds since the Unix epoch.
    pub(crate) at_us: i64,
    /// What happened: `call_queued`, `call_connected`, `leg_ended`, ...
    pub(crate) kind: String,
    /// The call it concerns.
    pub(crate) call: Option<u64>,
    /// The queue it concerns, by name.
    pub(crate) queue: Option<String>,
    /// The agent it concerns, by name.
    pub(crate) agent: Option<String>,
    /// Every field of the event (with `kind` repeated as `event`).
    pub(crate) body: Value,
}

/// One event of the queue log, numbered: `seq` runs 1, 2, 3... without gaps, across
/// restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Its number.
    pub(crate) seq: u64,
    /// The event.
    #[serde(flatten)]
    pub(crate) entry: Entry,
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite: `sqlite:path`, `sqlite://path`, or a bare file path.
    Sqlite,
    /// PostgreSQL: `postgres://…` or `postgresql://…`.
    Postgres,
}

/// Normalises a database setting into a URL sqlx takes, and says which backend it is.
/// A bare path is a SQLite file, created when missing.
pub(crate) fn database_url(setting: &str) -> anyhow::Result<(Backend, String)> {
    let setting = setting.trim();
    if setting.is_empty() {
        anyhow::bail!("the database setting is empty");
    }
    if setting.starts_with("postgres://") || setting.starts_with("postgresql://") {
        return Ok((Backend::Postgres, setting.to_owned()));
    }
    let path = match setting.strip_prefix("sqlite:") {
        Some(rest) => rest.trim_start_matches("//"),
        None if setting.contains("://") => {
            let scheme = setting.split("://").next().unwrap_or_default();
            anyhow::bail!(
                "database '{setting}': unknown scheme '{scheme}' (use sqlite:FILE or postgres://…)"
            );
        }
        None => setting,
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() {
        anyhow::bail!("database '{setting}': no file named");
    }
    // mode=rwc: create the file when it is missing.
    let query = if query.split('&').any(|p| p.starts_with("mode=")) {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

/// An open store.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens the database `setting` names (see [`database_url`]) and brings its schema up to
    /// date. Errors name the database and what went wrong.
    pub(crate) async fn open(setting: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = database_url(setting)?;
        let options =
            AnyConnectOptions::from_str(&url).with_context(|| format!("database '{setting}'"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer; readers wait on WAL's snapshot isolation, not on locks.
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer. FULL: a commit is on disk
                        // before it returns (SQLite docs, "PRAGMA synchronous").
                        connection.execute("PRAGMA journal_mode = WAL").await?;
                        connection.execute("PRAGMA synchronous = FULL").await?;
                        connection.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("database '{setting}': cannot connect"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("database '{setting}': migrations"))?;
        Ok(Store { pool, backend })
    }

    /// The highest sequence number stored, 0 when the log is empty.
    pub(crate) async fn last_seq(&self) -> anyhow::Result<u64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM queue_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// The highest call id stored, 0 when there is none: a restarted server numbers its
    /// calls after it, so that a call id names one call for ever.
    pub(crate) async fn last_call(&self) -> anyhow::Result<u64> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(id), 0) FROM (SELECT MAX(call_id) AS id FROM calls \
             UNION ALL SELECT MAX(call_id) AS id FROM queue_log) AS ids",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// Writes `records` and everything derived from them in one transaction.
    ///
    /// Each statement is a round trip to the database (for SQLite, to the thread sqlx runs
    /// it on, and back). So rows of one table go in together, as multi-row INSERTs, and the
    /// calls' CDRs are filled in by one UPDATE for many calls ([`update_calls`]): 512
    /// records take about a dozen statements (BENCHMARKS.md, "The store's statements"),
    /// however large the writer's batch ([`crate::records::log`]'s `BATCH`).
    pub(crate) async fn write(&self, records: &[Record]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut rows = DerivedRows::default();
        let mut log = Vec::with_capacity(records.len());
        for record in records {
            let Record { seq, entry } = record;
            log.push(vec![
                Param::Int(Some(*seq as i64)),
                Param::Int(Some(entry.at_us)),
                Param::Text(Some(entry.kind.clone())),
                Param::Int(entry.call.map(|c| c as i64)),
                Param::Text(entry.queue.clone()),
                Param::Text(entry.agent.clone()),
                Param::Text(Some(entry.body.to_string())),
            ]);
            rows.add(record);
        }
        let backend = self.backend;
        insert_rows(&mut tx, backend, &QUEUE_LOG, log).await?;
        // A call's row is inserted before any update of it: its arrival comes first.
        insert_rows(&mut tx, backend, &CALLS, rows.calls).await?;
        insert_rows(&mut tx, backend, &SURVEY_VOTES, rows.votes).await?;
        insert_rows(&mut tx, backend, &AGENT_STATES, rows.agent_states).await?;
        insert_rows(&mut tx, backend, &WAIT_PREDICTIONS, rows.predictions).await?;
        insert_rows(&mut tx, backend, &LEGS, rows.legs).await?;
        update_calls(&mut tx, backend, records).await?;
        tx.commit().await
    }

    /// Records with `seq` above `after`, in order, at most `limit`.
    pub(crate) async fn records_after(
        &self,
        after: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<Record>> {
        let rows = sqlx::query(
            "SELECT seq, at_us, kind, call_id, queue, agent, body FROM queue_log \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// The first and the last `seq` of the records that happened in `[from_us, to_us)`.
    pub(crate) async fn seq_range(
        &self,
        from_us: i64,
        to_us: i64,
    ) -> anyhow::Result<Option<(u64, u64)>> {
        let row = sqlx::query(
            "SELECT MIN(seq), MAX(seq) FROM queue_log WHERE at_us >= $1 AND at_us < $2",
        )
        .bind(from_us)
        .bind(to_us)
        .fetch_one(&self.pool)
        .await?;
        let (first, last): (Option<i64>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
        Ok(first.zip(last).map(|(f, l)| (f as u64, l as u64)))
    }

    /// The pool, for queries of the records (reports, tests).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (SQLite checkpoints its WAL).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

fn record_from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Record> {
    let body: String = row.try_get("body")?;
    Ok(Record {
        seq: row.try_get::<i64, _>("seq")? as u64,
        entry: Entry {
            at_us: row.try_get("at_us")?,
            kind: row.try_get("kind")?,
            call: row.try_get::<Option<i64>, _>("call_id")?.map(|c| c as u64),
            queue: row.try_get("queue")?,
            agent: row.try_get("agent")?,
            body: serde_json::from_str(&body).context("a queue-log body")?,
        },
    })
}

/// Seconds (a body's durations) as whole milliseconds.
fn millis(body: &Value, key: &str) -> Option<i64> {
    body.get(key)
        .and_then(Value::as_f64)
        .map(|secs| (secs * 1000.0).round() as i64)
}

fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn int(body: &Value, key: &str) -> Option<i64> {
    body.get(key).and_then(Value::as_i64)
}

/// A value bound to a statement.
#[derive(Clone, Debug, PartialEq)]
enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

/// A table rows are inserted into, and its columns in the order of each row's values.
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
}

const QUEUE_LOG: Table = Table {
    name: "queue_log",
    columns: &["seq", "at_us", "kind", "call_id", "queue", "agent", "body"],
};
const CALLS: Table = Table {
    name: "calls",
    columns: &[
        "call_id",
        "arrived_us",
        "trunk",
        "caller",
        "did",
        "sip_call_id",
        "first_queue",
        "queue",
    ],
};
const SURVEY_VOTES: Table = Table {
    name: "survey_votes",
    columns: &["call_id", "at_us", "queue", "agent", "vote"],
};
const AGENT_STATES: Table = Table {
    name: "agent_states",
    columns: &["seq", "at_us", "agent", "state", "reason"],
};
const WAIT_PREDICTIONS: Table = Table {
    name: "wait_predictions",
    columns: &[
        "seq",
        "call_id",
        "queue",
        "made_us",
        "predicted_ms",
        "actual_ms",
        "outcome",
    ],
};
const LEGS: Table = Table {
    name: "legs",
    columns: &[
        "call_id",
        "leg",
        "kind",
        "peer",
        "sip_call_id",
        "started_us",
        "answered_us",
        "ended_us",
        "status",
        "end_reason",
    ],
};

/// The most rows one INSERT carries: 64 rows of at most 10 values stay under SQLite's
/// oldest limit of 999 bound values (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_ROWS: usize = 64;

/// Inserts `rows` into `table`, [`MAX_ROWS`] a statement at most (see
/// [`statement_sizes`]).
async fn insert_rows(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    table: &Table,
    rows: Vec<Vec<Param>>,
) -> sqlx::Result<()> {
    let mut rows = rows.into_iter();
    for take in statement_sizes(rows.len(), MAX_ROWS) {
        // Built from the table's own names and placeholders only: no value is in it.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(backend, table, take)));
        for param in rows.by_ref().take(take).flatten() {
            query = param.bind_to(query);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// How many rows each statement carries, for `rows` rows and at most `max` a statement:
/// `max` while that many are left, then the binary digits of the rest, so that the few
/// shapes stay in sqlx's statement cache and are prepared once.
fn statement_sizes(rows: usize, max: usize) -> impl Iterator<Item = usize> {
    let mut left = rows;
    std::iter::from_fn(move || {
        let take = match left {
            0 => return None,
            left if left >= max => max,
            left => 1 << left.ilog2(),
        };
        left -= take;
        Some(take)
    })
}

/// `INSERT INTO table (columns) VALUES (..), (..)` for `rows` rows, with the backend's
/// placeholders: PostgreSQL's numbered `$1, $2, ..`, SQLite's anonymous `?`.
///
/// Not `$N` for SQLite: sqlx finds the argument of each numbered parameter by its name,
/// and SQLite looks a name up by walking the statement's list of names
/// (`sqlite3_bind_parameter_name`), so binding a 640-value INSERT walked that list 640
/// times. It was a third of the store thread's CPU (BENCHMARKS.md, "The store's
/// statements"). An anonymous `?` has no name, and its number is its position
/// (SQLite docs, "Binding Values To Prepared Statements"), which is the order values are
/// bound in here.
fn insert_sql(backend: Backend, table: &Table, rows: usize) -> String {
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        table.columns.join(", ")
    );
    push_placeholders(&mut sql, backend, rows, table.columns.len());
    sql
}

/// `(..), (..)`: `rows` rows of `width` placeholders, numbered row by row.
fn push_placeholders(sql: &mut String, backend: Backend, rows: usize, width: usize) {
    use std::fmt::Write;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..width {
            let separator = if column == 0 { "" } else { ", " };
            match backend {
                Backend::Postgres => {
                    let _ = write!(sql, "{separator}${}", row * width + column + 1);
                }
                Backend::Sqlite => {
                    let _ = write!(sql, "{separator}?");
                }
            }
        }
        sql.push(')');
    }
}

/// The rows a batch of records adds to the tables derived from the queue log.
#[derive(Default)]
struct DerivedRows {
    calls: Vec<Vec<Param>>,
    votes: Vec<Vec<Param>>,
    agent_states: Vec<Vec<Param>>,
    predictions: Vec<Vec<Param>>,
    legs: Vec<Vec<Param>>,
}

impl DerivedRows {
    fn add(&mut self, record: &Record) {
        let Record { seq, entry } = record;
        let Entry {
            at_us,
            kind,
            call,
            queue,
            agent,
            body,
        } = entry;
        let (seq, at_us) = (Param::Int(Some(*seq as i64)), Param::Int(Some(*at_us)));
        let call = Param::Int(call.map(|c| c as i64));
        let owned = |value: Option<&str>| Param::Text(Some(value.unwrap_or_default().to_owned()));
        match kind.as_str() {
            "call_arrived" => self.calls.push(vec![
                call,
                at_us,
                owned(text(body, "trunk").as_deref()),
                owned(text(body, "caller").as_deref()),
                owned(text(body, "did").as_deref()),
                owned(text(body, "sip_call_id").as_deref()),
                Param::Text(queue.clone()),
                Param::Text(queue.clone()),
            ]),
            "survey_recorded" => self.votes.push(vec![
                call,
                at_us,
                owned(queue.as_deref()),
                owned(agent.as_deref()),
                Param::Text(text(body, "vote")),
            ]),
            "agent_state_changed" => self.agent_states.push(vec![
                seq,
                at_us,
                owned(agent.as_deref()),
                owned(text(body, "state").as_deref()),
                Param::Text(text(body, "reason")),
            ]),
            "wait_prediction_resolved" => self.predictions.push(vec![
                seq,
                call,
                owned(queue.as_deref()),
                Param::Int(Some(int(body, "made_at").unwrap_or(entry.at_us))),
                Param::Int(Some(millis(body, "predicted").unwrap_or_default())),
                Param::Int(Some(millis(body, "actual").unwrap_or_default())),
                owned(text(body, "outcome").as_deref()),
            ]),
            "leg_ended" => self.legs.push(vec![
                call,
                Param::Int(Some(int(body, "leg").unwrap_or_default())),
                owned(text(body, "leg_kind").as_deref()),
                owned(text(body, "peer").as_deref()),
                owned(text(body, "sip_call_id").as_deref()),
                Param::Int(Some(int(body, "started_us").unwrap_or(entry.at_us))),
                Param::Int(int(body, "answered_us")),
                at_us,
                Param::Int(int(body, "status")),
                owned(text(body, "end_reason").as_deref()),
            ]),
            _ => {}
        }
    }
}

/// The columns of a call's row (its CDR) that records after its arrival fill in.
#[derive(Clone, Copy)]
enum CallColumn {
    Queue,
    QueuedUs,
    AnsweredUs,
    Agent,
    WaitMs,
    Outcome,
    AbandonPosition,
    TalkMs,
    Callback,
    Survey,
    EndedUs,
}

/// Their names, and whether each holds text (else an integer), in the order of
/// [`CallColumn`].
const CALL_COLUMNS: [(&str, bool); 11] = [
    ("queue", true),
    ("queued_us", false),
    ("answered_us", false),
    ("agent", true),
    ("wait_ms", false),
    ("outcome", true),
    ("abandon_position", false),
    ("talk_ms", false),
    ("callback", false),
    ("survey", true),
    ("ended_us", false),
];

/// What the records of one batch do to one column of a call's row.
#[derive(Clone, Debug, Default, PartialEq)]
enum Change {
    /// Nothing.
    #[default]
    Keep,
    /// It becomes this value.
    Set(Param),
    /// It becomes this value if it is NULL.
    IfNull(Param),
}

impl Change {
    /// Its code in the UPDATE (see [`update_sql`]) and its value.
    fn code(self) -> (i64, Option<Param>) {
        match self {
            Change::Keep => (0, None),
            Change::Set(value) => (1, Some(value)),
            Change::IfNull(value) => (2, Some(value)),
        }
    }

    /// This change, then `next`, as one.
    fn then(self, next: Change) -> Change {
        match (self, next) {
            (current, Change::Keep) => current,
            (_, Change::Set(value)) => Change::Set(value),
            (Change::Keep, Change::IfNull(value)) => Change::IfNull(value),
            (Change::Set(current), Change::IfNull(value)) => {
                Change::Set(if current.is_null() { value } else { current })
            }
            (Change::IfNull(current), Change::IfNull(value)) => {
                Change::IfNull(if current.is_null() { value } else { current })
            }
        }
    }
}

impl Param {
    fn is_null(&self) -> bool {
        matches!(self, Param::Int(None) | Param::Text(None))
    }

    /// `query` with this value bound as its next parameter.
    fn bind_to(self, query: AnyQuery<'_>) -> AnyQuery<'_> {
        match self {
            Param::Int(value) => query.bind(value),
            Param::Text(value) => query.bind(value),
        }
    }
}

/// A statement of the store, before it runs.
type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// What one record says of its call's row, if anything.
fn call_changes(entry: &Entry) -> Vec<(CallColumn, Change)> {
    use CallColumn::*;
    let Entry {
        at_us,
        kind,
        queue,
        agent,
        body,
        ..
    } = entry;
    let set = |column, value| (column, Change::Set(value));
    let number = |value: i64| Param::Int(Some(value));
    let literal = |value: &str| Param::Text(Some(value.to_owned()));
    match kind.as_str() {
        "call_queued" => vec![
            set(Queue, Param::Text(queue.clone())),
            (QueuedUs, Change::IfNull(number(*at_us))),
        ],
        "call_connected" => vec![
            set(AnsweredUs, number(*at_us)),
            set(Agent, Param::Text(agent.clone())),
            set(WaitMs, Param::Int(millis(body, "wait"))),
            set(Outcome, literal("answered")),
        ],
        "call_abandoned" => vec![
            set(Outcome, literal("abandoned")),
            set(WaitMs, Param::Int(millis(body, "wait"))),
            set(AbandonPosition, Param::Int(int(body, "position"))),
        ],
        "call_removed" => vec![
            set(Outcome, literal("removed")),
            set(WaitMs, Param::Int(millis(body, "wait"))),
        ],
        "call_completed" => vec![set(TalkMs, Param::Int(millis(body, "talk")))],
        // Into another queue, the call goes on there (a call_queued follows).
        "call_overflowed" if body.get("to").and_then(|to| to.get("queue")).is_none() => {
            vec![set(Outcome, literal("overflowed"))]
        }
        "callback_requested" => vec![set(Callback, number(1))],
        "callback_unanswered" => vec![set(Outcome, literal("callback_unanswered"))],
        "survey_recorded" => vec![set(
            Survey,
            literal(text(body, "vote").as_deref().unwrap_or("none")),
        )],
        "call_ended" => vec![
            set(EndedUs, number(*at_us)),
            (
                Outcome,
                Change::IfNull(literal(text(body, "cause").as_deref().unwrap_or("ended"))),
            ),
        ],
        _ => Vec::new(),
    }
}

/// What a batch of records does to each call's row, by call: each record's changes
/// applied in the order of the records.
fn calls_changed(records: &[Record]) -> BTreeMap<i64, [Change; CALL_COLUMNS.len()]> {
    let mut calls: BTreeMap<i64, [Change; CALL_COLUMNS.len()]> = BTreeMap::new();
    for Record { entry, .. } in records {
        let Some(call) = entry.call else { continue };
        let changes = call_changes(entry);
        if changes.is_empty() {
            continue;
        }
        let row = calls.entry(call as i64).or_default();
        for (column, change) in changes {
            let slot = &mut row[column as usize];
            *slot = std::mem::take(slot).then(change);
        }
    }
    calls
}

/// The most calls one UPDATE carries: 32 rows of 23 values stay under SQLite's oldest
/// limit of 999 bound values.
const MAX_UPDATED_CALLS: usize = 32;

/// Fills in the rows of the calls (their CDRs) the records say something of: one
/// statement for up to [`MAX_UPDATED_CALLS`] calls, where there was one a record. At
/// 2,000 calls a second that was 8,000 statements a second, each a round trip to the
/// database (for SQLite, to sqlx's thread and back).
async fn update_calls(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    records: &[Record],
) -> sqlx::Result<()> {
    let mut calls = calls_changed(records).into_iter();
    for rows in statement_sizes(calls.len(), MAX_UPDATED_CALLS) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(update_sql(backend, rows)));
        for (call, changes) in calls.by_ref().take(rows) {
            query = query.bind(call);
            for (change, (_, text)) in changes.into_iter().zip(CALL_COLUMNS) {
                let (code, value) = change.code();
                query = query.bind(code);
                // A kept column's value is a NULL of the column's type: PostgreSQL wants
                // one type down each column of the VALUES.
                query = match value {
                    Some(value) => value.bind_to(query),
                    None if text => query.bind(None::<String>),
                    None => query.bind(None::<i64>),
                };
            }
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The UPDATE of `rows` calls' rows: each call's id, then a code and a value for each
/// of [`CALL_COLUMNS`]: 0 keeps the column, 1 sets it, 2 sets it if it is NULL. An
/// UPDATE with a FROM clause and a WITH clause in front is standard SQL that SQLite
/// (3.33 on) and PostgreSQL both take (SQLite docs, "UPDATE-FROM").
fn update_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write;
    let mut names = vec!["call_id".to_owned()];
    for (column, _) in CALL_COLUMNS {
        names.push(format!("{column}_change"));
        names.push(format!("{column}_value"));
    }
    let mut sql = format!("WITH v ({}) AS (VALUES ", names.join(", "));
    push_placeholders(&mut sql, backend, rows, names.len());
    sql.push_str(") UPDATE calls SET ");
    for (i, (column, _)) in CALL_COLUMNS.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        let _ = write!(
            sql,
            "{separator}{column} = CASE v.{column}_change WHEN 1 THEN v.{column}_value \
             WHEN 2 THEN COALESCE(calls.{column}, v.{column}_value) ELSE calls.{column} END"
        );
    }
    sql.push_str(" FROM v WHERE calls.call_id = v.call_id");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_row_inserts_number_their_placeholders_row_by_row() {
        assert_eq!(
            insert_sql(Backend::Postgres, &AGENT_STATES, 2),
            "INSERT INTO agent_states (seq, at_us, agent, state, reason) VALUES \
             ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)"
        );
        // SQLite's are anonymous: numbered by position, in the order values are bound.
        assert_eq!(
            insert_sql(Backend::Sqlite, &AGENT_STATES, 2),
            "INSERT INTO agent_states (seq, at_us, agent, state, reason) VALUES \
             (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)"
        );
        // The widest table at the most rows stays under SQLite's oldest bound-value limit.
        let widest = [
            &QUEUE_LOG,
            &CALLS,
            &SURVEY_VOTES,
            &AGENT_STATES,
            &WAIT_PREDICTIONS,
            &LEGS,
        ]
        .iter()
        .map(|table| table.columns.len())
        .max()
        .unwrap_or_default();
        assert!(
            widest * MAX_ROWS <= 999,
            "{widest} columns x {MAX_ROWS} rows"
        );
        assert!(
            insert_sql(Backend::Postgres, &LEGS, MAX_ROWS)
                .ends_with(&format!("${})", 10 * MAX_ROWS))
        );
    }

    /// A record of `kind` for `call`, at second `at` of the day.
    fn record(seq: u64, at: i64, kind: &str, call: u64, body: Value) -> Record {
        let queue = body.get("queue").and_then(Value::as_str).map(str::to_owned);
        let agent = body.get("agent").and_then(Value::as_str).map(str::to_owned);
        Record {
            seq,
            entry: Entry {
                at_us: at * 1_000_000,
                kind: kind.to_owned(),
                call: Some(call),
                queue,
                agent,
                body,
            },
        }
    }

    /// Two calls' records: one overflows into a second queue, is answered, rated and
    /// ended; the other asks for a callback, is abandoned and ended.
    fn two_calls() -> Vec<Record> {
        let arrived = |n| {
            json!({"trunk": "pbx", "caller": format!("+39052100{n}"), "did": "100",
                   "sip_call_id": format!("c{n}@pbx")})
        };
        let specs = [
            (1, 1, "call_arrived", arrived(1)),
            (2, 2, "call_arrived", arrived(2)),
            (1, 3, "call_queued", json!({"queue": "anagrafe"})),
            (2, 3, "call_queued", json!({"queue": "anagrafe"})),
            (1, 9, "call_overflowed", json!({"to": {"queue": "comune"}})),
            (1, 9, "call_queued", json!({"queue": "comune"})),
            (2, 10, "callback_requested", json!({})),
            (
                1,
                12,
                "call_connected",
                json!({"queue": "comune", "agent": "agent1", "wait": 9.25}),
            ),
            (
                2,
                14,
                "call_abandoned",
                json!({"queue": "anagrafe", "wait": 11.0, "position": 2}),
            ),
            (2, 14, "call_ended", json!({"cause": "abandoned_by_caller"})),
            (1, 80, "call_completed", json!({"talk": 68.5})),
            (1, 95, "survey_recorded", json!({"vote": "4"})),
            (1, 96, "call_ended", json!({"cause": "hangup"})),
        ];
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (call, at, kind, body))| record(i as u64 + 1, at, kind, call, body))
            .collect()
    }

    async fn scratch_store(name: &str) -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "amico-store-{name}-{}-{:?}.db",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let store = Store::open(&path.to_string_lossy())
            .await
            .expect("a scratch store");
        (store, path)
    }

    async fn cdrs(store: &Store) -> Vec<Vec<Option<String>>> {
        let columns = CALL_COLUMNS.map(|(column, _)| format!("CAST({column} AS TEXT)"));
        let sql = format!("SELECT {} FROM calls ORDER BY call_id", columns.join(", "));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(store.pool())
            .await
            .expect("the CDRs");
        rows.iter()
            .map(|row| (0..CALL_COLUMNS.len()).map(|i| row.get(i)).collect())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_fills_in_the_cdrs_as_its_records_one_by_one_do() {
        let records = two_calls();
        let (together, together_path) = scratch_store("together").await;
        together.write(&records).await.expect("one batch");
        let (apart, apart_path) = scratch_store("apart").await;
        for record in &records {
            apart
                .write(std::slice::from_ref(record))
                .await
                .expect("a batch of one");
        }
        let (together_rows, apart_rows) = (cdrs(&together).await, cdrs(&apart).await);
        together.close().await;
        apart.close().await;
        for path in [together_path, apart_path] {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        assert_eq!(together_rows, apart_rows);
        let text = |s: &str| Some(s.to_owned());
        // queue, queued_us, answered_us, agent, wait_ms, outcome, abandon_position,
        // talk_ms, callback, survey, ended_us
        assert_eq!(
            together_rows,
            [
                vec![
                    text("comune"),
                    text("3000000"),
                    text("12000000"),
                    text("agent1"),
                    text("9250"),
                    text("answered"),
                    None,
                    text("68500"),
                    text("0"),
                    text("4"),
                    text("96000000"),
                ],
                vec![
                    text("anagrafe"),
                    text("3000000"),
                    None,
                    None,
                    text("11000"),
                    text("abandoned"),
                    text("2"),
                    None,
                    text("1"),
                    None,
                    text("14000000"),
                ],
            ]
        );
    }

    #[test]
    fn a_later_change_wins_and_if_null_keeps_the_first_value() {
        let (a, b) = (Param::Int(Some(1)), Param::Int(Some(2)));
        let null = Param::Int(None);
        let set = Change::Set;
        let if_null = Change::IfNull;
        assert_eq!(set(a.clone()).then(set(b.clone())), set(b.clone()));
        assert_eq!(set(a.clone()).then(if_null(b.clone())), set(a.clone()));
        assert_eq!(set(null.clone()).then(if_null(b.clone())), set(b.clone()));
        assert_eq!(
            if_null(a.clone()).then(if_null(b.clone())),
            if_null(a.clone())
        );
        assert_eq!(
            if_null(null.clone()).then(if_null(b.clone())),
            if_null(b.clone())
        );
        assert_eq!(if_null(a.clone()).then(set(b.clone())), set(b.clone()));
        assert_eq!(Change::Keep.then(if_null(a.clone())), if_null(a.clone()));
        assert_eq!(set(a.clone()).then(Change::Keep), set(a));
    }

    #[test]
    fn database_settings_become_urls() {
        let url = |s: &str| database_url(s).map_err(|e| e.to_string());
        assert_eq!(
            url("amico.db"),
            Ok((Backend::Sqlite, "sqlite://amico.db?mode=rwc".into()))
        );
        assert_eq!(
            url("sqlite:/var/lib/amico/amico.db"),
            Ok((
                Backend::Sqlite,
                "sqlite:///var/lib/amico/amico.db?mode=rwc".into()
            ))
        );
        assert_eq!(
            url("sqlite://x.db?mode=ro"),
            Ok((Backend::Sqlite, "sqlite://x.db?mode=ro".into()))
        );
        assert_eq!(
            url("postgres://amico@localhost/amico"),
            Ok((Backend::Postgres, "postgres://amico@localhost/amico".into()))
        );
        assert!(
            url("mysql://x")
                .unwrap_err()
                .contains("unknown scheme 'mysql'")
        );
        assert!(url("  ").unwrap_err().contains("empty"));
        assert!(url("sqlite:").unwrap_err().contains("no file"));
    }
}
