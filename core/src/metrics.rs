//! Wait metrics: per-queue counters and distributions, cumulative and per interval.
//!
//! Each queue keeps the same [`QueueStats`] twice: cumulative since start, in
//! hdrhistograms (milliseconds, three significant digits: ±0.1 %), and for the current
//! interval (15 minutes by default) as the raw samples, so that an interval's percentiles
//! are exact and closing an interval costs nothing when it saw no call. Means are always
//! exact: they come from microsecond sums, not from histogram buckets.
//!
//! # Definitions
//! A call *ends* answered, abandoned, overflowed, or, for a queued callback, unreached
//! (every attempt to call the caller back failed). Overflowed calls left for elsewhere and
//! unreached callbacks were never abandoned; both are outside every rate below. So
//! `offered = answered + abandoned + overflowed + callbacks unreached + still queued`. With `answered`, `abandoned`, and `short` the
//! abandons within the short-abandon threshold (5 s by default):
//!
//! | figure | formula |
//! |---|---|
//! | abandon rate | abandoned / (answered + abandoned) |
//! | abandon rate excluding short abandons | (abandoned − short) / (answered + abandoned − short) |
//! | abandon rate after threshold | abandoned after waiting more than the threshold (47 s) / (answered + abandoned) |
//! | service level | answered within T / (answered + abandoned − short) |
//! | service level, abandons within T met | (answered within T + abandoned within T) / (answered + abandoned) |
//! | ASA (average speed of answer) | Σ wait of answered calls / answered (ring time included: the wait ends at the answer) |
//! | AHT (average handle time) | (Σ talk + Σ wrap-up) / completed calls |
//! | occupancy | time reserved, on call or in wrap-up / (that + time available); pauses excluded |
//! | estimate accuracy | wait predictions within ±20 % of the actual wait / predictions, answered calls only |
//!
//! A wait is "within T" when it is at most T. Percentiles are nearest-rank on raw samples
//! and hdrhistogram's highest-equivalent value on histograms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Quantiles reported for every distribution.
pub const QUANTILES: [f64; 5] = [0.50, 0.90, 0.95, 0.99, 0.999];

/// A distribution of durations that can be recorded into and summarised.
pub trait Distribution {
    /// Record one duration.
    fn record(&mut self, value: Duration);
    /// How many durations were recorded.
    fn count(&self) -> u64;
    /// Their exact sum.
    fn sum(&self) -> Duration;
    /// The duration at quantile `q` (0–1), or zero when empty.
    fn quantile(&self, q: f64) -> Duration;
    /// The largest duration recorded, or zero.
    fn max(&self) -> Duration;
    /// Forget everything.
    fn clear(&mut self);

    /// Count, exact mean, and the [`QUANTILES`].
    fn summary(&self) -> DistributionSummary {
        let count = self.count();
        DistributionSummary {
            count,
            mean: mean(self.sum(), count),
            p50: self.quantile(QUANTILES[0]),
            p90: self.quantile(QUANTILES[1]),
            p95: self.quantile(QUANTILES[2]),
            p99: self.quantile(QUANTILES[3]),
            p999: self.quantile(QUANTILES[4]),
            max: self.max(),
        }
    }
}

fn mean(sum: Duration, count: u64) -> Option<Duration> {
    (count > 0).then(|| Duration::from_nanos((sum.as_nanos() / u128::from(count)) as u64))
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// A cumulative distribution: an hdrhistogram in milliseconds, with exact count and sum.
#[derive(Clone, Debug)]
pub struct Histogram {
    histogram: hdrhistogram::Histogram<u64>,
    sum_micros: u128,
    max_micros: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        // Auto-resizing from 1 ms: it grows to the longest value seen, so a queue whose
        // waits stay under minutes never pays for hours of buckets.
        let histogram = hdrhistogram::Histogram::new(3).expect("3 significant digits is valid");
        Histogram {
            histogram,
            sum_micros: 0,
            max_micros: 0,
        }
    }
}

impl Distribution for Histogram {
    fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        // Round to the nearest millisecond. `record` grows the auto-resizing histogram;
        // only a value beyond what any histogram can track fails, and that one is clamped.
        let millis = micros.saturating_add(500) / 1000;
        if self.histogram.record(millis).is_err() {
            self.histogram.saturating_record(millis);
        }
        self.sum_micros += u128::from(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    fn count(&self) -> u64 {
        self.histogram.len()
    }

    fn sum(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.sum_micros).unwrap_or(u64::MAX))
    }

    fn quantile(&self, q: f64) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        let millis = self.histogram.value_at_quantile(q);
        Duration::from_millis(millis).min(self.max())
    }

    fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }

    fn clear(&mut self) {
        self.histogram.reset();
        self.sum_micros = 0;
        self.max_micros = 0;
    }
}

