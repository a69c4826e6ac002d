//! The SIP messages the call legs send, built from the requests and responses they answer:
//! responses on the PBX leg, CANCEL and in-dialog requests (BYE) on either leg, and the
//! few values read from peers' messages (tags, caller, route set). Pure: no sockets, no
//! clock, no randomness (tags and branches are passed in).

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{
    Auth, Header, Headers, Host, HostWithPort, Method, Param, Request, Response, Scheme,
    StatusCode, Transport, Uri, Version, typed,
};
use rsipstack::transport::SipAddr;
use std::net::SocketAddr;

/// The only body type the legs carry.
pub(crate) const SDP: &str = "application/sdp";

/// What a final response to an operator's INVITE means for the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Final {
    Answered,
    /// The operator's phone refused (busy, declined, ... and `487` after our CANCEL).
    Refused(u16),
    /// Nobody answered for the phone: `408` (no response, Timer B) or `503` (the stored
    /// connection is dead, or the phone is unavailable).
    Unreachable,
}

/// Classifies the final status of an operator's INVITE.
pub(crate) fn classify(status: u16) -> Final {
    match status {
        200..=299 => Final::Answered,
        408 | 503 => Final::Unreachable,
        s => Final::Refused(s),
    }
}

/// A final status the runtime may send on the PBX leg: `300..=699`, anything else is `500`.
pub(crate) fn final_status(status: u16) -> u16 {
    if (300..=699).contains(&status) {
        status
    } else {
        500
    }
}

/// A response to `req` (RFC 3261 §8.2.6.2): Via, From, Call-ID and CSeq copied, To copied
/// with `tag` added unless it already has one (or this is a `100`), then `contact`, the
/// Record-Route of a dialog-creating response, `body` as SDP and Content-Length.
pub(crate) fn response(
    req: &Request,
    status: u16,
    tag: &str,
    user_agent: &str,
    contact: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    let mut headers = Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(to) => {
                let tagged = to.tag().ok().flatten().is_some();
                if status == 100 || tagged || tag.is_empty() {
                    headers.push(h.clone());
                } else {
                    headers.push(Header::To(format!("{};tag={tag}", to.value()).into()));
                }
            }
            _ => {}
        }
    }
    if (101..=299).contains(&status) {
        for h in req.headers.iter() {
            if let Header::RecordRoute(_) = h {
                headers.push(h.clone());
            }
        }
    }
    if let Some(c) = contact {
        headers.push(Header::Contact(c.into()));
    }
    if (200..=299).contains(&status) {
        headers.push(Header::Allow(crate::ALLOW.into()));
    }
    headers.push(Header::UserAgent(user_agent.into()));
    let body = finish(&mut headers, body);
    Response {
        status_code: StatusCode::from(status),
        wire_reason: None,
        version: Version::V2,
        headers,
        body,
    }
}

/// Adds Content-Type (for a body) and Content-Length; returns the body.
fn finish(headers: &mut Headers, body: Option<&[u8]>) -> Vec<u8> {
    let body = body.unwrap_or_default().to_vec();
    if !body.is_empty() {
        headers.push(Header::ContentType(SDP.into()));
    }
    headers.push(Header::ContentLength((body.len() as u32).into()));
    body
}

/// Where a dialog's requests go and what they carry (RFC 3261 §12.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DialogPath {
    pub call_id: String,
    /// Our From value, with our tag.
    pub local: String,
    /// Their To value, with their tag.
    pub remote: String,
    /// The remote target (their Contact).
    pub target: Uri,
    /// Route values, in the order they are sent.
    pub route: Vec<String>,
}

/// A request inside the dialog `path`, with its own `via` (a new branch).
pub(crate) fn in_dialog(
    method: Method,
    path: &DialogPath,
    cseq: u32,
    via: typed::Via,
    user_agent: &str,
    contact: Option<&str>,
    body: Option<&[u8]>,
) -> Request {
    let mut headers = Headers::default();
    headers.push(Header::Via(via.into()));
    headers.push(Header::CallId(path.call_id.clone().into()));
    headers.push(Header::From(path.local.clone().into()));
    headers.push(Header::To(path.remote.clone().into()));
    headers.push(Header::CSeq(typed::CSeq { seq: cseq, method }.into()));
    for r in &path.route {
        headers.push(Header::Route(r.clone().into()));
    }
    headers.push(Header::MaxForwards(70u32.into()));
    if let Some(c) = contact {
        headers.push(Header::Contact(c.into()));
    }
    headers.push(Header::UserAgent(user_agent.into()));
    let body = finish(&mut headers, body);
    Request {
        method,
        uri: path.target.clone(),
        version: Version::V2,
        headers,
        body,
    }
}

