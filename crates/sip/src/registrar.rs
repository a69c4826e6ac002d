//! The registrar's location service (RFC 3261 §10.3): bindings of operators' contacts, with
//! their real source address, transport and connection (operators sit behind home NAT, so
//! they are reached back through the flow they registered on). Pure: time is an input.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Transport a binding was registered over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Opaque id of the connection (flow) a REGISTER came in on, chosen by the transport glue.
pub type FlowId = u64;

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as sent (without angle brackets).
    pub uri: String,
    /// Where the REGISTER really came from (after NAT).
    pub source: SocketAddr,
    pub transport: Transport,
    pub flow: FlowId,
    /// Our listener the REGISTER reached (a phone behind NAT is reached back from it).
    pub local: Option<SocketAddr>,
    pub expires_at: Instant,
    /// When it was registered or last refreshed.
    pub updated: Instant,
    pub call_id: String,
    pub cseq: u32,
}

/// A contact in a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    pub uri: String,
    /// Its `expires` parameter.
    pub expires: Option<u32>,
}

/// What a REGISTER asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// No Contact header: list the bindings.
    Query,
    /// `Contact: *`: remove every binding (requires `Expires: 0`).
    Wildcard,
    List(Vec<ContactSpec>),
}

/// A parsed REGISTER.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub contacts: Contacts,
    pub expires: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    pub source: SocketAddr,
    pub transport: Transport,
    pub flow: FlowId,
    /// Our listener it reached.
    pub local: Option<SocketAddr>,
}

/// Expiry bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min: Duration,
    pub max: Duration,
    pub default: Duration,
    /// Bindings kept per user; the oldest goes when a new one would exceed it.
    pub max_bindings: usize,
}

/// Why a REGISTER was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// `423 Interval Too Brief`, with the Min-Expires to send.
    IntervalTooBrief { min_secs: u64 },
    /// `400`: wildcard misuse.
    BadRequest(&'static str),
    /// `500`: same Call-ID with a CSeq not higher than the stored one (out of order).
    OutOfOrder,
}

/// What changed for the caller to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<Binding>,
    pub refreshed: Vec<Binding>,
    pub removed: Vec<Binding>,
}

/// The location service.
#[derive(Debug)]
pub struct Registrar {
    limits: Limits,
    bindings: HashMap<String, Vec<Binding>>,
}

