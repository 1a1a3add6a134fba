//! Property tests: random sequences of operations against the ACD's invariants.
//!
//! - no call is offered to two agents at once;
//! - no agent holds two calls;
//! - first come, first served within a priority (a one-queue setting where nothing skips);
//! - every call that entered ends exactly once;
//! - histogram counts equal the calls they describe, and every offered call is accounted
//!   for: offered = answered + abandoned + overflowed + transferred + removed + callbacks
//!   unreached + still queued;
//! - no call joins a closed queue and no retired agent is rung.
//!
//! The operations include the supervisor's (wrap-up extensions, priorities, moves,
//! removals, queue updates) and whole reconfigurations, valid and refused.

#[path = "support/harness.rs"]
mod harness;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use amico_core::metrics::Distribution;
use amico_core::{
    AcdConfig, AgentConfig, AgentId, AgentState, CallId, Command, ConfigChange, Event,
    ExpansionStep, Input, NoAgentsPolicy, OfferFailure, Output, Overflow, OverflowedTo,
    QueueConfig, QueueId, QueueUpdate, SkillRequirement, Strategy as Routing, Thresholds,
};
use harness::Harness;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Arrive { queue: u32, priority: u8 },
    Hangup { pick: usize },
    Remove { pick: usize },
    Answer { pick: usize },
    Fail { pick: usize, reason: OfferFailure },
    Login { agent: u32 },
    Logout { agent: u32 },
    Pause { agent: u32 },
    Ready { agent: u32 },
    Estimate { pick: usize },
    Leave { pick: usize },
    Callback { pick: usize },
    CallbackOutcome { pick: usize, reached: bool },
    ExtendWrapUp { agent: u32, secs: u64 },
    SetPriority { pick: usize, priority: u8 },
    Move { pick: usize, queue: u32 },
    Update { queue: u32, variant: usize },
    Reconfigure { variant: usize },
    Advance { millis: u64 },
}

