//! Driving the router: events, timeouts, reconfigurations, and each step's commands.

use super::*;

impl Harness {
    pub(super) fn event(&mut self, ev: Event) {
        self.steps += 1;
        self.log(format!("{:?} {ev:?}", self.now));
        let predicted = self.predict(&ev);
        let res = self.router.handle(self.now, ev.clone());
        if res != predicted {
            fail!(
                self,
                "{ev:?}: router returned {res:?}, model predicted {predicted:?}"
            );
        }
        if let Err(e) = res {
            cov(Cov::ExpectedError);
            if matches!(e, EventError::NotOffered { .. }) {
                cov(Cov::NotOffered);
            }
            let cmds: Vec<Command> = self.router.drain_commands().collect();
            if !cmds.is_empty() {
                fail!(
                    self,
                    "{ev:?} failed with {e:?} but produced commands {cmds:?}"
                );
            }
            self.end_of_step(&Ctx::Event(ev));
            return;
        }
        // Effects the model derives from the accepted event itself.
        match &ev {
            Event::CallArrived {
                call,
                queue,
                skills,
                ..
            } => {
                let reqs = skills
                    .clone()
                    .unwrap_or_else(|| self.params[queue].required.clone());
                // A re-used id (the earlier call has ended) keeps counting visits/outcomes.
                let m = self.calls.entry(*call).or_insert(CallM {
                    reqs: Vec::new(),
                    visits: 0,
                    outcomes: 0,
                    open: None,
                });
                m.reqs = reqs;
                self.open(*call, *queue);
            }
            Event::Ready { agent } => {
                let m = self.agents.get_mut(agent).expect("known");
                if !matches!(m.state, AgentState::Available) {
                    m.misses = 0;
                }
            }
            Event::Login { agent, .. } => {
                let m = self.agents.get_mut(agent).expect("known");
                let lost = AgentState::NotReady {
                    reason: NotReadyReason::ConnectionLost,
                };
                if m.state == AgentState::LoggedOut || m.state == lost {
                    m.misses = 0;
                }
            }
            _ => {}
        }
        self.own_call_request(&ev);
        self.process(Ctx::Event(ev));
    }

    pub(super) fn timeout(&mut self, late: bool) {
        self.steps += 1;
        self.log(format!(
            "{:?} handle_timeout{}",
            self.now,
            if late { " (late)" } else { "" }
        ));
        if late {
            cov(Cov::LateTimeout);
        }
        self.router.handle_timeout(self.now);
        self.process(Ctx::Timeout { late });
    }

    pub(super) fn reconfigure(&mut self, queue: bool, sel: u8) {
        if queue {
            let i = sel as usize % self.qspecs.len();
            let present = self.q_present.iter().filter(|p| **p).count();
            if self.q_present[i] && present == 1 {
                return;
            }
            self.q_present[i] = !self.q_present[i];
        } else {
            let i = sel as usize % self.aspecs.len();
            self.a_present[i] = !self.a_present[i];
        }
        self.send_config(None);
    }

    /// Sends the current specs as a reconfiguration; `old` are the operators before a change.
    pub(super) fn send_config(&mut self, old: Option<Vec<ASpec>>) {
        cov(Cov::Reconfigured);
        let config = Arc::new(self.build_config());
        self.assign_ids();
        self.old_aspecs = Some(old.unwrap_or_else(|| self.aspecs.clone()));
        self.event(Event::Reconfigure(config));
        self.old_aspecs = None;
        self.check_ids();
    }

    /// The overflow target queue `pool` gets from its (current) spec.
    pub(super) fn spec_overflow(&self, i: usize) -> OverflowTarget {
        match self.qspecs[i].overflow {
            OvSpec::None => OverflowTarget::None,
            OvSpec::Queue(t) if t != i && self.q_present[t] => {
                OverflowTarget::Queue(self.q_ids[t].expect("present queue has an id"))
            }
            OvSpec::Queue(_) | OvSpec::External => {
                OverflowTarget::External(Arc::from(format!("ext-{i}")))
            }
        }
    }

    pub(super) fn mutate(&mut self, kind: u8, idx: u8, v: u8) {
        let old = self.aspecs.clone();
        let nq = self.qspecs.len();
        let q = &mut self.qspecs[idx as usize % nq];
        let na = self.aspecs.len();
        let a = &mut self.aspecs[idx as usize % na];
        match kind % 12 {
            10 => {
                q.relax = match v % 3 {
                    0 => Vec::new(),
                    1 => vec![(1 + u64::from(v / 3 % 20), v / 7 % 6)],
                    _ => vec![
                        (1 + u64::from(v / 3 % 10), 3),
                        (11 + u64::from(v / 3 % 10), 0),
                    ],
                }
            }
            11 => q.max_wait = (!v.is_multiple_of(3)).then(|| 5 + u64::from(v / 3 % 56)),
            0 => q.strategy = Policy::ALL[v as usize % Policy::ALL.len()],
            1 => q.ring_timeout = 1 + u64::from(v % 20),
            2 => q.wrap_up = u64::from(v % 8),
            3 => q.reject_when_empty = !q.reject_when_empty,
            4 => q.max_misses = u32::from(v % 3),
            5 => {
                q.overflow = match v % 3 {
                    0 => OvSpec::None,
                    1 => OvSpec::Queue(v as usize / 3 % nq),
                    _ => OvSpec::External,
                }
            }
            6 => {
                q.required = if q.required.is_empty() {
                    vec![(v as usize % SKILLS.len(), 1 + v / 3 % 5)]
                } else {
                    Vec::new()
                }
            }
            7 => {
                let s = v as usize % SKILLS.len();
                let prof = v / 3 % 6;
                a.skills.retain(|(x, _)| *x != s);
                if prof > 0 {
                    a.skills.push((s, prof));
                }
            }
            8 => {
                let qi = v as usize % nq;
                if a.queues.iter().any(|(x, _)| *x == qi) {
                    a.queues.retain(|(x, _)| *x != qi);
                } else {
                    a.queues.push((qi, v / 7 % 3));
                }
            }
            _ => {
                let pen = v % 3;
                if let Some(m) = a.queues.get_mut(v as usize / 3 % nq.max(1)) {
                    m.1 = pen;
                }
            }
        }
        cov(Cov::Mutated);
        self.send_config(Some(old));
    }

    pub(super) fn open(&mut self, c: CallId, q: QueueId) {
        let now = self.now;
        let m = self.calls.get_mut(&c).expect("known call");
        m.visits += 1;
        m.open = Some(Visit {
            queue: q,
            start: now,
            connected: None,
        });
        self.counts.get_mut(&q).expect("known queue").offered += 1;
    }

    pub(super) fn process(&mut self, ctx: Ctx) {
        let cmds: Vec<Command> = self.router.drain_commands().collect();
        for cmd in cmds {
            self.log(format!("    -> {cmd:?}"));
            self.command(&ctx, cmd);
        }
        if matches!(ctx, Ctx::Event(Event::Reconfigure(_))) {
            // An operator removed during an own call leaves after it.
            for m in self.agents.values_mut() {
                if let Some((_, next)) = &mut m.own
                    && !self.a_present[m.pool]
                {
                    *next = Next::LogOut;
                }
            }
            // Commands of a reconfiguration come under the old parameters (removed operators
            // leave first); the model switches to the new ones afterwards.
            self.assign_ids();
            self.update_params();
            self.update_memberships();
        }
        self.end_of_step(&ctx);
    }
}
