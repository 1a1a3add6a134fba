//! A tally of the ACD's events gives exactly the ACD's own statistics.
//!
//! The real ACD runs varied traffic on a virtual clock: several queues with different
//! thresholds, short and long abandons, overflows at the door and after a wait, rings
//! without an answer, rejections, pauses and logouts, callbacks that connect or are never
//! reached, survey votes, wrap-ups, over many statistics intervals; and a supervisor's
//! actions: wrap-up extensions, priorities, moves between queues, queue updates (new
//! thresholds among them) and reloads that add, change, close and reopen queues and agents. Every event it emits
//! goes through JSON, as a queue log stores it, into a [`Tally`], and every figure the ACD
//! exposes must come out equal: counters, rates, the count, sum and maximum of every
//! distribution, every interval report, agent time per interval.

use std::collections::HashMap;
use std::time::Duration;

use amico_core::metrics::{
    AgentFigures, AgentIntervalReport, AgentTime, Counters, Distribution, IntervalReport,
    QueueSummary,
};
use amico_core::simulator::random::Rng;
use amico_core::tally::Tally;
use amico_core::{
    Acd, AcdConfig, AgentConfig, AgentId, AgentStatus, CallId, Command, Event, ExpansionStep,
    Input, NoAgentsPolicy, OfferFailure, Output, Overflow, OverflowedTo, QueueConfig, QueueId,
    QueueUpdate, SkillRequirement, StatisticsConfig, Strategy as Routing, Thresholds, Timestamp,
    Vote,
};
use proptest::prelude::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Three queues with their own thresholds, limits, overflows and wrap-ups; six agents;
/// intervals of `interval`, aligned on an origin that makes the first one partial.
fn config(interval: Duration) -> AcdConfig {
    let mut sales = QueueConfig::new("sales", &["sales"]);
    sales.skills[0].min_level = 5;
    sales.thresholds = Thresholds {
        service_level: secs(15),
        abandon: secs(30),
        short_abandon: secs(3),
    };
    sales.wrap_up = secs(8);
    sales.ring_timeout = secs(10);
    sales.retry_after = secs(4);
    sales.auto_pause_after = Some(2);
    sales.max_callers = Some(8);
    sales.max_wait = Some(secs(120));
    sales.overflow = Overflow::Queue("support".into());
    sales.expansion = vec![ExpansionStep {
        after: secs(20),
        min_level: Some(2),
        add_queues: vec![],
    }];
    sales.callback_attempts = 2;
    sales.callback_retry_after = secs(20);

    let mut support = QueueConfig::new("support", &["support"]);
    support.strategy = Routing::FewestCalls;
    support.max_callers = Some(6);
    support.overflow = Overflow::External("voicemail".into());
    support.when_no_agents = NoAgentsPolicy {
        join: false,
        leave: true,
    };
    support.ring_timeout = secs(6);

    let mut vip = QueueConfig::new("vip", &["sales", "support"]);
    vip.thresholds = Thresholds {
        service_level: secs(5),
        abandon: secs(10),
        short_abandon: secs(1),
    };
    vip.strategy = Routing::RoundRobin;
    vip.wrap_up = secs(20);
    vip.max_callers = Some(3);
    vip.max_wait = Some(secs(40));
    vip.overflow = Overflow::Queue("sales".into());
    vip.weight = 5;
    vip.retry_after = Duration::ZERO;

    AcdConfig {
        skills: vec!["sales".into(), "support".into()],
        queues: vec![sales, support, vip],
        agents: vec![
            AgentConfig::new("ada", &[("sales", 8), ("support", 3)]),
            AgentConfig::new("bob", &[("sales", 3)]),
            AgentConfig::new("cy", &[("support", 6)]),
            AgentConfig::new("di", &[("sales", 6), ("support", 6)]),
            AgentConfig::new("ed", &[("support", 2)]),
            AgentConfig::new("flo", &[("sales", 5), ("support", 9)]),
        ],
        statistics: StatisticsConfig {
            interval,
            interval_origin: Timestamp::from_secs(7),
            intervals_kept: 100_000,
            ..StatisticsConfig::default()
        },
    }
}

