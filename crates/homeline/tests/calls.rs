//! Calls end to end: the real `homeline` binary between SIPp playing the PBX and real
//! softphones playing the operators (baresip with auto-answer, SIPp operator scenarios), with
//! the audio checked both ways. `tests/calls/README.md` describes the files these tests use.
//!
//! - the PBX (SIPp from 127.0.0.1, `tests/calls/sipp/pbx_*.xml`) calls 8000, routed to the
//!   queue `support`; homeline answers at once and plays music on hold (440 Hz) until an
//!   operator answers;
//! - operators register from 127.0.0.2: baresip (sends a 660 Hz tone, records what it
//!   receives) or SIPp (`operator_register.xml` with one `-inf` line per operator; the
//!   out-of-call scenario answers, or lets ring until CANCEL, the INVITEs homeline sends);
//! - what homeline sends is captured on `lo` with `dumpcap` (homeline's RTP ports only;
//!   `rtp_capture`, shared with the other call suites) and decoded here: the PBX must hear the operator's 660 Hz, the operator the PBX's 1 kHz. The
//!   operator's tone is not 440 Hz so that it cannot be mistaken for music on hold.
//!
//! Log events these tests wait for (message, then fields): `registered` (`user`),
//! `operator state` (`agent`, `state`: logged_out | not_ready | available | offered | on_call
//! | wrap_up), `call outcome` (`call`, `queue`, `outcome` as Debug text, `wait_ms`,
//! `talk_ms`), `call media ended` (`media`: the relay report as Debug text).
//!
//! The tests run one at a time (they share the CPU with real-time audio); each starts its own
//! homeline and stays under 40 s. The peers come from `bash tests/run-all.sh`.

// Each test file uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod sip_harness;

mod audio;
use audio::*;

#[allow(dead_code)]
mod rtp_capture;
use rtp_capture::relay::{ByLeg, by_leg, relay_legs};
use rtp_capture::{Capture, pcmu_audio};

#[allow(dead_code)]
mod call_setup;
use call_setup::*;

use serde_json::Value;
use sip_harness::{
    AGENT_IP, Background, Homeline, LogLine, RunningSipp, fill, free_tcp_port, free_udp_block,
    require,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

// ---- audio ----

/// A WAV file's sample rate and samples (first channel), PCM 16-bit or μ-law.
fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let bad = |why: &str| -> ! { panic!("{}: not a WAV I can read: {why}", path.display()) };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bad("no RIFF/WAVE header");
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (mut format, mut channels, mut rate, mut bits) = (0, 1, 0, 0);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32_at(at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            format = u16_at(body);
            channels = u16_at(body + 2).max(1) as usize;
            rate = u32_at(body + 4);
            bits = u16_at(body + 14);
        } else if id == b"data" {
            let end = (body + len).min(bytes.len());
            let data = &bytes[body..end];
            let samples: Vec<i16> = match (format, bits) {
                (1, 16) | (0xFFFE, 16) => data
                    .chunks_exact(2 * channels)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                (7, 8) => data.iter().step_by(channels).map(|&b| unulaw(b)).collect(),
                _ => bad(&format!("format {format}, {bits} bits")),
            };
            return (rate, samples);
        }
        at = body + len + (len & 1);
    }
    bad("no data chunk")
}

// ---- baresip ----

/// baresip as an operator: auto-answer, sends a long 660 Hz tone, records what it receives,
/// and takes commands on its `ctrl_tcp` port, whose events are collected here.
struct Baresip {
    process: Background,
    ctrl: TcpStream,
    events: Arc<(Mutex<Vec<Value>>, Condvar)>,
    rec: PathBuf,
}

