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

#[allow(dead_code, unused_imports)]
mod sip_harness;

use sip_harness::{AGENT_IP, HOMELINE_IP, Homeline, Setup, Sipp, free_port_pair, repo, require};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PASSWORD: &str = "demo-password";
const WAIT: Duration = Duration::from_secs(8);
/// Where the queue's caller comes from: the first trunk's PBX (no digest challenge).
const CALLER_IP: &str = "127.0.0.3";

fn sipp_dir() -> PathBuf {
    repo().join("tests/calls/sipp")
}

/// Three seconds of a `hz` tone as a µ-law WAV (8 kHz mono).
fn wav_ulaw(hz: f64) -> Vec<u8> {
    let data: Vec<u8> = (0..24_000)
        .map(|i| {
            let s = (2.0 * std::f64::consts::PI * hz * f64::from(i) / 8000.0).sin() * 16_000.0;
            ulaw(s as i16)
        })
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(50 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&7u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(b"fact");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

fn ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = (s + 0x84).min(0x7FFF);
    let mut exp = 7;
    while exp > 0 && s & (0x4000 >> (7 - exp)) == 0 {
        exp -= 1;
    }
    let mantissa = (s >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) as u8 | mantissa as u8)
}

#[test]
fn an_operator_calls_out_through_its_trunk_with_its_caller_id_and_credentials() {
    require("sipp", "sip-tester");
    let pbx_port = free_port_pair(HOMELINE_IP);
    let dir = sip_harness::test_dir("outbound_pbx");
    std::fs::write(dir.join("tone1k_ulaw.wav"), wav_ulaw(1000.0)).expect("write the PBX's WAV");
    let mut pbx = Sipp::uas("pbx_outbound_uas.xml", &dir, 0)
        .scenario_dir(&sipp_dir())
        .arg("-m")
        .arg("1")
        .spawn(pbx_port);
    let agents = format!(
        "[[agent]]\nname = \"alice\"\npassword = \"{PASSWORD}\"\nqueues = [\"support\"]\n\
         ready_on_register = true\ntrunk = \"pbx\"\ncaller_id = \"+15550100\"\n"
    );
    // First in the file, so the default for operators' own calls; nothing listens at its
    // address. A second PBX on 127.0.0.3 with no credentials, routing 8000 too.
    let decoy = format!(
        "[[trunk]]\nname = \"carrier\"\npbx = \"127.0.0.1:9\"\nallow = [\"{CALLER_IP}/32\"]\n\
         options_interval = \"0s\"\ncaller_id = \"+15550111\"\nroutes = {{ \"8000\" = \"support\" }}\n"
    );
    let mut h = Homeline::start(
        "outbound",
        Setup::default()
            .sip("digest_algorithms", r#"["MD5"]"#)
            .template(repo().join("tests/calls/homeline_outbound.toml.in"))
            .pbx(pbx_port, "0s")
            .trunk_credentials("homeline", "trunk-secret")
            .value("STRATEGY", "longest-idle")
            .value("RING_TIMEOUT", "15s")
            .value("WRAP_UP", "0s")
            .value("AGENTS", &agents)
            .value("TRUNKS_BEFORE", &decoy)
            .value("TRUNK_CALLER_ID", "+15550199"),
    );
    std::fs::write(h.dir.join("tone660_ulaw.wav"), wav_ulaw(660.0))
        .expect("write the operator's WAV");
    let register = h
        .sipp_in(&sipp_dir(), "operator_register.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .start(1);
    std::fs::write(h.dir.join("tone1k_ulaw.wav"), wav_ulaw(1000.0))
        .expect("write the caller's WAV");
    let ready = h.expect_event(
        0,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "available")],
    );
    let outbound = h
        .sipp_in(&sipp_dir(), "operator_outbound.xml")
        .source_ip(AGENT_IP)
        .service("0612345678")
        .arg("-key")
        .arg("user")
        .arg("alice")
        .auth("alice", PASSWORD)
        .start(1);
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
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = pbx.exited() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the PBX's scenario did not end (no BYE?)\n{}\n{}",
            pbx.output(),
            h.report()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the PBX's scenario failed (number, caller id, credentials or BYE)\n{}\n{}",
        pbx.output(),
        h.report()
    );
    h.expect_event(0, WAIT, "outbound call media ended", &[]);
    let media = h
        .logs
        .matching(|l| l.is("outbound call media ended", &[]))
        .first()
        .cloned()
        .expect("a media report");
    let report = media.field("media").unwrap_or_default();
    let counts = [media.count("pbx_forwarded"), media.count("agent_forwarded")];
    println!("relay report: {report}");
    assert!(
        counts[0] > 50 && counts[1] > 50,
        "RTP should flow both ways (forwarded from the PBX, from the operator: {counts:?})\n{report}"
    );
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
    require("sipp", "sip-tester");
    let pbx_port = free_port_pair(HOMELINE_IP);
    let dir = sip_harness::test_dir("outbound_early_pbx");
    std::fs::write(dir.join("tone1k_ulaw.wav"), wav_ulaw(1000.0)).expect("write the PBX's WAV");
    let mut pbx = Sipp::uas("pbx_outbound_early.xml", &dir, 0)
        .scenario_dir(&sipp_dir())
        .arg("-m")
        .arg("1")
        .spawn(pbx_port);
    let agents = format!(
        "[[agent]]\nname = \"alice\"\npassword = \"{PASSWORD}\"\nqueues = [\"support\"]\n\
         ready_on_register = true\n"
    );
    let mut h = Homeline::start(
        "outbound_early",
        Setup::default()
            .sip("digest_algorithms", r#"["MD5"]"#)
            .template(repo().join("tests/calls/homeline_outbound.toml.in"))
            .pbx(pbx_port, "0s")
            .value("STRATEGY", "longest-idle")
            .value("RING_TIMEOUT", "15s")
            .value("WRAP_UP", "0s")
            .value("AGENTS", &agents)
            .value("TRUNKS_BEFORE", "")
            .value("TRUNK_CALLER_ID", "+15550100"),
    );
    std::fs::write(h.dir.join("tone660_ulaw.wav"), wav_ulaw(660.0))
        .expect("write the operator's WAV");
    let register = h
        .sipp_in(&sipp_dir(), "operator_register.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .start(1);
    h.expect_event(
        0,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "available")],
    );
    let outbound = h
        .sipp_in(&sipp_dir(), "operator_outbound.xml")
        .source_ip(AGENT_IP)
        .service("0612345678")
        .arg("-key")
        .arg("user")
        .arg("alice")
        .auth("alice", PASSWORD)
        .start(1);
    let mut outbound = outbound;
    let deadline = Instant::now() + Duration::from_secs(15);
    while outbound.exited().is_none() {
        assert!(
            Instant::now() < deadline,
            "the operator's call did not end\n{}",
            h.report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let trace = outbound.messages();
    drop(register);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pbx.exited().is_none() {
        assert!(
            Instant::now() < deadline,
            "the PBX's scenario did not end\n{}\n{}",
            pbx.output(),
            h.report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    h.expect_event(0, WAIT, "outbound call media ended", &[]);
    let media = h
        .logs
        .matching(|l| l.is("outbound call media ended", &[]))
        .first()
        .cloned()
        .expect("a media report");
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
