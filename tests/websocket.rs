//! Agents in the browser (issue 10): JsSIP 3.13 in Debian's headless Chromium
//! (`tests/browser/sip-agent.mjs`, driven by tests/support/browser.rs) registers over SIP
//! over WebSocket (RFC 7118) at `ws://HTTP_ADDR/sip`, against the real server, with PJSIP
//! callers and agents (tests/peers/ua.py) beside it.
//!
//! Needs what tests/wallboard.rs needs (`node`, `npm`, `/usr/bin/chromium`); the npm
//! packages (playwright-core, JsSIP, SIP.js, esbuild) are installed into `target/browser`
//! on first use. These tests are about signalling: the calls they ring are rejected from
//! the page. Answered calls, their WebRTC media, hold and a page that does not answer
//! are in tests/webrtc.rs.
//!
//! Each browser's log (its console with JsSIP's debug output, and every WebSocket frame)
//! is kept in `target/browser-logs/`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use browser::{SipAgent, call_event, event};
use peers::Ua;
use serde_json::Value;
use server::Server;

/// Long enough for anything that crosses a process boundary here, many times over.
const STEP: Duration = Duration::from_secs(15);
/// `[sip] websocket_grace` in the tests of the grace period, seconds.
const GRACE: u64 = 2;
/// The supervisor token of the test configurations, for `/api/agents`.
const TOKEN: &str = "websocket-test-token-0123";

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// `server::config(agents, queue_extra)` without the welcome, with a supervisor token,
/// and `sip_lines` in its `[sip]` table.
fn config(agents: usize, queue_extra: &str, sip_lines: &str) -> String {
    let base = server::without_welcome(&server::config(agents, queue_extra));
    let anchor = "[sip]\nlisten = \"127.0.0.1:0\"\n";
    assert!(base.contains(anchor), "the test configuration has changed");
    format!(
        "{}\n[[api.tokens]]\nname = \"supervisor\"\ntoken = \"{TOKEN}\"\nscope = \"supervisor\"\n",
        base.replacen(anchor, &format!("{anchor}{sip_lines}\n"), 1)
    )
}

fn ws_url(server: &Server) -> String {
    format!("ws://{}/sip", server.http)
}

/// A browser agent `agent{n}` with `password`, started (not yet registered).
fn browser_agent(server: &Server, label: &str, n: usize, password: &str) -> SipAgent {
    let uri = format!("sip:agent{n}@127.0.0.1");
    let display = format!("Agent {n}");
    ok(SipAgent::start(
        label,
        &ws_url(server),
        &uri,
        password,
        &["--display-name", &display],
    ))
}

/// A browser agent `agent{n}` with its right password, registered.
fn registered_agent(server: &Server, label: &str, n: usize) -> (SipAgent, Value) {
    let mut agent = browser_agent(server, label, n, &format!("secret-{n}"));
    let registered = ok(agent.wait_registered(0, STEP));
    (agent, registered)
}

/// A PJSIP agent `agent{n}` over UDP that answers its one call and hangs up a second
/// later, registered.
fn pjsip_agent(server: &Server, label: &str, n: usize) -> Ua {
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
            "1",
            "--timeout",
            "90",
        ],
    ));
    ok(ua.wait_for(peers::event("registered"), STEP));
    ua
}

/// A PJSIP caller through the trusted trunk: "Rossi" <+39055123> dials DID 100.
fn caller(server: &Server, label: &str) -> Ua {
    let to = format!("sip:100@{}", server.sip);
    ok(Ua::spawn(
        label,
        &[
            "--role",
            "caller",
            "--to",
            &to,
            "--from-user",
            "%2B39055123",
            "--from-display",
            "Rossi",
            "--calls",
            "1",
            "--timeout",
            "90",
        ],
    ))
}

/// `GET /api/agents/{name}`.
fn agent_view(server: &Server, name: &str) -> Value {
    let (status, body) = server.api("GET", &format!("/api/agents/{name}"), Some(TOKEN), None);
    assert_eq!(status, 200, "/api/agents/{name}: {body}");
    body
}

/// Waits until `/api/agents/{name}` says `state`.
fn wait_state(server: &Server, name: &str, state: &str, within: Duration) -> Value {
    server.wait_api(
        &format!("/api/agents/{name}"),
        TOKEN,
        |agent| agent["state"] == state,
        within,
    )
}

fn logged_in(server: &Server) -> Value {
    let health: Value = serde_json::from_str(&server.get("/health")).expect("health JSON");
    health["agents_logged_in"].clone()
}

