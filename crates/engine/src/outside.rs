//! Outside legs: a call passed to a number outside homeline, through the trunk it came in on.
//!
//! Two things start one, both for a PBX leg that is already answered:
//! - **a blind transfer to an outside number**
//!   ([`Input::AgentTransferOut`](crate::Input::AgentTransferOut)): the caller is unbridged and hears music on hold while the target rings; the operator stays on the call
//!   (and in the routing core) until the target answers. Answered: the queue visit ends
//!   answered (the operator goes on to wrap-up), the REFER gets `200` and the caller is
//!   bridged to the target. Failed (`4xx`-`6xx`, no answer within [`OUTSIDE_RING`], no
//!   response): the REFER gets that status and the caller goes back to the operator, as
//!   phones expect from a failed transfer. If the operator hung up meanwhile (most
//!   softphones do right after `202` on a blind transfer), the visit ended then; a failure
//!   then puts the caller back in the queue they came from, as a new visit, so the call is
//!   not lost.
//! - **overflow of an answered call** (max wait, the queue's target is a number): the visit
//!   already ended `overflowed`; the caller keeps music on hold while the target rings and is
//!   bridged to it when it answers. If the target fails, the call ends (BYE): the configured
//!   overflow target was tried and nothing else is configured.
//!
//! Either side hanging up after the answer ends both. The caller hanging up first ends the
//! outside leg (CANCEL or BYE).

use crate::engine::Engine;
use crate::{LegId, Output};
use homeline_routing::{CallId, Entropy, Event, Time};
use std::sync::Arc;
use std::time::Duration;

/// How long an outside target may ring before the attempt fails (`408`).
pub const OUTSIDE_RING: Duration = Duration::from_secs(30);

/// A call's outside leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outside {
    pub(crate) leg: LegId,
    pub(crate) answered: bool,
    /// Why it exists.
    pub(crate) origin: Origin,
    /// The transferring operator's leg while the operator is still on the call.
    pub(crate) transferor: Option<LegId>,
    /// The operator leg whose REFER awaits the result.
    pub(crate) notify: Option<LegId>,
    pub(crate) deadline: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Transfer,
    Overflow,
}

impl<R: Entropy> Engine<R> {
    fn new_outside(
        &mut self,
        call: CallId,
        number: Arc<str>,
        origin: Origin,
        operator: Option<LegId>,
    ) {
        let leg = LegId(self.next_leg);
        self.next_leg += 1;
        let deadline = self.now + OUTSIDE_RING;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.outside = Some(Outside {
            leg,
            answered: false,
            origin,
            transferor: operator,
            notify: operator,
            deadline,
        });
        self.outside.insert(leg, call);
        self.outside_deadlines.insert((deadline, leg));
        // Music on hold for the caller while the target rings.
        self.out.push_back(Output::Requeued { call });
        self.out
            .push_back(Output::CallOutside { call, leg, number });
    }

    /// [`Input::AgentTransferOut`](crate::Input::AgentTransferOut).
    pub(crate) fn transfer_out(&mut self, _now: Time, leg: LegId, number: Arc<str>) {
        // (a connected call is always answered on the PBX side)
        match self.transferable(leg) {
            Some(call) => self.new_outside(call, number, Origin::Transfer, Some(leg)),
            None => self
                .out
                .push_back(Output::TransferResult { leg, status: 503 }),
        }
    }

    /// Max wait overflow of an answered call to the number `target`.
    pub(crate) fn overflow_outside(&mut self, call: CallId, target: Arc<str>) {
        if self.calls.get(&call).is_some_and(|c| c.outside.is_none()) {
            self.new_outside(call, target, Origin::Overflow, None);
        } else {
            self.end_pbx(call, 480);
        }
    }

    /// The call and outside record of outside leg `leg`, if it is still the call's.
    pub(crate) fn outside_of(&self, leg: LegId) -> Option<(CallId, Outside)> {
        let call = *self.outside.get(&leg)?;
        let o = self.calls.get(&call)?.outside?;
        (o.leg == leg).then_some((call, o))
    }

