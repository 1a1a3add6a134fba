//! What a run measured: the live recorder both sides write into, and the final report
//! as a table or JSON, with the server's CPU time and memory from /proc.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// A latency histogram in microseconds, from 1 µs to one hour at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Everything counted while the run goes on; both sides write into it.
pub(crate) struct Recorder {
    pub(crate) setup: Histogram<u64>,
    pub(crate) route: Histogram<u64>,
    pub(crate) ring: Histogram<u64>,
    pub(crate) wait: Histogram<u64>,
    pub(crate) abandon_wait: Histogram<u64>,
    /// Trunk INVITEs sent.
    pub(crate) offered: u64,
    /// Trunk calls the ACD answered (200).
    pub(crate) answered: u64,
    /// Calls an agent answered (its 200 was ACKed).
    pub(crate) connected: u64,
    /// Calls connected to an agent that ended with a BYE both ways answered.
    pub(crate) completed: u64,
    /// Callers whose patience ran out before an agent answered.
    pub(crate) abandoned: u64,
    /// Calls that failed, by reason.
    pub(crate) failed: BTreeMap<String, u64>,
    /// INVITEs the agents received.
    pub(crate) agent_invites: u64,
    /// Agent INVITEs cancelled before the answer (ring no answer, or the caller left).
    pub(crate) agent_cancelled: u64,
    /// Agent INVITEs whose From named no call of this run.
    pub(crate) uncorrelated: u64,
    /// Agents registered, and registrations that failed.
    pub(crate) registered: u64,
    pub(crate) registration_failures: u64,
    /// Agent BYEs that got no 2xx.
    pub(crate) agent_bye_failures: u64,
    /// Agent 200s never ACKed.
    pub(crate) agent_unacked: u64,
    /// TCP or TLS connections to the ACD that closed or broke during the run.
    pub(crate) connections_lost: u64,
    /// Survey keys the callers pressed.
    pub(crate) votes: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            setup: histogram(),
            route: histogram(),
            ring: histogram(),
            wait: histogram(),
            abandon_wait: histogram(),
            offered: 0,
            answered: 0,
            connected: 0,
            completed: 0,
            abandoned: 0,
            failed: BTreeMap::new(),
            agent_invites: 0,
            agent_cancelled: 0,
            uncorrelated: 0,
            registered: 0,
            registration_failures: 0,
            agent_bye_failures: 0,
            agent_unacked: 0,
            connections_lost: 0,
            votes: 0,
        }
    }
}

/// Records a duration, saturating at the histogram's bounds.
pub(crate) fn record(histogram: &mut Histogram<u64>, duration: Duration) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

impl Recorder {
    /// One call failed for `reason`.
    pub(crate) fn fail(&mut self, reason: impl Into<String>) {
        *self.failed.entry(reason.into()).or_default() += 1;
    }

    /// Calls that ended, one way or another.
    pub(crate) fn ended(&self) -> u64 {
        self.completed + self.abandoned + self.failed.values().sum::<u64>()
    }

    /// The progress line.
    pub(crate) fn progress(&self, elapsed: Duration) -> String {
        let failed: u64 = self.failed.values().sum();
        format!(
            "{:>6.1} s  offered {}  answered {}  connected {}  completed {}  abandoned {}  \
             failed {}  in progress {}  route p50 {:.2} ms p99 {:.2} ms",
            elapsed.as_secs_f64(),
            self.offered,
            self.answered,
            self.connected,
            self.completed,
            self.abandoned,
            failed,
            self.offered.saturating_sub(self.ended()),
            ms(self.route.value_at_quantile(0.5)),
            ms(self.route.value_at_quantile(0.99)),
        )
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// A latency distribution, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// How many were measured.
    pub count: u64,
    /// Percentiles and extremes, in milliseconds.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Summary {
    /// The summary of a histogram of microseconds.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Summary {
        if histogram.is_empty() {
            return Summary::default();
        }
        Summary {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count, "p50_ms": self.p50, "p90_ms": self.p90, "p99_ms": self.p99,
            "p999_ms": self.p999, "max_ms": self.max, "mean_ms": self.mean,
        })
    }
}

