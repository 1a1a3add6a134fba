//! The supervisors' wallboard (`/wallboard`) in a real browser: Debian's headless
//! Chromium, driven by Playwright from `tests/browser/wallboard.mjs`, against the real
//! server, with a PJSIP caller.
//!
//! Needs `node`, `npm` and `/usr/bin/chromium` (`apt-get install chromium`; `.ci/run`
//! installs it). The test installs `tests/browser/package-lock.json` into `target/browser`
//! itself on first use, with `npm ci` (tests/support/browser.rs). The screenshot of the live
//! page is kept as `target/test-artifacts/wallboard.png`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::fs::{self};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use browser::PageDriver;
use peers::{Ua, event};
use serde_json::{Value, json};
use server::Server;

/// The supervisor token the test configuration holds.
const TOKEN: &str = "wallboard-test-token-0123";
/// Long enough for a record to be committed, streamed, fetched and drawn many times over.
const STEP: Duration = Duration::from_secs(15);

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// Progress past the harness's output capture, as tests/support/peers.rs does.
fn progress(message: &str) {
    let _ = writeln!(std::io::stderr(), "wallboard: {message}");
}

fn config() -> String {
    format!(
        "{}\n[[api.tokens]]\nname = \"wallboard\"\ntoken = \"{TOKEN}\"\nscope = \"supervisor\"\n",
        server::config(0, "")
    )
}

// ---------------------------------------------------------------------------------------
// The browser

/// Headless Chromium behind `tests/browser/wallboard.mjs`; closed on drop.
struct Browser {
    driver: PageDriver,
}

impl Browser {
    /// Starts the driver and waits for the browser to run.
    fn start(label: &str) -> Browser {
        let (driver, ready) = PageDriver::start(
            "tests/browser/wallboard.mjs",
            label,
            &["--viewport", "1600x1000"],
        );
        progress(&format!(
            "Chromium {}",
            ready["browser"].as_str().unwrap_or("?")
        ));
        Browser { driver }
    }

    fn request(&mut self, op: &str, args: Value) -> Result<Value, Value> {
        self.driver.request(op, args)
    }

    fn goto(&mut self, url: &str) {
        if let Err(failure) = self.request("goto", json!({ "url": url })) {
            panic!("{}", self.explain(&format!("loading {url}"), &failure));
        }
    }

    /// Waits until `selector` matches a visible element whose text is `text` (any text
    /// when `None`), failing with the page's text and the browser's console log.
    fn wait(&mut self, what: &str, selector: &str, text: Option<&str>, server: Option<&Server>) {
        let request = json!({ "selector": selector, "text": text });
        self.wait_for(what, selector, request, server);
    }

    /// Waits until `selector`'s text is no longer `text`; the new text.
    fn wait_change(&mut self, what: &str, selector: &str, text: &str, server: &Server) -> String {
        let request = json!({ "selector": selector, "not_text": text });
        self.wait_for(what, selector, request, Some(server))
    }

    fn wait_for(
        &mut self,
        what: &str,
        selector: &str,
        mut request: Value,
        server: Option<&Server>,
    ) -> String {
        request["visible"] = json!(true);
        request["timeout_ms"] = json!(u64::try_from(STEP.as_millis()).unwrap_or(u64::MAX));
        match self.request("wait", request.clone()) {
            Ok(text) => text.as_str().unwrap_or_default().to_owned(),
            Err(failure) => {
                let mut message = self.explain(
                    &format!("{what}: `{selector}` never matched {request} within {STEP:?}"),
                    &failure,
                );
                if let Some(server) = server {
                    message.push_str(&format!("\n--- server log tail:\n{}", server.log_tail(30)));
                }
                panic!("{message}");
            }
        }
    }

    fn text(&mut self, selector: &str) -> String {
        match self.request("text", json!({ "selector": selector })) {
            Ok(value) => value.as_str().unwrap_or_default().to_owned(),
            Err(failure) => panic!("{}", self.explain(&format!("reading {selector}"), &failure)),
        }
    }

    fn state(&mut self) -> Value {
        self.request("state", json!({})).unwrap_or_else(|failure| {
            panic!("{}", self.explain("reading the page's state", &failure))
        })
    }

    fn screenshot(&mut self, path: &Path) {
        let request = json!({ "path": path.to_string_lossy(), "full_page": true });
        if let Err(failure) = self.request("screenshot", request) {
            panic!("{}", self.explain("taking the screenshot", &failure));
        }
    }

