//! Call lifecycle: arrival, offers, answers, misses, hang-ups, transfers, overflow.

use crate::event::{
    AgentState, CallOutcome, Cause, Command, EventError, Outcome, OverflowTarget, RejectReason,
    SkillReq, WithdrawReason,
};
use crate::ids::{AgentId, CallId, QueueId};
use crate::keys::{SEQ_MIDDLE, call_key};
use crate::rng::Entropy;
use crate::router::{CallRec, CallState, Router, Timer};
use crate::time::Time;
use std::time::Duration;

impl<R: Entropy> Router<R> {
    pub(crate) fn on_arrival(
        &mut self,
        now: Time,
        call: CallId,
        queue: QueueId,
        priority: u8,
        skills: Option<Vec<SkillReq>>,
    ) -> Result<(), EventError> {
        let q = self
            .queues
            .get(queue.idx())
            .ok_or(EventError::UnknownQueue(queue))?;
        if self.calls.contains_key(&call.0) || self.outbound.contains_key(&call.0) {
            return Err(EventError::DuplicateCall(call));
        }
        let reqs = match skills {
            None => q.params.required.clone(),
            Some(reqs) => {
                for r in &reqs {
                    if usize::from(r.skill.0) >= self.skill_names.len() {
                        return Err(EventError::UnknownSkill(r.skill));
                    }
                    if !(1..=5).contains(&r.min) {
                        return Err(EventError::BadProficiency(r.min));
                    }
                }
                reqs
            }
        };
        let rec = CallRec {
            queue: queue.0,
            priority,
            reqs,
            arrived: now,
            seq: 0,
            state: CallState::Waiting,
            visit: 0,
            offer_epoch: 0,
        };
        self.calls.insert(call.0, rec);
        self.enter_queue(now, call.0, queue.0);
        Ok(())
    }

    /// Starts a visit of (known) call `c` to queue `q`: reject, or queue at the tail and try to
    /// offer it.
    fn enter_queue(&mut self, now: Time, c: u64, q: u32) {
        let Some(call) = self.calls.get_mut(&c) else {
            return;
        };
        call.queue = q;
        call.arrived = now;
        call.state = CallState::Waiting;
        let queue = &mut self.queues[q as usize];
        queue.counters.offered += 1;
        if queue.retired {
            return self.reject(now, c, RejectReason::QueueClosed);
        }
        if queue.params.when_empty == crate::WhenEmpty::Reject && queue.logged_in() == 0 {
            return self.reject(now, c, RejectReason::NoAgents);
        }
        self.arm_visit_timers(now, c);
        let queue = &mut self.queues[q as usize];
        let seq = SEQ_MIDDLE + queue.tail_seq;
        queue.tail_seq += 1;
        self.place(now, c, seq);
    }

    /// (Re-)arms the max-wait and relaxation timers of call `c`'s current visit, from its
    /// queue's current settings; timers armed before are void.
    pub(crate) fn arm_visit_timers(&mut self, now: Time, c: u64) {
        let visit = self.token();
        let Some(call) = self.calls.get_mut(&c) else {
            return;
        };
        call.visit = visit;
        let (arrived, has_reqs, q) = (call.arrived, !call.reqs.is_empty(), call.queue as usize);
        if let Some(max) = self.queues[q].params.max_wait {
            self.push_timer((arrived + max).max(now), Timer::MaxWait { call: c, visit });
        }
        if has_reqs {
            for i in 0..self.queues[q].params.relax.len() {
                let at = arrived + self.queues[q].params.relax[i].after;
                if at > now {
                    self.push_timer(at, Timer::Relax { call: c, visit });
                }
            }
        }
    }

    /// Offers waiting, unqueued call `c` at once if someone can take it, else queues it at
    /// position `seq`.
    fn place(&mut self, now: Time, c: u64, seq: u64) {
        if let Some(call) = self.calls.get_mut(&c) {
            call.seq = seq;
            call.state = CallState::Waiting;
        }
        if !self.dispatch_call(now, c, false) {
            self.enqueue(c, seq);
        }
    }

    /// Puts waiting call `c` in its queue's waiting set at position `seq`.
    fn enqueue(&mut self, c: u64, seq: u64) {
        if let Some(call) = self.calls.get_mut(&c) {
            call.seq = seq;
            call.state = CallState::Waiting;
            let key = call_key(call.priority, seq, c);
            self.queues[call.queue as usize].waiting.insert(key);
        }
    }

