//! A call as the ACD holds it: where it waits, its place in line, its timers.

use std::collections::VecDeque;
use std::time::Duration;

use crate::ids::{AgentId, CallId, QueueId};
use crate::time::Timestamp;

/// A caller's place in line, ordered: higher priority first, then earlier arrival, then
/// the heavier queue, then arrival order. Unique by `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct CallKey {
    /// 255 − priority, so that the most urgent sorts first.
    pub(crate) urgency: u8,
    pub(crate) arrived: Timestamp,
    /// u32::MAX − queue weight.
    pub(crate) lightness: u32,
    pub(crate) seq: u64,
    pub(crate) call: CallId,
}

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    /// In line for an agent.
    Waiting,
    /// Ringing an agent.
    Offered {
        agent: AgentId,
        since: Timestamp,
        ring_due: Timestamp,
    },
    /// Talking to an agent.
    Connected { agent: AgentId, since: Timestamp },
    /// A callback: the agent answered and the caller is being called back.
    Dialing { agent: AgentId, since: Timestamp },
    /// A callback that could not reach the caller, out of line until its next attempt.
    Deferred { until: Timestamp },
}

/// Most predictions kept per call; announcements every 30 s over an hour stay within it.
pub(crate) const MAX_PREDICTIONS: usize = 128;

#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) id: CallId,
    pub(crate) queue: QueueId,
    pub(crate) priority: u8,
    pub(crate) seq: u64,
    /// First arrival in the ACD: the place in line, kept through offers and overflows.
    pub(crate) arrived: Timestamp,
    /// Entry into the current queue: waits, expansion and limits count from here.
    pub(crate) entered: Timestamp,
    /// u32::MAX − the current queue's weight.
    pub(crate) lightness: u32,
    pub(crate) step: u8,
    pub(crate) state: CallState,
    /// Queues entered so far, to stop overflow loops.
    pub(crate) hops: u32,
    pub(crate) expansion_due: Option<Timestamp>,
    pub(crate) max_wait_due: Option<Timestamp>,
    pub(crate) max_wait_reached: bool,
    /// When agents who did not take this call may be offered it again, earliest first.
    pub(crate) retries: VecDeque<Timestamp>,
    /// Wait predictions: when made, and the wait predicted from then.
    pub(crate) predictions: Predictions,
    /// A queued callback: the caller hung up and is called back when an agent is free;
    /// the number of attempts that failed to reach it so far.
    pub(crate) callback: Option<u32>,
}

impl Call {
    pub(crate) fn new(id: CallId, queue: QueueId, priority: u8, seq: u64, now: Timestamp) -> Self {
        Call {
            id,
            queue,
            priority,
            seq,
            arrived: now,
            entered: now,
            lightness: u32::MAX,
            step: 0,
            state: CallState::Waiting,
            hops: 0,
            expansion_due: None,
            max_wait_due: None,
            max_wait_reached: false,
            retries: VecDeque::new(),
            predictions: Predictions::default(),
            callback: None,
        }
    }

    pub(crate) fn key(&self) -> CallKey {
        CallKey {
            urgency: u8::MAX - self.priority,
            arrived: self.arrived,
            lightness: self.lightness,
            seq: self.seq,
            call: self.id,
        }
    }

    /// Whether the caller is still in line or ringing, i.e. not yet answered.
    pub(crate) fn is_queued(&self) -> bool {
        !matches!(self.state, CallState::Connected { .. })
    }
}

/// A call's wait predictions. Most calls get one (on entry) and some get none; the first is
/// kept inline so that a call costs no allocation for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Predictions {
    first: Option<(Timestamp, Duration)>,
    rest: Vec<(Timestamp, Duration)>,
}

impl Predictions {
    /// Keeps a prediction, up to [`MAX_PREDICTIONS`].
    pub(crate) fn push(&mut self, prediction: (Timestamp, Duration)) {
        if self.first.is_none() {
            self.first = Some(prediction);
        } else if self.rest.len() + 1 < MAX_PREDICTIONS {
            self.rest.push(prediction);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Timestamp, Duration)> + '_ {
        self.first.iter().chain(&self.rest).copied()
    }
}
