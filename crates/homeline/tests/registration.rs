//! Operator registrations and routing, end to end: "operator registrations that vanish or
//! expire make the operator NotReady; an offer to an unreachable operator moves on at once".
//!
//! The real `homeline` binary with the queue `support` (8000, `strategy = "linear"`: alice
//! first, then bob) of `tests/calls/homeline.toml.in`; SIPp operators register from 127.0.0.2
//! with MD5 digest, SIPp plays the PBX from 127.0.0.1. Alice's registration goes away in three
//! ways, each of which must make her `not_ready` (homeline maps a lost registration to the
//! routing core's `ConnectionLost`: Not Ready, reason "connection lost") and send the next call
//! to bob while alice's SIPp, still running where it can, gets no INVITE:
//!
//! - it expires: `Expires: 2` (`min_expires = "2s"`, the harness's default), never refreshed;
//! - its TCP connection closes: SIPp over TCP, killed (the kernel closes the connection);
//! - it is removed: `Expires: 0`.
//!
//! An operator registered from two devices is rung on both; the one that answers takes the
//! call and the other is cancelled.
//!
//! And an operator whose phone answers the offer with `503` (homeline counts `408`/`503` as
//! "unreachable", not as a refusal) is passed over at once, not after the 15 s ring timeout.
//!
//! Log events read (message, then fields): `registered` (`user`, `transport`, `expires`),
//! `registration expired`, `unregistered`, `unregistered: connection closed` (`user`),
//! `operator state` (`agent`, `state`), `call outcome` (`outcome`). Each test stays under 20 s;
//! they run one at a time. Files: `tests/calls/sipp/operator_register*.xml`,
//! `operator_unregister.xml`, `operator_unavailable.xml`, `operator_answer.xml`,
//! `operator_ring_cancel.xml`, `pbx_talk.xml`. Peers from `bash tests/run-all.sh`.

// Each test file uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod sip_harness;

mod audio;

#[allow(dead_code)]
mod call_setup;
use call_setup::*;

use sip_harness::{Homeline, LogLine, RunningSipp};
use std::time::{Duration, Instant};

/// How long operators' SIPps stay registered unless the test takes them away.
const STAY: Duration = Duration::from_secs(15);
/// bob's agent id (the second `[[agent]]`): the outcome of a call he answers.
const BOB_ANSWERED: &str = "Answered { agent: AgentId(1) }";

fn start_linear(name: &str) -> Homeline {
    start(
        name,
        Queue {
            strategy: "linear",
            ..Queue::default()
        },
    )
}

/// The line at `index`.
fn line(h: &Homeline, index: usize) -> LogLine {
    h.logs.lines()[index].clone()
}

/// Whether `l` is the event `message` exactly, for `user` (`unregistered` must not match
/// `unregistered: connection closed`).
fn exactly(l: &LogLine, message: &str, user: &str) -> bool {
    l.message() == Some(message) && l.is(message, &[("user", user)])
}

/// Waits for the event `message` (exactly) for `user` from line `from` on; returns its index.
#[track_caller]
fn expect_exactly(h: &mut Homeline, from: usize, message: &str, user: &str) -> usize {
    match h.logs.wait_for(from, WAIT, |l| exactly(l, message, user)) {
        Some((i, _)) => i,
        None => panic!(
            "no log line \"{message}\" for {user} within {WAIT:?}; {}",
            h.report()
        ),
    }
}

/// Waits for alice's `operator state` `state` from line `from` on; returns its index.
#[track_caller]
fn alice_state(h: &mut Homeline, from: usize, state: &str) -> usize {
    h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", state)],
    )
}

/// Alice is out of routing: a call placed now goes to bob, and homeline does not even try
/// alice (no `offered` for her, no `operator unreachable` after line `from`).
#[track_caller]
fn expect_call_goes_to_bob(h: &mut Homeline, from: usize) {
    pbx(h, "pbx_talk.xml").arg("-d").arg("1500").run(h);
    let lines = expect_outcomes(h, 1, WAIT);
    assert_eq!(
        outcome(&lines[0]),
        BOB_ANSWERED,
        "the call should have gone to bob\n{}",
        h.report()
    );
    let tried_alice: Vec<String> = h.logs.lines()[from..]
        .iter()
        .filter(|l| {
            l.is(
                "operator state",
                &[("agent", "alice"), ("state", "offered")],
            ) || l.is("operator unreachable", &[("user", "alice")])
        })
        .map(|l| l.raw.clone())
        .collect();
    assert!(
        tried_alice.is_empty(),
        "homeline still offered alice the call: {tried_alice:#?}\n{}",
        h.report()
    );
}

/// Alice's SIPp, still running (so it would have seen one), got no INVITE.
#[track_caller]
fn expect_no_invite(h: &mut Homeline, alice: &mut RunningSipp) {
    assert!(
        alice.exited().is_none(),
        "alice's SIPp ended before the call: it could not have seen an INVITE\n{}",
        trace_report(alice, h)
    );
    assert_eq!(
        count_lines(&alice.messages(), "INVITE sip:"),
        0,
        "alice got an INVITE\n{}",
        trace_report(alice, h)
    );
}

