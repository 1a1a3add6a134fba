//! Changing a running ACD's configuration: one queue's settings
//! ([`Input::UpdateQueue`](crate::Input::UpdateQueue)) or a whole new configuration
//! matched by name ([`Input::Reconfigure`](crate::Input::Reconfigure)).
//!
//! Both go the same way. The new configuration is validated on its own, as
//! [`Acd::new`] would take it; then merged into the ACD's tables, which keep every queue and
//! agent ever configured at its id (closed and retired ones with their last settings);
//! then the merged tables are resolved by the same code that builds a new ACD, and the
//! live state (calls, agents' states, statistics, estimators) moves onto them. Nothing
//! changes until everything is known to be valid, so a refused configuration leaves the
//! ACD as it was. Then the consequences: callers whose new maximum wait has passed
//! overflow, removed agents log out, queues nobody can serve lose their callers if their
//! policy says so, and every waiting caller looks for an agent.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::acd::agent::{Agent, AgentState};
use crate::acd::call::{CallKey, CallState};
use crate::acd::lines::Lines;
use crate::acd::queue::Queue;
use crate::acd::timer::Timer;
use crate::acd::{Acd, setup};
use crate::config::{AcdConfig, QueueUpdate};
use crate::error::AcdError;
use crate::ids::{AgentId, QueueId};
use crate::output::{ConfigChange, Event, OverflowReason};

/// A configuration merged into the ACD's tables, and what it changes.
struct Plan {
    /// Every queue and agent ever configured, in id order; every skill ever declared.
    tables: AcdConfig,
    /// Per queue id: left out of the new configuration.
    closed: Vec<bool>,
    /// Per agent id: left out of the new configuration.
    retired: Vec<bool>,
    queue_changes: Vec<(QueueId, ConfigChange)>,
    agent_changes: Vec<(AgentId, ConfigChange)>,
}

impl Acd {
    pub(super) fn update_queue(&mut self, q: QueueId, update: QueueUpdate) -> Result<(), AcdError> {
        match self.queues.get(q.index()) {
            None => return Err(AcdError::UnknownQueue(q)),
            Some(queue) if !queue.open => return Err(AcdError::QueueClosed(q)),
            Some(_) => {}
        }
        let mut tables = self.config.clone();
        update.apply_to(&mut tables.queues[q.index()]);
        // The configuration in force, as a site would write it: open queues and working
        // agents. Matched by name, everything keeps its id.
        let given = AcdConfig {
            skills: tables.skills,
            queues: tables
                .queues
                .into_iter()
                .zip(&self.queues)
                .filter(|(_, queue)| queue.open)
                .map(|(config, _)| config)
                .collect(),
            agents: tables
                .agents
                .into_iter()
                .zip(&self.agents)
                .filter(|(_, agent)| !agent.retired)
                .map(|(config, _)| config)
                .collect(),
            statistics: tables.statistics,
        };
        self.apply_config(given, Some(q))
    }

    pub(super) fn reconfigure(&mut self, config: AcdConfig) -> Result<(), AcdError> {
        self.apply_config(config, None)
    }

    /// Validates `given`, then applies it; `touched` is reported as changed even if its
    /// settings are the same.
    fn apply_config(&mut self, given: AcdConfig, touched: Option<QueueId>) -> Result<(), AcdError> {
        let now = self.now;
        // On its own first, as `Acd::new` would take it, so that errors name its fields.
        setup::build(&given, now, &[])?;
        let running = &self.config.statistics;
        if given.statistics.interval != running.interval {
            return Err(AcdError::FixedWhileRunning {
                field: "statistics.interval",
            });
        }
        if given.statistics.interval_origin != running.interval_origin {
            return Err(AcdError::FixedWhileRunning {
                field: "statistics.interval_origin",
            });
        }
        let plan = self.plan(given, touched)?;
        let (queues, agents) = setup::build(&plan.tables, now, &plan.closed)?;
        self.apply_plan(plan, queues, agents);
        Ok(())
    }

