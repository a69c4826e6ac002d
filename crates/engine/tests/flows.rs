//! Call flows and races on virtual time.

use homeline_engine::routing::*;
use homeline_engine::{AnswerMode, Engine, Input, LegId, OUTSIDE_RING, Output};
use std::time::Duration;

fn engine(strategy: Strategy, agents: &[&str]) -> Engine<SplitMix64> {
    let q = QueueConfig {
        strategy,
        wrap_up: Duration::from_secs(10),
        ..QueueConfig::new("support")
    };
    let agents = agents
        .iter()
        .map(|n| AgentConfig {
            name: (*n).into(),
            queues: vec![MembershipConfig {
                queue: "support".into(),
                penalty: 0,
            }],
            skills: vec![],
        })
        .collect();
    let router = Router::new(
        &RouterConfig {
            queues: vec![q],
            agents,
        },
        SplitMix64::new(1),
    )
    .expect("config");
    Engine::new(router)
}

struct T {
    e: Engine<SplitMix64>,
    now: Time,
    outcomes: Vec<CallOutcome>,
    done: Vec<CallId>,
}

impl T {
    fn new(strategy: Strategy, agents: &[&str]) -> T {
        T {
            e: engine(strategy, agents),
            now: Time::ZERO,
            outcomes: vec![],
            done: vec![],
        }
    }

    /// An engine with queue `q` alone and no operators.
    fn alone(q: QueueConfig) -> T {
        let router = Router::new(
            &RouterConfig {
                queues: vec![q],
                agents: vec![],
            },
            SplitMix64::new(1),
        )
        .expect("config");
        T {
            e: Engine::new(router),
            now: Time::ZERO,
            outcomes: vec![],
            done: vec![],
        }
    }

    fn agent(&self, name: &str) -> AgentId {
        self.e.router().agent_id(name).expect("agent")
    }

    fn run(&mut self, input: Input) -> Vec<Output> {
        self.e.handle(self.now, input);
        self.collect()
    }

    fn collect(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(o) = self.e.poll_output() {
            match &o {
                Output::Record(r) => self.outcomes.push(r.clone()),
                Output::CallDone { call } => self.done.push(*call),
                _ => {}
            }
            out.push(o);
        }
        self.e
            .router()
            .check_invariants(self.now)
            .expect("routing invariants");
        out
    }

    fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now = self.now + d;
        self.e.handle_timeout(self.now);
        self.collect()
    }

    fn online(&mut self, name: &str) {
        let agent = self.agent(name);
        self.run(Input::AgentOnline { agent, ready: true });
    }

    fn inbound(&mut self, call: u64, answer: AnswerMode) -> Vec<Output> {
        let queue = self.e.router().queue_id("support").expect("queue");
        self.run(Input::Inbound {
            call: CallId(call),
            queue,
            priority: 0,
            answer,
        })
    }
}

fn invites(out: &[Output]) -> Vec<(LegId, AgentId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::CallAgent { leg, agent, .. } => Some((*leg, *agent)),
            _ => None,
        })
        .collect()
}

#[test]
fn on_enqueue_answers_at_once_with_music_then_bridges_and_ends_on_pbx_bye() {
    let mut t = T::new(Strategy::LongestIdle, &["alice"]);
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    assert_eq!(
        out[0],
        Output::AnswerPbx {
            call: CallId(1),
            moh: true
        },
        "queued callers hear music"
    );
    assert!(invites(&out).is_empty(), "nobody is Ready yet");
    let agent = t.agent("alice");
    let out = t.run(Input::AgentOnline { agent, ready: true });
    let [(leg, a)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a, agent);
    t.run(Input::AgentRinging { leg });
    let out = t.run(Input::AgentAnswered { leg });
    assert!(out.contains(&Output::Bridge {
        call: CallId(1),
        leg
    }));
    assert!(
        !out.iter().any(|o| matches!(o, Output::AnswerPbx { .. })),
        "already answered"
    );
    let out = t.run(Input::PbxGone { call: CallId(1) });
    assert!(out.contains(&Output::HangUpAgent { leg }));
    assert_eq!(t.done, [CallId(1)]);
    assert_eq!(t.outcomes.len(), 1);
    assert!(matches!(t.outcomes[0].outcome, Outcome::Answered { .. }));
    assert!(matches!(
        t.e.router().agent_state(agent).expect("agent").0,
        AgentState::WrapUp { .. }
    ));
}

