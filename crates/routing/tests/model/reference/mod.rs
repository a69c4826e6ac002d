//! The reference model: a `Harness` that drives the router with a scenario's operations and
//! checks what it emits and reports against a model built from the commands alone.

use crate::coverage::*;
use crate::ops::*;
use crate::{SKILLS, UNKNOWN, aname, qname};
use homeline_routing::{
    AgentConfig, AgentId, AgentState, CallId, Cause, Command, Event, EventError, MembershipConfig,
    NotReadyReason, Outcome, OverflowConfig, OverflowTarget, QueueConfig, QueueId, RejectReason,
    RelaxStep, Router, RouterConfig, SkillId, SkillReq, SkillRequirementConfig, SplitMix64,
    Strategy as Policy, Time, WhenEmpty, WithdrawReason,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// A queue's parameters as last configured (retired queues keep theirs).
#[derive(Debug, Clone)]
struct QParams {
    pool: usize,
    strategy: Policy,
    ring: Duration,
    wrap: Duration,
    overflow: OverflowTarget,
    max_misses: u32,
    reject_when_empty: bool,
    max_wait: Option<Duration>,
    required: Vec<SkillReq>,
    relax: Vec<(Duration, u8)>,
    retired: bool,
}

#[derive(Debug, Clone)]
struct AgentM {
    pool: usize,
    /// From the `AgentStateChanged` stream.
    state: AgentState,
    /// From `Offer` / `Withdraw` / `Connected`.
    offer: Option<(CallId, Time)>,
    /// From `Connected` / `Outcome::Answered`.
    call: Option<CallId>,
    /// Consecutive misses, as the documented RONA rule counts them.
    misses: u32,
    /// After a miss: the next `Cause::Missed` change goes to NotReady(NoAnswer) (`true`) or
    /// Available.
    expect_miss: Option<bool>,
    /// Queue of the last call that ended, for the wrap-up length.
    last_queue: Option<QueueId>,
    /// The operator's own call (from `OutboundCall` state changes) and what they come back
    /// to after it, as the documented rules say.
    own: Option<(CallId, Next)>,
}

/// What an operator on an own call comes back to.
#[derive(Debug, Clone, PartialEq)]
enum Next {
    Ready,
    NotReady(NotReadyReason),
    WrapUpUntil(Time),
    LogOut,
}

#[derive(Debug, Clone)]
struct Visit {
    queue: QueueId,
    start: Time,
    connected: Option<(AgentId, Time)>,
}

#[derive(Debug, Clone)]
struct CallM {
    reqs: Vec<SkillReq>,
    visits: u32,
    outcomes: u32,
    open: Option<Visit>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    offered: u64,
    answered: u64,
    abandoned: u64,
    overflowed: u64,
    rejected: u64,
}

#[derive(Debug, Clone)]
enum Ctx {
    Event(Event),
    Timeout { late: bool },
}

struct Harness {
    router: Router<SplitMix64>,
    now: Time,
    qspecs: Vec<QSpec>,
    aspecs: Vec<ASpec>,
    q_present: Vec<bool>,
    a_present: Vec<bool>,
    q_ids: Vec<Option<QueueId>>,
    a_ids: Vec<Option<AgentId>>,
    params: BTreeMap<QueueId, QParams>,
    agents: BTreeMap<AgentId, AgentM>,
    calls: BTreeMap<CallId, CallM>,
    counts: BTreeMap<QueueId, Counts>,
    next_call: u64,
    outcomes_seen: u64,
    pending_overflow: Option<(CallId, OverflowTarget)>,
    pending_reject: Option<(CallId, RejectReason)>,
    /// Ring-all batch in progress in this step: (call, deadline).
    batch: Option<(CallId, Time)>,
    steps: u64,
    trace: VecDeque<String>,
    /// During a reconfiguration: the operators as they were (commands may use either).
    old_aspecs: Option<Vec<ASpec>>,
    /// Each operator's queues as the router should count them: its configured queues, plus
    /// queues since removed from the configuration that it served then (they keep serving
    /// their calls); none once a removed operator is logged out.
    eff: BTreeMap<AgentId, Vec<QueueId>>,
}

macro_rules! fail {
    ($h:expr, $($arg:tt)*) => {
        $h.fail(format!($($arg)*))
    };
}

mod apply;
mod commands;
mod config;
mod drive;
mod outcomes;
mod predict;

impl Harness {
    fn new(s: &Scenario) -> Harness {
        let mut h = Harness {
            router: Router::new(&RouterConfig::default(), SplitMix64::new(s.seed))
                .expect("empty config is valid"),
            now: Time::ZERO,
            qspecs: s.queues.clone(),
            aspecs: s.agents.clone(),
            q_present: s.queues.iter().map(|q| q.present).collect(),
            a_present: s.agents.iter().map(|a| a.present).collect(),
            q_ids: vec![None; s.queues.len()],
            a_ids: vec![None; s.agents.len()],
            params: BTreeMap::new(),
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            counts: BTreeMap::new(),
            next_call: 1,
            outcomes_seen: 0,
            pending_overflow: None,
            pending_reject: None,
            batch: None,
            steps: 0,
            trace: VecDeque::new(),
            old_aspecs: None,
            eff: BTreeMap::new(),
        };
        let config = h.build_config();
        h.router = match Router::new(&config, SplitMix64::new(s.seed)) {
            Ok(r) => r,
            Err(e) => panic!("generated config rejected: {e:?}\n{config:#?}"),
        };
        assert!(
            h.router.poll_command().is_none(),
            "Router::new must not leave commands"
        );
        h.assign_ids();
        h.update_params();
        h.update_memberships();
        h.check_ids();
        h
    }

    /// Applies the membership rules of a reconfiguration to `eff`.
    fn update_memberships(&mut self) {
        let mut eff = BTreeMap::new();
        for (&id, m) in &self.agents {
            let old = self.eff.get(&id).cloned().unwrap_or_default();
            let new: Vec<QueueId> = if self.a_present[m.pool] {
                let mut new: Vec<QueueId> = self.aspecs[m.pool]
                    .queues
                    .iter()
                    .filter(|(q, _)| self.q_present[*q])
                    .map(|(q, _)| self.q_ids[*q].expect("present queue has an id"))
                    .collect();
                new.extend(old.iter().filter(|q| self.params[q].retired));
                new
            } else if m.state == AgentState::LoggedOut {
                Vec::new()
            } else {
                old
            };
            eff.insert(id, new);
        }
        self.eff = eff;
    }

    fn fail(&self, msg: String) -> ! {
        let trace: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        panic!(
            "step {} at {:?}: {msg}\n--- recent steps ---\n{}",
            self.steps,
            self.now,
            trace.join("\n")
        )
    }

    fn log(&mut self, s: String) {
        if self.trace.len() >= 40 {
            self.trace.pop_front();
        }
        self.trace.push_back(s);
    }
}

pub(crate) fn run(s: &Scenario) {
    let mut h = Harness::new(s);
    for op in &s.ops {
        h.apply(op);
    }
    h.drain();
}
