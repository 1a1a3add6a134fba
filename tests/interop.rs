//! Third-party SIP software as it ships, against the real server: baresip 1.0 (Debian
//! `baresip-core`) and SIPp 3.6 (Debian `sip-tester`) must register as agents with the
//! default configuration; sipvicious 0.3.8 (PyPI), the scanner most attacks on SIP
//! servers start with, must learn nothing: `svwar` no agent's name, `svcrack` no password.
//!
//! `scripts/test` installs baresip and SIPp; sipvicious comes with
//! `tests/peers/requirements.txt` into `target/peers-venv`. Every peer runs as a process
//! bounded in time (coreutils `timeout`, and a deadline here that kills its process
//! group), on 127.0.0.1 only. The SIPp scenario is `tests/peers/sipp/register.xml`.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/server.rs"]
mod server;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use peers::{Ua, event};
use serde_json::Value;
use server::Server;

const STEP: Duration = Duration::from_secs(15);

fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// The test configuration with its trunk trusted only from 10.0.0.0/8: requests from
/// 127.0.0.1 come from a stranger, as an attacker's would from the internet.
fn stranger_config(agents: usize) -> String {
    let config = server::config(agents, "");
    let trusted = "sources = [\"127.0.0.1\"]";
    assert!(
        config.contains(trusted),
        "the test trunk's sources moved:\n{config}"
    );
    config.replace(trusted, "sources = [\"10.0.0.0/8\"]")
}

/// A UDP port free on 127.0.0.1 a moment ago, for a peer that wants one on its command line.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    socket.local_addr().expect("local address").port()
}

/// A TCP port free on 127.0.0.1 a moment ago.
fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
    listener.local_addr().expect("local address").port()
}

/// An installed program's path, or an error saying which Debian package brings it.
fn program(name: &str, package: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!("`{name}` is not installed: run scripts/test, or apt-get install {package}")
        })
}

/// A console script of the peers' virtualenv (`sipvicious_svwar`, ...).
fn venv_program(name: &str) -> PathBuf {
    let python = ok(peers::python());
    let path = python.with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: tests/peers/requirements.txt should install it",
        path.display()
    );
    path
}

