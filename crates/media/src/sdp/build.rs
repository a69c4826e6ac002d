//! Writing homeline's side of offer/answer.

use super::{Direction, Negotiated, SessionDescription};
use crate::codec::{Codec, OUR_TELEPHONE_EVENT_PT, Payloads, TELEPHONE_EVENT};
use std::fmt::Write;
use std::net::IpAddr;

/// The telephone events homeline sends and receives: DTMF 0–9, *, #, A–D and flash.
const EVENTS: &str = "0-16";
/// The packetisation homeline sends.
const PTIME_MS: u32 = 20;

/// Homeline's session description for one leg: the `o=` identity, our media address, and the
/// version, which goes up each time the description we send differs from the last one (RFC
/// 3264 §8), e.g. a re-offer for hold. Sending the same thing again keeps the version.
#[derive(Clone, Debug)]
pub struct LocalSdp {
    session_id: u64,
    version: u64,
    address: IpAddr,
    /// Everything after the `o=` line of the last description built.
    last_body: Option<String>,
}

impl LocalSdp {
    /// A new session. `session_id` comes from the caller's random source (RFC 4566 suggests an
    /// NTP timestamp or random number; keep it below 2⁶³ for old parsers); `address` is where
    /// our RTP socket is reachable, written in `o=` and `c=`.
    pub fn new(session_id: u64, address: IpAddr) -> Self {
        LocalSdp {
            session_id,
            version: session_id,
            address,
            last_body: None,
        }
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last description built (the session id before any).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Changes the address written in later descriptions.
    pub fn set_address(&mut self, address: IpAddr) {
        self.address = address;
    }

    fn addr_line(&self) -> String {
        match self.address {
            IpAddr::V4(a) => format!("IN IP4 {a}"),
            IpAddr::V6(a) => format!("IN IP6 {a}"),
        }
    }

    /// Wraps a body (everything from `s=` on) with `v=` and `o=`, bumping the version if the
    /// body changed since the last description.
    fn finish(&mut self, body: String) -> String {
        match &self.last_body {
            Some(last) if *last == body => {}
            Some(_) => self.version = self.version.wrapping_add(1),
            None => {}
        }
        let text = format!(
            "v=0\r\no=homeline {} {} {}\r\n{body}",
            self.session_id,
            self.version,
            self.addr_line()
        );
        self.last_body = Some(body);
        text
    }

    fn session_lines(&self) -> String {
        let addr = self.addr_line();
        format!("s=homeline\r\nc={addr}\r\nt=0 0\r\n")
    }

    /// Our offer on `port`: PCMU (0), PCMA (8) and telephone-event (101), `ptime` 20.
    pub fn offer(&mut self, port: u16, direction: Direction) -> String {
        self.offer_codecs(port, &Codec::ALL, direction)
    }

    /// Our offer on `port` with these codecs in this order (each on its static payload type),
    /// plus telephone-event on 101. Use it to offer an operator only the codec the PBX leg
    /// already agreed, so the relay never has to transcode.
    pub fn offer_codecs(&mut self, port: u16, codecs: &[Codec], direction: Direction) -> String {
        let mut body = self.session_lines();
        let _ = write!(body, "m=audio {port} RTP/AVP");
        for c in codecs {
            let _ = write!(body, " {}", c.static_payload_type());
        }
        let _ = write!(body, " {OUR_TELEPHONE_EVENT_PT}\r\n");
        for c in codecs {
            let _ = write!(
                body,
                "a=rtpmap:{} {}/{}\r\n",
                c.static_payload_type(),
                c.encoding_name(),
                c.clock_rate()
            );
        }
        write_event_lines(&mut body, OUR_TELEPHONE_EVENT_PT);
        let _ = write!(body, "a=ptime:{PTIME_MS}\r\na={direction}\r\n");
        self.finish(body)
    }

    /// Our answer to `offer`, as `negotiated` (from [`super::negotiate`] on that offer), with
    /// our RTP on `port`. Sections other than the chosen one are rejected with port 0.
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
        negotiated: &Negotiated,
        port: u16,
    ) -> String {
        let mut body = self.session_lines();
        for (index, m) in offer.media.iter().enumerate() {
            if index != negotiated.media_index {
                let first = m.formats.first().map_or("0", String::as_str);
                let _ = write!(body, "m={} 0 {} {first}\r\n", m.media, m.proto);
                continue;
            }
            let Payloads {
                codec,
                codec_pt,
                telephone_event_pt,
            } = negotiated.payloads;
            let _ = write!(body, "m=audio {port} RTP/AVP {codec_pt}");
            if let Some(te) = telephone_event_pt {
                let _ = write!(body, " {te}");
            }
            let _ = write!(
                body,
                "\r\na=rtpmap:{codec_pt} {}/{}\r\n",
                codec.encoding_name(),
                codec.clock_rate()
            );
            if let Some(te) = telephone_event_pt {
                write_event_lines(&mut body, te);
            }
            let _ = write!(body, "a=ptime:{PTIME_MS}\r\n");
            if negotiated.rtcp_mux {
                body.push_str("a=rtcp-mux\r\n");
            }
            let _ = write!(body, "a={}\r\n", negotiated.local_direction);
        }
        self.finish(body)
    }
}

