//! The ACD's configuration: skills, queues and agents by name, as a site writes them.
//!
//! [`crate::Acd::new`] validates a config and resolves names into ids; every error names
//! the field at fault and why.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The whole ACD: the skills it knows, its queues and its agents.
///
/// A running ACD takes a new one with [`crate::Input::Reconfigure`], which matches queues
/// and agents by name; [`crate::Acd::config`] then lists them in the order of their ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcdConfig {
    /// Skill names. A queue or agent may only name skills declared here, so that a typo
    /// is an error rather than a queue nobody can serve.
    pub skills: Vec<String>,
    /// Queues, in the order of their [`crate::QueueId`]s.
    pub queues: Vec<QueueConfig>,
    /// Agents, in the order of their [`crate::AgentId`]s.
    pub agents: Vec<AgentConfig>,
    /// How statistics are kept.
    #[serde(default)]
    pub statistics: StatisticsConfig,
}

/// One queue: who may serve it, how agents are chosen, its limits and thresholds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Unique name.
    pub name: String,
    /// Skills an agent must all have, each at its minimum level, to serve this queue.
    /// An empty list lets every agent serve it.
    pub skills: Vec<SkillRequirement>,
    /// How an agent is chosen when several are free for an arriving call.
    pub strategy: Strategy,
    /// Breaks ties between queues when an agent who serves several becomes free and the
    /// best calls of two queues have the same priority and the same enqueue time:
    /// the higher weight wins.
    pub weight: u32,
    /// How long an agent's phone rings before the offer is withdrawn (ring-no-answer).
    #[serde(with = "secs")]
    pub ring_timeout: Duration,
    /// How long an agent who did not take a call (ring-no-answer, rejection, failure) is
    /// skipped for that same call, so that the next agent is rung rather than the same one.
    #[serde(with = "secs")]
    pub retry_after: Duration,
    /// Wrap-up time after each call of this queue, before the agent is free again.
    #[serde(with = "secs")]
    pub wrap_up: Duration,
    /// Pause an agent after this many consecutive offers it did not take.
    pub auto_pause_after: Option<u32>,
    /// At most this many callers wait; the next one overflows at once.
    pub max_callers: Option<u32>,
    /// A caller who has waited this long overflows.
    #[serde(with = "opt_secs")]
    pub max_wait: Option<Duration>,
    /// Where overflowing callers go.
    pub overflow: Overflow,
    /// What happens when no agent who could ever serve the queue is logged in.
    pub when_no_agents: NoAgentsPolicy,
    /// Skill expansion: steps over wait time that widen the set of agents who may serve a
    /// caller. Each step applies from its `after` and keeps what earlier steps allowed.
    pub expansion: Vec<ExpansionStep>,
    /// Thresholds for this queue's statistics.
    pub thresholds: Thresholds,
    /// The handle time (talk and wrap-up) the wait estimator assumes before it has seen
    /// any call of this queue.
    #[serde(with = "secs")]
    pub expected_handle_time: Duration,
    /// Attempts to reach a caller who asked to be called back, before giving up.
    pub callback_attempts: u32,
    /// Time between two attempts to reach a caller who asked to be called back.
    #[serde(with = "secs")]
    pub callback_retry_after: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            name: String::new(),
            skills: Vec::new(),
            strategy: Strategy::LongestIdle,
            weight: 0,
            ring_timeout: Duration::from_secs(20),
            retry_after: Duration::from_secs(5),
            wrap_up: Duration::ZERO,
            auto_pause_after: None,
            max_callers: None,
            max_wait: None,
            overflow: Overflow::Hangup,
            when_no_agents: NoAgentsPolicy::default(),
            expansion: Vec::new(),
            thresholds: Thresholds::default(),
            expected_handle_time: Duration::from_secs(180),
            callback_attempts: 3,
            callback_retry_after: Duration::from_secs(60),
        }
    }
}

impl QueueConfig {
    /// A queue with default settings that requires the given skills at level 1.
    pub fn new(name: impl Into<String>, skills: &[&str]) -> Self {
        QueueConfig {
            name: name.into(),
            skills: skills
                .iter()
                .map(|skill| SkillRequirement {
                    skill: (*skill).to_owned(),
                    min_level: 1,
                })
                .collect(),
            ..QueueConfig::default()
        }
    }
}

