//! The agent desktop (`/agent`, issue 10) in a real browser: Debian's headless Chromium
//! with a fake microphone, driven by Playwright from `tests/browser-desktop/desktop.mjs`,
//! against the real server, with PJSIP callers through the trunk.
//!
//! Needs `node`, `npm` and `/usr/bin/chromium`, as tests/wallboard.rs. The page's JsSIP is
//! built by `scripts/desktop-bundle` (from `desktop/package-lock.json`) into
//! `target/desktop`, once per test process, exactly as a user builds it; playwright-core
//! comes from tests/support/browser.rs (`target/browser`). Each browser's log (the page's
//! console and every WebSocket frame) is kept in `target/browser-logs/desktop-*.log`, and
//! screenshots in `target/test-artifacts/desktop-*.png`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::fs::{self};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use browser::PageDriver;
use peers::Ua;
use serde_json::{Value, json};
use server::Server;

/// Long enough for anything that crosses a process boundary here, many times over.
const STEP: Duration = Duration::from_secs(20);
/// The supervisor token of the test configuration, for `/api/agents`.
const SUPERVISOR: &str = "desktop-supervisor-token-0123";
/// agent1's own token: what the agent types into the page.
const AGENT_TOKEN: &str = "desktop-agent1-token-0123";

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn progress(message: &str) {
    let _ = writeln!(std::io::stderr(), "desktop: {message}");
}

/// `scripts/desktop-bundle`, run once per test process: the JsSIP bundle's path.
fn bundle() -> PathBuf {
    static BUNDLE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUNDLE.get_or_init(|| {
        let root = peers::workspace_root();
        let out = peers::target_dir().join("desktop");
        let output = Command::new(root.join("scripts/desktop-bundle"))
            .arg(&out)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("scripts/desktop-bundle cannot run: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/desktop-bundle failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        progress(String::from_utf8_lossy(&output.stdout).trim());
        Ok(out.join("jssip.js"))
    });
    ok(built.clone())
}

/// One queue `comune` (no welcome), `agents` agents, agent1's token and a supervisor's,
/// and `[desktop]` with `desktop_lines`.
fn config(agents: usize, queue_extra: &str, desktop_lines: &str) -> String {
    let base = server::without_welcome(&server::config(agents, queue_extra));
    format!(
        "{base}\n[[api.tokens]]\nname = \"supervisor\"\ntoken = \"{SUPERVISOR}\"\n\
         scope = \"supervisor\"\n\n[[api.tokens]]\nname = \"agent1\"\ntoken = \"{AGENT_TOKEN}\"\n\
         scope = \"agent\"\nagent = \"agent1\"\n\n[desktop]\n{desktop_lines}\n"
    )
}

/// `[desktop]` with the bundle built by the script and the reasons the tests choose.
fn desktop_lines() -> String {
    format!(
        "bundle = {:?}\npause_reasons = [\"lunch\", \"training\", \"back_office\"]",
        bundle().display().to_string()
    )
}

/// Waits until `/api/agents/{name}` satisfies `check`.
fn wait_agent(server: &Server, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    server.wait_api(&format!("/api/agents/{name}"), SUPERVISOR, check, STEP)
}

/// The caller's tone, which the page must hear.
const CALLER_HZ: f64 = 440.0;
/// The page's microphone tone (Chromium's fake capture), which the caller must hear.
const PAGE_HZ: f64 = 1000.0;

/// A looping test tone of `hz` in a scratch WAV.
fn tone(name: &str, hz: f64) -> PathBuf {
    let path = peers::scratch_dir("desktop").join(format!("{name}-{}.wav", std::process::id()));
    ok(peers::tone_wav(&path, hz, 10.0))
}

/// A PJSIP caller through the trusted trunk: "Rossi" <+39055123> dials DID 100 once,
/// plays `play` and checks what it hears for `check_hz`, and stays until the other side
/// hangs up.
fn caller(server: &Server, label: &str, play: &std::path::Path, check_hz: f64) -> Ua {
    let to = format!("sip:100@{}", server.sip);
    let play = play.to_string_lossy();
    let check = check_hz.to_string();
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
            "--play",
            &play,
            "--check-hz",
            &check,
            "--timeout",
            "120",
        ],
    ))
}

// ---------------------------------------------------------------------------------------
// The browser

