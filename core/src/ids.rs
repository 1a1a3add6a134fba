//! Id newtypes by which the core's components refer to each other.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The id as an index into the core's tables.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id!(
    /// A call, as numbered by whoever feeds the core (the SIP edge, the simulator).
    /// Unique among the calls the core currently holds.
    CallId(u64),
    "call#"
);
id!(
    /// An agent: its index in [`crate::AcdConfig::agents`].
    AgentId(u32),
    "agent#"
);
id!(
    /// A queue: its index in [`crate::AcdConfig::queues`].
    QueueId(u32),
    "queue#"
);
id!(
    /// A skill: its index in [`crate::AcdConfig::skills`].
    SkillId(u32),
    "skill#"
);
