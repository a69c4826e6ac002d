//! Operators' own calls (`OutboundStarted` / `OutboundEnded`) through the public API on
//! virtual time: the state they put the operator in, what the operator comes back to, and
//! the edge cases (dialling while a call rings there, logout, connection loss, removal).

use homeline_routing::*;
use std::sync::Arc;
use std::time::Duration;

/// Calls dialled out get ids from here, far from the queue calls' ids.
const OWN: u64 = 1_000;

fn member(name: &str) -> AgentConfig {
    AgentConfig {
        name: name.into(),
        queues: vec![MembershipConfig {
            queue: "q".into(),
            penalty: 0,
        }],
        skills: Vec::new(),
    }
}

/// Queue `q` (longest-idle, ring 10 s, wrap-up 30 s, a miss makes Not Ready) with `agents`.
fn config(agents: &[&str]) -> RouterConfig {
    let q = QueueConfig {
        strategy: Strategy::LongestIdle,
        ring_timeout: Duration::from_secs(10),
        wrap_up: Duration::from_secs(30),
        max_misses: 1,
        ..QueueConfig::new("q")
    };
    RouterConfig {
        queues: vec![q],
        agents: agents.iter().map(|a| member(a)).collect(),
    }
}

struct H {
    r: Router<SplitMix64>,
    now: Time,
    next_call: u64,
}

impl H {
    /// A router for `agents`, each logged in Ready at its own second (the first longest idle).
    fn new(agents: &[&str]) -> H {
        let r = Router::new(&config(agents), SplitMix64::new(7)).expect("valid config");
        let mut h = H {
            r,
            now: Time::ZERO,
            next_call: 1,
        };
        for name in agents {
            h.advance(1);
            let agent = h.a(name);
            h.ev(Event::Login { agent, ready: true });
        }
        h
    }

    fn a(&self, name: &str) -> AgentId {
        self.r.agent_id(name).expect("agent")
    }

    fn ev(&mut self, e: Event) -> Vec<Command> {
        self.r.handle(self.now, e).expect("event applies");
        self.collect()
    }

    /// `e` must fail with `err` and change nothing.
    #[track_caller]
    fn refused(&mut self, e: Event, err: EventError) {
        let before: Vec<_> = self
            .r
            .agent_ids()
            .map(|a| self.r.agent_state(a).map(|s| s.0.clone()))
            .collect();
        assert_eq!(self.r.handle(self.now, e), Err(err));
        assert_eq!(self.collect(), Vec::new());
        let after: Vec<_> = self
            .r
            .agent_ids()
            .map(|a| self.r.agent_state(a).map(|s| s.0.clone()))
            .collect();
        assert_eq!(before, after);
    }

    fn collect(&mut self) -> Vec<Command> {
        let cmds: Vec<Command> = self.r.drain_commands().collect();
        self.r.check_invariants(self.now).expect("invariants");
        cmds
    }

    fn advance(&mut self, secs: u64) -> Vec<Command> {
        self.now = self.now + Duration::from_secs(secs);
        self.r.handle_timeout(self.now);
        self.collect()
    }

    fn arrive(&mut self) -> (CallId, Vec<Command>) {
        let call = CallId(self.next_call);
        self.next_call += 1;
        let queue = self.r.queue_id("q").expect("queue");
        let cmds = self.ev(Event::CallArrived {
            call,
            queue,
            priority: 0,
            skills: None,
        });
        (call, cmds)
    }

    fn dial(&mut self, name: &str, own: u64) -> Vec<Command> {
        let agent = self.a(name);
        self.ev(Event::OutboundStarted {
            agent,
            call: CallId(OWN + own),
        })
    }

    fn hang_up(&mut self, own: u64) -> Vec<Command> {
        self.ev(Event::OutboundEnded {
            call: CallId(OWN + own),
        })
    }

    fn state(&self, name: &str) -> AgentState {
        self.r.agent_state(self.a(name)).expect("agent").0.clone()
    }

    fn stats(&self) -> QueueStats {
        let q = self.r.queue_id("q").expect("queue");
        self.r.queue_stats(q, self.now).expect("stats")
    }
}

