//! The distribution of single routing decisions at the reference size: each
//! `handle_input` timed on its own, into an hdrhistogram, p50/p99/p99.9 printed.
//!
//! `cargo run --release -p amico-bench --bin routing-latency [-- ROUNDS [OPERATION]]`
//!
//! OPERATION (enqueue, abandon, available, match) runs just that one, for profiling.

use std::time::Instant;

use amico_bench::Loaded;
use amico_core::Input;
use hdrhistogram::Histogram;

const AGENTS: usize = 1_000;
const SKILLS: usize = 20;
const WAITING: usize = 10_000;

fn measure(
    only: Option<&str>,
    key: &str,
    name: &str,
    rounds: u64,
    loaded: &mut Loaded,
    prepare: impl Fn(&mut Loaded) -> Input,
    restore: impl Fn(&mut Loaded),
) -> anyhow::Result<()> {
    if only.is_some_and(|only| only != key) {
        return Ok(());
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    for _ in 0..rounds {
        let input = prepare(loaded);
        let start = Instant::now();
        loaded.handle(input);
        let nanos = start.elapsed().as_nanos() as u64;
        histogram.record(nanos)?;
        loaded.settle();
        restore(loaded);
    }
    println!(
        "{name:<44} {:>8} {:>8} {:>8} {:>8} {:>9}",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.9),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        format!("{:.0}", histogram.mean()),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rounds: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| anyhow::anyhow!("ROUNDS must be a number, got {arg}"))?,
        None => 200_000,
    };
    let only = std::env::args().nth(2);
    let only = only.as_deref();
    println!("{rounds} rounds each, nanoseconds per handle_input");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "operation", "p50", "p90", "p99", "p99.9", "mean"
    );
    let mut busy = Loaded::busy(AGENTS, SKILLS, WAITING);
    measure(
        only,
        "enqueue",
        "enqueue (10k waiting, no agent free)",
        rounds,
        &mut busy,
        Loaded::next_arrival,
        |l| {
            let abandon = l.next_abandon();
            l.input(abandon);
        },
    )?;
    measure(
        only,
        "abandon",
        "abandon from the middle",
        rounds,
        &mut busy,
        Loaded::next_abandon,
        Loaded::arrive,
    )?;
    measure(
        only,
        "available",
        "agent available (best of 20 queue heads)",
        rounds,
        &mut busy,
        Loaded::next_completion,
        Loaded::arrive,
    )?;
    let mut idle = Loaded::idle(AGENTS, SKILLS);
    measure(
        only,
        "match",
        "match an arrival (1k agents free)",
        rounds,
        &mut idle,
        Loaded::next_arrival,
        |l| {
            let completion = l.next_completion();
            l.input(completion);
        },
    )?;
    Ok(())
}
