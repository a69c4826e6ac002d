//! The call-leg interface between the SIP edge and the runtime that runs the B2BUA: what
//! happened ([`EdgeEvent`]s on a bounded channel) and the names of the legs the runtime
//! acts on ([`CallRef`] for the PBX side, [`LegRef`] for an operator's side). The SIP
//! details (transactions, dialogs, tags, NAT) stay in this crate.
//!
//! ## Delivery
//! - `Inbound` is offered without waiting: when the channel is full or closed the INVITE
//!   is answered `503` and counted (`SipStats::overloaded`). This is the edge's admission
//!   control.
//! - Every other event is a consequence of admitted work and is never dropped: the task
//!   that observed it waits for room. Events of one leg come in the order they happened.
//!   The edge never waits for the channel inside a call the runtime makes.
//! - Before the runtime has taken the receiver ([`crate::SipEdge::events`]), no event is
//!   sent and an INVITE for a routed number is answered `480`, as before the call path.

use crate::agent::{AgentLeg, LegPhase};
use crate::edge::{Shared, lock};
use crate::outbound::OutboundFrom;
use crate::pbx::{PbxCall, PbxPhase};
use crate::sipmsg;
use crate::{SipEdge, agent, pbx};
use rsipstack::sip::{Method, Request, SipMessage, StatusCode, StatusCodeKind};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::{Transaction, TransactionEvent};
use rsipstack::transport::{SipAddr, SipConnection};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::mpsc;

/// A call from the PBX (the inbound INVITE and its dialog), named by the edge; unique per
/// process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

/// An operator leg (one INVITE to one operator and its dialog), named by the runtime (the
/// engine's `LegId`); unique among the legs alive at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegRef(pub u64);

