//! Every queue's line of waiting callers.

use crate::acd::call::CallKey;
use crate::ids::QueueId;
use crate::ranked::RankedSet;

/// One ordered set of waiting (not ringing) callers per queue and expansion step, and a
/// compact copy of each set's head. An agent coming free compares the heads of every queue
/// it serves; reading them from one contiguous array instead of from each set keeps that
/// decision to a few cache lines.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lines {
    sets: Vec<RankedSet<CallKey>>,
    heads: Vec<Option<CallKey>>,
    /// Where each queue's steps start in `sets` and `heads`; one more entry at the end.
    offsets: Vec<usize>,
}

impl Lines {
    /// Lines for queues with these numbers of steps.
    pub(crate) fn new(steps: impl Iterator<Item = usize>) -> Self {
        let mut offsets = vec![0];
        for count in steps {
            offsets.push(offsets.last().copied().unwrap_or(0) + count);
        }
        let total = offsets.last().copied().unwrap_or(0);
        Lines {
            sets: (0..total).map(|_| RankedSet::new()).collect(),
            heads: vec![None; total],
            offsets,
        }
    }

    #[inline]
    fn index(&self, queue: QueueId, step: usize) -> usize {
        self.offsets[queue.index()] + step
    }

    pub(crate) fn insert(&mut self, queue: QueueId, step: usize, key: CallKey) -> bool {
        let index = self.index(queue, step);
        let inserted = self.sets[index].insert(key);
        if self.heads[index].is_none_or(|head| key < head) {
            self.heads[index] = Some(key);
        }
        inserted
    }

    pub(crate) fn remove(&mut self, queue: QueueId, step: usize, key: &CallKey) -> bool {
        let index = self.index(queue, step);
        let removed = self.sets[index].remove(key);
        if removed && self.heads[index] == Some(*key) {
            self.heads[index] = self.sets[index].first().copied();
        }
        removed
    }

    /// The first caller of each of a queue's steps, from step `from` on.
    #[inline]
    pub(crate) fn heads(&self, queue: QueueId, from: usize) -> &[Option<CallKey>] {
        &self.heads[self.offsets[queue.index()] + from..self.offsets[queue.index() + 1]]
    }

    /// The callers at this step, in order.
    pub(crate) fn set(&self, queue: QueueId, step: usize) -> &RankedSet<CallKey> {
        &self.sets[self.index(queue, step)]
    }

    /// Every step's set of a queue.
    pub(crate) fn steps(&self, queue: QueueId) -> &[RankedSet<CallKey>] {
        &self.sets[self.offsets[queue.index()]..self.offsets[queue.index() + 1]]
    }

    /// 1 for the first in line: callers of the queue, at any step, whose key sorts before
    /// `key`.
    pub(crate) fn position(&self, queue: QueueId, key: &CallKey) -> u32 {
        let ahead: usize = self.steps(queue).iter().map(|set| set.rank(key)).sum();
        u32::try_from(ahead + 1).unwrap_or(u32::MAX)
    }

    /// Callers waiting in a queue.
    pub(crate) fn len(&self, queue: QueueId) -> usize {
        self.steps(queue).iter().map(RankedSet::len).sum()
    }
}
