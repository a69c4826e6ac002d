//! The routing core's view of the configuration: queues and operators by name. The `config`
//! crate turns the TOML file into these structs; the router validates them again (names
//! must resolve) and assigns dense ids.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How a queue picks among the Available operators eligible for a call. Every strategy
/// first restricts itself to the lowest penalty tier that has an eligible Available operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The operator who has been Available the longest.
    #[default]
    LongestIdle,
    /// The next operator after the one offered last, in configured order, wrapping around.
    RoundRobin,
    /// The operator who answered the fewest calls this shift, then longest idle.
    FewestCalls,
    /// The operator with the least talk time this shift, then longest idle.
    LeastTalkTime,
    /// Every eligible Available operator at once; the first to accept wins, the rest are
    /// withdrawn.
    RingAll,
    /// By penalty, then configured order (the first operator in the file first).
    Linear,
    /// Uniformly at random, from the injected entropy source.
    Random,
    /// Best proficiency in the call's first required skill, then longest idle.
    Skills,
}

impl Strategy {
    /// Every strategy, for documentation and tests.
    pub const ALL: [Strategy; 8] = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::LeastTalkTime,
        Strategy::RingAll,
        Strategy::Linear,
        Strategy::Random,
        Strategy::Skills,
    ];

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::RoundRobin => "round-robin",
            Strategy::FewestCalls => "fewest-calls",
            Strategy::LeastTalkTime => "least-talk-time",
            Strategy::RingAll => "ring-all",
            Strategy::Linear => "linear",
            Strategy::Random => "random",
            Strategy::Skills => "skills",
        }
    }
}

/// What happens to a call arriving at a queue none of whose members is logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhenEmpty {
    /// Queue it anyway; it waits (up to max wait) for someone to log in.
    #[default]
    Wait,
    /// Reject it at once; also rejects waiting calls when the last member logs out.
    Reject,
}

/// Where a call goes when it has waited longer than the queue's max wait.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowConfig {
    /// Another queue, by name: the call is moved there (a new visit, at its tail).
    Queue(String),
    /// Something outside the router (a number on a trunk): the engine is told to send the
    /// call there.
    External(String),
}

/// A required skill with a minimum proficiency (1–5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkillRequirementConfig {
    pub skill: String,
    pub min: u8,
}

/// A relaxation step: once a call has waited `after`, any required skill is satisfied by a
/// proficiency of at least `min_proficiency`; `0` means any member of the queue will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelaxStep {
    pub after: Duration,
    pub min_proficiency: u8,
}

/// One queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub name: String,
    pub strategy: Strategy,
    /// How long an offer rings before it is withdrawn (ring-no-answer).
    pub ring_timeout: Duration,
    /// Time an operator spends in wrap-up after each call of this queue.
    pub wrap_up: Duration,
    /// Longest a call waits before it overflows; `None`: for ever.
    pub max_wait: Option<Duration>,
    /// Overflow target; `None` with a max wait: the engine is told to overflow the call with
    /// no target (it answers the PBX `480`).
    pub overflow: Option<OverflowConfig>,
    pub when_empty: WhenEmpty,
    /// Consecutive missed offers after which an operator is made Not Ready ("no answer");
    /// `0` never does.
    pub max_misses: u32,
    /// Service-level threshold: a call answered within it counts as within service level.
    pub service_level: Duration,
    /// Skills required of calls that arrive without their own requirements.
    pub required_skills: Vec<SkillRequirementConfig>,
    /// Relaxation of required skills by waiting time, in increasing `after`.
    pub relax: Vec<RelaxStep>,
}

impl QueueConfig {
    /// A queue with the documented defaults.
    pub fn new(name: impl Into<String>) -> Self {
        QueueConfig {
            name: name.into(),
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(5),
            max_wait: None,
            overflow: None,
            when_empty: WhenEmpty::Wait,
            max_misses: 1,
            service_level: Duration::from_secs(20),
            required_skills: Vec::new(),
            relax: Vec::new(),
        }
    }
}

