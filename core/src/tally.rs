//! The ACD's statistics, rebuilt from its events.
//!
//! Reports are computed from a stored queue log: the ACD's [`Event`]s, each with the
//! [`Timestamp`] it happened at ([`crate::Acd::poll_output_at`]). A [`Tally`] folds them,
//! in order, into the figures the live ACD keeps, with the same code: queue outcomes are
//! counted by [`QueueStats::record`], agent time by [`AgentTime::add`], and intervals fall
//! where [`metrics::interval_end`] puts them. So a report gives exactly the ACD's
//! [`QueueStats`], [`crate::metrics::Rates`], [`IntervalReport`]s and [`AgentTime`]; the
//! formulas are in the [`crate::metrics`] module's table.
//!
//! | event | counts |
//! |---|---|
//! | [`Event::CallQueued`] | offered |
//! | [`Event::CallOverflowed`] | overflowed; offered too when `at_entry` |
//! | [`Event::CallConnected`] | answered, wait and ring; the agent's calls answered |
//! | [`Event::CallAbandoned`] | abandoned (short, after the threshold, within T), time to abandon |
//! | [`Event::OfferFailed`] | offers failed; the agent's, by reason |
//! | [`Event::CallCompleted`] | completed and talk, of the queue and of the agent |
//! | [`Event::WrapUpEnded`] | wrap-up, of the queue and of the agent |
//! | [`Event::WaitPredictionResolved`], answered | predictions and those within ±20 % |
//! | [`Event::CallbackRequested`], [`Event::CallbackUnanswered`] | callbacks requested, unreached |
//! | [`Event::SurveyRecorded`] | ratings, of the queue and of the agent |
//! | [`Event::AgentStateChanged`] | the agent's time in its previous state |
//! | [`Event::CallTransferred`] | transferred, in the queue left (the [`Event::CallQueued`] that follows counts offered in the other) |
//! | [`Event::CallRemoved`] | removed (a supervisor ended the call before an answer) |
//! | [`Event::QueueConfigured`] | nothing, but its thresholds classify the queue's waits from then on |
//!
//! Other events count nothing. [`Event::IntervalClosed`] is not needed: intervals close by
//! the timestamps of the events and a last [`Tally::finish`].
//!
//! # What it keeps, and what it cannot know
//! Every event it counts names its queue and agent and carries its durations, so the
//! tally keeps no state per call: an event about a call it never saw queued (a log that
//! starts mid-call) counts like any other. It keeps each agent's state and since when.
//! An agent counts as logged out until its first [`Event::AgentStateChanged`], as in the
//! ACD, where every agent starts logged out: a log that starts while agents work misses
//! their time until their next change. An event earlier than the last one recorded is
//! left out (see [`Tally::ignored`]).
//!
//! Two things are not in the events and must be told: when the ACD restarted (a new ACD
//! starts a new interval, every agent logged out, and its queues with the thresholds of
//! its configuration rather than those the last [`Event::QueueConfigured`]s set:
//! [`Tally::restart`], [`Tally::restart_with_config`]), and when the log ends
//! ([`Tally::finish`]). Events must carry the time
//! [`crate::Acd::poll_output_at`] gives them; the ACD's time after the input that brought
//! them out is the same only when every [`crate::Input::Timeout`] came at its deadline.
//!
//! ```
//! use std::time::Duration;
//! use amico_core::tally::Tally;
//! use amico_core::{Acd, AcdConfig, AgentConfig, AgentId, CallId, Input, Output};
//! use amico_core::{QueueConfig, QueueId, Timestamp};
//!
//! let config = AcdConfig {
//!     queues: vec![QueueConfig::new("sales", &[])],
//!     agents: vec![AgentConfig::new("ada", &[])],
//!     ..AcdConfig::default()
//! };
//! let mut acd = Acd::new(config.clone(), Timestamp::ZERO)?;
//! let mut tally = Tally::for_config(&config, acd.started());
//! let (call, agent, queue) = (CallId(1), AgentId(0), QueueId(0));
//! let inputs = [
//!     (0, Input::Login { agent }),
//!     (10, Input::CallArrived { call, queue, priority: 0 }),
//!     (14, Input::OfferAnswered { call, agent }),
//!     (200, Input::Hangup { call }),
//! ];
//! for (secs, input) in inputs {
//!     acd.handle_input(Timestamp::from_secs(secs), input)?;
//!     while let Some((at, output)) = acd.poll_output_at() {
//!         if let Output::Event(event) = output {
//!             tally.record(at, &event);
//!         }
//!     }
//! }
//! tally.finish(acd.now());
//! let stats = tally.queue(queue).unwrap();
//! assert_eq!(stats.counters, acd.queue_stats(queue).unwrap().counters);
//! assert_eq!(stats.rates().asa, Some(Duration::from_secs(4)));
//! assert_eq!(tally.agent_time(), acd.agent_time());
//! # Ok::<(), amico_core::AcdError>(())
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{AcdConfig, Thresholds};
use crate::ids::{AgentId, QueueId};
use crate::metrics::{
    self, AgentFigures, AgentIntervalReport, AgentReport, AgentTime, ByMillisecond, IntervalReport,
    Outcome, QueueStats,
};
use crate::output::{AgentStatus, Event, WaitOutcome};
use crate::time::Timestamp;

