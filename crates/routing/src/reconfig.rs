//! Applying a configuration at run time without losing waiting calls, offers or calls in
//! progress. Ids stay stable: a queue or operator keeps its id by name; removed operators
//! are logged out (after their call, queue call or own, if talking); removed queues are retired: they take no
//! new calls but serve the ones they hold with the members they had.

use crate::config::{ConfigError, OverflowConfig, RouterConfig};
use crate::event::{AgentState, Cause, OverflowTarget, SkillReq};
use crate::ids::{QueueId, SkillId};
use crate::rng::Entropy;
use crate::router::{
    AfterCall, AgentRec, CallState, Counters, Member, QueueParams, QueueRec, Router,
};
use crate::time::Time;
use smallvec::SmallVec;
use std::collections::BTreeSet;
use std::sync::Arc;

impl<R: Entropy> Router<R> {
    fn intern_skill(&mut self, name: &str) -> Result<SkillId, ConfigError> {
        if let Some(&id) = self.skill_names.get(name) {
            return Ok(id);
        }
        let id = u16::try_from(self.skill_names.len()).map_err(|_| ConfigError {
            key: format!("skill.{name}"),
            problem: "more than 65,535 distinct skills".into(),
        })?;
        self.skill_names.insert(Arc::from(name), SkillId(id));
        Ok(SkillId(id))
    }

