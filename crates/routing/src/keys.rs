//! Ordered-set keys packed into `u128`, so each index is a `BTreeSet<u128>`: 16 bytes per
//! entry, compared with one integer comparison.
//!
//! Available operators: `tier:8 | secondary:24 | primary:64 | agent:32`, smallest first.
//! Waiting calls: `(255 - priority):8 | seq:56 | call:64`, smallest first.

use crate::config::Strategy;
use std::ops::RangeInclusive;

/// Largest value of the 24-bit secondary field.
pub(crate) const SECONDARY_MAX: u32 = 0xFF_FFFF;

pub(crate) fn agent_key(tier: u8, secondary: u32, primary: u64, agent: u32) -> u128 {
    (u128::from(tier) << 120)
        | (u128::from(secondary.min(SECONDARY_MAX)) << 96)
        | (u128::from(primary) << 32)
        | u128::from(agent)
}

pub(crate) fn key_agent(key: u128) -> u32 {
    key as u32
}

pub(crate) fn key_tier(key: u128) -> u8 {
    (key >> 120) as u8
}

pub(crate) fn key_primary(key: u128) -> u64 {
    (key >> 32) as u64
}

/// All keys of one tier.
pub(crate) fn tier_range(tier: u8) -> RangeInclusive<u128> {
    agent_key(tier, 0, 0, 0)..=agent_key(tier, SECONDARY_MAX, u64::MAX, u32::MAX)
}

/// What an agent's key in a queue's Available index is ordered by.
pub(crate) struct AgentFacts {
    pub available_since: u64,
    pub order: u32,
    pub calls: u32,
    pub talk_secs: u64,
}

/// The key of an Available agent in a queue with `strategy`.
pub(crate) fn available_key(strategy: Strategy, tier: u8, agent: u32, f: &AgentFacts) -> u128 {
    match strategy {
        Strategy::LongestIdle | Strategy::RingAll | Strategy::Random | Strategy::Skills => {
            agent_key(tier, 0, f.available_since, agent)
        }
        Strategy::RoundRobin | Strategy::Linear => agent_key(tier, 0, u64::from(f.order), agent),
        Strategy::FewestCalls => agent_key(tier, f.calls, f.available_since, agent),
        Strategy::LeastTalkTime => {
            let secs = u32::try_from(f.talk_secs).unwrap_or(SECONDARY_MAX);
            agent_key(tier, secs, f.available_since, agent)
        }
    }
}

/// First sequence number at the tail; head insertions count down from below it.
pub(crate) const SEQ_MIDDLE: u64 = 1 << 55;
const SEQ_MASK: u64 = (1 << 56) - 1;

pub(crate) fn call_key(priority: u8, seq: u64, call: u64) -> u128 {
    (u128::from(u8::MAX - priority) << 120) | (u128::from(seq & SEQ_MASK) << 64) | u128::from(call)
}

pub(crate) fn key_call(key: u128) -> u64 {
    key as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_keys_order_by_tier_then_secondary_then_primary() {
        let a = agent_key(0, 5, 100, 9);
        let b = agent_key(0, 6, 1, 1);
        let c = agent_key(1, 0, 0, 0);
        assert!(a < b && b < c);
        assert_eq!(key_agent(a), 9);
        assert_eq!(key_tier(c), 1);
        assert_eq!(key_primary(a), 100);
        assert!(tier_range(0).contains(&b) && !tier_range(0).contains(&c));
        assert_eq!(
            agent_key(0, u32::MAX, 0, 0),
            agent_key(0, SECONDARY_MAX, 0, 0)
        );
    }

    #[test]
    fn call_keys_order_by_priority_then_seq() {
        let high = call_key(9, SEQ_MIDDLE + 50, 1);
        let low_early = call_key(0, SEQ_MIDDLE - 3, 2);
        let low_late = call_key(0, SEQ_MIDDLE + 1, 3);
        assert!(high < low_early && low_early < low_late);
        assert_eq!(key_call(low_late), 3);
        assert_eq!(key_call(call_key(0, 0, u64::MAX)), u64::MAX);
    }
}
