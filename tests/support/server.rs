//! Starts the real `amico` binary on ephemeral ports for end-to-end tests.
//!
//! Include with `#[path = "support/server.rs"] mod server;`. The server prints one JSON
//! line once every listener is bound; [`Server::start`] waits for it with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server, killed on drop.
pub(crate) struct Server {
    child: Child,
    /// SIP over UDP.
    pub(crate) sip: SocketAddr,
    /// SIP over TCP.
    pub(crate) sip_tcp: SocketAddr,
    /// SIP over TLS (RFC 3261 §26), when the configuration has `[sip.tls]`.
    pub(crate) sip_tls: Option<SocketAddr>,
    /// HTTP.
    pub(crate) http: SocketAddr,
    /// The UDP socket of browser agents' WebRTC media (`[rtp] webrtc_port`).
    pub(crate) webrtc: SocketAddr,
    /// Its stderr log.
    pub(crate) log: PathBuf,
    /// Its database (`sqlite:FILE` or `postgres://…`).
    pub(crate) database: String,
    /// Its configuration file.
    pub(crate) config: PathBuf,
}

/// A new SQLite database file for one server: `sqlite:PATH`.
pub(crate) fn fresh_database() -> String {
    static N: AtomicU16 = AtomicU16::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("amico-{}-{n}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    format!("sqlite:{}", path.display())
}

/// A range of RTP ports of its own for each server of this test process.
fn rtp_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 80;
    let base = 30_000 + n * 200;
    (base, base + 199)
}

/// A test configuration: one trunk trusted from 127.0.0.1 with DID `100` → queue
/// `comune`, agents `agent1`..`agentN` (password `secret-N`), `extra` appended to the
/// queue's table.
pub(crate) fn config(agents: usize, queue_extra: &str) -> String {
    let (min, max) = rtp_range();
    let mut text = format!(
        r#"skills = ["general"]

[sip]
listen = "127.0.0.1:0"

[http]
listen = "127.0.0.1:0"

[rtp]
address = "127.0.0.1"
port_min = {min}
port_max = {max}
timeout = 20

[[trunks]]
name = "pbx"
sources = ["127.0.0.1"]
dids = {{ "100" = "comune", "%2B390521000" = "comune" }}

[[queues]]
name = "comune"
skills = [{{ skill = "general", min_level = 1 }}]
{queue_extra}
"#
    );
    for i in 1..=agents {
        text.push_str(&format!(
            "\n[[agents]]\nname = \"agent{i}\"\nsip_password = \"secret-{i}\"\nskills = [{{ skill = \"general\", level = 5 }}]\n"
        ));
    }
    text
}

/// `config` with its queue's welcome off: for tests of call handling, where ~4 s of
/// welcome before each caller joins the queue only slows them (tests/experience.rs hears
/// it).
pub(crate) fn without_welcome(config: &str) -> String {
    format!("{config}\n[experience.comune]\nwelcome = false\n")
}

impl Server {
    /// Writes `config` to a file and starts `amico run --config` on it, with a new SQLite
    /// database of its own.
    pub(crate) fn start(config: &str) -> Server {
        Server::start_with_database(config, &fresh_database())
    }