#[derive(Clone, Debug)]
enum Op {
    Arrive {
        queue: u32,
        priority: u8,
    },
    Hangup {
        pick: usize,
    },
    /// A supervisor ends a call.
    Remove {
        pick: usize,
    },
    /// Hang up a connected call.
    Complete {
        pick: usize,
    },
    Answer {
        pick: usize,
    },
    Fail {
        pick: usize,
        reason: OfferFailure,
    },
    Login {
        agent: u32,
    },
    Logout {
        agent: u32,
    },
    Pause {
        agent: u32,
    },
    Ready {
        agent: u32,
    },
    Estimate {
        pick: usize,
    },
    Callback {
        pick: usize,
    },
    CallbackOutcome {
        pick: usize,
        reached: bool,
    },
    Survey {
        pick: usize,
        vote: Option<Vote>,
    },
    Leave {
        pick: usize,
    },
    ExtendWrapUp {
        agent: u32,
        secs: u64,
    },
    SetPriority {
        pick: usize,
        priority: u8,
    },
    Move {
        pick: usize,
        queue: u32,
    },
    Update {
        queue: u32,
        variant: usize,
    },
    Reconfigure {
        variant: usize,
    },
    Advance {
        millis: u64,
    },
}

/// Queue updates: new thresholds, limits, skills and steps; one refused.
fn updates() -> Vec<QueueUpdate> {
    let none = QueueUpdate::default;
    vec![
        QueueUpdate {
            thresholds: Some(Thresholds {
                service_level: secs(8),
                abandon: secs(12),
                short_abandon: secs(2),
            }),
            ..none()
        },
        QueueUpdate {
            thresholds: Some(Thresholds::default()),
            max_wait: Some(Some(secs(25))),
            ..none()
        },
        QueueUpdate {
            skills: Some(vec![SkillRequirement {
                skill: "support".into(),
                min_level: 2,
            }]),
            expansion: Some(vec![]),
            weight: Some(9),
            ..none()
        },
        QueueUpdate {
            max_wait: Some(None),
            max_callers: Some(Some(2)),
            wrap_up: Some(secs(3)),
            strategy: Some(Routing::BestSkill),
            ..none()
        },
        QueueUpdate {
            when_no_agents: Some(NoAgentsPolicy {
                join: true,
                leave: true,
            }),
            callback_attempts: Some(1),
            ..none()
        },
        QueueUpdate {
            callback_retry_after: Some(Duration::ZERO),
            ..none()
        },
    ]
}

/// Configurations to reload (with the running statistics settings): thresholds and
/// agents changed; a new queue, skill and agents; "vip" closed; and a refused one.
fn reconfigs(base: &AcdConfig) -> Vec<AcdConfig> {
    let mut changed = base.clone();
    changed.queues[0].thresholds = Thresholds {
        service_level: secs(25),
        abandon: secs(20),
        short_abandon: secs(6),
    };
    changed.queues[1].thresholds.service_level = secs(4);
    changed.queues[2].wrap_up = secs(2);
    changed.agents.remove(1);
    changed
        .agents
        .push(AgentConfig::new("gus", &[("sales", 9), ("support", 9)]));
    let mut more = base.clone();
    more.skills.push("german".into());
    let mut night = QueueConfig::new("night", &["german"]);
    night.thresholds = Thresholds {
        service_level: secs(2),
        abandon: secs(4),
        short_abandon: secs(1),
    };
    night.overflow = Overflow::Queue("support".into());
    night.max_wait = Some(secs(30));
    more.queues.insert(1, night);
    more.agents
        .push(AgentConfig::new("gus", &[("sales", 9), ("support", 9)]));
    more.agents
        .push(AgentConfig::new("hal", &[("german", 5), ("support", 4)]));
    let mut without_vip = base.clone();
    without_vip.queues.pop();
    let mut refused = base.clone();
    refused.statistics.interval += secs(1);
    vec![base.clone(), changed, more, without_vip, refused]
}

/// Queues and agents of the first configuration; reloads add one queue and two agents.
const QUEUES: u32 = 3;
const AGENTS: u32 = 6;
const REASONS: [OfferFailure; 3] = [
    OfferFailure::NoAnswer,
    OfferFailure::Rejected,
    OfferFailure::Unreachable,
];
const VOTES: [Option<Vote>; 4] = [
    Some(Vote::Satisfied),
    Some(Vote::Sufficient),
    Some(Vote::Unsatisfied),
    None,
];

