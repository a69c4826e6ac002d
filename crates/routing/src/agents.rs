//! Operator state transitions and the Available indexes that follow them.

use crate::config::{NotReadyReason, Strategy, WhenEmpty};
use crate::event::{AgentState, Cause, Command, EventError, RejectReason, WithdrawReason};
use crate::ids::AgentId;
use crate::keys::{AgentFacts, available_key};
use crate::keys::{key_agent, key_tier};
use crate::rng::Entropy;
use crate::router::{AfterCall, AgentRec, Router};
use crate::time::Time;

pub(crate) fn facts(a: &AgentRec) -> AgentFacts {
    AgentFacts {
        available_since: a.since.as_nanos(),
        order: a.order,
        calls: a.calls,
        talk_secs: a.talk.as_secs(),
    }
}

/// Whether `key` in the Available index of a queue with `strategy` is right: its operator is
/// Available and the key is the one it would get now (checked by the invariants).
pub(crate) fn live(strategy: Strategy, agents: &[AgentRec], key: u128) -> bool {
    let a = key_agent(key);
    let agent = &agents[a as usize];
    agent.state == AgentState::Available
        && available_key(strategy, key_tier(key), a, &facts(agent)) == key
}

impl<R: Entropy> Router<R> {
    /// Moves operator `a` to `to`, keeping counts and indexes right and reporting it.
    pub(crate) fn set_state(&mut self, now: Time, a: u32, to: AgentState, cause: Cause) {
        if self.agents[a as usize].state == AgentState::Available {
            self.index(a, false);
        }
        let agent = &mut self.agents[a as usize];
        let from = std::mem::replace(&mut agent.state, to.clone());
        agent.since = now;
        agent.epoch = agent.epoch.wrapping_add(1);
        let (was_in, is_in) = (from != AgentState::LoggedOut, to != AgentState::LoggedOut);
        if was_in != is_in {
            for m in &agent.members {
                let q = &mut self.queues[m.queue as usize];
                if is_in {
                    q.logged_in += 1;
                } else {
                    q.logged_in -= 1;
                }
            }
        }
        if to == AgentState::Available {
            self.index(a, true);
        }
        self.out.push_back(Command::AgentStateChanged {
            agent: AgentId(a),
            from,
            to,
            cause,
            at: now,
        });
    }

    /// Inserts (or removes) Available operator `a` in the indexes of its queues.
    pub(crate) fn index(&mut self, a: u32, insert: bool) {
        let Router { agents, queues, .. } = self;
        let agent = &agents[a as usize];
        let f = facts(agent);
        for m in &agent.members {
            let q = &mut queues[m.queue as usize];
            let key = available_key(q.strategy, m.penalty, a, &f);
            if insert {
                q.available.insert(key);
            } else {
                q.available.remove(&key);
            }
        }
    }

    /// Makes `a` Available and looks for a call for it.
    pub(crate) fn make_available(&mut self, now: Time, a: u32, cause: Cause) {
        self.set_state(now, a, AgentState::Available, cause);
        self.dispatch_agent(now, a);
    }

    /// Takes `a` out of whatever offer it is ringing with (not as a miss), returning the call
    /// to its queue if nobody else is ringing.
    pub(crate) fn drop_offer(&mut self, now: Time, a: u32) {
        if let AgentState::Offered { call, .. } = self.agents[a as usize].state {
            self.retract(now, call.0, a, WithdrawReason::AgentUnavailable);
        }
    }

    /// A login, or the operator's device back after its connection was lost (a softphone
    /// registering again after its registration expired or its TCP connection closed): both
    /// start afresh; back during a call (Ready on registration), the call ends as if the
    /// connection had not been lost. Any other state is kept (a second device, a refresh).
    pub(crate) fn on_login(&mut self, now: Time, a: u32, ready: bool) -> Result<(), EventError> {
        let back = AgentState::NotReady {
            reason: NotReadyReason::ConnectionLost,
        };
        // Back during a call: the Not Ready the loss left for after the call is undone when
        // the phone comes back Ready (wrap-up after a queue call, Ready after an own one).
        let lost = AfterCall::NotReady(NotReadyReason::ConnectionLost);
        let agent = &mut self.agents[a as usize];
        match agent.state {
            AgentState::OnCall { .. } if ready && agent.after_call == lost => {
                agent.after_call = AfterCall::WrapUp;
                return Ok(());
            }
            AgentState::OutboundCall { .. } if ready && agent.after_call == lost => {
                agent.after_call = AfterCall::Ready;
                return Ok(());
            }
            _ => {}
        }
        let state = &agent.state;
        if *state != AgentState::LoggedOut && *state != back {
            return Ok(());
        }
        self.agents[a as usize].misses = 0;
        if ready {
            self.make_available(now, a, Cause::Request);
        } else {
            let to = AgentState::NotReady {
                reason: NotReadyReason::LoggedIn,
            };
            self.set_state(now, a, to, Cause::Request);
        }
        Ok(())
    }

    pub(crate) fn on_ready(&mut self, now: Time, a: u32) -> Result<(), EventError> {
        match &self.agents[a as usize].state {
            AgentState::Available => Ok(()),
            AgentState::LoggedOut | AgentState::NotReady { .. } | AgentState::WrapUp { .. } => {
                self.agents[a as usize].misses = 0;
                self.make_available(now, a, Cause::Request);
                Ok(())
            }
            AgentState::OutboundCall { .. } => {
                self.agents[a as usize].misses = 0;
                self.after_this_call(a, AfterCall::Ready);
                Ok(())
            }
            s @ (AgentState::Offered { .. } | AgentState::OnCall { .. }) => {
                Err(EventError::InvalidState {
                    agent: AgentId(a),
                    state: s.kind(),
                })
            }
        }
    }

