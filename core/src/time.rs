//! Time as the core sees it: a point on a virtual or real clock, passed in by the caller.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time, in microseconds since an origin the caller chooses.
///
/// The core never reads a clock. The live server maps its monotonic clock onto this
/// (origin = a local midnight, so that statistics intervals align with the wall clock);
/// the simulator and the tests start at zero and jump from one deadline to the next.
/// A plain number, unlike `std::time::Instant`, can be journaled and replayed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin of the clock.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Timestamp(micros)
    }

    /// A timestamp `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs * 1_000_000)
    }

    /// A timestamp `secs` (fractional) seconds after the origin, rounded to the microsecond.
    /// Negative or non-finite values give the origin.
    pub fn from_secs_f64(secs: f64) -> Self {
        if secs.is_finite() && secs > 0.0 {
            Timestamp((secs * 1e6).round() as u64)
        } else {
            Timestamp::ZERO
        }
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Seconds since the origin.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, rhs: Duration) -> Timestamp {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp::from_secs(10);
        assert_eq!(
            t + Duration::from_millis(1500),
            Timestamp::from_micros(11_500_000)
        );
        assert_eq!(Timestamp::from_secs(3).saturating_since(t), Duration::ZERO);
        assert_eq!(
            t.saturating_since(Timestamp::from_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(
            Timestamp::from_micros(u64::MAX - 1) + Duration::MAX,
            Timestamp::from_micros(u64::MAX)
        );
    }

    #[test]
    fn fractional_seconds_round_to_the_microsecond() {
        assert_eq!(
            Timestamp::from_secs_f64(1.0000004),
            Timestamp::from_micros(1_000_000)
        );
        assert_eq!(Timestamp::from_secs_f64(-3.0), Timestamp::ZERO);
        assert_eq!(Timestamp::from_secs_f64(f64::NAN), Timestamp::ZERO);
        assert_eq!(Timestamp::from_secs(2).to_string(), "2.000000s");
    }
}