/// The states `agent` went through according to the queue log (its
/// `agent_state_changed` records, in order), once the log holds a record matching `until`
/// (an SQL condition on `queue_log`): the records before that one are committed by then.
fn logged_states(server: &Server, agent: &str, until: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let url = match server.database.strip_prefix("sqlite:") {
        Some(path) => format!("sqlite://{path}?mode=rw"),
        None => server.database.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        use sqlx::Row;
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        // Test-only SQL built from constants, never from input.
        let wait = format!("SELECT COUNT(*) FROM queue_log WHERE {until}");
        let deadline = Instant::now() + STEP;
        loop {
            let seen: i64 = sqlx::query(sqlx::AssertSqlSafe(wait.clone()))
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{wait}: {e}"))
                .get(0);
            if seen > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no queue log record where {until} within {STEP:?}"
            );
            // Polling with a deadline: the store has no push channel but /api/events.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rows = sqlx::query(
            "SELECT body FROM queue_log WHERE kind = 'agent_state_changed' AND agent = $1 \
             ORDER BY seq",
        )
        .bind(agent)
        .fetch_all(&pool)
        .await
        .expect("read the queue log");
        pool.close().await;
        rows.iter()
            .map(|row| {
                let body: String = row.get(0);
                let body: Value = serde_json::from_str(&body).expect("a JSON body");
                body["state"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    })
}

/// The answers the agent received to its REGISTERs so far, their start lines in order.
fn register_answers(agent: &mut SipAgent) -> Vec<String> {
    agent
        .events()
        .iter()
        .filter(|v| v["event"] == "sip" && v["direction"] == "received")
        .filter(|v| v["cseq"].as_str().is_some_and(|c| c.ends_with(" REGISTER")))
        .filter_map(|v| v["line"].as_str().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn a_browser_agent_registers_over_the_websocket_with_digest_and_is_logged_in() {
    let server = Server::start(&config(1, "", ""));
    let (mut agent, registered) = registered_agent(&server, "register", 1);
    assert_eq!(registered["code"], 200, "{registered}");
    // JsSIP only says registered when the 200 gives its own *.invalid;transport=ws Contact
    // back; REGISTER was challenged first.
    let answers = register_answers(&mut agent);
    assert!(
        answers
            .first()
            .is_some_and(|a| a.starts_with("SIP/2.0 401")),
        "digest: the first REGISTER is challenged: {answers:?}"
    );
    server.wait_logged_in(1);
    let view = wait_state(&server, "agent1", "available", STEP);
    assert_eq!(view["name"], "agent1", "{view}");
    assert_eq!(server.metric("amico_sip_auth_failures_total"), 0.0);

    // An un-REGISTER over the WebSocket logs the agent out at once: the grace period
    // (10 s by default) is for a WebSocket that closed, not for an agent who left.
    let mark = agent.mark();
    ok(agent.send("unregister"));
    let unregistered = ok(agent.wait_since(mark, event("unregistered"), STEP));
    assert_eq!(unregistered["code"], 200, "{unregistered}");
    wait_state(&server, "agent1", "logged_out", Duration::from_secs(5));
    assert_eq!(logged_in(&server), 0);
    ok(agent.send("quit"));
}

#[test]
fn a_trunk_call_rings_the_browser_over_its_websocket_and_a_rejection_goes_to_the_next_agent() {
    let server = Server::start(&config(2, "ring_timeout = 15\nretry_after = 60", ""));
    // agent1, in the browser, logs in first: it is the longest idle and rings first.
    let (mut browser, _) = registered_agent(&server, "ringing", 1);
    server.wait_logged_in(1);
    let mut answering = pjsip_agent(&server, "answering", 2);
    server.wait_logged_in(2);
    let mut caller = caller(&server, "ws-caller");

    let incoming = browser
        .wait_for(event("incoming"), STEP)
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nThe call should ring agent1 down its WebSocket.\n--- server log tail:\n{}",
                server.log_tail(30)
            )
        });
    // The caller's identity as the trunk sent it (PJSIP writes %2B as +).
    assert_eq!(incoming["from_display"], "Rossi", "{incoming}");
    assert_eq!(incoming["from_user"], "+39055123", "{incoming}");
    // Addressed to the Contact JsSIP registered, sent as RFC 7118 §5 says.
    let request_uri = incoming["request_uri"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        request_uri.contains(".invalid") && request_uri.contains("transport=ws"),
        "{incoming}"
    );
    assert_eq!(incoming["via_transport"], "WS", "{incoming}");
    let offer = incoming["sdp"].as_str().unwrap_or_default();
    assert!(offer.contains("m=audio "), "an audio offer: {incoming}");
    assert_eq!(
        answering.count(peers::event("incoming")),
        0,
        "the browser rang first"
    );

    ok(browser.send("reject 486"));
    let failed = ok(browser.wait_for(call_event("failed", 0), STEP));
    assert_eq!(failed["originator"], "local", "{failed}");

    // Back to its place in the queue, and on to agent2, who answers.
    ok(answering.wait_for(peers::event("incoming"), STEP));
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
        "the browser's 486 is a failed offer"
    );
    assert!(server.metric("amico_sip_responses_received_total{class=\"4xx\"}") >= 1.0);
    server.wait_metric("amico_calls_active", |v| v == 0.0, STEP);
    assert_eq!(browser.count(event("incoming")), 1, "the browser rang once");
}

