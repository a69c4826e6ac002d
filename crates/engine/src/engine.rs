//! The engine: calls, their legs, and the translation of routing commands.

use homeline_routing::{
    AgentId, AgentState, CallId, CallOutcome, Command, Entropy, Event, OverflowTarget, QueueId,
    RejectReason, Router, Time,
};
use rustc_hash::FxHashMap;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// An operator leg (one INVITE towards one operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LegId(pub u64);

/// When the PBX leg is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AnswerMode {
    /// At once, with music on hold while the call waits.
    #[default]
    OnEnqueue,
    /// Only when an operator answers; the PBX hears ringing (`180`) meanwhile.
    OnAgent,
}

/// What happened, for the engine to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A PBX INVITE accepted by the SIP edge for `queue` (`100 Trying` already sent).
    Inbound {
        call: CallId,
        queue: QueueId,
        priority: u8,
        answer: AnswerMode,
    },
    /// The PBX cancelled the INVITE or hung up.
    PbxGone { call: CallId },
    /// The operator's phone rings (`180`/`183`).
    AgentRinging { leg: LegId },
    /// The operator answered (`200`).
    AgentAnswered { leg: LegId },
    /// The operator declined (`486`, `603`, ...): counts as a missed offer.
    AgentRefused { leg: LegId },
    /// The operator could not be reached (no binding, timeout, transport error): the offer
    /// moves on at once and the operator is made Not Ready.
    AgentUnreachable { leg: LegId },
    /// The operator hung up a connected call.
    AgentHungUp { leg: LegId },
    /// The operator's phone registered (`ready`: go Ready at once).
    AgentOnline { agent: AgentId, ready: bool },
    /// The operator's last registration vanished or expired.
    AgentOffline { agent: AgentId },
    /// An operator asked for a state (console, feature code).
    AgentRequest(Event),
    /// The operator dialled out on their own: `call` (an id none of the engine's calls has)
    /// stays outside the engine, the routing core has the operator busy on it. A call
    /// ringing at their phone is withdrawn, its leg cancelled, and offered on.
    OutboundStarted { agent: AgentId, call: CallId },
    /// The operator's own call `call` ended: they go back to what they were.
    OutboundEnded { call: CallId },
    /// The operator of the connected leg `leg` transferred the call to `queue` (blind
    /// transfer, REFER): the call is re-queued, the PBX leg stays answered.
    AgentTransfer { leg: LegId, queue: QueueId },
    /// The operator of the connected leg `leg` transferred the call to an outside `number`
    /// (blind transfer, REFER): an outside leg is placed (see [`Output::CallOutside`]).
    AgentTransferOut { leg: LegId, number: Arc<str> },
    /// The outside leg answered (`200`).
    OutsideAnswered { leg: LegId },
    /// The outside leg failed with `status` (a final response, `408` no answer, `480`
    /// unreachable).
    OutsideFailed { leg: LegId, status: u16 },
    /// The answered outside leg hung up.
    OutsideHungUp { leg: LegId },
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Answer the PBX leg (`200` with homeline's SDP); `moh`: play music on hold until bridged.
    AnswerPbx { call: CallId, moh: bool },
    /// Send `180 Ringing` on the PBX leg.
    RingPbx { call: CallId },
    /// Refuse the unanswered PBX leg with `status`; a `3xx` carries `target` as Contact.
    RejectPbx {
        call: CallId,
        status: u16,
        target: Option<Arc<str>>,
    },
    /// Hang up the answered PBX leg (BYE).
    HangUpPbx { call: CallId },
    /// INVITE `agent` for `call` on a new leg; ring no longer than `deadline`.
    CallAgent {
        call: CallId,
        leg: LegId,
        agent: AgentId,
        deadline: Time,
    },
    /// CANCEL the unanswered operator leg.
    CancelAgent { leg: LegId },
    /// BYE the answered operator leg.
    HangUpAgent { leg: LegId },
    /// Connect the call's PBX media to the operator leg's media.
    Bridge { call: CallId, leg: LegId },
    /// The call is over on the PBX side: release its media and state.
    CallDone { call: CallId },
    /// An operator's state changed.
    AgentState { agent: AgentId, state: AgentState },
    /// A queue visit ended (for the call record and metrics).
    Record(CallOutcome),
    /// The answered call left its operator and waits in a queue again (transfer): stop
    /// relaying and play music on hold to the PBX until `Bridge`.
    Requeued { call: CallId },
    /// The outcome of `AgentTransfer` or `AgentTransferOut` on `leg`, as a SIP status for
    /// the REFER's NOTIFY: a `2xx`, the call left the operator and the leg is no longer the
    /// engine's (the runtime reports success to the operator and ends the leg if the
    /// operator does not); else the call stays with the operator (or, for an outside target,
    /// whatever [`Input::OutsideFailed`] says).
    TransferResult { leg: LegId, status: u16 },
    /// Place outside leg `leg` for `call` to `number` through the call's trunk, with the
    /// operator side's media (the PBX side hears music on hold meanwhile): progress comes
    /// back as `Outside*` inputs. An unanswered leg is ended with `CancelAgent`, an
    /// answered one with `HangUpAgent`; `Bridge` connects it.
    CallOutside {
        call: CallId,
        leg: LegId,
        number: Arc<str>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegState {
    Inviting,
    Ringing,
    /// CANCEL sent; waiting for the final response.
    Cancelling,
    Connected,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg {
    pub(crate) call: CallId,
    pub(crate) agent: AgentId,
    pub(crate) state: LegState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pbx {
    /// Not answered yet.
    Proceeding,
    Answered,
}

#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) pbx: Pbx,
    /// The connected operator leg, if any.
    pub(crate) connected: Option<LegId>,
    /// The queue the call was last in (for a return after a failed outside transfer).
    pub(crate) queue: QueueId,
    /// The outside leg (transfer or overflow to a number), while there is one.
    pub(crate) outside: Option<crate::outside::Outside>,
}

/// The call path. See the crate documentation.
#[derive(Debug)]
pub struct Engine<R> {
    pub(crate) router: Router<R>,
    pub(crate) calls: FxHashMap<CallId, Call>,
    pub(crate) legs: FxHashMap<LegId, Leg>,
    /// Outside legs, to their calls.
    pub(crate) outside: FxHashMap<LegId, CallId>,
    /// Unanswered outside legs' no-answer deadlines.
    pub(crate) outside_deadlines: BTreeSet<(Time, LegId)>,
    pub(crate) next_leg: u64,
    pub(crate) out: VecDeque<Output>,
    /// The `now` of the input being applied.
    pub(crate) now: Time,
}

impl<R: Entropy> Engine<R> {
    /// An engine around `router`.
    pub fn new(router: Router<R>) -> Self {
        Engine {
            router,
            calls: FxHashMap::default(),
            legs: FxHashMap::default(),
            outside: FxHashMap::default(),
            outside_deadlines: BTreeSet::new(),
            next_leg: 1,
            out: VecDeque::new(),
            now: Time::ZERO,
        }
    }

    /// The routing core, for lookups and statistics.
    pub fn router(&self) -> &Router<R> {
        &self.router
    }

    /// Whether `leg` waits for its answer: an operator leg still inviting or ringing, or an
    /// outside leg not answered yet. A `200` on any other leg (cancelled, lost a ring-all,
    /// timed out) is hung up by the engine, so its SDP must not be used for the call's media.
    pub fn awaits_answer(&self, leg: LegId) -> bool {
        let agent = self
            .legs
            .get(&leg)
            .is_some_and(|l| matches!(l.state, LegState::Inviting | LegState::Ringing));
        agent || self.outside_of(leg).is_some_and(|(_, o)| !o.answered)
    }

    /// Whether `leg` is the outside leg of a live call (ringing or answered).
    pub fn is_outside(&self, leg: LegId) -> bool {
        self.outside_of(leg).is_some()
    }

    /// Calls the engine holds.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next deadline (the routing core's, or an outside leg's no-answer deadline).
    pub fn poll_timeout(&self) -> Option<Time> {
        let outside = self.outside_deadlines.first().map(|&(t, _)| t);
        match (self.router.poll_timeout(), outside) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires deadlines up to `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        self.router.handle_timeout(now);
        self.drain_router();
        self.outside_timeouts(now);
        self.drain_router();
    }

    /// Applies one input.
    pub fn handle(&mut self, now: Time, input: Input) {
        self.now = now;
        match input {
            Input::Inbound {
                call,
                queue,
                priority,
                answer,
            } => {
                if self.calls.contains_key(&call) {
                    return;
                }
                self.calls.insert(
                    call,
                    Call {
                        pbx: Pbx::Proceeding,
                        connected: None,
                        queue,
                        outside: None,
                    },
                );
                let ev = Event::CallArrived {
                    call,
                    queue,
                    priority,
                    skills: None,
                };
                if self.router.handle(now, ev).is_err() {
                    // Unknown queue: the edge routed to a queue the core does not have.
                    self.end_pbx(call, 404);
                }
                // A call the queue rejects at once is refused, never answered.
                self.drain_router();
                if let Some(c) = self.calls.get_mut(&call)
                    && c.pbx == Pbx::Proceeding
                {
                    match answer {
                        AnswerMode::OnEnqueue => {
                            c.pbx = Pbx::Answered;
                            self.out.push_back(Output::AnswerPbx { call, moh: true });
                        }
                        AnswerMode::OnAgent => self.out.push_back(Output::RingPbx { call }),
                    }
                }
            }
            Input::PbxGone { call } => {
                // The PBX side is gone: nothing more to send it.
                self.drop_outside(call, 487);
                if let Some(c) = self.calls.get(&call) {
                    let connected = c.connected;
                    let _ = self.router.handle(now, Event::CallerHungUp { call });
                    if let Some(leg) = connected {
                        self.legs.remove(&leg);
                        self.out.push_back(Output::HangUpAgent { leg });
                    }
                    self.finish(call);
                }
            }
            Input::AgentRinging { leg } => {
                if let Some(l) = self.legs.get_mut(&leg)
                    && l.state == LegState::Inviting
                {
                    l.state = LegState::Ringing;
                }
            }
            Input::AgentAnswered { leg } => self.answered(now, leg),
            Input::AgentRefused { leg } => {
                if let Some(l) = self.legs.remove(&leg)
                    && matches!(l.state, LegState::Inviting | LegState::Ringing)
                {
                    let ev = Event::OfferDeclined {
                        call: l.call,
                        agent: l.agent,
                    };
                    let _ = self.router.handle(now, ev);
                }
            }
            Input::AgentUnreachable { leg } => {
                if let Some(l) = self.legs.remove(&leg)
                    && matches!(l.state, LegState::Inviting | LegState::Ringing)
                {
                    let _ = self
                        .router
                        .handle(now, Event::ConnectionLost { agent: l.agent });
                }
            }
            Input::AgentHungUp { leg } => {
                if let Some(l) = self.legs.remove(&leg)
                    && l.state == LegState::Connected
                {
                    let _ = self.router.handle(now, Event::CallEnded { call: l.call });
                    let mut waits_outside = false;
                    if let Some(c) = self.calls.get_mut(&l.call) {
                        c.connected = None;
                        // A transfer to an outside number goes on without its operator.
                        if let Some(o) = &mut c.outside {
                            o.transferor = None;
                            waits_outside = true;
                        }
                    }
                    if !waits_outside {
                        self.end_pbx(l.call, 480);
                    }
                }
            }
            Input::AgentOnline { agent, ready } => {
                let _ = self.router.handle(now, Event::Login { agent, ready });
            }
            Input::AgentOffline { agent } => {
                let _ = self.router.handle(now, Event::ConnectionLost { agent });
            }
            Input::AgentRequest(ev) => {
                let _ = self.router.handle(now, ev);
            }
            Input::OutboundStarted { agent, call } => {
                if !self.calls.contains_key(&call) {
                    let _ = self
                        .router
                        .handle(now, Event::OutboundStarted { agent, call });
                }
            }
            Input::OutboundEnded { call } => {
                let _ = self.router.handle(now, Event::OutboundEnded { call });
            }
            Input::AgentTransfer { leg, queue } => self.transfer(now, leg, queue),
            Input::AgentTransferOut { leg, number } => self.transfer_out(now, leg, number),
            Input::OutsideAnswered { leg } => self.outside_answered(now, leg),
            Input::OutsideFailed { leg, status } => self.outside_failed(now, leg, status),
            Input::OutsideHungUp { leg } => self.outside_hung_up(leg),
        }
        self.drain_router();
    }

    fn answered(&mut self, now: Time, leg: LegId) {
        let Some(l) = self.legs.get(&leg).copied() else {
            // A leg we no longer know answered: hang it up.
            self.out.push_back(Output::HangUpAgent { leg });
            return;
        };
        match l.state {
            LegState::Inviting | LegState::Ringing => {
                let ev = Event::OfferAccepted {
                    call: l.call,
                    agent: l.agent,
                };
                match self.router.handle(now, ev) {
                    Ok(()) => {
                        if let Some(x) = self.legs.get_mut(&leg) {
                            x.state = LegState::Connected;
                        }
                    }
                    // Too late (the caller hung up, or someone else answered first).
                    Err(_) => {
                        self.legs.remove(&leg);
                        self.out.push_back(Output::HangUpAgent { leg });
                    }
                }
            }
            // The CANCEL crossed the 200: this operator lost the call.
            LegState::Cancelling => {
                self.legs.remove(&leg);
                self.out.push_back(Output::HangUpAgent { leg });
            }
            LegState::Connected => {}
        }
    }

    /// Blind transfer of the call connected on `leg` to `queue`: its visit ends answered (the
    /// operator goes on to wrap-up), the call waits in `queue` with music on hold and is
    /// offered anew; the leg is forgotten (its hang-up no longer ends the call).
    fn transfer(&mut self, now: Time, leg: LegId, queue: QueueId) {
        let Some(call) = self.transferable(leg) else {
            self.out
                .push_back(Output::TransferResult { leg, status: 503 });
            return;
        };
        let ev = Event::Transfer {
            call,
            queue,
            priority: None,
        };
        if self.router.handle(now, ev).is_err() {
            self.out
                .push_back(Output::TransferResult { leg, status: 503 });
            return;
        }
        self.legs.remove(&leg);
        if let Some(c) = self.calls.get_mut(&call) {
            c.connected = None;
            c.queue = queue;
        }
        // Before the router's commands: music on hold first, then any new offer.
        self.out.push_back(Output::Requeued { call });
        self.out
            .push_back(Output::TransferResult { leg, status: 200 });
    }

    /// The call connected on operator leg `leg`, if it can be transferred: the leg is the
    /// call's connected one and no transfer is in progress.
    pub(crate) fn transferable(&self, leg: LegId) -> Option<CallId> {
        let call = self
            .legs
            .get(&leg)
            .filter(|l| l.state == LegState::Connected)?
            .call;
        self.calls
            .get(&call)
            .is_some_and(|c| c.outside.is_none() && c.connected == Some(leg))
            .then_some(call)
    }

    /// Ends the PBX side of `call`: a final response if it was never answered, else BYE.
    pub(crate) fn end_pbx(&mut self, call: CallId, status: u16) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match c.pbx {
            Pbx::Proceeding => self.out.push_back(Output::RejectPbx {
                call,
                status,
                target: None,
            }),
            Pbx::Answered => self.out.push_back(Output::HangUpPbx { call }),
        }
        self.finish(call);
    }

    pub(crate) fn finish(&mut self, call: CallId) {
        if self.calls.remove(&call).is_some() {
            self.out.push_back(Output::CallDone { call });
        }
    }

    fn leg_of(&self, call: CallId, agent: AgentId) -> Option<LegId> {
        self.legs
            .iter()
            .find(|(_, l)| l.call == call && l.agent == agent && l.state != LegState::Cancelling)
            .map(|(id, _)| *id)
    }

    /// Translates every pending routing command.
    fn drain_router(&mut self) {
        while let Some(cmd) = self.router.poll_command() {
            match cmd {
                Command::Offer {
                    call,
                    agent,
                    deadline,
                } => {
                    if !self.calls.contains_key(&call) {
                        continue;
                    }
                    let leg = LegId(self.next_leg);
                    self.next_leg += 1;
                    self.legs.insert(
                        leg,
                        Leg {
                            call,
                            agent,
                            state: LegState::Inviting,
                        },
                    );
                    self.out.push_back(Output::CallAgent {
                        call,
                        leg,
                        agent,
                        deadline,
                    });
                }
                Command::Withdraw { call, agent, .. } => {
                    let Some(leg) = self.leg_of(call, agent) else {
                        continue;
                    };
                    if let Some(l) = self.legs.get_mut(&leg)
                        && matches!(l.state, LegState::Inviting | LegState::Ringing)
                    {
                        l.state = LegState::Cancelling;
                        self.out.push_back(Output::CancelAgent { leg });
                    }
                }
                Command::Connected { call, agent } => {
                    let Some(leg) = self.leg_of(call, agent) else {
                        continue;
                    };
                    let Some(c) = self.calls.get_mut(&call) else {
                        continue;
                    };
                    c.connected = Some(leg);
                    if c.pbx == Pbx::Proceeding {
                        c.pbx = Pbx::Answered;
                        self.out.push_back(Output::AnswerPbx { call, moh: false });
                    }
                    self.out.push_back(Output::Bridge { call, leg });
                }
                Command::Overflow { call, target } => match target {
                    // The core moved the call to another queue itself.
                    OverflowTarget::Queue(q) => {
                        if let Some(c) = self.calls.get_mut(&call) {
                            c.queue = q;
                        }
                    }
                    OverflowTarget::External(t) => self.overflow_out(call, Some(t)),
                    OverflowTarget::None => self.overflow_out(call, None),
                },
                Command::Reject { call, reason } => {
                    let status = match reason {
                        RejectReason::NoAgents => 480,
                        RejectReason::QueueClosed => 404,
                    };
                    self.end_pbx(call, status);
                }
                Command::AgentStateChanged { agent, to, .. } => {
                    self.out.push_back(Output::AgentState { agent, state: to });
                }
                Command::Outcome(o) => self.out.push_back(Output::Record(o)),
            }
        }
    }

    /// Overflow out of homeline: redirect an unanswered call (`302` to `target`) or refuse
    /// it (`480`); an answered one is passed to `target` on an outside leg (see
    /// [`Self::overflow_outside`]), or hung up when there is no target.
    fn overflow_out(&mut self, call: CallId, target: Option<Arc<str>>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match (c.pbx, target) {
            (Pbx::Proceeding, Some(t)) => {
                self.out.push_back(Output::RejectPbx {
                    call,
                    status: 302,
                    target: Some(t),
                });
                self.finish(call);
            }
            (Pbx::Answered, Some(t)) => self.overflow_outside(call, t),
            (_, None) => self.end_pbx(call, 480),
        }
    }
}
