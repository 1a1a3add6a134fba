//! What `amico simulate` and `amico staff` print.

use std::fmt::Write;
use std::time::Duration;

use amico_core::erlang::{self, Figures};
use amico_core::metrics::{Distribution, QueueSummary};
use amico_core::simulator::{FIRST_QUEUE, Outcome};
use serde::Serialize;

/// Parma's reported share of calls abandoned after a 47 s wait.
const PARMA_ABANDONED_AFTER_47S: f64 = 0.028;

/// The parameters a simulation ran with.
#[derive(Debug, Serialize)]
pub(crate) struct ScenarioSummary {
    pub(crate) agents: u32,
    pub(crate) calls: u64,
    pub(crate) arrivals: String,
    pub(crate) arrival_rate_per_hour: Option<f64>,
    pub(crate) days: Option<u32>,
    pub(crate) aht_secs: f64,
    pub(crate) handle_time: String,
    pub(crate) patience_secs: Option<f64>,
    pub(crate) threshold_secs: f64,
    pub(crate) sl_threshold_secs: f64,
    pub(crate) seed: u64,
}

/// The model's figures for the same parameters.
#[derive(Debug, Serialize)]
pub(crate) struct ModelFigures {
    p_wait: f64,
    p_abandon: f64,
    p_abandon_after_threshold: f64,
    service_level: f64,
    service_level_abandons_met: f64,
    asa_secs: f64,
    mean_wait_secs: f64,
    occupancy: f64,
    offered_erlangs: f64,
}

impl From<Figures> for ModelFigures {
    fn from(f: Figures) -> Self {
        ModelFigures {
            p_wait: f.p_wait,
            p_abandon: f.p_abandon,
            p_abandon_after_threshold: f.p_abandon_after_threshold,
            service_level: f.service_level,
            service_level_abandons_met: f.service_level_abandons_met,
            asa_secs: f.asa_secs,
            mean_wait_secs: f.mean_wait_secs,
            occupancy: f.occupancy,
            offered_erlangs: f.offered_erlangs,
        }
    }
}

