//! Operators' own calls: the operator dials out, is busy on that call (not a queue call: no
//! visit, no outcome, no offers meanwhile), and comes back to what they were, with no
//! wrap-up of its own (as Asterisk and FreeSWITCH treat a queue member's own calls).

use crate::event::{AgentState, Cause, EventError};
use crate::ids::{AgentId, CallId};
use crate::rng::Entropy;
use crate::router::{AfterCall, Router, Timer};
use crate::time::Time;

impl<R: Entropy> Router<R> {
    pub(crate) fn on_outbound_started(
        &mut self,
        now: Time,
        a: u32,
        call: CallId,
    ) -> Result<(), EventError> {
        if self.calls.contains_key(&call.0) || self.outbound.contains_key(&call.0) {
            return Err(EventError::DuplicateCall(call));
        }
        // What the operator comes back to when this call ends.
        let next = match &self.agents[a as usize].state {
            AgentState::Available | AgentState::Offered { .. } => AfterCall::Ready,
            AgentState::NotReady { reason } => AfterCall::NotReady(reason.clone()),
            AgentState::WrapUp { until } => AfterCall::WrapUpUntil(*until),
            s @ (AgentState::LoggedOut
            | AgentState::OnCall { .. }
            | AgentState::OutboundCall { .. }) => {
                return Err(EventError::InvalidState {
                    agent: AgentId(a),
                    state: s.kind(),
                });
            }
        };
        // A call ringing here goes back to its queue (and on to someone else), not a miss.
        self.drop_offer(now, a);
        self.agents[a as usize].after_call = next;
        self.outbound.insert(call.0, a);
        self.set_state(now, a, AgentState::OutboundCall { call }, Cause::Request);
        Ok(())
    }

    pub(crate) fn on_outbound_ended(&mut self, now: Time, call: CallId) -> Result<(), EventError> {
        let a = self
            .outbound
            .remove(&call.0)
            .ok_or(EventError::UnknownCall(call))?;
        let next = std::mem::replace(&mut self.agents[a as usize].after_call, AfterCall::WrapUp);
        if self.agents[a as usize].removed {
            self.log_out(now, a, Cause::Reconfigured);
            return Ok(());
        }
        match next {
            AfterCall::LogOut => self.log_out(now, a, Cause::CallEnded),
            AfterCall::NotReady(reason) => {
                self.set_state(now, a, AgentState::NotReady { reason }, Cause::CallEnded)
            }
            AfterCall::WrapUpUntil(until) if until > now => {
                self.set_state(now, a, AgentState::WrapUp { until }, Cause::CallEnded);
                let epoch = self.agents[a as usize].epoch;
                self.push_timer(until, Timer::WrapUp { agent: a, epoch });
            }
            AfterCall::Ready | AfterCall::WrapUpUntil(_) | AfterCall::WrapUp => {
                self.make_available(now, a, Cause::CallEnded)
            }
        }
        Ok(())
    }
}
