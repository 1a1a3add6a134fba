//! Property tests: random sequences of operations against the ACD's invariants, as
//! [`amico_core::invariants`] states and checks them (no call offered to two agents, no
//! agent holding two calls, first come first served within a priority, every call that
//! entered ending exactly once, the accounts adding up, no call joining a closed queue and
//! no retired agent rung). The fuzz target `acd` in `fuzz/` checks the same ones.
//!
//! The operations include the supervisor's (wrap-up extensions, priorities, moves,
//! removals, queue updates) and whole reconfigurations, valid and refused.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use amico_core::invariants::{self, Checker};
use amico_core::{
    AcdConfig, AgentConfig, AgentId, AgentState, CallId, ExpansionStep, Input, NoAgentsPolicy,
    OfferFailure, Overflow, QueueConfig, QueueId, QueueUpdate, SkillRequirement,
    Strategy as Routing, Thresholds,
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

/// The checker's verdict on outputs and accounts, as a test failure.
fn check(result: Result<(), invariants::Violation>) {
    if let Err(violation) = result {
        panic!("invariant broken: {violation}");
    }
}

fn run(config: AcdConfig, ops: Vec<Op>, fifo: bool) {
    let (updates, reconfigs) = if fifo {
        (fifo_updates(), fifo_reconfigs())
    } else {
        (rich_updates(), rich_reconfigs())
    };
    let mut h = Harness::new(config);
    let mut checker = if fifo {
        Checker::first_come_first_served()
    } else {
        Checker::new()
    };
    let mut next_call = 0u64;
    for op in ops {
        // The calls that entered and have not ended, in order of arrival.
        let live = checker.live_calls();
        let offers = checker.offers();
        let input = match op {
            Op::Arrive { queue, priority } => {
                let call = next_call;
                next_call += 1;
                let queue = if fifo { 0 } else { queue };
                Input::CallArrived {
                    call: CallId(call),
                    queue: QueueId(queue),
                    priority,
                }
            }
            Op::Hangup { pick } if !live.is_empty() => Input::Hangup {
                call: live[pick % live.len()],
            },
            Op::Remove { pick } if !live.is_empty() => Input::RemoveCall {
                call: live[pick % live.len()],
            },
            Op::Answer { pick } if !offers.is_empty() => {
                let (call, agent) = offers[pick % offers.len()];
                Input::OfferAnswered { call, agent }
            }
            Op::Fail { pick, reason } if !offers.is_empty() => {
                let (call, agent) = offers[pick % offers.len()];
                Input::OfferFailed {
                    call,
                    agent,
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
                call: live[pick % live.len()],
            },
            Op::Leave { pick } if !live.is_empty() => Input::LeaveQueue {
                call: live[pick % live.len()],
            },
            Op::Callback { pick } if !live.is_empty() => Input::RequestCallback {
                call: live[pick % live.len()],
            },
            Op::CallbackOutcome { pick, reached } if !checker.dialing().is_empty() => {
                let dialing = checker.dialing();
                let call = dialing[pick % dialing.len()];
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
                call: live[pick % live.len()],
                priority,
            },
            Op::Move { pick, queue } if !live.is_empty() => Input::MoveCall {
                call: live[pick % live.len()],
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
                    check(checker.observe(&output));
                }
                check(invariants::check_accounts(&h.acd));
                continue;
            }
            _ => continue,
        };
        // Refusals are allowed (a late answer, a paused agent logging out...); they must
        // not break any invariant.
        let arrival = matches!(input, Input::CallArrived { .. }).then(|| input.clone());
        let accepted = h.input(input).is_ok();
        if let Some(arrival) = arrival {
            check(checker.input(&arrival, accepted));
        }
        for output in h.take() {
            check(checker.observe(&output));
        }
        check(invariants::check_accounts(&h.acd));
    }
    // Everyone hangs up; the ACD winds down.
    check(checker.wind_down(&mut h.acd, h.now));
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