#[test]
fn on_agent_rings_the_pbx_and_answers_when_the_operator_does() {
    let mut t = T::new(Strategy::LongestIdle, &["alice"]);
    t.online("alice");
    let out = t.inbound(1, AnswerMode::OnAgent);
    assert!(out.contains(&Output::RingPbx { call: CallId(1) }));
    let [(leg, _)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    let out = t.run(Input::AgentAnswered { leg });
    let answer = out.iter().position(|o| {
        *o == Output::AnswerPbx {
            call: CallId(1),
            moh: false,
        }
    });
    let bridge = out.iter().position(|o| {
        *o == Output::Bridge {
            call: CallId(1),
            leg,
        }
    });
    assert!(answer.is_some() && answer < bridge, "{out:?}");
    let out = t.run(Input::AgentHungUp { leg });
    assert!(out.contains(&Output::HangUpPbx { call: CallId(1) }));
    assert_eq!(t.done, [CallId(1)]);
}

#[test]
fn ring_no_answer_cancels_and_moves_the_call_on() {
    let mut t = T::new(Strategy::LongestIdle, &["alice", "bob"]);
    t.online("alice");
    t.online("bob");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let [(leg1, first)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    let out = t.advance(Duration::from_secs(15));
    assert!(out.contains(&Output::CancelAgent { leg: leg1 }));
    let [(leg2, second)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    assert_ne!(first, second);
    assert!(matches!(
        t.e.router().agent_state(first).expect("agent").0,
        AgentState::NotReady {
            reason: NotReadyReason::NoAnswer
        }
    ));
    // The cancelled phone's 487 changes nothing.
    assert!(
        t.run(Input::AgentRefused { leg: leg1 })
            .iter()
            .all(|o| !matches!(o, Output::CallAgent { .. }))
    );
    t.run(Input::AgentAnswered { leg: leg2 });
    assert_eq!(
        t.e.router().agent_state(second).expect("agent").0,
        &AgentState::OnCall { call: CallId(1) }
    );
}

#[test]
fn a_cancel_crossing_the_operators_200_hangs_that_operator_up() {
    let mut t = T::new(Strategy::LongestIdle, &["alice", "bob"]);
    t.online("alice");
    t.online("bob");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let [(leg1, _)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    let out = t.advance(Duration::from_secs(15));
    let [(leg2, _)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    // Only bob's answer is awaited: the runtime must not take alice's media.
    assert!(!t.e.awaits_answer(leg1) && t.e.awaits_answer(leg2));
    // alice's 200 was already on the wire when the CANCEL left.
    let out = t.run(Input::AgentAnswered { leg: leg1 });
    assert_eq!(out, [Output::HangUpAgent { leg: leg1 }]);
    let out = t.run(Input::AgentAnswered { leg: leg2 });
    assert!(out.contains(&Output::Bridge {
        call: CallId(1),
        leg: leg2
    }));
}

#[test]
fn caller_hanging_up_as_the_operator_answers_loses_nothing() {
    let mut t = T::new(Strategy::LongestIdle, &["alice"]);
    t.online("alice");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let [(leg, agent)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    let out = t.run(Input::PbxGone { call: CallId(1) });
    assert!(out.contains(&Output::CancelAgent { leg }));
    // The operator's 200 crossed the CANCEL.
    let out = t.run(Input::AgentAnswered { leg });
    assert_eq!(out, [Output::HangUpAgent { leg }]);
    assert_eq!(t.outcomes.len(), 1);
    assert_eq!(t.outcomes[0].outcome, Outcome::Abandoned);
    assert_eq!(
        t.e.router().agent_state(agent).expect("agent").0,
        &AgentState::Available
    );
    assert_eq!(t.done, [CallId(1)]);
}

#[test]
fn ring_all_two_answers_at_once_first_wins() {
    let mut t = T::new(Strategy::RingAll, &["alice", "bob", "carol"]);
    for n in ["alice", "bob", "carol"] {
        t.online(n);
    }
    let out = t.inbound(1, AnswerMode::OnAgent);
    let legs = invites(&out);
    assert_eq!(legs.len(), 3);
    let out = t.run(Input::AgentAnswered { leg: legs[1].0 });
    assert!(out.contains(&Output::Bridge {
        call: CallId(1),
        leg: legs[1].0
    }));
    let cancels: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Output::CancelAgent { .. }))
        .collect();
    assert_eq!(cancels.len(), 2);
    let out = t.run(Input::AgentAnswered { leg: legs[0].0 });
    assert_eq!(
        out,
        [Output::HangUpAgent { leg: legs[0].0 }],
        "second answer loses"
    );
    assert_eq!(
        t.e.router().agent_state(legs[0].1).expect("agent").0,
        &AgentState::Available
    );
}

#[test]
fn unreachable_operator_moves_the_offer_on_at_once() {
    let mut t = T::new(Strategy::LongestIdle, &["alice", "bob"]);
    t.online("alice");
    t.online("bob");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let [(leg1, first)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    let out = t.run(Input::AgentUnreachable { leg: leg1 });
    let [(_, second)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    assert_ne!(first, second);
    assert!(matches!(
        t.e.router().agent_state(first).expect("agent").0,
        AgentState::NotReady {
            reason: NotReadyReason::ConnectionLost
        }
    ));
}

#[test]
fn declined_offer_counts_as_a_miss_and_goes_to_the_next_operator() {
    let mut t = T::new(Strategy::LongestIdle, &["alice", "bob"]);
    t.online("alice");
    t.online("bob");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let [(leg1, first)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    let out = t.run(Input::AgentRefused { leg: leg1 });
    assert_eq!(invites(&out).len(), 1);
    assert!(matches!(
        t.e.router().agent_state(first).expect("agent").0,
        AgentState::NotReady {
            reason: NotReadyReason::NoAnswer
        }
    ));
}

#[test]
fn registration_gone_makes_the_operator_not_ready_and_wrap_up_holds_offers() {
    let mut t = T::new(Strategy::LongestIdle, &["alice"]);
    t.online("alice");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let [(leg, agent)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    t.run(Input::AgentAnswered { leg });
    t.run(Input::AgentHungUp { leg });
    let out = t.inbound(2, AnswerMode::OnEnqueue);
    assert!(invites(&out).is_empty(), "alice is in wrap-up");
    let out = t.advance(Duration::from_secs(10));
    assert_eq!(invites(&out).len(), 1, "offered once wrap-up ends");
    let out = t.run(Input::AgentOffline { agent });
    assert!(out.iter().any(|o| matches!(o, Output::CancelAgent { .. })));
    assert!(matches!(
        t.e.router().agent_state(agent).expect("agent").0,
        AgentState::NotReady {
            reason: NotReadyReason::ConnectionLost
        }
    ));
}

#[test]
fn max_wait_overflow_out_redirects_or_refuses_the_unanswered_call() {
    let q = QueueConfig {
        max_wait: Some(Duration::from_secs(30)),
        overflow: Some(OverflowConfig::External("sip:9000@pbx".into())),
        ..QueueConfig::new("support")
    };
    let mut t = T::alone(q);
    t.inbound(1, AnswerMode::OnAgent);
    let out = t.advance(Duration::from_secs(30));
    assert!(out.iter().any(|o| matches!(o, Output::RejectPbx { status: 302, target: Some(t), .. } if &**t == "sip:9000@pbx")));
    assert_eq!(t.done, [CallId(1)]);
    assert_eq!(t.outcomes.len(), 1);
    // Answered calls go to the target on an outside leg: see below.
}

#[test]
fn a_queue_that_rejects_when_empty_refuses_before_answering() {
    let q = QueueConfig {
        when_empty: WhenEmpty::Reject,
        ..QueueConfig::new("support")
    };
    let mut t = T::alone(q);
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    assert!(
        out.contains(&Output::RejectPbx {
            call: CallId(1),
            status: 480,
            target: None
        }),
        "{out:?}"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::AnswerPbx { .. })));
    assert_eq!(t.done, [CallId(1)]);
}

/// `support` (alice) and `sales` (bob, carol): alice takes a call and transfers it to sales.
fn transfer_setup() -> (T, LegId) {
    let member = |q: &str| MembershipConfig {
        queue: q.into(),
        penalty: 0,
    };
    let agent = |name: &str, q: &str| AgentConfig {
        name: name.into(),
        queues: vec![member(q)],
        skills: vec![],
    };
    let queue = |name: &str| QueueConfig {
        wrap_up: Duration::from_secs(10),
        ..QueueConfig::new(name)
    };
    let router = Router::new(
        &RouterConfig {
            queues: vec![queue("support"), queue("sales")],
            agents: vec![
                agent("alice", "support"),
                agent("bob", "sales"),
                agent("carol", "sales"),
            ],
        },
        SplitMix64::new(1),
    )
    .expect("config");
    let mut t = T {
        e: Engine::new(router),
        now: Time::ZERO,
        outcomes: vec![],
        done: vec![],
    };
    t.online("alice");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let [(leg, _)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    t.run(Input::AgentAnswered { leg });
    t.now = t.now + Duration::from_secs(5);
    (t, leg)
}

#[test]
fn blind_transfer_to_a_queue_requeues_the_caller_and_offers_the_call_again() {
    let (mut t, alice_leg) = transfer_setup();
    let (alice, bob, carol) = (t.agent("alice"), t.agent("bob"), t.agent("carol"));
    let sales = t.e.router().queue_id("sales").expect("queue");
    t.online("bob");
    t.online("carol");
    let out = t.run(Input::AgentTransfer {
        leg: alice_leg,
        queue: sales,
    });
    let requeued = out
        .iter()
        .position(|o| *o == Output::Requeued { call: CallId(1) });
    let offer = out
        .iter()
        .position(|o| matches!(o, Output::CallAgent { .. }));
    assert!(requeued.is_some() && requeued < offer, "{out:?}");
    assert!(out.contains(&Output::TransferResult {
        leg: alice_leg,
        status: 200
    }));
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::HangUpPbx { .. } | Output::CallDone { .. } | Output::AnswerPbx { .. }
        )),
        "the PBX leg stays answered: {out:?}"
    );
    assert!(matches!(
        t.e.router().agent_state(alice).expect("agent").0,
        AgentState::WrapUp { .. }
    ));
    assert_eq!(t.outcomes.len(), 1, "{:?}", t.outcomes);
    assert_eq!(t.outcomes[0].outcome, Outcome::Answered { agent: alice });
    assert_eq!(t.outcomes[0].talk, Duration::from_secs(5));
    let [(leg, next)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    assert!(next == bob || next == carol);
    // alice hangs up after the transfer: the call is no longer hers.
    let out = t.run(Input::AgentHungUp { leg: alice_leg });
    assert!(out.is_empty(), "{out:?}");
    let out = t.run(Input::AgentAnswered { leg });
    assert!(out.contains(&Output::Bridge {
        call: CallId(1),
        leg
    }));
    assert!(
        !out.iter().any(|o| matches!(o, Output::AnswerPbx { .. })),
        "already answered"
    );
    t.now = t.now + Duration::from_secs(3);
    let out = t.run(Input::PbxGone { call: CallId(1) });
    assert!(out.contains(&Output::HangUpAgent { leg }));
    assert_eq!(t.done, [CallId(1)]);
    let queues: Vec<_> = t.outcomes.iter().map(|o| o.queue).collect();
    let support = t.e.router().queue_id("support").expect("queue");
    assert_eq!(queues, [support, sales], "exactly one outcome per visit");
    assert_eq!(t.outcomes[1].outcome, Outcome::Answered { agent: next });
    assert_eq!(t.e.calls(), 0);
}

#[test]
fn a_transfer_waits_in_the_queue_with_music_and_the_caller_may_still_hang_up() {
    let (mut t, alice_leg) = transfer_setup();
    let sales = t.e.router().queue_id("sales").expect("queue");
    let out = t.run(Input::AgentTransfer {
        leg: alice_leg,
        queue: sales,
    });
    assert!(out.contains(&Output::Requeued { call: CallId(1) }));
    assert!(invites(&out).is_empty(), "nobody in sales is Ready");
    let out = t.run(Input::PbxGone { call: CallId(1) });
    assert!(
        !out.iter().any(|o| matches!(o, Output::HangUpAgent { .. })),
        "alice's leg is no longer the call's: {out:?}"
    );
    assert_eq!(t.done, [CallId(1)]);
    assert_eq!(t.outcomes.len(), 2);
    assert_eq!(t.outcomes[1].outcome, Outcome::Abandoned);
}

#[test]
fn a_transfer_from_a_leg_that_is_not_connected_fails_and_changes_nothing() {
    let (mut t, alice_leg) = transfer_setup();
    let sales = t.e.router().queue_id("sales").expect("queue");
    let out = t.run(Input::AgentTransfer {
        leg: LegId(99),
        queue: sales,
    });
    assert_eq!(
        out,
        [Output::TransferResult {
            leg: LegId(99),
            status: 503
        }]
    );
    let out = t.run(Input::AgentTransfer {
        leg: alice_leg,
        queue: QueueId(42),
    });
    assert_eq!(
        out,
        [Output::TransferResult {
            leg: alice_leg,
            status: 503
        }]
    );
    let out = t.run(Input::AgentHungUp { leg: alice_leg });
    assert!(out.contains(&Output::HangUpPbx { call: CallId(1) }));
    assert_eq!(t.outcomes.len(), 1);
}

/// alice's connected call (`transfer_setup`) goes to the outside number 0612345678: the
/// outputs of the REFER and the outside leg placed.
fn transfer_out(t: &mut T, alice_leg: LegId) -> LegId {
    let out = t.run(Input::AgentTransferOut {
        leg: alice_leg,
        number: "0612345678".into(),
    });
    let [
        Output::Requeued { call },
        Output::CallOutside {
            call: c2,
            leg,
            number,
        },
    ] = &out[..]
    else {
        panic!("music on hold, then the outside leg: {out:?}")
    };
    assert_eq!(
        (*call, *c2, &**number),
        (CallId(1), CallId(1), "0612345678")
    );
    *leg
}

fn state(t: &T, name: &str) -> AgentState {
    t.e.router()
        .agent_state(t.agent(name))
        .expect("agent")
        .0
        .clone()
}

#[test]
fn a_transfer_to_an_outside_number_bridges_the_caller_there_when_it_answers() {
    let (mut t, alice_leg) = transfer_setup();
    let alice = t.agent("alice");
    let outside = transfer_out(&mut t, alice_leg);
    assert!(
        matches!(state(&t, "alice"), AgentState::OnCall { .. }),
        "the operator keeps the call until the target answers"
    );
    assert!(t.outcomes.is_empty());
    t.now = t.now + Duration::from_secs(4);
    let out = t.run(Input::OutsideAnswered { leg: outside });
    assert_eq!(
        out.iter()
            .filter(|o| !matches!(o, Output::AgentState { .. } | Output::Record(_)))
            .collect::<Vec<_>>(),
        [
            &Output::TransferResult {
                leg: alice_leg,
                status: 200
            },
            &Output::Bridge {
                call: CallId(1),
                leg: outside
            }
        ]
    );
    assert!(matches!(state(&t, "alice"), AgentState::WrapUp { .. }));
    assert_eq!(t.outcomes.len(), 1);
    assert_eq!(t.outcomes[0].outcome, Outcome::Answered { agent: alice });
    assert_eq!(t.outcomes[0].talk, Duration::from_secs(9));
    // alice's BYE after the NOTIFY is hers alone.
    let out = t.run(Input::AgentHungUp { leg: alice_leg });
    assert!(out.is_empty(), "{out:?}");
    // The timer of the answered leg is gone.
    let out = t.advance(Duration::from_secs(60));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::CancelAgent { .. } | Output::HangUpPbx { .. })),
        "{out:?}"
    );
    let out = t.run(Input::OutsideHungUp { leg: outside });
    assert_eq!(
        out,
        [
            Output::HangUpPbx { call: CallId(1) },
            Output::CallDone { call: CallId(1) }
        ]
    );
    assert_eq!(t.outcomes.len(), 1, "one visit, one outcome");
    assert_eq!(t.e.calls(), 0);
}

#[test]
fn a_failed_outside_transfer_gives_the_call_back_to_the_operator_still_on_it() {
    let (mut t, alice_leg) = transfer_setup();
    let outside = transfer_out(&mut t, alice_leg);
    let out = t.run(Input::OutsideFailed {
        leg: outside,
        status: 486,
    });
    assert_eq!(
        out,
        [
            Output::TransferResult {
                leg: alice_leg,
                status: 486
            },
            Output::Bridge {
                call: CallId(1),
                leg: alice_leg
            }
        ]
    );
    assert!(matches!(state(&t, "alice"), AgentState::OnCall { .. }));
    // A late answer of the failed leg is hung up.
    let out = t.run(Input::OutsideAnswered { leg: outside });
    assert_eq!(out, [Output::HangUpAgent { leg: outside }]);
    let out = t.run(Input::AgentHungUp { leg: alice_leg });
    assert!(out.contains(&Output::HangUpPbx { call: CallId(1) }));
    assert_eq!(t.outcomes.len(), 1);
    assert_eq!(t.done, [CallId(1)]);
}

#[test]
fn an_outside_target_that_never_answers_after_the_operator_left_puts_the_caller_back_in_the_queue()
{
    let (mut t, alice_leg) = transfer_setup();
    let alice = t.agent("alice");
    let outside = transfer_out(&mut t, alice_leg);
    // Most softphones hang up right after the 202 of a blind transfer.
    let out = t.run(Input::AgentHungUp { leg: alice_leg });
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::HangUpPbx { .. } | Output::CallDone { .. })),
        "the caller waits for the outside target: {out:?}"
    );
    assert_eq!(t.outcomes.len(), 1, "alice's visit ended answered");
    assert!(matches!(state(&t, "alice"), AgentState::WrapUp { .. }));
    let out = t.advance(OUTSIDE_RING - Duration::from_millis(1));
    assert!(
        !out.iter().any(|o| matches!(o, Output::CancelAgent { .. })),
        "{out:?}"
    );
    assert!(t.e.awaits_answer(outside) && t.e.is_outside(outside));
    // Past the ring time: cancelled, reported, and back in support (alice is out of
    // wrap-up by now and gets it again).
    let out = t.advance(Duration::from_millis(1));
    // A 200 crossing that CANCEL must not re-point the call's media.
    assert!(!t.e.awaits_answer(outside) && !t.e.is_outside(outside));
    assert!(
        out.contains(&Output::CancelAgent { leg: outside }),
        "{out:?}"
    );
    assert!(out.contains(&Output::TransferResult {
        leg: alice_leg,
        status: 408
    }));
    let [(leg, a)] = invites(&out)[..] else {
        panic!("offered again: {out:?}")
    };
    assert_eq!(a, alice);
    let out = t.run(Input::AgentAnswered { leg });
    assert!(out.contains(&Output::Bridge {
        call: CallId(1),
        leg
    }));
    let out = t.run(Input::PbxGone { call: CallId(1) });
    assert!(out.contains(&Output::HangUpAgent { leg }));
    assert_eq!(
        t.outcomes.len(),
        2,
        "one outcome per visit: {:?}",
        t.outcomes
    );
    assert_eq!(t.done, [CallId(1)]);
}

