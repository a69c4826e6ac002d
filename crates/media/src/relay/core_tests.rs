//! Tests of [`RelayCore`] on virtual time, with no sockets.

use super::*;
use crate::g711;
use crate::tone::goertzel_power;
use std::time::Duration;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn media(rtp: &str, payloads: Payloads) -> LegMedia {
    let rtp = addr(rtp);
    LegMedia {
        remote_rtp: Some(rtp),
        remote_rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
        rtcp_mux: false,
        payloads,
    }
}

fn pbx() -> LegMedia {
    // PCMU on 0, telephone-event on 101
    media("10.0.0.1:4000", Payloads::ours(Codec::Pcmu))
}

fn agent() -> LegMedia {
    media(
        "10.0.0.2:5000",
        Payloads {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: Some(96),
        },
    )
}

fn packet(pt: u8, seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 12 + 160];
    let fields = HeaderFields {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: 1,
    };
    rtp::write_header(&mut p, &fields).expect("room for a header");
    p
}

fn forward_to(leg: Leg, to: &str) -> Verdict {
    Verdict::Forward {
        leg,
        socket: SocketKind::Rtp,
        to: addr(to),
    }
}

#[test]
fn drops_until_bridged_then_maps_payload_types_both_ways() {
    let now = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 1);
    let from_pbx = addr("10.0.0.1:4000");
    let from_agent = addr("10.0.0.2:5000");
    let mut p = packet(0, 1);
    assert_eq!(core.on_rtp(Leg::A, from_pbx, &mut p, now), Verdict::Drop);
    core.bridge();
    let mut p = packet(101, 2);
    assert_eq!(
        core.on_rtp(Leg::A, from_pbx, &mut p, now),
        forward_to(Leg::B, "10.0.0.2:5000")
    );
    assert_eq!(p[1] & 0x7F, 96);
    let mut p = packet(96, 1);
    assert_eq!(
        core.on_rtp(Leg::B, from_agent, &mut p, now),
        forward_to(Leg::A, "10.0.0.1:4000")
    );
    assert_eq!(p[1] & 0x7F, 101);
    // comfort noise was never negotiated: dropped, not passed through
    let mut p = packet(13, 2);
    assert_eq!(core.on_rtp(Leg::B, from_agent, &mut p, now), Verdict::Drop);
    let r = core.report();
    assert_eq!(r.a.counters.dropped_not_bridged, 1);
    assert_eq!(r.a.counters.forwarded, 1);
    assert_eq!(r.b.counters.forwarded, 1);
    assert_eq!(r.b.counters.dropped_unmapped, 1);
    assert_eq!(r.a.stats.packets, 2);
}

#[test]
fn latches_the_first_source_and_ignores_others() {
    let now = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 1);
    core.bridge();
    // the SDP's address is a guess: nothing to connect the socket to yet
    assert_eq!(core.latched(Leg::A, SocketKind::Rtp), None);
    // the PBX sends from another port than its SDP said (NAT, or a media server behind it)
    let real = addr("10.0.0.1:4444");
    let mut p = packet(0, 1);
    assert!(matches!(
        core.on_rtp(Leg::A, real, &mut p, now),
        Verdict::Forward { .. }
    ));
    assert_eq!(core.remote_rtp(Leg::A), Some(real));
    assert_eq!(core.latched(Leg::A, SocketKind::Rtp), Some(real));
    assert_eq!(core.latched(Leg::A, SocketKind::Rtcp), None);
    // agent media now goes to the latched address
    let mut p = packet(0, 1);
    assert_eq!(
        core.on_rtp(Leg::B, addr("10.0.0.2:5000"), &mut p, now),
        forward_to(Leg::A, "10.0.0.1:4444")
    );
    // an intruder is ignored once latched
    let mut p = packet(0, 2);
    assert_eq!(
        core.on_rtp(Leg::A, addr("10.6.6.6:4000"), &mut p, now),
        Verdict::Drop
    );
    let r = core.report();
    assert_eq!(r.a.counters.dropped_foreign, 1);
    assert!(r.a.latched && r.b.latched);
    // a re-INVITE re-arms the latch with the new guess
    core.configure(Leg::A, media("10.0.0.9:6000", Payloads::ours(Codec::Pcmu)));
    assert_eq!(core.remote_rtp(Leg::A), Some(addr("10.0.0.9:6000")));
    assert!(!core.report().a.latched);
    assert_eq!(core.latched(Leg::A, SocketKind::Rtp), None);
}

