//! Model-based property tests of the routing core.
//!
//! Random event sequences (logins, readiness, arrivals with priorities and skills, accepts and
//! declines by offered and by unrelated operators, hang-ups, call ends, wrap-up, connection
//! losses, transfers, operators' own calls out and their ends, time advancing through the
//! router's deadlines, and reconfigurations that add or remove an operator or a queue) are
//! applied to small random configurations. After every step:
//!
//! - `Router::check_invariants` must hold;
//! - a reference model, built only from the emitted `Command`s (and the events we sent), must
//!   agree with what the router reports through its public API: agent states, queue figures,
//!   calls in progress;
//! - events the model knows are invalid must come back as the exact `EventError` and produce
//!   no command.
//!
//! At the end every call is hung up or ended, every deadline is run out, and each call must
//! have had exactly one `Outcome` per queue visit.
//!
//! Reproduce a failure with `PROPTEST_RNG_SEED=<seed>`; scale with `PROPTEST_CASES=<n>`
//! (cases per test).

// Guards written as `if` inside match arms read better here than match guards.
#![allow(clippy::collapsible_match)]

use homeline_routing::{
    AgentConfig, AgentId, AgentState, CallId, Cause, Command, Event, EventError, MembershipConfig,
    NotReadyReason, Outcome, OverflowConfig, OverflowTarget, QueueConfig, QueueId, RejectReason,
    RelaxStep, Router, RouterConfig, SkillId, SkillReq, SkillRequirementConfig, SplitMix64,
    Strategy as Policy, Time, WhenEmpty, WithdrawReason,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const SKILLS: [&str; 3] = ["en", "fr", "de"];
/// Ids far beyond anything the router hands out, for "unknown" inputs.
const UNKNOWN: u32 = 10_000;

fn qname(i: usize) -> String {
    format!("q{i}")
}

fn aname(i: usize) -> String {
    format!("a{i}")
}

// ------------------------------------------------------------------------------------------
// Scenario description
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum OvSpec {
    None,
    Queue(usize),
    External,
}

#[derive(Debug, Clone)]
struct QSpec {
    strategy: Policy,
    ring_timeout: u64,
    wrap_up: u64,
    max_wait: Option<u64>,
    overflow: OvSpec,
    reject_when_empty: bool,
    max_misses: u32,
    required: Vec<(usize, u8)>,
    relax: Vec<(u64, u8)>,
    present: bool,
}

#[derive(Debug, Clone)]
struct ASpec {
    queues: Vec<(usize, u8)>,
    skills: Vec<(usize, u8)>,
    present: bool,
}

#[derive(Debug, Clone)]
enum SkillsSpec {
    Default,
    Reqs(Vec<(usize, u8)>),
    UnknownSkill,
    BadMin(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Login(u8, bool),
    Logout(u8),
    Ready(u8),
    NotReady(u8, u8),
    WrapUpDone(u8),
    ConnectionLost(u8),
    Arrive {
        queue: u8,
        priority: u8,
        skills: SkillsSpec,
    },
    /// Accept / decline by an operator the model knows is ringing (index into the offers).
    AcceptOffered(u16),
    DeclineOffered(u16),
    /// Accept / decline by any operator for any call (usually not offered: must fail).
    AcceptAny {
        agent: u8,
        call: u16,
    },
    DeclineAny {
        agent: u8,
        call: u16,
    },
    HangUp(u16),
    EndConnected(u16),
    /// `CallEnded` for any call ever seen (or an unknown one).
    EndAny(u16),
    Transfer {
        call: u16,
        queue: u8,
        priority: Option<u8>,
    },
    Duplicate(u16),
    /// Advance time by `ms`, firing each deadline at its own time (or all at the end, late).
    Advance {
        ms: u32,
        late: bool,
    },
    AdvanceToTimeout,
    /// Add or remove a queue (`true`) or an operator.
    Toggle(bool, u8),
    /// Change a parameter of a queue or an operator (`kind`, `index`, `value`), then
    /// reconfigure.
    Mutate(u8, u8, u8),
    /// An invalid configuration: must fail with `BadConfig` and change nothing.
    BadConfig(u8),
    /// A call arrives with the id of a call that has ended (allowed: ids must be unique only
    /// while the router knows the call).
    ReuseId {
        call: u16,
        queue: u8,
    },
    /// The operator dials out (`OutboundStarted`): mostly with a fresh call id, sometimes with
    /// the id of a live queue call or own call (must fail).
    Dial {
        agent: u8,
        id: u8,
    },
    /// `OutboundEnded` of a live own call (or of any id, when there is none).
    HangUpOwn(u16),
}

#[derive(Debug, Clone)]
struct Scenario {
    queues: Vec<QSpec>,
    agents: Vec<ASpec>,
    ops: Vec<Op>,
    seed: u64,
}

fn qspec_strategy(nq: usize) -> impl Strategy<Value = QSpec> {
    let relax = (0usize..=2, 1u64..=20, 1u64..=20, 0u8..=5, 0u8..=5).prop_map(|(n, a, b, p, r)| {
        let steps = [(a, p.max(r)), (a + b, p.min(r))];
        steps[..n].to_vec()
    });
    (
        prop::sample::select(Policy::ALL.to_vec()),
        1u64..=20,
        prop_oneof![1 => Just(0u64), 3 => 1u64..=10],
        prop::option::weighted(0.5, 5u64..=60),
        (0u8..3, 0..nq),
        prop::bool::weighted(0.3),
        0u32..=2,
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec((0..SKILLS.len(), 1u8..=5), 1..=2),
        ],
        relax,
        prop::bool::weighted(0.85),
    )
        .prop_map(
            |(
                strategy,
                ring,
                wrap,
                max_wait,
                (ov, ot),
                reject,
                misses,
                required,
                relax,
                present,
            )| {
                QSpec {
                    strategy,
                    ring_timeout: ring,
                    wrap_up: wrap,
                    max_wait,
                    overflow: match ov {
                        0 => OvSpec::None,
                        1 => OvSpec::Queue(ot),
                        _ => OvSpec::External,
                    },
                    reject_when_empty: reject,
                    max_misses: misses,
                    required,
                    relax,
                    present,
                }
            },
        )
}

fn aspec_strategy(nq: usize) -> impl Strategy<Value = ASpec> {
    (
        prop::sample::subsequence((0..nq).collect::<Vec<_>>(), 1..=nq),
        prop::collection::vec(prop_oneof![3 => Just(0u8), 1 => 1u8..=2], nq),
        prop::sample::subsequence((0..SKILLS.len()).collect::<Vec<_>>(), 1..=SKILLS.len()),
        prop::collection::vec(1u8..=5, SKILLS.len()),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(qs, pens, ss, profs, present)| ASpec {
            queues: qs.into_iter().map(|q| (q, pens[q])).collect(),
            skills: ss.into_iter().map(|s| (s, profs[s])).collect(),
            present,
        })
}

/// What a scenario may contain beyond the basics.
#[derive(Debug, Clone, Copy)]
struct Gen {
    /// Queue 0 uses this strategy.
    focus: Option<Policy>,
    max_ops: usize,
    /// Parameter changes by reconfiguration.
    mutations: bool,
    /// Call ids re-used after the call ended.
    reuse_ids: bool,
}

const BASIC: Gen = Gen {
    focus: None,
    max_ops: 300,
    mutations: false,
    reuse_ids: false,
};

fn op_strategy(g: Gen) -> BoxedStrategy<Op> {
    let skills = prop_oneof![
        6 => Just(SkillsSpec::Default),
        3 => prop::collection::vec((0..SKILLS.len(), 1u8..=5), 0..=2).prop_map(SkillsSpec::Reqs),
        1 => Just(SkillsSpec::UnknownSkill),
        1 => prop_oneof![Just(0u8), Just(6u8)].prop_map(SkillsSpec::BadMin),
    ];
    let base = prop_oneof![
        5 => (any::<u8>(), prop::bool::weighted(0.7)).prop_map(|(a, r)| Op::Login(a, r)),
        1 => any::<u8>().prop_map(Op::Logout),
        6 => any::<u8>().prop_map(Op::Ready),
        1 => (any::<u8>(), 0u8..3).prop_map(|(a, r)| Op::NotReady(a, r)),
        1 => any::<u8>().prop_map(Op::WrapUpDone),
        1 => any::<u8>().prop_map(Op::ConnectionLost),
        14 => (any::<u8>(), 0u8..=3, skills)
            .prop_map(|(queue, priority, skills)| Op::Arrive { queue, priority, skills }),
        12 => any::<u16>().prop_map(Op::AcceptOffered),
        2 => any::<u16>().prop_map(Op::DeclineOffered),
        1 => (any::<u8>(), any::<u16>()).prop_map(|(agent, call)| Op::AcceptAny { agent, call }),
        1 => (any::<u8>(), any::<u16>()).prop_map(|(agent, call)| Op::DeclineAny { agent, call }),
        2 => any::<u16>().prop_map(Op::HangUp),
        3 => any::<u16>().prop_map(Op::EndConnected),
        1 => any::<u16>().prop_map(Op::EndAny),
        2 => (any::<u16>(), any::<u8>(), prop::option::of(0u8..=3))
            .prop_map(|(call, queue, priority)| Op::Transfer { call, queue, priority }),
        1 => any::<u16>().prop_map(Op::Duplicate),
        5 => (0u32..5_000, prop::bool::weighted(0.2)).prop_map(|(ms, late)| Op::Advance { ms, late }),
        2 => (0u32..40_000, prop::bool::weighted(0.2)).prop_map(|(ms, late)| Op::Advance { ms, late }),
        3 => Just(Op::AdvanceToTimeout),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(q, i)| Op::Toggle(q, i)),
        1 => any::<u8>().prop_map(Op::BadConfig),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(agent, id)| Op::Dial { agent, id }),
        4 => any::<u16>().prop_map(Op::HangUpOwn),
    ];
    let mut ops = base.boxed();
    if g.mutations {
        let mutate =
            (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(k, i, v)| Op::Mutate(k, i, v));
        ops = prop_oneof![20 => ops, 1 => mutate].boxed();
    }
    if g.reuse_ids {
        let reuse =
            (any::<u16>(), any::<u8>()).prop_map(|(call, queue)| Op::ReuseId { call, queue });
        ops = prop_oneof![12 => ops, 1 => reuse].boxed();
    }
    ops
}

