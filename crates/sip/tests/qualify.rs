//! Operator qualify end to end: a `SipEdge` that sends OPTIONS to every binding each second
//! (T1 50 ms, so a device has 64×T1 = 3.2 s to answer), and SIPp softphones registered as
//! `alice` from 127.0.0.2 (`operator_register.xml`). A device that answers the OPTIONS
//! (`operator_options.xml` as its out-of-call scenario) stays registered round after round;
//! one that went away (its SIPp ended) is removed and `Unregistered` comes. Over TCP the
//! OPTIONS go on the device's connection. SIPp's traces
//! are kept in `target/tmp/qualify/TEST/`.

use homeline_sip::{EdgeEvent, SipEdge};
use std::time::Duration;
use support::{EDGE_IP, PASSWORD, Sipp, free_port_pair, scenario, settings};
use tokio::sync::mpsc;

mod support;

const OPERATOR_IP: &str = "127.0.0.2";

/// An edge qualifying every second on a free port, and its events.
async fn edge() -> (SipEdge, u16, mpsc::Receiver<EdgeEvent>) {
    let port = free_port_pair(EDGE_IP);
    let mut s = settings(port);
    s.qualify_interval = Duration::from_secs(1);
    s.t1 = Duration::from_millis(50);
    let mut edge = SipEdge::start(s).await.expect("edge starts");
    let events = edge.events().expect("events");
    (edge, port, events)
}

/// `alice`'s softphone (over TCP if `tcp`), registered for `millis` ms, answering with
/// `ooc` meanwhile.
fn phone(dir: &std::path::Path, port: u16, millis: u32, ooc: &str, tcp: bool) -> Sipp {
    let ooc = scenario(ooc);
    let ooc = ooc.to_string_lossy();
    let millis = millis.to_string();
    Sipp::start(
        dir,
        "phone",
        "operator_register.xml",
        port,
        OPERATOR_IP,
        tcp,
        &[
            "-s", "alice", "-au", "alice", "-ap", PASSWORD, "-d", &millis, "-oocsf", &ooc,
        ],
    )
}

async fn next(events: &mut mpsc::Receiver<EdgeEvent>, within: Duration) -> Option<EdgeEvent> {
    tokio::time::timeout(within, events.recv())
        .await
        .ok()
        .flatten()
}

async fn alive(name: &str, tcp: bool) {
    let dir = support::test_dir("qualify", name);
    let (edge, port, mut events) = edge().await;
    let mut phone = phone(&dir, port, 4500, "operator_options.xml", tcp);
    let first = next(&mut events, Duration::from_secs(5)).await;
    assert!(
        matches!(&first, Some(EdgeEvent::Registered { user }) if user == "alice"),
        "{first:?}\n{}",
        phone.report()
    );
    // Four rounds at least while the phone is up: no event, the binding stays.
    let later = next(&mut events, Duration::from_millis(4200)).await;
    assert!(later.is_none(), "{later:?}\n{}", phone.report());
    assert_eq!(edge.registered(), ["alice"]);
    phone.expect_success(Duration::from_secs(8), &[]).await;
    let pings = ["OPTIONS sip:desk@192.0.2.10:5062", "SIP/2.0 200 OK"];
    let seen: Vec<&str> = pings.iter().cycle().take(6).copied().collect();
    phone.expect_out_of_call_success(&seen, &[]);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_answers_options_stays_registered_round_after_round() {
    let _serial = serial().await;
    alive("alive_udp", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_over_tcp_is_qualified_on_its_connection() {
    let _serial = serial().await;
    alive("alive_tcp", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_went_away_is_unregistered_after_its_options_go_unanswered() {
    let _serial = serial().await;
    let dir = support::test_dir("qualify", "gone");
    let (edge, port, mut events) = edge().await;
    // Registered for 300 ms, then SIPp exits: its port answers nothing any more.
    let mut phone = phone(&dir, port, 300, "operator_options.xml", false);
    let first = next(&mut events, Duration::from_secs(5)).await;
    assert!(
        matches!(&first, Some(EdgeEvent::Registered { user }) if user == "alice"),
        "{first:?}\n{}",
        phone.report()
    );
    phone.expect_success(Duration::from_secs(5), &[]).await;
    let gone_at = tokio::time::Instant::now();
    // One interval (1 s), the round's wait (3.2 s), and some slack.
    let ev = next(&mut events, Duration::from_secs(7)).await;
    assert!(
        matches!(&ev, Some(EdgeEvent::Unregistered { user }) if user == "alice"),
        "{ev:?} after {:?}",
        gone_at.elapsed()
    );
    assert!(edge.registered().is_empty());
    assert_eq!(edge.bindings(), 0);
    edge.shutdown().await;
}

/// The tests run one at a time, as in `call_legs`.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
