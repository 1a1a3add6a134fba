//! Drives third-party SIP user agents from integration tests: PJSIP's Python binding
//! running `tests/peers/ua.py`, one process per role, reporting JSON events.
//!
//! Include it with `#[path = "support/peers.rs"] mod peers;`. Only std and
//! `serde_json`.
//!
//! - [`python`] makes sure the virtualenv `<workspace>/target/peers-venv` holds
//!   `tests/peers/requirements.txt` (created on first use; safe across processes).
//! - [`Ua::spawn`] starts `ua.py` with the given flags; its stdout JSON lines are read
//!   on a thread, its stderr (PJSIP's log) is kept in a tail and teed to a log file
//!   under `target/peers-logs/`. The process is killed when the `Ua` is dropped.
//! - [`Ua::wait_for`] waits for an event with a deadline; on timeout the error holds
//!   every event seen and the tail of stderr. Never sleep and hope: wait for events.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Lines of the child's stderr kept in memory (the full log is in the log file).
const STDERR_KEEP: usize = 400;
/// Lines of stderr quoted in an error.
const STDERR_QUOTE: usize = 60;

/// The workspace root: the nearest ancestor of this package holding `tests/peers/ua.py`.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("tests/peers/ua.py").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(manifest)
}

/// `<workspace>/tests/peers`: `ua.py`, `audio.py`, `requirements.txt`.
pub(crate) fn peers_dir() -> PathBuf {
    workspace_root().join("tests/peers")
}

/// `<workspace>/target`.
pub(crate) fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// The virtualenv's folder: `AMICO_PEERS_VENV` if set, else `<workspace>/target/peers-venv`.
pub(crate) fn venv_dir() -> PathBuf {
    match std::env::var_os("AMICO_PEERS_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join("peers-venv"),
    }
}

/// A fresh, empty folder under `target/peers-tmp/` for WAVs and recordings of one test.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = target_dir()
        .join("peers-tmp")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// The virtualenv's Python, creating the virtualenv first if needed.
///
/// Creation (`python3 -m venv` + `pip install -r requirements.txt`, progress on
/// stderr) happens once per machine and whenever `requirements.txt` changes. It holds
/// an exclusive lock on `target/peers-venv.lock`, so test processes running at once
/// wait for each other instead of racing. The result is cached for this process.
pub(crate) fn python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(ensure_venv).clone()
}

