//! Each command the router emits, checked against the model and applied to it.

// Guards written as `if` inside match arms read better here than match guards.
#![allow(clippy::collapsible_match)]

use super::*;

impl Harness {
    pub(super) fn command(&mut self, ctx: &Ctx, cmd: Command) {
        let now = self.now;
        let ev = match ctx {
            Ctx::Event(e) => Some(e),
            Ctx::Timeout { .. } => None,
        };
        if !matches!(
            cmd,
            Command::Offer { .. } | Command::AgentStateChanged { .. }
        ) {
            self.batch = None;
        }
        match cmd {
            Command::Offer {
                call,
                agent,
                deadline,
            } => {
                let Some(v) = self.open_visit(call).cloned() else {
                    fail!(self, "offer of {call:?} which is not in a queue")
                };
                if v.connected.is_some() {
                    fail!(self, "offer of connected {call:?}");
                }
                let p = self.params[&v.queue].clone();
                let new_ring = match ev {
                    Some(Event::Reconfigure(_)) if self.q_present[p.pool] => {
                        Duration::from_secs(self.qspecs[p.pool].ring_timeout)
                    }
                    _ => p.ring,
                };
                if deadline != now + p.ring && deadline != now + new_ring {
                    fail!(
                        self,
                        "offer deadline {deadline:?} != now + ring timeout {:?}",
                        p.ring
                    );
                }
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "offer to unknown {agent:?}")
                };
                if m.state != AgentState::Available || m.offer.is_some() || m.call.is_some() {
                    fail!(
                        self,
                        "offer of {call:?} to {agent:?} in {:?} (offer {:?}, call {:?})",
                        m.state,
                        m.offer,
                        m.call
                    );
                }
                let others = self
                    .agents
                    .values()
                    .filter(|o| o.offer.map(|x| x.0) == Some(call))
                    .count();
                if others > 0
                    && (p.strategy != Policy::RingAll || self.batch != Some((call, deadline)))
                {
                    fail!(
                        self,
                        "{call:?} offered to {agent:?} while already ringing elsewhere"
                    );
                }
                self.batch = Some((call, deadline));
                let reqs = self.calls[&call].reqs.clone();
                let floor = self.floor_in(ctx, v.queue, v.start);
                if !self.agent_qualifies(m.pool, &reqs, floor) {
                    fail!(
                        self,
                        "{agent:?} does not qualify for {call:?} (reqs {reqs:?}, floor {floor})"
                    );
                }
                if !self.agent_qualifies(m.pool, &reqs, 5) {
                    cov(Cov::RelaxedOffer);
                }
                let late = matches!(ctx, Ctx::Timeout { late: true });
                let reconf = matches!(ev, Some(Event::Reconfigure(_)));
                if !p.retired && !late && !reconf {
                    self.check_tier(agent, m.pool, call, &v, &reqs, floor, p.pool);
                }
                self.agents.get_mut(&agent).expect("known").offer = Some((call, deadline));
            }
            Command::Withdraw {
                call,
                agent,
                reason,
            } => {
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "withdraw from unknown {agent:?}")
                };
                if m.offer.map(|o| o.0) != Some(call) {
                    fail!(
                        self,
                        "withdraw of {call:?} from {agent:?} which rings {:?}",
                        m.offer
                    );
                }
                let ok = match reason {
                    WithdrawReason::AnsweredElsewhere => self
                        .open_visit(call)
                        .is_some_and(|v| v.connected.is_some_and(|(a, _)| a != agent)),
                    WithdrawReason::RingTimeout => ev.is_none(),
                    WithdrawReason::CallerHungUp => {
                        matches!(ev, Some(Event::CallerHungUp { call: c }) if *c == call)
                    }
                    WithdrawReason::Transferred => {
                        matches!(ev, Some(Event::Transfer { call: c, .. }) if *c == call)
                    }
                    WithdrawReason::Declined => matches!(ev,
                        Some(Event::OfferDeclined { call: c, agent: a }) if *c == call && *a == agent),
                    WithdrawReason::AgentUnavailable => {
                        matches!(ev,
                        Some(Event::NotReady { agent: a, .. } | Event::Logout { agent: a }
                            | Event::ConnectionLost { agent: a }
                            | Event::OutboundStarted { agent: a, .. }) if *a == agent)
                            || matches!(ev, Some(Event::Reconfigure(_)))
                    }
                };
                if !ok {
                    fail!(
                        self,
                        "withdraw {reason:?} of {call:?} from {agent:?} in context {ctx:?}"
                    );
                }
                if reason == WithdrawReason::RingTimeout {
                    let deadline = m.offer.map(|o| o.1).expect("checked");
                    if now < deadline {
                        fail!(
                            self,
                            "ring timeout of {call:?} at {agent:?} at {now:?}, before the offer's deadline {deadline:?}"
                        );
                    }
                }
                if matches!(ev, Some(Event::OutboundStarted { .. })) {
                    cov(Cov::OwnCallWhileRinging);
                }
                match reason {
                    WithdrawReason::RingTimeout => cov(Cov::RingTimeout),
                    WithdrawReason::Declined => cov(Cov::Declined),
                    WithdrawReason::AnsweredElsewhere => cov(Cov::AnsweredElsewhere),
                    _ => {}
                }
                if matches!(
                    reason,
                    WithdrawReason::RingTimeout | WithdrawReason::Declined
                ) {
                    let Some(v) = self.open_visit(call).cloned() else {
                        fail!(self, "missed offer of {call:?} which is not in a queue")
                    };
                    let max = self.params[&v.queue].max_misses;
                    let m = self.agents.get_mut(&agent).expect("known");
                    if m.expect_miss.is_some() {
                        fail!(self, "{agent:?} missed twice in one step");
                    }
                    m.misses += 1;
                    let no_answer = max > 0 && m.misses >= max;
                    if no_answer {
                        m.misses = 0;
                        cov(if max == 1 {
                            Cov::NoAnswer1
                        } else {
                            Cov::NoAnswer2
                        });
                    }
                    m.expect_miss = Some(no_answer);
                }
                self.agents.get_mut(&agent).expect("known").offer = None;
            }
            Command::Connected { call, agent } => {
                if !matches!(ev, Some(Event::OfferAccepted { call: c, agent: a }) if *c == call && *a == agent)
                {
                    fail!(self, "Connected {call:?} to {agent:?} in context {ctx:?}");
                }
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "connected to unknown {agent:?}")
                };
                if m.offer.map(|o| o.0) != Some(call) || m.call.is_some() {
                    fail!(
                        self,
                        "connected {call:?} to {agent:?} with offer {:?} call {:?}",
                        m.offer,
                        m.call
                    );
                }
                let Some(v) = self.open_visit(call).cloned() else {
                    fail!(self, "connected {call:?} which is not in a queue")
                };
                if let Some(prev) = v.connected {
                    fail!(
                        self,
                        "{call:?} connected twice in one visit ({prev:?}, then {agent:?})"
                    );
                }
                if self.agents.values().any(|o| o.call == Some(call)) {
                    fail!(self, "{call:?} connected to two agents");
                }
                let m = self.agents.get_mut(&agent).expect("known");
                m.offer = None;
                m.call = Some(call);
                m.misses = 0;
                let visit = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.open.as_mut())
                    .expect("open");
                visit.connected = Some((agent, now));
                self.counts.get_mut(&v.queue).expect("queue").answered += 1;
            }
            Command::Overflow { call, target } => {
                let Some(v) = self.open_visit(call).cloned() else {
                    fail!(self, "overflow of {call:?} which is not in a queue")
                };
                if v.connected.is_some() {
                    fail!(self, "overflow of connected {call:?}");
                }
                let p = &self.params[&v.queue];
                let want = &p.overflow;
                let reconf = matches!(ev, Some(Event::Reconfigure(_))) && self.q_present[p.pool];
                if &target != want && !(reconf && target == self.spec_overflow(p.pool)) {
                    fail!(
                        self,
                        "overflow of {call:?} to {target:?}, queue configured {want:?}"
                    );
                }
                if self.pending_overflow.is_some() || self.pending_reject.is_some() {
                    fail!(
                        self,
                        "overflow while another Overflow/Reject awaits its Outcome"
                    );
                }
                let new_max = self.qspecs[p.pool].max_wait.map(Duration::from_secs);
                let max_wait = match (p.max_wait, new_max) {
                    (Some(old), Some(new)) if reconf => Some(old.min(new)),
                    (None, new) if reconf => new,
                    (old, _) => old,
                };
                match max_wait {
                    Some(max) if now >= v.start + max => {}
                    max => fail!(
                        self,
                        "{call:?} overflowed after waiting {:?} (max wait {max:?})",
                        now.saturating_since(v.start)
                    ),
                }
                self.pending_overflow = Some((call, target));
            }
            Command::Reject { call, reason } => {
                if self.open_visit(call).is_none() {
                    fail!(self, "reject of {call:?} which is not in a queue");
                }
                if self.pending_overflow.is_some() || self.pending_reject.is_some() {
                    fail!(
                        self,
                        "reject while another Overflow/Reject awaits its Outcome"
                    );
                }
                self.pending_reject = Some((call, reason));
            }
            Command::Outcome(o) => self.outcome(ev, o),
            Command::AgentStateChanged {
                agent,
                from,
                to,
                cause,
                at,
            } => {
                if at != now {
                    fail!(self, "state change of {agent:?} at {at:?}, now {now:?}");
                }
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "state change of unknown {agent:?}")
                };
                if from != m.state {
                    fail!(
                        self,
                        "{agent:?} changed from {from:?} but the stream left it in {:?}",
                        m.state
                    );
                }
                if matches!(from, AgentState::Offered { .. }) && m.offer.is_some() {
                    fail!(
                        self,
                        "{agent:?} left Offered before its offer {:?} was withdrawn",
                        m.offer
                    );
                }
                if matches!(from, AgentState::OnCall { .. }) && m.call.is_some() {
                    fail!(self, "{agent:?} left OnCall before the call's Outcome");
                }
                let mut own = m.own.clone();
                if let AgentState::OutboundCall { call } = from {
                    own = None;
                    let ended = matches!(ev, Some(Event::OutboundEnded { call: c }) if *c == call);
                    let Some((_, next)) = m.own.clone().filter(|o| ended && o.0 == call) else {
                        fail!(
                            self,
                            "{agent:?} left own {call:?} ({:?}) in context {ctx:?}",
                            m.own
                        )
                    };
                    let removed = !self.a_present[m.pool];
                    let want = match next {
                        _ if removed => AgentState::LoggedOut,
                        Next::LogOut => AgentState::LoggedOut,
                        Next::Ready => AgentState::Available,
                        Next::NotReady(reason) => AgentState::NotReady { reason },
                        Next::WrapUpUntil(until) if until > now => AgentState::WrapUp { until },
                        Next::WrapUpUntil(_) => AgentState::Available,
                    };
                    let want_cause = if removed {
                        Cause::Reconfigured
                    } else {
                        Cause::CallEnded
                    };
                    if to != want || cause != want_cause {
                        fail!(
                            self,
                            "{agent:?} after own {call:?} went to {to:?} ({cause:?}), want {want:?} ({want_cause:?})"
                        );
                    }
                    match to {
                        AgentState::WrapUp { .. } => cov(Cov::OwnCallBackToWrapUp),
                        AgentState::LoggedOut => cov(Cov::OwnCallThenLogout),
                        _ => {}
                    }
                }
                match &to {
                    AgentState::OutboundCall { call } => {
                        let started = matches!(ev,
                            Some(Event::OutboundStarted { agent: a, call: c }) if *a == agent && c == call);
                        if !started || cause != Cause::Request || m.own.is_some() {
                            fail!(
                                self,
                                "{agent:?} on own {call:?} ({cause:?}, own {:?}) in context {ctx:?}",
                                m.own
                            );
                        }
                        let next = match &from {
                            AgentState::Available | AgentState::Offered { .. } => Next::Ready,
                            AgentState::NotReady { reason } => Next::NotReady(reason.clone()),
                            AgentState::WrapUp { until } => Next::WrapUpUntil(*until),
                            _ => fail!(self, "{agent:?} dialled out from {from:?}"),
                        };
                        own = Some((*call, next));
                        cov(Cov::OwnCall);
                    }
                    AgentState::WrapUp { .. }
                        if matches!(from, AgentState::OutboundCall { .. }) => {}
                    AgentState::Offered { call, deadline } => {
                        if m.offer != Some((*call, *deadline)) || cause != Cause::Offer {
                            fail!(
                                self,
                                "{agent:?} Offered {call:?}/{deadline:?} ({cause:?}) but Offer was {:?}",
                                m.offer
                            );
                        }
                    }
                    AgentState::OnCall { call } => {
                        if m.call != Some(*call) || cause != Cause::Answer {
                            fail!(
                                self,
                                "{agent:?} OnCall {call:?} ({cause:?}) without Connected"
                            );
                        }
                    }
                    AgentState::WrapUp { until } => {
                        let q = m
                            .last_queue
                            .unwrap_or_else(|| fail!(self, "wrap-up without a call"));
                        let want = now + self.params[&q].wrap;
                        if *until != want || cause != Cause::CallEnded {
                            fail!(
                                self,
                                "{agent:?} wrap-up until {until:?} ({cause:?}), want {want:?}"
                            );
                        }
                    }
                    _ => {}
                }
                if cause == Cause::Missed {
                    let want = m
                        .expect_miss
                        .unwrap_or_else(|| fail!(self, "{agent:?} Missed without a missed offer"));
                    let ok = if want {
                        to == AgentState::NotReady {
                            reason: NotReadyReason::NoAnswer,
                        }
                    } else {
                        to == AgentState::Available
                    };
                    if !ok {
                        fail!(
                            self,
                            "{agent:?} after a miss went to {to:?}, RONA rule says no-answer={want}"
                        );
                    }
                    self.agents.get_mut(&agent).expect("known").expect_miss = None;
                }
                if cause == Cause::WrapUpTimeout {
                    cov(Cov::WrapUpTimeout);
                    match from {
                        AgentState::WrapUp { until } if now >= until => {}
                        _ => fail!(self, "{agent:?}: wrap-up timeout from {from:?} at {now:?}"),
                    }
                }
                if to == AgentState::LoggedOut && !self.a_present[m.pool] {
                    // A removed operator is forgotten once logged out.
                    self.eff.insert(agent, Vec::new());
                }
                let m = self.agents.get_mut(&agent).expect("known");
                m.state = to;
                m.own = own;
            }
        }
    }

    /// The offered operator is a member of the call's queue and no Available member of a
    /// lower penalty tier could have taken the call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_tier(
        &self,
        agent: AgentId,
        pool: usize,
        call: CallId,
        _v: &Visit,
        reqs: &[SkillReq],
        floor: u8,
        qpool: usize,
    ) {
        let Some(&(_, tier)) = self.aspecs[pool].queues.iter().find(|(q, _)| *q == qpool) else {
            fail!(
                self,
                "{agent:?} offered {call:?} of {} which it is not a member of",
                qname(qpool)
            )
        };
        for (&b, mb) in &self.agents {
            if b == agent || mb.state != AgentState::Available || !self.a_present[mb.pool] {
                continue;
            }
            let Some(&(_, pb)) = self.aspecs[mb.pool]
                .queues
                .iter()
                .find(|(q, _)| *q == qpool)
            else {
                continue;
            };
            if pb < tier && self.agent_qualifies(mb.pool, reqs, floor) {
                fail!(
                    self,
                    "{call:?} offered to {agent:?} (penalty {tier}) while {b:?} (penalty {pb}) is Available for it"
                );
            }
        }
    }
}