/// The CANCEL of `invite` (RFC 3261 §9.1): same Request-URI, top Via (branch), Call-ID,
/// From, To, Route and CSeq number.
pub(crate) fn cancel_of(invite: &Request, user_agent: &str) -> Option<Request> {
    let seq = invite.cseq_header().ok()?.seq().ok()?;
    let mut headers = Headers::default();
    headers.push(Header::Via(invite.via_header().ok()?.clone()));
    for h in invite.headers.iter() {
        match h {
            Header::CallId(_) | Header::From(_) | Header::To(_) | Header::Route(_) => {
                headers.push(h.clone())
            }
            _ => {}
        }
    }
    headers.push(Header::CSeq(
        typed::CSeq {
            seq,
            method: Method::Cancel,
        }
        .into(),
    ));
    headers.push(Header::MaxForwards(70u32.into()));
    headers.push(Header::UserAgent(user_agent.into()));
    headers.push(Header::ContentLength(0u32.into()));
    Some(Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: Version::V2,
        headers,
        body: vec![],
    })
}

/// The Record-Route entries of a message, in order (one per value, also from
/// comma-separated lines).
pub(crate) fn record_route(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::RecordRoute(rr) => Some(rr.value()),
            _ => None,
        })
        .flat_map(|v| typed::RecordRoute::parse_header_list(v).unwrap_or_default())
        .map(|rr| rr.to_string())
        .collect()
}

/// The first Contact URI of a message.
pub(crate) fn contact_uri(headers: &Headers) -> Option<Uri> {
    headers.iter().find_map(|h| match h {
        Header::Contact(c) => typed::Contact::parse_header_list(c.value())
            .ok()?
            .into_iter()
            .next()
            .map(|c| c.uri),
        _ => None,
    })
}

/// The From and To tags of a request.
pub(crate) fn tags(req: &Request) -> (Option<String>, Option<String>) {
    let from = req
        .from_header()
        .ok()
        .and_then(|f| f.tag().ok().flatten())
        .map(|t| t.value().to_string());
    let to = req
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .map(|t| t.value().to_string());
    (from, to)
}

/// The To tag of a response.
pub(crate) fn to_tag(resp: &Response) -> Option<String> {
    resp.to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .map(|t| t.value().to_string())
}

/// The caller's user part (From), percent-decoded; `anonymous` when there is none.
pub(crate) fn caller_user(req: &Request) -> String {
    let user = req
        .from_header()
        .ok()
        .and_then(|f| f.typed().ok())
        .and_then(|f| f.uri.user().map(unescape))
        .unwrap_or_default();
    if user.is_empty() {
        "anonymous".into()
    } else {
        user
    }
}

/// `s` with its `%XX` escapes decoded (rsipstack keeps them as received, and escapes again
/// when it writes a URI); invalid UTF-8 is replaced.
pub(crate) fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A SIP URI `sip:user@domain` (rsipstack escapes `user` when it writes the URI); `None`
/// if `domain` is not a valid host.
pub(crate) fn user_uri(user: &str, domain: &str) -> Option<Uri> {
    let mut uri = Uri::try_from(format!("sip:{domain}").as_str()).ok()?;
    let user = if user.is_empty() { "anonymous" } else { user };
    uri.auth = Some(Auth {
        user: user.to_string(),
        password: None,
    });
    Some(uri)
}

/// Our Contact for a leg using the listener `local`: `<sip:homeline@host:port>` with
/// `;transport=tcp` over TCP.
pub(crate) fn our_contact(local: &SipAddr) -> String {
    let mut params = Vec::new();
    if let Some(t @ (Transport::Tcp | Transport::Tls)) = local.r#type {
        params.push(Param::Transport(t));
    }
    let uri = Uri {
        scheme: Some(Scheme::Sip),
        auth: Some(Auth {
            user: "homeline".into(),
            password: None,
        }),
        host_with_port: local.addr.clone(),
        params,
        headers: vec![],
    };
    format!("<{uri}>")
}

/// `Contact` value for a redirect to `target` (angle brackets added when missing).
pub(crate) fn redirect_contact(target: &str) -> String {
    let t = target.trim();
    if t.starts_with('<') || t.contains('<') {
        t.to_string()
    } else {
        format!("<{t}>")
    }
}