#[test]
fn invalid_packets_are_counted_and_do_not_latch() {
    let now = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 1);
    core.bridge();
    let mut junk = vec![0x12; 40];
    assert_eq!(
        core.on_rtp(Leg::A, addr("10.6.6.6:1"), &mut junk, now),
        Verdict::Drop
    );
    assert!(!core.report().a.latched);
    assert_eq!(core.report().a.counters.dropped_invalid, 1);
    assert_eq!(
        core.on_rtcp(Leg::A, addr("10.6.6.6:1"), &junk, false),
        Verdict::Drop
    );
    assert_eq!(core.report().a.counters.dropped_invalid, 2);
}

#[test]
fn hold_and_unconfigured_legs() {
    let now = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), None, 1);
    core.bridge();
    let from = addr("10.0.0.1:4000");
    // no operator leg media yet: nothing maps
    assert_eq!(
        core.on_rtp(Leg::A, from, &mut packet(0, 1), now),
        Verdict::Drop
    );
    core.configure(Leg::B, agent());
    assert!(matches!(
        core.on_rtp(Leg::A, from, &mut packet(0, 2), now),
        Verdict::Forward { .. }
    ));
    core.hold(Leg::B);
    assert_eq!(
        core.on_rtp(Leg::A, from, &mut packet(0, 3), now),
        Verdict::Drop
    );
    core.resume(Leg::B);
    assert!(matches!(
        core.on_rtp(Leg::A, from, &mut packet(0, 4), now),
        Verdict::Forward { .. }
    ));
    let c = core.report().a.counters;
    assert_eq!((c.dropped_unmapped, c.dropped_held, c.forwarded), (1, 1, 2));
}

#[test]
fn different_codecs_are_not_relayed() {
    let now = Instant::now();
    let pcma = media("10.0.0.2:5000", Payloads::ours(Codec::Pcma));
    let mut core = RelayCore::new(Some(pbx()), Some(pcma), 1);
    core.bridge();
    let from = addr("10.0.0.1:4000");
    assert_eq!(
        core.on_rtp(Leg::A, from, &mut packet(0, 1), now),
        Verdict::Drop
    );
    // events still go through
    assert!(matches!(
        core.on_rtp(Leg::A, from, &mut packet(101, 2), now),
        Verdict::Forward { .. }
    ));
}

#[test]
fn rtcp_goes_between_the_odd_ports_or_muxed() {
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 1);
    let sr = [0x80u8, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0];
    let from = addr("10.0.0.1:4001");
    assert_eq!(core.on_rtcp(Leg::A, from, &sr, false), Verdict::Drop);
    core.bridge();
    assert_eq!(
        core.on_rtcp(Leg::A, from, &sr, false),
        Verdict::Forward {
            leg: Leg::B,
            socket: SocketKind::Rtcp,
            to: addr("10.0.0.2:5001")
        }
    );
    let mut muxed = agent();
    muxed.rtcp_mux = true;
    core.configure(Leg::B, muxed);
    assert_eq!(
        core.on_rtcp(Leg::A, from, &sr, false),
        Verdict::Forward {
            leg: Leg::B,
            socket: SocketKind::Rtp,
            to: addr("10.0.0.2:5000")
        }
    );
    // RTCP from the muxed leg arrives on its RTP port
    assert_eq!(
        core.on_rtcp(Leg::B, addr("10.0.0.2:5000"), &sr, true),
        Verdict::Forward {
            leg: Leg::A,
            socket: SocketKind::Rtcp,
            to: addr("10.0.0.1:4001")
        }
    );
    // RTCP on the RTCP port latches that port; muxed RTCP does not latch the RTP port
    assert_eq!(core.latched(Leg::A, SocketKind::Rtcp), Some(from));
    assert_eq!(core.latched(Leg::B, SocketKind::Rtp), None);
    let r = core.report();
    assert_eq!(
        (r.a.counters.rtcp_forwarded, r.a.counters.rtcp_dropped),
        (2, 1)
    );
}

#[test]
fn tone_frames_are_rtp_in_the_leg_codec_and_give_way_to_bridging() {
    let mut core = RelayCore::new(
        Some(media("10.0.0.1:4000", Payloads::ours(Codec::Pcma))),
        None,
        7,
    );
    core.play_tone(Leg::A, ToneSpec::continuous(425.0, -10.0));
    assert!(core.tone_active());
    let mut buf = [0u8; 256];
    let mut pcm = Vec::new();
    let mut last_seq = None;
    for i in 0..10u32 {
        let (len, to) = core.poll_tone(Leg::A, &mut buf).expect("a frame");
        assert_eq!((len, to), (172, addr("10.0.0.1:4000")));
        let h = RtpHeader::parse(&buf[..len]).expect("valid RTP");
        assert_eq!(h.payload_type, 8);
        assert_eq!(h.marker, i == 0);
        assert_eq!(h.timestamp, 160 * i);
        if let Some(prev) = last_seq {
            assert_eq!(h.sequence, u16::wrapping_add(prev, 1));
        }
        last_seq = Some(h.sequence);
        pcm.extend(h.payload(&buf[..len]).iter().map(|b| g711::alaw_decode(*b)));
    }
    let at = goertzel_power(&pcm, 425.0, 8000.0);
    assert!(at > 50.0 * goertzel_power(&pcm, 600.0, 8000.0));
    assert_eq!(core.poll_tone(Leg::B, &mut buf), None);
    // bridging ends the tone
    core.configure(Leg::B, agent());
    core.unbridge();
    core.bridge();
    assert!(!core.tone_active());
    assert_eq!(core.report().a.counters.tone_packets, 10);
}