/// The total of every series of `name` in /metrics (with or without labels), if any.
fn metric_total(server: &Server, name: &str) -> Option<f64> {
    let metrics = server.get("/metrics");
    let values: Vec<f64> = metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if let Some(labelled) = rest.strip_prefix('{') {
                labelled.split_once('}')?.1
            } else {
                rest
            };
            value.trim().parse::<f64>().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

// ---------------------------------------------------------------------------------------
// A peer run to its end, bounded in time

/// What a peer run to its end printed.
struct Finished {
    /// `None` when it had to be killed at the deadline.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Finished {
    /// The exit status as text, with coreutils `timeout`'s 124 named.
    fn status(&self) -> String {
        match self.status {
            Some(status) if status.code() == Some(124) => "killed by `timeout`".to_owned(),
            Some(status) => status.to_string(),
            None => "killed at the test's deadline".to_owned(),
        }
    }

    /// Everything it printed, for an assertion message.
    fn transcript(&self, label: &str) -> String {
        format!(
            "{label}: {} after {:.1} s\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.status(),
            self.elapsed.as_secs_f64(),
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `program args` under `timeout --kill-after=5 SECONDS`, in a process group of its
/// own which is killed outright ten seconds past that if it still runs; collects its
/// output.
fn run_bounded(program: &Path, args: &[String], dir: &Path, within: Duration) -> Finished {
    let started = Instant::now();
    let mut child = Command::new("timeout")
        .arg("--kill-after=5")
        .arg(within.as_secs().max(1).to_string())
        .arg(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let collect = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("piped")));
    let stderr = collect(Box::new(child.stderr.take().expect("piped")));
    let deadline = started + within + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            // Polling the exit with a deadline: std has no wait with a timeout.
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                // `timeout` itself is stuck: the whole group goes, before it is reaped.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                break None;
            }
        }
    };
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------
// baresip, driven through its ctrl_tcp module

/// One running baresip, killed on drop. Its events and command responses arrive as
/// netstring JSON over `ctrl_tcp`; its console output goes to `log`.
struct Baresip {
    child: Child,
    control: TcpStream,
    events: Receiver<Value>,
    seen: Vec<Value>,
    log: PathBuf,
}

impl Baresip {
    /// Starts baresip in `dir` with no account, playing `source_wav` into its calls, and
    /// connects to its control port.
    fn start(dir: &Path, source_wav: &Path) -> Result<Baresip, String> {
        let baresip = program("baresip", "baresip-core")?;
        let control_port = free_tcp_port();
        // `net_interface 127.0.0.1`, or its SDP carries another interface's address
        // (shared PEERS.md). No sound card: the player is a bridge to nowhere.
        let config = format!(
            "poll_method\tepoll\n\
             sip_listen\t127.0.0.1:0\n\
             net_interface\t127.0.0.1\n\
             audio_player\taubridge,nowhere\n\
             audio_alert\taubridge,nowhere\n\
             audio_source\taufile,{}\n\
             module_path\t/usr/lib/baresip/modules\n\
             module\tg711.so\n\
             module\taubridge.so\n\
             module\taufile.so\n\
             module_app\taccount.so\n\
             module_app\tmenu.so\n\
             module_app\tctrl_tcp.so\n\
             ctrl_tcp_listen\t127.0.0.1:{control_port}\n",
            source_wav.display()
        );
        fs::write(dir.join("config"), config).map_err(|e| format!("baresip config: {e}"))?;
        // The account comes later, with `uanew`, so that its registration events cannot
        // come before the control connection.
        fs::write(dir.join("accounts"), "").map_err(|e| format!("baresip accounts: {e}"))?;
        let log = dir.join("baresip.log");
        let output = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let errors = output.try_clone().map_err(|e| format!("log: {e}"))?;
        // stdbuf: its console lines reach the log as they happen, even when it is killed.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "-eL"])
            .arg(&baresip)
            .arg("-f")
            .arg(dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", baresip.display()))?;

        let deadline = Instant::now() + Duration::from_secs(10);
        let control = loop {
            match TcpStream::connect(("127.0.0.1", control_port)) {
                Ok(stream) => break stream,
                Err(error) => {
                    let exited = child.try_wait().ok().flatten();
                    if exited.is_some() || Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!(
                            "baresip's ctrl_tcp never listened on 127.0.0.1:{control_port} \
                             ({error}; exit: {exited:?}); its log:\n{}",
                            fs::read_to_string(&log).unwrap_or_default()
                        ));
                    }
                    // Retrying a connection until the deadline: baresip is still starting.
                    thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let reader = control.try_clone().map_err(|e| format!("ctrl_tcp: {e}"))?;
        let (sender, events) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            while let Some(message) = read_netstring(&mut reader) {
                let value = serde_json::from_slice(&message).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&message).into_owned())
                });
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        Ok(Baresip {
            child,
            control,
            events,
            seen: Vec::new(),
            log,
        })
    }

    /// Sends one ctrl_tcp command (`{"command", "params", "token"}` in a netstring).
    fn command(&mut self, command: &str, params: &str) -> Result<(), String> {
        let message =
            serde_json::json!({"command": command, "params": params, "token": command}).to_string();
        write!(self.control, "{}:{message},", message.len())
            .and_then(|()| self.control.flush())
            .map_err(|e| self.failure(&format!("send {command}: {e}")))
    }

    /// The first event (or command response) matching `predicate`, among all received so
    /// far and those to come within `within`.
    fn wait_for(
        &mut self,
        predicate: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + within;
        let mut checked = 0;
        loop {
            if let Some(found) = self.seen[checked..].iter().find(|v| predicate(v)) {
                return Ok(found.clone());
            }
            checked = self.seen.len();
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure(&format!("no matching event within {within:?}")));
            }
            match self.events.recv_timeout(deadline - now) {
                Ok(value) => self.seen.push(value),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure("its control connection closed"));
                }
            }
        }
    }

    /// An error message: `what`, every event seen, and its console log.
    fn failure(&self, what: &str) -> String {
        let events: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        format!(
            "baresip (pid {}): {what}\n--- ctrl_tcp events:\n{}\n--- its log ({}):\n{}\n---",
            self.child.id(),
            events.join("\n"),
            self.log.display(),
            fs::read_to_string(&self.log).unwrap_or_default().trim_end()
        )
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One netstring (`LEN:BYTES,`), or `None` at the end of the stream.
fn read_netstring(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut length = Vec::new();
    reader.read_until(b':', &mut length).ok()?;
    let length: usize = std::str::from_utf8(length.strip_suffix(b":")?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut message = vec![0; length + 1];
    reader.read_exact(&mut message).ok()?;
    (message.pop() == Some(b',')).then_some(message)
}

/// A ctrl_tcp event of this `type`.
fn baresip_event(kind: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == true && v["type"] == kind
}

#[test]
fn baresip_registers_as_an_agent_with_the_default_configuration_and_answers_a_call() {
    // The default configuration: no digest setting at all.
    let server = Server::start(&server::config(1, ""));
    let dir = peers::scratch_dir("baresip");
    let tone = ok(peers::tone_wav(&dir.join("tone-440.wav"), 440.0, 30.0));
    let mut baresip = ok(Baresip::start(&dir, &tone));
    let account = format!(
        "<sip:agent1@{}>;auth_pass=secret-1;answermode=auto;regint=60",
        server.sip
    );
    ok(baresip.command("uanew", &account));

    // baresip 1.0 reads only the first WWW-Authenticate: when that one is SHA-256 it gives
    // up with "Function not implemented" (REGISTER_FAIL) and never registers.
    let outcome = ok(baresip.wait_for(
        |v| baresip_event("REGISTER_OK")(v) || baresip_event("REGISTER_FAIL")(v),
        STEP,
    ));
    assert_eq!(
        outcome["type"],
        "REGISTER_OK",
        "{}",
        baresip.failure(&format!(
            "baresip did not register: {} {}",
            outcome["type"], outcome["param"]
        ))
    );
    server.wait_logged_in(1);

    // A trunk call reaches it (after whatever the queue plays first); it answers at once
    // and its tone reaches the caller through the bridge.
    let to = format!("sip:100@{}", server.sip);
    let mut caller = ok(Ua::spawn(
        "baresip-caller",
        &[
            "--role",
            "caller",
            "--to",
            &to,
            "--hangup-after",
            "60",
            "--calls",
            "1",
            "--tone-hz",
            "440",
            "--timeout",
            "90",
        ],
    ));
    ok(baresip.wait_for(baresip_event("CALL_ESTABLISHED"), Duration::from_secs(30)));
    // baresip hears the bridge: RTP from the server has reached it.
    ok(baresip.wait_for(baresip_event("CALL_RTPESTAB"), STEP));
    // Two seconds of bridged audio to analyse: a sample's length, not a wait for an event.
    thread::sleep(Duration::from_secs(2));
    ok(caller.send("hangup"));
    let audio = ok(caller.wait_for(event("audio"), STEP));
    assert_eq!(
        audio["verdict"],
        "present",
        "the caller did not hear baresip's 440 Hz tone: {audio}\n{}",
        baresip.failure("after the call")
    );
    ok(baresip.wait_for(baresip_event("CALL_CLOSED"), STEP));
}

// ---------------------------------------------------------------------------------------
// SIPp

#[test]
fn sipp_registers_and_unregisters_with_the_default_configuration() {
    let sipp = ok(program("sipp", "sip-tester"));
    let server = Server::start(&server::config(1, ""));
    let dir = peers::scratch_dir("sipp");
    let scenario = peers::peers_dir().join("sipp/register.xml");
    let args: Vec<String> = [
        "-sf",
        &scenario.to_string_lossy(),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-p",
        &free_udp_port().to_string(),
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        &server.sip.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let run = run_bounded(&sipp, &args, &dir, Duration::from_secs(30));
    // SIPp 3.6 merges several WWW-Authenticate headers and reads the first `algorithm=`:
    // with SHA-256 first it stops with "authentication must use MD5 or AKAv1-MD5".
    let complaint = run
        .stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty());
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(0),
        "SIPp did not register and unregister agent1 (it said {complaint:?}):\n{}",
        run.transcript("sipp")
    );
    let successful = sipp_counter(&run.stdout, "Successful call");
    assert_eq!(
        successful,
        Some(1),
        "SIPp's statistics do not show its one call successful:\n{}",
        run.transcript("sipp")
    );
    let answers = sipp_received(&run.stdout, "200");
    assert_eq!(
        answers,
        [1, 1],
        "SIPp's statistics do not show the two 200s (register, unregister):\n{}",
        run.transcript("sipp")
    );
}

/// The cumulative value of a counter in SIPp's final statistics screen
/// (`  Successful call        |        0                  |        1`).
fn sipp_counter(screen: &str, name: &str) -> Option<u64> {
    screen
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with(name))
        .and_then(|line| line.rsplit('|').next())
        .and_then(|value| value.trim().parse().ok())
}