/// What a supervisor changes in a running queue ([`crate::Input::UpdateQueue`]): every
/// field of [`QueueConfig`] but its name, each left as it is when `None`.
///
/// The queue's new settings are validated exactly as [`crate::Acd::new`] validates a
/// config; a refused update changes nothing. In JSON a field that is absent keeps its
/// value, and for the optional limits (`auto_pause_after`, `max_callers`, `max_wait`)
/// `null` removes the limit. Durations are in seconds.
///
/// What an accepted update does to callers already there:
/// - `skills`, `expansion`: each caller is put at the expansion step its wait (since it
///   entered the queue) has reached under the new steps, and the agents who may now serve
///   it are offered it at once. An offer already ringing keeps ringing.
/// - `max_wait`: applies to the callers already waiting, from when they entered: a caller
///   whose new limit has passed overflows at once (a ringing one when its offer ends).
/// - `weight`: orders the queue's waiting callers against other queues' from now on.
/// - `when_no_agents`: with `leave`, waiting callers overflow at once if no agent who
///   could serve the queue is logged in.
/// - `max_callers`: applies to arrivals; callers beyond a lowered limit stay.
/// - `ring_timeout`, `retry_after`, `wrap_up`, `auto_pause_after`, callback settings:
///   apply to the next offer, failure, wrap-up or callback attempt.
/// - `thresholds`: classify what happens from now on; an
///   [`crate::Event::QueueConfigured`] carries them so that a [`crate::tally::Tally`]
///   does the same.
/// - `expected_handle_time`: the wait estimator's assumption until it has seen a call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueUpdate {
    /// New [`QueueConfig::skills`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<SkillRequirement>>,
    /// New [`QueueConfig::strategy`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// New [`QueueConfig::weight`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// New [`QueueConfig::ring_timeout`].
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub ring_timeout: Option<Duration>,
    /// New [`QueueConfig::retry_after`].
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub retry_after: Option<Duration>,
    /// New [`QueueConfig::wrap_up`].
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub wrap_up: Option<Duration>,
    /// New [`QueueConfig::auto_pause_after`]; `Some(None)` turns auto-pause off.
    #[serde(skip_serializing_if = "Option::is_none", with = "double_option")]
    pub auto_pause_after: Option<Option<u32>>,
    /// New [`QueueConfig::max_callers`]; `Some(None)` removes the limit.
    #[serde(skip_serializing_if = "Option::is_none", with = "double_option")]
    pub max_callers: Option<Option<u32>>,
    /// New [`QueueConfig::max_wait`]; `Some(None)` removes the limit.
    #[serde(skip_serializing_if = "Option::is_none", with = "double_opt_secs")]
    pub max_wait: Option<Option<Duration>>,
    /// New [`QueueConfig::overflow`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow: Option<Overflow>,
    /// New [`QueueConfig::when_no_agents`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when_no_agents: Option<NoAgentsPolicy>,
    /// New [`QueueConfig::expansion`], all steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expansion: Option<Vec<ExpansionStep>>,
    /// New [`QueueConfig::thresholds`], all three.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
    /// New [`QueueConfig::expected_handle_time`].
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub expected_handle_time: Option<Duration>,
    /// New [`QueueConfig::callback_attempts`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_attempts: Option<u32>,
    /// New [`QueueConfig::callback_retry_after`].
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub callback_retry_after: Option<Duration>,
}

impl QueueUpdate {
    /// Writes the fields that are set into `queue`. Validation is the ACD's.
    pub fn apply_to(&self, queue: &mut QueueConfig) {
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *field = value.clone();
            }
        }
        set(&mut queue.skills, &self.skills);
        set(&mut queue.strategy, &self.strategy);
        set(&mut queue.weight, &self.weight);
        set(&mut queue.ring_timeout, &self.ring_timeout);
        set(&mut queue.retry_after, &self.retry_after);
        set(&mut queue.wrap_up, &self.wrap_up);
        set(&mut queue.auto_pause_after, &self.auto_pause_after);
        set(&mut queue.max_callers, &self.max_callers);
        set(&mut queue.max_wait, &self.max_wait);
        set(&mut queue.overflow, &self.overflow);
        set(&mut queue.when_no_agents, &self.when_no_agents);
        set(&mut queue.expansion, &self.expansion);
        set(&mut queue.thresholds, &self.thresholds);
        set(&mut queue.expected_handle_time, &self.expected_handle_time);
        set(&mut queue.callback_attempts, &self.callback_attempts);
        set(&mut queue.callback_retry_after, &self.callback_retry_after);
    }
}

/// A skill a queue requires, at a minimum proficiency (1–10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillRequirement {
    /// The skill's name, declared in [`AcdConfig::skills`].
    pub skill: String,
    /// The lowest proficiency accepted.
    pub min_level: u8,
}

/// How an agent is picked among several free ones for an arriving call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The agent who has been free the longest (the fairest spread of work).
    #[default]
    LongestIdle,
    /// The agent who has answered the fewest calls since logging in; then longest idle.
    FewestCalls,
    /// The agent with the highest total proficiency in the queue's skills; then longest idle.
    BestSkill,
    /// The next free agent after the one last chosen, in the order of agent ids.
    RoundRobin,
}

