//! End to end: the real server, PJSIP phones (tests/peers/ua.py) as the PBX trunk and as
//! agents. A caller dials a DID through the trusted trunk, an agent registered with digest
//! auth answers, and each side's tone is found in what the other side received.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::time::Duration;

use peers::{Ua, event};
use serde_json::Value;
use server::Server;

const CALLER_HZ: f64 = 1000.0;
const AGENT_HZ: f64 = 440.0;
const STEP: Duration = Duration::from_secs(15);

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn tone(dir: &std::path::Path, hz: f64) -> String {
    ok(peers::tone_wav(
        &dir.join(format!("tone-{hz}.wav")),
        hz,
        30.0,
    ))
    .to_string_lossy()
    .into_owned()
}

/// Agents `agent{N}` for each N of `users`, registered from one PJSIP process with one
/// password (`secret-{first}`, unless `extra` overrides it).
fn agents(server: &Server, label: &str, users: &[usize], extra: &[&str]) -> Ua {
    let registrar = server.sip.to_string();
    let mut args: Vec<String> = vec![
        "--role",
        "agent",
        "--registrar",
        &registrar,
        "--timeout",
        "90",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for user in users {
        args.extend(["--user".to_owned(), format!("agent{user}")]);
    }
    if users.len() > 1 {
        args.extend(["--accounts".to_owned(), users.len().to_string()]);
    }
    if !extra.contains(&"--password") {
        args.extend(["--password".to_owned(), format!("secret-{}", users[0])]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ua = ok(Ua::spawn(label, &args));
    for _ in users {
        ok(ua.wait_for(event("registered"), STEP));
    }
    ua
}

fn caller(server: &Server, label: &str, extra: &[&str]) -> Ua {
    let to = format!("sip:100@{}", server.sip);
    let mut args = vec![
        "--role",
        "caller",
        "--to",
        &to,
        "--from-user",
        "%2B39055123",
        "--from-display",
        "Rossi",
        "--timeout",
        "90",
    ];
    args.extend_from_slice(extra);
    ok(Ua::spawn(label, &args))
}

fn audio_of(ua: &mut Ua) -> Value {
    ok(ua.wait_for(event("audio"), STEP))
}

#[test]
fn a_trunk_call_reaches_an_agent_with_two_way_audio() {
    let server = Server::start(&server::without_welcome(&server::config(
        1,
        "ring_timeout = 15",
    )));
    let dir = peers::scratch_dir("two-way");
    let (caller_tone, agent_tone) = (tone(&dir, CALLER_HZ), tone(&dir, AGENT_HZ));
    let record = dir.to_string_lossy().into_owned();
    let mut agent = agents(
        &server,
        "agent",
        &[1],
        &[
            "--answer",
            "auto",
            "--calls",
            "1",
            "--play",
            &agent_tone,
            "--tone-hz",
            "1000",
            "--record-dir",
            &record,
        ],
    );
    server.wait_logged_in(1);
    let mut caller = caller(
        &server,
        "caller",
        &[
            "--hangup-after",
            "5",
            "--calls",
            "1",
            "--play",
            &caller_tone,
            "--tone-hz",
            "440",
            "--record-dir",
            &record,
        ],
    );

    let incoming = ok(agent.wait_for(event("incoming"), STEP));
    // The caller's identity is relayed as PJSIP sent it (it writes %2B as +).
    assert_eq!(incoming["from_user"], "+39055123", "{incoming}");
    assert_eq!(incoming["from_display"], "Rossi", "{incoming}");
    ok(agent.wait_for(event("confirmed"), STEP));
    ok(caller.wait_for(event("confirmed"), STEP));

    let caller_audio = audio_of(&mut caller);
    let agent_audio = audio_of(&mut agent);
    assert_eq!(
        caller_audio["verdict"], "present",
        "the caller hears the agent's 440 Hz: {caller_audio}"
    );
    assert_eq!(
        agent_audio["verdict"], "present",
        "the agent hears the caller's 1 kHz: {agent_audio}"
    );

    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
    assert!(server.metric("amico_rtp_packets_relayed_total") > 100.0);
    assert_eq!(
        server.metric("amico_queue_abandoned_total{queue=\"comune\"}"),
        0.0
    );
}

#[test]
fn a_caller_who_hangs_up_while_queued_is_counted_as_abandoned() {
    let server = Server::start(&server::without_welcome(&server::config(1, "")));
    let mut caller = caller(&server, "abandon", &["--hangup-after", "2", "--calls", "1"]);
    ok(caller.wait_for(event("confirmed"), STEP));
    server.wait_metric(
        "amico_queue_waiting_callers{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    ok(caller.wait_for(event("disconnected"), STEP));
    server.wait_metric(
        "amico_queue_abandoned_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
    assert_eq!(
        server.metric("amico_queue_waiting_callers{queue=\"comune\"}"),
        0.0
    );
}

#[test]
fn a_cancel_racing_the_answer_leaves_nothing_behind() {
    let server = Server::start(&server::without_welcome(&server::config(1, "")));
    // PJSIP cancels if our 200 has not come yet, else it hangs up half a second later.
    let mut caller = caller(
        &server,
        "cancel",
        &[
            "--cancel-after",
            "0",
            "--hangup-after",
            "0.5",
            "--calls",
            "1",
        ],
    );
    ok(caller.wait_for(event("disconnected"), STEP));
    // Either the CANCEL beat our 200 (nothing was queued) or it came after (the caller then
    // sends BYE, an abandon). When it came after, PJSIP may neither ACK nor BYE our 200:
    // the dialog then ends when the ACK wait runs out (64 × T1 = 32 s, RFC 3261 §17.2.1).
    // No call may stay behind either way.
    server.wait_metric("amico_calls_active", |v| v == 0.0, Duration::from_secs(45));
    // Every queued caller abandoned, none left waiting (the figures are published a
    // moment after the call ends).
    server.wait_metrics(
        &[
            "amico_queue_offered_total{queue=\"comune\"}",
            "amico_queue_abandoned_total{queue=\"comune\"}",
            "amico_queue_waiting_callers{queue=\"comune\"}",
        ],
        |v| v[0] == v[1] && v[2] == 0.0,
        STEP,
    );
}

#[test]
fn ring_no_answer_sends_the_call_back_and_rings_the_next_agent() {
    let server = Server::start(&server::without_welcome(&server::config(
        2,
        "ring_timeout = 3\nretry_after = 60",
    )));
    let mut silent = agents(&server, "silent", &[1], &["--answer", "ignore"]);
    server.wait_logged_in(1);
    let mut answering = agents(
        &server,
        "answering",
        &[2],
        &["--answer", "auto", "--calls", "1", "--hangup-after", "2"],
    );
    server.wait_logged_in(2);
    let mut caller = caller(&server, "rna", &["--calls", "1"]);
    // agent1 has been free longest: it rings first, does not answer, and is cancelled.
    ok(silent.wait_for(event("incoming"), STEP));
    let cancelled = ok(silent.wait_for(event("disconnected"), STEP));
    assert_eq!(
        cancelled["code"], 487,
        "the ring timeout CANCELs the first phone: {cancelled}"
    );
    ok(answering.wait_for(event("incoming"), STEP));
    ok(answering.wait_for(event("confirmed"), STEP));
    ok(caller.wait_for(event("disconnected"), STEP));
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_offers_failed_total{queue=\"comune\"}"),
        1.0
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
}

#[test]
fn twenty_simultaneous_calls_with_five_agents_all_complete() {
    let mut config = server::without_welcome(&server::config(5, "ring_timeout = 10"));
    // One password for all five, so that one PJSIP process can hold several accounts.
    for i in 1..=5 {
        config = config.replace(
            &format!("sip_password = \"secret-{i}\""),
            "sip_password = \"secret-1\"",
        );
    }
    let server = Server::start(&config);
    let answer = [
        "--answer",
        "auto",
        "--hangup-after",
        "1",
        "--password",
        "secret-1",
    ];
    let mut first = agents(&server, "agents-a", &[1, 2, 3], &answer);
    let mut second = agents(&server, "agents-b", &[4, 5], &answer);
    server.wait_logged_in(5);
    let mut callers: Vec<Ua> = (0..5)
        .map(|i| caller(&server, &format!("callers-{i}"), &["--calls", "4"]))
        .collect();
    for caller in &mut callers {
        let done = ok(caller.wait_for(event("done"), Duration::from_secs(90)));
        assert_eq!(done["ended"], 4, "{done}");
        let confirmed = caller.count(|e| e["event"] == "disconnected" && e["confirmed"] == true);
        assert_eq!(confirmed, 4, "every call was answered and ended");
    }
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 20.0,
        STEP,
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
    assert_eq!(
        server.metric("amico_queue_abandoned_total{queue=\"comune\"}"),
        0.0
    );
    let answered_by_agents = first.count(event("confirmed")) + second.count(event("confirmed"));
    assert_eq!(answered_by_agents, 20);
}

#[test]
fn calls_work_over_tcp_too() {
    let server = Server::start(&server::without_welcome(&server::config(
        1,
        "ring_timeout = 15",
    )));
    let dir = peers::scratch_dir("tcp");
    let (caller_tone, agent_tone) = (tone(&dir, CALLER_HZ), tone(&dir, AGENT_HZ));
    let record = dir.to_string_lossy().into_owned();
    let mut agent = agents(
        &server,
        "agent-tcp",
        &[1],
        &[
            "--transport",
            "tcp",
            "--answer",
            "auto",
            "--calls",
            "1",
            "--play",
            &agent_tone,
            "--tone-hz",
            "1000",
            "--record-dir",
            &record,
        ],
    );
    server.wait_logged_in(1);
    let mut caller = caller(
        &server,
        "caller-tcp",
        &[
            "--transport",
            "tcp",
            "--hangup-after",
            "4",
            "--calls",
            "1",
            "--play",
            &caller_tone,
            "--tone-hz",
            "440",
            "--record-dir",
            &record,
        ],
    );
    ok(agent.wait_for(event("confirmed"), STEP));
    assert_eq!(audio_of(&mut caller)["verdict"], "present");
    assert_eq!(audio_of(&mut agent)["verdict"], "present");
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
}

#[test]
fn a_dead_phone_is_found_by_options_probes_and_logged_out() {
    let config = server::without_welcome(&server::config(2, "")).replace(
        "listen = \"127.0.0.1:0\"\n\n[http]",
        "listen = \"127.0.0.1:0\"\nprobe_interval = 1\nprobe_timeout = 1\n\n[http]",
    );
    let server = Server::start(&config);
    let mut dying = agents(&server, "dying", &[1], &["--answer", "auto"]);
    let _living = agents(&server, "living", &[2], &["--answer", "auto"]);
    server.wait_logged_in(2);
    // Gone without un-registering (ua.py leaves its registration in place), like a phone
    // pulled from the wall.
    let _ = dying.shutdown(STEP);
    drop(dying);
    server.wait_logged_in(1);
    let health: Value = serde_json::from_str(&server.get("/health")).unwrap();
    assert_eq!(
        health["agents_logged_in"], 1,
        "the phone that answers probes stays: {health}"
    );
}

#[test]
fn a_rejected_offer_goes_to_the_next_agent() {
    let server = Server::start(&server::without_welcome(&server::config(
        2,
        "ring_timeout = 15\nretry_after = 60",
    )));
    let mut busy = agents(
        &server,
        "busy",
        &[1],
        &["--answer", "reject", "--reject-code", "486"],
    );
    server.wait_logged_in(1);
    let mut free = agents(
        &server,
        "free",
        &[2],
        &["--answer", "auto", "--calls", "1", "--hangup-after", "1"],
    );
    server.wait_logged_in(2);
    let mut caller = caller(&server, "rejected", &["--calls", "1"]);
    ok(busy.wait_for(event("incoming"), STEP));
    ok(free.wait_for(event("confirmed"), STEP));
    ok(caller.wait_for(event("disconnected"), STEP));
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_offers_failed_total{queue=\"comune\"}"),
        1.0
    );
    assert!(server.metric("amico_sip_responses_received_total{class=\"4xx\"}") >= 1.0);
}
