//! # homeline-sip: the SIP edge
//!
//! Owns SIP transports, transactions and dialogs (on rsipstack), the registrar and location
//! service, digest authentication, trunk identification and OPTIONS keepalive. It must not
//! decide routing: it hands calls and registrations to the engine.

pub mod digest;
