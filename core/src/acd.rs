//! The ACD state machine: queues, agents and the routing between them.
//!
//! [`Acd`] is sans-IO. Feed it [`Input`]s with the time they happen at, drain
//! [`Acd::poll_output`] after each, and wake it with [`Input::Timeout`] at
//! [`Acd::poll_timeout`]. Nothing else moves it; the same inputs at the same times always
//! give the same outputs, which is what makes the [`crate::journal`] replayable.
//!
//! # Routing
//! - A waiting caller may be served by the agents eligible for its queue at its current
//!   skill-expansion step. No available agent is ever eligible for a waiting caller it
//!   could take: every change that could make a match (an arrival, an agent coming free,
//!   an expansion step, the end of a retry pause) looks for one at once.
//! - When a call arrives and several agents are free, the queue's [`Strategy`] picks one.
//! - When an agent comes free it takes, across every queue it may serve, the caller with
//!   the highest priority, then the earliest arrival, then from the heavier queue.
//! - An offer that is not taken returns the caller to its original place; the agent is
//!   skipped for that caller for the queue's `retry_after`, in whatever queue the caller
//!   goes on to.
//!
//! # Supervisor actions and reconfiguration
//! A supervisor may extend an agent's wrap-up ([`Input::ExtendWrapUp`]), change a caller's
//! priority ([`Input::SetPriority`]), move a caller to another queue ([`Input::MoveCall`]),
//! change a queue's settings ([`Input::UpdateQueue`]) or reload the whole configuration
//! ([`Input::Reconfigure`]). Each keeps the routing rule above: whatever it changes, every
//! waiting caller an available agent may now take is offered at once. Ids never change:
//! a reload matches queues and agents by name, and closes or retires, rather than
//! deletes, those it leaves out.

mod agent;
mod call;
mod idle;
mod lines;
mod queue;
mod reconfigure;
mod setup;
mod timer;

use std::collections::VecDeque;
use std::time::Duration;

use rustc_hash::FxHashMap;

pub use self::agent::AgentState;
use self::agent::{Agent, LastCall, Pending};
use self::call::{Call, CallKey, CallState, Predictions};
use self::idle::IdleOrder;
use self::lines::Lines;
use self::queue::{OverflowTarget, Queue};
use self::timer::{Timer, Timers};
use crate::config::{AcdConfig, Strategy};
use crate::error::AcdError;
use crate::ids::{AgentId, CallId, QueueId};
use crate::input::{Input, OfferFailure, Vote};
use crate::journal::JournalEntry;
use crate::metrics::{
    self, AgentIntervalReport, AgentTime, ByMillisecond, Histogram, IntervalReport, Outcome,
    QueueStats,
};
use crate::output::{Command, Event, Output, OverflowReason, OverflowedTo, WaitOutcome};
use crate::snapshot::{AcdSnapshot, AgentCounts, AgentSnapshot, QueueSnapshot, WaitingCaller};
use crate::time::Timestamp;

/// The reason code of an automatic pause after repeated offers not taken.
pub const AUTO_PAUSE_REASON: &str = "no-answer";

/// The ACD: every queue, agent and call, and the decisions between them.
#[derive(Clone, Debug)]
pub struct Acd {
    config: AcdConfig,
    queues: Vec<Queue>,
    lines: Lines,
    agents: Vec<Agent>,
    calls: FxHashMap<CallId, Call>,
    /// Available agents, longest idle first.
    idle: IdleOrder,
    timers: Timers,
    /// Outputs not yet polled, with the time each happened at.
    outputs: VecDeque<(Timestamp, Output)>,
    now: Timestamp,
    started: Timestamp,
    next_seq: u64,
    interval_start: Timestamp,
    agent_time: AgentTime,
    interval_agent_time: AgentTime,
    closed_agent_time: VecDeque<AgentIntervalReport>,
    journal: Option<Vec<JournalEntry>>,
}

impl Acd {
    /// An ACD with every agent logged out and no call, starting at `now`.
    pub fn new(config: AcdConfig, now: Timestamp) -> Result<Self, AcdError> {
        let (queues, agents) = setup::build(&config, now, &[])?;
        let statistics = config.statistics;
        let lines = Lines::new(queues.iter().map(|q| q.steps.len()));
        let agents_len = agents.len();
        let mut acd = Acd {
            config,
            queues,
            lines,
            agents,
            calls: FxHashMap::default(),
            idle: IdleOrder::new(agents_len),
            timers: Timers::default(),
            outputs: VecDeque::new(),
            now,
            started: now,
            next_seq: 0,
            interval_start: now,
            agent_time: AgentTime::default(),
            interval_agent_time: AgentTime::default(),
            closed_agent_time: VecDeque::new(),
            journal: None,
        };
        // Intervals fall on origin + k × length; the first one may be partial.
        let end = metrics::interval_end(now, statistics.interval, statistics.interval_origin);
        acd.timers.set(end, Timer::IntervalEnd);
        Ok(acd)
    }

    /// Like [`Acd::new`], recording every input for [`Acd::take_journal`].
    pub fn with_journal(config: AcdConfig, now: Timestamp) -> Result<Self, AcdError> {
        let mut acd = Acd::new(config, now)?;
        acd.journal = Some(Vec::new());
        Ok(acd)
    }

