//! The load tools against the real server, at a small rate: `amico-load` (the engine in
//! `amico_bench::load`) plays the trunk and the agents, and the SIPp scenarios of
//! `bench/sipp/` (Debian `sip-tester`, SIPp 3.6) do the same with SIPp. Both must see
//! every call through. Figures are measured in benchmarks, never asserted here: these
//! tests check outcomes and that the report's counts add up.

#[path = "support/server.rs"]
mod server;

use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use amico_bench::load::{self, Dist, Options, Profile, Ramp, Report, Transport};
use server::Server;

/// The test configuration with the README's load flow: a queue without prompts (no
/// welcome, no announcements).
fn no_prompts(agents: usize) -> String {
    let config = server::without_welcome(&server::config(agents, ""));
    format!(
        "{config}announce_frequency = 0\nannounce_position = \"no\"\nannounce_holdtime = \"no\"\n\
         periodic_announce = []\nperiodic_announce_frequency = 0\n"
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// Runs the load engine to its end.
fn run_load(options: Options) -> Report {
    runtime()
        .block_on(load::run(options))
        .unwrap_or_else(|e| panic!("amico-load failed: {e:#}"))
}

fn options(server: &Server) -> Options {
    Options {
        target: server.sip,
        duration: Duration::from_secs(120),
        drain: Duration::from_secs(30),
        progress: false,
        ..Options::default()
    }
}

fn assert_adds_up(report: &Report) {
    assert_eq!(
        report.completed + report.abandoned + report.failed_total(),
        report.offered,
        "every call ends exactly once:\n{}",
        report.table()
    );
}

#[test]
fn amico_load_sees_every_call_through_a_queue_without_prompts() {
    let server = Server::start(&no_prompts(3));
    let report = run_load(Options {
        rate: 5.0,
        calls: Some(20),
        agents: 3,
        talk: Dist::Fixed(0.5),
        rtp: true,
        ..options(&server)
    });
    let table = report.table();
    assert_eq!(report.agents_registered, 3, "{table}");
    assert_eq!(report.offered, 20, "{table}");
    assert_eq!(report.completed, 20, "{table}\n{}", server.log_tail(40));
    assert_eq!(report.failed_total(), 0, "{table}");
    assert_adds_up(&report);
    // Both sides saw every call, and told them apart by the caller's From.
    assert_eq!(report.answered, 20, "{table}");
    assert_eq!(report.connected, 20, "{table}");
    assert_eq!(report.setup.count, 20, "{table}");
    assert_eq!(report.route.count, 20, "{table}");
    assert_eq!(report.uncorrelated, 0, "{table}");
    // RTP both ways: the ACD relayed the callers' audio to the agents and back.
    assert!(report.rtp.callers_sent > 0, "{table}");
    assert!(report.rtp.agents_received > 0, "{table}");
    assert!(report.rtp.callers_received > 0, "{table}");
    assert!(report.rtp.agents_jitter.count > 0, "{table}");
    let json = report.json();
    assert_eq!(json["completed"], 20);
    assert_eq!(json["route"]["count"], 20);
    // The server counted what the load counted, and the agents logged out at the end.
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |n| n == 20.0,
        Duration::from_secs(10),
    );
    server.wait_logged_in(0);
}

#[test]
fn amico_load_counts_callers_who_give_up() {
    // One agent talking 5 s and callers who wait 1 s: whoever arrives while the agent
    // talks gives up (the arrivals are fixed by the seed: six within about 1.5 s).
    let server = Server::start(&no_prompts(1));
    let report = run_load(Options {
        rate: 4.0,
        calls: Some(6),
        agents: 1,
        talk: Dist::Fixed(5.0),
        patience: Some(Dist::Fixed(1.0)),
        ..options(&server)
    });
    let table = report.table();
    assert_eq!(report.offered, 6, "{table}");
    assert!(report.completed >= 1, "{table}");
    assert!(report.abandoned >= 1, "{table}");
    assert_eq!(report.abandon_wait.count, report.abandoned, "{table}");
    assert_eq!(report.failed_total(), 0, "{table}");
    assert_adds_up(&report);
    server.wait_metric(
        "amico_queue_abandoned_total{queue=\"comune\"}",
        |n| n == report.abandoned as f64,
        Duration::from_secs(10),
    );
}

#[test]
fn callers_vote_in_the_survey_with_rfc_4733_keys_after_the_agent_hangs_up() {
    let config = format!("{}survey = true\nsurvey_timeout = 10\n", no_prompts(2));
    let server = Server::start(&config);
    let report = run_load(Options {
        rate: 4.0,
        calls: Some(6),
        agents: 2,
        talk: Dist::Fixed(0.3),
        survey_keys: vec!['2'],
        vote_after: Dist::Fixed(0.5),
        ..options(&server)
    });
    let table = report.table();
    assert_eq!(report.completed, 6, "{table}\n{}", server.log_tail(40));
    assert_eq!(report.votes, 6, "{table}");
    assert_adds_up(&report);
    // Amico heard every key as the vote "sufficient" (2), for the agents who took the calls.
    server.wait_metric(
        "amico_survey_votes_total{queue=\"comune\",vote=\"sufficient\"}",
        |n| n == 6.0,
        Duration::from_secs(10),
    );
    assert_eq!(
        server.metric("amico_survey_votes_total{queue=\"comune\",vote=\"none\"}"),
        0.0
    );
}

#[test]
fn a_step_ramp_runs_each_rate_with_its_own_registrations() {
    let server = Server::start(&no_prompts(3));
    let reports = runtime()
        .block_on(load::ramp(Options {
            ramp: Some(Ramp::parse("4:4:8").expect("a ramp")),
            calls: Some(8),
            agents: 3,
            talk: Dist::Fixed(0.2),
            ..options(&server)
        }))
        .unwrap_or_else(|e| panic!("amico-load failed: {e:#}"));
    let rates: Vec<f64> = reports.iter().map(|r| r.rate_asked).collect();
    assert_eq!(rates, [4.0, 8.0]);
    for report in &reports {
        assert_eq!(report.agents_registered, 3, "{}", report.table());
        assert_eq!(report.completed, 8, "{}", report.table());
        assert_adds_up(report);
    }
    assert_eq!(load::ramp_table(&reports).lines().count(), 4);
    server.wait_logged_in(0);
}

#[test]
fn an_hourly_profile_places_its_calls_and_ends_with_the_profile() {
    // A compressed day of three "hours" of 2 s: 6 calls/s, nobody, 12 calls/s.
    let server = Server::start(&no_prompts(4));
    let profile = Profile::parse("6,0,12", Duration::from_secs(2)).expect("a profile");
    let report = run_load(Options {
        profile: Some(profile),
        agents: 4,
        talk: Dist::Fixed(0.2),
        ..options(&server)
    });
    let table = report.table();
    assert_eq!(report.rate_asked, 6.0, "the profile's mean rate: {table}");
    // Poisson: 36 calls on average, and the run ends with the profile, not --duration.
    assert!((10..=70).contains(&report.offered), "{table}");
    assert!(report.arrival_seconds < 6.0, "{table}");
    assert_eq!(report.completed, report.offered, "{table}");
    assert_adds_up(&report);
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |n| n == report.offered as f64,
        Duration::from_secs(10),
    );
}

