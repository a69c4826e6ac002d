//! The strategies: which Available operator gets a waiting call, and which waiting call an
//! operator who just became Available gets.
//!
//! Cost: the operator for a call is found by walking the queue's Available index in strategy
//! order and stopping at the first operator that qualifies (the first entry, when the call
//! needs no skills); `random` and `ring-all` walk the lowest eligible tier. The call for an
//! operator is the first call in each of its queues it qualifies for, best across queues by
//! (priority, the operator's penalty there, longest wait).

use crate::config::Strategy;
use crate::event::SkillReq;
use crate::keys::{key_agent, key_call, key_primary, key_tier, skill_key, tier_range};
use crate::rng::Entropy;
use crate::router::{AgentRec, CallState, QueueRec, Router};
use crate::time::Time;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::ops::RangeBounds;

/// What `pick` scans with: the operators and the call's requirements.
struct Scan<'a> {
    agents: &'a [AgentRec],
    reqs: &'a [SkillReq],
    floor: u8,
}

impl Scan<'_> {
    fn fits(&self, key: u128) -> bool {
        self.reqs.is_empty()
            || self.agents[key_agent(key) as usize].qualifies(self.reqs, self.floor)
    }

    /// The first key in `range` of `set` whose operator qualifies.
    fn first(&self, set: &BTreeSet<u128>, range: impl RangeBounds<u128>) -> Option<u128> {
        set.range(range).copied().find(|&k| self.fits(k))
    }

    /// Every qualifying key of one tier.
    fn tier(&self, set: &BTreeSet<u128>, tier: u8) -> impl Iterator<Item = u128> {
        set.range(tier_range(tier))
            .copied()
            .filter(|&k| self.fits(k))
    }
}

/// Picks the operators to ring for a call needing `reqs` (capped at `floor`) in `queue`:
/// their keys in the queue's Available index go to `out` (cleared first). Returns the new
/// round-robin cursor, if it moves.
pub(crate) fn pick(
    queue: &QueueRec,
    agents: &[AgentRec],
    reqs: &[SkillReq],
    floor: u8,
    rng: &mut impl Entropy,
    out: &mut Vec<u128>,
) -> Option<u64> {
    out.clear();
    let scan = Scan {
        agents,
        reqs,
        floor,
    };
    let set = &queue.available;
    let head = scan.first(set, ..)?;
    let tier = key_tier(head);
    match queue.strategy {
        Strategy::LongestIdle
        | Strategy::FewestCalls
        | Strategy::LeastTalkTime
        | Strategy::Linear => out.push(head),
        Strategy::RoundRobin => {
            let next = queue.rr_cursor.and_then(|cursor| {
                let after = crate::keys::agent_key(tier, 0, cursor, u32::MAX).saturating_add(1);
                scan.first(set, after..=*tier_range(tier).end())
            });
            let next = next.unwrap_or(head);
            out.push(next);
            return Some(key_primary(next));
        }
        Strategy::RingAll => out.extend(scan.tier(set, tier)),
        Strategy::Random => {
            let mut seen = 0u64;
            for k in scan.tier(set, tier) {
                seen += 1;
                if rng.below(seen) == 0 {
                    out.clear();
                    out.push(k);
                }
            }
        }
        Strategy::Skills => {
            // Best proficiency in the first required skill within the tier, else `head`.
            let best = reqs
                .first()
                .and_then(|r| queue.skill_set(r.skill))
                .and_then(|s| scan.first(s, tier_range(tier)));
            out.push(best.unwrap_or(head));
        }
    }
    None
}

/// How an operator ranks a call: higher priority, then its own lower penalty, then longer wait.
type Rank = (Reverse<u8>, u8, Time);

impl<R: Entropy> Router<R> {
    /// Offers waiting call `c` if an eligible operator is Available; `queued`: the call is in
    /// its queue's waiting set (and leaves it if offered). Returns whether it was offered.
    pub(crate) fn dispatch_call(&mut self, now: Time, c: u64, queued: bool) -> bool {
        let Some(call) = self.calls.get(&c) else {
            return false;
        };
        if !matches!(call.state, CallState::Waiting) {
            return false;
        }
        let q = call.queue as usize;
        if self.queues[q].strategy == Strategy::Skills
            && let Some(r) = call.reqs.first().copied()
        {
            self.track_skill(q, r.skill);
        }
        let Router {
            queues,
            agents,
            calls,
            rng,
            scratch,
            picked,
            ..
        } = self;
        let Some(call) = calls.get(&c) else {
            return false;
        };
        let queue = &queues[q];
        let floor = queue.floor(call.arrived, now);
        let cursor = pick(queue, agents, &call.reqs, floor, rng, picked);
        if let Some(cursor) = cursor {
            queues[q].rr_cursor = Some(cursor);
        }
        if picked.is_empty() {
            return false;
        }
        scratch.clear();
        scratch.extend(picked.iter().map(|&k| key_agent(k)));
        if queued {
            self.unqueue(c);
        }
        let agents = std::mem::take(&mut self.scratch);
        self.offer(now, c, &agents);
        self.scratch = agents;
        true
    }

    /// Starts keeping queue `q`'s per-skill index for `skill`, built from its Available
    /// index.
    fn track_skill(&mut self, q: usize, skill: crate::SkillId) {
        let Router { queues, agents, .. } = self;
        let queue = &mut queues[q];
        let s = usize::from(skill.0);
        if queue.by_skill.len() <= s {
            queue.by_skill.resize_with(s + 1, || None);
        }
        if queue.by_skill[s].is_some() {
            return;
        }
        let mut set = BTreeSet::new();
        for &k in &queue.available {
            let a = key_agent(k);
            let agent = &agents[a as usize];
            let prof = agent.proficiency(skill);
            if prof > 0 {
                set.insert(skill_key(key_tier(k), prof, agent.since.as_nanos(), a));
            }
        }
        queue.by_skill[s] = Some(set);
    }

    /// Offers Available operator `a` the best waiting call it qualifies for, if any.
    pub(crate) fn dispatch_agent(&mut self, now: Time, a: u32) {
        let agent = &self.agents[a as usize];
        let mut best: Option<(Rank, u64, u32)> = None;
        for m in &agent.members {
            let queue = &self.queues[m.queue as usize];
            for &key in &queue.waiting {
                let c = key_call(key);
                let Some(call) = self.calls.get(&c) else {
                    continue;
                };
                let floor = queue.floor(call.arrived, now);
                if !agent.qualifies(&call.reqs, floor) {
                    continue;
                }
                let rank = (Reverse(call.priority), m.penalty, call.arrived);
                if best.as_ref().is_none_or(|(b, _, _)| rank < *b) {
                    best = Some((rank, c, m.queue));
                }
                break;
            }
        }
        if let Some((_, c, q)) = best {
            let order = u64::from(self.agents[a as usize].order);
            let queue = &mut self.queues[q as usize];
            if queue.strategy == Strategy::RoundRobin {
                queue.rr_cursor = Some(order);
            }
            self.unqueue(c);
            self.offer(now, c, &[a]);
        }
    }
}
