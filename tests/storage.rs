//! The store end to end: calls from PJSIP phones leave their queue log, CDRs, legs, votes
//! and agent states in SQLite and in PostgreSQL; a `kill -9` in the middle of traffic
//! loses nothing that was committed; a restarted server numbers on.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use peers::{Ua, event};
use serde_json::Value;
use server::Server;
use sqlx::Row;

const STEP: Duration = Duration::from_secs(20);

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// Two agents sharing one password (one PJSIP process holds both), and a survey.
fn config() -> String {
    let config = server::config(2, "ring_timeout = 10\nwrap_up = 0")
        .replace("sip_password = \"secret-2\"", "sip_password = \"secret-1\"");
    format!(
        "{config}\n[experience.comune]\nwelcome = false\nannounce_position = \"no\"\n\
         announce_holdtime = \"no\"\nperiodic_announce_frequency = 0\nsurvey = true\n\
         survey_timeout = 6\n\n[[api.tokens]]\nname = \"wallboard\"\ntoken = \"{TOKEN}\"\n\
         scope = \"supervisor\"\n"
    )
}

/// The supervisor token of [`config`].
const TOKEN: &str = "storage-test-token-0123";

fn agents(server: &Server) -> Ua {
    let registrar = server.sip.to_string();
    let mut ua = ok(Ua::spawn(
        "store-agents",
        &[
            "--role",
            "agent",
            "--registrar",
            &registrar,
            "--user",
            "agent1",
            "--user",
            "agent2",
            "--accounts",
            "2",
            "--password",
            "secret-1",
            "--answer",
            "auto",
            "--hangup-after",
            "1",
            "--timeout",
            "120",
        ],
    ));
    for _ in 0..2 {
        ok(ua.wait_for(event("registered"), STEP));
    }
    ua
}

/// `calls` simultaneous calls that press `dtmf` (if any) 4 s after Amico answers: after
/// the agent hung up, in the survey.
fn callers(server: &Server, label: &str, calls: u32, dtmf: Option<&str>) -> Ua {
    let to = format!("sip:100@{}", server.sip);
    let calls = calls.to_string();
    let mut args = vec![
        "--role",
        "caller",
        "--to",
        &to,
        "--from-user",
        "%2B39055123",
        "--calls",
        &calls,
        "--timeout",
        "120",
    ];
    if let Some(digits) = dtmf {
        args.extend(["--dtmf", digits, "--dtmf-delay", "4"]);
    }
    ok(Ua::spawn(label, &args))
}

/// Runs `f` against the database at `url` (`sqlite:FILE` or `postgres://…`).
fn with_db<T>(url: &str, f: impl AsyncFnOnce(&sqlx::AnyPool) -> T) -> T {
    sqlx::any::install_default_drivers();
    let url = match url.strip_prefix("sqlite:") {
        Some(path) => format!("sqlite://{path}?mode=rw"),
        None => url.to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let result = f(&pool).await;
        pool.close().await;
        result
    })
}

async fn count(pool: &sqlx::AnyPool, sql: &str, committed: i64) -> i64 {
    // Test-only SQL built from constants, never from input.
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(committed)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<i64, _>(0)
}

