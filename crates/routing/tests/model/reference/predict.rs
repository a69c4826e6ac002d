//! Picking operators, queues and calls for an operation, and the errors the model expects.

use super::*;

impl Harness {
    pub(super) fn agent_sel(&self, sel: u8) -> AgentId {
        let n = self.aspecs.len();
        let i = sel as usize % (n + 1);
        if i == n {
            return AgentId(UNKNOWN);
        }
        self.a_ids[i].unwrap_or(AgentId(UNKNOWN + 1 + i as u32))
    }

    pub(super) fn queue_sel(&self, sel: u8) -> QueueId {
        let n = self.qspecs.len();
        let i = sel as usize % (n + 1);
        if i == n {
            return QueueId(UNKNOWN);
        }
        self.q_ids[i].unwrap_or(QueueId(UNKNOWN + 1 + i as u32))
    }

    pub(super) fn live_calls(&self) -> Vec<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| c.open.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    pub(super) fn any_call(&self, sel: u16) -> CallId {
        let n = self.next_call; // ids 1..next_call were used; next_call itself is unknown
        CallId(1 + u64::from(sel) % n)
    }

    pub(super) fn agent_present(&self, a: AgentId) -> bool {
        self.agents.get(&a).is_some_and(|m| self.a_present[m.pool])
    }

    /// Whether operator `pool` qualifies (during a reconfiguration: before or after it).
    pub(super) fn agent_qualifies(&self, pool: usize, reqs: &[SkillReq], floor: u8) -> bool {
        Self::qualifies_in(self, &self.aspecs, pool, reqs, floor)
            || self
                .old_aspecs
                .as_ref()
                .is_some_and(|old| Self::qualifies_in(self, old, pool, reqs, floor))
    }

    pub(super) fn qualifies_in(
        &self,
        aspecs: &[ASpec],
        pool: usize,
        reqs: &[SkillReq],
        floor: u8,
    ) -> bool {
        reqs.iter().all(|r| {
            let need = r.min.min(floor);
            let prof = aspecs[pool]
                .skills
                .iter()
                .find(|(s, _)| self.skill(*s) == Some(r.skill))
                .map_or(0, |&(_, p)| p);
            need == 0 || prof >= need
        })
    }

    pub(super) fn floor(&self, q: QueueId, start: Time) -> u8 {
        let waited = self.now.saturating_since(start);
        let mut floor = 5;
        for &(after, p) in &self.params[&q].relax {
            if waited >= after {
                floor = p;
            }
        }
        floor
    }

    /// During a reconfiguration, the lowest of the floors before and after it (either may
    /// apply to a decision taken while it is applied); otherwise the floor.
    pub(super) fn floor_in(&self, ctx: &Ctx, q: QueueId, start: Time) -> u8 {
        let floor = self.floor(q, start);
        let pool = self.params[&q].pool;
        if !matches!(ctx, Ctx::Event(Event::Reconfigure(_))) || !self.q_present[pool] {
            return floor;
        }
        let waited = self.now.saturating_since(start);
        let mut new = 5;
        for &(after, p) in &self.qspecs[pool].relax {
            if waited >= Duration::from_secs(after) {
                new = p;
            }
        }
        floor.min(new)
    }

    // -------------------------------------------------------------- prediction of errors

    pub(super) fn need_agent(&self, a: AgentId) -> Result<&AgentM, EventError> {
        if self.agent_present(a) {
            Ok(&self.agents[&a])
        } else {
            Err(EventError::UnknownAgent(a))
        }
    }

    pub(super) fn open_visit(&self, c: CallId) -> Option<&Visit> {
        self.calls.get(&c).and_then(|m| m.open.as_ref())
    }

    /// The operator on own call `c`, if it is live.
    pub(super) fn own_agent(&self, c: CallId) -> Option<AgentId> {
        self.agents
            .iter()
            .find(|(_, m)| m.own.as_ref().is_some_and(|o| o.0 == c))
            .map(|(&a, _)| a)
    }

    pub(super) fn own_calls(&self) -> Vec<CallId> {
        self.agents
            .values()
            .filter_map(|m| m.own.as_ref().map(|o| o.0))
            .collect()
    }