/// Queue and agent statistics folded from a sequence of timestamped events.
#[derive(Clone, Debug)]
pub struct Tally {
    length: Duration,
    origin: Timestamp,
    /// The open interval: from the first event (or the given start), until its end.
    open: Option<(Timestamp, Timestamp)>,
    /// The time of the last event recorded.
    last: Timestamp,
    queues: BTreeMap<QueueId, QueueTally>,
    agents: BTreeMap<AgentId, AgentTally>,
    agent_time: Vec<AgentIntervalReport>,
    ignored: u64,
}

/// One queue: its thresholds, and its statistics since the start and of the open interval.
#[derive(Clone, Debug, Default)]
struct QueueTally {
    thresholds: Thresholds,
    total: QueueStats<ByMillisecond>,
    interval: QueueStats<ByMillisecond>,
    closed: Vec<IntervalReport>,
}

impl QueueTally {
    fn record(&mut self, outcome: Outcome) {
        self.total.record(outcome, &self.thresholds);
        self.interval.record(outcome, &self.thresholds);
    }
}

/// One agent: its state, since when its time is counted, and its figures since the start
/// and of the open interval.
#[derive(Clone, Debug)]
struct AgentTally {
    status: AgentStatus,
    accounted: Timestamp,
    total: AgentFigures,
    interval: AgentFigures,
    closed: Vec<AgentReport>,
}

impl AgentTally {
    fn new(now: Timestamp) -> Self {
        AgentTally {
            status: AgentStatus::LoggedOut,
            accounted: now,
            total: AgentFigures::default(),
            interval: AgentFigures::default(),
            closed: Vec::new(),
        }
    }

    fn record(&mut self, count: impl Fn(&mut AgentFigures)) {
        count(&mut self.total);
        count(&mut self.interval);
    }

    /// Adds the time in the current state up to `now`.
    fn account(&mut self, now: Timestamp) {
        let elapsed = now.saturating_since(self.accounted);
        self.accounted = now;
        self.total.time.add(self.status, elapsed);
        self.interval.time.add(self.status, elapsed);
    }
}

impl Tally {
    /// An empty tally with statistics intervals of `interval`, aligned on multiples of it
    /// from [`Timestamp::ZERO`]; the first interval starts at the first event. Every queue
    /// has the default [`Thresholds`] until [`Tally::set_thresholds`]. A zero interval is
    /// taken as one microsecond.
    pub fn new(interval: Duration) -> Self {
        Tally {
            length: interval,
            origin: Timestamp::ZERO,
            open: None,
            last: Timestamp::ZERO,
            queues: BTreeMap::new(),
            agents: BTreeMap::new(),
            agent_time: Vec::new(),
            ignored: 0,
        }
    }

    /// A tally that counts like an ACD running `config` since `started`: the same
    /// intervals (length and origin, the first from `started`) and each queue's
    /// thresholds. Every configured queue is listed, even without events.
    pub fn for_config(config: &AcdConfig, started: Timestamp) -> Self {
        let statistics = &config.statistics;
        let mut tally = Tally::new(statistics.interval)
            .with_origin(statistics.interval_origin)
            .starting_at(started);
        for (index, queue) in config.queues.iter().enumerate() {
            tally.set_thresholds(QueueId(index as u32), queue.thresholds);
        }
        tally
    }

    /// Aligns intervals on `origin + k × interval`, as
    /// [`crate::StatisticsConfig::interval_origin`] does. Set it before recording.
    pub fn with_origin(mut self, origin: Timestamp) -> Self {
        self.origin = origin;
        if let Some((start, _)) = self.open {
            self.open = Some((start, metrics::interval_end(start, self.length, origin)));
        }
        self
    }

