//! Headless Chromium for the browser tests: the tools they need (node, npm, Debian's
//! Chromium), the locked npm packages installed into `target/browser`, and [`SipAgent`], a
//! JsSIP (or SIP.js) agent in a page (`tests/browser/sip-agent.mjs`) registered over SIP
//! over WebSocket and taking calls with WebRTC media.
//!
//! Include it with `#[path = "support/browser.rs"] mod browser;` next to
//! `#[path = "support/peers.rs"] mod peers;` (it finds the workspace through `peers`).
//! Only std and `serde_json`.
//!
//! - [`chromium`] is `/usr/bin/chromium` (or `AMICO_CHROMIUM`), or an error saying how to
//!   install it.
//! - [`packages`] installs `tests/browser/package-lock.json` (playwright-core, JsSIP,
//!   SIP.js, esbuild) into `target/browser` with `npm ci --ignore-scripts` and bundles JsSIP, which
//!   npm ships as CommonJS only, into `target/browser/jssip.js` with esbuild: once per lock
//!   file, under a file lock, so test processes running at once wait for each other.
//!   Nothing third-party is committed.
//! - [`SipAgent`] runs one browser agent and reads its JSON events, with deadlines.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::peers;

/// Where the browser comes from, unless `AMICO_CHROMIUM` names another.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// esbuild's arguments for the JsSIP bundle, run in `target/browser` (PEERS.md): an IIFE
/// that defines the global `JsSIP`.
const BUNDLE_JSSIP: &[&str] = &[
    "node_modules/jssip/lib/JsSIP.js",
    "--bundle",
    "--format=iife",
    "--global-name=JsSIP",
    "--outfile=jssip.js",
    "--log-level=warning",
];

/// Progress for the person waiting: straight to the process's stderr, past the test
/// harness's output capture (as tests/support/peers.rs does).
pub(crate) fn progress(message: &str) {
    let _ = writeln!(std::io::stderr(), "browser: {message}");
}

/// Debian's Chromium, or why it is not there.
pub(crate) fn chromium() -> Result<PathBuf, String> {
    let path = std::env::var_os("AMICO_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHROMIUM));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: the browser tests need Debian's Chromium \
             (apt-get install chromium; .ci/run installs it)",
            path.display()
        ))
    }
}

/// The npm packages of `tests/browser`, installed.
#[derive(Clone, Debug)]
pub(crate) struct Packages {
    /// `target/browser/node_modules`: playwright-core for the drivers, SIP.js for a page.
    pub(crate) node_modules: PathBuf,
    /// `target/browser/jssip.js`: JsSIP for a page.
    pub(crate) jssip: PathBuf,
}

/// The locked packages in `target/browser`, installed once per lock file and cached for
/// this process.
pub(crate) fn packages() -> Result<Packages, String> {
    static PACKAGES: OnceLock<Result<Packages, String>> = OnceLock::new();
    PACKAGES.get_or_init(install).clone()
}