/// A scenario; with `focus`, queue 0 uses that strategy.
fn scenario_strategy(g: Gen) -> impl Strategy<Value = Scenario> {
    (2usize..=4)
        .prop_flat_map(move |nq| {
            (
                prop::collection::vec(qspec_strategy(nq), nq),
                prop::collection::vec(aspec_strategy(nq), 2..=7),
                prop::collection::vec(op_strategy(g), 1..g.max_ops),
                any::<u64>(),
            )
        })
        .prop_map(move |(mut queues, agents, ops, seed)| {
            queues[0].present = true;
            if let Some(f) = g.focus {
                queues[0].strategy = f;
            }
            Scenario {
                queues,
                agents,
                ops,
                seed,
            }
        })
}

// ------------------------------------------------------------------------------------------
// Coverage: what the generated scenarios actually exercised (asserted, so the generator cannot
// silently stop reaching a feature).
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Cov {
    Answered,
    Abandoned,
    OverflowQueue,
    OverflowExternal,
    OverflowNone,
    Transferred,
    RejectNoAgents,
    RejectQueueClosed,
    RingTimeout,
    Declined,
    NoAnswer1,
    NoAnswer2,
    AnsweredElsewhere,
    RelaxedOffer,
    WrapUpTimeout,
    Reconfigured,
    ExpectedError,
    LateTimeout,
    TransferConnected,
    NotOffered,
    Mutated,
    OwnCall,
    OwnCallWhileRinging,
    OwnCallBackToWrapUp,
    OwnCallThenLogout,
}

const COV_NAMES: [&str; 25] = [
    "answered",
    "abandoned",
    "overflow-queue",
    "overflow-external",
    "overflow-none",
    "transferred",
    "reject-no-agents",
    "reject-queue-closed",
    "ring-timeout",
    "declined",
    "no-answer(max_misses=1)",
    "no-answer(max_misses=2)",
    "answered-elsewhere",
    "offer-after-relax",
    "wrap-up-timeout",
    "reconfigured",
    "expected-error",
    "late-timeout",
    "transfer-connected",
    "not-offered-error",
    "config-changed",
    "own-call",
    "own-call-while-ringing",
    "own-call-back-to-wrap-up",
    "own-call-then-logout",
];

static COVERAGE: [AtomicU64; 25] = [const { AtomicU64::new(0) }; 25];

fn cov(c: Cov) {
    COVERAGE[c as usize].fetch_add(1, Relaxed);
}

