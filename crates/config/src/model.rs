//! The validated configuration. Everything here has passed every check; the rest of homeline
//! sees only these types, never the TOML.

use homeline_routing::{MembershipConfig, QueueConfig};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub sip: Sip,
    pub http: Http,
    pub media: Media,
    pub log: Log,
    pub defaults: Defaults,
    pub features: Features,
    /// `[[trunk]]` tables, in file order.
    pub trunks: Vec<Trunk>,
    /// `[[queue]]` tables, in file order.
    pub queues: Vec<Queue>,
    /// `[[agent]]` tables, in file order (the order `linear` and `round-robin` use).
    pub agents: Vec<Agent>,
}

/// `[sip]`: the SIP edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    /// UDP listen addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// SIP domain of the operators' addresses, and the digest realm.
    pub domain: String,
    /// Address put in Via, Contact and SDP.
    pub public_address: Host,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// SIP timer T1, the round-trip estimate (RFC 3261 §17): retransmissions start at T1 and a
    /// transaction times out after 64*T1. 10ms to 10s.
    pub t1: Duration,
    /// How long a digest nonce is accepted; past it the client is challenged again with
    /// `stale=true`. 1s to 1h.
    pub nonce_ttl: Duration,
    /// How often each registered operator binding is sent an OPTIONS (as Asterisk's
    /// `qualify_frequency`); one that does not answer is removed. Zero: off. Otherwise 1s
    /// to 1h.
    pub qualify_interval: Duration,
    /// Shortest registration accepted; a shorter one gets `423 Interval Too Brief`. Whole
    /// seconds, at least 1s.
    pub min_expires: Duration,
    /// Longest registration granted; a longer request is shortened to it.
    pub max_expires: Duration,
    /// Expiry of a registration that asks for none. `min_expires <= default_expires <=
    /// max_expires`.
    pub default_expires: Duration,
    /// Largest SIP message accepted, in bytes (512 to 65535); larger ones are dropped.
    pub max_message_size: usize,
    /// Digest algorithms offered in challenges, one `WWW-Authenticate` each, in this order.
    /// Never empty, no repeats.
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// Requests per second accepted from one source that is not a trunk (an IPv4 address or
    /// an IPv6 /64), sustained; more are dropped unanswered. 0 (no limit) to 100000.
    pub rate_limit: u32,
    /// Requests accepted at once from such a source after a quiet spell (the token bucket's
    /// size). 1 to 1000000.
    pub rate_burst: u32,
}

/// A digest authentication algorithm (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `SHA-256`.
    Sha256,
    /// `MD5`.
    Md5,
}

impl DigestAlgorithm {
    /// The name as written in the file and in the `algorithm=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Md5 => "MD5",
        }
    }
}

/// `[http]`: console, agent WebSocket, admin API, metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    pub listen: SocketAddr,
    /// Bearer token of the admin API; `None`: the admin API is disabled.
    pub admin_token: Option<Secret>,
}

/// `[media]`: RTP and WebRTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Address put in SDP for RTP and ICE candidates.
    pub public_ip: IpAddr,
    /// RTP ports towards the PBX, inclusive range.
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// The one UDP socket that all browsers' WebRTC media uses.
    pub webrtc_udp: SocketAddr,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, or `warn,homeline_sip=debug`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

/// `[defaults]`: values agents inherit unless they set their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Defaults {
    pub ready_on_register: bool,
}

/// `[features]`: codes an operator dials from a softphone to change state; homeline answers
/// with a short tone and hangs up. Each is 1-16 of `0-9`, `*`, `#`, all different.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Features {
    /// Go Ready (`*1`).
    pub ready: String,
    /// Go Not Ready, reason "feature code" (`*2`).
    pub not_ready: String,
    /// Log out (`*3`).
    pub logout: String,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            ready: "*1".into(),
            not_ready: "*2".into(),
            logout: "*3".into(),
        }
    }
}

/// A host: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    /// Whether this names the local machine only (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(n) => n.eq_ignore_ascii_case("localhost"),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// A secret string (password, token). Its `Debug` does not show it, so it never reaches a
/// log by accident; [`Secret::expose`] gives it to the code that needs it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// SIP transport of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    #[default]
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

/// Digest credentials (username and password).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// `[[trunk]]`: a PBX that sends calls to homeline and takes its outbound calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// Where outbound requests and OPTIONS pings go.
    pub pbx: SocketAddr,
    pub transport: Transport,
    /// Source networks accepted; empty: any source, and then `credentials` are required.
    pub allow: Vec<IpNet>,
    /// Digest credentials, both for challenging the PBX and for answering its challenges.
    pub credentials: Option<Credentials>,
    /// Caller id of operators' outbound calls (after the operator's own `caller_id`);
    /// `None`: the operator's name.
    pub caller_id: Option<String>,
    /// OPTIONS keepalive interval; `None`: no keepalive.
    pub options_interval: Option<Duration>,
    /// Dialled number to queue name.
    pub routes: BTreeMap<String, String>,
}

impl Trunk {
    /// Whether a request from `ip` passes the trunk's source allow-list (an empty list
    /// passes everyone; credentials are then required).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// When a queued call is answered towards the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Answer {
    /// At once, with music on hold while it waits (`on_enqueue`).
    #[default]
    OnEnqueue,
    /// Only when an operator answers; the caller hears ringing (`on_agent`).
    OnAgent,
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::OnEnqueue => "on_enqueue",
            Answer::OnAgent => "on_agent",
        }
    }
}

/// `[[queue]]`: the routing core's queue plus what the call path needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub answer: Answer,
    /// Everything the routing core uses, name included.
    pub routing: QueueConfig,
}

impl Queue {
    pub fn name(&self) -> &str {
        &self.routing.name
    }
}

/// Precomputed digest hashes `H(username:realm:password)`, in lowercase hex, with the realm
/// being `sip.domain`. At least one is set; a client using an algorithm with no hash here
/// cannot authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ha1 {
    /// MD5, 32 hex digits.
    pub md5: Option<String>,
    /// SHA-256, 64 hex digits.
    pub sha256: Option<String>,
}

/// How an operator proves who they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentSecret {
    /// The password itself (SIP digest and console login).
    Password(Secret),
    /// Digest hashes only (SIP digest; the console checks against them too).
    Ha1(Ha1),
}

/// `[[agent]]`: an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Login and SIP username.
    pub name: String,
    pub display_name: String,
    pub secret: AgentSecret,
    /// Queues with penalty tier, in file order.
    pub queues: Vec<MembershipConfig>,
    /// Skill name and proficiency 1–5.
    pub skills: Vec<(String, u8)>,
    /// Whether registering (or logging in to the console) makes the operator Ready.
    pub ready_on_register: bool,
    /// The trunk (by name, checked to exist) this operator's own outbound calls go through;
    /// `None`: the first `[[trunk]]`.
    pub trunk: Option<String>,
    /// Caller id of this operator's own outbound calls, before the trunk's `caller_id`;
    /// `None`: the trunk's, else the operator's name.
    pub caller_id: Option<String>,
}
