//! Shared pieces of the routing benchmarks: a deterministic random source with the few
//! distributions the drivers need, and a generator of large, realistic router
//! configurations (queues of mixed strategies, operators in several queues with skills).

use homeline_routing::{
    AgentConfig, Entropy, MembershipConfig, OverflowConfig, QueueConfig, RelaxStep, RouterConfig,
    SkillRequirementConfig, SplitMix64, Strategy, WhenEmpty,
};
use std::time::Duration;

/// The driver's own random numbers (separate from the router's entropy source).
#[derive(Debug, Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed))
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// Uniform index in `0..n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Nanoseconds in `secs` seconds (fractional), for virtual time arithmetic.
pub fn secs(secs: f64) -> u64 {
    (secs * 1e9) as u64
}

/// The operator named for index `i`.
pub fn agent_name(i: usize) -> String {
    format!("op-{i:05}")
}

/// The queue named for index `i`.
pub fn queue_name(i: usize) -> String {
    format!("q-{i:04}")
}

/// The skill named for index `i`.
pub fn skill_name(i: usize) -> String {
    format!("skill-{i:02}")
}

/// How to shape a generated configuration.
#[derive(Debug, Clone)]
pub struct ScenarioSpec {
    pub agents: usize,
    pub queues: usize,
    /// Distinct skills in the whole configuration.
    pub skills: usize,
    /// Regular queue memberships per operator.
    pub memberships: usize,
    /// Skills per operator.
    pub skills_per_agent: usize,
    /// Members of each ring-all queue when ring-all queues are kept small (`None`: ring-all
    /// queues get regular memberships like every other queue).
    pub small_ring_all: Option<usize>,
    /// Strategy of queue `i`.
    pub strategy_of: fn(usize, usize) -> Strategy,
    /// Extra features (max wait with overflow, reject-when-empty, skill relaxation) on some
    /// queues, as in a real installation.
    pub extras: bool,
    pub seed: u64,
}

/// The mix of the main benchmark: mostly longest-idle, some of every other strategy, ring-all
/// on about 1 % of the queues.
pub fn mixed_strategy(i: usize, queues: usize) -> Strategy {
    if queues >= 20 && i % 100 == 99 {
        return Strategy::RingAll;
    }
    match i % 20 {
        12 => Strategy::RoundRobin,
        13 => Strategy::FewestCalls,
        14 => Strategy::LeastTalkTime,
        15 => Strategy::Linear,
        16 => Strategy::Random,
        17 | 18 => Strategy::Skills,
        _ => Strategy::LongestIdle,
    }
}

/// A generated configuration and what the drivers need to know about it.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub config: RouterConfig,
    /// Per queue, its members (operator indexes).
    pub queue_members: Vec<Vec<u32>>,
    /// Per operator, its skills as (skill index, proficiency).
    pub agent_skills: Vec<Vec<(u16, u8)>>,
    /// Per queue, its strategy.
    pub strategies: Vec<Strategy>,
}

impl ScenarioSpec {
    /// A spec with the brief's shape: ~5 queues and ~5 skills (of 50) per operator.
    pub fn new(agents: usize, queues: usize, seed: u64) -> Self {
        ScenarioSpec {
            agents,
            queues,
            skills: 50,
            memberships: 5,
            skills_per_agent: 5,
            small_ring_all: Some(8),
            strategy_of: mixed_strategy,
            extras: true,
            seed,
        }
    }

