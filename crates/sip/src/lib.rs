//! # homeline-sip: the SIP edge
//!
//! Owns SIP transports, transactions and dialogs (on rsipstack), the registrar and location
//! service, digest authentication, trunk identification and OPTIONS keepalive. It must not
//! decide routing: it hands calls and registrations to the engine.
//!
//! The pure parts (`digest`, `registrar`, `trunks`) take time as an input and are tested on
//! their own; `edge` is the thin tokio shell around rsipstack. rsipstack's types stay inside
//! this crate.
//!
//! Known limits of the transport underneath (rsipstack 0.7.14): a framing or parse error on a
//! TCP connection closes that connection (no `400` is possible there); UDP datagrams larger
//! than 8 KiB are truncated and counted as malformed.

pub mod digest;
mod edge;
mod guard;
pub mod registrar;
pub mod stats;
pub mod trunks;

pub use edge::{ALLOW, EdgeError, EdgeSettings, SipEdge, UserSecret};
