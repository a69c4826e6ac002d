//! The operator legs: INVITEs to a registered operator's softphones, their progress back to
//! the runtime, CANCEL and BYE.
//!
//! ## Forking to every device
//! An operator registered from several devices (bindings; see `registrar`) is called on all
//! of them at once, as Asterisk's PJSIP rings every contact of an AOR: one INVITE per
//! device, each a branch of the leg (`fork` runs them and picks the outcome). The branches
//! share the Call-ID, the From tag and the CSeq and differ in their Via branch and
//! Request-URI, as the branches of a forking proxy do (RFC 3261 §16.6); the device that
//! answers first fixes the dialog (its To tag), so in-dialog requests from it match the leg
//! (`legs::match_dialog`) and those of the others do not. Bindings reached at the same
//! place (same transport and source address: one socket behind one NAT mapping, so one
//! device) get one INVITE, to the most recent of them. With one binding, the leg is one
//! INVITE exactly as before forking.
//!
//! ## Reaching a phone behind NAT
//! Each INVITE's Request-URI is the binding's Contact, but it is sent where the REGISTER
//! really came from: over TCP on the very connection the phone registered on (a phone
//! behind NAT cannot accept a new one; if it closed, that binding is skipped, and a leg
//! left with no branch is unreachable at once), over UDP from the socket the REGISTER
//! reached, to its source address. CANCEL and BYE take the same way. rsipstack sends the
//! ACK of a `2xx` itself, to the `2xx`'s Contact: [`NatContacts`] rewrites that Contact to
//! the response's source address first (over UDP), as Asterisk's `rewrite_contact` does.

use crate::edge::{Shared, lock};
use crate::legs::{EdgeEvent, LegRef, Party, transact};
use crate::registrar::{Binding, FlowId, Transport};
use crate::sipmsg::{self, DialogPath, Final};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Param, Request, SipMessage, StatusCodeKind, Uri, typed};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::make_tag;
use rsipstack::transaction::transaction::{Transaction, TransactionEventSender};
use rsipstack::transport::{SipAddr, SipConnection};
use std::sync::Arc;

/// Where an operator leg, or one branch of it, stands.
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

/// CANCEL of an unanswered branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    No,
    /// Asked before any response: sent with the first provisional (RFC 3261 §9.1).
    Wanted,
    Sent,
}

/// One INVITE of a leg (one device), and its client transaction.
pub(crate) struct Branch {
    pub invite: Request,
    /// Our Contact (it names the listener the branch goes out on).
    pub contact: String,
    pub tu: TransactionEventSender,
    pub key: TransactionKey,
    pub conn: SipConnection,
    pub dest: SipAddr,
    /// The TCP connection (flow) the branch rides on.
    pub flow: Option<FlowId>,
    pub phase: LegPhase,
    pub cancel: Cancel,
    /// Its final outcome, once it failed (set by `fork` only).
    pub failed: Option<Final>,
}

impl Branch {
    /// The branch of client transaction `tx` (its INVITE, connection and destination set),
    /// with our `contact`, riding on `flow`; nothing back yet.
    pub(crate) fn new(tx: &Transaction, contact: String, flow: Option<FlowId>) -> Option<Branch> {
        Some(Branch {
            invite: tx.original.clone(),
            contact,
            tu: tx.tu_sender.clone(),
            key: tx.key.clone(),
            conn: tx.connection.clone()?,
            dest: tx.destination.clone()?,
            flow,
            phase: LegPhase::Calling,
            cancel: Cancel::No,
            failed: None,
        })
    }
}

/// A live operator leg (also an outbound leg towards a trunk, with one branch).
pub(crate) struct AgentLeg {
    pub call_id: String,
    /// How far the leg got: the furthest of its branches.
    pub phase: LegPhase,
    /// Our From tag.
    pub local_tag: String,
    /// The phone's To tag, from its `2xx`.
    pub remote_tag: Option<String>,
    /// The phone's To value (with tag), Contact and route set, from its `2xx`.
    pub remote: Option<(String, Uri, Vec<String>)>,
    /// Never empty (built with one or more branches).
    pub branches: Vec<Branch>,
    /// The branch whose device answered (`0` until one did).
    pub answered: usize,
    /// Our SDP offer, repeated to a re-INVITE.
    pub local_sdp: Vec<u8>,
    /// Early media (SDP in an `18x`) was reported.
    pub early_media: bool,
    /// The CSeq of our last request in the dialog (the INVITE's, then NOTIFY, BYE).
    pub local_cseq: u32,
}

impl AgentLeg {
    /// A leg calling on `branches` (at least one), with our From tag and SDP offer.
    pub(crate) fn new(
        call_id: String,
        local_tag: String,
        branches: Vec<Branch>,
        local_sdp: Vec<u8>,
        local_cseq: u32,
    ) -> AgentLeg {
        AgentLeg {
            call_id,
            phase: LegPhase::Calling,
            local_tag,
            remote_tag: None,
            remote: None,
            branches,
            answered: 0,
            local_sdp,
            early_media: false,
            local_cseq,
        }
    }

