//! The caller's experience end to end, with PJSIP phones: what a waiting caller hears
//! (found in its recording by cross-correlation with the prompt files, not by packet
//! counts), the welcome every caller hears before joining the queue, periodic
//! announcements at their interval, and the post-call survey.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use peers::{Ua, event};
use serde_json::Value;
use server::Server;
use sqlx::Row;

const STEP: Duration = Duration::from_secs(20);

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn prompt(language: &str, name: &str) -> PathBuf {
    peers::workspace_root()
        .join("prompts")
        .join(language)
        .join(format!("{name}.wav"))
}

/// `audio_match.py RECORDING --all PROMPT...`: where each prompt was heard.
fn heard(recording: &Path, prompts: &[PathBuf]) -> Value {
    let python = ok(peers::python());
    let mut command = Command::new(python);
    command
        .arg(peers::peers_dir().join("audio_match.py"))
        .arg(recording)
        .arg("--all");
    command.args(prompts);
    let output = command.output().expect("audio_match.py runs");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "audio_match.py: {e}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The recording ua.py made of a call's received audio.
fn recording(ua: &mut Ua) -> PathBuf {
    let audio = ok(ua.wait_for(event("audio"), STEP));
    PathBuf::from(
        audio["file"]
            .as_str()
            .unwrap_or_else(|| panic!("no recording: {audio}")),
    )
}

fn caller(server: &Server, label: &str, dir: &Path, extra: &[&str]) -> Ua {
    let to = format!("sip:100@{}", server.sip);
    let record = dir.to_string_lossy().into_owned();
    let mut args = vec![
        "--role",
        "caller",
        "--to",
        &to,
        "--calls",
        "1",
        "--record-dir",
        &record,
        "--timeout",
        "90",
    ];
    args.extend_from_slice(extra);
    ok(Ua::spawn(label, &args))
}

/// agent1, registered and logged in, answering at once; `extra` flags for `ua.py`.
fn logged_in_agent(server: &Server, label: &str, extra: &[&str]) -> Ua {
    let registrar = server.sip.to_string();
    let mut args = vec![
        "--role",
        "agent",
        "--registrar",
        &registrar,
        "--user",
        "agent1",
        "--password",
        "secret-1",
        "--answer",
        "auto",
        "--calls",
        "1",
        "--timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    let mut agent = ok(Ua::spawn(label, &args));
    ok(agent.wait_for(event("registered"), STEP));
    server.wait_logged_in(1);
    agent
}

/// Runs `f` against the server's SQLite store (the server keeps writing it meanwhile).
fn with_store<T>(server: &Server, f: impl AsyncFnOnce(&sqlx::AnyPool) -> T) -> T {
    sqlx::any::install_default_drivers();
    let path = server
        .database
        .strip_prefix("sqlite:")
        .expect("a SQLite store");
    let url = format!("sqlite://{path}?mode=rw");
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

/// Each call's CDR, by call id: its outcome and whether it joined a queue, once `count`
/// calls have ended in the store; fails after `within`.
fn ended_calls(server: &Server, count: usize, within: Duration) -> Vec<(i64, String, bool)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let rows = with_store(server, async |pool| {
            sqlx::query(
                "SELECT call_id, outcome, queued_us IS NOT NULL AS queued FROM calls \
                 WHERE ended_us IS NOT NULL ORDER BY call_id",
            )
            .fetch_all(pool)
            .await
            .expect("the calls table")
            .iter()
            .map(|row| {
                (
                    row.get::<i64, _>(0),
                    row.get::<Option<String>, _>(1).unwrap_or_default(),
                    row.get::<i64, _>(2) != 0,
                )
            })
            .collect::<Vec<_>>()
        });
        if rows.len() >= count {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} ended calls expected in the store, found {rows:?}\n{}",
            server.log_tail(30)
        );
        // Polling with a deadline: a test has no push channel into the store.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The kinds of a call's records in the queue log, in order.
fn records_of(server: &Server, call: i64) -> Vec<String> {
    with_store(server, async |pool| {
        sqlx::query("SELECT kind FROM queue_log WHERE call_id = $1 ORDER BY seq")
            .bind(call)
            .fetch_all(pool)
            .await
            .expect("the queue log")
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect()
    })
}

fn with_experience(agents: usize, experience: &str) -> String {
    format!(
        "{}\n[experience.comune]\n{experience}\n",
        server::config(agents, "")
    )
}

#[test]
fn a_waiting_caller_hears_the_italian_welcome_and_its_position() {
    let server = Server::start(&with_experience(
        0,
        "language = \"it\"\nperiodic_announce_frequency = 0",
    ));
    let dir = peers::scratch_dir("welcome");
    let mut caller = caller(&server, "welcome", &dir, &["--hangup-after", "9"]);
    ok(caller.wait_for(event("disconnected"), STEP));
    let recording = recording(&mut caller);
    let names = ["welcome", "you-are-number", "n-1", "in-queue"];
    let prompts: Vec<PathBuf> = names.iter().map(|n| prompt("it", n)).collect();
    let result = heard(&recording, &prompts);
    assert_eq!(
        result["found"], true,
        "every prompt heard, in order: {result}"
    );
    assert_eq!(result["in_order"], true, "{result}");
    // English prompts were not played.
    let english = heard(&recording, &[prompt("en", "welcome")]);
    assert_eq!(english["found"], false, "{english}");
    // What the caller was told is in the queue log (and, while the call lasts, in
    // /api/calls and on the agent's desk). Records are committed in order: once the call's
    // end is there, so is its announcement.
    let calls = ended_calls(&server, 1, STEP);
    let told: Vec<Value> = with_store(&server, async |pool| {
        sqlx::query("SELECT body FROM queue_log WHERE kind = 'announced' AND call_id = $1")
            .bind(calls[0].0)
            .fetch_all(pool)
            .await
            .expect("the queue log")
            .iter()
            .map(|row| serde_json::from_str(&row.get::<String, _>(0)).unwrap())
            .collect()
    });
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["position"], 1, "{told:?}");
}

#[test]
fn with_an_agent_free_the_caller_hears_the_whole_welcome_before_the_agent() {
    let server = Server::start(&with_experience(
        1,
        "language = \"it\"\nwelcome = true\nperiodic_announce_frequency = 0",
    ));
    // The agent's voice: an English prompt, which this Italian queue never plays, looped.
    let voice = prompt("en", "periodic-2");
    let voice_arg = voice.to_string_lossy().into_owned();
    let mut agent = logged_in_agent(
        &server,
        "welcome-agent",
        &["--play", &voice_arg, "--hangup-after", "9"],
    );
    let dir = peers::scratch_dir("welcome-agent-free");
    let mut caller = caller(&server, "welcome-caller", &dir, &[]);
    ok(agent.wait_for(event("confirmed"), STEP));
    let ended = ok(caller.wait_for(event("disconnected"), STEP));
    assert_eq!(ended["by"], "remote", "the agent hung up: {ended}");
    let recording = recording(&mut caller);
    let result = heard(&recording, &[prompt("it", "welcome"), voice]);
    assert_eq!(
        result["found"], true,
        "the welcome and the agent were heard: {result}"
    );
    assert_eq!(result["in_order"], true, "the welcome first: {result}");
    let welcome_end = result["matches"][0]["end_secs"].as_f64().expect("end_secs");
    let agent_first = result["matches"][1]["occurrences"][0]
        .as_f64()
        .expect("an occurrence");
    assert!(
        welcome_end <= agent_first,
        "the welcome ended before the agent was heard: {result}"
    );
    // An agent was free: the caller was not told its place in a queue it did not wait in.
    let position = heard(&recording, &[prompt("it", "you-are-number")]);
    assert_eq!(position["found"], false, "{position}");
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_offered_total{queue=\"comune\"}"),
        1.0
    );
    assert_eq!(
        server.metric("amico_queue_abandoned_total{queue=\"comune\"}"),
        0.0
    );
}

