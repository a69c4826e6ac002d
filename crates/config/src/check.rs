//! Checks across sections: unique names, references between trunks, queues and agents,
//! overlapping trunks, and unsafe combinations (demo credentials off loopback).

use crate::agent::{AgentDraft, DEMO_PASSWORD};
use crate::model::{AgentSecret, DigestAlgorithm, Http, Sip, Transport};
use crate::queue::QueueDraft;
use crate::reader::Ctx;
use crate::trunk::TrunkDraft;
use homeline_routing::OverflowConfig;
use std::collections::HashMap;

/// Reports each name used a second time; returns name -> first line.
fn unique<'a>(
    ctx: &mut Ctx,
    kind: &str,
    items: impl Iterator<Item = (&'a str, &'a str, usize)>,
) -> HashMap<&'a str, usize> {
    let mut first = HashMap::new();
    for (name, path, line) in items {
        if name.is_empty() {
            continue;
        }
        if let Some(l) = first.get(name) {
            ctx.error(
                line,
                &format!("{path}.name"),
                format!("duplicate {kind} name `{name}` (first on line {l})"),
            );
        } else {
            first.insert(name, line);
        }
    }
    first
}

pub(crate) fn cross_check(
    ctx: &mut Ctx,
    sip: &Sip,
    http: &Http,
    trunks: &[TrunkDraft],
    queues: &[QueueDraft],
    agents: &[AgentDraft],
) {
    let trunk_names = unique(
        ctx,
        "trunk",
        trunks
            .iter()
            .map(|t| (t.trunk.name.as_str(), t.path.as_str(), t.name_line)),
    );
    let queue_names = unique(
        ctx,
        "queue",
        queues
            .iter()
            .map(|q| (q.queue.name(), q.path.as_str(), q.name_line)),
    );
    unique(
        ctx,
        "agent",
        agents
            .iter()
            .map(|a| (a.agent.name.as_str(), a.path.as_str(), a.name_line)),
    );
    let known = |q: &str| queue_names.contains_key(q);

    // Trunks: routes, listeners, overlapping allow-lists.
    let mut numbers: HashMap<&str, (&str, &str, usize)> = HashMap::new();
    for t in trunks {
        for (number, queue) in &t.trunk.routes {
            let line = t.route_lines.get(number).copied().unwrap_or(t.line);
            let key = format!("{}.routes.{number}", t.path);
            if !known(queue) {
                ctx.error(line, &key, format!("unknown queue `{queue}`"));
            }
            match numbers.get(number.as_str()) {
                Some((other, q, l)) if *q != queue.as_str() => ctx.error(
                    line,
                    &key,
                    format!("number already routed to queue `{q}` by trunk `{other}` (line {l})"),
                ),
                Some(_) => {}
                None => {
                    numbers.insert(number, (&t.trunk.name, queue, line));
                }
            }
        }
        let (listeners, what) = match t.trunk.transport {
            Transport::Udp => (&sip.udp, "sip.udp"),
            Transport::Tcp => (&sip.tcp, "sip.tcp"),
        };
        if listeners.is_empty() && !ctx.has_errors_for(what) {
            ctx.error(
                t.transport_line,
                &format!("{}.transport", t.path),
                format!(
                    "uses {} but {what} has no listen address",
                    t.trunk.transport.as_str()
                ),
            );
        }
    }
    for (i, a) in trunks.iter().enumerate() {
        for b in &trunks[..i] {
            let overlap = a.trunk.allow.iter().find(|x| {
                b.trunk
                    .allow
                    .iter()
                    .any(|y| x.contains(&y.network()) || y.contains(&x.network()))
            });
            if let Some(net) = overlap {
                ctx.warn(
                    a.allow_line,
                    &format!("{}.allow", a.path),
                    format!(
                        "{net} overlaps trunk `{}`'s allow-list (line {}): requests from the \
                         overlap are matched to the first trunk in the file",
                        b.trunk.name, b.allow_line
                    ),
                );
            }
        }
    }

    // Queues: overflow targets, members, whether required skills can ever be met.
    for q in queues {
        let r = &q.queue.routing;
        let key = format!("{}.overflow", q.path);
        match &r.overflow {
            Some(OverflowConfig::Queue(t)) if t == &r.name => {
                ctx.error(q.overflow_line, &key, "a queue cannot overflow to itself")
            }
            Some(OverflowConfig::Queue(t)) if !known(t) => {
                ctx.error(q.overflow_line, &key, format!("unknown queue `{t}`"))
            }
            _ => {}
        }
        let members: Vec<_> = agents
            .iter()
            .filter(|a| a.agent.queues.iter().any(|m| m.queue == r.name))
            .collect();
        if members.is_empty() && !r.name.is_empty() {
            ctx.warn(
                q.line,
                &q.path,
                "no operator is a member: its calls can never be answered",
            );
            continue;
        }
        let floor = r.relax.last().map(|s| s.min_proficiency);
        for req in &r.required_skills {
            let need = floor.map_or(req.min, |f| f.min(req.min));
            let met = need == 0
                || members.iter().any(|a| {
                    a.agent
                        .skills
                        .iter()
                        .any(|(s, p)| *s == req.skill && *p >= need)
                });
            if !met {
                ctx.warn(
                    q.required_skills_line,
                    &format!("{}.required_skills", q.path),
                    format!(
                        "no member has skill `{}` at proficiency {need} or more: its calls wait \
                         until max_wait",
                        req.skill
                    ),
                );
            }
        }
    }

    // Agents: memberships of unknown queues, unknown outbound trunks.
    for a in agents {
        if let Some(t) = &a.agent.trunk
            && !trunk_names.contains_key(t.as_str())
        {
            let problem = if trunks.is_empty() {
                format!("unknown trunk `{t}`: no [[trunk]] is configured")
            } else {
                format!("unknown trunk `{t}`")
            };
            ctx.error(a.trunk_line, &format!("{}.trunk", a.path), problem);
        }
        if a.agent.queues.is_empty() && !ctx.has_errors_for(&format!("{}.queues", a.path)) {
            ctx.warn(
                a.line,
                &a.path,
                "is in no queue: will never be offered a call",
            );
        }
        for (m, line) in a.agent.queues.iter().zip(&a.queue_lines) {
            if !known(&m.queue) {
                ctx.error(
                    *line,
                    &format!("{}.queues", a.path),
                    format!("unknown queue `{}`", m.queue),
                );
            }
        }
    }

    digest_hashes(ctx, sip, agents);
    demo_credentials(ctx, sip, http, agents);
}