    /// Merges `given` into the tables by name; refuses to close a queue with callers.
    fn plan(&self, given: AcdConfig, touched: Option<QueueId>) -> Result<Plan, AcdError> {
        let mut tables = AcdConfig {
            skills: self.config.skills.clone(),
            queues: self.config.queues.clone(),
            agents: self.config.agents.clone(),
            statistics: given.statistics,
        };
        let known: FxHashSet<&str> = self.config.skills.iter().map(String::as_str).collect();
        for skill in &given.skills {
            if !known.contains(skill.as_str()) {
                tables.skills.push(skill.clone());
            }
        }

        let mut given_queues: FxHashMap<&str, usize> = given
            .queues
            .iter()
            .enumerate()
            .map(|(index, queue)| (queue.name.as_str(), index))
            .collect();
        let mut closed = Vec::with_capacity(self.queues.len() + given_queues.len());
        let mut queue_changes = Vec::new();
        for (index, queue) in self.queues.iter().enumerate() {
            let id = QueueId(index as u32);
            match given_queues.remove(queue.name.as_str()) {
                Some(new) => {
                    let new = &given.queues[new];
                    let change = if !queue.open {
                        Some(ConfigChange::Restored)
                    } else if *new != tables.queues[index] || touched == Some(id) {
                        Some(ConfigChange::Changed)
                    } else {
                        None
                    };
                    queue_changes.extend(change.map(|change| (id, change)));
                    tables.queues[index] = new.clone();
                    closed.push(false);
                }
                None => {
                    if queue.open {
                        if queue.queued > 0 {
                            return Err(AcdError::QueueNotEmpty {
                                queue: id,
                                name: queue.name.clone(),
                                callers: queue.queued,
                            });
                        }
                        queue_changes.push((id, ConfigChange::Removed));
                    }
                    closed.push(true);
                }
            }
        }
        // New queues, in the order the configuration gives them.
        for queue in &given.queues {
            if given_queues.contains_key(queue.name.as_str()) {
                queue_changes.push((QueueId(tables.queues.len() as u32), ConfigChange::Added));
                tables.queues.push(queue.clone());
                closed.push(false);
            }
        }

        let mut given_agents: FxHashMap<&str, usize> = given
            .agents
            .iter()
            .enumerate()
            .map(|(index, agent)| (agent.name.as_str(), index))
            .collect();
        let mut retired = Vec::with_capacity(self.agents.len() + given_agents.len());
        let mut agent_changes = Vec::new();
        for (index, agent) in self.agents.iter().enumerate() {
            let id = AgentId(index as u32);
            match given_agents.remove(agent.name.as_str()) {
                Some(new) => {
                    let new = &given.agents[new];
                    let change = if agent.retired {
                        Some(ConfigChange::Restored)
                    } else if *new != tables.agents[index] {
                        Some(ConfigChange::Changed)
                    } else {
                        None
                    };
                    agent_changes.extend(change.map(|change| (id, change)));
                    tables.agents[index] = new.clone();
                    retired.push(false);
                }
                None => {
                    if !agent.retired {
                        agent_changes.push((id, ConfigChange::Removed));
                    }
                    retired.push(true);
                }
            }
        }
        for agent in &given.agents {
            if given_agents.contains_key(agent.name.as_str()) {
                agent_changes.push((AgentId(tables.agents.len() as u32), ConfigChange::Added));
                tables.agents.push(agent.clone());
                retired.push(false);
            }
        }

        Ok(Plan {
            tables,
            closed,
            retired,
            queue_changes,
            agent_changes,
        })
    }

