//! Wait metrics: per-queue counters and distributions, cumulative and per interval.
//!
//! Each queue keeps the same [`QueueStats`] twice: cumulative since start, in
//! hdrhistograms (milliseconds, three significant digits: ±0.1 %), and for the current
//! interval (15 minutes by default) counted by the millisecond ([`ByMillisecond`]), so
//! that an interval's percentiles are exact to the millisecond in memory that does not
//! grow with the number of calls, and closing an interval costs nothing when it saw no
//! call. Means and maxima are always exact: they come from microseconds, not from
//! buckets.
//!
//! Every figure is counted here and only here: the ACD hands each [`Outcome`] to
//! [`QueueStats::record`] as it happens, and [`crate::tally::Tally`] hands it the same
//! outcomes rebuilt from the stored events, so a report computed from a queue log gives
//! exactly the live figures.
//!
//! # Definitions
//! A call's stay in a queue *ends* answered, abandoned, overflowed, transferred (a
//! supervisor moved it to another queue: [`crate::Input::MoveCall`]), removed (a
//! supervisor ended it before an answer: [`crate::Input::RemoveCall`]) or, for a queued
//! callback, unreached (every attempt to call the caller back failed). Overflowed and
//! transferred calls left for elsewhere, removed calls did not leave by the caller's
//! choice, and unreached callbacks were never abandoned; all four are outside every rate
//! below. A call that overflows or is moved into another queue is offered there too, and
//! its wait there counts from then. So, per queue, `offered = answered + abandoned +
//! overflowed + transferred + removed + callbacks unreached + still queued`. With `answered`, `abandoned`, and `short` the abandons within the
//! short-abandon threshold (5 s by default):
//!
//! | figure | formula |
//! |---|---|
//! | abandon rate | abandoned / (answered + abandoned) |
//! | abandon rate excluding short abandons | (abandoned − short) / (answered + abandoned − short) |
//! | abandon rate after threshold | abandoned after waiting more than the threshold (47 s) / (answered + abandoned) |
//! | service level | answered within T / (answered + abandoned − short) |
//! | service level, abandons within T met | (answered within T + abandoned within T) / (answered + abandoned) |
//! | ASA (average speed of answer) | Σ wait of answered calls / answered (ring time included: the wait ends at the answer) |
//! | AHT (average handle time) | (Σ talk + Σ wrap-up) / completed calls; of a queue's calls, or of one agent's |
//! | occupancy | time reserved, on call or in wrap-up / (that + time available); pauses excluded; of all agents, or of one |
//! | estimate accuracy | wait predictions within ±20 % of the actual wait / predictions, answered calls only |
//!
//! A wait is "within T" when it is at most T; a short abandon waited strictly less than
//! the short-abandon threshold, and an abandon "after the threshold" strictly more than
//! the abandon threshold (see [`Counters::abandon`]). Percentiles are nearest-rank (the
//! smallest value with at least that share of the values at or below it), to the
//! millisecond, on the intervals' and reports' counts ([`ByMillisecond`]), and
//! hdrhistogram's highest-equivalent value on the cumulative histograms.
//!
//! # Intervals
//! Statistics intervals fall on `origin + k × length` ([`interval_end`]); the first one
//! starts when counting starts and may be partial. Something that happens exactly at a
//! boundary belongs to the interval that starts there. Agent time is split at the boundary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Thresholds;
use crate::input::{OfferFailure, Vote};
use crate::output::AgentStatus;
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

/// Average handle time: (Σ talk + Σ wrap-up) / completed calls.
fn handle_time(talk: Duration, wrap_up: Duration, completed: u64) -> Option<Duration> {
    mean(talk + wrap_up, completed)
}

