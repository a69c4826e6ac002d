//! DTMF as RFC 4733 telephone events: the event codes, and the generator of the packets homeline
//! sends itself (a digit an operator's phone sent as SIP INFO, converted for the PBX).
//!
//! Events received as RTP are not generated here: the relay passes them through, rewriting only
//! the payload type (see [`crate::relay`]).
//!
//! [`EventSender`] follows RFC 4733 §2.5 for one event, one packet per 20 ms: every packet
//! carries the event's start as its RTP timestamp; the first has the marker bit; the duration
//! field grows by 160 samples a packet up to the event's length; the last packet is sent three
//! times with the E bit (§2.5.1.4), each copy with its own sequence number and the same
//! duration. It is pure: the caller picks the SSRC, sequence numbers and timestamp, and calls
//! [`EventSender::next_packet`] every 20 ms.

use crate::rtp::{self, HeaderFields};
use crate::tone::FRAME_SAMPLES;
use std::fmt;

/// Bytes of a telephone-event payload (event, E/R/volume, duration).
pub const PAYLOAD_LEN: usize = 4;
/// Bytes of a whole telephone-event packet homeline writes.
pub const PACKET_LEN: usize = rtp::HEADER_LEN + PAYLOAD_LEN;
/// Shortest event homeline sends, in ms (a shorter request is lengthened: DTMF receivers want
/// at least 40 ms, ITU-T Q.24).
pub const MIN_DURATION_MS: u32 = 40;
/// Longest event, in ms: the duration field (16 bits of 8 kHz samples) holds 8.19 s, and one
/// event is not split into segments here.
pub const MAX_DURATION_MS: u32 = 8000;
/// Length of an event whose request gives none (SIP INFO `application/dtmf`), in ms.
pub const DEFAULT_DURATION_MS: u32 = 250;
/// Volume field of the events homeline sends: −10 dBm0, as RFC 4733 §2.3.4 describes for DTMF.
pub const VOLUME: u8 = 10;
/// Copies of the final (E bit) packet.
pub const END_PACKETS: u8 = 3;

/// A DTMF event code of RFC 4733 §3.2: 0–9, `*` (10), `#` (11), A–D (12–15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DtmfEvent(u8);

impl DtmfEvent {
    /// The event of code `code` (0..=15).
    pub const fn from_code(code: u8) -> Option<Self> {
        if code <= 15 {
            Some(DtmfEvent(code))
        } else {
            None
        }
    }

    /// The event of a keypad symbol: `0`–`9`, `*`, `#`, `A`–`D` (either case).
    pub const fn from_digit(digit: char) -> Option<Self> {
        let code = match digit {
            '0'..='9' => digit as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => digit as u8 - b'A' + 12,
            'a'..='d' => digit as u8 - b'a' + 12,
            _ => return None,
        };
        Some(DtmfEvent(code))
    }

    /// The event code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The keypad symbol (`A`–`D` in upper case).
    pub const fn digit(self) -> char {
        match self.0 {
            0..=9 => (b'0' + self.0) as char,
            10 => '*',
            11 => '#',
            c => (b'A' + c - 12) as char,
        }
    }
}

impl fmt::Display for DtmfEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.digit())
    }
}

/// The length of an event in 8 kHz samples, from a requested length in ms (clamped to
/// [`MIN_DURATION_MS`]..=[`MAX_DURATION_MS`]).
pub fn duration_samples(duration_ms: u32) -> u16 {
    let ms = duration_ms.clamp(MIN_DURATION_MS, MAX_DURATION_MS);
    // at most 64,000: fits
    u16::try_from(ms * 8).unwrap_or(u16::MAX)
}

/// The RTP stream fields of one packet, chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFields {
    /// Payload type: the leg's negotiated telephone-event.
    pub payload_type: u8,
    /// Sequence number of this packet.
    pub sequence: u16,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// The packets of one event. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSender {
    event: DtmfEvent,
    /// RTP timestamp of every packet: the event's start.
    timestamp: u32,
    /// The event's length in samples.
    length: u16,
    /// Duration field of the last packet written (0: none yet).
    elapsed: u16,
    /// E-bit packets written.
    ends: u8,
    /// Packets written.
    sent: u16,
}

