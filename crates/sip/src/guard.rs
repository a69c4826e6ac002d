//! The edge's first line: every datagram and message that rsipstack would drop silently is
//! counted here, and answered `400` (or `501` for an unknown method) when a response can be
//! built from it. rsipstack parses a datagram only after this wrapper let it through.
//!
//! TCP: rsipstack closes a connection on any framing or parse error; such errors are not seen
//! here (a known limitation, noted in the crate docs).
//!
//! Both apply the per-source rate limit (`ratelimit`) to requests from sources that are not
//! trunks: the UDP guard before parsing, the inspector to requests over TCP. A request over
//! the limit is dropped without an answer (answering a flood would amplify it) and counted.
//! Responses are never limited. Each UDP socket and the inspector have their own limiter,
//! locked only by the one task that reads that socket, or runs the inspector.

use crate::edge::lock;
use crate::ratelimit::RateLimiter;
use crate::stats::SipStats;
use rsipstack::sip::{Header, Method, Response, SipMessage, StatusCode, Version};
use rsipstack::transaction::endpoint::TransportEventInspector;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transport::TransportEvent;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counts a malformed message and logs it (every one of the first thousand, then one in a
/// thousand, so a flood cannot turn into a log flood).
pub(crate) fn note_malformed(stats: &SipStats, from: SocketAddr, reason: &str) {
    let total = SipStats::bump(&stats.malformed);
    if total <= 1000 || total.is_multiple_of(1000) {
        tracing::warn!(total, %from, reason, "malformed");
    }
}

/// Whether a request from `from` is within its source's rate; counts and logs it if not
/// (every one of the first thousand, then one in a thousand). Reads the clock once.
fn within_rate(limiter: &Option<Mutex<RateLimiter>>, stats: &SipStats, from: SocketAddr) -> bool {
    let Some(limiter) = limiter else {
        return true;
    };
    if lock(limiter).allow(from.ip(), Instant::now()) {
        return true;
    }
    let total = SipStats::bump(&stats.rate_limited);
    if total <= 1000 || total.is_multiple_of(1000) {
        tracing::warn!(total, %from, "rate limited");
    }
    false
}

/// A best-effort textual `400`/`501` for a datagram the parser rejected: only when it starts
/// with a request line and carries the headers a response needs.
fn textual_reply(pkt: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pkt.get(..pkt.len().min(8192))?).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, _uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    if version != "SIP/2.0" || method.is_empty() || method == "ACK" {
        return None;
    }
    let known = method.parse::<Method>().is_ok();
    let status = if known {
        "400 Bad Request"
    } else {
        "501 Not Implemented"
    };
    let mut out = format!("SIP/2.0 {status}\r\n");
    let mut needed = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"].contains(&name.as_str()) {
            needed += 1;
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if needed < 5 {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// What is wrong with a datagram's `Content-Length`, if anything: not a number, or larger
/// than the body that came (RFC 3261 §18.3: `400`). A smaller one just truncates the body.
fn content_length_problem(pkt: &[u8]) -> Option<&'static str> {
    let end = pkt.windows(4).position(|w| w == b"\r\n\r\n")?;
    let body = pkt.len() - (end + 4);
    let head = String::from_utf8_lossy(&pkt[..end]);
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            return match value.trim().parse::<usize>() {
                Err(_) => Some("Content-Length is not a number"),
                Ok(len) if len > body => Some("Content-Length larger than the body"),
                Ok(_) => None,
            };
        }
    }
    None
}

/// The UDP socket rsipstack reads from, filtering what it cannot parse.
pub(crate) struct GuardedUdpSocket {
    pub inner: tokio::net::UdpSocket,
    pub stats: Arc<SipStats>,
    pub max_message_size: usize,
    /// Requests from sources that are not trunks; `None`: no limit.
    pub limiter: Option<Mutex<RateLimiter>>,
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for GuardedUdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            let pkt = &buf[..n];
            if pkt.iter().all(u8::is_ascii_whitespace) {
                return Ok((n, from)); // keepalive
            }
            if !pkt.starts_with(b"SIP/2.0 ") && !within_rate(&self.limiter, &self.stats, from) {
                continue;
            }
            let reason = if n >= buf.len() || n > self.max_message_size {
                "datagram too large"
            } else if let Some(problem) = content_length_problem(pkt) {
                problem
            } else if SipMessage::try_from(pkt).is_ok() {
                return Ok((n, from));
            } else {
                "unparseable"
            };
            note_malformed(&self.stats, from, reason);
            if let Some(reply) = textual_reply(pkt) {
                let _ = self.inner.send_to(&reply, from).await;
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.inner.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.inner.local_addr()?)
    }
}