    /// Starts the first interval at `start` (when the log, or the ACD, started) rather than
    /// at the first event; events before it are ignored. No effect once something was
    /// recorded.
    pub fn starting_at(mut self, start: Timestamp) -> Self {
        if self.open.is_none() {
            self.open = Some((
                start,
                metrics::interval_end(start, self.length, self.origin),
            ));
            self.last = start;
        }
        self
    }

    /// Sets the thresholds that classify the queue's waits from now on (service level,
    /// short abandon, abandon threshold). An [`Event::QueueConfigured`] does the same.
    pub fn set_thresholds(&mut self, queue: QueueId, thresholds: Thresholds) {
        self.queues.entry(queue).or_default().thresholds = thresholds;
    }

    /// Counts one event that happened at `at`; see the module documentation for what
    /// each event counts. First closes every interval that ended by `at`. An event earlier
    /// than the last one recorded is ignored and counted in [`Tally::ignored`].
    pub fn record(&mut self, at: Timestamp, event: &Event) {
        if !self.advance(at) {
            self.ignored += 1;
            return;
        }
        match *event {
            Event::CallQueued { queue, .. } => self.queue_mut(queue).record(Outcome::Offered),
            Event::CallOverflowed {
                queue, at_entry, ..
            } => {
                let queue = self.queue_mut(queue);
                if at_entry {
                    queue.record(Outcome::Offered);
                }
                queue.record(Outcome::Overflowed);
            }
            Event::CallConnected {
                agent,
                queue,
                wait,
                ring,
                ..
            } => {
                self.queue_mut(queue)
                    .record(Outcome::Answered { wait, ring });
                self.agent_mut(agent, at).record(|f| f.calls_answered += 1);
            }
            Event::CallAbandoned { queue, wait, .. } => {
                self.queue_mut(queue).record(Outcome::Abandoned { wait });
            }
            Event::OfferFailed {
                agent,
                queue,
                reason,
                ..
            } => {
                self.queue_mut(queue).record(Outcome::OfferFailed);
                self.agent_mut(agent, at)
                    .record(|f| f.offers_failed.record(reason));
            }
            Event::CallCompleted {
                agent, queue, talk, ..
            } => {
                self.queue_mut(queue).record(Outcome::Completed { talk });
                self.agent_mut(agent, at).record(|f| f.talk.record(talk));
            }
            Event::WrapUpEnded {
                agent,
                queue,
                wrap_up,
                ..
            } => {
                self.queue_mut(queue).record(Outcome::WrappedUp { wrap_up });
                self.agent_mut(agent, at)
                    .record(|f| f.wrap_up.record(wrap_up));
            }
            Event::WaitPredictionResolved {
                queue,
                predicted,
                actual,
                outcome: WaitOutcome::Answered,
                ..
            } => {
                self.queue_mut(queue)
                    .record(Outcome::PredictionResolved { predicted, actual });
            }
            Event::CallTransferred { queue, .. } => {
                self.queue_mut(queue).record(Outcome::Transferred);
            }
            Event::CallRemoved { queue, .. } => self.queue_mut(queue).record(Outcome::Removed),
            Event::QueueConfigured {
                queue, thresholds, ..
            } => self.set_thresholds(queue, thresholds),
            Event::CallbackRequested { queue, .. } => {
                self.queue_mut(queue).record(Outcome::CallbackRequested);
            }
            Event::CallbackUnanswered { queue, .. } => {
                self.queue_mut(queue).record(Outcome::CallbackUnanswered);
            }
            Event::SurveyRecorded {
                queue, agent, vote, ..
            } => {
                self.queue_mut(queue).record(Outcome::Surveyed { vote });
                self.agent_mut(agent, at).record(|f| f.survey.record(vote));
            }
            Event::AgentStateChanged { agent, state, .. } => {
                let agent = self.agent_mut(agent, at);
                agent.account(at);
                agent.status = state;
            }
            // Censored predictions measure nothing; the rest count nothing.
            Event::WaitPredictionResolved { .. }
            | Event::WaitEstimated { .. }
            | Event::SkillsExpanded { .. }
            | Event::CallbackDialing { .. }
            | Event::CallbackRetrying { .. }
            | Event::WrapUpExtended { .. }
            | Event::PriorityChanged { .. }
            | Event::AgentConfigured { .. }
            | Event::IntervalClosed { .. } => {}
        }
    }

