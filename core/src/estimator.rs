//! The estimated wait time (EWT) of a waiting caller.
//!
//! A caller at position `k` reaches an agent after the `k − 1` callers ahead of it have
//! gone and one more agent has come free. Callers leave the head of the queue at the
//! service rate `r = n / h`, with `n` the agents working the queue (each agent counted
//! `1/m` when it serves `m` queues) and `h` the recent mean handle time (talk and
//! wrap-up); each caller ahead also leaves early by hanging up, at the recent abandon rate
//! per waiting caller `θ` (abandons per caller-second waited, a decaying average over the
//! estimator window). With `j` callers ahead the queue in front moves at `r + jθ`, so
//!
//! ```text
//! EWT(k) = Σ_{j=0}^{k−1} 1 / (r + jθ) = (ψ(r/θ + k) − ψ(r/θ)) / θ
//! ```
//!
//! (ψ the digamma function; `k / r` when θ = 0). It is the mean of the caller's virtual
//! wait in Palm's M/M/N+M model given its position, with the rates measured rather than
//! configured. It ignores callers who will arrive later with a higher priority.

use std::time::Duration;

use crate::time::Timestamp;

/// Recent service and abandon rates of one queue.
#[derive(Clone, Debug)]
pub(crate) struct WaitEstimator {
    window_secs: f64,
    updated: Timestamp,
    /// Abandons, decayed with the window's time constant.
    abandons: f64,
    /// Caller-seconds waited, decayed likewise.
    caller_secs: f64,
    /// Mean handle time in seconds.
    handle_secs: f64,
    handles_seen: u32,
}

/// After this many calls the handle-time mean becomes a moving average over about as many.
const HANDLE_MEMORY: u32 = 50;

/// Below this many caller-seconds of evidence the abandon rate is taken as zero.
const MIN_EXPOSURE_SECS: f64 = 60.0;

impl WaitEstimator {
    pub(crate) fn new(window: Duration, expected_handle: Duration, now: Timestamp) -> Self {
        WaitEstimator {
            window_secs: window.as_secs_f64().max(1.0),
            updated: now,
            abandons: 0.0,
            caller_secs: 0.0,
            handle_secs: expected_handle.as_secs_f64(),
            handles_seen: 0,
        }
    }

    /// Brings the decayed sums to `now`; `exposed` callers (waiting or ringing) have been
    /// exposed to hanging up since the last update. Call before the count changes.
    pub(crate) fn advance(&mut self, now: Timestamp, exposed: usize) {
        let elapsed = now.saturating_since(self.updated).as_secs_f64();
        if elapsed <= 0.0 {
            return;
        }
        self.updated = now;
        let decay = (-elapsed / self.window_secs).exp();
        self.abandons *= decay;
        // The integral of `exposed` over the elapsed time, under the same exponential decay.
        self.caller_secs =
            self.caller_secs * decay + exposed as f64 * self.window_secs * (1.0 - decay);
    }

    /// A new estimator window (a reconfiguration), from `now` on; `exposed` callers have
    /// waited since the last update, which is counted under the old window first.
    pub(crate) fn set_window(&mut self, window: Duration, now: Timestamp, exposed: usize) {
        self.advance(now, exposed);
        self.window_secs = window.as_secs_f64().max(1.0);
    }

    /// A new assumed handle time (a reconfiguration); it only matters until the first
    /// handle time is known.
    pub(crate) fn set_expected_handle(&mut self, expected_handle: Duration) {
        if self.handles_seen == 0 {
            self.handle_secs = expected_handle.as_secs_f64();
        }
    }

    /// A caller hung up while waiting.
    pub(crate) fn record_abandon(&mut self) {
        self.abandons += 1.0;
    }

    /// A call's handle time (talk and wrap-up) is known.
    pub(crate) fn record_handle(&mut self, handle: Duration) {
        self.handles_seen = (self.handles_seen + 1).min(HANDLE_MEMORY);
        let weight = 1.0 / f64::from(self.handles_seen);
        self.handle_secs += weight * (handle.as_secs_f64() - self.handle_secs);
    }

    /// The recent abandon rate per waiting caller, per second.
    pub(crate) fn abandon_rate(&self) -> f64 {
        if self.caller_secs < MIN_EXPOSURE_SECS {
            0.0
        } else {
            self.abandons / self.caller_secs
        }
    }

    /// Expected wait from now of the caller at `position` (1 for the first), with `staffed`
    /// agents working the queue; `None` without staff.
    pub(crate) fn estimate(&self, position: u32, staffed: f64) -> Option<Duration> {
        if staffed <= 0.0 || position == 0 {
            return None;
        }
        let service_rate = staffed / self.handle_secs.max(1e-3);
        let secs = expected_stages(position, service_rate, self.abandon_rate());
        Duration::try_from_secs_f64(secs).ok()
    }
}