/// The end of the statistics interval that holds `at`: intervals end on
/// `origin + k × length`, k ≥ 1, so the first one, from whenever counting starts, may be
/// partial (and runs to `origin + length` when counting starts before the origin). A
/// moment on a boundary opens the next interval. Saturates at the end of time; a zero
/// length is taken as one microsecond.
pub fn interval_end(at: Timestamp, length: Duration, origin: Timestamp) -> Timestamp {
    let length = u64::try_from(length.as_micros()).unwrap_or(u64::MAX).max(1);
    let since_origin = at.as_micros().saturating_sub(origin.as_micros());
    let intervals = since_origin / length + 1;
    Timestamp::from_micros(
        origin
            .as_micros()
            .saturating_add(intervals.saturating_mul(length)),
    )
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
        let millis = nearest_millisecond(micros);
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

/// Raw samples, for percentiles exact to the microsecond; their room grows with every
/// value, so they suit a bounded set (a benchmark's latencies). Queue figures use
/// [`ByMillisecond`].
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

/// A distribution counted by the millisecond: how many values rounded to each millisecond,
/// with the exact sum and maximum in microseconds.
///
/// Its percentiles are nearest-rank, exact to the millisecond: rounding is monotone, so
/// the rank-`k` value of the rounded values is the rounded rank-`k` value, which is what
/// [`Samples`] gives rounded to the millisecond (and never above the exact maximum). Its
/// room grows with how many different milliseconds occur, not with how many values: a
/// day of a million calls whose waits spread over ten minutes holds at most 600,000
/// entries, and in practice a few thousand. The queues' intervals and the day's tally
/// count with it, so that the figures of a busy day cost the same memory as a quiet one's.
#[derive(Clone, Debug, Default)]
pub struct ByMillisecond {
    /// Values per millisecond (rounded to the nearest).
    counts: BTreeMap<u64, u64>,
    /// The sum of `counts`, kept: the ranks need it before their walk.
    count: u64,
    sum_micros: u128,
    max_micros: u64,
}

impl ByMillisecond {
    /// The nearest-rank values at each of `quantiles` (ascending), in one pass.
    fn ranks<const N: usize>(&self, quantiles: [f64; N]) -> [Duration; N] {
        let mut found = [Duration::ZERO; N];
        if self.count == 0 {
            return found;
        }
        let max = Duration::from_micros(self.max_micros);
        let mut next = 0;
        let mut below = 0u64;
        for (&millis, &count) in &self.counts {
            below += count;
            while next < N && rank(quantiles[next], self.count) <= below {
                found[next] = Duration::from_millis(millis).min(max);
                next += 1;
            }
            if next == N {
                break;
            }
        }
        found
    }
}

/// `micros` rounded to the nearest millisecond, as both [`Histogram`] and [`ByMillisecond`]
/// count.
fn nearest_millisecond(micros: u64) -> u64 {
    micros.saturating_add(500) / 1000
}

/// The 1-based nearest rank of quantile `q` among `count` values.
fn rank(q: f64, count: u64) -> u64 {
    ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count)
}

impl Distribution for ByMillisecond {
    fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        *self.counts.entry(nearest_millisecond(micros)).or_default() += 1;
        self.count += 1;
        self.sum_micros += u128::from(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    fn count(&self) -> u64 {
        self.count
    }

    fn sum(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.sum_micros).unwrap_or(u64::MAX))
    }

    fn quantile(&self, q: f64) -> Duration {
        let [value] = self.ranks([q]);
        value
    }

    fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }

    fn clear(&mut self) {
        *self = ByMillisecond::default();
    }

    fn summary(&self) -> DistributionSummary {
        let [p50, p90, p95, p99, p999] = self.ranks(QUANTILES);
        DistributionSummary {
            count: self.count,
            mean: mean(self.sum(), self.count),
            p50,
            p90,
            p95,
            p99,
            p999,
            max: self.max(),
        }
    }
}

/// The nearest-rank percentile: the smallest sample with at least `q` of the samples at or
/// below it.
fn nearest_rank(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = rank(q, sorted.len() as u64) as usize;
    Duration::from_micros(sorted[rank - 1])
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
    /// Callers who joined the queue (overflow arrivals and moves from another queue
    /// included).
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
    /// Callers a supervisor moved to another queue: not abandons, outside every rate.
    pub transferred: u64,
    /// Calls a supervisor ended before an answer: not abandons, outside every rate.
    pub removed: u64,
}

impl Counters {
    /// A caller joined the queue, or was refused on entry (then it also overflows).
    pub fn offer(&mut self) {
        self.offered += 1;
    }

    /// An agent answered a caller who waited `wait`: within the service level when
    /// `wait` ≤ T.
    pub fn answer(&mut self, wait: Duration, thresholds: &Thresholds) {
        self.answered += 1;
        self.answered_within_sl += u64::from(wait <= thresholds.service_level);
    }

    /// A caller hung up after waiting `wait`: a short abandon when `wait` is strictly
    /// less than the short-abandon threshold, an abandon after the threshold when strictly
    /// more than the abandon threshold, and within the service level when `wait` ≤ T.
    pub fn abandon(&mut self, wait: Duration, thresholds: &Thresholds) {
        self.abandoned += 1;
        self.short_abandoned += u64::from(wait < thresholds.short_abandon);
        self.abandoned_after_threshold += u64::from(wait > thresholds.abandon);
        self.abandoned_within_sl += u64::from(wait <= thresholds.service_level);
    }

