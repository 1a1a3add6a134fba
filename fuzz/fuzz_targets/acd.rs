//! Random sequences of the ACD's inputs whose bytes also advance time: every operation
//! takes three bytes (what, an argument, how long before it), the clock moves on firing
//! each timer at its deadline, and after every input the invariants of
//! `amico_core::invariants` are checked (no call offered to two agents, no agent holding
//! two calls, first come first served within a priority in the one-queue setting, every
//! call that entered ends exactly once, the accounts add up, no call joins a closed
//! queue, no retired agent is rung). At the end every caller hangs up and the ACD must
//! wind down clean.

#![no_main]

use std::time::Duration;

use amico_core::invariants::{Checker, Violation};
use amico_core::{
    Acd, AcdConfig, AgentConfig, AgentId, AgentState, CallId, ExpansionStep, Input, NoAgentsPolicy,
    OfferFailure, Overflow, QueueConfig, QueueId, QueueUpdate, SkillRequirement, StatisticsConfig,
    Strategy, Thresholds, Timestamp, Vote,
};
use libfuzzer_sys::fuzz_target;

/// Operations per input at most: enough for long days, bounded for speed.
const MAX_OPERATIONS: usize = 2000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Three queues: skills with levels, expansion, limits, overflow into one another and
/// out, wrap-up, auto-pause, callbacks, every routing strategy but one.
fn many_queues() -> AcdConfig {
    let mut front = QueueConfig::new("front", &["it", "en"]);
    front.skills[0].min_level = 5;
    front.strategy = Strategy::BestSkill;
    front.expansion = vec![
        ExpansionStep {
            after: secs(8),
            min_level: Some(2),
            add_queues: vec![],
        },
        ExpansionStep {
            after: secs(20),
            min_level: None,
            add_queues: vec!["back".into()],
        },
    ];
    front.max_callers = Some(5);
    front.max_wait = Some(secs(60));
    front.overflow = Overflow::Queue("back".into());
    front.ring_timeout = secs(6);
    front.wrap_up = secs(4);
    front.auto_pause_after = Some(2);
    front.callback_attempts = 2;
    front.callback_retry_after = secs(10);
    let mut back = QueueConfig::new("back", &["it"]);
    back.strategy = Strategy::LongestIdle;
    back.max_callers = Some(4);
    back.max_wait = Some(secs(45));
    back.overflow = Overflow::External("voicemail".into());
    back.retry_after = secs(2);
    back.weight = 4;
    let mut vip = QueueConfig::new("vip", &["vip"]);
    vip.strategy = Strategy::RoundRobin;
    vip.when_no_agents = NoAgentsPolicy {
        join: false,
        leave: true,
    };
    vip.overflow = Overflow::Hangup;
    vip.wrap_up = Duration::ZERO;
    AcdConfig {
        skills: vec!["it".into(), "en".into(), "vip".into()],
        queues: vec![front, back, vip],
        agents: vec![
            AgentConfig::new("ada", &[("it", 9), ("en", 3)]),
            AgentConfig::new("bo", &[("it", 4)]),
            AgentConfig::new("cy", &[("en", 7), ("vip", 5)]),
            AgentConfig::new("di", &[("it", 6), ("vip", 8)]),
            AgentConfig::new("ed", &[("en", 2)]),
        ],
        statistics: StatisticsConfig {
            interval: secs(300),
            ..StatisticsConfig::default()
        },
    }
}

/// One queue where nothing may skip the line: first come, first served within a priority.
fn one_queue() -> AcdConfig {
    let mut queue = QueueConfig::new("line", &["s"]);
    queue.strategy = Strategy::FewestCalls;
    queue.retry_after = Duration::ZERO;
    queue.ring_timeout = secs(5);
    queue.wrap_up = secs(3);
    AcdConfig {
        skills: vec!["s".into()],
        queues: vec![queue],
        agents: (0..4)
            .map(|i| AgentConfig::new(format!("agent{i}"), &[("s", 5)]))
            .collect(),
        ..AcdConfig::default()
    }
}

