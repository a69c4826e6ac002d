//! Unit-level behaviour of every strategy and policy, through the public API on virtual time.

use homeline_routing::*;
use std::sync::Arc;
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn agent(name: &str, queues: &[(&str, u8)], skills: &[(&str, u8)]) -> AgentConfig {
    AgentConfig {
        name: name.into(),
        queues: queues
            .iter()
            .map(|(q, p)| MembershipConfig {
                queue: (*q).into(),
                penalty: *p,
            })
            .collect(),
        skills: skills.iter().map(|(s, p)| ((*s).into(), *p)).collect(),
    }
}

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        strategy,
        wrap_up: Duration::ZERO,
        ..QueueConfig::new(name)
    }
}

/// A router on virtual time with a log of every command it emitted.
struct H {
    r: Router<SplitMix64>,
    now: Time,
    log: Vec<Command>,
    next_call: u64,
}

impl H {
    fn new(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> H {
        let cfg = RouterConfig { queues, agents };
        let r = Router::new(&cfg, SplitMix64::new(42)).expect("valid config");
        H {
            r,
            now: Time::ZERO,
            log: Vec::new(),
            next_call: 1,
        }
    }

    fn a(&self, name: &str) -> AgentId {
        self.r.agent_id(name).expect("agent")
    }

    fn q(&self, name: &str) -> QueueId {
        self.r.queue_id(name).expect("queue")
    }

    fn ev(&mut self, e: Event) -> Vec<Command> {
        self.r.handle(self.now, e).expect("event applies");
        self.collect()
    }

    fn collect(&mut self) -> Vec<Command> {
        let cmds: Vec<Command> = self.r.drain_commands().collect();
        self.r.check_invariants(self.now).expect("invariants");
        self.log.extend(cmds.iter().cloned());
        cmds
    }

    fn advance(&mut self, d: Duration) -> Vec<Command> {
        self.now = self.now + d;
        self.r.handle_timeout(self.now);
        self.collect()
    }

    fn ready(&mut self, name: &str) -> Vec<Command> {
        let agent = self.a(name);
        self.ev(Event::Ready { agent })
    }

    fn call(&mut self, q: &str) -> (CallId, Vec<Command>) {
        self.call_with(q, 0, None)
    }

    fn call_with(
        &mut self,
        q: &str,
        priority: u8,
        skills: Option<Vec<SkillReq>>,
    ) -> (CallId, Vec<Command>) {
        let call = CallId(self.next_call);
        self.next_call += 1;
        let queue = self.q(q);
        let cmds = self.ev(Event::CallArrived {
            call,
            queue,
            priority,
            skills,
        });
        (call, cmds)
    }

    fn state(&self, name: &str) -> AgentState {
        self.r.agent_state(self.a(name)).expect("agent").0.clone()
    }

    fn name(&self, a: AgentId) -> String {
        self.r.agent_name(a).expect("agent").to_string()
    }

    /// Answers `call` as `agent`, then ends it after `talk`.
    fn talk(&mut self, call: CallId, name: &str, talk: Duration) {
        let agent = self.a(name);
        self.ev(Event::OfferAccepted { call, agent });
        self.advance(talk);
        self.ev(Event::CallEnded { call });
    }
}

/// Agents offered a call in `cmds`, by name, in order.
fn offered(h: &H, cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Offer { agent, .. } => Some(h.name(*agent)),
            _ => None,
        })
        .collect()
}

fn outcomes(cmds: &[Command]) -> Vec<Outcome> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Outcome(o) => Some(o.outcome.clone()),
            _ => None,
        })
        .collect()
}

fn three(strategy: Strategy) -> H {
    H::new(
        vec![queue("q", strategy)],
        vec![
            agent("a", &[("q", 0)], &[]),
            agent("b", &[("q", 0)], &[]),
            agent("c", &[("q", 0)], &[]),
        ],
    )
}