    /// A caller left through a queue limit (or on request, or refused on entry).
    pub fn overflow(&mut self) {
        self.overflowed += 1;
    }

    /// A supervisor moved a caller to another queue.
    pub fn transfer(&mut self) {
        self.transferred += 1;
    }

    /// A supervisor ended a call before an answer.
    pub fn remove(&mut self) {
        self.removed += 1;
    }

    /// An offer was not taken.
    pub fn fail_offer(&mut self) {
        self.offers_failed += 1;
    }

    /// A connected call ended.
    pub fn complete(&mut self) {
        self.completed += 1;
    }

    /// A wait prediction met an answer: within ±20 % when |predicted − actual| ≤ 0.2 ×
    /// actual. Predictions of waits that ended otherwise are censored and not counted.
    pub fn resolve_prediction(&mut self, predicted: Duration, actual: Duration) {
        self.predictions += 1;
        let within = predicted.abs_diff(actual).as_secs_f64() <= 0.2 * actual.as_secs_f64();
        self.predictions_within_20pct += u64::from(within);
    }

    /// A caller asked to be called back.
    pub fn request_callback(&mut self) {
        self.callbacks_requested += 1;
    }

    /// Every attempt to call a caller back failed.
    pub fn give_up_callback(&mut self) {
        self.callbacks_unanswered += 1;
    }
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
    pub fn record(&mut self, vote: Option<Vote>) {
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

/// One thing a queue's statistics count, for [`QueueStats::record`]. The ACD records each
/// as it happens; [`crate::tally::Tally`] rebuilds each from the event that reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A caller joined the queue ([`crate::Event::CallQueued`]) or was refused on entry
    /// ([`crate::Event::CallOverflowed`] with `at_entry`).
    Offered,
    /// An agent answered ([`crate::Event::CallConnected`]).
    Answered {
        /// From joining the queue to the answer.
        wait: Duration,
        /// From the offer to the answer.
        ring: Duration,
    },
    /// The caller hung up before an answer ([`crate::Event::CallAbandoned`]).
    Abandoned {
        /// From joining the queue to the hang-up.
        wait: Duration,
    },
    /// The caller left through the queue's overflow ([`crate::Event::CallOverflowed`]).
    Overflowed,
    /// A supervisor moved the caller to another queue ([`crate::Event::CallTransferred`]).
    Transferred,
    /// A supervisor ended the call before an answer ([`crate::Event::CallRemoved`]).
    Removed,
    /// An offer was not taken ([`crate::Event::OfferFailed`]).
    OfferFailed,
    /// A connected call ended ([`crate::Event::CallCompleted`]).
    Completed {
        /// Conversation time.
        talk: Duration,
    },
    /// The wrap-up after a call ended, possibly of zero length
    /// ([`crate::Event::WrapUpEnded`]).
    WrappedUp {
        /// Its length.
        wrap_up: Duration,
    },
    /// A wait prediction met an answer ([`crate::Event::WaitPredictionResolved`] with
    /// [`crate::WaitOutcome::Answered`]).
    PredictionResolved {
        /// The wait predicted.
        predicted: Duration,
        /// The actual wait, from the prediction to the answer.
        actual: Duration,
    },
    /// A caller asked to be called back ([`crate::Event::CallbackRequested`]).
    CallbackRequested,
    /// A callback never reached its caller ([`crate::Event::CallbackUnanswered`]).
    CallbackUnanswered,
    /// A post-call rating ([`crate::Event::SurveyRecorded`]).
    Surveyed {
        /// The rating, `None` without a vote.
        vote: Option<Vote>,
    },
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
    /// Counts one outcome, classifying waits by the queue's `thresholds`.
    pub fn record(&mut self, outcome: Outcome, thresholds: &Thresholds) {
        let counters = &mut self.counters;
        match outcome {
            Outcome::Offered => counters.offer(),
            Outcome::Answered { wait, ring } => {
                counters.answer(wait, thresholds);
                self.wait.record(wait);
                self.ring.record(ring);
            }
            Outcome::Abandoned { wait } => {
                counters.abandon(wait, thresholds);
                self.abandon.record(wait);
            }
            Outcome::Overflowed => counters.overflow(),
            Outcome::Transferred => counters.transfer(),
            Outcome::Removed => counters.remove(),
            Outcome::OfferFailed => counters.fail_offer(),
            Outcome::Completed { talk } => {
                counters.complete();
                self.talk.record(talk);
            }
            Outcome::WrappedUp { wrap_up } => self.wrap_up.record(wrap_up),
            Outcome::PredictionResolved { predicted, actual } => {
                counters.resolve_prediction(predicted, actual);
            }
            Outcome::CallbackRequested => counters.request_callback(),
            Outcome::CallbackUnanswered => counters.give_up_callback(),
            Outcome::Surveyed { vote } => counters.survey.record(vote),
        }
    }

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
            aht: handle_time(self.talk.sum(), self.wrap_up.sum(), self.talk.count()),
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
    /// Adds time spent in a state to its kind: reserved, on call and wrap-up are busy;
    /// logged-out time counts nowhere.
    pub fn add(&mut self, status: AgentStatus, elapsed: Duration) {
        match status {
            AgentStatus::Available => self.available += elapsed,
            AgentStatus::Reserved | AgentStatus::OnCall | AgentStatus::WrapUp => {
                self.busy += elapsed;
            }
            AgentStatus::Paused => self.paused += elapsed,
            AgentStatus::LoggedOut => {}
        }
    }

    /// busy / (busy + available), pauses excluded.
    pub fn occupancy(&self) -> Option<f64> {
        let worked = self.busy + self.available;
        (!worked.is_zero()).then(|| self.busy.as_secs_f64() / worked.as_secs_f64())
    }
}

impl std::ops::AddAssign for AgentTime {
    fn add_assign(&mut self, other: AgentTime) {
        self.available += other.available;
        self.busy += other.busy;
        self.paused += other.paused;
    }
}

/// How many durations and their exact sum: a distribution without its shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    /// How many.
    pub count: u64,
    /// Their sum.
    #[serde(with = "crate::config::secs")]
    pub sum: Duration,
}