/// Everything the queue log says up to `committed` is there, and so is every row derived
/// from it: no gap in the numbering, a CDR for every call, a row for every vote and state.
async fn check_consistent(pool: &sqlx::AnyPool, committed: i64) {
    let logged = count(
        pool,
        "SELECT COUNT(*) FROM queue_log WHERE seq <= $1",
        committed,
    )
    .await;
    assert_eq!(
        logged, committed,
        "every committed record, numbered 1..={committed}"
    );
    let arrived = count(
        pool,
        "SELECT COUNT(*) FROM queue_log WHERE kind = 'call_arrived' AND seq <= $1",
        committed,
    )
    .await;
    let cdrs = count(
        pool,
        "SELECT COUNT(*) FROM calls WHERE call_id IN \
         (SELECT call_id FROM queue_log WHERE kind = 'call_arrived' AND seq <= $1)",
        committed,
    )
    .await;
    assert_eq!(cdrs, arrived, "a CDR for every call that arrived");
    let ended = count(
        pool,
        "SELECT COUNT(*) FROM queue_log WHERE kind = 'call_ended' AND seq <= $1",
        committed,
    )
    .await;
    let closed = count(
        pool,
        "SELECT COUNT(*) FROM calls WHERE ended_us IS NOT NULL AND call_id IN \
         (SELECT call_id FROM queue_log WHERE kind = 'call_ended' AND seq <= $1)",
        committed,
    )
    .await;
    assert_eq!(closed, ended, "every ended call's CDR says when it ended");
    for (kind, table) in [
        ("survey_recorded", "survey_votes"),
        ("leg_ended", "legs"),
        ("agent_state_changed", "agent_states"),
        ("wait_prediction_resolved", "wait_predictions"),
    ] {
        let logged = count(
            pool,
            &format!("SELECT COUNT(*) FROM queue_log WHERE kind = '{kind}' AND seq <= $1"),
            committed,
        )
        .await;
        let derived = match table {
            "survey_votes" | "legs" => {
                count(
                    pool,
                    &format!(
                        "SELECT COUNT(*) FROM {table} WHERE call_id IN (SELECT call_id FROM \
                         queue_log WHERE kind = '{kind}' AND seq <= $1)"
                    ),
                    committed,
                )
                .await
            }
            _ => {
                count(
                    pool,
                    &format!("SELECT COUNT(*) FROM {table} WHERE seq <= $1"),
                    committed,
                )
                .await
            }
        };
        assert!(
            derived >= logged,
            "{table}: {derived} rows for {logged} {kind} records"
        );
    }
}

