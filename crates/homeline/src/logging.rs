//! Logging: `tracing` to stderr, JSON or text per `[log]`, filtered by `log.level` unless
//! `RUST_LOG` is set.

use anyhow::Context;
use homeline_config::{Log, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// rsipstack logs every message it sends or receives, raw, at `info`: phone numbers are
/// personal data, so its default level is `warn` unless `level` names it.
fn quiet_stack(level: &str) -> String {
    if level.contains("rsipstack") {
        level.to_string()
    } else {
        format!("{level},rsipstack=warn")
    }
}

/// Installs the global subscriber.
pub(crate) fn init(log: &Log) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(&s)
            .with_context(|| format!("RUST_LOG=`{s}` is not a valid filter"))?,
        _ => EnvFilter::try_new(quiet_stack(&log.level))
            .with_context(|| format!("log.level `{}` is not a valid filter", log.level))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
