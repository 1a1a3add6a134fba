//! What the ACD tells the edges and its observers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Thresholds;
use crate::ids::{AgentId, CallId, QueueId};
use crate::input::OfferFailure;
use crate::time::Timestamp;

/// One output of the ACD, from [`crate::Acd::poll_output`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Output {
    /// Something the edges must do.
    Command(Command),
    /// Something that happened, for statistics, storage and screens.
    Event(Event),
}

/// An action for the edges (SIP, media).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Ring the agent's phone with the call. Answer with [`crate::Input::OfferAnswered`]
    /// or [`crate::Input::OfferFailed`].
    Ring {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The queue it is offered from.
        queue: QueueId,
    },
    /// Stop ringing: the offer is withdrawn (ring timeout, caller hung up, agent left).
    StopRinging {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// Send the call to a destination outside the ACD; the ACD is done with it.
    RouteOut {
        /// The call.
        call: CallId,
        /// The destination's name, from the queue's overflow setting.
        destination: String,
    },
    /// End the call (a queue limit with no overflow destination); the ACD is done with it.
    Disconnect {
        /// The call.
        call: CallId,
        /// Which limit.
        reason: OverflowReason,
    },
}

/// Something that happened in the ACD.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A caller joined a queue.
    CallQueued {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// 1 for the first in line.
        position: u32,
        /// Expected wait from now, when the caller has to wait and the queue has staff.
        estimated_wait: Option<Duration>,
    },
    /// An estimate asked for by [`crate::Input::EstimateWait`].
    WaitEstimated {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// 1 for the first in line.
        position: u32,
        /// Expected wait from now; `None` when nobody who could answer is working.
        estimated_wait: Option<Duration>,
    },
    /// A waiting caller reached a skill-expansion step.
    SkillsExpanded {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// The step now in force, 1 for the first expansion.
        step: u8,
    },
    /// An offer was not taken; the call went back to its place.
    OfferFailed {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The queue it was offered from.
        queue: QueueId,
        /// Why.
        reason: OfferFailure,
    },
    /// An agent answered; the conversation starts.
    CallConnected {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The queue.
        queue: QueueId,
        /// Time from joining the queue to the answer.
        wait: Duration,
        /// Time from the offer to the answer: the agent's phone ringing or, for a
        /// callback, the caller's phone being dialled once the agent answered.
        ring: Duration,
    },
    /// The caller hung up before an agent answered. Ends the call.
    CallAbandoned {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// Time from joining the queue to the hang-up.
        wait: Duration,
        /// The caller's place in line when it hung up, 1 for the first.
        position: u32,
    },
    /// A supervisor ended a call before it was answered ([`crate::Input::RemoveCall`]).
    /// Not an abandon: counted as removed, outside every rate. Ends the call.
    CallRemoved {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// Time from joining the queue to the removal.
        wait: Duration,
        /// The caller's place in line, 1 for the first; `None` while ringing an agent or
        /// between callback attempts.
        position: Option<u32>,
    },
    /// A connected call ended. Ends the call.
    CallCompleted {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The queue.
        queue: QueueId,
        /// Conversation time.
        talk: Duration,
    },
    /// An agent's wrap-up after a call ended: its time ran out, the agent ended it (ready,
    /// pause, logout), or the queue has none and it lasted zero. Follows the call's
    /// [`Event::CallCompleted`], at once or after the wrap-up; the agent's
    /// [`Event::AgentStateChanged`] follows it.
    WrapUpEnded {
        /// The call wrapped up.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The queue the call came from.
        queue: QueueId,
        /// How long the wrap-up lasted.
        wrap_up: Duration,
    },
    /// A caller left a queue because of a limit. Ends the call unless it went to another
    /// queue (then a [`Event::CallQueued`] follows).
    CallOverflowed {
        /// The call.
        call: CallId,
        /// The queue it left.
        queue: QueueId,
        /// Which limit.
        reason: OverflowReason,
        /// Where it went.
        to: OverflowedTo,
        /// The queue refused the caller on entry (full, no agents, an overflow loop): it
        /// never joined the line, and no [`Event::CallQueued`] counted it as offered.
        at_entry: bool,
    },
    /// A wait prediction met its outcome.
    WaitPredictionResolved {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// When the prediction was made.
        made_at: Timestamp,
        /// What was predicted, from `made_at`.
        predicted: Duration,
        /// What happened, from `made_at` to the outcome.
        actual: Duration,
        /// How the wait ended. Only answered waits measure the estimator's accuracy;
        /// the others are censored.
        outcome: WaitOutcome,
    },
    /// An agent changed state.
    AgentStateChanged {
        /// The agent.
        agent: AgentId,
        /// The new state.
        state: AgentStatus,
        /// The pause reason, when paused.
        reason: Option<String>,
    },
    /// A caller asked to be called back; it keeps its place.
    CallbackRequested {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// Its place in line, 1 for the first.
        position: u32,
    },
    /// An agent answered a callback: call the caller back now, then report
    /// [`crate::Input::CallbackAnswered`] or [`crate::Input::CallbackFailed`].
    CallbackDialing {
        /// The call.
        call: CallId,
        /// The agent waiting on the line.
        agent: AgentId,
        /// The queue.
        queue: QueueId,
    },
    /// A callback attempt failed; the next comes after the queue's retry delay.
    CallbackRetrying {
        /// The call.
        call: CallId,
        /// Attempts failed so far.
        failures: u32,
    },
    /// Every attempt to call the caller back failed. Ends the call (not an abandon).
    CallbackUnanswered {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
    },
    /// A post-call rating was recorded.
    SurveyRecorded {
        /// The call rated.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// The agent.
        agent: AgentId,
        /// The rating, `None` when the caller did not vote.
        vote: Option<crate::input::Vote>,
    },
    /// An agent's wrap-up was extended ([`crate::Input::ExtendWrapUp`]).
    WrapUpExtended {
        /// The agent.
        agent: AgentId,
        /// When the wrap-up now ends.
        until: Timestamp,
    },
    /// A caller's priority changed ([`crate::Input::SetPriority`]).
    PriorityChanged {
        /// The call.
        call: CallId,
        /// Its queue.
        queue: QueueId,
        /// The new priority.
        priority: u8,
        /// Its new place in line, 1 for the first; `None` while ringing an agent or
        /// between callback attempts.
        position: Option<u32>,
    },
    /// A supervisor moved a caller to another queue ([`crate::Input::MoveCall`]): it left
    /// `queue`, counted there as transferred (outside every rate, like an overflow), and
    /// an [`Event::CallQueued`] follows for `to`, where it counts as offered.
    CallTransferred {
        /// The call.
        call: CallId,
        /// The queue it left.
        queue: QueueId,
        /// The queue it went to.
        to: QueueId,
        /// Time from joining `queue` to the move.
        wait: Duration,
    },
    /// A queue was added, changed, closed or reopened ([`crate::Input::UpdateQueue`],
    /// [`crate::Input::Reconfigure`]). Its thresholds classify its waits from now on;
    /// a [`crate::tally::Tally`] takes them from here.
    QueueConfigured {
        /// The queue.
        queue: QueueId,
        /// Its name.
        name: String,
        /// What happened to it.
        change: ConfigChange,
        /// Its thresholds from now on.
        thresholds: Thresholds,
    },
    /// An agent was added, changed, removed or restored ([`crate::Input::Reconfigure`]).
    /// A removed agent's logout follows as an [`Event::AgentStateChanged`].
    AgentConfigured {
        /// The agent.
        agent: AgentId,
        /// Its name.
        name: String,
        /// What happened to it.
        change: ConfigChange,
    },
    /// A statistics interval closed; its report is in each queue's closed intervals.
    IntervalClosed {
        /// Its start.
        start: Timestamp,
        /// Its end.
        end: Timestamp,
    },
}

