//! `amico-load`: a SIP load generator that plays both sides of a contact centre against
//! any SIP ACD over UDP, TCP or TLS — the trunk that brings the callers and the agents' phones that
//! take them — and measures what the ACD does with the calls.
//!
//! The run: every agent registers (digest auth) on a socket of its own (over TCP or TLS,
//! a connection of its own, on which the ACD calls it back); then calls arrive
//! as a Poisson process at `rate` a second, until `calls` were placed or `duration` is
//! over; each caller is a task that places its call from the trunk socket and follows it
//! to its end; arrivals stop, the calls in progress get `drain` to end, the agents
//! unregister, and the [`Report`] says what happened.
//!
//! The two sides meet through a table of calls in progress: a caller's From names its
//! call (`sip:load-PID-N@…`), and the agent whose phone that call rings reads it back from
//! its INVITE, so the route latency (the trunk's INVITE sent → the agent's INVITE
//! received) is measured per call, and the caller learns when an agent answered (its
//! patience stops then).
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use amico_bench::load::{Options, run};
//! let options = Options::parse(["--rate", "5", "--calls", "20"].map(String::from))
//!     .map_err(anyhow::Error::msg)?;
//! let report = run(options).await?;
//! println!("{}", report.table());
//! # Ok(()) }
//! ```
//!
//! Loopback only unless `--allow-remote`; every loop is bounded in count and time.
//! Each side's SDPs point at one RTP socket of that side, which counts what the ACD sends
//! it; with `--rtp` both sides also send G.711 on every connected call (see `media`).
//! Without it no RTP is sent: keep talk times under the ACD's RTP timeout then (20–30 s
//! for Amico).

mod agent;
mod digest;
mod endpoint;
mod media;
mod message;
mod options;
mod report;
mod trunk;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use amico_core::simulator::random::Rng;
use anyhow::{Context, bail};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep_until};

pub use options::{Dist, Options, Profile, Ramp, Transport, USAGE};
pub use report::{Model, Report, Rtp, ServerUsage, Summary};

use endpoint::Endpoint;
use report::Recorder;

/// One call as both sides see it.
pub(crate) struct Track {
    /// When the trunk sent its INVITE.
    sent: OnceLock<Instant>,
    /// When the ACD answered the trunk.
    answered: OnceLock<Instant>,
    /// Whether an agent's INVITE for it was seen (the first measures the route).
    routed: AtomicBool,
    /// Whether an agent answered it (its 200 was ACKed), and when.
    connected: AtomicBool,
    connected_at: OnceLock<Instant>,
    /// Woken when `connected` turns true.
    connect: Notify,
    /// Whether the agent hung up (sent its BYE), and its wake-up.
    agent_left: AtomicBool,
    leave: Notify,
}

impl Track {
    fn new() -> Self {
        Track {
            sent: OnceLock::new(),
            answered: OnceLock::new(),
            routed: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            connected_at: OnceLock::new(),
            connect: Notify::new(),
            agent_left: AtomicBool::new(false),
            leave: Notify::new(),
        }
    }
}

/// What every task of a run shares.
pub(crate) struct Shared {
    options: Options,
    recorder: Mutex<Recorder>,
    /// Calls in progress by number (`load-PID-N`).
    calls: Mutex<HashMap<u64, Arc<Track>>>,
    /// The trunk side's RTP, in its SDP offers.
    trunk_media: Arc<media::Media>,
    /// The agents' RTP, in their SDP answers.
    agent_media: Arc<media::Media>,
}

impl Shared {
    fn fail(&self, reason: impl Into<String>) {
        self.recorder.lock().expect("recorder").fail(reason);
    }
}