impl Histogram {
    /// The underlying hdrhistogram (milliseconds), for exporters that want its buckets.
    pub fn hdr(&self) -> &hdrhistogram::Histogram<u64> {
        &self.histogram
    }
}

/// An interval's distribution: the raw samples, for exact percentiles.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    micros: Vec<u64>,
    sum_micros: u128,
}

impl Distribution for Samples {
    fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.micros.push(micros);
        self.sum_micros += u128::from(micros);
    }

    fn count(&self) -> u64 {
        self.micros.len() as u64
    }

    fn sum(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.sum_micros).unwrap_or(u64::MAX))
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        nearest_rank(&sorted, q)
    }

    fn max(&self) -> Duration {
        Duration::from_micros(self.micros.iter().copied().max().unwrap_or(0))
    }

    fn clear(&mut self) {
        self.micros.clear();
        self.sum_micros = 0;
    }

    fn summary(&self) -> DistributionSummary {
        // One sort for all quantiles.
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let count = sorted.len() as u64;
        DistributionSummary {
            count,
            mean: mean(self.sum(), count),
            p50: nearest_rank(&sorted, QUANTILES[0]),
            p90: nearest_rank(&sorted, QUANTILES[1]),
            p95: nearest_rank(&sorted, QUANTILES[2]),
            p99: nearest_rank(&sorted, QUANTILES[3]),
            p999: nearest_rank(&sorted, QUANTILES[4]),
            max: Duration::from_micros(sorted.last().copied().unwrap_or(0)),
        }
    }
}

/// The nearest-rank percentile: the smallest sample with at least `q` of the samples at or
/// below it.
fn nearest_rank(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Duration::from_micros(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Count, mean and percentiles of one distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DistributionSummary {
    /// Number of values.
    pub count: u64,
    /// Exact mean, when there is a value.
    #[serde(with = "crate::config::opt_secs")]
    pub mean: Option<Duration>,
    /// Median.
    #[serde(with = "crate::config::secs")]
    pub p50: Duration,
    /// 90th percentile.
    #[serde(with = "crate::config::secs")]
    pub p90: Duration,
    /// 95th percentile.
    #[serde(with = "crate::config::secs")]
    pub p95: Duration,
    /// 99th percentile.
    #[serde(with = "crate::config::secs")]
    pub p99: Duration,
    /// 99.9th percentile.
    #[serde(with = "crate::config::secs")]
    pub p999: Duration,
    /// Largest value.
    #[serde(with = "crate::config::secs")]
    pub max: Duration,
}

/// Per-queue event counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Callers who joined the queue (overflow arrivals from another queue included).
    pub offered: u64,
    /// Callers answered by an agent.
    pub answered: u64,
    /// Callers who hung up before an answer.
    pub abandoned: u64,
    /// Abandons within the short-abandon threshold.
    pub short_abandoned: u64,
    /// Abandons after waiting longer than the abandon threshold.
    pub abandoned_after_threshold: u64,
    /// Callers who left through a queue limit.
    pub overflowed: u64,
    /// Answers within the service-level time.
    pub answered_within_sl: u64,
    /// Abandons within the service-level time.
    pub abandoned_within_sl: u64,
    /// Offers not taken (no answer, rejected, unreachable).
    pub offers_failed: u64,
    /// Connected calls that ended.
    pub completed: u64,
    /// Wait predictions resolved by an answer.
    pub predictions: u64,
    /// Of those, predictions within ±20 % of the actual wait.
    pub predictions_within_20pct: u64,
    /// Post-call ratings.
    pub survey: SurveyCounts,
    /// Callers who asked to be called back.
    pub callbacks_requested: u64,
    /// Callbacks that never reached their caller (all attempts failed): not abandons.
    pub callbacks_unanswered: u64,
}

/// Post-call ratings: votes by kind and surveys without a vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyCounts {
    /// Satisfied (key 1).
    pub satisfied: u64,
    /// Sufficient (key 2).
    pub sufficient: u64,
    /// Not satisfied (key 3).
    pub unsatisfied: u64,
    /// Surveys played without a vote in time.
    pub no_vote: u64,
}

impl SurveyCounts {
    /// Records one survey's outcome.
    pub fn record(&mut self, vote: Option<crate::input::Vote>) {
        use crate::input::Vote;
        match vote {
            Some(Vote::Satisfied) => self.satisfied += 1,
            Some(Vote::Sufficient) => self.sufficient += 1,
            Some(Vote::Unsatisfied) => self.unsatisfied += 1,
            None => self.no_vote += 1,
        }
    }