#[test]
fn a_caller_hanging_up_while_the_outside_target_rings_ends_every_leg() {
    let (mut t, alice_leg) = transfer_setup();
    let outside = transfer_out(&mut t, alice_leg);
    let out = t.run(Input::PbxGone { call: CallId(1) });
    for o in [
        Output::HangUpAgent { leg: outside },
        Output::TransferResult {
            leg: alice_leg,
            status: 487,
        },
        Output::HangUpAgent { leg: alice_leg },
        Output::CallDone { call: CallId(1) },
    ] {
        assert!(out.contains(&o), "{o:?} missing from {out:?}");
    }
    assert_eq!(t.outcomes.len(), 1);
    // The outside leg's 200 crossing the CANCEL gets a BYE.
    let out = t.run(Input::OutsideAnswered { leg: outside });
    assert_eq!(out, [Output::HangUpAgent { leg: outside }]);
    assert_eq!(
        t.e.poll_timeout(),
        t.e.router().poll_timeout(),
        "no outside timer left"
    );
}

#[test]
fn a_second_transfer_while_one_is_in_progress_fails() {
    let (mut t, alice_leg) = transfer_setup();
    transfer_out(&mut t, alice_leg);
    let out = t.run(Input::AgentTransferOut {
        leg: alice_leg,
        number: "0699".into(),
    });
    assert_eq!(
        out,
        [Output::TransferResult {
            leg: alice_leg,
            status: 503
        }]
    );
    let sales = t.e.router().queue_id("sales").expect("queue");
    let out = t.run(Input::AgentTransfer {
        leg: alice_leg,
        queue: sales,
    });
    assert_eq!(
        out,
        [Output::TransferResult {
            leg: alice_leg,
            status: 503
        }]
    );
}