/// Where a caller goes when a queue limit is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// The call is ended (the edge plays a goodbye and hangs up).
    #[default]
    Hangup,
    /// The caller moves to another queue of this ACD, keeping its original arrival time
    /// as its place in line.
    Queue(String),
    /// The call leaves the ACD for a destination the edge knows by this name
    /// (a number, a voicemail, another site).
    External(String),
}

/// Policy for a queue that no agent who could ever serve it (at any expansion step) is
/// logged in to. Paused agents count as logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoAgentsPolicy {
    /// Callers may join the queue anyway (else they overflow at once).
    pub join: bool,
    /// Waiting callers overflow when the last such agent logs out.
    pub leave: bool,
}

impl Default for NoAgentsPolicy {
    fn default() -> Self {
        NoAgentsPolicy {
            join: true,
            leave: false,
        }
    }
}

/// One skill-expansion step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpansionStep {
    /// Wait time from which the step applies.
    #[serde(with = "secs")]
    pub after: Duration,
    /// Accept agents with every required skill at this level or above.
    pub min_level: Option<u8>,
    /// Also offer the caller to the agents who serve these queues.
    pub add_queues: Vec<String>,
}

/// Thresholds that classify waits in a queue's statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Service-level target time: a call answered within it counts as answered in time.
    #[serde(with = "secs")]
    pub service_level: Duration,
    /// Abandons after this wait are counted apart (Parma's 47 s).
    #[serde(with = "secs")]
    pub abandon: Duration,
    /// Abandons within this wait are short abandons (a wrong number, a misdial), left out of
    /// the rates that say so.
    #[serde(with = "secs")]
    pub short_abandon: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            service_level: Duration::from_secs(20),
            abandon: Duration::from_secs(47),
            short_abandon: Duration::from_secs(5),
        }
    }
}

/// An agent and its skills.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique name.
    pub name: String,
    /// Skills with proficiency levels 1–10.
    pub skills: Vec<AgentSkill>,
}

impl AgentConfig {
    /// An agent with the given skills and levels.
    pub fn new(name: impl Into<String>, skills: &[(&str, u8)]) -> Self {
        AgentConfig {
            name: name.into(),
            skills: skills
                .iter()
                .map(|(skill, level)| AgentSkill {
                    skill: (*skill).to_owned(),
                    level: *level,
                })
                .collect(),
        }
    }
}

/// A skill an agent has, at a proficiency level (1–10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSkill {
    /// The skill's name, declared in [`AcdConfig::skills`].
    pub skill: String,
    /// Proficiency, 1 (novice) to 10 (expert).
    pub level: u8,
}

/// How statistics are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatisticsConfig {
    /// Length of a statistics interval (15 minutes by default).
    #[serde(with = "secs")]
    pub interval: Duration,
    /// Intervals start at `interval_origin + k * interval`; the server sets it to a local
    /// midnight so that intervals fall on the quarter hours.
    pub interval_origin: Timestamp,
    /// How many closed intervals each queue keeps in memory.
    pub intervals_kept: usize,
    /// Time constant of the moving averages behind the wait estimate.
    #[serde(with = "secs")]
    pub estimator_window: Duration,
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        StatisticsConfig {
            interval: Duration::from_secs(15 * 60),
            interval_origin: Timestamp::ZERO,
            intervals_kept: 96,
            estimator_window: Duration::from_secs(3600),
        }
    }
}

/// Proficiency levels run from 1 to 10.
pub const LEVELS: std::ops::RangeInclusive<u8> = 1..=10;

/// Serde for a `Duration` as a number of seconds (fractional allowed).
pub mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the duration as seconds.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    /// Reads seconds, refusing negative or non-finite values.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| D::Error::custom(format!("{secs} is not a duration in seconds")))
    }
}

/// Serde for an optional `Duration` as a number of seconds.
pub mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the duration as seconds, or nothing.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads seconds or nothing, refusing negative or non-finite values.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(deserializer)? {
            Some(secs) => Duration::try_from_secs_f64(secs)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{secs} is not a duration in seconds"))),
            None => Ok(None),
        }
    }
}

/// Serde for a field that may be absent (`None`: leave it), `null` (`Some(None)`: clear
/// it) or a value. Use with `#[serde(default, skip_serializing_if = "Option::is_none")]`.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the inner option: `null` or the value.
    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a present field: `null` or a value.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Like [`double_option`], for a duration in seconds.
pub mod double_opt_secs {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Writes the inner option: `null` or seconds.
    pub fn serialize<S: Serializer>(
        value: &Option<Option<Duration>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => super::opt_secs::serialize(inner, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a present field: `null` or seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<Duration>>, D::Error> {
        super::opt_secs::deserialize(deserializer).map(Some)
    }
}
