//! The relay task on loopback: plain UDP sockets play the PBX and the operator's softphone.
//! Ports 24000–24199 (below Linux's ephemeral range, apart from the unit tests' and the default
//! config's ranges); 127.0.0.1 only.

use homeline_media::codec::Payloads;
use homeline_media::relay::{self, Control, Leg, LegMedia, PortAllocator, RelayConfig};
use homeline_media::rtp::{self, HeaderFields, RtpHeader};
use homeline_media::tone::{FRAME_SAMPLES, ToneSpec, goertzel_power};
use homeline_media::{Codec, g711};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn socket() -> Arc<UdpSocket> {
    Arc::new(UdpSocket::bind((LO, 0)).await.expect("bind loopback"))
}

fn addr_of(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("local address")
}

fn leg(remote: SocketAddr, telephone_event_pt: u8) -> LegMedia {
    LegMedia {
        remote_rtp: Some(remote),
        remote_rtcp: Some(SocketAddr::new(remote.ip(), remote.port() + 1)),
        rtcp_mux: false,
        payloads: Payloads {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: Some(telephone_event_pt),
        },
    }
}

fn packet(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0xFFu8; 12 + 160];
    let fields = HeaderFields {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc,
    };
    rtp::write_header(&mut p, &fields).expect("room for a header");
    p
}

/// Receives up to `n` datagrams, stopping after `quiet` without one; returns them.
async fn receive(sock: &UdpSocket, n: usize, quiet: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::with_capacity(n);
    let mut buf = [0u8; 2048];
    while got.len() < n {
        match timeout(quiet, sock.recv_from(&mut buf)).await {
            Ok(Ok((len, _))) => got.push(buf[..len].to_vec()),
            _ => break,
        }
    }
    got
}

fn headers(packets: &[Vec<u8>]) -> Vec<RtpHeader> {
    packets
        .iter()
        .map(|p| RtpHeader::parse(p).expect("relayed RTP"))
        .collect()
}