/// An operator's membership of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MembershipConfig {
    pub queue: String,
    /// Penalty tier, 0 first: a higher tier is offered a call only when no operator of a lower
    /// tier that could take it is Available.
    pub penalty: u8,
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentConfig {
    pub name: String,
    pub queues: Vec<MembershipConfig>,
    /// Skills with proficiency 1–5.
    pub skills: Vec<(String, u8)>,
}

/// Everything the router needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RouterConfig {
    pub queues: Vec<QueueConfig>,
    /// Operators in configured order (used by `linear` and `round-robin`).
    pub agents: Vec<AgentConfig>,
}

/// A problem with a [`RouterConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where: `queue.NAME.KEY` or `agent.NAME.KEY`.
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl RouterConfig {
    /// Every problem in the configuration (empty when valid).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut err = |key: String, problem: String| out.push(ConfigError { key, problem });
        let mut names = std::collections::HashSet::new();
        for q in &self.queues {
            let k = |s: &str| format!("queue.{}.{s}", q.name);
            if q.name.is_empty() {
                err("queue.name".into(), "must not be empty".into());
            }
            if !names.insert(q.name.as_str()) {
                err(k("name"), "duplicate queue name".into());
            }
            if q.ring_timeout.is_zero() {
                err(k("ring_timeout"), "must be greater than zero".into());
            }
            match &q.overflow {
                Some(OverflowConfig::Queue(t)) if !self.queues.iter().any(|o| &o.name == t) => {
                    err(k("overflow"), format!("unknown queue `{t}`"))
                }
                Some(OverflowConfig::Queue(t)) if t == &q.name => {
                    err(k("overflow"), "a queue cannot overflow to itself".into())
                }
                _ => {}
            }
            for r in &q.required_skills {
                if !(1..=5).contains(&r.min) {
                    err(
                        k("required_skills"),
                        format!("skill `{}`: minimum must be 1–5", r.skill),
                    );
                }
            }
            if q.relax.windows(2).any(|w| w[0].after >= w[1].after) {
                err(
                    k("relax"),
                    "steps must be in strictly increasing `after` order".into(),
                );
            }
            for s in &q.relax {
                if s.min_proficiency > 5 {
                    err(k("relax"), "min_proficiency must be 0–5".into());
                }
            }
        }
        let mut agents = std::collections::HashSet::new();
        for a in &self.agents {
            let k = |s: &str| format!("agent.{}.{s}", a.name);
            if a.name.is_empty() {
                err("agent.name".into(), "must not be empty".into());
            }
            if !agents.insert(a.name.as_str()) {
                err(k("name"), "duplicate agent name".into());
            }
            let mut seen = std::collections::HashSet::new();
            for m in &a.queues {
                if !names.contains(m.queue.as_str()) {
                    err(k("queues"), format!("unknown queue `{}`", m.queue));
                }
                if !seen.insert(m.queue.as_str()) {
                    err(k("queues"), format!("queue `{}` listed twice", m.queue));
                }
            }
            let mut seen = std::collections::HashSet::new();
            for (s, p) in &a.skills {
                if !(1..=5).contains(p) {
                    err(k("skills"), format!("skill `{s}`: proficiency must be 1–5"));
                }
                if !seen.insert(s.as_str()) {
                    err(k("skills"), format!("skill `{s}` listed twice"));
                }
            }
        }
        out
    }
}

/// Why an operator is Not Ready.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotReadyReason {
    /// Logged in but not yet Ready.
    LoggedIn,
    /// Missed too many offers in a row (ring-no-answer).
    NoAnswer,
    /// The operator's connection (registration, WebSocket, media) was lost.
    ConnectionLost,
    /// A reason the operator gave ("lunch", "training").
    User(Arc<str>),
}

impl std::fmt::Display for NotReadyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReadyReason::LoggedIn => f.write_str("logged in"),
            NotReadyReason::NoAnswer => f.write_str("no answer"),
            NotReadyReason::ConnectionLost => f.write_str("connection lost"),
            NotReadyReason::User(r) => f.write_str(r),
        }
    }
}