/// A throwaway certificate authority in `dir` and a leaf it signs for 127.0.0.1: the
/// CA's certificate, the leaf's and the leaf's key (PEM files).
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("the certificates' folder");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "amico-load test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().expect("a key"))
        .expect("the test CA");
    let key = rcgen::KeyPair::generate().expect("a key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("leaf parameters")
        .signed_by(&key, &ca)
        .expect("the leaf");
    let files = (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    );
    std::fs::write(&files.0, ca.pem()).expect("ca.pem");
    std::fs::write(&files.1, leaf.pem()).expect("leaf.pem");
    std::fs::write(&files.2, key.serialize_pem()).expect("leaf.key");
    files
}

#[test]
fn amico_load_calls_over_tcp_and_over_tls_with_the_certificate_checked() {
    let dir = scratch("tls");
    let (ca, certificate, key) = test_pki(&dir.join("pki"));
    let config = format!(
        "{}\n[sip.tls]\nlisten = \"127.0.0.1:0\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        no_prompts(3),
        certificate.display(),
        key.display()
    );
    let server = Server::start(&config);
    let tls = server.sip_tls.expect("the server listens for TLS");
    for (transport, target, tls_ca) in [
        (Transport::Tcp, server.sip_tcp, None),
        (Transport::Tls, tls, Some(ca.clone())),
    ] {
        // Every message of the run goes over the one transport: the agents register on
        // their connections and are called back on them.
        let report = run_load(Options {
            transport,
            target,
            tls_ca,
            rate: 5.0,
            calls: Some(10),
            agents: 3,
            talk: Dist::Fixed(0.3),
            rtp: true,
            ..options(&server)
        });
        let table = report.table();
        assert_eq!(report.transport, transport.name(), "{table}");
        assert_eq!(report.agents_registered, 3, "{table}");
        assert_eq!(report.completed, 10, "{table}\n{}", server.log_tail(40));
        assert_eq!(report.route.count, 10, "{table}");
        assert_eq!(report.uncorrelated, 0, "{table}");
        assert_eq!(report.connections_lost, 0, "{table}");
        assert!(report.rtp.agents_received > 0, "{table}");
        assert_adds_up(&report);
        server.wait_logged_in(0);
    }
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |n| n == 20.0,
        Duration::from_secs(10),
    );

    // A CA that did not sign the server's certificate: no handshake, and the run says so
    // before any call.
    let (stranger, _, _) = test_pki(&dir.join("other"));
    let error = runtime()
        .block_on(load::run(Options {
            transport: Transport::Tls,
            target: tls,
            tls_ca: Some(stranger),
            calls: Some(1),
            agents: 1,
            ..options(&server)
        }))
        .expect_err("a certificate from an unknown CA must not be trusted");
    assert!(format!("{error:#}").contains("TLS handshake"), "{error:#}");
}