/// Sends RTP with these sequence numbers, every tenth with `event_pt`, paced in bursts of 10.
async fn send_stream(
    sock: &UdpSocket,
    to: SocketAddr,
    seqs: impl Iterator<Item = u16>,
    event_pt: u8,
) {
    for (i, seq) in seqs.enumerate() {
        let pt = if seq % 10 == 9 { event_pt } else { 0 };
        sock.send_to(&packet(pt, seq, 0x5EED), to)
            .await
            .expect("send");
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test]
async fn relays_200_packets_each_way_with_latching_and_payload_type_mapping() {
    let ports = PortAllocator::new(LO, 24000..=24019).expect("port range");
    let (pbx, agent, decoy) = (socket().await, socket().await, socket().await);
    // The PBX's SDP names the decoy's port; its media really comes from another port.
    let config = RelayConfig {
        a: Some(leg(addr_of(&decoy), 101)),
        b: Some(leg(addr_of(&agent), 96)),
        seed: 1,
    };
    let (a, b) = (
        ports.allocate().expect("pair"),
        ports.allocate().expect("pair"),
    );
    let (a_rtp, b_rtp) = (a.rtp_addr(), b.rtp_addr());
    let (handle, task) = relay::spawn(config, a, b).expect("spawn");
    handle.send(Control::Bridge).await.expect("bridge");

    // The first packet from the PBX latches leg A; the agent hears it.
    pbx.send_to(&packet(0, 0, 0x5EED), a_rtp)
        .await
        .expect("send");
    let first = receive(&agent, 1, Duration::from_secs(2)).await;
    assert_eq!(first.len(), 1, "first PBX packet relayed");

    let started = Instant::now();
    let agent_rx = tokio::spawn({
        let agent = Arc::clone(&agent);
        async move { receive(&agent, 199, Duration::from_secs(1)).await }
    });
    let pbx_rx = tokio::spawn({
        let pbx = Arc::clone(&pbx);
        async move { receive(&pbx, 200, Duration::from_secs(1)).await }
    });
    tokio::join!(
        send_stream(&pbx, a_rtp, 1..200, 101),
        send_stream(&agent, b_rtp, 0..200, 96),
    );
    let at_agent = headers(&agent_rx.await.expect("agent receiver"));
    let at_pbx = headers(&pbx_rx.await.expect("PBX receiver"));
    let elapsed = started.elapsed();

    assert_eq!(at_agent.len(), 199);
    assert_eq!(at_pbx.len(), 200);
    for h in &at_agent {
        let expected_pt = if h.sequence % 10 == 9 { 96 } else { 0 };
        assert_eq!(h.payload_type, expected_pt, "PBX→agent seq {}", h.sequence);
    }
    for h in &at_pbx {
        let expected_pt = if h.sequence % 10 == 9 { 101 } else { 0 };
        assert_eq!(h.payload_type, expected_pt, "agent→PBX seq {}", h.sequence);
    }
    // nothing went to the SDP's guess once the real source was known
    assert!(
        receive(&decoy, 1, Duration::from_millis(50))
            .await
            .is_empty()
    );

    handle.send(Control::Stop).await.expect("stop");
    let report = task.await.expect("relay task");
    assert!(report.a.latched && report.b.latched);
    assert_eq!(report.a.remote_rtp, Some(addr_of(&pbx)));
    assert_eq!(report.a.counters.forwarded, 200);
    assert_eq!(report.b.counters.forwarded, 200);
    for s in [report.a.stats, report.b.stats] {
        assert_eq!(
            (s.packets, s.expected, s.lost, s.bytes),
            (200, 200, 0, 200 * 160)
        );
        assert!(s.mos > 4.0, "{}", s.mos);
    }
    // every port is back in the pool once the task has ended
    assert_eq!(ports.available(), ports.capacity());
    eprintln!("400 packets relayed in {elapsed:?}");
}

#[tokio::test]
async fn counts_loss_from_skipped_sequence_numbers_and_rtcp_goes_between_odd_ports() {
    let ports = PortAllocator::new(LO, 24040..=24059).expect("port range");
    let (pbx, agent) = (socket().await, socket().await);
    let (pbx_rtcp, agent_rtcp) = (socket().await, socket().await);
    let mut a_media = leg(addr_of(&pbx), 101);
    a_media.remote_rtcp = Some(addr_of(&pbx_rtcp));
    let mut b_media = leg(addr_of(&agent), 101);
    b_media.remote_rtcp = Some(addr_of(&agent_rtcp));
    let config = RelayConfig {
        a: Some(a_media),
        b: Some(b_media),
        seed: 2,
    };
    let (a, b) = (
        ports.allocate().expect("pair"),
        ports.allocate().expect("pair"),
    );
    let (a_rtp, a_rtcp) = (a.rtp_addr(), a.rtcp_addr());
    let (handle, task) = relay::spawn(config, a, b).expect("spawn");
    handle.send(Control::Bridge).await.expect("bridge");

    // 0..300 with 7 single gaps and one burst of 5 (and a wrap of nothing: plain numbers)
    let skipped = [3u16, 50, 51 + 2, 120, 199, 200, 250];
    let burst = 260..265u16;
    let seqs: Vec<u16> = (0..300)
        .filter(|s| !skipped.contains(s) && !burst.contains(s))
        .collect();
    let sent = seqs.len();
    let agent_rx = tokio::spawn({
        let agent = Arc::clone(&agent);
        async move { receive(&agent, sent, Duration::from_secs(1)).await }
    });
    send_stream(&pbx, a_rtp, seqs.into_iter(), 101).await;
    assert_eq!(agent_rx.await.expect("receiver").len(), sent);

    // an RTCP receiver report from the PBX's RTCP port reaches the agent's
    let rr = [0x80u8, 201, 0, 1, 0, 0, 0x5E, 0xED];
    pbx_rtcp.send_to(&rr, a_rtcp).await.expect("send RTCP");
    let got = receive(&agent_rtcp, 1, Duration::from_secs(2)).await;
    assert_eq!(got, vec![rr.to_vec()]);

    let report = handle.report().await.expect("report");
    let s = report.a.stats;
    assert_eq!((s.expected, s.lost), (300, 12));
    assert!((s.loss_fraction - 0.04).abs() < 1e-9);
    assert!(s.mos < 4.1, "4 % loss should cost MOS: {}", s.mos);
    assert_eq!(report.a.counters.rtcp_forwarded, 1);
    drop(handle);
    // dropping the last handle ends the task too
    let last = timeout(Duration::from_secs(2), task)
        .await
        .expect("task ends when its handles are gone")
        .expect("relay task");
    assert_eq!(last.a.stats.lost, 12);
}

fn zero_crossings(pcm: &[i16]) -> usize {
    pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

#[tokio::test]
async fn plays_a_tone_to_the_pbx_leg_until_bridged() {
    let ports = PortAllocator::new(LO, 24080..=24099).expect("port range");
    let (pbx, agent) = (socket().await, socket().await);
    let mut a_media = leg(addr_of(&pbx), 101);
    a_media.payloads = Payloads::ours(Codec::Pcma);
    let config = RelayConfig {
        a: Some(a_media),
        b: None,
        seed: 3,
    };
    let (a, b) = (
        ports.allocate().expect("pair"),
        ports.allocate().expect("pair"),
    );
    let a_rtp = a.rtp_addr();
    let (handle, task) = relay::spawn(config, a, b).expect("spawn");
    handle
        .send(Control::PlayTone(Leg::A, ToneSpec::RINGBACK_EU))
        .await
        .expect("play");

    // Caller media is dropped (counted) while waiting for an operator.
    pbx.send_to(&packet(8, 0, 1), a_rtp).await.expect("send");

    let started = Instant::now();
    let frames = receive(&pbx, 25, Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    assert_eq!(frames.len(), 25);
    // paced at 20 ms: 25 frames take about half a second
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    let mut pcm = Vec::with_capacity(25 * FRAME_SAMPLES);
    for (i, f) in frames.iter().enumerate() {
        let h = RtpHeader::parse(f).expect("tone RTP");
        assert_eq!(h.payload_type, 8);
        assert_eq!(h.marker, i == 0);
        assert_eq!(h.payload_len, FRAME_SAMPLES);
        pcm.extend(h.payload(f).iter().map(|b| g711::alaw_decode(*b)));
    }
    // 425 Hz over 0.5 s: 425 sign changes ±1
    let zc = zero_crossings(&pcm);
    assert!((424..=426).contains(&zc), "zero crossings {zc}");
    let at = goertzel_power(&pcm, 425.0, 8000.0);
    for other in [350.0, 400.0, 450.0, 480.0, 1000.0] {
        assert!(
            at > 100.0 * goertzel_power(&pcm, other, 8000.0),
            "{other} Hz"
        );
    }

    // The operator answers (with PCMA too): configure B, bridge; the tone stops, media flows.
    let mut b_media = leg(addr_of(&agent), 101);
    b_media.payloads = Payloads::ours(Codec::Pcma);
    handle
        .send(Control::Configure(Leg::B, b_media))
        .await
        .expect("configure");
    handle.send(Control::Bridge).await.expect("bridge");
    let report = handle.report().await.expect("report");
    let tones = report.a.counters.tone_packets;
    let mut buf = [0u8; 2048];
    // drain any tone frame still in flight; none may follow the report
    let mut after = 0;
    while let Ok(Ok(_)) = timeout(Duration::from_millis(100), pbx.recv_from(&mut buf)).await {
        after += 1;
    }
    assert_eq!(25 + after, tones, "no tone after bridging");
    assert_eq!(report.a.counters.dropped_not_bridged, 1);

    pbx.send_to(&packet(8, 1, 1), a_rtp).await.expect("send");
    let got = headers(&receive(&agent, 1, Duration::from_secs(2)).await);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].payload_type, got[0].sequence), (8, 1));
    handle.send(Control::Stop).await.expect("stop");
    let report = task.await.expect("relay task");
    assert_eq!(report.a.counters.forwarded, 1);
}

