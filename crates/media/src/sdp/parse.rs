//! The SDP reader: text → [`SessionDescription`].
//!
//! Lines end in CRLF or LF; blank lines are skipped. The first line must be `v=0`. Line types
//! homeline does not use (`t=`, `b=`, `k=`, …) and unknown attributes are skipped; `o=`, `c=`,
//! `m=` and the attributes listed in the module docs of [`crate::sdp`] must be well-formed.

use super::{Direction, Fmtp, MediaDescription, Origin, RtcpAttribute, RtpMap, SessionDescription};
use std::net::IpAddr;
use thiserror::Error;

/// Why a session description could not be read, and on which line (1-based; 0 for the
/// description as a whole).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("SDP line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number (0: not about one line).
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a session description.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseErrorKind {
    /// The body is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The body holds no lines.
    #[error("empty")]
    Empty,
    /// The first line is not `v=`.
    #[error("does not start with v=")]
    MissingVersion,
    /// `v=` is not 0.
    #[error("unsupported version {0:?}")]
    UnsupportedVersion(String),
    /// Not `<letter>=<value>`.
    #[error("not a type=value line")]
    MalformedLine,
    /// A malformed `o=` line.
    #[error("malformed o= line")]
    BadOrigin,
    /// A malformed `c=` line, or a host name where an address is needed.
    #[error("malformed c= line")]
    BadConnection,
    /// A malformed `m=` line.
    #[error("malformed m= line")]
    BadMedia,
    /// A malformed attribute homeline uses.
    #[error("malformed a={0} attribute")]
    BadAttribute(&'static str),
}

impl SessionDescription {
    /// Parses a session description from a message body.
    pub fn parse_bytes(body: &[u8]) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(body).map_err(|_| ParseError {
            line: 0,
            kind: ParseErrorKind::NotUtf8,
        })?;
        Self::parse(text)
    }

    /// Parses a session description.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut sd = SessionDescription::default();
        let mut seen_version = false;
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.trim().is_empty() {
                continue;
            }
            let err = |kind| ParseError { line, kind };
            let (kind, value) = split_line(raw).ok_or(err(ParseErrorKind::MalformedLine))?;
            if !seen_version {
                if kind != 'v' {
                    return Err(err(ParseErrorKind::MissingVersion));
                }
                if value.trim() != "0" {
                    return Err(err(ParseErrorKind::UnsupportedVersion(value.to_owned())));
                }
                seen_version = true;
                continue;
            }
            match kind {
                'o' => sd.origin = Some(parse_origin(value).ok_or(err(ParseErrorKind::BadOrigin))?),
                's' => sd.session_name = Some(value.to_owned()),
                'c' => {
                    let addr = parse_connection(value).ok_or(err(ParseErrorKind::BadConnection))?;
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sd.connection = Some(addr),
                    }
                }
                'm' => sd
                    .media
                    .push(parse_media(value).ok_or(err(ParseErrorKind::BadMedia))?),
                'a' => apply_attribute(&mut sd, value).map_err(err)?,
                _ => {}
            }
        }
        if seen_version {
            Ok(sd)
        } else {
            Err(ParseError {
                line: 0,
                kind: ParseErrorKind::Empty,
            })
        }
    }
}

fn split_line(raw: &str) -> Option<(char, &str)> {
    let mut chars = raw.chars();
    let kind = chars.next()?;
    if !kind.is_ascii_alphabetic() || chars.next()? != '=' {
        return None;
    }
    // both characters are ASCII, so byte 2 is a char boundary
    Some((kind, raw.get(2..)?))
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut f = value.split_ascii_whitespace();
    let username = f.next()?.to_owned();
    let session_id = f.next()?.parse().ok()?;
    let session_version = f.next()?.parse().ok()?;
    let _nettype = f.next()?;
    let _addrtype = f.next()?;
    let address = f.next()?.to_owned();
    Some(Origin {
        username,
        session_id,
        session_version,
        address,
    })
}