    /// Takes waiting call `c` out of its queue's waiting set.
    pub(crate) fn unqueue(&mut self, c: u64) {
        if let Some(call) = self.calls.get(&c) {
            let key = call_key(call.priority, call.seq, c);
            self.queues[call.queue as usize].waiting.remove(&key);
        }
    }

    /// Rings `agents` (non-empty, all Available) with waiting call `c`, already out of the
    /// waiting set.
    pub(crate) fn offer(&mut self, now: Time, c: u64, agents: &[u32]) {
        let epoch = self.token();
        let Some(call) = self.calls.get_mut(&c) else {
            return;
        };
        let q = call.queue as usize;
        let deadline = now + self.queues[q].params.ring_timeout;
        call.offer_epoch = epoch;
        call.state = CallState::Ringing {
            agents: agents.to_vec(),
        };
        self.queues[q].ringing += 1;
        for &a in agents {
            self.out.push_back(Command::Offer {
                call: CallId(c),
                agent: AgentId(a),
                deadline,
            });
            let to = AgentState::Offered {
                call: CallId(c),
                deadline,
            };
            self.set_state(now, a, to, Cause::Offer);
        }
        self.push_timer(deadline, Timer::Ring { call: c, epoch });
    }

    /// Withdraws `a`'s offer of `c`; if nobody else rings, the call goes back to the head of
    /// its queue. The caller then decides `a`'s next state.
    pub(crate) fn retract(&mut self, now: Time, c: u64, a: u32, reason: WithdrawReason) {
        let Some(call) = self.calls.get_mut(&c) else {
            return;
        };
        let CallState::Ringing { agents } = &mut call.state else {
            return;
        };
        agents.retain(|&x| x != a);
        let empty = agents.is_empty();
        let q = call.queue;
        self.out.push_back(Command::Withdraw {
            call: CallId(c),
            agent: AgentId(a),
            reason,
        });
        if empty {
            self.queues[q as usize].ringing -= 1;
            self.requeue(now, c);
        }
    }

    /// Call `c` (no longer ringing) goes back to the head of its queue, or overflows if it
    /// has waited past the max wait meanwhile.
    fn requeue(&mut self, now: Time, c: u64) {
        let Some(call) = self.calls.get(&c) else {
            return;
        };
        let q = call.queue as usize;
        let due = self.queues[q]
            .params
            .max_wait
            .is_some_and(|m| now >= call.arrived + m);
        if due {
            if let Some(call) = self.calls.get_mut(&c) {
                call.state = CallState::Waiting;
            }
            return self.overflow(now, c);
        }
        let queue = &mut self.queues[q];
        let seq = SEQ_MIDDLE - 1 - queue.head_seq;
        queue.head_seq += 1;
        self.place(now, c, seq);
    }

    /// Operator `a` missed an offer of a call in queue `q`.
    fn missed(&mut self, now: Time, a: u32, q: u32) {
        let max = self.queues[q as usize].params.max_misses;
        let agent = &mut self.agents[a as usize];
        agent.misses += 1;
        if max > 0 && agent.misses >= max {
            agent.misses = 0;
            let to = AgentState::NotReady {
                reason: crate::NotReadyReason::NoAnswer,
            };
            self.set_state(now, a, to, Cause::Missed);
        } else {
            self.make_available(now, a, Cause::Missed);
        }
    }

    pub(crate) fn on_ring_timeout(&mut self, now: Time, c: u64, epoch: u64) {
        let Some(call) = self.calls.get_mut(&c) else {
            return;
        };
        if call.offer_epoch != epoch {
            return;
        }
        let CallState::Ringing { agents } = &mut call.state else {
            return;
        };
        let agents = std::mem::take(agents);
        let q = call.queue;
        self.queues[q as usize].ringing -= 1;
        for &a in &agents {
            let reason = WithdrawReason::RingTimeout;
            self.out.push_back(Command::Withdraw {
                call: CallId(c),
                agent: AgentId(a),
                reason,
            });
        }
        self.requeue(now, c);
        for a in agents {
            self.missed(now, a, q);
        }
    }

    /// The operators ringing with `c`, or `NotOffered` if `a` is not one of them.
    fn check_offered(&self, c: CallId, a: u32) -> Result<(), EventError> {
        let call = self.calls.get(&c.0).ok_or(EventError::UnknownCall(c))?;
        match &call.state {
            CallState::Ringing { agents } if agents.contains(&a) => Ok(()),
            _ => Err(EventError::NotOffered {
                call: c,
                agent: AgentId(a),
            }),
        }
    }

