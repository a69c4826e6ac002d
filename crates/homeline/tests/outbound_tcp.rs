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
#[allow(dead_code)]
mod call_setup;
#[allow(dead_code, unused_imports)]
mod sip_harness;

use call_setup::outbound::{dial_out, expect_media_both_ways, pbx_uas, register_alice, wait_pbx};
use call_setup::{WAIT, serial};
use sip_harness::{Homeline, Setup, repo};
use std::path::Path;
use std::process::ExitStatus;

/// Fails unless the PBX's SIPp ended with status 0 (`status`, `None`: still running).
fn expect_pbx_success(status: Option<ExitStatus>, pbx_output: &str, dir: &Path, h: &mut Homeline) {
    if !status.is_some_and(|s| s.success()) {
        let errors = std::fs::read_to_string(dir.join("sipp-00-pbx_outbound_tcp_uas.errors.log"))
            .unwrap_or_default();
        panic!(
            "the PBX's scenario ended with {status:?} (number, caller id, TCP Via/Contact or \
             BYE)\n{errors}\n{pbx_output}\n{}",
            h.report()
        );
    }
}

/// alice calls 0612345678 through the TCP trunk; the PBX hangs up if `pbx_hangs_up`, else
/// she does.
fn call_out_over_tcp(name: &str, pbx_hangs_up: bool) {
    let _serial = serial();
    let (pbx_port, pbx_dir, pbx) = pbx_uas(name, "pbx_outbound_tcp_uas.xml");
    let mut pbx = pbx
        .tcp()
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
    let (register, _) = register_alice(&mut h);
    let operator = if pbx_hangs_up {
        "operator_outbound_hungup.xml"
    } else {
        "operator_outbound.xml"
    };
    dial_out(&h, operator).run(&mut h);
    drop(register);
    let status = wait_pbx(&mut pbx);
    expect_pbx_success(status, &pbx.output(), &pbx_dir, &mut h);
    expect_media_both_ways(&mut h);
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
