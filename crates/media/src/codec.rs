//! The payload formats homeline relays and negotiates: G.711 and RFC 4733 telephone events.

use std::fmt;

/// An audio codec homeline can relay, negotiate and synthesise tones in (8 kHz, mono).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// Every supported codec in homeline's order of preference for its own offers.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// The static payload type of RFC 3551.
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// RTP clock rate (samples per second).
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// The byte that encodes digital silence (linear 0).
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// The codec with this static payload type, if any.
    pub const fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The codec with this encoding name (case-insensitive, as SDP requires) and clock rate.
    pub fn from_rtpmap(name: &str, clock_rate: u32, channels: Option<u8>) -> Option<Codec> {
        if clock_rate != 8000 || channels.is_some_and(|c| c != 1) {
            return None;
        }
        Codec::ALL
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// Encoding name of RFC 4733 named telephone events (DTMF).
pub const TELEPHONE_EVENT: &str = "telephone-event";

/// The payload type homeline uses for telephone-event in its own offers.
pub const OUR_TELEPHONE_EVENT_PT: u8 = 101;

/// The payload types one leg uses: its codec and, if negotiated, telephone-event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payloads {
    /// The audio codec of the leg.
    pub codec: Codec,
    /// Its payload type on that leg.
    pub codec_pt: u8,
    /// The telephone-event payload type on that leg, if it was negotiated.
    pub telephone_event_pt: Option<u8>,
}

impl Payloads {
    /// A codec with its static payload type and telephone-event on [`OUR_TELEPHONE_EVENT_PT`].
    pub const fn ours(codec: Codec) -> Self {
        Payloads {
            codec,
            codec_pt: codec.static_payload_type(),
            telephone_event_pt: Some(OUR_TELEPHONE_EVENT_PT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_lookup() {
        assert_eq!(Codec::from_rtpmap("pcmu", 8000, None), Some(Codec::Pcmu));
        assert_eq!(Codec::from_rtpmap("PCMA", 8000, Some(1)), Some(Codec::Pcma));
        assert_eq!(Codec::from_rtpmap("PCMA", 16000, None), None);
        assert_eq!(Codec::from_rtpmap("PCMA", 8000, Some(2)), None);
        assert_eq!(Codec::from_rtpmap("opus", 48000, Some(2)), None);
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_static_payload_type(9), None);
    }
}