// ------------------------------------------------------------------------------------------
// The reference model
// ------------------------------------------------------------------------------------------

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

    // -------------------------------------------------------------- configuration

    fn build_config(&self) -> RouterConfig {
        let mut queues = Vec::new();
        for (i, q) in self.qspecs.iter().enumerate() {
            if !self.q_present[i] {
                continue;
            }
            let overflow = match q.overflow {
                OvSpec::None => None,
                OvSpec::Queue(t) if t != i && self.q_present[t] => {
                    Some(OverflowConfig::Queue(qname(t)))
                }
                OvSpec::Queue(_) | OvSpec::External => {
                    Some(OverflowConfig::External(format!("ext-{i}")))
                }
            };
            queues.push(QueueConfig {
                name: qname(i),
                strategy: q.strategy,
                ring_timeout: Duration::from_secs(q.ring_timeout),
                wrap_up: Duration::from_secs(q.wrap_up),
                max_wait: q.max_wait.map(Duration::from_secs),
                overflow,
                when_empty: if q.reject_when_empty {
                    WhenEmpty::Reject
                } else {
                    WhenEmpty::Wait
                },
                max_misses: q.max_misses,
                service_level: Duration::from_secs(20),
                required_skills: q
                    .required
                    .iter()
                    .map(|&(s, min)| SkillRequirementConfig {
                        skill: SKILLS[s].into(),
                        min,
                    })
                    .collect(),
                relax: q
                    .relax
                    .iter()
                    .map(|&(after, p)| RelaxStep {
                        after: Duration::from_secs(after),
                        min_proficiency: p,
                    })
                    .collect(),
            });
        }
        let mut agents = Vec::new();
        for (i, a) in self.aspecs.iter().enumerate() {
            if !self.a_present[i] {
                continue;
            }
            agents.push(AgentConfig {
                name: aname(i),
                queues: a
                    .queues
                    .iter()
                    .filter(|(q, _)| self.q_present[*q])
                    .map(|&(q, penalty)| MembershipConfig {
                        queue: qname(q),
                        penalty,
                    })
                    .collect(),
                skills: a
                    .skills
                    .iter()
                    .map(|&(s, p)| (SKILLS[s].to_string(), p))
                    .collect(),
            });
        }
        RouterConfig { queues, agents }
    }

    /// New names get the next dense id, in configuration order (queues, then agents).
    fn assign_ids(&mut self) {
        for i in 0..self.qspecs.len() {
            if self.q_present[i] && self.q_ids[i].is_none() {
                let id = QueueId(self.params.len() as u32);
                self.q_ids[i] = Some(id);
                self.counts.insert(id, Counts::default());
                // Placeholder, filled by update_params.
                self.params.insert(
                    id,
                    QParams {
                        pool: i,
                        strategy: Policy::LongestIdle,
                        ring: Duration::ZERO,
                        wrap: Duration::ZERO,
                        overflow: OverflowTarget::None,
                        max_misses: 0,
                        reject_when_empty: false,
                        max_wait: None,
                        required: Vec::new(),
                        relax: Vec::new(),
                        retired: false,
                    },
                );
            }
        }
        for i in 0..self.aspecs.len() {
            if self.a_present[i] && self.a_ids[i].is_none() {
                let id = AgentId(self.agents.len() as u32);
                self.a_ids[i] = Some(id);
                self.agents.insert(
                    id,
                    AgentM {
                        pool: i,
                        state: AgentState::LoggedOut,
                        offer: None,
                        call: None,
                        misses: 0,
                        expect_miss: None,
                        last_queue: None,
                        own: None,
                    },
                );
            }
        }
    }

    fn skill(&self, s: usize) -> Option<SkillId> {
        self.router.skill_id(SKILLS[s])
    }

    fn update_params(&mut self) {
        for i in 0..self.qspecs.len() {
            let Some(id) = self.q_ids[i] else { continue };
            if !self.q_present[i] {
                if let Some(p) = self.params.get_mut(&id) {
                    p.retired = true;
                }
                continue;
            }
            let overflow = self.spec_overflow(i);
            let q = &self.qspecs[i];
            let required = q
                .required
                .iter()
                .map(|&(s, min)| SkillReq {
                    skill: self.skill(s).expect("configured skill"),
                    min,
                })
                .collect();
            let p = QParams {
                pool: i,
                strategy: q.strategy,
                ring: Duration::from_secs(q.ring_timeout),
                wrap: Duration::from_secs(q.wrap_up),
                overflow,
                max_misses: q.max_misses,
                reject_when_empty: q.reject_when_empty,
                max_wait: q.max_wait.map(Duration::from_secs),
                required,
                relax: q
                    .relax
                    .iter()
                    .map(|&(a, p)| (Duration::from_secs(a), p))
                    .collect(),
                retired: false,
            };
            self.params.insert(id, p);
        }
    }

    fn check_ids(&self) {
        for i in 0..self.qspecs.len() {
            let want = if self.q_present[i] {
                self.q_ids[i]
            } else {
                None
            };
            if self.router.queue_id(&qname(i)) != want {
                fail!(
                    self,
                    "queue_id({}) = {:?}, model {want:?}",
                    qname(i),
                    self.router.queue_id(&qname(i))
                );
            }
        }
        for (&q, p) in &self.params {
            let retired = self.router.queue_stats(q, self.now).map(|s| s.retired);
            if retired != Some(p.retired) {
                fail!(self, "{q:?}: retired {retired:?} but model {}", p.retired);
            }
        }
        for i in 0..self.aspecs.len() {
            let want = if self.a_present[i] {
                self.a_ids[i]
            } else {
                None
            };
            if self.router.agent_id(&aname(i)) != want {
                fail!(
                    self,
                    "agent_id({}) = {:?}, model {want:?}",
                    aname(i),
                    self.router.agent_id(&aname(i))
                );
            }
        }
    }

    // -------------------------------------------------------------- selectors

    fn agent_sel(&self, sel: u8) -> AgentId {
        let n = self.aspecs.len();
        let i = sel as usize % (n + 1);
        if i == n {
            return AgentId(UNKNOWN);
        }
        self.a_ids[i].unwrap_or(AgentId(UNKNOWN + 1 + i as u32))
    }

    fn queue_sel(&self, sel: u8) -> QueueId {
        let n = self.qspecs.len();
        let i = sel as usize % (n + 1);
        if i == n {
            return QueueId(UNKNOWN);
        }
        self.q_ids[i].unwrap_or(QueueId(UNKNOWN + 1 + i as u32))
    }

    fn live_calls(&self) -> Vec<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| c.open.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    fn any_call(&self, sel: u16) -> CallId {
        let n = self.next_call; // ids 1..next_call were used; next_call itself is unknown
        CallId(1 + u64::from(sel) % n)
    }

    fn agent_present(&self, a: AgentId) -> bool {
        self.agents.get(&a).is_some_and(|m| self.a_present[m.pool])
    }

    /// Whether operator `pool` qualifies (during a reconfiguration: before or after it).
    fn agent_qualifies(&self, pool: usize, reqs: &[SkillReq], floor: u8) -> bool {
        Self::qualifies_in(self, &self.aspecs, pool, reqs, floor)
            || self
                .old_aspecs
                .as_ref()
                .is_some_and(|old| Self::qualifies_in(self, old, pool, reqs, floor))
    }

    fn qualifies_in(&self, aspecs: &[ASpec], pool: usize, reqs: &[SkillReq], floor: u8) -> bool {
        reqs.iter().all(|r| {
            let need = r.min.min(floor);
            let prof = aspecs[pool]
                .skills
                .iter()
                .find(|(s, _)| self.skill(*s) == Some(r.skill))
                .map_or(0, |&(_, p)| p);
            need == 0 || prof >= need
        })
    }

    fn floor(&self, q: QueueId, start: Time) -> u8 {
        let waited = self.now.saturating_since(start);
        let mut floor = 5;
        for &(after, p) in &self.params[&q].relax {
            if waited >= after {
                floor = p;
            }
        }
        floor
    }

    /// During a reconfiguration, the lowest of the floors before and after it (either may
    /// apply to a decision taken while it is applied); otherwise the floor.
    fn floor_in(&self, ctx: &Ctx, q: QueueId, start: Time) -> u8 {
        let floor = self.floor(q, start);
        let pool = self.params[&q].pool;
        if !matches!(ctx, Ctx::Event(Event::Reconfigure(_))) || !self.q_present[pool] {
            return floor;
        }
        let waited = self.now.saturating_since(start);
        let mut new = 5;
        for &(after, p) in &self.qspecs[pool].relax {
            if waited >= Duration::from_secs(after) {
                new = p;
            }
        }
        floor.min(new)
    }

    // -------------------------------------------------------------- prediction of errors

    fn need_agent(&self, a: AgentId) -> Result<&AgentM, EventError> {
        if self.agent_present(a) {
            Ok(&self.agents[&a])
        } else {
            Err(EventError::UnknownAgent(a))
        }
    }

    fn open_visit(&self, c: CallId) -> Option<&Visit> {
        self.calls.get(&c).and_then(|m| m.open.as_ref())
    }

    /// The operator on own call `c`, if it is live.
    fn own_agent(&self, c: CallId) -> Option<AgentId> {
        self.agents
            .iter()
            .find(|(_, m)| m.own.as_ref().is_some_and(|o| o.0 == c))
            .map(|(&a, _)| a)
    }

    fn own_calls(&self) -> Vec<CallId> {
        self.agents
            .values()
            .filter_map(|m| m.own.as_ref().map(|o| o.0))
            .collect()
    }

    /// A request of an operator on an own call changes what they come back to (a pending
    /// logout is never overridden).
    fn own_call_request(&mut self, ev: &Event) {
        let (agent, next) = match ev {
            Event::Logout { agent } => (agent, Some(Next::LogOut)),
            Event::NotReady { agent, reason } => (agent, Some(Next::NotReady(reason.clone()))),
            Event::ConnectionLost { agent } => {
                (agent, Some(Next::NotReady(NotReadyReason::ConnectionLost)))
            }
            Event::Ready { agent } => (agent, Some(Next::Ready)),
            Event::WrapUpDone { agent } => (agent, None),
            // The phone back Ready during the call undoes the loss's Not Ready.
            Event::Login { agent, ready: true } => {
                if let Some((_, n)) = self.agents.get_mut(agent).and_then(|m| m.own.as_mut())
                    && *n == Next::NotReady(NotReadyReason::ConnectionLost)
                {
                    *n = Next::Ready;
                }
                return;
            }
            _ => return,
        };
        let Some((_, n)) = self.agents.get_mut(agent).and_then(|m| m.own.as_mut()) else {
            return;
        };
        match next {
            _ if *n == Next::LogOut => {}
            Some(next) => *n = next,
            None => {
                if matches!(n, Next::WrapUpUntil(_)) {
                    *n = Next::Ready;
                }
            }
        }
    }

    fn predict(&self, ev: &Event) -> Result<(), EventError> {
        match ev {
            Event::Login { agent, .. }
            | Event::Logout { agent }
            | Event::NotReady { agent, .. }
            | Event::WrapUpDone { agent }
            | Event::ConnectionLost { agent } => self.need_agent(*agent).map(|_| ()),
            Event::Ready { agent } => {
                let m = self.need_agent(*agent)?;
                match m.state {
                    AgentState::Offered { .. } | AgentState::OnCall { .. } => {
                        Err(EventError::InvalidState {
                            agent: *agent,
                            state: m.state.kind(),
                        })
                    }
                    _ => Ok(()),
                }
            }
            Event::CallArrived {
                call,
                queue,
                skills,
                ..
            } => {
                if !self.params.contains_key(queue) {
                    return Err(EventError::UnknownQueue(*queue));
                }
                if self.open_visit(*call).is_some() || self.own_agent(*call).is_some() {
                    return Err(EventError::DuplicateCall(*call));
                }
                for r in skills.iter().flatten() {
                    if !SKILLS
                        .iter()
                        .any(|s| self.router.skill_id(s) == Some(r.skill))
                    {
                        return Err(EventError::UnknownSkill(r.skill));
                    }
                    if !(1..=5).contains(&r.min) {
                        return Err(EventError::BadProficiency(r.min));
                    }
                }
                Ok(())
            }
            Event::OfferAccepted { call, agent } | Event::OfferDeclined { call, agent } => {
                let m = self.need_agent(*agent)?;
                if self.open_visit(*call).is_none() {
                    return Err(EventError::UnknownCall(*call));
                }
                if m.offer.map(|o| o.0) != Some(*call) {
                    return Err(EventError::NotOffered {
                        call: *call,
                        agent: *agent,
                    });
                }
                Ok(())
            }
            Event::CallerHungUp { call } => self
                .open_visit(*call)
                .map(|_| ())
                .ok_or(EventError::UnknownCall(*call)),
            Event::CallEnded { call } => match self.open_visit(*call) {
                None => Err(EventError::UnknownCall(*call)),
                Some(v) if v.connected.is_none() => Err(EventError::NotConnected(*call)),
                Some(_) => Ok(()),
            },
            Event::Transfer { call, queue, .. } => {
                if self.params.get(queue).is_none_or(|p| p.retired) {
                    return Err(EventError::UnknownQueue(*queue));
                }
                self.open_visit(*call)
                    .map(|_| ())
                    .ok_or(EventError::UnknownCall(*call))
            }
            Event::OutboundStarted { agent, call } => {
                let m = self.need_agent(*agent)?;
                if self.open_visit(*call).is_some() || self.own_agent(*call).is_some() {
                    return Err(EventError::DuplicateCall(*call));
                }
                match m.state {
                    AgentState::LoggedOut
                    | AgentState::OnCall { .. }
                    | AgentState::OutboundCall { .. } => Err(EventError::InvalidState {
                        agent: *agent,
                        state: m.state.kind(),
                    }),
                    _ => Ok(()),
                }
            }
            Event::OutboundEnded { call } => self
                .own_agent(*call)
                .map(|_| ())
                .ok_or(EventError::UnknownCall(*call)),
            Event::Reconfigure(config) => {
                let problems = config.problems();
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(EventError::BadConfig(
                        problems.iter().map(|p| p.to_string()).collect(),
                    ))
                }
            }
        }
    }

    // -------------------------------------------------------------- driving

    fn event(&mut self, ev: Event) {
        self.steps += 1;
        self.log(format!("{:?} {ev:?}", self.now));
        let predicted = self.predict(&ev);
        let res = self.router.handle(self.now, ev.clone());
        if res != predicted {
            fail!(
                self,
                "{ev:?}: router returned {res:?}, model predicted {predicted:?}"
            );
        }
        if let Err(e) = res {
            cov(Cov::ExpectedError);
            if matches!(e, EventError::NotOffered { .. }) {
                cov(Cov::NotOffered);
            }
            let cmds: Vec<Command> = self.router.drain_commands().collect();
            if !cmds.is_empty() {
                fail!(
                    self,
                    "{ev:?} failed with {e:?} but produced commands {cmds:?}"
                );
            }
            self.end_of_step(&Ctx::Event(ev));
            return;
        }
        // Effects the model derives from the accepted event itself.
        match &ev {
            Event::CallArrived {
                call,
                queue,
                skills,
                ..
            } => {
                let reqs = skills
                    .clone()
                    .unwrap_or_else(|| self.params[queue].required.clone());
                // A re-used id (the earlier call has ended) keeps counting visits/outcomes.
                let m = self.calls.entry(*call).or_insert(CallM {
                    reqs: Vec::new(),
                    visits: 0,
                    outcomes: 0,
                    open: None,
                });
                m.reqs = reqs;
                self.open(*call, *queue);
            }
            Event::Ready { agent } => {
                let m = self.agents.get_mut(agent).expect("known");
                if !matches!(m.state, AgentState::Available) {
                    m.misses = 0;
                }
            }
            Event::Login { agent, .. } => {
                let m = self.agents.get_mut(agent).expect("known");
                let lost = AgentState::NotReady {
                    reason: NotReadyReason::ConnectionLost,
                };
                if m.state == AgentState::LoggedOut || m.state == lost {
                    m.misses = 0;
                }
            }
            _ => {}
        }
        self.own_call_request(&ev);
        self.process(Ctx::Event(ev));
    }

    fn timeout(&mut self, late: bool) {
        self.steps += 1;
        self.log(format!(
            "{:?} handle_timeout{}",
            self.now,
            if late { " (late)" } else { "" }
        ));
        if late {
            cov(Cov::LateTimeout);
        }
        self.router.handle_timeout(self.now);
        self.process(Ctx::Timeout { late });
    }

    fn reconfigure(&mut self, queue: bool, sel: u8) {
        if queue {
            let i = sel as usize % self.qspecs.len();
            let present = self.q_present.iter().filter(|p| **p).count();
            if self.q_present[i] && present == 1 {
                return;
            }
            self.q_present[i] = !self.q_present[i];
        } else {
            let i = sel as usize % self.aspecs.len();
            self.a_present[i] = !self.a_present[i];
        }
        self.send_config(None);
    }

    /// Sends the current specs as a reconfiguration; `old` are the operators before a change.
    fn send_config(&mut self, old: Option<Vec<ASpec>>) {
        cov(Cov::Reconfigured);
        let config = Arc::new(self.build_config());
        self.assign_ids();
        self.old_aspecs = Some(old.unwrap_or_else(|| self.aspecs.clone()));
        self.event(Event::Reconfigure(config));
        self.old_aspecs = None;
        self.check_ids();
    }

    /// The overflow target queue `pool` gets from its (current) spec.
    fn spec_overflow(&self, i: usize) -> OverflowTarget {
        match self.qspecs[i].overflow {
            OvSpec::None => OverflowTarget::None,
            OvSpec::Queue(t) if t != i && self.q_present[t] => {
                OverflowTarget::Queue(self.q_ids[t].expect("present queue has an id"))
            }
            OvSpec::Queue(_) | OvSpec::External => {
                OverflowTarget::External(Arc::from(format!("ext-{i}")))
            }
        }
    }

    fn mutate(&mut self, kind: u8, idx: u8, v: u8) {
        let old = self.aspecs.clone();
        let nq = self.qspecs.len();
        let q = &mut self.qspecs[idx as usize % nq];
        let na = self.aspecs.len();
        let a = &mut self.aspecs[idx as usize % na];
        match kind % 12 {
            10 => {
                q.relax = match v % 3 {
                    0 => Vec::new(),
                    1 => vec![(1 + u64::from(v / 3 % 20), v / 7 % 6)],
                    _ => vec![
                        (1 + u64::from(v / 3 % 10), 3),
                        (11 + u64::from(v / 3 % 10), 0),
                    ],
                }
            }
            11 => q.max_wait = (!v.is_multiple_of(3)).then(|| 5 + u64::from(v / 3 % 56)),
            0 => q.strategy = Policy::ALL[v as usize % Policy::ALL.len()],
            1 => q.ring_timeout = 1 + u64::from(v % 20),
            2 => q.wrap_up = u64::from(v % 8),
            3 => q.reject_when_empty = !q.reject_when_empty,
            4 => q.max_misses = u32::from(v % 3),
            5 => {
                q.overflow = match v % 3 {
                    0 => OvSpec::None,
                    1 => OvSpec::Queue(v as usize / 3 % nq),
                    _ => OvSpec::External,
                }
            }
            6 => {
                q.required = if q.required.is_empty() {
                    vec![(v as usize % SKILLS.len(), 1 + v / 3 % 5)]
                } else {
                    Vec::new()
                }
            }
            7 => {
                let s = v as usize % SKILLS.len();
                let prof = v / 3 % 6;
                a.skills.retain(|(x, _)| *x != s);
                if prof > 0 {
                    a.skills.push((s, prof));
                }
            }
            8 => {
                let qi = v as usize % nq;
                if a.queues.iter().any(|(x, _)| *x == qi) {
                    a.queues.retain(|(x, _)| *x != qi);
                } else {
                    a.queues.push((qi, v / 7 % 3));
                }
            }
            _ => {
                let pen = v % 3;
                if let Some(m) = a.queues.get_mut(v as usize / 3 % nq.max(1)) {
                    m.1 = pen;
                }
            }
        }
        cov(Cov::Mutated);
        self.send_config(Some(old));
    }

    fn open(&mut self, c: CallId, q: QueueId) {
        let now = self.now;
        let m = self.calls.get_mut(&c).expect("known call");
        m.visits += 1;
        m.open = Some(Visit {
            queue: q,
            start: now,
            connected: None,
        });
        self.counts.get_mut(&q).expect("known queue").offered += 1;
    }

    fn process(&mut self, ctx: Ctx) {
        let cmds: Vec<Command> = self.router.drain_commands().collect();
        for cmd in cmds {
            self.log(format!("    -> {cmd:?}"));
            self.command(&ctx, cmd);
        }
        if matches!(ctx, Ctx::Event(Event::Reconfigure(_))) {
            // An operator removed during an own call leaves after it.
            for m in self.agents.values_mut() {
                if let Some((_, next)) = &mut m.own
                    && !self.a_present[m.pool]
                {
                    *next = Next::LogOut;
                }
            }
            // Commands of a reconfiguration come under the old parameters (removed operators
            // leave first); the model switches to the new ones afterwards.
            self.assign_ids();
            self.update_params();
            self.update_memberships();
        }
        self.end_of_step(&ctx);
    }

    fn command(&mut self, ctx: &Ctx, cmd: Command) {
        let now = self.now;
        let ev = match ctx {
            Ctx::Event(e) => Some(e),
            Ctx::Timeout { .. } => None,
        };
        if !matches!(
            cmd,
            Command::Offer { .. } | Command::AgentStateChanged { .. }
        ) {
            self.batch = None;
        }
        match cmd {
            Command::Offer {
                call,
                agent,
                deadline,
            } => {
                let Some(v) = self.open_visit(call).cloned() else {
                    fail!(self, "offer of {call:?} which is not in a queue")
                };
                if v.connected.is_some() {
                    fail!(self, "offer of connected {call:?}");
                }
                let p = self.params[&v.queue].clone();
                let new_ring = match ev {
                    Some(Event::Reconfigure(_)) if self.q_present[p.pool] => {
                        Duration::from_secs(self.qspecs[p.pool].ring_timeout)
                    }
                    _ => p.ring,
                };
                if deadline != now + p.ring && deadline != now + new_ring {
                    fail!(
                        self,
                        "offer deadline {deadline:?} != now + ring timeout {:?}",
                        p.ring
                    );
                }
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "offer to unknown {agent:?}")
                };
                if m.state != AgentState::Available || m.offer.is_some() || m.call.is_some() {
                    fail!(
                        self,
                        "offer of {call:?} to {agent:?} in {:?} (offer {:?}, call {:?})",
                        m.state,
                        m.offer,
                        m.call
                    );
                }
                let others = self
                    .agents
                    .values()
                    .filter(|o| o.offer.map(|x| x.0) == Some(call))
                    .count();
                if others > 0
                    && (p.strategy != Policy::RingAll || self.batch != Some((call, deadline)))
                {
                    fail!(
                        self,
                        "{call:?} offered to {agent:?} while already ringing elsewhere"
                    );
                }
                self.batch = Some((call, deadline));
                let reqs = self.calls[&call].reqs.clone();
                let floor = self.floor_in(ctx, v.queue, v.start);
                if !self.agent_qualifies(m.pool, &reqs, floor) {
                    fail!(
                        self,
                        "{agent:?} does not qualify for {call:?} (reqs {reqs:?}, floor {floor})"
                    );
                }
                if !self.agent_qualifies(m.pool, &reqs, 5) {
                    cov(Cov::RelaxedOffer);
                }
                let late = matches!(ctx, Ctx::Timeout { late: true });
                let reconf = matches!(ev, Some(Event::Reconfigure(_)));
                if !p.retired && !late && !reconf {
                    self.check_tier(agent, m.pool, call, &v, &reqs, floor, p.pool);
                }
                self.agents.get_mut(&agent).expect("known").offer = Some((call, deadline));
            }
            Command::Withdraw {
                call,
                agent,
                reason,
            } => {
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "withdraw from unknown {agent:?}")
                };
                if m.offer.map(|o| o.0) != Some(call) {
                    fail!(
                        self,
                        "withdraw of {call:?} from {agent:?} which rings {:?}",
                        m.offer
                    );
                }
                let ok = match reason {
                    WithdrawReason::AnsweredElsewhere => self
                        .open_visit(call)
                        .is_some_and(|v| v.connected.is_some_and(|(a, _)| a != agent)),
                    WithdrawReason::RingTimeout => ev.is_none(),
                    WithdrawReason::CallerHungUp => {
                        matches!(ev, Some(Event::CallerHungUp { call: c }) if *c == call)
                    }
                    WithdrawReason::Transferred => {
                        matches!(ev, Some(Event::Transfer { call: c, .. }) if *c == call)
                    }
                    WithdrawReason::Declined => matches!(ev,
                        Some(Event::OfferDeclined { call: c, agent: a }) if *c == call && *a == agent),
                    WithdrawReason::AgentUnavailable => {
                        matches!(ev,
                        Some(Event::NotReady { agent: a, .. } | Event::Logout { agent: a }
                            | Event::ConnectionLost { agent: a }
                            | Event::OutboundStarted { agent: a, .. }) if *a == agent)
                            || matches!(ev, Some(Event::Reconfigure(_)))
                    }
                };
                if !ok {
                    fail!(
                        self,
                        "withdraw {reason:?} of {call:?} from {agent:?} in context {ctx:?}"
                    );
                }
                if reason == WithdrawReason::RingTimeout {
                    let deadline = m.offer.map(|o| o.1).expect("checked");
                    if now < deadline {
                        fail!(
                            self,
                            "ring timeout of {call:?} at {agent:?} at {now:?}, before the offer's deadline {deadline:?}"
                        );
                    }
                }
                if matches!(ev, Some(Event::OutboundStarted { .. })) {
                    cov(Cov::OwnCallWhileRinging);
                }
                match reason {
                    WithdrawReason::RingTimeout => cov(Cov::RingTimeout),
                    WithdrawReason::Declined => cov(Cov::Declined),
                    WithdrawReason::AnsweredElsewhere => cov(Cov::AnsweredElsewhere),
                    _ => {}
                }
                if matches!(
                    reason,
                    WithdrawReason::RingTimeout | WithdrawReason::Declined
                ) {
                    let Some(v) = self.open_visit(call).cloned() else {
                        fail!(self, "missed offer of {call:?} which is not in a queue")
                    };
                    let max = self.params[&v.queue].max_misses;
                    let m = self.agents.get_mut(&agent).expect("known");
                    if m.expect_miss.is_some() {
                        fail!(self, "{agent:?} missed twice in one step");
                    }
                    m.misses += 1;
                    let no_answer = max > 0 && m.misses >= max;
                    if no_answer {
                        m.misses = 0;
                        cov(if max == 1 {
                            Cov::NoAnswer1
                        } else {
                            Cov::NoAnswer2
                        });
                    }
                    m.expect_miss = Some(no_answer);
                }
                self.agents.get_mut(&agent).expect("known").offer = None;
            }
            Command::Connected { call, agent } => {
                if !matches!(ev, Some(Event::OfferAccepted { call: c, agent: a }) if *c == call && *a == agent)
                {
                    fail!(self, "Connected {call:?} to {agent:?} in context {ctx:?}");
                }
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "connected to unknown {agent:?}")
                };
                if m.offer.map(|o| o.0) != Some(call) || m.call.is_some() {
                    fail!(
                        self,
                        "connected {call:?} to {agent:?} with offer {:?} call {:?}",
                        m.offer,
                        m.call
                    );
                }
                let Some(v) = self.open_visit(call).cloned() else {
                    fail!(self, "connected {call:?} which is not in a queue")
                };
                if let Some(prev) = v.connected {
                    fail!(
                        self,
                        "{call:?} connected twice in one visit ({prev:?}, then {agent:?})"
                    );
                }
                if self.agents.values().any(|o| o.call == Some(call)) {
                    fail!(self, "{call:?} connected to two agents");
                }
                let m = self.agents.get_mut(&agent).expect("known");
                m.offer = None;
                m.call = Some(call);
                m.misses = 0;
                let visit = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.open.as_mut())
                    .expect("open");
                visit.connected = Some((agent, now));
                self.counts.get_mut(&v.queue).expect("queue").answered += 1;
            }
            Command::Overflow { call, target } => {
                let Some(v) = self.open_visit(call).cloned() else {
                    fail!(self, "overflow of {call:?} which is not in a queue")
                };
                if v.connected.is_some() {
                    fail!(self, "overflow of connected {call:?}");
                }
                let p = &self.params[&v.queue];
                let want = &p.overflow;
                let reconf = matches!(ev, Some(Event::Reconfigure(_))) && self.q_present[p.pool];
                if &target != want && !(reconf && target == self.spec_overflow(p.pool)) {
                    fail!(
                        self,
                        "overflow of {call:?} to {target:?}, queue configured {want:?}"
                    );
                }
                if self.pending_overflow.is_some() || self.pending_reject.is_some() {
                    fail!(
                        self,
                        "overflow while another Overflow/Reject awaits its Outcome"
                    );
                }
                let new_max = self.qspecs[p.pool].max_wait.map(Duration::from_secs);
                let max_wait = match (p.max_wait, new_max) {
                    (Some(old), Some(new)) if reconf => Some(old.min(new)),
                    (None, new) if reconf => new,
                    (old, _) => old,
                };
                match max_wait {
                    Some(max) if now >= v.start + max => {}
                    max => fail!(
                        self,
                        "{call:?} overflowed after waiting {:?} (max wait {max:?})",
                        now.saturating_since(v.start)
                    ),
                }
                self.pending_overflow = Some((call, target));
            }
            Command::Reject { call, reason } => {
                if self.open_visit(call).is_none() {
                    fail!(self, "reject of {call:?} which is not in a queue");
                }
                if self.pending_overflow.is_some() || self.pending_reject.is_some() {
                    fail!(
                        self,
                        "reject while another Overflow/Reject awaits its Outcome"
                    );
                }
                self.pending_reject = Some((call, reason));
            }
            Command::Outcome(o) => self.outcome(ev, o),
            Command::AgentStateChanged {
                agent,
                from,
                to,
                cause,
                at,
            } => {
                if at != now {
                    fail!(self, "state change of {agent:?} at {at:?}, now {now:?}");
                }
                let Some(m) = self.agents.get(&agent).cloned() else {
                    fail!(self, "state change of unknown {agent:?}")
                };
                if from != m.state {
                    fail!(
                        self,
                        "{agent:?} changed from {from:?} but the stream left it in {:?}",
                        m.state
                    );
                }
                if matches!(from, AgentState::Offered { .. }) && m.offer.is_some() {
                    fail!(
                        self,
                        "{agent:?} left Offered before its offer {:?} was withdrawn",
                        m.offer
                    );
                }
                if matches!(from, AgentState::OnCall { .. }) && m.call.is_some() {
                    fail!(self, "{agent:?} left OnCall before the call's Outcome");
                }
                let mut own = m.own.clone();
                if let AgentState::OutboundCall { call } = from {
                    own = None;
                    let ended = matches!(ev, Some(Event::OutboundEnded { call: c }) if *c == call);
                    let Some((_, next)) = m.own.clone().filter(|o| ended && o.0 == call) else {
                        fail!(
                            self,
                            "{agent:?} left own {call:?} ({:?}) in context {ctx:?}",
                            m.own
                        )
                    };
                    let removed = !self.a_present[m.pool];
                    let want = match next {
                        _ if removed => AgentState::LoggedOut,
                        Next::LogOut => AgentState::LoggedOut,
                        Next::Ready => AgentState::Available,
                        Next::NotReady(reason) => AgentState::NotReady { reason },
                        Next::WrapUpUntil(until) if until > now => AgentState::WrapUp { until },
                        Next::WrapUpUntil(_) => AgentState::Available,
                    };
                    let want_cause = if removed {
                        Cause::Reconfigured
                    } else {
                        Cause::CallEnded
                    };
                    if to != want || cause != want_cause {
                        fail!(
                            self,
                            "{agent:?} after own {call:?} went to {to:?} ({cause:?}), want {want:?} ({want_cause:?})"
                        );
                    }
                    match to {
                        AgentState::WrapUp { .. } => cov(Cov::OwnCallBackToWrapUp),
                        AgentState::LoggedOut => cov(Cov::OwnCallThenLogout),
                        _ => {}
                    }
                }
                match &to {
                    AgentState::OutboundCall { call } => {
                        let started = matches!(ev,
                            Some(Event::OutboundStarted { agent: a, call: c }) if *a == agent && c == call);
                        if !started || cause != Cause::Request || m.own.is_some() {
                            fail!(
                                self,
                                "{agent:?} on own {call:?} ({cause:?}, own {:?}) in context {ctx:?}",
                                m.own
                            );
                        }
                        let next = match &from {
                            AgentState::Available | AgentState::Offered { .. } => Next::Ready,
                            AgentState::NotReady { reason } => Next::NotReady(reason.clone()),
                            AgentState::WrapUp { until } => Next::WrapUpUntil(*until),
                            _ => fail!(self, "{agent:?} dialled out from {from:?}"),
                        };
                        own = Some((*call, next));
                        cov(Cov::OwnCall);
                    }
                    AgentState::WrapUp { .. }
                        if matches!(from, AgentState::OutboundCall { .. }) => {}
                    AgentState::Offered { call, deadline } => {
                        if m.offer != Some((*call, *deadline)) || cause != Cause::Offer {
                            fail!(
                                self,
                                "{agent:?} Offered {call:?}/{deadline:?} ({cause:?}) but Offer was {:?}",
                                m.offer
                            );
                        }
                    }
                    AgentState::OnCall { call } => {
                        if m.call != Some(*call) || cause != Cause::Answer {
                            fail!(
                                self,
                                "{agent:?} OnCall {call:?} ({cause:?}) without Connected"
                            );
                        }
                    }
                    AgentState::WrapUp { until } => {
                        let q = m
                            .last_queue
                            .unwrap_or_else(|| fail!(self, "wrap-up without a call"));
                        let want = now + self.params[&q].wrap;
                        if *until != want || cause != Cause::CallEnded {
                            fail!(
                                self,
                                "{agent:?} wrap-up until {until:?} ({cause:?}), want {want:?}"
                            );
                        }
                    }
                    _ => {}
                }
                if cause == Cause::Missed {
                    let want = m
                        .expect_miss
                        .unwrap_or_else(|| fail!(self, "{agent:?} Missed without a missed offer"));
                    let ok = if want {
                        to == AgentState::NotReady {
                            reason: NotReadyReason::NoAnswer,
                        }
                    } else {
                        to == AgentState::Available
                    };
                    if !ok {
                        fail!(
                            self,
                            "{agent:?} after a miss went to {to:?}, RONA rule says no-answer={want}"
                        );
                    }
                    self.agents.get_mut(&agent).expect("known").expect_miss = None;
                }
                if cause == Cause::WrapUpTimeout {
                    cov(Cov::WrapUpTimeout);
                    match from {
                        AgentState::WrapUp { until } if now >= until => {}
                        _ => fail!(self, "{agent:?}: wrap-up timeout from {from:?} at {now:?}"),
                    }
                }
                if to == AgentState::LoggedOut && !self.a_present[m.pool] {
                    // A removed operator is forgotten once logged out.
                    self.eff.insert(agent, Vec::new());
                }
                let m = self.agents.get_mut(&agent).expect("known");
                m.state = to;
                m.own = own;
            }
        }
    }

    /// The offered operator is a member of the call's queue and no Available member of a
    /// lower penalty tier could have taken the call.
    #[allow(clippy::too_many_arguments)]
    fn check_tier(
        &self,
        agent: AgentId,
        pool: usize,
        call: CallId,
        _v: &Visit,
        reqs: &[SkillReq],
        floor: u8,
        qpool: usize,
    ) {
        let Some(&(_, tier)) = self.aspecs[pool].queues.iter().find(|(q, _)| *q == qpool) else {
            fail!(
                self,
                "{agent:?} offered {call:?} of {} which it is not a member of",
                qname(qpool)
            )
        };
        for (&b, mb) in &self.agents {
            if b == agent || mb.state != AgentState::Available || !self.a_present[mb.pool] {
                continue;
            }
            let Some(&(_, pb)) = self.aspecs[mb.pool]
                .queues
                .iter()
                .find(|(q, _)| *q == qpool)
            else {
                continue;
            };
            if pb < tier && self.agent_qualifies(mb.pool, reqs, floor) {
                fail!(
                    self,
                    "{call:?} offered to {agent:?} (penalty {tier}) while {b:?} (penalty {pb}) is Available for it"
                );
            }
        }
    }

    fn outcome(&mut self, ev: Option<&Event>, o: homeline_routing::CallOutcome) {
        let now = self.now;
        let c = o.call;
        self.outcomes_seen += 1;
        let Some(v) = self.open_visit(c).cloned() else {
            fail!(
                self,
                "Outcome for {c:?} which has no open visit (never arrived or already ended)"
            )
        };
        if o.queue != v.queue {
            fail!(
                self,
                "Outcome of {c:?} names {:?}, its visit is in {:?}",
                o.queue,
                v.queue
            );
        }
        let q = v.queue;
        let mut next: Option<QueueId> = None;
        match &o.outcome {
            Outcome::Answered { agent } => {
                let Some((a, at)) = v.connected else {
                    fail!(self, "Answered outcome of unconnected {c:?}")
                };
                if a != *agent {
                    fail!(self, "Answered by {agent:?} but connected to {a:?}");
                }
                if o.wait != at.saturating_since(v.start) || o.talk != now.saturating_since(at) {
                    fail!(
                        self,
                        "Answered {c:?}: wait {:?} talk {:?}, model {:?} {:?}",
                        o.wait,
                        o.talk,
                        at.saturating_since(v.start),
                        now.saturating_since(at)
                    );
                }
                match ev {
                    Some(Event::CallEnded { call } | Event::CallerHungUp { call })
                        if *call == c => {}
                    Some(Event::Transfer { call, queue, .. }) if *call == c => {
                        cov(Cov::TransferConnected);
                        next = Some(*queue);
                    }
                    _ => fail!(self, "Answered outcome of {c:?} in context {ev:?}"),
                }
                let m = self.agents.get_mut(agent).expect("known");
                if m.call != Some(c) {
                    fail!(
                        self,
                        "call of {agent:?} ended but model has {:?}",
                        self.agents[agent].call
                    );
                }
                m.call = None;
                m.last_queue = Some(q);
                cov(Cov::Answered);
            }
            other => {
                if v.connected.is_some() {
                    fail!(self, "{other:?} outcome of connected {c:?}");
                }
                if o.wait != now.saturating_since(v.start) || o.talk != Duration::ZERO {
                    fail!(
                        self,
                        "{other:?} outcome of {c:?}: wait {:?} talk {:?}",
                        o.wait,
                        o.talk
                    );
                }
                let counts = self.counts.get_mut(&q).expect("queue");
                match other {
                    Outcome::Abandoned => {
                        counts.abandoned += 1;
                        if !matches!(ev, Some(Event::CallerHungUp { call }) if *call == c) {
                            fail!(self, "Abandoned outcome of {c:?} in context {ev:?}");
                        }
                        cov(Cov::Abandoned);
                    }
                    Outcome::Overflowed { target } => {
                        counts.overflowed += 1;
                        if self.pending_overflow.as_ref().is_some_and(|p| p.0 == c) {
                            let (_, t) = self.pending_overflow.take().expect("checked");
                            if &t != target {
                                fail!(self, "Overflow to {t:?} but Outcome says {target:?}");
                            }
                            cov(match target {
                                OverflowTarget::Queue(_) => Cov::OverflowQueue,
                                OverflowTarget::External(_) => Cov::OverflowExternal,
                                OverflowTarget::None => Cov::OverflowNone,
                            });
                        } else {
                            match ev {
                                Some(Event::Transfer { call, queue, .. })
                                    if *call == c && *target == OverflowTarget::Queue(*queue) =>
                                {
                                    cov(Cov::Transferred)
                                }
                                _ => fail!(
                                    self,
                                    "Overflowed({target:?}) of {c:?} without an Overflow command, context {ev:?}"
                                ),
                            }
                        }
                        if let OverflowTarget::Queue(t) = target {
                            next = Some(*t);
                        }
                    }
                    Outcome::Rejected { reason } => {
                        counts.rejected += 1;
                        match self.pending_reject.take() {
                            Some((pc, pr)) if pc == c && pr == *reason => {}
                            p => fail!(
                                self,
                                "Rejected({reason:?}) of {c:?} but pending reject {p:?}"
                            ),
                        }
                        match reason {
                            RejectReason::NoAgents => {
                                if !self.params[&q].reject_when_empty {
                                    fail!(
                                        self,
                                        "{c:?} rejected NoAgents by a queue that waits when empty"
                                    );
                                }
                                cov(Cov::RejectNoAgents);
                            }
                            RejectReason::QueueClosed => cov(Cov::RejectQueueClosed),
                        }
                    }
                    Outcome::Answered { .. } => unreachable!(),
                }
            }
        }
        let m = self.calls.get_mut(&c).expect("known");
        m.outcomes += 1;
        m.open = None;
        if let Some(t) = next {
            if !self.params.contains_key(&t) {
                fail!(self, "{c:?} moved to unknown {t:?}");
            }
            self.open(c, t);
        }
    }

    fn end_of_step(&mut self, ctx: &Ctx) {
        let now = self.now;
        self.batch = None;
        if let Some(p) = &self.pending_overflow {
            fail!(self, "Overflow {p:?} without its Outcome");
        }
        if let Some(p) = &self.pending_reject {
            fail!(self, "Reject {p:?} without its Outcome");
        }
        if let Err(e) = self.router.check_invariants(now) {
            fail!(self, "check_invariants after {ctx:?}: {e}");
        }
        for (&a, m) in &self.agents {
            if m.expect_miss.is_some() {
                fail!(self, "{a:?} missed an offer but got no Missed state change");
            }
            let Some((state, _)) = self.router.agent_state(a) else {
                fail!(self, "agent_state({a:?}) is None")
            };
            if *state != m.state {
                fail!(
                    self,
                    "agent_state({a:?}) = {state:?}, the AgentStateChanged stream says {:?}",
                    m.state
                );
            }
            let offered = match m.state {
                AgentState::Offered { call, deadline } => Some((call, deadline)),
                _ => None,
            };
            let on_call = match m.state {
                AgentState::OnCall { call } => Some(call),
                _ => None,
            };
            let own_call = match m.state {
                AgentState::OutboundCall { call } => Some(call),
                _ => None,
            };
            if own_call != m.own.as_ref().map(|o| o.0) {
                fail!(
                    self,
                    "{a:?}: state {:?} but the model's own call is {:?}",
                    m.state,
                    m.own
                );
            }
            if offered != m.offer || on_call != m.call {
                fail!(
                    self,
                    "{a:?}: state {:?} but Offer/Withdraw give {:?} and Connected/Outcome {:?}",
                    m.state,
                    m.offer,
                    m.call
                );
            }
            if m.offer.is_some() && m.call.is_some() {
                fail!(self, "{a:?} holds an offer and a call");
            }
            if let Some((c, _)) = m.offer {
                match self.open_visit(c) {
                    Some(v) if v.connected.is_none() => {}
                    v => fail!(self, "{a:?} rings with {c:?} whose visit is {v:?}"),
                }
            }
            if let Some(c) = m.call {
                match self.open_visit(c) {
                    Some(Visit {
                        connected: Some((x, _)),
                        ..
                    }) if *x == a => {}
                    v => fail!(self, "{a:?} talks on {c:?} whose visit is {v:?}"),
                }
            }
        }
        // Per queue, from the commands alone.
        // queue -> (waiting or ringing, ringing, longest wait of a waiting call)
        let mut open: BTreeMap<QueueId, (u64, u32, Duration)> = BTreeMap::new();
        let mut live = 0;
        for (&c, m) in &self.calls {
            let Some(v) = &m.open else { continue };
            live += 1;
            if v.connected.is_some() {
                continue;
            }
            let e = open.entry(v.queue).or_default();
            e.0 += 1;
            if self
                .agents
                .values()
                .any(|a| a.offer.map(|o| o.0) == Some(c))
            {
                e.1 += 1;
            } else {
                e.2 = e.2.max(now.saturating_since(v.start));
            }
        }
        // queue -> members by state, from the membership model and the state stream.
        let mut members: BTreeMap<QueueId, [u32; 6]> = BTreeMap::new();
        for (a, qs) in &self.eff {
            let kind = self.agents[a].state.kind() as usize;
            for q in qs {
                members.entry(*q).or_default()[kind] += 1;
            }
        }
        if self.router.calls_in_progress() != live {
            fail!(
                self,
                "calls_in_progress {} but {live} calls have an open visit",
                self.router.calls_in_progress()
            );
        }
        let nqueues = self.router.queue_ids().count();
        if nqueues != self.params.len() {
            fail!(
                self,
                "router has {nqueues} queues, model {}",
                self.params.len()
            );
        }
        for (&q, c) in &self.counts {
            let Some(s) = self.router.queue_stats(q, now) else {
                fail!(self, "no stats for {q:?}")
            };
            let (in_progress, ringing, longest) = open.get(&q).copied().unwrap_or_default();
            let got = Counts {
                offered: s.offered,
                answered: s.answered,
                abandoned: s.abandoned,
                overflowed: s.overflowed,
                rejected: s.rejected,
            };
            if got != *c || s.in_progress() != in_progress || s.ringing != ringing {
                fail!(
                    self,
                    "{q:?}: stats {got:?} waiting {} ringing {}; commands say {c:?} in progress {in_progress} ringing {ringing}",
                    s.waiting,
                    s.ringing
                );
            }
            if s.longest_wait != longest {
                fail!(
                    self,
                    "{q:?}: longest wait {:?}, waiting calls say {longest:?}",
                    s.longest_wait
                );
            }
            let by_state = members.get(&q).copied().unwrap_or_default();
            if s.agents != by_state {
                fail!(
                    self,
                    "{q:?}: members by state {:?}, model {by_state:?} (members {:?})",
                    s.agents,
                    self.eff
                        .iter()
                        .filter(|(_, qs)| qs.contains(&q))
                        .map(|(a, _)| *a)
                        .collect::<Vec<_>>()
                );
            }
            if c.offered != c.answered + c.abandoned + c.overflowed + c.rejected + in_progress {
                fail!(
                    self,
                    "{q:?}: offered {} != answered+abandoned+overflowed+rejected+in progress ({c:?}, {in_progress})",
                    c.offered
                );
            }
        }
    }

    // -------------------------------------------------------------- ops

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Login(a, ready) => self.event(Event::Login {
                agent: self.agent_sel(a),
                ready,
            }),
            Op::Logout(a) => self.event(Event::Logout {
                agent: self.agent_sel(a),
            }),
            Op::Ready(a) => self.event(Event::Ready {
                agent: self.agent_sel(a),
            }),
            Op::NotReady(a, r) => {
                let reason = match r {
                    0 => NotReadyReason::User(Arc::from("lunch")),
                    1 => NotReadyReason::User(Arc::from("training")),
                    _ => NotReadyReason::LoggedIn,
                };
                self.event(Event::NotReady {
                    agent: self.agent_sel(a),
                    reason,
                })
            }
            Op::WrapUpDone(a) => self.event(Event::WrapUpDone {
                agent: self.agent_sel(a),
            }),
            Op::ConnectionLost(a) => self.event(Event::ConnectionLost {
                agent: self.agent_sel(a),
            }),
            Op::Arrive {
                queue,
                priority,
                ref skills,
            } => {
                let skills = match skills {
                    SkillsSpec::Default => None,
                    SkillsSpec::Reqs(r) => Some(
                        r.iter()
                            .filter_map(|&(s, min)| {
                                Some(SkillReq {
                                    skill: self.skill(s)?,
                                    min,
                                })
                            })
                            .collect(),
                    ),
                    SkillsSpec::UnknownSkill => Some(vec![SkillReq {
                        skill: SkillId(999),
                        min: 3,
                    }]),
                    SkillsSpec::BadMin(min) => match self.skill(0) {
                        Some(skill) => Some(vec![SkillReq { skill, min: *min }]),
                        None => Some(vec![SkillReq {
                            skill: SkillId(998),
                            min: *min,
                        }]),
                    },
                };
                let call = CallId(self.next_call);
                self.next_call += 1;
                self.event(Event::CallArrived {
                    call,
                    queue: self.queue_sel(queue),
                    priority,
                    skills,
                })
            }
            Op::AcceptOffered(i) | Op::DeclineOffered(i) => {
                let offers: Vec<(AgentId, CallId)> = self
                    .agents
                    .iter()
                    .filter_map(|(&a, m)| m.offer.map(|o| (a, o.0)))
                    .collect();
                if offers.is_empty() {
                    return;
                }
                let (agent, call) = offers[i as usize % offers.len()];
                if matches!(op, Op::AcceptOffered(_)) {
                    self.event(Event::OfferAccepted { call, agent })
                } else {
                    self.event(Event::OfferDeclined { call, agent })
                }
            }
            Op::AcceptAny { agent, call } => {
                let (agent, call) = (self.agent_sel(agent), self.any_call(call));
                self.event(Event::OfferAccepted { call, agent })
            }
            Op::DeclineAny { agent, call } => {
                let (agent, call) = (self.agent_sel(agent), self.any_call(call));
                self.event(Event::OfferDeclined { call, agent })
            }
            Op::HangUp(i) => {
                let live = self.live_calls();
                let call = if live.is_empty() {
                    self.any_call(i)
                } else {
                    live[i as usize % live.len()]
                };
                self.event(Event::CallerHungUp { call })
            }
            Op::EndConnected(i) => {
                let connected: Vec<CallId> = self.agents.values().filter_map(|m| m.call).collect();
                if connected.is_empty() {
                    return;
                }
                let call = connected[i as usize % connected.len()];
                self.event(Event::CallEnded { call })
            }
            Op::EndAny(i) => {
                let call = self.any_call(i);
                self.event(Event::CallEnded { call })
            }
            Op::Transfer {
                call,
                queue,
                priority,
            } => {
                let live = self.live_calls();
                let call = if live.is_empty() {
                    self.any_call(call)
                } else {
                    live[call as usize % live.len()]
                };
                self.event(Event::Transfer {
                    call,
                    queue: self.queue_sel(queue),
                    priority,
                })
            }
            Op::Duplicate(i) => {
                let live = self.live_calls();
                if live.is_empty() {
                    return;
                }
                let call = live[i as usize % live.len()];
                let queue = self.calls[&call].open.as_ref().expect("live").queue;
                self.event(Event::CallArrived {
                    call,
                    queue,
                    priority: 0,
                    skills: None,
                })
            }
            Op::Advance { ms, late } => {
                let target = self.now + Duration::from_millis(u64::from(ms));
                if late {
                    let was_late = self.router.poll_timeout().is_some_and(|t| t < target);
                    self.now = target;
                    self.timeout(was_late);
                } else {
                    while let Some(t) = self.router.poll_timeout().filter(|&t| t <= target) {
                        self.now = self.now.max(t);
                        self.timeout(false);
                    }
                    self.now = target;
                }
            }
            Op::AdvanceToTimeout => {
                if let Some(t) = self.router.poll_timeout() {
                    self.now = self.now.max(t);
                    self.timeout(false);
                }
            }
            Op::Toggle(queue, sel) => self.reconfigure(queue, sel),
            Op::Mutate(kind, idx, v) => self.mutate(kind, idx, v),
            Op::ReuseId { call, queue } => {
                let ended: Vec<CallId> = self
                    .calls
                    .iter()
                    .filter(|(_, m)| m.open.is_none())
                    .map(|(&c, _)| c)
                    .collect();
                if ended.is_empty() {
                    return;
                }
                let call = ended[call as usize % ended.len()];
                self.event(Event::CallArrived {
                    call,
                    queue: self.queue_sel(queue),
                    priority: 0,
                    skills: None,
                })
            }
            Op::Dial { agent, id } => {
                let agent = self.agent_sel(agent);
                let (live, own) = (self.live_calls(), self.own_calls());
                let call = match id % 8 {
                    0 if !live.is_empty() => live[usize::from(id / 8) % live.len()],
                    1 if !own.is_empty() => own[usize::from(id / 8) % own.len()],
                    _ => {
                        self.next_call += 1;
                        CallId(self.next_call - 1)
                    }
                };
                self.event(Event::OutboundStarted { agent, call })
            }
            Op::HangUpOwn(i) => {
                let own = self.own_calls();
                let call = if own.is_empty() {
                    self.any_call(i)
                } else {
                    own[i as usize % own.len()]
                };
                self.event(Event::OutboundEnded { call })
            }
            Op::BadConfig(kind) => {
                let mut config = self.build_config();
                let first = config.queues[0].clone();
                match kind % 5 {
                    0 => config.queues.push(first),
                    1 => config.agents.push(AgentConfig {
                        name: "stranger".into(),
                        queues: vec![MembershipConfig {
                            queue: "no-such-queue".into(),
                            penalty: 0,
                        }],
                        skills: vec![("brand-new-skill".into(), 3)],
                    }),
                    2 => config.queues[0].ring_timeout = Duration::ZERO,
                    3 => config.queues[0].overflow = Some(OverflowConfig::Queue(first.name)),
                    _ => {
                        config.queues[0].relax = vec![
                            RelaxStep {
                                after: Duration::from_secs(9),
                                min_proficiency: 2,
                            },
                            RelaxStep {
                                after: Duration::from_secs(3),
                                min_proficiency: 9,
                            },
                        ]
                    }
                }
                self.event(Event::Reconfigure(Arc::new(config)));
                if self.router.skill_id("brand-new-skill").is_some() {
                    fail!(self, "a rejected configuration interned its skills");
                }
                self.check_ids();
            }
        }
    }

    /// Ends every call (hang-up or call end), then runs out every deadline, and checks that
    /// each call had exactly one outcome per visit.
    fn drain(&mut self) {
        while let Some(&call) = self.own_calls().first() {
            self.event(Event::OutboundEnded { call });
        }
        let mut flip = false;
        while let Some(&call) = self.live_calls().first() {
            let connected = self.open_visit(call).is_some_and(|v| v.connected.is_some());
            flip = !flip;
            if connected && flip {
                self.event(Event::CallEnded { call });
            } else {
                self.event(Event::CallerHungUp { call });
            }
        }
        while let Some(t) = self.router.poll_timeout() {
            self.now = self.now.max(t);
            self.timeout(false);
        }
        self.now = self.now + Duration::from_secs(3600);
        self.timeout(false);
        let mut visits = 0;
        for (&c, m) in &self.calls {
            if m.open.is_some() || m.visits == 0 || m.outcomes != m.visits {
                fail!(
                    self,
                    "{c:?}: {} visits, {} outcomes, open {:?}",
                    m.visits,
                    m.outcomes,
                    m.open
                );
            }
            visits += u64::from(m.visits);
        }
        if visits != self.outcomes_seen {
            fail!(
                self,
                "{} Outcome commands for {visits} visits",
                self.outcomes_seen
            );
        }
        if self.router.calls_in_progress() != 0 || self.router.poll_timeout().is_some() {
            fail!(self, "router not idle after drain");
        }
        for (&a, m) in &self.agents {
            if matches!(
                m.state,
                AgentState::Offered { .. }
                    | AgentState::OnCall { .. }
                    | AgentState::WrapUp { .. }
                    | AgentState::OutboundCall { .. }
            ) {
                fail!(self, "{a:?} still {:?} after drain", m.state);
            }
        }
        for (&q, c) in &self.counts {
            if c.offered != c.answered + c.abandoned + c.overflowed + c.rejected {
                fail!(self, "{q:?}: offered != ended after drain: {c:?}");
            }
        }
    }
}