// ---------------------------------------------------------------------------------------
// SIPp

/// `bench/sipp/NAME`.
fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench/sipp")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The installed `sipp`, or a message naming the Debian package.
fn sipp() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("sipp"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("`sipp` is not installed: run scripts/test, or apt-get install sip-tester")
        })
}

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    socket.local_addr().expect("local address").port()
}

/// A scratch folder for SIPp's files.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// SIPp started under `timeout`, in a process group of its own.
fn spawn_sipp(args: &[String], dir: &Path, within: Duration, log: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("{log}.out"))).expect("log file");
    let err = out.try_clone().expect("log file");
    Command::new("timeout")
        .arg("--kill-after=5")
        .arg(within.as_secs().max(1).to_string())
        .arg(sipp())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .expect("sipp starts")
}

/// Waits for `child` until `deadline`, killing its group past it; its status and output.
fn finish(
    mut child: Child,
    dir: &Path,
    log: &str,
    deadline: Instant,
) -> (Option<ExitStatus>, String) {
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            // Polling the exit with a deadline: std has no wait with a timeout.
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                kill_group(&mut child);
                break None;
            }
        }
    };
    let output = std::fs::read_to_string(dir.join(format!("{log}.out"))).unwrap_or_default();
    (status, output)
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// The cumulative value of a counter in SIPp's final statistics screen.
fn sipp_counter(screen: &str, name: &str) -> Option<u64> {
    screen
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with(name))
        .and_then(|line| line.rsplit('|').next())
        .and_then(|value| value.trim().parse().ok())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// Registers (or with `expires` 0 unregisters) SIPp agent `n` from `port`.