/// `IN IP4 192.0.2.1[/ttl[/n]]` or `IN IP6 2001:db8::1[/n]`.
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut f = value.split_ascii_whitespace();
    if !f.next()?.eq_ignore_ascii_case("IN") {
        return None;
    }
    let addrtype = f.next()?;
    let address = f.next()?;
    let address = address.split('/').next()?;
    let ip: IpAddr = address.parse().ok()?;
    match (addrtype.to_ascii_uppercase().as_str(), ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

fn is_rtp_proto(proto: &str) -> bool {
    let upper = proto.to_ascii_uppercase();
    upper.starts_with("RTP/") || upper.contains("/RTP/")
}

fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut f = value.split_ascii_whitespace();
    let media = f.next()?.to_owned();
    let port_field = f.next()?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
        None => (port_field.parse().ok()?, None),
    };
    let proto = f.next()?.to_owned();
    let formats: Vec<String> = f.map(str::to_owned).collect();
    if formats.is_empty() {
        return None;
    }
    let payload_types = if is_rtp_proto(&proto) {
        formats
            .iter()
            .map(|s| parse_pt(s))
            .collect::<Option<Vec<u8>>>()?
    } else {
        Vec::new()
    };
    Some(MediaDescription {
        media,
        port,
        port_count,
        proto,
        formats,
        payload_types,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        rtcp_mux: false,
        rtcp: None,
    })
}

fn parse_pt(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|pt| *pt < 128)
}

fn apply_attribute(sd: &mut SessionDescription, value: &str) -> Result<(), ParseErrorKind> {
    let (name, arg) = match value.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (value, None),
    };
    let name = name.trim();
    if let Some(dir) = Direction::from_attribute(name) {
        match sd.media.last_mut() {
            Some(m) => m.direction = Some(dir),
            None => sd.direction = Some(dir),
        }
        return Ok(());
    }
    if name == "rtcp-mux" {
        match sd.media.last_mut() {
            Some(m) => m.rtcp_mux = true,
            None => sd.rtcp_mux = true,
        }
        return Ok(());
    }
    // The rest are media-level attributes; at session level they mean nothing to us.
    let Some(m) = sd.media.last_mut() else {
        return Ok(());
    };
    // Attributes of streams homeline will reject anyway (video, BFCP, …) are not checked.
    if !m.is_audio() {
        return Ok(());
    }
    let arg = arg.unwrap_or("").trim();
    match name {
        "rtpmap" => m
            .rtpmaps
            .push(parse_rtpmap(arg).ok_or(ParseErrorKind::BadAttribute("rtpmap"))?),
        "fmtp" => {
            let (pt, params) = arg
                .split_once(|c: char| c.is_ascii_whitespace())
                .unwrap_or((arg, ""));
            let payload_type = parse_pt(pt).ok_or(ParseErrorKind::BadAttribute("fmtp"))?;
            m.fmtps.push(Fmtp {
                payload_type,
                params: params.trim().to_owned(),
            });
        }
        "ptime" => m.ptime = Some(parse_ms(arg).ok_or(ParseErrorKind::BadAttribute("ptime"))?),
        "rtcp" => m.rtcp = Some(parse_rtcp(arg).ok_or(ParseErrorKind::BadAttribute("rtcp"))?),
        _ => {}
    }
    Ok(())
}

/// `96 telephone-event/8000` or `8 PCMA/8000/1`.
fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let mut f = arg.split_ascii_whitespace();
    let payload_type = parse_pt(f.next()?)?;
    let mut enc = f.next()?.split('/');
    let encoding = enc.next()?.to_owned();
    let clock_rate = enc.next()?.parse().ok()?;
    let channels = match enc.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    if encoding.is_empty() || enc.next().is_some() || f.next().is_some() {
        return None;
    }
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

