//! The SIP edge at run time: rsipstack endpoint, listeners, the dispatch of requests to
//! their handlers, and the INVITE handler that tells trunks from operators. REGISTER and the
//! registrations' housekeeping are in `registration`, the operators' OPTIONS in `qualify`,
//! the trunks' OPTIONS keepalive in `keepalive`. Handlers stay short: they parse into the crate's own types, ask the pure
//! parts (`digest`, `registrar`, `trunks`) and answer.

use crate::agent;
use crate::digest::{Algorithm, AuthError, Credentials, DigestAuthority, ha1};
use crate::guard::{GuardedUdpSocket, Inspector};
use crate::legs::{self, Calls, EdgeEvent, EventSink};
use crate::operator_calls::{self, FeatureCodes};
use crate::pbx::{self, Admission};
use crate::ratelimit::{RateLimit, RateLimiter};
use crate::registrar::{FlowId, Limits, Registrar, Transport};
use crate::sipmsg;
use crate::stats::{SipStats, SipStatsSnapshot};
use crate::trunks::{Identity, Route, TrunkSpec, TrunkTable};
use rsipstack::EndpointBuilder;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::CallIdFormat;
use rsipstack::transaction::Endpoint;
use rsipstack::transaction::endpoint::{EndpointInnerRef, EndpointOption};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TcpListenerConnection, TransportLayer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Methods homeline answers; the `Allow` header.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, REFER";

/// An operator's secret, as the registrar needs it.
#[derive(Debug, Clone)]
pub enum UserSecret {
    /// The plaintext password.
    Password(String),
    /// Precomputed `H(user:realm:password)` per algorithm (lower-case hex).
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

/// Everything the edge needs, from the validated configuration.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// SIP domain and digest realm.
    pub domain: String,
    pub user_agent: String,
    pub t1: Duration,
    pub nonce_ttl: Duration,
    /// How often each operator binding gets an OPTIONS (`qualify`); zero: never.
    pub qualify_interval: Duration,
    pub limits: Limits,
    /// Digest algorithms offered, in order of preference.
    pub algorithms: Vec<Algorithm>,
    pub max_message_size: usize,
    /// Per-source limit of requests from sources that are not trunks (see `ratelimit`);
    /// `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    pub users: HashMap<String, UserSecret>,
    pub trunks: Vec<TrunkSpec>,
    /// Codes operators dial to change state (see `operator_calls`).
    pub features: FeatureCodes,
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("SIP stack: {0}")]
    Stack(String),
}

struct Users {
    realm: String,
    secrets: HashMap<String, UserSecret>,
}

impl Credentials for Users {
    fn ha1(&self, user: &str, algorithm: Algorithm) -> Option<String> {
        match self.secrets.get(user)? {
            UserSecret::Password(p) => Some(ha1(algorithm, user, &self.realm, p)),
            UserSecret::Ha1 { md5, sha256 } => match algorithm {
                Algorithm::Md5 => md5.clone(),
                Algorithm::Sha256 => sha256.clone(),
            },
        }
    }
}

/// Trunks that may have sent a request, by their digest usernames.
struct TrunkCreds<'a> {
    realm: &'a str,
    trunks: &'a [&'a TrunkSpec],
}

impl Credentials for TrunkCreds<'_> {
    fn ha1(&self, user: &str, algorithm: Algorithm) -> Option<String> {
        let (_, password) = self
            .trunks
            .iter()
            .filter_map(|t| t.credentials.as_ref())
            .find(|(u, _)| u == user)?;
        Some(ha1(algorithm, user, self.realm, password))
    }
}

pub(crate) struct Shared {
    pub(crate) settings: EdgeSettings,
    users: Users,
    trunks: TrunkTable,
    auth: Mutex<DigestAuthority>,
    pub(crate) registrar: Mutex<Registrar>,
    /// TCP flows operators registered over, by [`flow_id`], to reach them back.
    pub(crate) flows: Mutex<HashMap<FlowId, SipConnection>>,
    pub(crate) stats: Arc<SipStats>,
    pub(crate) trunk_state: crate::keepalive::TrunkStates,
    started: Instant,
    salt: AtomicU64,
    pub(crate) endpoint: EndpointInnerRef,
    udp: Vec<SipConnection>,
    /// Events to the runtime.
    pub(crate) events: EventSink,
    /// The live call legs.
    pub(crate) calls: Calls,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (each critical
/// section is one call into a pure structure).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The key of a connection in the flow table.
pub(crate) fn flow_key(remote: &SipAddr) -> String {
    remote.to_string()
}

pub(crate) fn flow_id(key: &str) -> FlowId {
    // FNV-1a: stable, cheap, good enough to tell connections apart.
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A running SIP edge.
pub struct SipEdge {
    endpoint: Endpoint,
    pub(crate) shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) events: Option<mpsc::Receiver<EdgeEvent>>,
}

impl std::fmt::Debug for SipEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipEdge")
            .field("udp", &self.shared.settings.udp)
            .finish_non_exhaustive()
    }
}

