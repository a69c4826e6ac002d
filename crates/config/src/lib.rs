//! # homeline-config: the configuration file, typed and validated
//!
//! Owns reading `homeline.toml`, checking it, and turning it into the typed [`Config`] the
//! rest of homeline sees (and the routing core's [`RouterConfig`]). It must not start
//! anything, open sockets, or read any file but the one it is given.
//!
//! Every problem is collected, not just the first: syntax errors, unknown keys, wrong types,
//! bad values and references between sections that do not resolve each come back as a
//! [`Diagnostic`] with the file, 1-based line and key path (`queue.support.ring_timeout`),
//! displayed as `file:line: key: problem`.
//!
//! ```no_run
//! match homeline_config::load(std::path::Path::new("config/homeline.toml")) {
//!     Ok(loaded) => {
//!         for w in &loaded.warnings {
//!             eprintln!("{w}");
//!         }
//!         let _router_config = loaded.config.router_config();
//!     }
//!     Err(errors) => {
//!         for d in &errors.0 {
//!             eprintln!("{d}");
//!         }
//!     }
//! }
//! ```
//!
//! The TOML is parsed into `toml`'s spanned tree and walked by hand rather than through
//! serde derive, because serde stops at the first error and loses the line of a value once
//! it has been converted.

mod agent;
mod check;
mod diagnostic;
mod duration;
mod features;
mod model;
mod queue;
mod reader;
mod sections;
mod trunk;

pub use agent::DEMO_PASSWORD;
pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use duration::{InvalidDuration, format_duration, parse_duration};
pub use model::{
    Agent, AgentSecret, Answer, Config, Credentials, Defaults, DigestAlgorithm, Features, Ha1,
    Host, Http, Log, LogFormat, Media, Queue, Secret, Sip, Transport, Trunk,
};

use homeline_routing::{AgentConfig, RouterConfig};
use reader::{Ctx, Table, Value};
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A configuration that passed every check, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Accepted but suspicious: each a [`Severity::Warning`].
    pub warnings: Vec<Diagnostic>,
}

const ROOT_KEYS: &[&str] = &[
    "sip", "http", "media", "log", "defaults", "features", "trunk", "queue", "agent",
];

/// The key of TOML syntax errors.
const SYNTAX: &str = "syntax";

/// Every key the file accepts, by table, for documentation and its tests.
pub const KNOWN_KEYS: &[(&str, &[&str])] = &[
    ("", ROOT_KEYS),
    ("sip", sections::SIP_KEYS),
    ("http", sections::HTTP_KEYS),
    ("media", sections::MEDIA_KEYS),
    ("log", sections::LOG_KEYS),
    ("defaults", sections::DEFAULTS_KEYS),
    ("features", features::FEATURES_KEYS),
    ("trunk", trunk::TRUNK_KEYS),
    ("queue", queue::QUEUE_KEYS),
    ("queue.overflow", queue::OVERFLOW_KEYS),
    ("queue.required_skills", queue::REQUIRED_SKILL_KEYS),
    ("queue.relax", queue::RELAX_KEYS),
    ("agent", agent::AGENT_KEYS),
    ("agent.password_ha1", agent::HA1_KEYS),
    ("agent.queues", agent::MEMBERSHIP_KEYS),
];

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => parse(&source, &file),
        Err(e) => Err(ConfigErrors(vec![Diagnostic {
            file,
            line: 0,
            key: String::new(),
            problem: format!("cannot read: {e}"),
            severity: Severity::Error,
        }])),
    }
}

/// Validates `source`, naming it `file` in diagnostics.
pub fn parse(source: &str, file: &str) -> Result<Loaded, ConfigErrors> {
    let mut ctx = Ctx::new(file, source);
    let (root, syntax) = DeTable::parse_recoverable(source);
    for e in &syntax {
        let line = ctx.line(e.span().unwrap_or(0..0));
        ctx.error(line, SYNTAX, e.message().trim().to_owned());
    }
    if !syntax.is_empty() {
        ctx.set_recovering();
    }
    let root = Spanned::new(0..0, DeValue::Table(root.into_inner()));
    let config = build(&mut ctx, &root);
    let mut diags = std::mem::take(&mut ctx.diags);
    if !syntax.is_empty() {
        // A line with a syntax error gets that error only: what the parser recovered there
        // (and the rest of a value it swallowed) would only add noise.
        let mut syntax_lines = std::collections::HashSet::new();
        diags.retain(|d| {
            if d.key == SYNTAX {
                syntax_lines.insert(d.line)
            } else {
                true
            }
        });
        diags.retain(|d| d.key == SYNTAX || !syntax_lines.contains(&d.line));
    }
    diags.sort_by_key(|d| d.line);
    match config {
        Some(config) if !diags.iter().any(Diagnostic::is_error) => Ok(Loaded {
            config,
            warnings: diags,
        }),
        _ => Err(ConfigErrors(diags)),
    }
}