#[test]
fn a_caller_who_hangs_up_during_the_welcome_is_recorded_once_and_never_queued() {
    let server = Server::start(&with_experience(
        0,
        "language = \"it\"\nperiodic_announce_frequency = 0",
    ));
    let dir = peers::scratch_dir("welcome-hangup");
    // One caller hangs up as soon as it is answered, inside the welcome.
    let mut early = caller(&server, "welcome-leaver", &dir, &[]);
    ok(early.wait_for(event("confirmed"), STEP));
    ok(early.send("hangup"));
    ok(early.wait_for(event("disconnected"), STEP));
    // Another hears the welcome, joins the queue, and hangs up there: an abandon.
    let mut late = caller(&server, "queue-leaver", &dir, &[]);
    ok(late.wait_for(event("confirmed"), STEP));
    server.wait_metric(
        "amico_queue_waiting_callers{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    ok(late.send("hangup"));
    ok(late.wait_for(event("disconnected"), STEP));
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);

    // The ACD counts the second caller only, once.
    server.wait_metrics(
        &[
            "amico_queue_offered_total{queue=\"comune\"}",
            "amico_queue_abandoned_total{queue=\"comune\"}",
            "amico_queue_waiting_callers{queue=\"comune\"}",
        ],
        |v| v == [1.0, 1.0, 0.0],
        STEP,
    );
    // The store keeps both: the first as a call that ended in the welcome, with its
    // arrival, its leg and its end and nothing from the ACD; the second as an abandon.
    let calls = ended_calls(&server, 2, STEP);
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (first, outcome, queued) = &calls[0];
    assert_eq!(
        (outcome.as_str(), *queued),
        ("hung_up_in_welcome", false),
        "{calls:?}"
    );
    assert_eq!(
        records_of(&server, *first),
        ["call_arrived", "leg_ended", "call_ended"]
    );
    let (second, outcome, queued) = &calls[1];
    assert_eq!(
        (outcome.as_str(), *queued),
        ("abandoned", true),
        "{calls:?}"
    );
    let kinds = records_of(&server, *second);
    for kind in [
        "call_arrived",
        "call_queued",
        "call_abandoned",
        "call_ended",
    ] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            1,
            "{kind} once in {kinds:?}"
        );
    }
}

