//! The operator legs: an INVITE to a registered softphone, its progress back to the
//! runtime, CANCEL and BYE.
//!
//! ## Reaching a phone behind NAT
//! An operator is called at the binding registered or refreshed most recently (the device
//! the operator used last); forking to every binding is left for later. The INVITE's
//! Request-URI is the binding's Contact, but it is sent where the REGISTER really came
//! from: over TCP on the very connection the phone registered on (a phone behind NAT
//! cannot accept a new one; if it closed, the leg is unreachable at once), over UDP from
//! the socket the REGISTER reached, to its source address. CANCEL and BYE take the same
//! way. rsipstack sends the ACK of a `2xx` itself, to the `2xx`'s Contact: [`NatContacts`]
//! rewrites that Contact to the response's source address first (over UDP), as Asterisk's
//! `rewrite_contact` does.

use crate::edge::{Shared, lock};
use crate::legs::{EdgeEvent, LegRef, Party, Slot, transact};
use crate::registrar::{FlowId, Transport};
use crate::sipmsg::{self, DialogPath, Final};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{
    Header, Method, Param, Request, Response, SipMessage, StatusCodeKind, Uri, typed,
};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::{Transaction, TransactionEventSender};
use rsipstack::transport::{SipAddr, SipConnection};
use std::sync::Arc;

/// Where an operator leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LegPhase {
    /// INVITE sent, nothing back.
    Calling,
    /// `100 Trying` back: a CANCEL may be sent.
    Proceeding,
    /// Ringing (`18x`).
    Early,
    /// Answered (`2xx`, ACKed by the transaction layer).
    Confirmed,
}

/// CANCEL of an unanswered leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    No,
    /// Asked before any response: sent with the first provisional (RFC 3261 §9.1).
    Wanted,
    Sent,
}

/// A live operator leg.
pub(crate) struct AgentLeg {
    pub call_id: String,
    pub phase: LegPhase,
    pub cancel: Cancel,
    pub invite: Request,
    /// Our From tag.
    pub local_tag: String,
    /// The phone's To tag, from its `2xx`.
    pub remote_tag: Option<String>,
    /// The phone's To value (with tag), Contact and route set, from its `2xx`.
    pub remote: Option<(String, Uri, Vec<String>)>,
    /// Our Contact.
    pub contact: String,
    pub tu: TransactionEventSender,
    pub key: TransactionKey,
    pub conn: SipConnection,
    pub dest: SipAddr,
    /// The TCP connection (flow) the leg rides on.
    pub flow: Option<FlowId>,
    /// Our SDP offer, repeated to a re-INVITE.
    pub local_sdp: Vec<u8>,
    /// The CSeq of our last request in the dialog (the INVITE's, then NOTIFY, BYE).
    pub local_cseq: u32,
}

impl std::fmt::Debug for AgentLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLeg")
            .field("call_id", &self.call_id)
            .field("phase", &self.phase)
            .field("cancel", &self.cancel)
            .field("dest", &self.dest)
            .finish_non_exhaustive()
    }
}

/// INVITEs operator `user` on leg `leg`; progress comes back as `Leg*` events
/// (`LegUnreachable` at once when `user` has no usable registration).
pub(crate) fn invite(sh: &Arc<Shared>, leg: u64, user: &str, sdp: Vec<u8>, caller: &str) {
    if sh.calls.lock().legs.contains_key(&leg) {
        tracing::warn!(leg, "invite_agent for a leg that is already live: ignored");
        return;
    }
    let sh = sh.clone();
    match prepare(&sh, leg, user, sdp, caller) {
        Ok(tx) => {
            tokio::spawn(run(tx, sh, leg));
        }
        Err(why) => {
            tracing::info!(leg, user, why, "operator unreachable");
            tokio::spawn(async move {
                let ev = EdgeEvent::LegUnreachable { leg: LegRef(leg) };
                sh.events.send(ev).await;
            });
        }
    }
}

