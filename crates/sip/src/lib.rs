//! # homeline-sip: the SIP edge
//!
//! Owns SIP transports, transactions and dialogs (on rsipstack), the registrar and location
//! service, digest authentication, trunk identification, OPTIONS keepalive to trunks and
//! qualify of operators' devices. It must not decide routing: it hands calls and
//! registrations to the engine.
//!
//! The pure parts (`digest`, `registrar`, `trunks`, `sipmsg`) take time as an input and are
//! tested on their own; `edge` is the thin tokio shell around rsipstack. rsipstack's types
//! stay inside this crate.
//!
//! ## Call legs (the B2BUA's SIP side)
//! The runtime takes [`SipEdge::events`] and carries the engine's decisions out through
//! [`SipEdge`]'s leg methods:
//!
//! | event | the runtime answers with |
//! |---|---|
//! | [`EdgeEvent::Inbound`] (INVITE from a trunk, `100` sent, INVITE held) | `ring_pbx`, `answer_pbx(sdp)`, `reject_pbx(status, contact)` |
//! | [`EdgeEvent::PbxGone`] (CANCEL answered `487`, or BYE answered `200`) | nothing more to the PBX |
//! | `LegRinging`, `LegEarlyMedia`, `LegAnswered`, `LegRefused`, `LegUnreachable`, `LegHungUp` (after `invite_agent`) | `cancel_agent`, `bye_agent`, and the PBX side |
//! | `LegDtmf`, `PbxDtmf` (SIP INFO `application/dtmf-relay` or `application/dtmf` in a confirmed dialog, answered `200`) | the digit to the other side as RFC 4733 |
//! | [`EdgeEvent::FeatureCode`] (an operator's INVITE for a feature code, digest-checked, held) | `answer_pbx(sdp)`, then `bye_pbx`; or `reject_pbx` |
//! | `Registered`, `Unregistered` | operator online / offline |
//!
//! The PBX leg (`pbx`) and the operator legs (`agent`) keep their own dialog state (tags,
//! route set, remote target) over rsipstack transactions; rsipstack's dialog layer is not
//! used, because it routes a dialog's requests over UDP (the 2xx ACK, CANCEL, BYE) by the
//! peer's Contact, which a phone behind NAT cannot receive. Operators are reached where
//! they registered from, on every device at once (`agent` explains how, `fork` how the
//! devices' answers make one outcome), the PBX over the flow its INVITE came on.
//! Legs placed towards a trunk's PBX (`outbound`) go over UDP or, for a TCP trunk, over a
//! connection homeline opens to the PBX and reuses.
//! A re-INVITE from either side (hold, resume) is answered `200` with our last SDP and
//! changes nothing yet.
//!
//! Requests from sources that are not trunks are rate-limited per source (`ratelimit`, a
//! token bucket per IPv4 address or IPv6 /64, `[sip] rate_limit` and `rate_burst`): over UDP
//! in `guard` before parsing, over TCP in its inspector; one over the limit is dropped
//! unanswered and counted in [`stats::SipStats::rate_limited`].
//!
//! Known limits of the transport underneath (rsipstack 0.7.14): a framing or parse error on a
//! TCP connection closes that connection (no `400` is possible there); UDP datagrams larger
//! than 8 KiB are truncated and counted as malformed.

mod agent;
pub mod digest;
mod edge;
mod fork;
mod guard;
mod hold;
mod info;
mod keepalive;
mod legs;
mod operator_calls;
mod outbound;
mod pbx;
mod qualify;
mod ratelimit;
mod refer;
pub mod registrar;
mod registration;
mod sipmsg;
pub mod stats;
pub mod trunks;

pub use edge::{ALLOW, EdgeError, EdgeSettings, SipEdge, UserSecret};
pub use legs::{CallRef, EVENTS_CAPACITY, EdgeEvent, LegRef};
pub use operator_calls::{Feature, FeatureCodes};
pub use outbound::OutboundFrom;
pub use ratelimit::RateLimit;
pub use refer::target_number as uri_user;