/// What happened at the SIP edge, for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeEvent {
    /// An INVITE from trunk `trunk` for `number`, routed to `queue`; `100 Trying` is sent and
    /// the INVITE waits for [`crate::SipEdge::ring_pbx`], `answer_pbx` or `reject_pbx`.
    Inbound {
        call: CallRef,
        trunk: String,
        queue: String,
        number: String,
        /// The caller's user part (From), percent-decoded; `anonymous` when absent. Pass it
        /// to [`crate::SipEdge::invite_agent`]. Personal data: keep it out of logs above
        /// debug (so is `number`).
        caller: String,
        /// The SDP offer (the INVITE's body), if any.
        offer: Option<Vec<u8>>,
        /// Where the INVITE came from.
        source: SocketAddr,
    },
    /// The PBX cancelled the INVITE (answered `487`) or hung up (its BYE answered `200`),
    /// or never acknowledged our `200` (a BYE was sent). Nothing more is sent to it.
    PbxGone { call: CallRef },
    /// The operator's phone rings (first `180`/`183`).
    LegRinging { leg: LegRef },
    /// A provisional response (`183`, or a `180`) carried SDP: early media (ringback, an
    /// announcement) from the far end; reported once per leg, in place of `LegRinging` when
    /// it is the first `18x` (so it also means ringing). Most useful on trunk legs; on
    /// operator legs the runtime may treat it as ringing.
    LegEarlyMedia { leg: LegRef, sdp: Vec<u8> },
    /// The operator answered (`200`, already acknowledged), with its SDP answer. Also after
    /// [`crate::SipEdge::cancel_agent`] when the `200` crossed the CANCEL: hang it up with
    /// [`crate::SipEdge::bye_agent`].
    LegAnswered {
        leg: LegRef,
        answer: Option<Vec<u8>>,
    },
    /// The phone refused with this final status (`486`, `603`, ...; `487` after our
    /// CANCEL). For an operator on several devices: every device failed and one at least
    /// refused; the status is the one `fork::preferred` picks (a `6xx` decline first, then
    /// `486`).
    LegRefused { leg: LegRef, status: u16 },
    /// The operator could not be reached: no registration, a closed connection, no
    /// response (`408`), or `503` (on every device).
    LegUnreachable { leg: LegRef },
    /// The operator hung up an answered leg (its BYE answered `200`).
    LegHungUp { leg: LegRef },
    /// The operator's phone sent a DTMF digit as SIP INFO in the answered leg's dialog
    /// (answered `200`): `digit` is `0`–`9`, `*`, `#` or `A`–`D`; `duration_ms` as the INFO
    /// gave it (`application/dtmf-relay`), if it did.
    LegDtmf {
        leg: LegRef,
        digit: char,
        duration_ms: Option<u32>,
    },
    /// The PBX sent a DTMF digit as SIP INFO in the answered call's dialog; as `LegDtmf`.
    PbxDtmf {
        call: CallRef,
        digit: char,
        duration_ms: Option<u32>,
    },
    /// Operator `user` (authenticated by digest, registered) dialled the feature code of
    /// `feature`; the INVITE is held like an `Inbound` one: answer it (`answer_pbx`, which
    /// it acknowledges), play a short tone and hang up (`bye_pbx`), or refuse it
    /// (`reject_pbx`). `PbxGone` tells if the operator hangs up first.
    FeatureCode {
        call: CallRef,
        user: String,
        feature: crate::Feature,
        /// The SDP offer (the INVITE's body), if any.
        offer: Option<Vec<u8>>,
    },
    /// Registered operator `user` (authenticated by digest) dialled `number` (not a feature
    /// code): an outbound call. The INVITE is held like an `Inbound` one (`ring_pbx`,
    /// `answer_pbx`, `reject_pbx`, `bye_pbx`; `PbxGone` when the operator cancels or hangs
    /// up). Place the trunk leg with [`crate::SipEdge::invite_trunk`].
    Outbound {
        call: CallRef,
        user: String,
        /// Personal data: keep it out of logs above debug.
        number: String,
        /// The SDP offer (the INVITE's body), if any.
        offer: Option<Vec<u8>>,
    },
    /// The PBX sent a re-INVITE with SDP `offer` in the answered call (hold or resume):
    /// `held` when it no longer wants our media (`sendonly`, `inactive` or `c=0.0.0.0`). The
    /// re-INVITE waits for [`crate::SipEdge::answer_pbx_reoffer`] (briefly: without an answer
    /// it gets our last SDP).
    PbxHold {
        call: CallRef,
        held: bool,
        offer: Vec<u8>,
    },
    /// The operator sent a re-INVITE with SDP `offer` in the answered leg; as `PbxHold`,
    /// answered with [`crate::SipEdge::answer_leg_reoffer`].
    LegHold {
        leg: LegRef,
        held: bool,
        offer: Vec<u8>,
    },
    /// The operator transferred the answered leg's call to `queue` (REFER to a number a
    /// trunk routes to it, answered `202`): re-queue the caller, then report the outcome
    /// with [`crate::SipEdge::notify_transfer`] (see `refer`).
    LegTransfer { leg: LegRef, queue: String },
    /// The operator transferred the answered leg's call to the outside `number` (REFER to
    /// a dialable number no trunk routes to a queue, answered `202`): call it through the
    /// call's trunk, then report the outcome with [`crate::SipEdge::notify_transfer`].
    /// Personal data: keep `number` out of logs above debug.
    LegTransferOut { leg: LegRef, number: String },
    /// `user`'s first registration appeared.
    Registered { user: String },
    /// `user`'s last registration went (expired, removed, its connection closed, or its
    /// device stopped answering OPTIONS: see `qualify`).
    Unregistered { user: String },
}

/// Room in the events channel.
pub const EVENTS_CAPACITY: usize = 1024;

/// The sending side of the events channel.
#[derive(Debug)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<EdgeEvent>,
    taken: AtomicBool,
}

impl EventSink {
    pub(crate) fn new() -> (EventSink, mpsc::Receiver<EdgeEvent>) {
        let (tx, rx) = mpsc::channel(EVENTS_CAPACITY);
        let sink = EventSink {
            tx,
            taken: AtomicBool::new(false),
        };
        (sink, rx)
    }

    /// The runtime took the receiver.
    pub(crate) fn mark_taken(&self) {
        self.taken.store(true, Ordering::Release);
    }

