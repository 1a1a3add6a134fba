//! The ACD's timers: one ordered table, cancelled by exact deadline.

use std::collections::BTreeSet;

use crate::ids::{AgentId, CallId};
use crate::time::Timestamp;

/// Why the ACD wants to wake up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Timer {
    /// The statistics interval ends.
    IntervalEnd,
    /// An agent's wrap-up ends.
    WrapUpEnd(AgentId),
    /// An offered call has rung for the queue's ring timeout.
    RingTimeout(CallId),
    /// A waiting call reaches its next skill-expansion step.
    Expansion(CallId),
    /// A waiting call reaches its queue's maximum wait.
    MaxWait(CallId),
    /// An agent who did not take a call may be offered it again.
    Retry(CallId),
}

/// Pending timers ordered by deadline, then by kind (deterministic for replay).
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    pending: BTreeSet<(Timestamp, Timer)>,
}

impl Timers {
    pub(crate) fn set(&mut self, at: Timestamp, timer: Timer) {
        self.pending.insert((at, timer));
    }

    /// Cancels a timer set for `at`, if any.
    pub(crate) fn cancel(&mut self, at: Option<Timestamp>, timer: Timer) {
        if let Some(at) = at {
            self.pending.remove(&(at, timer));
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.pending.first().map(|(at, _)| *at)
    }

    /// Takes the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, Timer)> {
        match self.pending.first() {
            Some(&(at, _)) if at <= now => self.pending.pop_first(),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}