/// a) A registration that expires without a refresh makes the operator Not Ready within the
/// registrar's one-second sweep, not before it expires; the next call goes to the other
/// operator.
#[test]
fn an_expired_registration_makes_the_operator_not_ready_and_calls_go_elsewhere() {
    let _serial = serial();
    let mut h = start_linear("registration_expired");
    let mut alice = operator_sipp(
        &h,
        "operator_register_expires.xml",
        "alice",
        "operator_answer.xml",
        STAY,
    )
    .arg("-key")
    .arg("expires")
    .arg("2")
    .start(1);
    let bob = operator(&h, "bob", "operator_answer.xml", STAY);
    expect_available(&mut h, 0, &["alice", "bob"]);
    let registered = h.expect_event(
        0,
        WAIT,
        "registered",
        &[("user", "alice"), ("expires", "2")],
    );
    let expired = expect_exactly(&mut h, registered, "registration expired", "alice");
    let not_ready = alice_state(&mut h, registered, "not_ready");
    let after = logged_at(&line(&h, not_ready)) - logged_at(&line(&h, registered));
    eprintln!("alice was made Not Ready {after:.3} s after registering for 2 s");
    assert!(
        (1.99..=3.5).contains(&after),
        "alice was made Not Ready {after:.3} s after registering for 2 s, expected 2-3.5 s\n{}",
        h.report()
    );
    expect_call_goes_to_bob(&mut h, expired.max(not_ready));
    expect_no_invite(&mut h, &mut alice);
    expect_no_sipp_errors(&bob, &mut h);
}

/// b) An operator registered over TCP whose connection closes (its SIPp killed: the kernel
/// closes the connection) is made Not Ready at once, long before the 60 s registration would
/// expire; the next call goes to the other operator.
#[test]
fn a_closed_tcp_connection_makes_its_operator_not_ready_and_calls_go_elsewhere() {
    let _serial = serial();
    let mut h = start_linear("registration_tcp_closed");
    let alice = operator_sipp(
        &h,
        "operator_register.xml",
        "alice",
        "operator_answer.xml",
        STAY,
    )
    .tcp()
    .start(1);
    let bob = operator(&h, "bob", "operator_answer.xml", STAY);
    expect_available(&mut h, 0, &["alice", "bob"]);
    h.expect_event(
        0,
        WAIT,
        "registered",
        &[("user", "alice"), ("transport", "TCP")],
    );
    let from = h.logs.len();
    let closed = Instant::now();
    drop(alice);
    expect_exactly(&mut h, from, "unregistered: connection closed", "alice");
    alice_state(&mut h, from, "not_ready");
    let after = closed.elapsed();
    eprintln!("alice was made Not Ready {after:?} after her connection closed");
    assert!(
        after < Duration::from_secs(2),
        "alice was made Not Ready {after:?} after her connection closed, expected at once\n{}",
        h.report()
    );
    // Her SIPp is gone and cannot show an INVITE: the log shows none was tried.
    expect_call_goes_to_bob(&mut h, from);
    expect_no_sipp_errors(&bob, &mut h);
}

/// c) An explicit un-REGISTER (`Expires: 0`) makes the operator Not Ready; the next call
/// goes to the other operator, and the unregistered SIPp, still listening, gets no INVITE.
#[test]
fn an_unregister_makes_the_operator_not_ready_and_calls_go_elsewhere() {
    let _serial = serial();
    let mut h = start_linear("registration_removed");
    let mut alice = operator_sipp(
        &h,
        "operator_unregister.xml",
        "alice",
        "operator_answer.xml",
        Duration::from_millis(1500),
    )
    .start(1);
    let bob = operator(&h, "bob", "operator_answer.xml", STAY);
    expect_available(&mut h, 0, &["alice", "bob"]);
    let available = alice_state(&mut h, 0, "available");
    // homeline logs the state change and the removal in either order.
    let removed = expect_exactly(&mut h, available, "unregistered", "alice");
    let not_ready = alice_state(&mut h, available, "not_ready");
    let expired = h
        .logs
        .lines()
        .iter()
        .any(|l| l.is("registration expired", &[]));
    assert!(
        !expired,
        "a registration expired: the test is void\n{}",
        h.report()
    );
    expect_call_goes_to_bob(&mut h, removed.max(not_ready));
    expect_no_invite(&mut h, &mut alice);
    // Her SIPp checked that the 200 to the un-REGISTER lists no binding of hers.
    alice.wait(&mut h);
    expect_no_sipp_errors(&bob, &mut h);
}