/// Builds the INVITE and its transaction, and registers the leg.
fn prepare(
    sh: &Shared,
    leg: u64,
    user: &str,
    sdp: Vec<u8>,
    caller: &str,
) -> Result<Transaction, &'static str> {
    let binding = lock(&sh.registrar)
        .lookup(user)
        .iter()
        .max_by_key(|b| b.updated)
        .cloned()
        .ok_or("not registered")?;
    let (conn, dest, flow) = match binding.transport {
        Transport::Tcp => {
            let conn = lock(&sh.flows)
                .get(&binding.flow)
                .cloned()
                .ok_or("its connection closed")?;
            let dest = conn.get_remote_addr().cloned().ok_or("no remote address")?;
            (conn, dest, Some(binding.flow))
        }
        Transport::Udp => {
            let conn = sh
                .udp_listener(binding.local, binding.source.is_ipv6())
                .ok_or("no UDP listener")?;
            let dest = SipAddr::new(rsipstack::sip::Transport::Udp, binding.source.into());
            (conn, dest, None)
        }
    };
    let domain = &sh.settings.domain;
    let target = Uri::try_from(binding.uri.as_str()).map_err(|_| "bad Contact")?;
    let from_uri = sipmsg::user_uri(caller, domain).ok_or("bad domain")?;
    let to_uri = sipmsg::user_uri(user, domain).ok_or("bad domain")?;
    let via = sh
        .endpoint
        .get_via(Some(conn.get_addr().clone()), None)
        .map_err(|_| "no Via")?;
    let local_tag = make_tag().to_string();
    let from = typed::From {
        display_name: None,
        uri: from_uri,
        params: vec![Param::Tag(local_tag.clone().into())],
    };
    let to = typed::To {
        display_name: None,
        uri: to_uri,
        params: vec![],
    };
    let contact = sipmsg::our_contact(conn.get_addr());
    let mut req = sh
        .endpoint
        .make_request(Method::Invite, target, via, from, to, 1, None);
    req.headers.push(Header::Contact(contact.clone().into()));
    req.headers.push(Header::Allow(crate::ALLOW.into()));
    req.headers.push(Header::ContentType(sipmsg::SDP.into()));
    req.headers
        .push(Header::ContentLength((sdp.len() as u32).into()));
    req.body = sdp.clone();
    let call_id = req
        .call_id_header()
        .map(|c| c.value().to_string())
        .map_err(|_| "no Call-ID")?;
    let key = TransactionKey::from_request(&req, TransactionRole::Client).map_err(|_| "no key")?;
    let mut tx = Transaction::new_client(
        key.clone(),
        req.clone(),
        sh.endpoint.clone(),
        Some(conn.clone()),
    );
    tx.destination = Some(dest.clone());
    let record = AgentLeg {
        call_id: call_id.clone(),
        phase: LegPhase::Calling,
        cancel: Cancel::No,
        invite: req,
        local_tag,
        remote_tag: None,
        remote: None,
        contact,
        tu: tx.tu_sender.clone(),
        key,
        conn,
        dest,
        flow,
        local_sdp: sdp,
        local_cseq: 1,
    };
    let mut reg = sh.calls.lock();
    reg.legs.insert(leg, record);
    reg.by_call_id.insert(call_id, Party::Agent(leg));
    Ok(tx)
}

