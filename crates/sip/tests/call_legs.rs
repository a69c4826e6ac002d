//! The call-leg API end to end: a `SipEdge` on free loopback ports, SIPp as the PBX (UAC
//! scenarios from `tests/sipp/pbx_*.xml`, from 127.0.0.1, the trunk's network) and as an
//! operator's softphone (`operator_register.xml`: REGISTER with MD5 digest from 127.0.0.2,
//! then the out-of-call scenario given with `-oocsf` answers the edge's INVITE). The test
//! plays the runtime: it reads the edge's events and calls the edge back. The forking tests
//! register a second device of the same operator (`operator_register_device.xml`, from
//! 127.0.0.3, with a Contact of its own) and check that the leg rings both and ends in one
//! outcome.
//!
//! Each test stays under 20 s: SIPp runs with `-timeout`, every wait has its own limit, and
//! every SIPp is killed when the test ends, failing or not. SIPp's traces are kept in
//! `target/tmp/call_legs/TEST/`.

use homeline_sip::{CallRef, EdgeEvent, LegRef, SipEdge};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::{EDGE_IP, PASSWORD, Sipp, free_port_pair, ip, scenario, settings};
use tokio::sync::mpsc;

mod support;

const OPERATOR_IP: &str = "127.0.0.2";
const WAIT: Duration = Duration::from_secs(8);

fn test_dir(name: &str) -> PathBuf {
    support::test_dir("call_legs", name)
}

/// What the test's runtime does on each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Play {
    /// Inbound → invite the operator; ringing → ring the PBX; answered → answer the PBX
    /// with the operator's SDP; PBX gone → hang up (or cancel) the operator; operator hung
    /// up → hang up the PBX.
    Bridge,
    /// Inbound → invite the operator; unreachable or refused → refuse the PBX with 480.
    RefuseWhenUnreachable,
}

/// A started edge and the runtime task playing `play` on its events.
struct Harness {
    edge: Arc<SipEdge>,
    port: u16,
    seen: mpsc::UnboundedReceiver<EdgeEvent>,
    log: Vec<EdgeEvent>,
}

impl Harness {
    async fn start(play: Play, operator: &'static str) -> Harness {
        let port = free_port_pair(EDGE_IP);
        let mut edge = SipEdge::start(settings(port)).await.expect("edge starts");
        let mut events = edge.events().expect("events, the first time");
        assert!(edge.events().is_none(), "events are taken once");
        let edge = Arc::new(edge);
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let runtime = edge.clone();
        tokio::spawn(async move {
            let mut calls: HashMap<LegRef, CallRef> = HashMap::new();
            let mut last_sdp: HashMap<CallRef, Vec<u8>> = HashMap::new();
            let mut next_leg = 1;
            while let Some(ev) = events.recv().await {
                let _ = seen_tx.send(ev.clone());
                match ev {
                    EdgeEvent::Inbound {
                        call,
                        offer,
                        caller,
                        ..
                    } => {
                        let leg = LegRef(next_leg);
                        next_leg += 1;
                        calls.insert(leg, call);
                        let sdp = offer.unwrap_or_default();
                        runtime.invite_agent(leg, operator, sdp, &caller).await;
                    }
                    EdgeEvent::LegRinging { leg } if play == Play::Bridge => {
                        if let Some(call) = calls.get(&leg) {
                            runtime.ring_pbx(*call).await;
                        }
                    }
                    EdgeEvent::LegAnswered { leg, answer } => match calls.get(&leg) {
                        Some(call) => {
                            let sdp = answer.unwrap_or_default();
                            last_sdp.insert(*call, sdp.clone());
                            runtime.answer_pbx(*call, sdp).await
                        }
                        None => runtime.bye_agent(leg).await,
                    },
                    // A relaying runtime answers a re-INVITE with what it last had from the
                    // other side (homeline's call task builds a real answer instead).
                    EdgeEvent::PbxHold { call, .. } => {
                        let sdp = last_sdp.get(&call).cloned();
                        runtime.answer_pbx_reoffer(call, sdp).await;
                    }
                    EdgeEvent::LegUnreachable { leg } | EdgeEvent::LegRefused { leg, .. } => {
                        if let Some(call) = calls.remove(&leg)
                            && play == Play::RefuseWhenUnreachable
                        {
                            runtime.reject_pbx(call, 480, None).await;
                        }
                    }
                    EdgeEvent::LegHungUp { leg } => {
                        if let Some(call) = calls.remove(&leg) {
                            runtime.bye_pbx(call).await;
                        }
                    }
                    EdgeEvent::PbxGone { call } => {
                        let legs: Vec<LegRef> = calls
                            .iter()
                            .filter(|(_, c)| **c == call)
                            .map(|(l, _)| *l)
                            .collect();
                        for leg in legs {
                            calls.remove(&leg);
                            // BYE when answered; CANCEL when still ringing.
                            runtime.bye_agent(leg).await;
                        }
                    }
                    _ => {}
                }
            }
        });
        Harness {
            edge,
            port,
            seen,
            log: Vec::new(),
        }
    }