fn run(s: &Scenario) {
    let mut h = Harness::new(s);
    for op in &s.ops {
        h.apply(op);
    }
    h.drain();
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

fn config(default_cases: u32) -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    if c.rng_seed == RngSeed::Random {
        c.rng_seed = RngSeed::Fixed(0x0005_EED0_F4CD);
    }
    c.failure_persistence = None;
    c
}

thread_local! {
    /// Set while proptest runs and shrinks cases on this thread: their panics are expected and
    /// reported once, with the minimal case, at the end.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn run_cases(cases: u32, g: Gen) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info)
            }
        }));
    });
    let mut runner = TestRunner::new(config(cases));
    QUIET.with(|q| q.set(true));
    let result = runner.run(&scenario_strategy(g), |s| {
        run(&s);
        Ok(())
    });
    QUIET.with(|q| q.set(false));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Random strategies per queue, long sequences.
#[test]
fn model_mixed_strategies() {
    run_cases(96, BASIC);
}

/// Reconfigurations that change parameters of queues and operators at run time (strategy,
/// ring timeout, wrap-up, when-empty, max misses, overflow target, required skills,
/// operator skills, memberships and penalties).
#[test]
fn model_config_changes() {
    run_cases(
        96,
        Gen {
            mutations: true,
            ..BASIC
        },
    );
}

