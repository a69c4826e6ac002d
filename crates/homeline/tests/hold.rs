//! Hold and resume by re-INVITE, end to end: the real `homeline` binary between a SIPp PBX
//! and a SIPp operator, with what homeline sends captured on `lo` (`dumpcap`) and its PCMU
//! decoded here (Goertzel, as `tests/calls.rs` does).
//!
//! - The operator holds (`operator_hold.xml`: re-INVITE `a=sendonly`, answered `a=recvonly`)
//!   and resumes (`a=sendrecv`, answered `a=sendrecv`): meanwhile the PBX receives homeline's
//!   440 Hz music on hold instead of the operator's 660 Hz, then the operator's 660 Hz again;
//!   the PBX's BYE ends both legs.
//! - The PBX holds (`pbx_hold.xml`, the same re-INVITEs from the PBX side): the operator leg
//!   stays up, the operator hears music on hold instead of the PBX's 1 kHz, then the PBX
//!   again.
//!
//! Files: `tests/calls/sipp/{operator_hold,pbx_hold,pbx_talk,operator_answer}.xml`,
//! `tests/calls/homeline.toml.in`. Peers from `bash tests/run-all.sh`.

// Each test file uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod sip_harness;

mod audio;
use audio::*;

#[allow(dead_code)]
mod rtp_capture;
use rtp_capture::{Capture, Rtp, pcmu_audio};

#[allow(dead_code)]
mod call_setup;
use call_setup::*;

use sip_harness::{AGENT_IP, Homeline, RunningSipp};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// homeline with the operator `alice` only.
fn start_alice(name: &str) -> Homeline {
    start(
        name,
        Queue {
            agents: &["alice"],
            ..Queue::default()
        },
    )
}

/// SIPp operator `alice` registering from 127.0.0.2 (Available); `answer` handles homeline's
/// INVITE.
fn alice(h: &mut Homeline, answer: &str) -> RunningSipp {
    let ops = operator(h, "alice", answer, Duration::from_secs(16));
    expect_available(h, 0, &["alice"]);
    ops
}

/// The packets homeline sent to one side, in capture order, split around the hold: the
/// other side's stream (the most common SSRC), before its first packet nothing is looked at;
/// the packets of any other SSRC after that (homeline's music on hold); and the other side's
/// packets after the last of those. Checks the tones of each part.
#[track_caller]
fn expect_hold_window(what: &str, to: &[&Rtp], talk_hz: f64, context: &str) {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for p in to.iter().filter(|p| p.pt == 0) {
        *counts.entry(p.ssrc).or_default() += 1;
    }
    let relayed = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(s, _)| *s)
        .unwrap_or_else(|| panic!("{what}: no PCMU received\n{context}"));
    let first = to.iter().position(|p| p.ssrc == relayed).unwrap_or(0);
    let after_first = &to[first..];
    let moh: Vec<&Rtp> = after_first
        .iter()
        .filter(|p| p.ssrc != relayed)
        .copied()
        .collect();
    let moh_start = after_first
        .iter()
        .position(|p| p.ssrc != relayed)
        .unwrap_or_else(|| panic!("{what}: no music on hold once bridged\n{context}"));
    let moh_end = after_first
        .iter()
        .rposition(|p| p.ssrc != relayed)
        .unwrap_or(moh_start);
    let before = &after_first[..moh_start];
    let after: Vec<&Rtp> = after_first[moh_end + 1..]
        .iter()
        .filter(|p| p.ssrc == relayed)
        .copied()
        .collect();
    let share = |ps: &[&Rtp], hz| tone_share(&pcmu_audio(ps.iter().copied()), 8000, hz);
    let summary = format!(
        "{what}: {} packets relayed before the hold ({:.2} at {talk_hz} Hz), {} of music on \
         hold ({:.2} at 440 Hz), {} relayed after ({:.2} at {talk_hz} Hz)",
        before.len(),
        share(before, talk_hz),
        moh.len(),
        share(&moh, MOH_HZ),
        after.len(),
        share(&after, talk_hz),
    );
    println!("{summary}");
    assert!(
        before.len() >= 25 && share(before, talk_hz) >= TONE_SHARE,
        "{summary}: the talk before the hold\n{context}"
    );
    assert!(
        moh.len() >= 75 && share(&moh, MOH_HZ) >= TONE_SHARE,
        "{summary}: music on hold during the hold (2.5 s)\n{context}"
    );
    assert!(
        after.len() >= 50 && share(&after, talk_hz) >= TONE_SHARE,
        "{summary}: the talk after resuming\n{context}"
    );
}

