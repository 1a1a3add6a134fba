//! A read-only picture of the ACD for screens, the API and the metrics exporter.

use std::time::Duration;

use serde::Serialize;

use crate::acd::AgentState;
use crate::ids::{AgentId, CallId, QueueId};
use crate::metrics::{AgentTime, QueueSummary};
use crate::time::Timestamp;

/// Everything at one instant. Built by [`crate::Acd::snapshot`] and shared with readers
/// through [`crate::handoff::SnapshotCell`].
///
/// It lists every queue and agent by id and name, so it is also where an application
/// learns the ids after an [`crate::Input::Reconfigure`]: `queues[i].id` is `QueueId(i)`,
/// closed queues and retired agents included and flagged.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AcdSnapshot {
    /// When it was taken.
    pub at: Timestamp,
    /// Every queue.
    pub queues: Vec<QueueSnapshot>,
    /// Every agent.
    pub agents: Vec<AgentSnapshot>,
    /// Agent time since start.
    pub agent_time: AgentTime,
    /// Agent time in the current interval.
    pub interval_agent_time: AgentTime,
}

/// One queue, live.
#[derive(Clone, Debug, Serialize)]
pub struct QueueSnapshot {
    /// Its id.
    pub id: QueueId,
    /// Its name.
    pub name: String,
    /// Left out of the configuration by an [`crate::Input::Reconfigure`]: it takes no
    /// callers. Its id stays reserved for its name.
    pub closed: bool,
    /// Callers waiting for an agent.
    pub waiting: u32,
    /// Callers ringing an agent.
    pub ringing: u32,
    /// The longest time any of them has been in the queue.
    #[serde(with = "crate::config::secs")]
    pub longest_wait: Duration,
    /// The queue's own agents (those of its first step) by state.
    pub agents: AgentCounts,
    /// Agents working the queue, each counted by its share when it serves several.
    pub staffed: f64,
    /// Statistics since start.
    pub cumulative: QueueSummary,
    /// Statistics of the current interval.
    pub interval: QueueSummary,
    /// When the current interval began.
    pub interval_start: Timestamp,
    /// Callers in line order; ringing callers last.
    pub callers: Vec<WaitingCaller>,
}

/// A caller in a queue.
#[derive(Clone, Debug, Serialize)]
pub struct WaitingCaller {
    /// The call.
    pub call: CallId,
    /// Its priority.
    pub priority: u8,
    /// Its place in line, 1 for the first; `None` while ringing an agent.
    pub position: Option<u32>,
    /// The agent it rings.
    pub ringing: Option<AgentId>,
    /// Time in this queue so far.
    #[serde(with = "crate::config::secs")]
    pub waited: Duration,
    /// Expected further wait.
    #[serde(with = "crate::config::opt_secs")]
    pub estimated_wait: Option<Duration>,
}

/// Agents by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgentCounts {
    /// Logged in, in any state.
    pub logged_in: u32,
    /// Free.
    pub available: u32,
    /// Ringing.
    pub reserved: u32,
    /// Talking.
    pub on_call: u32,
    /// In wrap-up.
    pub wrap_up: u32,
    /// Paused.
    pub paused: u32,
}

impl AgentCounts {
    pub(crate) fn count(&mut self, state: &AgentState) {
        match state {
            AgentState::LoggedOut => return,
            AgentState::Available => self.available += 1,
            AgentState::Reserved { .. } => self.reserved += 1,
            AgentState::OnCall { .. } => self.on_call += 1,
            AgentState::WrapUp { .. } => self.wrap_up += 1,
            AgentState::Paused { .. } => self.paused += 1,
        }
        self.logged_in += 1;
    }
}

/// One agent, live.
#[derive(Clone, Debug, Serialize)]
pub struct AgentSnapshot {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// Left out of the configuration by an [`crate::Input::Reconfigure`]: logged out (once
    /// its call ends) and unable to log in. Its id stays reserved for its name.
    pub retired: bool,
    /// Its state.
    pub state: AgentState,
    /// Since when.
    pub since: Timestamp,
    /// Calls answered since it logged in.
    pub calls_answered: u32,
    /// Post-call ratings of its calls, since start.
    pub survey: crate::metrics::SurveyCounts,
}
