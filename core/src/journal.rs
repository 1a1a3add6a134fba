//! The journal: every input with its time, enough to rebuild every decision.
//!
//! An [`crate::Acd`] built with [`crate::Acd::with_journal`] records each input it is
//! handed. Replaying those entries into a new ACD with the same configuration and start
//! time reproduces the identical output sequence: the core reads no clock, draws no random
//! number and iterates no unordered map where order shows. That serves audits ("why did
//! agent 7 get that call?"), crash recovery and what-if replays under another config.

use serde::{Deserialize, Serialize};

use crate::acd::Acd;
use crate::config::AcdConfig;
use crate::error::AcdError;
use crate::input::Input;
use crate::output::Output;
use crate::time::Timestamp;

/// One input and the time it was handled at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// When.
    pub at: Timestamp,
    /// What.
    pub input: Input,
}

/// A complete journal: the configuration, the start time and the inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// The configuration the ACD was built with.
    pub config: AcdConfig,
    /// The time it was built at.
    pub start: Timestamp,
    /// Every input since, in order.
    pub entries: Vec<JournalEntry>,
}

/// What a replay produced.
#[derive(Debug)]
pub struct Replay {
    /// The ACD after the last entry.
    pub acd: Acd,
    /// Every output, in order.
    pub outputs: Vec<Output>,
    /// The inputs the ACD refused, by entry index, with the error it gave then too.
    pub refused: Vec<(usize, AcdError)>,
}

impl Journal {
    /// Feeds every entry to a new ACD and collects what it says.
    pub fn replay(&self) -> Result<Replay, AcdError> {
        let mut acd = Acd::new(self.config.clone(), self.start)?;
        let mut outputs = Vec::new();
        let mut refused = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            if let Err(error) = acd.handle_input(entry.at, entry.input.clone()) {
                refused.push((index, error));
            }
            outputs.extend(std::iter::from_fn(|| acd.poll_output()));
        }
        Ok(Replay {
            acd,
            outputs,
            refused,
        })
    }
}