impl Durations {
    /// Adds one duration.
    pub fn record(&mut self, value: Duration) {
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
    }

    /// The exact mean, when there is a duration.
    pub fn mean(&self) -> Option<Duration> {
        mean(self.sum, self.count)
    }
}

/// Offers not taken, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferFailures {
    /// Rang without an answer.
    pub no_answer: u64,
    /// Declined.
    pub rejected: u64,
    /// The phone could not be reached.
    pub unreachable: u64,
}

impl OfferFailures {
    /// Counts one failed offer.
    pub fn record(&mut self, reason: OfferFailure) {
        match reason {
            OfferFailure::NoAnswer => self.no_answer += 1,
            OfferFailure::Rejected => self.rejected += 1,
            OfferFailure::Unreachable => self.unreachable += 1,
        }
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.no_answer + self.rejected + self.unreachable
    }
}

/// What one agent did over some span of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFigures {
    /// Calls the agent answered.
    pub calls_answered: u64,
    /// Offers the agent did not take.
    pub offers_failed: OfferFailures,
    /// Talk time of the agent's calls that ended.
    pub talk: Durations,
    /// The agent's wrap-ups, zero-length ones included.
    pub wrap_up: Durations,
    /// Post-call ratings of the agent's calls.
    pub survey: SurveyCounts,
    /// Time in each kind of state.
    pub time: AgentTime,
}

impl AgentFigures {
    /// Average handle time: (Σ talk + Σ wrap-up) / completed calls.
    pub fn aht(&self) -> Option<Duration> {
        handle_time(self.talk.sum, self.wrap_up.sum, self.talk.count)
    }

    /// busy / (busy + available), pauses excluded.
    pub fn occupancy(&self) -> Option<f64> {
        self.time.occupancy()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == AgentFigures::default()
    }
}