#[test]
fn longest_idle_offers_the_operator_available_longest() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("b");
    h.advance(secs(1));
    h.ready("c");
    h.advance(secs(1));
    h.ready("a");
    let (c1, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["b"]);
    h.talk(c1, "b", secs(10));
    // b is Available again but most recently; c has now been idle longest.
    let (_, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["c"]);
}

#[test]
fn round_robin_rotates_in_configured_order() {
    let mut h = three(Strategy::RoundRobin);
    for n in ["c", "a", "b"] {
        h.ready(n);
    }
    let mut got = Vec::new();
    for _ in 0..6 {
        let (c, cmds) = h.call("q");
        let who = offered(&h, &cmds);
        assert_eq!(who.len(), 1);
        h.talk(c, &who[0], secs(1));
        got.push(who[0].clone());
    }
    assert_eq!(got, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn fewest_calls_prefers_the_operator_with_fewest_answered() {
    let mut h = three(Strategy::FewestCalls);
    h.ready("a");
    let (c, _) = h.call("q");
    h.talk(c, "a", secs(1));
    let (c, _) = h.call("q");
    h.talk(c, "a", secs(1));
    h.ready("b");
    let (c, _) = h.call("q");
    h.talk(c, "b", secs(1));
    h.ready("c");
    // a: 2 calls, b: 1, c: 0 — c first although it is the most recently idle.
    let (c1, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["c"]);
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("c"),
    });
    let (_, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["b"]);
}

#[test]
fn least_talk_time_prefers_the_operator_who_talked_least() {
    let mut h = three(Strategy::LeastTalkTime);
    h.ready("a");
    h.ready("b");
    let (c, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["a"]);
    h.talk(c, "a", secs(100));
    let (c, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["b"]);
    h.talk(c, "b", secs(10));
    // a talked 100 s, b 10 s: b although a has been idle longer.
    let (_, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["b"]);
}

#[test]
fn ring_all_rings_everyone_first_answer_wins_rest_withdrawn() {
    let mut h = three(Strategy::RingAll);
    for n in ["a", "b", "c"] {
        h.ready(n);
    }
    let (call, cmds) = h.call("q");
    let mut who = offered(&h, &cmds);
    who.sort();
    assert_eq!(who, ["a", "b", "c"]);
    let cmds = h.ev(Event::OfferAccepted {
        call,
        agent: h.a("b"),
    });
    assert!(cmds.contains(&Command::Connected {
        call,
        agent: h.a("b")
    }));
    let withdrawn: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Withdraw {
                agent,
                reason: WithdrawReason::AnsweredElsewhere,
                ..
            } => Some(h.name(*agent)),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn.len(), 2);
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(h.state("c"), AgentState::Available);
    // A second answer (the race) is refused: that operator leg must be hung up.
    let err = h.r.handle(
        h.now,
        Event::OfferAccepted {
            call,
            agent: h.a("a"),
        },
    );
    assert_eq!(
        err,
        Err(EventError::NotOffered {
            call,
            agent: h.a("a")
        })
    );
}

#[test]
fn linear_goes_by_penalty_then_configured_order() {
    let mut h = H::new(
        vec![queue("q", Strategy::Linear)],
        vec![
            agent("a", &[("q", 1)], &[]),
            agent("b", &[("q", 0)], &[]),
            agent("c", &[("q", 0)], &[]),
        ],
    );
    for n in ["c", "a", "b"] {
        h.ready(n);
    }
    let (c1, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["b"]);
    h.talk(c1, "b", secs(1));
    // b is back: linear ignores idle time.
    let (c2, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["b"]);
    h.ev(Event::OfferAccepted {
        call: c2,
        agent: h.a("b"),
    });
    let (c3, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["c"]);
    h.ev(Event::OfferAccepted {
        call: c3,
        agent: h.a("c"),
    });
    let (_, cmds) = h.call("q");
    assert_eq!(
        offered(&h, &cmds),
        ["a"],
        "penalty 1 only when tier 0 is busy"
    );
}