    /// Waits for an event matching `want`, returning it; fails after [`WAIT`].
    async fn expect(&mut self, what: &str, want: impl Fn(&EdgeEvent) -> bool) -> EdgeEvent {
        if let Some(ev) = self.log.iter().find(|e| want(e)) {
            return ev.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(ev)) => {
                    self.log.push(ev.clone());
                    if want(&ev) {
                        return ev;
                    }
                }
                _ => panic!("no {what} within {WAIT:?}; events: {:#?}", self.log),
            }
        }
    }

    /// Waits for `LegAnswered` with the SDP of `operator_answer.xml` or
    /// `operator_hangup.xml` (`o=operator`); `why` explains a failure.
    async fn expect_operator_answer(&mut self, why: &str) {
        let answered = self
            .expect("LegAnswered", |e| {
                matches!(e, EdgeEvent::LegAnswered { .. })
            })
            .await;
        assert!(
            matches!(&answered, EdgeEvent::LegAnswered { answer: Some(sdp), .. } if sdp.windows(10).any(|w| w == b"o=operator")),
            "{why}: {answered:?}"
        );
    }

    /// Takes the events seen so far without waiting.
    fn drain(&mut self) -> &[EdgeEvent] {
        while let Ok(ev) = self.seen.try_recv() {
            self.log.push(ev);
        }
        &self.log
    }

    fn operator(&self, dir: &Path, name: &str, answer: &str, tcp: bool) -> Sipp {
        Sipp::start(
            dir,
            name,
            "operator_register.xml",
            self.port,
            OPERATOR_IP,
            tcp,
            &[
                "-s", "alice", "-au", "alice", "-ap", PASSWORD, "-d", "5000", "-oocsf", answer,
            ],
        )
    }

    /// A second device of `alice` on `ip` (its own Contact), answering with `answer` (a
    /// scenario of `tests/sipp/`), with `extra` arguments.
    fn device(
        &self,
        dir: &Path,
        name: &str,
        answer: &str,
        ip: &str,
        tcp: bool,
        extra: &[&str],
    ) -> Sipp {
        let answer = scenario(answer);
        let answer = answer.to_string_lossy();
        let mut args = vec![
            "-s", "alice", "-au", "alice", "-ap", PASSWORD, "-d", "5000", "-oocsf", &answer,
        ];
        args.extend_from_slice(extra);
        Sipp::start(
            dir,
            name,
            "operator_register_device.xml",
            self.port,
            ip,
            tcp,
            &args,
        )
    }

    /// Waits until `n` bindings are registered.
    async fn bindings(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.edge.bindings() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} bindings, not {n}",
                self.edge.bindings()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn count(&mut self, want: impl Fn(&EdgeEvent) -> bool) -> usize {
        self.drain().iter().filter(|e| want(e)).count()
    }

    fn pbx(&self, dir: &Path, name: &str, scenario_file: &str) -> Sipp {
        Sipp::start(
            dir,
            name,
            scenario_file,
            self.port,
            EDGE_IP,
            false,
            &["-s", "8000"],
        )
    }
}

