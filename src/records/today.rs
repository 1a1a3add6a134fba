//! "Today" for the API and the wallboard: each queue's figures since the last midnight in
//! `[reports] time_zone`.
//!
//! The live ACD counts since it started, which is right for Prometheus counters but not
//! for a supervisor's day: a server up for a week would show the week, and one restarted
//! at noon would forget the morning. So the day is the queue log's: at start, and at each
//! midnight, the records since midnight are replayed from the store through the core's
//! [`amico_core::tally::Tally`] ([`crate::records::history::Replay`], as `amico report` does), then
//! every committed record is folded in as it comes. Today's figures are therefore exactly
//! what `amico report --from TODAY` prints, by the same formulas.
//!
//! Records come from the writer's broadcast after their commit, by sequence number: one
//! that the broadcast dropped (a lagging reader) is read back from the store, so the day
//! has no gap. The view is republished at most every [`PUBLISH_GAP`], and never later than
//! that after a record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use amico_core::Thresholds;
use amico_core::metrics::QueueSummary;
use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::records::history::Replay;
use crate::records::log::Feed;

/// Longest a record waits before today's view shows it.
const PUBLISH_GAP: Duration = Duration::from_millis(100);

/// Records read from the store at a time when catching up.
const PAGE: u32 = 2048;

/// Each queue's figures since midnight.
#[derive(Debug, Default)]
pub(crate) struct DayView {
    /// The midnight the day began, UTC microseconds since the Unix epoch.
    pub(crate) since_us: i64,
    /// By queue name; a queue with nothing today is absent.
    pub(crate) queues: HashMap<String, QueueSummary>,
}

/// Where the API reads today's figures.
#[derive(Clone, Debug)]
pub(crate) struct Today {
    view: Arc<ArcSwap<DayView>>,
}

impl Today {
    /// The latest view.
    pub(crate) fn load(&self) -> Arc<DayView> {
        self.view.load_full()
    }
}

/// Starts following the queue log. The first view is ready once the day so far has been
/// replayed; until then it is empty.
pub(crate) fn start(
    feed: Feed,
    zone: jiff::tz::TimeZone,
    thresholds: Arc<ArcSwap<HashMap<String, Thresholds>>>,
    shutdown: CancellationToken,
) -> Today {
    let today = Today {
        view: Arc::new(ArcSwap::from_pointee(DayView::default())),
    };
    let view = today.view.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = follow(feed, zone, thresholds, view) => {}
            _ = shutdown.cancelled() => {}
        }
    });
    today
}

/// One day after another, for ever.
async fn follow(
    feed: Feed,
    zone: jiff::tz::TimeZone,
    thresholds: Arc<ArcSwap<HashMap<String, Thresholds>>>,
    view: Arc<ArcSwap<DayView>>,
) {
    // Subscribed before the replay: what is committed meanwhile comes live, and sequence
    // numbers drop what the replay already had.
    let mut live = feed.records.subscribe();
    let mut previous = None;
    loop {
        let (midnight_us, next_us) = match day_bounds(&zone) {
            Ok(bounds) => bounds,
            Err(error) => {
                warn!(%error, "today: the time zone gave no midnight; today's figures stop");
                return;
            }
        };
        if previous == Some(midnight_us) {
            // Woken by the monotonic clock a moment before the wall clock's midnight.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut day = match replay(&feed, &zone, midnight_us, &thresholds).await {
            Ok(day) => day,
            Err(error) => {
                warn!(
                    error = format!("{error:#}"),
                    "today: the store could not be read; retrying"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        previous = Some(midnight_us);
        view.store(Arc::new(day.view(midnight_us)));
        let midnight = Instant::now()
            + Duration::from_micros(
                (next_us - jiff::Timestamp::now().as_microsecond()).max(0) as u64
            );
        let mut published = Instant::now();
        let mut dirty = false;
        loop {
            let publish_at = published + PUBLISH_GAP;
            tokio::select! {
                _ = tokio::time::sleep_until(midnight) => break,
                _ = tokio::time::sleep_until(publish_at), if dirty => {}
                record = live.recv() => match record {
                    Ok(record) if record.seq <= day.last => continue,
                    Ok(record) => {
                        if record.seq > day.last + 1
                            && let Err(error) = day.catch_up(&feed).await
                        {
                            warn!(error = format!("{error:#}"), "today: the store could not be read");
                        }
                        if record.seq == day.last + 1 {
                            day.record(&record);
                        }
                        dirty = true;
                    }
                    Err(RecvError::Lagged(_)) => {
                        if let Err(error) = day.catch_up(&feed).await {
                            warn!(error = format!("{error:#}"), "today: the store could not be read");
                        }
                        dirty = true;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
            if dirty && published.elapsed() >= PUBLISH_GAP {
                view.store(Arc::new(day.view(midnight_us)));
                published = Instant::now();
                dirty = false;
            }
        }
    }
}

/// This day's midnight and the next, in UTC microseconds.
fn day_bounds(zone: &jiff::tz::TimeZone) -> anyhow::Result<(i64, i64)> {
    let now = jiff::Timestamp::now().to_zoned_datetime(zone.clone());
    let midnight = now.start_of_day()?;
    let next = now.tomorrow()?.start_of_day()?;
    Ok((
        midnight.timestamp().as_microsecond(),
        next.timestamp().as_microsecond(),
    ))
}

/// A day being counted, and the last record in it.
struct Day {
    replay: Replay,
    /// The highest sequence number folded in (or known to be before the day).
    last: u64,
}

/// The day so far, from the store.
async fn replay(
    feed: &Feed,
    zone: &jiff::tz::TimeZone,
    midnight_us: i64,
    thresholds: &ArcSwap<HashMap<String, Thresholds>>,
) -> anyhow::Result<Day> {
    // Everything up to here is in the store; what is committed after may be too.
    let committed = *feed.committed.borrow();
    let mut replay = Replay::new(
        zone.clone(),
        midnight_us,
        Duration::from_secs(86_400),
        HashMap::clone(&thresholds.load()),
    );
    replay
        .agents_at_start(&feed.store)
        .await
        .context("agents at midnight")?;
    let read = replay
        .records_between(&feed.store, midnight_us, i64::MAX)
        .await
        .context("today's records")?;
    Ok(Day {
        replay,
        last: committed.max(read),
    })
}

impl Day {
    fn record(&mut self, record: &crate::records::store::Record) {
        self.replay.record(record);
        self.last = record.seq;
    }

    /// Reads what the broadcast dropped back from the store.
    async fn catch_up(&mut self, feed: &Feed) -> anyhow::Result<()> {
        loop {
            let page = feed.store.records_after(self.last, PAGE).await?;
            let Some(last) = page.last().map(|r| r.seq) else {
                return Ok(());
            };
            for record in &page {
                self.replay.record(record);
            }
            self.last = last;
        }
    }

    fn view(&self, since_us: i64) -> DayView {
        DayView {
            since_us,
            queues: self.replay.queue_summaries(),
        }
    }
}
