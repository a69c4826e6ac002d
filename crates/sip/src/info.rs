//! SIP INFO inside a call's dialog: DTMF sent as signalling (the legacy, package-less use of
//! RFC 2976 INFO that phones and PBXs still offer as "SIP INFO" DTMF mode).
//!
//! Two bodies are understood:
//! - `application/dtmf-relay` (Cisco's, the common one): `Signal=5` and `Duration=160` lines
//!   (milliseconds), keys in any case, `Signal` a keypad symbol or an event code 0–15;
//! - `application/dtmf`: the symbol or event code alone.
//!
//! A digit is answered `200` and reported to the runtime (`LegDtmf` from an operator, `PbxDtmf`
//! from the PBX), which sends it on as RFC 4733 events. An INFO without a body is answered
//! `200` and ignored (some phones use it as a keepalive); another body type gets `415` with the
//! types accepted, an unreadable digit `400`, an INFO outside a confirmed dialog `481`.

use crate::agent::LegPhase;
use crate::edge::Shared;
use crate::legs::{CallRef, EdgeEvent, LegRef, Party, match_dialog};
use crate::pbx::PbxPhase;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;

/// The body types accepted in an INFO.
pub(crate) const ACCEPT: &str = "application/dtmf-relay, application/dtmf";

/// A digit carried by an INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InfoDtmf {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// The duration given, in ms.
    pub duration_ms: Option<u32>,
}

/// What an INFO's body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InfoBody {
    Dtmf(InfoDtmf),
    /// No body: nothing to do.
    Empty,
    /// A body of another type.
    Unsupported,
    /// A DTMF body type without a readable digit.
    Malformed,
}

/// The keypad symbol of `s`: a symbol, or an RFC 4733 event code (`10` is `*`, `11` `#`).
fn digit(s: &str) -> Option<char> {
    let s = s.trim();
    let mut chars = s.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let c = c.to_ascii_uppercase();
        return matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c);
    }
    match s.parse::<u8>().ok()? {
        10 => Some('*'),
        11 => Some('#'),
        code @ 12..=15 => Some(char::from(b'A' + code - 12)),
        _ => None,
    }
}

/// Reads an INFO's body given its Content-Type value (`None`: no such header).
pub(crate) fn parse(content_type: Option<&str>, body: &[u8]) -> InfoBody {
    if body.iter().all(u8::is_ascii_whitespace) {
        return InfoBody::Empty;
    }
    let Some(content_type) = content_type else {
        return InfoBody::Unsupported;
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Ok(text) = std::str::from_utf8(body) else {
        return InfoBody::Malformed;
    };
    let dtmf = match media.as_str() {
        "application/dtmf-relay" => {
            let mut signal = None;
            let mut duration_ms = None;
            for line in text.lines() {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                match key.trim().to_ascii_lowercase().as_str() {
                    "signal" => signal = Some(digit(value)),
                    "duration" => duration_ms = value.trim().parse::<u32>().ok(),
                    _ => {}
                }
            }
            signal
                .flatten()
                .map(|digit| InfoDtmf { digit, duration_ms })
        }
        "application/dtmf" => digit(text).map(|digit| InfoDtmf {
            digit,
            duration_ms: None,
        }),
        _ => return InfoBody::Unsupported,
    };
    dtmf.map_or(InfoBody::Malformed, InfoBody::Dtmf)
}

/// Answers an INFO (see the module docs), reporting a digit under the registry lock like the
/// other in-dialog events.
pub(crate) async fn handle(tx: &mut Transaction, sh: &Shared) -> rsipstack::Result<()> {
    let content_type = tx.original.headers.iter().find_map(|h| match h {
        Header::ContentType(c) => Some(c.value().to_string()),
        _ => None,
    });
    let body = parse(content_type.as_deref(), &tx.original.body);
    let slot = sh.events.slot().await;
    let status = {
        let reg = sh.calls.lock();
        let party = match_dialog(&reg, &tx.original).filter(|party| match *party {
            Party::Pbx(id) => reg
                .pbx
                .get(&id)
                .is_some_and(|c| c.phase == PbxPhase::Confirmed),
            Party::Agent(id) => reg
                .legs
                .get(&id)
                .is_some_and(|l| l.phase == LegPhase::Confirmed),
        });
        match (party, body) {
            (None, _) => StatusCode::CallTransactionDoesNotExist,
            (Some(_), InfoBody::Empty) => StatusCode::OK,
            (Some(_), InfoBody::Unsupported) => StatusCode::UnsupportedMediaType,
            (Some(_), InfoBody::Malformed) => StatusCode::BadRequest,
            (Some(party), InfoBody::Dtmf(d)) => {
                let (digit, duration_ms) = (d.digit, d.duration_ms);
                let ev = match party {
                    Party::Pbx(id) => EdgeEvent::PbxDtmf {
                        call: CallRef(id),
                        digit,
                        duration_ms,
                    },
                    Party::Agent(id) => EdgeEvent::LegDtmf {
                        leg: LegRef(id),
                        digit,
                        duration_ms,
                    },
                };
                tracing::debug!(?ev, "DTMF by SIP INFO");
                slot.put(ev);
                StatusCode::OK
            }
        }
    };
    if status == StatusCode::UnsupportedMediaType {
        let accept = vec![Header::Accept(ACCEPT.into())];
        tx.reply_with(status, accept, None).await
    } else {
        tx.reply(status).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtmf(digit: char, duration_ms: Option<u32>) -> InfoBody {
        InfoBody::Dtmf(InfoDtmf { digit, duration_ms })
    }

    #[test]
    fn reads_dtmf_relay_bodies() {
        let relay = Some("application/dtmf-relay");
        assert_eq!(
            parse(relay, b"Signal=5\r\nDuration=160\r\n"),
            dtmf('5', Some(160))
        );
        assert_eq!(
            parse(
                Some("Application/DTMF-Relay; charset=utf-8"),
                b"signal = #\nduration= 250"
            ),
            dtmf('#', Some(250))
        );
        assert_eq!(parse(relay, b"Signal=10\r\n"), dtmf('*', None));
        assert_eq!(parse(relay, b"Signal=d\r\nDuration=x\r\n"), dtmf('D', None));
        assert_eq!(parse(relay, b"Signal=16\r\n"), InfoBody::Malformed);
        assert_eq!(parse(relay, b"Duration=100\r\n"), InfoBody::Malformed);
        assert_eq!(parse(relay, b"Signal=\r\n"), InfoBody::Malformed);
        assert_eq!(parse(relay, &[0xFF, 0xFE]), InfoBody::Malformed);
    }

    #[test]
    fn reads_dtmf_bodies_and_tells_the_rest_apart() {
        assert_eq!(parse(Some("application/dtmf"), b"7\r\n"), dtmf('7', None));
        assert_eq!(parse(Some("application/dtmf"), b"11"), dtmf('#', None));
        assert_eq!(parse(Some("application/dtmf"), b"77"), InfoBody::Malformed);
        assert_eq!(parse(Some("application/dtmf"), b""), InfoBody::Empty);
        assert_eq!(parse(None, b"\r\n"), InfoBody::Empty);
        assert_eq!(parse(None, b"5"), InfoBody::Unsupported);
        assert_eq!(
            parse(Some("application/media_control+xml"), b"<x/>"),
            InfoBody::Unsupported
        );
    }
}