    pub(crate) fn taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }

    /// Offers an event without waiting; `false` when the channel is full or closed.
    pub(crate) fn offer(&self, ev: EdgeEvent) -> bool {
        self.tx.try_send(ev).is_ok()
    }

    /// Sends an event, waiting for room; dropped if nobody took or still holds the
    /// receiver.
    pub(crate) async fn send(&self, ev: EdgeEvent) {
        if self.taken() && self.tx.send(ev).await.is_err() {
            tracing::debug!("events receiver dropped");
        }
    }

    /// Room for one event, waited for before taking the lock under which the event is
    /// decided and sent ([`Slot::put`]): events then come in the order of the state changes
    /// they report, whichever task observed them.
    pub(crate) async fn slot(&self) -> Slot<'_> {
        if !self.taken() {
            return Slot(None);
        }
        Slot(self.tx.reserve().await.ok())
    }
}

/// Room reserved for one event (nothing when nobody listens).
#[derive(Debug)]
pub(crate) struct Slot<'a>(Option<mpsc::Permit<'a, EdgeEvent>>);

impl Slot<'_> {
    /// Sends `ev` without waiting.
    pub(crate) fn put(self, ev: EdgeEvent) {
        if let Some(permit) = self.0 {
            permit.send(ev);
        }
    }
}

/// The call-leg API (see the module docs).
impl SipEdge {
    /// The events channel ([`EdgeEvent`], bounded: [`crate::EVENTS_CAPACITY`]); `None`
    /// after the first call. Until it is taken, INVITEs for routed numbers are answered
    /// `480` and no event is produced.
    pub fn events(&mut self) -> Option<mpsc::Receiver<EdgeEvent>> {
        let rx = self.events.take()?;
        self.shared.events.mark_taken();
        Some(rx)
    }

    /// `180 Ringing` to the PBX on an unanswered call.
    pub async fn ring_pbx(&self, call: CallRef) {
        pbx::ring(&self.shared, call.0);
    }

    /// `183 Session Progress` with `sdp` (early media) to the PBX on an unanswered call;
    /// the `200` that answers it later must carry the same SDP (RFC 3261 §13.2.1).
    pub async fn progress_pbx(&self, call: CallRef, sdp: Vec<u8>) {
        pbx::progress(&self.shared, call.0, sdp);
    }

    /// Answers the PBX: `200 OK` with `sdp` (`application/sdp`) and our Contact; the PBX's
    /// ACK confirms the dialog (without one it is ended with a BYE and `PbxGone`).
    pub async fn answer_pbx(&self, call: CallRef, sdp: Vec<u8>) {
        pbx::answer(&self.shared, call.0, sdp);
    }

    /// Refuses an unanswered call with the final `status` (`300..=699`, else `500`); a
    /// `3xx` carries `contact` (a SIP URI) as its Contact.
    pub async fn reject_pbx(&self, call: CallRef, status: u16, contact: Option<String>) {
        pbx::reject(&self.shared, call.0, status, contact.as_deref());
    }

    /// Hangs up an answered call (BYE, sent once the PBX acknowledged our `200`). An
    /// unanswered call is refused `480` instead.
    pub async fn bye_pbx(&self, call: CallRef) {
        pbx::hang_up(&self.shared, call.0);
    }

    /// INVITEs operator `user` with `sdp` on leg `leg`: one INVITE per device the operator
    /// registered from (forking, see `agent` and `fork`), each sent to the address it
    /// registered from and, over TCP, on the connection it registered on. From is
    /// `caller@domain`. Progress comes back as one `LegRinging` (the first device ringing),
    /// `LegAnswered` (the first device answering; the others are cancelled), or, once every
    /// device failed, `LegRefused` or `LegUnreachable` (at once when `user` is not
    /// registered).
    pub async fn invite_agent(&self, leg: LegRef, user: &str, sdp: Vec<u8>, caller: &str) {
        agent::invite(&self.shared, leg.0, user, sdp, caller);
    }