#[test]
fn random_spreads_over_everyone_and_replays_with_the_seed() {
    let run = || {
        let mut h = three(Strategy::Random);
        for n in ["a", "b", "c"] {
            h.ready(n);
        }
        let mut counts = std::collections::BTreeMap::new();
        let mut seq = Vec::new();
        for _ in 0..600 {
            let (c, cmds) = h.call("q");
            let who = offered(&h, &cmds);
            h.talk(c, &who[0], secs(1));
            *counts.entry(who[0].clone()).or_insert(0) += 1;
            seq.push(who[0].clone());
        }
        (counts, seq)
    };
    let (counts, seq) = run();
    assert_eq!(counts.len(), 3);
    assert!(counts.values().all(|&n| n > 140), "{counts:?}");
    assert_eq!(run().1, seq, "same seed, same picks");
}

fn skill(h: &H, s: &str, min: u8) -> SkillReq {
    SkillReq {
        skill: h.r.skill_id(s).expect("skill"),
        min,
    }
}

#[test]
fn skills_picks_best_proficiency_then_longest_idle() {
    let mut h = H::new(
        vec![queue("q", Strategy::Skills)],
        vec![
            agent("a", &[("q", 0)], &[("es", 3)]),
            agent("b", &[("q", 0)], &[("es", 5), ("en", 1)]),
            agent("c", &[("q", 0)], &[("es", 5)]),
            agent("d", &[("q", 0)], &[("en", 5)]),
        ],
    );
    for n in ["a", "d", "c", "b"] {
        h.ready(n);
        h.advance(secs(1));
    }
    let es = skill(&h, "es", 2);
    let (c1, cmds) = h.call_with("q", 0, Some(vec![es]));
    assert_eq!(
        offered(&h, &cmds),
        ["c"],
        "proficiency 5, idle longer than b"
    );
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("c"),
    });
    let (_, cmds) = h.call_with("q", 0, Some(vec![es]));
    assert_eq!(offered(&h, &cmds), ["b"]);
    let (_, cmds) = h.call_with("q", 0, Some(vec![skill(&h, "es", 4)]));
    assert!(
        offered(&h, &cmds).is_empty(),
        "a has only 3: the call waits"
    );
}

#[test]
fn required_skills_relax_with_waiting_time() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.required_skills = vec![SkillRequirementConfig {
        skill: "fr".into(),
        min: 4,
    }];
    q.relax = vec![
        RelaxStep {
            after: secs(30),
            min_proficiency: 2,
        },
        RelaxStep {
            after: secs(90),
            min_proficiency: 0,
        },
    ];
    let mut h = H::new(
        vec![q],
        vec![
            agent("weak", &[("q", 0)], &[("fr", 2)]),
            agent("none", &[("q", 0)], &[]),
        ],
    );
    h.ready("none");
    let (c1, cmds) = h.call("q");
    assert!(offered(&h, &cmds).is_empty());
    h.ready("weak");
    assert_eq!(
        h.state("weak"),
        AgentState::Available,
        "fr 2 < 4 before relaxation"
    );
    let cmds = h.advance(secs(29));
    assert!(offered(&h, &cmds).is_empty());
    let cmds = h.advance(secs(1));
    assert_eq!(
        offered(&h, &cmds),
        ["weak"],
        "after 30 s, proficiency 2 will do"
    );
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("weak"),
    });
    let (_, cmds) = h.call("q");
    assert!(offered(&h, &cmds).is_empty());
    let cmds = h.advance(secs(90));
    assert_eq!(offered(&h, &cmds), ["none"], "after 90 s, any member");
}

#[test]
fn higher_penalty_tier_only_when_lower_tier_has_nobody_available() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        vec![
            agent("backup", &[("q", 2)], &[]),
            agent("main", &[("q", 0)], &[("x", 5)]),
        ],
    );
    h.ready("backup");
    h.advance(secs(60));
    h.ready("main");
    let (c1, cmds) = h.call("q");
    assert_eq!(
        offered(&h, &cmds),
        ["main"],
        "tier 0 although backup idles longer"
    );
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("main"),
    });
    let (_, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["backup"]);
}