fn sipp_register(server: &Server, dir: &Path, n: usize, port: u16, expires: u32) {
    let log = format!("register-{n}-{expires}");
    let user = format!("agent{n}");
    let args = strings(&[
        &server.sip.to_string(),
        "-sf",
        &scenario("agent-register.xml"),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-s",
        &user,
        "-au",
        &user,
        "-ap",
        &format!("secret-{n}"),
        "-key",
        "expires",
        &expires.to_string(),
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
    ]);
    let within = Duration::from_secs(30);
    let child = spawn_sipp(&args, dir, within, &log);
    let (status, output) = finish(
        child,
        dir,
        &log,
        Instant::now() + within + Duration::from_secs(10),
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "SIPp agent{n} did not register (expires {expires}):\n{output}\n{}",
        server.log_tail(20)
    );
}

/// Two SIPp agents register, take the calls of a SIPp caller placing ten, and
/// unregister; `agent_extra` and `caller_extra` are each one's own arguments.
fn sipp_calls(
    agent_scenario: &str,
    agent_extra: &[&str],
    caller_scenario: &str,
    caller_extra: &[&str],
) {
    // The registrar's OPTIONS probes stay on: the agent scenarios answer them.
    let server = Server::start(&no_prompts(2));
    let dir = scratch(caller_scenario.trim_end_matches(".xml"));
    let ports = [free_udp_port(), free_udp_port()];
    for (i, port) in ports.iter().enumerate() {
        sipp_register(&server, &dir, i + 1, *port, 600);
    }
    server.wait_logged_in(2);
    let mut agents: Vec<Child> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let mut args = strings(&[
                &server.sip.to_string(),
                "-sf",
                &scenario(agent_scenario),
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-s",
                &format!("agent{}", i + 1),
                "-nostdin",
                "-deadcall_wait",
                "0",
            ]);
            args.extend(strings(agent_extra));
            spawn_sipp(
                &args,
                &dir,
                Duration::from_secs(120),
                &format!("agent-{}", i + 1),
            )
        })
        .collect();

    let mut args = strings(&[
        &server.sip.to_string(),
        "-sf",
        &scenario(caller_scenario),
        "-i",
        "127.0.0.1",
        "-p",
        &free_udp_port().to_string(),
        "-s",
        "100",
        "-r",
        "5",
        "-m",
        "10",
        "-l",
        "20",
        "-nostdin",
        "-timeout",
        "60s",
        "-timeout_error",
    ]);
    args.extend(strings(caller_extra));
    let within = Duration::from_secs(70);
    let caller = spawn_sipp(&args, &dir, within, "caller");
    let (status, output) = finish(
        caller,
        &dir,
        "caller",
        Instant::now() + within + Duration::from_secs(10),
    );
    for agent in &mut agents {
        kill_group(agent);
    }
    let agent_logs: String = (1..=2)
        .map(|n| std::fs::read_to_string(dir.join(format!("agent-{n}.out"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the SIPp caller ({caller_scenario}) failed:\n{output}\nagents:\n{agent_logs}\nserver:\n{}",
        server.log_tail(40)
    );
    assert_eq!(
        sipp_counter(&output, "Successful call"),
        Some(10),
        "{output}"
    );
    assert_eq!(sipp_counter(&output, "Failed call"), Some(0), "{output}");
    server.wait_metric(
        "amico_queue_answered_total{queue=\"comune\"}",
        |n| n == 10.0,
        Duration::from_secs(10),
    );
    for (i, port) in ports.iter().enumerate() {
        sipp_register(&server, &dir, i + 1, *port, 0);
    }
    server.wait_logged_in(0);
}

#[test]
fn sipp_agents_hang_up_and_the_sipp_caller_hears_the_bye() {
    sipp_calls("agent.xml", &["-d", "300"], "caller.xml", &[]);
}

#[test]
fn the_sipp_caller_hangs_up_and_the_sipp_agents_hear_the_bye() {
    sipp_calls(
        "agent-waits.xml",
        &[],
        "caller-hangs-up.xml",
        &["-d", "300"],
    );
}