/// A long run's next operation; about a second passes between two on average.
fn random_op(rng: &mut Rng) -> Op {
    let pick = |rng: &mut Rng, n: u64| rng.next_u64() % n;
    let any = |rng: &mut Rng| rng.next_u64() as usize;
    let agent = |rng: &mut Rng| pick(rng, u64::from(AGENTS + 2)) as u32;
    match pick(rng, 46) {
        0..=4 => Op::Arrive {
            queue: pick(rng, u64::from(QUEUES + 1)) as u32,
            priority: pick(rng, 3) as u8,
        },
        5..=7 => Op::Hangup { pick: any(rng) },
        8..=12 => Op::Complete { pick: any(rng) },
        13..=18 => Op::Answer { pick: any(rng) },
        19 => Op::Fail {
            pick: any(rng),
            reason: REASONS[pick(rng, 3) as usize],
        },
        20 | 21 => Op::Login { agent: agent(rng) },
        22 => Op::Logout { agent: agent(rng) },
        23 => Op::Pause { agent: agent(rng) },
        24 | 25 => Op::Ready { agent: agent(rng) },
        26 => Op::Estimate { pick: any(rng) },
        27 => Op::Callback { pick: any(rng) },
        28 | 29 => Op::CallbackOutcome {
            pick: any(rng),
            reached: pick(rng, 3) > 0,
        },
        30 | 31 => Op::Survey {
            pick: any(rng),
            vote: VOTES[pick(rng, 4) as usize],
        },
        32 => Op::Leave { pick: any(rng) },
        36 => Op::ExtendWrapUp {
            agent: agent(rng),
            secs: pick(rng, 15),
        },
        37 => Op::SetPriority {
            pick: any(rng),
            priority: pick(rng, 3) as u8,
        },
        38 | 39 => Op::Move {
            pick: any(rng),
            queue: pick(rng, u64::from(QUEUES + 1)) as u32,
        },
        40 if pick(rng, 4) == 0 => Op::Update {
            queue: pick(rng, u64::from(QUEUES + 1)) as u32,
            variant: any(rng),
        },
        41 if pick(rng, 10) == 0 => Op::Reconfigure { variant: any(rng) },
        42 => Op::Remove { pick: any(rng) },
        // Whole seconds half the time, so that inputs and timers meet interval boundaries.
        33..=35 => Op::Advance {
            millis: rng.exponential(6.0).round() as u64 * 1000,
        },
        _ => Op::Advance {
            millis: (rng.exponential(6.0) * 1000.0) as u64,
        },
    }
}

fn arbitrary_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..QUEUES + 1, 0u8..3).prop_map(|(queue, priority)| Op::Arrive { queue, priority }),
        2 => any::<usize>().prop_map(|pick| Op::Hangup { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Complete { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        3 => any::<usize>().prop_map(|pick| Op::Answer { pick }),
        1 => (any::<usize>(), proptest::sample::select(REASONS.to_vec()))
            .prop_map(|(pick, reason)| Op::Fail { pick, reason }),
        1 => (0..AGENTS + 2).prop_map(|agent| Op::Login { agent }),
        1 => (0..AGENTS + 2).prop_map(|agent| Op::Logout { agent }),
        1 => (0..AGENTS + 2).prop_map(|agent| Op::Pause { agent }),
        1 => (0..AGENTS + 2).prop_map(|agent| Op::Ready { agent }),
        1 => any::<usize>().prop_map(|pick| Op::Estimate { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Callback { pick }),
        2 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, reached)| Op::CallbackOutcome { pick, reached }),
        1 => (any::<usize>(), proptest::sample::select(VOTES.to_vec()))
            .prop_map(|(pick, vote)| Op::Survey { pick, vote }),
        1 => any::<usize>().prop_map(|pick| Op::Leave { pick }),
        1 => (0..AGENTS + 2, 0u64..15).prop_map(|(agent, secs)| Op::ExtendWrapUp { agent, secs }),
        1 => (any::<usize>(), 0u8..3).prop_map(|(pick, priority)| Op::SetPriority { pick, priority }),
        2 => (any::<usize>(), 0..QUEUES + 1).prop_map(|(pick, queue)| Op::Move { pick, queue }),
        1 => (0..QUEUES + 1, any::<usize>()).prop_map(|(queue, variant)| Op::Update { queue, variant }),
        1 => any::<usize>().prop_map(|variant| Op::Reconfigure { variant }),
        2 => (0u64..40_000).prop_map(|millis| Op::Advance { millis }),
        2 => (0u64..40).prop_map(|secs| Op::Advance { millis: secs * 1000 }),
    ]
}

