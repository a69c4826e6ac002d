//! SDP (RFC 4566) offer/answer (RFC 3264) for the audio of a SIP call.
//!
//! - [`SessionDescription::parse`] reads an offer or answer from a PBX or softphone into typed
//!   values: origin, connection address (IPv4 or IPv6, session or media level), every `m=`
//!   line with its port, transport and payload types, `a=rtpmap`, `a=fmtp`, `a=ptime`, the
//!   direction attributes, `a=rtcp` and `a=rtcp-mux`. Unknown lines and attributes are kept
//!   out of the way, as RFC 4566 asks; anything malformed in a line homeline uses is a
//!   [`ParseError`] naming the line. It never panics (property-tested on arbitrary text).
//! - [`negotiate`] picks, from the first usable `m=audio` of a remote offer (or of the answer to
//!   our own offer), the first codec in the remote's order that we support, plus
//!   telephone-event if present, keeping the remote's payload type numbers, and works out both
//!   sides' directions (hold: `sendonly` is answered `recvonly`, `inactive` with `inactive`).
//! - [`LocalSdp`] writes our side: the answer to an offer (rejected `m=` lines echoed with port
//!   0, as RFC 3264 §6 requires) and our own offer (PCMU 0, PCMA 8, telephone-event 101), with
//!   an `o=` version that goes up whenever what we send changes.
//!
//! Written by hand rather than on `rtc-sdp`: homeline needs one audio stream's worth of SDP
//! with typed negotiation and hold rules on top, which is about as much code as adapting a
//! general SDP model of strings would be, and this way the parser has no dependencies, one
//! error type and is fuzzed here.

mod build;
mod negotiate;
mod parse;

pub use build::LocalSdp;
pub use negotiate::{NegotiateError, Negotiated, negotiate};
pub use parse::{ParseError, ParseErrorKind};

use std::fmt;
use std::net::IpAddr;

/// Media direction (RFC 3264 §5.1, §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction with these capabilities.
    pub const fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether this side sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction seen from the other side: `sendonly` ⇄ `recvonly`.
    pub const fn reversed(self) -> Self {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// The attribute name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an attribute name stands for (case-sensitive, as RFC 4566 defines them).
    pub fn from_attribute(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `o=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; goes up when the sender changes the session.
    pub session_version: u64,
    /// Unicast address or host name of the originator, as written.
    pub address: String,
}

/// An `a=rtpmap` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given.
    pub channels: Option<u8>,
}

/// An `a=fmtp` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub payload_type: u8,
    /// Format parameters, as written.
    pub params: String,
}

/// An `a=rtcp` attribute (RFC 3605): where the remote wants RTCP when not on RTP port + 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when different from the connection address.
    pub address: Option<IpAddr>,
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video`, `application`, …).
    pub media: String,
    /// Port; 0 marks a rejected or disabled stream.
    pub port: u16,
    /// The `/n` port count, when given.
    pub port_count: Option<u16>,
    /// Transport protocol as written (`RTP/AVP`, `RTP/SAVP`, …).
    pub proto: String,
    /// Formats as written.
    pub formats: Vec<String>,
    /// Formats as payload types, for RTP transports (empty for others).
    pub payload_types: Vec<u8>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` attributes.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` attributes.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime` in ms.
    pub ptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
    /// `a=rtcp` attribute.
    pub rtcp: Option<RtcpAttribute>,
}

impl MediaDescription {
    /// Port 0: the stream is rejected (in an answer) or disabled (in an offer).
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// `m=audio`.
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    /// Transport is plain `RTP/AVP`, the only one the RTP relay speaks.
    pub fn is_rtp_avp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP")
    }

    /// The `a=rtpmap` of a payload type.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The `a=fmtp` of a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&Fmtp> {
        self.fmtps.iter().find(|m| m.payload_type == pt)
    }
}

/// A parsed session description.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Option<Origin>,
    /// The `s=` line.
    pub session_name: Option<String>,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Session-level `a=rtcp-mux` (rare, but then it applies to every stream).
    pub rtcp_mux: bool,
    /// The `m=` sections in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// The connection address of media section `m`: its own `c=`, else the session's.
    pub fn connection_of(&self, m: &MediaDescription) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The direction of media section `m`: its own attribute, else the session's, else
    /// `sendrecv`.
    pub fn direction_of(&self, m: &MediaDescription) -> Direction {
        m.direction.or(self.direction).unwrap_or_default()
    }

    /// The first `m=audio` section and its index.
    pub fn first_audio(&self) -> Option<(usize, &MediaDescription)> {
        self.media.iter().enumerate().find(|(_, m)| m.is_audio())
    }
}
