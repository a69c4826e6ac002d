//! `homeline run`: load the configuration, start what is built, and say plainly what is not.

use crate::calls;
use crate::logging;
use anyhow::Context;
use homeline_config::Config;
use homeline_engine::{AnswerMode, Engine};
use homeline_media::relay::PortAllocator;
use homeline_routing::{Router, SplitMix64};
use homeline_sip::{EdgeSettings, SipEdge, UserSecret};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

pub(crate) fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = match homeline_config::load(path) {
        Ok(l) => l,
        Err(errors) => return Ok(crate::report_invalid(&errors)),
    };
    let cfg = loaded.config;
    logging::init(&cfg.log)?;
    for w in &loaded.warnings {
        warn!(file = %w.file, line = w.line, key = %w.key, "configuration: {}", w.problem);
    }
    info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), "homeline starting");

    // The one place the clock seeds randomness; the routing core itself never reads it.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_nanos() as u64;
    let router_config = cfg.router_config();
    let router = match Router::new(&router_config, SplitMix64::new(seed)) {
        Ok(r) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            return Ok(ExitCode::from(crate::EXIT_CONFIG));
        }
    };
    info!(
        queues = router_config.queues.len(),
        operators = router_config.agents.len(),
        "routing core ready with {} queues and {} operators",
        router_config.queues.len(),
        router_config.agents.len()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(&cfg, router, seed))
}

/// Starts the SIP edge and the call task, and serves until SIGINT or SIGTERM.
async fn serve(cfg: &Config, router: Router<SplitMix64>, seed: u64) -> anyhow::Result<ExitCode> {
    let ports = match PortAllocator::new(
        cfg.media.public_ip,
        cfg.media.rtp_port_min..=cfg.media.rtp_port_max,
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the RTP port range");
            eprintln!("homeline: RTP ports: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut edge = match SipEdge::start(sip_settings(cfg)).await {
        Ok(edge) => edge,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the SIP edge");
            eprintln!("homeline: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let events = edge.events();
    let edge = Arc::new(edge);
    let list = |addrs: &[std::net::SocketAddr]| {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    info!(
        udp = %list(&cfg.sip.udp),
        tcp = %list(&cfg.sip.tcp),
        trunks = cfg.trunks.len(),
        operators = cfg.agents.len(),
        "SIP edge listening"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let call_task = events.map(|events| {
        let settings = call_settings(
            cfg,
            router
                .queue_ids()
                .filter_map(|q| router.queue_name(q).map(|n| (n.to_string(), q))),
        );
        let engine = Engine::new(router);
        tokio::spawn(calls::run(
            engine,
            edge.clone(),
            events,
            settings,
            ports,
            seed,
            stop_rx,
        ))
    });
    report_not_built(cfg);
    wait_for_signal().await?;
    let _ = stop_tx.send(true);
    if let Some(task) = call_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    info!(stats = ?edge.stats(), bindings = edge.bindings(), "shutting down");
    match Arc::try_unwrap(edge) {
        Ok(edge) => edge.shutdown().await,
        Err(_) => warn!("SIP edge still in use at shutdown"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What the call task needs: queue ids and answer modes, `ready_on_register` and the trunk
/// and caller id of their own calls per operator (the trunk resolved: absent, the first).
fn call_settings(
    cfg: &Config,
    queue_ids: impl Iterator<Item = (String, homeline_routing::QueueId)>,
) -> calls::CallSettings {
    let ids: std::collections::HashMap<String, homeline_routing::QueueId> = queue_ids.collect();
    calls::CallSettings {
        queues: cfg
            .queues
            .iter()
            .filter_map(|q| {
                let answer = match q.answer {
                    homeline_config::Answer::OnEnqueue => AnswerMode::OnEnqueue,
                    homeline_config::Answer::OnAgent => AnswerMode::OnAgent,
                };
                Some((q.name().to_string(), (*ids.get(q.name())?, answer)))
            })
            .collect(),
        ready_on_register: cfg
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.ready_on_register))
            .collect(),
        outbound: cfg
            .agents
            .iter()
            .map(|a| {
                let trunk = a.trunk.as_ref().or(cfg.trunks.first().map(|t| &t.name));
                let line = calls::OperatorOutbound {
                    trunk: trunk.cloned(),
                    caller_id: a.caller_id.clone(),
                };
                (a.name.clone(), line)
            })
            .collect(),
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot watch SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// The SIP edge's settings from the validated configuration.
fn sip_settings(cfg: &Config) -> EdgeSettings {
    use homeline_config::{AgentSecret, DigestAlgorithm, Transport};
    use homeline_sip::digest::Algorithm;
    use homeline_sip::trunks::{TrunkSpec, TrunkTransport};
    let sip = &cfg.sip;
    EdgeSettings {
        udp: sip.udp.clone(),
        tcp: sip.tcp.clone(),
        domain: sip.domain.clone(),
        user_agent: sip.user_agent.clone(),
        t1: sip.t1,
        nonce_ttl: sip.nonce_ttl,
        qualify_interval: sip.qualify_interval,
        limits: homeline_sip::registrar::Limits {
            min: sip.min_expires,
            max: sip.max_expires,
            default: sip.default_expires,
            max_bindings: 10,
        },
        algorithms: sip
            .digest_algorithms
            .iter()
            .map(|a| match a {
                DigestAlgorithm::Sha256 => Algorithm::Sha256,
                DigestAlgorithm::Md5 => Algorithm::Md5,
            })
            .collect(),
        max_message_size: sip.max_message_size,
        rate_limit: (sip.rate_limit > 0).then_some(homeline_sip::RateLimit {
            per_second: sip.rate_limit,
            burst: sip.rate_burst,
        }),
        users: cfg
            .agents
            .iter()
            .map(|a| {
                let secret = match &a.secret {
                    AgentSecret::Password(p) => UserSecret::Password(p.expose().to_string()),
                    AgentSecret::Ha1(h) => UserSecret::Ha1 {
                        md5: h.md5.clone(),
                        sha256: h.sha256.clone(),
                    },
                };
                (a.name.clone(), secret)
            })
            .collect(),
        trunks: cfg
            .trunks
            .iter()
            .map(|t| TrunkSpec {
                name: t.name.clone(),
                pbx: t.pbx,
                transport: match t.transport {
                    Transport::Udp => TrunkTransport::Udp,
                    Transport::Tcp => TrunkTransport::Tcp,
                },
                allow: t.allow.clone(),
                credentials: t
                    .credentials
                    .as_ref()
                    .map(|c| (c.username.clone(), c.password.expose().to_string())),
                options_interval: t.options_interval,
                caller_id: t.caller_id.clone(),
                routes: t.routes.clone(),
            })
            .collect(),
        features: homeline_sip::FeatureCodes {
            ready: cfg.features.ready.clone(),
            not_ready: cfg.features.not_ready.clone(),
            logout: cfg.features.logout.clone(),
        },
    }
}

/// Says plainly what is not built yet.
fn report_not_built(cfg: &Config) {
    warn!("not built yet: WebRTC media, music on hold from a WAV");
    warn!(
        listen = %cfg.http.listen,
        "not built yet: HTTP API, operator console and metrics; nothing listens for HTTP"
    );
}