/// `Σ_{j=0}^{k−1} 1 / (r + jθ)`.
fn expected_stages(k: u32, r: f64, theta: f64) -> f64 {
    let k_f = f64::from(k);
    // With no abandons to speak of, every stage takes 1/r (the relative error of this
    // shortcut is below θk/r < 1e-9).
    if theta * k_f < 1e-9 * r {
        return k_f / r;
    }
    // Summing directly is exact and cheap for short queues; the closed form keeps long
    // queues O(1).
    if k <= 64 {
        return (0..k).map(|j| 1.0 / (r + f64::from(j) * theta)).sum();
    }
    let x = r / theta;
    (digamma(x + k_f) - digamma(x)) / theta
}

/// The digamma function ψ(x) for x > 0: the recurrence ψ(x) = ψ(x + 1) − 1/x up to x ≥ 10,
/// then the asymptotic series (error below 1e-13 there).
fn digamma(mut x: f64) -> f64 {
    let mut result = 0.0;
    while x < 10.0 {
        result -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    result + x.ln()
        - 0.5 * inv
        - inv2
            * (1.0 / 12.0
                - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 / 132.0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_matches_the_sum() {
        for (k, r, theta) in [
            (65, 0.05, 0.005),
            (1000, 0.1, 0.001),
            (5000, 0.02, 0.01),
            (300, 2.0, 0.3),
        ] {
            let direct: f64 = (0..k).map(|j| 1.0 / (r + f64::from(j) * theta)).sum();
            let closed = expected_stages(k, r, theta);
            assert!(
                (direct - closed).abs() / direct < 1e-9,
                "{k} {r} {theta}: {direct} vs {closed}"
            );
        }
    }

    #[test]
    fn digamma_known_values() {
        let euler_gamma = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler_gamma).abs() < 1e-12);
        assert!((digamma(0.5) + euler_gamma + 2.0 * 2f64.ln()).abs() < 1e-12);
        assert!((digamma(10.0) - 2.251_752_589_066_721).abs() < 1e-12);
    }

    #[test]
    fn patient_callers_wait_their_position_times_the_head_interval() {
        let estimator = WaitEstimator::new(
            Duration::from_secs(3600),
            Duration::from_secs(240),
            Timestamp::ZERO,
        );
        // 4 agents at 240 s: one leaves the head every 60 s.
        assert_eq!(estimator.estimate(1, 4.0), Some(Duration::from_secs(60)));
        assert_eq!(estimator.estimate(3, 4.0), Some(Duration::from_secs(180)));
        assert_eq!(estimator.estimate(3, 0.0), None);
    }

    #[test]
    fn abandons_shorten_the_estimate_of_callers_further_back() {
        let mut estimator = WaitEstimator::new(
            Duration::from_secs(3600),
            Duration::from_secs(240),
            Timestamp::ZERO,
        );
        // 10 callers waiting for 600 s (decayed: 5,526.6 caller-seconds), 30 of them hung up.
        estimator.advance(Timestamp::from_secs(600), 10);
        for _ in 0..30 {
            estimator.record_abandon();
        }
        let theta = estimator.abandon_rate();
        assert!((theta - 30.0 / 5_526.6).abs() < 1e-6, "{theta}");
        let first = estimator.estimate(1, 4.0).unwrap();
        let tenth = estimator.estimate(10, 4.0).unwrap().as_secs_f64();
        assert_eq!(first, Duration::from_secs(60));
        let r = 4.0 / 240.0;
        let want: f64 = (0..10).map(|j| 1.0 / (r + f64::from(j) * theta)).sum();
        assert!((tenth - want).abs() < 1e-6, "{tenth} vs {want}");
        assert!(
            tenth < 0.5 * 600.0,
            "patient callers would wait 600 s; {tenth}"
        );
    }

    #[test]
    fn handle_time_is_a_running_then_moving_mean() {
        let mut estimator = WaitEstimator::new(
            Duration::from_secs(3600),
            Duration::from_secs(180),
            Timestamp::ZERO,
        );
        estimator.record_handle(Duration::from_secs(100));
        estimator.record_handle(Duration::from_secs(300));
        assert_eq!(estimator.estimate(1, 1.0), Some(Duration::from_secs(200)));
        for _ in 0..500 {
            estimator.record_handle(Duration::from_secs(60));
        }
        let estimate = estimator.estimate(1, 1.0).unwrap().as_secs_f64();
        assert!((estimate - 60.0).abs() < 1.0, "{estimate}");
    }
}