impl SipEdge {
    /// Binds every listener (failing if any cannot be bound) and starts serving.
    pub async fn start(settings: EdgeSettings) -> Result<SipEdge, EdgeError> {
        let cancel = CancellationToken::new();
        let stats = Arc::new(SipStats::default());
        let layer = TransportLayer::new(cancel.child_token());
        // Trunks are never limited: their allowed networks and their PBXs' addresses.
        let trunk_sources: Vec<ipnet::IpNet> = (settings.trunks.iter())
            .flat_map(|t| t.allow.iter().copied().chain([t.pbx.ip().into()]))
            .collect();
        let limiter = || {
            (settings.rate_limit)
                .map(|limit| Mutex::new(RateLimiter::new(limit, trunk_sources.clone())))
        };
        let mut udp = Vec::new();
        for &addr in &settings.udp {
            let bind = |source| EdgeError::Bind {
                transport: "udp",
                addr,
                source,
            };
            let sock = tokio::net::UdpSocket::bind(addr).await.map_err(bind)?;
            let guarded = GuardedUdpSocket {
                inner: sock,
                stats: stats.clone(),
                max_message_size: settings.max_message_size,
                limiter: limiter(),
            };
            let conn =
                UdpConnection::from_socket(Arc::new(guarded), None, Some(cancel.child_token()))
                    .await
                    .map_err(|e| EdgeError::Stack(e.to_string()))?;
            udp.push(SipConnection::Udp(conn.clone()));
            layer.add_transport(conn.into());
        }
        for &addr in &settings.tcp {
            // rsipstack binds inside `serve` and only logs a failure: try the address first.
            std::net::TcpListener::bind(addr).map_err(|source| EdgeError::Bind {
                transport: "tcp",
                addr,
                source,
            })?;
            let tcp = TcpListenerConnection::new(addr, None)
                .await
                .map_err(|e| EdgeError::Stack(e.to_string()))?;
            layer.add_transport(tcp.into());
        }
        // A registered operator's TCP connection must outlive its registration.
        layer.set_stream_idle_timeout(settings.limits.max + Duration::from_secs(120));
        let (closed_tx, closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let option = EndpointOption {
            t1: settings.t1,
            t1x64: settings.t1 * 64,
            callid_suffix: Some(settings.domain.clone()),
            callid_format: CallIdFormat::UuidWithSuffix,
            ..Default::default()
        };
        let mut builder = EndpointBuilder::new();
        builder
            .with_user_agent(&settings.user_agent)
            .with_transport_layer(layer)
            .with_cancel_token(cancel.clone())
            .with_option(option)
            .with_inspector(Box::new(agent::NatContacts))
            .with_transport_inspector(Box::new(Inspector {
                stats: stats.clone(),
                closed: closed_tx,
                max_message_size: settings.max_message_size,
                limiter: limiter(),
            }));
        let endpoint = builder.build();
        let mut incoming = endpoint
            .incoming_transactions()
            .map_err(|e| EdgeError::Stack(e.to_string()))?;

        let (events, events_rx) = EventSink::new();
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| EdgeError::Stack(e.to_string()))?;
        let shared = Arc::new(Shared {
            users: Users {
                realm: settings.domain.clone(),
                secrets: settings.users.clone(),
            },
            trunks: TrunkTable::new(settings.trunks.clone()),
            auth: Mutex::new(DigestAuthority::new(
                settings.domain.clone(),
                secret,
                settings.nonce_ttl.as_secs().max(1),
            )),
            registrar: Mutex::new(Registrar::new(settings.limits)),
            flows: Mutex::new(HashMap::new()),
            stats,
            trunk_state: crate::keepalive::TrunkStates::new(settings.trunks.len()),
            started: Instant::now(),
            salt: AtomicU64::new(u64::from_le_bytes([
                secret[0], secret[1], secret[2], secret[3], 0, 0, 0, 0,
            ])),
            endpoint: endpoint.inner.clone(),
            udp,
            settings,
            events,
            calls: Calls::default(),
        });

        let mut tasks = Vec::new();
        let inner = endpoint.inner.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = inner.serve().await {
                tracing::error!(error = %e, "SIP endpoint stopped");
            }
        }));
        let (sh, token) = (shared.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    tx = incoming.recv() => match tx {
                        Some(tx) => { tokio::spawn(handle(tx, sh.clone())); }
                        None => break,
                    },
                }
            }
        }));
        tasks.push(tokio::spawn(crate::registration::housekeeping(
            shared.clone(),
            closed_rx,
            cancel.clone(),
        )));
        crate::keepalive::spawn(&shared, &cancel, &mut tasks);
        crate::qualify::spawn(&shared, &cancel, &mut tasks);
        Ok(SipEdge {
            endpoint,
            shared,
            cancel,
            tasks,
            events: Some(events_rx),
        })
    }

    /// The counters.
    pub fn stats(&self) -> SipStatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Current registered contacts, all users.
    pub fn bindings(&self) -> usize {
        lock(&self.shared.registrar).len()
    }

    /// Stops listening and every task.
    pub async fn shutdown(self) {
        self.shared.calls.terminate_all();
        self.cancel.cancel();
        self.endpoint.shutdown();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

/// Answers one request.
async fn handle(mut tx: Transaction, sh: Arc<Shared>) {
    SipStats::bump(&sh.stats.requests);
    // Over UDP answer the address the request came from (symmetric response routing; also
    // avoids rsipstack's malformed `received` for IPv6).
    if let Some(conn) = &tx.connection
        && !conn.is_reliable()
    {
        tx.destination = conn.get_remote_addr().cloned();
    }
    let method = tx.original.method;
    if method == Method::Ack {
        return;
    }
    let max_forwards = tx
        .original
        .max_forwards_header()
        .ok()
        .and_then(|h| h.value().trim().parse::<u32>().ok());
    let result = if max_forwards == Some(0) {
        tx.reply(StatusCode::TooManyHops).await
    } else {
        match method {
            Method::Options => tx.reply_with(StatusCode::OK, capabilities(), None).await,
            Method::Register => crate::registration::register(&mut tx, &sh).await,
            Method::Invite if sipmsg::tags(&tx.original).1.is_some() => {
                match legs::in_dialog(&mut tx, &sh).await {
                    Some(r) => r,
                    None => tx.reply(StatusCode::CallTransactionDoesNotExist).await,
                }
            }
            Method::Invite => match invite(&mut tx, &sh).await {
                Ok(Some(call)) => return pbx::run(tx, sh, call).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Method::Bye => match legs::in_dialog(&mut tx, &sh).await {
                Some(r) => r,
                None => tx.reply(StatusCode::CallTransactionDoesNotExist).await,
            },
            Method::Cancel => tx.reply(StatusCode::CallTransactionDoesNotExist).await,
            Method::Info => crate::info::handle(&mut tx, &sh).await,
            Method::Refer => crate::refer::handle(&mut tx, &sh).await,
            Method::Subscribe
            | Method::Notify
            | Method::Message
            | Method::Update
            | Method::PRack
            | Method::Publish => {
                let allow = vec![Header::Allow(ALLOW.into())];
                tx.reply_with(StatusCode::MethodNotAllowed, allow, None)
                    .await
            }
            _ => tx.reply(StatusCode::NotImplemented).await,
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not answer");
    }
    if method == Method::Invite {
        // Keep the transaction driven until it ends: retransmits the final response and
        // absorbs the ACK.
        while tx.receive().await.is_some() {}
    }
}

fn capabilities() -> Vec<Header> {
    vec![
        Header::Allow(ALLOW.into()),
        Header::Accept("application/sdp".into()),
        Header::Supported("replaces, timer".into()),
    ]
}

pub(crate) fn source_of(tx: &Transaction) -> Option<(SocketAddr, Transport, SipConnection)> {
    let conn = tx.connection.clone()?;
    let remote = conn.get_remote_addr()?.get_socketaddr().ok()?;
    let transport = if conn.is_reliable() {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    Some((remote, transport, conn))
}

impl Shared {
    /// The UDP listener to reach a phone from: the one its REGISTER reached, else one of
    /// its address family.
    pub(crate) fn udp_listener(
        &self,
        local: Option<SocketAddr>,
        v6: bool,
    ) -> Option<SipConnection> {
        let addr = |c: &SipConnection| c.get_addr().get_socketaddr().ok();
        self.udp
            .iter()
            .find(|c| local.is_some() && addr(c) == local)
            .or_else(|| {
                self.udp
                    .iter()
                    .find(|c| addr(c).is_some_and(|a| a.is_ipv6() == v6))
            })
            .cloned()
    }

    /// A fresh client nonce for answering a digest challenge.
    pub(crate) fn next_cnonce(&self) -> String {
        format!("{:016x}", self.salt.fetch_add(1, Ordering::Relaxed))
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Checks an operator's digest credentials `header` on a request with `method`: the
    /// user and the algorithm used.
    pub(crate) fn verify_user(
        &self,
        method: &str,
        header: Option<&str>,
    ) -> Result<(String, Algorithm), AuthError> {
        lock(&self.auth).verify(self.now_secs(), method, header, &self.users)
    }

    fn challenge(&self, stale: bool) -> Vec<Header> {
        let salt = self
            .salt
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        lock(&self.auth)
            .challenge(self.now_secs(), salt, stale, &self.settings.algorithms)
            .into_iter()
            .map(|v| Header::WwwAuthenticate(v.into()))
            .collect()
    }
}

/// Replies to an authentication failure: challenge, stale challenge or `403`.
pub(crate) async fn refuse(
    tx: &mut Transaction,
    sh: &Shared,
    err: AuthError,
) -> rsipstack::Result<()> {
    match err {
        AuthError::Missing | AuthError::Malformed(_) => {
            tx.reply_with(StatusCode::Unauthorized, sh.challenge(false), None)
                .await
        }
        AuthError::Stale => {
            tx.reply_with(StatusCode::Unauthorized, sh.challenge(true), None)
                .await
        }
        AuthError::Rejected => {
            SipStats::bump(&sh.stats.auth_failures);
            tx.reply(StatusCode::Forbidden).await
        }
    }
}

/// A new INVITE from a PBX: `Some(call)` when it was handed to the runtime.
async fn invite(tx: &mut Transaction, sh: &Shared) -> rsipstack::Result<Option<u64>> {
    tx.send_trying().await?;
    let Some((source, _, _)) = source_of(tx) else {
        return tx.reply(StatusCode::BadRequest).await.map(|()| None);
    };
    let from_user = sipmsg::caller_user(&tx.original);
    if operator_calls::from_a_binding(sh, &from_user, source) {
        return operator_calls::invite(tx, sh, source).await;
    }
    let trunk = match sh.trunks.identify(source.ip()) {
        Identity::Trunk(t) => t,
        Identity::Unknown => {
            // Not a trunk: an operator's softphone, which must authenticate.
            return operator_calls::invite(tx, sh, source).await;
        }
        Identity::NeedsDigest(candidates) => {
            let header = tx
                .original
                .authorization_header()
                .map(|h| h.value().to_string());
            let username = header
                .as_deref()
                .and_then(crate::digest::parse_credentials)
                .map(|c| c.username);
            if let Some(username) = username
                && !candidates
                    .iter()
                    .any(|t| t.credentials.as_ref().is_some_and(|(u, _)| *u == username))
            {
                // Credentials of no candidate trunk: an operator's, maybe.
                return operator_calls::invite(tx, sh, source).await;
            }
            let creds = TrunkCreds {
                realm: &sh.settings.domain,
                trunks: &candidates,
            };
            let verified =
                lock(&sh.auth).verify(sh.now_secs(), "INVITE", header.as_deref(), &creds);
            match verified {
                Ok((user, _)) => match candidates
                    .iter()
                    .find(|t| t.credentials.as_ref().is_some_and(|(u, _)| *u == user))
                {
                    Some(t) => t,
                    None => return tx.reply(StatusCode::Forbidden).await.map(|()| None),
                },
                Err(e) => return refuse(tx, sh, e).await.map(|()| None),
            }
        }
    };
    let number = tx.original.uri.user().unwrap_or_default().to_string();
    match TrunkTable::route(trunk, &number) {
        Route::NotFound => {
            SipStats::bump(&sh.stats.unknown_number);
            tracing::info!(trunk = %trunk.name, "INVITE for a number no route names");
            tx.reply(StatusCode::NotFound).await.map(|()| None)
        }
        Route::Queue(queue) => {
            let what = Admission {
                trunk: &trunk.name,
                queue,
                number,
                source,
            };
            pbx::admit(tx, sh, what).await
        }
    }
}
