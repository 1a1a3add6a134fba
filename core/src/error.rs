//! What can go wrong when configuring or driving the ACD.
//!
//! An expected outcome (no agent free, a caller hanging up) is an event, not an error.
//! An error means the input itself was wrong; the core refuses it and changes nothing.

use crate::ids::{AgentId, CallId, QueueId};
use crate::output::AgentStatus;
use crate::time::Timestamp;

/// An input the ACD refused. The state is left exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// An input carried a time earlier than one already handled.
    #[error("time went backwards: {now} is before {last}")]
    TimeWentBackwards {
        /// The time of the refused input.
        now: Timestamp,
        /// The latest time handled so far.
        last: Timestamp,
    },
    /// A call arrived with an id the core already holds.
    #[error("{0} is already in the ACD")]
    DuplicateCall(CallId),
    /// An input named a call the core does not hold (never arrived, or already ended).
    #[error("{0} is not in the ACD")]
    UnknownCall(CallId),
    /// An input named a queue that does not exist.
    #[error("{0} does not exist")]
    UnknownQueue(QueueId),
    /// An input named an agent that does not exist.
    #[error("{0} does not exist")]
    UnknownAgent(AgentId),
    /// An offer was answered or failed, but that call is not being offered to that agent
    /// (the ring timed out first, or the caller hung up).
    #[error("{call} is not being offered to {agent}")]
    NoSuchOffer {
        /// The call named by the input.
        call: CallId,
        /// The agent named by the input.
        agent: AgentId,
    },
    /// A wait estimate was asked for a call that an agent already answered.
    #[error("{0} is not waiting")]
    CallNotWaiting(CallId),
    /// An agent input that needs a logged-in agent named one who is logged out.
    #[error("{0} is not logged in")]
    AgentLoggedOut(AgentId),
    /// A wrap-up extension named an agent who is not in wrap-up.
    #[error("{agent} is not in wrap-up: it is {state}")]
    NotInWrapUp {
        /// The agent.
        agent: AgentId,
        /// Its state.
        state: AgentStatus,
    },
    /// An agent input named an agent removed from the configuration by
    /// [`crate::Input::Reconfigure`]: it cannot log in, pause or be ready again.
    #[error("{0} was removed from the configuration")]
    AgentRetired(AgentId),
    /// A call arrived at, or was moved or an update sent to, a queue that
    /// [`crate::Input::Reconfigure`] closed.
    #[error("{0} is closed: it was removed from the configuration")]
    QueueClosed(QueueId),
    /// A call was moved to the queue it is already in.
    #[error("{call} is already in {queue}")]
    AlreadyInQueue {
        /// The call.
        call: CallId,
        /// Its queue.
        queue: QueueId,
    },
    /// A call was moved to a queue that already holds its maximum number of callers.
    #[error("{queue} is full: it holds its maximum of {max} callers")]
    QueueFull {
        /// The queue.
        queue: QueueId,
        /// Its `max_callers`.
        max: u32,
    },
    /// A call was moved to a queue that refuses callers while no agent who could serve it
    /// is logged in (`when_no_agents.join` is false), and none is.
    #[error("{0} takes no callers while no agent who could serve it is logged in")]
    NoAgentsLoggedIn(QueueId),
    /// A new configuration leaves out a queue that still has callers waiting, ringing or
    /// waiting for a callback. The whole configuration is refused.
    #[error("queue '{name}' ({queue}) cannot be removed: {callers} callers are still queued there")]
    QueueNotEmpty {
        /// The queue.
        queue: QueueId,
        /// Its name.
        name: String,
        /// Callers still queued.
        callers: u32,
    },
    /// A new configuration changes a setting that is fixed while the ACD runs.
    #[error("{field} cannot change while the ACD runs (restart it to change it)")]
    FixedWhileRunning {
        /// The field, e.g. `statistics.interval`.
        field: &'static str,
    },
}

/// A configuration the ACD cannot run with. Each variant names the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A skill, queue or agent name is empty.
    #[error("{kind} #{index} has an empty name")]
    EmptyName {
        /// What is unnamed: "skill", "queue" or "agent".
        kind: &'static str,
        /// Its position in the config.
        index: usize,
    },
    /// Two skills, queues or agents share a name.
    #[error("{kind} '{name}' is declared twice")]
    DuplicateName {
        /// "skill", "queue" or "agent".
        kind: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A queue or agent names a skill that is not declared in `skills`.
    #[error("{owner}: skill '{skill}' is not declared in skills")]
    UnknownSkill {
        /// The field that names it, e.g. `queues[billing].skills`.
        owner: String,
        /// The unknown skill.
        skill: String,
    },
    /// A proficiency level outside 1–10.
    #[error("{owner}: level {level} of skill '{skill}' is outside 1-10")]
    LevelOutOfRange {
        /// The field that holds it.
        owner: String,
        /// The skill.
        skill: String,
        /// The level given.
        level: u8,
    },
    /// An agent or queue lists the same skill twice.
    #[error("{owner}: skill '{skill}' is listed twice")]
    RepeatedSkill {
        /// The field that holds it.
        owner: String,
        /// The skill.
        skill: String,
    },
    /// An overflow or expansion step names a queue that does not exist.
    #[error("{field}: queue '{queue}' does not exist")]
    UnknownQueue {
        /// The field that names it.
        field: String,
        /// The unknown queue.
        queue: String,
    },
    /// A queue overflows into itself.
    #[error("queues[{queue}].overflow: a queue cannot overflow into itself")]
    OverflowToSelf {
        /// The queue.
        queue: String,
    },
    /// Expansion steps must start after zero and come in increasing order of time.
    #[error(
        "queues[{queue}].expansion[{step}].after: steps must be after 0 s and in increasing order"
    )]
    ExpansionOutOfOrder {
        /// The queue.
        queue: String,
        /// The index of the step out of order.
        step: usize,
    },
    /// More expansion steps than the core supports.
    #[error("queues[{queue}].expansion: at most {max} steps are supported")]
    TooManyExpansionSteps {
        /// The queue.
        queue: String,
        /// The limit.
        max: usize,
    },
    /// A duration that must be positive is zero.
    #[error("{field} must be greater than zero")]
    ZeroDuration {
        /// The field.
        field: String,
    },
    /// A count that must be positive is zero.
    #[error("{field} must be at least 1")]
    ZeroCount {
        /// The field.
        field: String,
    },
    /// More skills, queues or agents than ids can number.
    #[error("too many {kind}: at most {max}")]
    TooMany {
        /// "skills", "queues" or "agents".
        kind: &'static str,
        /// The limit.
        max: usize,
    },
}
