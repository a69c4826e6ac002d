//! Regressions for core bugs found while writing these tests (fixed in dcc3497). Each is a
//! minimal scenario; the doc comments describe the behaviour before the fix.

use homeline_routing::{
    AgentConfig, AgentId, AgentState, CallId, Command, Event, MembershipConfig, NotReadyReason,
    OverflowConfig, QueueConfig, RelaxStep, Router, RouterConfig, SkillRequirementConfig,
    SplitMix64, Time, WhenEmpty,
};
use std::sync::Arc;
use std::time::Duration;

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
