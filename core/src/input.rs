//! What the edges tell the ACD.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{AcdConfig, QueueUpdate};
use crate::ids::{AgentId, CallId, QueueId};

/// Something that happened outside the core: a call, a phone, an agent's choice, or the
/// passing of time. Handed to [`crate::Acd::handle_input`] with the time it is handled at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A caller asks for a queue (a trunk INVITE to a DID, a transfer).
    CallArrived {
        /// The edge's number for the call; unique among live calls.
        call: CallId,
        /// The queue asked for.
        queue: QueueId,
        /// Higher is served first; equal priorities are served in order of arrival.
        priority: u8,
    },
    /// The caller hung up, or the conversation ended from either side. While waiting or
    /// ringing this is an abandon; while connected it completes the call.
    Hangup {
        /// The call.
        call: CallId,
    },
    /// A supervisor ends a call. Before the conversation (waiting, ringing, a queued
    /// callback waiting, between attempts or being dialled) the call is *removed*: the
    /// caller did not choose to leave, so it is counted apart from abandons and outside
    /// every rate ([`crate::Event::CallRemoved`]); a callback is not tried again. A
    /// connected call ends like a [`Input::Hangup`].
    RemoveCall {
        /// The call.
        call: CallId,
    },
    /// The agent's phone answered the offered call.
    OfferAnswered {
        /// The call.
        call: CallId,
        /// The agent it was offered to.
        agent: AgentId,
    },
    /// The agent's phone did not take the offered call.
    OfferFailed {
        /// The call.
        call: CallId,
        /// The agent it was offered to.
        agent: AgentId,
        /// Why.
        reason: OfferFailure,
    },
    /// An agent logs in (a phone registers, a browser connects) and is ready for calls.
    Login {
        /// The agent.
        agent: AgentId,
    },
    /// An agent logs out. A call in progress ends first; a ringing offer is withdrawn.
    Logout {
        /// The agent.
        agent: AgentId,
    },
    /// An agent takes a break with a reason code. On a call, the pause starts when the
    /// call ends; in wrap-up, at once.
    Pause {
        /// The agent.
        agent: AgentId,
        /// The reason code, as the site defines them ("lunch", "training").
        reason: String,
    },
    /// An agent is ready again: ends a pause or an ongoing wrap-up.
    Ready {
        /// The agent.
        agent: AgentId,
    },
    /// Ask for the estimated wait of a waiting call (for an announcement); the answer is a
    /// [`crate::Event::WaitEstimated`] and the prediction is kept beside the actual wait.
    EstimateWait {
        /// The call.
        call: CallId,
    },
    /// The caller asked to be called back and hung up: it keeps its place (and its
    /// arrival time and priority), and when its turn comes an agent is reserved first and
    /// the caller is called back.
    RequestCallback {
        /// The call.
        call: CallId,
    },
    /// The callback reached the caller: the conversation starts.
    CallbackAnswered {
        /// The call.
        call: CallId,
    },
    /// The callback did not reach the caller (no answer, busy, failure); the agent is
    /// free again and the callback retries or gives up.
    CallbackFailed {
        /// The call.
        call: CallId,
    },
    /// The caller chose to leave the queue (a menu key): it goes to the queue's overflow.
    LeaveQueue {
        /// The call.
        call: CallId,
    },
    /// A caller rated a call after it ended (the post-call survey); `None` when the caller
    /// did not vote in time.
    SurveyVote {
        /// The call rated (it has ended; the id is for the record).
        call: CallId,
        /// The queue that served it.
        queue: QueueId,
        /// The agent who answered it.
        agent: AgentId,
        /// The rating.
        vote: Option<Vote>,
    },
    /// An agent in wrap-up gets more time: its wrap-up now ends `by` later. Refused
    /// ([`crate::AcdError::NotInWrapUp`]) in any other state. Reported by
    /// [`crate::Event::WrapUpExtended`].
    ExtendWrapUp {
        /// The agent.
        agent: AgentId,
        /// How much longer.
        #[serde(with = "crate::config::secs")]
        by: Duration,
    },
    /// A caller's priority changes (a supervisor's decision). A waiting caller takes its
    /// new place in line (priority, then original arrival); a ringing caller keeps
    /// ringing, and the priority applies if the offer is not taken; a callback between
    /// attempts keeps it for its next turn. Refused for a call already answered.
    /// Reported by [`crate::Event::PriorityChanged`].
    SetPriority {
        /// The call.
        call: CallId,
        /// Higher is served first.
        priority: u8,
    },
    /// A supervisor moves a waiting or ringing caller to another queue. A ringing offer is
    /// withdrawn first ([`crate::Command::StopRinging`]). The caller keeps its original
    /// arrival time for its place in line, joins the new queue as an overflow would (its
    /// wait, expansion steps and maximum wait there count from the move) and can be
    /// offered at once. Counted as transferred in the old queue and offered in the new
    /// ([`crate::Event::CallTransferred`], then [`crate::Event::CallQueued`]).
    ///
    /// Refused when the call is answered or between callback attempts, the queue is
    /// unknown, closed, the caller's own, full, or refuses callers while nobody who could
    /// serve it is logged in.
    MoveCall {
        /// The call.
        call: CallId,
        /// The queue it goes to.
        queue: QueueId,
    },
    /// A supervisor changes a queue's settings while it runs; see [`QueueUpdate`] for what
    /// each change does to callers already there. Validated like a new configuration; a
    /// refused update changes nothing. Reported by [`crate::Event::QueueConfigured`].
    UpdateQueue {
        /// The queue.
        queue: QueueId,
        /// What changes.
        update: QueueUpdate,
    },
    /// A new configuration, without dropping a call. Queues and agents are matched by
    /// name: existing ones keep their ids and take their new settings (as
    /// [`Input::UpdateQueue`] does), new ones get the next ids. An agent no longer in the
    /// config is logged out as [`Input::Logout`] would (a call in progress ends first) and
    /// can no longer log in; a queue no longer in it is closed (arrivals and moves to it
    /// are refused) — unless callers are still queued there, which refuses the whole
    /// reload. A closed queue or removed agent that comes back in a later config gets its
    /// old id back. Skills are matched by name too; new ones may be added. The statistics
    /// interval and its origin cannot change while the ACD runs.
    ///
    /// The whole config is validated first, like [`crate::Acd::new`] does; a refused one
    /// changes nothing. Reported by a [`crate::Event::QueueConfigured`] for each queue and
    /// an [`crate::Event::AgentConfigured`] for each agent added, changed, removed or
    /// restored; [`crate::Acd::snapshot`], [`crate::Acd::queue_id`] and
    /// [`crate::Acd::agent_id`] give the ids by name afterwards.
    Reconfigure {
        /// The new configuration.
        config: AcdConfig,
    },
    /// Time has passed: fire the timers that are due. Sent when
    /// [`crate::Acd::poll_timeout`] is reached.
    Timeout,
}

/// A post-call rating: Parma's three emoticons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// Satisfied (key 1).
    Satisfied,
    /// Sufficient (key 2).
    Sufficient,
    /// Not satisfied (key 3).
    Unsatisfied,
}

impl Vote {
    /// The vote for a survey key: 1, 2 or 3.
    pub fn from_key(key: char) -> Option<Vote> {
        match key {
            '1' => Some(Vote::Satisfied),
            '2' => Some(Vote::Sufficient),
            '3' => Some(Vote::Unsatisfied),
            _ => None,
        }
    }
}

/// Why an offered call was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferFailure {
    /// The phone rang and nobody answered (the ACD's own ring timeout, or the phone's).
    NoAnswer,
    /// The agent declined (busy here, declined).
    Rejected,
    /// The phone could not be reached at all.
    Unreachable,
}