    /// [`Input::OutsideAnswered`](crate::Input::OutsideAnswered).
    pub(crate) fn outside_answered(&mut self, now: Time, leg: LegId) {
        let Some((call, o)) = self.outside_of(leg).filter(|(_, o)| !o.answered) else {
            // Cancelled or timed out meanwhile: the crossing 200 gets a BYE.
            self.outside.remove(&leg);
            self.out.push_back(Output::HangUpAgent { leg });
            return;
        };
        self.outside_deadlines.remove(&(o.deadline, leg));
        if let Some(t) = o.transferor {
            // The transfer is done: the operator's visit ends answered.
            let _ = self.router.handle(now, Event::CallEnded { call });
            self.legs.remove(&t);
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.connected = None;
            c.outside = Some(Outside {
                answered: true,
                transferor: None,
                notify: None,
                ..o
            });
        }
        if let Some(n) = o.notify {
            self.out.push_back(Output::TransferResult {
                leg: n,
                status: 200,
            });
        }
        self.out.push_back(Output::Bridge { call, leg });
    }

    /// [`Input::OutsideFailed`](crate::Input::OutsideFailed).
    pub(crate) fn outside_failed(&mut self, now: Time, leg: LegId, status: u16) {
        let Some((call, o)) = self.outside_of(leg).filter(|(_, o)| !o.answered) else {
            self.outside.remove(&leg);
            return;
        };
        self.outside.remove(&leg);
        self.outside_deadlines.remove(&(o.deadline, leg));
        let queue = match self.calls.get_mut(&call) {
            Some(c) => {
                c.outside = None;
                c.queue
            }
            None => return,
        };
        if let Some(n) = o.notify {
            self.out
                .push_back(Output::TransferResult { leg: n, status });
        }
        match (o.origin, o.transferor) {
            // Back to the operator, who is still on the call.
            (Origin::Transfer, Some(t)) => self.out.push_back(Output::Bridge { call, leg: t }),
            // The operator left: back to the queue, as a new visit.
            (Origin::Transfer, None) => {
                let ev = Event::CallArrived {
                    call,
                    queue,
                    priority: 0,
                    skills: None,
                };
                if self.router.handle(now, ev).is_err() {
                    self.end_pbx(call, 480);
                }
            }
            (Origin::Overflow, _) => self.end_pbx(call, 480),
        }
    }

    /// [`Input::OutsideHungUp`](crate::Input::OutsideHungUp).
    pub(crate) fn outside_hung_up(&mut self, leg: LegId) {
        match self.outside_of(leg) {
            Some((call, o)) if o.answered => {
                self.outside.remove(&leg);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.outside = None;
                }
                self.end_pbx(call, 480);
            }
            // A BYE before the answer is not expected; treat it as a failure.
            Some(_) => self.outside_failed(self.now, leg, 487),
            None => {
                self.outside.remove(&leg);
            }
        }
    }

    /// The PBX side of `call` is gone: ends its outside leg; a waiting REFER gets `status`.
    pub(crate) fn drop_outside(&mut self, call: CallId, status: u16) {
        let Some(o) = self.calls.get_mut(&call).and_then(|c| c.outside.take()) else {
            return;
        };
        self.outside.remove(&o.leg);
        self.outside_deadlines.remove(&(o.deadline, o.leg));
        if let Some(n) = o.notify {
            self.out
                .push_back(Output::TransferResult { leg: n, status });
        }
        // CANCEL when unanswered, else BYE.
        self.out.push_back(Output::HangUpAgent { leg: o.leg });
    }

    /// Outside legs that rang too long: cancelled, failed with `408`.
    pub(crate) fn outside_timeouts(&mut self, now: Time) {
        while let Some(&(t, leg)) = self.outside_deadlines.first() {
            if t > now {
                break;
            }
            self.outside_deadlines.remove(&(t, leg));
            self.out.push_back(Output::CancelAgent { leg });
            self.outside_failed(now, leg, 408);
        }
    }
}
