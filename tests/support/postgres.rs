//! A PostgreSQL server for tests.
//!
//! Each test starts a private cluster of its own from the Debian `postgresql` package's binaries (`/usr/lib/postgresql/*/bin`): `initdb` into a
//! scratch folder, `postgres` on a free loopback port, stopped when dropped. As root, the
//! cluster runs as the `postgres` user (PostgreSQL refuses to run as root).
//!
//! Include with `#[path = "support/postgres.rs"] mod postgres;`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL database for one test.
pub(crate) struct Postgres {
    /// `postgres://…` of an empty database.
    pub(crate) url: String,
    server: Option<Child>,
    dir: Option<PathBuf>,
}

fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| missing())?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(missing)
}

fn missing() -> String {
    "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)".to_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `program args` as the `postgres` user when we are root.
fn command(bin: &Path, program: &str, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

impl Postgres {
    /// A private cluster with an empty database `amico`. `name` labels the scratch
    /// folder.
    pub(crate) fn start(name: &str) -> Result<Postgres, String> {
        let bin = bin_dir()?;
        let root = is_root();
        let dir = std::env::temp_dir().join(format!("amico-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err("chown of the scratch cluster to postgres failed".into());
            }
        }
        let data = dir.join("data");
        let out = command(&bin, "initdb", root)
            .args([
                "-A",
                "trust",
                "-U",
                "amico",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let log = std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?;
        let server = command(&bin, "postgres", root)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(&dir)
            .args(["-c", "fsync=on"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        let mut postgres = Postgres {
            url: format!("postgres://amico@127.0.0.1:{port}/postgres"),
            server: Some(server),
            dir: Some(dir.clone()),
        };
        // Ready when pg_isready says so; a deadline, never a blind sleep.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "amico"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if let Some(status) = postgres.server.as_mut().and_then(|s| s.try_wait().ok()?) {
                let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                return Err(format!("postgres exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                return Err("postgres was not ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // A database of its own for the test.
        let out = Command::new(bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "amico",
                "amico",
            ])
            .output()
            .map_err(|e| format!("createdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "createdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        postgres.url = format!("postgres://amico@127.0.0.1:{port}/amico");
        Ok(postgres)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // SIGTERM through kill(1): a smart shutdown; as root the child is runuser,
            // which passes the signal on.
            let _ = Command::new("kill")
                .args(["-TERM", &server.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
