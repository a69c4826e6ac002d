//! Applying one scenario operation, and the final drain.

use super::*;

impl Harness {
    pub(super) fn apply(&mut self, op: &Op) {
        match *op {
            Op::Login(a, ready) => self.event(Event::Login {
                agent: self.agent_sel(a),
                ready,
            }),
            Op::Logout(a) => self.event(Event::Logout {
                agent: self.agent_sel(a),
            }),
            Op::Ready(a) => self.event(Event::Ready {
                agent: self.agent_sel(a),
            }),
            Op::NotReady(a, r) => {
                let reason = match r {
                    0 => NotReadyReason::User(Arc::from("lunch")),
                    1 => NotReadyReason::User(Arc::from("training")),
                    _ => NotReadyReason::LoggedIn,
                };
                self.event(Event::NotReady {
                    agent: self.agent_sel(a),
                    reason,
                })
            }
            Op::WrapUpDone(a) => self.event(Event::WrapUpDone {
                agent: self.agent_sel(a),
            }),
            Op::ConnectionLost(a) => self.event(Event::ConnectionLost {
                agent: self.agent_sel(a),
            }),
            Op::Arrive {
                queue,
                priority,
                ref skills,
            } => {
                let skills = match skills {
                    SkillsSpec::Default => None,
                    SkillsSpec::Reqs(r) => Some(
                        r.iter()
                            .filter_map(|&(s, min)| {
                                Some(SkillReq {
                                    skill: self.skill(s)?,
                                    min,
                                })
                            })
                            .collect(),
                    ),
                    SkillsSpec::UnknownSkill => Some(vec![SkillReq {
                        skill: SkillId(999),
                        min: 3,
                    }]),
                    SkillsSpec::BadMin(min) => match self.skill(0) {
                        Some(skill) => Some(vec![SkillReq { skill, min: *min }]),
                        None => Some(vec![SkillReq {
                            skill: SkillId(998),
                            min: *min,
                        }]),
                    },
                };
                let call = CallId(self.next_call);
                self.next_call += 1;
                self.event(Event::CallArrived {
                    call,
                    queue: self.queue_sel(queue),
                    priority,
                    skills,
                })
            }
            Op::AcceptOffered(i) | Op::DeclineOffered(i) => {
                let offers: Vec<(AgentId, CallId)> = self
                    .agents
                    .iter()
                    .filter_map(|(&a, m)| m.offer.map(|o| (a, o.0)))
                    .collect();
                if offers.is_empty() {
                    return;
                }
                let (agent, call) = offers[i as usize % offers.len()];
                if matches!(op, Op::AcceptOffered(_)) {
                    self.event(Event::OfferAccepted { call, agent })
                } else {
                    self.event(Event::OfferDeclined { call, agent })
                }
            }
            Op::AcceptAny { agent, call } => {
                let (agent, call) = (self.agent_sel(agent), self.any_call(call));
                self.event(Event::OfferAccepted { call, agent })
            }
            Op::DeclineAny { agent, call } => {
                let (agent, call) = (self.agent_sel(agent), self.any_call(call));
                self.event(Event::OfferDeclined { call, agent })
            }
            Op::HangUp(i) => {
                let live = self.live_calls();
                let call = if live.is_empty() {
                    self.any_call(i)
                } else {
                    live[i as usize % live.len()]
                };
                self.event(Event::CallerHungUp { call })
            }
            Op::EndConnected(i) => {
                let connected: Vec<CallId> = self.agents.values().filter_map(|m| m.call).collect();
                if connected.is_empty() {
                    return;
                }
                let call = connected[i as usize % connected.len()];
                self.event(Event::CallEnded { call })
            }
            Op::EndAny(i) => {
                let call = self.any_call(i);
                self.event(Event::CallEnded { call })
            }
            Op::Transfer {
                call,
                queue,
                priority,
            } => {
                let live = self.live_calls();
                let call = if live.is_empty() {
                    self.any_call(call)
                } else {
                    live[call as usize % live.len()]
                };
                self.event(Event::Transfer {
                    call,
                    queue: self.queue_sel(queue),
                    priority,
                })
            }
            Op::Duplicate(i) => {
                let live = self.live_calls();
                if live.is_empty() {
                    return;
                }
                let call = live[i as usize % live.len()];
                let queue = self.calls[&call].open.as_ref().expect("live").queue;
                self.event(Event::CallArrived {
                    call,
                    queue,
                    priority: 0,
                    skills: None,
                })
            }
            Op::Advance { ms, late } => {
                let target = self.now + Duration::from_millis(u64::from(ms));
                if late {
                    let was_late = self.router.poll_timeout().is_some_and(|t| t < target);
                    self.now = target;
                    self.timeout(was_late);
                } else {
                    while let Some(t) = self.router.poll_timeout().filter(|&t| t <= target) {
                        self.now = self.now.max(t);
                        self.timeout(false);
                    }
                    self.now = target;
                }
            }
            Op::AdvanceToTimeout => {
                if let Some(t) = self.router.poll_timeout() {
                    self.now = self.now.max(t);
                    self.timeout(false);
                }
            }
            Op::Toggle(queue, sel) => self.reconfigure(queue, sel),
            Op::Mutate(kind, idx, v) => self.mutate(kind, idx, v),
            Op::ReuseId { call, queue } => {
                let ended: Vec<CallId> = self
                    .calls
                    .iter()
                    .filter(|(_, m)| m.open.is_none())
                    .map(|(&c, _)| c)
                    .collect();
                if ended.is_empty() {
                    return;
                }
                let call = ended[call as usize % ended.len()];
                self.event(Event::CallArrived {
                    call,
                    queue: self.queue_sel(queue),
                    priority: 0,
                    skills: None,
                })
            }
            Op::Dial { agent, id } => {
                let agent = self.agent_sel(agent);
                let (live, own) = (self.live_calls(), self.own_calls());
                let call = match id % 8 {
                    0 if !live.is_empty() => live[usize::from(id / 8) % live.len()],
                    1 if !own.is_empty() => own[usize::from(id / 8) % own.len()],
                    _ => {
                        self.next_call += 1;
                        CallId(self.next_call - 1)
                    }
                };
                self.event(Event::OutboundStarted { agent, call })
            }
            Op::HangUpOwn(i) => {
                let own = self.own_calls();
                let call = if own.is_empty() {
                    self.any_call(i)
                } else {
                    own[i as usize % own.len()]
                };
                self.event(Event::OutboundEnded { call })
            }
            Op::BadConfig(kind) => {
                let mut config = self.build_config();
                let first = config.queues[0].clone();
                match kind % 5 {
                    0 => config.queues.push(first),
                    1 => config.agents.push(AgentConfig {
                        name: "stranger".into(),
                        queues: vec![MembershipConfig {
                            queue: "no-such-queue".into(),
                            penalty: 0,
                        }],
                        skills: vec![("brand-new-skill".into(), 3)],
                    }),
                    2 => config.queues[0].ring_timeout = Duration::ZERO,
                    3 => config.queues[0].overflow = Some(OverflowConfig::Queue(first.name)),
                    _ => {
                        config.queues[0].relax = vec![
                            RelaxStep {
                                after: Duration::from_secs(9),
                                min_proficiency: 2,
                            },
                            RelaxStep {
                                after: Duration::from_secs(3),
                                min_proficiency: 9,
                            },
                        ]
                    }
                }
                self.event(Event::Reconfigure(Arc::new(config)));
                if self.router.skill_id("brand-new-skill").is_some() {
                    fail!(self, "a rejected configuration interned its skills");
                }
                self.check_ids();
            }
        }
    }

