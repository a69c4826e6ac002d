//! Statistics as plain data; the runtime maps them to metrics.

use crate::event::StateKind;
use crate::ids::QueueId;
use crate::rng::Entropy;
use crate::router::Router;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A queue's figures since start. `offered = answered + abandoned + overflowed + rejected +
/// waiting + ringing` at every moment (a call counts as answered when it is connected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: QueueId,
    pub name: Arc<str>,
    /// Removed from the configuration, still serving the calls it holds.
    pub retired: bool,
    pub waiting: u32,
    pub ringing: u32,
    /// Longest current wait among waiting calls.
    pub longest_wait: Duration,
    /// Members by state, indexed by [`StateKind`] as `usize`.
    pub agents: [u32; 6],
    pub offered: u64,
    pub answered: u64,
    pub answered_within_sl: u64,
    pub abandoned: u64,
    pub overflowed: u64,
    pub rejected: u64,
    pub service_level_threshold: Duration,
}

impl QueueStats {
    /// Members in state `kind`.
    pub fn agents_in(&self, kind: StateKind) -> u32 {
        self.agents[kind as usize]
    }

    /// Calls neither answered nor ended yet.
    pub fn in_progress(&self) -> u64 {
        u64::from(self.waiting) + u64::from(self.ringing)
    }

    /// Answered within the threshold over answered plus abandoned (Asterisk's definition);
    /// `None` before any such call.
    pub fn service_level(&self) -> Option<f64> {
        let base = self.answered + self.abandoned;
        (base > 0).then(|| self.answered_within_sl as f64 / base as f64)
    }
}

impl<R: Entropy> Router<R> {
    /// Members of every queue by state (one pass over the operators).
    fn member_states(&self) -> Vec<[u32; 6]> {
        let mut states = vec![[0u32; 6]; self.queues.len()];
        for agent in &self.agents {
            for m in &agent.members {
                states[m.queue as usize][agent.state.kind() as usize] += 1;
            }
        }
        states
    }

    /// Figures for `queue` at `now`. Costs a pass over the operators: for every queue at
    /// once, use [`Router::stats`].
    pub fn queue_stats(&self, queue: QueueId, now: Time) -> Option<QueueStats> {
        let states = self.member_states().get(queue.idx()).copied()?;
        self.stats_with(queue, now, states)
    }

    fn stats_with(&self, queue: QueueId, now: Time, states: [u32; 6]) -> Option<QueueStats> {
        let q = self.queues.get(queue.idx())?;
        let longest_wait = q
            .waiting
            .iter()
            .filter_map(|&k| self.calls.get(&crate::keys::key_call(k)))
            .map(|c| now.saturating_since(c.arrived))
            .max()
            .unwrap_or_default();
        let c = q.counters;
        Some(QueueStats {
            queue,
            name: q.name.clone(),
            retired: q.retired,
            waiting: q.waiting.len() as u32,
            ringing: q.ringing,
            longest_wait,
            agents: states,
            offered: c.offered,
            answered: c.answered,
            answered_within_sl: c.answered_in_sl,
            abandoned: c.abandoned,
            overflowed: c.overflowed,
            rejected: c.rejected,
            service_level_threshold: q.params.service_level,
        })
    }

    /// Figures for every queue.
    pub fn stats(&self, now: Time) -> Vec<QueueStats> {
        let states = self.member_states();
        self.queue_ids()
            .filter_map(|q| self.stats_with(q, now, states[q.idx()]))
            .collect()
    }
}
