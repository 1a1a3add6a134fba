//! Proves the interop harness on its own, without an Amico server: a PJSIP agent
//! listening on 127.0.0.1 and a PJSIP caller calling it directly, both driven by
//! `tests/peers/ua.py` through `tests/support/peers.rs`.

#[path = "support/peers.rs"]
mod peers;

use std::time::Duration;

use peers::{Ua, call_event, event};
use serde_json::Value;

const AGENT_HZ: f64 = 440.0;
const CALLER_HZ: f64 = 1000.0;
const STEP: Duration = Duration::from_secs(10);

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// An agent on an ephemeral port, and the URI to call it on.
fn agent(label: &str, extra: &[&str]) -> (Ua, String) {
    let mut args = vec![
        "--role",
        "agent",
        "--user",
        "agent1",
        "--calls",
        "1",
        "--timeout",
        "30",
    ];
    args.extend_from_slice(extra);
    let mut ua = ok(Ua::spawn(label, &args));
    let port = ok(ua.ready_port(STEP));
    (ua, format!("sip:agent1@127.0.0.1:{port}"))
}

fn caller(label: &str, to: &str, extra: &[&str]) -> Ua {
    let mut args = vec![
        "--role",
        "caller",
        "--to",
        to,
        "--from-user",
        "1001",
        "--from-display",
        "Harness Caller",
        "--timeout",
        "30",
    ];
    args.extend_from_slice(extra);
    ok(Ua::spawn(label, &args))
}

fn assert_exit_ok(ua: &mut Ua) {
    let status = ok(ua.wait_exit(STEP));
    if !status.success() {
        panic!("{}", ua.failure(&format!("exited with {status}")));
    }
    ok(ua.wait_for(event("done"), Duration::ZERO));
}