#[test]
fn priority_first_then_fifo() {
    let mut h = three(Strategy::LongestIdle);
    let (low1, _) = h.call_with("q", 0, None);
    h.advance(secs(1));
    let (low2, _) = h.call_with("q", 0, None);
    h.advance(secs(1));
    let (vip, _) = h.call_with("q", 5, None);
    let mut order = Vec::new();
    for n in ["a", "b", "c"] {
        let cmds = h.ready(n);
        for c in cmds {
            if let Command::Offer { call, .. } = c {
                order.push(call);
            }
        }
    }
    assert_eq!(order, [vip, low1, low2]);
}

#[test]
fn ring_no_answer_requeues_at_head_and_makes_the_operator_not_ready() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("a");
    let (c1, _) = h.call("q");
    let (c2, _) = h.call("q");
    assert_eq!(h.r.poll_timeout(), Some(Time::ZERO + secs(15)));
    let cmds = h.advance(secs(15));
    assert!(cmds.contains(&Command::Withdraw {
        call: c1,
        agent: h.a("a"),
        reason: WithdrawReason::RingTimeout
    }));
    assert_eq!(
        h.state("a"),
        AgentState::NotReady {
            reason: NotReadyReason::NoAnswer
        }
    );
    // c1 went back to the head: the next operator gets it before c2.
    let cmds = h.ready("b");
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Offer { call, .. } if *call == c1))
    );
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::Offer { call, .. } if *call == c2))
    );
}

#[test]
fn ring_no_answer_threshold_counts_consecutive_misses() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_misses = 2;
    let mut h = H::new(
        vec![q],
        vec![agent("a", &[("q", 0)], &[]), agent("b", &[("q", 0)], &[])],
    );
    h.ready("a");
    let (c1, _) = h.call("q");
    h.advance(secs(15));
    assert_eq!(
        h.state("a"),
        AgentState::Offered {
            call: c1,
            deadline: Time::ZERO + secs(30)
        },
        "one miss: still in, re-offered"
    );
    h.advance(secs(15));
    assert_eq!(
        h.state("a"),
        AgentState::NotReady {
            reason: NotReadyReason::NoAnswer
        }
    );
    // Another operator gets it at once.
    let cmds = h.ready("b");
    assert_eq!(offered(&h, &cmds), ["b"]);
}

#[test]
fn decline_is_a_miss_and_the_call_goes_to_someone_else() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("a");
    h.ready("b");
    let (c1, cmds) = h.call("q");
    assert_eq!(offered(&h, &cmds), ["a"]);
    let cmds = h.ev(Event::OfferDeclined {
        call: c1,
        agent: h.a("a"),
    });
    assert_eq!(offered(&h, &cmds), ["b"]);
    assert_eq!(
        h.state("a"),
        AgentState::NotReady {
            reason: NotReadyReason::NoAnswer
        }
    );
}

#[test]
fn caller_hang_up_while_waiting_or_ringing_is_abandoned() {
    let mut h = three(Strategy::LongestIdle);
    let (c1, _) = h.call("q");
    h.advance(secs(7));
    let cmds = h.ev(Event::CallerHungUp { call: c1 });
    assert_eq!(outcomes(&cmds), [Outcome::Abandoned]);
    h.ready("a");
    let (c2, _) = h.call("q");
    let cmds = h.ev(Event::CallerHungUp { call: c2 });
    assert!(cmds.contains(&Command::Withdraw {
        call: c2,
        agent: h.a("a"),
        reason: WithdrawReason::CallerHungUp
    }));
    assert_eq!(outcomes(&cmds), [Outcome::Abandoned]);
    assert_eq!(h.state("a"), AgentState::Available);
    let s = h.r.queue_stats(h.q("q"), h.now).expect("stats");
    assert_eq!((s.offered, s.abandoned, s.answered), (2, 2, 0));
}

