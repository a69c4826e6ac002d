//! `[[queue]]`: strategy, timers, overflow, and skill requirements with relaxation.

use crate::model::{Answer, Queue};
use crate::reader::{self, Ctx, Table, Value};
use homeline_routing::{
    OverflowConfig, QueueConfig, RelaxStep, SkillRequirementConfig, Strategy, WhenEmpty,
};
use std::time::Duration;

pub(crate) const QUEUE_KEYS: &[&str] = &[
    "name",
    "strategy",
    "answer",
    "ring_timeout",
    "wrap_up",
    "max_wait",
    "overflow",
    "when_empty",
    "max_misses",
    "service_level",
    "required_skills",
    "relax",
];
pub(crate) const OVERFLOW_KEYS: &[&str] = &["queue", "external"];
pub(crate) const REQUIRED_SKILL_KEYS: &[&str] = &["skill", "min"];
pub(crate) const RELAX_KEYS: &[&str] = &["after", "min_proficiency"];

/// A queue as read, with the lines the cross-checks need.
#[derive(Debug)]
pub(crate) struct QueueDraft {
    pub(crate) queue: Queue,
    pub(crate) path: String,
    pub(crate) line: usize,
    pub(crate) name_line: usize,
    pub(crate) overflow_line: usize,
    pub(crate) required_skills_line: usize,
}

fn positive(v: &Value<'_>) -> Result<Duration, String> {
    match reader::duration(v)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

fn strategy(v: &Value<'_>) -> Result<Strategy, String> {
    let options: Vec<(&str, Strategy)> = Strategy::ALL.iter().map(|s| (s.as_str(), *s)).collect();
    reader::choice(v, &options)
}

fn overflow(ctx: &mut Ctx, t: &Table<'_, '_>) -> Option<OverflowConfig> {
    let v = t.raw(ctx, "overflow")?;
    let o = Table::new(ctx, &t.key("overflow"), v, OVERFLOW_KEYS)?;
    let queue = o.opt(ctx, "queue", reader::name);
    let external = o.opt(ctx, "external", |v| {
        let s = reader::nonempty(v)?;
        if ["sip:", "sips:", "tel:"].iter().any(|p| s.starts_with(p)) {
            Ok(s.to_owned())
        } else {
            Err(format!("`{s}`: expected a sip:, sips: or tel: URI"))
        }
    });
    match (o.has("queue"), o.has("external")) {
        (true, true) => {
            ctx.error(o.line, &o.path, "set either queue or external, not both");
            None
        }
        (false, false) => {
            ctx.error(
                o.line,
                &o.path,
                "set queue = \"NAME\" or external = \"sip:...\"",
            );
            None
        }
        _ => queue
            .map(OverflowConfig::Queue)
            .or(external.map(OverflowConfig::External)),
    }
}

fn required_skills(ctx: &mut Ctx, t: &Table<'_, '_>) -> Vec<SkillRequirementConfig> {
    let list = t.list(ctx, "required_skills", |ctx, key, v| {
        let r = Table::new(ctx, key, v, REQUIRED_SKILL_KEYS)?;
        let skill = r.req(ctx, "skill", reader::name)?;
        let min = r
            .opt(ctx, "min", |v| reader::int::<u8>(v, 1, 5))
            .unwrap_or(1);
        Some((SkillRequirementConfig { skill, min }, ctx.line(v.span())))
    });
    let mut out: Vec<SkillRequirementConfig> = Vec::new();
    for (req, line) in list.unwrap_or_default() {
        if out.iter().any(|r| r.skill == req.skill) {
            ctx.error(
                line,
                &t.key("required_skills"),
                format!("skill `{}` listed twice", req.skill),
            );
        } else {
            out.push(req);
        }
    }
    out
}

fn relax(ctx: &mut Ctx, t: &Table<'_, '_>) -> Vec<RelaxStep> {
    let list = t.list(ctx, "relax", |ctx, key, v| {
        let r = Table::new(ctx, key, v, RELAX_KEYS)?;
        let after = r.req(ctx, "after", reader::duration);
        let min_proficiency = r.req(ctx, "min_proficiency", |v| reader::int::<u8>(v, 0, 5));
        Some((
            RelaxStep {
                after: after?,
                min_proficiency: min_proficiency?,
            },
            ctx.line(v.span()),
        ))
    });
    let mut out: Vec<RelaxStep> = Vec::new();
    for (step, line) in list.unwrap_or_default() {
        if out.last().is_some_and(|prev| step.after <= prev.after) {
            ctx.error(
                line,
                &t.key("relax"),
                "steps must be in strictly increasing `after` order",
            );
        }
        out.push(step);
    }
    out
}

pub(crate) fn queue(ctx: &mut Ctx, path: &str, v: &Value<'_>) -> Option<QueueDraft> {
    let t = Table::new(ctx, path, v, QUEUE_KEYS)?;
    let mut q = QueueConfig::new(t.req(ctx, "name", reader::name).unwrap_or_default());
    if let Some(s) = t.opt(ctx, "strategy", strategy) {
        q.strategy = s;
    }
    let answer = t
        .opt(ctx, "answer", |v| {
            reader::choice(
                v,
                &[
                    ("on_enqueue", Answer::OnEnqueue),
                    ("on_agent", Answer::OnAgent),
                ],
            )
        })
        .unwrap_or_default();
    if let Some(d) = t.opt(ctx, "ring_timeout", positive) {
        q.ring_timeout = d;
    }
    if let Some(d) = t.opt(ctx, "wrap_up", reader::duration) {
        q.wrap_up = d;
    }
    q.max_wait = t.opt(ctx, "max_wait", positive);
    q.overflow = overflow(ctx, &t);
    if q.overflow.is_some() && q.max_wait.is_none() && !t.has("max_wait") {
        t.warn_on(ctx, "overflow", "has no effect without max_wait");
    }
    if let Some(w) = t.opt(ctx, "when_empty", |v| {
        reader::choice(
            v,
            &[("wait", WhenEmpty::Wait), ("reject", WhenEmpty::Reject)],
        )
    }) {
        q.when_empty = w;
    }
    if let Some(n) = t.opt(ctx, "max_misses", |v| {
        reader::int::<u32>(v, 0, i64::from(u32::MAX))
    }) {
        q.max_misses = n;
    }
    if let Some(d) = t.opt(ctx, "service_level", positive) {
        q.service_level = d;
    }
    q.required_skills = required_skills(ctx, &t);
    q.relax = relax(ctx, &t);
    Some(QueueDraft {
        path: t.path.clone(),
        line: t.line,
        name_line: t.line_of(ctx, "name"),
        overflow_line: t.line_of(ctx, "overflow"),
        required_skills_line: t.line_of(ctx, "required_skills"),
        queue: Queue { answer, routing: q },
    })
}
