//! Criterion benchmarks of the ACD's routing decisions at the reference size (10,000
//! waiting callers, 1,000 agents × 20 skills) and of a year of Parma through the simulator.
//!
//! Each measured routine is one `handle_input`; the bookkeeping that keeps the ACD at its
//! size (answering the offer, replacing the caller) runs outside the measurement.

use std::hint::black_box;
use std::time::{Duration, Instant};

use amico_bench::Loaded;
use amico_core::simulator::{self, Scenario};
use criterion::{Criterion, criterion_group, criterion_main};

const AGENTS: usize = 1_000;
const SKILLS: usize = 20;
const WAITING: usize = 10_000;

/// Times `measured` alone over `iters` rounds of `prepare` → `measured` → `restore`.
fn timed(
    loaded: &mut Loaded,
    iters: u64,
    prepare: impl Fn(&mut Loaded) -> amico_core::Input,
    restore: impl Fn(&mut Loaded),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = prepare(loaded);
        let start = Instant::now();
        loaded.handle(black_box(input));
        total += start.elapsed();
        loaded.settle();
        restore(loaded);
    }
    total
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing at 10k waiting, 1k agents x 20 skills");
    let mut busy = Loaded::busy(AGENTS, SKILLS, WAITING);
    group.bench_function("enqueue (no agent free)", |b| {
        b.iter_custom(|iters| {
            timed(&mut busy, iters, Loaded::next_arrival, |l| {
                let abandon = l.next_abandon();
                l.input(abandon);
            })
        })
    });
    group.bench_function("abandon from the middle", |b| {
        b.iter_custom(|iters| timed(&mut busy, iters, Loaded::next_abandon, Loaded::arrive))
    });
    group.bench_function("agent available (picks across 20 queues)", |b| {
        b.iter_custom(|iters| timed(&mut busy, iters, Loaded::next_completion, Loaded::arrive))
    });
    assert_eq!(busy.waiting(), WAITING);

    let mut idle = Loaded::idle(AGENTS, SKILLS);
    group.bench_function("match an arrival (1k agents free)", |b| {
        b.iter_custom(|iters| {
            timed(&mut idle, iters, Loaded::next_arrival, |l| {
                let completion = l.next_completion();
                l.input(completion);
            })
        })
    });
    group.finish();
}

fn parma_year(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    let year = Scenario::parma(216, 265_000);
    group.bench_function("a year of Parma (265,000 calls)", |b| {
        b.iter(|| simulator::run(black_box(&year), 1).expect("runs").arrivals)
    });
    group.finish();
}

criterion_group!(benches, routing, parma_year);
criterion_main!(benches);