/// The ACD on a virtual clock, each event folded into a tally as it comes out.
struct Run {
    acd: Acd,
    now: Timestamp,
    tally: Tally,
    /// Timeouts come at every deadline, as the test harness delivers them, rather than
    /// only with the next input, as a busy server may deliver them late.
    exact: bool,
    /// Outputs that happened before the input that brought them out: timers fired late.
    late: usize,
    /// What the outputs say, to choose the next inputs.
    live: Vec<CallId>,
    ringing: Vec<(CallId, AgentId)>,
    dialing: Vec<CallId>,
    connected: Vec<CallId>,
    completed: Vec<(CallId, QueueId, AgentId)>,
    status: HashMap<AgentId, AgentStatus>,
    /// Each agent's calls answered (in the tally) at its last login: the ACD counts them
    /// since then.
    answered_at_login: HashMap<AgentId, u64>,
    next_call: u64,
    updates: Vec<QueueUpdate>,
    reconfigs: Vec<AcdConfig>,
    /// Queue and agent configuration changes reported.
    configured: usize,
}

impl Run {
    fn new(config: &AcdConfig, exact: bool) -> Self {
        Run::starting_at(config, exact, Timestamp::ZERO)
    }

    fn starting_at(config: &AcdConfig, exact: bool, start: Timestamp) -> Self {
        let acd = Acd::new(config.clone(), start).expect("valid config");
        let tally = Tally::for_config(config, acd.started());
        Run {
            acd,
            now: start,
            tally,
            exact,
            late: 0,
            live: Vec::new(),
            ringing: Vec::new(),
            dialing: Vec::new(),
            connected: Vec::new(),
            completed: Vec::new(),
            status: HashMap::new(),
            answered_at_login: HashMap::new(),
            next_call: 0,
            updates: updates(),
            reconfigs: reconfigs(config),
            configured: 0,
        }
    }

    fn apply(&mut self, op: Op) {
        let pick = |items: usize, pick: usize| (items > 0).then(|| pick % items);
        let input = match op {
            Op::Arrive { queue, priority } => {
                self.next_call += 1;
                let call = CallId(self.next_call);
                let arrived = Input::CallArrived {
                    call,
                    queue: QueueId(queue),
                    priority,
                };
                self.live.push(call);
                // An unknown or closed queue refuses it at the door.
                if !self.input(arrived) {
                    self.live.retain(|&c| c != call);
                }
                return;
            }
            Op::Hangup { pick: p } => match pick(self.live.len(), p) {
                Some(i) => Input::Hangup { call: self.live[i] },
                None => return,
            },
            Op::Remove { pick: p } => match pick(self.live.len(), p) {
                Some(i) => Input::RemoveCall { call: self.live[i] },
                None => return,
            },
            Op::Complete { pick: p } => match pick(self.connected.len(), p) {
                Some(i) => Input::Hangup {
                    call: self.connected[i],
                },
                None => return,
            },
            Op::Answer { pick: p } => match pick(self.ringing.len(), p) {
                Some(i) => {
                    let (call, agent) = self.ringing[i];
                    Input::OfferAnswered { call, agent }
                }
                None => return,
            },
            Op::Fail { pick: p, reason } => match pick(self.ringing.len(), p) {
                Some(i) => {
                    let (call, agent) = self.ringing[i];
                    Input::OfferFailed {
                        call,
                        agent,
                        reason,
                    }
                }
                None => return,
            },
            Op::Login { agent } => {
                let agent = AgentId(agent);
                let logged_out = self
                    .status
                    .get(&agent)
                    .is_none_or(|&status| status == AgentStatus::LoggedOut);
                let answered = self.tally.agent(agent).map_or(0, |f| f.calls_answered);
                // A retired agent's login is refused and starts nothing.
                if self.input(Input::Login { agent }) && logged_out {
                    self.answered_at_login.insert(agent, answered);
                }
                return;
            }
            Op::Logout { agent } => Input::Logout {
                agent: AgentId(agent),
            },
            Op::Pause { agent } => Input::Pause {
                agent: AgentId(agent),
                reason: "break".into(),
            },
            Op::Ready { agent } => Input::Ready {
                agent: AgentId(agent),
            },
            Op::Estimate { pick: p } => match pick(self.live.len(), p) {
                Some(i) => Input::EstimateWait { call: self.live[i] },
                None => return,
            },
            Op::Callback { pick: p } => match pick(self.live.len(), p) {
                Some(i) => Input::RequestCallback { call: self.live[i] },
                None => return,
            },
            Op::CallbackOutcome { pick: p, reached } => match pick(self.dialing.len(), p) {
                Some(i) if reached => Input::CallbackAnswered {
                    call: self.dialing[i],
                },
                Some(i) => Input::CallbackFailed {
                    call: self.dialing[i],
                },
                None => return,
            },
            Op::Survey { pick: p, vote } => match pick(self.completed.len(), p) {
                Some(i) => {
                    let (call, queue, agent) = self.completed.swap_remove(i);
                    Input::SurveyVote {
                        call,
                        queue,
                        agent,
                        vote,
                    }
                }
                None => return,
            },
            Op::Leave { pick: p } => match pick(self.live.len(), p) {
                Some(i) => Input::LeaveQueue { call: self.live[i] },
                None => return,
            },
            Op::ExtendWrapUp { agent, secs: s } => Input::ExtendWrapUp {
                agent: AgentId(agent),
                by: secs(s),
            },
            Op::SetPriority { pick: p, priority } => match pick(self.live.len(), p) {
                Some(i) => Input::SetPriority {
                    call: self.live[i],
                    priority,
                },
                None => return,
            },
            Op::Move { pick: p, queue } => match pick(self.live.len(), p) {
                Some(i) => Input::MoveCall {
                    call: self.live[i],
                    queue: QueueId(queue),
                },
                None => return,
            },
            Op::Update { queue, variant } => Input::UpdateQueue {
                queue: QueueId(queue),
                update: self.updates[variant % self.updates.len()].clone(),
            },
            Op::Reconfigure { variant } => Input::Reconfigure {
                config: self.reconfigs[variant % self.reconfigs.len()].clone(),
            },
            Op::Advance { millis } => return self.advance(Duration::from_millis(millis)),
        };
        self.input(input);
    }

