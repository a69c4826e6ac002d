//! RTP fixed header (RFC 3550 §5.1) read from a byte slice, in place, without allocation.
//!
//! [`RtpHeader::parse`] checks everything a relay must trust before it forwards a packet
//! (version, CSRC list, extension and padding lengths inside the datagram) and returns the
//! fields plus where the payload starts and ends. [`set_payload_type`] rewrites the payload type
//! in place for the payload-type mapping between legs, and [`write_header`] builds a header for
//! packets homeline originates (tones). [`is_rtcp`] is the RFC 5761 §4 demultiplexing test for
//! RTP and RTCP sharing one port (`a=rtcp-mux`).

use thiserror::Error;

/// Length of the fixed RTP header.
pub const HEADER_LEN: usize = 12;
/// The only RTP version in use.
pub const VERSION: u8 = 2;

/// Why a datagram is not a well-formed RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RtpError {
    /// The datagram ends before the header (fixed part, CSRCs or extension) does.
    #[error("RTP packet too short: {len} bytes, header needs {needed}")]
    TooShort {
        /// Datagram length.
        len: usize,
        /// Bytes the header claims.
        needed: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The padding count is zero or runs into the header.
    #[error("RTP padding of {padding} bytes does not fit a {len}-byte packet")]
    BadPadding {
        /// The padding count in the last byte.
        padding: u8,
        /// Datagram length.
        len: usize,
    },
}

/// The parsed fixed header of one RTP packet, and where its payload lies in the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// The P bit: the payload is followed by padding (excluded from `payload_len`).
    pub padding: bool,
    /// The X bit: a header extension follows the CSRC list (skipped).
    pub extension: bool,
    /// Number of CSRC identifiers (0..=15).
    pub csrc_count: u8,
    /// The M bit.
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the first payload byte.
    pub payload_offset: usize,
    /// Payload length, without padding.
    pub payload_len: usize,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

impl RtpHeader {
    /// Parses and validates the header of `packet`.
    pub fn parse(packet: &[u8]) -> Result<RtpHeader, RtpError> {
        let len = packet.len();
        let short = |needed| RtpError::TooShort { len, needed };
        if len < HEADER_LEN {
            return Err(short(HEADER_LEN));
        }
        let b0 = packet[0];
        let b1 = packet[1];
        let version = b0 >> 6;
        if version != VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0F;
        let mut offset = HEADER_LEN + 4 * usize::from(csrc_count);
        if extension {
            // 16-bit profile id, 16-bit length in 32-bit words, then the words.
            let words = be16(packet, offset + 2).ok_or(short(offset + 4))?;
            offset += 4 + 4 * usize::from(words);
        }
        if offset > len {
            return Err(short(offset));
        }
        let mut end = len;
        if padding {
            let count = packet[len - 1];
            if count == 0 || usize::from(count) > len - offset {
                return Err(RtpError::BadPadding {
                    padding: count,
                    len,
                });
            }
            end -= usize::from(count);
        }
        Ok(RtpHeader {
            padding,
            extension,
            csrc_count,
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7F,
            sequence: be16(packet, 2).ok_or(short(HEADER_LEN))?,
            timestamp: be32(packet, 4).ok_or(short(HEADER_LEN))?,
            ssrc: be32(packet, 8).ok_or(short(HEADER_LEN))?,
            payload_offset: offset,
            payload_len: end - offset,
        })
    }

    /// The payload bytes of `packet` (the datagram this header was parsed from).
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.payload_offset..self.payload_offset + self.payload_len)
            .unwrap_or(&[])
    }
}

/// Rewrites the payload type of the RTP packet in `packet`, keeping the marker bit. Does
/// nothing to a datagram shorter than two bytes; `pt` is masked to 7 bits.
#[inline]
pub fn set_payload_type(packet: &mut [u8], pt: u8) {
    if let Some(b1) = packet.get_mut(1) {
        *b1 = (*b1 & 0x80) | (pt & 0x7F);
    }
}

/// Whether a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4): version 2 and a second
/// byte in 192..=223. That range holds every RTCP packet type in use (SR 200, RR 201, SDES 202,
/// BYE 203, APP 204, RTPFB 205, PSFB 206, XR 207) and is exactly where RTP payload types 64–95
/// with or without the marker would land, which is why those payload types are never
/// negotiated on a muxed port.
#[inline]
pub fn is_rtcp(packet: &[u8]) -> bool {
    match packet {
        [b0, b1, ..] => b0 >> 6 == VERSION && (192..=223).contains(b1),
        _ => false,
    }
}

/// Fields of a header homeline writes itself (no CSRCs, no extension, no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderFields {
    /// The M bit.
    pub marker: bool,
    /// Payload type (masked to 7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Writes a 12-byte header into the start of `out`; returns [`HEADER_LEN`], or `None` if `out`
