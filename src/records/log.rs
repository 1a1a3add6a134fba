//! The queue log's path: producers (the ACD's outputs, the call flow's legs) hand
//! [`Entry`]s to one writer task, which numbers them, commits them to the [`Store`], and
//! only then publishes them (the event stream, the committed sequence number). So a client
//! that saw an event can always find it in the database, after any crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amico_core::{Command, Event, Output, Timestamp};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::records::store::{Entry, Record, Store};

/// Most entries written in one transaction. Batches are this large only when entries wait
/// (a steady rate fills one in `GATHER`); then a commit's fixed costs (the transaction,
/// the fsync, a round trip to the database's thread a statement) are shared by more
/// records: `amico bench-store --calls 300000` commits 100,000 records/s in batches of 512
/// and 121,000–128,000 in batches of 2,048 or 8,192 (BENCHMARKS.md).
const BATCH: usize = 2048;

/// How long the writer gathers entries after the first before it commits them, unless a
/// full batch is already waiting. A commit is a transaction and an fsync whatever its
/// size, and a call makes a dozen entries or more spread over its life: without a wait
/// most commits carried four or five. The event
/// stream hears of a record this much later at most; nothing in a call waits for it.
const GATHER: Duration = Duration::from_millis(5);

/// How the store is doing, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct StoreCounters {
    /// Entries handed over since start.
    pub(crate) handed: AtomicU64,
    /// Entries handed over and not yet committed.
    pub(crate) pending: AtomicU64,
    /// The highest committed sequence number.
    pub(crate) committed_seq: AtomicU64,
    /// Transactions committed.
    pub(crate) batches: AtomicU64,
    /// Failed writes (each retried; see the log).
    pub(crate) errors: AtomicU64,
    /// Entries that could not be stored at all (logged in full at error level).
    pub(crate) dropped: AtomicU64,
}

/// Names of queues and agents by id, for entries that read well without the config.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    pub(crate) queues: Vec<String>,
    pub(crate) agents: Vec<String>,
}

impl Names {
    fn queue(&self, id: u64) -> Option<String> {
        self.queues.get(id as usize).cloned()
    }

    fn agent(&self, id: u64) -> Option<String> {
        self.agents.get(id as usize).cloned()
    }
}

/// What producers hold: hand an entry to the writer; never blocks.
#[derive(Clone, Debug)]
pub(crate) struct Events {
    entries: mpsc::UnboundedSender<Entry>,
    counters: Arc<StoreCounters>,
    /// Replaced when the ACD reports a queue or agent configured (a reload).
    names: Arc<arc_swap::ArcSwap<Names>>,
    /// Maps the ACD's timestamps onto UTC.
    clock: crate::runner::Clock,
}

/// What readers hold: committed records as they come, and the committed sequence number.
#[derive(Clone, Debug)]
pub(crate) struct Feed {
    pub(crate) records: broadcast::Sender<Arc<Record>>,
    pub(crate) committed: watch::Receiver<u64>,
    pub(crate) store: Store,
}

/// UTC microseconds since the Unix epoch, now.
pub(crate) fn utc_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

