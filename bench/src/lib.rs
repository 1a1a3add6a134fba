//! Fixtures for Amico's benchmarks: an ACD loaded to a given size, and the operations
//! whose cost the benchmarks measure.
//!
//! The reference size is the issue's: 10,000 waiting callers, 1,000 agents with 20 skills
//! each, 20 queues (one per skill). Every agent serves every queue, so every agent is on a
//! call while callers wait, and an agent coming free chooses among the heads of 20 queues.

pub mod load;

use amico_core::simulator::random::Rng;
use amico_core::{
    Acd, AcdConfig, AgentConfig, AgentId, CallId, Command, Event, Input, Output, QueueConfig,
    QueueId, Timestamp,
};
use rustc_hash::FxHashMap;

/// An ACD at a fixed size, with the bookkeeping to keep it there.
pub struct Loaded {
    /// The ACD.
    pub acd: Acd,
    now: Timestamp,
    next_call: u64,
    queues: u32,
    rng: Rng,
    /// Waiting callers, for picking one at random; index by call.
    waiting: Vec<CallId>,
    waiting_index: FxHashMap<CallId, usize>,
    /// Connected calls and their agents.
    connected: Vec<(CallId, AgentId)>,
}

/// The reference configuration: `skills` skills and as many queues, `agents` agents with
/// every skill at a pseudo-random level.
pub fn config(agents: usize, skills: usize) -> AcdConfig {
    let mut rng = Rng::new(5);
    let names: Vec<String> = (0..skills).map(|s| format!("skill{s:02}")).collect();
    AcdConfig {
        queues: names
            .iter()
            .map(|name| QueueConfig::new(format!("queue-{name}"), &[name.as_str()]))
            .collect(),
        agents: (0..agents)
            .map(|a| {
                let skills: Vec<(&str, u8)> = names
                    .iter()
                    .map(|name| (name.as_str(), 1 + (rng.next_u64() % 10) as u8))
                    .collect();
                AgentConfig::new(format!("agent{a:04}"), &skills)
            })
            .collect(),
        skills: names,
        ..AcdConfig::default()
    }
}

impl Loaded {
    /// Every agent on a call and `waiting` callers spread over the queues.
    pub fn busy(agents: usize, skills: usize, waiting: usize) -> Self {
        let mut loaded = Loaded::empty(agents, skills);
        for agent in 0..agents {
            loaded.input(Input::Login {
                agent: AgentId(agent as u32),
            });
        }
        for _ in 0..agents + waiting {
            loaded.arrive();
        }
        assert_eq!(loaded.waiting.len(), waiting);
        assert_eq!(loaded.connected.len(), agents);
        loaded
    }

    /// Every agent logged in and free; nobody waiting.
    pub fn idle(agents: usize, skills: usize) -> Self {
        let mut loaded = Loaded::empty(agents, skills);
        for agent in 0..agents {
            loaded.input(Input::Login {
                agent: AgentId(agent as u32),
            });
        }
        loaded
    }

    fn empty(agents: usize, skills: usize) -> Self {
        Loaded {
            acd: Acd::new(config(agents, skills), Timestamp::ZERO).expect("valid config"),
            now: Timestamp::ZERO,
            next_call: 0,
            queues: skills as u32,
            rng: Rng::new(11),
            waiting: Vec::new(),
            waiting_index: FxHashMap::default(),
            connected: Vec::new(),
        }
    }

    /// The input for a new caller in a random queue.
    pub fn next_arrival(&mut self) -> Input {
        self.next_call += 1;
        let queue = QueueId((self.rng.next_u64() % u64::from(self.queues)) as u32);
        Input::CallArrived {
            call: CallId(self.next_call),
            queue,
            priority: 0,
        }
    }

    /// The input for a random waiting caller hanging up (from anywhere in its queue).
    pub fn next_abandon(&mut self) -> Input {
        let pick = (self.rng.next_u64() % self.waiting.len() as u64) as usize;
        Input::Hangup {
            call: self.waiting[pick],
        }
    }

    /// The input that ends a random connected call, freeing its agent.
    pub fn next_completion(&mut self) -> Input {
        let pick = (self.rng.next_u64() % self.connected.len() as u64) as usize;
        Input::Hangup {
            call: self.connected[pick].0,
        }
    }

    /// A new caller arrives (and is answered at once if an agent is free).
    pub fn arrive(&mut self) {
        let input = self.next_arrival();
        self.input(input);
    }

    /// Handles an input 1 µs after the last and settles what follows: offers are answered
    /// at once, ended calls forgotten.
    pub fn input(&mut self, input: Input) {
        self.handle(input);
        self.settle();
    }

    /// Handles an input 1 µs after the last, leaving its outputs for [`Loaded::settle`]:
    /// this is the part a benchmark times.
    pub fn handle(&mut self, input: Input) {
        self.now = Timestamp::from_micros(self.now.as_micros() + 1);
        self.acd
            .handle_input(self.now, input)
            .expect("benchmark inputs are valid");
    }

    /// Drains the outputs, answering offers and keeping the bookkeeping.
    pub fn settle(&mut self) {
        let mut answers = Vec::new();
        while let Some(output) = self.acd.poll_output() {
            match output {
                Output::Event(Event::CallQueued { call, .. }) => {
                    self.waiting_index.insert(call, self.waiting.len());
                    self.waiting.push(call);
                }
                Output::Command(Command::Ring { call, agent, .. }) => {
                    self.forget_waiting(call);
                    answers.push(Input::OfferAnswered { call, agent });
                }
                Output::Event(Event::CallConnected { call, agent, .. }) => {
                    self.connected.push((call, agent));
                }
                Output::Event(Event::CallAbandoned { call, .. }) => self.forget_waiting(call),
                Output::Event(Event::CallCompleted { call, .. }) => {
                    self.connected.retain(|(c, _)| *c != call);
                }
                _ => {}
            }
        }
        for answer in answers {
            self.input(answer);
        }
    }

    fn forget_waiting(&mut self, call: CallId) {
        if let Some(index) = self.waiting_index.remove(&call) {
            self.waiting.swap_remove(index);
            if let Some(&moved) = self.waiting.get(index) {
                self.waiting_index.insert(moved, index);
            }
        }
    }

    /// Callers waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}