fn write_event_lines(body: &mut String, pt: u8) {
    let _ = write!(
        body,
        "a=rtpmap:{pt} {TELEPHONE_EVENT}/8000\r\na=fmtp:{pt} {EVENTS}\r\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::negotiate;
    use std::net::Ipv6Addr;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn offer_text() {
        let mut sdp = LocalSdp::new(4242, LOCAL);
        let text = sdp.offer(30000, Direction::SendRecv);
        assert_eq!(
            text,
            "v=0\r\n\
             o=homeline 4242 4242 IN IP4 198.51.100.7\r\n\
             s=homeline\r\n\
             c=IN IP4 198.51.100.7\r\n\
             t=0 0\r\n\
             m=audio 30000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        // what we offer, we can negotiate ourselves
        let parsed = SessionDescription::parse(&text).expect("valid");
        let n = negotiate(&parsed, &Codec::ALL, Direction::SendRecv).expect("agreed");
        assert_eq!(n.payloads, Payloads::ours(Codec::Pcmu));
    }

    #[test]
    fn version_goes_up_only_when_the_description_changes() {
        let mut sdp = LocalSdp::new(7, LOCAL);
        let v = |t: &str| {
            SessionDescription::parse(t)
                .expect("valid")
                .origin
                .map(|o| (o.session_id, o.session_version))
        };
        assert_eq!(v(&sdp.offer(30000, Direction::SendRecv)), Some((7, 7)));
        assert_eq!(v(&sdp.offer(30000, Direction::SendRecv)), Some((7, 7)));
        assert_eq!(v(&sdp.offer(30000, Direction::SendOnly)), Some((7, 8)));
        assert_eq!(v(&sdp.offer(30000, Direction::SendRecv)), Some((7, 9)));
        assert_eq!(sdp.version(), 9);
    }

    #[test]
    fn answer_text_keeps_their_numbers_and_rejects_other_streams() {
        let offer = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 18 8 96\r\na=rtpmap:96 telephone-event/8000\r\n\
             a=fmtp:96 0-15\r\na=sendonly\r\na=rtcp-mux\r\n\
             m=video 4002 RTP/AVP 31\r\n",
        )
        .expect("valid");
        let n = negotiate(&offer, &Codec::ALL, Direction::SendRecv).expect("agreed");
        let mut sdp = LocalSdp::new(9, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            sdp.answer(&offer, &n, 30002),
            "v=0\r\n\
             o=homeline 9 9 IN IP6 ::1\r\n\
             s=homeline\r\n\
             c=IN IP6 ::1\r\n\
             t=0 0\r\n\
             m=audio 30002 RTP/AVP 8 96\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:96 telephone-event/8000\r\n\
             a=fmtp:96 0-16\r\n\
             a=ptime:20\r\n\
             a=rtcp-mux\r\n\
             a=recvonly\r\n\
             m=video 0 RTP/AVP 31\r\n"
        );
    }

    #[test]
    fn answer_without_events_and_restricted_offer() {
        let offer = SessionDescription::parse(
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n",
        )
        .expect("valid");
        let n = negotiate(&offer, &Codec::ALL, Direction::SendRecv).expect("agreed");
        let mut sdp = LocalSdp::new(1, LOCAL);
        let text = sdp.answer(&offer, &n, 30004);
        assert!(text.contains(
            "m=audio 30004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=inactive\r\n"
        ));
        assert!(!text.contains("telephone-event"));
        let text = sdp.offer_codecs(30004, &[Codec::Pcma], Direction::SendRecv);
        assert!(text.contains("m=audio 30004 RTP/AVP 8 101\r\n"));
        assert!(!text.contains("PCMU"));
    }
}