impl Baresip {
    fn start(h: &Homeline, user: &str) -> Baresip {
        require("baresip", "baresip-core");
        let conf = h.dir.join(format!("baresip-{user}"));
        let rec = conf.join("rec");
        std::fs::create_dir_all(&rec)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", rec.display()));
        // Longer than any call: baresip hangs up when its source file ends.
        let source = conf.join("tone660_s16.wav");
        write(&source, wav_s16(&tone(OPERATOR_HZ, 60.0, 0.5)));
        let (rtp_min, rtp_max) = sip_harness::rtp_range();
        let ctrl_addr = format!("{AGENT_IP}:{}", free_tcp_port(AGENT_IP));
        let values = [
            ("AGENT_IP", AGENT_IP.to_string()),
            ("SIP_PORT", free_udp_block(AGENT_IP, 1).to_string()),
            ("RTP_PORT_MIN", rtp_min.to_string()),
            ("RTP_PORT_MAX", rtp_max.to_string()),
            ("SOURCE_WAV", source.to_string_lossy().into_owned()),
            ("CTRL_ADDR", ctrl_addr.clone()),
            ("REC_DIR", rec.to_string_lossy().into_owned()),
            ("USER", user.to_string()),
            ("REGISTRAR", h.addr()),
            ("PASSWORD", PASSWORD.to_string()),
        ];
        for (template, file) in [("config.in", "config"), ("accounts.in", "accounts")] {
            let path = calls_dir().join("baresip").join(template);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            write(&conf.join(file), fill(&text, &values));
        }
        write(&conf.join("contacts"), "");
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(&conf).env("HOME", &h.dir);
        let mut process = Background::start(
            "baresip",
            cmd,
            h.dir.join(format!("baresip-{user}.out")),
            false,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let ctrl = loop {
            match TcpStream::connect(&ctrl_addr) {
                Ok(s) => break s,
                Err(e) => {
                    if Instant::now() >= deadline || process.exited().is_some() {
                        panic!(
                            "cannot reach baresip's ctrl_tcp on {ctrl_addr}: {e}\n{}",
                            process.report()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let events: Arc<(Mutex<Vec<Value>>, Condvar)> = Arc::default();
        let reader = ctrl.try_clone().expect("ctrl_tcp socket clone");
        let sink = events.clone();
        std::thread::spawn(move || read_netstrings(reader, &sink));
        Baresip {
            process,
            ctrl,
            events,
            rec,
        }
    }

    /// Sends a ctrl_tcp command.
    fn command(&mut self, command: &str) {
        let msg = serde_json::json!({ "command": command, "token": command }).to_string();
        let frame = format!("{}:{msg},", msg.len());
        self.ctrl
            .write_all(frame.as_bytes())
            .unwrap_or_else(|e| panic!("cannot send `{command}` to baresip: {e}"));
    }

    /// Waits for the `n`th (from 1) event of `kind` (`CALL_ESTABLISHED`, `CALL_CLOSED`, ...).
    fn wait_event(&self, kind: &str, n: usize, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let (list, changed) = &*self.events;
        let mut guard = list.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let found: Vec<&Value> = guard
                .iter()
                .filter(|e| e.get("type").and_then(Value::as_str) == Some(kind))
                .collect();
            if found.len() >= n {
                return Some(found[n - 1].clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every event and response so far.
    fn events(&self) -> Vec<Value> {
        self.events
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The recordings of what baresip received (`*-dec.wav`), oldest first.
    fn received(&self) -> Vec<PathBuf> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.rec)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with("dec.wav"))
                    .map(|p| {
                        let t = std::fs::metadata(&p)
                            .and_then(|m| m.created().or_else(|_| m.modified()))
                            .unwrap_or(std::time::UNIX_EPOCH);
                        (t, p)
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.into_iter().map(|(_, p)| p).collect()
    }

    fn report(&mut self) -> String {
        let events: Vec<String> = self.events().iter().map(Value::to_string).collect();
        format!(
            "{}\nbaresip ctrl_tcp events:\n  {}\nrecordings in {}",
            self.process.report(),
            events.join("\n  "),
            self.rec.display()
        )
    }
}

/// Reads netstring-framed JSON from baresip's ctrl_tcp into `sink` until the connection ends.
fn read_netstrings(mut stream: TcpStream, sink: &(Mutex<Vec<Value>>, Condvar)) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(colon) = buf.iter().position(|&b| b == b':') {
            let Some(len) = std::str::from_utf8(&buf[..colon])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                return;
            };
            if buf.len() < colon + 1 + len + 1 {
                break;
            }
            let body = &buf[colon + 1..colon + 1 + len];
            if let Ok(v) = serde_json::from_slice::<Value>(body) {
                let (list, changed) = sink;
                list.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                changed.notify_all();
            }
            buf.drain(..colon + 1 + len + 1);
        }
    }
}

// ---- tests ----

/// Issue 4, test 1: a PBX call answered by a baresip operator, audio checked both ways; the
/// PBX hangs up the first call, the operator the second.
#[test]
fn a_call_is_answered_by_baresip_with_audio_both_ways_and_either_side_hangs_up() {
    let _serial = serial();
    let mut h = start("call_baresip", Queue::default());
    let mut alice = Baresip::start(&h, "alice");
    h.expect_event(0, WAIT, "registered", &[("user", "alice")]);
    expect_available(&mut h, 0, &["alice"]);

    // Call 1: the PBX talks for 4 s, then hangs up.
    let capture = Capture::start(&h, "call1");
    let from = h.logs.len();
    pbx(&h, "pbx_talk.xml").arg("-d").arg("4000").run(&mut h);
    if alice.wait_event("CALL_CLOSED", 1, WAIT).is_none() {
        panic!(
            "baresip saw no CALL_CLOSED after the PBX hung up\n{}\n{}",
            alice.report(),
            h.report()
        );
    }
    let packets = capture.stop();
    expect_answered(&mut h, from, "call 1");
    let media = expect_media_report(&mut h, from);
    // Where homeline sent each leg's media (the PBX's and baresip's RTP sockets; baresip's
    // sends from 127.0.0.1, whatever its SDP says).
    let ByLeg {
        to_operator,
        to_pbx,
        bridged_to_pbx,
        ..
    } = by_leg(&packets, &media);
    // What the operator heard: baresip's recording, and what homeline sent it.
    let sent_operator = pcmu_audio(to_operator.iter().copied());
    let heard_pbx = pcmu_audio(bridged_to_pbx.iter().copied());
    let recordings = alice.received();
    let recording = recordings
        .first()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", alice.report()));
    let (rate, recorded) = read_wav(recording);
    let summary = format!(
        "capture: {} RTP packets from homeline, {} to the operator ({}), {} to the PBX, {} of \
         them once bridged ({}); baresip's recording {}: {}",
        packets.len(),
        to_operator.len(),
        describe_audio(&sent_operator, 8000),
        to_pbx.len(),
        bridged_to_pbx.len(),
        describe_audio(&heard_pbx, 8000),
        recording.display(),
        describe_audio(&recorded, rate),
    );
    eprintln!("{summary}");
    assert!(
        recorded.len() as f64 >= 2.0 * f64::from(rate)
            && tone_share(&recorded, rate, PBX_HZ) >= TONE_SHARE,
        "the operator did not hear the PBX's {PBX_HZ} Hz: {summary}\n{}\n{}",
        alice.report(),
        h.report()
    );
    assert!(
        to_operator.len() >= 100 && tone_share(&sent_operator, 8000, PBX_HZ) >= TONE_SHARE,
        "homeline did not send the PBX's {PBX_HZ} Hz to the operator: {summary}\n{}",
        h.report()
    );
    assert!(
        bridged_to_pbx.len() >= 100 && tone_share(&heard_pbx, 8000, OPERATOR_HZ) >= TONE_SHARE,
        "the PBX did not hear the operator's {OPERATOR_HZ} Hz: {summary}\n{}",
        h.report()
    );

    // Call 2: the operator hangs up first; the PBX gets a BYE.
    expect_available(&mut h, from, &["alice"]);
    let from = h.logs.len();
    let pbx2 = pbx(&h, "pbx_hungup.xml").start(1);
    if alice.wait_event("CALL_ESTABLISHED", 2, WAIT).is_none() {
        panic!(
            "baresip did not answer call 2\n{}\n{}",
            alice.report(),
            pbx2.report(&mut h)
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    alice.command("hangup");
    pbx2.wait(&mut h);
    assert!(
        alice.wait_event("CALL_CLOSED", 2, WAIT).is_some(),
        "baresip saw no CALL_CLOSED for call 2\n{}",
        alice.report()
    );
    expect_answered(&mut h, from, "call 2");
    h.expect_event(from, WAIT, "call media ended", &[]);
}

/// Issue 4, test 2: two operators, two simultaneous calls: each operator gets exactly one.
#[test]
fn two_simultaneous_calls_go_one_to_each_of_two_operators() {
    let _serial = serial();
    let mut h = start("two_operators", Queue::default());
    let stay = Duration::from_secs(15);
    let alice = operator(&h, "alice", "operator_answer.xml", stay);
    let bob = operator(&h, "bob", "operator_answer.xml", stay);
    expect_available(&mut h, 0, &["alice", "bob"]);
    let from = h.logs.len();
    pbx(&h, "pbx_talk.xml")
        .arg("-d")
        .arg("3000")
        .arg("-r")
        .arg("50")
        .arg("-l")
        .arg("2")
        .start(2)
        .wait(&mut h);
    let lines = expect_outcomes(&mut h, 2, WAIT);
    let mut agents: Vec<String> = lines.iter().map(outcome).collect();
    agents.sort();
    assert_eq!(
        agents,
        [
            "Answered { agent: AgentId(0) }",
            "Answered { agent: AgentId(1) }"
        ],
        "each operator should have answered one call\n{}",
        h.report()
    );
    for (who, ops) in [("alice", &alice), ("bob", &bob)] {
        let on_call = h
            .logs
            .matching(|l| l.is("operator state", &[("agent", who), ("state", "on_call")]))
            .len();
        let invites = count_lines(&ops.messages(), "INVITE sip:");
        assert!(
            on_call == 1 && invites == 1,
            "{who}: {on_call} on_call states, {invites} INVITEs; expected one each\n{}",
            trace_report(ops, &mut h)
        );
        expect_in_order(
            who,
            &ops.messages(),
            &[
                "INVITE sip:desk@",
                "SIP/2.0 200 OK",
                "ACK sip:",
                "BYE sip:",
                "SIP/2.0 200 OK",
            ],
            || trace_report(ops, &mut h),
        );
        expect_no_sipp_errors(ops, &mut h);
    }
    let ended = h.logs.wait_until(WAIT, |lines| {
        lines[from..]
            .iter()
            .filter(|l| l.is("call media ended", &[]))
            .count()
            >= 2
    });
    assert!(
        ended,
        "no \"call media ended\" for both calls\n{}",
        h.report()
    );
}

/// Issue 4, test 3: ring-no-answer. Operator A (alice, first in `linear` order) lets the call
/// ring; after the 3 s ring timeout homeline cancels it, makes alice Not Ready and offers the
/// call to B (bob), who answers.
#[test]
fn an_operator_who_does_not_answer_is_skipped_after_the_ring_timeout_and_made_not_ready() {
    let _serial = serial();
    let mut h = start(
        "rona",
        Queue {
            strategy: "linear",
            ring_timeout: "3s",
            ..Queue::default()
        },
    );
    let stay = Duration::from_secs(15);
    let alice = operator(&h, "alice", "operator_ring_cancel.xml", stay);
    let bob = operator(&h, "bob", "operator_answer.xml", stay);
    expect_available(&mut h, 0, &["alice", "bob"]);
    let from = h.logs.len();
    let call = pbx(&h, "pbx_talk.xml").arg("-d").arg("6000").start(1);
    let offered = |who: &'static str| {
        move |l: &LogLine| l.is("operator state", &[("agent", who), ("state", "offered")])
    };
    let Some((_, alice_offered)) = h.logs.wait_for(from, WAIT, offered("alice")) else {
        panic!("alice was never offered the call\n{}", h.report());
    };
    let Some((_, bob_offered)) = h.logs.wait_for(from, WAIT, offered("bob")) else {
        panic!("bob was never offered the call\n{}", h.report());
    };
    let after = logged_at(&bob_offered) - logged_at(&alice_offered);
    eprintln!("bob was offered the call {after:.3} s after alice");
    assert!(
        (2.9..=4.0).contains(&after),
        "bob was offered the call {after:.3} s after alice, expected about 3 s (ring_timeout)\n{}",
        h.report()
    );
    h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "not_ready")],
    );
    h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "bob"), ("state", "on_call")],
    );
    call.wait(&mut h);
    let lines = expect_outcomes(&mut h, 1, WAIT);
    assert_eq!(
        outcome(&lines[0]),
        "Answered { agent: AgentId(1) }",
        "bob should have answered\n{}",
        h.report()
    );
    expect_in_order(
        "alice",
        &alice.messages(),
        &[
            "INVITE sip:desk@",
            "SIP/2.0 180",
            "CANCEL sip:",
            "SIP/2.0 487",
            "ACK sip:",
        ],
        || trace_report(&alice, &mut h),
    );
    expect_no_sipp_errors(&alice, &mut h);
    let invites = count_lines(&alice.messages(), "INVITE sip:");
    assert_eq!(invites, 1, "alice (Not Ready) was called again");
    expect_in_order(
        "bob",
        &bob.messages(),
        &["INVITE sip:desk@", "SIP/2.0 200 OK", "ACK sip:", "BYE sip:"],
        || trace_report(&bob, &mut h),
    );
    expect_no_sipp_errors(&bob, &mut h);
}

/// Issue 4, test 4a: the caller hangs up while queued (no operator at all): `Abandoned`; the
/// caller heard music on hold (440 Hz) meanwhile.
#[test]
fn a_caller_hanging_up_in_the_queue_is_abandoned_after_music_on_hold() {
    let _serial = serial();
    let mut h = start("abandoned_queued", Queue::default());
    let capture = Capture::start(&h, "queued");
    pbx(&h, "pbx_talk.xml").arg("-d").arg("2500").run(&mut h);
    let lines = expect_outcomes(&mut h, 1, WAIT);
    assert_eq!(outcome(&lines[0]), "Abandoned", "{}", h.report());
    let media = expect_media_report(&mut h, 0);
    let packets = capture.stop();
    let ByLeg {
        to_pbx_addr,
        to_pbx: moh,
        ..
    } = by_leg(&packets, &media);
    let audio = pcmu_audio(moh.iter().copied());
    let heard = describe_audio(&audio, 8000);
    eprintln!("music on hold: {} packets, {heard}", moh.len());
    assert!(
        moh.len() >= 50 && tone_share(&audio, 8000, MOH_HZ) >= TONE_SHARE,
        "the caller did not hear {MOH_HZ} Hz music on hold: {} packets to the PBX ({to_pbx_addr:?}), \
         {heard}; relay report: {media}\n{}",
        moh.len(),
        h.report()
    );
}

/// Issue 4, test 4b: the caller hangs up while an operator's phone rings: homeline CANCELs
/// the operator's INVITE (200 to the CANCEL, 487 to the INVITE, ACK), the call is `Abandoned`,
/// and the operator, who missed nothing, is Available again.
#[test]
fn a_caller_hanging_up_while_an_operator_rings_cancels_the_operator() {
    let _serial = serial();
    let mut h = start("abandoned_ringing", Queue::default());
    let alice = operator(
        &h,
        "alice",
        "operator_ring_cancel.xml",
        Duration::from_secs(12),
    );
    expect_available(&mut h, 0, &["alice"]);
    let from = h.logs.len();
    pbx(&h, "pbx_talk.xml").arg("-d").arg("2000").run(&mut h);
    let lines = expect_outcomes(&mut h, 1, WAIT);
    assert_eq!(outcome(&lines[0]), "Abandoned", "{}", h.report());
    // The CANCEL's transaction completes with the operator's 487 and homeline's ACK.
    let deadline = Instant::now() + WAIT;
    while !alice.messages().contains("ACK sip:") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    expect_in_order(
        "alice",
        &alice.messages(),
        &[
            "INVITE sip:desk@",
            "SIP/2.0 180",
            "CANCEL sip:",
            "SIP/2.0 200",
            "SIP/2.0 487",
            "ACK sip:",
        ],
        || trace_report(&alice, &mut h),
    );
    expect_no_sipp_errors(&alice, &mut h);
    let offered = h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "offered")],
    );
    h.expect_event(
        offered + 1,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "available")],
    );
}

