//! The store: the queue log and the records derived from it (CDRs, legs, survey votes,
//! agent states, wait predictions), in SQLite (the embedded default) or PostgreSQL, through
//! one sqlx code path and one migration set (`migrations/`).
//!
//! Every [`Record`] is written in the same transaction as the rows derived from it, so a
//! committed record always has its CDR, vote or state row beside it, and a record is
//! committed before anyone hears of it (the event stream and `/metrics` only show committed
//! sequence numbers). SQLite runs in WAL mode with `synchronous = FULL`: a commit survives
//! a crash of the process and of the machine.

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
    /// it on, and back). So rows of one table go in together, as multi-row INSERTs, and
    /// only the updates of a call's CDR go one by one, in order. Near 2,000 calls a second
    /// the store is what limits the server, and this raised what it commits by about a
    /// tenth (BENCHMARKS.md, "Where a call's CPU went").
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
        for record in records {
            update_call(&mut tx, record).await?;
        }
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

/// Inserts `rows` into `table`. Statements carry a power of two of rows (64, then what is
/// left by its binary digits), so that the few shapes stay in sqlx's statement cache and
/// are prepared once.
async fn insert_rows(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    table: &Table,
    rows: Vec<Vec<Param>>,
) -> sqlx::Result<()> {
    let mut rows = rows.into_iter();
    let mut left = rows.len();
    while left > 0 {
        let take = if left >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << left.ilog2()
        };
        // Built from the table's own names and numbered placeholders only: no value is in it.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(backend, table, take)));
        for param in rows.by_ref().take(take).flatten() {
            query = match param {
                Param::Int(value) => query.bind(value),
                Param::Text(value) => query.bind(value),
            };
        }
        query.execute(&mut **tx).await?;
        left -= take;
    }
    Ok(())
}

/// `INSERT INTO table (columns) VALUES (..), (..)` for `rows` rows, with the backend's
/// placeholders: PostgreSQL's numbered `$1, $2, ..`, SQLite's anonymous `?`.
///
/// Not `$N` for SQLite: sqlx finds the argument of each numbered parameter by its name,
/// and SQLite looks a name up by walking the statement's list of names
/// (`sqlite3_bind_parameter_name`), so binding a 640-value INSERT walked that list 640
/// times. It was a third of the store thread's CPU (BENCHMARKS.md, "The store's
/// placeholders"). An anonymous `?` has no name, and its number is its position
/// (SQLite docs, "Binding Values To Prepared Statements"), which is the order values are
/// bound in here.
fn insert_sql(backend: Backend, table: &Table, rows: usize) -> String {
    use std::fmt::Write;
    let width = table.columns.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        table.columns.join(", ")
    );
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
    sql
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

/// Fills in a call's row (its CDR) from one record, if the record says something of it.
async fn update_call(tx: &mut Transaction<'static, Any>, record: &Record) -> sqlx::Result<()> {
    let Entry {
        at_us,
        kind,
        call,
        queue,
        agent,
        body,
    } = &record.entry;
    let call = call.map(|c| c as i64);
    match kind.as_str() {
        "call_queued" => {
            sqlx::query(
                "UPDATE calls SET queue = $2, queued_us = COALESCE(queued_us, $3) \
                 WHERE call_id = $1",
            )
            .bind(call)
            .bind(queue.as_deref())
            .bind(*at_us)
            .execute(&mut **tx)
            .await?;
        }
        "call_connected" => {
            sqlx::query(
                "UPDATE calls SET answered_us = $2, agent = $3, wait_ms = $4, \
                 outcome = 'answered' WHERE call_id = $1",
            )
            .bind(call)
            .bind(*at_us)
            .bind(agent.as_deref())
            .bind(millis(body, "wait"))
            .execute(&mut **tx)
            .await?;
        }
        "call_abandoned" => {
            sqlx::query(
                "UPDATE calls SET outcome = 'abandoned', wait_ms = $2, abandon_position = $3 \
                 WHERE call_id = $1",
            )
            .bind(call)
            .bind(millis(body, "wait"))
            .bind(int(body, "position"))
            .execute(&mut **tx)
            .await?;
        }
        "call_removed" => {
            sqlx::query("UPDATE calls SET outcome = 'removed', wait_ms = $2 WHERE call_id = $1")
                .bind(call)
                .bind(millis(body, "wait"))
                .execute(&mut **tx)
                .await?;
        }
        "call_completed" => {
            sqlx::query("UPDATE calls SET talk_ms = $2 WHERE call_id = $1")
                .bind(call)
                .bind(millis(body, "talk"))
                .execute(&mut **tx)
                .await?;
        }
        "call_overflowed" => {
            // Into another queue: the call goes on there (a call_queued follows).
            let ends = body.get("to").and_then(|to| to.get("queue")).is_none();
            if ends {
                sqlx::query("UPDATE calls SET outcome = 'overflowed' WHERE call_id = $1")
                    .bind(call)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        "callback_requested" => {
            sqlx::query("UPDATE calls SET callback = 1 WHERE call_id = $1")
                .bind(call)
                .execute(&mut **tx)
                .await?;
        }
        "callback_unanswered" => {
            sqlx::query("UPDATE calls SET outcome = 'callback_unanswered' WHERE call_id = $1")
                .bind(call)
                .execute(&mut **tx)
                .await?;
        }
        "survey_recorded" => {
            sqlx::query("UPDATE calls SET survey = $2 WHERE call_id = $1")
                .bind(call)
                .bind(text(body, "vote").as_deref().unwrap_or("none"))
                .execute(&mut **tx)
                .await?;
        }
        "call_ended" => {
            sqlx::query(
                "UPDATE calls SET ended_us = $2, outcome = COALESCE(outcome, $3) \
                 WHERE call_id = $1",
            )
            .bind(call)
            .bind(*at_us)
            .bind(text(body, "cause").unwrap_or_else(|| "ended".to_owned()))
            .execute(&mut **tx)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