#[test]
fn wrap_up_holds_new_offers_until_it_ends() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.wrap_up = secs(30);
    let mut h = H::new(vec![q], vec![agent("a", &[("q", 0)], &[])]);
    h.ready("a");
    let (c1, _) = h.call("q");
    h.talk(c1, "a", secs(60));
    assert!(matches!(h.state("a"), AgentState::WrapUp { .. }));
    let (c2, cmds) = h.call("q");
    assert!(offered(&h, &cmds).is_empty());
    let cmds = h.advance(secs(29));
    assert!(offered(&h, &cmds).is_empty());
    let cmds = h.advance(secs(1));
    assert_eq!(offered(&h, &cmds), ["a"]);
    h.talk(c2, "a", secs(5));
    // Wrap-up can end early.
    let (_, _) = h.call("q");
    let cmds = h.ev(Event::WrapUpDone { agent: h.a("a") });
    assert_eq!(offered(&h, &cmds), ["a"]);
}

#[test]
fn max_wait_overflows_to_queue_external_or_none() {
    let mut first = queue("first", Strategy::LongestIdle);
    first.max_wait = Some(secs(60));
    first.overflow = Some(OverflowConfig::Queue("second".into()));
    let mut second = queue("second", Strategy::LongestIdle);
    second.max_wait = Some(secs(60));
    second.overflow = Some(OverflowConfig::External("sip:9000@pbx".into()));
    let mut third = queue("third", Strategy::LongestIdle);
    third.max_wait = Some(secs(10));
    let mut h = H::new(
        vec![first, second, third],
        vec![agent("b", &[("second", 0)], &[])],
    );
    let (c1, _) = h.call("first");
    let cmds = h.advance(secs(60));
    let second_id = h.q("second");
    assert!(cmds.contains(&Command::Overflow {
        call: c1,
        target: OverflowTarget::Queue(second_id)
    }));
    let cmds = h.advance(secs(60));
    assert!(cmds.contains(&Command::Overflow {
        call: c1,
        target: OverflowTarget::External(Arc::from("sip:9000@pbx"))
    }));
    assert_eq!(h.r.calls_in_progress(), 0);
    let (c3, _) = h.call("third");
    let cmds = h.advance(secs(10));
    assert!(cmds.contains(&Command::Overflow {
        call: c3,
        target: OverflowTarget::None
    }));
    let visits: Vec<_> = h
        .log
        .iter()
        .filter_map(|c| match c {
            Command::Outcome(o) if o.call == c1 => Some(o.queue),
            _ => None,
        })
        .collect();
    assert_eq!(
        visits,
        [h.q("first"), second_id],
        "one outcome per queue visit"
    );
}

#[test]
fn a_ringing_call_past_max_wait_overflows_when_the_offer_fails() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_wait = Some(secs(10));
    let mut h = H::new(vec![q], vec![agent("a", &[("q", 0)], &[])]);
    h.ready("a");
    let (c1, _) = h.call("q");
    let cmds = h.advance(secs(10));
    assert!(
        cmds.iter().all(|c| !matches!(c, Command::Overflow { .. })),
        "a ringing offer is not interrupted"
    );
    let cmds = h.advance(secs(5));
    assert!(cmds.contains(&Command::Overflow {
        call: c1,
        target: OverflowTarget::None
    }));
}

#[test]
fn when_empty_reject_refuses_calls_and_clears_the_queue_on_last_logout() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.when_empty = WhenEmpty::Reject;
    let mut h = H::new(vec![q], vec![agent("a", &[("q", 0)], &[])]);
    let (c1, cmds) = h.call("q");
    assert!(cmds.contains(&Command::Reject {
        call: c1,
        reason: RejectReason::NoAgents
    }));
    h.ev(Event::Login {
        agent: h.a("a"),
        ready: false,
    });
    let (c2, cmds) = h.call("q");
    assert!(cmds.is_empty(), "logged in but Not Ready: the call waits");
    let cmds = h.ev(Event::Logout { agent: h.a("a") });
    assert!(cmds.contains(&Command::Reject {
        call: c2,
        reason: RejectReason::NoAgents
    }));
    let s = h.r.queue_stats(h.q("q"), h.now).expect("stats");
    assert_eq!((s.offered, s.rejected), (2, 2));
}

