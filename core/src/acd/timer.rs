//! The ACD's timers: a binary heap of deadlines, cancelled lazily.
//!
//! Cancelling a timer costs nothing: every timer's owner (a call, an agent) keeps the
//! deadline it is waiting for, and a timer that no longer matches its owner is stale and
//! skipped when it comes up (see `Acd::timer_is_live`). A push is O(log n) on a
//! contiguous array, cheaper on the routing path than an ordered tree with removals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::ids::{AgentId, CallId};
use crate::time::Timestamp;

/// Why the ACD wants to wake up. Call timers carry the call's sequence number too, so that
/// a stale timer never fires for a later call that reuses the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Timer {
    /// The statistics interval ends.
    IntervalEnd,
    /// An agent's wrap-up ends.
    WrapUpEnd(AgentId),
    /// An offered call has rung for the queue's ring timeout.
    RingTimeout(CallId, u64),
    /// A waiting call reaches its next skill-expansion step.
    Expansion(CallId, u64),
    /// A waiting call reaches its queue's maximum wait.
    MaxWait(CallId, u64),
    /// An agent who did not take a call may be offered it again.
    Retry(CallId, u64),
    /// A callback that failed to reach its caller goes back in line.
    CallbackRetry(CallId, u64),
}

/// Pending timers ordered by deadline, then by kind (deterministic for replay).
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Timestamp, Timer)>>,
}

impl Timers {
    pub(crate) fn set(&mut self, at: Timestamp, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// The earliest timer, live or stale.
    pub(crate) fn peek(&self) -> Option<(Timestamp, Timer)> {
        self.heap.peek().map(|Reverse(entry)| *entry)
    }

    /// Takes the earliest timer if it is due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, Timer)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    /// Drops the earliest timer (a stale one).
    pub(crate) fn pop(&mut self) {
        self.heap.pop();
    }
}