async fn answered_call(name: &str, tcp: bool) {
    let dir = test_dir(name);
    let mut h = Harness::start(Play::Bridge, "alice").await;
    let answer = scenario("operator_answer.xml");
    let mut operator = h.operator(&dir, "operator", &answer.to_string_lossy(), tcp);
    h.expect(
        "Registered",
        |e| matches!(e, EdgeEvent::Registered { user } if user == "alice"),
    )
    .await;
    assert_eq!(h.edge.registered(), ["alice"]);
    let mut pbx = h.pbx(&dir, "pbx", "pbx_call.xml");
    let inbound = h
        .expect("Inbound", |e| matches!(e, EdgeEvent::Inbound { .. }))
        .await;
    let EdgeEvent::Inbound {
        trunk,
        queue,
        number,
        caller,
        offer,
        source,
        ..
    } = inbound
    else {
        unreachable!("matched above");
    };
    assert_eq!(
        (&trunk[..], &queue[..], &number[..]),
        ("pbx", "support", "8000")
    );
    assert_eq!(caller, "+33123456789");
    assert!(
        offer.is_some_and(|o| o.starts_with(b"v=0")),
        "the INVITE's SDP"
    );
    assert_eq!(source.ip(), ip(EDGE_IP));
    h.expect("LegRinging", |e| matches!(e, EdgeEvent::LegRinging { .. }))
        .await;
    let answered = h
        .expect("LegAnswered", |e| {
            matches!(e, EdgeEvent::LegAnswered { .. })
        })
        .await;
    assert!(
        matches!(&answered, EdgeEvent::LegAnswered { answer: Some(sdp), .. } if sdp.windows(10).any(|w| w == b"o=operator")),
        "{answered:?}"
    );
    h.expect("PbxGone", |e| matches!(e, EdgeEvent::PbxGone { .. }))
        .await;
    pbx.expect_success(WAIT, h.drain()).await;
    operator.expect_success(WAIT, h.drain()).await;
    // The INVITE went to where the phone registered from, not to its Contact (192.0.2.10,
    // as a phone behind NAT advertises); the 2xx ACK and the BYE too.
    operator.expect_out_of_call_success(
        &[
            "INVITE sip:desk@192.0.2.10:5062",
            "SIP/2.0 200 OK",
            "ACK sip:desk@",
            "BYE sip:desk@",
            "SIP/2.0 200 OK",
        ],
        h.drain(),
    );
    if tcp {
        // SIPp exited: its connection closed, and with it the registration.
        h.expect(
            "Unregistered",
            |e| matches!(e, EdgeEvent::Unregistered { user } if user == "alice"),
        )
        .await;
        assert!(h.edge.registered().is_empty());
    }
    let log = h.drain().to_vec();
    assert!(
        !log.iter().any(|e| matches!(
            e,
            EdgeEvent::LegHungUp { .. }
                | EdgeEvent::LegRefused { .. }
                | EdgeEvent::LegUnreachable { .. }
        )),
        "{log:#?}"
    );
    assert_eq!(h.edge.stats().overloaded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_call_is_bridged_and_hung_up_over_udp() {
    let _serial = serial().await;
    answered_call("answered_udp", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_registered_over_tcp_is_called_on_its_connection() {
    let _serial = serial().await;
    answered_call("answered_tcp", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_cancel_while_the_operator_rings_cancels_the_operator() {
    let _serial = serial().await;
    let dir = test_dir("cancel");
    let mut h = Harness::start(Play::Bridge, "alice").await;
    let ring = scenario("operator_ring_cancel.xml");
    let mut operator = h.operator(&dir, "operator", &ring.to_string_lossy(), false);
    h.expect("Registered", |e| matches!(e, EdgeEvent::Registered { .. }))
        .await;
    let mut pbx = h.pbx(&dir, "pbx", "pbx_cancel.xml");
    h.expect("LegRinging", |e| matches!(e, EdgeEvent::LegRinging { .. }))
        .await;
    h.expect("PbxGone", |e| matches!(e, EdgeEvent::PbxGone { .. }))
        .await;
    h.expect("LegRefused 487", |e| {
        matches!(e, EdgeEvent::LegRefused { status: 487, .. })
    })
    .await;
    pbx.expect_success(WAIT, h.drain()).await;
    operator.expect_success(WAIT, h.drain()).await;
    operator.expect_out_of_call_success(
        &[
            "INVITE sip:desk@",
            "SIP/2.0 180 Ringing",
            "CANCEL sip:desk@",
            "SIP/2.0 487",
            "ACK sip:desk@",
        ],
        h.drain(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_who_is_not_registered_is_unreachable_at_once() {
    let _serial = serial().await;
    let dir = test_dir("unreachable");
    let mut h = Harness::start(Play::RefuseWhenUnreachable, "bob").await;
    let mut pbx = h.pbx(&dir, "pbx", "pbx_refused.xml");
    let inbound = h
        .expect("Inbound", |e| matches!(e, EdgeEvent::Inbound { .. }))
        .await;
    let started = tokio::time::Instant::now();
    h.expect("LegUnreachable", |e| {
        matches!(e, EdgeEvent::LegUnreachable { .. })
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "unreachable after {:?}",
        started.elapsed()
    );
    pbx.expect_success(WAIT, h.drain()).await;
    assert!(matches!(inbound, EdgeEvent::Inbound { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_hanging_up_ends_the_pbx_call_after_a_pbx_hold() {
    let _serial = serial().await;
    let dir = test_dir("operator_hangs_up");
    let mut h = Harness::start(Play::Bridge, "alice").await;
    let hangup = scenario("operator_hangup.xml");
    let mut operator = h.operator(&dir, "operator", &hangup.to_string_lossy(), false);
    h.expect("Registered", |e| matches!(e, EdgeEvent::Registered { .. }))
        .await;
    let mut pbx = h.pbx(&dir, "pbx", "pbx_hungup.xml");
    h.expect("LegAnswered", |e| {
        matches!(e, EdgeEvent::LegAnswered { .. })
    })
    .await;
    h.expect("LegHungUp", |e| matches!(e, EdgeEvent::LegHungUp { .. }))
        .await;
    // The PBX's re-INVITE (hold) was answered with the operator's SDP, then our BYE came.
    pbx.expect_success(WAIT, h.drain()).await;
    operator.expect_success(WAIT, h.drain()).await;
    operator.expect_out_of_call_success(
        &[
            "INVITE sip:desk@",
            "SIP/2.0 200 OK",
            "ACK sip:desk@",
            "BYE sip:homeline@",
            "SIP/2.0 200 OK",
        ],
        h.drain(),
    );
    let log = h.drain().to_vec();
    assert!(
        !log.iter().any(|e| matches!(e, EdgeEvent::PbxGone { .. })),
        "the PBX did not hang up: {log:#?}"
    );
}

const SECOND_DEVICE_IP: &str = "127.0.0.3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_leg_is_answered_by_one_device_and_the_other_is_cancelled() {
    let _serial = serial().await;
    let dir = test_dir("fork_answer_cancel");
    let mut h = Harness::start(Play::Bridge, "alice").await;
    let answer = scenario("operator_answer.xml");
    let mut desk = h.operator(&dir, "desk", &answer.to_string_lossy(), false);
    // The second device rings until cancelled, registered over TCP.
    let mut mobile = h.device(
        &dir,
        "mobile",
        "operator_ring_cancel.xml",
        SECOND_DEVICE_IP,
        true,
        &[],
    );
    h.bindings(2).await;
    let mut pbx = h.pbx(&dir, "pbx", "pbx_call.xml");
    h.expect_operator_answer("the answering device's SDP").await;
    h.expect("PbxGone", |e| matches!(e, EdgeEvent::PbxGone { .. }))
        .await;
    pbx.expect_success(WAIT, h.drain()).await;
    desk.expect_success(WAIT, h.drain()).await;
    mobile.expect_success(WAIT, h.drain()).await;
    mobile.expect_out_of_call_success(
        &[
            "INVITE sip:desk@127.0.0.3",
            "SIP/2.0 180 Ringing",
            "CANCEL sip:desk@",
            "SIP/2.0 487",
            "ACK sip:desk@",
        ],
        h.drain(),
    );
    desk.expect_out_of_call_success(
        &[
            "INVITE sip:desk@192.0.2.10:5062",
            "SIP/2.0 200 OK",
            "ACK sip:desk@",
            "BYE sip:desk@",
            "SIP/2.0 200 OK",
        ],
        h.drain(),
    );
    assert_eq!(h.count(|e| matches!(e, EdgeEvent::Registered { .. })), 1);
    assert_eq!(
        h.count(|e| matches!(e, EdgeEvent::LegRinging { .. })),
        1,
        "{:#?}",
        h.log
    );
    assert_eq!(
        h.count(|e| matches!(e, EdgeEvent::LegAnswered { .. })),
        1,
        "{:#?}",
        h.log
    );
    assert_eq!(
        h.count(|e| matches!(
            e,
            EdgeEvent::LegRefused { .. }
                | EdgeEvent::LegUnreachable { .. }
                | EdgeEvent::LegHungUp { .. }
        )),
        0,
        "{:#?}",
        h.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_leg_refused_by_every_device_reports_the_decline() {
    let _serial = serial().await;
    let dir = test_dir("fork_refused");
    let mut h = Harness::start(Play::RefuseWhenUnreachable, "alice").await;
    let mut busy = h.device(&dir, "busy", "operator_busy.xml", OPERATOR_IP, false, &[]);
    let mut decline = h.device(
        &dir,
        "decline",
        "operator_decline.xml",
        SECOND_DEVICE_IP,
        false,
        &[],
    );
    h.bindings(2).await;
    let mut pbx = h.pbx(&dir, "pbx", "pbx_refused.xml");
    let refused = h
        .expect("LegRefused", |e| matches!(e, EdgeEvent::LegRefused { .. }))
        .await;
    assert!(
        matches!(refused, EdgeEvent::LegRefused { status: 603, .. }),
        "a decline beats busy: {refused:?}"
    );
    pbx.expect_success(WAIT, h.drain()).await;
    busy.expect_success(WAIT, h.drain()).await;
    decline.expect_success(WAIT, h.drain()).await;
    busy.expect_out_of_call_success(
        &["INVITE sip:desk@", "SIP/2.0 486", "ACK sip:desk@"],
        h.drain(),
    );
    decline.expect_out_of_call_success(
        &["INVITE sip:desk@", "SIP/2.0 603", "ACK sip:desk@"],
        h.drain(),
    );
    assert_eq!(
        h.count(|e| matches!(e, EdgeEvent::LegRefused { .. })),
        1,
        "{:#?}",
        h.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_answer_of_a_forked_leg_is_hung_up_and_the_first_device_stays_in_the_call() {
    let _serial = serial().await;
    let dir = test_dir("fork_crossing_answers");
    let mut h = Harness::start(Play::Bridge, "alice").await;
    let hangup = scenario("operator_hangup.xml");
    let mut desk = h.operator(&dir, "desk", &hangup.to_string_lossy(), false);
    let mut late = h.device(
        &dir,
        "late",
        "operator_answer_late.xml",
        SECOND_DEVICE_IP,
        false,
        &[],
    );
    h.bindings(2).await;
    let mut pbx = h.pbx(&dir, "pbx", "pbx_hungup.xml");
    h.expect_operator_answer("the first answer wins").await;
    // The late device's 200 is acknowledged and hung up; the first device's BYE (in its
    // own dialog of the forked leg) still ends the call.
    late.expect_success(WAIT, h.drain()).await;
    late.expect_out_of_call_success(
        &[
            "INVITE sip:desk@127.0.0.3",
            "SIP/2.0 200 OK",
            "ACK sip:late@",
            "BYE sip:late@",
            "SIP/2.0 200 OK",
        ],
        h.drain(),
    );
    h.expect("LegHungUp", |e| matches!(e, EdgeEvent::LegHungUp { .. }))
        .await;
    pbx.expect_success(WAIT, h.drain()).await;
    desk.expect_success(WAIT, h.drain()).await;
    assert_eq!(
        h.count(|e| matches!(e, EdgeEvent::LegAnswered { .. })),
        1,
        "{:#?}",
        h.log
    );
    assert_eq!(
        h.count(|e| matches!(
            e,
            EdgeEvent::LegRefused { .. } | EdgeEvent::LegUnreachable { .. }
        )),
        0,
        "{:#?}",
        h.log
    );
}

/// Sends one INVITE for 8000 from 127.0.0.1 over UDP and returns the statuses of the
/// responses, up to the first final one.
async fn raw_invite(port: u16, call_id: &str) -> Vec<u16> {
    let sock = tokio::net::UdpSocket::bind((ip(EDGE_IP), 0))
        .await
        .expect("UDP socket");
    let me = sock.local_addr().expect("local address");
    let invite = format!(
        "INVITE sip:8000@{EDGE_IP}:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\n\
         From: <sip:caller@{me}>;tag=t{call_id}\r\n\
         To: <sip:8000@{EDGE_IP}:{port}>\r\n\
         Call-ID: {call_id}@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{me}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), (ip(EDGE_IP), port))
        .await
        .expect("send");
    let mut statuses = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf)).await {
        let text = String::from_utf8_lossy(&buf[..n]);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        statuses.push(status);
        if status >= 200 {
            break;
        }
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_invites_get_480_without_a_runtime_and_503_when_it_stopped_listening() {
    let _serial = serial().await;
    let port = free_port_pair(EDGE_IP);
    let mut edge = SipEdge::start(settings(port)).await.expect("edge starts");
    assert_eq!(raw_invite(port, "norun").await, [100, 480]);
    let events = edge.events().expect("events");
    drop(events);
    assert_eq!(raw_invite(port, "closed").await, [100, 503]);
    assert_eq!(edge.stats().overloaded, 1);
    edge.shutdown().await;
}

/// The tests run one at a time: each starts several SIPp processes on ports found free a
/// moment earlier, and running them side by side made those ports race.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