/// Contact URIs compare case-insensitively, ignoring surrounding space and brackets.
fn same_uri(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

impl Registrar {
    pub fn new(limits: Limits) -> Self {
        Registrar {
            limits,
            bindings: HashMap::new(),
        }
    }

    /// Current bindings of `user`.
    pub fn lookup(&self, user: &str) -> &[Binding] {
        self.bindings.get(user).map_or(&[], Vec::as_slice)
    }

    /// Users with at least one binding.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.bindings.keys().cloned().collect();
        users.sort();
        users
    }

    /// Number of bindings of all users.
    pub fn len(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Applies a REGISTER of `user` at `now`.
    pub fn register(
        &mut self,
        user: &str,
        req: &RegisterRequest,
        now: Instant,
    ) -> Result<Changes, RegisterError> {
        let min = self.limits.min.as_secs();
        let mut changes = Changes::default();
        let list = match &req.contacts {
            Contacts::Query => return Ok(changes),
            Contacts::Wildcard => {
                if req.expires != Some(0) {
                    return Err(RegisterError::BadRequest("Contact: * requires Expires: 0"));
                }
                let current = self.bindings.get(user).map_or(&[][..], Vec::as_slice);
                if current
                    .iter()
                    .any(|b| b.call_id == req.call_id && req.cseq <= b.cseq)
                {
                    return Err(RegisterError::OutOfOrder);
                }
                changes.removed = self.bindings.remove(user).unwrap_or_default();
                return Ok(changes);
            }
            Contacts::List(list) => list,
        };
        // Validate everything before changing anything.
        let mut wanted = Vec::with_capacity(list.len());
        for c in list {
            let secs = u64::from(c.expires.or(req.expires).unwrap_or(u32::MAX));
            let secs = if c.expires.is_none() && req.expires.is_none() {
                self.limits.default.as_secs()
            } else {
                secs
            };
            if secs != 0 && secs < min {
                return Err(RegisterError::IntervalTooBrief { min_secs: min });
            }
            let current = self.bindings.get(user).map_or(&[][..], Vec::as_slice);
            if let Some(b) = current.iter().find(|b| same_uri(&b.uri, &c.uri))
                && b.call_id == req.call_id
                && req.cseq <= b.cseq
            {
                return Err(RegisterError::OutOfOrder);
            }
            wanted.push((c, secs.min(self.limits.max.as_secs())));
        }
        let entry = self.bindings.entry(user.to_string()).or_default();
        for (c, secs) in wanted {
            let pos = entry.iter().position(|b| same_uri(&b.uri, &c.uri));
            if secs == 0 {
                if let Some(i) = pos {
                    changes.removed.push(entry.remove(i));
                }
                continue;
            }
            let binding = Binding {
                uri: c.uri.clone(),
                source: req.source,
                transport: req.transport,
                flow: req.flow,
                local: req.local,
                expires_at: now + Duration::from_secs(secs),
                updated: now,
                call_id: req.call_id.clone(),
                cseq: req.cseq,
            };
            match pos {
                Some(i) => {
                    entry[i] = binding.clone();
                    changes.refreshed.push(binding);
                }
                None => {
                    if entry.len() >= self.limits.max_bindings.max(1) {
                        let oldest = (0..entry.len()).min_by_key(|&i| entry[i].expires_at);
                        if let Some(i) = oldest {
                            changes.removed.push(entry.remove(i));
                        }
                    }
                    entry.push(binding.clone());
                    changes.added.push(binding);
                }
            }
        }
        if entry.is_empty() {
            self.bindings.remove(user);
        }
        Ok(changes)
    }

    /// Removes bindings that expired by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, Binding)> {
        let mut gone = Vec::new();
        self.bindings.retain(|user, list| {
            list.retain(|b| {
                let keep = b.expires_at > now;
                if !keep {
                    gone.push((user.clone(), b.clone()));
                }
                keep
            });
            !list.is_empty()
        });
        gone
    }

    /// Removes bindings made over connection `flow` (it closed).
    pub fn remove_flow(&mut self, flow: FlowId) -> Vec<(String, Binding)> {
        let mut gone = Vec::new();
        self.bindings.retain(|user, list| {
            list.retain(|b| {
                let keep = b.flow != flow;
                if !keep {
                    gone.push((user.clone(), b.clone()));
                }
                keep
            });
            !list.is_empty()
        });
        gone
    }

    /// Every binding, with its user.
    pub fn all(&self) -> Vec<(String, Binding)> {
        self.bindings
            .iter()
            .flat_map(|(user, list)| list.iter().map(move |b| (user.clone(), b.clone())))
            .collect()
    }

    /// Removes `user`'s binding of Contact `uri` unless it was registered or refreshed after
    /// `updated` (a device found dead by a check that began before it registered again).
    pub fn remove_stale(&mut self, user: &str, uri: &str, updated: Instant) -> Option<Binding> {
        let list = self.bindings.get_mut(user)?;
        let i = list
            .iter()
            .position(|b| same_uri(&b.uri, uri) && b.updated <= updated)?;
        let gone = list.remove(i);
        if list.is_empty() {
            self.bindings.remove(user);
        }
        Some(gone)
    }

    /// The earliest expiry, for the runtime's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            default: Duration::from_secs(600),
            max_bindings: 2,
        }
    }

    fn req(contacts: Contacts, expires: Option<u32>, cseq: u32) -> RegisterRequest {
        RegisterRequest {
            contacts,
            expires,
            call_id: "c1".into(),
            cseq,
            source: "192.0.2.1:5060".parse().expect("addr"),
            transport: Transport::Udp,
            flow: 7,
            local: None,
        }
    }

    fn one(uri: &str, expires: Option<u32>) -> Contacts {
        Contacts::List(vec![ContactSpec {
            uri: uri.into(),
            expires,
        }])
    }

    #[test]
    fn register_refresh_expire_and_unregister() {
        let t0 = Instant::now();
        let mut r = Registrar::new(limits());
        let ch = r
            .register("alice", &req(one("sip:a@h", None), Some(120), 1), t0)
            .expect("ok");
        assert_eq!(ch.added.len(), 1);
        assert_eq!(
            r.lookup("alice")[0].expires_at,
            t0 + Duration::from_secs(120)
        );
        let ch = r
            .register("alice", &req(one("<SIP:a@h>", None), Some(99_999), 2), t0)
            .expect("ok");
        assert_eq!(ch.refreshed.len(), 1, "same contact, case-insensitively");
        assert_eq!(
            r.lookup("alice")[0].expires_at,
            t0 + Duration::from_secs(3600),
            "capped"
        );
        assert!(r.expire(t0 + Duration::from_secs(3599)).is_empty());
        assert_eq!(r.expire(t0 + Duration::from_secs(3600)).len(), 1);
        assert!(r.lookup("alice").is_empty());
        r.register("alice", &req(one("sip:a@h", Some(100)), None, 3), t0)
            .expect("ok");
        let ch = r
            .register("alice", &req(one("sip:a@h", None), Some(0), 4), t0)
            .expect("ok");
        assert_eq!(ch.removed.len(), 1);
        assert!(r.is_empty());
    }

    #[test]
    fn too_brief_out_of_order_and_wildcard_rules() {
        let t0 = Instant::now();
        let mut r = Registrar::new(limits());
        assert_eq!(
            r.register("a", &req(one("sip:a@h", None), Some(30), 1), t0),
            Err(RegisterError::IntervalTooBrief { min_secs: 60 })
        );
        r.register("a", &req(one("sip:a@h", None), Some(60), 5), t0)
            .expect("ok");
        assert_eq!(
            r.register("a", &req(one("sip:a@h", None), Some(60), 5), t0),
            Err(RegisterError::OutOfOrder)
        );
        assert!(matches!(
            r.register("a", &req(Contacts::Wildcard, Some(10), 6), t0),
            Err(RegisterError::BadRequest(_))
        ));
        r.register("a", &req(one("sip:b@h", None), None, 6), t0)
            .expect("ok");
        assert_eq!(r.lookup("a").len(), 2);
        assert_eq!(
            r.lookup("a")[1].expires_at,
            t0 + Duration::from_secs(600),
            "default expiry"
        );
        let ch = r
            .register("a", &req(Contacts::Wildcard, Some(0), 7), t0)
            .expect("ok");
        assert_eq!(ch.removed.len(), 2);
        assert!(r.lookup("a").is_empty());
    }

    #[test]
    fn several_contacts_are_capped_and_flows_removed() {
        let t0 = Instant::now();
        let mut r = Registrar::new(limits());
        for (i, uri) in ["sip:1@h", "sip:2@h", "sip:3@h"].iter().enumerate() {
            let mut q = req(one(uri, None), Some(100 + i as u32), i as u32);
            q.flow = i as u64;
            r.register("a", &q, t0).expect("ok");
        }
        let uris: Vec<_> = r.lookup("a").iter().map(|b| b.uri.as_str()).collect();
        assert_eq!(
            uris,
            ["sip:2@h", "sip:3@h"],
            "oldest-expiring dropped at the cap"
        );
        assert_eq!(r.remove_flow(2).len(), 1);
        assert_eq!(r.lookup("a").len(), 1);
        assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(101)));
    }

    #[test]
    fn a_stale_binding_goes_unless_refreshed_since() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let mut r = Registrar::new(limits());
        r.register("a", &req(one("sip:1@h", None), Some(100), 1), t0)
            .expect("ok");
        r.register("a", &req(one("sip:2@h", None), Some(100), 2), t0)
            .expect("ok");
        assert_eq!(r.all().len(), 2);
        // Refreshed after the check began: kept.
        r.register("a", &req(one("sip:1@h", None), Some(100), 3), t1)
            .expect("ok");
        assert_eq!(r.remove_stale("a", "sip:1@h", t0), None);
        assert!(r.remove_stale("a", "<SIP:2@h>", t0).is_some());
        assert_eq!(r.remove_stale("b", "sip:1@h", t1), None);
        assert!(r.remove_stale("a", "sip:1@h", t1).is_some());
        assert!(r.is_empty(), "the user goes with the last binding");
    }
}
