//! The PBX leg: an admitted INVITE, held open (its server transaction driven by one task)
//! until the runtime rings, answers or rejects it; the PBX's CANCEL and ACK; BYE either
//! way. The dialog is ours to keep (tags, route set, CSeq): rsipstack's transaction layer
//! retransmits responses and absorbs retransmitted requests.
//!
//! In-dialog requests to the PBX go back over the flow the INVITE came on: the TCP
//! connection, or from the same UDP socket to the INVITE's source address. With a
//! record-routing proxy in front, that source is the proxy, the first hop of the route set.

use crate::edge::Shared;
use crate::legs::{CallRef, EdgeEvent, Party, transact};
use crate::sipmsg::{self, DialogPath};
use crate::stats::SipStats;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, Request, SipMessage};
use rsipstack::transaction::key::TransactionKey;
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::{Transaction, TransactionEvent, TransactionEventSender};
use rsipstack::transport::{SipAddr, SipConnection};
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the PBX leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PbxPhase {
    /// No final response yet (`100`, maybe `180` sent).
    Proceeding,
    /// `200` sent, no ACK yet.
    Answered,
    /// ACKed.
    Confirmed,
}

/// A live PBX call.
pub(crate) struct PbxCall {
    pub call_id: String,
    pub phase: PbxPhase,
    pub invite: Request,
    /// Our To tag.
    pub local_tag: String,
    /// The PBX's From tag.
    pub remote_tag: String,
    /// Our Contact.
    pub contact: String,
    /// Feeds the INVITE's server transaction (responses, termination).
    pub tu: TransactionEventSender,
    pub key: TransactionKey,
    pub conn: SipConnection,
    pub dest: SipAddr,
    /// Our SDP (sent in the `200`), repeated to a re-INVITE.
    pub local_sdp: Vec<u8>,
    /// The runtime asked for a BYE before the ACK came (RFC 3261 §15: wait for it).
    pub bye_pending: bool,
}

impl std::fmt::Debug for PbxCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PbxCall")
            .field("call_id", &self.call_id)
            .field("phase", &self.phase)
            .field("dest", &self.dest)
            .finish_non_exhaustive()
    }
}

/// What the routing check found for an INVITE.
#[derive(Debug)]
pub(crate) struct Admission<'a> {
    pub trunk: &'a str,
    pub queue: &'a str,
    pub number: String,
    pub source: SocketAddr,
}

/// Offers a routed INVITE to the runtime (`100 Trying` already sent). `Some(call)`: the
/// runtime has it, drive the transaction with [`run`]. `None`: answered here (`480` when
/// no runtime listens, `503` when its queue is full or closed, `400` when malformed).
pub(crate) async fn admit(
    tx: &mut Transaction,
    sh: &Shared,
    what: Admission<'_>,
) -> rsipstack::Result<Option<u64>> {
    if !sh.events.taken() {
        tracing::info!(
            trunk = what.trunk,
            queue = what.queue,
            "INVITE for a queue: no call runtime, 480"
        );
        return refuse(tx, sh, 480).await;
    }
    let Some(id) = hold(tx, sh) else {
        return refuse(tx, sh, 400).await;
    };
    let req = &tx.original;
    let sdp = (!req.body.is_empty()).then(|| req.body.clone());
    let ev = EdgeEvent::Inbound {
        call: CallRef(id),
        trunk: what.trunk.to_string(),
        queue: what.queue.to_string(),
        number: what.number,
        caller: sipmsg::caller_user(req),
        offer: sdp,
        source: what.source,
    };
    tracing::debug!(
        call = id,
        trunk = what.trunk,
        queue = what.queue,
        "INVITE offered to the runtime"
    );
    offer(tx, sh, id, ev).await
}

/// Answers an INVITE that is not held with a final `status`.
pub(crate) async fn refuse(
    tx: &mut Transaction,
    sh: &Shared,
    status: u16,
) -> rsipstack::Result<Option<u64>> {
    let resp = sipmsg::response(
        &tx.original,
        status,
        &make_tag(),
        &sh.settings.user_agent,
        None,
        None,
    );
    tx.respond(resp).await.map(|()| None)
}

