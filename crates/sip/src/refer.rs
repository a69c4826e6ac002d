//! Blind transfer by an operator: REFER (RFC 3515) in the answered operator leg's dialog.
//!
//! The Refer-To URI's user part (percent-decoded) names where the call goes. A number that
//! some trunk's routes send to a queue (or the name of a routed queue itself) is a transfer
//! to that queue: the REFER is answered `202 Accepted` and reported as
//! [`EdgeEvent::LegTransfer`]; the PBX leg is kept and the caller is re-queued by the
//! runtime, which then reports the result with [`SipEdge::notify_transfer`]. Any other
//! dialable number (digits, `+`, `*`, `#`; at most 32) is a transfer to that outside number,
//! reported as [`EdgeEvent::LegTransferOut`]: the runtime calls it through the call's trunk
//! and reports that leg's final status (`200`, or the failure: `486`, `408` no answer, ...).
//! Anything else (a name, a URI without a user part homeline could dial) is accepted
//! (`202`) but fails at once with a `404 Not Found` NOTIFY: the implicit subscription
//! always exists, so the phone shows why.
//!
//! The implicit subscription's NOTIFYs (`Event: refer`, `message/sipfrag;version=2.0`) go in
//! the operator's dialog: `SIP/2.0 100 Trying` (`Subscription-State: active`) at once, then
//! the final status (`terminated;reason=noresource`). After a successful final NOTIFY the
//! operator normally hangs up; if it has not within [`BYE_GRACE`], homeline sends the BYE.
//!
//! A REFER outside a confirmed operator dialog gets `481`, one on the PBX leg `403`, one
//! without a usable Refer-To `400`, and a second one while the first is in progress `491`.

use crate::SipEdge;
use crate::agent::{self, LegPhase};
use crate::edge::Shared;
use crate::legs::{EdgeEvent, LegRef, Party, match_dialog, transact};
use crate::sipmsg::{self, DialogPath};
use crate::trunks::TrunkSpec;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long an accepted transfer waits for the runtime's result before failing `503`
/// (longer than an outside target may ring: the engine's `OUTSIDE_RING`, 30 s, plus a
/// margin for the INVITE's own timeout).
const RESULT_WAIT: Duration = Duration::from_secs(45);
/// How long the operator has to hang up after a successful transfer before homeline does.
pub(crate) const BYE_GRACE: Duration = Duration::from_secs(2);

/// Transfers in progress: the runtime's result goes to the leg's subscription task.
#[derive(Debug, Default)]
pub(crate) struct Transfers(Mutex<HashMap<u64, oneshot::Sender<u16>>>);

impl Transfers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<u16>>> {
        crate::edge::lock(&self.0)
    }
}

/// The blind-transfer API.
impl SipEdge {
    /// Reports the outcome of a [`EdgeEvent::LegTransfer`] to the operator: a final NOTIFY
    /// `SIP/2.0 <status>` (`200`: the caller is re-queued; a `4xx`-`6xx`: the transfer
    /// failed and the call stays with the operator). After a `2xx`, the leg is hung up if
    /// the operator does not hang up itself. Nothing for a leg with no transfer in progress.
    pub async fn notify_transfer(&self, leg: LegRef, status: u16) {
        if let Some(done) = self.shared.calls.transfers.map().remove(&leg.0) {
            let _ = done.send(status);
        }
    }
}

/// The user part of a Refer-To value or a URI (`<sip:8001@host;transport=udp>`,
/// `sip:8001@host`, `tel:8001`), percent-decoded.
pub fn target_number(value: &str) -> Option<String> {
    let v = value.trim();
    let uri = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or_default(),
    };
    let uri = uri.trim();
    let (scheme, rest) = uri.split_once(':')?;
    let user = match scheme.to_ascii_lowercase().as_str() {
        "sip" | "sips" => rest.split_once('@')?.0.split(';').next()?,
        "tel" => rest.split([';', '?']).next()?,
        _ => return None,
    };
    let user = sipmsg::unescape(user.trim());
    (!user.is_empty()).then_some(user)
}

