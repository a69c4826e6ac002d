//! RTP/RTCP port pairs from a configured range.
//!
//! [`PortAllocator`] hands out an even port for RTP and the next odd one for RTCP (RFC 3550
//! §11), both bound, and takes the pair back when the [`PortLease`] is dropped. The free list is
//! a `std::sync::Mutex<VecDeque>` touched only at allocation and release, never on the packet
//! path; it is first-in first-out, so a port just released is the last to be reused and late
//! packets of an old call are unlikely to reach a new one.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

/// Why no port pair could be had.
#[derive(Debug, Error)]
pub enum PortError {
    /// The range holds no even port whose odd neighbour is also in range.
    #[error("port range {min}-{max} holds no RTP/RTCP pair")]
    InvalidRange {
        /// First port of the range.
        min: u16,
        /// Last port of the range.
        max: u16,
    },
    /// Every pair is leased, or in use by another program. Retry after calls end.
    #[error("no free RTP/RTCP port pair in {min}-{max}")]
    Exhausted {
        /// First port of the range.
        min: u16,
        /// Last port of the range.
        max: u16,
    },
    /// Binding failed for a reason other than the port being in use (the address is not local,
    /// no permission, …): configuration, not load. Not worth retrying.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address that failed.
        addr: SocketAddr,
        /// The system error.
        source: io::Error,
    },
}

#[derive(Debug)]
struct Pool {
    ip: IpAddr,
    min: u16,
    max: u16,
    capacity: usize,
    free: Mutex<VecDeque<u16>>,
}

impl Pool {
    fn free(&self) -> MutexGuard<'_, VecDeque<u16>> {
        // The list is never left half-updated, so a panic elsewhere cannot poison its meaning.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A thread-safe pool of RTP/RTCP port pairs on one local address. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct PortAllocator {
    pool: Arc<Pool>,
}

/// Holds a port pair out of the pool; returns it when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: Arc<Pool>,
}

impl PortLease {
    /// The RTP (even) port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.free().push_back(self.port);
    }
}

/// The bound sockets of one leg: RTP on an even port, RTCP on the next. Non-blocking, ready to
/// hand to tokio. Dropping it closes both sockets, then returns the ports to the pool.
#[derive(Debug)]
pub struct LegSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    // declared last: dropped after the sockets are closed
    lease: PortLease,
}

impl LegSockets {
    /// The RTP port (for our SDP); RTCP is on the next port.
    pub fn port(&self) -> u16 {
        self.lease.port
    }

    /// The local RTP address.
    pub fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.lease.pool.ip, self.lease.port)
    }

    /// The local RTCP address.
    pub fn rtcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.lease.pool.ip, self.lease.port + 1)
    }

    /// The RTP socket, the RTCP socket and the lease, to be dropped in that order.
    pub fn into_parts(self) -> (UdpSocket, UdpSocket, PortLease) {
        (self.rtp, self.rtcp, self.lease)
    }
}

impl PortAllocator {
    /// A pool of the pairs `(p, p + 1)` with `p` even and both in `range`, bound on `ip`
    /// (`0.0.0.0` or `::` for every interface).
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Result<Self, PortError> {
        let (min, max) = (*range.start(), *range.end());
        let first = min.saturating_add(min % 2);
        let free: VecDeque<u16> = (first..max)
            .step_by(2)
            .filter(|p| p % 2 == 0 && *p > 0)
            .collect();
        if free.is_empty() {
            return Err(PortError::InvalidRange { min, max });
        }
        Ok(PortAllocator {
            pool: Arc::new(Pool {
                ip,
                min,
                max,
                capacity: free.len(),
                free: Mutex::new(free),
            }),
        })
    }

    /// Number of pairs in the range.
    pub fn capacity(&self) -> usize {
        self.pool.capacity
    }

    /// Number of pairs not leased now.
    pub fn available(&self) -> usize {
        self.pool.free().len()
    }

    /// The address sockets are bound on.
    pub fn ip(&self) -> IpAddr {
        self.pool.ip
    }