/// Holds an INVITE's server transaction open as a call (its dialog state recorded, the
/// registry knowing its Call-ID), named by the returned id; `None` when the INVITE lacks
/// what a dialog needs. The runtime then answers it with [`answer`], [`reject`],
/// [`hang_up`], and hears of its end as `PbxGone`.
pub(crate) fn hold(tx: &Transaction, sh: &Shared) -> Option<u64> {
    let req = &tx.original;
    let call_id = req.call_id_header().ok()?.value().to_string();
    let (remote_tag, _) = sipmsg::tags(req);
    let remote_tag = remote_tag?;
    let conn = tx.connection.clone()?;
    let dest = tx
        .destination
        .clone()
        .or_else(|| conn.get_remote_addr().cloned())?;
    let id = sh.calls.next_id();
    let call = PbxCall {
        call_id: call_id.clone(),
        phase: PbxPhase::Proceeding,
        invite: req.clone(),
        local_tag: make_tag().to_string(),
        remote_tag,
        contact: sipmsg::our_contact(conn.get_addr()),
        tu: tx.tu_sender.clone(),
        key: tx.key.clone(),
        conn,
        dest,
        local_sdp: Vec::new(),
        bye_pending: false,
    };
    let mut reg = sh.calls.lock();
    reg.pbx.insert(id, call);
    reg.by_call_id.insert(call_id, Party::Pbx(id));
    Some(id)
}

/// Offers `ev` about the held call `id` to the runtime without waiting: `Some(id)` when it
/// took it (drive the transaction with [`run`]); else the call is dropped, refused `503`
/// and counted (`SipStats::overloaded`).
pub(crate) async fn offer(
    tx: &mut Transaction,
    sh: &Shared,
    id: u64,
    ev: EdgeEvent,
) -> rsipstack::Result<Option<u64>> {
    if sh.events.offer(ev) {
        return Ok(Some(id));
    }
    let local_tag = sh
        .calls
        .lock()
        .remove_pbx(id)
        .map(|c| c.local_tag)
        .unwrap_or_default();
    let total = SipStats::bump(&sh.stats.overloaded);
    tracing::warn!(
        total,
        "INVITE refused with 503: the runtime's event queue is full or closed"
    );
    let ua = &sh.settings.user_agent;
    let resp = sipmsg::response(&tx.original, 503, &local_tag, ua, None, None);
    tx.respond(resp).await.map(|()| None)
}

/// Drives the admitted INVITE's server transaction until it ends: answers the PBX's CANCEL
/// with `487` (unless the call was answered or refused first), notes the ACK, and ends a
/// call whose `200` was never acknowledged with a BYE.
pub(crate) async fn run(mut tx: Transaction, sh: Arc<Shared>, id: u64) {
    let ua = sh.settings.user_agent.clone();
    let mut acked = false;
    while let Some(msg) = tx.receive().await {
        let SipMessage::Request(req) = msg else {
            continue;
        };
        match req.method {
            Method::Cancel => {
                // The stack answered the CANCEL itself (200).
                let slot = sh.events.slot().await;
                let gone = {
                    let mut reg = sh.calls.lock();
                    match reg.pbx.get(&id) {
                        Some(c) if c.phase == PbxPhase::Proceeding => {
                            slot.put(EdgeEvent::PbxGone { call: CallRef(id) });
                            reg.remove_pbx(id)
                        }
                        _ => None,
                    }
                };
                if let Some(call) = gone {
                    tracing::debug!(call = id, "PBX cancelled");
                    let resp =
                        sipmsg::response(&call.invite, 487, &call.local_tag, &ua, None, None);
                    if let Err(e) = tx.respond(resp).await {
                        tracing::debug!(call = id, error = %e, "cannot answer 487");
                    }
                }
            }
            Method::Ack => {
                acked = true;
                let bye = {
                    let mut reg = sh.calls.lock();
                    match reg.pbx.get_mut(&id) {
                        Some(c) if c.phase == PbxPhase::Answered && c.bye_pending => {
                            reg.remove_pbx(id)
                        }
                        Some(c) if c.phase == PbxPhase::Answered => {
                            c.phase = PbxPhase::Confirmed;
                            None
                        }
                        _ => None,
                    }
                };
                if let Some(call) = bye {
                    send_bye(&sh, call);
                }
            }
            _ => {}
        }
    }
    if acked {
        return;
    }
    let slot = sh.events.slot().await;
    let unacked = {
        let mut reg = sh.calls.lock();
        match reg.pbx.get(&id) {
            Some(c) if c.phase == PbxPhase::Answered => {
                if !c.bye_pending {
                    slot.put(EdgeEvent::PbxGone { call: CallRef(id) });
                }
                reg.remove_pbx(id)
            }
            _ => None,
        }
    };
    if let Some(call) = unacked {
        tracing::warn!(call = id, "no ACK for the 200 from the PBX: BYE");
        send_bye(&sh, call);
    }
}

