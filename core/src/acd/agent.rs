//! An agent as the ACD holds it: state, skills, which queues it can reach.

use serde::{Deserialize, Serialize};

use crate::ids::{CallId, QueueId, SkillId};
use crate::output::AgentStatus;
use crate::time::Timestamp;

/// An agent's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    /// Not working.
    LoggedOut,
    /// Free for a call.
    Available,
    /// A call is offered: the phone rings.
    Reserved {
        /// The call.
        call: CallId,
    },
    /// In a conversation.
    OnCall {
        /// The call.
        call: CallId,
    },
    /// Finishing a call's paperwork until a set time.
    WrapUp {
        /// When the wrap-up ends.
        until: Timestamp,
    },
    /// On a break.
    Paused {
        /// The reason code.
        reason: String,
    },
}

impl AgentState {
    /// The state without its details.
    pub fn status(&self) -> AgentStatus {
        match self {
            AgentState::LoggedOut => AgentStatus::LoggedOut,
            AgentState::Available => AgentStatus::Available,
            AgentState::Reserved { .. } => AgentStatus::Reserved,
            AgentState::OnCall { .. } => AgentStatus::OnCall,
            AgentState::WrapUp { .. } => AgentStatus::WrapUp,
            AgentState::Paused { .. } => AgentStatus::Paused,
        }
    }

    /// Working the queues: logged in and not paused. These agents make a queue's service
    /// rate.
    pub(crate) fn is_staffed(&self) -> bool {
        !matches!(self, AgentState::LoggedOut | AgentState::Paused { .. })
    }
}

/// What an agent asked for while busy, applied when its call or wrap-up ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    Pause(String),
    Logout,
}

/// Fixed-point unit of an agent's share of a queue's staff.
pub(crate) const SHARE_UNIT: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub(crate) struct Agent {
    pub(crate) name: String,
    /// Skills and levels, sorted by skill.
    pub(crate) skills: Vec<(SkillId, u8)>,
    /// Every queue the agent may serve and the first expansion step at which it may.
    pub(crate) reach: Vec<(QueueId, u8)>,
    /// Queues the agent serves from their first step, and its share of each
    /// (`SHARE_UNIT / their number`) for the wait estimate.
    pub(crate) home_queues: Vec<QueueId>,
    pub(crate) share: u64,
    pub(crate) state: AgentState,
    pub(crate) since: Timestamp,
    /// Time in the current state is accounted up to here.
    pub(crate) accounted: Timestamp,
    pub(crate) pending: Option<Pending>,
    pub(crate) failures_in_a_row: u32,
    pub(crate) calls_answered: u32,
    /// Post-call ratings of this agent's calls, since start.
    pub(crate) survey: crate::metrics::SurveyCounts,
    /// The last call, whose wrap-up this is.
    pub(crate) last_call: Option<LastCall>,
    /// Calls (by sequence number) this agent did not take, and until when it is skipped
    /// for them.
    pub(crate) exclusions: Vec<(u64, Timestamp)>,
    /// Removed by a reconfiguration: logged out and unable to log in.
    pub(crate) retired: bool,
}

/// The call an agent last completed, until its wrap-up is recorded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LastCall {
    pub(crate) call: CallId,
    pub(crate) queue: QueueId,
    pub(crate) talk: std::time::Duration,
}

impl Agent {
    pub(crate) fn level(&self, skill: SkillId) -> Option<u8> {
        self.skills
            .binary_search_by_key(&skill, |(s, _)| *s)
            .ok()
            .map(|i| self.skills[i].1)
    }

    #[inline]
    pub(crate) fn excludes(&self, seq: u64, now: Timestamp) -> bool {
        self.exclusions
            .iter()
            .any(|&(s, until)| s == seq && until > now)
    }
}
