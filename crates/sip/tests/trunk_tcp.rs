//! Outbound legs over a TCP trunk, end to end: a `SipEdge` on free loopback ports whose trunk
//! `pbx` has `transport = tcp` and points at SIPp listening on TCP (`-t t1`,
//! `tests/sipp/trunk_tcp_*.xml`), or at a small TCP responder of the test's own (to count
//! connections). The test plays the runtime: it places legs with `invite_trunk` and reads
//! the edge's events.
//!
//! Each test stays under 20 s (SIPp runs with `-timeout`, every wait has its own limit, SIPp
//! is killed when the test ends). SIPp's traces are kept in `target/tmp/trunk_tcp/TEST/`.

use homeline_sip::trunks::TrunkTransport;
use homeline_sip::{EdgeEvent, EdgeSettings, LegRef, OutboundFrom, SipEdge};
use std::net::SocketAddr;
use std::time::Duration;
use support::{EDGE_IP, Sipp, free_port_pair, ip, test_dir};
use tokio::sync::mpsc;

mod support;

const WAIT: Duration = Duration::from_secs(8);
const NUMBER: &str = "0612345678";
const OFFER: &[u8] = b"v=0\r\no=homeline 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
    t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

/// The edge's settings, with trunk `pbx` at `EDGE_IP:pbx` over `transport`, with
/// credentials and a caller id.
fn settings(port: u16, pbx: u16, transport: TrunkTransport) -> EdgeSettings {
    let mut settings = support::settings(port);
    let trunk = &mut settings.trunks[0];
    trunk.pbx = SocketAddr::new(ip(EDGE_IP), pbx);
    trunk.transport = transport;
    trunk.credentials = Some(("homeline".into(), "trunk-secret".into()));
    trunk.caller_id = Some("+15550100".into());
    settings
}

/// A started edge whose trunk's PBX is at `pbx` (TCP unless `udp`), and its events.
struct Harness {
    edge: SipEdge,
    port: u16,
    events: mpsc::Receiver<EdgeEvent>,
    log: Vec<EdgeEvent>,
}

impl Harness {
    async fn start(pbx: u16) -> Harness {
        Harness::start_on(pbx, TrunkTransport::Tcp).await
    }

    async fn start_on(pbx: u16, transport: TrunkTransport) -> Harness {
        let port = free_port_pair(EDGE_IP);
        let mut edge = SipEdge::start(settings(port, pbx, transport))
            .await
            .expect("edge starts");
        let events = edge.events().expect("events, the first time");
        Harness {
            edge,
            port,
            events,
            log: Vec::new(),
        }
    }

    async fn call(&self, leg: u64) {
        let from = OutboundFrom::Operator("alice");
        let offer = OFFER.to_vec();
        self.edge
            .invite_trunk(LegRef(leg), Some("pbx"), NUMBER, from, offer)
            .await;
    }

    /// Waits for an event matching `want`, returning it; fails after [`WAIT`].
    async fn expect(&mut self, what: &str, want: impl Fn(&EdgeEvent) -> bool) -> EdgeEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
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
}

