//! DTMF end to end: the real `homeline` binary between a SIPp PBX and a SIPp operator, with
//! what homeline sends captured on `lo` (`dumpcap`) and its RTP headers checked here.
//!
//! - RFC 4733 both ways: the PBX (telephone-event on 101) replays `7`, the operator
//!   (telephone-event on 96, answered against homeline's offer of 101) replays `9`, both as
//!   pcaps this test writes and SIPp sends with `play_pcap_audio`; each must reach the other
//!   side unchanged but for the payload type, which must be the receiver's.
//! - SIP INFO: the operator sends `5` as `application/dtmf-relay` (`Duration=160`) and `#` as
//!   `application/dtmf`; both are answered `200` and the PBX must receive them as RFC 4733
//!   events on its payload type 101 (RFC 4733 §2.5: marker on the first packet, one timestamp
//!   per event, duration growing by 160, three end packets).
//!
//! Files: `tests/calls/sipp/pbx_dtmf.xml`, `tests/calls/sipp/operator_dtmf.xml`,
//! `tests/calls/homeline.toml.in`. Peers from `bash tests/run-all.sh`.

// Each test file uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod sip_harness;

mod audio;

#[allow(dead_code)]
mod rtp_capture;

#[allow(dead_code)]
mod call_setup;
use call_setup::*;