/// Whether `number` can be dialled on a trunk: digits with an optional leading `+`, and `*`
/// or `#`; 1 to 32 characters.
fn dialable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    !digits.is_empty()
        && number.len() <= 32
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// The queue `number` goes to: the first trunk route for it, else a routed queue of that
/// name.
pub(crate) fn queue_for(trunks: &[TrunkSpec], number: &str) -> Option<String> {
    trunks
        .iter()
        .find_map(|t| t.routes.get(number))
        .or_else(|| {
            trunks
                .iter()
                .flat_map(|t| t.routes.values())
                .find(|q| q.as_str() == number)
        })
        .cloned()
}

/// Answers a REFER (see the module docs).
pub(crate) async fn handle(tx: &mut Transaction, sh: &Arc<Shared>) -> rsipstack::Result<()> {
    let refer_to = tx.original.headers.iter().find_map(|h| match h {
        Header::ReferTo(r) => Some(r.value().to_string()),
        _ => None,
    });
    let party = {
        let reg = sh.calls.lock();
        match_dialog(&reg, &tx.original)
    };
    let leg = match party {
        Some(Party::Agent(id))
            if sh
                .calls
                .lock()
                .legs
                .get(&id)
                .is_some_and(|l| l.phase == LegPhase::Confirmed) =>
        {
            id
        }
        Some(Party::Pbx(_)) => {
            tracing::info!("REFER from the PBX: transfers are the operators': 403");
            return tx.reply(StatusCode::Forbidden).await;
        }
        _ => return tx.reply(StatusCode::CallTransactionDoesNotExist).await,
    };
    let Some(number) = refer_to.as_deref().and_then(target_number) else {
        return tx.reply(StatusCode::BadRequest).await;
    };
    let target = match queue_for(&sh.settings.trunks, &number) {
        Some(queue) => Some(EdgeEvent::LegTransfer {
            leg: LegRef(leg),
            queue,
        }),
        None if dialable(&number) && !sh.settings.trunks.is_empty() => {
            Some(EdgeEvent::LegTransferOut {
                leg: LegRef(leg),
                number,
            })
        }
        None => None,
    };
    let result = match target {
        Some(event) => {
            let (done, result) = oneshot::channel();
            let busy = {
                let mut transfers = sh.calls.transfers.map();
                let busy = transfers.contains_key(&leg);
                if !busy {
                    transfers.insert(leg, done);
                }
                busy
            };
            if busy {
                return tx.reply(StatusCode::RequestPending).await;
            }
            // Reported before the 202: the operator's BYE that follows comes after it.
            let slot = sh.events.slot().await;
            if sh.calls.lock().legs.contains_key(&leg) {
                match &event {
                    EdgeEvent::LegTransfer { queue, .. } => {
                        tracing::info!(leg, queue, "operator transfers the call to a queue")
                    }
                    _ => tracing::info!(leg, "operator transfers the call to an outside number"),
                }
                slot.put(event);
            }
            Some(result)
        }
        None => {
            tracing::info!(leg, "operator transfers to a target homeline cannot call");
            None
        }
    };
    let replied = tx.reply(StatusCode::Accepted).await;
    tokio::spawn(subscription(sh.clone(), leg, result));
    replied
}

/// The implicit subscription of one REFER: `100 Trying`, the result (`404` when `result` is
/// `None`), and the BYE after a success.
async fn subscription(sh: Arc<Shared>, leg: u64, result: Option<oneshot::Receiver<u16>>) {
    notify(&sh, leg, 100).await;
    let status = match result {
        None => 404,
        Some(rx) => match tokio::time::timeout(RESULT_WAIT, rx).await {
            Ok(Ok(status)) => status,
            _ => {
                sh.calls.transfers.map().remove(&leg);
                tracing::warn!(leg, "no transfer result from the runtime");
                503
            }
        },
    };
    notify(&sh, leg, status).await;
    if (200..300).contains(&status) {
        tokio::time::sleep(BYE_GRACE).await;
        // Nothing if the operator hung up already.
        agent::hang_up(&sh, leg);
    }
}