    /// Votes cast.
    pub fn votes(&self) -> u64 {
        self.satisfied + self.sufficient + self.unsatisfied
    }

    /// Shares of the votes cast (satisfied, sufficient, unsatisfied); `None` without votes.
    /// Surveys without a vote are left out, as Parma's percentages are of votes.
    pub fn shares(&self) -> Option<(f64, f64, f64)> {
        let votes = self.votes() as f64;
        (votes > 0.0).then(|| {
            (
                self.satisfied as f64 / votes,
                self.sufficient as f64 / votes,
                self.unsatisfied as f64 / votes,
            )
        })
    }
}

/// Derived figures; `None` where the denominator is zero. See the module documentation
/// for each formula.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// abandoned / (answered + abandoned)
    pub abandon_rate: Option<f64>,
    /// (abandoned − short) / (answered + abandoned − short)
    pub abandon_rate_excluding_short: Option<f64>,
    /// abandoned after the threshold / (answered + abandoned)
    pub abandon_after_threshold_rate: Option<f64>,
    /// answered within T / (answered + abandoned − short)
    pub service_level: Option<f64>,
    /// (answered within T + abandoned within T) / (answered + abandoned)
    pub service_level_abandons_met: Option<f64>,
    /// Average speed of answer.
    #[serde(with = "crate::config::opt_secs")]
    pub asa: Option<Duration>,
    /// Average handle time, talk plus wrap-up.
    #[serde(with = "crate::config::opt_secs")]
    pub aht: Option<Duration>,
    /// Share of wait predictions within ±20 % of the actual wait.
    pub estimate_accuracy: Option<f64>,
}

/// Counters and distributions of one queue over some span of time.
#[derive(Clone, Debug, Default)]
pub struct QueueStats<D> {
    /// Event counts.
    pub counters: Counters,
    /// Wait of answered calls.
    pub wait: D,
    /// Time to abandon, of abandoned calls.
    pub abandon: D,
    /// Ring time of answered offers.
    pub ring: D,
    /// Talk time of completed calls.
    pub talk: D,
    /// Wrap-up time.
    pub wrap_up: D,
}

impl<D: Distribution> QueueStats<D> {
    /// The derived figures.
    pub fn rates(&self) -> Rates {
        let c = &self.counters;
        let ended = c.answered + c.abandoned;
        let ended_excluding_short = ended - c.short_abandoned;
        Rates {
            abandon_rate: ratio(c.abandoned, ended),
            abandon_rate_excluding_short: ratio(
                c.abandoned - c.short_abandoned,
                ended_excluding_short,
            ),
            abandon_after_threshold_rate: ratio(c.abandoned_after_threshold, ended),
            service_level: ratio(c.answered_within_sl, ended_excluding_short),
            service_level_abandons_met: ratio(c.answered_within_sl + c.abandoned_within_sl, ended),
            asa: mean(self.wait.sum(), self.wait.count()),
            aht: mean(self.talk.sum() + self.wrap_up.sum(), self.talk.count()),
            estimate_accuracy: ratio(c.predictions_within_20pct, c.predictions),
        }
    }

    /// Everything, summarised.
    pub fn summary(&self) -> QueueSummary {
        QueueSummary {
            counters: self.counters,
            rates: self.rates(),
            wait: self.wait.summary(),
            abandon: self.abandon.summary(),
            ring: self.ring.summary(),
            talk: self.talk.summary(),
            wrap_up: self.wrap_up.summary(),
        }
    }

    /// Forget everything (an interval closes).
    pub fn clear(&mut self) {
        self.counters = Counters::default();
        self.wait.clear();
        self.abandon.clear();
        self.ring.clear();
        self.talk.clear();
        self.wrap_up.clear();
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.counters == Counters::default() && self.wrap_up.count() == 0
    }
}

/// A queue's statistics, summarised for reports and screens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// Event counts.
    pub counters: Counters,
    /// Derived figures.
    pub rates: Rates,
    /// Wait of answered calls.
    pub wait: DistributionSummary,
    /// Time to abandon.
    pub abandon: DistributionSummary,
    /// Ring time of answered offers.
    pub ring: DistributionSummary,
    /// Talk time.
    pub talk: DistributionSummary,
    /// Wrap-up time.
    pub wrap_up: DistributionSummary,
}

/// A closed statistics interval of one queue.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalReport {
    /// Start of the interval.
    pub start: Timestamp,
    /// End of the interval.
    pub end: Timestamp,
    /// What happened in it.
    pub summary: QueueSummary,
}