impl EventSender {
    /// An event `event` lasting `duration_ms` (clamped, see [`duration_samples`]) that starts
    /// at RTP timestamp `timestamp`.
    pub fn new(event: DtmfEvent, duration_ms: u32, timestamp: u32) -> Self {
        EventSender {
            event,
            timestamp,
            length: duration_samples(duration_ms),
            elapsed: 0,
            ends: 0,
            sent: 0,
        }
    }

    /// The event.
    pub fn event(&self) -> DtmfEvent {
        self.event
    }

    /// The RTP timestamp of every packet of the event.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Samples the packets written so far span, counting 160 for each (including the copies of
    /// the final packet): where the next event's timestamp may start.
    pub fn span(&self) -> u32 {
        u32::from(self.sent) * FRAME_SAMPLES as u32
    }

    /// Whether every packet has been written.
    pub fn is_done(&self) -> bool {
        self.ends >= END_PACKETS
    }

    /// Writes the next packet of the event into `out` (at least [`PACKET_LEN`] bytes) with the
    /// caller's stream fields; returns its length, or `None` when the event is over or `out` is
    /// too short.
    pub fn next_packet(&mut self, out: &mut [u8], stream: StreamFields) -> Option<usize> {
        if self.is_done() || out.len() < PACKET_LEN {
            return None;
        }
        let first = self.elapsed == 0;
        if self.elapsed < self.length {
            self.elapsed = self
                .elapsed
                .saturating_add(FRAME_SAMPLES as u16)
                .min(self.length);
        }
        let end = self.elapsed >= self.length;
        if end {
            self.ends += 1;
        }
        let header = HeaderFields {
            marker: first,
            payload_type: stream.payload_type,
            sequence: stream.sequence,
            timestamp: self.timestamp,
            ssrc: stream.ssrc,
        };
        rtp::write_header(out, &header)?;
        self.sent = self.sent.saturating_add(1);
        let payload = &mut out[rtp::HEADER_LEN..PACKET_LEN];
        payload[0] = self.event.code();
        payload[1] = (u8::from(end) << 7) | (VOLUME & 0x3F);
        payload[2..4].copy_from_slice(&self.elapsed.to_be_bytes());
        Some(PACKET_LEN)
    }
}

/// A telephone-event payload read back: what a receiver sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code.
    pub event: u8,
    /// The E bit.
    pub end: bool,
    /// Volume (0..=63, in −dBm0).
    pub volume: u8,
    /// Duration in samples.
    pub duration: u16,
}

