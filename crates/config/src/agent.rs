//! `[[agent]]`: operators, their secrets, queue memberships and skills.

use crate::model::{Agent, AgentSecret, Defaults, Ha1, Secret};
use crate::reader::{self, Ctx, Table, Value};
use homeline_routing::MembershipConfig;
use toml::de::DeValue;

pub(crate) const AGENT_KEYS: &[&str] = &[
    "name",
    "display_name",
    "password",
    "password_ha1",
    "queues",
    "skills",
    "ready_on_register",
    "trunk",
    "caller_id",
];
pub(crate) const MEMBERSHIP_KEYS: &[&str] = &["queue", "penalty"];
pub(crate) const HA1_KEYS: &[&str] = &["md5", "sha256"];

/// The password of the shipped demo operators; warned about off loopback.
pub const DEMO_PASSWORD: &str = "demo-password";

/// An agent as read, with the lines the cross-checks need.
#[derive(Debug)]
pub(crate) struct AgentDraft {
    pub(crate) agent: Agent,
    pub(crate) path: String,
    pub(crate) line: usize,
    pub(crate) name_line: usize,
    pub(crate) password_line: usize,
    pub(crate) ha1_line: usize,
    /// Line of each membership, in `agent.queues` order.
    pub(crate) queue_lines: Vec<usize>,
    /// Line of `trunk` (of the table when absent).
    pub(crate) trunk_line: usize,
}

fn hex(digits: usize) -> impl Fn(&Value<'_>) -> Result<String, String> {
    move |v| {
        let s = reader::string(v)?;
        if s.len() == digits && s.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(s.to_ascii_lowercase())
        } else {
            Err(format!(
                "expected {digits} hex digits, H(username:realm:password)"
            ))
        }
    }
}

fn ha1(ctx: &mut Ctx, t: &Table<'_, '_>) -> Option<Ha1> {
    let v = t.raw(ctx, "password_ha1")?;
    let h = Table::new(ctx, &t.key("password_ha1"), v, HA1_KEYS)?;
    let md5 = h.opt(ctx, "md5", hex(32));
    let sha256 = h.opt(ctx, "sha256", hex(64));
    if !h.has("md5") && !h.has("sha256") {
        ctx.error(h.line, &h.path, "set md5 and/or sha256");
        return None;
    }
    (md5.is_some() || sha256.is_some()).then_some(Ha1 { md5, sha256 })
}

fn secret(ctx: &mut Ctx, t: &Table<'_, '_>) -> Option<AgentSecret> {
    // Both are read whatever happens, so that a bad value is reported either way.
    let password = t.opt(ctx, "password", reader::owned);
    let ha1 = ha1(ctx, t);
    match (t.has("password"), t.has("password_ha1")) {
        (true, true) => {
            t.error_on(
                ctx,
                "password_ha1",
                "set either password or password_ha1, not both",
            );
            None
        }
        (false, false) => {
            ctx.error(
                t.line,
                &t.key("password"),
                "missing: set password or password_ha1",
            );
            None
        }
        _ => password
            .map(|p| AgentSecret::Password(Secret::new(p)))
            .or(ha1.map(AgentSecret::Ha1)),
    }
}

/// `"support"` or `{ queue = "support", penalty = 1 }`.
fn membership(ctx: &mut Ctx, key: &str, v: &Value<'_>) -> Option<(MembershipConfig, usize)> {
    let line = ctx.line(v.span());
    let m = if let DeValue::String(_) = v.get_ref() {
        match reader::name(v) {
            Ok(queue) => MembershipConfig { queue, penalty: 0 },
            Err(p) => {
                ctx.error(line, key, p);
                return None;
            }
        }
    } else {
        let DeValue::Table(_) = v.get_ref() else {
            ctx.error(
                line,
                key,
                format!(
                    "expected a queue name or {{ queue = \"NAME\", penalty = N }}, found {}",
                    v.get_ref().type_str()
                ),
            );
            return None;
        };
        let m = Table::new(ctx, key, v, MEMBERSHIP_KEYS)?;
        let queue = m.req(ctx, "queue", reader::name)?;
        let penalty = m
            .opt(ctx, "penalty", |v| reader::int::<u8>(v, 0, 255))
            .unwrap_or(0);
        MembershipConfig { queue, penalty }
    };
    Some((m, line))
}

pub(crate) fn agent(
    ctx: &mut Ctx,
    path: &str,
    v: &Value<'_>,
    defaults: Defaults,
) -> Option<AgentDraft> {
    let t = Table::new(ctx, path, v, AGENT_KEYS)?;
    let name = t.req(ctx, "name", reader::name).unwrap_or_default();
    let display_name = t
        .opt(ctx, "display_name", reader::owned)
        .unwrap_or_else(|| name.clone());
    let secret = secret(ctx, &t).unwrap_or_else(|| AgentSecret::Password(Secret::new("")));
    let mut queues: Vec<MembershipConfig> = Vec::new();
    let mut queue_lines = Vec::new();
    for (m, line) in t.list(ctx, "queues", membership).unwrap_or_default() {
        if queues.iter().any(|q| q.queue == m.queue) {
            ctx.error(
                line,
                &t.key("queues"),
                format!("queue `{}` listed twice", m.queue),
            );
        } else {
            queues.push(m);
            queue_lines.push(line);
        }
    }
    let mut skills = Vec::new();
    for e in t.entries(ctx, "skills").unwrap_or_default() {
        let key = format!("{}.skills.{}", t.path, e.name);
        let line = ctx.line(e.value.span());
        if let Err(p) = reader::check_name(e.name) {
            ctx.error(line, &key, p);
            continue;
        }
        match reader::int::<u8>(e.value, 1, 5) {
            Ok(p) => skills.push((e.name.to_owned(), p)),
            Err(p) => ctx.error(line, &key, format!("proficiency: {p}")),
        }
    }
    let ready_on_register = t
        .opt(ctx, "ready_on_register", reader::boolean)
        .unwrap_or(defaults.ready_on_register);
    let trunk = t.opt(ctx, "trunk", reader::name);
    let caller_id = t.opt(ctx, "caller_id", |v| {
        let s = reader::string(v)?;
        crate::trunk::check_number(s)?;
        Ok(s.to_owned())
    });
    Some(AgentDraft {
        path: t.path.clone(),
        line: t.line,
        name_line: t.line_of(ctx, "name"),
        password_line: t.line_of(ctx, "password"),
        ha1_line: t.line_of(ctx, "password_ha1"),
        queue_lines,
        trunk_line: t.line_of(ctx, "trunk"),
        agent: Agent {
            name,
            display_name,
            secret,
            queues,
            skills,
            ready_on_register,
            trunk,
            caller_id,
        },
    })
}