    /// Moves the clock on, telling the ACD at every deadline on the way (exact) or only
    /// at the end (late).
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        if self.exact {
            while let Some(deadline) = self.acd.poll_timeout().filter(|&d| d < target) {
                self.now = self.now.max(deadline);
                self.input(Input::Timeout);
            }
        }
        self.now = target;
        self.input(Input::Timeout);
    }

    /// Whether the ACD accepted the input.
    fn input(&mut self, input: Input) -> bool {
        // Refused inputs (a late answer, a paused agent's pause) are part of the traffic;
        // they change nothing.
        let accepted = self.acd.handle_input(self.now, input).is_ok();
        while let Some((at, output)) = self.acd.poll_output_at() {
            assert!(at <= self.acd.now());
            if self.exact {
                // Timeouts on time: stamping with the ACD's time after the input is exact.
                assert_eq!(at, self.acd.now(), "{output:?}");
            }
            if at < self.acd.now() {
                self.late += 1;
            }
            match output {
                Output::Command(Command::Ring { call, agent, .. }) => {
                    self.ringing.push((call, agent));
                }
                Output::Command(Command::StopRinging { call, .. }) => {
                    self.ringing.retain(|&(c, _)| c != call);
                }
                Output::Command(_) => {}
                Output::Event(event) => self.observe(at, event),
            }
        }
        accepted
    }

    fn observe(&mut self, at: Timestamp, event: Event) {
        match event {
            Event::CallConnected { call, .. } => {
                self.ringing.retain(|&(c, _)| c != call);
                self.dialing.retain(|&c| c != call);
                self.connected.push(call);
            }
            Event::OfferFailed { call, .. } => self.ringing.retain(|&(c, _)| c != call),
            Event::CallbackDialing { call, .. } => {
                self.ringing.retain(|&(c, _)| c != call);
                self.dialing.push(call);
            }
            Event::CallbackRetrying { call, .. } => self.dialing.retain(|&c| c != call),
            Event::CallAbandoned { call, .. }
            | Event::CallRemoved { call, .. }
            | Event::CallbackUnanswered { call, .. } => {
                self.end(call);
            }
            Event::CallOverflowed { call, ref to, .. } if !matches!(to, OverflowedTo::Queue(_)) => {
                self.end(call);
            }
            Event::CallCompleted {
                call, queue, agent, ..
            } => {
                self.end(call);
                self.completed.push((call, queue, agent));
            }
            Event::AgentStateChanged { agent, state, .. } => {
                self.status.insert(agent, state);
            }
            Event::QueueConfigured { .. } | Event::AgentConfigured { .. } => {
                self.configured += 1;
            }
            _ => {}
        }
        // Stored as a queue log keeps it: one JSON line per event, with its time.
        let line = serde_json::to_string(&(at, &event)).expect("events serialise");
        let (at, stored): (Timestamp, Event) =
            serde_json::from_str(&line).expect("stored events read back");
        assert_eq!(stored, event, "{line}");
        self.tally.record(at, &stored);
    }

    fn end(&mut self, call: CallId) {
        self.live.retain(|&c| c != call);
        self.connected.retain(|&c| c != call);
        self.ringing.retain(|&(c, _)| c != call);
        self.dialing.retain(|&c| c != call);
    }

    /// Every figure the ACD exposes equals the tally's, the tally finished at the ACD's
    /// time.
    fn assert_tally_matches(&self) {
        let acd = &self.acd;
        let now = acd.now();
        let mut tally = self.tally.clone();
        tally.finish(now);
        assert_eq!(tally.ignored(), 0);
        let snapshot = acd.snapshot();
        let (queue_intervals, agent_intervals) = closed_intervals(acd);

        for (q, intervals) in queue_intervals.iter().enumerate() {
            let id = QueueId(q as u32);
            let live = acd.queue_stats(id).unwrap();
            let rebuilt = tally.queue(id).expect("every configured queue is listed");
            assert_eq!(rebuilt.counters, live.counters, "{id}: counters");
            for (name, live, rebuilt) in [
                ("wait", shape(&live.wait), shape(&rebuilt.wait)),
                ("abandon", shape(&live.abandon), shape(&rebuilt.abandon)),
                ("ring", shape(&live.ring), shape(&rebuilt.ring)),
                ("talk", shape(&live.talk), shape(&rebuilt.talk)),
                ("wrap-up", shape(&live.wrap_up), shape(&rebuilt.wrap_up)),
            ] {
                assert_eq!(rebuilt, live, "{id}: {name} (count, sum, max)");
            }
            assert_eq!(rebuilt.rates(), live.rates(), "{id}: rates");
            assert_same(
                tally.queue_intervals(id),
                intervals,
                &format!("{id}: intervals"),
            );
        }

        assert_eq!(tally.agent_time(), acd.agent_time(), "agent time");
        assert_same(
            tally.agent_time_intervals(),
            &agent_intervals,
            "agent intervals",
        );

        // Each agent: what the ACD keeps of it, and its share of the queues' figures.
        let mut agents = AgentFigures::default();
        for agent in &snapshot.agents {
            let figures = tally.agent(agent.id).copied().unwrap_or_default();
            assert_eq!(figures.survey, agent.survey, "{}: survey", agent.id);
            let since_login = figures.calls_answered
                - self.answered_at_login.get(&agent.id).copied().unwrap_or(0);
            assert_eq!(
                since_login,
                u64::from(agent.calls_answered),
                "{}: calls answered since login",
                agent.id
            );
            let mut by_interval = AgentFigures::default();
            for report in tally.agent_intervals(agent.id) {
                add(&mut by_interval, &report.figures);
            }
            assert_eq!(by_interval, figures, "{}: intervals add up", agent.id);
            add(&mut agents, &figures);
        }
        let mut queues = Counters::default();
        let (mut talk, mut wrap_up) = ((0, Duration::ZERO), (0, Duration::ZERO));
        for (_, stats) in tally.queues() {
            queues.answered += stats.counters.answered;
            queues.offers_failed += stats.counters.offers_failed;
            talk = (talk.0 + stats.talk.count(), talk.1 + stats.talk.sum());
            wrap_up = (
                wrap_up.0 + stats.wrap_up.count(),
                wrap_up.1 + stats.wrap_up.sum(),
            );
        }
        assert_eq!(agents.calls_answered, queues.answered);
        assert_eq!(agents.offers_failed.total(), queues.offers_failed);
        assert_eq!((agents.talk.count, agents.talk.sum), talk);
        assert_eq!((agents.wrap_up.count, agents.wrap_up.sum), wrap_up);
        assert_eq!(agents.time, acd.agent_time());
        for report in tally.agent_time_intervals() {
            let mut time = AgentTime::default();
            for (id, _) in tally.agents() {
                for agent in tally.agent_intervals(id) {
                    if (agent.start, agent.end) == (report.start, report.end) {
                        time += agent.figures.time;
                    }
                }
            }
            assert_eq!(
                time, report.time,
                "agents add up in {}..{}",
                report.start, report.end
            );
        }
    }
}

