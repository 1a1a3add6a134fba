//! A queue as the ACD holds it: resolved settings, eligible agents per expansion step,
//! waiting callers in order, statistics.

use std::collections::VecDeque;
use std::time::Duration;

use crate::bitset::Bitset;
use crate::config::{NoAgentsPolicy, Strategy, Thresholds};
use crate::estimator::WaitEstimator;
use crate::ids::{QueueId, SkillId};
use crate::metrics::{ByMillisecond, Histogram, IntervalReport, Outcome, QueueStats};

/// Where a queue's overflow goes, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OverflowTarget {
    Hangup,
    Queue(QueueId),
    External(String),
}

/// One expansion step: from when it applies and who may serve then.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub(crate) after: Duration,
    pub(crate) eligible: Bitset,
}

#[derive(Clone, Debug)]
pub(crate) struct Queue {
    pub(crate) name: String,
    /// False once a reconfiguration removed it: it takes no more callers.
    pub(crate) open: bool,
    pub(crate) required: Vec<(SkillId, u8)>,
    pub(crate) strategy: Strategy,
    pub(crate) weight: u32,
    pub(crate) ring_timeout: Duration,
    pub(crate) retry_after: Duration,
    pub(crate) wrap_up: Duration,
    pub(crate) auto_pause_after: Option<u32>,
    pub(crate) max_callers: Option<u32>,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) overflow: OverflowTarget,
    pub(crate) when_no_agents: NoAgentsPolicy,
    pub(crate) thresholds: Thresholds,
    pub(crate) callback_attempts: u32,
    pub(crate) callback_retry_after: Duration,
    /// Step 0 is the queue's own requirement; later steps widen it.
    pub(crate) steps: Vec<Step>,
    /// Callers waiting or ringing: exposed to hanging up, counted against `max_callers`.
    pub(crate) queued: u32,
    /// Logged-in agents who may serve the queue at some step.
    pub(crate) logged_in: u32,
    /// Working agents of step 0, each counted by its share, in `SHARE_UNIT`s.
    pub(crate) staffed: u64,
    /// The agent last chosen, for round-robin.
    pub(crate) cursor: usize,
    pub(crate) estimator: WaitEstimator,
    pub(crate) stats: QueueStats<Histogram>,
    pub(crate) interval: QueueStats<ByMillisecond>,
    pub(crate) closed: VecDeque<IntervalReport>,
}

impl Queue {
    /// The expansion step in force after waiting `waited`.
    pub(crate) fn step_after(&self, waited: Duration) -> usize {
        self.steps
            .iter()
            .rposition(|step| step.after <= waited)
            .unwrap_or(0)
    }

    /// Counts an outcome in both statistics, cumulative and of the interval.
    pub(crate) fn record(&mut self, outcome: Outcome) {
        self.stats.record(outcome, &self.thresholds);
        self.interval.record(outcome, &self.thresholds);
    }
}