fn split(packets: &[Rtp]) -> (Vec<&Rtp>, Vec<&Rtp>) {
    let operator_ip: Ipv4Addr = AGENT_IP.parse().expect("AGENT_IP is IPv4");
    let to_operator = packets.iter().filter(|p| p.dst.0 == operator_ip).collect();
    let to_pbx = packets.iter().filter(|p| p.dst.0 != operator_ip).collect();
    (to_operator, to_pbx)
}

/// A call held and resumed: homeline with alice answering with `answer`, the PBX's
/// `scenario` with `pbx_args`, and what homeline sent captured. Fails unless alice's SIPp saw
/// no error; returns homeline, alice's message trace, the packets and a failure context.
fn held_call(
    name: &str,
    answer: &str,
    scenario: &str,
    pbx_args: &[&str],
) -> (Homeline, String, Vec<Rtp>, String) {
    let mut h = start_alice(name);
    let ops = alice(&mut h, answer);
    let capture = Capture::start(&h, name);
    pbx_args
        .iter()
        .fold(pbx(&h, scenario), |sipp, a| sipp.arg(a))
        .run(&mut h);
    let media = expect_media_report(&mut h, 0);
    h.expect_event(0, WAIT, "call outcome", &[]);
    let packets = capture.stop();
    println!("relay report: {media}");
    expect_no_sipp_errors(&ops, &mut h);
    let trace = ops.messages();
    let context = format!("operator SIPp:\n{trace}\n{}", h.report());
    (h, trace, packets, context)
}

#[test]
fn the_operator_holds_and_resumes_and_the_caller_hears_music_on_hold_meanwhile() {
    let _serial = serial();
    let (h, trace, packets, context) = held_call(
        "hold_by_operator",
        "operator_hold.xml",
        "pbx_talk.xml",
        &["-d", "8000"],
    );
    assert!(
        trace.contains("CSeq: 1 INVITE")
            && trace.contains("CSeq: 2 INVITE")
            && trace.contains("a=recvonly")
            && trace.matches("BYE sip:").count() == 1,
        "the operator's re-INVITEs should be answered and homeline's BYE come once\n{context}"
    );
    assert!(
        h.logs
            .matching(|l| l.is(
                "operator state",
                &[("agent", "alice"), ("state", "on_call")]
            ))
            .len()
            == 1,
        "alice should stay on the call through hold and resume\n{context}"
    );
    let (_, to_pbx) = split(&packets);
    expect_hold_window("to the PBX", &to_pbx, OPERATOR_HZ, &context);
}

#[test]
fn the_pbx_holds_and_resumes_and_the_operator_leg_stays_up() {
    let _serial = serial();
    let (h, trace, packets, context) =
        held_call("hold_by_pbx", "operator_answer.xml", "pbx_hold.xml", &[]);
    assert!(
        trace.matches("BYE sip:").count() == 1,
        "the operator leg should end once, with the PBX's BYE\n{context}"
    );
    let outcome = h
        .logs
        .matching(|l| l.is("call outcome", &[]))
        .first()
        .and_then(|l| l.field("talk_ms"))
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        outcome >= 6000,
        "the call should have been talking through hold and resume (≥ 6 s): {outcome} ms\n{context}"
    );
    let (to_operator, _) = split(&packets);
    expect_hold_window("to the operator", &to_operator, PBX_HZ, &context);
}