/// The server process's use of the machine over the run, from /proc/PID.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerUsage {
    /// CPU time (user + system) spent during the run, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory at the start and the end, in MiB.
    pub rss_start_mib: f64,
    /// Resident memory at the end.
    pub rss_end_mib: f64,
    /// The largest resident memory sampled (once a second) during the run.
    pub rss_max_mib: f64,
    /// The process's own high-water mark (VmHWM, since it started).
    pub rss_peak_mib: f64,
    /// With `--settle`: how long it was watched after the load, the CPU time it spent
    /// then (seconds), and its resident memory at the end of that.
    pub settle_seconds: f64,
    /// See `settle_seconds`.
    pub settle_cpu_seconds: f64,
    /// See `settle_seconds`.
    pub rss_settled_mib: f64,
}

/// One reading of /proc/PID.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcSample {
    /// utime + stime, seconds.
    pub(crate) cpu_seconds: f64,
    pub(crate) rss_mib: f64,
    pub(crate) hwm_mib: f64,
}

/// Reads /proc/PID/stat and /proc/PID/status; `None` when the process is gone.
pub(crate) fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name, in clock
    // ticks of USER_HZ, which Linux fixes at 100 for /proc (proc(5)).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    Some(ProcSample {
        cpu_seconds: ticks as f64 / 100.0,
        rss_mib: kib("VmRSS:")? / 1024.0,
        hwm_mib: kib("VmHWM:").unwrap_or_default() / 1024.0,
    })
}

/// What Erlang A (M/M/N+M, `amico_core::erlang`) predicts for the run's parameters, to
/// set beside what was measured: Poisson arrivals at the asked rate, exponential handle
/// times with the mean of ring + talk, exponential patience with its mean (Erlang C
/// without patience), the agents that registered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// The offered load, in erlangs.
    pub offered_erlangs: f64,
    /// The share of callers who wait at all.
    pub p_wait: f64,
    /// The share who abandon.
    pub p_abandon: f64,
    /// The average speed of answer, in seconds (the model's, without the ring).
    pub asa_secs: f64,
}

/// RTP packets counted on each side's socket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rtp {
    /// Sent by the callers (connected calls only, with `--rtp`).
    pub callers_sent: u64,
    /// Received by the callers: the ACD's music and prompts, and the agents' audio.
    pub callers_received: u64,
    /// Sent by the agents.
    pub agents_sent: u64,
    /// Received by the agents: the callers' audio as the ACD relays it.
    pub agents_received: u64,
    /// The interarrival jitter (RFC 3550 §6.4.1) of what the callers received, over
    /// every packet, in milliseconds.
    pub callers_jitter: Summary,
    /// The same for what the agents received.
    pub agents_jitter: Summary,
}

impl Rtp {
    /// The share of the callers' packets the agents received (the relay's delivery,
    /// caller → agent); `None` when nothing was sent.
    pub fn delivered(&self) -> Option<f64> {
        (self.callers_sent > 0).then(|| self.agents_received as f64 / self.callers_sent as f64)
    }
}