/// Queue 0 uses each strategy in turn.
#[test]
fn model_each_strategy() {
    for focus in Policy::ALL {
        run_cases(
            20,
            Gen {
                focus: Some(focus),
                max_ops: 200,
                ..BASIC
            },
        );
    }
}

/// Call ids re-used once the earlier call with that id has ended.
#[test]
fn model_reused_call_ids() {
    run_cases(
        96,
        Gen {
            reuse_ids: true,
            ..BASIC
        },
    );
}

/// Many short sequences, where the drain does most of the work.
#[test]
fn model_short_sequences() {
    run_cases(
        200,
        Gen {
            max_ops: 30,
            ..BASIC
        },
    );
}

/// The generator reaches every feature the properties are about (deterministic with the
/// fixed seed; a failure here means the generator changed, not the router).
#[test]
fn model_coverage() {
    run_cases(
        64,
        Gen {
            mutations: true,
            ..BASIC
        },
    );
    for focus in Policy::ALL {
        run_cases(
            4,
            Gen {
                focus: Some(focus),
                max_ops: 200,
                ..BASIC
            },
        );
    }
    let missing: Vec<&str> = COV_NAMES
        .iter()
        .zip(&COVERAGE)
        .filter(|(_, n)| n.load(Relaxed) == 0)
        .map(|(name, _)| *name)
        .collect();
    let report: Vec<String> = COV_NAMES
        .iter()
        .zip(&COVERAGE)
        .map(|(name, n)| format!("{name}={}", n.load(Relaxed)))
        .collect();
    println!("coverage: {}", report.join(" "));
    assert!(missing.is_empty(), "never exercised: {missing:?}");
}