/// Rewrites the host and port of the first Contact of `resp` to `source`, the address the
/// response really came from, when they differ (a phone behind NAT advertises its private
/// address). The 2xx ACK, which rsipstack sends itself, and the BYE then reach the phone
/// through its NAT, as Asterisk's `rewrite_contact` does. Returns whether it changed.
pub(crate) fn fix_nated_contact(resp: &mut Response, source: SocketAddr) -> bool {
    for h in resp.headers.iter_mut() {
        let Header::Contact(c) = h else { continue };
        let Ok(mut list) = typed::Contact::parse_header_list(c.value()) else {
            return false;
        };
        let Some(first) = list.first_mut() else {
            return false;
        };
        let advertised = match &first.uri.host_with_port.host {
            Host::IpAddr(ip) => Some(SocketAddr::new(
                *ip,
                first.uri.host_with_port.port.map_or(5060, |p| p.value()),
            )),
            Host::Domain(_) => None,
        };
        if advertised == Some(source) {
            return false;
        }
        first.uri.host_with_port = HostWithPort::from(source);
        let value: Vec<String> = list.iter().map(ToString::to_string).collect();
        *h = Header::Contact(value.join(", ").into());
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:8000@10.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKabc;rport\r\n\
        Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n\
        From: \"Caller\" <sip:+33123456@pbx.example>;tag=pbxtag\r\n\
        To: <sip:8000@10.0.0.1>\r\n\
        Call-ID: call-1@pbx\r\n\
        CSeq: 7 INVITE\r\n\
        Contact: <sip:pbx@10.0.0.9:5070>\r\n\
        Max-Forwards: 70\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn invite() -> Request {
        Request::try_from(INVITE).expect("INVITE parses")
    }

    fn header<'a>(m: &'a str, name: &str) -> Vec<&'a str> {
        m.split("\r\n")
            .filter(|l| {
                l.split(':')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .collect()
    }

    #[test]
    fn responses_carry_our_tag_contact_route_and_body() {
        let req = invite();
        let trying = response(&req, 100, "ourtag", "hl", None, None).to_string();
        assert_eq!(header(&trying, "To"), ["To: <sip:8000@10.0.0.1>"]);
        assert!(header(&trying, "Record-Route").is_empty());

        let ok = response(
            &req,
            200,
            "ourtag",
            "hl",
            Some("<sip:homeline@h>"),
            Some(b"v=1"),
        );
        assert_eq!(ok.status_code, StatusCode::OK);
        let text = ok.to_string();
        assert_eq!(header(&text, "To"), ["To: <sip:8000@10.0.0.1>;tag=ourtag"]);
        assert_eq!(header(&text, "Contact"), ["Contact: <sip:homeline@h>"]);
        assert_eq!(
            header(&text, "Content-Type"),
            ["Content-Type: application/sdp"]
        );
        assert_eq!(header(&text, "Content-Length"), ["Content-Length: 3"]);
        assert_eq!(header(&text, "CSeq"), ["CSeq: 7 INVITE"]);
        assert_eq!(header(&text, "Record-Route").len(), 1);
        assert_eq!(ok.body, b"v=1");

        let busy = response(&req, 486, "ourtag", "hl", None, None).to_string();
        assert!(header(&busy, "Record-Route").is_empty());
        assert!(header(&busy, "Content-Type").is_empty());
        assert!(busy.starts_with("SIP/2.0 486 "), "{busy}");
    }

    #[test]
    fn an_existing_to_tag_is_kept() {
        let mut req = invite();
        req.headers
            .unique_push(Header::To("<sip:8000@10.0.0.1>;tag=mine".into()));
        let text = response(&req, 200, "other", "hl", None, None).to_string();
        assert_eq!(header(&text, "To"), ["To: <sip:8000@10.0.0.1>;tag=mine"]);
    }

    #[test]
    fn bye_follows_the_dialog_path() {
        let path = DialogPath {
            call_id: "c@x".into(),
            local: "<sip:8000@10.0.0.1>;tag=ours".into(),
            remote: "<sip:pbx@pbx.example>;tag=theirs".into(),
            target: Uri::try_from("sip:pbx@10.0.0.9:5070").expect("uri"),
            route: vec!["<sip:p1.example;lr>".into(), "<sip:p2.example;lr>".into()],
        };
        let via = typed::Via::parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKbye").expect("via");
        let bye = in_dialog(Method::Bye, &path, 2, via, "hl", None, None);
        let text = bye.to_string();
        assert!(
            text.starts_with("BYE sip:pbx@10.0.0.9:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert_eq!(
            header(&text, "From"),
            ["From: <sip:8000@10.0.0.1>;tag=ours"]
        );
        assert_eq!(
            header(&text, "To"),
            ["To: <sip:pbx@pbx.example>;tag=theirs"]
        );
        assert_eq!(header(&text, "CSeq"), ["CSeq: 2 BYE"]);
        assert_eq!(
            header(&text, "Route"),
            ["Route: <sip:p1.example;lr>", "Route: <sip:p2.example;lr>"]
        );
        assert_eq!(header(&text, "Content-Length"), ["Content-Length: 0"]);
    }

    #[test]
    fn cancel_matches_the_invite() {
        let cancel = cancel_of(&invite(), "hl").expect("cancel");
        let text = cancel.to_string();
        assert!(
            text.starts_with("CANCEL sip:8000@10.0.0.1:5060 SIP/2.0\r\n"),
            "{text}"
        );
        assert_eq!(
            header(&text, "Via"),
            ["Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKabc;rport"]
        );
        assert_eq!(header(&text, "CSeq"), ["CSeq: 7 CANCEL"]);
        assert_eq!(header(&text, "Call-ID"), ["Call-ID: call-1@pbx"]);
        assert!(cancel.body.is_empty());
    }

    #[test]
    fn reads_tags_caller_route_and_contact() {
        let req = invite();
        assert_eq!(tags(&req), (Some("pbxtag".into()), None));
        assert_eq!(caller_user(&req), "+33123456");
        assert_eq!(
            record_route(&req.headers),
            ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
        );
        assert_eq!(
            contact_uri(&req.headers).map(|u| u.to_string()),
            Some("sip:pbx@10.0.0.9:5070".into())
        );
    }

    #[test]
    fn user_parts_are_decoded_then_escaped_once() {
        assert_eq!(unescape("%2B33%201"), "+33 1");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%zz%4"), "%zz%4");
        assert_eq!(unescape("%FF"), "\u{FFFD}");
        assert_eq!(
            user_uri("bob smith", "homeline.test").map(|u| u.to_string()),
            Some("sip:bob%20smith@homeline.test".into())
        );
        assert_eq!(
            user_uri("", "homeline.test").map(|u| u.to_string()),
            Some("sip:anonymous@homeline.test".into())
        );
        let req =
            Request::try_from(INVITE.replace("+33123456", "%2B33%20123").as_str()).expect("parses");
        assert_eq!(caller_user(&req), "+33 123");
    }

    #[test]
    fn statuses_are_classified_and_bounded() {
        assert_eq!(classify(200), Final::Answered);
        assert_eq!(classify(486), Final::Refused(486));
        assert_eq!(classify(487), Final::Refused(487));
        assert_eq!(classify(408), Final::Unreachable);
        assert_eq!(classify(503), Final::Unreachable);
        assert_eq!(final_status(302), 302);
        assert_eq!(final_status(200), 500);
        assert_eq!(final_status(700), 500);
        assert_eq!(redirect_contact("sip:9000@pbx"), "<sip:9000@pbx>");
        assert_eq!(redirect_contact("<sip:9000@pbx>"), "<sip:9000@pbx>");
    }

    #[test]
    fn our_contact_names_the_transport() {
        let tcp = SipAddr::new(Transport::Tcp, "127.0.0.1:5060".try_into().expect("hp"));
        assert_eq!(
            our_contact(&tcp),
            "<sip:homeline@127.0.0.1:5060;transport=TCP>"
        );
        let udp = SipAddr::new(Transport::Udp, "127.0.0.1:5060".try_into().expect("hp"));
        assert_eq!(our_contact(&udp), "<sip:homeline@127.0.0.1:5060>");
    }

    #[test]
    fn a_nated_contact_is_rewritten_to_the_source() {
        let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
            Contact: \"Desk\" <sip:alice@192.168.1.20:5062;ob>;expires=60\r\n\
            Content-Length: 0\r\n\r\n";
        let mut resp = Response::try_from(raw).expect("parses");
        let public: SocketAddr = "203.0.113.7:40123".parse().expect("addr");
        assert!(fix_nated_contact(&mut resp, public));
        assert_eq!(
            contact_uri(&resp.headers).map(|u| u.to_string()),
            Some("sip:alice@203.0.113.7:40123;ob".into())
        );
        assert!(!fix_nated_contact(&mut resp, public), "already the source");
        let mut none = Response::try_from(raw.replace("Contact", "X-C").as_str()).expect("ok");
        assert!(!fix_nated_contact(&mut none, public));
    }
}
