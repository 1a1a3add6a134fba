//! Browser agents' WebRTC media (issue 10), end to end: a PJSIP caller (tests/peers/ua.py)
//! dials the trunk, the call rings a page in Debian's headless Chromium
//! (`tests/browser/sip-agent.mjs`, driven by tests/support/browser.rs) registered over SIP
//! over WebSocket, and the page answers with DTLS-SRTP over ICE to Amico's ICE-lite
//! endpoint. Chromium's fake microphone plays a WAV of a tone; the page's `getStats()`
//! shows the caller's audio arriving, and the caller's recording holds the page's tone,
//! found by frequency (tests/peers/audio.py); the page finds the caller's tone by
//! frequency too (a Web Audio analyser). The page is JsSIP 3.13 and, so that
//! interoperability does not rest on one library, SIP.js 0.21.
//!
//! Covered: two-way audio, a key pressed on the page (RFC 4733) reaching the caller, the
//! agent hanging up from the page and the caller rating the call, the caller hanging up,
//! a hold from the page (re-INVITE with a=sendonly) and back, a ring the page does not
//! answer (the call keeps its place and goes on to the next agent).
//!
//! Needs what tests/websocket.rs needs (`node`, `npm`, `/usr/bin/chromium`, the PJSIP
//! virtualenv). Each browser's log is in `target/browser-logs/`, each PJSIP log in
//! `target/peers-logs/`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use browser::{SipAgent, call_event, event};
use peers::Ua;
use serde_json::Value;
use server::Server;

/// Long enough for anything that crosses a process boundary here, many times over.
const STEP: Duration = Duration::from_secs(15);
/// The tone of the page's fake microphone.
const PAGE_HZ: f64 = 1000.0;
/// The tone the caller plays.
const CALLER_HZ: f64 = 440.0;
/// The supervisor token of the test configurations, for `/api`.
const TOKEN: &str = "webrtc-test-token-0123";
/// RTP packets of 20 ms: 150 are 3 s of audio, three times what audio.py needs to call a
/// tone present (1 s).
const THREE_SECONDS: u64 = 150;

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// `server::config(agents, queue_extra)` without the welcome or announcements, with the
/// survey when `survey` is true, and a supervisor token.
fn config(agents: usize, queue_extra: &str, survey: bool) -> String {
    let base = server::config(agents, queue_extra);
    format!(
        "{base}\n[experience.comune]\nlanguage = \"it\"\nwelcome = false\n\
         announce_position = \"no\"\nannounce_holdtime = \"no\"\n\
         periodic_announce_frequency = 0\nsurvey = {survey}\nsurvey_timeout = 10\n\n\
         [[api.tokens]]\nname = \"supervisor\"\ntoken = \"{TOKEN}\"\nscope = \"supervisor\"\n"
    )
}