fn offers(cmds: &[Command]) -> Vec<(CallId, AgentId)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Offer { call, agent, .. } => Some((*call, *agent)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_available_operator_is_on_their_own_call_then_available_with_no_wrap_up() {
    let mut h = H::new(&["ann", "ben"]);
    let cmds = h.dial("ann", 1);
    let ann = h.a("ann");
    let own = CallId(OWN + 1);
    assert_eq!(
        cmds,
        vec![Command::AgentStateChanged {
            agent: ann,
            from: AgentState::Available,
            to: AgentState::OutboundCall { call: own },
            cause: Cause::Request,
            at: h.now,
        }]
    );
    assert_eq!(h.stats().agents_in(StateKind::OnCall), 1);
    assert_eq!(h.stats().agents_in(StateKind::Available), 1);
    assert_eq!(
        h.r.calls_in_progress(),
        0,
        "an own call is not a queue call"
    );

    // Ann is longest idle but busy: the queue call goes to Ben, then the next one waits.
    let (c1, cmds) = h.arrive();
    assert_eq!(offers(&cmds), vec![(c1, h.a("ben"))]);
    let ben = h.a("ben");
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: ben,
    });
    let (c2, cmds) = h.arrive();
    assert_eq!(offers(&cmds), vec![]);

    h.advance(60);
    let cmds = h.hang_up(1);
    assert!(
        cmds.contains(&Command::AgentStateChanged {
            agent: ann,
            from: AgentState::OutboundCall { call: own },
            to: AgentState::Available,
            cause: Cause::CallEnded,
            at: h.now,
        }),
        "{cmds:?}"
    );
    assert_eq!(
        offers(&cmds),
        vec![(c2, ann)],
        "the waiting call is hers now"
    );
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Outcome(_))),
        "no outcome for an own call: {cmds:?}"
    );
    assert_eq!(h.stats().offered, 2, "own calls are not offered calls");
}

#[test]
fn not_ready_stays_not_ready_and_ready_meanwhile_applies_after() {
    let mut h = H::new(&["ann"]);
    let ann = h.a("ann");
    let lunch = NotReadyReason::User(Arc::from("lunch"));
    h.ev(Event::NotReady {
        agent: ann,
        reason: lunch.clone(),
    });
    h.dial("ann", 1);
    h.hang_up(1);
    assert_eq!(h.state("ann"), AgentState::NotReady { reason: lunch });

    h.dial("ann", 2);
    h.ev(Event::Ready { agent: ann });
    assert_eq!(
        h.state("ann"),
        AgentState::OutboundCall {
            call: CallId(OWN + 2)
        },
        "Ready during the call applies after it"
    );
    h.hang_up(2);
    assert_eq!(h.state("ann"), AgentState::Available);
}

#[test]
fn wrap_up_interrupted_by_an_own_call_resumes_until_its_end_or_not_at_all() {
    let mut h = H::new(&["ann"]);
    let ann = h.a("ann");
    let (call, _) = h.arrive();
    h.ev(Event::OfferAccepted { call, agent: ann });
    h.advance(5);
    h.ev(Event::CallEnded { call });
    let until = h.now + Duration::from_secs(30);
    assert_eq!(h.state("ann"), AgentState::WrapUp { until });

    // Back within the wrap-up: the rest of it, ending at the same time.
    h.advance(10);
    h.dial("ann", 1);
    h.advance(10);
    h.hang_up(1);
    assert_eq!(h.state("ann"), AgentState::WrapUp { until });
    h.advance(9);
    assert_eq!(h.state("ann"), AgentState::WrapUp { until });
    let cmds = h.advance(1);
    assert_eq!(h.state("ann"), AgentState::Available, "{cmds:?}");

    // A wrap-up over before the own call ends: Available at once.
    let (call, _) = h.arrive();
    h.ev(Event::OfferAccepted { call, agent: ann });
    h.ev(Event::CallEnded { call });
    h.dial("ann", 2);
    h.advance(45);
    h.hang_up(2);
    assert_eq!(h.state("ann"), AgentState::Available);

    // Wrap-up done during the own call: Available after it.
    let (call, _) = h.arrive();
    h.ev(Event::OfferAccepted { call, agent: ann });
    h.ev(Event::CallEnded { call });
    h.dial("ann", 3);
    h.ev(Event::WrapUpDone { agent: ann });
    h.hang_up(3);
    assert_eq!(h.state("ann"), AgentState::Available);
}