    pub(crate) fn on_accept(&mut self, now: Time, c: CallId, a: u32) -> Result<(), EventError> {
        self.check_offered(c, a)?;
        let Some(call) = self.calls.get_mut(&c.0) else {
            return Err(EventError::UnknownCall(c));
        };
        let wait = now.saturating_since(call.arrived);
        let CallState::Ringing { agents } = std::mem::replace(
            &mut call.state,
            CallState::Connected {
                agent: a,
                at: now,
                wait,
            },
        ) else {
            return Err(EventError::NotOffered {
                call: c,
                agent: AgentId(a),
            });
        };
        let queue = &mut self.queues[call.queue as usize];
        queue.ringing -= 1;
        queue.counters.answered += 1;
        if wait <= queue.params.service_level {
            queue.counters.answered_in_sl += 1;
        }
        let agent = &mut self.agents[a as usize];
        agent.calls += 1;
        agent.misses = 0;
        self.out.push_back(Command::Connected {
            call: c,
            agent: AgentId(a),
        });
        self.set_state(now, a, AgentState::OnCall { call: c }, Cause::Answer);
        for b in agents.into_iter().filter(|&b| b != a) {
            let reason = WithdrawReason::AnsweredElsewhere;
            self.out.push_back(Command::Withdraw {
                call: c,
                agent: AgentId(b),
                reason,
            });
            self.make_available(now, b, Cause::Withdrawn);
        }
        Ok(())
    }

    pub(crate) fn on_decline(&mut self, now: Time, c: CallId, a: u32) -> Result<(), EventError> {
        self.check_offered(c, a)?;
        let q = self.calls.get(&c.0).map_or(0, |call| call.queue);
        self.retract(now, c.0, a, WithdrawReason::Declined);
        self.missed(now, a, q);
        Ok(())
    }

    /// Records the end of call `c`'s visit to its queue.
    fn finish(&mut self, c: u64, outcome: Outcome, wait: Duration, talk: Duration) {
        let Some(call) = self.calls.get(&c) else {
            return;
        };
        let q = call.queue;
        let counters = &mut self.queues[q as usize].counters;
        match outcome {
            Outcome::Answered { .. } => {}
            Outcome::Abandoned => counters.abandoned += 1,
            Outcome::Overflowed { .. } => counters.overflowed += 1,
            Outcome::Rejected { .. } => counters.rejected += 1,
        }
        let queue = QueueId(q);
        self.out.push_back(Command::Outcome(CallOutcome {
            call: CallId(c),
            queue,
            outcome,
            wait,
            talk,
        }));
    }

    /// Rejects (known, not waiting) call `c` and forgets it.
    pub(crate) fn reject(&mut self, now: Time, c: u64, reason: RejectReason) {
        let Some(call) = self.calls.get(&c) else {
            return;
        };
        let wait = now.saturating_since(call.arrived);
        self.out.push_back(Command::Reject {
            call: CallId(c),
            reason,
        });
        self.finish(c, Outcome::Rejected { reason }, wait, Duration::ZERO);
        self.calls.remove(&c);
    }

    /// Overflows (known, not waiting) call `c` to its queue's target.
    fn overflow(&mut self, now: Time, c: u64) {
        let Some(call) = self.calls.get(&c) else {
            return;
        };
        let wait = now.saturating_since(call.arrived);
        let target = self.queues[call.queue as usize].params.overflow.clone();
        self.out.push_back(Command::Overflow {
            call: CallId(c),
            target: target.clone(),
        });
        self.finish(
            c,
            Outcome::Overflowed {
                target: target.clone(),
            },
            wait,
            Duration::ZERO,
        );
        match target {
            OverflowTarget::Queue(q) => self.enter_queue(now, c, q.0),
            OverflowTarget::External(_) | OverflowTarget::None => {
                self.calls.remove(&c);
            }
        }
    }

    pub(crate) fn on_max_wait(&mut self, now: Time, c: u64, visit: u64) {
        let Some(call) = self.calls.get(&c) else {
            return;
        };
        let max_wait = self.queues[call.queue as usize].params.max_wait;
        let due = max_wait.is_some_and(|m| now >= call.arrived + m);
        if call.visit == visit && due && matches!(call.state, CallState::Waiting) {
            self.unqueue(c);
            self.overflow(now, c);
        }
    }

    pub(crate) fn on_relax(&mut self, now: Time, c: u64, visit: u64) {
        let Some(call) = self.calls.get(&c) else {
            return;
        };
        if call.visit == visit && matches!(call.state, CallState::Waiting) {
            self.dispatch_call(now, c, true);
        }
    }