#[test]
fn relayed_media_gives_way_to_a_tone() {
    let now = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 1);
    core.bridge();
    core.play_tone(Leg::A, ToneSpec::RINGBACK_EU);
    let from_agent = addr("10.0.0.2:5000");
    assert_eq!(
        core.on_rtp(Leg::B, from_agent, &mut packet(0, 1), now),
        Verdict::Drop
    );
    core.stop_tone(Leg::A);
    assert!(matches!(
        core.on_rtp(Leg::B, from_agent, &mut packet(0, 2), now),
        Verdict::Forward { .. }
    ));
}

#[test]
fn stats_count_loss_and_jitter_per_leg() {
    let t0 = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 1);
    core.bridge();
    let from = addr("10.0.0.1:4000");
    for seq in (0..100u16).filter(|s| s % 10 != 5) {
        let at = t0 + Duration::from_millis(20 * u64::from(seq));
        core.on_rtp(Leg::A, from, &mut packet(0, seq), at);
    }
    let s = core.report().a.stats;
    assert_eq!((s.packets, s.expected, s.lost, s.jitter), (90, 100, 10, 0));
    assert!(s.mos > 3.0 && s.mos < 4.4, "{}", s.mos);
}

/// Every DTMF packet `core` sends `leg` until nothing is pending, tick by tick: `None` for a
/// tick that sent nothing.
fn dtmf_ticks(core: &mut RelayCore, leg: Leg) -> Vec<Option<(RtpHeader, [u8; 4])>> {
    let mut ticks = Vec::new();
    let mut buf = [0u8; 64];
    while core.timer_needed() {
        ticks.push(core.poll_dtmf(leg, &mut buf).map(|(len, _)| {
            let h = RtpHeader::parse(&buf[..len]).expect("valid RTP");
            let mut p = [0u8; 4];
            p.copy_from_slice(h.payload(&buf[..len]));
            (h, p)
        }));
        assert!(ticks.len() < 1000, "DTMF never ends");
    }
    ticks
}

#[test]
fn dtmf_goes_to_a_leg_as_rfc_4733_with_its_payload_type_and_pauses_relayed_media() {
    let now = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 7);
    core.bridge();
    let five = DtmfEvent::from_digit('5').expect("5");
    let pound = DtmfEvent::from_digit('#').expect("#");
    assert!(core.send_dtmf(Leg::A, five, 60));
    assert!(core.send_dtmf(Leg::A, pound, 40));
    assert!(core.timer_needed());
    // the first tick sends the first packet; relayed media to A waits while the event lasts
    let mut buf = [0u8; 64];
    let (len, to) = core.poll_dtmf(Leg::A, &mut buf).expect("a first packet");
    assert_eq!(to, addr("10.0.0.1:4000"));
    let first = RtpHeader::parse(&buf[..len]).expect("valid RTP");
    assert!(first.marker);
    assert_eq!(first.payload_type, 101);
    let mut p = packet(0, 9);
    let from_agent = addr("10.0.0.2:5000");
    assert_eq!(core.on_rtp(Leg::B, from_agent, &mut p, now), Verdict::Drop);
    let ticks = dtmf_ticks(&mut core, Leg::A);
    // 60 ms: 3 packets, the last twice more; 2 silent ticks; 40 ms: 2 packets, the last twice more
    let shape: Vec<Option<(u8, bool, u16)>> = ticks
        .iter()
        .map(|t| t.map(|(_, p)| (p[0], p[1] & 0x80 != 0, u16::from_be_bytes([p[2], p[3]]))))
        .collect();
    assert_eq!(
        shape,
        [
            Some((5, false, 320)),
            Some((5, true, 480)),
            Some((5, true, 480)),
            Some((5, true, 480)),
            None,
            None,
            Some((11, false, 160)),
            Some((11, true, 320)),
            Some((11, true, 320)),
            Some((11, true, 320)),
        ]
    );
    let sent: Vec<RtpHeader> = ticks.iter().flatten().map(|(h, _)| *h).collect();
    for (i, h) in sent.iter().enumerate() {
        assert_eq!(h.payload_type, 101);
        assert_eq!(h.ssrc, first.ssrc);
        assert_eq!(h.sequence, first.sequence.wrapping_add(1 + i as u16));
        assert_eq!(
            h.marker,
            i == 4,
            "only an event's first packet has the marker"
        );
    }
    assert_eq!(sent[3].timestamp, first.timestamp);
    assert!(
        sent[4].timestamp.wrapping_sub(first.timestamp) >= 6 * 160,
        "the second event starts after the first"
    );
    // the pause between events, and after the last, lets relayed media through again
    assert_eq!(
        core.on_rtp(Leg::B, from_agent, &mut p, now),
        forward_to(Leg::A, "10.0.0.1:4000")
    );
    let counters = core.report().a.counters;
    assert_eq!((counters.dtmf_packets, counters.dtmf_dropped), (9, 0));
    // an operator leg that negotiated telephone-event on 96 gets 96
    assert!(core.send_dtmf(Leg::B, five, 40));
    let (len, _) = core.poll_dtmf(Leg::B, &mut buf).expect("a packet");
    assert_eq!(buf[1] & 0x7F, 96);
    assert_eq!(len, 16);
    assert_ne!(
        RtpHeader::parse(&buf[..len]).map(|h| h.ssrc),
        Ok(first.ssrc)
    );
}