impl EventPayload {
    /// Reads a telephone-event payload (the first four bytes of `payload`).
    pub fn parse(payload: &[u8]) -> Option<Self> {
        match payload {
            [event, flags, d0, d1, ..] => Some(EventPayload {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpHeader;

    #[test]
    fn digits_map_to_rfc_4733_codes_and_back() {
        let all = "0123456789*#ABCD";
        for (code, digit) in all.chars().enumerate() {
            let e = DtmfEvent::from_digit(digit).expect("a keypad symbol");
            assert_eq!(usize::from(e.code()), code);
            assert_eq!(e.digit(), digit);
            assert_eq!(DtmfEvent::from_code(code as u8), Some(e));
        }
        assert_eq!(DtmfEvent::from_digit('b'), DtmfEvent::from_code(13));
        assert_eq!(DtmfEvent::from_digit('E'), None);
        assert_eq!(DtmfEvent::from_digit(' '), None);
        assert_eq!(DtmfEvent::from_code(16), None);
        assert_eq!(
            DtmfEvent::from_code(11).map(|e| e.to_string()),
            Some("#".into())
        );
    }

    fn all_packets(mut s: EventSender, pt: u8, first_seq: u16) -> Vec<(RtpHeader, EventPayload)> {
        let mut out = Vec::new();
        let mut seq = first_seq;
        let mut buf = [0u8; 64];
        while let Some(len) = s.next_packet(
            &mut buf,
            StreamFields {
                payload_type: pt,
                sequence: seq,
                ssrc: 0x1234_5678,
            },
        ) {
            let h = RtpHeader::parse(&buf[..len]).expect("valid RTP");
            let p = EventPayload::parse(h.payload(&buf[..len])).expect("an event payload");
            out.push((h, p));
            seq = seq.wrapping_add(1);
            assert!(out.len() < 1000, "the event never ends");
        }
        assert!(s.is_done());
        out
    }

    #[test]
    fn an_event_follows_rfc_4733_section_2_5() {
        // 100 ms: durations 160, 320, 480, 640, then 800 three times with E
        let s = EventSender::new(DtmfEvent::from_digit('5').expect("5"), 100, 48_000);
        let packets = all_packets(s, 101, 65_534);
        let durations: Vec<u16> = packets.iter().map(|(_, p)| p.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = packets.iter().map(|(_, p)| p.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        let markers: Vec<bool> = packets.iter().map(|(h, _)| h.marker).collect();
        assert_eq!(markers, [true, false, false, false, false, false, false]);
        let seqs: Vec<u16> = packets.iter().map(|(h, _)| h.sequence).collect();
        assert_eq!(seqs, [65_534, 65_535, 0, 1, 2, 3, 4]);
        for (h, p) in &packets {
            assert_eq!(h.payload_type, 101);
            assert_eq!(h.timestamp, 48_000);
            assert_eq!(h.ssrc, 0x1234_5678);
            assert_eq!(h.payload_len, PAYLOAD_LEN);
            assert_eq!(p.event, 5);
            assert_eq!(p.volume, VOLUME);
        }
    }

    #[test]
    fn lengths_are_clamped_and_need_not_be_whole_packets() {
        let star = DtmfEvent::from_digit('*').expect("*");
        // 10 ms is lengthened to 40 ms: 160, then 320 three times
        let short = all_packets(EventSender::new(star, 10, 0), 96, 0);
        let d: Vec<u16> = short.iter().map(|(_, p)| p.duration).collect();
        assert_eq!(d, [160, 320, 320, 320]);
        // 50 ms = 400 samples: 160, 320, then 400 (end) three times
        let odd = all_packets(EventSender::new(star, 50, 0), 96, 0);
        let d: Vec<u16> = odd.iter().map(|(_, p)| p.duration).collect();
        assert_eq!(d, [160, 320, 400, 400, 400]);
        // an hour is cut to 8 s = 64,000 samples
        let long = all_packets(EventSender::new(star, 3_600_000, 0), 96, 0);
        assert_eq!(long.last().map(|(_, p)| p.duration), Some(64_000));
        assert_eq!(long.len(), 400 + 2);
        assert_eq!(duration_samples(u32::MAX), 64_000);
    }

    #[test]
    fn span_counts_every_packet_written() {
        let mut s = EventSender::new(DtmfEvent::from_digit('1').expect("1"), 60, 0);
        let mut buf = [0u8; PACKET_LEN];
        let stream = StreamFields {
            payload_type: 101,
            sequence: 0,
            ssrc: 1,
        };
        let mut n = 0;
        while s.next_packet(&mut buf, stream).is_some() {
            n += 1;
            assert_eq!(s.span(), n * 160);
        }
        assert_eq!(n, 5); // 160, 320, 480 E ×3
        assert_eq!(s.next_packet(&mut [0u8; PACKET_LEN - 1], stream), None);
    }

    #[test]
    fn a_short_buffer_writes_nothing_and_keeps_the_event() {
        let mut s = EventSender::new(DtmfEvent::from_digit('#').expect("#"), 40, 0);
        let stream = StreamFields {
            payload_type: 101,
            sequence: 0,
            ssrc: 1,
        };
        assert_eq!(s.next_packet(&mut [0u8; 8], stream), None);
        let mut buf = [0u8; PACKET_LEN];
        assert_eq!(s.next_packet(&mut buf, stream), Some(PACKET_LEN));
        assert_eq!(
            buf[1] & 0x80,
            0x80,
            "the first packet written has the marker"
        );
    }
}