#[test]
fn transfer_of_a_connected_call_requeues_it_in_another_queue() {
    let mut h = H::new(
        vec![
            queue("a", Strategy::LongestIdle),
            queue("b", Strategy::LongestIdle),
        ],
        vec![agent("x", &[("a", 0)], &[]), agent("y", &[("b", 0)], &[])],
    );
    h.ready("x");
    let (c, _) = h.call("a");
    h.ev(Event::OfferAccepted {
        call: c,
        agent: h.a("x"),
    });
    h.advance(secs(20));
    h.ready("y");
    let cmds = h.ev(Event::Transfer {
        call: c,
        queue: h.q("b"),
        priority: None,
    });
    assert_eq!(outcomes(&cmds), [Outcome::Answered { agent: h.a("x") }]);
    assert_eq!(offered(&h, &cmds), ["y"]);
    assert_eq!(h.state("x"), AgentState::Available, "no wrap-up configured");
    h.talk(c, "y", secs(5));
    let ends: Vec<_> = h
        .log
        .iter()
        .filter_map(|cmd| match cmd {
            Command::Outcome(o) => Some((o.queue, o.talk)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [(h.q("a"), secs(20)), (h.q("b"), secs(5))]);
}

#[test]
fn connection_loss_while_ringing_reoffers_and_during_a_call_waits_for_its_end() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("a");
    h.ready("b");
    let (c1, _) = h.call("q");
    let cmds = h.ev(Event::ConnectionLost { agent: h.a("a") });
    assert_eq!(offered(&h, &cmds), ["b"]);
    assert_eq!(
        h.state("a"),
        AgentState::NotReady {
            reason: NotReadyReason::ConnectionLost
        }
    );
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("b"),
    });
    h.ev(Event::ConnectionLost { agent: h.a("b") });
    assert_eq!(h.state("b"), AgentState::OnCall { call: c1 });
    h.ev(Event::CallEnded { call: c1 });
    assert_eq!(
        h.state("b"),
        AgentState::NotReady {
            reason: NotReadyReason::ConnectionLost
        }
    );
}

#[test]
fn a_device_back_after_a_lost_connection_logs_in_afresh_but_other_not_ready_stays() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("a");
    h.ev(Event::ConnectionLost { agent: h.a("a") });
    let (c1, cmds) = h.call("q");
    assert!(offered(&h, &cmds).is_empty(), "nobody to offer to");
    // The softphone registers again (ready on registration): Available, offered the call.
    let cmds = h.ev(Event::Login {
        agent: h.a("a"),
        ready: true,
    });
    assert_eq!(offered(&h, &cmds), ["a"]);
    h.ev(Event::CallerHungUp { call: c1 });
    assert_eq!(h.state("a"), AgentState::Available);
    // Back without ready on registration: Not Ready "logged in", as at a first login.
    h.ev(Event::ConnectionLost { agent: h.a("a") });
    h.ev(Event::Login {
        agent: h.a("a"),
        ready: false,
    });
    assert_eq!(
        h.state("a"),
        AgentState::NotReady {
            reason: NotReadyReason::LoggedIn
        }
    );
    // An operator on a break whose phone refreshes its registration stays on the break.
    let lunch = NotReadyReason::User(Arc::from("lunch"));
    h.ev(Event::NotReady {
        agent: h.a("a"),
        reason: lunch.clone(),
    });
    h.ev(Event::Login {
        agent: h.a("a"),
        ready: true,
    });
    assert_eq!(h.state("a"), AgentState::NotReady { reason: lunch });
}