/// Agent time over a closed statistics interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIntervalReport {
    /// Start of the interval.
    pub start: Timestamp,
    /// End of the interval.
    pub end: Timestamp,
    /// Time agents spent in each kind of state.
    pub time: AgentTime,
}

/// Time agents spent in each kind of state, summed over agents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTime {
    /// Free for a call.
    #[serde(with = "crate::config::secs")]
    pub available: Duration,
    /// Ringing, on a call or in wrap-up.
    #[serde(with = "crate::config::secs")]
    pub busy: Duration,
    /// Paused.
    #[serde(with = "crate::config::secs")]
    pub paused: Duration,
}

impl AgentTime {
    /// busy / (busy + available), pauses excluded.
    pub fn occupancy(&self) -> Option<f64> {
        let worked = self.busy + self.available;
        (!worked.is_zero()).then(|| self.busy.as_secs_f64() / worked.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn samples_give_exact_nearest_rank_percentiles() {
        let mut samples = Samples::default();
        for millis in (1..=1000).rev() {
            samples.record(ms(millis));
        }
        let summary = samples.summary();
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.p50, ms(500));
        assert_eq!(summary.p90, ms(900));
        assert_eq!(summary.p99, ms(990));
        assert_eq!(summary.p999, ms(999));
        assert_eq!(summary.max, ms(1000));
        assert_eq!(summary.mean, Some(Duration::from_micros(500_500)));
        assert_eq!(samples.quantile(0.5), ms(500));
    }

    #[test]
    fn histogram_percentiles_are_within_a_tenth_of_a_percent_and_means_exact() {
        let mut histogram = Histogram::default();
        for millis in 1..=100_000 {
            histogram.record(ms(millis));
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 100_000);
        for (got, want) in [
            (summary.p50, 50_000.0),
            (summary.p99, 99_000.0),
            (summary.p999, 99_900.0),
        ] {
            let got = got.as_secs_f64() * 1000.0;
            assert!((got - want).abs() / want <= 0.001, "{got} vs {want}");
        }
        assert_eq!(summary.max, ms(100_000));
        assert_eq!(summary.mean, Some(Duration::from_micros(50_000_500)));
        histogram.clear();
        assert_eq!(histogram.summary(), DistributionSummary::default());
    }

    #[test]
    fn zero_waits_are_recorded() {
        let mut histogram = Histogram::default();
        histogram.record(Duration::ZERO);
        histogram.record(Duration::from_micros(400));
        assert_eq!(histogram.count(), 2);
        // Percentiles have millisecond resolution; the sum and the maximum are exact.
        assert_eq!(histogram.quantile(1.0), Duration::ZERO);
        assert_eq!(histogram.sum(), Duration::from_micros(400));
        assert_eq!(histogram.max(), Duration::from_micros(400));
    }

    #[test]
    fn rates_follow_the_documented_formulas() {
        let mut stats = QueueStats::<Samples> {
            counters: Counters {
                answered: 90,
                abandoned: 10,
                short_abandoned: 4,
                abandoned_after_threshold: 3,
                answered_within_sl: 72,
                abandoned_within_sl: 6,
                predictions: 50,
                predictions_within_20pct: 20,
                ..Counters::default()
            },
            ..QueueStats::default()
        };
        for _ in 0..90 {
            stats.wait.record(ms(10_000));
        }
        stats.talk.record(ms(200_000));
        stats.wrap_up.record(ms(40_000));
        let rates = stats.rates();
        assert_eq!(rates.abandon_rate, Some(0.10));
        assert_eq!(rates.abandon_rate_excluding_short, Some(6.0 / 96.0));
        assert_eq!(rates.abandon_after_threshold_rate, Some(0.03));
        assert_eq!(rates.service_level, Some(72.0 / 96.0));
        assert_eq!(rates.service_level_abandons_met, Some(0.78));
        assert_eq!(rates.asa, Some(ms(10_000)));
        assert_eq!(rates.aht, Some(ms(240_000)));
        assert_eq!(rates.estimate_accuracy, Some(0.4));
        assert_eq!(QueueStats::<Samples>::default().rates(), Rates::default());
    }

    #[test]
    fn occupancy_excludes_pauses() {
        let time = AgentTime {
            available: Duration::from_secs(25),
            busy: Duration::from_secs(75),
            paused: Duration::from_secs(1000),
        };
        assert_eq!(time.occupancy(), Some(0.75));
        assert_eq!(AgentTime::default().occupancy(), None);
    }
}
