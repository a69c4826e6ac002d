//! Choosing what to send and receive from the remote side's description.

use super::{Direction, MediaDescription, SessionDescription};
use crate::codec::{Codec, Payloads, TELEPHONE_EVENT};
use std::net::SocketAddr;
use thiserror::Error;

/// Why no audio stream could be agreed (answer the offer with `488 Not Acceptable Here`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NegotiateError {
    /// No `m=audio` section.
    #[error("no audio stream")]
    NoAudio,
    /// Every `m=audio` section has port 0.
    #[error("the audio stream is rejected (port 0)")]
    AudioRejected,
    /// The audio stream uses a transport the relay does not speak (SRTP, AVPF, …).
    #[error("unsupported audio transport {0}")]
    UnsupportedTransport(String),
    /// None of the remote's codecs is one we accept.
    #[error("no common codec")]
    NoCommonCodec,
    /// No `c=` address applies to the audio stream.
    #[error("no connection address for the audio stream")]
    NoConnectionAddress,
}

/// The outcome of offer/answer for one audio stream, from homeline's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the chosen `m=` section in the remote description.
    pub media_index: usize,
    /// Codec and telephone-event, with the remote's payload type numbers.
    pub payloads: Payloads,
    /// Where to send RTP: the remote's address and port. `None` when the remote gave the
    /// unspecified address (`c=IN IP4 0.0.0.0`, RFC 2543 hold): it does not want media.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP: `a=rtcp` if given, else RTP port + 1 (or the RTP address when muxed).
    pub remote_rtcp: Option<SocketAddr>,
    /// The remote asked for RTP and RTCP on one port (`a=rtcp-mux`).
    pub rtcp_mux: bool,
    /// The remote's `a=ptime`.
    pub ptime: Option<u32>,
    /// The remote's direction (after the RFC 2543 hold rule).
    pub remote_direction: Direction,
    /// Our direction: what we want, limited by what the remote does.
    pub local_direction: Direction,
}

/// Negotiates the first usable `m=audio` of `remote` (an offer we answer, or the answer to our
/// offer). `codecs` are the codecs we accept; the first of the remote's payload types that is one
/// of them wins, so the remote's preference order is kept. Telephone-event at 8 kHz is taken if
/// the remote lists it. `wanted` is the direction we would like: `sendrecv` normally, `sendonly`
/// to put the remote on hold. Our direction sends only if we want to and the remote receives,
/// and receives only if we want to and the remote sends; so an offer of `sendonly` is answered
/// `recvonly`, `recvonly` with `sendonly`, `inactive` with `inactive`.
///
/// A stream is usable when its port is not 0 and its transport is `RTP/AVP`.
pub fn negotiate(
    remote: &SessionDescription,
    codecs: &[Codec],
    wanted: Direction,
) -> Result<Negotiated, NegotiateError> {
    let mut first_error = None;
    for (index, m) in remote
        .media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_audio())
    {
        match negotiate_stream(remote, index, m, codecs, wanted) {
            Ok(n) => return Ok(n),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(NegotiateError::NoAudio))
}

fn negotiate_stream(
    remote: &SessionDescription,
    media_index: usize,
    m: &MediaDescription,
    codecs: &[Codec],
    wanted: Direction,
) -> Result<Negotiated, NegotiateError> {
    if m.is_rejected() {
        return Err(NegotiateError::AudioRejected);
    }
    if !m.is_rtp_avp() {
        return Err(NegotiateError::UnsupportedTransport(m.proto.clone()));
    }
    let (codec, codec_pt) = m
        .payload_types
        .iter()
        .find_map(|&pt| {
            codec_of(m, pt)
                .filter(|c| codecs.contains(c))
                .map(|c| (c, pt))
        })
        .ok_or(NegotiateError::NoCommonCodec)?;
    let telephone_event_pt = m.payload_types.iter().copied().find(|&pt| {
        m.rtpmap(pt).is_some_and(|r| {
            r.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT)
                && r.clock_rate == codec.clock_rate()
                && r.channels.is_none_or(|c| c == 1)
        })
    });
    let ip = remote
        .connection_of(m)
        .ok_or(NegotiateError::NoConnectionAddress)?;
    let rtcp_mux = m.rtcp_mux || remote.rtcp_mux;
    let mut remote_direction = remote.direction_of(m);
    let (remote_rtp, remote_rtcp) = if ip.is_unspecified() {
        // RFC 3264 §8.4: the old way to hold, "do not send to me".
        remote_direction = Direction::from_flags(remote_direction.sends(), false);
        (None, None)
    } else {
        let rtp = SocketAddr::new(ip, m.port);
        let rtcp = match (rtcp_mux, m.rtcp) {
            (true, _) => rtp,
            (false, Some(attr)) => SocketAddr::new(attr.address.unwrap_or(ip), attr.port),
            (false, None) => SocketAddr::new(ip, m.port.saturating_add(1)),
        };
        (Some(rtp), Some(rtcp))
    };
    let local_direction = Direction::from_flags(
        wanted.sends() && remote_direction.receives(),
        wanted.receives() && remote_direction.sends(),
    );
    Ok(Negotiated {
        media_index,
        payloads: Payloads {
            codec,
            codec_pt,
            telephone_event_pt,
        },
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        ptime: m.ptime,
        remote_direction,
        local_direction,
    })
}

