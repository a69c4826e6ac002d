//! Per-source rate limit of SIP requests from sources that are not trunks. Pure: time is an
//! input, and the caller (the UDP guard, the TCP inspector) reads the clock once per message.
//!
//! Why: rsipstack keeps every finished server transaction for 64*T1 (32 s), about 1.6 KB for
//! an OPTIONS or a REGISTER, so one source flooding requests grows homeline's memory by
//! ~50 KB per request/s. A token bucket per source caps that at `burst + rate * 32 s`
//! transactions per source.
//!
//! - A source is an IPv4 address, or an IPv6 /64 (the smallest prefix a home or a host gets:
//!   counting IPv6 addresses one by one would give one host millions of buckets). An
//!   IPv4-mapped IPv6 address counts as IPv4.
//! - Trunk sources (any trunk's `allow` networks and its PBX address) are never limited.
//! - The table holds at most [`MAX_SOURCES`] buckets. A full bucket is the same as no bucket,
//!   so idle sources (buckets refilled to the brim) are forgotten without changing anything;
//!   that sweep runs only when the table is full, at most once per [`SWEEP_EVERY`]. A new
//!   source that still finds no room shares one overflow bucket with every other such source.
//!   A flood from spoofed addresses thus costs at most `MAX_SOURCES` entries (~64 bytes each)
//!   and gets at most `MAX_SOURCES` requests per `SWEEP_EVERY` through, plus the overflow
//!   bucket's rate.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Most sources tracked at once (~64 bytes each: ~260 KB at most).
pub const MAX_SOURCES: usize = 4096;
/// Shortest time between two sweeps of idle sources from a full table.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A token bucket's parameters: `per_second` requests sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second; at least 1.
    pub per_second: u32,
    /// Bucket size: requests accepted at once from a source that was quiet; at least 1.
    pub burst: u32,
}

/// One source's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Tokens at `now` (refilled since `at`, capped at `burst`).
    fn level(&self, limit: &Params, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * limit.rate).min(limit.burst)
    }

    /// Takes one token if there is one.
    fn take(&mut self, limit: &Params, now: Instant) -> bool {
        let level = self.level(limit, now);
        self.at = now.max(self.at);
        if level >= 1.0 {
            self.tokens = level - 1.0;
            true
        } else {
            self.tokens = level;
            false
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Params {
    rate: f64,
    burst: f64,
}

/// The key a source is counted under: an IPv4 address or an IPv6 /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
        v4 => v4,
    }
}

/// The token buckets of the sources seen lately, bounded in number.
#[derive(Debug)]
pub struct RateLimiter {
    params: Params,
    /// Sources never limited (trunks).
    exempt: Vec<IpNet>,
    buckets: HashMap<IpAddr, Bucket>,
    capacity: usize,
    /// Shared by new sources while the table is full.
    overflow: Option<Bucket>,
    next_sweep: Option<Instant>,
}

impl RateLimiter {
    /// A limiter with `limit` per source, never limiting a source in `exempt`.
    pub fn new(limit: RateLimit, exempt: Vec<IpNet>) -> Self {
        Self::with_capacity(limit, exempt, MAX_SOURCES)
    }

    /// As [`RateLimiter::new`], tracking at most `capacity` sources.
    pub fn with_capacity(limit: RateLimit, exempt: Vec<IpNet>, capacity: usize) -> Self {
        RateLimiter {
            params: Params {
                rate: f64::from(limit.per_second.max(1)),
                burst: f64::from(limit.burst.max(1)),
            },
            exempt,
            buckets: HashMap::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            overflow: None,
            next_sweep: None,
        }
    }