/// The final report of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Calls the trunk placed.
    pub offered: u64,
    /// Calls the ACD answered (200 to the trunk's INVITE).
    pub answered: u64,
    /// Calls an agent answered.
    pub connected: u64,
    /// Calls that reached an agent and ended normally.
    pub completed: u64,
    /// Callers who hung up before an agent answered.
    pub abandoned: u64,
    /// Calls that failed, by reason: a status code (`503`), `timeout` (no final response
    /// to the INVITE), `ended before an agent answered`, `unfinished` (still up when the
    /// drain time ran out)...
    pub failed: BTreeMap<String, u64>,
    /// Agents that registered, and registrations refused or unanswered.
    pub agents_registered: u64,
    /// Registrations that failed.
    pub registration_failures: u64,
    /// INVITEs the agents received, those cancelled before the answer, and those whose
    /// caller could not be told (the ACD changed the From).
    pub agent_invites: u64,
    /// See `agent_invites`.
    pub agent_cancelled: u64,
    /// See `agent_invites`.
    pub uncorrelated: u64,
    /// Agent BYEs that got no 2xx.
    pub agent_bye_failures: u64,
    /// Agent 200s the ACD never ACKed.
    pub agent_unacked: u64,
    /// How SIP travelled: `udp`, `tcp` or `tls`.
    pub transport: String,
    /// TCP or TLS connections (the trunk's, the agents') that closed or broke before the
    /// end of the run.
    pub connections_lost: u64,
    /// Survey votes the callers pressed (RFC 4733 events) after their agent hung up.
    pub votes: u64,
    /// The trunk's INVITE → the ACD's 200.
    pub setup: Summary,
    /// The trunk's INVITE sent → the agent's INVITE received, for the same call.
    pub route: Summary,
    /// The agent's INVITE received → the ACK of its 200.
    pub ring: Summary,
    /// The ACD's 200 to the trunk → the agent's 200 ACKed: how long the answered
    /// caller waited for an agent, ringing included.
    pub wait: Summary,
    /// How long abandoning callers waited.
    pub abandon_wait: Summary,
    /// Seconds from the first arrival to the last.
    pub arrival_seconds: f64,
    /// Seconds from the first arrival until every call ended (or the drain ran out).
    pub elapsed_seconds: f64,
    /// The rate asked for, and achieved (offered / arrival seconds).
    pub rate_asked: f64,
    /// See `rate_asked`.
    pub rate_achieved: f64,
    /// The server's CPU and memory, with `--server-pid`.
    pub server: Option<ServerUsage>,
    /// The Erlang A prediction, when the model has an answer (a stable load).
    pub model: Option<Model>,
    /// RTP packets.
    pub rtp: Rtp,
    /// The load generator's own CPU time over the same window, in seconds.
    pub load_cpu_seconds: Option<f64>,
}

impl Report {
    /// Gathers the recorder's figures; `unfinished` calls are those still up at the end.
    pub(crate) fn from_recorder(recorder: &Recorder) -> Report {
        let mut failed = recorder.failed.clone();
        let unfinished = recorder.offered - recorder.ended().min(recorder.offered);
        if unfinished > 0 {
            *failed.entry("unfinished".into()).or_default() += unfinished;
        }
        Report {
            offered: recorder.offered,
            answered: recorder.answered,
            connected: recorder.connected,
            completed: recorder.completed,
            abandoned: recorder.abandoned,
            failed,
            agents_registered: recorder.registered,
            registration_failures: recorder.registration_failures,
            agent_invites: recorder.agent_invites,
            agent_cancelled: recorder.agent_cancelled,
            uncorrelated: recorder.uncorrelated,
            agent_bye_failures: recorder.agent_bye_failures,
            agent_unacked: recorder.agent_unacked,
            connections_lost: recorder.connections_lost,
            votes: recorder.votes,
            setup: Summary::of(&recorder.setup),
            route: Summary::of(&recorder.route),
            ring: Summary::of(&recorder.ring),
            wait: Summary::of(&recorder.wait),
            abandon_wait: Summary::of(&recorder.abandon_wait),
            ..Report::default()
        }
    }