#[test]
fn dialling_while_a_call_rings_there_withdraws_it_without_a_miss_and_offers_it_on() {
    let mut h = H::new(&["ann", "ben"]);
    let (ann, ben) = (h.a("ann"), h.a("ben"));
    h.dial("ben", 1);
    let (call, cmds) = h.arrive();
    assert_eq!(offers(&cmds), vec![(call, ann)]);
    h.ev(Event::OutboundEnded {
        call: CallId(OWN + 1),
    });
    // Ann dials out while the call rings at her phone (max_misses = 1: a miss would make her
    // Not Ready "no answer").
    let cmds = h.dial("ann", 2);
    let withdraw = Command::Withdraw {
        call,
        agent: ann,
        reason: WithdrawReason::AgentUnavailable,
    };
    assert_eq!(cmds.first(), Some(&withdraw), "{cmds:?}");
    assert_eq!(offers(&cmds), vec![(call, ben)], "offered on at once");
    assert_eq!(
        h.state("ann"),
        AgentState::OutboundCall {
            call: CallId(OWN + 2)
        }
    );
    h.hang_up(2);
    assert_eq!(h.state("ann"), AgentState::Available, "not a miss");
    assert_eq!(h.stats().offered, 1, "the same visit goes on");

    // Alone in the queue: the call goes back to the head of the queue and waits.
    let mut h = H::new(&["ann"]);
    let (call, _) = h.arrive();
    let cmds = h.dial("ann", 1);
    assert_eq!(offers(&cmds), vec![]);
    assert_eq!((h.stats().waiting, h.stats().ringing), (1, 0));
    let cmds = h.hang_up(1);
    assert_eq!(offers(&cmds), vec![(call, h.a("ann"))]);
}

#[test]
fn logout_and_connection_loss_during_an_own_call_apply_after_it() {
    let mut h = H::new(&["ann"]);
    let ann = h.a("ann");
    h.dial("ann", 1);
    h.ev(Event::Logout { agent: ann });
    h.ev(Event::Ready { agent: ann });
    assert!(matches!(h.state("ann"), AgentState::OutboundCall { .. }));
    h.hang_up(1);
    assert_eq!(
        h.state("ann"),
        AgentState::LoggedOut,
        "a pending logout wins"
    );

    h.ev(Event::Login {
        agent: ann,
        ready: true,
    });
    h.dial("ann", 2);
    h.ev(Event::ConnectionLost { agent: ann });
    assert!(matches!(h.state("ann"), AgentState::OutboundCall { .. }));
    h.hang_up(2);
    assert_eq!(
        h.state("ann"),
        AgentState::NotReady {
            reason: NotReadyReason::ConnectionLost
        }
    );
}

#[test]
fn an_operator_removed_during_an_own_call_leaves_after_it() {
    let mut h = H::new(&["ann", "ben"]);
    let ann = h.a("ann");
    h.dial("ann", 1);
    h.ev(Event::Reconfigure(Arc::new(config(&["ben"]))));
    assert!(matches!(
        h.r.agent_state(ann).map(|s| s.0),
        Some(AgentState::OutboundCall { .. })
    ));
    assert_eq!(h.r.agent_id("ann"), None);
    assert_eq!(h.stats().agents_in(StateKind::OnCall), 1, "still counted");
    let cmds = h.hang_up(1);
    assert!(
        cmds.iter().any(|c| matches!(c,
            Command::AgentStateChanged { agent, to: AgentState::LoggedOut, cause: Cause::Reconfigured, .. }
                if *agent == ann)),
        "{cmds:?}"
    );
    assert_eq!(h.stats().agents_in(StateKind::OnCall), 0);
    assert_eq!(h.stats().agents_in(StateKind::LoggedOut), 0, "forgotten");
}