    /// INVITEs `number` through trunk `trunk` (`None`: the first configured one) with `sdp`
    /// on leg `leg` (an operator's outbound call, or a caller transferred or overflowed to an
    /// outside number; see `outbound`): From as [`OutboundFrom`] says, over the trunk's
    /// transport (UDP, or a TCP connection to its PBX). Progress comes back as `LegRinging`,
    /// `LegAnswered`, `LegRefused` (with the PBX's final status) or `LegUnreachable` (no
    /// response, no usable trunk, no TCP connection to the PBX); the PBX hanging up as
    /// `LegHungUp`. `cancel_agent` and `bye_agent` end it.
    pub async fn invite_trunk(
        &self,
        leg: LegRef,
        trunk: Option<&str>,
        number: &str,
        from: OutboundFrom<'_>,
        sdp: Vec<u8>,
    ) {
        crate::outbound::invite(&self.shared, leg.0, trunk, number, from, sdp);
    }

    /// CANCELs an unanswered operator leg (every device still ringing): the `487` comes back
    /// as `LegRefused`. If an operator's `200` crossed the CANCEL, `LegAnswered` comes
    /// instead: send [`SipEdge::bye_agent`].
    pub async fn cancel_agent(&self, leg: LegRef) {
        agent::cancel(&self.shared, leg.0);
    }

    /// Hangs up an answered operator leg (BYE); an unanswered one is cancelled.
    pub async fn bye_agent(&self, leg: LegRef) {
        agent::hang_up(&self.shared, leg.0);
    }

    /// Operators with at least one registration now (to catch up with registrations made
    /// before the events were taken).
    pub fn registered(&self) -> Vec<String> {
        lock(&self.shared.registrar).users()
    }
}

/// Which leg a dialog (by Call-ID) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Party {
    Pbx(u64),
    Agent(u64),
}

/// The live legs, and an index from Call-ID to leg for in-dialog requests.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub pbx: HashMap<u64, PbxCall>,
    pub legs: HashMap<u64, AgentLeg>,
    pub by_call_id: HashMap<String, Party>,
    /// Outbound legs still connecting to their trunk (`true`: cancelled meanwhile); see
    /// `outbound`.
    pub dialing: HashMap<u64, bool>,
}

impl Registry {
    pub(crate) fn remove_pbx(&mut self, id: u64) -> Option<PbxCall> {
        let call = self.pbx.remove(&id)?;
        if self.by_call_id.get(&call.call_id) == Some(&Party::Pbx(id)) {
            self.by_call_id.remove(&call.call_id);
        }
        Some(call)
    }

    pub(crate) fn remove_leg(&mut self, id: u64) -> Option<AgentLeg> {
        let leg = self.legs.remove(&id)?;
        if self.by_call_id.get(&leg.call_id) == Some(&Party::Agent(id)) {
            self.by_call_id.remove(&leg.call_id);
        }
        Some(leg)
    }
}

/// The registry behind one lock (each critical section is a lookup or an update, never an
/// await), and the counter naming PBX calls.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    registry: Mutex<Registry>,
    next: AtomicU64,
    /// Blind transfers waiting for the runtime's result (see [`crate::refer`]).
    pub(crate) transfers: crate::refer::Transfers,
    /// Re-INVITEs waiting for the runtime's SDP answer (see [`crate::hold`]).
    pub(crate) reoffers: crate::hold::Reoffers,
}

impl Calls {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// A new PBX call name.
    pub(crate) fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ends every transaction a leg task waits on (shutdown).
    pub(crate) fn terminate_all(&self) {
        let reg = self.lock();
        for c in reg.pbx.values() {
            let _ = c.tu.send(TransactionEvent::Terminate(c.key.clone()));
        }
        for b in reg.legs.values().flat_map(|l| &l.branches) {
            let _ = b.tu.send(TransactionEvent::Terminate(b.key.clone()));
        }
    }
}