/// The `Messages` column of each `CODE <----------` line of SIPp's final message screen.
fn sipp_received(screen: &str, code: &str) -> Vec<u64> {
    let end = screen
        .rfind("Test Terminated")
        .map_or(screen, |at| &screen[..at]);
    let start = end.rfind("Messages").map_or(end, |at| &end[at..]);
    start
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix(code))
        .filter_map(|rest| rest.trim_start().strip_prefix("<"))
        .filter_map(|rest| rest.trim_start_matches('-').split_whitespace().next())
        .filter_map(|count| count.parse().ok())
        .collect()
}

// ---------------------------------------------------------------------------------------
// sipvicious

/// The agents of the scan tests' configuration, and names nobody has. The agents come
/// first: svwar stops at the first answer it cannot classify, and an agent's answer must
/// be compared with a stranger's before that.
const SCANNED: [&str; 6] = ["agent1", "agent2", "nobody", "agent3", "admin", "operator"];

/// Runs `svwar -m METHOD --force` from 127.0.0.1 (a stranger) over [`SCANNED`], and
/// asserts that it reports none of them.
fn svwar_learns_nothing(method: &str) {
    let svwar = venv_program("sipvicious_svwar");
    let server = Server::start(&stranger_config(2));
    let dir = peers::scratch_dir(&format!("svwar-{method}"));
    let dictionary = dir.join("names.txt");
    fs::write(&dictionary, SCANNED.join("\n") + "\n").expect("write the dictionary");
    let args: Vec<String> = [
        "-m",
        method,
        "-d",
        &dictionary.to_string_lossy(),
        "--force",
        "-v",
        "-b",
        "127.0.0.1",
        "-P",
        &free_udp_port().to_string(),
        "-p",
        &server.sip.port().to_string(),
        "--maximumtime",
        "5",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let run = run_bounded(&svwar, &args, &dir, Duration::from_secs(40));
    let transcript = run.transcript(&format!("svwar -m {method}"));

    assert!(
        !run.stderr.contains("Got unhandled exception"),
        "svwar crashed:\n{transcript}"
    );
    // Not a vacuous pass: the server answered svwar's first probe.
    assert!(
        run.stderr.contains("Ok SIP device found"),
        "svwar got no answer to its first probe:\n{transcript}\nserver log:\n{}",
        server.log_tail(20)
    );
    let found = svwar_report(&run);
    assert!(
        found.is_empty(),
        "svwar -m {method} told {found:?} apart from a random name: what an unknown user \
         gets must be exactly what an agent gets\n{transcript}"
    );
}

/// The names svwar reports: the rows of its result table (`| agent1 | reqauth |`) and its
/// "extension 'X' exists" / "probably exists" log lines.
fn svwar_report(run: &Finished) -> BTreeSet<String> {
    let rows = run.stdout.lines().filter_map(|line| {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        match cells.as_slice() {
            ["", name, _, ""] if !name.is_empty() && *name != "Extension" => {
                Some((*name).to_owned())
            }
            _ => None,
        }
    });
    let logged = run.stderr.lines().filter_map(|line| {
        let (_, rest) = line.split_once("extension '")?;
        let (name, verdict) = rest.split_once('\'')?;
        verdict.contains("exists").then(|| name.to_owned())
    });
    rows.chain(logged).collect()
}

#[test]
fn svwar_tells_no_agent_from_a_stranger_by_register() {
    svwar_learns_nothing("REGISTER");
}

#[test]
fn svwar_tells_no_agent_from_a_stranger_by_invite() {
    svwar_learns_nothing("INVITE");
}

#[test]
fn svwar_tells_no_agent_from_a_stranger_by_options() {
    svwar_learns_nothing("OPTIONS");
}

#[test]
fn svcrack_is_banned_before_it_reaches_the_password() {
    let svcrack = venv_program("sipvicious_svcrack");
    let server = Server::start(&stranger_config(1));
    let dir = peers::scratch_dir("svcrack");
    // 100 wrong passwords, then the right one: a ban after at most 20 failures from one
    // source stops svcrack long before it gets there.
    let dictionary = dir.join("passwords.txt");
    let mut words: Vec<String> = (1..=100).map(|n| format!("wrong-{n}")).collect();
    words.push("secret-1".to_owned());
    fs::write(&dictionary, words.join("\n") + "\n").expect("write the dictionary");
    let args: Vec<String> = [
        "-u",
        "agent1",
        "-d",
        &dictionary.to_string_lossy(),
        "-vvv",
        // 50 ms between its own unanswered retries (not between answered tries).
        "-t",
        "0.05",
        "-b",
        "127.0.0.1",
        "-P",
        &free_udp_port().to_string(),
        "-p",
        &server.sip.port().to_string(),
        // Once banned it hears nothing: it gives up 3 s later, and its last read times
        // out 10 s after that.
        "--maximumtime",
        "3",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let run = run_bounded(&svcrack, &args, &dir, Duration::from_secs(60));
    let tried = run
        .stderr
        .lines()
        .filter(|line| line.contains("DEBUG:ASipOfRedWine:trying "))
        .count();
    let transcript = run.transcript(&format!("svcrack (tried {tried} passwords)"));

    // svcrack 0.3.8 answers the first challenge only, and crashes when it is SHA-256.
    let mut crash: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|line| {
            line.contains("Unknown algorithm")
                || line.contains("Got unhandled exception")
                || line.starts_with("UnboundLocalError")
        })
        .collect();
    crash.sort_unstable();
    crash.dedup();
    assert!(
        crash.is_empty(),
        "svcrack crashed on the server's challenge: {crash:?}\n{transcript}"
    );
    let cracked: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|line| {
            line.contains("The password for")
                || (line.starts_with('|') && line.contains("secret-1"))
        })
        .collect();
    assert!(
        cracked.is_empty(),
        "svcrack found agent1's password after {tried} tries: {cracked:?}\n{transcript}"
    );
    let failures = metric_total(&server, "amico_sip_auth_failures_total");
    eprintln!(
        "svcrack tried {tried} passwords and stopped ({}) after {:.1} s; \
         amico_sip_auth_failures_total {failures:?}",
        run.status(),
        run.elapsed.as_secs_f64()
    );
    assert!(
        failures.is_some_and(|n| n > 0.0),
        "/metrics counts no authentication failure (amico_sip_auth_failures_total: \
         {failures:?}) after svcrack tried {tried} passwords\n{transcript}"
    );
}