#[test]
fn impossible_own_calls_are_refused_and_change_nothing() {
    let mut h = H::new(&["ann", "ben", "cat"]);
    let (ann, ben, cat) = (h.a("ann"), h.a("ben"), h.a("cat"));
    h.ev(Event::Logout { agent: cat });
    let own = |n| CallId(OWN + n);
    h.refused(
        Event::OutboundStarted {
            agent: cat,
            call: own(1),
        },
        EventError::InvalidState {
            agent: cat,
            state: StateKind::LoggedOut,
        },
    );
    let (call, _) = h.arrive();
    h.ev(Event::OfferAccepted { call, agent: ann });
    h.refused(
        Event::OutboundStarted {
            agent: ann,
            call: own(1),
        },
        EventError::InvalidState {
            agent: ann,
            state: StateKind::OnCall,
        },
    );
    h.refused(
        Event::OutboundStarted { agent: ben, call },
        EventError::DuplicateCall(call),
    );
    h.dial("ben", 1);
    h.refused(
        Event::OutboundStarted {
            agent: ben,
            call: own(2),
        },
        EventError::InvalidState {
            agent: ben,
            state: StateKind::OnCall,
        },
    );
    h.refused(
        Event::OutboundStarted {
            agent: ann,
            call: own(1),
        },
        EventError::DuplicateCall(own(1)),
    );
    let queue = h.r.queue_id("q").expect("queue");
    h.refused(
        Event::CallArrived {
            call: own(1),
            queue,
            priority: 0,
            skills: None,
        },
        EventError::DuplicateCall(own(1)),
    );
    h.refused(
        Event::OfferAccepted {
            call: own(1),
            agent: ben,
        },
        EventError::UnknownCall(own(1)),
    );
    h.refused(
        Event::CallEnded { call: own(1) },
        EventError::UnknownCall(own(1)),
    );
    h.refused(Event::OutboundEnded { call }, EventError::UnknownCall(call));
    h.refused(
        Event::OutboundStarted {
            agent: AgentId(99),
            call: own(3),
        },
        EventError::UnknownAgent(AgentId(99)),
    );
    h.hang_up(1);
    h.refused(
        Event::OutboundEnded { call: own(1) },
        EventError::UnknownCall(own(1)),
    );
    // An ended own call's id is free again.
    h.dial("ben", 1);
}

/// Own calls are not queue calls for the strategies either: `fewest-calls` and
/// `least-talk-time` do not count them, and `longest-idle` counts idle time from their end
/// (as after a break: the operator was busy, not idle).
#[test]
fn strategies_count_no_own_calls_and_idle_time_starts_after_them() {
    for strategy in [Strategy::FewestCalls, Strategy::LeastTalkTime] {
        let mut cfg = config(&["ann", "ben"]);
        cfg.queues[0].strategy = strategy;
        cfg.queues[0].wrap_up = Duration::ZERO;
        let mut r = Router::new(&cfg, SplitMix64::new(7)).expect("valid config");
        let (ann, ben) = (
            r.agent_id("ann").expect("ann"),
            r.agent_id("ben").expect("ben"),
        );
        let queue = r.queue_id("q").expect("queue");
        let at = Time::from_secs;
        r.handle(
            at(1),
            Event::Login {
                agent: ann,
                ready: true,
            },
        )
        .expect("login");
        r.handle(
            at(1),
            Event::Login {
                agent: ben,
                ready: true,
            },
        )
        .expect("login");
        // Ben takes a queue call; Ann makes a long call of her own.
        let call = CallId(1);
        let arrived = Event::CallArrived {
            call,
            queue,
            priority: 0,
            skills: None,
        };
        r.handle(at(2), arrived).expect("arrival");
        let offered = r.drain_commands().find_map(|c| match c {
            Command::Offer { agent, .. } => Some(agent),
            _ => None,
        });
        let (taker, other) = if offered == Some(ann) {
            (ann, ben)
        } else {
            (ben, ann)
        };
        r.handle(at(3), Event::OfferAccepted { call, agent: taker })
            .expect("accept");
        r.handle(at(4), Event::CallEnded { call }).expect("end");
        let own = CallId(OWN);
        r.handle(
            at(5),
            Event::OutboundStarted {
                agent: other,
                call: own,
            },
        )
        .expect("dial");
        r.handle(at(600), Event::OutboundEnded { call: own })
            .expect("own end");
        r.drain_commands().for_each(drop);
        let call = CallId(2);
        let arrived = Event::CallArrived {
            call,
            queue,
            priority: 0,
            skills: None,
        };
        r.handle(at(601), arrived).expect("arrival");
        let offered = r.drain_commands().find_map(|c| match c {
            Command::Offer { agent, .. } => Some(agent),
            _ => None,
        });
        assert_eq!(
            offered,
            Some(other),
            "{strategy:?}: no queue call, no talk time yet"
        );
        r.check_invariants(at(601)).expect("invariants");
    }

    let mut h = H::new(&["ann", "ben"]);
    h.dial("ann", 1);
    h.advance(60);
    h.hang_up(1);
    h.advance(1);
    let (call, cmds) = h.arrive();
    assert_eq!(
        offers(&cmds),
        vec![(call, h.a("ben"))],
        "Ann logged in first but was busy until a second ago"
    );
}
