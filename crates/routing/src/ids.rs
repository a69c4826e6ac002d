//! Identifiers. Agents, queues and skills are dense indices handed out by the router from its
//! configuration (look them up by name); calls are identified by the caller.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An operator, as a dense index assigned by the router (stable across reconfiguration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentId(pub u32);

/// A queue, as a dense index assigned by the router (stable across reconfiguration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u32);

/// A skill, as a dense index assigned by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SkillId(pub u16);

/// A call, chosen by the caller of the router (the engine); must be unique while the call
/// is known to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallId(pub u64);

impl AgentId {
    pub(crate) fn idx(self) -> usize {
        self.0 as usize
    }
}

impl QueueId {
    pub(crate) fn idx(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent-{}", self.0)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue-{}", self.0)
    }
}
