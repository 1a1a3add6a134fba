//! The ACD's invariants, checked from the outside: what any sequence of inputs, accepted or
//! refused, must never break.
//!
//! - no call is offered to two agents at once, and none while connected;
//! - no agent holds two calls, and no retired agent is rung;
//! - first come, first served within a priority (only where nothing may skip, see
//!   [`Checker::first_come_first_served`]);
//! - every call that entered ends exactly once, and nothing ends that never entered;
//! - no call joins a closed queue;
//! - histogram counts equal the calls they describe, and every offered call is accounted
//!   for: offered = answered + abandoned + overflowed + transferred + removed + callbacks
//!   unreached + still queued; the closed intervals and the open one add up.
//!
//! A [`Checker`] follows the ACD by what goes in ([`Checker::input`]) and what comes out
//! ([`Checker::observe`]), the way an edge would, and keeps a model of who holds what.
//! The property tests (`core/tests/invariants.rs`) and the fuzz target (`fuzz/`) drive the
//! ACD through it:
//!
//! ```
//! use amico_core::invariants::Checker;
//! use amico_core::{Acd, AcdConfig, AgentConfig, CallId, Input, QueueConfig, QueueId, Timestamp};
//!
//! let config = AcdConfig {
//!     skills: vec!["s".into()],
//!     queues: vec![QueueConfig::new("q", &["s"])],
//!     agents: vec![AgentConfig::new("a", &[("s", 5)])],
//!     ..AcdConfig::default()
//! };
//! let mut acd = Acd::new(config, Timestamp::ZERO)?;
//! let mut checker = Checker::new();
//! let arrive = Input::CallArrived { call: CallId(1), queue: QueueId(0), priority: 0 };
//! let accepted = checker.step(&mut acd, Timestamp::from_secs(1), arrive)?;
//! assert!(accepted.is_ok());
//! checker.wind_down(&mut acd, Timestamp::from_secs(2))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::metrics::Distribution;
use crate::{
    Acd, AcdError, AgentId, CallId, Command, ConfigChange, Event, Input, Output, OverflowedTo,
    QueueId, Timestamp,
};

