//! Blind transfer to a queue end to end: the real `homeline` binary between a SIPp PBX and two
//! SIPp operators.
//!
//! The PBX calls 8000 (queue `support`); alice answers, then sends REFER with Refer-To
//! `sip:8001@homeline` (8001 routes to queue `sales` here): she must get `202` and two NOTIFYs
//! (`SIP/2.0 100 Trying`, then `SIP/2.0 200 OK` with the subscription terminated) and hangs up;
//! bob (in `sales`) is then INVITEd and answers. The PBX leg is never hung up by homeline: the
//! PBX scenario ends with its own BYE, after which homeline hangs up bob. Two visits, two
//! `call outcome` lines: support answered by alice, sales answered by bob.
//!
//! Blind transfer to an outside number: alice sends REFER to `sip:0612345678@homeline`
//! (routed to no queue), homeline calls it through the trunk with the caller's number as
//! From (a SIPp UAS on the trunk's PBX address). When it answers, alice gets NOTIFY `200`,
//! goes to wrap-up, and the caller talks to the outside party (RTP both ways through the
//! relay); when it is busy, alice gets NOTIFY `486` and keeps the caller.
//!
//! Overflow of an answered call to an external target goes out the same way: a caller who
//! waits past `max_wait` in a queue whose `overflow` is `{ external = "sip:0612345678@pbx" }`
//! is called out to 0612345678 and talks to it.
//!
//! Files: `tests/calls/sipp/{pbx_transfer,pbx_talk,pbx_hungup,operator_refer,
//! operator_transferee,outside_uas,outside_busy}.xml`, `tests/calls/homeline.toml.in` (with a
//! `sales` queue and route added here). Peers from `bash tests/run-all.sh`.

#[allow(dead_code, unused_imports)]
mod sip_harness;

mod audio;

use sip_harness::{
    AGENT_IP, HOMELINE_IP, Homeline, RunningSipp, Setup, Sipp, free_port_pair, repo, require,
    test_dir,
};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const PASSWORD: &str = "demo-password";
const WAIT: Duration = Duration::from_secs(10);

fn sipp_dir() -> PathBuf {
    repo().join("tests/calls/sipp")
}

/// The call tests' template with queue `sales` (number 8001) added.
fn template() -> PathBuf {
    let path = repo().join("tests/calls/homeline.toml.in");
    let text = std::fs::read_to_string(&path).expect("read the calls template");
    let routes = r#"routes = { "8000" = "support" }"#;
    assert!(text.contains(routes), "the template's routes changed");
    let text = text
        .replace(
            routes,
            r#"routes = { "8000" = "support", "8001" = "sales" }"#,
        )
        .replace(
            "@AGENTS@",
            "[[queue]]\nname = \"sales\"\nanswer = \"on_enqueue\"\nstrategy = \"longest-idle\"\n\
             ring_timeout = \"15s\"\nwrap_up = \"0s\"\nwhen_empty = \"wait\"\n\n@AGENTS@",
        );
    let out = test_dir("transfer_template").join("homeline.toml.in");
    std::fs::write(&out, text).expect("write the template");
    out
}

