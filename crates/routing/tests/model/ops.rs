//! The scenarios: small random configurations and sequences of operations, and their
//! proptest strategies.

use crate::SKILLS;
use homeline_routing::Strategy as Policy;
use proptest::prelude::*;

#[derive(Debug, Clone)]
pub(crate) enum OvSpec {
    None,
    Queue(usize),
    External,
}

#[derive(Debug, Clone)]
pub(crate) struct QSpec {
    pub(crate) strategy: Policy,
    pub(crate) ring_timeout: u64,
    pub(crate) wrap_up: u64,
    pub(crate) max_wait: Option<u64>,
    pub(crate) overflow: OvSpec,
    pub(crate) reject_when_empty: bool,
    pub(crate) max_misses: u32,
    pub(crate) required: Vec<(usize, u8)>,
    pub(crate) relax: Vec<(u64, u8)>,
    pub(crate) present: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ASpec {
    pub(crate) queues: Vec<(usize, u8)>,
    pub(crate) skills: Vec<(usize, u8)>,
    pub(crate) present: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum SkillsSpec {
    Default,
    Reqs(Vec<(usize, u8)>),
    UnknownSkill,
    BadMin(u8),
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
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
pub(crate) struct Scenario {
    pub(crate) queues: Vec<QSpec>,
    pub(crate) agents: Vec<ASpec>,
    pub(crate) ops: Vec<Op>,
    pub(crate) seed: u64,
}

pub(crate) fn qspec_strategy(nq: usize) -> impl Strategy<Value = QSpec> {
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

pub(crate) fn aspec_strategy(nq: usize) -> impl Strategy<Value = ASpec> {
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
pub(crate) struct Gen {
    /// Queue 0 uses this strategy.
    pub(crate) focus: Option<Policy>,
    pub(crate) max_ops: usize,
    /// Parameter changes by reconfiguration.
    pub(crate) mutations: bool,
    /// Call ids re-used after the call ended.
    pub(crate) reuse_ids: bool,
}

pub(crate) const BASIC: Gen = Gen {
    focus: None,
    max_ops: 300,
    mutations: false,
    reuse_ids: false,
};

pub(crate) fn op_strategy(g: Gen) -> BoxedStrategy<Op> {
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
pub(crate) fn scenario_strategy(g: Gen) -> impl Strategy<Value = Scenario> {
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