    /// Handles one input at `now` (never earlier than the last). Timers due by `now` fire
    /// first. A refused input changes nothing but the timers that were due.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), AcdError> {
        if now < self.now {
            return Err(AcdError::TimeWentBackwards {
                now,
                last: self.now,
            });
        }
        if let Some(journal) = &mut self.journal {
            journal.push(JournalEntry {
                at: now,
                input: input.clone(),
            });
        }
        self.fire_timers(now);
        let result = match input {
            Input::CallArrived {
                call,
                queue,
                priority,
            } => self.call_arrived(call, queue, priority),
            Input::Hangup { call } => self.hangup(call),
            Input::RemoveCall { call } => self.remove_call(call),
            Input::OfferAnswered { call, agent } => self.offer_answered(call, agent),
            Input::OfferFailed {
                call,
                agent,
                reason,
            } => self.offer_failed(call, agent, reason),
            Input::Login { agent } => self.login(agent),
            Input::Logout { agent } => self.logout(agent),
            Input::Pause { agent, reason } => self.pause(agent, reason),
            Input::Ready { agent } => self.ready(agent),
            Input::EstimateWait { call } => self.estimate_wait(call),
            Input::LeaveQueue { call } => self.leave_on_request(call),
            Input::RequestCallback { call } => self.request_callback(call),
            Input::CallbackAnswered { call } => self.callback_answered(call),
            Input::CallbackFailed { call } => self.callback_failed(call),
            Input::SurveyVote {
                call,
                queue,
                agent,
                vote,
            } => self.survey_vote(call, queue, agent, vote),
            Input::ExtendWrapUp { agent, by } => self.extend_wrap_up(agent, by),
            Input::SetPriority { call, priority } => self.set_priority(call, priority),
            Input::MoveCall { call, queue } => self.move_call(call, queue),
            Input::UpdateQueue { queue, update } => self.update_queue(queue, update),
            Input::Reconfigure { config } => self.reconfigure(config),
            Input::Timeout => Ok(()),
        };
        self.prune_timers();
        result
    }

    /// The next output, if any. Drain it after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front().map(|(_, output)| output)
    }

    /// Like [`Acd::poll_output`], with the time the output happened at: the input's time,
    /// or for what a timer did, the timer's deadline, even when the [`Input::Timeout`]
    /// came later. Stamp stored events with it, so that a [`crate::tally::Tally`] of them
    /// gives exactly the ACD's own statistics however late the timeouts were delivered.
    pub fn poll_output_at(&mut self) -> Option<(Timestamp, Output)> {
        self.outputs.pop_front()
    }

    /// When the ACD next needs [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.peek().map(|(at, _)| at)
    }

    /// The inputs recorded since the last call, when built [`Acd::with_journal`].
    pub fn take_journal(&mut self) -> Vec<JournalEntry> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The configuration the ACD runs, in the order of the ids: `queues[i]` is
    /// `QueueId(i)`'s and `agents[i]` is `AgentId(i)`'s. After an [`Input::Reconfigure`]
    /// it lists, besides the new configuration's queues and agents (under their ids, see
    /// [`Acd::queue_id`]), the queues it closed and the agents it removed with their last
    /// settings ([`Acd::queue_is_open`], [`Acd::agent_is_retired`]), and every skill ever
    /// declared. So [`crate::tally::Tally::for_config`] of it counts under the right ids.
    pub fn config(&self) -> &AcdConfig {
        &self.config
    }

    /// The time of the last input.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// When the ACD started.
    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// The queue of that name (closed or open). Ids never change: an
    /// [`Input::Reconfigure`] keeps every queue's id, gives new queues the next ones, and
    /// gives a queue that comes back under its old name its old id.
    pub fn queue_id(&self, name: &str) -> Option<QueueId> {
        self.queues
            .iter()
            .position(|q| q.name == name)
            .map(|i| QueueId(i as u32))
    }

    /// The agent of that name (retired or not). Ids never change, as for
    /// [`Acd::queue_id`].
    pub fn agent_id(&self, name: &str) -> Option<AgentId> {
        self.agents
            .iter()
            .position(|a| a.name == name)
            .map(|i| AgentId(i as u32))
    }

    /// Whether the queue takes callers: false once an [`Input::Reconfigure`] left it out
    /// (until one brings it back); `None` for an unknown id.
    pub fn queue_is_open(&self, queue: QueueId) -> Option<bool> {
        self.queues.get(queue.index()).map(|q| q.open)
    }

    /// Whether the agent was removed by an [`Input::Reconfigure`] (and cannot log in
    /// until one brings it back); `None` for an unknown id.
    pub fn agent_is_retired(&self, agent: AgentId) -> Option<bool> {
        self.agents.get(agent.index()).map(|a| a.retired)
    }

    /// Number of queues, closed ones included; their ids run from 0.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Number of agents, retired ones included; their ids run from 0.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Calls the ACD holds: waiting, ringing or connected.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// An agent's state.
    pub fn agent_state(&self, agent: AgentId) -> Option<&AgentState> {
        self.agents.get(agent.index()).map(|a| &a.state)
    }

    /// A queue's statistics since start.
    pub fn queue_stats(&self, queue: QueueId) -> Option<&QueueStats<Histogram>> {
        self.queues.get(queue.index()).map(|q| &q.stats)
    }

    /// A queue's statistics for the current interval.
    pub fn interval_stats(&self, queue: QueueId) -> Option<&QueueStats<ByMillisecond>> {
        self.queues.get(queue.index()).map(|q| &q.interval)
    }

    /// A queue's closed intervals, oldest first (at most `statistics.intervals_kept`).
    pub fn closed_intervals(&self, queue: QueueId) -> impl Iterator<Item = &IntervalReport> {
        self.queues
            .get(queue.index())
            .into_iter()
            .flat_map(|q| q.closed.iter())
    }

    /// Time all agents spent available, busy and paused, since start, up to the last input.
    pub fn agent_time(&self) -> AgentTime {
        let mut time = self.agent_time;
        for agent in &self.agents {
            time.add(
                agent.state.status(),
                self.now.saturating_since(agent.accounted),
            );
        }
        time
    }

    /// Agent time of the closed intervals, oldest first.
    pub fn closed_agent_intervals(&self) -> impl Iterator<Item = &AgentIntervalReport> {
        self.closed_agent_time.iter()
    }

    /// Callers in a queue who wait for an agent (not ringing), and who ring one.
    pub fn queue_depth(&self, queue: QueueId) -> Option<(usize, usize)> {
        self.queues.get(queue.index()).map(|q| {
            let waiting = self.lines.len(queue);
            (waiting, q.queued as usize - waiting)
        })
    }

    /// A waiting caller's place in line, 1 for the first; `None` if not waiting.
    pub fn position(&self, call: CallId) -> Option<u32> {
        let call = self.calls.get(&call)?;
        matches!(call.state, CallState::Waiting)
            .then(|| self.lines.position(call.queue, &call.key()))
    }

    /// A consistent picture of everything, for readers (API, metrics, wallboard).
    pub fn snapshot(&self) -> AcdSnapshot {
        let now = self.now;
        let queues = self
            .queues
            .iter()
            .enumerate()
            .map(|(index, queue)| {
                let id = QueueId(index as u32);
                let mut agents = AgentCounts::default();
                for agent in queue.steps[0].eligible.iter().map(|a| &self.agents[a]) {
                    agents.count(&agent.state);
                }
                let mut callers: Vec<WaitingCaller> =
                    self.calls
                        .values()
                        .filter(|call| call.queue == id && call.is_queued())
                        .map(|call| {
                            let ringing = match call.state {
                                CallState::Offered { agent, .. }
                                | CallState::Dialing { agent, .. } => Some(agent),
                                _ => None,
                            };
                            let position = ringing
                                .is_none()
                                .then(|| self.lines.position(id, &call.key()));
                            WaitingCaller {
                                call: call.id,
                                priority: call.priority,
                                position,
                                ringing,
                                waited: now.saturating_since(call.entered),
                                estimated_wait: position.and_then(|p| self.estimate(queue, p)),
                            }
                        })
                        .collect();
                callers.sort_by_key(|c| (c.position.unwrap_or(0), c.call));
                QueueSnapshot {
                    id,
                    name: queue.name.clone(),
                    closed: !queue.open,
                    waiting: self.lines.len(id) as u32,
                    ringing: queue.queued - self.lines.len(id) as u32,
                    longest_wait: callers.iter().map(|c| c.waited).max().unwrap_or_default(),
                    agents,
                    staffed: queue.staffed as f64 / agent::SHARE_UNIT as f64,
                    cumulative: queue.stats.summary(),
                    interval: queue.interval.summary(),
                    interval_start: self.interval_start,
                    callers,
                }
            })
            .collect();
        let agents = self
            .agents
            .iter()
            .enumerate()
            .map(|(index, agent)| AgentSnapshot {
                id: AgentId(index as u32),
                name: agent.name.clone(),
                retired: agent.retired,
                state: agent.state.clone(),
                since: agent.since,
                calls_answered: agent.calls_answered,
                survey: agent.survey,
            })
            .collect();
        let mut interval_agent_time = self.interval_agent_time;
        for agent in &self.agents {
            interval_agent_time.add(agent.state.status(), now.saturating_since(agent.accounted));
        }
        AcdSnapshot {
            at: now,
            queues,
            agents,
            agent_time: self.agent_time(),
            interval_agent_time,
        }
    }

    // ---- inputs -------------------------------------------------------------------------

    fn call_arrived(&mut self, id: CallId, queue: QueueId, priority: u8) -> Result<(), AcdError> {
        match self.queues.get(queue.index()) {
            None => return Err(AcdError::UnknownQueue(queue)),
            Some(q) if !q.open => return Err(AcdError::QueueClosed(queue)),
            Some(_) => {}
        }
        if self.calls.contains_key(&id) {
            return Err(AcdError::DuplicateCall(id));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.calls
            .insert(id, Call::new(id, queue, priority, seq, self.now));
        self.enter_queue(id, queue);
        Ok(())
    }

    fn hangup(&mut self, id: CallId) -> Result<(), AcdError> {
        let call = self.calls.get(&id).ok_or(AcdError::UnknownCall(id))?;
        match call.state {
            // A callback waiting its turn has no caller on the line to hang up: ending it
            // (withdrawn) is an unreached callback, never an abandon.
            CallState::Waiting | CallState::Deferred { .. } if call.callback.is_some() => {
                self.callback_gives_up(id)
            }
            CallState::Dialing { .. } => return self.callback_failed(id),
            CallState::Waiting | CallState::Deferred { .. } => self.abandon(id),
            CallState::Offered { agent, .. } => {
                self.command(Command::StopRinging { call: id, agent });
                self.abandon(id);
                self.release_agent(agent);
                self.match_agent(agent);
            }
            CallState::Connected { agent, since } => {
                let talk = self.now.saturating_since(since);
                let q = call.queue;
                self.calls.remove(&id);
                self.queues[q.index()].record(Outcome::Completed { talk });
                self.event(Event::CallCompleted {
                    call: id,
                    agent,
                    queue: q,
                    talk,
                });
                let wrap_up = self.queues[q.index()].wrap_up;
                self.agents[agent.index()].last_call = Some(LastCall {
                    call: id,
                    queue: q,
                    talk,
                });
                if wrap_up.is_zero() {
                    self.finish_wrap_up(agent);
                    self.release_agent(agent);
                    self.match_agent(agent);
                } else {
                    let until = self.now + wrap_up;
                    self.timers.set(until, Timer::WrapUpEnd(agent));
                    self.set_agent_state(agent, AgentState::WrapUp { until });
                }
            }
        }
        Ok(())
    }

    fn remove_call(&mut self, id: CallId) -> Result<(), AcdError> {
        let call = self.calls.get(&id).ok_or(AcdError::UnknownCall(id))?;
        // The agent held for the call: rung, or on the line while the caller is called back
        // (no wrap-up then: there was no conversation).
        let (held, ringing) = match call.state {
            CallState::Waiting | CallState::Deferred { .. } => (None, false),
            CallState::Offered { agent, .. } => (Some(agent), true),
            CallState::Dialing { agent, .. } => (Some(agent), false),
            CallState::Connected { .. } => return self.hangup(id),
        };
        let position = matches!(call.state, CallState::Waiting)
            .then(|| self.lines.position(call.queue, &call.key()));
        if let Some(agent) = held.filter(|_| ringing) {
            self.command(Command::StopRinging { call: id, agent });
        }
        self.leave_queue(id);
        let call = self.calls.remove(&id).expect("checked above");
        let wait = self.now.saturating_since(call.entered);
        self.queues[call.queue.index()].record(Outcome::Removed);
        self.resolve_predictions(id, call.queue, &call.predictions, WaitOutcome::Removed);
        self.event(Event::CallRemoved {
            call: id,
            queue: call.queue,
            wait,
            position,
        });
        if let Some(agent) = held {
            self.release_agent(agent);
            self.match_agent(agent);
        }
        Ok(())
    }

    fn offer_answered(&mut self, id: CallId, agent: AgentId) -> Result<(), AcdError> {
        let since = self.offer_of(id, agent)?;
        let now = self.now;
        self.cancel_queue_timers(id);
        let agent_entry = &mut self.agents[agent.index()];
        agent_entry.failures_in_a_row = 0;
        self.set_agent_state(agent, AgentState::OnCall { call: id });
        let call = self.calls.get_mut(&id).expect("offer_of checked the call");
        if call.callback.is_some() {
            // Agent first: the agent is on the line, now the caller is called back.
            call.state = CallState::Dialing { agent, since: now };
            let queue = call.queue;
            self.event(Event::CallbackDialing {
                call: id,
                agent,
                queue,
            });
            return Ok(());
        }
        self.connect(id, agent, since);
        Ok(())
    }

    /// The caller and the agent are together: the wait ends here.
    fn connect(&mut self, id: CallId, agent: AgentId, ring_since: Timestamp) {
        let now = self.now;
        let call = self.calls.get_mut(&id).expect("connected calls exist");
        call.state = CallState::Connected { agent, since: now };
        let since = ring_since;
        let q = call.queue;
        let wait = now.saturating_since(call.entered);
        let ring = now.saturating_since(since);
        let predictions = std::mem::take(&mut call.predictions);

        let queue = &mut self.queues[q.index()];
        queue.estimator.advance(now, queue.queued as usize);
        queue.queued -= 1;
        queue.record(Outcome::Answered { wait, ring });
        self.resolve_predictions(id, q, &predictions, WaitOutcome::Answered);
        self.agents[agent.index()].calls_answered += 1;
        self.event(Event::CallConnected {
            call: id,
            agent,
            queue: q,
            wait,
            ring,
        });
    }

    fn request_callback(&mut self, id: CallId) -> Result<(), AcdError> {
        let call = self.calls.get_mut(&id).ok_or(AcdError::UnknownCall(id))?;
        if call.callback.is_some() {
            return Ok(());
        }
        let offered = match call.state {
            CallState::Connected { .. }
            | CallState::Dialing { .. }
            | CallState::Deferred { .. } => {
                return Err(AcdError::CallNotWaiting(id));
            }
            CallState::Offered { agent, .. } => Some(agent),
            CallState::Waiting => None,
        };
        call.callback = Some(0);
        // Nobody is left on the line to hang up after a maximum wait.
        call.max_wait_due = None;
        call.max_wait_reached = false;
        let q = call.queue;
        self.queues[q.index()].record(Outcome::CallbackRequested);
        if let Some(agent) = offered {
            // The agent's phone was ringing for a caller who just left the line: ring
            // again when the callback's turn comes, agent first.
            self.withdraw_offer(id, agent);
            self.release_agent(agent);
        }
        let position = self
            .calls
            .get(&id)
            .map_or(1, |call| self.lines.position(q, &call.key()));
        self.event(Event::CallbackRequested {
            call: id,
            queue: q,
            position,
        });
        if let Some(agent) = offered {
            self.match_agent(agent);
        }
        Ok(())
    }

    fn callback_answered(&mut self, id: CallId) -> Result<(), AcdError> {
        let call = self.calls.get(&id).ok_or(AcdError::UnknownCall(id))?;
        let CallState::Dialing { agent, since } = call.state else {
            return Err(AcdError::CallNotWaiting(id));
        };
        self.connect(id, agent, since);
        Ok(())
    }

    fn callback_failed(&mut self, id: CallId) -> Result<(), AcdError> {
        let call = self.calls.get_mut(&id).ok_or(AcdError::UnknownCall(id))?;
        let CallState::Dialing { agent, .. } = call.state else {
            return Err(AcdError::CallNotWaiting(id));
        };
        let failures = call.callback.unwrap_or(0) + 1;
        call.callback = Some(failures);
        let queue = &self.queues[call.queue.index()];
        if failures >= queue.callback_attempts {
            call.state = CallState::Deferred { until: self.now };
            self.callback_gives_up(id);
        } else {
            let until = self.now + queue.callback_retry_after;
            call.state = CallState::Deferred { until };
            self.timers.set(until, Timer::CallbackRetry(id, call.seq));
            self.event(Event::CallbackRetrying { call: id, failures });
        }
        // The agent waited on a line that never connected: no wrap-up.
        self.release_agent(agent);
        self.match_agent(agent);
        Ok(())
    }

    /// A callback that will never reach its caller leaves the ACD. Ends the call.
    fn callback_gives_up(&mut self, id: CallId) {
        self.leave_queue(id);
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.queues[call.queue.index()].record(Outcome::CallbackUnanswered);
        self.resolve_predictions(id, call.queue, &call.predictions, WaitOutcome::Overflowed);
        self.event(Event::CallbackUnanswered {
            call: id,
            queue: call.queue,
        });
    }

    fn offer_failed(
        &mut self,
        id: CallId,
        agent: AgentId,
        reason: OfferFailure,
    ) -> Result<(), AcdError> {
        self.offer_of(id, agent)?;
        self.fail_offer(id, agent, reason);
        Ok(())
    }

    fn login(&mut self, agent: AgentId) -> Result<(), AcdError> {
        let entry = self
            .agents
            .get_mut(agent.index())
            .ok_or(AcdError::UnknownAgent(agent))?;
        if entry.retired {
            return Err(AcdError::AgentRetired(agent));
        }
        if entry.state == AgentState::LoggedOut {
            entry.calls_answered = 0;
            entry.failures_in_a_row = 0;
            entry.pending = None;
            self.set_agent_state(agent, AgentState::Available);
            self.match_agent(agent);
        }
        Ok(())
    }

    fn logout(&mut self, agent: AgentId) -> Result<(), AcdError> {
        if agent.index() >= self.agents.len() {
            return Err(AcdError::UnknownAgent(agent));
        }
        self.log_out(agent);
        Ok(())
    }

    /// Logs a known agent out: at once, or when its call ends.
    fn log_out(&mut self, agent: AgentId) {
        let entry = &mut self.agents[agent.index()];
        match entry.state.clone() {
            AgentState::LoggedOut => return,
            AgentState::OnCall { .. } => {
                entry.pending = Some(Pending::Logout);
                return;
            }
            AgentState::Available | AgentState::Paused { .. } => {
                self.set_agent_state(agent, AgentState::LoggedOut);
            }
            AgentState::WrapUp { .. } => {
                self.finish_wrap_up(agent);
                self.set_agent_state(agent, AgentState::LoggedOut);
            }
            AgentState::Reserved { call } => {
                self.withdraw_offer(call, agent);
                self.set_agent_state(agent, AgentState::LoggedOut);
                self.back_in_line(call);
            }
        }
        self.apply_leave_policy(agent);
    }

    fn pause(&mut self, agent: AgentId, reason: String) -> Result<(), AcdError> {
        let entry = self
            .agents
            .get_mut(agent.index())
            .ok_or(AcdError::UnknownAgent(agent))?;
        if entry.retired {
            // Its pending logout must stand.
            return Err(AcdError::AgentRetired(agent));
        }
        match entry.state.clone() {
            AgentState::LoggedOut => return Err(AcdError::AgentLoggedOut(agent)),
            AgentState::OnCall { .. } => entry.pending = Some(Pending::Pause(reason)),
            AgentState::Available | AgentState::Paused { .. } => {
                self.set_agent_state(agent, AgentState::Paused { reason });
            }
            AgentState::WrapUp { .. } => {
                self.finish_wrap_up(agent);
                self.set_agent_state(agent, AgentState::Paused { reason });
            }
            AgentState::Reserved { call } => {
                self.withdraw_offer(call, agent);
                self.set_agent_state(agent, AgentState::Paused { reason });
                self.back_in_line(call);
            }
        }
        Ok(())
    }

    fn ready(&mut self, agent: AgentId) -> Result<(), AcdError> {
        let entry = self
            .agents
            .get_mut(agent.index())
            .ok_or(AcdError::UnknownAgent(agent))?;
        if entry.retired {
            return Err(AcdError::AgentRetired(agent));
        }
        match entry.state.clone() {
            AgentState::LoggedOut => return Err(AcdError::AgentLoggedOut(agent)),
            AgentState::OnCall { .. } => {
                if matches!(entry.pending, Some(Pending::Pause(_))) {
                    entry.pending = None;
                }
            }
            AgentState::Available | AgentState::Reserved { .. } => {}
            AgentState::Paused { .. } => {
                self.set_agent_state(agent, AgentState::Available);
                self.match_agent(agent);
            }
            AgentState::WrapUp { .. } => {
                self.finish_wrap_up(agent);
                self.release_agent(agent);
                self.match_agent(agent);
            }
        }
        Ok(())
    }

    fn estimate_wait(&mut self, id: CallId) -> Result<(), AcdError> {
        let call = self.calls.get(&id).ok_or(AcdError::UnknownCall(id))?;
        if !call.is_queued() {
            return Err(AcdError::CallNotWaiting(id));
        }
        let q = call.queue;
        let queue = &self.queues[q.index()];
        let position = self.lines.position(q, &call.key());
        let estimated_wait = self.estimate(queue, position);
        if let Some(predicted) = estimated_wait {
            self.predict(id, predicted);
        }
        self.event(Event::WaitEstimated {
            call: id,
            queue: q,
            position,
            estimated_wait,
        });
        Ok(())
    }

    fn leave_on_request(&mut self, id: CallId) -> Result<(), AcdError> {
        let call = self.calls.get(&id).ok_or(AcdError::UnknownCall(id))?;
        match call.state {
            CallState::Connected { .. }
            | CallState::Dialing { .. }
            | CallState::Deferred { .. } => {
                return Err(AcdError::CallNotWaiting(id));
            }
            CallState::Offered { agent, .. } => {
                self.withdraw_offer(id, agent);
                self.overflow(id, OverflowReason::CallerChoice);
                self.release_agent(agent);
                self.match_agent(agent);
            }
            CallState::Waiting => self.overflow(id, OverflowReason::CallerChoice),
        }
        Ok(())
    }

    fn survey_vote(
        &mut self,
        call: CallId,
        queue: QueueId,
        agent: AgentId,
        vote: Option<Vote>,
    ) -> Result<(), AcdError> {
        if queue.index() >= self.queues.len() {
            return Err(AcdError::UnknownQueue(queue));
        }
        if agent.index() >= self.agents.len() {
            return Err(AcdError::UnknownAgent(agent));
        }
        self.queues[queue.index()].record(Outcome::Surveyed { vote });
        self.agents[agent.index()].survey.record(vote);
        self.event(Event::SurveyRecorded {
            call,
            queue,
            agent,
            vote,
        });
        Ok(())
    }

    fn extend_wrap_up(&mut self, agent: AgentId, by: Duration) -> Result<(), AcdError> {
        let entry = self
            .agents
            .get_mut(agent.index())
            .ok_or(AcdError::UnknownAgent(agent))?;
        let AgentState::WrapUp { until } = entry.state else {
            return Err(AcdError::NotInWrapUp {
                agent,
                state: entry.state.status(),
            });
        };
        // The wrap-up still counts from its start; only its end moves, and the timer for
        // the old end goes stale with the state.
        let until = until + by;
        entry.state = AgentState::WrapUp { until };
        self.timers.set(until, Timer::WrapUpEnd(agent));
        self.event(Event::WrapUpExtended { agent, until });
        Ok(())
    }

    fn set_priority(&mut self, id: CallId, priority: u8) -> Result<(), AcdError> {
        let call = self.calls.get_mut(&id).ok_or(AcdError::UnknownCall(id))?;
        let waiting = match call.state {
            CallState::Connected { .. } | CallState::Dialing { .. } => {
                return Err(AcdError::CallNotWaiting(id));
            }
            // Out of line: the new priority places it when it comes back.
            CallState::Offered { .. } | CallState::Deferred { .. } => false,
            CallState::Waiting => true,
        };
        let (q, step) = (call.queue, usize::from(call.step));
        if waiting {
            self.lines.remove(q, step, &call.key());
        }
        call.priority = priority;
        let key = call.key();
        let position = waiting.then(|| {
            self.lines.insert(q, step, key);
            self.lines.position(q, &key)
        });
        self.event(Event::PriorityChanged {
            call: id,
            queue: q,
            priority,
            position,
        });
        // The agents it may have stay the same; looking costs little and keeps the rule
        // that no free agent is left beside a caller it could take.
        self.match_call(id);
        Ok(())
    }

    fn move_call(&mut self, id: CallId, to: QueueId) -> Result<(), AcdError> {
        let target = match self.queues.get(to.index()) {
            None => return Err(AcdError::UnknownQueue(to)),
            Some(target) if !target.open => return Err(AcdError::QueueClosed(to)),
            Some(target) => target,
        };
        let call = self.calls.get(&id).ok_or(AcdError::UnknownCall(id))?;
        if call.queue == to {
            return Err(AcdError::AlreadyInQueue {
                call: id,
                queue: to,
            });
        }
        let ringing = match call.state {
            CallState::Waiting => None,
            CallState::Offered { agent, .. } => Some(agent),
            CallState::Connected { .. }
            | CallState::Dialing { .. }
            | CallState::Deferred { .. } => return Err(AcdError::CallNotWaiting(id)),
        };
        // The limits that would turn an arrival away refuse a move instead: a supervisor's
        // move should never end the call in the other queue's overflow.
        if let Some(max) = target.max_callers.filter(|&max| target.queued >= max) {
            return Err(AcdError::QueueFull { queue: to, max });
        }
        if !target.when_no_agents.join && target.logged_in == 0 {
            return Err(AcdError::NoAgentsLoggedIn(to));
        }

        if let Some(agent) = ringing {
            self.withdraw_offer(id, agent);
        }
        self.leave_queue(id);
        let now = self.now;
        let call = self.calls.get_mut(&id).expect("checked above");
        let from = call.queue;
        let wait = now.saturating_since(call.entered);
        let predictions = std::mem::take(&mut call.predictions);
        // A deliberate move starts a new overflow chain.
        call.hops = 0;
        self.queues[from.index()].record(Outcome::Transferred);
        self.resolve_predictions(id, from, &predictions, WaitOutcome::Transferred);
        self.event(Event::CallTransferred {
            call: id,
            queue: from,
            to,
            wait,
        });
        // Its arrival time, and so its place in line, go with it; its wait, expansion
        // steps and maximum wait in the new queue count from now, as after an overflow.
        self.enter_queue(id, to);
        if let Some(agent) = ringing {
            self.release_agent(agent);
            self.match_agent(agent);
        }
        Ok(())
    }

    // ---- timers -------------------------------------------------------------------------

    fn fire_timers(&mut self, until: Timestamp) {
        while let Some((at, timer)) = self.timers.pop_due(until) {
            if !self.timer_is_live(at, timer) {
                continue;
            }
            // Each timer acts at its own deadline, so that waits are exact even when the
            // timeout input comes late.
            self.now = self.now.max(at);
            match timer {
                Timer::IntervalEnd => self.close_interval(),
                Timer::WrapUpEnd(agent) => {
                    self.finish_wrap_up(agent);
                    self.release_agent(agent);
                    self.match_agent(agent);
                }
                Timer::RingTimeout(call, _) => {
                    if let Some(&Call {
                        state: CallState::Offered { agent, .. },
                        ..
                    }) = self.calls.get(&call)
                    {
                        self.command(Command::StopRinging { call, agent });
                        self.fail_offer(call, agent, OfferFailure::NoAnswer);
                    }
                }
                Timer::Expansion(call, _) => self.expand(call),
                Timer::MaxWait(call, _) => {
                    let Some(entry) = self.calls.get_mut(&call) else {
                        continue;
                    };
                    entry.max_wait_due = None;
                    match entry.state {
                        CallState::Waiting => self.overflow(call, OverflowReason::MaxWait),
                        // A ringing caller is not pulled away; it overflows if the offer fails.
                        CallState::Offered { .. } => entry.max_wait_reached = true,
                        CallState::Connected { .. }
                        | CallState::Dialing { .. }
                        | CallState::Deferred { .. } => {}
                    }
                }
                Timer::CallbackRetry(call, _) => {
                    // Back in line, at its original place.
                    if let Some(entry) = self.calls.get_mut(&call) {
                        entry.state = CallState::Waiting;
                        self.lines
                            .insert(entry.queue, usize::from(entry.step), entry.key());
                    }
                    self.match_call(call);
                }
                Timer::Retry(call, seq) => {
                    let Some(entry) = self.calls.get_mut(&call) else {
                        continue;
                    };
                    entry.retries.pop_front();
                    if let Some(&next) = entry.retries.front() {
                        self.timers.set(next, Timer::Retry(call, seq));
                    }
                    self.match_call(call);
                }
            }
        }
        self.now = until;
    }

    /// Whether a timer still matches its owner; one that does not was cancelled.
    fn timer_is_live(&self, at: Timestamp, timer: Timer) -> bool {
        let call = |id: CallId, seq: u64| self.calls.get(&id).filter(|call| call.seq == seq);
        match timer {
            Timer::IntervalEnd => true,
            Timer::WrapUpEnd(agent) => {
                self.agents[agent.index()].state == AgentState::WrapUp { until: at }
            }
            Timer::RingTimeout(id, seq) => call(id, seq).is_some_and(
                |c| matches!(c.state, CallState::Offered { ring_due, .. } if ring_due == at),
            ),
            Timer::Expansion(id, seq) => call(id, seq).is_some_and(|c| c.expansion_due == Some(at)),
            Timer::MaxWait(id, seq) => call(id, seq).is_some_and(|c| c.max_wait_due == Some(at)),
            Timer::Retry(id, seq) => call(id, seq).is_some_and(|c| c.retries.front() == Some(&at)),
            Timer::CallbackRetry(id, seq) => {
                call(id, seq).is_some_and(|c| c.state == CallState::Deferred { until: at })
            }
        }
    }

    /// Drops stale timers from the front, so that `poll_timeout` names a live one.
    fn prune_timers(&mut self) {
        while let Some((at, timer)) = self.timers.peek() {
            if self.timer_is_live(at, timer) {
                break;
            }
            self.timers.pop();
        }
    }

    fn expand(&mut self, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.expansion_due = None;
        let queue = &mut self.queues[call.queue.index()];
        let key = call.key();
        let from = usize::from(call.step);
        let to = queue
            .step_after(self.now.saturating_since(call.entered))
            .max(from + 1);
        call.step = to as u8;
        if let Some(next) = queue.steps.get(to + 1) {
            let due = call.entered + next.after;
            call.expansion_due = Some(due);
            self.timers.set(due, Timer::Expansion(id, call.seq));
        }
        let (q, step) = (call.queue, call.step);
        if call.state == CallState::Waiting {
            self.lines.remove(q, from, &key);
            self.lines.insert(q, to, key);
        }
        self.event(Event::SkillsExpanded {
            call: id,
            queue: q,
            step,
        });
        self.match_call(id);
    }

    fn close_interval(&mut self) {
        let (start, end) = (self.interval_start, self.now);
        let kept = self.config.statistics.intervals_kept;
        for queue in &mut self.queues {
            let report = IntervalReport {
                start,
                end,
                summary: queue.interval.summary(),
            };
            queue.interval.clear();
            if kept > 0 {
                if queue.closed.len() == kept {
                    queue.closed.pop_front();
                }
                queue.closed.push_back(report);
            }
        }
        for index in 0..self.agents.len() {
            self.account(index);
        }
        let time = std::mem::take(&mut self.interval_agent_time);
        if kept > 0 {
            if self.closed_agent_time.len() == kept {
                self.closed_agent_time.pop_front();
            }
            self.closed_agent_time
                .push_back(AgentIntervalReport { start, end, time });
        }
        self.interval_start = end;
        let statistics = &self.config.statistics;
        let next = metrics::interval_end(end, statistics.interval, statistics.interval_origin);
        self.timers.set(next, Timer::IntervalEnd);
        self.event(Event::IntervalClosed { start, end });
    }

    // ---- queue mechanics ----------------------------------------------------------------

    /// Puts a call (new, or overflowing from another queue) into `q`, or sends it on if a
    /// limit says so, then looks for an agent.
    fn enter_queue(&mut self, id: CallId, q: QueueId) {
        let now = self.now;
        let hop_limit = self.queues.len() as u32;
        let queue = &mut self.queues[q.index()];
        queue.record(Outcome::Offered);
        let call = self
            .calls
            .get_mut(&id)
            .expect("the caller inserted the call");
        call.queue = q;
        call.entered = now;
        call.step = 0;
        call.state = CallState::Waiting;
        call.max_wait_reached = false;
        call.lightness = u32::MAX - queue.weight;
        call.hops += 1;
        if call.hops > hop_limit {
            return self.overflow_to(id, OverflowReason::OverflowLoop, OverflowTarget::Hangup);
        }
        if queue.max_callers.is_some_and(|max| queue.queued >= max) {
            return self.overflow(id, OverflowReason::QueueFull);
        }
        if !queue.when_no_agents.join && queue.logged_in == 0 {
            return self.overflow(id, OverflowReason::NoAgents);
        }

        queue.estimator.advance(now, queue.queued as usize);
        queue.queued += 1;
        let key = call.key();
        self.lines.insert(q, 0, key);
        if let Some(step) = queue.steps.get(1) {
            call.expansion_due = Some(now + step.after);
            self.timers
                .set(now + step.after, Timer::Expansion(id, call.seq));
        }
        // A callback has nobody on the line to leave after a maximum wait.
        if let Some(max_wait) = queue.max_wait.filter(|_| call.callback.is_none()) {
            call.max_wait_due = Some(now + max_wait);
            self.timers
                .set(now + max_wait, Timer::MaxWait(id, call.seq));
        }

        let position = self.lines.position(q, &key);
        match self.pick_agent(q, 0, key.seq) {
            Some(agent) => {
                self.event(Event::CallQueued {
                    call: id,
                    queue: q,
                    position,
                    estimated_wait: None,
                });
                self.offer(id, agent);
            }
            None => {
                let estimated_wait = self.estimate(&self.queues[q.index()], position);
                if let Some(predicted) = estimated_wait {
                    self.predict(id, predicted);
                }
                self.event(Event::CallQueued {
                    call: id,
                    queue: q,
                    position,
                    estimated_wait,
                });
            }
        }
    }

    /// The caller hung up before an answer. Ends the call.
    fn abandon(&mut self, id: CallId) {
        let position = match self.calls.get(&id) {
            Some(call) => self.lines.position(call.queue, &call.key()),
            None => return,
        };
        self.leave_queue(id);
        let call = self.calls.remove(&id).expect("checked above");
        let now = self.now;
        let wait = now.saturating_since(call.entered);
        let queue = &mut self.queues[call.queue.index()];
        queue.estimator.record_abandon();
        queue.record(Outcome::Abandoned { wait });
        self.resolve_predictions(id, call.queue, &call.predictions, WaitOutcome::Abandoned);
        self.event(Event::CallAbandoned {
            call: id,
            queue: call.queue,
            wait,
            position,
        });
    }

    /// Sends a call through its queue's overflow.
    fn overflow(&mut self, id: CallId, reason: OverflowReason) {
        let target = match self.calls.get(&id) {
            Some(call) => self.queues[call.queue.index()].overflow.clone(),
            None => return,
        };
        self.overflow_to(id, reason, target);
    }

    fn overflow_to(&mut self, id: CallId, reason: OverflowReason, target: OverflowTarget) {
        let at_entry = !self.leave_queue(id);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let q = call.queue;
        let predictions = std::mem::take(&mut call.predictions);
        self.queues[q.index()].record(Outcome::Overflowed);
        self.resolve_predictions(id, q, &predictions, WaitOutcome::Overflowed);
        let to = match target {
            OverflowTarget::Hangup => {
                self.calls.remove(&id);
                self.command(Command::Disconnect { call: id, reason });
                OverflowedTo::Hangup
            }
            OverflowTarget::External(destination) => {
                self.calls.remove(&id);
                self.command(Command::RouteOut {
                    call: id,
                    destination: destination.clone(),
                });
                OverflowedTo::External(destination)
            }
            OverflowTarget::Queue(next) => {
                self.event(Event::CallOverflowed {
                    call: id,
                    queue: q,
                    reason,
                    to: OverflowedTo::Queue(next),
                    at_entry,
                });
                self.enter_queue(id, next);
                return;
            }
        };
        self.event(Event::CallOverflowed {
            call: id,
            queue: q,
            reason,
            to,
            at_entry,
        });
    }

    /// Takes a queued (waiting or ringing) call out of its queue's line and timers. The
    /// caller handles the ring timer and the agent. False when the call was not in the
    /// queue: refused on entry, or unknown.
    fn leave_queue(&mut self, id: CallId) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let key = call.key();
        let (q, step) = (call.queue, usize::from(call.step));
        // Out of line but still the queue's: ringing, being called back, between attempts.
        let ringing = matches!(
            call.state,
            CallState::Offered { .. } | CallState::Dialing { .. } | CallState::Deferred { .. }
        );
        // A call refused at the door (queue full, no agents) was never counted in.
        let counted = self.lines.remove(q, step, &key) || ringing;
        self.cancel_queue_timers(id);
        let queue = &mut self.queues[q.index()];
        if counted {
            queue.estimator.advance(self.now, queue.queued as usize);
            queue.queued -= 1;
        }
        counted
    }

    fn cancel_queue_timers(&mut self, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // Their timers go stale: see `timer_is_live`. Retries stay: the agents who did not
        // take the call are skipped for it in whatever queue it goes on to, and its retry
        // timer offers it again when they may take it.
        call.expansion_due = None;
        call.max_wait_due = None;
    }

    fn predict(&mut self, id: CallId, predicted: Duration) {
        let now = self.now;
        if let Some(call) = self.calls.get_mut(&id) {
            call.predictions.push((now, predicted));
        }
    }

    fn resolve_predictions(
        &mut self,
        id: CallId,
        q: QueueId,
        predictions: &Predictions,
        outcome: WaitOutcome,
    ) {
        for (made_at, predicted) in predictions.iter() {
            let actual = self.now.saturating_since(made_at);
            // Only answered waits measure the estimator; the others are censored.
            if outcome == WaitOutcome::Answered {
                self.queues[q.index()].record(Outcome::PredictionResolved { predicted, actual });
            }
            self.event(Event::WaitPredictionResolved {
                call: id,
                queue: q,
                made_at,
                predicted,
                actual,
                outcome,
            });
        }
    }

    /// The expected wait of the caller at `position` in `queue`.
    fn estimate(&self, queue: &Queue, position: u32) -> Option<Duration> {
        queue
            .estimator
            .estimate(position, queue.staffed as f64 / agent::SHARE_UNIT as f64)
    }

    /// When the last agent who could serve a queue logs out, its callers leave if the queue
    /// says so.
    fn apply_leave_policy(&mut self, agent: AgentId) {
        let reach: Vec<QueueId> = self.agents[agent.index()]
            .reach
            .iter()
            .map(|&(q, _)| q)
            .collect();
        for q in reach {
            self.leave_if_unserved(q);
        }
    }

    /// If no agent who could serve the queue is logged in and its policy says so, its
    /// waiting callers leave.
    fn leave_if_unserved(&mut self, q: QueueId) {
        let queue = &self.queues[q.index()];
        if queue.logged_in > 0 || !queue.when_no_agents.leave {
            return;
        }
        let mut leaving: Vec<CallKey> = self
            .lines
            .steps(q)
            .iter()
            .flat_map(|set| set.iter().copied())
            .collect();
        leaving.sort_unstable();
        for key in leaving {
            self.overflow(key.call, OverflowReason::NoAgents);
        }
    }

    // ---- offers -------------------------------------------------------------------------

    /// The offer of `call` to `agent`: when it started.
    fn offer_of(&self, call: CallId, agent: AgentId) -> Result<Timestamp, AcdError> {
        if agent.index() >= self.agents.len() {
            return Err(AcdError::UnknownAgent(agent));
        }
        match self.calls.get(&call).map(|c| c.state) {
            None => Err(AcdError::UnknownCall(call)),
            Some(CallState::Offered {
                agent: offered,
                since,
                ..
            }) if offered == agent => Ok(since),
            Some(_) => Err(AcdError::NoSuchOffer { call, agent }),
        }
    }

    fn offer(&mut self, id: CallId, agent: AgentId) {
        let now = self.now;
        let call = self.calls.get_mut(&id).expect("offered calls exist");
        self.lines
            .remove(call.queue, usize::from(call.step), &call.key());
        let queue = &mut self.queues[call.queue.index()];
        queue.cursor = agent.index();
        let ring_due = now + queue.ring_timeout;
        call.state = CallState::Offered {
            agent,
            since: now,
            ring_due,
        };
        let q = call.queue;
        self.timers.set(ring_due, Timer::RingTimeout(id, call.seq));
        self.set_agent_state(agent, AgentState::Reserved { call: id });
        self.command(Command::Ring {
            call: id,
            agent,
            queue: q,
        });
    }

    /// An offer was not taken: the call goes back to its place, the agent is skipped for it
    /// for a while and may be paused.
    fn fail_offer(&mut self, id: CallId, agent: AgentId, reason: OfferFailure) {
        let now = self.now;
        let call = self
            .calls
            .get_mut(&id)
            .expect("failed offers are of live calls");
        call.state = CallState::Waiting;
        self.lines
            .insert(call.queue, usize::from(call.step), call.key());
        let q = call.queue;
        let queue = &mut self.queues[q.index()];
        queue.record(Outcome::OfferFailed);
        let (retry_after, auto_pause_after) = (queue.retry_after, queue.auto_pause_after);
        let seq = call.seq;
        let max_wait_reached = call.max_wait_reached;
        if !retry_after.is_zero() {
            let until = now + retry_after;
            if call.retries.is_empty() {
                self.timers.set(until, Timer::Retry(id, seq));
            }
            call.retries.push_back(until);
        }
        self.event(Event::OfferFailed {
            call: id,
            agent,
            queue: q,
            reason,
        });

        let entry = &mut self.agents[agent.index()];
        if !retry_after.is_zero() {
            entry.exclusions.retain(|&(_, until)| until > now);
            entry.exclusions.push((seq, now + retry_after));
        }
        entry.failures_in_a_row += 1;
        if auto_pause_after.is_some_and(|limit| entry.failures_in_a_row >= limit)
            && entry.pending != Some(Pending::Logout)
        {
            entry.pending = None;
            entry.failures_in_a_row = 0;
            self.set_agent_state(
                agent,
                AgentState::Paused {
                    reason: AUTO_PAUSE_REASON.to_owned(),
                },
            );
        } else {
            self.release_agent(agent);
        }
        if self.agents[agent.index()].state == AgentState::LoggedOut {
            self.apply_leave_policy(agent);
        }
        // A caller whose maximum wait passed while it rang leaves now. Then the agent: it may
        // owe a higher-priority caller than this one. Then the caller tries the other agents.
        if max_wait_reached {
            self.overflow(id, OverflowReason::MaxWait);
        }
        self.match_agent(agent);
        self.match_call(id);
    }

    /// After an offer ended without an answer: a caller whose maximum wait passed while it
    /// rang overflows now; any other looks for another agent.
    fn back_in_line(&mut self, id: CallId) {
        match self.calls.get(&id) {
            Some(call) if call.max_wait_reached => self.overflow(id, OverflowReason::MaxWait),
            Some(_) => self.match_call(id),
            None => {}
        }
    }

    /// The agent is leaving (logout, pause) while its phone rings: the call goes back to its
    /// place without counting against the agent.
    fn withdraw_offer(&mut self, id: CallId, agent: AgentId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // Its ring timer goes stale with the state.
        call.state = CallState::Waiting;
        self.lines
            .insert(call.queue, usize::from(call.step), call.key());
        self.command(Command::StopRinging { call: id, agent });
    }

    // ---- matching -----------------------------------------------------------------------

    /// If the call waits and an agent may take it, offer it.
    fn match_call(&mut self, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.state != CallState::Waiting {
            return;
        }
        if let Some(agent) = self.pick_agent(call.queue, usize::from(call.step), call.seq) {
            self.offer(id, agent);
        }
    }

    /// If the agent is free and a caller waits for it, offer that caller.
    fn match_agent(&mut self, agent: AgentId) {
        if self.agents[agent.index()].state != AgentState::Available {
            return;
        }
        if let Some(key) = self.pick_call(agent) {
            self.offer(key.call, agent);
        }
    }

    /// The available agent the queue's strategy picks for the call `seq` at `step`.
    fn pick_agent(&self, q: QueueId, step: usize, seq: u64) -> Option<AgentId> {
        let queue = &self.queues[q.index()];
        let eligible = &queue.steps[step].eligible;
        let now = self.now;
        let may_take = |agent: AgentId| {
            eligible.contains(agent.index()) && !self.agents[agent.index()].excludes(seq, now)
        };
        // `available` is in longest-idle order, so the first of equals is the longest idle.
        let mut candidates = self.idle.iter().filter(|&a| may_take(a));
        match queue.strategy {
            Strategy::LongestIdle => candidates.next(),
            Strategy::FewestCalls => {
                let mut best: Option<(u32, AgentId)> = None;
                for agent in candidates {
                    let calls = self.agents[agent.index()].calls_answered;
                    if best.is_none_or(|(fewest, _)| calls < fewest) {
                        best = Some((calls, agent));
                    }
                }
                best.map(|(_, agent)| agent)
            }
            Strategy::BestSkill => {
                let mut best: Option<(u32, AgentId)> = None;
                for agent in candidates {
                    let entry = &self.agents[agent.index()];
                    let score = queue
                        .required
                        .iter()
                        .map(|&(skill, _)| u32::from(entry.level(skill).unwrap_or(0)))
                        .sum();
                    if best.is_none_or(|(highest, _)| score > highest) {
                        best = Some((score, agent));
                    }
                }
                best.map(|(_, agent)| agent)
            }
            Strategy::RoundRobin => eligible
                .iter_from(queue.cursor.wrapping_add(1))
                .map(|index| AgentId(index as u32))
                .find(|&agent| {
                    self.agents[agent.index()].state == AgentState::Available && may_take(agent)
                }),
        }
    }

    /// The waiting caller the agent should take: highest priority, earliest arrival, heavier
    /// queue, across every queue and step it may serve.
    fn pick_call(&self, agent: AgentId) -> Option<CallKey> {
        let entry = &self.agents[agent.index()];
        let now = self.now;
        let mut best: Option<CallKey> = None;
        for &(q, first_step) in &entry.reach {
            let first_step = usize::from(first_step);
            for (step, head) in self.lines.heads(q, first_step).iter().enumerate() {
                let Some(head) = *head else { continue };
                let step = first_step + step;
                if best.is_some_and(|best| best < head) {
                    continue;
                }
                let candidate = if entry.excludes(head.seq, now) {
                    self.lines
                        .set(q, step)
                        .iter()
                        .copied()
                        .find(|key| !entry.excludes(key.seq, now))
                } else {
                    Some(head)
                };
                if let Some(candidate) = candidate
                    && best.is_none_or(|best| candidate < best)
                {
                    best = Some(candidate);
                }
            }
        }
        best
    }

    // ---- agents -------------------------------------------------------------------------

    /// After an offer or a call and its wrap-up: what the agent asked for meanwhile, or
    /// available.
    fn release_agent(&mut self, agent: AgentId) {
        let state = match self.agents[agent.index()].pending.take() {
            Some(Pending::Logout) => AgentState::LoggedOut,
            Some(Pending::Pause(reason)) => AgentState::Paused { reason },
            None => AgentState::Available,
        };
        let logged_out = state == AgentState::LoggedOut;
        self.set_agent_state(agent, state);
        if logged_out {
            self.apply_leave_policy(agent);
        }
    }

    /// Records the wrap-up (possibly of zero length) of the agent's last call.
    fn finish_wrap_up(&mut self, agent: AgentId) {
        let entry = &mut self.agents[agent.index()];
        let wrap_up = match entry.state {
            AgentState::WrapUp { .. } => self.now.saturating_since(entry.since),
            _ => Duration::ZERO,
        };
        if let Some(LastCall {
            call,
            queue: q,
            talk,
        }) = entry.last_call.take()
        {
            let queue = &mut self.queues[q.index()];
            queue.record(Outcome::WrappedUp { wrap_up });
            queue.estimator.record_handle(talk + wrap_up);
            self.event(Event::WrapUpEnded {
                call,
                agent,
                queue: q,
                wrap_up,
            });
        }
    }

    fn set_agent_state(&mut self, agent: AgentId, state: AgentState) {
        let index = agent.index();
        self.account(index);
        let now = self.now;
        let entry = &mut self.agents[index];
        let old = std::mem::replace(&mut entry.state, state);
        entry.since = now;
        if old == AgentState::Available {
            self.idle.remove(agent);
        }
        if entry.state == AgentState::Available {
            self.idle.push_back(agent);
        }
        if old.is_staffed() != entry.state.is_staffed() {
            for &q in &entry.home_queues {
                let queue = &mut self.queues[q.index()];
                if entry.state.is_staffed() {
                    queue.staffed += entry.share;
                } else {
                    queue.staffed -= entry.share;
                }
            }
        }
        let logged_in = entry.state != AgentState::LoggedOut;
        if (old != AgentState::LoggedOut) != logged_in {
            for &(q, _) in &entry.reach {
                let queue = &mut self.queues[q.index()];
                if logged_in {
                    queue.logged_in += 1;
                } else {
                    queue.logged_in -= 1;
                }
            }
        }
        let reason = match &entry.state {
            AgentState::Paused { reason } => Some(reason.clone()),
            _ => None,
        };
        let status = entry.state.status();
        self.event(Event::AgentStateChanged {
            agent,
            state: status,
            reason,
        });
    }

    /// Adds the agent's time in its state up to now to the totals.
    fn account(&mut self, index: usize) {
        let entry = &mut self.agents[index];
        let elapsed = self.now.saturating_since(entry.accounted);
        entry.accounted = self.now;
        let status = entry.state.status();
        self.agent_time.add(status, elapsed);
        self.interval_agent_time.add(status, elapsed);
    }

    // ---- outputs ------------------------------------------------------------------------

    fn event(&mut self, event: Event) {
        self.outputs.push_back((self.now, Output::Event(event)));
    }

    fn command(&mut self, command: Command) {
        self.outputs.push_back((self.now, Output::Command(command)));
    }
}