    /// A failure's message: what was expected, the page's text and its console log.
    fn explain(&mut self, what: &str, failure: &Value) -> String {
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
        format!(
            "{what}: {}\n--- the page's text:\n{}\n--- the browser's console:\n{console}\n--- the \
             driver's log ({}):\n{}",
            failure["error"],
            failure["page_text"].as_str().unwrap_or("(not read)"),
            self.driver.log.display(),
            self.driver.stderr()
        )
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn wallboard_url(server: &Server, token: &str) -> String {
    format!("http://{}/wallboard?token={token}", server.http)
}

fn field(queue: &str, name: &str) -> String {
    format!(r#"[data-queue="{queue}"] [data-field="{name}"]"#)
}

/// `GET path` over HTTP/1.0: the head (status line and headers) and the body.
fn get_raw(server: &Server, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(server.http).expect("http connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("http write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("http read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn the_wallboard_files_are_served_with_their_types_and_no_cache() {
    let server = Server::start(&config());
    for (path, kind, needle) in [
        ("/wallboard", "text/html; charset=utf-8", "data-connection"),
        (
            "/wallboard/wallboard.js",
            "text/javascript; charset=utf-8",
            "/api/events",
        ),
        (
            "/wallboard/wallboard.css",
            "text/css; charset=utf-8",
            ".queue",
        ),
    ] {
        let (head, body) = get_raw(&server, path);
        assert!(head.starts_with("http/1.0 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {kind}")),
            "{path}: {head}"
        );
        assert!(head.contains("cache-control: no-cache"), "{path}: {head}");
        assert!(body.contains(needle), "{path} lacks {needle:?}");
    }
    // The page itself needs no token: the API it calls does.
    let (head, _) = get_raw(&server, "/wallboard/missing.js");
    assert!(head.starts_with("http/1.0 404"), "{head}");
}

#[test]
fn the_wallboard_shows_a_caller_live_and_then_the_abandon() {
    let server = Server::start(&config());
    let mut browser = Browser::start("live");
    browser.goto(&wallboard_url(&server, TOKEN));
    let s = Some(&server);
    browser.wait("the stream is open", r#"[data-connection="live"]"#, None, s);
    browser.wait(
        "the queue is empty",
        &field("comune", "waiting"),
        Some("0"),
        s,
    );
    browser.wait(
        "nobody abandoned yet",
        &field("comune", "abandoned"),
        Some("0"),
        s,
    );
    browser.wait(
        "no agent is logged in",
        &field("comune", "agents-logged-in"),
        Some("0"),
        s,
    );
    browser.wait(
        "no answered call: no service level",
        &field("comune", "service-level"),
        Some("–"),
        s,
    );
    browser.wait(
        "no votes",
        &field("comune", "survey-satisfied"),
        Some("–"),
        s,
    );

    // A caller who stays on the line: nobody can answer, so it waits in `comune`.
    let to = format!("sip:100@{}", server.sip);
    let mut caller = ok(Ua::spawn(
        "wallboard-caller",
        &[
            "--role",
            "caller",
            "--to",
            &to,
            "--calls",
            "1",
            "--timeout",
            "90",
        ],
    ));
    ok(caller.wait_for(event("confirmed"), STEP));
    browser.wait(
        "the caller appears without a reload",
        &field("comune", "waiting"),
        Some("1"),
        s,
    );
    browser.wait(
        "the caller is listed first in line",
        r#"[data-queue="comune"] [data-field="callers"] tr [data-field="position"]"#,
        Some("1"),
        s,
    );
    // The longest wait ticks on the page between updates, without an event.
    let longest = browser.text(&field("comune", "longest-wait"));
    assert!(longest.starts_with("0:"), "a wait of seconds: {longest}");
    browser.wait_change(
        "the longest wait ticks",
        &field("comune", "longest-wait"),
        &longest,
        &server,
    );
    let state = browser.state();
    assert_eq!(
        state["loads"], 1,
        "the page was loaded once, updates came live: {state}"
    );

    let artifacts = peers::target_dir().join("test-artifacts");
    fs::create_dir_all(&artifacts).expect("target/test-artifacts");
    let screenshot = artifacts.join("wallboard.png");
    let _ = fs::remove_file(&screenshot);
    browser.screenshot(&screenshot);
    let png = fs::read(&screenshot).expect("the screenshot is written");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    progress(&format!("screenshot: {}", screenshot.display()));

    // The caller gives up: the page goes back to 0 waiting and counts the abandon.
    ok(caller.send("hangup"));
    ok(caller.wait_for(event("disconnected"), STEP));
    browser.wait(
        "the abandoned caller leaves the queue",
        &field("comune", "waiting"),
        Some("0"),
        s,
    );
    browser.wait(
        "the abandon is counted",
        &field("comune", "abandoned"),
        Some("1"),
        s,
    );
    browser.wait(
        "1 abandoned of 1 is over the 3 % target",
        r#"[data-queue="comune"] .abandon[data-over="true"] [data-field="abandon-rate"]"#,
        Some("100.0\u{a0}%"),
        s,
    );
    browser.wait(
        "the list of callers is empty",
        &field("comune", "callers-empty"),
        Some("Nobody is waiting."),
        s,
    );
    assert_eq!(browser.state()["loads"], 1, "still the first load");
    let _ = caller.shutdown(Duration::from_secs(10));
}

#[test]
fn a_refused_or_missing_token_is_said_on_the_page() {
    let server = Server::start(&config());
    let mut browser = Browser::start("refused");
    let s = Some(&server);

    browser.goto(&wallboard_url(&server, "not-the-right-token-000"));
    browser.wait(
        "a wrong token is refused",
        r#"[data-message="refused"]"#,
        None,
        s,
    );
    let message = browser.text(r#"[data-message="refused"]"#);
    assert!(
        message.contains("refused") && message.contains("401"),
        "the message says why: {message}"
    );
    browser.wait(
        "the indicator says so",
        r#"[data-connection="refused"]"#,
        None,
        s,
    );
    let state = browser.state();
    let console = state["console"].to_string();
    assert!(
        !console.contains("[websocket] opened"),
        "no stream is opened with a refused token: {console}"
    );

    browser.goto(&format!("http://{}/wallboard", server.http));
    browser.wait(
        "a missing token is asked for",
        r#"[data-message="no-token"]"#,
        None,
        s,
    );
    let message = browser.text(r#"[data-message="no-token"]"#);
    assert!(
        message.contains("?token="),
        "the message says how: {message}"
    );
}
