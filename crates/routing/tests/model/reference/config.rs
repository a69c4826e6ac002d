//! The router's configuration from the scenario's specs, and the ids it hands out.

use super::*;

impl Harness {
    pub(super) fn build_config(&self) -> RouterConfig {
        let mut queues = Vec::new();
        for (i, q) in self.qspecs.iter().enumerate() {
            if !self.q_present[i] {
                continue;
            }
            let overflow = match q.overflow {
                OvSpec::None => None,
                OvSpec::Queue(t) if t != i && self.q_present[t] => {
                    Some(OverflowConfig::Queue(qname(t)))
                }
                OvSpec::Queue(_) | OvSpec::External => {
                    Some(OverflowConfig::External(format!("ext-{i}")))
                }
            };
            queues.push(QueueConfig {
                name: qname(i),
                strategy: q.strategy,
                ring_timeout: Duration::from_secs(q.ring_timeout),
                wrap_up: Duration::from_secs(q.wrap_up),
                max_wait: q.max_wait.map(Duration::from_secs),
                overflow,
                when_empty: if q.reject_when_empty {
                    WhenEmpty::Reject
                } else {
                    WhenEmpty::Wait
                },
                max_misses: q.max_misses,
                service_level: Duration::from_secs(20),
                required_skills: q
                    .required
                    .iter()
                    .map(|&(s, min)| SkillRequirementConfig {
                        skill: SKILLS[s].into(),
                        min,
                    })
                    .collect(),
                relax: q
                    .relax
                    .iter()
                    .map(|&(after, p)| RelaxStep {
                        after: Duration::from_secs(after),
                        min_proficiency: p,
                    })
                    .collect(),
            });
        }
        let mut agents = Vec::new();
        for (i, a) in self.aspecs.iter().enumerate() {
            if !self.a_present[i] {
                continue;
            }
            agents.push(AgentConfig {
                name: aname(i),
                queues: a
                    .queues
                    .iter()
                    .filter(|(q, _)| self.q_present[*q])
                    .map(|&(q, penalty)| MembershipConfig {
                        queue: qname(q),
                        penalty,
                    })
                    .collect(),
                skills: a
                    .skills
                    .iter()
                    .map(|&(s, p)| (SKILLS[s].to_string(), p))
                    .collect(),
            });
        }
        RouterConfig { queues, agents }
    }

    /// New names get the next dense id, in configuration order (queues, then agents).
    pub(super) fn assign_ids(&mut self) {
        for i in 0..self.qspecs.len() {
            if self.q_present[i] && self.q_ids[i].is_none() {
                let id = QueueId(self.params.len() as u32);
                self.q_ids[i] = Some(id);
                self.counts.insert(id, Counts::default());
                // Placeholder, filled by update_params.
                self.params.insert(
                    id,
                    QParams {
                        pool: i,
                        strategy: Policy::LongestIdle,
                        ring: Duration::ZERO,
                        wrap: Duration::ZERO,
                        overflow: OverflowTarget::None,
                        max_misses: 0,
                        reject_when_empty: false,
                        max_wait: None,
                        required: Vec::new(),
                        relax: Vec::new(),
                        retired: false,
                    },
                );
            }
        }
        for i in 0..self.aspecs.len() {
            if self.a_present[i] && self.a_ids[i].is_none() {
                let id = AgentId(self.agents.len() as u32);
                self.a_ids[i] = Some(id);
                self.agents.insert(
                    id,
                    AgentM {
                        pool: i,
                        state: AgentState::LoggedOut,
                        offer: None,
                        call: None,
                        misses: 0,
                        expect_miss: None,
                        last_queue: None,
                        own: None,
                    },
                );
            }
        }
    }

    pub(super) fn skill(&self, s: usize) -> Option<SkillId> {
        self.router.skill_id(SKILLS[s])
    }

    pub(super) fn update_params(&mut self) {
        for i in 0..self.qspecs.len() {
            let Some(id) = self.q_ids[i] else { continue };
            if !self.q_present[i] {
                if let Some(p) = self.params.get_mut(&id) {
                    p.retired = true;
                }
                continue;
            }
            let overflow = self.spec_overflow(i);
            let q = &self.qspecs[i];
            let required = q
                .required
                .iter()
                .map(|&(s, min)| SkillReq {
                    skill: self.skill(s).expect("configured skill"),
                    min,
                })
                .collect();
            let p = QParams {
                pool: i,
                strategy: q.strategy,
                ring: Duration::from_secs(q.ring_timeout),
                wrap: Duration::from_secs(q.wrap_up),
                overflow,
                max_misses: q.max_misses,
                reject_when_empty: q.reject_when_empty,
                max_wait: q.max_wait.map(Duration::from_secs),
                required,
                relax: q
                    .relax
                    .iter()
                    .map(|&(a, p)| (Duration::from_secs(a), p))
                    .collect(),
                retired: false,
            };
            self.params.insert(id, p);
        }
    }

    pub(super) fn check_ids(&self) {
        for i in 0..self.qspecs.len() {
            let want = if self.q_present[i] {
                self.q_ids[i]
            } else {
                None
            };
            if self.router.queue_id(&qname(i)) != want {
                fail!(
                    self,
                    "queue_id({}) = {:?}, model {want:?}",
                    qname(i),
                    self.router.queue_id(&qname(i))
                );
            }
        }
        for (&q, p) in &self.params {
            let retired = self.router.queue_stats(q, self.now).map(|s| s.retired);
            if retired != Some(p.retired) {
                fail!(self, "{q:?}: retired {retired:?} but model {}", p.retired);
            }
        }
        for i in 0..self.aspecs.len() {
            let want = if self.a_present[i] {
                self.a_ids[i]
            } else {
                None
            };
            if self.router.agent_id(&aname(i)) != want {
                fail!(
                    self,
                    "agent_id({}) = {:?}, model {want:?}",
                    aname(i),
                    self.router.agent_id(&aname(i))
                );
            }
        }
    }
}