    /// Ends the log at `at` (the ACD's time when it was read): closes every interval that
    /// ended by then and the open one, as a partial interval up to `at` (the ACD's
    /// current interval), and counts agent time up to `at`. The open interval is left out
    /// only when it is empty and lasted no time. A time before the last event's is taken
    /// as the last event's. Events recorded afterwards go to a new interval from `at`.
    pub fn finish(&mut self, at: Timestamp) {
        let at = at.max(self.last);
        self.advance(at);
        let Some((start, _)) = self.open else {
            return;
        };
        let recorded = self.queues.values().any(|queue| !queue.interval.is_empty())
            || self.agents.values().any(|agent| !agent.interval.is_empty());
        if at > start || recorded {
            self.close(at);
        }
    }

    /// The ACD restarted at `at` (a new [`crate::Acd::new`] from then on, as after a
    /// server restart): finishes the log so far at `at`, so that the next interval runs
    /// from `at` like the new ACD's first one, and logs every agent out, as the new ACD
    /// starts them. The log holds no event for either.
    pub fn restart(&mut self, at: Timestamp) {
        self.finish(at);
        for agent in self.agents.values_mut() {
            agent.status = AgentStatus::LoggedOut;
        }
    }

    /// Like [`Tally::restart`], for a new ACD running `config` (in id order, as
    /// [`crate::Acd::config`] gives it): its queues' thresholds apply from `at`, whatever
    /// [`Event::QueueConfigured`]s of the ACD before had set.
    pub fn restart_with_config(&mut self, at: Timestamp, config: &AcdConfig) {
        self.restart(at);
        for (index, queue) in config.queues.iter().enumerate() {
            self.set_thresholds(QueueId(index as u32), queue.thresholds);
        }
    }

    /// Every queue seen in an event or given thresholds, by id, with its statistics since
    /// the start.
    pub fn queues(&self) -> impl Iterator<Item = (QueueId, &QueueStats<ByMillisecond>)> {
        self.queues.iter().map(|(&id, queue)| (id, &queue.total))
    }

    /// A queue's statistics since the start.
    pub fn queue(&self, queue: QueueId) -> Option<&QueueStats<ByMillisecond>> {
        self.queues.get(&queue).map(|queue| &queue.total)
    }

    /// A queue's closed intervals, oldest first. An interval in which nothing was recorded
    /// for the queue is left out.
    pub fn queue_intervals(&self, queue: QueueId) -> &[IntervalReport] {
        self.queues
            .get(&queue)
            .map_or(&[], |queue| queue.closed.as_slice())
    }

    /// Every agent seen in an event, by id, with its figures since the start (its time up
    /// to the last state change or interval boundary; see [`Tally::finish`]).
    pub fn agents(&self) -> impl Iterator<Item = (AgentId, &AgentFigures)> {
        self.agents.iter().map(|(&id, agent)| (id, &agent.total))
    }

    /// An agent's figures since the start.
    pub fn agent(&self, agent: AgentId) -> Option<&AgentFigures> {
        self.agents.get(&agent).map(|agent| &agent.total)
    }

    /// An agent's closed intervals, oldest first. An interval in which the agent was logged
    /// out and nothing was recorded for it is left out.
    pub fn agent_intervals(&self, agent: AgentId) -> &[AgentReport] {
        self.agents
            .get(&agent)
            .map_or(&[], |agent| agent.closed.as_slice())
    }

    /// Time all agents spent available, busy and paused, since the start: the ACD's
    /// [`crate::Acd::agent_time`].
    pub fn agent_time(&self) -> AgentTime {
        let mut time = AgentTime::default();
        for agent in self.agents.values() {
            time += agent.total.time;
        }
        time
    }

    /// Time all agents spent in each kind of state, for every closed interval, oldest
    /// first: the ACD's [`crate::Acd::closed_agent_intervals`].
    pub fn agent_time_intervals(&self) -> &[AgentIntervalReport] {
        &self.agent_time
    }