/// Binds one side's RTP socket and starts its reader (and its sender with `--rtp`); the
/// tasks run until aborted.
async fn media(
    options: &Options,
    hz: f64,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Arc<media::Media>> {
    let media = media::Media::bind(options.local, hz)
        .await
        .with_context(|| format!("cannot bind an RTP socket on {}", options.local))?;
    tasks.push(tokio::spawn(media.clone().receive()));
    if options.rtp {
        tasks.push(tokio::spawn(media.clone().send()));
    }
    Ok(media)
}

/// Samples the server's process once a second while the run goes on.
struct ServerWatch {
    pid: u32,
    start: report::ProcSample,
    max_rss: f64,
}

impl ServerWatch {
    fn new(pid: Option<u32>) -> anyhow::Result<Option<ServerWatch>> {
        let Some(pid) = pid else { return Ok(None) };
        let start = report::sample(pid)
            .with_context(|| format!("--server-pid {pid}: cannot read /proc/{pid}"))?;
        Ok(Some(ServerWatch {
            pid,
            start,
            max_rss: start.rss_mib,
        }))
    }

    fn tick(&mut self) {
        if let Some(now) = report::sample(self.pid) {
            self.max_rss = self.max_rss.max(now.rss_mib);
        }
    }

    fn usage(&mut self) -> Option<ServerUsage> {
        let end = report::sample(self.pid)?;
        self.max_rss = self.max_rss.max(end.rss_mib);
        Some(ServerUsage {
            cpu_seconds: end.cpu_seconds - self.start.cpu_seconds,
            rss_start_mib: self.start.rss_mib,
            rss_end_mib: end.rss_mib,
            rss_max_mib: self.max_rss,
            rss_peak_mib: end.hwm_mib,
            ..ServerUsage::default()
        })
    }

    /// Watches the server for `settle` once the load is over: its CPU meanwhile and its
    /// memory at the end.
    async fn settle(&self, usage: &mut ServerUsage, settle: Duration) {
        let Some(before) = report::sample(self.pid) else {
            return;
        };
        let started = Instant::now();
        sleep_until(started + settle).await;
        if let Some(after) = report::sample(self.pid) {
            usage.settle_seconds = started.elapsed().as_secs_f64();
            usage.settle_cpu_seconds = after.cpu_seconds - before.cpu_seconds;
            usage.rss_settled_mib = after.rss_mib;
        }
    }
}

/// Runs the load `options` describe and reports what happened. Fails before any call
/// when no agent could register.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let local = SocketAddr::new(options.local, 0);
    let mut media_tasks = Vec::new();
    // The callers send 440 Hz, the agents 620 Hz.
    let trunk_media = media(&options, 440.0, &mut media_tasks).await?;
    let agent_media = media(&options, 620.0, &mut media_tasks).await?;
    let shared = Arc::new(Shared {
        options: options.clone(),
        recorder: Mutex::new(Recorder::default()),
        calls: Mutex::new(HashMap::new()),
        trunk_media: trunk_media.clone(),
        agent_media: agent_media.clone(),
    });
    let tls = match (&options.tls_ca, options.transport) {
        (Some(ca), Transport::Tls) => Some(endpoint::Tls::new(
            ca,
            options.tls_name.as_deref(),
            options.target,
        )?),
        _ => None,
    };
    let transport = options.transport;
    let trunk = Endpoint::open(transport, tls.as_ref(), local, options.target)
        .await
        .context("the trunk")?;
    let trunk_reader = tokio::spawn(trunk.clone().read(None));

    let mut phones = Vec::with_capacity(options.agents);
    for i in 0..options.agents {
        let (user, password) = options.agent(i);
        let endpoint = Endpoint::open(transport, tls.as_ref(), local, options.target)
            .await
            .with_context(|| format!("agent {user}'s phone"))?;
        phones.push(agent::Phone {
            user,
            password,
            endpoint,
            seed: options.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64,
        });
    }
    let (stop, stopped) = watch::channel(false);
    let (mut agents, failures) = agent::start(&shared, phones, &stopped).await;
    let registered = shared.recorder.lock().expect("recorder").registered;
    let stop_everything = |agents: &mut tokio::task::JoinSet<()>| {
        agents.abort_all();
        trunk_reader.abort();
        for task in &media_tasks {
            task.abort();
        }
    };
    if registered == 0 {
        stop_everything(&mut agents);
        bail!(
            "no agent registered with {}: {}",
            options.target,
            failures.first().map_or("no answer", String::as_str)
        );
    }
    if options.progress && !failures.is_empty() {
        eprintln!(
            "{} of {} agents did not register, e.g. {}",
            failures.len(),
            options.agents,
            failures[0]
        );
    }

    let mut server = ServerWatch::new(options.server_pid)?;
    let load_start = report::sample(std::process::id());
    let mut rng = Rng::new(options.seed);
    let started = Instant::now();
    // A profile lasts as long as its steps; otherwise arrivals stop after --duration.
    let arrivals_end = started
        + options
            .profile
            .as_ref()
            .map_or(options.duration, Profile::length);
    let limit = options.calls.unwrap_or(u64::MAX);
    let mut calls = tokio::task::JoinSet::new();
    let mut next = started;
    let mut placed = 0u64;
    let mut last_arrival = started;
    let mut tick = started + Duration::from_secs(1);
    // Arrivals: a Poisson process, bounded by the call count and the duration.
    while placed < limit {
        match &options.profile {
            Some(profile) => match profile.next_arrival((next - started).as_secs_f64(), &mut rng) {
                Some(at) => next = started + Duration::from_secs_f64(at),
                None => break,
            },
            None => next += Duration::from_secs_f64(rng.exponential(1.0 / options.rate)),
        }
        if next >= arrivals_end {
            break;
        }
        while tick <= next {
            sleep_until(tick).await;
            progress(&shared, &mut server, started);
            tick += Duration::from_secs(1);
        }
        sleep_until(next).await;
        let patience = options.patience.map(|patience| patience.sample(&mut rng));
        let vote = (!options.survey_keys.is_empty()).then(|| {
            let pick = (rng.next_u64() % options.survey_keys.len() as u64) as usize;
            let key = options.survey_keys[pick];
            (key, options.vote_after.sample(&mut rng))
        });
        calls.spawn(trunk::call(
            shared.clone(),
            trunk.clone(),
            placed,
            patience,
            vote,
        ));
        placed += 1;
        last_arrival = Instant::now();
        while calls.try_join_next().is_some() {}
    }
    let arrival_seconds = (last_arrival - started).as_secs_f64();

    // The drain: calls in progress may end until the deadline; the rest are unfinished.
    let drain_end = Instant::now() + options.drain;
    while !calls.is_empty() {
        tokio::select! {
            _ = calls.join_next() => {}
            _ = sleep_until(tick) => {
                progress(&shared, &mut server, started);
                tick += Duration::from_secs(1);
            }
            _ = sleep_until(drain_end) => break,
        }
    }
    calls.abort_all();
    let elapsed_seconds = started.elapsed().as_secs_f64();
    let usage = server.as_mut().and_then(ServerWatch::usage);
    let load_cpu_seconds = load_start
        .zip(report::sample(std::process::id()))
        .map(|(start, end)| end.cpu_seconds - start.cpu_seconds);

    // The agents unregister, each within its REGISTER transaction's time.
    let _ = stop.send(true);
    let unregistered = Instant::now() + endpoint::TIMEOUT;
    while !agents.is_empty() {
        tokio::select! {
            _ = agents.join_next() => {}
            _ = sleep_until(unregistered) => break,
        }
    }
    stop_everything(&mut agents);
    let mut usage = usage;
    if let (Some(server), Some(usage)) = (&server, usage.as_mut())
        && !options.settle.is_zero()
    {
        if options.progress {
            eprintln!(
                "watching the server for {} s after the load",
                options.settle.as_secs()
            );
        }
        server.settle(usage, options.settle).await;
    }

    let mut report = Report::from_recorder(&shared.recorder.lock().expect("recorder"));
    report.transport = transport.name().to_owned();
    report.connections_lost += u64::from(trunk.is_closed());
    report.arrival_seconds = arrival_seconds;
    report.elapsed_seconds = elapsed_seconds;
    report.rate_asked = options
        .profile
        .as_ref()
        .map_or(options.rate, Profile::mean_rate);
    report.rate_achieved = if arrival_seconds > 0.0 {
        report.offered as f64 / arrival_seconds
    } else {
        0.0
    };
    report.server = usage;
    report.load_cpu_seconds = load_cpu_seconds;
    report.model = model(&options, report.agents_registered);
    report.rtp = Rtp {
        callers_sent: trunk_media.sent.load(Ordering::Relaxed),
        callers_received: trunk_media.received.load(Ordering::Relaxed),
        agents_sent: agent_media.sent.load(Ordering::Relaxed),
        agents_received: agent_media.received.load(Ordering::Relaxed),
        callers_jitter: Summary::of(&trunk_media.jitter.lock().expect("jitter")),
        agents_jitter: Summary::of(&agent_media.jitter.lock().expect("jitter")),
    };
    Ok(report)
}

