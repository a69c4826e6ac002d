//! # homeline-routing: the routing core (ACD)
//!
//! Owns operators, their states, queues, skills, strategies, offers and deadlines, and decides
//! which operator gets which call. It is a pure state machine in the sans-IO style of
//! `quinn-proto` and `str0m`: no tokio, no sockets, no locks, no clock reads, no global
//! randomness. It must not do I/O or know about SIP.
//!
//! ## Run loop
//! ```text
//! loop {
//!     router.handle(now, event)?;          // or router.handle_timeout(now)
//!     while let Some(cmd) = router.poll_command() { carry it out }
//!     sleep until router.poll_timeout() or the next event
//! }
//! ```
//! Time ([`Time`]) and randomness ([`Entropy`]) are inputs, so a simulation on virtual time
//! replays exactly; events and commands are serialisable so the stream can be recorded.
//!
//! ## Guarantees (checked by [`Router::check_invariants`] in the tests)
//! - an operator holds at most one offer or call (a queue call or one of their own); a call
//!   is connected to at most one operator;
//! - every visit of a call to a queue ends in exactly one [`Outcome`];
//! - per queue, `offered = answered + abandoned + overflowed + rejected + waiting + ringing`;
//! - after every input, no waiting call has an Available operator that could take it.
//!
//! ## Panic policy
//! Nothing an event carries can panic the router: unknown ids and impossible transitions come
//! back as [`EventError`] and leave the state unchanged.

mod agents;
mod calls;
mod config;
mod event;
mod ids;
mod invariants;
mod keys;
mod outbound;
mod reconfig;
mod rng;
mod router;
mod select;
mod stats;
mod time;

pub use config::{
    AgentConfig, ConfigError, MembershipConfig, NotReadyReason, OverflowConfig, QueueConfig,
    RelaxStep, RouterConfig, SkillRequirementConfig, Strategy, WhenEmpty,
};
pub use event::{
    AgentState, CallOutcome, Cause, Command, Event, EventError, Outcome, OverflowTarget,
    RejectReason, SkillReq, StateKind, WithdrawReason,
};
pub use ids::{AgentId, CallId, QueueId, SkillId};
pub use rng::{Entropy, SplitMix64};
pub use router::Router;
pub use stats::QueueStats;
pub use time::Time;