/// Queue updates: each setting once, and refused ones (a zero maximum wait, a queue
/// overflowing into itself, an unknown skill).
fn updates(fifo: bool) -> Vec<QueueUpdate> {
    let none = QueueUpdate::default;
    let mut all = vec![
        QueueUpdate {
            max_wait: Some(Some(secs(12))),
            ring_timeout: Some(secs(2)),
            ..none()
        },
        QueueUpdate {
            max_wait: Some(None),
            max_callers: Some(Some(2)),
            strategy: Some(Strategy::RoundRobin),
            ..none()
        },
        QueueUpdate {
            wrap_up: Some(secs(9)),
            auto_pause_after: Some(Some(1)),
            weight: Some(9),
            ..none()
        },
        QueueUpdate {
            thresholds: Some(Thresholds {
                service_level: secs(4),
                abandon: secs(10),
                short_abandon: secs(2),
            }),
            callback_attempts: Some(3),
            callback_retry_after: Some(secs(1)),
            ..none()
        },
        QueueUpdate {
            max_wait: Some(Some(Duration::ZERO)),
            ..none()
        },
        QueueUpdate {
            ring_timeout: Some(Duration::ZERO),
            retry_after: Some(Duration::ZERO),
            ..none()
        },
    ];
    if !fifo {
        all.extend([
            QueueUpdate {
                skills: Some(vec![SkillRequirement {
                    skill: "vip".into(),
                    min_level: 1,
                }]),
                when_no_agents: Some(NoAgentsPolicy {
                    join: true,
                    leave: false,
                }),
                ..none()
            },
            QueueUpdate {
                expansion: Some(vec![ExpansionStep {
                    after: secs(3),
                    min_level: Some(0),
                    add_queues: vec!["vip".into()],
                }]),
                overflow: Some(Overflow::External("operator".into())),
                ..none()
            },
            QueueUpdate {
                overflow: Some(Overflow::Queue("front".into())),
                ..none()
            },
            QueueUpdate {
                skills: Some(vec![SkillRequirement {
                    skill: "nope".into(),
                    min_level: 1,
                }]),
                ..none()
            },
        ]);
    }
    all
}

/// Whole configurations to reload: the same, agents and queues removed, added and
/// changed, and a refused one.
fn reconfigurations(fifo: bool) -> Vec<AcdConfig> {
    let base = if fifo { one_queue() } else { many_queues() };
    let mut fewer_agents = base.clone();
    fewer_agents.agents.remove(1);
    fewer_agents.agents[0].skills[0].level = 1;
    let mut more_agents = base.clone();
    more_agents
        .agents
        .push(AgentConfig::new("new", &[(base.skills[0].as_str(), 8)]));
    let mut changed_queue = base.clone();
    changed_queue.queues[0].max_callers = Some(1);
    changed_queue.queues[0].thresholds.service_level = secs(1);
    let mut refused = base.clone();
    refused.queues[0].callback_attempts = 0;
    let mut all = vec![base, fewer_agents, more_agents, changed_queue, refused];
    if !fifo {
        let mut without_back = many_queues();
        without_back.queues.remove(1);
        without_back.queues[0].overflow = Overflow::Hangup;
        without_back.queues[0].expansion.pop();
        all.push(without_back);
    }
    all
}

/// The ACD, its clock and the checker, driven by the fuzz input.
struct Run {
    acd: Acd,
    now: Timestamp,
    checker: Checker,
    next_call: u64,
}

impl Run {
    fn step(&mut self, input: Input) {
        if let Err(violation) = self.checker.step(&mut self.acd, self.now, input) {
            fail(&violation);
        }
    }

    /// Moves the clock, telling the ACD the time at every deadline on the way.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..100_000 {
            match self.acd.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    // A deadline in the past fires now: the clock never goes back.
                    self.now = self.now.max(deadline);
                    self.step(Input::Timeout);
                    if self.acd.poll_timeout().is_some_and(|next| next <= self.now) {
                        panic!("a fired timer is still due at {}", self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = target;
    }
}

fn fail(violation: &Violation) -> ! {
    panic!("invariant broken: {violation}");
}

fn pick<T: Copy>(items: &[T], arg: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(arg) % items.len()])
}