    /// Ends every call (hang-up or call end), then runs out every deadline, and checks that
    /// each call had exactly one outcome per visit.
    pub(super) fn drain(&mut self) {
        while let Some(&call) = self.own_calls().first() {
            self.event(Event::OutboundEnded { call });
        }
        let mut flip = false;
        while let Some(&call) = self.live_calls().first() {
            let connected = self.open_visit(call).is_some_and(|v| v.connected.is_some());
            flip = !flip;
            if connected && flip {
                self.event(Event::CallEnded { call });
            } else {
                self.event(Event::CallerHungUp { call });
            }
        }
        while let Some(t) = self.router.poll_timeout() {
            self.now = self.now.max(t);
            self.timeout(false);
        }
        self.now = self.now + Duration::from_secs(3600);
        self.timeout(false);
        let mut visits = 0;
        for (&c, m) in &self.calls {
            if m.open.is_some() || m.visits == 0 || m.outcomes != m.visits {
                fail!(
                    self,
                    "{c:?}: {} visits, {} outcomes, open {:?}",
                    m.visits,
                    m.outcomes,
                    m.open
                );
            }
            visits += u64::from(m.visits);
        }
        if visits != self.outcomes_seen {
            fail!(
                self,
                "{} Outcome commands for {visits} visits",
                self.outcomes_seen
            );
        }
        if self.router.calls_in_progress() != 0 || self.router.poll_timeout().is_some() {
            fail!(self, "router not idle after drain");
        }
        for (&a, m) in &self.agents {
            if matches!(
                m.state,
                AgentState::Offered { .. }
                    | AgentState::OnCall { .. }
                    | AgentState::WrapUp { .. }
                    | AgentState::OutboundCall { .. }
            ) {
                fail!(self, "{a:?} still {:?} after drain", m.state);
            }
        }
        for (&q, c) in &self.counts {
            if c.offered != c.answered + c.abandoned + c.overflowed + c.rejected {
                fail!(self, "{q:?}: offered != ended after drain: {c:?}");
            }
        }
    }
}