impl Events {
    /// Hands an entry to the writer.
    pub(crate) fn record(&self, entry: Entry) {
        self.counters.handed.fetch_add(1, Ordering::Relaxed);
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        if self.entries.send(entry).is_err() {
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A call-flow fact about `call`, happening now: `kind` and its fields.
    pub(crate) fn call_fact(&self, call: u64, kind: &str, queue: Option<&str>, fields: Value) {
        let mut body = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        body.insert("event".into(), kind.into());
        body.insert("call".into(), call.into());
        if let Some(queue) = queue {
            body.insert("queue".into(), queue.into());
        }
        self.record(Entry {
            at_us: utc_now_us(),
            kind: kind.to_owned(),
            call: Some(call),
            queue: queue.map(str::to_owned),
            agent: body.get("agent").and_then(Value::as_str).map(str::to_owned),
            body: Value::Object(body),
        });
    }

    /// A queue or agent added or renamed by a reload: its id now has this name.
    fn learn_name(&self, event: &Event) {
        if !matches!(
            event,
            Event::QueueConfigured { .. } | Event::AgentConfigured { .. }
        ) {
            return;
        }
        let mut names = Names::clone(&self.names.load());
        let (list, id, name) = match event {
            Event::QueueConfigured { queue, name, .. } => (&mut names.queues, queue.index(), name),
            Event::AgentConfigured { agent, name, .. } => (&mut names.agents, agent.index(), name),
            _ => return,
        };
        if list.get(id) == Some(name) {
            return;
        }
        if list.len() <= id {
            list.resize(id + 1, String::new());
        }
        list[id] = name.clone();
        self.names.store(Arc::new(names));
    }

    /// Records what the ACD said at `at`, when it is worth keeping.
    pub(crate) fn acd_output(&self, at: Timestamp, output: &Output) {
        let at_us = self.clock.utc_micros(at);
        if let Output::Event(event) = output {
            self.learn_name(event);
        }
        let names = self.names.load();
        let entry = match output {
            Output::Event(event) => acd_entry(at_us, event, &names, &self.clock),
            Output::Command(Command::Ring { call, agent, queue }) => {
                let (queue, agent) = (names.queue(queue.0.into()), names.agent(agent.0.into()));
                Some(Entry {
                    at_us,
                    kind: "call_offered".into(),
                    call: Some(call.0),
                    body: json!({ "event": "call_offered", "call": call.0, "queue": queue, "agent": agent }),
                    queue,
                    agent,
                })
            }
            Output::Command(_) => None,
        };
        if let Some(entry) = entry {
            self.record(entry);
        }
    }
}

/// An ACD event as an entry: ids become names, durations seconds, timestamps UTC
/// microseconds. Wait estimates asked for announcements and interval ticks are not kept
/// (the resolved predictions and the log itself hold what they would say).
pub(crate) fn acd_entry(
    at_us: i64,
    event: &Event,
    names: &Names,
    clock: &crate::runner::Clock,
) -> Option<Entry> {
    if matches!(
        event,
        Event::WaitEstimated { .. } | Event::IntervalClosed { .. }
    ) {
        return None;
    }
    let Value::Object(mut body) = serde_json::to_value(event).ok()? else {
        return None;
    };
    let kind = body.get("event")?.as_str()?.to_owned();
    for value in body.values_mut() {
        seconds(value);
    }
    let queue = body
        .get("queue")
        .and_then(Value::as_u64)
        .and_then(|q| names.queue(q));
    let agent = body
        .get("agent")
        .and_then(Value::as_u64)
        .and_then(|a| names.agent(a));
    if let Some(queue) = &queue {
        body.insert("queue".into(), queue.as_str().into());
    }
    if let Some(agent) = &agent {
        body.insert("agent".into(), agent.as_str().into());
    }
    // Overflow into another queue: {"to": {"queue": 1}} names it; a transfer's "to" is
    // the queue itself.
    if let Some(to) = body.get_mut("to") {
        let id = match to.get_mut("queue") {
            Some(inner) => inner,
            None => to,
        };
        if let Some(name) = id.as_u64().and_then(|q| names.queue(q)) {
            *id = name.into();
        }
    }
    // Timestamps as UTC microseconds.
    for key in ["made_at", "until"] {
        if let Some(at) = body.get_mut(key)
            && let Some(micros) = at.as_u64()
        {
            *at = clock.utc_micros(Timestamp::from_micros(micros)).into();
        }
    }
    let call = body.get("call").and_then(Value::as_u64);
    Some(Entry {
        at_us,
        kind,
        call,
        queue,
        agent,
        body: Value::Object(body),
    })
}

/// serde's `Duration` (`{"secs": 3, "nanos": 5}`) as seconds, in place.
fn seconds(value: &mut Value) {
    if let Value::Object(map) = value
        && map.len() == 2
        && let (Some(secs), Some(nanos)) = (
            map.get("secs").and_then(Value::as_u64),
            map.get("nanos").and_then(Value::as_u64),
        )
    {
        *value = Duration::new(secs, nanos as u32).as_secs_f64().into();
    }
}

/// Starts the writer: entries are numbered from `first_seq`, committed in batches, then
/// published. On `shutdown` it writes what was already handed over and stops.
pub(crate) fn start(
    store: Store,
    first_seq: u64,
    names: Names,
    clock: crate::runner::Clock,
    counters: Arc<StoreCounters>,
    shutdown: CancellationToken,
) -> (Events, Feed, tokio::task::JoinHandle<()>) {
    let (entries, mut received) = mpsc::unbounded_channel::<Entry>();
    let (records, _) = broadcast::channel(4096);
    let (committed_tx, committed) = watch::channel(first_seq.saturating_sub(1));
    counters
        .committed_seq
        .store(first_seq.saturating_sub(1), Ordering::Relaxed);
    let events = Events {
        entries,
        counters: counters.clone(),
        names: Arc::new(arc_swap::ArcSwap::from_pointee(names)),
        clock,
    };
    let feed = Feed {
        records: records.clone(),
        committed,
        store: store.clone(),
    };
    let task = tokio::spawn(async move {
        let mut next = first_seq;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                entry = received.recv() => entry,
                _ = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            batch.push(first);
            take_waiting(&mut received, &mut batch);
            // A full batch goes at once: under load the wait would only slow the writer.
            if batch.len() < BATCH {
                tokio::select! {
                    _ = tokio::time::sleep(GATHER) => {}
                    _ = shutdown.cancelled() => {}
                }
                take_waiting(&mut received, &mut batch);
            }
            let written = commit(&store, &mut next, &mut batch, &counters).await;
            publish(written, &records, &committed_tx, &counters);
        }
        // Shutting down: what was handed over is still written, and so is what calls
        // ending now hand over, until the producers fall quiet.
        const QUIET: Duration = Duration::from_millis(250);
        while let Ok(Some(entry)) = tokio::time::timeout(QUIET, received.recv()).await {
            batch.push(entry);
            if batch.len() >= BATCH {
                let written = commit(&store, &mut next, &mut batch, &counters).await;
                publish(written, &records, &committed_tx, &counters);
            }
        }
        if !batch.is_empty() {
            let written = commit(&store, &mut next, &mut batch, &counters).await;
            publish(written, &records, &committed_tx, &counters);
        }
        store.close().await;
    });
    (events, feed, task)
}

/// Moves the entries already handed over into `batch`, up to [`BATCH`].
fn take_waiting(received: &mut mpsc::UnboundedReceiver<Entry>, batch: &mut Vec<Entry>) {
    while batch.len() < BATCH {
        match received.try_recv() {
            Ok(entry) => batch.push(entry),
            Err(_) => break,
        }
    }
}

/// Numbers and writes a batch, retrying while the database is unreachable. A batch that
/// the database refuses is written one record at a time, and a record it still refuses
/// is logged in full (it is not silently lost) and its number reused.
async fn commit(
    store: &Store,
    next: &mut u64,
    batch: &mut Vec<Entry>,
    counters: &StoreCounters,
) -> Vec<Record> {
    let entries = std::mem::take(batch);
    let count = entries.len() as u64;
    let records: Vec<Record> = entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| Record {
            seq: *next + i as u64,
            entry,
        })
        .collect();
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        match store.write(&records).await {
            Ok(()) => {
                *next += count;
                counters.pending.fetch_sub(count, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                return records;
            }
            Err(error) if is_refusal(&error) || attempt >= 50 => {
                warn!(%error, records = count, "the store refused a batch; writing one at a time");
                counters.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(error) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                warn!(%error, attempt, "the store is unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    let mut written = Vec::with_capacity(records.len());
    for mut record in records {
        record.seq = *next;
        match store.write(std::slice::from_ref(&record)).await {
            Ok(()) => {
                *next += 1;
                written.push(record);
            }
            Err(error) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                let entry = serde_json::to_string(&record.entry).unwrap_or_default();
                error!(%error, %entry, "a queue-log entry could not be stored");
            }
        }
        counters.pending.fetch_sub(1, Ordering::Relaxed);
    }
    written
}

/// Whether the database refused the data itself (a retry cannot help), as opposed to
/// being unreachable.
fn is_refusal(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Database(_) | sqlx::Error::Encode(_) | sqlx::Error::TypeNotFound { .. }
    )
}

fn publish(
    written: Vec<Record>,
    records: &broadcast::Sender<Arc<Record>>,
    committed: &watch::Sender<u64>,
    counters: &StoreCounters,
) {
    let Some(last) = written.last().map(|r| r.seq) else {
        return;
    };
    counters.committed_seq.store(last, Ordering::Relaxed);
    committed.send_replace(last);
    for record in written {
        // No subscriber is fine: the records are in the store.
        let _ = records.send(Arc::new(record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amico_core::{AgentId, CallId, QueueId};

    fn names() -> Names {
        Names {
            queues: vec!["comune".into(), "tributi".into()],
            agents: vec!["anna".into()],
        }
    }

    #[test]
    fn acd_events_name_their_queue_and_agent_and_give_seconds() {
        let clock = crate::runner::Clock::new();
        let event = Event::CallAbandoned {
            call: CallId(7),
            queue: QueueId(1),
            wait: Duration::from_millis(47_500),
            position: 2,
        };
        let entry = acd_entry(1_000, &event, &names(), &clock).expect("kept");
        assert_eq!(entry.kind, "call_abandoned");
        assert_eq!(entry.call, Some(7));
        assert_eq!(entry.queue.as_deref(), Some("tributi"));
        assert_eq!(
            entry.body,
            json!({"event": "call_abandoned", "call": 7, "queue": "tributi", "wait": 47.5, "position": 2})
        );
    }

    #[test]
    fn an_overflow_names_the_queue_it_went_to() {
        let clock = crate::runner::Clock::new();
        let event = Event::CallOverflowed {
            call: CallId(1),
            queue: QueueId(0),
            reason: amico_core::OverflowReason::MaxWait,
            to: amico_core::OverflowedTo::Queue(QueueId(1)),
            at_entry: false,
        };
        let entry = acd_entry(0, &event, &names(), &clock).expect("kept");
        assert_eq!(entry.body["to"], json!({"queue": "tributi"}));
        assert_eq!(entry.body["reason"], "max_wait");
    }

    #[test]
    fn estimates_for_announcements_are_not_kept() {
        let clock = crate::runner::Clock::new();
        let event = Event::WaitEstimated {
            call: CallId(1),
            queue: QueueId(0),
            position: 1,
            estimated_wait: None,
        };
        assert_eq!(acd_entry(0, &event, &names(), &clock), None);
        let agent = Event::AgentStateChanged {
            agent: AgentId(0),
            state: amico_core::AgentStatus::Paused,
            reason: Some("lunch".into()),
        };
        let entry = acd_entry(0, &agent, &names(), &clock).expect("kept");
        assert_eq!(entry.agent.as_deref(), Some("anna"));
        assert_eq!(entry.body["state"], "paused");
    }
}