/// One agent's figures over a closed statistics interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReport {
    /// Start of the interval.
    pub start: Timestamp,
    /// End of the interval.
    pub end: Timestamp,
    /// What the agent did in it.
    pub figures: AgentFigures,
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

    /// Rounds to the nearest millisecond, as [`ByMillisecond`] does.
    fn to_millisecond(value: Duration) -> Duration {
        Duration::from_millis((value.as_micros() as u64 + 500) / 1000)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Each percentile is the raw samples' nearest rank rounded to the millisecond
        /// (never above the maximum); count, mean and maximum are the samples' own.
        #[test]
        fn by_millisecond_is_the_samples_rounded_to_the_millisecond(
            micros in proptest::collection::vec(0u64..5_000_000, 0..400),
            q in 0.0f64..=1.0,
        ) {
            let mut samples = Samples::default();
            let mut counted = ByMillisecond::default();
            for &value in &micros {
                samples.record(Duration::from_micros(value));
                counted.record(Duration::from_micros(value));
            }
            let (want, got) = (samples.summary(), counted.summary());
            proptest::prop_assert_eq!(got.count, want.count);
            proptest::prop_assert_eq!(got.mean, want.mean);
            proptest::prop_assert_eq!(got.max, want.max);
            for (got, want) in [
                (got.p50, want.p50),
                (got.p90, want.p90),
                (got.p95, want.p95),
                (got.p99, want.p99),
                (got.p999, want.p999),
                (counted.quantile(q), samples.quantile(q)),
            ] {
                proptest::prop_assert_eq!(got, to_millisecond(want).min(samples.max()));
            }
        }
    }

    #[test]
    fn by_millisecond_keeps_one_entry_per_millisecond_whatever_the_count() {
        let mut counted = ByMillisecond::default();
        // A million talk times of one to two seconds, each to the microsecond.
        for call in 0..1_000_000u64 {
            counted.record(Duration::from_micros(1_000_000 + call * 7919 % 1_000_000));
        }
        assert_eq!(counted.count(), 1_000_000);
        assert!(
            counted.counts.len() <= 1001,
            "{} entries",
            counted.counts.len()
        );
        let summary = counted.summary();
        assert_eq!(summary.p50, ms(1500));
        assert_eq!(summary.max, Duration::from_micros(1_999_999));
        assert_eq!(counted.quantile(0.0), ms(1000));
        counted.clear();
        assert_eq!(counted.summary(), DistributionSummary::default());
        assert!(counted.counts.is_empty());
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
    fn waits_on_a_threshold_count_as_the_formulas_say() {
        let thresholds = Thresholds {
            service_level: ms(20_000),
            abandon: ms(47_000),
            short_abandon: ms(5_000),
        };
        let mut stats = QueueStats::<Samples>::default();
        for outcome in [
            Outcome::Answered {
                wait: ms(20_000),
                ring: ms(3_000),
            },
            Outcome::Answered {
                wait: ms(20_001),
                ring: ms(1_000),
            },
            Outcome::Abandoned { wait: ms(5_000) },
            Outcome::Abandoned { wait: ms(4_999) },
            Outcome::Abandoned { wait: ms(47_000) },
            Outcome::Abandoned { wait: ms(47_001) },
            Outcome::PredictionResolved {
                predicted: ms(12_000),
                actual: ms(10_000),
            },
            Outcome::PredictionResolved {
                predicted: ms(12_001),
                actual: ms(10_000),
            },
            Outcome::WrappedUp { wrap_up: ms(0) },
        ] {
            stats.record(outcome, &thresholds);
        }
        let c = stats.counters;
        assert_eq!((c.answered, c.answered_within_sl), (2, 1));
        assert_eq!(
            (c.abandoned, c.short_abandoned, c.abandoned_after_threshold),
            (4, 1, 1)
        );
        assert_eq!(c.abandoned_within_sl, 2);
        assert_eq!((c.predictions, c.predictions_within_20pct), (2, 1));
        assert_eq!((stats.ring.count(), stats.ring.sum()), (2, ms(4_000)));
        assert_eq!(stats.abandon.count(), 4);
        assert!(!stats.is_empty(), "a wrap-up alone is something");
    }

    #[test]
    fn intervals_end_on_the_origin_plus_whole_lengths() {
        let length = ms(900_000);
        let origin = Timestamp::from_secs(60);
        let end = |secs| interval_end(Timestamp::from_secs(secs), length, origin);
        assert_eq!(end(100), Timestamp::from_secs(960));
        assert_eq!(end(959), Timestamp::from_secs(960));
        assert_eq!(
            end(960),
            Timestamp::from_secs(1860),
            "a boundary opens the next"
        );
        assert_eq!(end(0), Timestamp::from_secs(960), "before the origin");
        let end_of_time = Timestamp::from_micros(u64::MAX);
        assert_eq!(interval_end(end_of_time, length, origin), end_of_time);
        assert_eq!(
            interval_end(Timestamp::from_micros(7), Duration::ZERO, Timestamp::ZERO),
            Timestamp::from_micros(8)
        );
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