    pub(crate) fn apply_config(
        &mut self,
        now: Time,
        config: &RouterConfig,
    ) -> Result<(), Vec<ConfigError>> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        if config.agents.len() >= u32::MAX as usize || config.queues.len() >= u32::MAX as usize {
            let problem = "too many entries".to_string();
            return Err(vec![ConfigError {
                key: "agent".into(),
                problem,
            }]);
        }
        // Skills first, so that nothing below can fail half-way.
        let mut errors = Vec::new();
        for name in config
            .queues
            .iter()
            .flat_map(|q| q.required_skills.iter().map(|r| r.skill.as_str()))
            .chain(
                config
                    .agents
                    .iter()
                    .flat_map(|a| a.skills.iter().map(|s| s.0.as_str())),
            )
        {
            if let Err(e) = self.intern_skill(name) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // Operators removed from the configuration leave, using the old structures.
        let keep: std::collections::HashSet<&str> =
            config.agents.iter().map(|a| a.name.as_str()).collect();
        for a in 0..self.agents.len() as u32 {
            let agent = &mut self.agents[a as usize];
            if agent.removed || keep.contains(&*agent.name) {
                continue;
            }
            agent.removed = true;
            match agent.state {
                AgentState::OnCall { .. } | AgentState::OutboundCall { .. } => {
                    agent.after_call = AfterCall::LogOut
                }
                _ => self.log_out(now, a, Cause::Reconfigured),
            }
        }

        // Queues: update in place by name, append new ones, retire missing ones.
        let wanted: std::collections::HashSet<&str> =
            config.queues.iter().map(|q| q.name.as_str()).collect();
        for q in &mut self.queues {
            q.retired = !wanted.contains(&*q.name);
        }
        for qc in &config.queues {
            if !self.queue_names.contains_key(qc.name.as_str()) {
                let idx = self.queues.len() as u32;
                let name: Arc<str> = Arc::from(qc.name.as_str());
                self.queue_names.insert(name.clone(), idx);
                self.queues.push(QueueRec {
                    name,
                    params: QueueParams {
                        ring_timeout: qc.ring_timeout,
                        wrap_up: qc.wrap_up,
                        max_wait: None,
                        overflow: OverflowTarget::None,
                        when_empty: qc.when_empty,
                        max_misses: 0,
                        service_level: qc.service_level,
                        required: Vec::new(),
                        relax: Vec::new(),
                    },
                    retired: false,
                    strategy: qc.strategy,
                    waiting: BTreeSet::new(),
                    available: BTreeSet::new(),
                    head_seq: 0,
                    tail_seq: 0,
                    rr_cursor: None,
                    logged_in: 0,
                    members: 0,
                    ringing: 0,
                    counters: Counters::default(),
                });
            }
        }
        for qc in &config.queues {
            let overflow = match &qc.overflow {
                None => OverflowTarget::None,
                Some(OverflowConfig::External(t)) => {
                    OverflowTarget::External(Arc::from(t.as_str()))
                }
                Some(OverflowConfig::Queue(t)) => OverflowTarget::Queue(QueueId(
                    self.queue_names.get(t.as_str()).copied().unwrap_or(0),
                )),
            };
            let required = qc
                .required_skills
                .iter()
                .filter_map(|r| {
                    Some(SkillReq {
                        skill: self.skill_id(&r.skill)?,
                        min: r.min,
                    })
                })
                .collect();
            let Some(&idx) = self.queue_names.get(qc.name.as_str()) else {
                continue;
            };
            self.queues[idx as usize].strategy = qc.strategy;
            self.queues[idx as usize].params = QueueParams {
                ring_timeout: qc.ring_timeout,
                wrap_up: qc.wrap_up,
                max_wait: qc.max_wait,
                overflow,
                when_empty: qc.when_empty,
                max_misses: qc.max_misses,
                service_level: qc.service_level,
                required,
                relax: qc.relax.clone(),
            };
        }

        // Operators: update in place by name, append new ones.
        for (order, ac) in config.agents.iter().enumerate() {
            let idx = match self.agent_names.get(ac.name.as_str()) {
                Some(&idx) => idx,
                None => {
                    let idx = self.agents.len() as u32;
                    let name: Arc<str> = Arc::from(ac.name.as_str());
                    self.agent_names.insert(name.clone(), idx);
                    self.agents.push(AgentRec {
                        name,
                        state: AgentState::LoggedOut,
                        since: now,
                        order: 0,
                        members: SmallVec::new(),
                        skills: SmallVec::new(),
                        misses: 0,
                        calls: 0,
                        talk: std::time::Duration::ZERO,
                        after_call: AfterCall::WrapUp,
                        removed: false,
                        epoch: 0,
                    });
                    idx
                }
            };
            let mut skills: SmallVec<[(SkillId, u8); 8]> = ac
                .skills
                .iter()
                .filter_map(|(s, p)| Some((self.skill_id(s)?, *p)))
                .collect();
            skills.sort_unstable();
            let mut members: SmallVec<[Member; 6]> = ac
                .queues
                .iter()
                .filter_map(|m| {
                    let queue = *self.queue_names.get(m.queue.as_str())?;
                    Some(Member {
                        queue,
                        penalty: m.penalty,
                    })
                })
                .collect();
            let agent = &mut self.agents[idx as usize];
            // Keep memberships of retired queues so their remaining calls are served.
            let queues = &self.queues;
            members.extend(
                agent
                    .members
                    .iter()
                    .filter(|m| queues[m.queue as usize].retired)
                    .copied(),
            );
            agent.order = order as u32;
            agent.skills = skills;
            agent.members = members;
            agent.removed = false;
        }

        self.rebuild_indexes();
        // Max wait and relaxation follow the new settings, for calls already queued too.
        let open: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| !matches!(c.state, CallState::Connected { .. }))
            .map(|(&id, _)| id)
            .collect();
        for c in open {
            self.arm_visit_timers(now, c);
        }
        // A waiting call may now have an operator (new members, new strategy, new skills).
        let waiting: Vec<u64> = self
            .queues
            .iter()
            .flat_map(|q| q.waiting.iter().map(|&k| crate::keys::key_call(k)))
            .collect();
        for c in waiting {
            if matches!(
                self.calls.get(&c).map(|c| &c.state),
                Some(CallState::Waiting)
            ) {
                self.dispatch_call(now, c, true);
            }
        }
        Ok(())
    }

    /// Recomputes every queue's Available indexes and counts from the operators.
    fn rebuild_indexes(&mut self) {
        for q in &mut self.queues {
            q.available.clear();
            q.logged_in = 0;
            q.members = 0;
        }
        self.skill_masks = self
            .agents
            .iter()
            .map(|a| {
                a.skills
                    .iter()
                    .fold(0, |m, &(s, _)| m | crate::select::skill_bit(s))
            })
            .collect();
        for agent in &self.agents {
            for m in &agent.members {
                let q = &mut self.queues[m.queue as usize];
                q.members += 1;
                if agent.state != AgentState::LoggedOut {
                    q.logged_in += 1;
                }
            }
        }
        for a in 0..self.agents.len() as u32 {
            if self.agents[a as usize].state == AgentState::Available {
                self.index(a, true);
            }
        }
    }
}