/// A queue whose callers overflow to an outside number after 60 s of waiting.
fn overflow_engine() -> T {
    let q = QueueConfig {
        max_wait: Some(Duration::from_secs(60)),
        overflow: Some(OverflowConfig::External("0800123456".into())),
        ..QueueConfig::new("support")
    };
    T::alone(q)
}

#[test]
fn an_answered_call_overflows_to_an_outside_number_and_is_bridged_there() {
    let mut t = overflow_engine();
    t.inbound(1, AnswerMode::OnEnqueue);
    let out = t.advance(Duration::from_secs(60));
    let Some(Output::CallOutside { leg, number, .. }) =
        out.iter().find(|o| matches!(o, Output::CallOutside { .. }))
    else {
        panic!("{out:?}")
    };
    assert_eq!(&**number, "0800123456");
    let leg = *leg;
    assert_eq!(t.outcomes.len(), 1);
    assert!(matches!(t.outcomes[0].outcome, Outcome::Overflowed { .. }));
    assert!(!out.iter().any(|o| matches!(o, Output::HangUpPbx { .. })));
    let out = t.run(Input::OutsideAnswered { leg });
    assert_eq!(
        out,
        [Output::Bridge {
            call: CallId(1),
            leg
        }]
    );
    let out = t.run(Input::PbxGone { call: CallId(1) });
    assert_eq!(
        out,
        [
            Output::HangUpAgent { leg },
            Output::CallDone { call: CallId(1) }
        ]
    );
    assert_eq!(t.outcomes.len(), 1);
}