fn ensure_venv() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let requirements_path = peers_dir().join("requirements.txt");
    let requirements = fs::read_to_string(&requirements_path)
        .map_err(|e| format!("read {}: {e}", requirements_path.display()))?;
    let parent = venv
        .parent()
        .ok_or_else(|| format!("{} has no parent folder", venv.display()))?;
    fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    let lock_path = venv.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    // The lock is released when `lock` is dropped, on every path out of here.
    let python = venv.join("bin/python");
    let stamp = venv.join("amico-requirements.txt");
    if python.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(&requirements) {
        return Ok(python);
    }

    let started = Instant::now();
    progress(&format!(
        "creating the virtualenv {} (first run only; takes a few seconds)",
        venv.display()
    ));
    if venv.exists() {
        fs::remove_dir_all(&venv).map_err(|e| format!("remove {}: {e}", venv.display()))?;
    }
    let base_python = std::env::var("AMICO_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
    run_step(
        Command::new(&base_python).arg("-m").arg("venv").arg(&venv),
        &format!("{base_python} -m venv (on Debian: apt-get install python3-venv)"),
    )?;
    progress(&format!(
        "pip install -r {} ({:.1} s so far)",
        requirements_path.display(),
        started.elapsed().as_secs_f64()
    ));
    run_step(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--timeout", "60", "-q", "-r"])
            .arg(&requirements_path),
        "pip install",
    )?;
    run_step(
        Command::new(&python).args(["-c", "import pjsua2, sys; print(pjsua2.__file__)"]),
        "import pjsua2 in the virtualenv",
    )?;
    fs::write(&stamp, &requirements).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    progress(&format!(
        "virtualenv ready in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(python)
}

/// Progress for the person waiting: straight to the process's stderr, past the test
/// harness's output capture (which only catches `eprintln!`).
fn progress(message: &str) {
    let _ = writeln!(std::io::stderr(), "peers: {message}");
}

fn run_step(command: &mut Command, what: &str) -> Result<(), String> {
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

/// Writes a looping test tone (8 kHz mono 16-bit WAV) with `tests/peers/audio.py`.
pub(crate) fn tone_wav(path: &Path, hz: f64, seconds: f64) -> Result<PathBuf, String> {
    let python = python()?;
    run_step(
        Command::new(python)
            .arg(peers_dir().join("audio.py"))
            .arg("tone")
            .arg(path)
            .args(["--hz", &hz.to_string(), "--seconds", &seconds.to_string()]),
        &format!("audio.py tone {}", path.display()),
    )?;
    Ok(path.to_path_buf())
}

/// Runs `audio.py analyze` on a WAV and returns its JSON verdict (`"present"`, `"power"`, ...).
pub(crate) fn analyze_wav(path: &Path, hz: f64) -> Result<Value, String> {
    let python = python()?;
    let output = Command::new(python)
        .arg(peers_dir().join("audio.py"))
        .arg("analyze")
        .arg(path)
        .args(["--hz", &hz.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("audio.py analyze: {e}"))?;
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "audio.py analyze {}: not JSON ({e}): {}{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A predicate matching events whose `"event"` is `name`.
pub(crate) fn event(name: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == name
}

/// A predicate matching events named `name` about call `call` (the `"call"` field).
pub(crate) fn call_event(name: &str, call: u64) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == name && v["call"] == call
}

/// One running `ua.py` process.
pub(crate) struct Ua {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    seen: Vec<Value>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Ua {
    /// Starts `ua.py ARGS --stdin-control` in the virtualenv. `label` names the
    /// process in errors and its stderr log (`target/peers-logs/LABEL-PID.log`).
    ///
    /// With `--stdin-control`, [`Ua::send`] passes commands (`quit`, `hangup [i]`,
    /// `answer [i]`, `reject [i] [code]`, `dtmf DIGITS [i]`) and [`Ua::shutdown`]
    /// closes stdin, which makes `ua.py` hang up, report and exit.
    pub(crate) fn spawn(label: &str, args: &[&str]) -> Result<Ua, String> {
        let python = python()?;
        let script = peers_dir().join("ua.py");
        let mut child = Command::new(&python)
            .arg("-u")
            .arg(&script)
            .args(args)
            .arg("--stdin-control")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{label}: cannot start {}: {e}", script.display()))?;

        let log_dir = target_dir().join("peers-logs");
        let _ = fs::create_dir_all(&log_dir);
        let log_path = log_dir.join(format!("{label}-{}.log", child.id()));
        let mut log = File::create(&log_path).ok();
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "# ua.py {}", args.join(" "));
        }

        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name(format!("{label}-stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.trim().is_empty() {
                        continue;
                    }
                    let value = serde_json::from_str::<Value>(&line).unwrap_or_else(
                        |_| serde_json::json!({"event": "non_json_output", "line": line}),
                    );
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("{label}: stdout thread: {e}"))?;

        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_KEEP)));
        let tail_writer = Arc::clone(&tail);
        thread::Builder::new()
            .name(format!("{label}-stderr"))
            .spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if let Some(log) = log.as_mut() {
                        let _ = writeln!(log, "{line}");
                    }
                    let mut tail = tail_writer.lock().unwrap_or_else(|p| p.into_inner());
                    if tail.len() == STDERR_KEEP {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            })
            .map_err(|e| format!("{label}: stderr thread: {e}"))?;

        let stdin = child.stdin.take();
        Ok(Ua {
            label: label.to_string(),
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
            stderr_tail: tail,
            log_path,
            status: None,
        })
    }

    /// The label given to [`Ua::spawn`].
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the child's full stderr (PJSIP's log) is written.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
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

    /// The first event, among all received so far and those still to come, matching
    /// `predicate`, waiting at most `within`. On timeout, or if the process ends
    /// first, the error lists every event seen and the tail of stderr.
    pub(crate) fn wait_for(
        &mut self,
        predicate: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value, String> {
        self.wait_from(0, predicate, Instant::now() + within)
    }

    /// Like [`Ua::wait_for`] with an absolute deadline, to share one across waits.
    pub(crate) fn wait_until(
        &mut self,
        predicate: impl Fn(&Value) -> bool,
        deadline: Instant,
    ) -> Result<Value, String> {
        self.wait_from(0, predicate, deadline)
    }

    /// Like [`Ua::wait_for`], but only events received after this call starts count.
    pub(crate) fn wait_for_new(
        &mut self,
        predicate: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value, String> {
        let start = self.events().len();
        self.wait_from(start, predicate, Instant::now() + within)
    }

    /// Waits for the first event named `name` (see [`Ua::wait_for`]).
    pub(crate) fn wait_event(&mut self, name: &str, within: Duration) -> Result<Value, String> {
        self.wait_for(event(name), within)
    }

    /// Waits for the `ready` event and returns the SIP port it reports.
    pub(crate) fn ready_port(&mut self, within: Duration) -> Result<u16, String> {
        let ready = self.wait_event("ready", within)?;
        ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| self.failure(&format!("`ready` without a port: {ready}")))
    }

    fn wait_from(
        &mut self,
        start: usize,
        predicate: impl Fn(&Value) -> bool,
        deadline: Instant,
    ) -> Result<Value, String> {
        let mut checked = start;
        loop {
            while let Ok(value) = self.events.try_recv() {
                self.seen.push(value);
            }
            if let Some(found) = self.seen[checked..].iter().find(|v| predicate(v)) {
                return Ok(found.clone());
            }
            checked = self.seen.len();
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure("no matching event before the deadline"));
            }
            match self.events.recv_timeout(deadline - now) {
                Ok(value) => self.seen.push(value),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.seen[checked..].iter().any(&predicate) {
                        continue;
                    }
                    let status = self.reap(Duration::from_secs(2));
                    return Err(self.failure(&format!(
                        "the process ended ({status}) without a matching event"
                    )));
                }
            }
        }
    }

    /// Writes one command line to the process's stdin (see [`Ua::spawn`]).
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

    /// Waits at most `within` for the process to exit by itself (a caller whose
    /// calls are over); kills it past that and returns an error with its events.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    self.drain_events(Duration::from_secs(1));
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(self.failure(&format!("still running after {within:?}; killed")));
                }
                Err(e) => return Err(self.failure(&format!("wait: {e}"))),
            }
        }
    }

    /// Asks the process to stop (closes its stdin: it hangs up its calls, reports
    /// their audio, and exits) and waits at most `within`, killing it past that.
    pub(crate) fn shutdown(&mut self, within: Duration) -> Result<ExitStatus, String> {
        self.stdin = None;
        self.wait_exit(within)
    }

    /// Takes in the events still in the pipe after the process exited.
    fn drain_events(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            match self.events.recv_timeout(deadline - now) {
                Ok(value) => self.seen.push(value),
                Err(_) => return,
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
        "exit status not known yet".to_string()
    }

    /// An error message about this process: `what`, every event seen, stderr's tail.
    pub(crate) fn failure(&mut self, what: &str) -> String {
        let label = self.label.clone();
        let pid = self.child.id();
        let log = self.log_path.display().to_string();
        let events: Vec<String> = self.events().iter().map(Value::to_string).collect();
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        let skip = tail.len().saturating_sub(STDERR_QUOTE);
        let stderr: Vec<&str> = tail.iter().skip(skip).map(String::as_str).collect();
        format!(
            "ua {label} (pid {pid}): {what}\n--- events so far ({}):\n{}\n--- last {} lines of \
             stderr (full log: {log}):\n{}\n---",
            events.len(),
            events.join("\n"),
            stderr.len(),
            stderr.join("\n")
        )
    }
}

impl Drop for Ua {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
