//! The call suites' setup (`calls.rs`, `registration.rs`, `hold.rs`, `dtmf.rs`,
//! `linphone_call.rs`; [`outbound`]: the peers of `outbound.rs` and `outbound_tcp.rs`): the
//! real `homeline` with the queue `support` of `tests/calls/homeline.toml.in` (number 8000, `when_empty = "wait"`,
//! `max_misses = 1`) and its operators, a SIPp PBX calling 8000 from 127.0.0.1, SIPp operators
//! registering from 127.0.0.2, and what the tests read back: `operator state`, `call outcome`
//! and `call media ended` log lines, SIPp's message traces and error logs.

pub mod outbound;

use crate::audio::{rms, tone, tone_share, wav_ulaw};
use crate::sip_harness::{AGENT_IP, Homeline, LogLine, RunningSipp, Setup, Sipp, repo, require};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Every operator's password.
pub const PASSWORD: &str = "demo-password";
/// What the PBX sends.
pub const PBX_HZ: f64 = 1000.0;
/// What operators send (baresip's source, SIPp operators' stream).
pub const OPERATOR_HZ: f64 = 660.0;
/// homeline's music on hold.
pub const MOH_HZ: f64 = 440.0;
/// Share of the signal's energy a tone must have for a check to pass.
pub const TONE_SHARE: f64 = 0.5;
/// How long a test waits for one event.
pub const WAIT: Duration = Duration::from_secs(8);

// ---- files, serialization ----

/// `tests/calls`: the configuration template, SIPp scenarios and baresip templates.
pub fn calls_dir() -> PathBuf {
    repo().join("tests/calls")
}

/// `tests/calls/sipp`: the PBX's and the operators' SIPp scenarios.
pub fn sipp_dir() -> PathBuf {
    calls_dir().join("sipp")
}

/// One test at a time: they share the CPU with real-time audio and SIPp timers.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `contents` to `path`; the test fails if it cannot.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The queue `support` and its operators.
pub struct Queue<'a> {
    /// RTP ports homeline gets (4 a call); `None`: the harness's 100.
    pub rtp_ports: Option<u16>,
    pub strategy: &'a str,
    pub ring_timeout: &'a str,
    pub wrap_up: &'a str,
    pub agents: &'a [&'a str],
    /// The operators' `ready_on_register`.
    pub ready_on_register: bool,
    /// `[sip] digest_algorithms`: MD5 only unless a test says otherwise (SIPp and baresip
    /// answer only MD5).
    pub digest_algorithms: &'a str,
}

impl Default for Queue<'_> {
    fn default() -> Self {
        Queue {
            rtp_ports: None,
            strategy: "longest-idle",
            ring_timeout: "15s",
            wrap_up: "0s",
            agents: &["alice", "bob"],
            ready_on_register: true,
            digest_algorithms: r#"["MD5"]"#,
        }
    }
}

/// Starts homeline with `queue` (and its digest algorithms), and writes the WAVs the SIPp
/// scenarios stream into its directory (SIPp's working directory).
pub fn start(name: &str, queue: Queue<'_>) -> Homeline {
    require("sipp", "sip-tester");
    let agents: String = queue
        .agents
        .iter()
        .map(|a| {
            format!(
                "[[agent]]\nname = \"{a}\"\npassword = \"{PASSWORD}\"\nqueues = [\"support\"]\n\
                 ready_on_register = {}\n\n",
                queue.ready_on_register
            )
        })
        .collect();
    let mut setup = Setup::default();
    if let Some(n) = queue.rtp_ports {
        setup = setup.rtp_ports(n);
    }
    let h = Homeline::start(
        name,
        setup
            .sip("digest_algorithms", queue.digest_algorithms)
            .template(calls_dir().join("homeline.toml.in"))
            .value("STRATEGY", queue.strategy)
            .value("RING_TIMEOUT", queue.ring_timeout)
            .value("WRAP_UP", queue.wrap_up)
            .value("AGENTS", &agents),
    );
    write(
        &h.dir.join("tone1k_ulaw.wav"),
        wav_ulaw(&tone(PBX_HZ, 3.0, 0.5)),
    );
    write(
        &h.dir.join("tone660_ulaw.wav"),
        wav_ulaw(&tone(OPERATOR_HZ, 3.0, 0.5)),
    );
    h
}

/// The PBX: `scenario` (from `tests/calls/sipp`) calling 8000 from 127.0.0.1.
pub fn pbx(h: &Homeline, scenario: &str) -> Sipp {
    h.sipp_in(&sipp_dir(), scenario).service("8000")
}

/// A SIPp operator registering `user` from 127.0.0.2 and staying registered for `stay`;
/// `answer` (from `tests/calls/sipp`) handles the INVITEs homeline sends it.
pub fn operator(h: &Homeline, user: &str, answer: &str, stay: Duration) -> RunningSipp {
    operator_sipp(h, "operator_register.xml", user, answer, stay).start(1)
}

/// The SIPp of an operator `user` on 127.0.0.2 running `scenario` (from `tests/calls/sipp`),
/// which registers, with `-d` (its `<pause/>`) set to `stay` and `answer` as its out-of-call
/// scenario; not started, for the caller to add arguments (`-key`, TCP).
pub fn operator_sipp(
    h: &Homeline,
    scenario: &str,
    user: &str,
    answer: &str,
    stay: Duration,
) -> Sipp {
    h.sipp_in(&sipp_dir(), scenario)
        .source_ip(AGENT_IP)
        .service(user)
        .auth(user, PASSWORD)
        .arg("-oocsf")
        .arg(&sipp_dir().join(answer).to_string_lossy())
        .arg("-d")
        .arg(&stay.as_millis().to_string())
}

