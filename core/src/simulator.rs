//! A discrete-event simulator that drives the real [`Acd`] with virtual time.
//!
//! Callers arrive (Poisson at a constant rate, or spread over an hourly profile), each with
//! a handle time (exponential or log-normal) and a patience (exponential): a caller still
//! waiting when its patience runs out hangs up. Agents answer every offer after a fixed
//! ring delay and talk for the caller's handle time; wrap-up is the queue's own. The clock
//! jumps from one event or ACD deadline to the next, so a year of traffic takes well under
//! a second. Seeded: the same scenario and seed give the same figures on every machine.

pub mod random;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rustc_hash::FxHashMap;

use self::random::Rng;
use crate::acd::{Acd, AgentState};
use crate::config::{AcdConfig, AgentConfig, QueueConfig};
use crate::erlang::{self, ErlangError, Figures, Thresholds};
use crate::error::AcdError;
use crate::ids::{AgentId, CallId, QueueId};
use crate::input::Input;
use crate::output::{Command, Event, Output, OverflowedTo};
use crate::time::Timestamp;

/// Share of a day's calls in each hour of Parma's 10-hour opening day: the peak hour
/// carries 15 %.
pub const PARMA_PROFILE: [f64; 10] = [0.06, 0.10, 0.13, 0.15, 0.12, 0.08, 0.08, 0.10, 0.10, 0.08];

/// How callers arrive.
#[derive(Clone, Debug, PartialEq)]
pub enum Arrivals {
    /// A Poisson process at a constant rate.
    Poisson {
        /// Calls per hour.
        per_hour: f64,
    },
    /// Calls spread over days by an hourly profile: each call falls on a uniformly chosen
    /// day, in an hour chosen with the profile's weights, uniformly within that hour. (A
    /// Poisson process with that rate profile, conditioned on the total number of calls.)
    Profile {
        /// Relative weight of each hour from the start of a day; need not sum to 1.
        hourly: Vec<f64>,
        /// Number of days; each day starts 24 hours after the previous one.
        days: u32,
    },
}

/// How long a conversation lasts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HandleTime {
    /// Exponential, as Erlang's models assume.
    Exponential {
        /// Mean.
        mean: Duration,
    },
    /// Log-normal, closer to real talk times.
    LogNormal {
        /// Mean.
        mean: Duration,
        /// Standard deviation over mean.
        cv: f64,
    },
}

impl HandleTime {
    /// The mean.
    pub fn mean(&self) -> Duration {
        match *self {
            HandleTime::Exponential { mean } | HandleTime::LogNormal { mean, .. } => mean,
        }
    }

    fn sample(&self, rng: &mut Rng) -> Duration {
        let secs = match *self {
            HandleTime::Exponential { mean } => rng.exponential(mean.as_secs_f64()),
            HandleTime::LogNormal { mean, cv } => rng.lognormal(mean.as_secs_f64(), cv),
        };
        Duration::from_secs_f64(secs)
    }
}

/// One stream of callers into one queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// The queue's name.
    pub queue: String,
    /// How many calls.
    pub calls: u64,
    /// When they come.
    pub arrivals: Arrivals,
    /// How long they talk.
    pub handle: HandleTime,
    /// Mean of an exponential patience; `None` for callers who never hang up.
    pub patience: Option<Duration>,
    /// Their priority.
    pub priority: u8,
}

/// A whole simulated contact centre: the ACD's configuration and the traffic into it.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The ACD.
    pub config: AcdConfig,
    /// The callers.
    pub traffic: Vec<Traffic>,
    /// How long a phone rings before the agent answers.
    pub ring_delay: Duration,
    /// When agents work. `None`: every agent logs in at the start and stays.
    pub opening: Option<Opening>,
}

/// Daily opening hours: every agent logs in when the centre opens and logs out when it
/// closes (finishing a call in progress first). Callers still waiting at closing time wait
/// until they give up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Opening {
    /// How many days; day `d` opens at `d × 24` hours.
    pub days: u32,
    /// How long the centre is open each day.
    pub open_for: Duration,
}

