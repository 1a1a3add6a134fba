//! Available agents in the order they became free.

use crate::ids::AgentId;

const NONE: u32 = u32::MAX;

/// The available agents, longest idle first: an intrusive doubly-linked list over agent
/// indices. Agents become free at the current time, which only moves forward, so appending
/// keeps the list in idle order; joining, leaving and finding the longest idle are O(1).
#[derive(Clone, Debug)]
pub(crate) struct IdleOrder {
    head: u32,
    tail: u32,
    prev: Vec<u32>,
    next: Vec<u32>,
    member: Vec<bool>,
}

impl IdleOrder {
    pub(crate) fn new(agents: usize) -> Self {
        IdleOrder {
            head: NONE,
            tail: NONE,
            prev: vec![NONE; agents],
            next: vec![NONE; agents],
            member: vec![false; agents],
        }
    }

    /// Makes room for agents added by a reconfiguration; none of them is available.
    pub(crate) fn grow(&mut self, agents: usize) {
        if agents > self.member.len() {
            self.prev.resize(agents, NONE);
            self.next.resize(agents, NONE);
            self.member.resize(agents, false);
        }
    }

    /// The agent has just become free: it goes last.
    pub(crate) fn push_back(&mut self, agent: AgentId) {
        let a = agent.0;
        debug_assert!(!self.member[a as usize], "{agent} is already available");
        self.member[a as usize] = true;
        self.prev[a as usize] = self.tail;
        self.next[a as usize] = NONE;
        match self.tail {
            NONE => self.head = a,
            tail => self.next[tail as usize] = a,
        }
        self.tail = a;
    }

    pub(crate) fn remove(&mut self, agent: AgentId) {
        let a = agent.0 as usize;
        if !self.member[a] {
            return;
        }
        self.member[a] = false;
        let (prev, next) = (self.prev[a], self.next[a]);
        match prev {
            NONE => self.head = next,
            prev => self.next[prev as usize] = next,
        }
        match next {
            NONE => self.tail = prev,
            next => self.prev[next as usize] = prev,
        }
    }

    /// Longest idle first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = AgentId> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            (at != NONE).then(|| {
                let agent = AgentId(at);
                at = self.next[at as usize];
                agent
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_agents_became_free() {
        let mut idle = IdleOrder::new(5);
        for a in [3, 1, 4, 0] {
            idle.push_back(AgentId(a));
        }
        idle.remove(AgentId(1));
        idle.remove(AgentId(2)); // not a member: nothing happens
        assert_eq!(idle.iter().map(|a| a.0).collect::<Vec<_>>(), [3, 4, 0]);
        idle.remove(AgentId(3));
        idle.remove(AgentId(0));
        idle.push_back(AgentId(1));
        assert_eq!(idle.iter().map(|a| a.0).collect::<Vec<_>>(), [4, 1]);
        idle.remove(AgentId(4));
        idle.remove(AgentId(1));
        assert_eq!(idle.iter().count(), 0);
        idle.push_back(AgentId(2));
        assert_eq!(idle.iter().map(|a| a.0).collect::<Vec<_>>(), [2]);
    }
}