#[test]
fn dtmf_to_a_leg_without_telephone_event_is_dropped_and_counted() {
    let no_events = media(
        "10.0.0.1:4000",
        Payloads {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: None,
        },
    );
    let mut core = RelayCore::new(Some(no_events), None, 3);
    let one = DtmfEvent::from_digit('1').expect("1");
    assert!(!core.send_dtmf(Leg::A, one, 100));
    assert!(!core.timer_needed());
    // an unconfigured leg has no telephone-event either
    assert!(!core.send_dtmf(Leg::B, one, 100));
    assert_eq!(core.report().a.counters.dtmf_dropped, 1);
    assert_eq!(core.report().b.counters.dtmf_dropped, 1);
    // a re-INVITE that removes telephone-event drops what was waiting
    let mut core = RelayCore::new(Some(pbx()), None, 3);
    assert!(core.send_dtmf(Leg::A, one, 100));
    assert!(core.send_dtmf(Leg::A, one, 100));
    core.configure(Leg::A, no_events);
    assert!(!core.timer_needed());
    assert_eq!(core.report().a.counters.dtmf_dropped, 2);
    // too many at once: the queue keeps 32
    let mut core = RelayCore::new(Some(pbx()), None, 3);
    let accepted = (0..40).filter(|_| core.send_dtmf(Leg::A, one, 40)).count();
    assert_eq!(accepted, 32);
    assert_eq!(core.report().a.counters.dtmf_dropped, 8);
}

#[test]
fn dtmf_to_a_leg_with_no_address_yet_runs_without_sending() {
    let mut unaddressed = pbx();
    unaddressed.remote_rtp = None;
    let mut core = RelayCore::new(Some(unaddressed), None, 5);
    assert!(core.send_dtmf(Leg::A, DtmfEvent::from_digit('9').expect("9"), 40));
    let ticks = dtmf_ticks(&mut core, Leg::A);
    assert_eq!(ticks.len(), 4);
    assert!(ticks.iter().all(Option::is_none));
    assert_eq!(core.report().a.counters.dtmf_packets, 0);
}

#[test]
fn a_fixed_leg_takes_media_only_from_its_sdp_address() {
    let now = Instant::now();
    let mut core = RelayCore::new(Some(pbx()), Some(agent()), 1);
    core.bridge();
    let trunk = addr("10.0.0.7:7000");
    core.configure_fixed(Leg::B, media("10.0.0.7:7000", Payloads::ours(Codec::Pcmu)));
    assert_eq!(core.remote_rtp(Leg::B), Some(trunk));
    assert!(core.report().b.latched, "locked before any packet");
    // the previous far end is still sending: ignored, not latched
    let mut p = packet(0, 1);
    assert!(!matches!(
        core.on_rtp(Leg::B, addr("10.0.0.2:5000"), &mut p, now),
        Verdict::Forward { .. }
    ));
    assert_eq!(core.remote_rtp(Leg::B), Some(trunk));
    let mut p = packet(0, 2);
    assert!(matches!(
        core.on_rtp(Leg::B, trunk, &mut p, now),
        Verdict::Forward { .. }
    ));
}