    /// The branch the dialog is on: the answered one (the first, before an answer).
    pub(crate) fn dialog(&self) -> &Branch {
        self.branches
            .get(self.answered)
            .or(self.branches.first())
            .expect("a leg is built with at least one branch and never loses one")
    }
}

impl std::fmt::Debug for AgentLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLeg")
            .field("call_id", &self.call_id)
            .field("phase", &self.phase)
            .field("branches", &self.branches.len())
            .field("dest", &self.dialog().dest)
            .finish_non_exhaustive()
    }
}

/// INVITEs operator `user` on leg `leg` at each of its devices; progress comes back as
/// `Leg*` events (`LegUnreachable` at once when `user` has no usable registration).
pub(crate) fn invite(sh: &Arc<Shared>, leg: u64, user: &str, sdp: Vec<u8>, caller: &str) {
    if sh.calls.lock().legs.contains_key(&leg) {
        tracing::warn!(leg, "invite_agent for a leg that is already live: ignored");
        return;
    }
    let sh = sh.clone();
    match prepare(&sh, leg, user, sdp, caller) {
        Ok(txs) => {
            if txs.len() > 1 {
                tracing::debug!(leg, user, branches = txs.len(), "operator leg forked");
            }
            for (i, tx) in txs.into_iter().enumerate() {
                tokio::spawn(crate::fork::run(tx, sh.clone(), leg, i));
            }
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

/// The bindings to call, most recent first, one per place they were registered from.
fn devices(bindings: &[Binding]) -> Vec<Binding> {
    let mut all = bindings.to_vec();
    all.sort_by_key(|b| std::cmp::Reverse(b.updated));
    let mut out: Vec<Binding> = Vec::with_capacity(all.len());
    for b in all {
        if !out
            .iter()
            .any(|o| o.transport == b.transport && o.source == b.source && o.flow == b.flow)
        {
            out.push(b);
        }
    }
    out
}

/// The connection, destination and flow to reach `binding` on.
pub(crate) fn route(
    sh: &Shared,
    binding: &Binding,
) -> Result<(SipConnection, SipAddr, Option<FlowId>), &'static str> {
    match binding.transport {
        Transport::Tcp => {
            let conn = lock(&sh.flows)
                .get(&binding.flow)
                .cloned()
                .ok_or("its connection closed")?;
            let dest = conn.get_remote_addr().cloned().ok_or("no remote address")?;
            Ok((conn, dest, Some(binding.flow)))
        }
        Transport::Udp => {
            let conn = sh
                .udp_listener(binding.local, binding.source.is_ipv6())
                .ok_or("no UDP listener")?;
            let dest = SipAddr::new(rsipstack::sip::Transport::Udp, binding.source.into());
            Ok((conn, dest, None))
        }
    }
}

/// Builds one INVITE per device and their transactions, and registers the leg.
fn prepare(
    sh: &Shared,
    leg: u64,
    user: &str,
    sdp: Vec<u8>,
    caller: &str,
) -> Result<Vec<Transaction>, &'static str> {
    let bindings = devices(lock(&sh.registrar).lookup(user));
    if bindings.is_empty() {
        return Err("not registered");
    }
    let domain = &sh.settings.domain;
    let from_uri = sipmsg::user_uri(caller, domain).ok_or("bad domain")?;
    let to_uri = sipmsg::user_uri(user, domain).ok_or("bad domain")?;
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
    let mut call_id = None;
    let mut txs = Vec::with_capacity(bindings.len());
    let mut branches = Vec::with_capacity(bindings.len());
    let mut why = "no usable binding";
    for binding in &bindings {
        let built = route(sh, binding).and_then(|(conn, dest, flow)| {
            let target = Uri::try_from(binding.uri.as_str()).map_err(|_| "bad Contact")?;
            let via = sh
                .endpoint
                .get_via(Some(conn.get_addr().clone()), None)
                .map_err(|_| "no Via")?;
            let contact = sipmsg::our_contact(conn.get_addr());
            let mut req = sh.endpoint.make_request(
                Method::Invite,
                target,
                via,
                from.clone(),
                to.clone(),
                1,
                call_id.clone(),
            );
            req.headers.push(Header::Contact(contact.clone().into()));
            req.headers.push(Header::Allow(crate::ALLOW.into()));
            req.headers.push(Header::ContentType(sipmsg::SDP.into()));
            req.headers
                .push(Header::ContentLength((sdp.len() as u32).into()));
            req.body = sdp.clone();
            let key = TransactionKey::from_request(&req, TransactionRole::Client)
                .map_err(|_| "no key")?;
            let mut tx = Transaction::new_client(
                key.clone(),
                req.clone(),
                sh.endpoint.clone(),
                Some(conn.clone()),
            );
            tx.destination = Some(dest);
            let branch = Branch::new(&tx, contact, flow).ok_or("no destination")?;
            Ok((tx, branch))
        });
        match built {
            Ok((tx, branch)) => {
                call_id = branch.invite.call_id_header().ok().cloned();
                txs.push(tx);
                branches.push(branch);
            }
            Err(e) => {
                tracing::debug!(leg, user, why = e, "binding skipped");
                why = e;
            }
        }
    }
    let call_id = call_id
        .map(|c| c.value().to_string())
        .ok_or(if branches.is_empty() {
            why
        } else {
            "no Call-ID"
        })?;
    let record = AgentLeg::new(call_id.clone(), local_tag, branches, sdp, 1);
    let mut reg = sh.calls.lock();
    reg.legs.insert(leg, record);
    reg.by_call_id.insert(call_id, Party::Agent(leg));
    Ok(txs)
}

/// A request to send, the connection to send it on and its destination.
pub(crate) type Outgoing = (Request, SipConnection, SipAddr);

/// The CANCEL of branch `b`.
pub(crate) fn cancel_request(sh: &Shared, b: &Branch) -> Option<Outgoing> {
    let req = sipmsg::cancel_of(&b.invite, &sh.settings.user_agent)?;
    Some((req, b.conn.clone(), b.dest.clone()))
}

/// Marks branch `b` cancelled: at once when it had a provisional response (returned), else
/// with its first one.
pub(crate) fn cancel_branch(sh: &Shared, b: &mut Branch) -> Option<Outgoing> {
    match (b.phase, b.cancel) {
        (LegPhase::Calling, Cancel::No) => {
            b.cancel = Cancel::Wanted;
            None
        }
        (LegPhase::Proceeding | LegPhase::Early, Cancel::No | Cancel::Wanted) => {
            b.cancel = Cancel::Sent;
            cancel_request(sh, b)
        }
        _ => None,
    }
}

pub(crate) fn spawn_transact(
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

/// CANCELs an unanswered leg, every branch still pending (at once, or with its first
/// provisional response); the INVITEs' final responses (`487`) come back as `LegRefused`;
/// an outbound leg still dialing its trunk sends no INVITE and ends the same way (see
/// `outbound`). Nothing for an answered or unknown leg.
pub(crate) fn cancel(sh: &Shared, leg: u64) {
    let out: Vec<Outgoing> = {
        let mut reg = sh.calls.lock();
        let Some(l) = reg.legs.get_mut(&leg) else {
            if let Some(cancelled) = reg.dialing.get_mut(&leg) {
                *cancelled = true;
            }
            return;
        };
        if l.phase == LegPhase::Confirmed {
            return;
        }
        l.branches
            .iter_mut()
            .filter(|b| b.failed.is_none())
            .filter_map(|b| cancel_branch(sh, b))
            .collect()
    };
    for (req, conn, dest) in out {
        spawn_transact(sh, req, conn, dest, "CANCEL");
    }
}

/// BYE on an answered leg; an unanswered one is cancelled.
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
        let d = l.dialog();
        bye_request(sh, &l).map(|req| (req, d.conn.clone(), d.dest.clone()))
    };
    match bye {
        Some((req, conn, dest)) => spawn_transact(sh, req, conn, dest, "BYE"),
        None => tracing::warn!(leg, "cannot build the BYE to the operator"),
    }
}