/// The ACD's interval reports, as a tally finished at the ACD's time gives them: the
/// closed ones, then the open one up to now when it has lasted or holds something; for
/// each queue, only those in which something was recorded.
fn closed_intervals(acd: &Acd) -> (Vec<Vec<IntervalReport>>, Vec<AgentIntervalReport>) {
    let now = acd.now();
    let snapshot = acd.snapshot();
    let start = snapshot.queues[0].interval_start;
    let open = |q: usize| acd.interval_stats(QueueId(q as u32)).unwrap();
    let open_reported = now > start || (0..acd.queue_count()).any(|q| !open(q).is_empty());
    let queues = (0..acd.queue_count())
        .map(|q| {
            let mut intervals: Vec<IntervalReport> = acd
                .closed_intervals(QueueId(q as u32))
                .filter(|report| !is_empty(&report.summary))
                .copied()
                .collect();
            if open_reported && !open(q).is_empty() {
                intervals.push(IntervalReport {
                    start,
                    end: now,
                    summary: open(q).summary(),
                });
            }
            intervals
        })
        .collect();
    let mut agents: Vec<AgentIntervalReport> = acd.closed_agent_intervals().copied().collect();
    if open_reported {
        agents.push(AgentIntervalReport {
            start,
            end: now,
            time: snapshot.interval_agent_time,
        });
    }
    (queues, agents)
}