#[test]
fn an_overflow_target_that_fails_ends_the_call() {
    let mut t = overflow_engine();
    t.inbound(1, AnswerMode::OnEnqueue);
    let out = t.advance(Duration::from_secs(60));
    let Some(&Output::CallOutside { leg, .. }) =
        out.iter().find(|o| matches!(o, Output::CallOutside { .. }))
    else {
        panic!("{out:?}")
    };
    let out = t.run(Input::OutsideFailed { leg, status: 503 });
    assert_eq!(
        out,
        [
            Output::HangUpPbx { call: CallId(1) },
            Output::CallDone { call: CallId(1) }
        ]
    );
    assert_eq!(t.outcomes.len(), 1, "the overflow was the visit's outcome");
}

/// An operator dials out on their own while a queue call rings at their phone: the offer is
/// withdrawn and its leg cancelled (a crossing `200` is hung up), the call is offered to the
/// next operator, and the own call leaves no record; when it ends the operator is Available.
#[test]
fn dialling_out_while_ringing_cancels_the_leg_and_offers_the_call_on() {
    let mut t = T::new(Strategy::LongestIdle, &["alice", "bob"]);
    t.online("alice");
    t.now = t.now + Duration::from_secs(1);
    t.online("bob");
    let out = t.inbound(1, AnswerMode::OnEnqueue);
    let (alice, bob) = (t.agent("alice"), t.agent("bob"));
    let [(alice_leg, a)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(a, alice);
    t.run(Input::AgentRinging { leg: alice_leg });

    let own = CallId(100);
    let out = t.run(Input::OutboundStarted {
        agent: alice,
        call: own,
    });
    assert!(
        out.contains(&Output::CancelAgent { leg: alice_leg }),
        "{out:?}"
    );
    let [(bob_leg, b)] = invites(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(b, bob);
    assert!(out.contains(&Output::AgentState {
        agent: alice,
        state: AgentState::OutboundCall { call: own }
    }));
    let out = t.run(Input::AgentAnswered { leg: alice_leg });
    assert_eq!(
        out,
        [Output::HangUpAgent { leg: alice_leg }],
        "CANCEL crossed the 200"
    );
    let out = t.run(Input::AgentAnswered { leg: bob_leg });
    assert!(out.contains(&Output::Bridge {
        call: CallId(1),
        leg: bob_leg
    }));

    let out = t.run(Input::OutboundEnded { call: own });
    assert_eq!(
        out,
        [Output::AgentState {
            agent: alice,
            state: AgentState::Available
        }],
        "no wrap-up, no miss, no record of an own call"
    );
    assert!(t.outcomes.is_empty() && t.done.is_empty());
}

/// An own call with the id of one of the engine's calls is ignored (the ids would clash).
#[test]
fn an_own_call_with_the_id_of_a_call_in_hand_is_ignored() {
    let mut t = T::new(Strategy::LongestIdle, &["alice", "bob"]);
    t.online("alice");
    t.inbound(1, AnswerMode::OnEnqueue);
    let bob = t.agent("bob");
    t.online("bob");
    let out = t.run(Input::OutboundStarted {
        agent: bob,
        call: CallId(1),
    });
    assert_eq!(out, []);
    assert_eq!(state(&t, "bob"), AgentState::Available);
}