/// One simulation's results beside Erlang A's.
#[derive(Debug, Serialize)]
pub(crate) struct SimulationReport {
    scenario: ScenarioSummary,
    offered: u64,
    answered: u64,
    abandoned: u64,
    short_abandoned: u64,
    abandoned_after_threshold: u64,
    p_abandon: f64,
    p_abandon_excluding_short: f64,
    p_abandon_after_threshold: f64,
    service_level: f64,
    service_level_abandons_met: f64,
    asa_secs: f64,
    aht_secs: f64,
    wait_p50_secs: f64,
    wait_p90_secs: f64,
    wait_p95_secs: f64,
    wait_p99_secs: f64,
    wait_p999_secs: f64,
    wait_max_secs: f64,
    abandon_p50_secs: f64,
    abandon_p90_secs: f64,
    occupancy: f64,
    estimate_accuracy: Option<f64>,
    simulated_hours: f64,
    acd_inputs: u64,
    erlang_a: Option<ModelFigures>,
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl SimulationReport {
    pub(crate) fn new(
        scenario: ScenarioSummary,
        outcome: &Outcome,
        model: Option<Figures>,
    ) -> Self {
        let stats = outcome
            .acd
            .queue_stats(FIRST_QUEUE)
            .expect("a single-queue scenario");
        let summary: QueueSummary = stats.summary();
        let c = summary.counters;
        let r = summary.rates;
        SimulationReport {
            scenario,
            offered: c.offered,
            answered: c.answered,
            abandoned: c.abandoned,
            short_abandoned: c.short_abandoned,
            abandoned_after_threshold: c.abandoned_after_threshold,
            p_abandon: r.abandon_rate.unwrap_or(0.0),
            p_abandon_excluding_short: r.abandon_rate_excluding_short.unwrap_or(0.0),
            p_abandon_after_threshold: r.abandon_after_threshold_rate.unwrap_or(0.0),
            service_level: r.service_level.unwrap_or(1.0),
            service_level_abandons_met: r.service_level_abandons_met.unwrap_or(1.0),
            asa_secs: r.asa.map_or(0.0, secs),
            aht_secs: r.aht.map_or(0.0, secs),
            wait_p50_secs: secs(summary.wait.p50),
            wait_p90_secs: secs(summary.wait.p90),
            wait_p95_secs: secs(summary.wait.p95),
            wait_p99_secs: secs(summary.wait.p99),
            wait_p999_secs: secs(summary.wait.p999),
            wait_max_secs: secs(stats.wait.max()),
            abandon_p50_secs: secs(summary.abandon.p50),
            abandon_p90_secs: secs(summary.abandon.p90),
            occupancy: outcome.acd.agent_time().occupancy().unwrap_or(0.0),
            estimate_accuracy: r.estimate_accuracy,
            simulated_hours: outcome.end.as_secs_f64() / 3600.0,
            acd_inputs: outcome.inputs,
            erlang_a: model.map(ModelFigures::from),
        }
    }

    /// Simulation beside model, one figure a line.
    pub(crate) fn table(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let arrivals = match s.arrival_rate_per_hour {
            Some(rate) => format!("{} calls at {rate} per hour (Poisson)", s.calls),
            None => format!(
                "{} calls over {} day(s) of Parma's 10-hour profile (peak hour 15 %)",
                s.calls,
                s.days.unwrap_or(1)
            ),
        };
        let patience = s
            .patience_secs
            .map_or("never hang up".to_owned(), |p| format!("patience {p} s"));
        let _ = writeln!(out, "Amico simulation: {arrivals}");
        let _ = writeln!(
            out,
            "{} agents, {} handle time {} s, {patience}, seed {}\n",
            s.agents, s.handle_time, s.aht_secs, s.seed
        );
        let _ = writeln!(
            out,
            "{:<44} {:>12} {:>12}",
            "figure", "simulation", "Erlang A"
        );
        let model = self.erlang_a.as_ref();
        let pct = |v: f64| format!("{:.2} %", v * 100.0);
        let sec = |v: f64| format!("{v:.1} s");
        let mut row = |name: String, sim: String, model: Option<String>| {
            let _ = writeln!(
                out,
                "{name:<44} {sim:>12} {:>12}",
                model.unwrap_or_default()
            );
        };
        row("calls offered".into(), self.offered.to_string(), None);
        row("answered".into(), self.answered.to_string(), None);
        row("abandoned".into(), self.abandoned.to_string(), None);
        row(
            format!("abandoned after {} s", s.threshold_secs),
            self.abandoned_after_threshold.to_string(),
            None,
        );
        row(
            "abandon rate".into(),
            pct(self.p_abandon),
            model.map(|m| pct(m.p_abandon)),
        );
        row(
            format!("abandon rate after {} s", s.threshold_secs),
            pct(self.p_abandon_after_threshold),
            model.map(|m| pct(m.p_abandon_after_threshold)),
        );
        row(
            format!(
                "service level ({} s, short abandons out)",
                s.sl_threshold_secs
            ),
            pct(self.service_level),
            model.map(|m| pct(m.service_level)),
        );
        row(
            format!(
                "service level ({} s, abandons within met)",
                s.sl_threshold_secs
            ),
            pct(self.service_level_abandons_met),
            model.map(|m| pct(m.service_level_abandons_met)),
        );
        row(
            "average speed of answer".into(),
            sec(self.asa_secs),
            model.map(|m| sec(m.asa_secs)),
        );
        row("average handle time".into(), sec(self.aht_secs), None);
        row(
            "occupancy".into(),
            pct(self.occupancy),
            model.map(|m| pct(m.occupancy)),
        );
        row(
            "wait p50 / p90".into(),
            format!("{:.1} / {:.1} s", self.wait_p50_secs, self.wait_p90_secs),
            None,
        );
        row(
            "wait p99 / p99.9".into(),
            format!("{:.1} / {:.1} s", self.wait_p99_secs, self.wait_p999_secs),
            None,
        );
        row(
            "time to abandon p50 / p90".into(),
            format!(
                "{:.1} / {:.1} s",
                self.abandon_p50_secs, self.abandon_p90_secs
            ),
            None,
        );
        row(
            "wait estimates within ±20 %".into(),
            self.estimate_accuracy.map_or("-".into(), pct),
            None,
        );
        if s.arrival_rate_per_hour.is_none() && s.threshold_secs == 47.0 {
            let _ = writeln!(
                out,
                "\nParma reported {} abandoned after 47 s (target: under 3 %).",
                pct(PARMA_ABANDONED_AFTER_47S)
            );
        }
        if s.arrival_rate_per_hour.is_none() {
            let _ = writeln!(
                out,
                "Erlang A for a profile: each hour taken as stationary, weighted by its calls."
            );
        }
        out
    }
}

/// A staffing answer.
#[derive(Debug, Serialize)]
pub(crate) struct StaffReport {
    agents: u32,
    model: &'static str,
    offered_erlangs: f64,
    p_wait: f64,
    p_abandon: f64,
    p_abandon_after_threshold: f64,
    service_level: f64,
    asa_secs: f64,
    occupancy: f64,
}

impl StaffReport {
    pub(crate) fn new(figures: &Figures, traffic: erlang::Traffic) -> Self {
        StaffReport {
            agents: figures.agents,
            model: if traffic.mean_patience_secs.is_some() {
                "erlang-a"
            } else {
                "erlang-c"
            },
            offered_erlangs: figures.offered_erlangs,
            p_wait: figures.p_wait,
            p_abandon: figures.p_abandon,
            p_abandon_after_threshold: figures.p_abandon_after_threshold,
            service_level: figures.service_level,
            asa_secs: figures.asa_secs,
            occupancy: figures.occupancy,
        }
    }

    pub(crate) fn table(&self, args: &super::StaffArgs) -> String {
        let mut out = String::new();
        let model = if self.model == "erlang-a" {
            "Erlang A"
        } else {
            "Erlang C"
        };
        let _ = writeln!(
            out,
            "{} agents needed ({model}: {:.2} erlangs offered at {} calls/h, AHT {} s{})",
            self.agents,
            self.offered_erlangs,
            args.arrival_rate_per_hour,
            args.aht,
            args.patience
                .map_or(String::new(), |p| format!(", patience {p} s"))
        );
        let mut line = |label: String, value: String| {
            let _ = writeln!(out, "  {label:<32}{value:>10}");
        };
        let pct = |v: f64| format!("{:.2} %", v * 100.0);
        line("P(wait)".into(), pct(self.p_wait));
        line("abandon rate".into(), pct(self.p_abandon));
        line(
            format!("abandon rate after {} s", args.threshold),
            pct(self.p_abandon_after_threshold),
        );
        line(
            format!("service level ({} s)", args.sl_threshold),
            pct(self.service_level),
        );
        line(
            "average speed of answer".into(),
            format!("{:.1} s", self.asa_secs),
        );
        line("occupancy".into(), pct(self.occupancy));
        out
    }
}