fn bye_request(sh: &Shared, l: &AgentLeg) -> Option<Request> {
    let (remote, target, route) = l.remote.clone()?;
    let d = l.dialog();
    let path = DialogPath {
        call_id: l.call_id.clone(),
        local: d.invite.from_header().ok()?.value().to_string(),
        remote,
        target,
        route,
    };
    bye_on(sh, &path, l.local_cseq + 1, &d.conn, &d.contact)
}

/// A BYE in the dialog `path` with `cseq`, going out on `conn`.
pub(crate) fn bye_on(
    sh: &Shared,
    path: &DialogPath,
    cseq: u32,
    conn: &SipConnection,
    contact: &str,
) -> Option<Request> {
    let via = sh
        .endpoint
        .get_via(Some(conn.get_addr().clone()), None)
        .ok()?;
    Some(sipmsg::in_dialog(
        Method::Bye,
        path,
        cseq,
        via,
        &sh.settings.user_agent,
        Some(contact),
        None,
    ))
}

/// Ends the unanswered branches riding on the TCP connection `flow`, which closed: their
/// INVITE transactions stop and the branches count as unreachable.
pub(crate) fn flow_closed(sh: &Shared, flow: FlowId) {
    let reg = sh.calls.lock();
    for b in reg.legs.values().flat_map(|l| &l.branches) {
        if b.flow == Some(flow) && b.phase != LegPhase::Confirmed {
            let _ = b.tu.send(
                rsipstack::transaction::transaction::TransactionEvent::Terminate(b.key.clone()),
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