/// What the inspector reports to the edge: closed connections (their registrations go).
pub(crate) type ClosedSink = tokio::sync::mpsc::UnboundedSender<String>;

/// Sees every parsed message before the transaction layer: requests over TCP beyond their
/// source's rate are dropped; requests it cannot key (no From tag, Call-ID or CSeq) get `400`
/// instead of being dropped; closed connections are reported.
pub(crate) struct Inspector {
    pub stats: Arc<SipStats>,
    pub closed: ClosedSink,
    pub max_message_size: usize,
    /// Requests over TCP from sources that are not trunks (UDP ones passed the guard's).
    pub limiter: Option<Mutex<RateLimiter>>,
}

/// A response to `req` with just the headers needed to route it.
fn bare_response(req: &rsipstack::sip::Request, status_code: StatusCode) -> Response {
    let mut headers = req.headers.clone();
    headers.retain(|h| {
        matches!(
            h,
            Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_)
        )
    });
    headers.push(Header::ContentLength(0u32.into()));
    Response {
        status_code,
        wire_reason: None,
        version: Version::V2,
        headers,
        body: vec![],
    }
}

#[async_trait::async_trait]
impl TransportEventInspector for Inspector {
    async fn handle(&self, ev: TransportEvent) -> Option<TransportEvent> {
        match &ev {
            TransportEvent::Incoming(SipMessage::Request(req), conn, from) => {
                let addr = from
                    .get_socketaddr()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                if conn.is_reliable() && !within_rate(&self.limiter, &self.stats, addr) {
                    return None;
                }
                // Over TCP the stack frames up to 64 KiB itself; the configured limit is ours.
                let too_large = req.body.len() >= self.max_message_size / 2
                    && req.to_string().len() > self.max_message_size;
                let keyless = req.method != Method::Ack
                    && TransactionKey::from_request(req, TransactionRole::Server).is_err();
                let (status, reason) = if too_large {
                    (StatusCode::MessageTooLarge, "message too large")
                } else if keyless {
                    (StatusCode::BadRequest, "missing From tag, Call-ID or CSeq")
                } else {
                    return Some(ev);
                };
                note_malformed(&self.stats, addr, reason);
                if req.method != Method::Ack {
                    let _ = conn
                        .send(bare_response(req, status).into(), Some(from))
                        .await;
                }
                None
            }
            TransportEvent::Closed(conn) => {
                if let Some(remote) = conn.get_remote_addr() {
                    let _ = self.closed.send(crate::edge::flow_key(remote));
                }
                Some(ev)
            }
            _ => Some(ev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textual_reply_only_when_a_response_can_be_routed() {
        let full = b"FOO sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 FOO\r\n\r\n";
        let r = String::from_utf8(textual_reply(full).expect("reply")).expect("utf8");
        assert_eq!(content_length_problem(full), None);
        assert!(r.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{r}");
        assert!(r.contains("Call-ID: c\r\n") && r.ends_with("Content-Length: 0\r\n\r\n"));
        let known = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 99\r\n\r\n";
        assert!(
            String::from_utf8(textual_reply(known).expect("reply"))
                .expect("utf8")
                .starts_with("SIP/2.0 400 ")
        );
        assert!(
            textual_reply(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n").is_none(),
            "too few headers"
        );
        assert!(
            textual_reply(b"SIP/2.0 200 OK\r\n\r\n").is_none(),
            "responses are never answered"
        );
        assert!(textual_reply(&[0xff, 0xfe, 0, 1]).is_none());
        assert_eq!(
            content_length_problem(known),
            Some("Content-Length larger than the body")
        );
        assert_eq!(
            content_length_problem(b"X x SIP/2.0\r\nl: ten\r\n\r\n"),
            Some("Content-Length is not a number")
        );
        assert_eq!(
            content_length_problem(b"X x SIP/2.0\r\nContent-Length: 2\r\n\r\nabc"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(pkt in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = textual_reply(&pkt);
            let _ = content_length_problem(&pkt);
        }

        #[test]
        fn sip_like_datagrams_never_panic(head in "[A-Z]{0,8} [a-z:@.0-9]{0,20} SIP/2\\.0\r\n((Via|From|To|Call-ID|CSeq|Content-Length|l|v): [ -~]{0,30}\r\n){0,8}\r\n[ -~]{0,40}") {
            let _ = textual_reply(head.as_bytes());
            let _ = content_length_problem(head.as_bytes());
        }
    }
}
