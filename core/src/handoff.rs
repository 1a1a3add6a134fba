//! Lock-free hand-offs around the single-writer core.
//!
//! The ACD is one writer (the LMAX/Disruptor pattern): many producers — SIP transactions,
//! media tasks, the API — push [`crate::Input`]s into an [`Inbox`], a lock-free
//! multi-producer queue; the one task that owns the [`crate::Acd`] drains it, handles each
//! input and publishes an [`crate::AcdSnapshot`] into a [`SnapshotCell`], from which any
//! number of readers load the latest picture without ever blocking the writer or each
//! other.
//!
//! ```
//! use std::sync::Arc;
//! use amico_core::handoff::{Inbox, SnapshotCell};
//! use amico_core::{Acd, AcdConfig, AgentId, Input, Timestamp};
//!
//! let config = AcdConfig { agents: vec![amico_core::AgentConfig::new("anna", &[])], ..Default::default() };
//! let mut acd = Acd::new(config, Timestamp::ZERO).unwrap();
//! let inbox = Arc::new(Inbox::new());
//! let snapshots = Arc::new(SnapshotCell::new(acd.snapshot()));
//!
//! // Any thread:
//! inbox.push(Input::Login { agent: AgentId(0) });
//!
//! // The writer:
//! let now = Timestamp::from_secs(1);
//! while let Some(input) = inbox.pop() {
//!     acd.handle_input(now, input).unwrap();
//!     while let Some(_output) = acd.poll_output() { /* to the edges */ }
//! }
//! snapshots.publish(acd.snapshot());
//!
//! // Any reader:
//! assert_eq!(snapshots.load().agents[0].state, amico_core::AgentState::Available);
//! ```

use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;

use crate::input::Input;
use crate::snapshot::AcdSnapshot;

/// A lock-free multi-producer queue of inputs for the single writer.
#[derive(Debug, Default)]
pub struct Inbox<T = Input> {
    queue: SegQueue<T>,
}

impl<T> Inbox<T> {
    /// An empty inbox.
    pub fn new() -> Self {
        Inbox {
            queue: SegQueue::new(),
        }
    }

    /// Hands an item to the writer. Never blocks.
    pub fn push(&self, item: T) {
        self.queue.push(item);
    }

    /// The oldest item, if any (the writer's side).
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The latest published value, readable without locks.
#[derive(Debug)]
pub struct SnapshotCell<T = AcdSnapshot> {
    current: ArcSwap<T>,
}

impl<T> SnapshotCell<T> {
    /// A cell holding `initial`.
    pub fn new(initial: T) -> Self {
        SnapshotCell {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// Replaces the value; readers holding the old one keep it until they drop it.
    pub fn publish(&self, value: T) {
        self.current.store(Arc::new(value));
    }

    /// The latest value.
    pub fn load(&self) -> Arc<T> {
        self.current.load_full()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn many_producers_one_writer_many_readers() {
        const PRODUCERS: u64 = 4;
        const PER_PRODUCER: u64 = 10_000;
        let inbox = Arc::new(Inbox::<u64>::new());
        // The "snapshot" is (items handled, their sum): readers must never see a torn pair.
        let cell = Arc::new(SnapshotCell::new((0u64, 0u64)));
        let done = Arc::new(AtomicBool::new(false));

        let readers: Vec<_> = (0..2)
            .map(|_| {
                let cell = Arc::clone(&cell);
                let done = Arc::clone(&done);
                std::thread::spawn(move || {
                    let mut last = 0;
                    while !done.load(Ordering::Acquire) {
                        let snapshot = cell.load();
                        let (count, sum) = *snapshot;
                        assert!(count >= last, "snapshots go forward");
                        assert!(sum >= count, "a consistent pair: every item is at least 1");
                        last = count;
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let inbox = Arc::clone(&inbox);
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        inbox.push(p * PER_PRODUCER + i + 1);
                    }
                })
            })
            .collect();

        let total = PRODUCERS * PER_PRODUCER;
        let (mut count, mut sum) = (0, 0);
        while count < total {
            match inbox.pop() {
                Some(item) => {
                    count += 1;
                    sum += item;
                    if count % 1000 == 0 {
                        cell.publish((count, sum));
                    }
                }
                None => std::thread::yield_now(),
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().unwrap();
        }
        assert!(inbox.is_empty());
        assert_eq!(
            sum,
            total * (total + 1) / 2,
            "every item arrived exactly once"
        );
        assert_eq!(*cell.load(), (total, sum));
    }
}