    /// A request of an operator on an own call changes what they come back to (a pending
    /// logout is never overridden).
    pub(super) fn own_call_request(&mut self, ev: &Event) {
        let (agent, next) = match ev {
            Event::Logout { agent } => (agent, Some(Next::LogOut)),
            Event::NotReady { agent, reason } => (agent, Some(Next::NotReady(reason.clone()))),
            Event::ConnectionLost { agent } => {
                (agent, Some(Next::NotReady(NotReadyReason::ConnectionLost)))
            }
            Event::Ready { agent } => (agent, Some(Next::Ready)),
            Event::WrapUpDone { agent } => (agent, None),
            // The phone back Ready during the call undoes the loss's Not Ready.
            Event::Login { agent, ready: true } => {
                if let Some((_, n)) = self.agents.get_mut(agent).and_then(|m| m.own.as_mut())
                    && *n == Next::NotReady(NotReadyReason::ConnectionLost)
                {
                    *n = Next::Ready;
                }
                return;
            }
            _ => return,
        };
        let Some((_, n)) = self.agents.get_mut(agent).and_then(|m| m.own.as_mut()) else {
            return;
        };
        match next {
            _ if *n == Next::LogOut => {}
            Some(next) => *n = next,
            None => {
                if matches!(n, Next::WrapUpUntil(_)) {
                    *n = Next::Ready;
                }
            }
        }
    }

    pub(super) fn predict(&self, ev: &Event) -> Result<(), EventError> {
        match ev {
            Event::Login { agent, .. }
            | Event::Logout { agent }
            | Event::NotReady { agent, .. }
            | Event::WrapUpDone { agent }
            | Event::ConnectionLost { agent } => self.need_agent(*agent).map(|_| ()),
            Event::Ready { agent } => {
                let m = self.need_agent(*agent)?;
                match m.state {
                    AgentState::Offered { .. } | AgentState::OnCall { .. } => {
                        Err(EventError::InvalidState {
                            agent: *agent,
                            state: m.state.kind(),
                        })
                    }
                    _ => Ok(()),
                }
            }
            Event::CallArrived {
                call,
                queue,
                skills,
                ..
            } => {
                if !self.params.contains_key(queue) {
                    return Err(EventError::UnknownQueue(*queue));
                }
                if self.open_visit(*call).is_some() || self.own_agent(*call).is_some() {
                    return Err(EventError::DuplicateCall(*call));
                }
                for r in skills.iter().flatten() {
                    if !SKILLS
                        .iter()
                        .any(|s| self.router.skill_id(s) == Some(r.skill))
                    {
                        return Err(EventError::UnknownSkill(r.skill));
                    }
                    if !(1..=5).contains(&r.min) {
                        return Err(EventError::BadProficiency(r.min));
                    }
                }
                Ok(())
            }
            Event::OfferAccepted { call, agent } | Event::OfferDeclined { call, agent } => {
                let m = self.need_agent(*agent)?;
                if self.open_visit(*call).is_none() {
                    return Err(EventError::UnknownCall(*call));
                }
                if m.offer.map(|o| o.0) != Some(*call) {
                    return Err(EventError::NotOffered {
                        call: *call,
                        agent: *agent,
                    });
                }
                Ok(())
            }
            Event::CallerHungUp { call } => self
                .open_visit(*call)
                .map(|_| ())
                .ok_or(EventError::UnknownCall(*call)),
            Event::CallEnded { call } => match self.open_visit(*call) {
                None => Err(EventError::UnknownCall(*call)),
                Some(v) if v.connected.is_none() => Err(EventError::NotConnected(*call)),
                Some(_) => Ok(()),
            },
            Event::Transfer { call, queue, .. } => {
                if self.params.get(queue).is_none_or(|p| p.retired) {
                    return Err(EventError::UnknownQueue(*queue));
                }
                self.open_visit(*call)
                    .map(|_| ())
                    .ok_or(EventError::UnknownCall(*call))
            }
            Event::OutboundStarted { agent, call } => {
                let m = self.need_agent(*agent)?;
                if self.open_visit(*call).is_some() || self.own_agent(*call).is_some() {
                    return Err(EventError::DuplicateCall(*call));
                }
                match m.state {
                    AgentState::LoggedOut
                    | AgentState::OnCall { .. }
                    | AgentState::OutboundCall { .. } => Err(EventError::InvalidState {
                        agent: *agent,
                        state: m.state.kind(),
                    }),
                    _ => Ok(()),
                }
            }
            Event::OutboundEnded { call } => self
                .own_agent(*call)
                .map(|_| ())
                .ok_or(EventError::UnknownCall(*call)),
            Event::Reconfigure(config) => {
                let problems = config.problems();
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(EventError::BadConfig(
                        problems.iter().map(|p| p.to_string()).collect(),
                    ))
                }
            }
        }
    }
}