#[test]
fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    let ports = PortAllocator::new(LO, 24120..=24123).expect("port range");
    let (a, b) = (
        ports.allocate().expect("pair"),
        ports.allocate().expect("pair"),
    );
    let config = RelayConfig {
        a: None,
        b: None,
        seed: 0,
    };
    assert!(matches!(
        relay::spawn(config, a, b),
        Err(relay::RelayError::NoRuntime)
    ));
    assert_eq!(ports.available(), 2);
}

/// A bridged relay whose legs' SDP name `pbx` and `agent` (telephone-event 101 and 96): its
/// handle, its task, and the loopback addresses of leg A's and leg B's RTP ports.
async fn bridged(
    ports: &PortAllocator,
    pbx: SocketAddr,
    agent: SocketAddr,
    seed: u64,
) -> (
    relay::RelayHandle,
    tokio::task::JoinHandle<relay::RelayReport>,
    SocketAddr,
    SocketAddr,
) {
    let config = RelayConfig {
        a: Some(leg(pbx, 101)),
        b: Some(leg(agent, 96)),
        seed,
    };
    let (a, b) = (
        ports.allocate().expect("pair"),
        ports.allocate().expect("pair"),
    );
    let (a_rtp, b_rtp) = (SocketAddr::new(LO, a.port()), SocketAddr::new(LO, b.port()));
    let (handle, task) = relay::spawn(config, a, b).expect("spawn");
    handle.send(Control::Bridge).await.expect("bridge");
    (handle, task, a_rtp, b_rtp)
}