#[test]
fn a_dropped_websocket_keeps_the_agent_for_the_grace_period_then_logs_it_out() {
    let server = Server::start(&config(1, "", &format!("websocket_grace = {GRACE}")));
    let (mut agent, _) = registered_agent(&server, "dropped", 1);
    server.wait_logged_in(1);

    // The page closes its WebSocket without an un-REGISTER, as a crashed tab would.
    let mark = agent.mark();
    ok(agent.send("drop"));
    ok(agent.wait_since(mark, event("disconnected"), STEP));
    let dropped = Instant::now();
    assert_eq!(
        logged_in(&server),
        1,
        "the agent stays logged in right after its WebSocket closed"
    );
    assert_eq!(agent_view(&server, "agent1")["state"], "available");

    server.wait_logged_in(0);
    let after = dropped.elapsed();
    browser::progress(&format!(
        "logged out {:.2} s after the WebSocket closed (grace {GRACE} s)",
        after.as_secs_f64()
    ));
    // The server saw the close after the page did: its grace period ends after ours.
    assert!(
        after >= Duration::from_secs(GRACE) - Duration::from_millis(500),
        "logged out {after:?} after the WebSocket closed, before the grace period of {GRACE} s"
    );
    assert_eq!(
        logged_states(
            &server,
            "agent1",
            "kind = 'agent_state_changed' AND body LIKE '%logged_out%'"
        ),
        ["available", "logged_out"],
        "logged in, then out once"
    );
    assert_eq!(
        agent.count(event("registered")),
        1,
        "the page did not register again"
    );
}

#[test]
fn a_reconnect_within_the_grace_period_keeps_the_agent_logged_in_and_its_place() {
    let server = Server::start(&config(
        2,
        "ring_timeout = 15\nretry_after = 60",
        &format!("websocket_grace = {GRACE}"),
    ));
    let (mut browser, _) = registered_agent(&server, "reconnecting", 1);
    server.wait_logged_in(1);
    let since = wait_state(&server, "agent1", "available", STEP)["since"].clone();
    let mut answering = pjsip_agent(&server, "second", 2);
    server.wait_logged_in(2);

    // The WebSocket goes and the page comes back on a new one, registering again.
    let mark = browser.mark();
    ok(browser.send("drop"));
    ok(browser.wait_since(mark, event("disconnected"), STEP));
    let dropped = Instant::now();
    ok(browser.send("reconnect"));
    ok(browser.wait_registered(mark, STEP));
    browser::progress(&format!(
        "registered again {:.2} s after the WebSocket closed",
        dropped.elapsed().as_secs_f64()
    ));
    assert!(
        dropped.elapsed() < Duration::from_secs(GRACE),
        "registered again {:?} after the drop: not within the grace period, the test \
         proves nothing",
        dropped.elapsed()
    );

    // Watch past the end of the grace period: agent1 never leaves.
    let watch_until = dropped + Duration::from_secs(GRACE) + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        let view = agent_view(&server, "agent1");
        assert_eq!(
            view["state"],
            "available",
            "{:?} after the drop: {view}\n--- server log tail:\n{}",
            dropped.elapsed(),
            server.log_tail(20)
        );
        // Polling a condition over a window: there is no event for "nothing happened".
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(logged_in(&server), 2);
    assert_eq!(
        agent_view(&server, "agent1")["since"],
        since,
        "agent1 has been available since it first logged in"
    );

    // The ACD's idle order is kept: agent1 is still the longest idle and rings first,
    // down its new WebSocket.
    let mut caller = caller(&server, "after-reconnect");
    let incoming = ok(browser.wait_since(mark, event("incoming"), STEP));
    assert_eq!(
        answering.count(peers::event("incoming")),
        0,
        "agent1 rang first: {incoming}"
    );
    ok(browser.send("reject 486"));
    ok(answering.wait_for(peers::event("confirmed"), STEP));
    ok(caller.wait_for(peers::event("disconnected"), STEP));
    let states = logged_states(&server, "agent1", "kind = 'call_ended'");
    assert!(
        !states.iter().any(|s| s == "logged_out"),
        "the queue log has no logout of agent1: {states:?}"
    );
}