/// Waits until every one of `agents` is `available`, looking at lines from `from` on.
#[track_caller]
pub fn expect_available(h: &mut Homeline, from: usize, agents: &[&str]) {
    expect_available_within(h, from, agents, WAIT);
}

/// As [`expect_available`], waiting up to `wait` for each (many operators registering at once
/// on a loaded CI machine take longer).
pub fn expect_available_within(h: &mut Homeline, from: usize, agents: &[&str], wait: Duration) {
    for a in agents {
        h.expect_event(
            from,
            wait,
            "operator state",
            &[("agent", a), ("state", "available")],
        );
    }
}

/// The messages SIPp traced that start with `start` (e.g. `INVITE sip:`): requests received
/// by a UAS.
pub fn count_lines(trace: &str, start: &str) -> usize {
    trace.lines().filter(|l| l.starts_with(start)).count()
}

/// Fails unless each of `seen` is in `trace`, in this order.
#[track_caller]
pub fn expect_in_order(what: &str, trace: &str, seen: &[&str], context: impl FnOnce() -> String) {
    let mut at = 0;
    for s in seen {
        match trace[at..].find(s) {
            Some(i) => at += i + s.len(),
            None => panic!(
                "{what}: expected {seen:?} in this order, `{s}` missing\n{}",
                context()
            ),
        }
    }
}

/// The seconds of the day at which homeline logged `line` (its `timestamp`, RFC 3339 UTC).
pub fn logged_at(line: &LogLine) -> f64 {
    let ts = line
        .field("timestamp")
        .unwrap_or_else(|| panic!("log line without timestamp: {}", line.raw));
    let time = ts
        .split_once('T')
        .map(|(_, t)| t.trim_end_matches('Z'))
        .unwrap_or_else(|| panic!("unexpected timestamp {ts}"));
    let time = time.split(['+', '-']).next().unwrap_or(time);
    let mut parts = time.split(':');
    let mut next = || -> f64 {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected timestamp {ts}"))
    };
    next() * 3600.0 + next() * 60.0 + next()
}

/// The `call outcome` lines so far.
pub fn outcomes(h: &Homeline) -> Vec<LogLine> {
    h.logs.matching(|l| l.is("call outcome", &[]))
}

/// Waits for `n` `call outcome` lines in all; returns them.
#[track_caller]
pub fn expect_outcomes(h: &mut Homeline, n: usize, timeout: Duration) -> Vec<LogLine> {
    let ok = h.logs.wait_until(timeout, |lines| {
        lines.iter().filter(|l| l.is("call outcome", &[])).count() >= n
    });
    if !ok {
        let got: Vec<String> = outcomes(h).into_iter().map(|l| l.raw).collect();
        panic!(
            "expected {n} \"call outcome\" lines within {timeout:?}, got {got:#?}\n{}",
            h.report()
        );
    }
    outcomes(h)
}

pub fn outcome(line: &LogLine) -> String {
    line.field("outcome").unwrap_or_default()
}

/// Waits for a `call media ended` line from `from` on; its `media` field, the relay report.
#[track_caller]
pub fn expect_media_report(h: &mut Homeline, from: usize) -> String {
    h.logs
        .wait_for(from, WAIT, |l| l.is("call media ended", &[]))
        .map(|(_, l)| l.field("media").unwrap_or_default())
        .unwrap_or_else(|| panic!("no \"call media ended\"\n{}", h.report()))
}

/// Waits for the `call outcome` of the queue `support` from `from` on and fails unless the
/// call was answered; `what` names the call in the failure message.
#[track_caller]
pub fn expect_answered(h: &mut Homeline, from: usize, what: &str) {
    let line = h
        .logs
        .wait_for(from, WAIT, |l| {
            l.is("call outcome", &[("queue", "support")])
        })
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("no call outcome for {what}\n{}", h.report()));
    assert!(
        outcome(&line).starts_with("Answered"),
        "{what}'s outcome: {}\n{}",
        line.raw,
        h.report()
    );
}

/// A description of `samples` (at `rate` Hz) for failure messages: length, level, and the
/// share of each tone of these tests.
pub fn describe_audio(samples: &[i16], rate: u32) -> String {
    format!(
        "{:.2} s, rms {:.0}, share at {PBX_HZ} Hz {:.2}, at {OPERATOR_HZ} Hz {:.2}, at {MOH_HZ} Hz {:.2}",
        samples.len() as f64 / f64::from(rate.max(1)),
        rms(samples),
        tone_share(samples, rate, PBX_HZ),
        tone_share(samples, rate, OPERATOR_HZ),
        tone_share(samples, rate, MOH_HZ),
    )
}

/// The operators' SIPp and a description of what it saw, for failure messages.
pub fn trace_report(ops: &RunningSipp, h: &mut Homeline) -> String {
    format!("{}\n{}", ops.describe(), ops.report(h))
}

/// Fails unless the out-of-call scenario of the operators' SIPp ran without an error (SIPp's
/// exit status counts only the REGISTER calls).
#[track_caller]
pub fn expect_no_sipp_errors(ops: &RunningSipp, h: &mut Homeline) {
    let errors = ops.errors();
    let failed = [
        "Abort",
        "nexpected",
        "ailed",
        "imeout",
        "etransmission",
        "Discard",
    ]
    .iter()
    .any(|w| errors.contains(w));
    if failed {
        panic!(
            "{}: errors in SIPp's error log\n{}",
            ops.describe(),
            trace_report(ops, h)
        );
    }
}