impl Scenario {
    /// One queue served by `agents` identical agents with first-come-first-served routing,
    /// the setting of Erlang's models.
    pub fn single_queue(agents: u32, traffic: Traffic) -> Scenario {
        let mut queue = QueueConfig::new(traffic.queue.clone(), &["general"]);
        queue.expected_handle_time = traffic.handle.mean();
        let config = AcdConfig {
            skills: vec!["general".into()],
            queues: vec![queue],
            agents: (1..=agents)
                .map(|i| AgentConfig::new(format!("agent-{i:03}"), &[("general", 5)]))
                .collect(),
            ..AcdConfig::default()
        };
        // A profile is a working day: agents work its hours.
        let opening = match &traffic.arrivals {
            Arrivals::Profile { hourly, days } => Some(Opening {
                days: *days,
                open_for: Duration::from_secs(3600 * hourly.len() as u64),
            }),
            Arrivals::Poisson { .. } => None,
        };
        Scenario {
            config,
            traffic: vec![traffic],
            ring_delay: Duration::ZERO,
            opening,
        }
    }

    /// Parma's contact centre on a day like its reported ones: 1,225 calls over a 10-hour
    /// day with [`PARMA_PROFILE`], 13 agents, exponential handle time with mean 240 s,
    /// exponential patience with mean 180 s.
    pub fn parma_day() -> Scenario {
        Scenario::parma(1, 1225)
    }

    /// `days` days of Parma traffic, `calls` calls in all (216 working days carry Parma's
    /// 265,000 calls a year).
    pub fn parma(days: u32, calls: u64) -> Scenario {
        Scenario::single_queue(
            13,
            Traffic {
                queue: "comune".into(),
                calls,
                arrivals: Arrivals::Profile {
                    hourly: PARMA_PROFILE.to_vec(),
                    days,
                },
                handle: HandleTime::Exponential {
                    mean: Duration::from_secs(240),
                },
                patience: Some(Duration::from_secs(180)),
                priority: 0,
            },
        )
    }
}

/// Why a simulation could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulationError {
    /// The ACD refused the configuration or an input.
    #[error(transparent)]
    Acd(#[from] AcdError),
    /// A traffic stream names a queue the configuration lacks.
    #[error("traffic for queue '{0}', which the configuration does not have")]
    UnknownQueue(String),
    /// A rate, mean or profile is not a positive finite number.
    #[error("{field} must be a positive finite number, got {value}")]
    InvalidParameter {
        /// The parameter.
        field: &'static str,
        /// Its value.
        value: f64,
    },
}

/// What a run leaves: the ACD with its statistics, and the run's own counts.
#[derive(Debug)]
pub struct Outcome {
    /// The ACD after the last call; its queue statistics are the simulation's results.
    pub acd: Acd,
    /// Calls that arrived.
    pub arrivals: u64,
    /// Inputs handed to the ACD.
    pub inputs: u64,
    /// Virtual time at the end.
    pub end: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    /// The next call of a traffic stream arrives.
    Arrival { traffic: usize },
    /// A caller's patience runs out.
    Patience { call: CallId },
    /// An agent picks up.
    Pickup { call: CallId, agent: AgentId },
    /// A conversation ends.
    Hangup { call: CallId },
    /// The centre opens (agents log in) or closes (agents log out).
    Shift { open: bool },
}

#[derive(Clone, Copy, Debug)]
struct SimCall {
    handle: Duration,
    ringing: Option<AgentId>,
    connected: bool,
}