// ------------------------------------------------------------------------------------------
// Regressions for core bugs found while writing these tests (fixed in dcc3497). Each is a
// minimal scenario; the doc comments describe the behaviour before the fix.
// ------------------------------------------------------------------------------------------

fn drain_cmds(r: &mut Router<SplitMix64>) -> Vec<Command> {
    r.drain_commands().collect()
}

fn secs(s: u64) -> Time {
    Time::from_secs(s)
}

/// One queue `q` requiring skill `en` at 5 and one operator `a` in it with `en` at 1.
fn skill_gap_config(relax: Vec<RelaxStep>, max_wait: Option<Duration>) -> RouterConfig {
    let mut q = QueueConfig::new("q");
    q.required_skills = vec![SkillRequirementConfig {
        skill: "en".into(),
        min: 5,
    }];
    q.relax = relax;
    q.max_wait = max_wait;
    q.overflow = Some(OverflowConfig::External("voicemail".into()));
    let a = AgentConfig {
        name: "a".into(),
        queues: vec![MembershipConfig {
            queue: "q".into(),
            penalty: 0,
        }],
        skills: vec![("en".into(), 1)],
    };
    RouterConfig {
        queues: vec![q],
        agents: vec![a],
    }
}

/// A waiting call, then a reconfiguration that adds a relaxation step to its queue: once
/// the call has waited past the step, the (Available, now qualifying) operator must be
/// offered it. The router only arms relax timers when a call enters a queue, so nothing
/// fires: the call waits while an operator is Available for it, and `check_invariants`
/// reports exactly that.
#[test]