/// Which queue limit sent a caller elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowReason {
    /// The queue already held its maximum number of callers.
    QueueFull,
    /// The caller waited the queue's maximum wait.
    MaxWait,
    /// No agent who could serve the queue is logged in.
    NoAgents,
    /// The caller went round the overflow chain back to a queue it already left.
    OverflowLoop,
    /// The caller asked to leave (a menu key).
    CallerChoice,
}

/// Where an overflowing caller went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowedTo {
    /// Another queue.
    Queue(QueueId),
    /// A destination outside the ACD.
    External(String),
    /// Nowhere: the call was ended.
    Hangup,
}

/// How a wait ended, for a resolved prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitOutcome {
    /// An agent answered.
    Answered,
    /// The caller hung up.
    Abandoned,
    /// The caller left through a queue limit.
    Overflowed,
    /// A supervisor moved the caller to another queue.
    Transferred,
    /// A supervisor ended the call.
    Removed,
}

/// What a configuration change did to a queue or an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigChange {
    /// New, with a new id.
    Added,
    /// Its settings changed; it keeps its id.
    Changed,
    /// Left out of the new configuration: a queue is closed, an agent logged out for good.
    /// It keeps its id, which is never reused for another name.
    Removed,
    /// Back in the configuration after being removed, with its old id.
    Restored,
}

/// An agent's state, without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Not working.
    LoggedOut,
    /// Free for a call.
    Available,
    /// A call is being offered: the phone rings.
    Reserved,
    /// In a conversation.
    OnCall,
    /// After a call, finishing its paperwork, for a set time.
    WrapUp,
    /// On a break, with a reason code.
    Paused,
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentStatus::LoggedOut => "logged out",
            AgentStatus::Available => "available",
            AgentStatus::Reserved => "reserved (ringing)",
            AgentStatus::OnCall => "on a call",
            AgentStatus::WrapUp => "in wrap-up",
            AgentStatus::Paused => "paused",
        })
    }
}