/// Milliseconds, allowing the `20.0` some devices write.
fn parse_ms(arg: &str) -> Option<u32> {
    if let Ok(ms) = arg.parse::<u32>() {
        return Some(ms);
    }
    let ms: f64 = arg.parse().ok()?;
    (ms.is_finite() && (0.0..=u32::MAX as f64).contains(&ms)).then_some(ms.round() as u32)
}

/// `53020` or `53020 IN IP4 126.16.64.4`.
fn parse_rtcp(arg: &str) -> Option<RtcpAttribute> {
    let (port, rest) = match arg.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((p, r)) => (p, Some(r)),
        None => (arg, None),
    };
    Some(RtcpAttribute {
        port: port.parse().ok()?,
        address: match rest {
            Some(r) => Some(parse_connection(r)?),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const ASTERISK_OFFER: &str = "v=0\r\n\
        o=- 1776 1776 IN IP4 192.0.2.10\r\n\
        s=Asterisk\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        m=audio 17032 RTP/AVP 0 8 3 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:3 GSM/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ptime:20\r\n\
        a=maxptime:150\r\n\
        a=sendrecv\r\n";

    #[test]
    fn parses_an_asterisk_offer() {
        let sd = SessionDescription::parse(ASTERISK_OFFER).expect("valid");
        let origin = sd.origin.as_ref().expect("o=");
        assert_eq!((origin.session_id, origin.session_version), (1776, 1776));
        assert_eq!(sd.session_name.as_deref(), Some("Asterisk"));
        assert_eq!(
            sd.connection,
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
        );
        let (i, m) = sd.first_audio().expect("audio");
        assert_eq!(i, 0);
        assert_eq!((m.port, m.proto.as_str()), (17032, "RTP/AVP"));
        assert_eq!(m.payload_types, vec![0, 8, 3, 101]);
        assert_eq!(
            m.rtpmap(101).map(|r| r.encoding.as_str()),
            Some("telephone-event")
        );
        assert_eq!(m.fmtp(101).map(|f| f.params.as_str()), Some("0-16"));
        assert_eq!(m.ptime, Some(20));
        assert_eq!(sd.direction_of(m), Direction::SendRecv);
        assert!(!m.is_rejected() && m.is_rtp_avp());
    }

    #[test]
    fn parses_ipv6_media_level_connection_and_lf_endings() {
        let text = "v=0\no=bob 1 2 IN IP6 ::1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\n\
                    m=audio 4000/2 RTP/AVP 8\nc=IN IP6 2001:db8::7\na=sendonly\n\
                    a=rtcp:4005 IN IP6 2001:db8::8\na=rtcp-mux\n\
                    m=video 0 RTP/AVP 31\na=rtpmap:31 garbage\n";
        let sd = SessionDescription::parse(text).expect("valid");
        assert_eq!(sd.media.len(), 2);
        let m = &sd.media[0];
        let v6: Ipv6Addr = "2001:db8::7".parse().expect("ip");
        assert_eq!(sd.connection_of(m), Some(IpAddr::V6(v6)));
        assert_eq!(m.port_count, Some(2));
        assert_eq!(sd.direction_of(m), Direction::SendOnly);
        assert!(m.rtcp_mux);
        assert_eq!(m.rtcp.map(|r| r.port), Some(4005));
        assert!(sd.media[1].is_rejected());
        assert_eq!(
            sd.connection_of(&sd.media[1]),
            Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        );
    }

    #[test]
    fn session_level_direction_and_decimal_ptime() {
        let text = "v=0\r\ns=-\r\na=inactive\r\nm=audio 5 RTP/AVP 0\r\na=ptime:20.0\r\n";
        let sd = SessionDescription::parse(text).expect("valid");
        assert_eq!(sd.direction_of(&sd.media[0]), Direction::Inactive);
        assert_eq!(sd.media[0].ptime, Some(20));
    }

    fn kind_of(text: &str) -> (usize, ParseErrorKind) {
        let e = SessionDescription::parse(text).expect_err("invalid");
        (e.line, e.kind)
    }

    #[test]
    fn reports_malformed_lines() {
        use ParseErrorKind::*;
        assert_eq!(kind_of(""), (0, Empty));
        assert_eq!(kind_of("\r\n\r\n"), (0, Empty));
        assert_eq!(kind_of("o=- 1 1 IN IP4 a\r\n"), (1, MissingVersion));
        assert_eq!(kind_of("v=1\r\n"), (1, UnsupportedVersion("1".into())));
        assert_eq!(kind_of("v=0\r\nhello\r\n"), (2, MalformedLine));
        assert_eq!(kind_of("v=0\r\n==\r\n"), (2, MalformedLine));
        assert_eq!(kind_of("v=0\r\no=- x 1 IN IP4 a\r\n"), (2, BadOrigin));
        assert_eq!(
            kind_of("v=0\r\nc=IN IP4 pbx.example\r\n"),
            (2, BadConnection)
        );
        assert_eq!(kind_of("v=0\r\nc=IN IP6 192.0.2.1\r\n"), (2, BadConnection));
        assert_eq!(kind_of("v=0\r\nc=IN IP4\r\n"), (2, BadConnection));
        assert_eq!(kind_of("v=0\r\nm=audio 70000 RTP/AVP 0\r\n"), (2, BadMedia));
        assert_eq!(kind_of("v=0\r\nm=audio 5 RTP/AVP\r\n"), (2, BadMedia));
        assert_eq!(kind_of("v=0\r\nm=audio 5 RTP/AVP 0 200\r\n"), (2, BadMedia));
        assert_eq!(kind_of("v=0\r\nm=audio 5 RTP/AVP PCMU\r\n"), (2, BadMedia));
        let m = "v=0\r\nm=audio 5 RTP/AVP 0\r\n";
        assert_eq!(
            kind_of(&format!("{m}a=rtpmap:0\r\n")),
            (3, BadAttribute("rtpmap"))
        );
        assert_eq!(
            kind_of(&format!("{m}a=rtpmap:0 PCMU/x\r\n")),
            (3, BadAttribute("rtpmap"))
        );
        assert_eq!(
            kind_of(&format!("{m}a=fmtp:x 0-16\r\n")),
            (3, BadAttribute("fmtp"))
        );
        assert_eq!(
            kind_of(&format!("{m}a=ptime:-1\r\n")),
            (3, BadAttribute("ptime"))
        );
        assert_eq!(
            kind_of(&format!("{m}a=rtcp:0 IN\r\n")),
            (3, BadAttribute("rtcp"))
        );
        assert_eq!(
            SessionDescription::parse_bytes(b"v=0\r\ns=\xff\r\n").map_err(|e| e.kind),
            Err(NotUtf8)
        );
    }

    #[test]
    fn non_rtp_media_keeps_formats_as_text() {
        let text = "v=0\r\nm=application 9 UDP/BFCP *\r\na=floorctrl:c-s\r\n";
        let sd = SessionDescription::parse(text).expect("valid");
        assert_eq!(sd.media[0].formats, vec!["*".to_owned()]);
        assert!(sd.media[0].payload_types.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = SessionDescription::parse(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SessionDescription::parse_bytes(&bytes);
        }

        #[test]
        fn sdp_shaped_lines_never_panic(lines in proptest::collection::vec(
            "[vosctma]=[ -~]{0,40}|a=(rtpmap|fmtp|ptime|rtcp|sendonly|rtcp-mux):[ -~]{0,30}\
             |m=audio [0-9]{1,6}(/[0-9])? RTP/AVP( [0-9]{1,3}){0,4}\
             |c=IN IP[46] [0-9a-f.:/]{0,20}",
            0..20,
        )) {
            let text = format!("v=0\r\n{}", lines.join("\r\n"));
            if let Ok(sd) = SessionDescription::parse(&text) {
                for m in &sd.media {
                    prop_assert!(m.payload_types.iter().all(|pt| *pt < 128));
                }
                let _ = crate::sdp::negotiate(&sd, &crate::Codec::ALL, Direction::SendRecv);
            }
        }
    }
}
