//! `homeline run`: load the configuration, start what is built, and say plainly what is not.

use crate::logging;
use anyhow::Context;
use homeline_config::Config;
use homeline_routing::{Router, SplitMix64};
use std::path::Path;
use std::process::ExitCode;
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
    let _router = match Router::new(&router_config, SplitMix64::new(seed)) {
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
    report_not_built(&cfg);
    Ok(ExitCode::SUCCESS)
}

/// Says what `run` would start once it is built, and that it is not started.
fn report_not_built(cfg: &Config) {
    let list = |addrs: &[std::net::SocketAddr]| {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    warn!(
        udp = %list(&cfg.sip.udp),
        tcp = %list(&cfg.sip.tcp),
        trunks = cfg.trunks.len(),
        "not built yet: SIP edge (transports, registrar, trunks); nothing listens for SIP"
    );
    warn!("not built yet: call path (B2BUA engine) and media (RTP relay, WebRTC)");
    warn!(
        listen = %cfg.http.listen,
        "not built yet: HTTP API, operator console and metrics; nothing listens for HTTP"
    );
    info!("nothing to serve yet; homeline exits");
}
