//! `amico bench-store`: how fast this machine's store commits the queue log.
//!
//! It drives the real ACD core through calls on a virtual clock, hands its outputs to the
//! queue-log writer as the server does, together with the records the call flow keeps
//! (the call's arrival, its two SIP legs, its end), and measures:
//!
//! - **throughput**: records (and calls) committed a second. Without `--rate` every call
//!   is handed over at once, so the store is the bottleneck;
//! - **commit latency**: from a record's hand-over to its commit, which is when the event
//!   stream may send it and `amico_store_committed_seq` counts it. With `--rate` calls come
//!   at that pace and this is the delay a wallboard sees at that load.
//!
//! Each answered call leaves 14 records, as on the live server: `call_arrived`,
//! `call_queued`, `call_offered`, `call_connected`, `call_completed`, `wrap_up_ended`, four
//! `agent_state_changed` (ringing, on the call, wrap-up, available), `survey_recorded`, two
//! `leg_ended` and `call_ended`; with them a CDR, two leg rows, a vote and four agent
//! states. Every tenth caller hangs up while ringing instead (9 records).
//!
//! The default database is a new SQLite file in a scratch directory (removed afterwards),
//! so the figure is this disk's with `synchronous = FULL`. A given `--database` must hold
//! no queue log yet: the benchmark's calls would otherwise mix with real ones.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use amico_core::metrics::{Distribution, Samples};
use amico_core::{Acd, AcdConfig, AgentId, CallId, Command, Input, Output, Timestamp, Vote};
use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::records::log::{Events, Names, StoreCounters};
use crate::records::store::Store;

/// Every how many calls one hangs up while ringing.
const ABANDON_EVERY: u64 = 10;

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `sqlite:FILE` or `postgres://…`; a scratch SQLite file when `None`.
    pub(crate) database: Option<String>,
    /// Calls to hand over.
    pub(crate) calls: u64,
    /// Calls a second; all at once when `None`.
    pub(crate) rate: Option<f64>,
}

/// The figures.
#[derive(Debug, Serialize)]
pub(crate) struct Measured {
    /// The database, without a password.
    pub(crate) database: String,
    pub(crate) calls: u64,
    pub(crate) records: u64,
    /// Calls a second asked for (`None`: all at once).
    pub(crate) rate: Option<f64>,
    /// From the first hand-over to the last commit.
    pub(crate) seconds: f64,
    pub(crate) records_per_sec: f64,
    pub(crate) calls_per_sec: f64,
    /// Transactions committed.
    pub(crate) transactions: u64,
    pub(crate) records_per_transaction: f64,
    /// From hand-over to commit, per record, in milliseconds.
    pub(crate) commit_latency_ms: Latency,
}