    pub(crate) fn on_caller_hangup(&mut self, now: Time, c: CallId) -> Result<(), EventError> {
        let call = self.calls.get_mut(&c.0).ok_or(EventError::UnknownCall(c))?;
        let wait = now.saturating_since(call.arrived);
        match std::mem::replace(&mut call.state, CallState::Waiting) {
            CallState::Waiting => {
                self.unqueue(c.0);
                self.finish(c.0, Outcome::Abandoned, wait, Duration::ZERO);
                self.calls.remove(&c.0);
            }
            CallState::Ringing { agents } => {
                let q = call.queue;
                self.queues[q as usize].ringing -= 1;
                self.finish(c.0, Outcome::Abandoned, wait, Duration::ZERO);
                self.calls.remove(&c.0);
                for a in agents {
                    let reason = WithdrawReason::CallerHungUp;
                    self.out.push_back(Command::Withdraw {
                        call: c,
                        agent: AgentId(a),
                        reason,
                    });
                    self.make_available(now, a, Cause::Withdrawn);
                }
            }
            state @ CallState::Connected { .. } => {
                call.state = state;
                self.end_call(now, c.0);
            }
        }
        Ok(())
    }

    pub(crate) fn on_call_ended(&mut self, now: Time, c: CallId) -> Result<(), EventError> {
        let call = self.calls.get(&c.0).ok_or(EventError::UnknownCall(c))?;
        if !matches!(call.state, CallState::Connected { .. }) {
            return Err(EventError::NotConnected(c));
        }
        self.end_call(now, c.0);
        Ok(())
    }

    /// Ends the connected visit of `c` (answered, with its talk time); the operator goes on
    /// to wrap-up. Returns the operator and queue, the call stays known.
    fn close_connected(&mut self, now: Time, c: u64) -> Option<(u32, u32)> {
        let call = self.calls.get(&c)?;
        let CallState::Connected { agent, at, wait } = call.state else {
            return None;
        };
        let q = call.queue;
        let talk = now.saturating_since(at);
        self.agents[agent as usize].talk += talk;
        self.finish(
            c,
            Outcome::Answered {
                agent: AgentId(agent),
            },
            wait,
            talk,
        );
        Some((agent, q))
    }

    fn end_call(&mut self, now: Time, c: u64) {
        if let Some((agent, q)) = self.close_connected(now, c) {
            self.calls.remove(&c);
            self.after_call(now, agent, q);
        }
    }

    pub(crate) fn on_transfer(
        &mut self,
        now: Time,
        c: CallId,
        to: QueueId,
        priority: Option<u8>,
    ) -> Result<(), EventError> {
        match self.queues.get(to.idx()) {
            Some(q) if !q.retired => {}
            _ => return Err(EventError::UnknownQueue(to)),
        }
        let call = self.calls.get_mut(&c.0).ok_or(EventError::UnknownCall(c))?;
        let wait = now.saturating_since(call.arrived);
        let from = call.queue;
        let state = call.state.clone();
        let target = Outcome::Overflowed {
            target: OverflowTarget::Queue(to),
        };
        match state {
            CallState::Waiting => {
                self.unqueue(c.0);
                self.finish(c.0, target, wait, Duration::ZERO);
                self.set_priority(c.0, priority);
                self.enter_queue(now, c.0, to.0);
            }
            CallState::Ringing { agents } => {
                self.queues[from as usize].ringing -= 1;
                self.finish(c.0, target, wait, Duration::ZERO);
                self.set_priority(c.0, priority);
                for &a in &agents {
                    let reason = WithdrawReason::Transferred;
                    self.out.push_back(Command::Withdraw {
                        call: c,
                        agent: AgentId(a),
                        reason,
                    });
                }
                self.enter_queue(now, c.0, to.0);
                for a in agents {
                    self.make_available(now, a, Cause::Withdrawn);
                }
            }
            CallState::Connected { .. } => {
                if let Some((agent, q)) = self.close_connected(now, c.0) {
                    self.set_priority(c.0, priority);
                    self.enter_queue(now, c.0, to.0);
                    self.after_call(now, agent, q);
                }
            }
        }
        Ok(())
    }

    fn set_priority(&mut self, c: u64, priority: Option<u8>) {
        if let (Some(p), Some(call)) = (priority, self.calls.get_mut(&c)) {
            call.priority = p;
        }
    }
}