use rtp_capture::{Capture, Rtp, event_packets, write_pcap};
use sip_harness::AGENT_IP;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Telephone-event payload types: the PBX's, and the operator's (not homeline's 101).
const PBX_TE: u8 = 101;
const OPERATOR_TE: u8 = 96;

/// The telephone-event packets of `code` among `packets`, in capture order.
fn events_of(packets: &[&Rtp], code: u8) -> Vec<Rtp> {
    packets
        .iter()
        .filter(|p| p.event().is_some_and(|e| e.code == code))
        .map(|p| (*p).clone())
        .collect()
}

fn describe(packets: &[Rtp]) -> String {
    packets
        .iter()
        .map(|p| {
            format!(
                "  {:?} -> {:?} pt {} m {} seq {} ts {} ssrc {:08x} {:?}",
                p.src,
                p.dst,
                p.pt,
                u8::from(p.marker),
                p.seq,
                p.ts,
                p.ssrc,
                p.event()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that `got` (relayed by homeline) is `sent` with the payload type `pt`.
#[track_caller]
fn expect_relayed(what: &str, got: &[Rtp], sent: &[Rtp], pt: u8, context: &str) {
    let strip = |p: &Rtp| (p.marker, p.seq, p.ts, p.ssrc, p.payload.clone());
    let got_fields: Vec<_> = got.iter().map(strip).collect();
    let sent_fields: Vec<_> = sent.iter().map(strip).collect();
    assert!(
        got_fields == sent_fields && got.iter().all(|p| p.pt == pt),
        "{what}: expected the {} packets sent, with payload type {pt}; got\n{}\n{context}",
        sent.len(),
        describe(got)
    );
}

/// Checks one event homeline generated: RFC 4733 §2.5 with 20 ms packets of `pt`.
#[track_caller]
fn expect_generated(what: &str, got: &[Rtp], code: u8, samples: u16, pt: u8, context: &str) {
    let packets = usize::from(samples.div_ceil(160));
    let mut durations: Vec<u16> = (1..packets as u16).map(|i| i * 160).collect();
    durations.extend([samples; 3]);
    let first = got.first();
    let ok = got.len() == packets + 2
        && got
            .iter()
            .map(|p| p.event().map(|e| e.duration))
            .collect::<Vec<_>>()
            == durations.iter().map(|&d| Some(d)).collect::<Vec<_>>()
        && got.iter().enumerate().all(|(i, p)| {
            let e = p.event();
            p.pt == pt
                && p.marker == (i == 0)
                && first.is_some_and(|f| {
                    p.ts == f.ts && p.ssrc == f.ssrc && p.seq == f.seq.wrapping_add(i as u16)
                })
                && e.is_some_and(|e| e.code == code && e.end == (i + 1 >= packets))
        });
    assert!(
        ok,
        "{what}: expected event {code} in {} packets of payload type {pt}, durations \
         {durations:?}, the last three with E, one timestamp and SSRC, consecutive sequence \
         numbers, the marker on the first; got\n{}\n{context}",
        packets + 2,
        describe(got)
    );
}

#[test]
fn dtmf_passes_through_both_ways_and_sip_info_from_the_operator_reaches_the_pbx_as_rfc_4733() {
    let mut h = start(
        "dtmf",
        Queue {
            agents: &["alice"],
            ..Queue::default()
        },
    );
    // the PBX's `7` (100 ms) and the operator's `9` (80 ms), as their phones would send them
    let pbx_sent = event_packets(7, PBX_TE, 5, 1000, 160_000, 0x0B0B_0B0B);
    let operator_sent = event_packets(9, OPERATOR_TE, 4, 2000, 320_000, 0x0A0A_0A0A);
    write_pcap(&h.dir.join("pbx_events.pcap"), &pbx_sent);
    write_pcap(&h.dir.join("operator_events.pcap"), &operator_sent);

    let operator = call_setup::operator(&h, "alice", "operator_dtmf.xml", Duration::from_secs(12));
    expect_available(&mut h, 0, &["alice"]);
    let capture = Capture::start(&h, "dtmf");
    pbx(&h, "pbx_dtmf.xml").arg("-d").arg("3000").run(&mut h);
    let media = expect_media_report(&mut h, 0);
    let packets = capture.stop();
    println!("relay report: {media}");
    let a_leg = media.split("b: LegReport").next().unwrap_or_default();
    assert!(
        a_leg.contains("dtmf_packets: 25") && a_leg.contains("dtmf_dropped: 0"),
        "the PBX leg's relay report should count the 25 packets of the two INFO digits: {media}"
    );
    let context = format!(
        "operator SIPp:\n{}\nall telephone-event packets homeline sent:\n{}\n{}",
        operator.messages(),
        describe(
            &packets
                .iter()
                .filter(|p| p.event().is_some() && p.payload.len() == 4)
                .cloned()
                .collect::<Vec<_>>()
        ),
        h.report()
    );
    let operator_ip: Ipv4Addr = AGENT_IP.parse().expect("AGENT_IP is IPv4");
    let to_operator: Vec<&Rtp> = packets
        .iter()
        .filter(|p| p.dst.0 == operator_ip && p.payload.len() == 4)
        .collect();
    let to_pbx: Vec<&Rtp> = packets
        .iter()
        .filter(|p| p.dst.0 != operator_ip && p.payload.len() == 4)
        .collect();

    let trace = operator.messages();
    assert!(
        trace.matches("SIP/2.0 200 OK").count() >= 3 && trace.contains("CSeq: 2 INFO"),
        "the operator's two INFOs should be answered 200\n{}",
        context
    );
    expect_relayed(
        "PBX → operator RFC 4733",
        &events_of(&to_operator, 7),
        &pbx_sent,
        OPERATOR_TE,
        &context,
    );
    expect_relayed(
        "operator → PBX RFC 4733",
        &events_of(&to_pbx, 9),
        &operator_sent,
        PBX_TE,
        &context,
    );
    let five = events_of(&to_pbx, 5);
    expect_generated(
        "INFO dtmf-relay 5, 160 ms",
        &five,
        5,
        1280,
        PBX_TE,
        &context,
    );
    let pound = events_of(&to_pbx, 11);
    expect_generated("INFO dtmf #, 250 ms", &pound, 11, 2000, PBX_TE, &context);
    assert!(
        five[0].ssrc == pound[0].ssrc
            && pound[0].ts != five[0].ts
            && pound[0].seq == five[five.len() - 1].seq.wrapping_add(1)
            && five[0].ssrc != operator_sent[0].ssrc,
        "homeline's events should share a stream of their own, one timestamp per event\n{}",
        context
    );
}