/// Sends the INVITE and reports its progress until the transaction ends. Each event is
/// sent under the registry lock with the state change it reports (see [`Slot`]).
async fn run(mut tx: Transaction, sh: Arc<Shared>, leg: u64) {
    if let Err(e) = tx.send().await {
        tracing::warn!(leg, error = %e, "cannot send the INVITE");
    }
    let mut finished = false;
    while let Some(msg) = tx.receive().await {
        let SipMessage::Response(resp) = msg else {
            continue;
        };
        match resp.status_code.kind() {
            StatusCodeKind::Provisional => {
                let slot = sh.events.slot().await;
                if let Some((req, conn, dest)) = progress(&sh, leg, &resp, slot) {
                    spawn_transact(&sh, req, conn, dest, "CANCEL");
                }
            }
            StatusCodeKind::Successful => {
                finished = true;
                let slot = sh.events.slot().await;
                answered(&sh, leg, &resp, slot);
            }
            _ if finished => {}
            _ => {
                finished = true;
                let status = resp.status_code.code();
                tracing::debug!(leg, status, "operator leg failed");
                let ev = match sipmsg::classify(status) {
                    Final::Refused(status) => EdgeEvent::LegRefused {
                        leg: LegRef(leg),
                        status,
                    },
                    _ => EdgeEvent::LegUnreachable { leg: LegRef(leg) },
                };
                let slot = sh.events.slot().await;
                if sh.calls.lock().remove_leg(leg).is_some() {
                    slot.put(ev);
                }
            }
        }
    }
    if !finished {
        let slot = sh.events.slot().await;
        if sh.calls.lock().remove_leg(leg).is_some() {
            tracing::debug!(leg, "operator INVITE ended without a final response");
            slot.put(EdgeEvent::LegUnreachable { leg: LegRef(leg) });
        }
    }
}

type Outgoing = (Request, SipConnection, SipAddr);

/// Records a provisional response: the first ringing (`18x`) is reported; returns the
/// CANCEL that was waiting for a provisional response.
pub(crate) fn progress(sh: &Shared, leg: u64, resp: &Response, slot: Slot<'_>) -> Option<Outgoing> {
    let phase = if resp.status_code.code() == 100 {
        LegPhase::Proceeding
    } else {
        LegPhase::Early
    };
    let mut reg = sh.calls.lock();
    let l = reg.legs.get_mut(&leg)?;
    if phase == LegPhase::Early && l.phase < LegPhase::Early {
        slot.put(EdgeEvent::LegRinging { leg: LegRef(leg) });
    }
    if l.phase < phase {
        l.phase = phase;
    }
    if l.cancel == Cancel::Wanted {
        l.cancel = Cancel::Sent;
        return cancel_request(sh, l);
    }
    None
}

/// Records a `2xx` (not a retransmission): the dialog is confirmed and reported with the
/// operator's SDP.
pub(crate) fn answered(sh: &Shared, leg: u64, resp: &Response, slot: Slot<'_>) {
    let mut reg = sh.calls.lock();
    let Some(l) = reg.legs.get_mut(&leg) else {
        return;
    };
    if l.phase == LegPhase::Confirmed {
        return;
    }
    l.phase = LegPhase::Confirmed;
    let to = resp.to_header().ok();
    l.remote_tag = to
        .and_then(|t| t.tag().ok().flatten())
        .map(|t| t.value().to_string());
    let target = sipmsg::contact_uri(&resp.headers).unwrap_or_else(|| l.invite.uri.clone());
    let mut route = sipmsg::record_route(&resp.headers);
    route.reverse();
    l.remote = to.map(|t| (t.value().to_string(), target, route));
    let answer = (!resp.body.is_empty()).then(|| resp.body.clone());
    slot.put(EdgeEvent::LegAnswered {
        leg: LegRef(leg),
        answer,
    });
}

fn cancel_request(sh: &Shared, l: &AgentLeg) -> Option<Outgoing> {
    let req = sipmsg::cancel_of(&l.invite, &sh.settings.user_agent)?;
    Some((req, l.conn.clone(), l.dest.clone()))
}

fn spawn_transact(
    sh: &Shared,
    req: Request,
    conn: SipConnection,
    dest: SipAddr,
    what: &'static str,
) {
    let ep = sh.endpoint.clone();
    tokio::spawn(async move {
        let status = transact(ep, req, conn, dest).await;
        tracing::debug!(?status, "{what} to the operator answered");
    });
}

