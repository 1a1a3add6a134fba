//! # amico-core
//!
//! Amico's automatic call distribution as a pure, deterministic state machine: skills,
//! queues, agents, routing, timers, wait metrics, the Erlang C and Erlang A models and a
//! discrete-event simulator that drives the real thing with virtual time.
//!
//! The core is sans-IO. It has no sockets, no async runtime, no clock and no global random
//! number generator: time is an argument. The same code runs the live server, the
//! simulator (a year of traffic in well under a second) and the tests.
//!
//! ## The run loop
//! ```no_run
//! use amico_core::{Acd, AcdConfig, Input, Output, Timestamp};
//! # fn next_input() -> Option<(Timestamp, Input)> { None }
//! # fn deliver(_: Output) {}
//! let mut acd = Acd::new(AcdConfig::default(), Timestamp::ZERO)?;
//! while let Some((now, input)) = next_input() {       // an input or the timeout, whichever first
//!     acd.handle_input(now, input)?;                    // a refused input changes nothing
//!     while let Some(output) = acd.poll_output() {      // commands for the edges, events
//!         deliver(output);
//!     }
//!     let _wake_at = acd.poll_timeout();                // then send Input::Timeout at this time
//! }
//! # Ok::<(), amico_core::AcdError>(())
//! ```
//!
//! Producers on other threads hand inputs over through [`handoff::Inbox`], and readers see
//! [`AcdSnapshot`]s through [`handoff::SnapshotCell`]; neither takes a lock.

pub mod acd;
mod bitset;
pub mod config;
pub mod erlang;
mod error;
mod estimator;
pub mod handoff;
mod ids;
mod input;
pub mod invariants;
pub mod journal;
pub mod metrics;
mod output;
pub mod ranked;
pub mod simulator;
mod snapshot;
pub mod tally;
mod time;

pub use acd::{Acd, AgentState};
pub use config::{
    AcdConfig, AgentConfig, AgentSkill, ExpansionStep, NoAgentsPolicy, Overflow, QueueConfig,
    QueueUpdate, SkillRequirement, StatisticsConfig, Strategy, Thresholds,
};
pub use error::{AcdError, ConfigError};
pub use ids::{AgentId, CallId, QueueId, SkillId};
pub use input::{Input, OfferFailure, Vote};
pub use output::{
    AgentStatus, Command, ConfigChange, Event, Output, OverflowReason, OverflowedTo, WaitOutcome,
};
pub use snapshot::{AcdSnapshot, AgentCounts, AgentSnapshot, QueueSnapshot, WaitingCaller};
pub use time::Timestamp;
