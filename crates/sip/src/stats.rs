//! Counters of the SIP edge, as atomics the handlers bump and the metrics read.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the SIP edge counts.
#[derive(Debug, Default)]
pub struct SipStats {
    /// Requests received (parsed, with a transaction).
    pub requests: AtomicU64,
    /// Messages that could not be handled: answered `400`/`501` when possible, else dropped.
    pub malformed: AtomicU64,
    /// INVITEs from no configured trunk and no authenticated, registered operator: `403`.
    pub forbidden_source: AtomicU64,
    /// Digest failures (wrong password, unknown user, replay): `403`.
    pub auth_failures: AtomicU64,
    /// Calls to numbers no trunk routes: `404`.
    pub unknown_number: AtomicU64,
    /// REGISTERs accepted.
    pub registrations: AtomicU64,
    /// INVITEs for routed numbers answered `503` because the runtime's event queue was
    /// full or closed.
    pub overloaded: AtomicU64,
    /// Requests from sources that are not trunks dropped, unanswered, over the per-source
    /// rate limit (`[sip] rate_limit`, `rate_burst`).
    pub rate_limited: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SipStatsSnapshot {
    pub requests: u64,
    pub malformed: u64,
    pub forbidden_source: u64,
    pub auth_failures: u64,
    pub unknown_number: u64,
    pub registrations: u64,
    pub overloaded: u64,
    pub rate_limited: u64,
}

impl SipStats {
    pub fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn snapshot(&self) -> SipStatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SipStatsSnapshot {
            requests: r(&self.requests),
            malformed: r(&self.malformed),
            forbidden_source: r(&self.forbidden_source),
            auth_failures: r(&self.auth_failures),
            unknown_number: r(&self.unknown_number),
            registrations: r(&self.registrations),
            overloaded: r(&self.overloaded),
            rate_limited: r(&self.rate_limited),
        }
    }
}
