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
//! Files: `tests/calls/sipp/{pbx_transfer,operator_refer,operator_transferee}.xml`,
//! `tests/calls/homeline.toml.in` (with a `sales` queue and route added here). Peers from
//! `bash tests/run-all.sh`.

#[allow(dead_code, unused_imports)]
mod sip_harness;

use sip_harness::{AGENT_IP, Homeline, Setup, repo, require, test_dir};
use std::path::PathBuf;
use std::time::Duration;

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

#[test]
fn an_operator_blind_transfers_to_a_queue_number_and_the_caller_reaches_its_operator() {
    require("sipp", "sip-tester");
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