#[test]
fn a_device_back_during_a_call_undoes_the_not_ready_the_loss_left_for_after_it() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("a");
    let (c1, _) = h.call("q");
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("a"),
    });
    h.ev(Event::ConnectionLost { agent: h.a("a") });
    h.ev(Event::Login {
        agent: h.a("a"),
        ready: true,
    });
    assert_eq!(h.state("a"), AgentState::OnCall { call: c1 });
    h.ev(Event::CallEnded { call: c1 });
    assert!(
        matches!(
            h.state("a"),
            AgentState::WrapUp { .. } | AgentState::Available
        ),
        "{:?}",
        h.state("a")
    );
    // Not ready on registration: the loss stands.
    let (c2, _) = h.call("q");
    h.ev(Event::WrapUpDone { agent: h.a("a") });
    h.ev(Event::OfferAccepted {
        call: c2,
        agent: h.a("a"),
    });
    h.ev(Event::ConnectionLost { agent: h.a("a") });
    h.ev(Event::Login {
        agent: h.a("a"),
        ready: false,
    });
    h.ev(Event::CallEnded { call: c2 });
    assert_eq!(
        h.state("a"),
        AgentState::NotReady {
            reason: NotReadyReason::ConnectionLost
        }
    );
}

#[test]
fn not_ready_and_logout_during_a_call_apply_after_it() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("a");
    h.ready("b");
    let (c1, _) = h.call("q");
    let (c2, _) = h.call("q");
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("a"),
    });
    h.ev(Event::OfferAccepted {
        call: c2,
        agent: h.a("b"),
    });
    let lunch = NotReadyReason::User(Arc::from("lunch"));
    h.ev(Event::NotReady {
        agent: h.a("a"),
        reason: lunch.clone(),
    });
    h.ev(Event::Logout { agent: h.a("b") });
    let err = h.r.handle(h.now, Event::Ready { agent: h.a("a") });
    assert!(matches!(
        err,
        Err(EventError::InvalidState {
            state: StateKind::OnCall,
            ..
        })
    ));
    h.ev(Event::CallEnded { call: c1 });
    h.ev(Event::CallerHungUp { call: c2 });
    assert_eq!(h.state("a"), AgentState::NotReady { reason: lunch });
    assert_eq!(h.state("b"), AgentState::LoggedOut);
}

#[test]
fn reconfigure_keeps_waiting_calls_and_applies_new_members() {
    let mut h = H::new(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("a", &[("q", 0)], &[])],
    );
    h.ready("a");
    let (c1, _) = h.call("q");
    h.ev(Event::OfferAccepted {
        call: c1,
        agent: h.a("a"),
    });
    let (c2, _) = h.call("q");
    let (c3, _) = h.call("q");
    let new = RouterConfig {
        queues: vec![
            queue("q", Strategy::RoundRobin),
            queue("new", Strategy::LongestIdle),
        ],
        agents: vec![agent("n", &[("q", 0), ("new", 0)], &[])],
    };
    let cmds = h.ev(Event::Reconfigure(Arc::new(new)));
    assert!(cmds.is_empty(), "a stays on its call; nothing else to do");
    let cmds = h.ready("n");
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Offer { call, .. } if *call == c2)),
        "waiting call kept"
    );
    assert!(h.r.agent_id("a").is_none());
    h.ev(Event::CallEnded { call: c1 });
    let a = AgentId(0);
    assert_eq!(
        h.r.agent_state(a).expect("kept").0,
        &AgentState::LoggedOut,
        "removed after its call"
    );
    assert_eq!(h.r.queue_stats(h.q("q"), h.now).expect("stats").waiting, 1);
    assert!(h.r.calls_in_progress() >= 2);
    let _ = c3;
}

#[test]
fn a_removed_queue_keeps_serving_its_waiting_calls() {
    let mut h = H::new(
        vec![
            queue("old", Strategy::LongestIdle),
            queue("keep", Strategy::LongestIdle),
        ],
        vec![agent("a", &[("old", 0), ("keep", 0)], &[])],
    );
    let (c1, _) = h.call("old");
    let new = RouterConfig {
        queues: vec![queue("keep", Strategy::LongestIdle)],
        agents: vec![agent("a", &[("keep", 0)], &[])],
    };
    h.ev(Event::Reconfigure(Arc::new(new)));
    assert!(h.r.queue_id("old").is_none(), "no new calls");
    let cmds = h.ready("a");
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Offer { call, .. } if *call == c1))
    );
}

