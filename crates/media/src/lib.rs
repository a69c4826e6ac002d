//! # homeline-media: the media plane of homeline
//!
//! Owns what happens to a call's audio: SDP offer/answer for the RTP legs, the RTP relay between
//! the PBX leg and the operator leg (symmetric RTP, payload-type mapping, RTCP), per-leg quality
//! statistics, G.711, the tones homeline plays (ring-back, a hold tone) and DTMF: RFC 4733
//! telephone events pass through the relay with their payload type mapped, and a digit the
//! engine got as SIP INFO is sent as RFC 4733 events ([`dtmf`], [`Control::SendDtmf`]). Later
//! also the WebRTC legs (str0m). It must not touch call state, routing or
//! SIP: the engine decides, and tells a call's relay what to do through its bounded control
//! channel; nothing here sits behind a lock shared with signalling on the packet path.
//!
//! ## Layers
//! - Pure, sans-IO, no tokio: [`sdp`] (parse, [`sdp::negotiate`], [`sdp::LocalSdp`]), [`rtp`]
//!   (zero-allocation header view, payload-type rewrite, RTCP demultiplexing), [`stats`]
//!   (RFC 3550 loss and jitter, E-model MOS), [`g711`] (μ-law/A-law tables), [`tone`]
//!   (allocation-free tone frames, Goertzel), [`dtmf`] (RFC 4733 event packets), and
//!   [`relay::RelayCore`], the per-call relay decisions. Time comes in as an argument;
//!   randomness as a seed.
//! - The shell: [`relay::spawn`] hands a call's core and four sockets to a relay worker thread
//!   (one per two CPUs: a level-triggered `epoll` over its calls' sockets, through rustix's safe
//!   API) and runs one small tokio task per call that forwards its control messages;
//!   [`relay::PortAllocator`] leases RTP/RTCP port pairs.
//!
//! ## Why hand-written
//! DESIGN allows `rtc-sdp`/`rtc-rtp`. For this scope (one G.711 stream, a header view, and
//! negotiation with hold rules) the hand-written code is smaller than the glue to those crates'
//! general string-based models, has no dependencies beyond tokio, thiserror and (for the relay
//! worker) rustix and rustc-hash, returns one error type per operation, and is property-tested
//! here. The RTP header view in particular must not allocate, which a general packet type with
//! owned payloads does. The WebRTC side will use str0m's own types.
//!
//! ## Panic policy
//! Nothing a peer sends can panic this crate: SDP text, RTP and RTCP datagrams of any content
//! come back as typed errors or counted drops (property tests feed arbitrary input to the
//! parsers). Tones clamp nonsense parameters instead of failing.

pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod stats;
pub mod tone;

pub use codec::{Codec, Payloads};
pub use dtmf::DtmfEvent;
pub use relay::{
    Control, Leg, LegMedia, PortAllocator, RelayConfig, RelayHandle, RelayReport, spawn,
};
pub use sdp::{Direction, LocalSdp, Negotiated, SessionDescription, negotiate};
pub use tone::{Tone, ToneSpec};