/// Equal lists of reports; on a difference, names the first.
fn assert_same<T: PartialEq + std::fmt::Debug>(rebuilt: &[T], live: &[T], what: &str) {
    if let Some(i) = (0..rebuilt.len().min(live.len())).find(|&i| rebuilt[i] != live[i]) {
        panic!(
            "{what}, #{i} of {}:\n rebuilt {:?}\n    live {:?}",
            live.len(),
            rebuilt[i],
            live[i]
        );
    }
    assert_eq!(rebuilt.len(), live.len(), "{what}: how many");
}

/// Count, sum and maximum: what a histogram and raw samples both hold exactly.
fn shape(distribution: &impl Distribution) -> (u64, Duration, Duration) {
    (distribution.count(), distribution.sum(), distribution.max())
}

fn is_empty(summary: &QueueSummary) -> bool {
    summary.counters == Counters::default() && summary.wrap_up.count == 0
}

fn add(sum: &mut AgentFigures, figures: &AgentFigures) {
    sum.calls_answered += figures.calls_answered;
    sum.offers_failed.no_answer += figures.offers_failed.no_answer;
    sum.offers_failed.rejected += figures.offers_failed.rejected;
    sum.offers_failed.unreachable += figures.offers_failed.unreachable;
    sum.talk.count += figures.talk.count;
    sum.talk.sum += figures.talk.sum;
    sum.wrap_up.count += figures.wrap_up.count;
    sum.wrap_up.sum += figures.wrap_up.sum;
    sum.survey.satisfied += figures.survey.satisfied;
    sum.survey.sufficient += figures.survey.sufficient;
    sum.survey.unsatisfied += figures.survey.unsatisfied;
    sum.survey.no_vote += figures.survey.no_vote;
    sum.time += figures.time;
}

/// A long seeded run, checked every so often and at the end; returns it for coverage
/// checks.
fn long_run(exact: bool, seed: u64) -> Run {
    let config = config(secs(300));
    let mut run = Run::new(&config, exact);
    let mut rng = Rng::new(seed);
    for agent in 0..AGENTS {
        run.apply(Op::Login { agent });
    }
    for step in 1..=40_000 {
        run.apply(random_op(&mut rng));
        if step % 4_000 == 0 {
            run.assert_tally_matches();
        }
    }
    run.assert_tally_matches();
    run
}