/// Sends one NOTIFY of the refer subscription on operator leg `leg` and waits for its
/// answer; nothing if the leg is gone.
async fn notify(sh: &Shared, leg: u64, status: u16) {
    let out = {
        let mut reg = sh.calls.lock();
        let Some(l) = reg.legs.get_mut(&leg) else {
            return;
        };
        let Some((remote, target, route)) = l.remote.clone() else {
            return;
        };
        let d = l.dialog();
        let (conn, dest, contact) = (d.conn.clone(), d.dest.clone(), d.contact.clone());
        let Some(local) = d.invite.from_header().ok().map(|f| f.value().to_string()) else {
            return;
        };
        let Ok(via) = sh.endpoint.get_via(Some(conn.get_addr().clone()), None) else {
            return;
        };
        let path = DialogPath {
            call_id: l.call_id.clone(),
            local,
            remote,
            target,
            route,
        };
        l.local_cseq += 1;
        let mut req = sipmsg::in_dialog(
            Method::Notify,
            &path,
            l.local_cseq,
            via,
            &sh.settings.user_agent,
            Some(&contact),
            None,
        );
        let body = format!("SIP/2.0 {status} {}\r\n", StatusCode::from(status).text()).into_bytes();
        let state = if status < 200 {
            "active;expires=60"
        } else {
            "terminated;reason=noresource"
        };
        req.headers
            .retain(|h| !matches!(h, Header::ContentLength(_)));
        req.headers.push(Header::Event("refer".into()));
        req.headers.push(Header::SubscriptionState(state.into()));
        req.headers
            .push(Header::ContentType("message/sipfrag;version=2.0".into()));
        req.headers
            .push(Header::ContentLength((body.len() as u32).into()));
        req.body = body;
        (req, conn, dest)
    };
    let (req, conn, dest) = out;
    let answer = transact(sh.endpoint.clone(), req, conn, dest).await;
    tracing::debug!(leg, status, ?answer, "refer NOTIFY sent");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trunks::TrunkTransport;

    #[test]
    fn reads_refer_to_numbers() {
        let n = |s: &str| target_number(s);
        assert_eq!(n("<sip:8001@127.0.0.1>").as_deref(), Some("8001"));
        assert_eq!(
            n("\"Sales\" <sip:8001@h;transport=udp?Replaces=x>").as_deref(),
            Some("8001")
        );
        assert_eq!(n("sip:8001@homeline").as_deref(), Some("8001"));
        assert_eq!(n("SIPS:%2B331@h").as_deref(), Some("+331"));
        assert_eq!(n("<tel:+33123;phone-context=x>").as_deref(), Some("+33123"));
        assert_eq!(n("<sip:homeline.example>"), None);
        assert_eq!(n("<http://x@y>"), None);
        assert_eq!(n("<sip:@h>"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn finds_the_queue_of_a_number_or_a_queue_name() {
        let trunk = |routes: &[(&str, &str)]| TrunkSpec {
            name: "t".into(),
            pbx: "127.0.0.1:5080".parse().expect("addr"),
            transport: TrunkTransport::Udp,
            allow: vec![],
            credentials: None,
            options_interval: None,
            caller_id: None,
            routes: routes
                .iter()
                .map(|(n, q)| (n.to_string(), q.to_string()))
                .collect(),
        };
        let trunks = [
            trunk(&[("8000", "support")]),
            trunk(&[("8001", "sales"), ("8000", "other")]),
        ];
        assert_eq!(queue_for(&trunks, "8000").as_deref(), Some("support"));
        assert_eq!(queue_for(&trunks, "8001").as_deref(), Some("sales"));
        assert_eq!(queue_for(&trunks, "sales").as_deref(), Some("sales"));
        assert_eq!(queue_for(&trunks, "0612345678"), None);
    }

    #[test]
    fn dials_only_numbers() {
        for n in ["0612345678", "+33123456789", "*21#", "9"] {
            assert!(dialable(n), "{n}");
        }
        for n in [
            "",
            "+",
            "alice",
            "06 12",
            "0612-34",
            &"1".repeat(33),
            "+33;x",
        ] {
            assert!(!dialable(n), "{n}");
        }
    }
}