/// The `sent-by` port of the Via and the port of the Contact of each INVITE homeline sent,
/// from SIPp's message trace.
fn invite_ports(trace: &str) -> Vec<(u16, u16)> {
    let port_after = |text: &str, prefix: &str| -> Option<u16> {
        let rest = &text[text.find(prefix)? + prefix.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    trace
        .split("INVITE sip:0612345678@")
        .skip(1)
        .filter_map(|msg| {
            let head = &msg[..msg.find("\r\n\r\n").or_else(|| msg.find("\n\n"))?];
            let via = head.lines().find(|l| l.starts_with("Via:"))?;
            let contact = head.lines().find(|l| l.starts_with("Contact:"))?;
            let via = port_after(via, &format!("TCP {EDGE_IP}:"))?;
            let contact = port_after(contact, &format!("@{EDGE_IP}:"))?;
            Some((via, contact))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_legs_over_a_tcp_trunk_share_one_connection_and_end_with_our_bye() {
    let _serial = serial().await;
    let dir = test_dir("trunk_tcp", "answered");
    let pbx_port = free_port_pair(EDGE_IP);
    let mut pbx = Sipp::uas(&dir, "pbx", "trunk_tcp_answer.xml", pbx_port, true, 2, &[]);
    let mut h = Harness::start(pbx_port).await;
    // SIPp needs a moment to listen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for leg in [1, 2] {
        h.call(leg).await;
        h.expect(
            "LegRinging",
            |e| matches!(e, EdgeEvent::LegRinging { leg: l } if l.0 == leg),
        )
        .await;
        let answered = h
            .expect("LegAnswered", |e| {
                matches!(e, EdgeEvent::LegAnswered { .. })
            })
            .await;
        assert!(
            matches!(&answered, EdgeEvent::LegAnswered { leg: l, answer: Some(sdp) }
                if l.0 == leg && sdp.windows(5).any(|w| w == b"o=pbx")),
            "{answered:?}"
        );
        h.edge.bye_agent(LegRef(leg)).await;
    }
    pbx.expect_success(WAIT, &h.log).await;
    let trace = std::fs::read_to_string(dir.join("pbx.messages.log")).unwrap_or_default();
    let ports = invite_ports(&trace);
    // Two calls, each challenged once: four INVITEs, all on one connection whose local port
    // is in Via (not the edge's listening port); Contact is the edge's TCP listener, where
    // the PBX may open a connection of its own for in-dialog requests.
    assert_eq!(ports.len(), 4, "{trace}");
    assert!(
        ports
            .iter()
            .all(|&p| p == ports[0] && p.0 != h.port && p.1 == h.port),
        "{ports:?} (edge on {})",
        h.port
    );
    assert_eq!(trace.matches("BYE sip:pbx@").count(), 2, "{trace}");
    assert!(
        !h.log.iter().any(|e| matches!(
            e,
            EdgeEvent::LegRefused { .. } | EdgeEvent::LegUnreachable { .. }
        )),
        "{:#?}",
        h.log
    );
    h.edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pbx_holds_and_hangs_up_an_outbound_leg_over_its_tcp_connection() {
    let _serial = serial().await;
    let dir = test_dir("trunk_tcp", "pbx_hangs_up");
    let pbx_port = free_port_pair(EDGE_IP);
    let mut pbx = Sipp::uas(&dir, "pbx", "trunk_tcp_hangup.xml", pbx_port, true, 1, &[]);
    let mut h = Harness::start(pbx_port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.call(7).await;
    h.expect("LegRinging (183)", |e| {
        matches!(e, EdgeEvent::LegRinging { .. })
    })
    .await;
    h.expect("LegAnswered", |e| {
        matches!(e, EdgeEvent::LegAnswered { .. })
    })
    .await;
    let hold = h
        .expect("LegHold", |e| matches!(e, EdgeEvent::LegHold { .. }))
        .await;
    assert!(
        matches!(
            hold,
            EdgeEvent::LegHold {
                leg: LegRef(7),
                held: true,
                ..
            }
        ),
        "{hold:?}"
    );
    h.edge
        .answer_leg_reoffer(LegRef(7), Some(OFFER.to_vec()))
        .await;
    h.expect("LegHungUp", |e| {
        matches!(e, EdgeEvent::LegHungUp { leg: LegRef(7) })
    })
    .await;
    pbx.expect_success(WAIT, &h.log).await;
    h.edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_outbound_leg_over_tcp_is_cancelled_on_its_connection() {
    let _serial = serial().await;
    let dir = test_dir("trunk_tcp", "cancel");
    let pbx_port = free_port_pair(EDGE_IP);
    let mut pbx = Sipp::uas(&dir, "pbx", "trunk_tcp_cancel.xml", pbx_port, true, 1, &[]);
    let mut h = Harness::start(pbx_port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.call(3).await;
    h.expect("LegRinging", |e| matches!(e, EdgeEvent::LegRinging { .. }))
        .await;
    h.edge.cancel_agent(LegRef(3)).await;
    h.expect("LegRefused 487", |e| {
        matches!(
            e,
            EdgeEvent::LegRefused {
                leg: LegRef(3),
                status: 487
            }
        )
    })
    .await;
    pbx.expect_success(WAIT, &h.log).await;
    h.edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_trunk_nobody_listens_on_is_unreachable_at_once() {
    let _serial = serial().await;
    // A port free a moment ago: connecting is refused.
    let mut h = Harness::start(free_port_pair(EDGE_IP)).await;
    let started = tokio::time::Instant::now();
    h.call(5).await;
    h.expect("LegUnreachable", |e| {
        matches!(e, EdgeEvent::LegUnreachable { leg: LegRef(5) })
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Cancelling or hanging up the gone leg changes nothing.
    h.edge.bye_agent(LegRef(5)).await;
    h.edge.shutdown().await;
}

// A single-threaded runtime: the leg's task cannot run between `invite_trunk` and
// `cancel_agent`, so the leg is still dialing when it is cancelled.
#[tokio::test(flavor = "current_thread")]
async fn a_leg_cancelled_while_dialing_sends_no_invite() {
    let _serial = serial().await;
    let pbx = tokio::net::UdpSocket::bind((ip(EDGE_IP), 0))
        .await
        .expect("the PBX's socket");
    let pbx_port = pbx.local_addr().expect("its address").port();
    let mut h = Harness::start_on(pbx_port, TrunkTransport::Udp).await;
    h.call(9).await;
    h.edge.cancel_agent(LegRef(9)).await;
    h.expect("LegRefused 487", |e| {
        matches!(
            e,
            EdgeEvent::LegRefused {
                leg: LegRef(9),
                status: 487
            }
        )
    })
    .await;
    let mut buf = [0u8; 2048];
    let got = tokio::time::timeout(Duration::from_millis(500), pbx.recv(&mut buf)).await;
    assert!(got.is_err(), "the PBX got something: {got:?}");
    h.edge.shutdown().await;
}

/// A response with `status` to the request `req` (its Via, From, To, Call-ID and CSeq).
fn reply(req: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in req.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
            out.push_str(line.trim_end());
            if name == "to" && !line.contains("tag=") {
                out.push_str(";tag=pbx");
            }
            out.push_str("\r\n");
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// The first whole message in `buf` (framed by its `Content-Length`), taken out of it.
fn take_message(buf: &mut Vec<u8>) -> Option<String> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let body = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim().to_ascii_lowercase();
            (name == "content-length" || name == "l").then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0usize);
    if buf.len() < end + body {
        return None;
    }
    buf.drain(..end + body);
    Some(head)
}

/// A PBX that accepts TCP connections and answers OPTIONS `200` and INVITE `486`; reports
/// each request's first line with the number of its connection.
async fn busy_pbx(listener: tokio::net::TcpListener, seen: mpsc::UnboundedSender<(usize, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut n = 0;
    while let Ok((mut sock, _)) = listener.accept().await {
        n += 1;
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 8192];
            while let Ok(len @ 1..) = sock.read(&mut chunk).await {
                buf.extend_from_slice(&chunk[..len]);
                while let Some(msg) = take_message(&mut buf) {
                    let first = msg.lines().next().unwrap_or("").to_string();
                    let status = match first.split(' ').next() {
                        Some("OPTIONS") => "200 OK",
                        Some("INVITE") => "486 Busy Here",
                        _ => continue,
                    };
                    let _ = seen.send((n, first));
                    if sock
                        .write_all(reply(&msg, status).as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
    }
}

/// The next request the PBX saw.
async fn next_request(seen: &mut mpsc::UnboundedReceiver<(usize, String)>) -> (usize, String) {
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .ok()
        .flatten()
        .expect("a request at the PBX")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trunk_keepalive_and_outbound_legs_share_one_tcp_connection() {
    let _serial = serial().await;
    let listener = tokio::net::TcpListener::bind((ip(EDGE_IP), 0))
        .await
        .expect("the PBX listens");
    let pbx_port = listener.local_addr().expect("its address").port();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let pbx = tokio::spawn(busy_pbx(listener, seen_tx));
    let port = free_port_pair(EDGE_IP);
    let mut settings = settings(port, pbx_port, TrunkTransport::Tcp);
    settings.trunks[0].options_interval = Some(Duration::from_millis(300));
    let mut edge = SipEdge::start(settings).await.expect("edge starts");
    let mut events = edge.events().expect("events");
    // The first OPTIONS opens the connection; the INVITE must come on it.
    let mut requests = vec![next_request(&mut seen).await];
    let offer = OFFER.to_vec();
    let from = OutboundFrom::Operator("alice");
    edge.invite_trunk(LegRef(4), None, NUMBER, from, offer)
        .await;
    let refused = tokio::time::timeout(WAIT, events.recv()).await;
    assert!(
        matches!(
            refused,
            Ok(Some(EdgeEvent::LegRefused {
                leg: LegRef(4),
                status: 486
            }))
        ),
        "{refused:?}"
    );
    while requests
        .iter()
        .filter(|(_, r)| r.starts_with("OPTIONS"))
        .count()
        < 3
    {
        requests.push(next_request(&mut seen).await);
    }
    assert!(
        requests
            .iter()
            .any(|(_, r)| r.starts_with("INVITE sip:0612345678@")),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|(conn, _)| *conn == 1),
        "one connection: {requests:?}"
    );
    edge.shutdown().await;
    pbx.abort();
}

/// The tests run one at a time (SIPp ports are found free a moment before use).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
