//! The outbound suites' peers (`outbound.rs`, `outbound_tcp.rs`): a SIPp PBX answering on the
//! trunk's address, the SIPp operator `alice` registering from 127.0.0.2 and dialling
//! 0612345678 through homeline, and the relay report of `outbound call media ended`.

use super::{OPERATOR_HZ, PASSWORD, PBX_HZ, WAIT, sipp_dir, write};
use crate::audio::{tone, wav_ulaw};
use crate::sip_harness::{
    AGENT_IP, Background, HOMELINE_IP, Homeline, LogLine, RunningSipp, Sipp, free_port_pair,
    require, test_dir,
};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// The number the operator dials.
pub const NUMBER: &str = "0612345678";

/// Three seconds of a `hz` tone as a μ-law WAV, written to `dir/name` (SIPp's `rtp_stream`).
pub fn write_tone(dir: &Path, name: &str, hz: f64) {
    write(&dir.join(name), wav_ulaw(&tone(hz, 3.0, 0.5)));
}

/// The PBX: SIPp running the UAS `scenario` (from `tests/calls/sipp`) once (`-m 1`) in a
/// directory of its own, `{name}_pbx`, with the 1 kHz WAV it streams; its port (for the
/// trunk's address), its directory, and the SIPp to spawn on that port once the caller has
/// added its arguments (TCP, `-key`).
pub fn pbx_uas(name: &str, scenario: &str) -> (u16, PathBuf, Sipp) {
    require("sipp", "sip-tester");
    let port = free_port_pair(HOMELINE_IP);
    let dir = test_dir(&format!("{name}_pbx"));
    write_tone(&dir, "tone1k_ulaw.wav", PBX_HZ);
    let sipp = Sipp::uas(scenario, &dir, 0)
        .scenario_dir(&sipp_dir())
        .arg("-m")
        .arg("1");
    (port, dir, sipp)
}

/// Writes the operator's 660 Hz WAV into homeline's directory (SIPp's working directory) and
/// registers `alice` from 127.0.0.2; the registering SIPp, and the index of the `available`
/// line that followed.
pub fn register_alice(h: &mut Homeline) -> (RunningSipp, usize) {
    write_tone(&h.dir, "tone660_ulaw.wav", OPERATOR_HZ);
    let register = h
        .sipp_in(&sipp_dir(), "operator_register.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .start(1);
    let ready = h.expect_event(
        0,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "available")],
    );
    (register, ready)
}

/// alice's SIPp dialling [`NUMBER`] with `scenario` (from `tests/calls/sipp`), digest
/// challenged by homeline; not started.
pub fn dial_out(h: &Homeline, scenario: &str) -> Sipp {
    h.sipp_in(&sipp_dir(), scenario)
        .source_ip(AGENT_IP)
        .service(NUMBER)
        .arg("-key")
        .arg("user")
        .arg("alice")
        .auth("alice", PASSWORD)
}

/// Waits up to `timeout` for `exited` to report an exit status; `None` if it did not.
pub fn wait_exit(
    timeout: Duration,
    mut exited: impl FnMut() -> Option<ExitStatus>,
) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = exited() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to 10 s for the PBX's SIPp to end; its exit status, `None` if it is still running.
pub fn wait_pbx(pbx: &mut Background) -> Option<ExitStatus> {
    wait_exit(Duration::from_secs(10), || pbx.exited())
}

/// Waits for the `outbound call media ended` line; the first one.
#[track_caller]
pub fn expect_outbound_media(h: &mut Homeline) -> LogLine {
    h.expect_event(0, WAIT, "outbound call media ended", &[]);
    h.logs
        .matching(|l| l.is("outbound call media ended", &[]))
        .first()
        .cloned()
        .expect("a media report")
}

/// Fails unless the relay forwarded more than 50 packets each way on the outbound call.
#[track_caller]
pub fn expect_media_both_ways(h: &mut Homeline) {
    let media = expect_outbound_media(h);
    let report = media.field("media").unwrap_or_default();
    let counts = [media.count("pbx_forwarded"), media.count("agent_forwarded")];
    println!("relay report: {report}");
    assert!(
        counts[0] > 50 && counts[1] > 50,
        "RTP should flow both ways (forwarded from the PBX, from the operator: {counts:?})\n{report}"
    );
}