#[test]
fn periodic_announcements_come_at_their_interval() {
    let experience = "language = \"en\"\nwelcome = false\nannounce_frequency = 0\nannounce_position = \"no\"\n\
        periodic_announce = [\"periodic-2\"]\nperiodic_announce_frequency = 6\nmin_announce_frequency = 0";
    let server = Server::start(&with_experience(0, experience));
    let dir = peers::scratch_dir("periodic");
    let mut caller = caller(&server, "periodic", &dir, &["--hangup-after", "16"]);
    ok(caller.wait_for(event("disconnected"), STEP));
    let recording = recording(&mut caller);
    let result = heard(&recording, &[prompt("en", "periodic-2")]);
    let occurrences: Vec<f64> = result["matches"][0]["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(
        occurrences.len() >= 2,
        "played every 6 s over 16 s: {result}"
    );
    for pair in occurrences.windows(2) {
        let gap = pair[1] - pair[0];
        // The schedule's interval, with room for the stream's start and the recorder.
        assert!(
            (gap - 6.0).abs() < 1.5,
            "gap {gap:.2} s between announcements: {result}"
        );
    }
}

#[test]
fn after_the_agent_hangs_up_the_caller_rates_the_call() {
    let experience = "language = \"it\"\nwelcome = false\nannounce_position = \"no\"\nannounce_holdtime = \"no\"\n\
        periodic_announce_frequency = 0\nsurvey = true\nsurvey_timeout = 10";
    let server = Server::start(&with_experience(1, experience));
    let registrar = server.sip.to_string();
    let mut agent = ok(Ua::spawn(
        "survey-agent",
        &[
            "--role",
            "agent",
            "--registrar",
            &registrar,
            "--user",
            "agent1",
            "--password",
            "secret-1",
            "--answer",
            "auto",
            "--hangup-after",
            "2",
            "--calls",
            "1",
            "--timeout",
            "60",
        ],
    ));
    ok(agent.wait_for(event("registered"), STEP));
    server.wait_logged_in(1);
    let dir = peers::scratch_dir("survey");
    // The caller presses 2 ("sufficient") while the survey question plays.
    let mut caller = caller(
        &server,
        "survey-caller",
        &dir,
        &["--dtmf", "2", "--dtmf-delay", "5"],
    );
    ok(agent.wait_for(event("disconnected"), STEP));
    let ended = ok(caller.wait_for(event("disconnected"), STEP));
    assert_eq!(
        ended["by"], "remote",
        "Amico says goodbye and hangs up: {ended}"
    );
    server.wait_metric(
        "amico_agent_survey_votes_total{agent=\"agent1\",vote=\"sufficient\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_survey_votes_total{queue=\"comune\",vote=\"sufficient\"}"),
        1.0
    );
    assert_eq!(
        server.metric("amico_survey_votes_total{queue=\"comune\",vote=\"satisfied\"}"),
        0.0
    );
    let recording = recording(&mut caller);
    let thanks = heard(&recording, &[prompt("it", "survey-thanks")]);
    assert_eq!(
        thanks["found"], true,
        "the caller heard the thanks: {thanks}"
    );
}