/// is shorter than that.
pub fn write_header(out: &mut [u8], h: &HeaderFields) -> Option<usize> {
    let dst = out.get_mut(..HEADER_LEN)?;
    dst[0] = VERSION << 6;
    dst[1] = (u8::from(h.marker) << 7) | (h.payload_type & 0x7F);
    dst[2..4].copy_from_slice(&h.sequence.to_be_bytes());
    dst[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
    dst[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    Some(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(b0: u8, b1: u8, tail: &[u8]) -> Vec<u8> {
        let mut p = vec![b0, b1, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xDE, 0xAD, 0xBE, 0xEF];
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn parses_a_plain_packet() {
        let p = packet(0x80, 0x80 | 8, &[1, 2, 3]);
        let h = RtpHeader::parse(&p).expect("valid");
        assert_eq!(
            h,
            RtpHeader {
                padding: false,
                extension: false,
                csrc_count: 0,
                marker: true,
                payload_type: 8,
                sequence: 0x1234,
                timestamp: 320,
                ssrc: 0xDEAD_BEEF,
                payload_offset: 12,
                payload_len: 3,
            }
        );
        assert_eq!(h.payload(&p), &[1, 2, 3]);
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        // 2 CSRCs, an extension of 1 word, 4 payload bytes, 3 padding bytes.
        let mut tail = vec![0; 8];
        tail.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]);
        tail.extend_from_slice(&[7, 7, 7, 7, 0, 0, 3]);
        let p = packet(0x80 | 0x20 | 0x10 | 2, 0, &tail);
        let h = RtpHeader::parse(&p).expect("valid");
        assert!(h.padding && h.extension);
        assert_eq!(h.csrc_count, 2);
        assert_eq!(h.payload_offset, 12 + 8 + 8);
        assert_eq!(h.payload(&p), &[7, 7, 7, 7]);
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(
            RtpHeader::parse(&[0x80; 11]),
            Err(RtpError::TooShort {
                len: 11,
                needed: 12
            })
        );
        assert_eq!(
            RtpHeader::parse(&packet(0x40, 0, &[])),
            Err(RtpError::BadVersion(1))
        );
        assert_eq!(
            RtpHeader::parse(&packet(0x83, 0, &[0; 8])),
            Err(RtpError::TooShort {
                len: 20,
                needed: 24
            })
        );
        // extension header itself cut off, then its body cut off
        assert!(matches!(
            RtpHeader::parse(&packet(0x90, 0, &[0xBE])),
            Err(RtpError::TooShort { .. })
        ));
        assert!(matches!(
            RtpHeader::parse(&packet(0x90, 0, &[0xBE, 0xDE, 0, 2, 0, 0, 0, 0])),
            Err(RtpError::TooShort { .. })
        ));
        assert_eq!(
            RtpHeader::parse(&packet(0xA0, 0, &[1, 0])),
            Err(RtpError::BadPadding {
                padding: 0,
                len: 14
            })
        );
        assert_eq!(
            RtpHeader::parse(&packet(0xA0, 0, &[1, 3])),
            Err(RtpError::BadPadding {
                padding: 3,
                len: 14
            })
        );
    }

    #[test]
    fn rewrites_payload_type_keeping_marker() {
        let mut p = packet(0x80, 0x80 | 101, &[0; 4]);
        set_payload_type(&mut p, 96);
        let h = RtpHeader::parse(&p).expect("valid");
        assert_eq!((h.marker, h.payload_type), (true, 96));
        set_payload_type(&mut p, 0xFF);
        assert_eq!(p[1], 0xFF);
        set_payload_type(&mut [], 3);
    }

    #[test]
    fn demultiplexes_rtcp() {
        for pt in 200..=204u8 {
            assert!(is_rtcp(&[0x80, pt, 0, 1]), "{pt}");
        }
        assert!(is_rtcp(&[0x81, 205, 0, 1]));
        for b1 in [0u8, 8, 96, 101, 0x80, 0x80 | 101, 191, 224] {
            assert!(!is_rtcp(&packet(0x80, b1, &[])), "{b1}");
        }
        assert!(!is_rtcp(&[0x40, 200]));
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn writes_what_it_parses() {
        let mut buf = [0u8; 20];
        let fields = HeaderFields {
            marker: true,
            payload_type: 0,
            sequence: 65535,
            timestamp: 0xFFFF_FF00,
            ssrc: 42,
        };
        assert_eq!(write_header(&mut buf, &fields), Some(12));
        let h = RtpHeader::parse(&buf).expect("valid");
        assert_eq!(
            (h.marker, h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (true, 0, 65535, 0xFFFF_FF00, 42)
        );
        assert_eq!(h.payload_len, 8);
        assert_eq!(write_header(&mut [0u8; 11], &fields), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(h) = RtpHeader::parse(&bytes) {
                prop_assert!(h.payload_offset + h.payload_len <= bytes.len());
                prop_assert_eq!(h.payload(&bytes).len(), h.payload_len);
            }
            let _ = is_rtcp(&bytes);
        }
    }
}
