//! Operators' own calls out through the trunk, end to end: the real `homeline` binary between
//! a SIPp operator (registered, digest) dialling 0612345678 and a SIPp PBX listening on the
//! address of trunk `pbx`, which is not the first trunk: the operator's `trunk = "pbx"`
//! picks it (the first trunk's address has nobody listening). The PBX checks the request-URI
//! number and the caller id in From (the operator's own `caller_id`, not the trunk's),
//! challenges once with 401 and verifies the trunk credentials, answers 180 then 200 with SDP;
//! both sides send RTP; the operator hangs up and the PBX must get the BYE. The operator is
//! on call (their own) meanwhile and Available right after, with no wrap-up; a caller for
//! the operator's queue meanwhile waits (never offered to them) until they give up.
//!
//! Files: `tests/calls/sipp/{operator_register,operator_outbound,pbx_outbound_uas,pbx_talk}.xml`,
//! `tests/calls/homeline_outbound.toml.in`.

// Each test file uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod sip_harness;

mod audio;
#[allow(dead_code)]
mod call_setup;
use call_setup::outbound::{
    dial_out, expect_media_both_ways, expect_outbound_media, pbx_uas, register_alice, wait_exit,
    wait_pbx, write_tone,
};
use call_setup::{PASSWORD, PBX_HZ, WAIT, sipp_dir};

use sip_harness::{Homeline, Setup, repo};
use std::time::Duration;

/// Where the queue's caller comes from: the first trunk's PBX (no digest challenge).
const CALLER_IP: &str = "127.0.0.3";

/// homeline with `tests/calls/homeline_outbound.toml.in`: the queue `support`, alice (with
/// `agent_keys`, e.g. her `trunk` and `caller_id`), the PBX of trunk `pbx` on `pbx_port`, and
/// the template's other values from `setup`.
fn start(name: &str, pbx_port: u16, agent_keys: &str, setup: Setup) -> Homeline {
    let agents = format!(
        "[[agent]]\nname = \"alice\"\npassword = \"{PASSWORD}\"\nqueues = [\"support\"]\n\
         ready_on_register = true\n{agent_keys}"
    );
    Homeline::start(
        name,
        setup
            .sip("digest_algorithms", r#"["MD5"]"#)
            .template(repo().join("tests/calls/homeline_outbound.toml.in"))
            .pbx(pbx_port, "0s")
            .value("STRATEGY", "longest-idle")
            .value("RING_TIMEOUT", "15s")
            .value("WRAP_UP", "0s")
            .value("AGENTS", &agents),
    )
}

#[test]
fn an_operator_calls_out_through_its_trunk_with_its_caller_id_and_credentials() {
    let (pbx_port, _, pbx) = pbx_uas("outbound", "pbx_outbound_uas.xml");
    let mut pbx = pbx.spawn(pbx_port);
    // First in the file, so the default for operators' own calls; nothing listens at its
    // address. A second PBX on 127.0.0.3 with no credentials, routing 8000 too.
    let decoy = format!(
        "[[trunk]]\nname = \"carrier\"\npbx = \"127.0.0.1:9\"\nallow = [\"{CALLER_IP}/32\"]\n\
         options_interval = \"0s\"\ncaller_id = \"+15550111\"\nroutes = {{ \"8000\" = \"support\" }}\n"
    );
    let mut h = start(
        "outbound",
        pbx_port,
        "trunk = \"pbx\"\ncaller_id = \"+15550100\"\n",
        Setup::default()
            .trunk_credentials("homeline", "trunk-secret")
            .value("TRUNKS_BEFORE", &decoy)
            .value("TRUNK_CALLER_ID", "+15550199"),
    );
    // The queue's caller streams 1 kHz too.
    write_tone(&h.dir, "tone1k_ulaw.wav", PBX_HZ);
    let (register, ready) = register_alice(&mut h);
    let outbound = dial_out(&h, "operator_outbound.xml").start(1);
    let on_call = h.expect_event(
        ready,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "on_call")],
    );
    // Meanwhile a caller for alice's queue (she is its only operator): answered with music,
    // never offered to her, and gives up after a second, before her own call ends (3 s of
    // RTP after its answer).
    h.sipp_in(&sipp_dir(), "pbx_talk.xml")
        .source_ip(CALLER_IP)
        .service("8000")
        .arg("-d")
        .arg("1000")
        .run(&mut h);
    let abandoned = h.expect_event(
        on_call,
        WAIT,
        "call outcome",
        &[("queue", "support"), ("outcome", "Abandoned")],
    );
    outbound.wait(&mut h);
    drop(register);
    let status = wait_pbx(&mut pbx).unwrap_or_else(|| {
        panic!(
            "the PBX's scenario did not end (no BYE?)\n{}\n{}",
            pbx.output(),
            h.report()
        )
    });
    assert!(
        status.success(),
        "the PBX's scenario failed (number, caller id, credentials or BYE)\n{}\n{}",
        pbx.output(),
        h.report()
    );
    expect_media_both_ways(&mut h);
    // Available again after her call (waited for: it may come after the media report).
    let back = h.expect_event(
        on_call,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "available")],
    );
    let states = |state: &str| {
        h.logs
            .matching(|l| l.is("operator state", &[("agent", "alice"), ("state", state)]))
            .len()
    };
    assert_eq!(
        states("on_call"),
        1,
        "alice should be on (her own) call during it\n{}",
        h.report()
    );
    assert_eq!(
        (states("not_ready"), states("wrap_up")),
        (0, 0),
        "an own call is neither Not Ready nor followed by wrap-up\n{}",
        h.report()
    );
    assert!(
        abandoned < back,
        "the caller should have given up while alice was still on her call\n{}",
        h.report()
    );
    assert_eq!(
        states("offered"),
        0,
        "no queue call is offered to an operator on her own call\n{}",
        h.report()
    );
}