/// CANCELs an unanswered leg (at once, or with its first provisional response); the
/// INVITE's final response (`487`) comes back as `LegRefused`; an outbound leg still
/// dialing its trunk sends no INVITE and ends the same way (see `outbound`). Nothing for an
/// answered or unknown leg.
pub(crate) fn cancel(sh: &Shared, leg: u64) {
    let out = {
        let mut reg = sh.calls.lock();
        let Some(l) = reg.legs.get_mut(&leg) else {
            if let Some(cancelled) = reg.dialing.get_mut(&leg) {
                *cancelled = true;
            }
            return;
        };
        match (l.phase, l.cancel) {
            (LegPhase::Calling, Cancel::No) => {
                l.cancel = Cancel::Wanted;
                None
            }
            (LegPhase::Proceeding | LegPhase::Early, Cancel::No | Cancel::Wanted) => {
                l.cancel = Cancel::Sent;
                cancel_request(sh, l)
            }
            _ => None,
        }
    };
    if let Some((req, conn, dest)) = out {
        spawn_transact(sh, req, conn, dest, "CANCEL");
    }
}

/// BYE on an answered leg; an unanswered one is cancelled instead.
pub(crate) fn hang_up(sh: &Shared, leg: u64) {
    let bye = {
        let mut reg = sh.calls.lock();
        let Some(l) = reg.legs.get(&leg) else {
            drop(reg);
            return cancel(sh, leg);
        };
        if l.phase != LegPhase::Confirmed {
            drop(reg);
            return cancel(sh, leg);
        }
        let Some(l) = reg.remove_leg(leg) else {
            return;
        };
        bye_request(sh, &l).map(|req| (req, l.conn, l.dest))
    };
    match bye {
        Some((req, conn, dest)) => spawn_transact(sh, req, conn, dest, "BYE"),
        None => tracing::warn!(leg, "cannot build the BYE to the operator"),
    }
}

fn bye_request(sh: &Shared, l: &AgentLeg) -> Option<Request> {
    let (remote, target, route) = l.remote.clone()?;
    let path = DialogPath {
        call_id: l.call_id.clone(),
        local: l.invite.from_header().ok()?.value().to_string(),
        remote,
        target,
        route,
    };
    let via = sh
        .endpoint
        .get_via(Some(l.conn.get_addr().clone()), None)
        .ok()?;
    let cseq = l.local_cseq + 1;
    Some(sipmsg::in_dialog(
        Method::Bye,
        &path,
        cseq,
        via,
        &sh.settings.user_agent,
        Some(&l.contact),
        None,
    ))
}

/// Ends the unanswered legs riding on the TCP connection `flow`, which closed: their
/// INVITE transactions stop and the legs are reported unreachable.
pub(crate) fn flow_closed(sh: &Shared, flow: FlowId) {
    let reg = sh.calls.lock();
    for l in reg.legs.values() {
        if l.flow == Some(flow) && l.phase != LegPhase::Confirmed {
            let _ = l.tu.send(
                rsipstack::transaction::transaction::TransactionEvent::Terminate(l.key.clone()),
            );
        }
    }
}

/// Rewrites the Contact of a `2xx` to an INVITE that came over UDP to the address it came
/// from (see the module docs). The edge sends INVITEs only to operators.
#[derive(Debug)]
pub(crate) struct NatContacts;

impl MessageInspector for NatContacts {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        msg
    }

    fn after_received(&self, msg: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        match msg {
            SipMessage::Response(mut resp)
                if resp.status_code.kind() == StatusCodeKind::Successful
                    && from.is_some_and(|f| f.r#type == Some(rsipstack::sip::Transport::Udp))
                    && resp.cseq_header().and_then(|c| c.method()).ok() == Some(Method::Invite) =>
            {
                if let Some(source) = from.and_then(|f| f.get_socketaddr().ok())
                    && sipmsg::fix_nated_contact(&mut resp, source)
                {
                    tracing::debug!(%source, "Contact of a 2xx rewritten to its source");
                }
                SipMessage::Response(resp)
            }
            other => other,
        }
    }
}
