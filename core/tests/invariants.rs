//! Property tests: random sequences of operations against the ACD's invariants.
//!
//! - no call is offered to two agents at once;
//! - no agent holds two calls;
//! - first come, first served within a priority (a one-queue setting where nothing skips);
//! - every call that entered ends exactly once;
//! - histogram counts equal the calls they describe, and every offered call is accounted
//!   for: offered = answered + abandoned + overflowed + still queued.

#[path = "support/harness.rs"]
mod harness;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use amico_core::metrics::Distribution;
use amico_core::{
    AcdConfig, AgentConfig, AgentId, CallId, Command, Event, ExpansionStep, Input, OfferFailure,
    Output, Overflow, OverflowedTo, QueueConfig, QueueId, Strategy as Routing,
};
use harness::Harness;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Arrive { queue: u32, priority: u8 },
    Hangup { pick: usize },
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
    Advance { millis: u64 },
}

fn op(queues: u32, agents: u32) -> impl Strategy<Value = Op> {
    let reason = prop_oneof![
        Just(OfferFailure::NoAnswer),
        Just(OfferFailure::Rejected),
        Just(OfferFailure::Unreachable)
    ];
    prop_oneof![
        4 => (0..queues, 0u8..3).prop_map(|(queue, priority)| Op::Arrive { queue, priority }),
        2 => any::<usize>().prop_map(|pick| Op::Hangup { pick }),
        3 => any::<usize>().prop_map(|pick| Op::Answer { pick }),
        1 => (any::<usize>(), reason).prop_map(|(pick, reason)| Op::Fail { pick, reason }),
        1 => (0..agents).prop_map(|agent| Op::Login { agent }),
        1 => (0..agents).prop_map(|agent| Op::Logout { agent }),
        1 => (0..agents).prop_map(|agent| Op::Pause { agent }),
        1 => (0..agents).prop_map(|agent| Op::Ready { agent }),
        1 => any::<usize>().prop_map(|pick| Op::Estimate { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Leave { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Callback { pick }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, reached)| Op::CallbackOutcome { pick, reached }),
        3 => (0u64..40_000).prop_map(|millis| Op::Advance { millis }),
    ]
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
            Output::Event(Event::CallQueued { call, .. }) => {
                self.waiting.insert(call.0, self.priority[&call.0]);
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
        let _ = h.input(input);
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
