//! Replaying a journal reproduces the identical output sequence, on a long random run that
//! includes supervisor actions (wrap-up extensions, priorities, moves, queue updates) and
//! reloads of the whole configuration, accepted and refused.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use amico_core::journal::{Journal, JournalEntry};
use amico_core::simulator::random::Rng;
use amico_core::{
    AcdConfig, AgentConfig, AgentId, CallId, Command, ExpansionStep, Input, OfferFailure, Output,
    Overflow, QueueConfig, QueueId, QueueUpdate, SkillRequirement, Strategy, Thresholds, Timestamp,
};
use harness::Harness;

fn config() -> AcdConfig {
    let mut first = QueueConfig::new("first", &["a"]);
    first.expansion = vec![ExpansionStep {
        after: Duration::from_secs(15),
        min_level: Some(2),
        add_queues: vec!["second".into()],
    }];
    first.max_callers = Some(20);
    first.max_wait = Some(Duration::from_secs(120));
    first.overflow = Overflow::Queue("second".into());
    first.wrap_up = Duration::from_secs(7);
    first.auto_pause_after = Some(2);
    first.strategy = Strategy::BestSkill;
    let mut second = QueueConfig::new("second", &["b"]);
    second.overflow = Overflow::External("voicemail".into());
    second.max_callers = Some(15);
    second.strategy = Strategy::RoundRobin;
    AcdConfig {
        skills: vec!["a".into(), "b".into()],
        queues: vec![first, second],
        agents: (0..8)
            .map(|i| {
                AgentConfig::new(
                    format!("agent{i}"),
                    &[("a", 1 + i as u8), ("b", 8 - i as u8)],
                )
            })
            .collect(),
        statistics: amico_core::StatisticsConfig {
            interval: Duration::from_secs(300),
            ..Default::default()
        },
    }
}

/// Queue updates, one refused.
fn updates() -> Vec<QueueUpdate> {
    vec![
        QueueUpdate {
            skills: Some(vec![SkillRequirement {
                skill: "a".into(),
                min_level: 4,
            }]),
            max_wait: Some(Some(Duration::from_secs(40))),
            ..QueueUpdate::default()
        },
        QueueUpdate {
            expansion: Some(vec![ExpansionStep {
                after: Duration::from_secs(8),
                min_level: Some(1),
                add_queues: vec![],
            }]),
            weight: Some(4),
            strategy: Some(Strategy::FewestCalls),
            ..QueueUpdate::default()
        },
        QueueUpdate {
            max_wait: Some(None),
            wrap_up: Some(Duration::from_millis(2_500)),
            thresholds: Some(Thresholds {
                service_level: Duration::from_secs(9),
                ..Thresholds::default()
            }),
            ..QueueUpdate::default()
        },
        QueueUpdate {
            retry_after: Some(Duration::ZERO),
            ..QueueUpdate::default()
        },
    ]
}

/// Whole configurations to reload: agents and a queue added and removed, one refused.
fn reconfigs() -> Vec<AcdConfig> {
    let mut more = config();
    more.agents.remove(7);
    more.agents
        .push(AgentConfig::new("agent8", &[("a", 9), ("b", 9)]));
    more.skills.push("c".into());
    more.queues.push(QueueConfig::new("third", &["c"]));
    more.queues[2].max_wait = Some(Duration::from_secs(30));
    more.agents
        .push(AgentConfig::new("agent9", &[("c", 5), ("b", 2)]));
    let mut refused = config();
    refused.queues[1].ring_timeout = Duration::ZERO;
    vec![config(), more, refused]
}