    /// Events left out because they were earlier than the last one recorded.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Moves the clock to `at`, closing the intervals that ended by then; false, and
    /// nothing done, if `at` is earlier than the last event.
    fn advance(&mut self, at: Timestamp) -> bool {
        if self.open.is_none() {
            self.open = Some((at, metrics::interval_end(at, self.length, self.origin)));
            self.last = at;
        }
        if at < self.last {
            return false;
        }
        self.last = at;
        // Something at the boundary belongs to the next interval, as in the ACD, whose
        // interval timer fires before anything else due at the same time. (An interval
        // saturated at the end of time has no next one.)
        while let Some((start, end)) = self.open
            && at >= end
            && start < end
        {
            self.close(end);
        }
        true
    }

    /// Closes the open interval at `end` and opens the next.
    fn close(&mut self, end: Timestamp) {
        let Some((start, _)) = self.open else {
            return;
        };
        for queue in self.queues.values_mut() {
            if !queue.interval.is_empty() {
                let stats = std::mem::take(&mut queue.interval);
                queue.closed.push(IntervalReport {
                    start,
                    end,
                    summary: stats.summary(),
                });
            }
        }
        let mut time = AgentTime::default();
        for agent in self.agents.values_mut() {
            agent.account(end);
            let figures = std::mem::take(&mut agent.interval);
            time += figures.time;
            if !figures.is_empty() {
                agent.closed.push(AgentReport {
                    start,
                    end,
                    figures,
                });
            }
        }
        self.agent_time
            .push(AgentIntervalReport { start, end, time });
        self.open = Some((end, metrics::interval_end(end, self.length, self.origin)));
    }

    fn queue_mut(&mut self, queue: QueueId) -> &mut QueueTally {
        self.queues.entry(queue).or_default()
    }