fn tool_version(tool: &str) -> Result<String, String> {
    let output = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "`{tool} --version` cannot run ({e}): the browser tests need Node.js and npm \
                 (apt-get install nodejs npm)"
            )
        })?;
    if !output.status.success() {
        return Err(format!("`{tool} --version` failed ({})", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn install() -> Result<Packages, String> {
    let node = tool_version("node")?;
    let npm = tool_version("npm")?;
    let source = peers::workspace_root().join("tests/browser");
    let lock_text = read(&source.join("package-lock.json"))?;
    let manifest = read(&source.join("package.json"))?;
    // What is installed is the lock file and how JsSIP was bundled.
    let stamp_text = format!("{lock_text}\n// esbuild {}\n", BUNDLE_JSSIP.join(" "));
    let dir = peers::target_dir().join("browser");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let lock_path = peers::target_dir().join("browser.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    // The lock is released when `lock` is dropped, on every path out of here.
    let packages = Packages {
        node_modules: dir.join("node_modules"),
        jssip: dir.join("jssip.js"),
    };
    let stamp = dir.join("amico-package-lock.json");
    let installed = ["playwright-core", "jssip", "sip.js", "esbuild"]
        .iter()
        .all(|name| {
            packages
                .node_modules
                .join(name)
                .join("package.json")
                .is_file()
        })
        && packages.jssip.is_file();
    if installed && fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) {
        return Ok(packages);
    }
    let started = Instant::now();
    progress(&format!(
        "npm ci into {} (node {node}, npm {npm}; first run only)",
        dir.display()
    ));
    let _ = fs::remove_file(&stamp);
    let _ = fs::remove_file(&packages.jssip);
    write(&dir.join("package.json"), &manifest)?;
    write(&dir.join("package-lock.json"), &lock_text)?;
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir),
        &format!("npm ci in {}", dir.display()),
    )?;
    // npm's shim runs esbuild's binary from its platform package (@esbuild/linux-x64);
    // its install script, which only speeds that up, is not run.
    run(
        Command::new(dir.join("node_modules/.bin/esbuild"))
            .args(BUNDLE_JSSIP)
            .current_dir(&dir),
        "esbuild (bundling JsSIP)",
    )?;
    write(&stamp, &stamp_text)?;
    progress(&format!(
        "playwright-core, JsSIP, SIP.js and esbuild installed, JsSIP bundled in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(packages)
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// A predicate matching events whose `"event"` is `name`.
pub(crate) fn event(name: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == name
}

/// A predicate matching events named `name` about call `call` (the `"call"` field).
pub(crate) fn call_event(name: &str, call: u64) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == name && v["call"] == call
}

// ---------------------------------------------------------------------------------------
// A JsSIP agent in the browser

/// One `sip-agent.mjs` process: headless Chromium with a page whose JsSIP UA registers
/// over `--ws`. Its events and commands are those documented at the top of
/// `tests/browser/sip-agent.mjs`. The browser is closed on drop.
pub(crate) struct SipAgent {
    label: String,
    ws: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    seen: Vec<Value>,
    /// The driver's stderr: the page's console (JsSIP's debug log) and every WebSocket
    /// frame.
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl SipAgent {
    /// Starts a browser agent for `uri` (`sip:agent1@127.0.0.1`) with `password`, its
    /// WebSocket at `ws` (`ws://HTTP/sip`), `extra` flags of `sip-agent.mjs` after those,
    /// and waits for its page to run (the `ready` event). `label` names it in errors and in
    /// its log, `target/browser-logs/LABEL-PID.log`.
    pub(crate) fn start(
        label: &str,
        ws: &str,
        uri: &str,
        password: &str,
        extra: &[&str],
    ) -> Result<SipAgent, String> {
        let chromium = chromium()?;
        let packages = packages()?;
        let script = peers::workspace_root().join("tests/browser/sip-agent.mjs");
        let logs = peers::target_dir().join("browser-logs");
        let _ = fs::create_dir_all(&logs);
        let log = logs.join(format!("{label}-{}.log", std::process::id()));
        let stderr = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new("node")
            .arg(&script)
            .arg("--modules")
            .arg(&packages.node_modules)
            .arg("--jssip")
            .arg(&packages.jssip)
            .arg("--chromium")
            .arg(&chromium)
            .args(["--ws", ws, "--uri", uri, "--password", password])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("{label}: node {}: {e}", script.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines, events) = mpsc::channel();
        thread::Builder::new()
            .name(format!("{label}-stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| json!({ "event": "non_json_output", "line": line }));
                    if lines.send(value).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("{label}: stdout thread: {e}"))?;
        let stdin = child.stdin.take();
        let mut agent = SipAgent {
            label: label.to_owned(),
            ws: ws.to_owned(),
            child,
            stdin,
            events,
            seen: Vec::new(),
            log,
            status: None,
        };
        let ready = agent.wait_for(
            |v| v["event"] == "ready" || (v["event"] == "error" && v["kind"] != "page"),
            Duration::from_secs(45),
        );
        match ready {
            Ok(v) if v["event"] == "ready" => Ok(agent),
            Ok(v) => Err(agent.failure(&format!("the browser agent did not start: {v}"))),
            Err(e) => Err(e),
        }
    }

    /// The label given to [`SipAgent::start`].
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Where the driver's log (the page's console, every WebSocket frame) is written.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    /// Every event received so far, in order (takes in those already waiting).
    pub(crate) fn events(&mut self) -> &[Value] {
        while let Ok(value) = self.events.try_recv() {
            self.seen.push(value);
        }
        &self.seen
    }

    /// How many events received so far match `predicate`.
    pub(crate) fn count(&mut self, predicate: impl Fn(&Value) -> bool) -> usize {
        self.events().iter().filter(|v| predicate(v)).count()
    }

    /// The number of events received so far: a mark for [`SipAgent::wait_since`].
    pub(crate) fn mark(&mut self) -> usize {
        self.events().len()
    }

    /// The first event, among all received so far and those still to come, matching
    /// `predicate`, waiting at most `within`. On timeout, or when the process ends first,
    /// the error lists every event seen, says what they show, and quotes the log's tail.
    pub(crate) fn wait_for(
        &mut self,
        predicate: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value, String> {
        self.wait_since(0, predicate, within)
    }

    /// Like [`SipAgent::wait_for`], only among events from `mark` on.
    pub(crate) fn wait_since(
        &mut self,
        mark: usize,
        predicate: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        let mut checked = mark;
        loop {
            self.events();
            if let Some(found) = self
                .seen
                .get(checked..)
                .unwrap_or_default()
                .iter()
                .find(|v| predicate(v))
            {
                return Ok(found.clone());
            }
            checked = self.seen.len().max(mark);
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure(&format!("no matching event within {within:?}")));
            }
            match self.events.recv_timeout(deadline - now) {
                Ok(value) => self.seen.push(value),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.reap(Duration::from_secs(2));
                    return Err(self.failure(&format!(
                        "the driver ended ({status}) without a matching event"
                    )));
                }
            }
        }
    }

    /// Waits for the outcome of the registration that follows `mark`: `registered` or
    /// `registration_failed`. A WebSocket that Chromium could not open (JsSIP would only
    /// try again, a few seconds later) or no outcome within `within` is an error saying
    /// what the events show.
    pub(crate) fn wait_registration(
        &mut self,
        mark: usize,
        within: Duration,
    ) -> Result<Value, String> {
        let outcome = self.wait_since(
            mark,
            |v| {
                v["event"] == "registered"
                    || v["event"] == "registration_failed"
                    || v["event"] == "websocket_error"
            },
            within,
        )?;
        if outcome["event"] == "websocket_error" {
            return Err(self.failure(&format!("the WebSocket failed: {outcome}")));
        }
        Ok(outcome)
    }

    /// Like [`SipAgent::wait_registration`], with a failed registration an error too.
    pub(crate) fn wait_registered(
        &mut self,
        mark: usize,
        within: Duration,
    ) -> Result<Value, String> {
        let outcome = self.wait_registration(mark, within)?;
        if outcome["event"] == "registered" {
            Ok(outcome)
        } else {
            Err(self.failure(&format!("the registration failed: {outcome}")))
        }
    }

    /// Writes one command line to the driver (`quit`, `register`, `unregister`, `drop`,
    /// `reconnect`, `reload`, `answer [CALL]`, `reject [CODE] [CALL]`, `hangup [CALL]`,
    /// `hold [CALL]`, `unhold [CALL]`, `stats [CALL]`, `dtmf KEYS [CALL]`).
    pub(crate) fn send(&mut self, command: &str) -> Result<(), String> {
        let label = self.label.clone();
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{label}: stdin already closed"))?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{label}: send {command:?}: {e}"))
    }

    /// The `getStats()` of call `call`'s RTCPeerConnection now: the `stats` event that
    /// answers a `stats` command (see `sip-agent.mjs`), or the command's error.
    pub(crate) fn stats(&mut self, call: u64) -> Result<Value, String> {
        let mark = self.mark();
        self.send(&format!("stats {call}"))?;
        let answer = self.wait_since(
            mark,
            |v| {
                (v["event"] == "stats" && v["call"] == call)
                    || (v["event"] == "error" && v["kind"] == "command")
            },
            Duration::from_secs(10),
        )?;
        if answer["event"] == "error" {
            return Err(self.failure(&format!("stats {call}: {answer}")));
        }
        Ok(answer)
    }

    /// Asks for call `call`'s stats until they satisfy `predicate`, at most `within` (every
    /// 100 ms: getStats() is a snapshot, there is no event to wait for). The error quotes
    /// the last stats seen.
    pub(crate) fn wait_stats(
        &mut self,
        call: u64,
        predicate: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        loop {
            let stats = self.stats(call)?;
            if predicate(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "call {call}'s stats did not come to what was expected within \
                     {within:?}; the last: {stats}"
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes stdin (the driver closes the browser, and with it the WebSocket, with no
    /// un-REGISTER) and waits at most `within` for it to exit, killing it past that.
    pub(crate) fn shutdown(&mut self, within: Duration) -> Result<ExitStatus, String> {
        self.stdin = None;
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    self.events();
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(self.failure(&format!("still running after {within:?}; killed")));
                }
                Err(e) => return Err(self.failure(&format!("wait: {e}"))),
            }
        }
    }

    fn reap(&mut self, within: Duration) -> String {
        if let Some(status) = self.status {
            return status.to_string();
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                return status.to_string();
            }
            thread::sleep(Duration::from_millis(10));
        }
        "exit status not known yet".to_owned()
    }

    /// What the events say went wrong with the WebSocket and the registration, if
    /// anything: the first thing to read in a failure.
    pub(crate) fn diagnosis(&mut self) -> String {
        let ws = self.ws.clone();
        let events = self.events();
        let named =
            |name: &str| -> Vec<&Value> { events.iter().filter(|v| v["event"] == name).collect() };
        let connected = named("connected").len();
        if connected == 0 {
            return match named("websocket_error").last() {
                Some(error) => format!(
                    "the WebSocket {ws} never opened: {}. The server does not take SIP over \
                     WebSocket (RFC 7118: `ws://HTTP_ADDR/sip`, subprotocol `sip`) yet",
                    error["error"]
                ),
                None => format!(
                    "the WebSocket {ws} never opened (no error from Chromium: still connecting?)"
                ),
            };
        }
        let answered = |line: &Value| {
            line["direction"] == "received"
                && line["cseq"]
                    .as_str()
                    .is_some_and(|c| c.ends_with("REGISTER"))
        };
        let registers_sent = events
            .iter()
            .filter(|v| v["event"] == "sip" && v["direction"] == "sent")
            .filter(|v| {
                v["line"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("REGISTER "))
            })
            .count();
        let answers: Vec<&str> = events
            .iter()
            .filter(|v| v["event"] == "sip" && answered(v))
            .filter_map(|v| v["line"].as_str())
            .collect();
        let mut said = format!(
            "the WebSocket opened {connected} time(s); {registers_sent} REGISTER(s) sent, \
             answered {answers:?}"
        );
        if registers_sent > 0 && answers.is_empty() {
            said.push_str(": the server never answered REGISTER over the WebSocket");
        }
        if let Some(failed) = named("registration_failed").last() {
            said.push_str(&format!("; the last registration failed: {failed}"));
        }
        if answers.iter().any(|a| a.starts_with("SIP/2.0 2")) && named("registered").is_empty() {
            said.push_str(
                "; a 2xx came but JsSIP did not take it as registered (it wants its own \
                 Contact back in the 200)",
            );
        }
        said
    }

    /// An error message about this agent: `what`, the diagnosis, every event seen but the
    /// `sip` ones, and the tail of its log.
    pub(crate) fn failure(&mut self, what: &str) -> String {
        let diagnosis = self.diagnosis();
        let label = self.label.clone();
        let pid = self.child.id();
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        let events: Vec<String> = self
            .events()
            .iter()
            .filter(|v| v["event"] != "sip")
            .map(Value::to_string)
            .collect();
        format!(
            "browser agent {label} (pid {pid}): {what}\n--- what the events show: {diagnosis}\n\
             --- events but `sip` ({}):\n{}\n--- last lines of the driver's log ({}):\n{tail}\n---",
            events.len(),
            events.join("\n"),
            self.log.display()
        )
    }
}