/// Early media: the PBX answers `183` with SDP and plays 2 s of 1 kHz (a ringback or an
/// announcement) before its `200`. The operator must get a `183` with homeline's SDP and hear
/// those 2 s too: the packets homeline forwards from the PBX cover the early 2 s plus the
/// operator's 3 s of talk (about 250), where ringing only would forward about 150.
#[test]
fn the_pbx_early_media_reaches_the_operator_before_the_answer() {
    let (pbx_port, _, pbx) = pbx_uas("outbound_early", "pbx_outbound_early.xml");
    let mut pbx = pbx.spawn(pbx_port);
    let mut h = start(
        "outbound_early",
        pbx_port,
        "",
        Setup::default()
            .value("TRUNKS_BEFORE", "")
            .value("TRUNK_CALLER_ID", "+15550100"),
    );
    let (register, _) = register_alice(&mut h);
    let mut outbound = dial_out(&h, "operator_outbound.xml").start(1);
    if wait_exit(Duration::from_secs(15), || outbound.exited()).is_none() {
        panic!("the operator's call did not end\n{}", h.report());
    }
    let trace = outbound.messages();
    drop(register);
    if wait_pbx(&mut pbx).is_none() {
        panic!(
            "the PBX's scenario did not end\n{}\n{}",
            pbx.output(),
            h.report()
        );
    }
    let media = expect_outbound_media(&mut h);
    let from_pbx = media.count("pbx_forwarded");
    let context = format!(
        "relay: {}\noperator's trace:\n{trace}\n{}",
        media.field("media").unwrap_or_default(),
        h.report()
    );
    assert!(
        trace.contains("SIP/2.0 183 Session Progress") && trace.contains("m=audio"),
        "the operator should get a 183 with SDP\n{context}"
    );
    assert!(
        from_pbx > 200,
        "the PBX's early 2 s should reach the operator: {from_pbx} packets forwarded\n{context}"
    );
}