    fn agent_mut(&mut self, agent: AgentId, now: Timestamp) -> &mut AgentTally {
        self.agents
            .entry(agent)
            .or_insert_with(|| AgentTally::new(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CallId;
    use crate::input::{OfferFailure, Vote};
    use crate::metrics::{Distribution, OfferFailures};

    const Q: QueueId = QueueId(0);
    const A: AgentId = AgentId(0);

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn state(state: AgentStatus) -> Event {
        Event::AgentStateChanged {
            agent: A,
            state,
            reason: None,
        }
    }

    fn queued(call: u64) -> Event {
        Event::CallQueued {
            call: CallId(call),
            queue: Q,
            position: 1,
            estimated_wait: None,
        }
    }

    fn abandoned(call: u64, wait: u64) -> Event {
        Event::CallAbandoned {
            call: CallId(call),
            queue: Q,
            wait: secs(wait),
            position: 1,
        }
    }

    #[test]
    fn events_about_calls_never_seen_count_from_their_own_fields() {
        // A log that starts mid-call: the first event completes a call the tally never saw
        // queued, on a queue it never heard of.
        let mut tally = Tally::new(secs(60));
        let completed = Event::CallCompleted {
            call: CallId(9),
            agent: A,
            queue: QueueId(4),
            talk: secs(30),
        };
        tally.record(at(10), &completed);
        tally.record(
            at(12),
            &Event::WrapUpEnded {
                call: CallId(9),
                agent: A,
                queue: QueueId(4),
                wrap_up: secs(2),
            },
        );
        tally.record(
            at(13),
            &Event::SurveyRecorded {
                call: CallId(9),
                queue: QueueId(4),
                agent: A,
                vote: Some(Vote::Satisfied),
            },
        );
        let stats = tally.queue(QueueId(4)).expect("the queue is listed");
        assert_eq!(stats.counters.completed, 1);
        assert_eq!(stats.counters.survey.satisfied, 1);
        assert_eq!(stats.rates().aht, Some(secs(32)));
        let agent = tally.agent(A).expect("the agent is listed");
        assert_eq!(agent.aht(), Some(secs(32)));
        assert_eq!(
            agent.time,
            AgentTime::default(),
            "logged out as far as is known"
        );
        assert_eq!(tally.ignored(), 0);
        assert!(tally.queue(Q).is_none());
        assert!(tally.queue_intervals(Q).is_empty());
        assert!(tally.agent_intervals(AgentId(7)).is_empty());
    }

    #[test]
    fn an_event_earlier_than_the_last_is_ignored() {
        let mut tally = Tally::new(secs(60));
        tally.record(at(10), &queued(1));
        tally.record(at(5), &abandoned(1, 2));
        assert_eq!(tally.ignored(), 1);
        assert_eq!(tally.queue(Q).unwrap().counters.abandoned, 0);
        // Equal times are in order.
        tally.record(at(10), &abandoned(1, 0));
        assert_eq!(tally.queue(Q).unwrap().counters.abandoned, 1);
        // So are events before a given start.
        let mut tally = Tally::new(secs(60)).starting_at(at(100));
        tally.record(at(99), &queued(1));
        assert_eq!(tally.ignored(), 1);
        assert!(tally.queue(Q).is_none());
    }

    #[test]
    fn an_event_on_a_boundary_opens_the_next_interval_and_agent_time_splits_there() {
        let mut tally = Tally::new(secs(60)).with_origin(at(10));
        tally.record(at(40), &state(AgentStatus::Available));
        tally.record(at(50), &queued(1));
        tally.record(at(70), &queued(2)); // on the boundary
        tally.record(at(100), &state(AgentStatus::Paused));
        tally.record(at(200), &state(AgentStatus::LoggedOut));
        tally.finish(at(215));

        // From the first event to the first boundary, then aligned, then partial.
        let intervals: Vec<_> = tally
            .agent_time_intervals()
            .iter()
            .map(|report| (report.start, report.end, report.time))
            .collect();
        let time = |available, paused| AgentTime {
            available: secs(available),
            busy: Duration::ZERO,
            paused: secs(paused),
        };
        assert_eq!(
            intervals,
            [
                (at(40), at(70), time(30, 0)),
                (at(70), at(130), time(30, 30)),
                (at(130), at(190), time(0, 60)),
                (at(190), at(215), time(0, 10)),
            ]
        );
        assert_eq!(tally.agent_time(), time(60, 100));
        // The agent was logged out all through the last interval: left out.
        let agent: Vec<_> = tally
            .agent_intervals(A)
            .iter()
            .map(|report| (report.start, report.figures.time))
            .collect();
        assert_eq!(
            agent,
            [
                (at(40), time(30, 0)),
                (at(70), time(30, 30)),
                (at(130), time(0, 60)),
                (at(190), time(0, 10)),
            ]
        );
        // One caller in each of the first two intervals; none later, so none reported.
        let queue: Vec<_> = tally
            .queue_intervals(Q)
            .iter()
            .map(|report| (report.start, report.end, report.summary.counters.offered))
            .collect();
        assert_eq!(queue, [(at(40), at(70), 1), (at(70), at(130), 1)]);
    }

    #[test]
    fn finish_reports_the_open_interval_unless_it_is_empty_and_lasted_nothing() {
        let mut tally = Tally::new(secs(60));
        tally.record(at(0), &state(AgentStatus::Available));
        tally.finish(at(60));
        assert_eq!(tally.agent_time_intervals().len(), 1, "nothing after 60 s");
        // Something recorded at the very start of an interval is reported.
        tally.record(at(120), &queued(1));
        tally.finish(at(120));
        let queue = tally.queue_intervals(Q);
        assert_eq!((queue[0].start, queue[0].end), (at(120), at(120)));
        assert_eq!(tally.agent_time_intervals().len(), 3);
        assert_eq!(tally.agent_time().available, secs(120));
        // Finishing again, or earlier, adds nothing.
        tally.finish(at(100));
        assert_eq!(tally.agent_time_intervals().len(), 3);
    }

    #[test]
    fn a_restart_logs_every_agent_out_and_starts_a_new_first_interval() {
        let mut tally = Tally::new(secs(60));
        tally.record(at(0), &state(AgentStatus::Available));
        tally.restart(at(100));
        tally.record(at(130), &queued(1));
        tally.record(at(150), &state(AgentStatus::Available));
        tally.finish(at(200));
        let intervals: Vec<_> = tally
            .agent_time_intervals()
            .iter()
            .map(|report| (report.start, report.end, report.time.available))
            .collect();
        assert_eq!(
            intervals,
            [
                (at(0), at(60), secs(60)),
                (at(60), at(100), secs(40)),
                (at(100), at(120), secs(0)),
                (at(120), at(180), secs(30)),
                (at(180), at(200), secs(20)),
            ]
        );
    }

    #[test]
    fn each_queue_classifies_waits_by_its_own_thresholds() {
        let mut config = AcdConfig {
            queues: vec![Default::default(), Default::default()],
            ..AcdConfig::default()
        };
        config.queues[1].thresholds = Thresholds {
            service_level: secs(10),
            abandon: secs(3),
            short_abandon: secs(2),
        };
        let mut tally = Tally::for_config(&config, at(0));
        assert_eq!(tally.queues().count(), 2, "configured queues are listed");
        for queue in [QueueId(0), QueueId(1)] {
            tally.record(
                at(1),
                &Event::CallAbandoned {
                    call: CallId(1),
                    queue,
                    wait: secs(4),
                    position: 1,
                },
            );
        }
        let counters = |queue| tally.queue(queue).unwrap().counters;
        let default = counters(QueueId(0));
        assert_eq!(
            (default.short_abandoned, default.abandoned_after_threshold),
            (1, 0)
        );
        let own = counters(QueueId(1));
        assert_eq!((own.short_abandoned, own.abandoned_after_threshold), (0, 1));
    }

    #[test]
    fn a_transfer_counts_where_it_left_and_new_thresholds_apply_from_their_event() {
        let mut tally = Tally::new(secs(900));
        tally.record(at(1), &queued(1));
        tally.record(
            at(4),
            &Event::CallTransferred {
                call: CallId(1),
                queue: Q,
                to: QueueId(1),
                wait: secs(3),
            },
        );
        tally.record(
            at(4),
            &Event::CallQueued {
                call: CallId(1),
                queue: QueueId(1),
                position: 1,
                estimated_wait: None,
            },
        );
        let counters = |tally: &Tally, queue| tally.queue(queue).unwrap().counters;
        let left = counters(&tally, Q);
        assert_eq!((left.offered, left.transferred, left.abandoned), (1, 1, 0));
        assert_eq!(counters(&tally, QueueId(1)).offered, 1);
        assert_eq!(tally.queue(Q).unwrap().rates().abandon_rate, None);

        // A 4 s abandon is short under the default 5 s, not after a 3 s threshold.
        tally.record(at(10), &abandoned(2, 4));
        tally.record(
            at(11),
            &Event::QueueConfigured {
                queue: Q,
                name: "sales".into(),
                change: crate::output::ConfigChange::Changed,
                thresholds: Thresholds {
                    service_level: secs(2),
                    abandon: secs(3),
                    short_abandon: secs(1),
                },
            },
        );
        tally.record(at(12), &abandoned(3, 4));
        let c = counters(&tally, Q);
        assert_eq!(
            (c.abandoned, c.short_abandoned, c.abandoned_after_threshold),
            (2, 1, 1)
        );
    }

    #[test]
    fn agents_count_their_answers_failures_and_handle_time() {
        let mut tally = Tally::new(secs(900));
        let events = [
            state(AgentStatus::Available),
            state(AgentStatus::Reserved),
            Event::OfferFailed {
                call: CallId(1),
                agent: A,
                queue: Q,
                reason: OfferFailure::NoAnswer,
            },
            state(AgentStatus::Reserved),
            Event::CallConnected {
                call: CallId(1),
                agent: A,
                queue: Q,
                wait: secs(30),
                ring: secs(3),
            },
            Event::CallCompleted {
                call: CallId(1),
                agent: A,
                queue: Q,
                talk: secs(100),
            },
            Event::WrapUpEnded {
                call: CallId(1),
                agent: A,
                queue: Q,
                wrap_up: secs(20),
            },
        ];
        for (secs, event) in (0..).step_by(10).zip(&events) {
            tally.record(at(secs), event);
        }
        let agent = tally.agent(A).unwrap();
        assert_eq!(agent.calls_answered, 1);
        assert_eq!(
            agent.offers_failed,
            OfferFailures {
                no_answer: 1,
                ..OfferFailures::default()
            }
        );
        assert_eq!(agent.aht(), Some(secs(120)));
        let queue = tally.queue(Q).unwrap();
        assert_eq!(queue.ring.sum(), secs(3));
        assert_eq!(queue.counters.offers_failed, 1);
    }

    #[test]
    fn a_zero_interval_and_the_end_of_time_end_in_finite_steps() {
        let mut tally = Tally::new(Duration::ZERO);
        tally.record(Timestamp::from_micros(0), &queued(1));
        tally.record(Timestamp::from_micros(5), &queued(2));
        assert_eq!(
            tally.agent_time_intervals().len(),
            5,
            "one microsecond each"
        );

        let end_of_time = Timestamp::from_micros(u64::MAX);
        let mut tally = Tally::new(secs(60));
        tally.record(end_of_time, &queued(1));
        tally.record(end_of_time, &queued(2));
        tally.finish(end_of_time);
        assert_eq!(tally.queue_intervals(Q)[0].summary.counters.offered, 2);
    }
}