/// The relay worker connects a leg's socket to its latched remote; a re-INVITE must open it again,
/// or the kernel would keep shutting out the remote's new address.
#[tokio::test]
async fn a_latched_leg_ignores_others_until_a_reinvite_moves_it() {
    let ports = PortAllocator::new(LO, 24160..=24167).expect("port range");
    let (pbx, moved, agent) = (socket().await, socket().await, socket().await);
    let (handle, task, a_rtp, b_rtp) = bridged(&ports, addr_of(&pbx), addr_of(&agent), 3).await;
    let quiet = Duration::from_millis(300);

    // the PBX latches leg A; the agent latches leg B and is heard by the PBX
    pbx.send_to(&packet(0, 0, 1), a_rtp).await.expect("send");
    assert_eq!(receive(&agent, 1, quiet).await.len(), 1);
    agent.send_to(&packet(0, 0, 2), b_rtp).await.expect("send");
    assert_eq!(receive(&pbx, 1, quiet).await.len(), 1);
    // another source on leg A is not relayed
    moved.send_to(&packet(0, 1, 3), a_rtp).await.expect("send");
    assert!(receive(&agent, 1, quiet).await.is_empty());
    pbx.send_to(&packet(0, 1, 1), a_rtp).await.expect("send");
    assert_eq!(receive(&agent, 1, quiet).await.len(), 1);

    // a re-INVITE moves the PBX's media: its new address latches and is relayed both ways
    handle
        .send(Control::Configure(Leg::A, leg(addr_of(&moved), 101)))
        .await
        .expect("configure");
    // (the relay has applied it once it answers)
    handle.report().await.expect("report");
    moved.send_to(&packet(0, 2, 3), a_rtp).await.expect("send");
    let got = headers(&receive(&agent, 1, quiet).await);
    assert_eq!(got.iter().map(|h| h.ssrc).collect::<Vec<_>>(), vec![3]);
    agent.send_to(&packet(0, 1, 2), b_rtp).await.expect("send");
    assert_eq!(receive(&moved, 1, quiet).await.len(), 1);
    // and the old address is shut out now
    pbx.send_to(&packet(0, 2, 1), a_rtp).await.expect("send");
    assert!(receive(&agent, 1, quiet).await.is_empty());

    handle.send(Control::Stop).await.expect("stop");
    let report = task.await.expect("relay task");
    assert_eq!(report.a.remote_rtp, Some(addr_of(&moved)));
    assert_eq!(report.a.counters.forwarded, 3);
    assert_eq!(report.b.counters.forwarded, 2);
}

/// A call whose task is dropped before `Stop` (aborted, or its runtime shut down) leaves the
/// worker and gives its ports back.
#[tokio::test]
async fn an_aborted_relay_returns_its_ports() {
    let ports = PortAllocator::new(LO, 24180..=24187).expect("port range");
    let (pbx, agent) = (socket().await, socket().await);
    let (handle, task, _, _) = bridged(&ports, addr_of(&pbx), addr_of(&agent), 4).await;
    handle.report().await.expect("running");
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    let deadline = Instant::now() + Duration::from_secs(2);
    while ports.available() < ports.capacity() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ports.available(), ports.capacity());
    assert!(handle.send(Control::Bridge).await.is_err());
}

/// Sockets bound to every interface are not connected (that would narrow them to one local
/// address): after latching, the remote's packets to another local address still arrive.
#[tokio::test]
async fn a_relay_bound_to_every_interface_keeps_hearing_every_local_address() {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let ports = PortAllocator::new(any, 24140..=24147).expect("port range");
    let (pbx, agent) = (socket().await, socket().await);
    let (handle, task, a_rtp, b_rtp) = bridged(&ports, addr_of(&pbx), addr_of(&agent), 5).await;
    let quiet = Duration::from_millis(300);

    pbx.send_to(&packet(0, 0, 1), a_rtp).await.expect("send");
    assert_eq!(receive(&agent, 1, quiet).await.len(), 1);
    agent.send_to(&packet(0, 0, 2), b_rtp).await.expect("send");
    assert_eq!(receive(&pbx, 1, quiet).await.len(), 1);
    // the same remote, to another of the host's addresses
    let other = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), a_rtp.port());
    pbx.send_to(&packet(0, 1, 1), other).await.expect("send");
    assert_eq!(receive(&agent, 1, quiet).await.len(), 1);

    handle.send(Control::Stop).await.expect("stop");
    let report = task.await.expect("relay task");
    assert_eq!(report.a.counters.forwarded, 2);
}