/// An invariant the ACD broke, naming the calls, agents or queues involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// An output names a call that never entered (or was refused at the door).
    #[error("{call} appears in an output but never arrived")]
    UnknownCall {
        /// The call.
        call: CallId,
    },
    /// An accepted arrival reused the id of a call that entered before.
    #[error("{call} arrived twice")]
    ArrivedTwice {
        /// The call.
        call: CallId,
    },
    /// A call was rung while already ringing another agent.
    #[error("{call} offered to two agents")]
    OfferedTwice {
        /// The call.
        call: CallId,
    },
    /// A call was rung while connected.
    #[error("{call} offered while connected")]
    OfferedWhileConnected {
        /// The call.
        call: CallId,
    },
    /// An agent was rung while holding another call (ringing or connected).
    #[error("{agent} offered {call} while holding {holding}")]
    AgentBusy {
        /// The agent.
        agent: AgentId,
        /// The call offered.
        call: CallId,
        /// The call the agent already holds.
        holding: CallId,
    },
    /// An agent removed by a reconfiguration was rung.
    #[error("retired {agent} rung for {call}")]
    RetiredAgentRung {
        /// The agent.
        agent: AgentId,
        /// The call.
        call: CallId,
    },
    /// In a first-come-first-served setting, a call was rung before one that waited
    /// longer at the same or a higher priority.
    #[error("{call} rung before {ahead}, which was ahead of it")]
    OutOfOrder {
        /// The call rung.
        call: CallId,
        /// The call that should have been first.
        ahead: CallId,
    },
    /// A call joined a queue removed by a reconfiguration.
    #[error("{call} joined closed {queue}")]
    JoinedClosedQueue {
        /// The call.
        call: CallId,
        /// The queue.
        queue: QueueId,
    },
    /// An offer was withdrawn, answered or dialled that was not made to that agent.
    #[error("{call} was not offered to {agent}")]
    NotOffered {
        /// The call.
        call: CallId,
        /// The agent the output names.
        agent: AgentId,
    },
    /// A call was moved to another queue while ringing or connected.
    #[error("{call} moved while offered or connected")]
    MovedWhileHeld {
        /// The call.
        call: CallId,
    },
    /// A callback was requested for a connected call.
    #[error("callback requested for connected {call}")]
    CallbackWhileConnected {
        /// The call.
        call: CallId,
    },
    /// A callback retried or gave up that was not being dialled.
    #[error("{call} retried without being dialled")]
    NotDialing {
        /// The call.
        call: CallId,
    },
    /// An output freed an agent from a call the agent did not hold.
    #[error("{agent} did not hold {call}")]
    AgentNotHolding {
        /// The agent.
        agent: AgentId,
        /// The call.
        call: CallId,
    },
    /// A call ended (abandoned, removed, unanswered) while still ringing an agent.
    #[error("{call} ended while still ringing")]
    EndedWhileRinging {
        /// The call.
        call: CallId,
    },
    /// A connected call was removed instead of completed.
    #[error("{call} removed once connected")]
    RemovedWhileConnected {
        /// The call.
        call: CallId,
    },
    /// A call completed that was not connected to that agent.
    #[error("{call} completed without being connected to {agent}")]
    CompletedUnconnected {
        /// The call.
        call: CallId,
        /// The agent named.
        agent: AgentId,
    },
    /// A call ended a second time.
    #[error("{call} ended twice")]
    EndedTwice {
        /// The call.
        call: CallId,
    },
    /// A queue's figures disagree: a histogram's count with its counter, the offered calls
    /// with their outcomes, or the intervals with the totals.
    #[error("{queue}: {what}")]
    Accounts {
        /// The queue.
        queue: QueueId,
        /// Which figures, and their values.
        what: String,
    },
    /// Calls remain in the ACD after every caller hung up.
    #[error("{count} calls remain after every caller hung up")]
    CallsRemain {
        /// How many.
        count: usize,
    },
    /// A call that entered never ended.
    #[error("{call} never ended")]
    NeverEnded {
        /// The call.
        call: CallId,
    },
    /// An agent still holds a call after every call ended.
    #[error("{agent} still holds {call}")]
    AgentKeepsCall {
        /// The agent.
        agent: AgentId,
        /// The call.
        call: CallId,
    },
}

/// A model of who holds what, built from the ACD's inputs and outputs, checked as they
/// come. See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct Checker {
    fifo: bool,
    /// Every call that entered, with its current priority.
    priority: BTreeMap<CallId, u8>,
    /// Calls waiting for an agent (not ringing, not out of line between callback
    /// attempts), with their priority; ordered by id, which the drivers make the order of
    /// arrival.
    waiting: BTreeMap<CallId, u8>,
    ringing: BTreeMap<CallId, AgentId>,
    /// Callbacks whose agent answered, the caller being called back.
    dialing: BTreeMap<CallId, AgentId>,
    connected: BTreeMap<CallId, AgentId>,
    /// Each agent's call, ringing, dialling or connected.
    agent_call: BTreeMap<AgentId, CallId>,
    ended: BTreeSet<CallId>,
    retired: BTreeSet<AgentId>,
    closed: BTreeSet<QueueId>,
}

impl Checker {
    /// A checker for any setting.
    pub fn new() -> Self {
        Self::default()
    }

    /// A checker that also holds the ACD to first come, first served within a priority:
    /// for a setting where nothing may skip the line (one queue, no expansion), and where
    /// call ids are given in order of arrival.
    pub fn first_come_first_served() -> Self {
        Self {
            fifo: true,
            ..Self::default()
        }
    }