/// Runs a scenario to its end: every call arrives and ends.
pub fn run(scenario: &Scenario, seed: u64) -> Result<Outcome, SimulationError> {
    let start = Timestamp::ZERO;
    let mut acd = Acd::new(scenario.config.clone(), start)?;
    let mut rng = Rng::new(seed);

    let mut queues = Vec::with_capacity(scenario.traffic.len());
    let mut arrival_times = Vec::with_capacity(scenario.traffic.len());
    for traffic in &scenario.traffic {
        queues.push(
            acd.queue_id(&traffic.queue)
                .ok_or_else(|| SimulationError::UnknownQueue(traffic.queue.clone()))?,
        );
        validate(traffic)?;
        arrival_times.push(arrival_times_of(traffic, &mut rng).into_iter());
    }

    let mut heap: BinaryHeap<Reverse<(Timestamp, u64, Happening)>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut schedule = |heap: &mut BinaryHeap<_>, at: Timestamp, happening: Happening| {
        order += 1;
        heap.push(Reverse((at, order, happening)));
    };
    for (traffic, times) in arrival_times.iter_mut().enumerate() {
        if let Some(at) = times.next() {
            schedule(&mut heap, at, Happening::Arrival { traffic });
        }
    }
    match scenario.opening {
        Some(opening) => {
            for day in 0..u64::from(opening.days) {
                let opens = start + Duration::from_secs(day * 24 * 3600);
                schedule(&mut heap, opens, Happening::Shift { open: true });
                schedule(
                    &mut heap,
                    opens + opening.open_for,
                    Happening::Shift { open: false },
                );
            }
        }
        None => schedule(&mut heap, start, Happening::Shift { open: true }),
    }

    let mut calls: FxHashMap<CallId, SimCall> = FxHashMap::default();
    let (mut arrivals, mut inputs, mut next_call) = (0u64, 0u64, 0u64);
    let mut now = start;
    let mut batch: Vec<Input> = Vec::new();
    loop {
        let next_event = heap.peek().map(|Reverse((at, _, _))| *at);
        if next_event.is_none() && calls.is_empty() {
            break;
        }
        batch.clear();
        match (next_event, acd.poll_timeout()) {
            // ACD deadlines go first on a tie, as a live server's timers would.
            (_, Some(deadline)) if next_event.is_none_or(|at| deadline <= at) => {
                now = deadline;
                batch.push(Input::Timeout);
            }
            _ => {
                let Reverse((at, _, happening)) = heap.pop().expect("peeked");
                now = at;
                match happening {
                    Happening::Arrival { traffic } => {
                        let stream = &scenario.traffic[traffic];
                        let call = CallId(next_call);
                        next_call += 1;
                        arrivals += 1;
                        let handle = stream.handle.sample(&mut rng);
                        if let Some(patience) = stream.patience {
                            let patience =
                                Duration::from_secs_f64(rng.exponential(patience.as_secs_f64()));
                            schedule(&mut heap, now + patience, Happening::Patience { call });
                        }
                        if let Some(at) = arrival_times[traffic].next() {
                            schedule(&mut heap, at, Happening::Arrival { traffic });
                        }
                        calls.insert(
                            call,
                            SimCall {
                                handle,
                                ringing: None,
                                connected: false,
                            },
                        );
                        batch.push(Input::CallArrived {
                            call,
                            queue: queues[traffic],
                            priority: stream.priority,
                        });
                    }
                    // Still waiting or ringing when patience runs out: the caller gives up.
                    Happening::Patience { call } => {
                        if calls.get(&call).is_some_and(|sim| !sim.connected) {
                            batch.push(Input::Hangup { call });
                        }
                    }
                    Happening::Pickup { call, agent } => {
                        if calls
                            .get(&call)
                            .is_some_and(|sim| sim.ringing == Some(agent))
                        {
                            batch.push(Input::OfferAnswered { call, agent });
                        }
                    }
                    Happening::Hangup { call } => batch.push(Input::Hangup { call }),
                    Happening::Shift { open } => {
                        batch.extend((0..acd.agent_count() as u32).map(AgentId).map(|agent| {
                            if open {
                                Input::Login { agent }
                            } else {
                                Input::Logout { agent }
                            }
                        }));
                    }
                }
            }
        }
        for input in batch.drain(..) {
            inputs += 1;
            acd.handle_input(now, input)?;
            while let Some(output) = acd.poll_output() {
                match output {
                    Output::Command(Command::Ring { call, agent, .. }) => {
                        if let Some(sim) = calls.get_mut(&call) {
                            sim.ringing = Some(agent);
                        }
                        schedule(
                            &mut heap,
                            now + scenario.ring_delay,
                            Happening::Pickup { call, agent },
                        );
                    }
                    Output::Command(Command::StopRinging { call, .. }) => {
                        if let Some(sim) = calls.get_mut(&call) {
                            sim.ringing = None;
                        }
                    }
                    Output::Event(Event::CallConnected { call, .. }) => {
                        if let Some(sim) = calls.get_mut(&call) {
                            schedule(&mut heap, now + sim.handle, Happening::Hangup { call });
                            sim.connected = true;
                            sim.ringing = None;
                        }
                    }
                    Output::Event(
                        Event::CallAbandoned { call, .. }
                        | Event::CallCompleted { call, .. }
                        | Event::CallOverflowed {
                            call,
                            to: OverflowedTo::Hangup | OverflowedTo::External(_),
                            ..
                        },
                    ) => {
                        calls.remove(&call);
                    }
                    _ => {}
                }
            }
        }
    }
    // Close the books: finish the wrap-ups still running.
    while let Some(deadline) = acd.poll_timeout() {
        let wrapping_up = (0..acd.agent_count()).any(|a| {
            matches!(
                acd.agent_state(AgentId(a as u32)),
                Some(AgentState::WrapUp { .. })
            )
        });
        if !wrapping_up {
            break;
        }
        now = deadline;
        inputs += 1;
        acd.handle_input(now, Input::Timeout)?;
        while acd.poll_output().is_some() {}
    }
    Ok(Outcome {
        acd,
        arrivals,
        inputs,
        end: now,
    })
}