/// Headless Chromium behind `tests/browser-desktop/desktop.mjs`; closed on drop.
struct Browser {
    label: String,
    driver: PageDriver,
}

impl Browser {
    /// Starts the driver with `extra` flags and waits for the browser to run.
    fn start(label: &str, extra: &[&str]) -> Browser {
        let (driver, _) = PageDriver::start(
            "tests/browser-desktop/desktop.mjs",
            &format!("desktop-{label}"),
            extra,
        );
        Browser {
            label: label.to_owned(),
            driver,
        }
    }

    fn request(&mut self, op: &str, args: Value) -> Result<Value, Value> {
        self.driver.request(op, args)
    }

    /// `op` with `args`, or a panic that shows the page, its console and the server's log.
    fn must(&mut self, what: &str, op: &str, args: Value, server: &Server) -> Value {
        match self.request(op, args.clone()) {
            Ok(value) => value,
            Err(failure) => {
                let console = failure["console"]
                    .as_array()
                    .map(|lines| {
                        lines
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                let shot = peers::target_dir()
                    .join("test-artifacts")
                    .join(format!("desktop-{}-failure.png", self.label));
                let _ = self.request("screenshot", json!({ "path": shot.to_string_lossy() }));
                panic!(
                    "{what}: {op} {args}: {}\n--- the page's text:\n{}\n--- the browser's \
                     console (last lines):\n{console}\n--- the driver's log: {} (screenshot \
                     {})\n--- server log tail:\n{}",
                    failure["error"],
                    failure["page_text"].as_str().unwrap_or("(not read)"),
                    self.driver.log.display(),
                    shot.display(),
                    server.log_tail(40)
                )
            }
        }
    }

    fn goto(&mut self, url: &str, server: &Server) -> Value {
        self.must("loading the page", "goto", json!({ "url": url }), server)
    }

    fn click(&mut self, what: &str, selector: &str, server: &Server) {
        self.must(what, "click", json!({ "selector": selector }), server);
    }

    /// Waits until an element matching `selector`, not hidden, has `attribute` = `value`.
    fn wait_attribute(
        &mut self,
        what: &str,
        selector: &str,
        attribute: &str,
        value: &str,
        server: &Server,
    ) -> String {
        let request = json!({ "selector": selector, "attribute": attribute, "value": value,
            "visible": true, "timeout_ms": STEP.as_millis() as u64 });
        self.must(what, "wait", request, server)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until an element matching `selector` is there and not hidden.
    fn wait_visible(&mut self, what: &str, selector: &str, server: &Server) {
        let request = json!({ "selector": selector, "visible": true,
            "timeout_ms": STEP.as_millis() as u64 });
        self.must(what, "wait", request, server);
    }

    /// Waits until an element matching `selector`, not hidden, has the text `text`.
    fn wait_text(&mut self, what: &str, selector: &str, text: &str, server: &Server) {
        let request = json!({ "selector": selector, "text": text, "visible": true,
            "timeout_ms": STEP.as_millis() as u64 });
        self.must(what, "wait", request, server);
    }

    /// Waits until the page's `expression` is truthy; its value.
    fn until(&mut self, what: &str, expression: &str, server: &Server) -> Value {
        let request = json!({ "expression": expression, "timeout_ms": STEP.as_millis() as u64 });
        self.must(what, "until", request, server)
    }

    fn evaluate(&mut self, expression: &str, server: &Server) -> Value {
        self.must(
            "evaluating",
            "evaluate",
            json!({ "expression": expression }),
            server,
        )
    }

    fn screenshot(&mut self, name: &str, server: &Server) {
        let path = peers::target_dir()
            .join("test-artifacts")
            .join(format!("desktop-{name}.png"));
        self.must(
            "taking a screenshot",
            "screenshot",
            json!({ "path": path.to_string_lossy() }),
            server,
        );
    }

    /// Opens the desktop and logs in with `token`.
    fn log_in(&mut self, server: &Server, token: &str) {
        self.goto(&format!("http://{}/agent", server.http), server);
        self.must(
            "typing the token",
            "fill",
            json!({ "selector": "[data-field=token]", "value": token }),
            server,
        );
        self.click("logging in", "[data-action=login]", server);
    }
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn the_page_logs_in_with_a_token_pauses_with_a_reason_and_logs_out() {
    let server = Server::start(&config(1, "", &desktop_lines()));
    let mut page = Browser::start("login", &[]);
    page.log_in(&server, AGENT_TOKEN);

    // Registering over ws://HTTP/sip logs the agent in: the ACD and the page agree.
    page.wait_attribute(
        "the page shows the agent ready",
        "[data-field=acd-state]",
        "data-state",
        "available",
        &server,
    );
    page.wait_attribute(
        "the page says it is connected",
        "[data-connection]",
        "data-connection",
        "online",
        &server,
    );
    wait_agent(&server, "agent1", |a| a["state"] == "available");
    assert_eq!(
        page.evaluate(
            "document.querySelector('[data-field=agent-name]').textContent",
            &server
        ),
        "agent1"
    );

    // A pause with a reason of [desktop] pause_reasons.
    page.must(
        "choosing a reason",
        "evaluate",
        json!({ "expression": "(() => { const s = document.querySelector('[data-field=pause-reasons]'); \
            s.value = 'training'; return [...s.options].map(o => o.value); })()" }),
        &server,
    );
    page.click("pausing", "[data-action=pause]", &server);
    let paused = wait_agent(&server, "agent1", |a| a["state"] == "paused");
    assert_eq!(paused["reason"], "training", "{paused}");
    page.wait_attribute(
        "the page shows the pause",
        "[data-field=acd-state]",
        "data-state",
        "paused",
        &server,
    );
    page.wait_text(
        "the page shows the reason",
        "[data-field=pause-reason]",
        "Training",
        &server,
    );
    // Italian, by the switch; the reason and the state follow.
    page.click("switching to Italian", "[data-language=it]", &server);
    page.wait_text(
        "the state in Italian",
        "[data-field=acd-state]",
        "In pausa",
        &server,
    );
    page.wait_text(
        "the reason in Italian",
        "[data-field=pause-reason]",
        "Formazione",
        &server,
    );
    page.screenshot("paused", &server);

    // R makes the agent ready.
    page.must("pressing R", "press", json!({ "key": "r" }), &server);
    wait_agent(&server, "agent1", |a| a["state"] == "available");
    page.wait_attribute(
        "ready again",
        "[data-field=acd-state]",
        "data-state",
        "available",
        &server,
    );

    page.click("logging out", "[data-action=logout]", &server);
    wait_agent(&server, "agent1", |a| a["state"] == "logged_out");
    page.wait_text(
        "the login form is back, in Italian",
        "[data-action=login]",
        "Accedi",
        &server,
    );
}

#[test]
fn a_trunk_call_rings_the_page_is_answered_and_hung_up_there_and_the_page_reconnects() {
    let server = Server::start(&config(
        1,
        "ring_timeout = 30\nwrap_up = 30",
        &desktop_lines(),
    ));
    let caller_tone = tone("caller", CALLER_HZ);
    let page_tone = tone("page", PAGE_HZ);
    let mut page = Browser::start("calls", &["--audio", &page_tone.to_string_lossy()]);
    page.log_in(&server, AGENT_TOKEN);
    wait_agent(&server, "agent1", |a| a["state"] == "available");

    // The call rings the page: the caller's identity, the queue, the wait.
    let mut first = caller(&server, "desktop-caller-1", &caller_tone, PAGE_HZ);
    page.wait_attribute(
        "the call rings the page",
        ".panel.call",
        "data-call",
        "ringing",
        &server,
    );
    page.wait_text(
        "the caller's identity",
        "[data-field=caller]",
        "Rossi (+39055123)",
        &server,
    );
    page.wait_text("the queue", "[data-field=queue]", "comune", &server);
    page.until(
        "how long the caller waited",
        "/^\\d+:\\d\\d$/.test(document.querySelector('[data-field=waited]').textContent)",
        &server,
    );
    wait_agent(&server, "agent1", |a| a["state"] == "reserved");

    // Answered by a click.
    page.click("answering", "[data-action=answer]", &server);
    ok(first.wait_for(peers::event("confirmed"), STEP));
    wait_agent(&server, "agent1", |a| a["state"] == "on_call");
    page.wait_attribute(
        "the page is talking",
        ".panel.call",
        "data-call",
        "talking",
        &server,
    );
    // The caller's tone reaches the page: getStats counts received audio energy (the
    // caller's recording of the page's tone is checked when it hangs up).
    page.until(
        "audio reaches the page",
        "window.amicoDesktop.audioStats().then(s => s && s.inbound && s.inbound.packets > 50 \
         && s.inbound.energy > 0 && s.outbound && s.outbound.packets > 50 ? s : false)",
        &server,
    );
    page.screenshot("talking", &server);

    // Mute and hold, and back: hold is a re-INVITE from the page, which keeps the bridge.
    page.click("muting", "[data-action=mute]", &server);
    page.wait_attribute(
        "muted",
        "[data-action=mute]",
        "aria-pressed",
        "true",
        &server,
    );
    page.click("unmuting", "[data-action=mute]", &server);
    page.wait_attribute(
        "unmuted",
        "[data-action=mute]",
        "aria-pressed",
        "false",
        &server,
    );
    page.click("holding", "[data-action=hold]", &server);
    page.wait_attribute("on hold", ".panel.call", "data-call", "on_hold", &server);
    page.click("resuming", "[data-action=hold]", &server);
    page.wait_attribute("resumed", ".panel.call", "data-call", "talking", &server);
    assert_eq!(
        server
            .api("GET", "/api/agents/agent1", Some(SUPERVISOR), None)
            .1["state"],
        "on_call",
        "hold and resume keep the call"
    );

    // Hung up from the page: the caller is told, the agent goes into wrap-up, the page
    // counts it down, and the extend button gives more.
    page.click("hanging up", "[data-action=hangup]", &server);
    let disconnected = ok(first.wait_for(peers::event("disconnected"), STEP));
    assert_eq!(
        disconnected["by"], "remote",
        "the page hung up: {disconnected}"
    );
    let heard = ok(first.wait_for(peers::event("audio"), STEP));
    let page_tone_heard = heard["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["hz"].as_f64() == Some(PAGE_HZ)))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        page_tone_heard["present"], true,
        "the caller hears the page's {PAGE_HZ} Hz tone: {heard}"
    );
    let wrap_up = wait_agent(&server, "agent1", |a| a["state"] == "wrap_up");
    page.wait_visible("the wrap-up shows", ".panel.wrap-up", &server);
    page.until(
        "the countdown runs",
        "(() => { const n = Number(document.querySelector('[data-field=wrap-up]').textContent); \
         return n > 0 && n <= 30; })()",
        &server,
    );
    page.screenshot("wrap-up", &server);
    page.click("extending the wrap-up", "[data-action=extend]", &server);
    let until = wrap_up["wrap_up_until"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    wait_agent(&server, "agent1", |a| {
        a["state"] == "wrap_up"
            && a["wrap_up_until"]
                .as_str()
                .is_some_and(|u| u > until.as_str())
    });
    page.until(
        "the countdown shows the extension",
        "Number(document.querySelector('[data-field=wrap-up]').textContent) > 30",
        &server,
    );
    page.click("ready now", "[data-action=ready-now]", &server);
    wait_agent(&server, "agent1", |a| a["state"] == "available");

    // The network drops: both WebSockets close under the page. It says so, opens them
    // again, registers again, and the agent stays logged in (the WebSocket grace).
    let dropped = page.evaluate("window.amicoDesktop.dropConnections()", &server);
    assert_eq!(dropped, true, "the page had a SIP WebSocket to drop");
    page.wait_attribute(
        "the page says it is reconnecting",
        "[data-connection]",
        "data-connection",
        "reconnecting",
        &server,
    );
    page.wait_attribute(
        "the page is back",
        "[data-connection]",
        "data-connection",
        "online",
        &server,
    );
    let registers = page.evaluate("window.amicoDesktop.snapshot().sip", &server);
    assert_eq!(registers, "registered");

    // The next call reaches the page down the new WebSocket; A answers, H hangs up.
    let mut second = caller(&server, "desktop-caller-2", &caller_tone, PAGE_HZ);
    page.wait_attribute(
        "the next call rings the page",
        ".panel.call",
        "data-call",
        "ringing",
        &server,
    );
    page.must("pressing A", "press", json!({ "key": "a" }), &server);
    ok(second.wait_for(peers::event("confirmed"), STEP));
    wait_agent(&server, "agent1", |a| a["state"] == "on_call");
    page.wait_attribute(
        "talking again",
        ".panel.call",
        "data-call",
        "talking",
        &server,
    );
    page.must("pressing H", "press", json!({ "key": "h" }), &server);
    ok(second.wait_for(peers::event("disconnected"), STEP));
    wait_agent(&server, "agent1", |a| a["state"] == "wrap_up");
    let answered = wait_agent(&server, "agent1", |a| a["calls_answered"] == 2);
    assert_eq!(answered["calls_answered"], 2, "{answered}");
}

#[test]
fn the_page_explains_a_missing_bundle_a_wrong_token_and_a_refused_microphone() {
    // No bundle where [desktop] bundle points: 503 naming the script, and the page says so.
    let server = Server::start(&config(1, "", "bundle = \"/nonexistent/amico/jssip.js\""));
    let (status, body) = server.raw_request("GET", "/agent/jssip.js", None, None);
    assert_eq!(status, 503, "{body}");
    let said = body.as_str().unwrap_or_default();
    assert!(said.contains("scripts/desktop-bundle"), "{said}");

    // The session exchange: an agent token gives its own credentials, a supervisor's none.
    let (status, session) = server.api("POST", "/agent/session", Some(AGENT_TOKEN), None);
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["agent"], "agent1");
    assert_eq!(session["sip"]["user"], "agent1");
    assert_eq!(session["sip"]["password"], "secret-1");
    let (status, refused) = server.api("POST", "/agent/session", Some(SUPERVISOR), None);
    assert_eq!(status, 403, "{refused}");

    let mut page = Browser::start("explains", &[]);
    page.log_in(&server, AGENT_TOKEN);
    page.until(
        "the page names the missing bundle",
        "(() => { const m = document.querySelector('[data-message]'); \
         return !m.hidden && m.textContent.includes('scripts/desktop-bundle') && m.textContent; })()",
        &server,
    );
    page.log_in(&server, "not-a-token-of-this-server");
    page.until(
        "the page names the refused token",
        "(() => { const m = document.querySelector('[data-message]'); \
         return !m.hidden && m.textContent.includes('refused the token') && m.textContent; })()",
        &server,
    );
    drop(page);
    drop(server);

    // With the bundle, but the microphone refused: the page says what to do and does not
    // register (an agent who cannot be heard must not be offered calls).
    let server = Server::start(&config(1, "", &desktop_lines()));
    let mut page = Browser::start("no-microphone", &["--deny-microphone"]);
    page.log_in(&server, AGENT_TOKEN);
    let said = page.until(
        "the page explains the refused microphone",
        "(() => { const m = document.querySelector('[data-message]'); \
         return !m.hidden && m.textContent.includes('microphone') && m.textContent; })()",
        &server,
    );
    assert!(
        said.as_str().is_some_and(|s| s.contains("Allow it")),
        "{said}"
    );
    let agent = server
        .api("GET", "/api/agents/agent1", Some(SUPERVISOR), None)
        .1;
    assert_eq!(agent["state"], "logged_out", "{agent}");
}

#[test]
fn a_token_taken_away_by_a_reload_ends_the_page_session() {
    let text = config(1, "", &desktop_lines());
    let server = Server::start(&text);
    let mut page = Browser::start("revoked", &[]);
    page.log_in(&server, AGENT_TOKEN);
    page.wait_attribute(
        "the page is connected",
        "[data-connection]",
        "data-connection",
        "online",
        &server,
    );

    // The same file without agent1's token, applied while the page runs.
    let agent_token = format!(
        "\n[[api.tokens]]\nname = \"agent1\"\ntoken = \"{AGENT_TOKEN}\"\nscope = \"agent\"\n\
         agent = \"agent1\"\n"
    );
    assert!(
        text.contains(&agent_token),
        "the test configuration has changed"
    );
    fs::write(&server.config, text.replace(&agent_token, "\n"))
        .unwrap_or_else(|e| panic!("{}: {e}", server.config.display()));
    let (status, body) = server.api("POST", "/api/config/reload", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{body}");

    // The desk stream closes (1008) and the page asks for a token again.
    let said = page.until(
        "the page says the token is gone",
        "(() => { const m = document.querySelector('[data-message]'); \
         return !m.hidden && !document.querySelector('#login').hidden && m.textContent; })()",
        &server,
    );
    assert!(
        said.as_str().is_some_and(|s| s.contains("no longer valid")),
        "{said}"
    );
    let (status, _) = server.api("POST", "/agent/session", Some(AGENT_TOKEN), None);
    assert_eq!(status, 401);
}