#[test]
fn a_page_reload_within_the_grace_period_keeps_the_agent_and_calls_reach_the_new_page() {
    let server = Server::start(&config(
        1,
        "ring_timeout = 15\nretry_after = 60",
        &format!("websocket_grace = {GRACE}"),
    ));
    let (mut browser, first) = registered_agent(&server, "reloading", 1);
    server.wait_logged_in(1);
    let since = wait_state(&server, "agent1", "available", STEP)["since"].clone();

    // A reload: the page and its WebSocket go, a new UA registers with a new Contact (and
    // REGISTER Call-ID) over a new WebSocket.
    let mark = browser.mark();
    let reloaded = Instant::now();
    ok(browser.send("reload"));
    let second = ok(browser.wait_registered(mark, STEP));
    assert_ne!(
        first["contact"], second["contact"],
        "a new page, a new Contact"
    );

    let watch_until = reloaded + Duration::from_secs(GRACE) + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        let view = agent_view(&server, "agent1");
        assert_eq!(
            view["state"],
            "available",
            "{:?} after the reload: {view}\n--- server log tail:\n{}",
            reloaded.elapsed(),
            server.log_tail(20)
        );
        // Polling a condition over a window: there is no event for "nothing happened".
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(agent_view(&server, "agent1")["since"], since);

    // A call rings the new page, not the WebSocket that closed.
    let mut caller = caller(&server, "after-reload");
    let incoming = browser
        .wait_since(mark, event("incoming"), STEP)
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nThe call should ring the reloaded page.\n--- server log tail:\n{}",
                server.log_tail(30)
            )
        });
    let contact = second["contact"][0].as_str().unwrap_or_default();
    let contact_user = contact
        .trim_start_matches("<sip:")
        .split('@')
        .next()
        .unwrap_or_default();
    assert!(
        incoming["request_uri"]
            .as_str()
            .is_some_and(|uri| uri.starts_with(&format!("sip:{contact_user}@"))),
        "the INVITE is addressed to the new Contact {contact}: {incoming}"
    );
    ok(browser.send("reject 486"));
    server.wait_metric(
        "amico_queue_offers_failed_total{queue=\"comune\"}",
        |v| v == 1.0,
        STEP,
    );
    let _ = caller.shutdown(STEP);
    let states = logged_states(&server, "agent1", "kind = 'call_offered'");
    assert!(
        !states.iter().any(|s| s == "logged_out"),
        "the queue log has no logout of agent1: {states:?}"
    );
}

#[test]
fn a_wrong_password_over_the_websocket_is_refused_counted_and_throttled() {
    let server = Server::start(&config(1, "", ""));
    let mut agent = browser_agent(&server, "wrong-password", 1, "not-the-password");
    let failed = ok(agent.wait_registration(0, STEP));
    assert_eq!(failed["event"], "registration_failed", "{failed}");
    assert_eq!(failed["code"], 401, "{failed}");
    assert_eq!(failed["cause"], "Authentication Error", "{failed}");
    assert_eq!(
        register_answers(&mut agent),
        ["SIP/2.0 401 Unauthorized", "SIP/2.0 401 Unauthorized"],
        "challenged, then refused with a new challenge"
    );
    server.wait_metric("amico_sip_auth_failures_total", |v| v == 1.0, STEP);
    assert_eq!(logged_in(&server), 0);

    // The same throttle as over UDP: five failures for agent1 from this address block
    // it, and the next REGISTER is turned away with 503 before any challenge.
    for attempt in 2..=5 {
        let mark = agent.mark();
        ok(agent.send("register"));
        let failed = ok(agent.wait_registration(mark, STEP));
        assert_eq!(failed["code"], 401, "attempt {attempt}: {failed}");
    }
    server.wait_metric("amico_sip_auth_failures_total", |v| v == 5.0, STEP);
    let mark = agent.mark();
    ok(agent.send("register"));
    let blocked = ok(agent.wait_registration(mark, STEP));
    assert_eq!(blocked["code"], 503, "blocked: {blocked}");
    assert_eq!(server.metric("amico_sip_user_blocks_total"), 1.0);
    assert_eq!(server.metric("amico_sip_auth_failures_total"), 5.0);
    assert_eq!(logged_in(&server), 0);
}