    /// Starts `amico run --config` on `config` with the database `database`.
    pub(crate) fn start_with_database(config: &str, database: &str) -> Server {
        Server::try_start_with_database(config, database).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Server::start`], but a server that exits (a configuration it refuses, say)
    /// or stays silent is an error holding its log, not a panic.
    pub(crate) fn try_start(config: &str) -> Result<Server, String> {
        Server::try_start_with_database(config, &fresh_database())
    }

    /// Like [`Server::start_with_database`], returning the failure instead of panicking.
    pub(crate) fn try_start_with_database(config: &str, database: &str) -> Result<Server, String> {
        static N: AtomicU16 = AtomicU16::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("amico-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, config).expect("write config");
        let log = dir.join(format!("amico-{}-{n}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_amico"))
            .args(["run", "--config"])
            .arg(&path)
            .args(["--database", database])
            .env("AMICO_LOG", "debug,rsipstack=info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("amico starts");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let line = match received.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(why) => {
                let what = match why {
                    mpsc::RecvTimeoutError::Timeout => {
                        let _ = child.kill();
                        "did not report listening within 20 s".to_owned()
                    }
                    mpsc::RecvTimeoutError::Disconnected => match child.wait() {
                        Ok(status) => format!("exited ({status}) before listening"),
                        Err(e) => format!("closed its stdout before listening ({e})"),
                    },
                };
                let _ = child.wait();
                return Err(format!(
                    "amico {what}; configuration {}; log:\n{}",
                    path.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(ready["event"], "listening", "{line}");
        let addr = |key: &str| ready[key].as_str().expect(key).parse().expect("an address");
        let sip_tls = ready
            .get("sip_tls")
            .and_then(serde_json::Value::as_str)
            .map(|a| {
                a.parse()
                    .unwrap_or_else(|e| panic!("sip_tls {a:?} is not an address ({e}): {line}"))
            });
        Ok(Server {
            sip: addr("sip_udp"),
            sip_tcp: addr("sip_tcp"),
            sip_tls,
            http: addr("http"),
            webrtc: addr("webrtc"),
            child,
            log,
            database: database.to_owned(),
            config: path,
        })
    }

    /// `GET path` over HTTP/1.0; the body.
    pub(crate) fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(self.http).expect("http connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("http write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("http read");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// An HTTP request with an optional bearer token and JSON body; the status and the
    /// body (JSON, or `Value::String` when it is not JSON).
    pub(crate) fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let body = body.map(|b| b.to_string());
        self.raw_request(method, path, token, body.as_deref())
    }

    /// GETs `path` with `token` until it answers 200 with a body that satisfies `check`,
    /// failing with the last answer after `within`.
    pub(crate) fn wait_api(
        &self,
        path: &str,
        token: &str,
        check: impl Fn(&serde_json::Value) -> bool,
        within: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.api("GET", path, Some(token), None);
            if status == 200 && check(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path}: {status} {body}");
            // Polling a condition with a deadline: the ACD's snapshot and today's figures
            // are republished within 100 ms, with no push channel per view.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Like [`Server::api`] with the body sent as given (bad JSON, say).
    pub(crate) fn raw_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut stream = TcpStream::connect(self.http).expect("http connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        match body {
            Some(body) => request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => request.push_str("Content-Length: 0\r\n\r\n"),
        }
        stream.write_all(request.as_bytes()).expect("http write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("http read");
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
        // Chunked bodies: the JSON is between the chunk sizes.
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
        (status, value)
    }

    /// The value of one metric line (`name{labels}`), or 0 when absent.
    pub(crate) fn metric(&self, series: &str) -> f64 {
        let metrics = self.get("/metrics");
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    }

    /// Waits until `series` satisfies `want`, polling /metrics, failing after `within`.
    pub(crate) fn wait_metric(
        &self,
        series: &str,
        want: impl Fn(f64) -> bool,
        within: Duration,
    ) -> f64 {
        self.wait_metrics(&[series], |values| want(values[0]), within)[0]
    }

    /// Waits until `check` holds over the metrics (several series read together), failing
    /// with the last values after `within`.
    pub(crate) fn wait_metrics(
        &self,
        series: &[&str],
        check: impl Fn(&[f64]) -> bool,
        within: Duration,
    ) -> Vec<f64> {
        let deadline = Instant::now() + within;
        loop {
            let values: Vec<f64> = series.iter().map(|s| self.metric(s)).collect();
            if check(&values) {
                return values;
            }
            assert!(
                Instant::now() < deadline,
                "{series:?} = {values:?} after {within:?}\nlog tail:\n{}",
                self.log_tail(40)
            );
            // Polling with a deadline: the metrics have no push channel.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `count` agents are logged in (per `/health`), failing after 20 s.
    pub(crate) fn wait_logged_in(&self, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let health: serde_json::Value =
                serde_json::from_str(&self.get("/health")).expect("health JSON");
            if health["agents_logged_in"] == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{count} agents never logged in: {health}\n{}",
                self.log_tail(30)
            );
            // Polling a condition with a deadline: there is no push channel to wait on.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of the server's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the server process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Server {
    /// Sends the server a signal (`HUP`, `TERM`, ...).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Kills the server with SIGKILL (`kill -9`): no shutdown code runs.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The payload of an HTTP/1.1 chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
