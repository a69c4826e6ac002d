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
use crate::keys::{key_agent, key_call, key_primary, key_tier, tier_range};
use crate::rng::Entropy;
use crate::router::{AgentRec, CallState, QueueRec, Router};
use crate::time::Time;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::ops::RangeBounds;

/// What `pick` scans with: the operators, their skill masks and the call's requirements.
struct Scan<'a> {
    agents: &'a [AgentRec],
    masks: &'a [u64],
    reqs: &'a [SkillReq],
    floor: u8,
    /// Skills (as mask bits) an operator must have at all.
    need: u64,
}

impl<'a> Scan<'a> {
    fn new(agents: &'a [AgentRec], masks: &'a [u64], reqs: &'a [SkillReq], floor: u8) -> Self {
        let need = reqs
            .iter()
            .filter(|r| r.min.min(floor) > 0)
            .fold(0, |m, r| m | skill_bit(r.skill));
        Scan {
            agents,
            masks,
            reqs,
            floor,
            need,
        }
    }

    /// Whether the operator of `key` qualifies. The dense mask array is checked first, so
    /// most operators who lack a skill are skipped without touching their record.
    fn fits(&self, key: u128) -> bool {
        if self.reqs.is_empty() {
            return true;
        }
        let a = key_agent(key) as usize;
        self.masks[a] & self.need == self.need && self.agents[a].qualifies(self.reqs, self.floor)
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

/// The bit of `skill` in an operator's skill mask (exact below 64 skills; above, a filter
/// with false positives that the full check removes).
pub(crate) fn skill_bit(skill: crate::SkillId) -> u64 {
    1 << (skill.0 % 64)
}

/// Picks the operators to ring for a call needing `reqs` (capped at `floor`) in `queue`:
/// their keys in the queue's Available index go to `out` (cleared first). Returns the new
/// round-robin cursor, if it moves.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pick(
    queue: &QueueRec,
    agents: &[AgentRec],
    masks: &[u64],
    reqs: &[SkillReq],
    floor: u8,
    rng: &mut impl Entropy,
    out: &mut Vec<u128>,
) -> Option<u64> {
    out.clear();
    let scan = Scan::new(agents, masks, reqs, floor);
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
            // Best proficiency in the first required skill within the tier; the index is in
            // longest-idle order, so the first of equals is the longest idle.
            let mut best = (head, 0u8);
            if let Some(r) = reqs.first() {
                for k in scan.tier(set, tier) {
                    let p = agents[key_agent(k) as usize].proficiency(r.skill);
                    if p > best.1 {
                        best = (k, p);
                        if p >= 5 {
                            break;
                        }
                    }
                }
            }
            out.push(best.0);
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
        let Router {
            queues,
            agents,
            skill_masks,
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
        let cursor = pick(queue, agents, skill_masks, &call.reqs, floor, rng, picked);
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