fn validate(traffic: &Traffic) -> Result<(), SimulationError> {
    let positive = |field: &'static str, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(SimulationError::InvalidParameter { field, value })
        }
    };
    match &traffic.arrivals {
        Arrivals::Poisson { per_hour } => positive("arrival rate per hour", *per_hour)?,
        Arrivals::Profile { hourly, days } => {
            positive("profile days", f64::from(*days))?;
            positive("profile total weight", hourly.iter().sum())?;
            for &weight in hourly {
                if !(weight.is_finite() && weight >= 0.0) {
                    return Err(SimulationError::InvalidParameter {
                        field: "profile weight",
                        value: weight,
                    });
                }
            }
        }
    }
    positive("handle time", traffic.handle.mean().as_secs_f64())?;
    if let HandleTime::LogNormal { cv, .. } = traffic.handle {
        positive("handle time coefficient of variation", cv)?;
    }
    if let Some(patience) = traffic.patience {
        positive("patience", patience.as_secs_f64())?;
    }
    Ok(())
}

fn arrival_times_of(traffic: &Traffic, rng: &mut Rng) -> Vec<Timestamp> {
    match &traffic.arrivals {
        Arrivals::Poisson { per_hour } => {
            let mean_gap = 3600.0 / per_hour;
            let mut t = 0.0;
            (0..traffic.calls)
                .map(|_| {
                    t += rng.exponential(mean_gap);
                    Timestamp::from_secs_f64(t)
                })
                .collect()
        }
        Arrivals::Profile { hourly, days } => {
            let total: f64 = hourly.iter().sum();
            let cumulative: Vec<f64> = hourly
                .iter()
                .scan(0.0, |sum, weight| {
                    *sum += weight / total;
                    Some(*sum)
                })
                .collect();
            let mut times: Vec<Timestamp> = (0..traffic.calls)
                .map(|_| {
                    let day = (rng.uniform() * f64::from(*days)) as u64;
                    let u = rng.uniform();
                    let hour = cumulative
                        .partition_point(|&c| c <= u)
                        .min(hourly.len() - 1);
                    let secs = (day * 24 + hour as u64) as f64 * 3600.0 + rng.uniform() * 3600.0;
                    Timestamp::from_secs_f64(secs)
                })
                .collect();
            times.sort_unstable();
            times
        }
    }
}