#[test]
fn invalid_reconfigure_changes_nothing() {
    let mut h = three(Strategy::LongestIdle);
    let bad = RouterConfig {
        queues: vec![],
        agents: vec![agent("a", &[("nope", 0)], &[])],
    };
    let err = h.r.handle(h.now, Event::Reconfigure(Arc::new(bad)));
    assert!(matches!(err, Err(EventError::BadConfig(p)) if p[0].contains("unknown queue `nope`")));
    assert!(h.r.queue_id("q").is_some());
}

#[test]
fn bad_events_are_errors_and_change_nothing() {
    let mut h = three(Strategy::LongestIdle);
    h.ready("a");
    let (c1, _) = h.call("q");
    let b = h.a("b");
    let now = h.now;
    assert_eq!(
        h.r.handle(now, Event::Ready { agent: AgentId(99) }),
        Err(EventError::UnknownAgent(AgentId(99)))
    );
    assert_eq!(
        h.r.handle(now, Event::OfferAccepted { call: c1, agent: b }),
        Err(EventError::NotOffered { call: c1, agent: b })
    );
    assert_eq!(
        h.r.handle(now, Event::CallEnded { call: c1 }),
        Err(EventError::NotConnected(c1))
    );
    assert_eq!(
        h.r.handle(now, Event::CallEnded { call: CallId(999) }),
        Err(EventError::UnknownCall(CallId(999)))
    );
    let dup = Event::CallArrived {
        call: c1,
        queue: h.q("q"),
        priority: 0,
        skills: None,
    };
    assert_eq!(h.r.handle(now, dup), Err(EventError::DuplicateCall(c1)));
    let q = h.q("q");
    let bad_q = Event::CallArrived {
        call: CallId(50),
        queue: QueueId(9),
        priority: 0,
        skills: None,
    };
    assert_eq!(
        h.r.handle(now, bad_q),
        Err(EventError::UnknownQueue(QueueId(9)))
    );
    let bad_skill = Event::CallArrived {
        call: CallId(51),
        queue: q,
        priority: 0,
        skills: Some(vec![SkillReq {
            skill: SkillId(7),
            min: 1,
        }]),
    };
    assert_eq!(
        h.r.handle(now, bad_skill),
        Err(EventError::UnknownSkill(SkillId(7)))
    );
    assert!(h.r.poll_command().is_none(), "errors emit nothing");
    h.r.check_invariants(now).expect("unchanged");
}

#[test]
fn stats_count_states_outcomes_and_service_level() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.service_level = secs(20);
    let mut h = H::new(
        vec![q],
        vec![agent("a", &[("q", 0)], &[]), agent("b", &[("q", 0)], &[])],
    );
    h.ready("a");
    let (c1, _) = h.call("q");
    h.advance(secs(5));
    h.talk(c1, "a", secs(1)); // answered within 5 s
    let (c2, _) = h.call("q");
    h.ev(Event::Logout { agent: h.a("a") }); // a was ringing: offer withdrawn, c2 waits
    let (c3, _) = h.call("q");
    h.advance(secs(30));
    h.ev(Event::CallerHungUp { call: c3 });
    h.ready("b");
    h.talk(c2, "b", secs(1)); // answered after 30 s
    let s = h.r.queue_stats(h.q("q"), h.now).expect("stats");
    assert_eq!(
        (s.offered, s.answered, s.answered_within_sl, s.abandoned),
        (3, 2, 1, 1)
    );
    assert_eq!(s.service_level(), Some(1.0 / 3.0));
    assert_eq!(s.agents_in(StateKind::LoggedOut), 1);
    assert_eq!(s.agents_in(StateKind::Available), 1);
    let (_c4, _) = h.call("q");
    let (_c5, _) = h.call("q");
    h.advance(secs(12));
    let s = h.r.queue_stats(h.q("q"), h.now).expect("stats");
    assert_eq!((s.waiting, s.ringing, s.in_progress()), (1, 1, 2));
    assert_eq!(s.longest_wait, secs(12));
}