/// Issue 4, test 5: wrap-up. After a call, the operator gets no new INVITE until the queue's
/// 3 s wrap-up is over; a call placed right after the first one ends waits for it.
#[test]
fn an_operator_gets_no_call_during_wrap_up() {
    let _serial = serial();
    let mut h = start(
        "wrap_up",
        Queue {
            wrap_up: "3s",
            agents: &["alice"],
            ..Queue::default()
        },
    );
    let alice = operator(&h, "alice", "operator_answer.xml", Duration::from_secs(16));
    expect_available(&mut h, 0, &["alice"]);
    let from = h.logs.len();
    pbx(&h, "pbx_talk.xml").arg("-d").arg("1500").run(&mut h);
    // Answered at once (music on hold), it stays on the line through the wrap-up.
    let second = pbx(&h, "pbx_talk.xml").arg("-d").arg("6000").start(1);
    let state = |s: &'static str| {
        move |l: &LogLine| l.is("operator state", &[("agent", "alice"), ("state", s)])
    };
    let Some((at, wrap_up)) = h.logs.wait_for(from, WAIT, state("wrap_up")) else {
        panic!("alice never went into wrap-up\n{}", h.report());
    };
    let Some((_, offered)) = h.logs.wait_for(at, WAIT, state("offered")) else {
        panic!("alice was not offered the second call\n{}", h.report());
    };
    // The second call arrived during the wrap-up, and waited.
    let arrived = h
        .logs
        .lines()
        .iter()
        .skip(at)
        .filter(|l| l.is("INVITE offered to the runtime", &[]))
        .map(logged_at)
        .next()
        .unwrap_or_else(|| panic!("no second INVITE logged\n{}", h.report()));
    let after = logged_at(&offered) - logged_at(&wrap_up);
    eprintln!("alice was offered the second call {after:.3} s after her wrap-up began");
    assert!(
        arrived < logged_at(&wrap_up) + 2.0,
        "the second call came in {:.3} s into the wrap-up: too late to test it",
        arrived - logged_at(&wrap_up)
    );
    assert!(
        (2.95..=4.0).contains(&after),
        "alice was offered the second call {after:.3} s after her wrap-up began, expected 3 s\n{}",
        h.report()
    );
    second.wait(&mut h);
    let lines = expect_outcomes(&mut h, 2, WAIT);
    assert!(
        lines
            .iter()
            .all(|l| outcome(l) == "Answered { agent: AgentId(0) }"),
        "{lines:#?}"
    );
    assert_eq!(count_lines(&alice.messages(), "INVITE sip:"), 2);
    expect_no_sipp_errors(&alice, &mut h);
}

