//! Scenario tests: the ACD driven through a virtual clock, one behaviour at a time.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use amico_core::metrics::Distribution;
use amico_core::{
    AcdConfig, AcdError, AgentConfig, AgentId, AgentState, AgentStatus, CallId, Command,
    ConfigChange, ConfigError, Event, ExpansionStep, Input, NoAgentsPolicy, OfferFailure, Output,
    Overflow, OverflowReason, OverflowedTo, QueueConfig, QueueId, QueueUpdate, Strategy,
    Thresholds, Timestamp, WaitOutcome,
};
use harness::Harness;

const Q0: QueueId = QueueId(0);
const Q1: QueueId = QueueId(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One queue "sales" needing skill "sales"; `n` agents with "sales" at level 5.
fn one_queue(n: u32) -> AcdConfig {
    AcdConfig {
        skills: vec!["sales".into(), "billing".into()],
        queues: vec![QueueConfig::new("sales", &["sales"])],
        agents: (0..n)
            .map(|i| AgentConfig::new(format!("a{i}"), &[("sales", 5)]))
            .collect(),
        ..AcdConfig::default()
    }
}

fn state(h: &Harness, agent: u32) -> AgentState {
    h.acd.agent_state(AgentId(agent)).unwrap().clone()
}

#[test]
fn longest_idle_agent_gets_the_call() {
    let mut h = Harness::new(one_queue(3));
    h.login(2);
    h.advance(10.0);
    h.login(0);
    h.advance(10.0);
    h.login(1);
    h.take();
    h.arrive(1, 0, 0);
    assert_eq!(h.take_rings(), [(1, 2)], "agent 2 has been free for 20 s");
    h.arrive(2, 0, 0);
    assert_eq!(h.take_rings(), [(2, 0)]);
}

#[test]
fn fewest_calls_strategy_balances_work() {
    let mut config = one_queue(3);
    config.queues[0].strategy = Strategy::FewestCalls;
    let mut h = Harness::new(config);
    h.login_all();
    // Agent 0 (longest idle) takes two calls in a row, agent 1 one.
    for (call, agent) in [(1, 0), (2, 1)] {
        h.arrive(call, 0, 0);
        assert_eq!(h.take_rings(), [(call, agent)]);
        h.answer(call, agent);
        h.hangup(call);
    }
    h.arrive(3, 0, 0);
    assert_eq!(h.take_rings(), [(3, 2)], "agent 2 has answered none");
    h.answer(3, 2);
    h.hangup(3);
    // All on one call each now; agent 0 has been free the longest.
    h.arrive(4, 0, 0);
    assert_eq!(h.take_rings(), [(4, 0)]);
}

#[test]
fn best_skill_strategy_picks_the_most_proficient() {
    let mut config = one_queue(0);
    config.queues[0].strategy = Strategy::BestSkill;
    config.agents = vec![
        AgentConfig::new("novice", &[("sales", 2)]),
        AgentConfig::new("expert", &[("sales", 9)]),
        AgentConfig::new("good", &[("sales", 6)]),
    ];
    let mut h = Harness::new(config);
    h.login_all();
    h.arrive(1, 0, 0);
    h.arrive(2, 0, 0);
    h.arrive(3, 0, 0);
    assert_eq!(h.take_rings(), [(1, 1), (2, 2), (3, 0)]);
}

#[test]
fn round_robin_strategy_rotates_through_agents() {
    let mut config = one_queue(3);
    config.queues[0].strategy = Strategy::RoundRobin;
    let mut h = Harness::new(config);
    h.login(2);
    h.login(1);
    h.login(0);
    let mut rung = Vec::new();
    for call in 1..=6 {
        h.arrive(call, 0, 0);
        let rings = h.take_rings();
        let (_, agent) = rings[0];
        rung.push(agent);
        h.answer(call, agent);
        h.hangup(call);
    }
    assert_eq!(rung, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn a_free_agent_takes_the_highest_priority_then_the_longest_waiting_caller_across_queues() {
    let mut config = one_queue(0);
    config
        .queues
        .push(QueueConfig::new("billing", &["billing"]));
    config.agents = vec![AgentConfig::new("both", &[("sales", 5), ("billing", 5)])];
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0); // sales, t=0
    h.advance(1.0);
    h.arrive(2, 1, 0); // billing, t=1
    h.advance(1.0);
    h.arrive(3, 1, 5); // billing, t=2, priority 5
    h.advance(1.0);
    h.arrive(4, 0, 0); // sales, t=3
    h.take();
    h.login(0);
    let mut order = Vec::new();
    for _ in 0..4 {
        let rings = h.take_rings();
        let (call, agent) = rings[0];
        order.push(call);
        h.answer(call, agent);
        h.hangup(call);
    }
    assert_eq!(order, [3, 1, 2, 4]);
}

#[test]
fn queue_weight_breaks_ties_between_equal_waits() {
    let mut config = one_queue(0);
    config
        .queues
        .push(QueueConfig::new("billing", &["billing"]));
    config.queues[1].weight = 10;
    config.agents = vec![AgentConfig::new("both", &[("sales", 5), ("billing", 5)])];
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.arrive(2, 1, 0); // same instant, heavier queue
    h.login(0);
    assert_eq!(h.take_rings(), [(2, 0)]);
}

#[test]
fn a_rejected_offer_keeps_the_callers_place_and_rings_the_next_agent() {
    let mut h = Harness::new(one_queue(2));
    h.login(0);
    h.arrive(1, 0, 0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    h.advance(5.0);
    h.arrive(2, 0, 0);
    h.arrive(3, 0, 0);
    assert_eq!(h.acd.position(CallId(2)), Some(1));
    h.advance(5.0);
    h.reject(1, 0);
    let events = h.take_events();
    assert!(events.contains(&Event::OfferFailed {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0,
        reason: OfferFailure::Rejected
    }));
    // Agent 0 is skipped for call 1 but free for the next caller; call 1 is first again.
    assert_eq!(h.acd.position(CallId(1)), Some(1));
    assert_eq!(h.acd.position(CallId(3)), Some(2));
    assert!(matches!(
        state(&h, 0),
        AgentState::Reserved { call: CallId(2) }
    ));
    h.login(1);
    assert_eq!(
        h.take_rings(),
        [(1, 1)],
        "the next agent gets the caller at the head"
    );
}

#[test]
fn the_agent_who_did_not_answer_gets_the_call_again_after_retry_after() {
    let mut config = one_queue(1);
    config.queues[0].retry_after = secs(8);
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.take();
    h.reject(1, 0);
    assert_eq!(state(&h, 0), AgentState::Available);
    assert!(h.take_rings().is_empty());
    h.advance(7.9);
    assert!(h.take_rings().is_empty());
    h.advance(0.2);
    assert_eq!(h.take_rings(), [(1, 0)]);
}

#[test]
fn ring_timeout_withdraws_the_offer_and_counts_a_no_answer() {
    let mut config = one_queue(2);
    config.queues[0].ring_timeout = secs(15);
    let mut h = Harness::new(config);
    h.login(0);
    h.advance(1.0);
    h.login(1);
    h.arrive(1, 0, 0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    h.advance(15.0);
    let outputs = h.take();
    let stop = outputs
        .iter()
        .position(|o| {
            *o == Output::Command(Command::StopRinging {
                call: CallId(1),
                agent: AgentId(0),
            })
        })
        .expect("stop ringing");
    let ring = outputs
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Command(Command::Ring {
                    call: CallId(1),
                    agent: AgentId(1),
                    ..
                })
            )
        })
        .expect("next agent rung");
    assert!(stop < ring);
    assert!(outputs.contains(&Output::Event(Event::OfferFailed {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0,
        reason: OfferFailure::NoAnswer
    })));
    // A late answer from the first phone is refused and changes nothing.
    let before = h.state_json();
    assert_eq!(
        h.input(Input::OfferAnswered {
            call: CallId(1),
            agent: AgentId(0)
        }),
        Err(AcdError::NoSuchOffer {
            call: CallId(1),
            agent: AgentId(0)
        })
    );
    assert_eq!(h.state_json(), before);
    assert_eq!(h.acd.queue_stats(Q0).unwrap().counters.offers_failed, 1);
}

#[test]
fn consecutive_ring_no_answers_pause_the_agent() {
    let mut config = one_queue(1);
    config.queues[0].auto_pause_after = Some(2);
    config.queues[0].ring_timeout = secs(10);
    config.queues[0].retry_after = Duration::ZERO;
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.advance(10.0); // first no-answer: rung again at once (no retry pause)
    assert_eq!(state(&h, 0), AgentState::Reserved { call: CallId(1) });
    h.advance(10.0); // second: paused
    assert_eq!(
        state(&h, 0),
        AgentState::Paused {
            reason: "no-answer".into()
        }
    );
    assert!(h.take_events().contains(&Event::AgentStateChanged {
        agent: AgentId(0),
        state: AgentStatus::Paused,
        reason: Some("no-answer".into())
    }));
    // An answered call resets the count.
    h.input(Input::Ready { agent: AgentId(0) }).unwrap();
    h.advance(10.0);
    h.answer(1, 0);
    h.hangup(1);
    h.arrive(2, 0, 0);
    h.advance(10.0);
    assert_eq!(state(&h, 0), AgentState::Reserved { call: CallId(2) });
}

#[test]
fn skill_expansion_widens_the_agents_over_wait_time() {
    let mut config = one_queue(0);
    config.queues[0].skills[0].min_level = 7;
    config.queues[0].ring_timeout = secs(100);
    config.queues[0].expansion = vec![
        ExpansionStep {
            after: secs(20),
            min_level: Some(3),
            add_queues: vec![],
        },
        ExpansionStep {
            after: secs(40),
            min_level: None,
            add_queues: vec!["billing".into()],
        },
    ];
    config
        .queues
        .push(QueueConfig::new("billing", &["billing"]));
    config.agents = vec![
        AgentConfig::new("junior", &[("sales", 3)]),
        AgentConfig::new("biller", &[("billing", 5)]),
    ];
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.arrive(2, 0, 0);
    h.login_all();
    assert!(h.take_rings().is_empty(), "nobody qualifies at level 7");
    h.advance(19.9);
    assert!(h.take_rings().is_empty());
    h.advance(0.1);
    let outputs = h.take();
    assert!(outputs.contains(&Output::Event(Event::SkillsExpanded {
        call: CallId(1),
        queue: Q0,
        step: 1
    })));
    assert!(outputs.contains(&Output::Command(Command::Ring {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0
    })));
    h.advance(20.0);
    assert_eq!(h.take_rings(), [(2, 1)], "at 40 s billing's agents join");
    // The biller serves billing's own callers first only by priority and arrival.
    assert_eq!(h.acd.snapshot().queues[0].ringing, 2);
}

#[test]
fn a_full_queue_overflows_new_callers_to_the_next_queue() {
    let mut config = one_queue(0);
    config.queues[0].max_callers = Some(2);
    config.queues[0].overflow = Overflow::Queue("billing".into());
    config
        .queues
        .push(QueueConfig::new("billing", &["billing"]));
    config.queues[1].max_callers = Some(1);
    config.queues[1].overflow = Overflow::External("voicemail".into());
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.arrive(2, 0, 0);
    h.take();
    h.arrive(3, 0, 0);
    let events = h.take_events();
    assert_eq!(
        events[0],
        Event::CallOverflowed {
            call: CallId(3),
            queue: Q0,
            reason: OverflowReason::QueueFull,
            to: OverflowedTo::Queue(Q1),
            at_entry: true
        }
    );
    assert!(matches!(
        events[1],
        Event::CallQueued {
            call: CallId(3),
            queue: Q1,
            position: 1,
            ..
        }
    ));
    h.arrive(4, 0, 0);
    let outputs = h.take();
    assert!(outputs.contains(&Output::Command(Command::RouteOut {
        call: CallId(4),
        destination: "voicemail".into()
    })));
    assert_eq!(h.acd.call_count(), 3);
    let sales = h.acd.queue_stats(Q0).unwrap().counters;
    let billing = h.acd.queue_stats(Q1).unwrap().counters;
    assert_eq!((sales.offered, sales.overflowed), (4, 2));
    assert_eq!((billing.offered, billing.overflowed), (2, 1));
}

#[test]
fn max_wait_overflows_a_waiting_caller_but_not_a_ringing_one() {
    let mut config = one_queue(1);
    config.queues[0].max_wait = Some(secs(60));
    config.queues[0].ring_timeout = secs(20);
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.advance(50.0);
    h.login(0);
    h.arrive(2, 0, 0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    h.advance(10.0);
    assert!(
        !h.take_commands()
            .iter()
            .any(|c| matches!(c, Command::Disconnect { .. })),
        "ringing at 60 s: left alone"
    );
    h.advance(10.0); // ring timeout at 70 s: call 1 overflows (hang-up target), call 2 rings
    let commands = h.take_commands();
    assert!(commands.contains(&Command::Disconnect {
        call: CallId(1),
        reason: OverflowReason::MaxWait
    }));
    assert!(commands.contains(&Command::Ring {
        call: CallId(2),
        agent: AgentId(0),
        queue: Q0
    }));
}

#[test]
fn no_agents_policy_refuses_and_empties_the_queue() {
    let mut config = one_queue(1);
    config.queues[0].when_no_agents = NoAgentsPolicy {
        join: false,
        leave: true,
    };
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    assert!(h.take_commands().contains(&Command::Disconnect {
        call: CallId(1),
        reason: OverflowReason::NoAgents
    }));
    h.login(0);
    h.input(Input::Pause {
        agent: AgentId(0),
        reason: "lunch".into(),
    })
    .unwrap();
    h.arrive(2, 0, 0);
    h.arrive(3, 0, 0);
    assert_eq!(
        h.acd.queue_depth(Q0),
        Some((2, 0)),
        "paused agents count as logged in"
    );
    h.take();
    h.input(Input::Logout { agent: AgentId(0) }).unwrap();
    let disconnected: Vec<_> = h
        .take_commands()
        .into_iter()
        .filter_map(|c| match c {
            Command::Disconnect {
                call,
                reason: OverflowReason::NoAgents,
            } => Some(call.0),
            _ => None,
        })
        .collect();
    assert_eq!(disconnected, [2, 3]);
    assert_eq!(h.acd.call_count(), 0);
}

#[test]
fn abandons_in_every_state() {
    let mut config = one_queue(1);
    config.queues[0].wrap_up = secs(30);
    let mut h = Harness::new(config);
    // Waiting, at position 2.
    h.arrive(1, 0, 0);
    h.arrive(2, 0, 0);
    h.advance(12.0);
    h.hangup(2);
    assert!(h.take_events().contains(&Event::CallAbandoned {
        call: CallId(2),
        queue: Q0,
        wait: secs(12),
        position: 2
    }));
    // Ringing: the phone stops, the agent is free again with no failure counted.
    h.login(0);
    h.take();
    h.advance(3.0);
    h.hangup(1);
    let outputs = h.take();
    assert!(outputs.contains(&Output::Command(Command::StopRinging {
        call: CallId(1),
        agent: AgentId(0)
    })));
    assert!(outputs.contains(&Output::Event(Event::CallAbandoned {
        call: CallId(1),
        queue: Q0,
        wait: secs(15),
        position: 1
    })));
    assert_eq!(state(&h, 0), AgentState::Available);
    // Connected: completes, then timed wrap-up.
    h.arrive(3, 0, 0);
    h.advance(2.0);
    h.answer(3, 0);
    h.advance(100.0);
    h.hangup(3);
    assert!(h.take_events().contains(&Event::CallCompleted {
        call: CallId(3),
        agent: AgentId(0),
        queue: Q0,
        talk: secs(100)
    }));
    assert!(matches!(state(&h, 0), AgentState::WrapUp { .. }));
    h.advance(30.0);
    assert_eq!(state(&h, 0), AgentState::Available);
    let stats = h.acd.queue_stats(Q0).unwrap();
    assert_eq!(stats.counters.abandoned, 2);
    assert_eq!(stats.counters.completed, 1);
    assert_eq!(stats.rates().aht, Some(secs(130)));
    assert_eq!(h.acd.call_count(), 0);
    // Ended calls are unknown afterwards.
    assert_eq!(
        h.input(Input::Hangup { call: CallId(3) }),
        Err(AcdError::UnknownCall(CallId(3)))
    );
}

#[test]
fn pause_and_logout_requested_on_a_call_wait_for_its_end() {
    let mut config = one_queue(1);
    config.queues[0].wrap_up = secs(10);
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.answer(1, 0);
    h.input(Input::Pause {
        agent: AgentId(0),
        reason: "coffee".into(),
    })
    .unwrap();
    assert_eq!(state(&h, 0), AgentState::OnCall { call: CallId(1) });
    h.hangup(1);
    h.advance(10.0);
    assert_eq!(
        state(&h, 0),
        AgentState::Paused {
            reason: "coffee".into()
        }
    );
    // Ready during wrap-up ends it early.
    h.input(Input::Ready { agent: AgentId(0) }).unwrap();
    h.arrive(2, 0, 0);
    h.answer(2, 0);
    h.input(Input::Logout { agent: AgentId(0) }).unwrap();
    h.hangup(2);
    assert!(matches!(state(&h, 0), AgentState::WrapUp { .. }));
    h.advance(3.0);
    h.input(Input::Ready { agent: AgentId(0) }).unwrap();
    assert_eq!(
        state(&h, 0),
        AgentState::LoggedOut,
        "the pending logout wins over ready"
    );
    let wrap = &h.acd.queue_stats(Q0).unwrap().wrap_up;
    assert_eq!(wrap.count(), 2);
    assert_eq!(wrap.sum(), secs(13));
}

#[test]
fn logging_out_while_ringing_puts_the_caller_back_first_in_line() {
    let mut h = Harness::new(one_queue(2));
    h.login(0);
    h.arrive(1, 0, 0);
    h.advance(5.0);
    h.arrive(2, 0, 0);
    h.take();
    h.input(Input::Logout { agent: AgentId(0) }).unwrap();
    assert!(h.take_commands().contains(&Command::StopRinging {
        call: CallId(1),
        agent: AgentId(0)
    }));
    assert_eq!(h.acd.position(CallId(1)), Some(1));
    h.login(1);
    assert_eq!(h.take_rings(), [(1, 1)]);
    assert_eq!(h.acd.queue_stats(Q0).unwrap().counters.offers_failed, 0);
}

#[test]
fn thresholds_classify_waits_exactly() {
    let mut h = Harness::new(one_queue(1));
    // Abandons at 4.9 s (short), 20 s (within SL), 47 s (not after threshold), 47.001 s.
    for (call, wait) in [(1, 4.9), (2, 20.0), (3, 47.0), (4, 47.001)] {
        h.arrive(call, 0, 0);
        h.advance(wait);
        h.hangup(call);
    }
    // Answers at 20 s (within) and 20.001 s (not).
    h.arrive(5, 0, 0);
    h.arrive(6, 0, 0);
    h.advance(20.0);
    h.login(0);
    h.answer(5, 0);
    h.hangup(5);
    h.advance(0.001);
    h.answer(6, 0);
    let c = h.acd.queue_stats(Q0).unwrap().counters;
    assert_eq!(c.short_abandoned, 1);
    assert_eq!(c.abandoned_within_sl, 2);
    assert_eq!(c.abandoned_after_threshold, 1);
    assert_eq!(c.answered_within_sl, 1);
    let rates = h.acd.queue_stats(Q0).unwrap().rates();
    assert_eq!(rates.service_level, Some(1.0 / 5.0));
    assert_eq!(rates.abandon_after_threshold_rate, Some(1.0 / 6.0));
}

#[test]
fn intervals_close_on_their_boundaries_with_exact_percentiles() {
    let mut config = one_queue(1);
    config.statistics.interval = secs(900);
    let mut h = Harness::new(config);
    for (call, wait) in [(1u64, 10.0), (2, 20.0), (3, 30.0)] {
        h.arrive(call, 0, 0);
        h.advance(wait);
        h.login(0);
        h.answer(call, 0);
        h.advance(60.0);
        h.hangup(call);
        h.input(Input::Logout { agent: AgentId(0) }).unwrap();
    }
    assert_eq!(h.now, Timestamp::from_secs(240));
    assert_eq!(h.acd.closed_intervals(Q0).count(), 0);
    h.advance_to(Timestamp::from_secs(900));
    let closed: Vec<_> = h.acd.closed_intervals(Q0).collect();
    assert_eq!(closed.len(), 1);
    let report = closed[0];
    assert_eq!(
        (report.start, report.end),
        (Timestamp::ZERO, Timestamp::from_secs(900))
    );
    assert_eq!(report.summary.counters.answered, 3);
    assert_eq!(report.summary.wait.p50, secs(20));
    assert_eq!(report.summary.wait.max, secs(30));
    assert_eq!(report.summary.rates.asa, Some(secs(20)));
    assert_eq!(h.acd.interval_stats(Q0).unwrap().counters.answered, 0);
    // Agent time: on call 3 × 60 s, logged out the rest.
    let agents: Vec<_> = h.acd.closed_agent_intervals().collect();
    assert_eq!(agents[0].time.busy, secs(180));
    assert_eq!(agents[0].time.available, Duration::ZERO);
    h.advance_to(Timestamp::from_secs(1800));
    assert_eq!(h.acd.closed_intervals(Q0).count(), 2);
    assert_eq!(
        h.acd.queue_stats(Q0).unwrap().counters.answered,
        3,
        "cumulative stays"
    );
}

#[test]
fn wait_estimates_are_kept_beside_actual_waits() {
    let mut config = one_queue(2);
    config.queues[0].expected_handle_time = secs(120);
    let mut h = Harness::new(config);
    h.login_all();
    h.arrive(1, 0, 0);
    h.arrive(2, 0, 0);
    h.answer(1, 0);
    h.answer(2, 1);
    h.take();
    // Both agents busy; 2 staffed at 120 s: one comes free every 60 s.
    h.arrive(3, 0, 0);
    h.arrive(4, 0, 0);
    let events = h.take_events();
    assert!(events.contains(&Event::CallQueued {
        call: CallId(3),
        queue: Q0,
        position: 1,
        estimated_wait: Some(secs(60))
    }));
    assert!(events.contains(&Event::CallQueued {
        call: CallId(4),
        queue: Q0,
        position: 2,
        estimated_wait: Some(secs(120))
    }));
    h.advance(30.0);
    h.input(Input::EstimateWait { call: CallId(4) }).unwrap();
    assert!(h.take_events().contains(&Event::WaitEstimated {
        call: CallId(4),
        queue: Q0,
        position: 2,
        estimated_wait: Some(secs(120))
    }));
    h.advance(25.0);
    h.hangup(1); // agent 0 free at 55 s: call 3 (predicted 60 s) rings
    h.answer(3, 0);
    let events = h.take_events();
    assert!(events.contains(&Event::WaitPredictionResolved {
        call: CallId(3),
        queue: Q0,
        made_at: Timestamp::ZERO,
        predicted: secs(60),
        actual: secs(55),
        outcome: WaitOutcome::Answered
    }));
    h.hangup(4);
    let resolved: Vec<_> = h
        .take_events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::WaitPredictionResolved {
                    outcome: WaitOutcome::Abandoned,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(resolved.len(), 2, "both of call 4's predictions, censored");
    let c = h.acd.queue_stats(Q0).unwrap().counters;
    assert_eq!((c.predictions, c.predictions_within_20pct), (1, 1));
    assert_eq!(
        h.input(Input::EstimateWait { call: CallId(3) }),
        Err(AcdError::CallNotWaiting(CallId(3)))
    );
}

#[test]
fn refused_inputs_name_the_problem_and_change_nothing() {
    let mut h = Harness::new(one_queue(1));
    h.login(0);
    h.arrive(1, 0, 0);
    h.advance(5.0);
    h.take();
    let before = h.state_json();
    let cases = [
        (
            Input::CallArrived {
                call: CallId(1),
                queue: Q0,
                priority: 0,
            },
            AcdError::DuplicateCall(CallId(1)),
        ),
        (
            Input::CallArrived {
                call: CallId(9),
                queue: QueueId(7),
                priority: 0,
            },
            AcdError::UnknownQueue(QueueId(7)),
        ),
        (
            Input::Hangup { call: CallId(9) },
            AcdError::UnknownCall(CallId(9)),
        ),
        (
            Input::Login { agent: AgentId(5) },
            AcdError::UnknownAgent(AgentId(5)),
        ),
        (
            Input::OfferAnswered {
                call: CallId(1),
                agent: AgentId(5),
            },
            AcdError::UnknownAgent(AgentId(5)),
        ),
        (
            Input::OfferFailed {
                call: CallId(9),
                agent: AgentId(0),
                reason: OfferFailure::Rejected,
            },
            AcdError::UnknownCall(CallId(9)),
        ),
    ];
    for (input, error) in cases {
        assert_eq!(h.input(input), Err(error));
        assert_eq!(h.state_json(), before);
    }
    assert!(h.take_events().is_empty());
    let error = h
        .acd
        .handle_input(Timestamp::from_secs(1), Input::Timeout)
        .unwrap_err();
    assert_eq!(
        error,
        AcdError::TimeWentBackwards {
            now: Timestamp::from_secs(1),
            last: Timestamp::from_secs(5)
        }
    );
    assert_eq!(
        error.to_string(),
        "time went backwards: 1.000000s is before 5.000000s"
    );
    h.input(Input::Logout { agent: AgentId(0) }).unwrap();
    assert_eq!(
        h.input(Input::Pause {
            agent: AgentId(0),
            reason: "x".into()
        }),
        Err(AcdError::AgentLoggedOut(AgentId(0)))
    );
}

#[test]
fn bad_configs_name_the_field_and_the_reason() {
    let base = || {
        let mut config = one_queue(1);
        config
            .queues
            .push(QueueConfig::new("billing", &["billing"]));
        config
    };
    let check = |edit: &dyn Fn(&mut AcdConfig), want: ConfigError, text: &str| {
        let mut config = base();
        edit(&mut config);
        let error = amico_core::Acd::new(config, Timestamp::ZERO).unwrap_err();
        assert_eq!(error, AcdError::Config(want));
        assert_eq!(error.to_string(), format!("invalid configuration: {text}"));
    };
    check(
        &|c| c.queues[0].skills[0].skill = "salse".into(),
        ConfigError::UnknownSkill {
            owner: "queues[sales].skills".into(),
            skill: "salse".into(),
        },
        "queues[sales].skills: skill 'salse' is not declared in skills",
    );
    check(
        &|c| c.agents[0].skills[0].level = 11,
        ConfigError::LevelOutOfRange {
            owner: "agents[a0].skills".into(),
            skill: "sales".into(),
            level: 11,
        },
        "agents[a0].skills: level 11 of skill 'sales' is outside 1-10",
    );
    check(
        &|c| c.queues[1].name = "sales".into(),
        ConfigError::DuplicateName {
            kind: "queue",
            name: "sales".into(),
        },
        "queue 'sales' is declared twice",
    );
    check(
        &|c| c.queues[0].overflow = Overflow::Queue("nowhere".into()),
        ConfigError::UnknownQueue {
            field: "queues[sales].overflow".into(),
            queue: "nowhere".into(),
        },
        "queues[sales].overflow: queue 'nowhere' does not exist",
    );
    check(
        &|c| c.queues[0].overflow = Overflow::Queue("sales".into()),
        ConfigError::OverflowToSelf {
            queue: "sales".into(),
        },
        "queues[sales].overflow: a queue cannot overflow into itself",
    );
    check(
        &|c| {
            c.queues[0].expansion = vec![
                ExpansionStep {
                    after: secs(30),
                    ..Default::default()
                },
                ExpansionStep {
                    after: secs(20),
                    ..Default::default()
                },
            ]
        },
        ConfigError::ExpansionOutOfOrder {
            queue: "sales".into(),
            step: 1,
        },
        "queues[sales].expansion[1].after: steps must be after 0 s and in increasing order",
    );
    check(
        &|c| c.queues[0].ring_timeout = Duration::ZERO,
        ConfigError::ZeroDuration {
            field: "queues[sales].ring_timeout".into(),
        },
        "queues[sales].ring_timeout must be greater than zero",
    );
    check(
        &|c| c.queues[0].max_callers = Some(0),
        ConfigError::ZeroCount {
            field: "queues[sales].max_callers".into(),
        },
        "queues[sales].max_callers must be at least 1",
    );
    check(
        &|c| {
            c.agents[0].skills.push(amico_core::AgentSkill {
                skill: "sales".into(),
                level: 2,
            })
        },
        ConfigError::RepeatedSkill {
            owner: "agents[a0].skills".into(),
            skill: "sales".into(),
        },
        "agents[a0].skills: skill 'sales' is listed twice",
    );
    check(
        &|c| c.agents[0].name = " ".into(),
        ConfigError::EmptyName {
            kind: "agent",
            index: 0,
        },
        "agent #0 has an empty name",
    );
}

#[test]
fn a_config_round_trips_through_json() {
    let mut config = one_queue(2);
    config.queues[0].max_wait = Some(Duration::from_millis(90_500));
    config.queues[0].overflow = Overflow::External("+390521000000".into());
    let json = serde_json::to_string(&config).unwrap();
    let back: AcdConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    let error =
        serde_json::from_str::<AcdConfig>(r#"{"skills":[],"queues":[],"agents":[],"sklls":1}"#)
            .unwrap_err();
    assert!(
        error.to_string().contains("unknown field `sklls`"),
        "{error}"
    );
}

#[test]
fn a_snapshot_lists_callers_in_line_order() {
    let mut h = Harness::new(one_queue(1));
    h.login(0);
    h.arrive(1, 0, 0);
    h.advance(1.0);
    h.arrive(2, 0, 0);
    h.advance(1.0);
    h.arrive(3, 0, 9);
    h.advance(1.0);
    let snapshot = h.acd.snapshot();
    let queue = &snapshot.queues[0];
    assert_eq!((queue.waiting, queue.ringing), (2, 1));
    let order: Vec<_> = queue
        .callers
        .iter()
        .map(|c| (c.call.0, c.position, c.ringing))
        .collect();
    assert_eq!(
        order,
        [
            (1, None, Some(AgentId(0))),
            (3, Some(1), None),
            (2, Some(2), None)
        ]
    );
    assert_eq!(queue.longest_wait, secs(3));
    assert_eq!(queue.agents.reserved, 1);
    assert_eq!(
        snapshot.agents[0].state,
        AgentState::Reserved { call: CallId(1) }
    );
    assert!(
        serde_json::to_string(&snapshot)
            .unwrap()
            .contains("\"name\":\"sales\"")
    );
}

#[test]
fn drive_bounded_reaches_a_quiet_acd() {
    let mut config = one_queue(1);
    config.queues[0].wrap_up = secs(5);
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.answer(1, 0);
    h.hangup(1);
    h.drive_bounded(10, |h| {
        h.acd.agent_state(AgentId(0)) == Some(&AgentState::Available)
    });
    assert_eq!(h.now, Timestamp::from_secs(5));
}

#[test]
fn a_caller_who_asks_to_leave_goes_to_the_overflow() {
    let mut config = one_queue(1);
    config.queues[0].overflow = Overflow::External("voicemail".into());
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.input(Input::LeaveQueue { call: CallId(1) }).unwrap();
    let outputs = h.take();
    assert!(outputs.contains(&Output::Event(Event::CallOverflowed {
        call: CallId(1),
        queue: Q0,
        reason: OverflowReason::CallerChoice,
        to: OverflowedTo::External("voicemail".into()),
        at_entry: false
    })));
    // While ringing: the phone stops, the agent is free, the caller leaves.
    h.login(0);
    h.arrive(2, 0, 0);
    assert_eq!(h.take_rings(), [(2, 0)]);
    h.input(Input::LeaveQueue { call: CallId(2) }).unwrap();
    assert!(h.take_commands().contains(&Command::StopRinging {
        call: CallId(2),
        agent: AgentId(0)
    }));
    assert_eq!(state(&h, 0), AgentState::Available);
    h.arrive(3, 0, 0);
    h.answer(3, 0);
    assert_eq!(
        h.input(Input::LeaveQueue { call: CallId(3) }),
        Err(AcdError::CallNotWaiting(CallId(3)))
    );
    assert_eq!(h.acd.queue_stats(Q0).unwrap().counters.overflowed, 2);
}

#[test]
fn survey_votes_are_counted_per_queue_and_per_agent() {
    let mut h = Harness::new(one_queue(2));
    let vote = |h: &mut Harness, call: u64, agent: u32, vote| {
        h.input(Input::SurveyVote {
            call: CallId(call),
            queue: Q0,
            agent: AgentId(agent),
            vote,
        })
        .unwrap();
    };
    vote(&mut h, 1, 0, Some(amico_core::Vote::Satisfied));
    vote(&mut h, 2, 0, Some(amico_core::Vote::Satisfied));
    vote(&mut h, 3, 1, Some(amico_core::Vote::Sufficient));
    vote(&mut h, 4, 1, None);
    let survey = h.acd.queue_stats(Q0).unwrap().counters.survey;
    assert_eq!(
        (
            survey.satisfied,
            survey.sufficient,
            survey.unsatisfied,
            survey.no_vote
        ),
        (2, 1, 0, 1)
    );
    let (satisfied, sufficient, unsatisfied) = survey.shares().unwrap();
    assert!(
        (satisfied - 2.0 / 3.0).abs() < 1e-12
            && (sufficient - 1.0 / 3.0).abs() < 1e-12
            && unsatisfied == 0.0
    );
    let snapshot = h.acd.snapshot();
    assert_eq!(snapshot.agents[0].survey.satisfied, 2);
    assert_eq!(snapshot.agents[1].survey.no_vote, 1);
    assert_eq!(snapshot.queues[0].interval.counters.survey.votes(), 3);
    assert!(h.take_events().contains(&Event::SurveyRecorded {
        call: CallId(3),
        queue: Q0,
        agent: AgentId(1),
        vote: Some(amico_core::Vote::Sufficient)
    }));
    assert_eq!(
        h.input(Input::SurveyVote {
            call: CallId(5),
            queue: QueueId(9),
            agent: AgentId(0),
            vote: None
        }),
        Err(AcdError::UnknownQueue(QueueId(9)))
    );
}

#[test]
fn a_callback_keeps_its_place_and_calls_back_agent_first() {
    let mut config = one_queue(1);
    config.queues[0].wrap_up = Duration::ZERO;
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.advance(10.0);
    h.arrive(2, 0, 0);
    h.input(Input::RequestCallback { call: CallId(1) }).unwrap();
    assert!(h.take_events().contains(&Event::CallbackRequested {
        call: CallId(1),
        queue: Q0,
        position: 1
    }));
    // Nobody abandons: the caller is gone but its place is kept.
    h.advance(50.0);
    h.login(0);
    assert_eq!(h.take_rings(), [(1, 0)], "the callback is first in line");
    h.answer(1, 0);
    let events = h.take_events();
    assert!(events.contains(&Event::CallbackDialing {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::CallConnected { .. })),
        "not until the caller answers"
    );
    assert_eq!(state(&h, 0), AgentState::OnCall { call: CallId(1) });
    h.advance(5.0);
    h.input(Input::CallbackAnswered { call: CallId(1) })
        .unwrap();
    assert!(h.take_events().contains(&Event::CallConnected {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0,
        wait: secs(65),
        ring: secs(5)
    }));
    h.hangup(1);
    let c = h.acd.queue_stats(Q0).unwrap().counters;
    assert_eq!(
        (
            c.offered,
            c.answered,
            c.abandoned,
            c.callbacks_requested,
            c.completed
        ),
        (2, 1, 0, 1, 1)
    );
    assert_eq!(h.take_rings(), [(2, 0)], "then the next caller");
}

#[test]
fn an_unreached_callback_retries_then_gives_up_without_counting_an_abandon() {
    let mut config = one_queue(1);
    config.queues[0].callback_attempts = 2;
    config.queues[0].callback_retry_after = secs(30);
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    // Pressed 1 while the agent's phone rang: the ring stops, the callback waits.
    h.input(Input::RequestCallback { call: CallId(1) }).unwrap();
    let outputs = h.take();
    assert!(outputs.contains(&Output::Command(Command::StopRinging {
        call: CallId(1),
        agent: AgentId(0)
    })));
    // The agent was free at once: the callback comes straight back, agent first.
    assert!(outputs.contains(&Output::Command(Command::Ring {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0
    })));
    h.answer(1, 0);
    h.input(Input::CallbackFailed { call: CallId(1) }).unwrap();
    assert!(h.take_events().contains(&Event::CallbackRetrying {
        call: CallId(1),
        failures: 1
    }));
    assert_eq!(
        state(&h, 0),
        AgentState::Available,
        "no wrap-up after a call that never connected"
    );
    h.advance(29.0);
    assert!(
        h.take_rings().is_empty(),
        "out of line until the retry delay passes"
    );
    h.advance(1.0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    h.answer(1, 0);
    h.input(Input::CallbackFailed { call: CallId(1) }).unwrap();
    assert!(h.take_events().contains(&Event::CallbackUnanswered {
        call: CallId(1),
        queue: Q0
    }));
    assert_eq!(h.acd.call_count(), 0);
    let c = h.acd.queue_stats(Q0).unwrap().counters;
    assert_eq!(
        (
            c.callbacks_requested,
            c.callbacks_unanswered,
            c.abandoned,
            c.answered
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(
        h.input(Input::RequestCallback { call: CallId(1) }),
        Err(AcdError::UnknownCall(CallId(1)))
    );
}

// ---- supervisor actions and reconfiguration ---------------------------------------------

/// The events among the outputs, in order, leaving out agents' state changes.
fn events_but_states(outputs: &[Output]) -> Vec<Event> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::AgentStateChanged { .. }) | Output::Command(_) => None,
            Output::Event(e) => Some(e.clone()),
        })
        .collect()
}

/// Two queues, "sales" and "billing", each with its own agent: a0 (sales), a1 (billing).
fn two_queues() -> AcdConfig {
    let mut config = one_queue(0);
    config
        .queues
        .push(QueueConfig::new("billing", &["billing"]));
    config.agents = vec![
        AgentConfig::new("a0", &[("sales", 5)]),
        AgentConfig::new("a1", &[("billing", 5)]),
    ];
    config
}

#[test]
fn an_agent_in_wrap_up_gets_more_time() {
    let mut config = one_queue(1);
    config.queues[0].wrap_up = secs(10);
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.answer(1, 0);
    h.advance(30.0);
    h.hangup(1);
    assert_eq!(
        state(&h, 0),
        AgentState::WrapUp {
            until: Timestamp::from_secs(40)
        }
    );
    h.advance(5.0);
    h.take();
    h.input(Input::ExtendWrapUp {
        agent: AgentId(0),
        by: secs(15),
    })
    .unwrap();
    assert_eq!(
        h.take_events(),
        [Event::WrapUpExtended {
            agent: AgentId(0),
            until: Timestamp::from_secs(55)
        }]
    );
    h.arrive(2, 0, 0);
    h.advance(10.0); // 45 s: the old end passes
    assert!(h.take_rings().is_empty(), "still wrapping up");
    h.advance(10.0); // 55 s
    let outputs = h.take();
    assert!(outputs.contains(&Output::Event(Event::WrapUpEnded {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0,
        wrap_up: secs(25)
    })));
    assert!(outputs.contains(&Output::Command(Command::Ring {
        call: CallId(2),
        agent: AgentId(0),
        queue: Q0
    })));

    // Any other state is refused, naming the agent and its state.
    let before = h.state_json();
    let error = h
        .input(Input::ExtendWrapUp {
            agent: AgentId(0),
            by: secs(5),
        })
        .unwrap_err();
    assert_eq!(
        error,
        AcdError::NotInWrapUp {
            agent: AgentId(0),
            state: AgentStatus::Reserved
        }
    );
    assert_eq!(
        error.to_string(),
        "agent#0 is not in wrap-up: it is reserved (ringing)"
    );
    assert_eq!(
        h.input(Input::ExtendWrapUp {
            agent: AgentId(3),
            by: secs(5),
        }),
        Err(AcdError::UnknownAgent(AgentId(3)))
    );
    assert_eq!(h.state_json(), before);
    assert!(h.take().is_empty());
}

#[test]
fn a_new_priority_reorders_the_line_and_waits_for_a_ringing_offer() {
    let mut h = Harness::new(one_queue(1));
    h.login(0);
    h.arrive(1, 0, 0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    h.advance(1.0);
    h.arrive(2, 0, 0);
    h.advance(1.0);
    h.arrive(3, 0, 0);
    h.take();
    h.input(Input::SetPriority {
        call: CallId(3),
        priority: 5,
    })
    .unwrap();
    assert_eq!(
        h.take_events(),
        [Event::PriorityChanged {
            call: CallId(3),
            queue: Q0,
            priority: 5,
            position: Some(1)
        }]
    );
    assert_eq!(h.acd.position(CallId(3)), Some(1));
    assert_eq!(h.acd.position(CallId(2)), Some(2));

    // The ringing caller keeps ringing; its priority counts if the offer fails.
    h.input(Input::SetPriority {
        call: CallId(1),
        priority: 9,
    })
    .unwrap();
    let outputs = h.take();
    assert_eq!(
        outputs,
        [Output::Event(Event::PriorityChanged {
            call: CallId(1),
            queue: Q0,
            priority: 9,
            position: None
        })]
    );
    assert_eq!(state(&h, 0), AgentState::Reserved { call: CallId(1) });
    h.reject(1, 0);
    assert_eq!(h.acd.position(CallId(1)), Some(1), "first, by priority");
    assert_eq!(
        h.take_rings(),
        [(3, 0)],
        "the agent, skipped for call 1 a while, takes the next by priority"
    );

    // Answered calls and unknown ones are refused.
    h.answer(3, 0);
    let before = h.state_json();
    assert_eq!(
        h.input(Input::SetPriority {
            call: CallId(3),
            priority: 1
        }),
        Err(AcdError::CallNotWaiting(CallId(3)))
    );
    assert_eq!(
        h.input(Input::SetPriority {
            call: CallId(8),
            priority: 1
        }),
        Err(AcdError::UnknownCall(CallId(8)))
    );
    assert_eq!(h.state_json(), before);
}

#[test]
fn a_moved_caller_keeps_its_place_by_arrival_and_counts_as_transferred() {
    let mut h = Harness::new(two_queues());
    h.login(1);
    h.arrive(10, 1, 0); // billing's agent is busy with it
    h.answer(10, 1);
    h.arrive(1, 0, 0); // sales has nobody logged in
    h.advance(10.0);
    h.arrive(2, 1, 0);
    h.advance(10.0);
    h.take();
    h.input(Input::MoveCall {
        call: CallId(1),
        queue: Q1,
    })
    .unwrap();
    assert_eq!(
        h.take_events(),
        [
            Event::CallTransferred {
                call: CallId(1),
                queue: Q0,
                to: Q1,
                wait: secs(20)
            },
            Event::CallQueued {
                call: CallId(1),
                queue: Q1,
                position: 1,
                estimated_wait: Some(secs(180))
            }
        ],
        "arrived before call 2: ahead of it"
    );
    assert_eq!(h.acd.position(CallId(2)), Some(2));
    h.advance(5.0);
    h.hangup(10);
    assert_eq!(h.take_rings(), [(1, 1)]);
    h.advance(5.0);
    h.answer(1, 1);
    assert!(h.take_events().contains(&Event::CallConnected {
        call: CallId(1),
        agent: AgentId(1),
        queue: Q1,
        wait: secs(10),
        ring: secs(5)
    }));
    let sales = h.acd.queue_stats(Q0).unwrap().counters;
    let billing = h.acd.queue_stats(Q1).unwrap().counters;
    assert_eq!(
        (sales.offered, sales.transferred, sales.abandoned),
        (1, 1, 0)
    );
    assert_eq!(
        (billing.offered, billing.answered, billing.transferred),
        (3, 2, 0)
    );
    // Outside every rate: sales answered and abandoned nobody.
    assert_eq!(h.acd.queue_stats(Q0).unwrap().rates().abandon_rate, None);

    // A ringing caller: the offer is withdrawn first and the agent is free again.
    h.login(0);
    h.arrive(3, 0, 0);
    assert_eq!(h.take_rings(), [(3, 0)]);
    h.input(Input::MoveCall {
        call: CallId(3),
        queue: Q1,
    })
    .unwrap();
    let outputs = h.take();
    let stop = outputs
        .iter()
        .position(|o| {
            *o == Output::Command(Command::StopRinging {
                call: CallId(3),
                agent: AgentId(0),
            })
        })
        .expect("the ring stops");
    let moved = outputs
        .iter()
        .position(|o| matches!(o, Output::Event(Event::CallTransferred { .. })))
        .expect("transferred");
    assert!(stop < moved);
    assert_eq!(state(&h, 0), AgentState::Available);
    assert_eq!(h.acd.queue_depth(Q1), Some((2, 0)));
    assert_eq!(h.acd.queue_depth(Q0), Some((0, 0)));
}

#[test]
fn a_supervisor_removes_callers_without_counting_abandons() {
    let mut h = Harness::new(two_queues());
    h.arrive(1, 0, 0); // nobody logged in: waits
    h.arrive(2, 0, 0);
    h.advance(60.0);
    h.take();
    h.input(Input::RemoveCall { call: CallId(2) }).unwrap();
    assert_eq!(
        h.take_events(),
        [Event::CallRemoved {
            call: CallId(2),
            queue: Q0,
            wait: secs(60),
            position: Some(2)
        }]
    );
    assert_eq!(h.acd.position(CallId(1)), Some(1));

    // Ringing: the ring stops first, and the agent takes the next caller.
    h.login(0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    h.arrive(3, 0, 0);
    h.advance(1.0);
    h.take();
    h.input(Input::RemoveCall { call: CallId(1) }).unwrap();
    let outputs = h.take();
    let stop = outputs.iter().position(|o| {
        *o == Output::Command(Command::StopRinging {
            call: CallId(1),
            agent: AgentId(0),
        })
    });
    let removed = outputs.iter().position(|o| {
        *o == Output::Event(Event::CallRemoved {
            call: CallId(1),
            queue: Q0,
            wait: secs(61),
            position: None,
        })
    });
    let rung = outputs.iter().position(|o| {
        matches!(o, Output::Command(Command::Ring { call, agent, .. })
            if *call == CallId(3) && *agent == AgentId(0))
    });
    assert!(
        matches!((stop, removed, rung), (Some(s), Some(r), Some(n)) if s < r && r < n),
        "{outputs:?}"
    );

    // Answered: a supervisor's hang-up completes the call like any other.
    h.answer(3, 0);
    h.advance(30.0);
    h.take();
    h.input(Input::RemoveCall { call: CallId(3) }).unwrap();
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::CallCompleted { call, .. } if *call == CallId(3)))
    );

    let sales = h.acd.queue_stats(Q0).unwrap();
    let c = sales.counters;
    assert_eq!(
        (c.offered, c.answered, c.abandoned, c.removed, c.completed),
        (3, 1, 0, 2, 1)
    );
    assert_eq!(sales.abandon.count(), 0);
    // Outside every rate: one answer, no abandon.
    let rates = sales.rates();
    assert_eq!(rates.abandon_rate, Some(0.0));
    assert_eq!(
        h.input(Input::RemoveCall { call: CallId(1) }),
        Err(AcdError::UnknownCall(CallId(1)))
    );
}

#[test]
fn a_supervisor_removes_a_callback_being_dialled_and_it_is_not_tried_again() {
    let mut config = one_queue(1);
    config.queues[0].wrap_up = secs(30);
    config.queues[0].callback_attempts = 3;
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.input(Input::RequestCallback { call: CallId(1) }).unwrap();
    h.advance(20.0);
    h.arrive(2, 0, 0);
    h.login(0);
    assert_eq!(h.take_rings(), [(1, 0)]);
    h.answer(1, 0);
    h.take();
    h.input(Input::RemoveCall { call: CallId(1) }).unwrap();
    let outputs = h.take();
    assert!(outputs.contains(&Output::Event(Event::CallRemoved {
        call: CallId(1),
        queue: Q0,
        wait: secs(20),
        position: None
    })));
    // No conversation, so no wrap-up: the agent takes the next caller at once.
    assert!(
        outputs.iter().any(|o| matches!(o,
            Output::Command(Command::Ring { call, .. }) if *call == CallId(2))),
        "{outputs:?}"
    );
    h.advance(600.0);
    assert!(
        !h.take_rings().iter().any(|&(call, _)| call == 1),
        "a removed callback is not tried again"
    );
    let c = h.acd.queue_stats(Q0).unwrap().counters;
    assert_eq!((c.removed, c.callbacks_unanswered, c.abandoned), (1, 0, 0));
}

#[test]
fn a_moved_caller_meets_the_new_queues_expansion_and_max_wait_from_the_move() {
    let mut config = two_queues();
    config.queues[1].max_wait = Some(secs(60));
    config.queues[1].expansion = vec![ExpansionStep {
        after: secs(30),
        min_level: None,
        add_queues: vec!["sales".into()],
    }];
    let mut h = Harness::new(config);
    h.arrive(1, 0, 0);
    h.advance(40.0);
    h.input(Input::MoveCall {
        call: CallId(1),
        queue: Q1,
    })
    .unwrap();
    h.advance(10.0);
    h.login(0); // a sales agent: not billing's until the expansion step
    h.advance(19.0);
    assert!(h.take_rings().is_empty(), "69 s: 29 s after the move");
    h.advance(1.0);
    assert_eq!(h.take_rings(), [(1, 0)], "70 s: 30 s after the move");
    h.input(Input::Logout { agent: AgentId(0) }).unwrap();
    h.advance(29.0);
    assert!(
        !h.take_commands()
            .iter()
            .any(|c| matches!(c, Command::Disconnect { .. })),
        "99 s: 59 s after the move"
    );
    h.advance(1.0);
    assert!(h.take_commands().contains(&Command::Disconnect {
        call: CallId(1),
        reason: OverflowReason::MaxWait
    }));
}

#[test]
fn moves_that_cannot_be_made_are_refused_and_change_nothing() {
    let mut config = two_queues();
    config.queues.push(QueueConfig::new("full", &["billing"]));
    config.queues[2].max_callers = Some(1);
    config
        .queues
        .push(QueueConfig::new("staffed-only", &["billing"]));
    config.queues[3].when_no_agents = NoAgentsPolicy {
        join: false,
        leave: false,
    };
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.answer(1, 0);
    h.arrive(2, 0, 0);
    h.arrive(3, 2, 0);
    h.take();
    let before = h.state_json();
    let cases = [
        (
            Input::MoveCall {
                call: CallId(2),
                queue: Q0,
            },
            AcdError::AlreadyInQueue {
                call: CallId(2),
                queue: Q0,
            },
            "call#2 is already in queue#0",
        ),
        (
            Input::MoveCall {
                call: CallId(2),
                queue: QueueId(9),
            },
            AcdError::UnknownQueue(QueueId(9)),
            "queue#9 does not exist",
        ),
        (
            Input::MoveCall {
                call: CallId(1),
                queue: Q1,
            },
            AcdError::CallNotWaiting(CallId(1)),
            "call#1 is not waiting",
        ),
        (
            Input::MoveCall {
                call: CallId(7),
                queue: Q1,
            },
            AcdError::UnknownCall(CallId(7)),
            "call#7 is not in the ACD",
        ),
        (
            Input::MoveCall {
                call: CallId(2),
                queue: QueueId(2),
            },
            AcdError::QueueFull {
                queue: QueueId(2),
                max: 1,
            },
            "queue#2 is full: it holds its maximum of 1 callers",
        ),
        (
            Input::MoveCall {
                call: CallId(2),
                queue: QueueId(3),
            },
            AcdError::NoAgentsLoggedIn(QueueId(3)),
            "queue#3 takes no callers while no agent who could serve it is logged in",
        ),
    ];
    for (input, error, text) in cases {
        let refused = h.input(input).unwrap_err();
        assert_eq!(refused, error);
        assert_eq!(refused.to_string(), text);
        assert_eq!(h.state_json(), before);
        assert!(h.take().is_empty());
    }
}

#[test]
fn a_queue_update_applies_to_the_callers_already_there() {
    let mut config = one_queue(0);
    config.queues[0].skills[0].min_level = 5;
    config.agents = vec![AgentConfig::new("junior", &[("sales", 3)])];
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.advance(30.0);
    h.arrive(2, 0, 0);
    h.advance(10.0);
    assert!(h.take_rings().is_empty(), "level 3 is below sales' 5");

    // Expansion: caller 1 has waited 40 s, past the new step at 35 s; caller 2 has not.
    let update = QueueUpdate {
        expansion: Some(vec![ExpansionStep {
            after: secs(35),
            min_level: Some(3),
            add_queues: vec![],
        }]),
        max_wait: Some(Some(secs(45))),
        thresholds: Some(Thresholds {
            service_level: secs(30),
            ..Thresholds::default()
        }),
        ..QueueUpdate::default()
    };
    h.input(Input::UpdateQueue { queue: Q0, update }).unwrap();
    let outputs = h.take();
    assert_eq!(
        outputs[0],
        Output::Event(Event::QueueConfigured {
            queue: Q0,
            name: "sales".into(),
            change: ConfigChange::Changed,
            thresholds: Thresholds {
                service_level: secs(30),
                ..Thresholds::default()
            }
        })
    );
    assert!(outputs.contains(&Output::Command(Command::Ring {
        call: CallId(1),
        agent: AgentId(0),
        queue: Q0
    })));
    assert_eq!(
        h.acd.config().queues[0].max_wait,
        Some(secs(45)),
        "the config in force"
    );
    // Caller 2 reaches 45 s at 75 s; a lower limit than its wait would overflow at once.
    h.answer(1, 0);
    h.advance(34.0);
    assert!(h.take_commands().is_empty());
    h.advance(1.0);
    assert!(h.take_commands().contains(&Command::Disconnect {
        call: CallId(2),
        reason: OverflowReason::MaxWait
    }));
    h.arrive(3, 0, 0);
    h.advance(20.0);
    h.input(Input::UpdateQueue {
        queue: Q0,
        update: QueueUpdate {
            max_wait: Some(Some(secs(10))),
            ..QueueUpdate::default()
        },
    })
    .unwrap();
    assert!(
        h.take_commands().contains(&Command::Disconnect {
            call: CallId(3),
            reason: OverflowReason::MaxWait
        }),
        "waited 20 s: over the new 10 s at once"
    );
    // Removing a limit: `Some(None)`.
    h.input(Input::UpdateQueue {
        queue: Q0,
        update: QueueUpdate {
            max_wait: Some(None),
            ..QueueUpdate::default()
        },
    })
    .unwrap();
    assert_eq!(h.acd.config().queues[0].max_wait, None);
}

#[test]
fn a_bad_queue_update_names_the_field_and_changes_nothing() {
    let mut h = Harness::new(two_queues());
    h.login_all();
    h.arrive(1, 0, 0);
    h.take();
    let before = (h.state_json(), h.acd.config().clone());
    let cases = [
        (
            Q0,
            QueueUpdate {
                max_wait: Some(Some(Duration::ZERO)),
                ..QueueUpdate::default()
            },
            AcdError::Config(ConfigError::ZeroDuration {
                field: "queues[sales].max_wait".into(),
            }),
        ),
        (
            Q1,
            QueueUpdate {
                overflow: Some(Overflow::Queue("nowhere".into())),
                ..QueueUpdate::default()
            },
            AcdError::Config(ConfigError::UnknownQueue {
                field: "queues[billing].overflow".into(),
                queue: "nowhere".into(),
            }),
        ),
        (
            Q0,
            QueueUpdate {
                skills: Some(vec![amico_core::SkillRequirement {
                    skill: "french".into(),
                    min_level: 1,
                }]),
                ..QueueUpdate::default()
            },
            AcdError::Config(ConfigError::UnknownSkill {
                owner: "queues[sales].skills".into(),
                skill: "french".into(),
            }),
        ),
        (
            QueueId(5),
            QueueUpdate::default(),
            AcdError::UnknownQueue(QueueId(5)),
        ),
    ];
    for (queue, update, error) in cases {
        assert_eq!(h.input(Input::UpdateQueue { queue, update }), Err(error));
        assert_eq!((h.state_json(), h.acd.config().clone()), before);
        assert!(h.take().is_empty());
    }
}

#[test]
fn a_reload_matches_by_name_keeps_ids_and_appends_new_ones() {
    let mut h = Harness::new(two_queues());
    h.login_all();
    h.arrive(1, 0, 0);
    h.answer(1, 0); // a0 is on a call
    h.take();

    // Reordered, sales changed, a0 gone, a new skill, queue and agent.
    let mut config = AcdConfig {
        skills: vec!["french".into(), "billing".into(), "sales".into()],
        queues: vec![
            QueueConfig::new("billing", &["billing"]),
            QueueConfig::new("french", &["french"]),
            QueueConfig::new("sales", &["sales"]),
        ],
        agents: vec![
            AgentConfig::new("a2", &[("french", 4), ("sales", 6)]),
            AgentConfig::new("a1", &[("billing", 5)]),
        ],
        ..AcdConfig::default()
    };
    config.queues[2].wrap_up = secs(30);
    h.input(Input::Reconfigure {
        config: config.clone(),
    })
    .unwrap();
    assert_eq!(
        events_but_states(&h.take()),
        [
            Event::QueueConfigured {
                queue: Q0,
                name: "sales".into(),
                change: ConfigChange::Changed,
                thresholds: Thresholds::default()
            },
            Event::QueueConfigured {
                queue: QueueId(2),
                name: "french".into(),
                change: ConfigChange::Added,
                thresholds: Thresholds::default()
            },
            Event::AgentConfigured {
                agent: AgentId(0),
                name: "a0".into(),
                change: ConfigChange::Removed
            },
            Event::AgentConfigured {
                agent: AgentId(2),
                name: "a2".into(),
                change: ConfigChange::Added
            },
        ]
    );
    assert_eq!(h.acd.queue_id("french"), Some(QueueId(2)));
    assert_eq!(h.acd.agent_id("a2"), Some(AgentId(2)));
    let names: Vec<_> = h.acd.config().queues.iter().map(|q| &q.name).collect();
    assert_eq!(names, ["sales", "billing", "french"], "in id order");
    let snapshot = h.acd.snapshot();
    let agents: Vec<_> = snapshot
        .agents
        .iter()
        .map(|a| (a.id.0, a.name.as_str(), a.retired))
        .collect();
    assert_eq!(
        agents,
        [(0, "a0", true), (1, "a1", false), (2, "a2", false)]
    );

    // The removed agent finishes its call and its wrap-up (sales' new one), then is logged
    // out for good.
    assert_eq!(state(&h, 0), AgentState::OnCall { call: CallId(1) });
    assert_eq!(
        h.input(Input::Pause {
            agent: AgentId(0),
            reason: "x".into()
        }),
        Err(AcdError::AgentRetired(AgentId(0)))
    );
    h.hangup(1);
    assert_eq!(
        state(&h, 0),
        AgentState::WrapUp {
            until: Timestamp::from_secs(30)
        }
    );
    h.advance(30.0);
    assert_eq!(state(&h, 0), AgentState::LoggedOut);
    let error = h.input(Input::Login { agent: AgentId(0) }).unwrap_err();
    assert_eq!(error, AcdError::AgentRetired(AgentId(0)));
    assert_eq!(
        error.to_string(),
        "agent#0 was removed from the configuration"
    );

    // The new agent serves french and sales once logged in.
    h.login(2);
    h.arrive(2, 2, 0);
    assert_eq!(h.take_rings(), [(2, 2)]);
    h.answer(2, 2);
    h.hangup(2);
    assert_eq!(state(&h, 2), AgentState::Available, "french has no wrap-up");
    h.arrive(3, 0, 0);
    assert_eq!(h.take_rings(), [(3, 2)]);
    assert_eq!(
        h.acd.queue_stats(Q0).unwrap().counters.offered,
        2,
        "sales kept its statistics"
    );

    // The same config again changes nothing.
    h.input(Input::Reconfigure { config }).unwrap();
    assert!(events_but_states(&h.take()).is_empty());
}

#[test]
fn a_reload_without_a_queue_closes_it_once_empty() {
    let mut h = Harness::new(two_queues());
    h.arrive(1, 1, 0);
    h.take();
    let without_billing = {
        let mut config = two_queues();
        config.queues.pop();
        config
    };
    let before = (h.state_json(), h.acd.config().clone());
    let error = h
        .input(Input::Reconfigure {
            config: without_billing.clone(),
        })
        .unwrap_err();
    assert_eq!(
        error,
        AcdError::QueueNotEmpty {
            queue: Q1,
            name: "billing".into(),
            callers: 1
        }
    );
    assert_eq!(
        error.to_string(),
        "queue 'billing' (queue#1) cannot be removed: 1 callers are still queued there"
    );
    assert_eq!((h.state_json(), h.acd.config().clone()), before);
    assert!(h.take().is_empty());

    h.input(Input::MoveCall {
        call: CallId(1),
        queue: Q0,
    })
    .unwrap();
    h.input(Input::Reconfigure {
        config: without_billing,
    })
    .unwrap();
    assert!(h.take_events().contains(&Event::QueueConfigured {
        queue: Q1,
        name: "billing".into(),
        change: ConfigChange::Removed,
        thresholds: Thresholds::default()
    }));
    assert_eq!(h.acd.queue_is_open(Q1), Some(false));
    assert!(h.acd.snapshot().queues[1].closed);
    let before = h.state_json();
    for (input, error) in [
        (
            Input::CallArrived {
                call: CallId(2),
                queue: Q1,
                priority: 0,
            },
            AcdError::QueueClosed(Q1),
        ),
        (
            Input::MoveCall {
                call: CallId(1),
                queue: Q1,
            },
            AcdError::QueueClosed(Q1),
        ),
        (
            Input::UpdateQueue {
                queue: Q1,
                update: QueueUpdate::default(),
            },
            AcdError::QueueClosed(Q1),
        ),
    ] {
        assert_eq!(h.input(input), Err(error));
        assert_eq!(h.state_json(), before);
    }
    assert_eq!(
        AcdError::QueueClosed(Q1).to_string(),
        "queue#1 is closed: it was removed from the configuration"
    );

    // Back under its name: its old id, open again.
    h.input(Input::Reconfigure {
        config: two_queues(),
    })
    .unwrap();
    assert!(h.take_events().contains(&Event::QueueConfigured {
        queue: Q1,
        name: "billing".into(),
        change: ConfigChange::Restored,
        thresholds: Thresholds::default()
    }));
    h.arrive(2, 1, 0);
    assert_eq!(h.acd.queue_depth(Q1), Some((1, 0)));
}

#[test]
fn a_bad_reload_names_the_problem_and_changes_nothing() {
    let mut h = Harness::new(two_queues());
    h.login_all();
    h.arrive(1, 0, 0);
    h.take();
    let before = (h.state_json(), h.acd.config().clone());
    let check = |edit: &dyn Fn(&mut AcdConfig), want: AcdError, h: &mut Harness| {
        let mut config = two_queues();
        edit(&mut config);
        assert_eq!(h.input(Input::Reconfigure { config }), Err(want));
        assert_eq!((h.state_json(), h.acd.config().clone()), before);
        assert!(h.take().is_empty());
    };
    check(
        &|c| c.agents[1].skills[0].skill = "spanish".into(),
        AcdError::Config(ConfigError::UnknownSkill {
            owner: "agents[a1].skills".into(),
            skill: "spanish".into(),
        }),
        &mut h,
    );
    check(
        &|c| c.queues[1].name = "sales".into(),
        AcdError::Config(ConfigError::DuplicateName {
            kind: "queue",
            name: "sales".into(),
        }),
        &mut h,
    );
    check(
        &|c| c.statistics.interval = secs(60),
        AcdError::FixedWhileRunning {
            field: "statistics.interval",
        },
        &mut h,
    );
    check(
        &|c| c.statistics.interval_origin = Timestamp::from_secs(1),
        AcdError::FixedWhileRunning {
            field: "statistics.interval_origin",
        },
        &mut h,
    );
    assert_eq!(
        AcdError::FixedWhileRunning {
            field: "statistics.interval"
        }
        .to_string(),
        "statistics.interval cannot change while the ACD runs (restart it to change it)"
    );
}

#[test]
fn new_inputs_round_trip_through_json() {
    let update = QueueUpdate {
        ring_timeout: Some(Duration::from_millis(12_500)),
        max_wait: Some(None),
        max_callers: Some(Some(4)),
        ..QueueUpdate::default()
    };
    let input = Input::UpdateQueue { queue: Q1, update };
    let json = serde_json::to_string(&input).unwrap();
    assert_eq!(
        json,
        r#"{"input":"update_queue","queue":1,"update":{"ring_timeout":12.5,"max_callers":4,"max_wait":null}}"#
    );
    assert_eq!(serde_json::from_str::<Input>(&json).unwrap(), input);
    // Absent keeps, null clears.
    let read: Input = serde_json::from_str(
        r#"{"input":"update_queue","queue":0,"update":{"auto_pause_after":null,"wrap_up":30}}"#,
    )
    .unwrap();
    assert_eq!(
        read,
        Input::UpdateQueue {
            queue: Q0,
            update: QueueUpdate {
                auto_pause_after: Some(None),
                wrap_up: Some(secs(30)),
                ..QueueUpdate::default()
            }
        }
    );
    let error = serde_json::from_str::<QueueUpdate>(r#"{"max_wiat": 3}"#).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `max_wiat`"),
        "{error}"
    );
    for input in [
        Input::ExtendWrapUp {
            agent: AgentId(2),
            by: Duration::from_millis(1_500),
        },
        Input::SetPriority {
            call: CallId(4),
            priority: 7,
        },
        Input::MoveCall {
            call: CallId(4),
            queue: Q1,
        },
        Input::Reconfigure {
            config: two_queues(),
        },
    ] {
        let json = serde_json::to_string(&input).unwrap();
        assert_eq!(
            serde_json::from_str::<Input>(&json).unwrap(),
            input,
            "{json}"
        );
    }
}

#[test]
fn a_reload_that_removes_a_ringing_agent_rings_another_and_empties_unserved_queues() {
    let mut config = one_queue(2);
    config
        .queues
        .push(QueueConfig::new("billing", &["billing"]));
    config.queues[1].when_no_agents = NoAgentsPolicy {
        join: true,
        leave: true,
    };
    config
        .agents
        .push(AgentConfig::new("biller", &[("billing", 5)]));
    let mut h = Harness::new(config.clone());
    h.login(0);
    h.arrive(1, 0, 0);
    h.arrive(2, 1, 0); // billing: nobody logged in, but it may join
    h.take();
    h.login(1);
    assert!(h.take_rings().is_empty(), "agent 0 already rings call 1");
    assert_eq!(state(&h, 0), AgentState::Reserved { call: CallId(1) });

    // a0 goes; billing now needs a skill nobody logged in has.
    let mut reload = config;
    reload.agents.remove(0);
    reload.queues[1].skills[0].min_level = 9;
    h.input(Input::Reconfigure { config: reload }).unwrap();
    let outputs = h.take();
    assert!(outputs.contains(&Output::Command(Command::StopRinging {
        call: CallId(1),
        agent: AgentId(0)
    })));
    assert!(outputs.contains(&Output::Command(Command::Ring {
        call: CallId(1),
        agent: AgentId(1),
        queue: Q0
    })));
    assert!(
        outputs.contains(&Output::Command(Command::Disconnect {
            call: CallId(2),
            reason: OverflowReason::NoAgents
        })),
        "billing's policy: leave when nobody could serve it"
    );
    assert_eq!(state(&h, 0), AgentState::LoggedOut);
    assert_eq!(h.acd.agent_is_retired(AgentId(0)), Some(true));
}

#[test]
fn an_agent_skipped_for_a_caller_gets_it_again_after_retry_after_in_its_new_queue() {
    let mut config = two_queues();
    config.agents = vec![AgentConfig::new("both", &[("sales", 5), ("billing", 5)])];
    config.queues[0].retry_after = secs(5);
    let mut h = Harness::new(config);
    h.login(0);
    h.arrive(1, 0, 0);
    h.reject(1, 0);
    h.advance(1.0);
    h.take();
    h.input(Input::MoveCall {
        call: CallId(1),
        queue: Q1,
    })
    .unwrap();
    assert!(
        h.take_rings().is_empty(),
        "skipped for 5 s wherever it waits"
    );
    h.advance(3.0);
    assert!(h.take_rings().is_empty());
    h.advance(1.0);
    assert_eq!(h.take_rings(), [(1, 0)], "at 5 s, in billing");
}
