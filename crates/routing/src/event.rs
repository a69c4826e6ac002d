//! What goes into the router ([`Event`]) and what comes out ([`Command`]). All plain,
//! serialisable data: an event log replays to the same commands.

use crate::config::{NotReadyReason, RouterConfig};
use crate::ids::{AgentId, CallId, QueueId, SkillId};
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A required skill of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkillReq {
    pub skill: SkillId,
    /// Minimum proficiency, 1–5.
    pub min: u8,
}

/// An input to the router. Each is applied at a `now` given alongside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The operator logs in, Ready at once or Not Ready ("logged in").
    Login { agent: AgentId, ready: bool },
    /// The operator logs out; during a call, after it.
    Logout { agent: AgentId },
    /// The operator is Ready (also ends wrap-up early, and logs in a logged-out operator).
    Ready { agent: AgentId },
    /// The operator is Not Ready; while ringing, the offer is withdrawn (not counted as a
    /// miss); during a call, it applies when the call ends (instead of wrap-up).
    NotReady {
        agent: AgentId,
        reason: NotReadyReason,
    },
    /// A call arrives at a queue. `skills`: `None` takes the queue's required skills.
    CallArrived {
        call: CallId,
        queue: QueueId,
        priority: u8,
        skills: Option<Vec<SkillReq>>,
    },
    /// The operator answered the offer.
    OfferAccepted { call: CallId, agent: AgentId },
    /// The operator declined the offer (busy, rejected): counts as a miss.
    OfferDeclined { call: CallId, agent: AgentId },
    /// The caller hung up (while queued, ringing, or talking).
    CallerHungUp { call: CallId },
    /// A connected call ended (either side hung up).
    CallEnded { call: CallId },
    /// The operator finished wrap-up early.
    WrapUpDone { agent: AgentId },
    /// The operator's connection was lost: a ringing offer goes back to the queue (no miss),
    /// the operator becomes Not Ready ("connection lost"), after the call if talking.
    ConnectionLost { agent: AgentId },
    /// Move the call to a queue (blind transfer to a queue, supervisor requeue). A connected
    /// call ends its visit answered; a waiting or ringing one ends it overflowed.
    Transfer {
        call: CallId,
        queue: QueueId,
        priority: Option<u8>,
    },
    /// Replace queues and operators; waiting calls, offers and calls in progress are kept.
    Reconfigure(Arc<RouterConfig>),
    /// The operator placed a call of their own (dialled a number): `call` is its id, unique
    /// among the calls the router holds, queue calls included. The operator is
    /// [`AgentState::OutboundCall`] meanwhile: offered nothing, counted as on call, and the
    /// call has no queue visit and no [`Outcome`], and the strategies count neither it nor
    /// its talk time (idle time starts again when it ends). A queue call ringing there is
    /// withdrawn (not a miss) and goes back to the head of its queue. Allowed from
    /// Available, Not Ready, wrap-up and ringing; logged out or already on a call is
    /// `InvalidState`.
    OutboundStarted { agent: AgentId, call: CallId },
    /// The operator's own call ended. There is no wrap-up after it: the operator goes back
    /// to Available if they were Available (or ringing) when dialling, else to what they
    /// were: Not Ready with its reason, or wrap-up until its end if it is not over yet. A
    /// logout, Not Ready, Ready or connection loss meanwhile applies now instead.
    OutboundEnded { call: CallId },
}

/// An operator's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AgentState {
    LoggedOut,
    NotReady {
        reason: NotReadyReason,
    },
    Available,
    Offered {
        call: CallId,
        deadline: Time,
    },
    OnCall {
        call: CallId,
    },
    WrapUp {
        until: Time,
    },
    /// On a call of their own ([`Event::OutboundStarted`]), not a queue call; counted as
    /// [`StateKind::OnCall`].
    OutboundCall {
        call: CallId,
    },
}

impl AgentState {
    /// The state's kind, for counting.
    pub fn kind(&self) -> StateKind {
        match self {
            AgentState::LoggedOut => StateKind::LoggedOut,
            AgentState::NotReady { .. } => StateKind::NotReady,
            AgentState::Available => StateKind::Available,
            AgentState::Offered { .. } => StateKind::Offered,
            AgentState::OnCall { .. } => StateKind::OnCall,
            AgentState::WrapUp { .. } => StateKind::WrapUp,
            AgentState::OutboundCall { .. } => StateKind::OnCall,
        }
    }
}

/// An [`AgentState`] without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateKind {
    LoggedOut = 0,
    NotReady = 1,
    Available = 2,
    Offered = 3,
    OnCall = 4,
    WrapUp = 5,
}

impl StateKind {
    pub const ALL: [StateKind; 6] = [
        StateKind::LoggedOut,
        StateKind::NotReady,
        StateKind::Available,
        StateKind::Offered,
        StateKind::OnCall,
        StateKind::WrapUp,
    ];

    /// Lower-case name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::LoggedOut => "logged_out",
            StateKind::NotReady => "not_ready",
            StateKind::Available => "available",
            StateKind::Offered => "offered",
            StateKind::OnCall => "on_call",
            StateKind::WrapUp => "wrap_up",
        }
    }
}