/// An operator known only by digest hashes needs one for an algorithm homeline offers.
fn digest_hashes(ctx: &mut Ctx, sip: &Sip, agents: &[AgentDraft]) {
    for a in agents {
        let AgentSecret::Ha1(h) = &a.agent.secret else {
            continue;
        };
        let usable = sip.digest_algorithms.iter().any(|alg| match alg {
            DigestAlgorithm::Md5 => h.md5.is_some(),
            DigestAlgorithm::Sha256 => h.sha256.is_some(),
        });
        if !usable && !sip.digest_algorithms.is_empty() {
            let offered: Vec<_> = sip.digest_algorithms.iter().map(|a| a.as_str()).collect();
            ctx.error(
                a.ha1_line,
                &format!("{}.password_ha1", a.path),
                format!(
                    "no hash for an algorithm in sip.digest_algorithms ({}): this operator \
                     could never authenticate",
                    offered.join(", ")
                ),
            );
        }
    }
}

/// Warns about each operator still using the demo password when anything listens (or is
/// announced) beyond loopback.
fn demo_credentials(ctx: &mut Ctx, sip: &Sip, http: &Http, agents: &[AgentDraft]) {
    let exposed = sip
        .udp
        .iter()
        .map(|a| ("sip.udp", a.to_string(), a.ip().is_loopback()))
        .chain(
            sip.tcp
                .iter()
                .map(|a| ("sip.tcp", a.to_string(), a.ip().is_loopback())),
        )
        .chain([(
            "http.listen",
            http.listen.to_string(),
            http.listen.ip().is_loopback(),
        )])
        .chain([(
            "sip.public_address",
            sip.public_address.to_string(),
            sip.public_address.is_loopback(),
        )])
        .find(|(_, _, loopback)| !loopback);
    let Some((key, addr, _)) = exposed else {
        return;
    };
    for a in agents {
        if matches!(&a.agent.secret, AgentSecret::Password(p) if p.expose() == DEMO_PASSWORD) {
            ctx.warn(
                a.password_line,
                &format!("{}.password", a.path),
                format!(
                    "demo credentials (`{DEMO_PASSWORD}`) while {key} = {addr} is not loopback: \
                     anyone who can reach it can log in; set a real password"
                ),
            );
        }
    }
}
