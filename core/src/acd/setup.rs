//! Validates an [`AcdConfig`] and resolves its names into the ACD's tables.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::acd::agent::{Agent, AgentState, SHARE_UNIT};
use crate::acd::queue::{OverflowTarget, Queue, Step};
use crate::bitset::Bitset;
use crate::config::{AcdConfig, LEVELS, Overflow};
use crate::error::ConfigError;
use crate::estimator::WaitEstimator;
use crate::ids::{QueueId, SkillId};
use crate::metrics::QueueStats;
use crate::time::Timestamp;

/// Most expansion steps per queue (step numbers travel as `u8`).
pub(crate) const MAX_EXPANSION_STEPS: usize = 16;

/// The ACD's queues and agents for `config`, as new (no call, every agent logged out, no
/// statistics), or the first error in it. The queues whose index is `true` in `closed`
/// are built (and validated) like the others but closed: nobody is eligible for them and
/// they are in no agent's reach.
pub(crate) fn build(
    config: &AcdConfig,
    now: Timestamp,
    closed: &[bool],
) -> Result<(Vec<Queue>, Vec<Agent>), ConfigError> {
    let is_closed = |index: usize| closed.get(index).copied().unwrap_or(false);
    if config.statistics.interval.is_zero() {
        return Err(ConfigError::ZeroDuration {
            field: "statistics.interval".into(),
        });
    }
    let skills = index_names(
        "skill",
        config.skills.iter().map(String::as_str),
        u32::MAX as usize,
    )?;
    let queue_ids = index_names(
        "queue",
        config.queues.iter().map(|q| q.name.as_str()),
        u32::MAX as usize,
    )?;
    index_names(
        "agent",
        config.agents.iter().map(|a| a.name.as_str()),
        u32::MAX as usize,
    )?;

    let skill = |owner: &str, name: &str| {
        skills
            .get(name)
            .map(|&i| SkillId(i as u32))
            .ok_or_else(|| ConfigError::UnknownSkill {
                owner: owner.to_owned(),
                skill: name.to_owned(),
            })
    };
    let level = |owner: &str, name: &str, level: u8| {
        if LEVELS.contains(&level) {
            Ok(level)
        } else {
            Err(ConfigError::LevelOutOfRange {
                owner: owner.to_owned(),
                skill: name.to_owned(),
                level,
            })
        }
    };
    let queue_id = |field: String, name: &str| {
        queue_ids
            .get(name)
            .map(|&i| QueueId(i as u32))
            .ok_or_else(|| ConfigError::UnknownQueue {
                field,
                queue: name.to_owned(),
            })
    };

    let mut agents = Vec::with_capacity(config.agents.len());
    for agent in &config.agents {
        let owner = format!("agents[{}].skills", agent.name);
        let mut resolved = Vec::with_capacity(agent.skills.len());
        for s in &agent.skills {
            resolved.push((skill(&owner, &s.skill)?, level(&owner, &s.skill, s.level)?));
        }
        sort_unique(&mut resolved, &owner, config)?;
        agents.push(Agent {
            name: agent.name.clone(),
            skills: resolved,
            reach: Vec::new(),
            home_queues: Vec::new(),
            share: 0,
            state: AgentState::LoggedOut,
            since: now,
            accounted: now,
            pending: None,
            failures_in_a_row: 0,
            calls_answered: 0,
            survey: Default::default(),
            last_call: None,
            exclusions: Vec::new(),
            retired: false,
        });
    }

    // Requirements first: expansion steps refer to other queues' agents.
    let mut required = Vec::with_capacity(config.queues.len());
    for queue in &config.queues {
        let owner = format!("queues[{}].skills", queue.name);
        let mut resolved = Vec::with_capacity(queue.skills.len());
        for s in &queue.skills {
            resolved.push((
                skill(&owner, &s.skill)?,
                level(&owner, &s.skill, s.min_level)?,
            ));
        }
        sort_unique(&mut resolved, &owner, config)?;
        required.push(resolved);
    }
    let eligible_at = |requirement: &[(SkillId, u8)], lowest: Option<u8>| {
        let mut set = Bitset::with_capacity(agents.len());
        for (index, agent) in agents.iter().enumerate() {
            let qualifies = requirement.iter().all(|&(skill, min)| {
                let min = lowest.map_or(min, |lowest| lowest.min(min));
                agent.level(skill).is_some_and(|level| level >= min)
            });
            if qualifies {
                set.insert(index);
            }
        }
        set
    };

    let mut queues = Vec::with_capacity(config.queues.len());
    for (index, queue) in config.queues.iter().enumerate() {
        let name = &queue.name;
        if queue.ring_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration {
                field: format!("queues[{name}].ring_timeout"),
            });
        }
        if queue.expected_handle_time.is_zero() {
            return Err(ConfigError::ZeroDuration {
                field: format!("queues[{name}].expected_handle_time"),
            });
        }
        if queue.max_wait.is_some_and(|wait| wait.is_zero()) {
            return Err(ConfigError::ZeroDuration {
                field: format!("queues[{name}].max_wait"),
            });
        }
        if queue.max_callers == Some(0) {
            return Err(ConfigError::ZeroCount {
                field: format!("queues[{name}].max_callers"),
            });
        }
        if queue.callback_attempts == 0 {
            return Err(ConfigError::ZeroCount {
                field: format!("queues[{name}].callback_attempts"),
            });
        }
        if queue.callback_retry_after.is_zero() {
            return Err(ConfigError::ZeroDuration {
                field: format!("queues[{name}].callback_retry_after"),
            });
        }
        if queue.auto_pause_after == Some(0) {
            return Err(ConfigError::ZeroCount {
                field: format!("queues[{name}].auto_pause_after"),
            });
        }
        if queue.expansion.len() >= MAX_EXPANSION_STEPS {
            return Err(ConfigError::TooManyExpansionSteps {
                queue: name.clone(),
                max: MAX_EXPANSION_STEPS - 1,
            });
        }
        let overflow = match &queue.overflow {
            Overflow::Hangup => OverflowTarget::Hangup,
            Overflow::External(destination) => OverflowTarget::External(destination.clone()),
            Overflow::Queue(target) => {
                let target = queue_id(format!("queues[{name}].overflow"), target)?;
                if target.index() == index {
                    return Err(ConfigError::OverflowToSelf {
                        queue: name.clone(),
                    });
                }
                OverflowTarget::Queue(target)
            }
        };

        let mut steps = vec![Step {
            after: std::time::Duration::ZERO,
            eligible: eligible_at(&required[index], None),
        }];
        let mut lowest: Option<u8> = None;
        for (number, step) in queue.expansion.iter().enumerate() {
            let previous = steps.last().map(|s| s.after).unwrap_or_default();
            if step.after <= previous {
                return Err(ConfigError::ExpansionOutOfOrder {
                    queue: name.clone(),
                    step: number,
                });
            }
            if let Some(min_level) = step.min_level {
                let field = format!("queues[{name}].expansion[{number}].min_level");
                if !LEVELS.contains(&min_level) {
                    return Err(ConfigError::LevelOutOfRange {
                        owner: field,
                        skill: "*".into(),
                        level: min_level,
                    });
                }
                lowest = Some(lowest.map_or(min_level, |l| l.min(min_level)));
            }
            // Each step keeps what the steps before it allowed.
            let mut eligible = steps.last().map(|s| s.eligible.clone()).unwrap_or_default();
            eligible.union_with(&eligible_at(&required[index], lowest));
            for other in &step.add_queues {
                let other = queue_id(
                    format!("queues[{name}].expansion[{number}].add_queues"),
                    other,
                )?;
                eligible.union_with(&eligible_at(&required[other.index()], None));
            }
            steps.push(Step {
                after: step.after,
                eligible,
            });
        }

        if is_closed(index) {
            for step in &mut steps {
                step.eligible = Bitset::with_capacity(agents.len());
            }
        }

        queues.push(Queue {
            name: name.clone(),
            open: !is_closed(index),
            required: required[index].clone(),
            strategy: queue.strategy,
            weight: queue.weight,
            ring_timeout: queue.ring_timeout,
            retry_after: queue.retry_after,
            wrap_up: queue.wrap_up,
            auto_pause_after: queue.auto_pause_after,
            max_callers: queue.max_callers,
            max_wait: queue.max_wait,
            overflow,
            when_no_agents: queue.when_no_agents,
            thresholds: queue.thresholds,
            callback_attempts: queue.callback_attempts,
            callback_retry_after: queue.callback_retry_after,
            steps,
            queued: 0,
            logged_in: 0,
            staffed: 0,
            cursor: usize::MAX,
            estimator: WaitEstimator::new(
                config.statistics.estimator_window,
                queue.expected_handle_time,
                now,
            ),
            stats: QueueStats::default(),
            interval: QueueStats::default(),
            closed: VecDeque::new(),
        });
    }

    for (index, agent) in agents.iter_mut().enumerate() {
        for (q, queue) in queues.iter().enumerate() {
            if let Some(step) = queue
                .steps
                .iter()
                .position(|step| step.eligible.contains(index))
            {
                agent.reach.push((QueueId(q as u32), step as u8));
                if step == 0 {
                    agent.home_queues.push(QueueId(q as u32));
                }
            }
        }
        agent.share = SHARE_UNIT / agent.home_queues.len().max(1) as u64;
    }
    Ok((queues, agents))
}

fn index_names<'a>(
    kind: &'static str,
    names: impl Iterator<Item = &'a str>,
    max: usize,
) -> Result<FxHashMap<&'a str, usize>, ConfigError> {
    let mut index = FxHashMap::default();
    for (i, name) in names.enumerate() {
        if i >= max {
            return Err(ConfigError::TooMany { kind, max });
        }
        if name.trim().is_empty() {
            return Err(ConfigError::EmptyName { kind, index: i });
        }
        if index.insert(name, i).is_some() {
            return Err(ConfigError::DuplicateName {
                kind,
                name: name.to_owned(),
            });
        }
    }
    Ok(index)
}

fn sort_unique(
    skills: &mut [(SkillId, u8)],
    owner: &str,
    config: &AcdConfig,
) -> Result<(), ConfigError> {
    skills.sort_unstable();
    match skills.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        Some(pair) => Err(ConfigError::RepeatedSkill {
            owner: owner.to_owned(),
            skill: config.skills[pair[0].0.index()].clone(),
        }),
        None => Ok(()),
    }
}