    /// Leases the next free pair and binds both sockets. A pair another program holds is put at
    /// the back of the list and the next one tried, until every free pair has been tried once.
    pub fn allocate(&self) -> Result<LegSockets, PortError> {
        let attempts = self.available();
        for _ in 0..attempts {
            let Some(port) = self.pool.free().pop_front() else {
                break;
            };
            // from here the lease returns the port to the pool on every path
            let lease = PortLease {
                port,
                pool: Arc::clone(&self.pool),
            };
            match bind_pair(self.pool.ip, port) {
                Ok((rtp, rtcp)) => return Ok(LegSockets { rtp, rtcp, lease }),
                Err((_, e)) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err((addr, source)) => return Err(PortError::Bind { addr, source }),
            }
        }
        Err(PortError::Exhausted {
            min: self.pool.min,
            max: self.pool.max,
        })
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> Result<(UdpSocket, UdpSocket), (SocketAddr, io::Error)> {
    let bind = |addr: SocketAddr| {
        let s = UdpSocket::bind(addr).map_err(|e| (addr, e))?;
        s.set_nonblocking(true).map_err(|e| (addr, e))?;
        Ok(s)
    };
    let rtp = bind(SocketAddr::new(ip, port))?;
    let rtcp = bind(SocketAddr::new(ip, port + 1))?;
    Ok((rtp, rtcp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// `pairs` pairs from `base`. Tests use 23000–23999: below Linux's ephemeral range
    /// (32768–60999), so no other program's outgoing socket sits there by chance, and apart
    /// from the default config's 20000–20999 and the relay tests' ranges.
    fn range(base: u16, pairs: u16) -> RangeInclusive<u16> {
        base..=base + 2 * pairs - 1
    }

    #[test]
    fn ranges() {
        assert!(matches!(
            PortAllocator::new(LO, 5001..=5001),
            Err(PortError::InvalidRange { .. })
        ));
        assert!(matches!(
            PortAllocator::new(LO, 5000..=5000),
            Err(PortError::InvalidRange { .. })
        ));
        assert_eq!(
            PortAllocator::new(LO, 5001..=5004)
                .map(|p| p.capacity())
                .ok(),
            Some(1)
        );
        assert_eq!(
            PortAllocator::new(LO, 5000..=5003)
                .map(|p| p.capacity())
                .ok(),
            Some(2)
        );
        assert_eq!(
            PortAllocator::new(LO, 65534..=65535)
                .map(|p| p.capacity())
                .ok(),
            Some(1)
        );
        assert!(PortAllocator::new(LO, 0..=1).is_err());
    }

    #[test]
    fn leases_even_pairs_and_takes_them_back() {
        let ports = PortAllocator::new(LO, range(23000, 2)).expect("range");
        let a = ports.allocate().expect("first pair");
        let b = ports.allocate().expect("second pair");
        assert_eq!(a.port() % 2, 0);
        assert_eq!(a.rtcp_addr().port(), a.port() + 1);
        assert_ne!(a.port(), b.port());
        assert!(matches!(ports.allocate(), Err(PortError::Exhausted { .. })));
        let freed = a.port();
        drop(a);
        assert_eq!(ports.available(), 1);
        let c = ports.allocate().expect("reused pair");
        assert_eq!(c.port(), freed);
        // the sockets really are bound where they say
        let (rtp, rtcp, lease) = c.into_parts();
        assert_eq!(rtp.local_addr().ok(), Some(SocketAddr::new(LO, freed)));
        assert_eq!(rtcp.local_addr().map(|a| a.port()).ok(), Some(freed + 1));
        drop((rtp, rtcp));
        drop(lease);
        assert_eq!(ports.available(), 1);
        drop(b);
        assert_eq!(ports.available(), 2);
    }

    #[test]
    fn skips_ports_held_by_others() {
        let ports = PortAllocator::new(LO, range(23100, 2)).expect("range");
        let squatter = UdpSocket::bind((LO, 23101)).expect("bind squatter");
        let a = ports.allocate().expect("the other pair");
        assert_eq!(a.port(), 23102);
        assert!(matches!(ports.allocate(), Err(PortError::Exhausted { .. })));
        drop(squatter);
        assert_eq!(ports.allocate().map(|s| s.port()).ok(), Some(23100));
    }

    #[test]
    fn shared_between_threads() {
        let ports = PortAllocator::new(LO, range(23200, 16)).expect("range");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ports = ports.clone();
                std::thread::spawn(move || {
                    (0..4)
                        .filter_map(|_| ports.allocate().ok())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let leased: Vec<LegSockets> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        assert_eq!(leased.len(), 16);
        let mut seen: Vec<u16> = leased.iter().map(LegSockets::port).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 16);
        assert_eq!(ports.available(), 0);
        drop(leased);
        assert_eq!(ports.available(), 16);
    }

    #[test]
    fn bind_errors_other_than_in_use_are_reported() {
        // 192.0.2.1 (TEST-NET-1) is not a local address: binding fails with AddrNotAvailable
        let ports = PortAllocator::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 23300..=23303)
            .expect("range");
        assert!(matches!(ports.allocate(), Err(PortError::Bind { .. })));
        assert_eq!(ports.available(), 2);
    }
}