/// Runs the ramp of `options` (see [`Options::ramp`]): one [`run`] a step, each with its
/// own registrations, until a step completes fewer than 99.9 % of its calls or the last
/// rate was run. Without a ramp, the one run at `options.rate`.
pub async fn ramp(options: Options) -> anyhow::Result<Vec<Report>> {
    let rates = options
        .ramp
        .map_or_else(|| vec![options.rate], |ramp| ramp.rates());
    let mut reports = Vec::with_capacity(rates.len());
    for rate in rates {
        if options.progress {
            eprintln!("--- {rate} calls a second");
        }
        let report = run(Options {
            rate,
            ..options.clone()
        })
        .await?;
        let knee = report.offered > 0 && (report.completed as f64) < 0.999 * report.offered as f64;
        reports.push(report);
        if knee {
            break;
        }
    }
    Ok(reports)
}

/// One line of a ramp's table per step.
pub fn ramp_table(reports: &[Report]) -> String {
    let mut text = String::from(
        "| calls/s asked | achieved | offered | completed | abandoned | failed | setup p50 / p99 ms | route p50 / p99 / max ms | server CPU ms/call | server RSS end MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for report in reports {
        let (cpu, rss) =
            report
                .server
                .as_ref()
                .map_or((String::from("-"), String::from("-")), |server| {
                    (
                        format!(
                            "{:.2}",
                            1000.0 * server.cpu_seconds / report.offered.max(1) as f64
                        ),
                        format!("{:.1}", server.rss_end_mib),
                    )
                });
        text.push_str(&format!(
            "| {:.0} | {:.1} | {} | {:.2} % | {} | {} | {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {cpu} | {rss} |\n",
            report.rate_asked,
            report.rate_achieved,
            report.offered,
            100.0 * report.completed as f64 / report.offered.max(1) as f64,
            report.abandoned,
            report.failed_total(),
            report.setup.p50,
            report.setup.p99,
            report.route.p50,
            report.route.p99,
            report.route.max,
        ));
    }
    text
}