#[test]
fn a_tally_of_the_stored_events_gives_every_figure_of_the_acd() {
    let run = long_run(true, 7);
    // The traffic went through everything the statistics count.
    let mut total = Counters::default();
    for q in 0..QUEUES {
        let c = run.acd.queue_stats(QueueId(q)).unwrap().counters;
        assert!(c.answered > 0 && c.abandoned > 0, "queue {q}: {c:?}");
        total.answered_within_sl += c.answered_within_sl;
        total.short_abandoned += c.short_abandoned;
        total.abandoned_after_threshold += c.abandoned_after_threshold;
        total.overflowed += c.overflowed;
        total.offers_failed += c.offers_failed;
        total.completed += c.completed;
        total.predictions_within_20pct += c.predictions_within_20pct;
        total.callbacks_requested += c.callbacks_requested;
        total.callbacks_unanswered += c.callbacks_unanswered;
        total.transferred += c.transferred;
        total.removed += c.removed;
        total.survey.satisfied += c.survey.satisfied;
        total.survey.no_vote += c.survey.no_vote;
    }
    for (name, count) in [
        (
            "answered within the service level",
            total.answered_within_sl,
        ),
        ("short abandons", total.short_abandoned),
        (
            "abandons after the threshold",
            total.abandoned_after_threshold,
        ),
        ("overflows", total.overflowed),
        ("failed offers", total.offers_failed),
        ("completed calls", total.completed),
        ("accurate predictions", total.predictions_within_20pct),
        ("callbacks", total.callbacks_requested),
        ("unreached callbacks", total.callbacks_unanswered),
        ("moves to another queue", total.transferred),
        ("calls removed by a supervisor", total.removed),
        ("satisfied votes", total.survey.satisfied),
        ("surveys without a vote", total.survey.no_vote),
    ] {
        assert!(count > 0, "no {name}");
    }
    let unanswered: u64 = run
        .tally
        .agents()
        .map(|(_, figures)| figures.offers_failed.no_answer)
        .sum();
    assert!(unanswered > 0, "no ring without an answer");
    let intervals = run.tally.agent_time_intervals().len();
    assert!(intervals > 20, "only {intervals} intervals");
    assert!(
        run.configured > 20,
        "only {} configuration changes",
        run.configured
    );
    assert!(
        run.acd.queue_count() > QUEUES as usize,
        "a reload added a queue"
    );
    let time = run.acd.agent_time();
    assert!(!time.paused.is_zero() && !time.busy.is_zero() && !time.available.is_zero());
    let wrap_ups = (0..QUEUES)
        .map(|q| run.acd.queue_stats(QueueId(q)).unwrap().wrap_up.sum())
        .sum::<Duration>();
    assert!(!wrap_ups.is_zero());
}

#[test]
fn timestamps_from_poll_output_at_keep_the_tally_exact_when_timeouts_come_late() {
    let run = long_run(false, 11);
    assert!(
        run.late > 1_000,
        "timers fired late only {} times",
        run.late
    );
}

#[test]
fn a_tally_across_a_restart_gives_the_figures_of_both_acds() {
    let config = config(secs(300));
    let mut rng = Rng::new(5);
    let mut first = Run::new(&config, true);
    for agent in 0..AGENTS {
        first.apply(Op::Login { agent });
    }
    for _ in 0..6_000 {
        first.apply(random_op(&mut rng));
    }
    // The server stops mid-interval, calls and agents in flight, and a new ACD starts.
    first.apply(Op::Advance { millis: 42_000 });
    let restart = first.acd.now();
    let mut second = Run::starting_at(&config, true, restart);
    second.tally = first.tally.clone();
    second.tally.restart_with_config(restart, &config);
    // Everyone is logged out in the new ACD until they log in again.
    second.apply(Op::Advance { millis: 30_000 });
    for agent in 0..AGENTS / 2 {
        second.apply(Op::Login { agent });
    }
    for _ in 0..6_000 {
        second.apply(random_op(&mut rng));
    }
    let mut tally = second.tally.clone();
    tally.finish(second.acd.now());

    let (first_queues, first_agents) = closed_intervals(&first.acd);
    let (second_queues, second_agents) = closed_intervals(&second.acd);
    for q in 0..QUEUES {
        let id = QueueId(q);
        let both: Vec<IntervalReport> = [&first_queues, &second_queues]
            .into_iter()
            .flat_map(|intervals| intervals[q as usize].iter().copied())
            .collect();
        assert_same(
            tally.queue_intervals(id),
            &both,
            &format!("{id}: intervals"),
        );
        let (one, two) = (
            first.acd.queue_stats(id).unwrap(),
            second.acd.queue_stats(id).unwrap(),
        );
        let rebuilt = tally.queue(id).unwrap();
        assert_eq!(
            rebuilt.counters.answered,
            one.counters.answered + two.counters.answered
        );
        assert_eq!(rebuilt.wait.sum(), one.wait.sum() + two.wait.sum());
        assert_eq!(
            rebuilt.wrap_up.count(),
            one.wrap_up.count() + two.wrap_up.count()
        );
    }
    let both: Vec<AgentIntervalReport> = first_agents.into_iter().chain(second_agents).collect();
    assert_same(tally.agent_time_intervals(), &both, "agent intervals");
    let mut time = first.acd.agent_time();
    time += second.acd.agent_time();
    assert_eq!(tally.agent_time(), time);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_tally_matches_the_acd_after_any_sequence_of_operations(
        ops in proptest::collection::vec(arbitrary_op(), 1..300),
        exact in any::<bool>(),
    ) {
        let config = config(secs(60));
        let mut run = Run::new(&config, exact);
        for op in ops {
            let advance = matches!(op, Op::Advance { .. });
            run.apply(op);
            if advance {
                run.assert_tally_matches();
            }
        }
        run.assert_tally_matches();
    }
}