/// The leg whose dialog `req` belongs to: same Call-ID, our tag in To, theirs in From.
pub(crate) fn match_dialog(reg: &Registry, req: &Request) -> Option<Party> {
    use rsipstack::sip::prelude::HeadersExt;
    let call_id = req.call_id_header().ok()?.value();
    let party = *reg.by_call_id.get(call_id)?;
    let (ours, theirs) = match party {
        Party::Pbx(id) => {
            let c = reg.pbx.get(&id)?;
            (c.local_tag.as_str(), Some(c.remote_tag.as_str()))
        }
        Party::Agent(id) => {
            let l = reg.legs.get(&id)?;
            (l.local_tag.as_str(), l.remote_tag.as_deref())
        }
    };
    let (from_tag, to_tag) = sipmsg::tags(req);
    (to_tag.as_deref() == Some(ours) && from_tag.is_some() && from_tag.as_deref() == theirs)
        .then_some(party)
}

/// Answers a request inside a leg's dialog: a BYE gets `200` and the runtime is told
/// (`PbxGone`, `LegHungUp`); a re-INVITE with an offer (hold, resume) is answered with the
/// runtime's SDP ([`crate::hold`]), one without gets `200` with our last SDP (`491` before the
/// dialog is confirmed). `None`: no such dialog, the caller answers `481`.
pub(crate) async fn in_dialog(tx: &mut Transaction, sh: &Shared) -> Option<rsipstack::Result<()>> {
    match tx.original.method {
        Method::Bye => {
            let slot = sh.events.slot().await;
            {
                let mut reg = sh.calls.lock();
                let event = match match_dialog(&reg, &tx.original)? {
                    Party::Pbx(id) => {
                        let call = reg.remove_pbx(id)?;
                        (!call.bye_pending).then_some(EdgeEvent::PbxGone { call: CallRef(id) })
                    }
                    Party::Agent(id) => {
                        if reg.legs.get(&id)?.phase != LegPhase::Confirmed {
                            return None;
                        }
                        reg.remove_leg(id);
                        Some(EdgeEvent::LegHungUp { leg: LegRef(id) })
                    }
                };
                if let Some(ev) = event {
                    tracing::debug!(?ev, "BYE received");
                    slot.put(ev);
                }
            }
            Some(tx.reply(StatusCode::OK).await)
        }
        Method::Invite if crate::hold::has_offer(&tx.original) => {
            crate::hold::reinvite(tx, sh).await
        }
        Method::Invite => {
            let resp = {
                let reg = sh.calls.lock();
                let confirmed = match match_dialog(&reg, &tx.original)? {
                    Party::Pbx(id) => reg
                        .pbx
                        .get(&id)
                        .filter(|c| c.phase == PbxPhase::Confirmed)
                        .map(|c| (c.local_sdp.clone(), c.contact.clone())),
                    Party::Agent(id) => reg
                        .legs
                        .get(&id)
                        .filter(|l| l.phase == LegPhase::Confirmed)
                        .map(|l| (l.local_sdp.clone(), l.dialog().contact.clone())),
                };
                let ua = &sh.settings.user_agent;
                match confirmed {
                    Some((sdp, contact)) => {
                        sipmsg::response(&tx.original, 200, "", ua, Some(&contact), Some(&sdp))
                    }
                    None => sipmsg::response(&tx.original, 491, "", ua, None, None),
                }
            };
            Some(tx.respond(resp).await)
        }
        _ => None,
    }
}

/// Sends `req` as a client non-INVITE transaction over `conn` to `dest`, and waits for its
/// final status (`None`: none came).
pub(crate) async fn transact(
    ep: EndpointInnerRef,
    req: Request,
    conn: SipConnection,
    dest: SipAddr,
) -> Option<u16> {
    let key = TransactionKey::from_request(&req, TransactionRole::Client).ok()?;
    let mut tx = Transaction::new_client(key, req, ep, Some(conn));
    tx.destination = Some(dest);
    tx.send().await.ok()?;
    while let Some(msg) = tx.receive().await {
        if let SipMessage::Response(r) = msg
            && r.status_code.kind() != StatusCodeKind::Provisional
        {
            return Some(r.status_code.code());
        }
    }
    None
}
