//! # homeline-engine: the call path as a pure state machine
//!
//! Joins the three parties of an inbound call: the PBX leg (a SIP dialog with the central
//! PBX), the routing core (which operator gets the call) and the operator legs (SIP dialogs
//! with operators' softphones, several at once for `ring-all`). It owns the
//! [`homeline_routing::Router`] and turns its commands into what the SIP and media layers
//! must do, as [`Output`] values. It must not open sockets, parse SIP or read the clock: the
//! runtime feeds it [`Input`]s with `now` and carries out the outputs.
//!
//! ## Races it resolves
//! - the caller hangs up while the operator answers: the operator's late `200` gets a BYE;
//! - two operators answer a `ring-all` offer at once: the first wins, the other is hung up;
//! - a CANCEL crosses the operator's `200`: the leg is hung up and the call goes on.
//!
//! ## Outside legs
//! A call transferred by its operator to an outside number, or an answered call overflowing
//! to an external target, gets an *outside leg* through the trunk it came in on
//! ([`Output::CallOutside`], `Outside*` inputs, a no-answer deadline of [`OUTSIDE_RING`]);
//! see the `outside` module for who keeps the call when the target answers or fails.
//!
//! Every call ends in exactly one outcome per queue visit (the routing core's guarantee), and
//! the engine emits [`Output::CallDone`] exactly once per call.

mod engine;
mod outside;

pub use engine::{AnswerMode, Engine, Input, LegId, Output};
pub use homeline_routing as routing;
pub use outside::OUTSIDE_RING;