/// Queue and agent numbers go past the configured ones: to the queues and agents a
/// reconfiguration adds, and to unknown ones.
fn op(queues: u32, agents: u32) -> impl Strategy<Value = Op> {
    let reason = prop_oneof![
        Just(OfferFailure::NoAnswer),
        Just(OfferFailure::Rejected),
        Just(OfferFailure::Unreachable)
    ];
    prop_oneof![
        4 => (0..queues + 1, 0u8..3).prop_map(|(queue, priority)| Op::Arrive { queue, priority }),
        2 => any::<usize>().prop_map(|pick| Op::Hangup { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        3 => any::<usize>().prop_map(|pick| Op::Answer { pick }),
        1 => (any::<usize>(), reason).prop_map(|(pick, reason)| Op::Fail { pick, reason }),
        1 => (0..agents + 2).prop_map(|agent| Op::Login { agent }),
        1 => (0..agents + 2).prop_map(|agent| Op::Logout { agent }),
        1 => (0..agents + 2).prop_map(|agent| Op::Pause { agent }),
        1 => (0..agents + 2).prop_map(|agent| Op::Ready { agent }),
        1 => any::<usize>().prop_map(|pick| Op::Estimate { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Leave { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Callback { pick }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, reached)| Op::CallbackOutcome { pick, reached }),
        1 => (0..agents + 2, 0u64..20).prop_map(|(agent, secs)| Op::ExtendWrapUp { agent, secs }),
        1 => (any::<usize>(), 0u8..4).prop_map(|(pick, priority)| Op::SetPriority { pick, priority }),
        1 => (any::<usize>(), 0..queues + 2).prop_map(|(pick, queue)| Op::Move { pick, queue }),
        1 => (0..queues + 2, any::<usize>()).prop_map(|(queue, variant)| Op::Update { queue, variant }),
        1 => any::<usize>().prop_map(|variant| Op::Reconfigure { variant }),
        3 => (0u64..40_000).prop_map(|millis| Op::Advance { millis }),
    ]
}

/// Queue updates for the rich setting: each setting, some refused.
fn rich_updates() -> Vec<QueueUpdate> {
    let none = QueueUpdate::default;
    vec![
        QueueUpdate {
            skills: Some(vec![SkillRequirement {
                skill: "sales".into(),
                min_level: 3,
            }]),
            ..none()
        },
        QueueUpdate {
            expansion: Some(vec![]),
            ..none()
        },
        QueueUpdate {
            expansion: Some(vec![ExpansionStep {
                after: Duration::from_secs(5),
                min_level: Some(1),
                add_queues: vec![],
            }]),
            strategy: Some(Routing::BestSkill),
            ..none()
        },
        QueueUpdate {
            max_wait: Some(Some(Duration::from_secs(15))),
            weight: Some(7),
            ..none()
        },
        QueueUpdate {
            max_wait: Some(None),
            max_callers: Some(None),
            ..none()
        },
        QueueUpdate {
            max_callers: Some(Some(2)),
            ring_timeout: Some(Duration::from_secs(3)),
            retry_after: Some(Duration::ZERO),
            ..none()
        },
        QueueUpdate {
            when_no_agents: Some(NoAgentsPolicy {
                join: false,
                leave: true,
            }),
            wrap_up: Some(Duration::from_secs(12)),
            auto_pause_after: Some(None),
            ..none()
        },
        QueueUpdate {
            thresholds: Some(Thresholds {
                service_level: Duration::from_secs(3),
                abandon: Duration::from_secs(9),
                short_abandon: Duration::from_secs(1),
            }),
            callback_attempts: Some(1),
            ..none()
        },
        // Refused: a zero maximum wait; a queue overflowing into itself (for sales).
        QueueUpdate {
            max_wait: Some(Some(Duration::ZERO)),
            ..none()
        },
        QueueUpdate {
            overflow: Some(Overflow::Queue("sales".into())),
            ..none()
        },
    ]
}

/// Configurations for the rich setting to reload: agents and queues added, changed and
/// removed, and refused ones.
fn rich_reconfigs() -> Vec<AcdConfig> {
    let base = rich_config();
    let mut agents = base.clone();
    agents.agents.remove(0);
    agents.agents[0].skills[0].level = 9;
    agents
        .agents
        .push(AgentConfig::new("e", &[("sales", 7), ("billing", 3)]));
    let mut vip = base.clone();
    vip.skills.push("vip".into());
    let mut queue = QueueConfig::new("vip", &["vip"]);
    queue.overflow = Overflow::Queue("billing".into());
    queue.max_wait = Some(Duration::from_secs(20));
    vip.queues.insert(0, queue);
    vip.queues[1].thresholds.service_level = Duration::from_secs(5);
    vip.agents
        .push(AgentConfig::new("f", &[("vip", 5), ("billing", 9)]));
    let mut without_billing = base.clone();
    without_billing.queues.remove(1);
    without_billing.queues[0].overflow = Overflow::Hangup;
    without_billing.queues[0].expansion.pop();
    let mut unknown_skill = base.clone();
    unknown_skill.agents[1].skills[0].skill = "nope".into();
    let mut interval = base.clone();
    interval.statistics.interval = Duration::from_secs(60);
    vec![base, agents, vip, without_billing, unknown_skill, interval]
}

/// Updates that keep one queue first come, first served: no skipping, no expansion.
fn fifo_updates() -> Vec<QueueUpdate> {
    let none = QueueUpdate::default;
    vec![
        QueueUpdate {
            max_wait: Some(Some(Duration::from_secs(25))),
            ..none()
        },
        QueueUpdate {
            max_wait: Some(None),
            ring_timeout: Some(Duration::from_secs(3)),
            strategy: Some(Routing::RoundRobin),
            ..none()
        },
        QueueUpdate {
            wrap_up: Some(Duration::from_secs(4)),
            max_callers: Some(Some(3)),
            weight: Some(2),
            ..none()
        },
        QueueUpdate {
            ring_timeout: Some(Duration::ZERO),
            ..none()
        },
    ]
}

fn fifo_reconfigs() -> Vec<AcdConfig> {
    let base = fifo_config();
    let mut agents = base.clone();
    agents.agents.remove(1);
    agents.agents.push(AgentConfig::new("a3", &[("s", 5)]));
    agents.agents.push(AgentConfig::new("a4", &[("s", 5)]));
    let mut queue = base.clone();
    queue.queues[0].max_wait = Some(Duration::from_secs(30));
    queue.queues[0].thresholds.service_level = Duration::from_secs(2);
    let mut refused = base.clone();
    refused.queues[0].callback_attempts = 0;
    vec![base, agents, queue, refused]
}

/// Two queues with overlapping skills, expansion, limits, overflow, wrap-up, auto-pause.
fn rich_config() -> AcdConfig {
    let mut sales = QueueConfig::new("sales", &["sales"]);
    sales.skills[0].min_level = 6;
    sales.expansion = vec![
        ExpansionStep {
            after: Duration::from_secs(10),
            min_level: Some(3),
            add_queues: vec![],
        },
        ExpansionStep {
            after: Duration::from_secs(25),
            min_level: None,
            add_queues: vec!["billing".into()],
        },
    ];
    sales.max_callers = Some(6);
    sales.max_wait = Some(Duration::from_secs(90));
    sales.overflow = Overflow::Queue("billing".into());
    sales.ring_timeout = Duration::from_secs(8);
    sales.wrap_up = Duration::from_secs(5);
    sales.auto_pause_after = Some(3);
    sales.strategy = Routing::FewestCalls;
    let mut billing = QueueConfig::new("billing", &["billing"]);
    billing.max_callers = Some(5);
    billing.overflow = Overflow::External("voicemail".into());
    billing.strategy = Routing::RoundRobin;
    billing.weight = 3;
    billing.retry_after = Duration::from_secs(3);
    AcdConfig {
        skills: vec!["sales".into(), "billing".into()],
        queues: vec![sales, billing],
        agents: vec![
            AgentConfig::new("a", &[("sales", 8)]),
            AgentConfig::new("b", &[("sales", 4), ("billing", 5)]),
            AgentConfig::new("c", &[("billing", 7)]),
            AgentConfig::new("d", &[("sales", 6), ("billing", 2)]),
        ],
        statistics: amico_core::StatisticsConfig {
            interval: Duration::from_secs(120),
            ..Default::default()
        },
    }
}

/// One queue, no skipping: strict first come, first served within a priority.
fn fifo_config() -> AcdConfig {
    let mut queue = QueueConfig::new("q", &["s"]);
    queue.retry_after = Duration::ZERO;
    queue.ring_timeout = Duration::from_secs(8);
    AcdConfig {
        skills: vec!["s".into()],
        queues: vec![queue],
        agents: (0..3)
            .map(|i| AgentConfig::new(format!("a{i}"), &[("s", 5)]))
            .collect(),
        ..AcdConfig::default()
    }
}

/// What the outputs say, checked as they come.
#[derive(Default)]
struct Model {
    arrived: HashSet<u64>,
    priority: HashMap<u64, u8>,
    /// Calls waiting for an agent (not ringing), with their arrival order.
    waiting: BTreeMap<u64, u8>,
    ringing: HashMap<u64, u32>,
    /// Callbacks whose agent answered, the caller being called back.
    dialing: HashMap<u64, u32>,
    connected: HashMap<u64, u32>,
    /// Each agent's call, ringing or connected.
    agent_call: HashMap<u32, u64>,
    ended: HashMap<u64, u32>,
    retired: HashSet<u32>,
    closed: HashSet<u32>,
    fifo: bool,
}

impl Model {
    fn observe(&mut self, output: &Output) {
        match output {
            Output::Command(Command::Ring { call, agent, .. }) => {
                let (call, agent) = (call.0, agent.0);
                assert!(
                    !self.ringing.contains_key(&call),
                    "{call} offered to two agents"
                );
                assert!(
                    !self.connected.contains_key(&call),
                    "{call} offered while connected"
                );
                assert!(
                    !self.agent_call.contains_key(&agent),
                    "agent {agent} offered {call} while holding {:?}",
                    self.agent_call.get(&agent)
                );
                assert!(!self.retired.contains(&agent), "retired agent {agent} rung");
                if self.fifo {
                    let mine = self.priority[&call];
                    for (&other, &priority) in &self.waiting {
                        assert!(
                            priority < mine || (priority == mine && other >= call),
                            "{call} (priority {mine}) rung before {other} (priority {priority})"
                        );
                    }
                }
                self.waiting.remove(&call);
                self.ringing.insert(call, agent);
                self.agent_call.insert(agent, call);
            }
            Output::Command(Command::StopRinging { call, agent }) => {
                assert_eq!(self.ringing.remove(&call.0), Some(agent.0));
                self.agent_call.remove(&agent.0);
                self.waiting.insert(call.0, self.priority[&call.0]);
            }
            Output::Event(Event::OfferFailed { call, agent, .. }) => {
                if self.ringing.get(&call.0) == Some(&agent.0) {
                    self.ringing.remove(&call.0);
                    self.agent_call.remove(&agent.0);
                }
                self.waiting.insert(call.0, self.priority[&call.0]);
            }
            Output::Event(Event::CallQueued { call, queue, .. }) => {
                assert!(
                    !self.closed.contains(&queue.0),
                    "{call} joined closed {queue}"
                );
                self.waiting.insert(call.0, self.priority[&call.0]);
            }
            Output::Event(Event::PriorityChanged { call, priority, .. }) => {
                self.priority.insert(call.0, *priority);
                if let Some(waiting) = self.waiting.get_mut(&call.0) {
                    *waiting = *priority;
                }
            }
            Output::Event(Event::CallTransferred { call, .. }) => {
                assert!(!self.ringing.contains_key(&call.0), "moved while ringing");
                assert!(
                    !self.connected.contains_key(&call.0),
                    "moved while connected"
                );
                self.waiting.remove(&call.0);
            }
            Output::Event(Event::QueueConfigured { queue, change, .. }) => {
                if *change == ConfigChange::Removed {
                    self.closed.insert(queue.0);
                } else {
                    self.closed.remove(&queue.0);
                }
            }
            Output::Event(Event::AgentConfigured { agent, change, .. }) => {
                if *change == ConfigChange::Removed {
                    self.retired.insert(agent.0);
                } else {
                    self.retired.remove(&agent.0);
                }
            }
            Output::Event(Event::CallConnected { call, agent, .. }) => {
                let offered = self
                    .ringing
                    .remove(&call.0)
                    .or_else(|| self.dialing.remove(&call.0));
                assert_eq!(offered, Some(agent.0), "answered unoffered");
                self.connected.insert(call.0, agent.0);
            }
            Output::Event(Event::CallbackDialing { call, agent, .. }) => {
                assert_eq!(
                    self.ringing.remove(&call.0),
                    Some(agent.0),
                    "dialing unoffered"
                );
                self.dialing.insert(call.0, agent.0);
            }
            Output::Event(Event::CallbackRequested { call, .. }) => {
                assert!(!self.connected.contains_key(&call.0));
            }
            Output::Event(Event::CallbackRetrying { call, .. }) => {
                let agent = self
                    .dialing
                    .remove(&call.0)
                    .expect("a retried callback was dialing");
                assert_eq!(self.agent_call.remove(&agent), Some(call.0));
                // Out of line until its retry time.
                self.waiting.remove(&call.0);
            }
            Output::Event(Event::CallbackUnanswered { call, .. }) => {
                if let Some(agent) = self.dialing.remove(&call.0) {
                    assert_eq!(self.agent_call.remove(&agent), Some(call.0));
                }
                assert!(!self.ringing.contains_key(&call.0));
                self.end(call.0);
            }
            Output::Event(Event::CallAbandoned { call, .. }) => {
                assert!(
                    !self.ringing.contains_key(&call.0),
                    "abandoned while still ringing"
                );
                self.end(call.0);
            }
            Output::Event(Event::CallRemoved { call, .. }) => {
                assert!(
                    !self.ringing.contains_key(&call.0),
                    "removed while still ringing"
                );
                assert!(
                    !self.connected.contains_key(&call.0),
                    "removed once connected"
                );
                // A callback being dialled frees its agent.
                if let Some(agent) = self.dialing.remove(&call.0) {
                    assert_eq!(self.agent_call.remove(&agent), Some(call.0));
                }
                self.end(call.0);
            }
            Output::Event(Event::CallCompleted { call, agent, .. }) => {
                assert_eq!(self.connected.remove(&call.0), Some(agent.0));
                assert_eq!(self.agent_call.remove(&agent.0), Some(call.0));
                self.end(call.0);
            }
            Output::Event(Event::CallOverflowed { call, to, .. }) => {
                self.waiting.remove(&call.0);
                if !matches!(to, OverflowedTo::Queue(_)) {
                    self.end(call.0);
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, call: u64) {
        assert!(
            self.arrived.contains(&call),
            "{call} ended without arriving"
        );
        self.waiting.remove(&call);
        *self.ended.entry(call).or_default() += 1;
        assert_eq!(self.ended[&call], 1, "{call} ended twice");
    }
}

fn check_accounts(h: &Harness) {
    for q in 0..h.acd.queue_count() as u32 {
        let stats = h.acd.queue_stats(QueueId(q)).unwrap();
        let c = stats.counters;
        assert_eq!(stats.wait.count(), c.answered);
        assert_eq!(stats.ring.count(), c.answered);
        assert_eq!(stats.abandon.count(), c.abandoned);
        assert_eq!(stats.talk.count(), c.completed);
        assert!(stats.wrap_up.count() <= c.completed);
        let (waiting, ringing) = h.acd.queue_depth(QueueId(q)).unwrap();
        assert_eq!(
            c.offered,
            c.answered
                + c.abandoned
                + c.overflowed
                + c.transferred
                + c.removed
                + c.callbacks_unanswered
                + (waiting + ringing) as u64,
            "queue {q}: every offered call accounted for"
        );
        let interval = h.acd.interval_stats(QueueId(q)).unwrap();
        let closed: u64 = h
            .acd
            .closed_intervals(QueueId(q))
            .map(|r| r.summary.counters.answered)
            .sum();
        assert_eq!(
            closed + interval.counters.answered,
            c.answered,
            "intervals add up"
        );
    }
}

fn run(config: AcdConfig, ops: Vec<Op>, fifo: bool) {
    let (updates, reconfigs) = if fifo {
        (fifo_updates(), fifo_reconfigs())
    } else {
        (rich_updates(), rich_reconfigs())
    };
    let mut h = Harness::new(config);
    let mut model = Model {
        fifo,
        ..Model::default()
    };
    let mut next_call = 0u64;
    let mut live: Vec<u64> = Vec::new();
    for op in ops {
        let offers: Vec<(u64, u32)> = model.ringing.iter().map(|(&c, &a)| (c, a)).collect();
        let mut offers = offers;
        offers.sort_unstable();
        let input = match op {
            Op::Arrive { queue, priority } => {
                let call = next_call;
                next_call += 1;
                model.arrived.insert(call);
                model.priority.insert(call, priority);
                live.push(call);
                let queue = if fifo { 0 } else { queue };
                Input::CallArrived {
                    call: CallId(call),
                    queue: QueueId(queue),
                    priority,
                }
            }
            Op::Hangup { pick } if !live.is_empty() => Input::Hangup {
                call: CallId(live[pick % live.len()]),
            },
            Op::Remove { pick } if !live.is_empty() => Input::RemoveCall {
                call: CallId(live[pick % live.len()]),
            },
            Op::Answer { pick } if !offers.is_empty() => {
                let (call, agent) = offers[pick % offers.len()];
                Input::OfferAnswered {
                    call: CallId(call),
                    agent: AgentId(agent),
                }
            }
            Op::Fail { pick, reason } if !offers.is_empty() => {
                let (call, agent) = offers[pick % offers.len()];
                Input::OfferFailed {
                    call: CallId(call),
                    agent: AgentId(agent),
                    reason,
                }
            }
            Op::Login { agent } => Input::Login {
                agent: AgentId(agent),
            },
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
            Op::Estimate { pick } if !live.is_empty() => Input::EstimateWait {
                call: CallId(live[pick % live.len()]),
            },
            Op::Leave { pick } if !live.is_empty() => Input::LeaveQueue {
                call: CallId(live[pick % live.len()]),
            },
            Op::Callback { pick } if !live.is_empty() => Input::RequestCallback {
                call: CallId(live[pick % live.len()]),
            },
            Op::CallbackOutcome { pick, reached } if !model.dialing.is_empty() => {
                let mut dialing: Vec<u64> = model.dialing.keys().copied().collect();
                dialing.sort_unstable();
                let call = CallId(dialing[pick % dialing.len()]);
                if reached {
                    Input::CallbackAnswered { call }
                } else {
                    Input::CallbackFailed { call }
                }
            }
            Op::ExtendWrapUp { agent, secs } => {
                // Half the time an agent in wrap-up, when there is one.
                let wrapping: Vec<u32> = (0..h.acd.agent_count() as u32)
                    .filter(|&a| {
                        matches!(
                            h.acd.agent_state(AgentId(a)),
                            Some(AgentState::WrapUp { .. })
                        )
                    })
                    .collect();
                let agent = match wrapping.len() {
                    n if n > 0 && agent % 2 == 0 => wrapping[agent as usize % n],
                    _ => agent,
                };
                Input::ExtendWrapUp {
                    agent: AgentId(agent),
                    by: Duration::from_secs(secs),
                }
            }
            Op::SetPriority { pick, priority } if !live.is_empty() => Input::SetPriority {
                call: CallId(live[pick % live.len()]),
                priority,
            },
            Op::Move { pick, queue } if !live.is_empty() => Input::MoveCall {
                call: CallId(live[pick % live.len()]),
                queue: QueueId(queue),
            },
            Op::Update { queue, variant } => Input::UpdateQueue {
                queue: QueueId(if fifo { queue % 2 } else { queue }),
                update: updates[variant % updates.len()].clone(),
            },
            Op::Reconfigure { variant } => Input::Reconfigure {
                config: reconfigs[variant % reconfigs.len()].clone(),
            },
            Op::Advance { millis } => {
                h.advance(millis as f64 / 1000.0);
                for output in h.take() {
                    model.observe(&output);
                }
                check_accounts(&h);
                continue;
            }
            _ => continue,
        };
        // Refusals are allowed (a late answer, a paused agent logging out...); they must
        // not break any invariant.
        let arrival = match input {
            Input::CallArrived { call, .. } => Some(call.0),
            _ => None,
        };
        let refused = h.input(input).is_err();
        if let Some(call) = arrival.filter(|_| refused) {
            // Refused at the door (an unknown or closed queue): it never entered.
            model.arrived.remove(&call);
            live.retain(|&c| c != call);
        }
        for output in h.take() {
            model.observe(&output);
        }
        live.retain(|call| !model.ended.contains_key(call));
        check_accounts(&h);
    }
    // Everyone hangs up; the ACD winds down.
    for call in live.clone() {
        let _ = h.input(Input::Hangup { call: CallId(call) });
        for output in h.take() {
            model.observe(&output);
        }
    }
    for _ in 0..10_000 {
        if h.acd.call_count() == 0 {
            break;
        }
        // A caller put back in line by a withdrawn offer may still be queued: hang up again.
        for call in model
            .arrived
            .iter()
            .copied()
            .filter(|c| !model.ended.contains_key(c))
            .collect::<Vec<_>>()
        {
            let _ = h.input(Input::Hangup { call: CallId(call) });
        }
        for output in h.take() {
            model.observe(&output);
        }
    }
    assert_eq!(h.acd.call_count(), 0);
    for call in &model.arrived {
        assert_eq!(
            model.ended.get(call),
            Some(&1),
            "{call} must end exactly once"
        );
    }
    assert!(
        model.agent_call.is_empty(),
        "no agent keeps a call: {:?}",
        model.agent_call
    );
    check_accounts(&h);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_in_a_rich_setting(ops in proptest::collection::vec(op(2, 4), 1..300)) {
        run(rich_config(), ops, false);
    }

    #[test]
    fn first_come_first_served_within_a_priority(ops in proptest::collection::vec(op(1, 3), 1..300)) {
        run(fifo_config(), ops, true);
    }
}