/// `180 Ringing` on an unanswered call.
pub(crate) fn ring(sh: &Shared, id: u64) {
    let reg = sh.calls.lock();
    let Some(c) = reg.pbx.get(&id) else {
        return;
    };
    if c.phase != PbxPhase::Proceeding {
        return;
    }
    let resp = sipmsg::response(
        &c.invite,
        180,
        &c.local_tag,
        &sh.settings.user_agent,
        Some(&c.contact),
        None,
    );
    let _ = c.tu.send(TransactionEvent::Respond(resp));
}

/// `183 Session Progress` with our SDP on an unanswered call (early media).
pub(crate) fn progress(sh: &Shared, id: u64, sdp: Vec<u8>) {
    let reg = sh.calls.lock();
    let Some(c) = reg.pbx.get(&id) else {
        return;
    };
    if c.phase != PbxPhase::Proceeding {
        return;
    }
    let resp = sipmsg::response(
        &c.invite,
        183,
        &c.local_tag,
        &sh.settings.user_agent,
        Some(&c.contact),
        Some(&sdp),
    );
    let _ = c.tu.send(TransactionEvent::Respond(resp));
}

/// `200 OK` with our SDP on an unanswered call; the ACK confirms the dialog.
pub(crate) fn answer(sh: &Shared, id: u64, sdp: Vec<u8>) {
    let mut reg = sh.calls.lock();
    let Some(c) = reg.pbx.get_mut(&id) else {
        tracing::debug!(call = id, "answer for a call that is gone");
        return;
    };
    if c.phase != PbxPhase::Proceeding {
        return;
    }
    c.phase = PbxPhase::Answered;
    let resp = sipmsg::response(
        &c.invite,
        200,
        &c.local_tag,
        &sh.settings.user_agent,
        Some(&c.contact),
        Some(&sdp),
    );
    c.local_sdp = sdp;
    let _ = c.tu.send(TransactionEvent::Respond(resp));
}

/// A final non-2xx response on an unanswered call; a `3xx` carries `contact`.
pub(crate) fn reject(sh: &Shared, id: u64, status: u16, contact: Option<&str>) {
    let mut reg = sh.calls.lock();
    match reg.pbx.get(&id) {
        Some(c) if c.phase == PbxPhase::Proceeding => {}
        _ => return,
    }
    let Some(c) = reg.remove_pbx(id) else {
        return;
    };
    let status = sipmsg::final_status(status);
    let contact = contact
        .filter(|_| (300..=399).contains(&status))
        .map(sipmsg::redirect_contact);
    let resp = sipmsg::response(
        &c.invite,
        status,
        &c.local_tag,
        &sh.settings.user_agent,
        contact.as_deref(),
        None,
    );
    let _ = c.tu.send(TransactionEvent::Respond(resp));
}

/// BYE on an answered call (after its ACK, RFC 3261 §15); an unanswered one is refused
/// with `480` instead.
pub(crate) fn hang_up(sh: &Shared, id: u64) {
    let confirmed = {
        let mut reg = sh.calls.lock();
        let Some(c) = reg.pbx.get_mut(&id) else {
            return;
        };
        match c.phase {
            PbxPhase::Proceeding => None,
            PbxPhase::Answered => {
                c.bye_pending = true;
                return;
            }
            PbxPhase::Confirmed => reg.remove_pbx(id),
        }
    };
    match confirmed {
        Some(call) => send_bye(sh, call),
        None => reject(sh, id, 480, None),
    }
}

/// Sends the BYE that ends `call`'s dialog, in the background.
fn send_bye(sh: &Shared, call: PbxCall) {
    let invite = &call.invite;
    let local = invite
        .to_header()
        .map(|t| format!("{};tag={}", t.value(), call.local_tag));
    let remote = invite.from_header().map(|f| f.value().to_string());
    let target = sipmsg::contact_uri(&invite.headers).unwrap_or_else(|| invite.uri.clone());
    let via = sh
        .endpoint
        .get_via(Some(call.conn.get_addr().clone()), None);
    let (Ok(local), Ok(remote), Ok(via)) = (local, remote, via) else {
        tracing::warn!(call_id = %call.call_id, "cannot build the BYE to the PBX");
        return;
    };
    let path = DialogPath {
        call_id: call.call_id.clone(),
        local,
        remote,
        target,
        route: sipmsg::record_route(&invite.headers),
    };
    let bye = sipmsg::in_dialog(
        Method::Bye,
        &path,
        1,
        via,
        &sh.settings.user_agent,
        Some(&call.contact),
        None,
    );
    let ep = sh.endpoint.clone();
    tokio::spawn(async move {
        let status = transact(ep, bye, call.conn, call.dest).await;
        tracing::debug!(call_id = %call.call_id, ?status, "BYE to the PBX answered");
    });
}