/// The page's fake microphone: a tone at `hz`, 48 kHz mono 16-bit (Chromium loops it).
fn page_tone(dir: &Path, hz: f64) -> PathBuf {
    let path = dir.join(format!("page-{hz}.wav"));
    let python = ok(peers::python());
    let output = Command::new(python)
        .arg(peers::peers_dir().join("audio.py"))
        .arg("tone")
        .arg(&path)
        .args([
            "--hz",
            &hz.to_string(),
            "--seconds",
            "10",
            "--rate",
            "48000",
        ])
        .output()
        .expect("audio.py runs");
    assert!(
        output.status.success(),
        "audio.py tone: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

/// A browser agent `agent{n}` of `library` (`jssip` or `sipjs`), its microphone playing
/// `wav`, registered; incoming calls wait for `answer`.
fn browser_agent(server: &Server, label: &str, library: &str, n: usize, wav: &Path) -> SipAgent {
    let ws = format!("ws://{}/sip", server.http);
    let uri = format!("sip:agent{n}@127.0.0.1");
    let wav = wav.to_string_lossy().into_owned();
    let mut agent = ok(SipAgent::start(
        label,
        &ws,
        &uri,
        &format!("secret-{n}"),
        &["--library", library, "--audio", &wav],
    ));
    ok(agent.wait_registered(0, STEP));
    agent
}

/// A PJSIP caller through the trusted trunk, "Rossi" <+39055123> dialling DID 100, playing
/// `wav` and recording what it hears into `dir`, its recording checked for `PAGE_HZ`.
fn caller(server: &Server, label: &str, wav: &Path, dir: &Path) -> Ua {
    caller_from(server, label, "%2B39055123", wav, dir)
}

/// [`caller`] calling from `from_user`.
fn caller_from(server: &Server, label: &str, from_user: &str, wav: &Path, dir: &Path) -> Ua {
    let to = format!("sip:100@{}", server.sip);
    let wav = wav.to_string_lossy().into_owned();
    let record = dir.to_string_lossy().into_owned();
    let page_hz = PAGE_HZ.to_string();
    ok(Ua::spawn(
        label,
        &[
            "--role",
            "caller",
            "--to",
            &to,
            "--from-user",
            from_user,
            "--from-display",
            "Rossi",
            "--calls",
            "1",
            "--play",
            &wav,
            "--record-dir",
            &record,
            "--tone-hz",
            &page_hz,
            "--timeout",
            "90",
        ],
    ))
}

/// A PJSIP agent `agent{n}` over UDP that answers its one call and hangs up `hangup_after`
/// seconds later, registered.
fn pjsip_agent(server: &Server, label: &str, n: usize, hangup_after: &str) -> Ua {
    let registrar = server.sip.to_string();
    let (user, password) = (format!("agent{n}"), format!("secret-{n}"));
    let mut ua = ok(Ua::spawn(
        label,
        &[
            "--role",
            "agent",
            "--registrar",
            &registrar,
            "--user",
            &user,
            "--password",
            &password,
            "--answer",
            "auto",
            "--calls",
            "1",
            "--hangup-after",
            hangup_after,
            "--timeout",
            "90",
        ],
    ));
    ok(ua.wait_for(peers::event("registered"), STEP));
    ua
}

/// Waits until `/api/agents/{name}` says `state`.
fn wait_state(server: &Server, name: &str, state: &str) -> Value {
    server.wait_api(
        &format!("/api/agents/{name}"),
        TOKEN,
        |agent| agent["state"] == state,
        STEP,
    )
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Whether the page hears the caller's tone now: the loudest frequency of what it plays
/// (a Web Audio analyser, bins of 5.9 Hz) is `CALLER_HZ`, and the level is the tone's
/// (amplitude 0.3, where silence or noise is near 0).
fn hears_caller(stats: &Value) -> bool {
    (number(&stats["peak"]["hz"]) - CALLER_HZ).abs() < 12.0
        && number(&stats["inbound"]["audio_level"]) > 0.1
}

/// The page's call `call` is up: ICE and DTLS connected, and the caller's audio arriving
/// with energy, its tone heard. Returns those stats.
fn wait_audio_in(agent: &mut SipAgent, call: u64) -> Value {
    ok(agent.wait_stats(
        call,
        |s| {
            s["connection"] == "connected"
                && count(&s["inbound"]["packets_received"]) > 0
                && number(&s["inbound"]["total_audio_energy"]) > 0.0
                && hears_caller(s)
        },
        STEP,
    ))
}

/// Waits until call `call` of the page has received `more` packets more than in `since`
/// and heard more energy than then, and sent `more` packets more. Returns those stats.
fn wait_audio_flowing(agent: &mut SipAgent, call: u64, since: &Value, more: u64) -> Value {
    let received = count(&since["inbound"]["packets_received"]);
    let energy = number(&since["inbound"]["total_audio_energy"]);
    let sent = count(&since["outbound"]["packets_sent"]);
    ok(agent.wait_stats(
        call,
        |s| {
            count(&s["inbound"]["packets_received"]) >= received + more
                && number(&s["inbound"]["total_audio_energy"]) > energy
                && count(&s["outbound"]["packets_sent"]) >= sent + more
                && hears_caller(s)
        },
        STEP,
    ))
}

/// What the caller's recording says about the page's tone (its `audio` event).
fn caller_heard_page(caller: &mut Ua) -> Value {
    let audio = ok(caller.wait_for(peers::event("audio"), STEP));
    assert_eq!(
        audio["present"], true,
        "the caller's recording holds the page's {PAGE_HZ} Hz tone: {audio}"
    );
    audio
}

/// The offer Amico made the page: WebRTC (RFC 8827), ICE-lite on the endpoint.
fn assert_webrtc_offer(server: &Server, incoming: &Value) {
    let offer = incoming["sdp"].as_str().unwrap_or_default();
    for wanted in [
        "UDP/TLS/RTP/SAVPF",
        "a=fingerprint:sha-256 ",
        "a=ice-lite",
        "a=rtcp-mux",
    ] {
        assert!(offer.contains(wanted), "{wanted:?} in the offer: {offer}");
    }
    let candidate = format!("127.0.0.1 {} typ host", server.webrtc.port());
    assert!(
        offer.contains(&candidate),
        "{candidate:?} in the offer: {offer}"
    );
}

/// The page's call is bridged to the caller through Amico's WebRTC endpoint.
fn assert_media_path(server: &Server, stats: &Value) {
    assert_eq!(
        stats["pair"]["remote"],
        server.webrtc.to_string(),
        "the selected candidate pair ends at Amico's WebRTC endpoint: {stats}"
    );
    assert_eq!(stats["dtls"], "connected", "DTLS-SRTP: {stats}");
    let codec = stats["inbound"]["codec"].as_str().unwrap_or_default();
    assert!(
        codec == "audio/PCMU/8000" || codec == "audio/PCMA/8000",
        "G.711, never transcoded: {stats}"
    );
}

/// The call in progress in `/api/calls`, which must be the only one.
fn the_call(server: &Server) -> Value {
    let (status, calls) = server.api("GET", "/api/calls", Some(TOKEN), None);
    assert_eq!(status, 200, "/api/calls: {calls}");
    let list = calls.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "one call in progress: {calls}");
    list[0].clone()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn a_trunk_call_answered_in_jssip_has_two_way_audio_and_the_caller_rates_it_after_the_page_hangs_up()
 {
    let server = Server::start(&config(1, "ring_timeout = 20\nwrap_up = 30", true));
    let dir = peers::scratch_dir("webrtc-two-way");
    let (page_wav, caller_wav) = (
        page_tone(&dir, PAGE_HZ),
        ok(peers::tone_wav(&dir.join("caller.wav"), CALLER_HZ, 30.0)),
    );
    let mut page = browser_agent(&server, "jssip-two-way", "jssip", 1, &page_wav);
    server.wait_logged_in(1);
    let mut caller = caller(&server, "webrtc-caller", &caller_wav, &dir);

    let incoming = ok(page.wait_for(event("incoming"), STEP));
    assert_eq!(incoming["from_user"], "+39055123", "{incoming}");
    assert_webrtc_offer(&server, &incoming);
    ok(page.send("answer 0"));
    ok(page.wait_for(call_event("confirmed", 0), STEP));
    ok(caller.wait_for(peers::event("confirmed"), STEP));

    // The caller's audio reaches the page, the page's reaches Amico.
    let first = wait_audio_in(&mut page, 0);
    assert_media_path(&server, &first);
    let later = wait_audio_flowing(&mut page, 0, &first, THREE_SECONDS);
    browser::progress(&format!("the page's stats: {later}"));
    let call = the_call(&server);
    assert_eq!(call["state"], "talking", "{call}");
    assert_eq!(call["agent"], "agent1", "{call}");
    wait_state(&server, "agent1", "on_call");

    // A key pressed on the page (RFC 4733 from Chromium's RTCDTMFSender) reaches the
    // caller, as a desk phone's would.
    ok(page.send("dtmf 5 0"));
    let key = ok(caller.wait_for(peers::event("dtmf_received"), STEP));
    assert_eq!(key["digit"], "5", "{key}");
    assert_eq!(key["method"], "rfc4733", "{key}");

    // The agent hangs up from the page: wrap-up for the agent, the survey for the caller.
    ok(page.send("hangup 0"));
    let ended = ok(page.wait_for(call_event("ended", 0), STEP));
    assert_eq!(ended["originator"], "local", "{ended}");
    wait_state(&server, "agent1", "wrap_up");
    // 1: satisfied.
    ok(caller.send("dtmf 1"));
    server.wait_metric(
        "amico_agent_survey_votes_total{agent=\"agent1\",vote=\"satisfied\"}",
        |v| v == 1.0,
        STEP,
    );
    let disconnected = ok(caller.wait_for(peers::event("disconnected"), STEP));
    assert_eq!(
        disconnected["by"], "remote",
        "Amico thanks the caller and hangs up: {disconnected}"
    );
    caller_heard_page(&mut caller);
    assert_eq!(
        server.metric("amico_queue_answered_total{queue=\"comune\"}"),
        1.0
    );
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
}

#[test]
fn a_hold_from_the_page_keeps_the_bridge_audio_flows_again_after_it_and_the_callers_bye_reaches_the_page()
 {
    let server = Server::start(&config(1, "ring_timeout = 20", false));
    let dir = peers::scratch_dir("webrtc-hold");
    let (page_wav, caller_wav) = (
        page_tone(&dir, PAGE_HZ),
        ok(peers::tone_wav(&dir.join("caller.wav"), CALLER_HZ, 30.0)),
    );
    let mut page = browser_agent(&server, "jssip-hold", "jssip", 1, &page_wav);
    server.wait_logged_in(1);
    let mut caller = caller(&server, "hold-caller", &caller_wav, &dir);
    ok(page.wait_for(event("incoming"), STEP));
    ok(page.send("answer 0"));
    ok(page.wait_for(call_event("confirmed", 0), STEP));
    let before = wait_audio_in(&mut page, 0);
    assert_eq!(before["direction"], "sendrecv", "{before}");

    // JsSIP's hold: a re-INVITE offering a=sendonly, answered 2xx.
    ok(page.send("hold 0"));
    ok(page.wait_for(call_event("held", 0), STEP));
    let held = ok(page.wait_stats(0, |s| s["direction"] == "sendonly", STEP));
    assert_eq!(held["connection"], "connected", "{held}");
    let call = the_call(&server);
    assert_eq!(call["state"], "talking", "on hold, still bridged: {call}");
    assert_eq!(caller.count(peers::event("disconnected")), 0);

    ok(page.send("unhold 0"));
    ok(page.wait_for(call_event("unheld", 0), STEP));
    let resumed = ok(page.wait_stats(0, |s| s["direction"] == "sendrecv", STEP));
    // Audio flows both ways again, over the same DTLS-SRTP transport.
    let after = wait_audio_flowing(&mut page, 0, &resumed, THREE_SECONDS);
    assert_media_path(&server, &after);
    assert_eq!(the_call(&server)["state"], "talking");
    assert_eq!(
        page.count(event("ended")) + page.count(event("failed")),
        0,
        "the call never ended: {:?}",
        page.events()
    );

    // The caller hangs up: its BYE reaches the page down the WebSocket.
    ok(caller.send("hangup"));
    let ended = ok(page.wait_for(call_event("ended", 0), STEP));
    assert_eq!(ended["originator"], "remote", "{ended}");
    ok(caller.wait_for(peers::event("disconnected"), STEP));
    caller_heard_page(&mut caller);
    wait_state(&server, "agent1", "available");
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
}

#[test]
fn a_call_the_browser_does_not_answer_goes_back_to_its_place_and_on_to_the_next_agent() {
    let server = Server::start(&config(2, "ring_timeout = 3\nretry_after = 60", false));
    let dir = peers::scratch_dir("webrtc-no-answer");
    let page_wav = page_tone(&dir, PAGE_HZ);
    let caller_wav = ok(peers::tone_wav(&dir.join("caller.wav"), CALLER_HZ, 30.0));
    // agent1, in the browser, logs in first: it is the longest idle and rings first.
    let mut page = browser_agent(&server, "jssip-no-answer", "jssip", 1, &page_wav);
    server.wait_logged_in(1);
    let mut answering = pjsip_agent(&server, "after-browser", 2, "1");
    server.wait_logged_in(2);
    let mut caller = caller(&server, "no-answer-caller", &caller_wav, &dir);

    let incoming = ok(page.wait_for(event("incoming"), STEP));
    assert_webrtc_offer(&server, &incoming);
    assert_eq!(
        answering.count(peers::event("incoming")),
        0,
        "the browser rang first"
    );
    // The page lets it ring: Amico cancels at the ring timeout and rings agent2.
    let failed = ok(page.wait_for(call_event("failed", 0), STEP));
    assert_eq!(failed["originator"], "remote", "Amico cancelled: {failed}");
    assert_eq!(failed["cause"], "Canceled", "{failed}");
    ok(answering.wait_for(peers::event("confirmed"), STEP));
    ok(caller.wait_for(peers::event("disconnected"), STEP));
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_offers_failed_total{queue=\"comune\"}"),
        1.0,
        "the unanswered ring is a failed offer"
    );
    assert_eq!(page.count(event("incoming")), 1, "the browser rang once");
    assert_eq!(page.count(event("accepted")), 0);
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
}

#[test]
fn a_call_the_browser_does_not_answer_keeps_its_place_ahead_of_a_later_caller() {
    // One agent, in the browser; no pause between offers of a call (retry_after = 0), so
    // the call that was not answered is the first in line again at once.
    let server = Server::start(&config(1, "ring_timeout = 3\nretry_after = 0", false));
    let dir = peers::scratch_dir("webrtc-place");
    let page_wav = page_tone(&dir, PAGE_HZ);
    let caller_wav = ok(peers::tone_wav(&dir.join("caller.wav"), CALLER_HZ, 30.0));
    let mut page = browser_agent(&server, "jssip-place", "jssip", 1, &page_wav);
    server.wait_logged_in(1);
    let mut first = caller_from(&server, "first-caller", "0521111", &caller_wav, &dir);
    let ring = ok(page.wait_for(call_event("incoming", 0), STEP));
    assert_eq!(ring["from_user"], "0521111", "{ring}");
    // A second caller queues behind the one ringing the browser.
    let mut second = caller_from(&server, "second-caller", "0522222", &caller_wav, &dir);
    let from = |call: &Value, user: &str| call["caller"].as_str().is_some_and(|c| c.contains(user));
    server.wait_api(
        "/api/calls",
        TOKEN,
        |calls| {
            calls.as_array().is_some_and(|calls| {
                calls.iter().any(|c| {
                    from(c, "0521111") && c["state"] == "ringing" && c["agent"] == "agent1"
                }) && calls
                    .iter()
                    .any(|c| from(c, "0522222") && c["state"] == "waiting")
            })
        },
        STEP,
    );

    // The page lets it ring: Amico cancels at the ring timeout; the first caller goes back
    // to its place, first, and rings the browser again before the second.
    let failed = ok(page.wait_for(call_event("failed", 0), STEP));
    assert_eq!(failed["cause"], "Canceled", "{failed}");
    let again = ok(page.wait_for(call_event("incoming", 1), STEP));
    assert_eq!(
        again["from_user"], "0521111",
        "the unanswered caller kept its place ahead of the later one: {again}"
    );
    ok(page.send("answer 1"));
    ok(page.wait_for(call_event("confirmed", 1), STEP));
    wait_audio_in(&mut page, 1);
    ok(page.send("hangup 1"));
    ok(first.wait_for(peers::event("disconnected"), STEP));

    // Then the second caller.
    let next = ok(page.wait_for(call_event("incoming", 2), STEP));
    assert_eq!(next["from_user"], "0522222", "{next}");
    ok(page.send("answer 2"));
    ok(page.wait_for(call_event("confirmed", 2), STEP));
    ok(page.send("hangup 2"));
    ok(second.wait_for(peers::event("disconnected"), STEP));
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |v| v == 2.0,
        STEP,
    );
    assert_eq!(
        server.metric("amico_queue_offers_failed_total{queue=\"comune\"}"),
        1.0
    );
    assert_eq!(page.count(event("incoming")), 3);
}

#[test]
fn a_sipjs_page_registers_and_answers_a_call_with_two_way_audio_a_key_and_a_hold() {
    let server = Server::start(&config(1, "ring_timeout = 20", false));
    let dir = peers::scratch_dir("webrtc-sipjs");
    let (page_wav, caller_wav) = (
        page_tone(&dir, PAGE_HZ),
        ok(peers::tone_wav(&dir.join("caller.wav"), CALLER_HZ, 30.0)),
    );
    let mut page = browser_agent(&server, "sipjs", "sipjs", 1, &page_wav);
    let ready = ok(page.wait_for(event("ready"), STEP));
    assert_eq!(ready["library"], "sipjs", "{ready}");
    // The package is 0.21.2; its code says 0.21.1.
    assert_eq!(ready["package"], "0.21.2", "{ready}");
    server.wait_logged_in(1);
    wait_state(&server, "agent1", "available");
    let mut caller = caller(&server, "sipjs-caller", &caller_wav, &dir);

    let incoming = ok(page.wait_for(event("incoming"), STEP));
    assert_eq!(incoming["from_user"], "+39055123", "{incoming}");
    assert_eq!(incoming["via_transport"], "WS", "{incoming}");
    assert_webrtc_offer(&server, &incoming);
    ok(page.send("answer 0"));
    ok(page.wait_for(call_event("confirmed", 0), STEP));
    ok(caller.wait_for(peers::event("confirmed"), STEP));

    let first = wait_audio_in(&mut page, 0);
    assert_media_path(&server, &first);
    wait_audio_flowing(&mut page, 0, &first, THREE_SECONDS);
    assert_eq!(the_call(&server)["agent"], "agent1");

    ok(page.send("dtmf 7 0"));
    let key = ok(caller.wait_for(peers::event("dtmf_received"), STEP));
    assert_eq!(key["digit"], "7", "{key}");

    // SIP.js's hold (a re-INVITE offering a=sendonly) and back.
    ok(page.send("hold 0"));
    ok(page.wait_for(call_event("held", 0), STEP));
    ok(page.wait_stats(0, |s| s["direction"] == "sendonly", STEP));
    ok(page.send("unhold 0"));
    ok(page.wait_for(call_event("unheld", 0), STEP));
    let resumed = ok(page.wait_stats(0, |s| s["direction"] == "sendrecv", STEP));
    wait_audio_flowing(&mut page, 0, &resumed, THREE_SECONDS);
    assert_eq!(the_call(&server)["state"], "talking");

    ok(page.send("hangup 0"));
    let ended = ok(page.wait_for(call_event("ended", 0), STEP));
    assert_eq!(ended["originator"], "local", "{ended}");
    ok(caller.wait_for(peers::event("disconnected"), STEP));
    caller_heard_page(&mut caller);
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
}