/// One test at a time: each starts homeline, several SIPps and RTP streams.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn an_operator_blind_transfers_to_a_queue_number_and_the_caller_reaches_its_operator() {
    require("sipp", "sip-tester");
    let _serial = serial();
    let agents = format!(
        "[[agent]]\nname = \"alice\"\npassword = \"{PASSWORD}\"\nqueues = [\"support\"]\n\n\
         [[agent]]\nname = \"bob\"\npassword = \"{PASSWORD}\"\nqueues = [\"sales\"]\n"
    );
    let mut h = Homeline::start(
        "transfer",
        Setup::default()
            .sip("digest_algorithms", r#"["MD5"]"#)
            .template(template())
            .value("STRATEGY", "longest-idle")
            .value("RING_TIMEOUT", "15s")
            .value("WRAP_UP", "5s")
            .value("AGENTS", &agents),
    );
    let operator = |h: &Homeline, user: &str, scenario: &str| {
        h.sipp_in(&sipp_dir(), "operator_register.xml")
            .source_ip(AGENT_IP)
            .service(user)
            .auth(user, PASSWORD)
            .arg("-oocsf")
            .arg(&sipp_dir().join(scenario).to_string_lossy())
            .arg("-d")
            .arg("12000")
            .start(1)
    };
    let alice = operator(&h, "alice", "operator_refer.xml");
    let bob = operator(&h, "bob", "operator_transferee.xml");
    for a in ["alice", "bob"] {
        h.expect_event(
            0,
            WAIT,
            "operator state",
            &[("agent", a), ("state", "available")],
        );
    }
    let from = h.logs.len();
    let pbx = h
        .sipp_in(&sipp_dir(), "pbx_transfer.xml")
        .service("8000")
        .arg("-d")
        .arg("5000")
        .start(1);
    h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "wrap_up")],
    );
    h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "bob"), ("state", "on_call")],
    );
    pbx.wait(&mut h);
    let ok = h.logs.wait_until(WAIT, |lines| {
        lines[from.min(lines.len())..]
            .iter()
            .filter(|l| l.is("call outcome", &[]))
            .count()
            >= 2
    });
    let outcomes: Vec<(String, String)> = h
        .logs
        .matching(|l| l.is("call outcome", &[]))
        .iter()
        .map(|l| {
            (
                l.field("queue").unwrap_or_default(),
                l.field("outcome").unwrap_or_default(),
            )
        })
        .collect();
    let context = format!(
        "outcomes: {outcomes:?}\nalice's SIPp:\n{}\nbob's SIPp:\n{}\n{}",
        alice.messages(),
        bob.messages(),
        h.report()
    );
    assert!(ok && outcomes.len() == 2, "two visits expected\n{context}");
    let alice_id = "AgentId(0)";
    let bob_id = "AgentId(1)";
    assert_eq!(outcomes[0].0, "support", "{context}");
    assert!(
        outcomes[0].1.contains("Answered") && outcomes[0].1.contains(alice_id),
        "{context}"
    );
    assert_eq!(outcomes[1].0, "sales", "{context}");
    assert!(
        outcomes[1].1.contains("Answered") && outcomes[1].1.contains(bob_id),
        "{context}"
    );
    let trace = alice.messages();
    for seen in [
        "SIP/2.0 202 Accepted",
        "SIP/2.0 100 Trying",
        "Subscription-State: terminated",
        "message/sipfrag",
    ] {
        assert!(
            trace.contains(seen),
            "alice should have seen `{seen}`\n{context}"
        );
    }
    alice.wait(&mut h);
    bob.wait(&mut h);
}

