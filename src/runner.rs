//! The ACD's single writer: one task owns the [`Acd`], takes inputs from a lock-free inbox,
//! hands outputs to the call flow and publishes snapshots for readers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amico_core::handoff::{Inbox, SnapshotCell};
use amico_core::{Acd, AcdConfig, AcdError, AcdSnapshot, Input, Output, Timestamp};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Maps the monotonic clock onto the core's [`Timestamp`]s: zero is the last UTC midnight
/// before start, so statistics intervals fall on the quarter hours.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: std::time::Instant,
    origin_micros: u64,
    /// The UTC midnight the timestamps count from, in microseconds since the Unix epoch.
    midnight_us: i64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let since_midnight = since_epoch.as_micros() as u64 % (86_400 * 1_000_000);
        Clock {
            origin: std::time::Instant::now(),
            origin_micros: since_midnight,
            midnight_us: (since_epoch.as_micros() as u64 - since_midnight) as i64,
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.origin_micros + self.origin.elapsed().as_micros() as u64)
    }

    /// A core timestamp in UTC microseconds since the Unix epoch.
    pub(crate) fn utc_micros(&self, at: Timestamp) -> i64 {
        self.midnight_us + at.as_micros() as i64
    }

    /// The monotonic instant of a core timestamp (for sleeping until a deadline).
    fn instant(&self, at: Timestamp) -> tokio::time::Instant {
        let offset = at.as_micros().saturating_sub(self.origin_micros);
        tokio::time::Instant::from_std(self.origin + Duration::from_micros(offset))
    }
}

/// Why the ACD did not take an input.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// The ACD refused it, and says why.
    #[error(transparent)]
    Acd(AcdError),
    /// The server is stopping.
    #[error("the server is shutting down")]
    Stopped,
}

/// Where the answer to an input goes, when someone waits for it.
type Reply = oneshot::Sender<Result<(), AcdError>>;

/// What producers hold: push an input, read the latest snapshot.
#[derive(Clone)]
pub(crate) struct AcdHandle {
    inbox: Arc<Inbox<(Input, Option<Reply>)>>,
    wake: Arc<Notify>,
    snapshots: Arc<SnapshotCell<AcdSnapshot>>,
}

impl AcdHandle {
    /// Hands an input to the writer; never blocks.
    pub(crate) fn send(&self, input: Input) {
        self.inbox.push((input, None));
        self.wake.notify_one();
    }

    /// Hands an input to the writer and waits for its verdict. Once it is `Ok`, the next
    /// [`AcdHandle::snapshot`] shows its effect.
    pub(crate) async fn request(&self, input: Input) -> Result<(), Refused> {
        let (reply, verdict) = oneshot::channel();
        self.inbox.push((input, Some(reply)));
        self.wake.notify_one();
        // The writer only drops a reply when it stops: the server is shutting down.
        verdict
            .await
            .map_err(|_| Refused::Stopped)?
            .map_err(Refused::Acd)
    }

    /// The latest published snapshot.
    pub(crate) fn snapshot(&self) -> Arc<AcdSnapshot> {
        self.snapshots.load()
    }
}

/// Starts the writer task. Each output, with the ACD's time, goes to `outputs` in order,
/// called in the writer's own task (it must not wait).
pub(crate) fn start(
    config: AcdConfig,
    clock: Clock,
    mut outputs: impl FnMut(Timestamp, Output) + Send + 'static,
    shutdown: CancellationToken,
) -> anyhow::Result<(AcdHandle, tokio::task::JoinHandle<()>)> {
    let mut acd = Acd::new(config, clock.now())?;
    let handle = AcdHandle {
        inbox: Arc::new(Inbox::new()),
        wake: Arc::new(Notify::new()),
        snapshots: Arc::new(SnapshotCell::new(acd.snapshot())),
    };
    let writer = handle.clone();
    let task = tokio::spawn(async move {
        // Readers see a fresh picture at most this often while inputs keep coming.
        const PUBLISH_EVERY: Duration = Duration::from_millis(100);
        let mut published = tokio::time::Instant::now();
        let mut dirty = false;
        let mut verdicts: Vec<(Reply, Result<(), AcdError>)> = Vec::new();
        loop {
            let deadline = acd.poll_timeout().map(|at| clock.instant(at));
            let publish_at = dirty.then_some(published + PUBLISH_EVERY);
            let wake_at = match (deadline, publish_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = writer.wake.notified() => {}
                _ = sleep_until(wake_at) => {}
            }
            let now = clock.now();
            if acd.poll_timeout().is_some_and(|at| at <= now) {
                let _ = handle_one(&mut acd, now, Input::Timeout, &mut outputs);
                dirty = true;
            }
            while let Some((input, reply)) = writer.inbox.pop() {
                let verdict = handle_one(&mut acd, now, input, &mut outputs);
                if let Some(reply) = reply {
                    verdicts.push((reply, verdict));
                }
                dirty = true;
            }
            // Someone waits on an answer: it sees its effect in the very next snapshot, so
            // the snapshot is published before the answer is sent (the waiter may run on
            // another thread the moment it has its answer).
            if dirty && (!verdicts.is_empty() || published.elapsed() >= PUBLISH_EVERY) {
                writer.snapshots.publish(acd.snapshot());
                published = tokio::time::Instant::now();
                dirty = false;
            }
            for (reply, verdict) in verdicts.drain(..) {
                let _ = reply.send(verdict);
            }
        }
    });
    Ok((handle, task))
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn handle_one(
    acd: &mut Acd,
    now: Timestamp,
    input: Input,
    outputs: &mut impl FnMut(Timestamp, Output),
) -> Result<(), AcdError> {
    // The clock is read once per batch; a later input can never be earlier.
    let now = now.max(acd.now());
    let verdict = acd.handle_input(now, input.clone());
    if let Err(error) = &verdict {
        // A refused input is an edge race (a late answer after the ring timeout, a position
        // announcement asked for just as an agent was rung) or a bug upstream; the ACD is
        // unchanged either way.
        match (error, &input) {
            (
                amico_core::AcdError::NoSuchOffer { .. } | amico_core::AcdError::UnknownCall(_),
                _,
            )
            | (amico_core::AcdError::CallNotWaiting(_), Input::EstimateWait { .. }) => {
                debug!(%error, ?input, "input refused")
            }
            _ => warn!(%error, ?input, "input refused"),
        }
    }
    // Each output with the time it happened (a timer's deadline, even when the timeout
    // was handled late), so that stored events replay into exactly the ACD's figures.
    while let Some((at, output)) = acd.poll_output_at() {
        outputs(at, output);
    }
    verdict
}