/// Calls that were answered, rated 'sufficient' and ended, with their legs.
async fn answered_and_rated(pool: &sqlx::AnyPool) -> i64 {
    let rows = sqlx::query(
        "SELECT c.call_id, c.agent, c.wait_ms, c.talk_ms, c.survey, \
         (SELECT COUNT(*) FROM legs l WHERE l.call_id = c.call_id AND l.kind = 'trunk'), \
         (SELECT COUNT(*) FROM legs l WHERE l.call_id = c.call_id AND l.kind = 'agent' \
          AND l.end_reason = 'completed'), \
         (SELECT COUNT(*) FROM survey_votes v WHERE v.call_id = c.call_id \
          AND v.vote = 'sufficient' AND v.agent = c.agent AND v.queue = 'comune') \
         FROM calls c WHERE c.outcome = 'answered' AND c.ended_us IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("the CDRs");
    let mut rated = 0;
    for row in &rows {
        let agent: Option<String> = row.get(1);
        assert!(
            matches!(agent.as_deref(), Some("agent1" | "agent2")),
            "{agent:?}"
        );
        assert!(row.get::<Option<i64>, _>(2).is_some(), "the wait is kept");
        let survey: Option<String> = row.get(4);
        if survey.as_deref() == Some("sufficient") {
            assert!(
                row.get::<Option<i64>, _>(3).is_some_and(|talk| talk > 0),
                "the talk time is kept"
            );
            assert_eq!(row.get::<i64, _>(5), 1, "one trunk leg");
            assert_eq!(row.get::<i64, _>(6), 1, "one answered agent leg");
            assert_eq!(row.get::<i64, _>(7), 1, "the vote, with agent and queue");
            rated += 1;
        }
    }
    rated
}

async fn max_call(pool: &sqlx::AnyPool) -> i64 {
    count(
        pool,
        "SELECT COALESCE(MAX(call_id), 0) FROM calls WHERE call_id >= $1",
        0,
    )
    .await
}

#[test]
fn a_kill_9_in_the_middle_of_traffic_loses_no_committed_record() {
    let database = server::fresh_database();
    let server = Server::start_with_database(&config(), &database);
    let mut agents = agents(&server);
    server.wait_logged_in(2);

    // Four calls answered, rated "sufficient" (2) in the survey, and ended.
    let mut rated = callers(&server, "store-rated", 4, Some("2"));
    let done = ok(rated.wait_for(event("done"), Duration::from_secs(90)));
    assert_eq!(done["ended"], 4, "{done}");
    server.wait_metric(
        "amico_survey_votes_total{queue=\"comune\",vote=\"sufficient\"}",
        |v| v == 4.0,
        STEP,
    );

    // Four more calls; the server dies while they are queued and talking.
    let mut unfinished = callers(&server, "store-killed", 4, None);
    for _ in 0..2 {
        ok(agents.wait_for_new(event("confirmed"), STEP));
    }
    let committed = server.metric("amico_store_committed_seq") as i64;
    assert!(committed > 0, "records were committed");
    server.kill();
    drop(unfinished.shutdown(STEP));

    let (rated_calls, last_call) = with_db(&database, async |pool| {
        check_consistent(pool, committed).await;
        (answered_and_rated(pool).await, max_call(pool).await)
    });
    assert_eq!(rated_calls, 4, "the four rated calls' records survived");

    // A new server on the same database numbers its calls and records on.
    let server = Server::start_with_database(&config(), &database);
    drop(agents.shutdown(STEP));
    let mut agents = self::agents(&server);
    server.wait_logged_in(2);
    let mut caller = callers(&server, "store-after", 1, Some("1"));
    ok(caller.wait_for(event("done"), Duration::from_secs(60)));
    server.wait_metric(
        "amico_survey_votes_total{queue=\"comune\",vote=\"satisfied\"}",
        |v| v == 1.0,
        STEP,
    );
    server.wait_metric("amico_store_pending", |v| v == 0.0, STEP);
    let committed_after = server.metric("amico_store_committed_seq") as i64;
    assert!(committed_after > committed, "numbering goes on");
    drop(agents.shutdown(STEP));
    with_db(&database, async |pool| {
        check_consistent(pool, committed_after).await;
        let newest = max_call(pool).await;
        assert!(
            newest > last_call,
            "call {newest} is numbered after {last_call}"
        );
        let satisfied = count(
            pool,
            "SELECT COUNT(*) FROM survey_votes WHERE vote = 'satisfied' AND call_id = $1",
            newest,
        )
        .await;
        assert_eq!(
            satisfied, 1,
            "the new call's vote is stored under its own id"
        );
    });

    // A report over both runs of the server.
    let report = report(&database, &["--interval", "1h"]);
    let total = report["queues"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["span"] == "total"))
        .unwrap_or_else(|| panic!("a total row: {report}"));
    assert_eq!(total["survey_sufficient"], 4, "{total}");
    assert_eq!(total["survey_satisfied"], 1, "{total}");
    assert!(
        total["answered"].as_u64().is_some_and(|n| n >= 5),
        "{total}"
    );
    let agents: Vec<&str> = report["agents"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|row| row["span"] == "total")
                .filter_map(|row| row["agent"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(agents, ["agent1", "agent2"], "{report}");
    assert_eq!(report["unreadable_events"], 0, "{report}");
}

#[test]
fn calls_are_stored_in_postgresql_with_the_same_code() {
    let postgres = ok(postgres::Postgres::start("calls"));
    let server = Server::start_with_database(&config(), &postgres.url);
    let mut agents = agents(&server);
    server.wait_logged_in(2);
    let mut rated = callers(&server, "pg-rated", 2, Some("2"));
    let done = ok(rated.wait_for(event("done"), Duration::from_secs(90)));
    assert_eq!(done["ended"], 2, "{done}");
    server.wait_metric(
        "amico_survey_votes_total{queue=\"comune\",vote=\"sufficient\"}",
        |v| v == 2.0,
        STEP,
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
    server.wait_metric("amico_store_pending", |v| v == 0.0, STEP);
    let committed = server.metric("amico_store_committed_seq") as i64;
    drop(agents.shutdown(STEP));
    with_db(&postgres.url, async |pool| {
        check_consistent(pool, committed).await;
        assert_eq!(answered_and_rated(pool).await, 2);
    });

    // The report from the database gives the figures the live server shows.
    let live = |name: &str| server.metric(&format!("{name}{{queue=\"comune\"}}"));
    let report = report(&postgres.url, &["--interval", "none", "--by", "queue"]);
    let total = &report["queues"][0];
    assert_eq!(total["queue"], "comune", "{report}");
    assert_eq!(total["span"], "total");
    for (field, metric) in [
        ("offered", "amico_queue_offered_total"),
        ("answered", "amico_queue_answered_total"),
        ("abandoned", "amico_queue_abandoned_total"),
    ] {
        assert_eq!(
            total[field].as_f64(),
            Some(live(metric)),
            "{field}: {total}"
        );
    }
    assert_eq!(
        total["service_level"].as_f64(),
        Some(live("amico_queue_service_level_ratio")),
        "{total}"
    );
    assert_eq!(total["survey_sufficient"], 2, "{total}");
    assert_eq!(total["survey_sufficient_share"], 1.0, "{total}");
    assert!(
        total["asa_secs"].as_f64().is_some_and(|asa| asa >= 0.0),
        "{total}"
    );
    assert_eq!(report["unreadable_events"], 0, "{report}");
}

/// Now plus `days`, as an RFC 3339 instant.
fn around_now(days: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now + days * 86_400)
        .expect("a time near now")
        .to_string()
}

/// `amico report --database URL --format json --tz UTC` around now, with `extra`.
fn report(database: &str, extra: &[&str]) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amico"))
        .args([
            "report",
            "--database",
            database,
            "--format",
            "json",
            "--tz",
            "UTC",
        ])
        // Two days either side of now: every record of a test (bench-store's clock runs a
        // few hours ahead), and few enough hourly intervals for a report.
        .args(["--from", &around_now(-2), "--to", &around_now(2)])
        .args(extra)
        .output()
        .expect("amico report runs");
    assert!(
        output.status.success(),
        "amico report failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "amico report printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A client of `/api/events`, read with deadlines.
struct EventStream {
    runtime: tokio::runtime::Runtime,
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl EventStream {
    fn connect(server: &Server, query: &str) -> EventStream {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let separator = if query.is_empty() { '?' } else { '&' };
        let url = format!(
            "ws://{}/api/events{query}{separator}token={TOKEN}",
            server.http
        );
        let (socket, _) = runtime
            .block_on(tokio_tungstenite::connect_async(&url))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        EventStream { runtime, socket }
    }

    /// The next record, within `within`.
    fn next(&mut self, within: Duration) -> Value {
        use futures_util::StreamExt;
        let message = self
            .runtime
            .block_on(async { tokio::time::timeout(within, self.socket.next()).await })
            .unwrap_or_else(|_| panic!("no event within {within:?}"))
            .expect("the stream is open")
            .expect("a message");
        let text = message.into_text().expect("a text frame");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Records up to and including the first that `until` accepts.
    fn until(&mut self, until: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let record = self.next(left);
            let done = until(&record);
            seen.push(record);
            if done {
                return seen;
            }
        }
    }
}

fn kinds(records: &[Value]) -> Vec<&str> {
    records.iter().filter_map(|r| r["kind"].as_str()).collect()
}

fn assert_contiguous(records: &[Value], first: u64) {
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["seq"], first + i as u64, "no gap: {record}");
    }
}

#[test]
fn the_event_stream_shows_a_call_and_resumes_after_a_reconnect_without_a_gap() {
    let server = Server::start(&config());
    let mut stream = EventStream::connect(&server, "?after=0");
    let agents = agents(&server);
    server.wait_logged_in(2);
    let mut caller = callers(&server, "stream-1", 1, Some("3"));
    ok(caller.wait_for(event("done"), Duration::from_secs(60)));
    let first = stream.until(|r| r["kind"] == "call_ended");
    assert_contiguous(&first, 1);
    let seen = kinds(&first);
    for kind in [
        "acd_started",
        "agent_state_changed",
        "call_arrived",
        "call_queued",
        "call_offered",
        "call_connected",
        "leg_ended",
        "survey_recorded",
        "call_ended",
    ] {
        assert!(seen.contains(&kind), "{kind} in {seen:?}");
    }
    let vote = first
        .iter()
        .find(|r| r["kind"] == "survey_recorded")
        .expect("a vote");
    assert_eq!(vote["body"]["vote"], "unsatisfied", "{vote}");
    assert_eq!(vote["queue"], "comune");
    let connected = first
        .iter()
        .find(|r| r["kind"] == "call_connected")
        .expect("connected");
    assert!(connected["body"]["wait"].as_f64().is_some(), "{connected}");
    let last = first.last().expect("records")["seq"].as_u64().expect("seq");

    // Away while a second call comes and goes; back with ?after=: nothing is missed.
    drop(stream);
    let mut caller = callers(&server, "stream-2", 1, Some("1"));
    ok(caller.wait_for(event("done"), Duration::from_secs(60)));
    server.wait_metric(
        "amico_survey_votes_total{queue=\"comune\",vote=\"satisfied\"}",
        |v| v == 1.0,
        STEP,
    );
    let mut stream = EventStream::connect(&server, &format!("?after={last}"));
    let second = stream.until(|r| r["kind"] == "call_ended");
    assert_contiguous(&second, last + 1);
    let calls: Vec<u64> = second.iter().filter_map(|r| r["call"].as_u64()).collect();
    assert!(
        !calls.is_empty() && calls.iter().all(|c| *c == calls[0]),
        "one new call: {calls:?}"
    );
    drop(agents);
}

#[test]
fn bench_store_commits_every_record_it_counts_and_a_report_reads_them_back() {
    let database = server::fresh_database();
    let run = |database: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_amico"))
            .args(["bench-store", "--calls", "50", "--format", "json"])
            .args(["--database", database])
            .output()
            .expect("amico bench-store runs")
    };
    let output = run(&database);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let measured: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    // 45 answered calls of 14 records, 5 abandoned of 9, and the three agents' logins.
    assert_eq!(measured["records"], 45 * 14 + 5 * 9 + 3, "{measured}");
    assert_eq!(measured["calls"], 50);
    assert!(
        measured["records_per_sec"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    );
    let latency = &measured["commit_latency_ms"];
    assert!(
        latency["p50"].as_f64() <= latency["p99"].as_f64(),
        "{measured}"
    );

    with_db(&database, async |pool| {
        let scalar = async |sql: &str| -> i64 {
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_one(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get::<i64, _>(0)
        };
        let records = measured["records"].as_i64().expect("a count");
        assert_eq!(scalar("SELECT COUNT(*) FROM queue_log").await, records);
        assert_eq!(scalar("SELECT MAX(seq) FROM queue_log").await, records);
        assert_eq!(scalar("SELECT COUNT(*) FROM calls").await, 50);
        assert_eq!(
            scalar("SELECT COUNT(*) FROM calls WHERE outcome = 'answered'").await,
            45
        );
        assert_eq!(scalar("SELECT COUNT(*) FROM legs").await, 100);
        assert_eq!(scalar("SELECT COUNT(*) FROM survey_votes").await, 45);
    });
    let report = report(&database, &["--interval", "none", "--by", "queue"]);
    // The calls take the configuration's queues in turn.
    let sum = |field: &str| -> u64 {
        report["queues"]
            .as_array()
            .expect("queue rows")
            .iter()
            .filter(|row| row["span"] == "total")
            .map(|row| row[field].as_u64().expect("a count"))
            .sum()
    };
    assert_eq!(
        (
            sum("offered"),
            sum("answered"),
            sum("abandoned"),
            sum("survey_satisfied")
        ),
        (50, 45, 5, 45),
        "{report}"
    );

    // A database that already holds a queue log is refused, and left as it was.
    let again = run(&database);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already holds a queue log"), "{said}");
    with_db(&database, async |pool| {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM queue_log")
            .fetch_one(pool)
            .await
            .expect("a count")
            .get(0);
        assert_eq!(count, measured["records"].as_i64().expect("a count"));
    });
}

/// `/api/queues/comune` as the supervisor until `check` holds, failing after a deadline.
fn wait_queue(server: &Server, check: impl Fn(&Value) -> bool) -> Value {
    server.wait_api("/api/queues/comune", TOKEN, check, STEP)
}

#[test]
fn today_is_the_stored_day_across_a_restart_and_leaves_yesterday_out() {
    let config = format!("{}\n[reports]\ntime_zone = \"UTC\"\n", config());
    let database = server::fresh_database();
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("today-{}.toml", std::process::id()));
    std::fs::write(&file, &config).expect("the config is written");
    // Forty calls into the store, as a server that ran earlier would have left them.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amico"))
        .args(["bench-store", "--calls", "40", "--database", &database])
        .arg("--config")
        .arg(&file)
        .output()
        .expect("amico bench-store runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The first half of the log happened yesterday evening, the rest since midnight (UTC),
    // in order.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as i64;
    let midnight = now_us - now_us % 86_400_000_000;
    let (today_offered, today_answered) = with_db(&database, async |pool| {
        let records: i64 = sqlx::query("SELECT COUNT(*) FROM queue_log")
            .fetch_one(pool)
            .await
            .expect("a count")
            .get(0);
        let half = records / 2;
        sqlx::query("UPDATE queue_log SET at_us = $1 + seq WHERE seq <= $2")
            .bind(midnight - 3_600_000_000)
            .bind(half)
            .execute(pool)
            .await
            .expect("yesterday");
        sqlx::query("UPDATE queue_log SET at_us = $1 + ($2 - $1) * (seq - $3) / ($4 - $3 + 1) WHERE seq > $3")
            .bind(midnight)
            .bind(now_us)
            .bind(half)
            .bind(records)
            .execute(pool)
            .await
            .expect("today");
        let today = async |kind: &str| -> u64 {
            sqlx::query("SELECT COUNT(*) FROM queue_log WHERE kind = $1 AND at_us >= $2")
                .bind(kind)
                .bind(midnight)
                .fetch_one(pool)
                .await
                .expect("a count")
                .get::<i64, _>(0) as u64
        };
        (today("call_queued").await, today("call_connected").await)
    });
    assert!(
        (1..40).contains(&today_offered),
        "{today_offered} of 40 calls today"
    );

    // A new server (a restart) shows the day so far from the store, not yesterday's calls
    // and not just its own.
    let server = Server::start_with_database(&config, &database);
    let queue = wait_queue(&server, |q| q["today"]["offered"] == today_offered);
    assert_eq!(queue["today"]["answered"], today_answered, "{queue}");
    assert!(
        queue["today_since"]
            .as_str()
            .is_some_and(|since| since.ends_with("T00:00:00Z")),
        "{queue}"
    );
    // The live ACD counts since it started: nothing yet.
    assert_eq!(
        server.metric("amico_queue_offered_total{queue=\"comune\"}"),
        0.0
    );

    // A live caller joins today's figures as it comes.
    let mut caller = callers(&server, "today-caller", 1, None);
    ok(caller.wait_for(event("confirmed"), STEP));
    wait_queue(&server, |q| {
        q["waiting"] == 1 && q["today"]["offered"] == today_offered + 1
    });
    let _ = std::fs::remove_file(&file);
}