/// alice's REFER scenario with Refer-To `number`, expecting a final NOTIFY `final_status`;
/// written into `dir`.
fn refer_scenario(dir: &Path, number: &str, final_status: &str) -> PathBuf {
    let text = std::fs::read_to_string(sipp_dir().join("operator_refer.xml"))
        .expect("read operator_refer.xml");
    let (refer_to, done) = (
        "Refer-To: <sip:8001@",
        r#"regexp="SIP/2.0 200 OK" search_in="body""#,
    );
    assert!(
        text.contains(refer_to) && text.contains(done),
        "operator_refer.xml changed"
    );
    let text = text
        .replace(refer_to, &format!("Refer-To: <sip:{number}@"))
        .replace(
            done,
            &format!(r#"regexp="SIP/2.0 {final_status}" search_in="body""#),
        );
    let path = dir.join(format!("operator_refer_{final_status}.xml").replace(' ', "_"));
    std::fs::write(&path, text).expect("write the REFER scenario");
    path
}

/// homeline with alice in `support`, the trunk's PBX address at `pbx_port`, and alice's SIPp
/// registered and Available, answering with `refer` (a scenario path).
fn outside_setup(name: &str, pbx_port: u16, final_status: &str) -> (Homeline, RunningSipp) {
    let agents =
        format!("[[agent]]\nname = \"alice\"\npassword = \"{PASSWORD}\"\nqueues = [\"support\"]\n");
    let mut h = Homeline::start(
        name,
        Setup::default()
            .sip("digest_algorithms", r#"["MD5"]"#)
            .template(template())
            .pbx(pbx_port, "0s")
            .value("STRATEGY", "longest-idle")
            .value("RING_TIMEOUT", "15s")
            .value("WRAP_UP", "5s")
            .value("AGENTS", &agents),
    );
    let tone = audio::wav_ulaw(&audio::tone(1000.0, 3.0, 0.5));
    std::fs::write(h.dir.join("tone1k_ulaw.wav"), tone).expect("write the PBX's WAV");
    let refer = refer_scenario(&h.dir, "0612345678", final_status);
    let alice = h
        .sipp_in(&sipp_dir(), "operator_register.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .arg("-oocsf")
        .arg(&refer.to_string_lossy())
        .arg("-d")
        .arg("12000")
        .start(1);
    h.expect_event(
        0,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "available")],
    );
    (h, alice)
}

/// The outside target: a SIPp UAS on the trunk's PBX address.
fn outside_target(scenario: &str, pbx_port: u16) -> sip_harness::Background {
    let dir = test_dir(&format!("transfer_{}", scenario.trim_end_matches(".xml")));
    let tone = audio::wav_ulaw(&audio::tone(660.0, 3.0, 0.5));
    std::fs::write(dir.join("tone660_ulaw.wav"), tone).expect("write the target's WAV");
    Sipp::uas(scenario, &dir, 0)
        .scenario_dir(&sipp_dir())
        .arg("-m")
        .arg("1")
        .spawn(pbx_port)
}

/// Waits for a background SIPp to end; its exit status.
fn ended(target: &mut sip_harness::Background, h: &mut Homeline, what: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = target.exited() {
            return s.success();
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not end\n{}\n{}",
            target.output(),
            h.report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_operator_blind_transfers_to_an_outside_number_and_the_caller_talks_to_it() {
    require("sipp", "sip-tester");
    let _serial = serial();
    let pbx_port = free_port_pair(HOMELINE_IP);
    let mut target = outside_target("outside_uas.xml", pbx_port);
    let (mut h, alice) = outside_setup("transfer_outside", pbx_port, "200 OK");
    let from = h.logs.len();
    // The caller talks (1 kHz) for 10 s, then hangs up.
    let pbx = h
        .sipp_in(&sipp_dir(), "pbx_talk.xml")
        .service("8000")
        .arg("-d")
        .arg("10000")
        .start(1);
    h.expect_event(
        from,
        WAIT,
        "operator state",
        &[("agent", "alice"), ("state", "wrap_up")],
    );
    pbx.wait(&mut h);
    assert!(
        ended(&mut target, &mut h, "the outside target's SIPp"),
        "the outside target should get the caller's number and homeline's BYE\n{}",
        target.output(),
    );
    h.expect_event(from, WAIT, "call media ended", &[]);
    let media = h
        .logs
        .matching(|l| l.is("call media ended", &[]))
        .last()
        .cloned()
        .expect("a media report");
    let report = media.field("media").unwrap_or_default();
    let counts = [media.count("pbx_forwarded"), media.count("agent_forwarded")];
    let outcomes = h.logs.matching(|l| l.is("call outcome", &[]));
    let context = format!(
        "relay: {report}\noutcomes: {outcomes:?}\nalice:\n{}\n{}",
        alice.messages(),
        h.report()
    );
    // alice had the caller for about a second and sends no RTP herself: most of the caller's
    // packets went to the outside target, and everything from leg B is the target's.
    assert!(
        counts[0] > 250 && counts[1] > 250,
        "RTP both ways between the caller and the outside target: {counts:?}\n{context}"
    );
    assert_eq!(outcomes.len(), 1, "one visit, one outcome\n{context}");
    let outcome = outcomes[0].field("outcome").unwrap_or_default();
    assert!(outcome.contains("Answered"), "{context}");
    let trace = alice.messages();
    for seen in [
        "SIP/2.0 202 Accepted",
        "SIP/2.0 100 Trying",
        "SIP/2.0 200 OK",
    ] {
        assert!(
            trace.contains(seen),
            "alice should have seen `{seen}`\n{context}"
        );
    }
    alice.wait(&mut h);
}

#[test]
fn a_busy_outside_number_fails_the_transfer_and_the_caller_stays_with_the_operator() {
    require("sipp", "sip-tester");
    let _serial = serial();
    let pbx_port = free_port_pair(HOMELINE_IP);
    let mut target = outside_target("outside_busy.xml", pbx_port);
    let (mut h, alice) = outside_setup("transfer_outside_busy", pbx_port, "486 Busy Here");
    let from = h.logs.len();
    // The caller stays until homeline hangs up: alice's BYE after the failed transfer.
    let pbx = h
        .sipp_in(&sipp_dir(), "pbx_hungup.xml")
        .service("8000")
        .start(1);
    assert!(
        ended(&mut target, &mut h, "the outside target's SIPp"),
        "{}",
        target.output(),
    );
    pbx.wait(&mut h);
    alice.wait(&mut h);
    let outcomes = h.logs.matching(|l| l.is("call outcome", &[]));
    let context = format!("outcomes: {outcomes:?}\n{}", h.report());
    assert_eq!(outcomes.len(), 1, "{context}");
    assert!(
        outcomes[0]
            .field("outcome")
            .unwrap_or_default()
            .contains("Answered"),
        "{context}"
    );
    assert!(
        h.logs
            .matching(|l| l.is("outside target did not take the call", &[("status", "486")]))
            .len()
            == 1,
        "{context}"
    );
    // alice was never released to wrap-up before her own hang-up ended the call.
    let states: Vec<String> = h.logs.lines()[from..]
        .iter()
        .filter(|l| l.is("operator state", &[("agent", "alice")]))
        .filter_map(|l| l.field("state"))
        .collect();
    assert_eq!(
        states.get(..3),
        Some(&["offered".to_string(), "on_call".into(), "wrap_up".into()][..]),
        "{states:?}\n{context}"
    );
}

#[test]
fn an_answered_caller_waiting_past_max_wait_overflows_to_an_outside_number() {
    require("sipp", "sip-tester");
    let _serial = serial();
    let pbx_port = free_port_pair(HOMELINE_IP);
    let mut target = outside_target("outside_uas.xml", pbx_port);
    let text = std::fs::read_to_string(repo().join("tests/calls/homeline.toml.in"))
        .expect("read the calls template");
    let queue_end = "max_misses = 1\n";
    assert!(text.contains(queue_end), "the template's queue changed");
    let text = text.replacen(
        queue_end,
        "max_misses = 1\nmax_wait = \"1s\"\n\
         overflow = { external = \"sip:0612345678@pbx.example\" }\n",
        1,
    );
    let template = test_dir("overflow_template").join("homeline.toml.in");
    std::fs::write(&template, text).expect("write the template");
    // Nobody logged in: the caller waits with music until max_wait.
    let mut h = Homeline::start(
        "overflow_outside",
        Setup::default()
            .template(template)
            .pbx(pbx_port, "0s")
            .value("STRATEGY", "longest-idle")
            .value("RING_TIMEOUT", "15s")
            .value("WRAP_UP", "0s")
            .value("AGENTS", ""),
    );
    let tone = audio::wav_ulaw(&audio::tone(1000.0, 3.0, 0.5));
    std::fs::write(h.dir.join("tone1k_ulaw.wav"), tone).expect("write the PBX's WAV");
    h.sipp_in(&sipp_dir(), "pbx_talk.xml")
        .service("8000")
        .arg("-d")
        .arg("6000")
        .run(&mut h);
    assert!(
        ended(&mut target, &mut h, "the outside target's SIPp"),
        "the outside target should get the caller's number and homeline's BYE\n{}",
        target.output(),
    );
    h.expect_event(0, WAIT, "call media ended", &[]);
    let media = h
        .logs
        .matching(|l| l.is("call media ended", &[]))
        .last()
        .cloned()
        .expect("a media report");
    let report = media.field("media").unwrap_or_default();
    let counts = [media.count("pbx_forwarded"), media.count("agent_forwarded")];
    let outcomes = h.logs.matching(|l| l.is("call outcome", &[]));
    let context = format!("relay: {report}\noutcomes: {outcomes:?}\n{}", h.report());
    assert_eq!(outcomes.len(), 1, "{context}");
    assert!(
        outcomes[0]
            .field("outcome")
            .unwrap_or_default()
            .contains("Overflowed"),
        "{context}"
    );
    assert!(
        counts[0] > 150 && counts[1] > 150,
        "RTP both ways between the caller and the outside target: {counts:?}\n{context}"
    );
}