    pub(crate) fn on_not_ready(
        &mut self,
        now: Time,
        a: u32,
        reason: NotReadyReason,
    ) -> Result<(), EventError> {
        match self.agents[a as usize].state {
            AgentState::OnCall { .. } | AgentState::OutboundCall { .. } => {
                self.after_this_call(a, AfterCall::NotReady(reason))
            }
            AgentState::Offered { .. } => {
                self.drop_offer(now, a);
                self.set_state(now, a, AgentState::NotReady { reason }, Cause::Request);
            }
            _ => self.set_state(now, a, AgentState::NotReady { reason }, Cause::Request),
        }
        Ok(())
    }

    /// Sets what `a` does when its call ends; a pending logout is never overridden.
    pub(crate) fn after_this_call(&mut self, a: u32, next: AfterCall) {
        let agent = &mut self.agents[a as usize];
        if agent.after_call != AfterCall::LogOut {
            agent.after_call = next;
        }
    }

    pub(crate) fn on_logout(&mut self, now: Time, a: u32) -> Result<(), EventError> {
        match self.agents[a as usize].state {
            AgentState::LoggedOut => {}
            AgentState::OnCall { .. } | AgentState::OutboundCall { .. } => {
                self.agents[a as usize].after_call = AfterCall::LogOut
            }
            _ => self.log_out(now, a, Cause::Request),
        }
        Ok(())
    }

    /// Logs `a` out now (dropping any offer), forgets it if it was removed from the
    /// configuration, and applies the queues' "reject when empty" policy.
    pub(crate) fn log_out(&mut self, now: Time, a: u32, cause: Cause) {
        self.drop_offer(now, a);
        if self.agents[a as usize].state != AgentState::LoggedOut {
            self.set_state(now, a, AgentState::LoggedOut, cause);
        }
        let members = if self.agents[a as usize].removed {
            let members = std::mem::take(&mut self.agents[a as usize].members);
            for m in &members {
                self.queues[m.queue as usize].members -= 1;
            }
            members
        } else {
            self.agents[a as usize].members.clone()
        };
        for m in members {
            self.reject_if_empty(now, m.queue);
        }
    }

    /// With `when_empty = reject`, a queue nobody is logged in to rejects its waiting calls.
    fn reject_if_empty(&mut self, now: Time, q: u32) {
        let queue = &self.queues[q as usize];
        if queue.params.when_empty != WhenEmpty::Reject || queue.logged_in() > 0 {
            return;
        }
        while let Some(key) = self.queues[q as usize].waiting.pop_first() {
            let call = crate::keys::key_call(key);
            self.reject(now, call, RejectReason::NoAgents);
        }
    }

    pub(crate) fn on_wrap_up_done(&mut self, now: Time, a: u32) -> Result<(), EventError> {
        let agent = &mut self.agents[a as usize];
        match agent.state {
            AgentState::WrapUp { .. } => self.make_available(now, a, Cause::Request),
            // The wrap-up an own call interrupted is done: Available after that call.
            AgentState::OutboundCall { .. } => {
                if matches!(agent.after_call, AfterCall::WrapUpUntil(_)) {
                    agent.after_call = AfterCall::Ready;
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn on_wrap_up_timeout(&mut self, now: Time, a: u32, epoch: u32) {
        let agent = &self.agents[a as usize];
        if agent.epoch == epoch && matches!(agent.state, AgentState::WrapUp { .. }) {
            self.make_available(now, a, Cause::WrapUpTimeout);
        }
    }

    pub(crate) fn on_connection_lost(&mut self, now: Time, a: u32) -> Result<(), EventError> {
        let reason = NotReadyReason::ConnectionLost;
        match self.agents[a as usize].state {
            AgentState::LoggedOut => {}
            AgentState::OnCall { .. } | AgentState::OutboundCall { .. } => {
                self.after_this_call(a, AfterCall::NotReady(reason))
            }
            _ => {
                self.drop_offer(now, a);
                self.set_state(
                    now,
                    a,
                    AgentState::NotReady { reason },
                    Cause::ConnectionLost,
                );
            }
        }
        Ok(())
    }

    /// What operator `a` does after a call of queue `q` ends (or after a miss sets it free).
    pub(crate) fn after_call(&mut self, now: Time, a: u32, q: u32) {
        let next = std::mem::replace(&mut self.agents[a as usize].after_call, AfterCall::WrapUp);
        if self.agents[a as usize].removed {
            self.log_out(now, a, crate::event::Cause::Reconfigured);
            return;
        }
        match next {
            AfterCall::LogOut => self.log_out(now, a, Cause::CallEnded),
            AfterCall::NotReady(reason) => {
                self.set_state(now, a, AgentState::NotReady { reason }, Cause::CallEnded)
            }
            // Set only during an own call, reset when it ends: not seen here; the queue's
            // wrap-up would be the safe reading of either.
            AfterCall::WrapUp | AfterCall::Ready | AfterCall::WrapUpUntil(_) => {
                let wrap = self.queues[q as usize].params.wrap_up;
                if wrap.is_zero() {
                    self.make_available(now, a, Cause::CallEnded);
                } else {
                    let until = now + wrap;
                    self.set_state(now, a, AgentState::WrapUp { until }, Cause::CallEnded);
                    let epoch = self.agents[a as usize].epoch;
                    self.push_timer(until, crate::router::Timer::WrapUp { agent: a, epoch });
                }
            }
        }
    }
}