#[test]
fn replaying_a_long_random_run_reproduces_every_output() {
    let (updates, reconfigs) = (updates(), reconfigs());
    let mut h = Harness::new(config());
    let mut rng = Rng::new(2024);
    let mut next_call = 0u64;
    let mut live: Vec<u64> = Vec::new();
    let mut ringing: Vec<(u64, u32)> = Vec::new();
    let mut refused = 0usize;
    for _ in 0..150_000 {
        let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
        let input = match pick(&mut rng, 26) {
            0..=5 => {
                next_call += 1;
                live.push(next_call);
                let queue = QueueId(pick(&mut rng, 2) as u32);
                Input::CallArrived {
                    call: CallId(next_call),
                    queue,
                    priority: pick(&mut rng, 3) as u8,
                }
            }
            6..=8 if !live.is_empty() => {
                let call = live.swap_remove(pick(&mut rng, live.len()));
                Input::Hangup { call: CallId(call) }
            }
            9..=12 if !ringing.is_empty() => {
                let (call, agent) = ringing[pick(&mut rng, ringing.len())];
                Input::OfferAnswered {
                    call: CallId(call),
                    agent: AgentId(agent),
                }
            }
            13 if !ringing.is_empty() => {
                let (call, agent) = ringing[pick(&mut rng, ringing.len())];
                Input::OfferFailed {
                    call: CallId(call),
                    agent: AgentId(agent),
                    reason: OfferFailure::Rejected,
                }
            }
            14 => Input::Login {
                agent: AgentId(pick(&mut rng, 10) as u32),
            },
            15 => Input::Logout {
                agent: AgentId(pick(&mut rng, 10) as u32),
            },
            16 => Input::Pause {
                agent: AgentId(pick(&mut rng, 10) as u32),
                reason: "break".into(),
            },
            17 => Input::Ready {
                agent: AgentId(pick(&mut rng, 10) as u32),
            },
            18 if !live.is_empty() => Input::EstimateWait {
                call: CallId(live[pick(&mut rng, live.len())]),
            },
            19 => Input::ExtendWrapUp {
                agent: AgentId(pick(&mut rng, 10) as u32),
                by: Duration::from_millis(pick(&mut rng, 10_000) as u64),
            },
            20 if !live.is_empty() => Input::SetPriority {
                call: CallId(live[pick(&mut rng, live.len())]),
                priority: pick(&mut rng, 4) as u8,
            },
            21 if !live.is_empty() => Input::MoveCall {
                call: CallId(live[pick(&mut rng, live.len())]),
                queue: QueueId(pick(&mut rng, 3) as u32),
            },
            22 if pick(&mut rng, 20) == 0 => Input::UpdateQueue {
                queue: QueueId(pick(&mut rng, 3) as u32),
                update: updates[pick(&mut rng, updates.len())].clone(),
            },
            23 if pick(&mut rng, 50) == 0 => Input::Reconfigure {
                config: reconfigs[pick(&mut rng, reconfigs.len())].clone(),
            },
            24 if !live.is_empty() && pick(&mut rng, 2) == 0 => {
                let call = live.swap_remove(pick(&mut rng, live.len()));
                Input::RemoveCall { call: CallId(call) }
            }
            _ => {
                h.advance(rng.exponential(6.0));
                continue;
            }
        };
        if h.input(input).is_err() {
            refused += 1;
        }
        for output in h.take() {
            match output {
                Output::Command(Command::Ring { call, agent, .. }) => {
                    ringing.push((call.0, agent.0))
                }
                Output::Command(Command::StopRinging { call, .. }) => {
                    ringing.retain(|r| r.0 != call.0)
                }
                Output::Event(amico_core::Event::CallConnected { call, .. }) => {
                    ringing.retain(|r| r.0 != call.0)
                }
                _ => {}
            }
        }
    }
    assert!(h.all.len() > 100_000, "a long run: {} outputs", h.all.len());
    assert!(
        refused > 0,
        "the run includes refused inputs, which replay must also refuse"
    );
    // It went through every new input, accepted.
    let entries = h.acd.take_journal();
    let snapshot = h.acd.snapshot();
    assert!(snapshot.queues.len() == 3 && snapshot.agents.len() == 10);
    let transferred: u64 = snapshot
        .queues
        .iter()
        .map(|q| q.cumulative.counters.transferred)
        .sum();
    assert!(transferred > 10, "{transferred} moves");
    let removed: u64 = snapshot
        .queues
        .iter()
        .map(|q| q.cumulative.counters.removed)
        .sum();
    assert!(removed > 10, "{removed} removals");
    for kind in [
        "extend_wrap_up",
        "set_priority",
        "move_call",
        "remove_call",
        "update_queue",
        "reconfigure",
    ] {
        let count = entries
            .iter()
            .filter(|e| serde_json::to_value(&e.input).unwrap()["input"] == kind)
            .count();
        assert!(count > 10, "{count} {kind}");
    }
    let configured = h
        .all
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Event(amico_core::Event::QueueConfigured { .. })
                    | Output::Event(amico_core::Event::AgentConfigured { .. })
            )
        })
        .count();
    assert!(configured > 10, "{configured} configuration changes");

    // Through JSON lines and back, as a server would persist it.
    let lines: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let entries: Vec<JournalEntry> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let journal = Journal {
        config: config(),
        start: Timestamp::ZERO,
        entries,
    };
    let replay = journal.replay().unwrap();
    assert_eq!(replay.refused.len(), refused);
    assert_eq!(replay.outputs.len(), h.all.len());
    assert!(replay.outputs == h.all, "the replayed outputs differ");
    assert_eq!(
        serde_json::to_string(&replay.acd.snapshot()).unwrap(),
        h.state_json(),
        "the replayed ACD ends in the same state"
    );
}
