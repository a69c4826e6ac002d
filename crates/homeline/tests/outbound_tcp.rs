//! Operators' own calls out through a TCP trunk, end to end: the real `homeline` binary
//! between a SIPp operator (registered over UDP, digest) dialling 0612345678 and a SIPp PBX
//! listening over TCP (`-t t1`) on the address of trunk `pbx` (`transport = "tcp"`).
//! homeline connects to the PBX and sends the INVITE on that connection: the PBX checks the
//! request-URI number, the trunk's caller id in From, a TCP Via and a Contact with
//! `transport=TCP`, answers 180 then 200 with SDP; both sides send RTP through the relay.
//! One test has the operator hang up (the PBX must get the BYE on its connection), the other
//! has the PBX hang up (its BYE, sent on the connection to homeline's Contact, must be
//! answered 200 and end the operator's call).
//!
//! Files: `tests/calls/sipp/{operator_register,operator_outbound,operator_outbound_hungup,
//! pbx_outbound_tcp_uas}.xml`, `tests/calls/homeline_outbound_tcp.toml.in`.

mod audio;
#[allow(dead_code, unused_imports)]
mod sip_harness;

use sip_harness::{
    AGENT_IP, Background, HOMELINE_IP, Homeline, Setup, Sipp, free_port_pair, repo, require,
};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

const PASSWORD: &str = "demo-password";
const WAIT: Duration = Duration::from_secs(8);

fn sipp_dir() -> PathBuf {
    repo().join("tests/calls/sipp")
}

/// Three seconds of a `hz` tone as a µ-law WAV, written to `dir/name`.
fn write_tone(dir: &Path, name: &str, hz: f64) {
    let wav = audio::wav_ulaw(&audio::tone(hz, 3.0, 0.5));
    std::fs::write(dir.join(name), wav).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
}

/// Waits for the PBX's SIPp to end, failing unless it exits 0.
fn expect_pbx_success(pbx: &mut Background, dir: &Path, h: &mut Homeline) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = pbx.exited() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.is_some_and(|s| s.success()) {
        let errors = std::fs::read_to_string(dir.join("sipp-00-pbx_outbound_tcp_uas.errors.log"))
            .unwrap_or_default();
        panic!(
            "the PBX's scenario ended with {status:?} (number, caller id, TCP Via/Contact or \
             BYE)\n{errors}\n{}\n{}",
            pbx.output(),
            h.report()
        );
    }
}

/// The tests run one at a time (they share the machine's cores with real-time audio).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// alice calls 0612345678 through the TCP trunk; the PBX hangs up if `pbx_hangs_up`, else
/// she does.
fn call_out_over_tcp(name: &str, pbx_hangs_up: bool) {
    let _serial = serial();
    require("sipp", "sip-tester");
    let pbx_port = free_port_pair(HOMELINE_IP);
    let pbx_dir = sip_harness::test_dir(&format!("{name}_pbx"));
    write_tone(&pbx_dir, "tone1k_ulaw.wav", 1000.0);
    let mut pbx = Sipp::uas("pbx_outbound_tcp_uas.xml", &pbx_dir, 0)
        .scenario_dir(&sipp_dir())
        .tcp()
        .arg("-m")
        .arg("1")
        .arg("-key")
        .arg("hangup")
        .arg(if pbx_hangs_up { "1" } else { "0" })
        .spawn(pbx_port);
    let mut h = Homeline::start(
        name,
        Setup::default()
            .sip("digest_algorithms", r#"["MD5"]"#)
            .template(repo().join("tests/calls/homeline_outbound_tcp.toml.in"))
            .pbx(pbx_port, "0s"),
    );
    write_tone(&h.dir, "tone660_ulaw.wav", 660.0);
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
    let operator = if pbx_hangs_up {
        "operator_outbound_hungup.xml"
    } else {
        "operator_outbound.xml"
    };
    h.sipp_in(&sipp_dir(), operator)
        .source_ip(AGENT_IP)
        .service("0612345678")
        .arg("-key")
        .arg("user")
        .arg("alice")
        .auth("alice", PASSWORD)
        .run(&mut h);
    drop(register);
    expect_pbx_success(&mut pbx, &pbx_dir, &mut h);
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
    h.expect_event(
        0,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "on_call")],
    );
}

#[test]
fn an_operator_calls_out_through_a_tcp_trunk_and_hangs_up() {
    call_out_over_tcp("outbound_tcp_operator_bye", false);
}

#[test]
fn the_pbx_of_a_tcp_trunk_hangs_up_an_operator_s_call() {
    call_out_over_tcp("outbound_tcp_pbx_bye", true);
}