/// Why an operator changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cause {
    /// The operator asked (login, logout, ready, not ready, wrap-up done) or dialled out.
    Request,
    /// The router offered a call.
    Offer,
    /// The operator accepted the offer.
    Answer,
    /// The offer was withdrawn (see the matching [`Command::Withdraw`]).
    Withdrawn,
    /// The offer was missed (ring timeout or declined).
    Missed,
    /// The call ended (a queue call, or the operator's own).
    CallEnded,
    /// Wrap-up time ran out.
    WrapUpTimeout,
    /// The operator's connection was lost.
    ConnectionLost,
    /// The configuration changed (operator removed).
    Reconfigured,
}

/// Why an offer was withdrawn from an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WithdrawReason {
    /// Ring-all: someone else accepted.
    AnsweredElsewhere,
    /// Nobody answered within the ring timeout.
    RingTimeout,
    /// The caller hung up.
    CallerHungUp,
    /// The operator went Not Ready, logged out, lost the connection, dialled out or was
    /// removed.
    AgentUnavailable,
    /// The call was transferred to a queue.
    Transferred,
    /// The operator declined it (counts as a miss).
    Declined,
}

/// Why a call was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// No member of the queue is logged in and the queue is configured to reject then.
    NoAgents,
    /// The queue was removed from the configuration.
    QueueClosed,
}

/// Where an overflowing call goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OverflowTarget {
    /// Moved to another queue by the router itself (informational for the engine).
    Queue(QueueId),
    /// To be sent outside by the engine (e.g. a number on a trunk).
    External(Arc<str>),
    /// No target configured: the engine ends the call towards the PBX (`480`).
    None,
}

/// How a visit of a call to a queue ended. Every visit ends in exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    Answered { agent: AgentId },
    Abandoned,
    Overflowed { target: OverflowTarget },
    Rejected { reason: RejectReason },
}

/// The record of one visit of a call to a queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallOutcome {
    pub call: CallId,
    pub queue: QueueId,
    pub outcome: Outcome,
    /// From arrival in the queue to answer (or to the end, if not answered).
    pub wait: Duration,
    /// From answer to end; zero if not answered.
    pub talk: Duration,
}

/// An output of the router, for the engine to carry out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Ring `agent` with `call` until `deadline`.
    Offer {
        call: CallId,
        agent: AgentId,
        deadline: Time,
    },
    /// Stop ringing `agent` (cancel the operator leg).
    Withdraw {
        call: CallId,
        agent: AgentId,
        reason: WithdrawReason,
    },
    /// `agent` now holds `call`: bridge them.
    Connected { call: CallId, agent: AgentId },
    /// Send `call` to `target`.
    Overflow {
        call: CallId,
        target: OverflowTarget,
    },
    /// Refuse `call`.
    Reject { call: CallId, reason: RejectReason },
    /// An operator's state changed.
    AgentStateChanged {
        agent: AgentId,
        from: AgentState,
        to: AgentState,
        cause: Cause,
        at: Time,
    },
    /// A call's visit to a queue ended.
    Outcome(CallOutcome),
}

/// An event the router could not apply; the router is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventError {
    UnknownAgent(AgentId),
    UnknownQueue(QueueId),
    UnknownSkill(SkillId),
    UnknownCall(CallId),
    /// `CallArrived` or `OutboundStarted` for a call the router already holds.
    DuplicateCall(CallId),
    /// Accept/decline from an operator the call is not (or no longer) offered to: the
    /// engine must hang up that operator leg.
    NotOffered {
        call: CallId,
        agent: AgentId,
    },
    /// `CallEnded` for a call that is not connected.
    NotConnected(CallId),
    /// The operator cannot do this in its current state (e.g. Ready while on a call).
    InvalidState {
        agent: AgentId,
        state: StateKind,
    },
    /// A skill requirement outside 1–5.
    BadProficiency(u8),
    /// The new configuration is invalid (nothing was changed).
    BadConfig(Vec<String>),
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::UnknownAgent(a) => write!(f, "unknown {a}"),
            EventError::UnknownQueue(q) => write!(f, "unknown {q}"),
            EventError::UnknownSkill(s) => write!(f, "unknown skill {}", s.0),
            EventError::UnknownCall(c) => write!(f, "unknown {c}"),
            EventError::DuplicateCall(c) => write!(f, "{c} already known"),
            EventError::NotOffered { call, agent } => write!(f, "{call} is not offered to {agent}"),
            EventError::NotConnected(c) => write!(f, "{c} is not connected"),
            EventError::InvalidState { agent, state } => {
                write!(f, "{agent} cannot do that while {}", state.as_str())
            }
            EventError::BadProficiency(p) => write!(f, "proficiency {p} outside 1-5"),
            EventError::BadConfig(p) => write!(f, "invalid configuration: {}", p.join("; ")),
        }
    }
}

impl std::error::Error for EventError {}