/// c') An operator whose phone registers again after its registration went (here removed by
/// an un-REGISTER) is Ready again (`ready_on_register`) and takes the next call: the loss did
/// not stick.
#[test]
fn an_operator_registering_again_after_a_loss_is_ready_again() {
    let _serial = serial();
    let mut h = start_linear("registration_back");
    let first = operator_sipp(
        &h,
        "operator_unregister.xml",
        "alice",
        "operator_answer.xml",
        Duration::from_millis(1500),
    )
    .start(1);
    let bob = operator(&h, "bob", "operator_answer.xml", STAY);
    expect_available(&mut h, 0, &["alice", "bob"]);
    let available = alice_state(&mut h, 0, "available");
    let not_ready = alice_state(&mut h, available, "not_ready");
    first.wait(&mut h);
    let alice = operator(&h, "alice", "operator_answer.xml", STAY);
    alice_state(&mut h, not_ready, "available");
    // linear: alice, first in the file, gets the call.
    pbx(&h, "pbx_talk.xml").arg("-d").arg("1500").run(&mut h);
    let lines = expect_outcomes(&mut h, 1, WAIT);
    assert_eq!(
        outcome(&lines[0]),
        "Answered { agent: AgentId(0) }",
        "alice, registered again, should have taken the call\n{}",
        h.report()
    );
    expect_no_sipp_errors(&alice, &mut h);
    expect_no_sipp_errors(&bob, &mut h);
}

/// d) An offer the operator's phone answers with `503` (unreachable) moves on to the next
/// operator at once, not after the 15 s ring timeout; the operator is made Not Ready and is
/// not called again.
#[test]
fn an_offer_to_an_unreachable_operator_moves_on_at_once() {
    let _serial = serial();
    let mut h = start_linear("registration_unreachable");
    let alice = operator(&h, "alice", "operator_unavailable.xml", STAY);
    let bob = operator(&h, "bob", "operator_answer.xml", STAY);
    expect_available(&mut h, 0, &["alice", "bob"]);
    let from = h.logs.len();
    pbx(&h, "pbx_talk.xml").arg("-d").arg("2000").run(&mut h);
    let lines = expect_outcomes(&mut h, 1, WAIT);
    assert_eq!(outcome(&lines[0]), BOB_ANSWERED, "{}", h.report());
    let mut offered = |who: &str| {
        h.expect_event(
            from,
            WAIT,
            "operator state",
            &[("agent", who), ("state", "offered")],
        )
    };
    let (alice_offered, bob_offered) = (offered("alice"), offered("bob"));
    let after = logged_at(&line(&h, bob_offered)) - logged_at(&line(&h, alice_offered));
    eprintln!("bob was offered the call {after:.3} s after alice");
    assert!(
        (0.0..1.0).contains(&after),
        "bob was offered the call {after:.3} s after alice, expected at once (the ring \
         timeout is 15 s)\n{}",
        h.report()
    );
    alice_state(&mut h, alice_offered, "not_ready");
    expect_in_order(
        "alice",
        &alice.messages(),
        &["INVITE sip:desk@", "SIP/2.0 503", "ACK sip:"],
        || trace_report(&alice, &mut h),
    );
    assert_eq!(
        count_lines(&alice.messages(), "INVITE sip:"),
        1,
        "alice was called again\n{}",
        trace_report(&alice, &mut h)
    );
    expect_no_sipp_errors(&alice, &mut h);
    expect_no_sipp_errors(&bob, &mut h);
}

/// e) An operator registered from two devices is offered the call on both (homeline forks
/// the INVITE): the device that answers takes the call, the one still ringing gets a CANCEL.
#[test]
fn an_operator_on_two_devices_is_rung_on_both_and_the_other_is_cancelled() {
    let _serial = serial();
    let mut h = start_linear("registration_two_devices");
    let desk = operator(&h, "alice", "operator_answer.xml", STAY);
    let bob = operator(&h, "bob", "operator_answer.xml", STAY);
    expect_available(&mut h, 0, &["alice", "bob"]);
    let from = h.logs.len();
    // A second device of alice's (its own port, so its own Contact and binding).
    let mobile = operator(&h, "alice", "operator_ring_cancel.xml", STAY);
    expect_exactly(&mut h, from, "registered", "alice");
    pbx(&h, "pbx_talk.xml").arg("-d").arg("1500").run(&mut h);
    let lines = expect_outcomes(&mut h, 1, WAIT);
    assert_eq!(
        outcome(&lines[0]),
        "Answered { agent: AgentId(0) }",
        "alice should have taken the call on her desk phone\n{}",
        h.report()
    );
    expect_in_order(
        "alice's ringing device",
        &mobile.messages(),
        &[
            "INVITE sip:desk@",
            "SIP/2.0 180",
            "CANCEL sip:desk@",
            "SIP/2.0 487",
            "ACK sip:",
        ],
        || trace_report(&mobile, &mut h),
    );
    expect_in_order(
        "alice's answering device",
        &desk.messages(),
        &["INVITE sip:desk@", "SIP/2.0 200", "ACK sip:"],
        || trace_report(&desk, &mut h),
    );
    expect_no_sipp_errors(&desk, &mut h);
    expect_no_sipp_errors(&mobile, &mut h);
    expect_no_sipp_errors(&bob, &mut h);
}