    /// Sources tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Whether a request from `ip` at `now` may pass (taking a token if so).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.exempt.iter().any(|n| n.contains(&canonical)) {
            return true;
        }
        let params = self.params;
        let key = source_key(ip);
        if let Some(bucket) = self.buckets.get_mut(&key) {
            return bucket.take(&params, now);
        }
        if self.buckets.len() >= self.capacity {
            self.sweep(now);
        }
        if self.buckets.len() < self.capacity {
            let mut bucket = Bucket {
                tokens: params.burst,
                at: now,
            };
            let allowed = bucket.take(&params, now);
            self.buckets.insert(key, bucket);
            return allowed;
        }
        self.overflow
            .get_or_insert(Bucket {
                tokens: params.burst,
                at: now,
            })
            .take(&params, now)
    }

    /// Forgets idle sources (full buckets), at most once per [`SWEEP_EVERY`].
    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        let params = self.params;
        self.buckets
            .retain(|_, b| b.level(&params, now) < params.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn limiter(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(
            RateLimit { per_second, burst },
            vec!["10.0.0.0/8".parse().expect("net")],
        )
    }

    /// How many of `n` requests from `from` at `now` pass.
    fn passed(l: &mut RateLimiter, from: &str, n: usize, now: Instant) -> usize {
        (0..n).filter(|_| l.allow(ip(from), now)).count()
    }

    #[test]
    fn a_burst_passes_then_the_rate() {
        let t0 = Instant::now();
        let mut l = limiter(10, 50);
        assert_eq!(passed(&mut l, "192.0.2.1", 500, t0), 50);
        // 10 per second after: 1 token each 100 ms.
        assert_eq!(
            passed(&mut l, "192.0.2.1", 5, t0 + Duration::from_millis(50)),
            0
        );
        assert_eq!(
            passed(&mut l, "192.0.2.1", 5, t0 + Duration::from_millis(100)),
            1
        );
        assert_eq!(
            passed(&mut l, "192.0.2.1", 50, t0 + Duration::from_secs(2)),
            19
        );
        // Over 10 s of a steady flood: the 10 tokens of the quiet second before, then 10 per
        // second.
        let mut through = 0;
        for ms in (0..10_000).step_by(10) {
            let now = t0 + Duration::from_secs(3) + Duration::from_millis(ms);
            through += passed(&mut l, "192.0.2.1", 3, now);
        }
        assert!((108..=110).contains(&through), "{through}");
        // Another source has its own bucket.
        assert_eq!(passed(&mut l, "192.0.2.2", 60, t0), 50);
    }

    #[test]
    fn the_bucket_refills_to_the_burst_and_no_more() {
        let t0 = Instant::now();
        let mut l = limiter(50, 100);
        assert_eq!(passed(&mut l, "192.0.2.1", 100, t0), 100);
        assert_eq!(passed(&mut l, "192.0.2.1", 1, t0), 0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(passed(&mut l, "192.0.2.1", 1000, later), 100);
        // A clock that goes back refills nothing.
        assert_eq!(passed(&mut l, "192.0.2.1", 1, t0), 0);
    }

    #[test]
    fn trunk_sources_are_never_limited() {
        let t0 = Instant::now();
        let mut l = limiter(1, 1);
        assert_eq!(passed(&mut l, "10.1.2.3", 10_000, t0), 10_000);
        assert_eq!(passed(&mut l, "::ffff:10.1.2.3", 100, t0), 100);
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn ipv6_sources_count_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut l = limiter(1, 5);
        assert_eq!(passed(&mut l, "2001:db8:1:2::1", 3, t0), 3);
        assert_eq!(passed(&mut l, "2001:db8:1:2:ffff::9", 5, t0), 2);
        assert_eq!(passed(&mut l, "2001:db8:1:3::1", 5, t0), 5);
        assert_eq!(passed(&mut l, "192.0.2.7", 3, t0), 3);
        assert_eq!(passed(&mut l, "::ffff:192.0.2.7", 5, t0), 2);
        assert_eq!(l.tracked(), 3);
    }

    #[test]
    fn the_table_stays_bounded_under_a_spoofed_flood() {
        let t0 = Instant::now();
        let (cap, rate, burst) = (100, 5, 10);
        let mut l = RateLimiter::with_capacity(
            RateLimit {
                per_second: rate,
                burst,
            },
            vec![],
            cap,
        );
        let mut through = 0u64;
        // 20 s of one request per ms, each from a new address.
        for i in 0u32..20_000 {
            let now = t0 + Duration::from_millis(u64::from(i));
            let from = IpAddr::from((0xC000_0000 | i).to_be_bytes());
            through += u64::from(l.allow(from, now));
            assert!(l.tracked() <= cap);
        }
        // Each sweep (every 10 s, from the first full table) frees at most `cap` places; the
        // rest share the overflow bucket: burst + rate per second.
        let sweeps = 3;
        let bound = (cap as u64) * sweeps + u64::from(burst) + u64::from(rate) * 20;
        assert!(through <= bound, "{through} > {bound}");
        assert!(through >= cap as u64, "{through}");
    }

    #[test]
    fn forgetting_idle_sources_changes_no_answer() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 2,
            burst: 4,
        };
        let mut small = RateLimiter::with_capacity(limit, vec![], 2);
        let mut big = RateLimiter::with_capacity(limit, vec![], 1000);
        // Three sources in turn, each quiet long enough to be idle when the table is full.
        for round in 0u64..30 {
            let from = ip(["192.0.2.1", "192.0.2.2", "192.0.2.3"][(round % 3) as usize]);
            let now = t0 + Duration::from_secs(11 * round);
            for k in 0..6 {
                let at = now + Duration::from_millis(100 * k);
                assert_eq!(small.allow(from, at), big.allow(from, at), "round {round}");
            }
        }
        assert!(small.tracked() <= 2);
    }
}