impl Drop for SipAgent {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        // Closing stdin makes the driver close the browser and exit.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A page driven by a Playwright script of `tests/` (`tests/browser/wallboard.mjs`,
/// `tests/browser-desktop/desktop.mjs`): requests `{"id", "op", ...}` on its stdin, answers
/// `{"id", "ok", "value"}` or `{"id", "ok": false, "error", "page_text", "console"}` and
/// events on its stdout, its own log on stderr (kept in `target/browser-logs/`).
pub(crate) struct PageDriver {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: Receiver<Value>,
    next_id: u64,
    /// The driver's stderr.
    pub(crate) log: PathBuf,
}

impl PageDriver {
    /// Starts `node SCRIPT --modules … --chromium … EXTRA` (the script relative to the
    /// workspace) and waits for its `ready` event, which it returns with the driver.
    pub(crate) fn start(script: &str, label: &str, extra: &[&str]) -> (PageDriver, Value) {
        let chromium = chromium().unwrap_or_else(|e| panic!("{e}"));
        let modules = packages().unwrap_or_else(|e| panic!("{e}")).node_modules;
        let script = peers::workspace_root().join(script);
        let logs = peers::target_dir().join("browser-logs");
        let _ = fs::create_dir_all(&logs);
        let log = logs.join(format!("{label}-{}.log", std::process::id()));
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut child = Command::new("node")
            .arg(&script)
            .arg("--modules")
            .arg(&modules)
            .arg("--chromium")
            .arg(&chromium)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("node {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines, answers) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({ "event": "non_json_output", "line": line }));
                if lines.send(value).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut driver = PageDriver {
            child,
            stdin,
            answers,
            next_id: 0,
            log,
        };
        let ready = driver.receive(Instant::now() + Duration::from_secs(45), |v| {
            v["event"] == "ready" || v["event"] == "error"
        });
        match ready {
            Ok(v) if v["event"] == "ready" => (driver, v),
            Ok(v) => panic!(
                "the browser did not start: {}\n{}",
                v["error"],
                driver.stderr()
            ),
            Err(e) => panic!("the browser did not start: {e}\n{}", driver.stderr()),
        }
    }

    /// Sends one request and waits for its answer, a little past its own deadline
    /// (`timeout_ms`, 15 s by default): its value, or the driver's account of the failure.
    pub(crate) fn request(&mut self, op: &str, mut args: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let timeout_ms = args["timeout_ms"].as_u64().unwrap_or(15_000);
        args["id"] = json!(id);
        args["op"] = json!(op);
        let stdin = self.stdin.as_mut().expect("the driver's stdin is open");
        writeln!(stdin, "{args}")
            .and_then(|()| stdin.flush())
            .map_err(|e| json!({ "error": format!("write to the driver: {e}") }))?;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms) + Duration::from_secs(10);
        let answer = self
            .receive(deadline, |v| v["id"] == id)
            .map_err(|e| json!({ "error": e }))?;
        if answer["ok"] == true {
            Ok(answer["value"].clone())
        } else {
            Err(answer)
        }
    }

    /// The next line from the driver that `want` takes, before `deadline`; others are shown
    /// as progress.
    pub(crate) fn receive(
        &mut self,
        deadline: Instant,
        want: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(value) if want(&value) => return Ok(value),
                Ok(other) => progress(&format!("the driver said: {other}")),
                Err(RecvTimeoutError::Timeout) => {
                    return Err("no answer from the driver in time".into());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the driver exited ({:?})",
                        self.child.try_wait().ok().flatten()
                    ));
                }
            }
        }
    }

    /// What the driver wrote to its stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PageDriver {
    fn drop(&mut self) {
        // Closing stdin makes the driver close the browser and exit.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