    /// Moves the live state onto the resolved tables and deals with the consequences.
    fn apply_plan(&mut self, plan: Plan, mut queues: Vec<Queue>, mut agents: Vec<Agent>) {
        let now = self.now;
        let Plan {
            tables,
            retired,
            queue_changes,
            agent_changes,
            ..
        } = plan;
        let statistics = tables.statistics;
        let window_changed = statistics.estimator_window != self.config.statistics.estimator_window;
        let kept = statistics.intervals_kept;

        // Queues keep what they have lived through: their callers, estimator, statistics.
        for (index, (old, new)) in std::mem::take(&mut self.queues)
            .into_iter()
            .zip(queues.iter_mut())
            .enumerate()
        {
            new.queued = old.queued;
            new.cursor = old.cursor;
            new.estimator = old.estimator;
            new.stats = old.stats;
            new.interval = old.interval;
            new.closed = old.closed;
            let handle_time = tables.queues[index].expected_handle_time;
            if handle_time != self.config.queues[index].expected_handle_time {
                new.estimator.set_expected_handle(handle_time);
            }
            if window_changed {
                let queued = new.queued as usize;
                new.estimator
                    .set_window(statistics.estimator_window, now, queued);
            }
        }
        for queue in &mut queues {
            while queue.closed.len() > kept {
                queue.closed.pop_front();
            }
        }
        while self.closed_agent_time.len() > kept {
            self.closed_agent_time.pop_front();
        }

        // Agents keep their state and what they did; their skills and reach are new.
        for (old, new) in std::mem::take(&mut self.agents)
            .into_iter()
            .zip(agents.iter_mut())
        {
            new.state = old.state;
            new.since = old.since;
            new.accounted = old.accounted;
            new.pending = old.pending;
            new.failures_in_a_row = old.failures_in_a_row;
            new.calls_answered = old.calls_answered;
            new.survey = old.survey;
            new.last_call = old.last_call;
            new.exclusions = old.exclusions;
        }
        for (agent, retired) in agents.iter_mut().zip(retired) {
            agent.retired = retired;
        }
        self.queues = queues;
        self.agents = agents;
        self.idle.grow(self.agents.len());
        self.config = tables;

        // What follows from who is logged in, under the new reach.
        for queue in &mut self.queues {
            queue.logged_in = 0;
            queue.staffed = 0;
        }
        for agent in &self.agents {
            if agent.state != AgentState::LoggedOut {
                for &(q, _) in &agent.reach {
                    self.queues[q.index()].logged_in += 1;
                }
            }
            if agent.state.is_staffed() {
                for &q in &agent.home_queues {
                    self.queues[q.index()].staffed += agent.share;
                }
            }
        }

        // Reported before their consequences, so that a tally of the events classifies
        // what follows by the new thresholds.
        for (queue, change) in queue_changes {
            let entry = &self.queues[queue.index()];
            self.event(Event::QueueConfigured {
                queue,
                name: entry.name.clone(),
                change,
                thresholds: entry.thresholds,
            });
        }
        for &(agent, change) in &agent_changes {
            self.event(Event::AgentConfigured {
                agent,
                name: self.agents[agent.index()].name.clone(),
                change,
            });
        }

        let removed: Vec<AgentId> = agent_changes
            .iter()
            .filter(|&&(_, change)| change == ConfigChange::Removed)
            .map(|&(agent, _)| agent)
            .collect();
        // No caller placed from here on may be offered to a removed agent: the free ones
        // leave first (their queues' leave policies are applied below).
        for &agent in &removed {
            if self.agents[agent.index()].state == AgentState::Available {
                self.set_agent_state(agent, AgentState::LoggedOut);
            }
        }
        let overdue = self.rebuild_lines();
        for key in overdue {
            self.overflow(key.call, OverflowReason::MaxWait);
        }
        for &agent in &removed {
            self.log_out(agent);
        }
        for q in 0..self.queues.len() {
            self.leave_if_unserved(QueueId(q as u32));
        }
        // Callers in line order, each offered to an agent its queue now allows.
        let mut waiting: Vec<CallKey> = self
            .calls
            .values()
            .filter(|call| call.state == CallState::Waiting)
            .map(|call| call.key())
            .collect();
        waiting.sort_unstable();
        for key in waiting {
            self.match_call(key.call);
        }
    }

    /// Puts every waiting caller back in line under its queue's new settings: its weight,
    /// the expansion step its wait has reached, and the timers of its next step and of its
    /// maximum wait (both counted from when it entered the queue). Returns, in line order,
    /// the waiting callers whose new maximum wait has already passed; a ringing one
    /// overflows when its offer ends.
    fn rebuild_lines(&mut self) -> Vec<CallKey> {
        let now = self.now;
        self.lines = Lines::new(self.queues.iter().map(|queue| queue.steps.len()));
        let mut queued: Vec<(u64, crate::ids::CallId)> = self
            .calls
            .values()
            .filter(|call| call.is_queued())
            .map(|call| (call.seq, call.id))
            .collect();
        queued.sort_unstable();
        let mut overdue = Vec::new();
        for (seq, id) in queued {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            let queue = &self.queues[call.queue.index()];
            call.lightness = u32::MAX - queue.weight;
            call.step = queue.step_after(now.saturating_since(call.entered)) as u8;
            if matches!(call.state, CallState::Waiting | CallState::Offered { .. }) {
                let next = queue
                    .steps
                    .get(usize::from(call.step) + 1)
                    .map(|step| call.entered + step.after);
                if next != call.expansion_due {
                    call.expansion_due = next;
                    if let Some(due) = next {
                        self.timers.set(due, Timer::Expansion(id, seq));
                    }
                }
                // A callback has nobody on the line to leave after a maximum wait.
                if call.callback.is_none() {
                    match queue.max_wait.map(|wait| call.entered + wait) {
                        Some(due) if due > now => {
                            if call.max_wait_due != Some(due) {
                                call.max_wait_due = Some(due);
                                self.timers.set(due, Timer::MaxWait(id, seq));
                            }
                            call.max_wait_reached = false;
                        }
                        Some(_) => {
                            call.max_wait_due = None;
                            if call.state == CallState::Waiting {
                                overdue.push(call.key());
                            } else {
                                call.max_wait_reached = true;
                            }
                        }
                        None => {
                            call.max_wait_due = None;
                            call.max_wait_reached = false;
                        }
                    }
                }
            }
            if call.state == CallState::Waiting {
                self.lines
                    .insert(call.queue, usize::from(call.step), call.key());
            }
        }
        overdue.sort_unstable();
        overdue
    }
}