/// The codec a payload type stands for in `m`: its rtpmap, else the static assignment.
fn codec_of(m: &MediaDescription, pt: u8) -> Option<Codec> {
    match m.rtpmap(pt) {
        Some(r) => Codec::from_rtpmap(&r.encoding, r.clock_rate, r.channels),
        None => Codec::from_static_payload_type(pt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SessionDescription {
        SessionDescription::parse(text).expect("valid SDP")
    }

    fn offer(m_line: &str, extra: &str) -> SessionDescription {
        parse(&format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             {m_line}\r\n{extra}"
        ))
    }

    #[test]
    fn keeps_the_remote_order_and_numbers() {
        let o = offer(
            "m=audio 4000 RTP/AVP 18 98 0 97",
            "a=rtpmap:18 G729/8000\r\na=rtpmap:98 pcma/8000\r\n\
             a=rtpmap:97 telephone-event/8000\r\na=fmtp:97 0-15\r\n",
        );
        let n = negotiate(&o, &Codec::ALL, Direction::SendRecv).expect("agreed");
        assert_eq!(
            n.payloads,
            Payloads {
                codec: Codec::Pcma,
                codec_pt: 98,
                telephone_event_pt: Some(97)
            }
        );
        assert_eq!(n.remote_rtp, Some("192.0.2.1:4000".parse().expect("addr")));
        assert_eq!(n.remote_rtcp, Some("192.0.2.1:4001".parse().expect("addr")));
        assert_eq!(n.local_direction, Direction::SendRecv);
        // restricted to PCMU, the same offer gets PCMU on its static type
        let n = negotiate(&o, &[Codec::Pcmu], Direction::SendRecv).expect("agreed");
        assert_eq!((n.payloads.codec, n.payloads.codec_pt), (Codec::Pcmu, 0));
    }

    #[test]
    fn static_types_need_no_rtpmap_and_events_are_optional() {
        let n = negotiate(
            &offer("m=audio 4000 RTP/AVP 8 0", ""),
            &Codec::ALL,
            Direction::SendRecv,
        )
        .expect("agreed");
        assert_eq!(
            n.payloads,
            Payloads {
                codec: Codec::Pcma,
                codec_pt: 8,
                telephone_event_pt: None
            }
        );
    }

    #[test]
    fn hold_directions() {
        let cases = [
            ("sendrecv", Direction::SendRecv),
            ("sendonly", Direction::RecvOnly),
            ("recvonly", Direction::SendOnly),
            ("inactive", Direction::Inactive),
        ];
        for (attr, answer) in cases {
            let o = offer("m=audio 4000 RTP/AVP 0", &format!("a={attr}\r\n"));
            let n = negotiate(&o, &Codec::ALL, Direction::SendRecv).expect("agreed");
            assert_eq!(n.local_direction, answer, "{attr}");
        }
        // we hold them: we only send, whatever they offered
        let o = offer("m=audio 4000 RTP/AVP 0", "");
        let n = negotiate(&o, &Codec::ALL, Direction::SendOnly).expect("agreed");
        assert_eq!(n.local_direction, Direction::SendOnly);
        // old-style hold: c=0.0.0.0 means "do not send to me"
        let o = parse("v=0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n");
        let n = negotiate(&o, &Codec::ALL, Direction::SendRecv).expect("agreed");
        assert_eq!(
            (n.remote_rtp, n.local_direction),
            (None, Direction::RecvOnly)
        );
    }

    #[test]
    fn rtcp_destinations() {
        let o = offer("m=audio 4000 RTP/AVP 0", "a=rtcp-mux\r\n");
        let n = negotiate(&o, &Codec::ALL, Direction::SendRecv).expect("agreed");
        assert!(n.rtcp_mux);
        assert_eq!(n.remote_rtcp, n.remote_rtp);
        let o = offer("m=audio 4000 RTP/AVP 0", "a=rtcp:5000 IN IP4 192.0.2.9\r\n");
        let n = negotiate(&o, &Codec::ALL, Direction::SendRecv).expect("agreed");
        assert_eq!(n.remote_rtcp, Some("192.0.2.9:5000".parse().expect("addr")));
    }

    #[test]
    fn skips_unusable_streams_and_reports_the_first_problem() {
        let o = offer(
            "m=video 5000 RTP/AVP 31\r\nm=audio 0 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 8",
            "",
        );
        let n = negotiate(&o, &Codec::ALL, Direction::SendRecv).expect("agreed");
        assert_eq!(n.media_index, 2);

        let err = |text: &str| negotiate(&parse(text), &Codec::ALL, Direction::SendRecv);
        assert_eq!(err("v=0\r\n"), Err(NegotiateError::NoAudio));
        assert_eq!(
            err("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n"),
            Err(NegotiateError::AudioRejected)
        );
        assert_eq!(
            err("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/SAVP 0\r\n"),
            Err(NegotiateError::UnsupportedTransport("RTP/SAVP".into()))
        );
        assert_eq!(
            err(
                "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 9 96\r\na=rtpmap:96 opus/48000/2\r\n"
            ),
            Err(NegotiateError::NoCommonCodec)
        );
        assert_eq!(
            err("v=0\r\nm=audio 5 RTP/AVP 0\r\n"),
            Err(NegotiateError::NoConnectionAddress)
        );
        // a dynamic type without rtpmap is unknown, not PCMU
        assert_eq!(
            err("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 96\r\n"),
            Err(NegotiateError::NoCommonCodec)
        );
    }
}