/// What Erlang A predicts for a traffic stream served by `agents` agents: the stationary
/// figures at its rate, or for a profile the arrival-weighted mean over its hours (each
/// hour taken as stationary). Probabilities are per arriving caller; ASA is weighted by
/// answered callers.
pub fn erlang_a_for(
    traffic: &Traffic,
    agents: u32,
    thresholds: Thresholds,
) -> Result<Figures, ErlangError> {
    let handle = traffic.handle.mean().as_secs_f64();
    let patience = traffic.patience.map(|p| p.as_secs_f64());
    let hours: Vec<(f64, f64)> = match &traffic.arrivals {
        Arrivals::Poisson { per_hour } => vec![(1.0, per_hour / 3600.0)],
        Arrivals::Profile { hourly, days } => {
            let total: f64 = hourly.iter().sum();
            let per_day = traffic.calls as f64 / f64::from(*days);
            hourly
                .iter()
                .filter(|&&w| w > 0.0)
                .map(|w| (w / total, per_day * w / total / 3600.0))
                .collect()
        }
    };
    let count = hours.len() as f64;
    let mut mean: Option<Figures> = None;
    let (mut answered_weight, mut asa, mut load, mut occupancy) = (0.0, 0.0, 0.0, 0.0);
    for (weight, rate) in hours {
        let figures = erlang::erlang_a(
            erlang::Traffic {
                arrivals_per_sec: rate,
                mean_handle_secs: handle,
                mean_patience_secs: patience,
            },
            agents,
            thresholds,
        )?;
        let answered = weight * (1.0 - figures.p_abandon);
        answered_weight += answered;
        asa += answered * figures.asa_secs;
        load += figures.offered_erlangs / count;
        occupancy += figures.occupancy / count;
        mean = Some(match mean {
            None => scale(&figures, weight),
            Some(sum) => add(&sum, &scale(&figures, weight)),
        });
    }
    let mut mean = mean.ok_or(ErlangError::InvalidParameter {
        name: "profile",
        value: 0.0,
    })?;
    // Ratios are recomputed from the averaged probabilities; time averages over the hours.
    mean.agents = agents;
    mean.asa_secs = if answered_weight > 0.0 {
        asa / answered_weight
    } else {
        0.0
    };
    mean.service_level = mean.p_answered_within_sl / (1.0 - mean.p_short_abandon);
    mean.offered_erlangs = load;
    mean.occupancy = occupancy;
    Ok(mean)
}

fn scale(f: &Figures, w: f64) -> Figures {
    Figures {
        agents: f.agents,
        offered_erlangs: f.offered_erlangs * w,
        p_wait: f.p_wait * w,
        p_abandon: f.p_abandon * w,
        p_abandon_after_threshold: f.p_abandon_after_threshold * w,
        p_short_abandon: f.p_short_abandon * w,
        p_answered_within_sl: f.p_answered_within_sl * w,
        p_abandoned_within_sl: f.p_abandoned_within_sl * w,
        service_level: f.service_level * w,
        service_level_abandons_met: f.service_level_abandons_met * w,
        asa_secs: f.asa_secs * w,
        mean_wait_secs: f.mean_wait_secs * w,
        occupancy: f.occupancy * w,
    }
}

fn add(a: &Figures, b: &Figures) -> Figures {
    Figures {
        agents: a.agents,
        offered_erlangs: a.offered_erlangs + b.offered_erlangs,
        p_wait: a.p_wait + b.p_wait,
        p_abandon: a.p_abandon + b.p_abandon,
        p_abandon_after_threshold: a.p_abandon_after_threshold + b.p_abandon_after_threshold,
        p_short_abandon: a.p_short_abandon + b.p_short_abandon,
        p_answered_within_sl: a.p_answered_within_sl + b.p_answered_within_sl,
        p_abandoned_within_sl: a.p_abandoned_within_sl + b.p_abandoned_within_sl,
        service_level: a.service_level + b.service_level,
        service_level_abandons_met: a.service_level_abandons_met + b.service_level_abandons_met,
        asa_secs: a.asa_secs + b.asa_secs,
        mean_wait_secs: a.mean_wait_secs + b.mean_wait_secs,
        occupancy: a.occupancy + b.occupancy,
    }
}

