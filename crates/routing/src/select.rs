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

/// The first key in `range` of `set` whose operator qualifies.
fn first<'a>(
    set: &'a BTreeSet<u128>,
    range: impl RangeBounds<u128>,
    agents: &'a [AgentRec],
    reqs: &'a [SkillReq],
    floor: u8,
) -> Option<u128> {
    let ok = |k: &&u128| reqs.is_empty() || agents[key_agent(**k) as usize].qualifies(reqs, floor);
    set.range(range).find(ok).copied()
}

/// Picks the operators to ring for a call needing `reqs` (capped at `floor`) in `queue`,
/// into `out` (cleared first). Returns the new round-robin cursor, if it moves.
pub(crate) fn pick(
    queue: &QueueRec,
    agents: &[AgentRec],
    reqs: &[SkillReq],
    floor: u8,
    rng: &mut impl Entropy,
    out: &mut Vec<u32>,
) -> Option<u64> {
    out.clear();
    let set = &queue.available;
    let head = first(set, .., agents, reqs, floor)?;
    let tier = key_tier(head);
    match queue.params.strategy {
        Strategy::LongestIdle
        | Strategy::FewestCalls
        | Strategy::LeastTalkTime
        | Strategy::Linear => out.push(key_agent(head)),
        Strategy::RoundRobin => {
            let next = queue.rr_cursor.and_then(|cursor| {
                let after = crate::keys::agent_key(tier, 0, cursor, u32::MAX).saturating_add(1);
                first(set, after..=*tier_range(tier).end(), agents, reqs, floor)
            });
            let next = next.unwrap_or(head);
            out.push(key_agent(next));
            return Some(key_primary(next));
        }
        Strategy::RingAll => {
            for &k in set.range(tier_range(tier)) {
                let a = key_agent(k);
                if reqs.is_empty() || agents[a as usize].qualifies(reqs, floor) {
                    out.push(a);
                }
            }
        }
        Strategy::Random => {
            let mut seen = 0u64;
            for &k in set.range(tier_range(tier)) {
                let a = key_agent(k);
                if reqs.is_empty() || agents[a as usize].qualifies(reqs, floor) {
                    seen += 1;
                    if rng.below(seen) == 0 {
                        out.clear();
                        out.push(a);
                    }
                }
            }
        }
        Strategy::Skills => {
            let best = reqs
                .first()
                .and_then(|r| queue.skill_set(r.skill))
                .and_then(|s| first(s, tier_range(tier), agents, reqs, floor));
            out.push(key_agent(best.unwrap_or(head)));
        }
    }
    None
}

/// How an operator ranks a call: higher priority, then its own lower penalty, then longer wait.
type Rank = (Reverse<u8>, u8, Time);

impl<R: Entropy> Router<R> {
    /// Offers waiting call `c` if an eligible operator is Available.
    pub(crate) fn dispatch_call(&mut self, now: Time, c: u64) {
        let Router {
            queues,
            agents,
            calls,
            rng,
            scratch,
            ..
        } = self;
        let Some(call) = calls.get(&c) else { return };
        if !matches!(call.state, CallState::Waiting) {
            return;
        }
        let queue = &queues[call.queue as usize];
        let floor = queue.floor(call.arrived, now);
        let cursor = pick(queue, agents, &call.reqs, floor, rng, scratch);
        if scratch.is_empty() {
            return;
        }
        if let Some(cursor) = cursor {
            queues[call.queue as usize].rr_cursor = Some(cursor);
        }
        let picked = std::mem::take(&mut self.scratch);
        self.offer(now, c, &picked);
        self.scratch = picked;
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
            if queue.params.strategy == Strategy::RoundRobin {
                queue.rr_cursor = Some(order);
            }
            self.offer(now, c, &[a]);
        }
    }
}