    /// All failed calls.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// The share of offered calls abandoned.
    pub fn abandon_share(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.offered as f64
        }
    }

    /// The report as one JSON object.
    pub fn json(&self) -> Value {
        let server = self.server.as_ref().map(|server| {
            json!({
                "cpu_seconds": server.cpu_seconds,
                "cpu_ms_per_offered_call": per_call(server.cpu_seconds * 1000.0, self.offered),
                "rss_start_mib": server.rss_start_mib,
                "rss_end_mib": server.rss_end_mib,
                "rss_max_mib": server.rss_max_mib,
                "rss_peak_mib": server.rss_peak_mib,
                "settle_seconds": server.settle_seconds,
                "settle_cpu_seconds": server.settle_cpu_seconds,
                "rss_settled_mib": server.rss_settled_mib,
            })
        });
        let model = self.model.as_ref().map(|model| {
            json!({
                "offered_erlangs": model.offered_erlangs,
                "p_wait": model.p_wait,
                "p_abandon": model.p_abandon,
                "asa_secs": model.asa_secs,
                "measured_p_abandon": self.abandon_share(),
                "measured_asa_secs": self.wait.mean / 1000.0,
            })
        });
        json!({
            "rate_asked": self.rate_asked,
            "rate_achieved": self.rate_achieved,
            "arrival_seconds": self.arrival_seconds,
            "elapsed_seconds": self.elapsed_seconds,
            "offered": self.offered,
            "answered": self.answered,
            "connected": self.connected,
            "completed": self.completed,
            "abandoned": self.abandoned,
            "failed": self.failed_total(),
            "failed_by_reason": self.failed,
            "agents_registered": self.agents_registered,
            "registration_failures": self.registration_failures,
            "agent_invites": self.agent_invites,
            "agent_cancelled": self.agent_cancelled,
            "uncorrelated": self.uncorrelated,
            "agent_bye_failures": self.agent_bye_failures,
            "agent_unacked": self.agent_unacked,
            "transport": self.transport,
            "connections_lost": self.connections_lost,
            "survey_votes": self.votes,
            "setup": self.setup.json(),
            "route": self.route.json(),
            "ring": self.ring.json(),
            "wait": self.wait.json(),
            "abandon_wait": self.abandon_wait.json(),
            "server": server,
            "load_cpu_seconds": self.load_cpu_seconds,
            "erlang_a": model,
            "rtp": {
                "callers_sent": self.rtp.callers_sent,
                "callers_received": self.rtp.callers_received,
                "agents_sent": self.rtp.agents_sent,
                "agents_received": self.rtp.agents_received,
                "delivered_to_agents": self.rtp.delivered(),
                "callers_jitter": self.rtp.callers_jitter.json(),
                "agents_jitter": self.rtp.agents_jitter.json(),
            },
        })
    }

    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut text = String::new();
        let percent = |n: u64| {
            if self.offered == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.offered as f64
            }
        };
        text.push_str(&format!(
            "calls over {}: {} offered in {:.1} s ({:.1}/s asked, {:.1}/s achieved), all ended after {:.1} s\n",
            self.transport.to_ascii_uppercase(),
            self.offered,
            self.arrival_seconds,
            self.rate_asked,
            self.rate_achieved,
            self.elapsed_seconds
        ));
        text.push_str(&format!(
            "  answered by the ACD {}  connected to an agent {}\n",
            self.answered, self.connected
        ));
        text.push_str(&format!(
            "  completed {} ({:.2} %)  abandoned {} ({:.2} %)  failed {} ({:.2} %)\n",
            self.completed,
            percent(self.completed),
            self.abandoned,
            percent(self.abandoned),
            self.failed_total(),
            percent(self.failed_total())
        ));
        for (reason, count) in &self.failed {
            text.push_str(&format!("    failed, {reason}: {count}\n"));
        }
        text.push_str(&format!(
            "agents: {} registered, {} registrations failed; {} INVITEs ({} cancelled, {} uncorrelated), \
             {} answers never ACKed, {} BYEs failed\n",
            self.agents_registered,
            self.registration_failures,
            self.agent_invites,
            self.agent_cancelled,
            self.uncorrelated,
            self.agent_unacked,
            self.agent_bye_failures
        ));
        if self.votes > 0 {
            text.push_str(&format!(
                "survey: {} callers pressed their vote after the agent hung up\n",
                self.votes
            ));
        }
        if self.connections_lost > 0 {
            text.push_str(&format!(
                "connections to the ACD lost during the run: {}\n",
                self.connections_lost
            ));
        }
        text.push_str(
            "\n| ms | count | p50 | p90 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|---|---|\n",
        );
        for (name, summary) in [
            ("setup (INVITE → 200)", &self.setup),
            ("route (trunk INVITE → agent INVITE)", &self.route),
            ("ring (agent INVITE → ACK)", &self.ring),
            ("queue wait (200 → agent connected)", &self.wait),
            ("abandoned after", &self.abandon_wait),
        ] {
            text.push_str(&format!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                summary.count,
                summary.p50,
                summary.p90,
                summary.p99,
                summary.p999,
                summary.max,
                summary.mean
            ));
        }
        if let Some(server) = &self.server {
            text.push_str(&format!(
                "\nserver: {:.2} s of CPU ({:.2} ms per offered call), RSS {:.1} → {:.1} MiB \
                 (max sampled {:.1}, peak since start {:.1})\n",
                server.cpu_seconds,
                per_call(server.cpu_seconds * 1000.0, self.offered).unwrap_or(0.0),
                server.rss_start_mib,
                server.rss_end_mib,
                server.rss_max_mib,
                server.rss_peak_mib
            ));
            if server.settle_seconds > 0.0 {
                text.push_str(&format!(
                    "  {:.0} s after the load: RSS {:.1} MiB, {:.2} s of CPU meanwhile ({:.1} % of a core)\n",
                    server.settle_seconds,
                    server.rss_settled_mib,
                    server.settle_cpu_seconds,
                    100.0 * server.settle_cpu_seconds / server.settle_seconds
                ));
            }
        }
        if let Some(cpu) = self.load_cpu_seconds {
            text.push_str(&format!("amico-load itself: {cpu:.2} s of CPU\n"));
        }
        text.push_str(&format!(
            "\nRTP packets: callers sent {} and received {}; agents sent {} and received {}",
            self.rtp.callers_sent,
            self.rtp.callers_received,
            self.rtp.agents_sent,
            self.rtp.agents_received
        ));
        match self.rtp.delivered() {
            Some(share) => text.push_str(&format!(
                " ({:.2} % of the callers' delivered)\n",
                100.0 * share
            )),
            None => text.push('\n'),
        }
        for (side, jitter) in [
            ("callers", &self.rtp.callers_jitter),
            ("agents", &self.rtp.agents_jitter),
        ] {
            if jitter.count > 0 {
                text.push_str(&format!(
                    "  jitter at the {side} (RFC 3550): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
                    jitter.p50, jitter.p99, jitter.max
                ));
            }
        }
        if let Some(model) = &self.model {
            text.push_str(&format!(
                "\nErlang A for {:.1} erlangs on {} agents: {:.2} % abandon (measured {:.2} %), \
                 ASA {:.3} s (measured, ring included: {:.3} s), {:.1} % wait\n",
                model.offered_erlangs,
                self.agents_registered,
                100.0 * model.p_abandon,
                100.0 * self.abandon_share(),
                model.asa_secs,
                self.wait.mean / 1000.0,
                100.0 * model.p_wait
            ));
        }
        text
    }
}

fn per_call(total: f64, calls: u64) -> Option<f64> {
    (calls > 0).then(|| total / calls as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_with_unfinished_calls() {
        let mut recorder = Recorder {
            offered: 10,
            completed: 6,
            abandoned: 1,
            ..Recorder::default()
        };
        recorder.fail("503");
        record(&mut recorder.route, Duration::from_micros(1500));
        let report = Report::from_recorder(&recorder);
        assert_eq!(report.failed.get("unfinished"), Some(&2));
        assert_eq!(
            report.completed + report.abandoned + report.failed_total(),
            report.offered
        );
        assert_eq!(report.route.count, 1);
        assert!((report.route.p50 - 1.5).abs() < 0.01);
        let json = report.json();
        assert_eq!(json["failed"], 3);
        assert_eq!(json["failed_by_reason"]["503"], 1);
        assert!(report.table().contains("failed, unfinished: 2"));
    }

    #[test]
    fn reads_its_own_process() {
        let usage = sample(std::process::id()).expect("/proc/self");
        assert!(usage.rss_mib > 0.0);
        assert!(sample(u32::MAX).is_none());
    }
}
