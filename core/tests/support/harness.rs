//! A virtual-clock harness for driving the ACD in tests.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use amico_core::{
    Acd, AcdConfig, AcdError, AgentId, CallId, Command, Event, Input, OfferFailure, Output,
    QueueId, Timestamp,
};

/// The ACD, a virtual clock and every output so far.
pub struct Harness {
    pub acd: Acd,
    pub now: Timestamp,
    /// Outputs not yet taken by [`Harness::take`].
    pub pending: Vec<Output>,
    /// Every output since the start.
    pub all: Vec<Output>,
}

impl Harness {
    pub fn new(config: AcdConfig) -> Self {
        Harness {
            acd: Acd::with_journal(config, Timestamp::ZERO).expect("valid config"),
            now: Timestamp::ZERO,
            pending: Vec::new(),
            all: Vec::new(),
        }
    }

    /// Handles an input at the current time.
    pub fn input(&mut self, input: Input) -> Result<(), AcdError> {
        let result = self.acd.handle_input(self.now, input);
        self.collect();
        result
    }

    fn collect(&mut self) {
        while let Some(output) = self.acd.poll_output() {
            self.pending.push(output.clone());
            self.all.push(output);
        }
    }

    /// Moves the clock forward by `secs`, firing every timer due on the way at its deadline.
    pub fn advance(&mut self, secs: f64) {
        let target = self.now + Duration::from_secs_f64(secs);
        self.advance_to(target);
    }

    /// The ACD is told the time at every deadline on the way and at the target.
    pub fn advance_to(&mut self, target: Timestamp) {
        while let Some(deadline) = self.acd.poll_timeout().filter(|&d| d < target) {
            self.now = deadline;
            self.input(Input::Timeout)
                .expect("a timeout is always accepted");
        }
        self.now = target;
        self.input(Input::Timeout)
            .expect("a timeout is always accepted");
    }

    /// Jumps to the next deadline and fires it; false when none is pending.
    pub fn step(&mut self) -> bool {
        match self.acd.poll_timeout() {
            Some(deadline) => {
                self.now = deadline;
                self.input(Input::Timeout)
                    .expect("a timeout is always accepted");
                true
            }
            None => false,
        }
    }

    /// Steps until `done` holds, failing rather than hanging after `max_steps`.
    pub fn drive_bounded(&mut self, max_steps: usize, mut done: impl FnMut(&Harness) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            assert!(self.step(), "no timer left and the condition does not hold");
        }
        assert!(done(self), "still not done after {max_steps} steps");
    }

    /// The outputs since the last take.
    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.pending)
    }

    pub fn take_commands(&mut self) -> Vec<Command> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Command(c) => Some(c),
                Output::Event(_) => None,
            })
            .collect()
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                Output::Command(_) => None,
            })
            .collect()
    }

    /// The Ring commands among the pending outputs, as (call, agent); takes everything.
    pub fn take_rings(&mut self) -> Vec<(u64, u32)> {
        self.take_commands()
            .into_iter()
            .filter_map(|c| match c {
                Command::Ring { call, agent, .. } => Some((call.0, agent.0)),
                _ => None,
            })
            .collect()
    }

    pub fn arrive(&mut self, call: u64, queue: u32, priority: u8) {
        self.input(Input::CallArrived {
            call: CallId(call),
            queue: QueueId(queue),
            priority,
        })
        .expect("arrival accepted");
    }

    pub fn login(&mut self, agent: u32) {
        self.input(Input::Login {
            agent: AgentId(agent),
        })
        .expect("login accepted");
    }

    pub fn login_all(&mut self) {
        for agent in 0..self.acd.agent_count() as u32 {
            self.login(agent);
        }
    }

    pub fn answer(&mut self, call: u64, agent: u32) {
        self.input(Input::OfferAnswered {
            call: CallId(call),
            agent: AgentId(agent),
        })
        .expect("answer accepted");
    }

    pub fn reject(&mut self, call: u64, agent: u32) {
        self.input(Input::OfferFailed {
            call: CallId(call),
            agent: AgentId(agent),
            reason: OfferFailure::Rejected,
        })
        .expect("rejection accepted");
    }

    pub fn hangup(&mut self, call: u64) {
        self.input(Input::Hangup { call: CallId(call) })
            .expect("hangup accepted");
    }

    /// The snapshot as JSON: a cheap deep comparison of the whole visible state.
    pub fn state_json(&self) -> String {
        serde_json::to_string(&self.acd.snapshot()).expect("snapshots serialise")
    }
}