    /// Tells the checker that `input` was handed to the ACD and whether it was accepted.
    /// Call it after [`Acd::handle_input`] and before taking the outputs it caused.
    pub fn input(&mut self, input: &Input, accepted: bool) -> Result<(), Violation> {
        if let (
            Input::CallArrived { call, priority, .. },
            // Refused at the door (an unknown or closed queue, a duplicate id): it never
            // entered.
            true,
        ) = (input, accepted)
            && self.priority.insert(*call, *priority).is_some()
        {
            return Err(Violation::ArrivedTwice { call: *call });
        }
        Ok(())
    }

    fn priority_of(&self, call: CallId) -> Result<u8, Violation> {
        self.priority
            .get(&call)
            .copied()
            .ok_or(Violation::UnknownCall { call })
    }

    fn free_agent(&mut self, agent: AgentId, call: CallId) -> Result<(), Violation> {
        match self.agent_call.remove(&agent) {
            Some(held) if held == call => Ok(()),
            _ => Err(Violation::AgentNotHolding { agent, call }),
        }
    }

    /// Checks one output of the ACD against the model, and updates the model.
    pub fn observe(&mut self, output: &Output) -> Result<(), Violation> {
        match output {
            Output::Command(Command::Ring { call, agent, .. }) => {
                let (call, agent) = (*call, *agent);
                let mine = self.priority_of(call)?;
                if self.ringing.contains_key(&call) {
                    return Err(Violation::OfferedTwice { call });
                }
                if self.connected.contains_key(&call) {
                    return Err(Violation::OfferedWhileConnected { call });
                }
                if let Some(&holding) = self.agent_call.get(&agent) {
                    return Err(Violation::AgentBusy {
                        agent,
                        call,
                        holding,
                    });
                }
                if self.retired.contains(&agent) {
                    return Err(Violation::RetiredAgentRung { agent, call });
                }
                if self.fifo
                    && let Some((&ahead, _)) = self.waiting.iter().find(|&(&other, &priority)| {
                        priority > mine || (priority == mine && other < call)
                    })
                {
                    return Err(Violation::OutOfOrder { call, ahead });
                }
                self.waiting.remove(&call);
                self.ringing.insert(call, agent);
                self.agent_call.insert(agent, call);
            }
            Output::Command(Command::StopRinging { call, agent }) => {
                let (call, agent) = (*call, *agent);
                if self.ringing.remove(&call) != Some(agent) {
                    return Err(Violation::NotOffered { call, agent });
                }
                self.agent_call.remove(&agent);
                self.waiting.insert(call, self.priority_of(call)?);
            }
            Output::Event(Event::OfferFailed { call, agent, .. }) => {
                if self.ringing.get(call) == Some(agent) {
                    self.ringing.remove(call);
                    self.agent_call.remove(agent);
                }
                self.waiting.insert(*call, self.priority_of(*call)?);
            }
            Output::Event(Event::CallQueued { call, queue, .. }) => {
                if self.closed.contains(queue) {
                    return Err(Violation::JoinedClosedQueue {
                        call: *call,
                        queue: *queue,
                    });
                }
                self.waiting.insert(*call, self.priority_of(*call)?);
            }
            Output::Event(Event::PriorityChanged { call, priority, .. }) => {
                self.priority_of(*call)?;
                self.priority.insert(*call, *priority);
                if let Some(waiting) = self.waiting.get_mut(call) {
                    *waiting = *priority;
                }
            }
            Output::Event(Event::CallTransferred { call, .. }) => {
                if self.ringing.contains_key(call) || self.connected.contains_key(call) {
                    return Err(Violation::MovedWhileHeld { call: *call });
                }
                self.waiting.remove(call);
            }
            Output::Event(Event::QueueConfigured { queue, change, .. }) => {
                if *change == ConfigChange::Removed {
                    self.closed.insert(*queue);
                } else {
                    self.closed.remove(queue);
                }
            }
            Output::Event(Event::AgentConfigured { agent, change, .. }) => {
                if *change == ConfigChange::Removed {
                    self.retired.insert(*agent);
                } else {
                    self.retired.remove(agent);
                }
            }
            Output::Event(Event::CallConnected { call, agent, .. }) => {
                let offered = self
                    .ringing
                    .remove(call)
                    .or_else(|| self.dialing.remove(call));
                if offered != Some(*agent) {
                    return Err(Violation::NotOffered {
                        call: *call,
                        agent: *agent,
                    });
                }
                self.connected.insert(*call, *agent);
            }
            Output::Event(Event::CallbackDialing { call, agent, .. }) => {
                if self.ringing.remove(call) != Some(*agent) {
                    return Err(Violation::NotOffered {
                        call: *call,
                        agent: *agent,
                    });
                }
                self.dialing.insert(*call, *agent);
            }
            Output::Event(Event::CallbackRequested { call, .. })
                if self.connected.contains_key(call) =>
            {
                return Err(Violation::CallbackWhileConnected { call: *call });
            }
            Output::Event(Event::CallbackRetrying { call, .. }) => {
                let agent = self
                    .dialing
                    .remove(call)
                    .ok_or(Violation::NotDialing { call: *call })?;
                self.free_agent(agent, *call)?;
                // Out of line until its retry time.
                self.waiting.remove(call);
            }
            Output::Event(Event::CallbackUnanswered { call, .. }) => {
                if let Some(agent) = self.dialing.remove(call) {
                    self.free_agent(agent, *call)?;
                }
                if self.ringing.contains_key(call) {
                    return Err(Violation::EndedWhileRinging { call: *call });
                }
                self.end(*call)?;
            }
            Output::Event(Event::CallAbandoned { call, .. }) => {
                if self.ringing.contains_key(call) {
                    return Err(Violation::EndedWhileRinging { call: *call });
                }
                self.end(*call)?;
            }
            Output::Event(Event::CallRemoved { call, .. }) => {
                if self.ringing.contains_key(call) {
                    return Err(Violation::EndedWhileRinging { call: *call });
                }
                if self.connected.contains_key(call) {
                    return Err(Violation::RemovedWhileConnected { call: *call });
                }
                // A callback being dialled frees its agent.
                if let Some(agent) = self.dialing.remove(call) {
                    self.free_agent(agent, *call)?;
                }
                self.end(*call)?;
            }
            Output::Event(Event::CallCompleted { call, agent, .. }) => {
                if self.connected.remove(call) != Some(*agent) {
                    return Err(Violation::CompletedUnconnected {
                        call: *call,
                        agent: *agent,
                    });
                }
                self.free_agent(*agent, *call)?;
                self.end(*call)?;
            }
            Output::Event(Event::CallOverflowed { call, to, .. }) => {
                self.waiting.remove(call);
                if !matches!(to, OverflowedTo::Queue(_)) {
                    self.end(*call)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, call: CallId) -> Result<(), Violation> {
        self.priority_of(call)?;
        self.waiting.remove(&call);
        if !self.ended.insert(call) {
            return Err(Violation::EndedTwice { call });
        }
        Ok(())
    }

    /// Hands `input` to the ACD at `now`, checks every output it causes and then the
    /// accounts: the ACD's answer to the input (a refusal is allowed), or the first
    /// invariant broken.
    pub fn step(
        &mut self,
        acd: &mut Acd,
        now: Timestamp,
        input: Input,
    ) -> Result<Result<(), AcdError>, Violation> {
        let arrival = matches!(input, Input::CallArrived { .. }).then(|| input.clone());
        let result = acd.handle_input(now, input);
        if let Some(arrival) = arrival {
            self.input(&arrival, result.is_ok())?;
        }
        while let Some(output) = acd.poll_output() {
            self.observe(&output)?;
        }
        check_accounts(acd)?;
        Ok(result)
    }

    /// Every caller hangs up, at `now`, until the ACD holds no call; then every call that
    /// entered must have ended exactly once and no agent may hold a call.
    pub fn wind_down(&mut self, acd: &mut Acd, now: Timestamp) -> Result<(), Violation> {
        // A caller put back in line by a withdrawn offer may still be queued after its
        // hang-up was handled: hang up again, a bounded number of times.
        for _ in 0..10_000 {
            if acd.call_count() == 0 {
                break;
            }
            for call in self.live_calls() {
                let _ = self.step(acd, now, Input::Hangup { call })?;
            }
        }
        self.check_all_ended(acd)
    }

    /// With no call left in the ACD: every call that entered ended (exactly once, which
    /// [`Checker::observe`] already holds it to) and no agent holds a call.
    pub fn check_all_ended(&self, acd: &Acd) -> Result<(), Violation> {
        if acd.call_count() != 0 {
            return Err(Violation::CallsRemain {
                count: acd.call_count(),
            });
        }
        if let Some(call) = self.live_calls().into_iter().next() {
            return Err(Violation::NeverEnded { call });
        }
        if let Some((&agent, &call)) = self.agent_call.iter().next() {
            return Err(Violation::AgentKeepsCall { agent, call });
        }
        check_accounts(acd)
    }

    /// The calls that entered and have not ended, by id.
    pub fn live_calls(&self) -> Vec<CallId> {
        self.priority
            .keys()
            .filter(|call| !self.ended.contains(call))
            .copied()
            .collect()
    }

    /// Whether `call` entered and ended.
    pub fn has_ended(&self, call: CallId) -> bool {
        self.ended.contains(&call)
    }

    /// The offers ringing now, by call.
    pub fn offers(&self) -> Vec<(CallId, AgentId)> {
        self.ringing.iter().map(|(&c, &a)| (c, a)).collect()
    }

    /// The callbacks being dialled now, by call.
    pub fn dialing(&self) -> Vec<CallId> {
        self.dialing.keys().copied().collect()
    }
}

/// Checks each queue's figures: histogram counts equal the calls they describe, every
/// offered call is accounted for, and the closed intervals and the open one add up to the
/// totals.
pub fn check_accounts(acd: &Acd) -> Result<(), Violation> {
    for q in 0..acd.queue_count() {
        let queue = QueueId(u32::try_from(q).unwrap_or(u32::MAX));
        let (Some(stats), Some((waiting, ringing)), Some(interval)) = (
            acd.queue_stats(queue),
            acd.queue_depth(queue),
            acd.interval_stats(queue),
        ) else {
            continue;
        };
        let c = stats.counters;
        let wrong = |what: String| Err(Violation::Accounts { queue, what });
        for (name, count, counter) in [
            ("wait", stats.wait.count(), c.answered),
            ("ring", stats.ring.count(), c.answered),
            ("abandon", stats.abandon.count(), c.abandoned),
            ("talk", stats.talk.count(), c.completed),
        ] {
            if count != counter {
                return wrong(format!(
                    "{name} histogram counts {count}, its counter {counter}"
                ));
            }
        }
        if stats.wrap_up.count() > c.completed {
            return wrong(format!(
                "{} wrap-ups for {} completed calls",
                stats.wrap_up.count(),
                c.completed
            ));
        }
        let accounted = c.answered
            + c.abandoned
            + c.overflowed
            + c.transferred
            + c.removed
            + c.callbacks_unanswered
            + (waiting + ringing) as u64;
        if c.offered != accounted {
            return wrong(format!(
                "{} offered but {accounted} accounted for",
                c.offered
            ));
        }
        let closed: u64 = acd
            .closed_intervals(queue)
            .map(|r| r.summary.counters.answered)
            .sum();
        if closed + interval.counters.answered != c.answered {
            return wrong(format!(
                "intervals answered {closed} + {}, totals {}",
                interval.counters.answered, c.answered
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{AcdConfig, AgentConfig, QueueConfig};

    fn ring(call: u64, agent: u32) -> Output {
        Output::Command(Command::Ring {
            call: CallId(call),
            agent: AgentId(agent),
            queue: QueueId(0),
        })
    }

    fn abandon(call: u64) -> Output {
        Output::Event(Event::CallAbandoned {
            call: CallId(call),
            queue: QueueId(0),
            wait: Duration::ZERO,
            position: 1,
        })
    }

    fn arrived(checker: &mut Checker, call: u64, priority: u8) {
        let input = Input::CallArrived {
            call: CallId(call),
            queue: QueueId(0),
            priority,
        };
        checker.input(&input, true).unwrap();
    }

    #[test]
    fn each_broken_rule_is_named() {
        let mut checker = Checker::new();
        assert_eq!(
            checker.observe(&ring(1, 0)),
            Err(Violation::UnknownCall { call: CallId(1) })
        );
        arrived(&mut checker, 1, 0);
        arrived(&mut checker, 2, 0);
        checker.observe(&ring(1, 0)).unwrap();
        assert_eq!(
            checker.observe(&ring(1, 1)),
            Err(Violation::OfferedTwice { call: CallId(1) })
        );
        assert_eq!(
            checker.observe(&ring(2, 0)),
            Err(Violation::AgentBusy {
                agent: AgentId(0),
                call: CallId(2),
                holding: CallId(1)
            })
        );
        assert_eq!(
            checker.observe(&abandon(1)),
            Err(Violation::EndedWhileRinging { call: CallId(1) })
        );
        checker.observe(&abandon(2)).unwrap();
        assert_eq!(
            checker.observe(&abandon(2)),
            Err(Violation::EndedTwice { call: CallId(2) })
        );
        assert_eq!(
            checker.input(
                &Input::CallArrived {
                    call: CallId(2),
                    queue: QueueId(0),
                    priority: 0
                },
                true
            ),
            Err(Violation::ArrivedTwice { call: CallId(2) })
        );
    }

    #[test]
    fn first_come_first_served_is_held_only_when_asked() {
        let queued = |call: u64| {
            Output::Event(Event::CallQueued {
                call: CallId(call),
                queue: QueueId(0),
                position: 1,
                estimated_wait: None,
            })
        };
        for (mut checker, fifo) in [
            (Checker::new(), false),
            (Checker::first_come_first_served(), true),
        ] {
            arrived(&mut checker, 1, 0);
            arrived(&mut checker, 2, 0);
            checker.observe(&queued(1)).unwrap();
            checker.observe(&queued(2)).unwrap();
            let result = checker.observe(&ring(2, 0));
            if fifo {
                assert_eq!(
                    result,
                    Err(Violation::OutOfOrder {
                        call: CallId(2),
                        ahead: CallId(1)
                    })
                );
            } else {
                assert_eq!(result, Ok(()));
            }
        }
    }

    #[test]
    fn a_real_acd_winds_down_clean() {
        let config = AcdConfig {
            skills: vec!["s".into()],
            queues: vec![QueueConfig::new("q", &["s"])],
            agents: vec![AgentConfig::new("a", &[("s", 5)])],
            ..AcdConfig::default()
        };
        let mut acd = Acd::new(config, Timestamp::ZERO).unwrap();
        let mut checker = Checker::first_come_first_served();
        let at = Timestamp::from_secs;
        let login = Input::Login { agent: AgentId(0) };
        assert_eq!(checker.step(&mut acd, at(1), login), Ok(Ok(())));
        for call in 0..3 {
            let arrive = Input::CallArrived {
                call: CallId(call),
                queue: QueueId(0),
                priority: 0,
            };
            assert_eq!(checker.step(&mut acd, at(2), arrive), Ok(Ok(())));
        }
        assert_eq!(checker.offers(), [(CallId(0), AgentId(0))]);
        let answer = Input::OfferAnswered {
            call: CallId(0),
            agent: AgentId(0),
        };
        assert_eq!(checker.step(&mut acd, at(3), answer), Ok(Ok(())));
        // A duplicate id is refused at the door and changes nothing.
        let again = Input::CallArrived {
            call: CallId(1),
            queue: QueueId(0),
            priority: 0,
        };
        assert!(checker.step(&mut acd, at(4), again).unwrap().is_err());
        assert_eq!(checker.live_calls(), [CallId(0), CallId(1), CallId(2)]);
        checker.wind_down(&mut acd, at(5)).unwrap();
        assert!((0..3).all(|call| checker.has_ended(CallId(call))));
    }
}