#[test]
fn a_caller_who_does_not_vote_is_recorded_as_no_vote() {
    let experience = "welcome = false\nannounce_position = \"no\"\nannounce_holdtime = \"no\"\nperiodic_announce_frequency = 0\n\
        survey = true\nsurvey_timeout = 1";
    let server = Server::start(&with_experience(1, experience));
    let registrar = server.sip.to_string();
    let mut agent = ok(Ua::spawn(
        "quiet-agent",
        &[
            "--role",
            "agent",
            "--registrar",
            &registrar,
            "--user",
            "agent1",
            "--password",
            "secret-1",
            "--answer",
            "auto",
            "--hangup-after",
            "1",
            "--calls",
            "1",
            "--timeout",
            "60",
        ],
    ));
    ok(agent.wait_for(event("registered"), STEP));
    server.wait_logged_in(1);
    let dir = peers::scratch_dir("no-vote");
    let mut caller = caller(&server, "quiet-caller", &dir, &[]);
    ok(caller.wait_for(event("disconnected"), Duration::from_secs(40)));
    server.wait_metric(
        "amico_survey_votes_total{queue=\"comune\",vote=\"none\"}",
        |v| v == 1.0,
        STEP,
    );
}

#[test]
fn pressing_1_and_a_number_asks_for_a_callback_that_keeps_the_place_and_calls_back_through_the_trunk()
 {
    // The PBX's gateway: a PJSIP phone answering whatever number Amico calls out to.
    let mut gateway = ok(Ua::spawn(
        "gateway",
        &[
            "--role",
            "agent",
            "--user",
            "pbx",
            "--answer",
            "auto",
            "--calls",
            "1",
            "--timeout",
            "90",
        ],
    ));
    let gateway_port = ok(gateway.ready_port(STEP));
    let experience = "language = \"it\"\nwelcome = false\nannounce_position = \"no\"\nannounce_holdtime = \"no\"\n\
        periodic_announce_frequency = 0\nmenu = true";
    let config = with_experience(1, experience).replace(
        "dids = {",
        &format!("gateway = \"127.0.0.1:{gateway_port}\"\ndids = {{"),
    );
    let server = Server::start(&config);
    let dir = peers::scratch_dir("callback");
    // No agent is logged in: the caller hears the menu to its end, presses 1, and keys in
    // another number to be called back on, ended by #.
    let mut caller = caller(
        &server,
        "callback-caller",
        &dir,
        &[
            "--from-user",
            "%2B39055123",
            "--dtmf",
            "10521999#",
            "--dtmf-delay",
            "8",
        ],
    );
    let ended = ok(caller.wait_for(event("disconnected"), STEP));
    assert_eq!(
        ended["by"], "remote",
        "Amico confirms and hangs up: {ended}"
    );
    let recording = recording(&mut caller);
    let confirmed = heard(
        &recording,
        &[prompt("it", "menu"), prompt("it", "callback-confirm")],
    );
    assert_eq!(
        confirmed["found"], true,
        "menu then confirmation: {confirmed}"
    );
    server.wait_metric(
        "amico_queue_callbacks_requested_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_waiting_callers{queue=\"comune\"}"),
        1.0,
        "it keeps its place"
    );

    // An agent logs in: agent first, then the keyed-in number is called through the gateway.
    let registrar = server.sip.to_string();
    let mut agent = ok(Ua::spawn(
        "callback-agent",
        &[
            "--role",
            "agent",
            "--registrar",
            &registrar,
            "--user",
            "agent1",
            "--password",
            "secret-1",
            "--answer",
            "auto",
            "--hangup-after",
            "4",
            "--calls",
            "1",
            "--timeout",
            "60",
        ],
    ));
    ok(agent.wait_for(event("confirmed"), STEP));
    let called_back = ok(gateway.wait_for(event("incoming"), STEP));
    let request_uri = called_back["request_uri"].as_str().unwrap_or_default();
    assert!(
        request_uri.starts_with("sip:0521999@"),
        "the keyed-in number is called back: {called_back}"
    );
    ok(gateway.wait_for(event("confirmed"), STEP));
    ok(gateway.wait_for(event("disconnected"), STEP));
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_abandoned_total{queue=\"comune\"}"),
        0.0
    );
    assert_eq!(
        server.metric("amico_queue_callbacks_unanswered_total{queue=\"comune\"}"),
        0.0
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
}
