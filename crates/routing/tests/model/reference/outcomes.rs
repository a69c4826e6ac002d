//! Call outcomes, and the checks at the end of every step.

use super::*;

impl Harness {
    pub(super) fn outcome(&mut self, ev: Option<&Event>, o: homeline_routing::CallOutcome) {
        let now = self.now;
        let c = o.call;
        self.outcomes_seen += 1;
        let Some(v) = self.open_visit(c).cloned() else {
            fail!(
                self,
                "Outcome for {c:?} which has no open visit (never arrived or already ended)"
            )
        };
        if o.queue != v.queue {
            fail!(
                self,
                "Outcome of {c:?} names {:?}, its visit is in {:?}",
                o.queue,
                v.queue
            );
        }
        let q = v.queue;
        let mut next: Option<QueueId> = None;
        match &o.outcome {
            Outcome::Answered { agent } => {
                let Some((a, at)) = v.connected else {
                    fail!(self, "Answered outcome of unconnected {c:?}")
                };
                if a != *agent {
                    fail!(self, "Answered by {agent:?} but connected to {a:?}");
                }
                if o.wait != at.saturating_since(v.start) || o.talk != now.saturating_since(at) {
                    fail!(
                        self,
                        "Answered {c:?}: wait {:?} talk {:?}, model {:?} {:?}",
                        o.wait,
                        o.talk,
                        at.saturating_since(v.start),
                        now.saturating_since(at)
                    );
                }
                match ev {
                    Some(Event::CallEnded { call } | Event::CallerHungUp { call })
                        if *call == c => {}
                    Some(Event::Transfer { call, queue, .. }) if *call == c => {
                        cov(Cov::TransferConnected);
                        next = Some(*queue);
                    }
                    _ => fail!(self, "Answered outcome of {c:?} in context {ev:?}"),
                }
                let m = self.agents.get_mut(agent).expect("known");
                if m.call != Some(c) {
                    fail!(
                        self,
                        "call of {agent:?} ended but model has {:?}",
                        self.agents[agent].call
                    );
                }
                m.call = None;
                m.last_queue = Some(q);
                cov(Cov::Answered);
            }
            other => {
                if v.connected.is_some() {
                    fail!(self, "{other:?} outcome of connected {c:?}");
                }
                if o.wait != now.saturating_since(v.start) || o.talk != Duration::ZERO {
                    fail!(
                        self,
                        "{other:?} outcome of {c:?}: wait {:?} talk {:?}",
                        o.wait,
                        o.talk
                    );
                }
                let counts = self.counts.get_mut(&q).expect("queue");
                match other {
                    Outcome::Abandoned => {
                        counts.abandoned += 1;
                        if !matches!(ev, Some(Event::CallerHungUp { call }) if *call == c) {
                            fail!(self, "Abandoned outcome of {c:?} in context {ev:?}");
                        }
                        cov(Cov::Abandoned);
                    }
                    Outcome::Overflowed { target } => {
                        counts.overflowed += 1;
                        if self.pending_overflow.as_ref().is_some_and(|p| p.0 == c) {
                            let (_, t) = self.pending_overflow.take().expect("checked");
                            if &t != target {
                                fail!(self, "Overflow to {t:?} but Outcome says {target:?}");
                            }
                            cov(match target {
                                OverflowTarget::Queue(_) => Cov::OverflowQueue,
                                OverflowTarget::External(_) => Cov::OverflowExternal,
                                OverflowTarget::None => Cov::OverflowNone,
                            });
                        } else {
                            match ev {
                                Some(Event::Transfer { call, queue, .. })
                                    if *call == c && *target == OverflowTarget::Queue(*queue) =>
                                {
                                    cov(Cov::Transferred)
                                }
                                _ => fail!(
                                    self,
                                    "Overflowed({target:?}) of {c:?} without an Overflow command, context {ev:?}"
                                ),
                            }
                        }
                        if let OverflowTarget::Queue(t) = target {
                            next = Some(*t);
                        }
                    }
                    Outcome::Rejected { reason } => {
                        counts.rejected += 1;
                        match self.pending_reject.take() {
                            Some((pc, pr)) if pc == c && pr == *reason => {}
                            p => fail!(
                                self,
                                "Rejected({reason:?}) of {c:?} but pending reject {p:?}"
                            ),
                        }
                        match reason {
                            RejectReason::NoAgents => {
                                if !self.params[&q].reject_when_empty {
                                    fail!(
                                        self,
                                        "{c:?} rejected NoAgents by a queue that waits when empty"
                                    );
                                }
                                cov(Cov::RejectNoAgents);
                            }
                            RejectReason::QueueClosed => cov(Cov::RejectQueueClosed),
                        }
                    }
                    Outcome::Answered { .. } => unreachable!(),
                }
            }
        }
        let m = self.calls.get_mut(&c).expect("known");
        m.outcomes += 1;
        m.open = None;
        if let Some(t) = next {
            if !self.params.contains_key(&t) {
                fail!(self, "{c:?} moved to unknown {t:?}");
            }
            self.open(c, t);
        }
    }