/// The Erlang A figures for the run's parameters (see [`report::Model`]); `None` when the
/// model has no answer (Erlang C past its stable load, say).
fn model(options: &Options, agents: u64) -> Option<report::Model> {
    use amico_core::erlang::{Thresholds, Traffic, erlang_a};
    let traffic = Traffic {
        // A profile's Erlang A is for its mean rate: a rough guide over a changing day.
        arrivals_per_sec: options
            .profile
            .as_ref()
            .map_or(options.rate, Profile::mean_rate),
        mean_handle_secs: options.answer_after.mean() + options.talk.mean(),
        mean_patience_secs: options.patience.map(Dist::mean),
    };
    let figures = erlang_a(traffic, u32::try_from(agents).ok()?, Thresholds::default()).ok()?;
    Some(report::Model {
        offered_erlangs: figures.offered_erlangs,
        p_wait: figures.p_wait,
        p_abandon: figures.p_abandon,
        asa_secs: figures.asa_secs,
    })
}

/// The progress line, and a sample of the server's memory, once a second.
fn progress(shared: &Shared, server: &mut Option<ServerWatch>, started: Instant) {
    if let Some(server) = server {
        server.tick();
    }
    if shared.options.progress {
        let line = shared
            .recorder
            .lock()
            .expect("recorder")
            .progress(started.elapsed());
        eprintln!("{line}");
    }
}