fn reconfigured_relax_step_applies_to_waiting_calls() {
    let mut r = Router::new(&skill_gap_config(vec![], None), SplitMix64::new(1)).expect("valid");
    let (a, q) = (r.agent_id("a").expect("a"), r.queue_id("q").expect("q"));
    r.handle(
        secs(0),
        Event::Login {
            agent: a,
            ready: true,
        },
    )
    .expect("login");
    let call = CallId(1);
    r.handle(
        secs(0),
        Event::CallArrived {
            call,
            queue: q,
            priority: 0,
            skills: None,
        },
    )
    .expect("arrive");
    drain_cmds(&mut r);
    // At t=1 s: relax to "anyone" after 10 s of waiting.
    let relax = vec![RelaxStep {
        after: Duration::from_secs(10),
        min_proficiency: 0,
    }];
    let config = Arc::new(skill_gap_config(relax, None));
    r.handle(secs(1), Event::Reconfigure(config))
        .expect("reconfigure");
    assert!(drain_cmds(&mut r).is_empty(), "not yet relaxed at 1 s");
    r.check_invariants(secs(1)).expect("invariants at 1 s");
    // Run the clock to 11 s as an engine would: fire every deadline up to then.
    let t = secs(11);
    while let Some(at) = r.poll_timeout().filter(|&at| at <= t) {
        r.handle_timeout(at);
    }
    r.handle_timeout(t);
    r.check_invariants(t).expect("invariants at 11 s");
    let offered = drain_cmds(&mut r)
        .iter()
        .any(|c| matches!(c, Command::Offer { call: c, agent, .. } if *c == call && *agent == a));
    assert!(
        offered,
        "the relaxed call was not offered to the Available operator"
    );
}