    /// Generates the configuration.
    pub fn build(&self) -> Scenario {
        let mut rng = Rng::new(self.seed ^ 0x5EED_C0F1_6000_0001);
        let nq = self.queues.max(1);
        let strategies: Vec<Strategy> = (0..nq).map(|i| (self.strategy_of)(i, nq)).collect();
        let small: Vec<bool> = strategies
            .iter()
            .map(|&s| s == Strategy::RingAll && self.small_ring_all.is_some())
            .collect();
        let regular: Vec<usize> = (0..nq).filter(|&i| !small[i]).collect();
        let regular = if regular.is_empty() {
            (0..nq).collect()
        } else {
            regular
        };

        // Skills of each operator.
        let nskills = self.skills.clamp(1, usize::from(u16::MAX));
        let per_agent = self.skills_per_agent.min(nskills);
        let mut agent_skills: Vec<Vec<(u16, u8)>> = Vec::with_capacity(self.agents);
        for _ in 0..self.agents {
            let mut s: Vec<(u16, u8)> = Vec::with_capacity(per_agent);
            while s.len() < per_agent {
                let skill = rng.index(nskills) as u16;
                if !s.iter().any(|&(k, _)| k == skill) {
                    s.push((skill, 1 + rng.below(5) as u8));
                }
            }
            agent_skills.push(s);
        }

        // Memberships.
        let per_agent_q = self.memberships.min(regular.len());
        let mut memberships: Vec<Vec<(usize, u8)>> = Vec::with_capacity(self.agents);
        let mut queue_members: Vec<Vec<u32>> = vec![Vec::new(); nq];
        for a in 0..self.agents {
            let mut m: Vec<(usize, u8)> = Vec::with_capacity(per_agent_q + 1);
            while m.len() < per_agent_q {
                let q = regular[rng.index(regular.len())];
                if !m.iter().any(|&(x, _)| x == q) {
                    m.push((q, rng.below(3) as u8));
                }
            }
            for &(q, _) in &m {
                queue_members[q].push(a as u32);
            }
            memberships.push(m);
        }
        if let Some(n) = self.small_ring_all {
            for q in (0..nq).filter(|&q| small[q]) {
                let mut added = 0;
                let mut tries = 0;
                while added < n.min(self.agents) && tries < 100 * n {
                    tries += 1;
                    let a = rng.index(self.agents);
                    if memberships[a].iter().any(|&(x, _)| x == q) {
                        continue;
                    }
                    memberships[a].push((q, rng.below(3) as u8));
                    queue_members[q].push(a as u32);
                    added += 1;
                }
            }
        }

        // Queues.
        let mut queues = Vec::with_capacity(nq);
        for (i, &strategy) in strategies.iter().enumerate() {
            let mut q = QueueConfig::new(queue_name(i));
            q.strategy = strategy;
            q.ring_timeout = Duration::from_secs(15);
            q.wrap_up = Duration::from_secs(5 + rng.below(11));
            q.max_misses = 3;
            if strategy == Strategy::Skills {
                // The skill most common among the members, at a low minimum, relaxed later.
                let mut count = vec![0u32; nskills];
                for &a in &queue_members[i] {
                    for &(s, _) in &agent_skills[a as usize] {
                        count[usize::from(s)] += 1;
                    }
                }
                let best = (0..nskills).max_by_key(|&s| count[s]).unwrap_or(0);
                q.required_skills = vec![SkillRequirementConfig {
                    skill: skill_name(best),
                    min: 2,
                }];
                q.relax = vec![
                    RelaxStep {
                        after: Duration::from_secs(30),
                        min_proficiency: 1,
                    },
                    RelaxStep {
                        after: Duration::from_secs(90),
                        min_proficiency: 0,
                    },
                ];
            }
            if self.extras {
                match i % 20 {
                    3 => {
                        q.max_wait = Some(Duration::from_secs(180));
                        q.overflow = Some(OverflowConfig::External("+4930123456".into()));
                    }
                    7 if nq > 1 => {
                        q.max_wait = Some(Duration::from_secs(180));
                        // Overflow to the next queue (never to itself).
                        q.overflow = Some(OverflowConfig::Queue(queue_name((i + 1) % nq)));
                    }
                    9 => q.when_empty = WhenEmpty::Reject,
                    _ => {}
                }
            }
            queues.push(q);
        }

        let agents = (0..self.agents)
            .map(|a| AgentConfig {
                name: agent_name(a),
                queues: memberships[a]
                    .iter()
                    .map(|&(q, penalty)| MembershipConfig {
                        queue: queue_name(q),
                        penalty,
                    })
                    .collect(),
                skills: agent_skills[a]
                    .iter()
                    .map(|&(s, p)| (skill_name(usize::from(s)), p))
                    .collect(),
            })
            .collect();

        Scenario {
            config: RouterConfig { queues, agents },
            queue_members,
            agent_skills,
            strategies,
        }
    }
}