/// The queue a single-queue scenario's statistics are in.
pub const FIRST_QUEUE: QueueId = QueueId(0);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExpansionStep, Overflow};
    use crate::metrics::Distribution;

    fn two_queues() -> Scenario {
        let mut vip = QueueConfig::new("vip", &["vip"]);
        vip.expansion = vec![ExpansionStep {
            after: Duration::from_secs(30),
            min_level: None,
            add_queues: vec!["general".into()],
        }];
        let mut general = QueueConfig::new("general", &["general"]);
        general.max_wait = Some(Duration::from_secs(300));
        general.overflow = Overflow::External("voicemail".into());
        general.wrap_up = Duration::from_secs(20);
        let agents = (0..12)
            .map(|i| {
                let skills: &[(&str, u8)] = if i < 3 {
                    &[("vip", 8), ("general", 5)]
                } else {
                    &[("general", 5)]
                };
                AgentConfig::new(format!("agent{i}"), skills)
            })
            .collect();
        let stream = |queue: &str, per_hour: f64, priority: u8| Traffic {
            queue: queue.into(),
            calls: 5_000,
            arrivals: Arrivals::Poisson { per_hour },
            handle: HandleTime::LogNormal {
                mean: Duration::from_secs(200),
                cv: 0.7,
            },
            patience: Some(Duration::from_secs(150)),
            priority,
        };
        Scenario {
            config: AcdConfig {
                skills: vec!["vip".into(), "general".into()],
                queues: vec![vip, general],
                agents,
                ..AcdConfig::default()
            },
            traffic: vec![stream("vip", 20.0, 5), stream("general", 180.0, 0)],
            ring_delay: Duration::from_secs(3),
            opening: None,
        }
    }

    #[test]
    fn several_queues_and_skills_run_to_the_end_with_every_call_accounted_for() {
        let outcome = run(&two_queues(), 3).unwrap();
        assert_eq!(outcome.arrivals, 10_000);
        assert_eq!(outcome.acd.call_count(), 0);
        let mut ended = 0;
        for queue in [QueueId(0), QueueId(1)] {
            let c = outcome.acd.queue_stats(queue).unwrap().counters;
            assert_eq!(c.offered, c.answered + c.abandoned + c.overflowed);
            assert_eq!(c.answered, c.completed);
            ended += c.answered + c.abandoned;
        }
        let overflowed = outcome
            .acd
            .queue_stats(QueueId(1))
            .unwrap()
            .counters
            .overflowed;
        assert_eq!(ended + overflowed, 10_000);
        // Ring delay shows in ring times; VIP callers, with their own agents and priority,
        // wait less.
        let vip = outcome.acd.queue_stats(QueueId(0)).unwrap().rates();
        let general = outcome.acd.queue_stats(QueueId(1)).unwrap().rates();
        assert!(
            vip.asa.unwrap() < general.asa.unwrap(),
            "{vip:?} {general:?}"
        );
        let ring = outcome.acd.queue_stats(QueueId(0)).unwrap().ring.summary();
        assert_eq!(ring.p50, Duration::from_secs(3));
        assert!(
            general.aht.unwrap() > Duration::from_secs(200),
            "wrap-up counts in AHT"
        );
    }

    #[test]
    fn a_seed_fixes_the_run() {
        let a = run(&two_queues(), 9).unwrap();
        let b = run(&two_queues(), 9).unwrap();
        let c = run(&two_queues(), 10).unwrap();
        let summary = |o: &Outcome| o.acd.queue_stats(QueueId(1)).unwrap().summary();
        assert_eq!(summary(&a), summary(&b));
        assert_eq!(a.inputs, b.inputs);
        assert_ne!(summary(&a), summary(&c));
    }

    #[test]
    fn bad_parameters_are_named() {
        let mut scenario = Scenario::parma_day();
        scenario.traffic[0].handle = HandleTime::LogNormal {
            mean: Duration::from_secs(240),
            cv: 0.0,
        };
        assert_eq!(
            run(&scenario, 1).unwrap_err(),
            SimulationError::InvalidParameter {
                field: "handle time coefficient of variation",
                value: 0.0
            }
        );
        let mut scenario = Scenario::parma_day();
        scenario.traffic[0].queue = "nowhere".into();
        assert_eq!(
            run(&scenario, 1).unwrap_err().to_string(),
            "traffic for queue 'nowhere', which the configuration does not have"
        );
        let mut scenario = Scenario::parma_day();
        scenario.traffic[0].arrivals = Arrivals::Poisson { per_hour: f64::NAN };
        assert!(matches!(
            run(&scenario, 1).unwrap_err(),
            SimulationError::InvalidParameter {
                field: "arrival rate per hour",
                ..
            }
        ));
    }

    #[test]
    fn a_profile_day_puts_the_peak_hour_share_in_the_peak_hour() {
        let traffic = Scenario::parma(10, 12_250).traffic.remove(0);
        let times = arrival_times_of(&traffic, &mut Rng::new(1));
        let in_peak = times
            .iter()
            .filter(|t| {
                let hour_of_day = (t.as_secs_f64() / 3600.0) as u64 % 24;
                hour_of_day == 3
            })
            .count();
        let share = in_peak as f64 / times.len() as f64;
        assert!((share - 0.15).abs() < 0.01, "{share}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            times
                .iter()
                .all(|t| (t.as_secs_f64() / 3600.0) as u64 % 24 < 10)
        );
    }
}