/// Nearest-rank percentiles of the per-record commit latency, in milliseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// Runs the benchmark; `progress(committed, handed_over)` is called about once a second.
pub(crate) async fn measure(
    settings: &Settings,
    acd: AcdConfig,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Measured> {
    if settings.calls == 0 {
        anyhow::bail!("--calls: give at least one call");
    }
    if let Some(rate) = settings.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        anyhow::bail!("--rate: {rate} is not a positive number of calls a second");
    }
    let (setting, scratch) = match &settings.database {
        Some(database) => (database.clone(), None),
        None => {
            let dir =
                std::env::temp_dir().join(format!("amico-bench-store-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("scratch directory {}", dir.display()))?;
            (
                format!("sqlite:{}", dir.join("bench.db").display()),
                Some(dir),
            )
        }
    };
    let result = measure_in(&setting, settings, acd, progress).await;
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn measure_in(
    setting: &str,
    settings: &Settings,
    acd: AcdConfig,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Measured> {
    let store = Store::open(setting).await?;
    let stored = store.last_seq().await?;
    if stored > 0 {
        store.close().await;
        anyhow::bail!(
            "database '{}' already holds a queue log ({stored} records): the benchmark's \
             calls would mix with them; give it an empty database",
            redact(setting)
        );
    }
    let names = Names {
        queues: acd.queues.iter().map(|q| q.name.clone()).collect(),
        agents: acd.agents.iter().map(|a| a.name.clone()).collect(),
    };
    let counters = Arc::new(StoreCounters::default());
    let shutdown = CancellationToken::new();
    let clock = crate::runner::Clock::new();
    let (events, feed, writer) =
        crate::records::log::start(store, 1, names, clock, counters.clone(), shutdown.clone());

    // Hand-overs, in order: (the last sequence number handed so far, when).
    let (handed_tx, mut handed_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut committed = feed.committed.clone();
    let started = Instant::now();
    let watcher = tokio::spawn(async move {
        let mut pending: VecDeque<(u64, u64, Instant)> = VecDeque::new();
        let mut latencies = Samples::default();
        let mut next_seq = 1u64;
        let mut handed_all = false;
        loop {
            // What was handed over up to now, before looking at what is committed.
            while let Ok((last, at)) = handed_rx.try_recv() {
                pending.push_back((next_seq, last, at));
                next_seq = last + 1;
            }
            let done = *committed.borrow_and_update();
            let now = Instant::now();
            while let Some(&(first, last, at)) = pending.front() {
                if last > done {
                    break;
                }
                let waited = now.duration_since(at);
                for _ in first..=last {
                    latencies.record(waited);
                }
                pending.pop_front();
            }
            if handed_all {
                if pending.is_empty() {
                    return (latencies, Instant::now());
                }
                if committed.changed().await.is_err() {
                    return (latencies, Instant::now());
                }
                continue;
            }
            tokio::select! {
                changed = committed.changed() => if changed.is_err() {
                    return (latencies, Instant::now());
                },
                handed = handed_rx.recv() => match handed {
                    Some((last, at)) => {
                        pending.push_back((next_seq, last, at));
                        next_seq = last + 1;
                    }
                    None => handed_all = true,
                },
            }
        }
    });

    let mut traffic = Traffic::new(acd, events, clock.now())?;
    let mut last_progress = Instant::now();
    for call in 0..settings.calls {
        if let Some(rate) = settings.rate {
            let due = started + Duration::from_secs_f64(call as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        traffic.call(call)?;
        let handed = counters.handed.load(Ordering::Relaxed);
        handed_tx.send((handed, Instant::now())).ok();
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            progress(counters.committed_seq.load(Ordering::Relaxed), handed);
        }
        if settings.rate.is_none() && call % 256 == 0 {
            // Let the writer run beside the producer on a small machine.
            tokio::task::yield_now().await;
        }
    }
    let records = counters.handed.load(Ordering::Relaxed);
    drop(handed_tx);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut watcher = watcher;
    let (latencies, finished) = loop {
        tokio::select! {
            result = &mut watcher => break result.context("the latency watcher failed")?,
            _ = ticker.tick() => progress(counters.committed_seq.load(Ordering::Relaxed), records),
        }
    };
    shutdown.cancel();
    writer.await.context("the queue-log writer failed")?;
    let dropped = counters.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        anyhow::bail!("the database refused {dropped} records; see the log");
    }

    let seconds = finished.duration_since(started).as_secs_f64();
    let summary = latencies.summary();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let transactions = counters.batches.load(Ordering::Relaxed);
    Ok(Measured {
        database: redact(setting),
        calls: settings.calls,
        records,
        rate: settings.rate,
        seconds,
        records_per_sec: records as f64 / seconds,
        calls_per_sec: settings.calls as f64 / seconds,
        transactions,
        records_per_transaction: records as f64 / transactions.max(1) as f64,
        commit_latency_ms: Latency {
            p50: ms(summary.p50),
            p90: ms(summary.p90),
            p99: ms(summary.p99),
            max: ms(summary.max),
        },
    })
}

/// The real ACD on a virtual clock, one call after another, its outputs handed to the
/// queue-log writer with the call flow's records around them.
struct Traffic {
    acd: Acd,
    events: Events,
    now: Timestamp,
}

impl Traffic {
    /// The virtual clock starts at `now` and runs ahead of the real one.
    fn new(config: AcdConfig, events: Events, now: Timestamp) -> anyhow::Result<Traffic> {
        let agents = config.agents.len();
        let mut traffic = Traffic {
            acd: Acd::new(config, now).context("the ACD configuration")?,
            events,
            now,
        };
        for agent in 0..agents {
            traffic.input(Input::Login {
                agent: AgentId(agent as u32),
            })?;
        }
        Ok(traffic)
    }

    /// Feeds one input at the current virtual time and hands over what comes out.
    /// Returns the agent rung, if one was.
    fn input(&mut self, input: Input) -> anyhow::Result<Option<AgentId>> {
        self.acd
            .handle_input(self.now, input)
            .context("the ACD refused a benchmark input")?;
        let mut rung = None;
        while let Some((at, output)) = self.acd.poll_output_at() {
            if let Output::Command(Command::Ring { agent, .. }) = output {
                rung = Some(agent);
            }
            self.events.acd_output(at, &output);
        }
        Ok(rung)
    }

    fn advance(&mut self, secs: u64) -> anyhow::Result<()> {
        self.now += Duration::from_secs(secs);
        self.input(Input::Timeout).map(drop)
    }

    /// One call from arrival to its end, as the server would record it.
    fn call(&mut self, n: u64) -> anyhow::Result<()> {
        let call = CallId(n + 1);
        // The queues in turn, shifted every ten calls so that each gets its abandons.
        let turn = n + n / ABANDON_EVERY;
        let queue = amico_core::QueueId((turn % self.acd.queue_count() as u64) as u32);
        let sip_call_id = format!("bench-{n}@127.0.0.1");
        self.events.call_fact(
            call.0,
            "call_arrived",
            Some(&self.acd.config().queues[queue.index()].name),
            json!({
                "trunk": "bench",
                "caller": format!("<sip:+3905210{n:05}@127.0.0.1>"),
                "did": "100",
                "sip_call_id": sip_call_id,
                "source": "127.0.0.1:5070",
            }),
        );
        let rung = self.input(Input::CallArrived {
            call,
            queue,
            priority: 0,
        })?;
        self.advance(4)?;
        let answered = match rung {
            Some(agent) if n % ABANDON_EVERY != ABANDON_EVERY - 1 => {
                self.input(Input::OfferAnswered { call, agent })?;
                self.advance(180)?;
                self.input(Input::Hangup { call })?;
                self.advance(8)?;
                self.input(Input::SurveyVote {
                    call,
                    queue,
                    agent,
                    vote: Some(Vote::Satisfied),
                })?;
                Some(agent)
            }
            _ => {
                self.input(Input::Hangup { call })?;
                None
            }
        };
        // Past every wrap-up before the next call.
        self.advance(60)?;
        let caller = format!("<sip:+3905210{n:05}@127.0.0.1>");
        self.leg(call, 0, "trunk", &caller, &sip_call_id, true);
        if let Some(agent) = rung {
            let name = self.acd.config().agents[agent.index()].name.clone();
            let id = format!("bench-{n}-agent@127.0.0.1");
            self.leg(call, 1, "agent", &name, &id, answered.is_some());
        }
        self.events
            .call_fact(call.0, "call_ended", None, json!({ "cause": "ended" }));
        Ok(())
    }

    fn leg(&self, call: CallId, leg: u64, kind: &str, peer: &str, id: &str, answered: bool) {
        let now = crate::records::log::utc_now_us();
        let mut fields = json!({
            "leg": leg,
            "leg_kind": kind,
            "peer": peer,
            "sip_call_id": id,
            "started_us": now - 200_000_000,
            "answered_us": answered.then_some(now - 190_000_000),
            "status": if answered { None } else { Some(487) },
            "end_reason": if answered { "completed" } else { "cancelled" },
        });
        if kind == "agent" {
            fields["agent"] = peer.into();
        }
        self.events.call_fact(call.0, "leg_ended", None, fields);
    }
}

/// The database setting without a password.
fn redact(setting: &str) -> String {
    match (setting.find("://"), setting.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &setting[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:***{}", &setting[..scheme + 3], &setting[at..])
                }
                None => setting.to_owned(),
            }
        }
        _ => setting.to_owned(),
    }
}

impl Measured {
    /// A few readable lines.
    pub(crate) fn table(&self) -> String {
        let pace = match self.rate {
            Some(rate) => format!("{rate} calls/s"),
            None => "all at once".to_owned(),
        };
        let l = &self.commit_latency_ms;
        format!(
            "database      {}\n\
             calls         {} ({pace})\n\
             records       {} in {:.2} s\n\
             throughput    {:.0} records/s, {:.0} calls/s\n\
             transactions  {} ({:.1} records each)\n\
             commit wait   p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            self.database,
            self.calls,
            self.records,
            self.seconds,
            self.records_per_sec,
            self.calls_per_sec,
            self.transactions,
            self.records_per_transaction,
            l.p50,
            l.p90,
            l.p99,
            l.max,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://amico:s3cret@db:5432/amico"),
            "postgres://amico:***@db:5432/amico"
        );
        assert_eq!(
            redact("postgres://amico@db/amico"),
            "postgres://amico@db/amico"
        );
        assert_eq!(redact("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
    }
}