/// A waiting call, then a reconfiguration that gives its queue a max wait (with an
/// overflow target): the call should overflow once it has waited that long, like any call
/// in the queue. The router only arms the max-wait timer when a call enters a queue, so
/// the call waits for ever (yet would overflow at once if an offer of it ever timed out,
/// since `requeue` does check the new max wait).
#[test]

fn reconfigured_max_wait_applies_to_waiting_calls() {
    let mut r = Router::new(&skill_gap_config(vec![], None), SplitMix64::new(1)).expect("valid");
    let q = r.queue_id("q").expect("q");
    let call = CallId(1);
    r.handle(
        secs(0),
        Event::CallArrived {
            call,
            queue: q,
            priority: 0,
            skills: None,
        },
    )
    .expect("arrive");
    drain_cmds(&mut r);
    let config = Arc::new(skill_gap_config(vec![], Some(Duration::from_secs(30))));
    r.handle(secs(1), Event::Reconfigure(config))
        .expect("reconfigure");
    drain_cmds(&mut r);
    let t = secs(120);
    while let Some(at) = r.poll_timeout().filter(|&at| at <= t) {
        r.handle_timeout(at);
    }
    r.handle_timeout(t);
    let cmds = drain_cmds(&mut r);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Overflow { call: c, .. } if *c == call)),
        "call waited 120 s in a queue with max wait 30 s and did not overflow: {cmds:?}"
    );
}

/// The reverse: a reconfiguration removes the queue's max wait, but the timer armed at
/// arrival still fires and overflows the call, with the *new* configuration's target
/// (`None` here: the engine is told to answer the PBX 480) although the queue now says
/// "wait for ever". `on_max_wait` does not re-check the queue's current `max_wait`.
#[test]

fn removed_max_wait_does_not_overflow_waiting_calls() {
    let mut first = skill_gap_config(vec![], Some(Duration::from_secs(30)));
    first.queues[0].overflow = None;
    let mut r = Router::new(&first, SplitMix64::new(1)).expect("valid");
    let q = r.queue_id("q").expect("q");
    let call = CallId(1);
    r.handle(
        secs(0),
        Event::CallArrived {
            call,
            queue: q,
            priority: 0,
            skills: None,
        },
    )
    .expect("arrive");
    let mut second = skill_gap_config(vec![], None);
    second.queues[0].overflow = None;
    r.handle(secs(1), Event::Reconfigure(Arc::new(second)))
        .expect("reconfigure");
    drain_cmds(&mut r);
    let t = secs(120);
    while let Some(at) = r.poll_timeout().filter(|&at| at <= t) {
        r.handle_timeout(at);
    }
    r.handle_timeout(t);
    let cmds = drain_cmds(&mut r);
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::Overflow { .. } | Command::Outcome(_))),
        "queue without max wait overflowed a waiting call: {cmds:?}"
    );
    assert_eq!(r.calls_in_progress(), 1);
}

/// An operator on a call asks to log out (applies after the call), then — still on the call
/// — goes Not Ready (a break request, or the engine reports `ConnectionLost`). The pending
/// logout is silently replaced by Not Ready: after the call the operator is Not Ready, i.e.
/// still logged in, and one `Ready` later takes calls again. Found by the shift simulation:
/// a `when_empty = reject` queue whose staff had all logged out kept taking calls.
#[test]

fn logout_during_call_survives_not_ready() {
    for second in [
        Event::NotReady {
            agent: AgentId(0),
            reason: NotReadyReason::User(Arc::from("break")),
        },
        Event::ConnectionLost { agent: AgentId(0) },
    ] {
        let mut q = QueueConfig::new("q");
        q.when_empty = WhenEmpty::Reject;
        let a = AgentConfig {
            name: "a".into(),
            queues: vec![MembershipConfig {
                queue: "q".into(),
                penalty: 0,
            }],
            skills: vec![],
        };
        let config = RouterConfig {
            queues: vec![q],
            agents: vec![a],
        };
        let mut r = Router::new(&config, SplitMix64::new(1)).expect("valid");
        let (a, q) = (r.agent_id("a").expect("a"), r.queue_id("q").expect("q"));
        assert_eq!(a, AgentId(0));
        let call = CallId(1);
        r.handle(
            secs(0),
            Event::Login {
                agent: a,
                ready: true,
            },
        )
        .expect("login");
        r.handle(
            secs(0),
            Event::CallArrived {
                call,
                queue: q,
                priority: 0,
                skills: None,
            },
        )
        .expect("arrive");
        r.handle(secs(1), Event::OfferAccepted { call, agent: a })
            .expect("accept");
        r.handle(secs(2), Event::Logout { agent: a })
            .expect("logout during the call");
        r.handle(secs(3), second.clone())
            .expect("second request during the call");
        r.handle(secs(60), Event::CallEnded { call }).expect("end");
        assert_eq!(
            r.agent_state(a).map(|s| s.0.clone()),
            Some(AgentState::LoggedOut),
            "after {second:?}: the operator asked to log out during the call"
        );
        // The queue is empty now: `when_empty = reject` must reject.
        drain_cmds(&mut r);
        r.handle(
            secs(61),
            Event::CallArrived {
                call: CallId(2),
                queue: q,
                priority: 0,
                skills: None,
            },
        )
        .expect("arrive");
        let cmds = drain_cmds(&mut r);
        assert!(
            cmds.iter().any(|c| matches!(c, Command::Reject { .. })),
            "{cmds:?}"
        );
    }
}

/// Fires every deadline up to `t`, each at its own time.
fn run_clock(r: &mut Router<SplitMix64>, t: Time) -> Vec<Command> {
    let mut out = Vec::new();
    while let Some(at) = r.poll_timeout().filter(|&at| at <= t) {
        r.handle_timeout(at);
        out.extend(r.drain_commands());
    }
    r.handle_timeout(t);
    out.extend(r.drain_commands());
    out
}

/// Call ids need only be unique while the router knows the call. Call 1 waits in a queue
/// with a 30 s max wait and hangs up at 5 s; a new call 1 arrives at 20 s. Its max wait ends
/// at 50 s, but the first call's max-wait timer (keyed by call id and visit number, and the
/// visit number starts again at 1) fires at 30 s and overflows the new call after 10 s.
#[test]

fn reused_call_id_keeps_its_own_max_wait() {
    let mut q = QueueConfig::new("q");
    q.max_wait = Some(Duration::from_secs(30));
    q.overflow = Some(OverflowConfig::External("voicemail".into()));
    let mut r = Router::new(
        &RouterConfig {
            queues: vec![q],
            agents: vec![],
        },
        SplitMix64::new(1),
    )
    .expect("valid");
    let q = r.queue_id("q").expect("q");
    let call = CallId(1);
    r.handle(
        secs(0),
        Event::CallArrived {
            call,
            queue: q,
            priority: 0,
            skills: None,
        },
    )
    .expect("arrive");
    r.handle(secs(5), Event::CallerHungUp { call })
        .expect("hang up");
    run_clock(&mut r, secs(20));
    r.handle(
        secs(20),
        Event::CallArrived {
            call,
            queue: q,
            priority: 0,
            skills: None,
        },
    )
    .expect("the id is free again");
    drain_cmds(&mut r);
    let early = run_clock(&mut r, secs(49));
    assert!(
        early.is_empty(),
        "new call 1 (arrived at 20 s, max wait 30 s) overflowed early: {early:?}"
    );
    let due = run_clock(&mut r, secs(50));
    assert!(
        due.iter().any(|c| matches!(c, Command::Overflow { .. })),
        "{due:?}"
    );
}

/// Same with the ring timeout: call 1 rings operator `a` (deadline 15 s) and hangs up at
/// 2 s; a new call 1 arrives at 10 s and rings `a` until 25 s. The first offer's ring timer
/// (keyed by call id and offer number, which starts again at 1) fires at 15 s: the new offer
/// is withdrawn 5 s after it started and, with `max_misses = 1`, `a` is made Not Ready
/// ("no answer") for a miss it never had.
#[test]

fn reused_call_id_keeps_its_own_ring_timeout() {
    let q = QueueConfig::new("q"); // ring timeout 15 s, max misses 1
    let a = AgentConfig {
        name: "a".into(),
        queues: vec![MembershipConfig {
            queue: "q".into(),
            penalty: 0,
        }],
        skills: vec![],
    };
    let mut r = Router::new(
        &RouterConfig {
            queues: vec![q],
            agents: vec![a],
        },
        SplitMix64::new(1),
    )
    .expect("valid");
    let (a, q) = (r.agent_id("a").expect("a"), r.queue_id("q").expect("q"));
    let call = CallId(1);
    r.handle(
        secs(0),
        Event::Login {
            agent: a,
            ready: true,
        },
    )
    .expect("login");
    r.handle(
        secs(0),
        Event::CallArrived {
            call,
            queue: q,
            priority: 0,
            skills: None,
        },
    )
    .expect("arrive");
    r.handle(secs(2), Event::CallerHungUp { call })
        .expect("hang up");
    run_clock(&mut r, secs(10));
    r.handle(
        secs(10),
        Event::CallArrived {
            call,
            queue: q,
            priority: 0,
            skills: None,
        },
    )
    .expect("the id is free again");
    let cmds = drain_cmds(&mut r);
    let deadline = secs(25);
    assert!(
        cmds.contains(&Command::Offer {
            call,
            agent: a,
            deadline
        }),
        "{cmds:?}"
    );
    let early = run_clock(&mut r, secs(20));
    assert!(
        early.is_empty(),
        "offer (deadline 25 s) withdrawn early: {early:?}"
    );
    assert_eq!(
        r.agent_state(a).map(|s| s.0.clone()),
        Some(AgentState::Offered { call, deadline })
    );
}