    pub(super) fn end_of_step(&mut self, ctx: &Ctx) {
        let now = self.now;
        self.batch = None;
        if let Some(p) = &self.pending_overflow {
            fail!(self, "Overflow {p:?} without its Outcome");
        }
        if let Some(p) = &self.pending_reject {
            fail!(self, "Reject {p:?} without its Outcome");
        }
        if let Err(e) = self.router.check_invariants(now) {
            fail!(self, "check_invariants after {ctx:?}: {e}");
        }
        for (&a, m) in &self.agents {
            if m.expect_miss.is_some() {
                fail!(self, "{a:?} missed an offer but got no Missed state change");
            }
            let Some((state, _)) = self.router.agent_state(a) else {
                fail!(self, "agent_state({a:?}) is None")
            };
            if *state != m.state {
                fail!(
                    self,
                    "agent_state({a:?}) = {state:?}, the AgentStateChanged stream says {:?}",
                    m.state
                );
            }
            let offered = match m.state {
                AgentState::Offered { call, deadline } => Some((call, deadline)),
                _ => None,
            };
            let on_call = match m.state {
                AgentState::OnCall { call } => Some(call),
                _ => None,
            };
            let own_call = match m.state {
                AgentState::OutboundCall { call } => Some(call),
                _ => None,
            };
            if own_call != m.own.as_ref().map(|o| o.0) {
                fail!(
                    self,
                    "{a:?}: state {:?} but the model's own call is {:?}",
                    m.state,
                    m.own
                );
            }
            if offered != m.offer || on_call != m.call {
                fail!(
                    self,
                    "{a:?}: state {:?} but Offer/Withdraw give {:?} and Connected/Outcome {:?}",
                    m.state,
                    m.offer,
                    m.call
                );
            }
            if m.offer.is_some() && m.call.is_some() {
                fail!(self, "{a:?} holds an offer and a call");
            }
            if let Some((c, _)) = m.offer {
                match self.open_visit(c) {
                    Some(v) if v.connected.is_none() => {}
                    v => fail!(self, "{a:?} rings with {c:?} whose visit is {v:?}"),
                }
            }
            if let Some(c) = m.call {
                match self.open_visit(c) {
                    Some(Visit {
                        connected: Some((x, _)),
                        ..
                    }) if *x == a => {}
                    v => fail!(self, "{a:?} talks on {c:?} whose visit is {v:?}"),
                }
            }
        }
        // Per queue, from the commands alone.
        // queue -> (waiting or ringing, ringing, longest wait of a waiting call)
        let mut open: BTreeMap<QueueId, (u64, u32, Duration)> = BTreeMap::new();
        let mut live = 0;
        for (&c, m) in &self.calls {
            let Some(v) = &m.open else { continue };
            live += 1;
            if v.connected.is_some() {
                continue;
            }
            let e = open.entry(v.queue).or_default();
            e.0 += 1;
            if self
                .agents
                .values()
                .any(|a| a.offer.map(|o| o.0) == Some(c))
            {
                e.1 += 1;
            } else {
                e.2 = e.2.max(now.saturating_since(v.start));
            }
        }
        // queue -> members by state, from the membership model and the state stream.
        let mut members: BTreeMap<QueueId, [u32; 6]> = BTreeMap::new();
        for (a, qs) in &self.eff {
            let kind = self.agents[a].state.kind() as usize;
            for q in qs {
                members.entry(*q).or_default()[kind] += 1;
            }
        }
        if self.router.calls_in_progress() != live {
            fail!(
                self,
                "calls_in_progress {} but {live} calls have an open visit",
                self.router.calls_in_progress()
            );
        }
        let nqueues = self.router.queue_ids().count();
        if nqueues != self.params.len() {
            fail!(
                self,
                "router has {nqueues} queues, model {}",
                self.params.len()
            );
        }
        for (&q, c) in &self.counts {
            let Some(s) = self.router.queue_stats(q, now) else {
                fail!(self, "no stats for {q:?}")
            };
            let (in_progress, ringing, longest) = open.get(&q).copied().unwrap_or_default();
            let got = Counts {
                offered: s.offered,
                answered: s.answered,
                abandoned: s.abandoned,
                overflowed: s.overflowed,
                rejected: s.rejected,
            };
            if got != *c || s.in_progress() != in_progress || s.ringing != ringing {
                fail!(
                    self,
                    "{q:?}: stats {got:?} waiting {} ringing {}; commands say {c:?} in progress {in_progress} ringing {ringing}",
                    s.waiting,
                    s.ringing
                );
            }
            if s.longest_wait != longest {
                fail!(
                    self,
                    "{q:?}: longest wait {:?}, waiting calls say {longest:?}",
                    s.longest_wait
                );
            }
            let by_state = members.get(&q).copied().unwrap_or_default();
            if s.agents != by_state {
                fail!(
                    self,
                    "{q:?}: members by state {:?}, model {by_state:?} (members {:?})",
                    s.agents,
                    self.eff
                        .iter()
                        .filter(|(_, qs)| qs.contains(&q))
                        .map(|(a, _)| *a)
                        .collect::<Vec<_>>()
                );
            }
            if c.offered != c.answered + c.abandoned + c.overflowed + c.rejected + in_progress {
                fail!(
                    self,
                    "{q:?}: offered {} != answered+abandoned+overflowed+rejected+in progress ({c:?}, {in_progress})",
                    c.offered
                );
            }
        }
    }
}