/// Issue 4, test 6: 50 simultaneous calls to 50 SIPp operators, all answered, RTP relayed both
/// ways with no loss (the relay reports of `call media ended`).
#[test]
fn fifty_simultaneous_calls_are_all_answered_with_media_both_ways() {
    const N: usize = 50;
    let _serial = serial();
    let names: Vec<String> = (1..=N).map(|i| format!("op{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut h = start(
        "load",
        Queue {
            agents: &names,
            rtp_ports: Some(4 * N as u16 + 40),
            ..Queue::default()
        },
    );
    let ops: Vec<RunningSipp> = names
        .iter()
        .map(|n| {
            // Staggered: each SIPp takes ports found free a moment before; fifty at once race.
            std::thread::sleep(Duration::from_millis(30));
            operator(&h, n, "operator_answer.xml", Duration::from_secs(45))
        })
        .collect();
    expect_available_within(&mut h, 0, &names, Duration::from_secs(25));
    let from = h.logs.len();
    pbx(&h, "pbx_talk.xml")
        .arg("-d")
        .arg("4000")
        .arg("-r")
        .arg("40")
        .arg("-l")
        .arg(&N.to_string())
        .start(N)
        .wait(&mut h);
    let lines = expect_outcomes(&mut h, N, WAIT);
    let mut agents: Vec<String> = lines.iter().map(outcome).collect();
    agents.sort();
    agents.dedup();
    assert!(
        agents.len() == N && agents.iter().all(|a| a.starts_with("Answered")),
        "expected {N} calls answered by {N} operators: {agents:#?}"
    );
    let ended = h.logs.wait_until(WAIT, |lines| {
        lines[from..]
            .iter()
            .filter(|l| l.is("call media ended", &[]))
            .count()
            >= N
    });
    assert!(ended, "fewer than {N} \"call media ended\"\n{}", h.report());
    let mut bad = Vec::new();
    let mut received = (u64::MAX, 0, u64::MAX, 0);
    for l in h.logs.matching(|l| l.is("call media ended", &[])) {
        let media = l.field("media").unwrap_or_default();
        if let Some((a, b)) = relay_legs(&media) {
            received = (
                received.0.min(a.packets),
                received.1.max(a.packets),
                received.2.min(b.packets),
                received.3.max(b.packets),
            );
        }
        match relay_legs(&media) {
            Some((a, b))
                if a.packets > 0
                    && b.packets > 0
                    && a.lost == 0
                    && b.lost == 0
                    && a.forwarded > 0
                    && b.forwarded > 0 => {}
            legs => bad.push(format!("call {:?}: {legs:?}", l.field("call"))),
        }
    }
    eprintln!(
        "{N} calls: homeline received {}-{} RTP packets per call from the PBX, {}-{} from the \
         operator",
        received.0, received.1, received.2, received.3
    );
    assert!(
        bad.is_empty(),
        "calls without media both ways, or with loss:\n  {}",
        bad.join("\n  ")
    );
    for op in &ops {
        assert_eq!(
            count_lines(&op.messages(), "INVITE sip:"),
            1,
            "{}",
            trace_report(op, &mut h)
        );
        expect_no_sipp_errors(op, &mut h);
    }
}

/// Operator `user` (registered from 127.0.0.2) dialling `code` from another SIPp there:
/// digest challenge, 200, homeline's BYE.
fn dial_feature(h: &mut Homeline, user: &str, code: &str) {
    h.sipp_in(&sipp_dir(), "operator_feature.xml")
        .source_ip(AGENT_IP)
        .service(code)
        .auth(user, PASSWORD)
        .arg("-key")
        .arg("user")
        .arg(user)
        .run(h);
}

#[test]
fn feature_codes_from_the_softphone_change_the_operator_state() {
    let _serial = serial();
    let mut h = start(
        "feature_codes",
        Queue {
            agents: &["alice"],
            ready_on_register: false,
            ..Queue::default()
        },
    );
    let alice = operator(&h, "alice", "operator_answer.xml", Duration::from_secs(30));
    let state = |s: &'static str| [("agent", "alice"), ("state", s)];
    h.expect_event(0, WAIT, "operator state", &state("not_ready"));
    // A call while alice is Not Ready waits in the queue, with music on hold.
    let call = pbx(&h, "pbx_talk.xml").arg("-d").arg("6000").start(1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count_lines(&alice.messages(), "INVITE sip:"),
        0,
        "alice is Not Ready: no call for her\n{}",
        trace_report(&alice, &mut h)
    );

    let from = h.logs.len();
    dial_feature(&mut h, "alice", "*1");
    h.expect_event(from, WAIT, "operator state", &state("available"));
    let confirmed = h.expect_event(from, WAIT, "feature code confirmed", &[]);
    let tone_packets = h.logs.matching(|l| l.is("feature code confirmed", &[]))[0]
        .field("tone_packets")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or_default();
    assert!(
        tone_packets >= 15,
        "the confirmation tone: {tone_packets} packets (line {confirmed}); {}",
        h.report()
    );
    // Ready: the waiting call is offered to alice, who answers.
    h.expect_event(from, WAIT, "operator state", &state("on_call"));
    call.wait(&mut h);
    let lines = expect_outcomes(&mut h, 1, WAIT);
    assert_eq!(outcome(&lines[0]), "Answered { agent: AgentId(0) }");
    h.expect_event(from, WAIT, "operator state", &state("available"));

    let from = h.logs.len();
    dial_feature(&mut h, "alice", "*2");
    h.expect_event(from, WAIT, "operator state", &state("not_ready"));
    let from = h.logs.len();
    dial_feature(&mut h, "alice", "*3");
    h.expect_event(from, WAIT, "operator state", &state("logged_out"));
    // Anything else an operator dials that is not a number is not served (a number goes out
    // through the trunk: tests/outbound.rs).
    h.sipp_in(&sipp_dir(), "operator_not_found.xml")
        .source_ip(AGENT_IP)
        .service("nobody")
        .auth("alice", PASSWORD)
        .arg("-key")
        .arg("user")
        .arg("alice")
        .run(&mut h);
    expect_no_sipp_errors(&alice, &mut h);
}
