//! Trunk identification (which PBX sent this request) and number routing. Pure.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Transport towards a trunk's PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrunkTransport {
    Udp,
    Tcp,
}

/// One trunk, as the SIP edge needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSpec {
    pub name: String,
    pub pbx: SocketAddr,
    pub transport: TrunkTransport,
    /// Source networks; empty: any source, credentials required.
    pub allow: Vec<IpNet>,
    /// Digest username and password the PBX must present (and homeline presents to it).
    pub credentials: Option<(String, String)>,
    pub options_interval: Option<Duration>,
    /// Caller id (From user) on operators' outbound calls; `None`: the operator's name.
    pub caller_id: Option<String>,
    /// Dialled number to queue name.
    pub routes: BTreeMap<String, String>,
}

/// How a request from some source relates to the trunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity<'a> {
    /// Accepted as this trunk by its source network alone.
    Trunk(&'a TrunkSpec),
    /// The source may be one of these trunks, which require digest credentials.
    NeedsDigest(Vec<&'a TrunkSpec>),
    /// No trunk accepts this source: `403`.
    Unknown,
}

/// Where a request goes after its trunk is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Queue(&'a str),
    /// Not a configured number: `404`.
    NotFound,
}

/// The configured trunks.
#[derive(Debug, Clone, Default)]
pub struct TrunkTable {
    trunks: Vec<TrunkSpec>,
}

impl TrunkTable {
    pub fn new(trunks: Vec<TrunkSpec>) -> Self {
        TrunkTable { trunks }
    }

    pub fn iter(&self) -> impl Iterator<Item = &TrunkSpec> {
        self.trunks.iter()
    }

    /// Identifies the trunk of a request from `source`: a trunk whose allow-list contains it
    /// and needs no credentials wins; otherwise the candidates that need credentials.
    pub fn identify(&self, source: IpAddr) -> Identity<'_> {
        let source = canonical(source);
        let mut digest = Vec::new();
        for t in &self.trunks {
            let listed = t.allow.iter().any(|n| n.contains(&source));
            if listed && t.credentials.is_none() {
                return Identity::Trunk(t);
            }
            if (listed || t.allow.is_empty()) && t.credentials.is_some() {
                digest.push(t);
            }
        }
        if digest.is_empty() {
            Identity::Unknown
        } else {
            Identity::NeedsDigest(digest)
        }
    }

    /// The queue for `number` dialled through `trunk`.
    pub fn route<'a>(trunk: &'a TrunkSpec, number: &str) -> Route<'a> {
        match trunk.routes.get(number) {
            Some(q) => Route::Queue(q),
            None => Route::NotFound,
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(name: &str, allow: &[&str], creds: bool) -> TrunkSpec {
        TrunkSpec {
            name: name.into(),
            pbx: "127.0.0.1:5080".parse().expect("addr"),
            transport: TrunkTransport::Udp,
            allow: allow.iter().map(|n| n.parse().expect("net")).collect(),
            credentials: creds.then(|| ("pbx".into(), "pw".into())),
            options_interval: None,
            caller_id: None,
            routes: [("8000".to_string(), "support".to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn identifies_by_network_then_digest() {
        let table = TrunkTable::new(vec![
            trunk("a", &["10.0.0.0/8"], false),
            trunk("b", &["192.0.2.0/24"], true),
            trunk("c", &[], true),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(matches!(table.identify(ip("10.1.2.3")), Identity::Trunk(t) if t.name == "a"));
        assert!(
            matches!(table.identify(ip("::ffff:10.1.2.3")), Identity::Trunk(t) if t.name == "a")
        );
        match table.identify(ip("192.0.2.9")) {
            Identity::NeedsDigest(ts) => assert_eq!(
                ts.iter().map(|t| &t.name[..]).collect::<Vec<_>>(),
                ["b", "c"]
            ),
            other => panic!("{other:?}"),
        }
        let only_a = TrunkTable::new(vec![trunk("a", &["10.0.0.0/8"], false)]);
        assert_eq!(only_a.identify(ip("203.0.113.1")), Identity::Unknown);
    }

    #[test]
    fn routes_numbers() {
        let t = trunk("a", &["10.0.0.0/8"], false);
        assert_eq!(TrunkTable::route(&t, "8000"), Route::Queue("support"));
        assert_eq!(TrunkTable::route(&t, "9999"), Route::NotFound);
    }
}