fuzz_target!(|data: &[u8]| {
    let (setup, data) = data.split_first().unwrap_or((&0, &[]));
    let fifo = setup & 1 == 1;
    let config = if fifo { one_queue() } else { many_queues() };
    let (queues, agents) = (config.queues.len() as u32, config.agents.len() as u32);
    let (updates, reconfigurations) = (updates(fifo), reconfigurations(fifo));
    let acd = Acd::new(config, Timestamp::ZERO).expect("a valid configuration");
    let mut run = Run {
        acd,
        now: Timestamp::ZERO,
        checker: if fifo {
            Checker::first_come_first_served()
        } else {
            Checker::new()
        },
        next_call: 0,
    };
    // Half the time everyone starts logged in; otherwise the input logs them in.
    if setup & 2 != 0 {
        for agent in 0..agents {
            run.step(Input::Login {
                agent: AgentId(agent),
            });
        }
    }
    for chunk in data.chunks_exact(3).take(MAX_OPERATIONS) {
        let [what, arg, wait] = [chunk[0], chunk[1], chunk[2]];
        // 0 to 65 s, most steps short: the square of a byte, in milliseconds.
        run.advance(Duration::from_millis(u64::from(wait) * u64::from(wait)));
        let live = run.checker.live_calls();
        let call = pick(&live, arg);
        let agent = AgentId(u32::from(arg) % (agents + 2));
        let input = match what % 21 {
            0..=3 => {
                let call = CallId(run.next_call);
                run.next_call += 1;
                Input::CallArrived {
                    call,
                    queue: QueueId(if fifo {
                        0
                    } else {
                        u32::from(arg) % (queues + 1)
                    }),
                    priority: arg >> 6,
                }
            }
            // A live call's id again: must be refused at the door.
            4 => match call {
                Some(call) => Input::CallArrived {
                    call,
                    queue: QueueId(0),
                    priority: 0,
                },
                None => continue,
            },
            5 | 6 => match call {
                Some(call) => Input::Hangup { call },
                None => continue,
            },
            7 => match call {
                Some(call) => Input::RemoveCall { call },
                None => continue,
            },
            8 | 9 => match pick(&run.checker.offers(), arg) {
                // Now and then the wrong agent, or an offer that is not there.
                Some((call, agent)) if arg & 0x80 == 0 => Input::OfferAnswered { call, agent },
                Some((call, _)) => Input::OfferAnswered {
                    call,
                    agent: AgentId(u32::from(arg & 7)),
                },
                None => continue,
            },
            10 => match pick(&run.checker.offers(), arg) {
                Some((call, agent)) => Input::OfferFailed {
                    call,
                    agent,
                    reason: match arg % 3 {
                        0 => OfferFailure::NoAnswer,
                        1 => OfferFailure::Rejected,
                        _ => OfferFailure::Unreachable,
                    },
                },
                None => continue,
            },
            11 => Input::Login { agent },
            12 => Input::Logout { agent },
            13 => match arg % 3 {
                0 => Input::Pause {
                    agent,
                    reason: "lunch".into(),
                },
                _ => Input::Ready { agent },
            },
            14 => match call {
                Some(call) if arg & 1 == 0 => Input::EstimateWait { call },
                Some(call) => Input::LeaveQueue { call },
                None => continue,
            },
            15 => match call {
                Some(call) => Input::RequestCallback { call },
                None => continue,
            },
            16 => match pick(&run.checker.dialing(), arg) {
                Some(call) if arg & 1 == 0 => Input::CallbackAnswered { call },
                Some(call) => Input::CallbackFailed { call },
                None => continue,
            },
            17 => {
                // Half the time an agent in wrap-up, when there is one.
                let wrapping: Vec<AgentId> = (0..run.acd.agent_count() as u32)
                    .map(AgentId)
                    .filter(|&a| matches!(run.acd.agent_state(a), Some(AgentState::WrapUp { .. })))
                    .collect();
                let agent = match pick(&wrapping, arg >> 1) {
                    Some(wrapping) if arg & 1 == 0 => wrapping,
                    _ => agent,
                };
                Input::ExtendWrapUp {
                    agent,
                    by: secs(u64::from(arg % 16)),
                }
            }
            18 => match call {
                Some(call) if arg & 1 == 0 => Input::SetPriority {
                    call,
                    priority: (arg >> 1) % 4,
                },
                Some(call) => Input::MoveCall {
                    call,
                    queue: QueueId(u32::from(arg >> 1) % (queues + 2)),
                },
                None => continue,
            },
            19 => Input::UpdateQueue {
                queue: QueueId(u32::from(arg >> 4) % (queues + 1)),
                update: updates[usize::from(arg & 0x0f) % updates.len()].clone(),
            },
            _ => match arg % 8 {
                0..=5 => Input::Reconfigure {
                    config: reconfigurations[usize::from(arg) % reconfigurations.len()].clone(),
                },
                _ => Input::SurveyVote {
                    call: call.unwrap_or(CallId(u64::from(arg))),
                    queue: QueueId(0),
                    agent: AgentId(0),
                    vote: match arg % 4 {
                        0 => Some(Vote::Satisfied),
                        1 => Some(Vote::Sufficient),
                        2 => Some(Vote::Unsatisfied),
                        _ => None,
                    },
                },
            },
        };
        // Refusals are allowed (a late answer, a paused agent logging out...); they must
        // break no invariant, which `step` checks.
        run.step(input);
    }
    let now = run.now;
    if let Err(violation) = run.checker.wind_down(&mut run.acd, now) {
        fail(&violation);
    }
});