/// Reads every section and runs every check; `None` when anything is wrong.
fn build(ctx: &mut Ctx, root: &Value<'_>) -> Option<Config> {
    let empty = Spanned::new(0..0, DeValue::Table(DeTable::new()));
    let top = Table::new(ctx, "", root, ROOT_KEYS)?;
    let section = |ctx: &mut Ctx, name: &str, keys: &[&str]| {
        let v = top.raw(ctx, name).unwrap_or(&empty);
        Table::new(ctx, name, v, keys)
    };
    let sip = section(ctx, "sip", sections::SIP_KEYS).map(|t| sections::sip(ctx, &t));
    let http = section(ctx, "http", sections::HTTP_KEYS).map(|t| sections::http(ctx, &t));
    let media = section(ctx, "media", sections::MEDIA_KEYS).map(|t| sections::media(ctx, &t));
    let log = section(ctx, "log", sections::LOG_KEYS).map(|t| sections::log(ctx, &t));
    let defaults =
        section(ctx, "defaults", sections::DEFAULTS_KEYS).map(|t| sections::defaults(ctx, &t));
    let features =
        section(ctx, "features", features::FEATURES_KEYS).map(|t| features::features(ctx, &t));

    let mut all = |kind: &str| {
        let items: Vec<_> = root
            .get_ref()
            .as_table()
            .map(|r| reader::array_of_tables(ctx, r, kind))
            .unwrap_or_default();
        items
    };
    let trunk_items = all("trunk");
    let queue_items = all("queue");
    let agent_items = all("agent");
    let elem = |kind: &str, i: usize, v: &Value<'_>| reader::element_path(kind, i, v);
    let trunks: Vec<_> = trunk_items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| trunk::trunk(ctx, &elem("trunk", i, v), v))
        .collect();
    let queues: Vec<_> = queue_items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| queue::queue(ctx, &elem("queue", i, v), v))
        .collect();
    let agent_defaults = defaults.unwrap_or(Defaults {
        ready_on_register: true,
    });
    let agents: Vec<_> = agent_items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| agent::agent(ctx, &elem("agent", i, v), v, agent_defaults))
        .collect();
    let (sip, http) = (sip?, http?);
    check::cross_check(ctx, &sip, &http, &trunks, &queues, &agents);

    let config = Config {
        sip,
        http,
        media: media?,
        log: log?,
        defaults: defaults?,
        features: features?,
        trunks: trunks.into_iter().map(|t| t.trunk).collect(),
        queues: queues.into_iter().map(|q| q.queue).collect(),
        agents: agents.into_iter().map(|a| a.agent).collect(),
    };
    if ctx.has_errors() {
        return None;
    }
    // The routing core checks its part again; anything it finds that the checks above did
    // not is still reported, at the line of the key it names (or its closest parent).
    for p in config.router_config().problems() {
        let mut key = p.key.as_str();
        let line = loop {
            if let Some(l) = ctx.key_lines.get(key) {
                break *l;
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => break 1,
            }
        };
        ctx.error(line, &p.key, p.problem);
    }
    Some(config)
}

impl Config {
    /// The routing core's view: queues and operators in file order.
    pub fn router_config(&self) -> RouterConfig {
        RouterConfig {
            queues: self.queues.iter().map(|q| q.routing.clone()).collect(),
            agents: self
                .agents
                .iter()
                .map(|a| AgentConfig {
                    name: a.name.clone(),
                    queues: a.queues.clone(),
                    skills: a.skills.clone(),
                })
                .collect(),
        }
    }

    /// The queue called `name`.
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.name() == name)
    }

    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The trunk called `name`.
    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }
}
