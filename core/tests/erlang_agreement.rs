//! The simulator, driving the real ACD, agrees with Erlang A where Erlang A's assumptions
//! hold: one skill, first come first served, Poisson arrivals, exponential handle times and
//! patience, ≥ 200,000 calls.

use std::time::Duration;

use amico_core::erlang::Thresholds;
use amico_core::simulator::{self, Arrivals, FIRST_QUEUE, HandleTime, Scenario, Traffic};

struct Case {
    agents: u32,
    per_hour: f64,
    aht: u64,
    patience: u64,
}

fn check(case: &Case, seed: u64) {
    let traffic = Traffic {
        queue: "q".into(),
        calls: 200_000,
        arrivals: Arrivals::Poisson {
            per_hour: case.per_hour,
        },
        handle: HandleTime::Exponential {
            mean: Duration::from_secs(case.aht),
        },
        patience: Some(Duration::from_secs(case.patience)),
        priority: 0,
    };
    let scenario = Scenario::single_queue(case.agents, traffic.clone());
    let outcome = simulator::run(&scenario, seed).unwrap();
    let model = simulator::erlang_a_for(&traffic, case.agents, Thresholds::default()).unwrap();
    let stats = outcome.acd.queue_stats(FIRST_QUEUE).unwrap();
    let rates = stats.rates();
    assert_eq!(stats.counters.offered, 200_000);
    assert_eq!(stats.counters.answered + stats.counters.abandoned, 200_000);

    let p_abandon = rates.abandon_rate.unwrap();
    let asa = rates.asa.unwrap().as_secs_f64();
    let label = format!(
        "N={} λ={}/h AHT={} patience={}",
        case.agents, case.per_hour, case.aht, case.patience
    );
    assert!(
        (p_abandon - model.p_abandon).abs() < 0.005,
        "{label}: p_abandon {p_abandon:.4} vs Erlang A {:.4}",
        model.p_abandon
    );
    assert!(
        (asa / model.asa_secs - 1.0).abs() < 0.10,
        "{label}: ASA {asa:.2} s vs Erlang A {:.2} s",
        model.asa_secs
    );
    let sl = rates.service_level.unwrap();
    assert!(
        (sl - model.service_level).abs() < 0.01,
        "{label}: SL {sl:.4} vs {:.4}",
        model.service_level
    );
    let after = rates.abandon_after_threshold_rate.unwrap();
    assert!(
        (after - model.p_abandon_after_threshold).abs() < 0.005,
        "{label}: abandoned after 47 s {after:.4} vs {:.4}",
        model.p_abandon_after_threshold
    );
}

#[test]
fn overloaded_parma_sized_queue() {
    check(
        &Case {
            agents: 13,
            per_hour: 200.0,
            aht: 240,
            patience: 180,
        },
        11,
    );
}

#[test]
fn moderate_load_patient_callers() {
    check(
        &Case {
            agents: 10,
            per_hour: 120.0,
            aht: 240,
            patience: 300,
        },
        12,
    );
}

#[test]
fn large_centre_impatient_callers() {
    check(
        &Case {
            agents: 50,
            per_hour: 1500.0,
            aht: 120,
            patience: 60,
        },
        13,
    );
}

#[test]
fn small_team_long_calls() {
    check(
        &Case {
            agents: 5,
            per_hour: 60.0,
            aht: 300,
            patience: 600,
        },
        14,
    );
}