/// Checks one side's `audio` verdict: the other side's tone is there, its own is not.
fn assert_hears(ua: &mut Ua, expected_hz: f64, own_hz: f64) -> Value {
    let audio = ok(ua.wait_for(call_event("audio", 0), STEP));
    let hears_other = audio["verdict"] == "present" && audio["tone_hz"] == expected_hz;
    let own = audio["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["hz"] == own_hz))
        .cloned();
    let hears_own = own.as_ref().is_none_or(|c| c["present"] != false);
    let enough_rtp = audio["rx_packets"].as_u64().unwrap_or(0) >= 50;
    if !hears_other || hears_own || !enough_rtp {
        panic!(
            "{}",
            ua.failure(&format!(
                "expected {expected_hz} Hz present, {own_hz} Hz absent and RTP received; \
                 got {audio}"
            ))
        );
    }
    audio
}

#[test]
fn a_direct_call_carries_each_sides_tone_both_ways() {
    let dir = peers::scratch_dir("selftest-audio");
    let agent_wav = ok(peers::tone_wav(&dir.join("agent.wav"), AGENT_HZ, 1.0));
    let caller_wav = ok(peers::tone_wav(&dir.join("caller.wav"), CALLER_HZ, 1.0));
    let agent_wav = agent_wav.to_str().expect("utf-8 path");
    let caller_wav = caller_wav.to_str().expect("utf-8 path");
    let rec_dir = dir.join("rec");
    let rec_dir = rec_dir.to_str().expect("utf-8 path");
    let (agent_hz, caller_hz) = (AGENT_HZ.to_string(), CALLER_HZ.to_string());

    let (mut agent, uri) = agent(
        "selftest-agent",
        &[
            "--play",
            agent_wav,
            "--record-dir",
            rec_dir,
            "--tone-hz",
            &caller_hz,
            "--check-hz",
            &agent_hz,
        ],
    );
    let mut caller = caller(
        "selftest-caller",
        &uri,
        &[
            "--play",
            caller_wav,
            "--record-dir",
            rec_dir,
            "--tone-hz",
            &agent_hz,
            "--check-hz",
            &caller_hz,
            "--hangup-after",
            "3",
        ],
    );

    let incoming = ok(agent.wait_for(event("incoming"), STEP));
    assert_eq!(incoming["from_user"], "1001", "{incoming}");
    assert_eq!(incoming["from_display"], "Harness Caller", "{incoming}");
    assert_eq!(incoming["user"], "agent1", "{incoming}");
    ok(caller.wait_for(call_event("ringing", 0), STEP));
    ok(caller.wait_for(call_event("confirmed", 0), STEP));
    ok(agent.wait_for(call_event("confirmed", 0), STEP));
    let media = ok(caller.wait_for(call_event("media_active", 0), STEP));
    assert_eq!(media["codec"], "PCMU/8000", "{media}");

    let gone = ok(caller.wait_for(call_event("disconnected", 0), STEP));
    assert_eq!(gone["by"], "local", "{gone}");
    let gone = ok(agent.wait_for(call_event("disconnected", 0), STEP));
    assert_eq!(gone["by"], "remote", "{gone}");
    assert!(gone["duration"].as_f64().unwrap_or(0.0) >= 2.5, "{gone}");

    let heard = assert_hears(&mut agent, CALLER_HZ, AGENT_HZ);
    assert_hears(&mut caller, AGENT_HZ, CALLER_HZ);
    // The recording is a real file the module can analyse again.
    let file = heard["file"].as_str().expect("recording path");
    let again = ok(peers::analyze_wav(std::path::Path::new(file), CALLER_HZ));
    assert_eq!(again["present"], true, "{again}");

    assert_exit_ok(&mut caller);
    assert_exit_ok(&mut agent);
}

#[test]
fn a_caller_cancels_before_the_agent_answers() {
    let (mut agent, uri) = agent("selftest-cancel-agent", &["--answer", "ignore"]);
    let mut caller = caller("selftest-cancel-caller", &uri, &["--cancel-after", "1"]);

    ok(agent.wait_for(event("incoming"), STEP));
    ok(caller.wait_for(call_event("ringing", 0), STEP));
    let cancel = ok(caller.wait_for(call_event("hangup", 0), STEP));
    assert_eq!(cancel["kind"], "cancel", "{cancel}");
    let gone = ok(caller.wait_for(call_event("disconnected", 0), STEP));
    assert_eq!(gone["code"], 487, "{gone}");
    let gone = ok(agent.wait_for(call_event("disconnected", 0), STEP));
    assert_eq!(gone["code"], 487, "{gone}");
    assert_eq!(gone["confirmed"], false, "{gone}");

    assert_exit_ok(&mut caller);
    assert_exit_ok(&mut agent);
    assert_eq!(caller.count(event("confirmed")), 0);
    assert_eq!(agent.count(event("confirmed")), 0);
}

#[test]
fn an_agent_rejects_with_busy_here() {
    let (mut agent, uri) = agent("selftest-reject-agent", &["--answer", "reject"]);
    let mut caller = caller("selftest-reject-caller", &uri, &[]);

    ok(agent.wait_for(event("incoming"), STEP));
    let gone = ok(caller.wait_for(call_event("disconnected", 0), STEP));
    assert_eq!(gone["code"], 486, "{gone}");
    assert_eq!(gone["by"], "remote", "{gone}");
    let gone = ok(agent.wait_for(call_event("disconnected", 0), STEP));
    assert_eq!(gone["code"], 486, "{gone}");

    assert_exit_ok(&mut caller);
    assert_exit_ok(&mut agent);
    assert_eq!(caller.count(event("ringing")), 0);
}

#[test]
fn a_failed_wait_reports_the_events_and_the_log() {
    let (mut agent, _uri) = agent("selftest-diagnostics-agent", &[]);
    let err = agent
        .wait_for(event("no-such-event"), Duration::from_millis(200))
        .expect_err("nothing sends that event");
    assert!(err.contains("before the deadline"), "{err}");
    assert!(err.contains(r#""event":"ready""#), "{err}");
    assert!(err.contains("pjsua"), "PJSIP's log tail is quoted: {err}");

    // Past PJSIP's per-process limit ua.py refuses at once, with an `error` event,
    // and a wait for anything else fails as soon as the process is gone.
    let mut greedy = ok(Ua::spawn(
        "selftest-diagnostics-greedy",
        &[
            "--role",
            "caller",
            "--to",
            "sip:x@127.0.0.1:9",
            "--calls",
            "5",
        ],
    ));
    let err = greedy
        .wait_for(event("ready"), STEP)
        .expect_err("it never gets ready");
    assert!(err.contains("the process ended"), "{err}");
    assert!(err.contains("at most 4"), "{err}");
    let status = ok(greedy.wait_exit(STEP));
    assert_eq!(status.code(), Some(2));
}
