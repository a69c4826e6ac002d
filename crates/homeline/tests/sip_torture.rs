//! RFC 4475 ("SIP Torture Test Messages") against the real `homeline` binary. The 49 messages
//! in `tests/sip/rfc4475/` are byte-exact copies of the RFC's archive; the `README.md` there
//! gives each one's section, class and expected handling. Each is sent unchanged: they name
//! example hosts, and homeline answers the address a request came from.
//!
//! Over UDP, one message at a time, each from a socket of its own, homeline must:
//! - never crash: it still runs after every message;
//! - reject an invalid request: `400` (or the code RFC 4475 §3 names for it), or drop it, in
//!   which case a `malformed` log line names the sender and its `total` goes up;
//! - parse and process a valid request: any final response but `400` (homeline is a
//!   registrar behind digest and a gateway for its trunks: `401`, `404`, `405`, `501` are all
//!   processing);
//! - send nothing back for a response (there is nobody to answer); an invalid response is
//!   counted as malformed;
//! - where §3 lets a liberal element accept an invalid message, either is fine;
//! - still answer OPTIONS over UDP and TCP (SIPp) after the whole set.
//!
//! Over TCP, one connection per message, homeline must survive each and still answer OPTIONS
//! after the set; what each message got is printed, not checked (homeline closes a connection
//! on a framing or parse error without a response: a known limitation of the SIP edge).
//!
//! Where homeline does not do what RFC 4475 asks, the message is in [`DEVIATIONS`] with what
//! it does instead: the test then checks only that homeline survives it, and prints the
//! deviation. `HOMELINE_RFC4475_STRICT=1` makes every deviation fail the test. A listed
//! message that conforms is reported, to be taken off the list. Each test prints its table
//! (`--nocapture`) and writes it to `target/tmp/sip_edge/TEST/results.txt`.

// Each test file uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod sip_harness;

use sip_harness::{Homeline, LogLine, Setup, sip_dir};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a message may wait for its final response.
const ANSWER_WAIT: Duration = Duration::from_millis(1500);
/// Once a message is counted as malformed, how long a `400` may still take to come.
const COUNTED_GRACE: Duration = Duration::from_millis(300);
/// How long a TCP connection waits for a final response or its closing.
const TCP_WAIT: Duration = Duration::from_millis(1000);

/// What RFC 4475 §3 accepts from a receiving element, one of several per message.
#[derive(Debug, Clone, Copy)]
enum Accept {
    /// A final `SIP/2.0` response with this status code.
    Status(u16),
    /// Any final `SIP/2.0` error response (4xx to 6xx): "respond with an error".
    AnyError,
    /// Any final `SIP/2.0` response but `400`: the message was parsed and processed.
    Processed,
    /// Nothing sent back, and a `malformed` log line names the sender with a higher `total`.
    DroppedAndCounted,
    /// Nothing sent back and nothing counted: a valid response nobody waits for.
    Nothing,
}

use Accept::{AnyError, DroppedAndCounted, Nothing, Processed, Status};

/// Accepting an invalid message liberally, where §3 allows it.
const REJECT_OR_LIBERAL: &[Accept] = &[Status(400), DroppedAndCounted, Processed];
const REJECT: &[Accept] = &[Status(400), DroppedAndCounted];

/// One torture message and what RFC 4475 §3 expects of it.
#[derive(Debug)]
struct Vector {
    /// File stem in `tests/sip/rfc4475/`.
    name: &'static str,
    section: &'static str,
    /// `valid`, `invalid`, `transaction`, `application`, `compat` (the README's classes).
    class: &'static str,
    /// What §3 expects, in short.
    rfc: &'static str,
    accept: &'static [Accept],
}

const fn v(
    name: &'static str,
    section: &'static str,
    class: &'static str,
    rfc: &'static str,
    accept: &'static [Accept],
) -> Vector {
    Vector {
        name,
        section,
        class,
        rfc,
        accept,
    }
}

/// Every message, in the RFC's order. Where the README's short column and §3 differ, §3 wins:
/// for `mismatch02` §3.1.2.18 prefers `501`, with `400` also acceptable.
const VECTORS: &[Vector] = &[
    v(
        "wsinv",
        "3.1.1.1",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "intmeth",
        "3.1.1.2",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "esc01",
        "3.1.1.3",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "escnull",
        "3.1.1.4",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "esc02",
        "3.1.1.5",
        "valid",
        "unknown method (not REGISTER): 501 or 405",
        &[Status(501), Status(405)],
    ),
    v(
        "lwsdisp",
        "3.1.1.6",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "longreq",
        "3.1.1.7",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "dblreq",
        "3.1.1.8",
        "valid",
        "process the REGISTER, ignore the trailing octets",
        &[Processed],
    ),
    v(
        "semiuri",
        "3.1.1.9",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "transports",
        "3.1.1.10",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "mpart01",
        "3.1.1.11",
        "valid",
        "parse and process",
        &[Processed],
    ),
    v(
        "unreason",
        "3.1.1.12",
        "valid",
        "a response: parse",
        &[Nothing],
    ),
    v(
        "noreason",
        "3.1.1.13",
        "valid",
        "a response: parse",
        &[Nothing],
    ),
    v("badinv01", "3.1.2.1", "invalid", "400", REJECT),
    v("clerr", "3.1.2.2", "invalid", "400 over UDP", REJECT),
    v(
        "ncl",
        "3.1.2.3",
        "invalid",
        "an error (UDP: discard the rest)",
        &[AnyError, DroppedAndCounted],
    ),
    v("scalar02", "3.1.2.4", "invalid", "400 (CSeq)", REJECT),
    v(
        "scalarlg",
        "3.1.2.5",
        "invalid",
        "a response: drop it",
        &[DroppedAndCounted],
    ),
    v(
        "quotbal",
        "3.1.2.6",
        "invalid",
        "400, or infer the quote",
        REJECT_OR_LIBERAL,
    ),
    v(
        "ltgtruri",
        "3.1.2.7",
        "invalid",
        "400, or ignore the <>",
        REJECT_OR_LIBERAL,
    ),
    v("lwsruri", "3.1.2.8", "invalid", "400", REJECT),
    v(
        "lwsstart",
        "3.1.2.9",
        "invalid",
        "400, or ignore the SPs",
        REJECT_OR_LIBERAL,
    ),
    v(
        "trws",
        "3.1.2.10",
        "invalid",
        "400, or ignore the SPs",
        REJECT_OR_LIBERAL,
    ),
    v(
        "escruri",
        "3.1.2.11",
        "invalid",
        "400, or ignore the escaped headers",
        REJECT_OR_LIBERAL,
    ),
    v(
        "baddate",
        "3.1.2.12",
        "invalid",
        "400, or ignore Date",
        REJECT_OR_LIBERAL,
    ),
    v(
        "regbadct",
        "3.1.2.13",
        "invalid",
        "400, or infer the <>",
        REJECT_OR_LIBERAL,
    ),
    v(
        "badaspec",
        "3.1.2.14",
        "invalid",
        "400, or ignore the spaces",
        REJECT_OR_LIBERAL,
    ),
    v(
        "baddn",
        "3.1.2.15",
        "invalid",
        "400, or infer the quotes",
        REJECT_OR_LIBERAL,
    ),
    v(
        "badvers",
        "3.1.2.16",
        "invalid",
        "505 Version Not Supported",
        &[Status(505), DroppedAndCounted],
    ),
    v("mismatch01", "3.1.2.17", "invalid", "400", REJECT),
    v(
        "mismatch02",
        "3.1.2.18",
        "invalid",
        "501 (400 also acceptable)",
        &[Status(501), Status(400), DroppedAndCounted],
    ),
    v(
        "bigcode",
        "3.1.2.19",
        "invalid",
        "a response: drop it",
        &[DroppedAndCounted],
    ),
    v(
        "badbranch",
        "3.2.1",
        "transaction",
        "400, or RFC 2543 matching",
        &[Status(400), DroppedAndCounted, Processed],
    ),
    v("insuf", "3.3.1", "application", "400", REJECT),
    v(
        "unkscm",
        "3.3.2",
        "application",
        "416 Unsupported URI Scheme",
        &[Status(416)],
    ),
    v(
        "novelsc",
        "3.3.3",
        "application",
        "416, or 404 for this URI",
        &[Status(416), Status(404)],
    ),
    // RFC 3261 §10.3: a registrar authenticates (step 3) before it checks the To (step 5).
    v(
        "unksm2",
        "3.3.4",
        "application",
        "registrar: 400 (401 first: digest)",
        &[Status(400), Status(401)],
    ),
    v(
        "bext01",
        "3.3.5",
        "application",
        "420 Bad Extension",
        &[Status(420)],
    ),
    // RFC 3261 §8.2.2.1 (Request-URI: 404) comes before §8.2.3 (content: 415, 406).
    v(
        "invut",
        "3.3.6",
        "application",
        "415 (404 first: no route)",
        &[Status(415), Status(404)],
    ),
    v("regaut01", "3.3.7", "application", "401", &[Status(401)]),
    v("multi01", "3.3.8", "application", "400", REJECT),
    v(
        "mcl01",
        "3.3.9",
        "application",
        "an error (UDP: discard the rest)",
        &[AnyError, DroppedAndCounted],
    ),
    v(
        "bcast",
        "3.3.10",
        "application",
        "a response: discard",
        &[Nothing],
    ),
    // homeline answers OPTIONS itself: an endpoint, not a proxy.
    v(
        "zeromf",
        "3.3.11",
        "application",
        "endpoint: process (proxy: 483)",
        &[Status(200)],
    ),
    // The RFC's registrar has no authentication; homeline's challenges first.
    v(
        "cparam01",
        "3.3.12",
        "application",
        "200 (401 first: digest)",
        &[Status(200), Status(401)],
    ),
    v(
        "cparam02",
        "3.3.13",
        "application",
        "200 (401 first: digest)",
        &[Status(200), Status(401)],
    ),
    v(
        "regescrt",
        "3.3.14",
        "application",
        "200 (401 first: digest)",
        &[Status(200), Status(401)],
    ),
    v(
        "sdp01",
        "3.3.15",
        "application",
        "406 (404 first: no route)",
        &[Status(406), Status(404)],
    ),
    v(
        "inv2543",
        "3.4.1",
        "compat",
        "accept and process",
        &[Processed],
    ),
];

/// Where homeline does not do what RFC 4475 asks over UDP, and what it does instead. The
/// test checks only that homeline survives these (unless `HOMELINE_RFC4475_STRICT=1`).
const DEVIATIONS: &[(&str, &str)] = &[
    (
        "wsinv",
        "answered 400 (\"missing From tag, Call-ID or CSeq\"): the From tag after folded LWS \
         (`;` CRLF SP `tag = 98asjd8`) is not found",
    ),
    (
        "badinv01",
        "processed (404): the empty Via and Contact parameters (`;;,;,,`, `;;;;`) are accepted",
    ),
    (
        "badvers",
        "processed, answered `SIP/7.0 200 OK`: the SIP version is not checked, and the response \
         copies it",
    ),
    (
        "scalarlg",
        "dropped but not counted: rsipstack drops it after the guard let it through \
         (WARN \"on_received_message error\": CSeq: invalid seq)",
    ),
    (
        "mismatch01",
        "processed (200): the CSeq method (INVITE) is not compared with the request's (OPTIONS)",
    ),
    (
        "unkscm",
        "200: OPTIONS is answered whatever the Request-URI scheme",
    ),
    (
        "novelsc",
        "200: OPTIONS is answered whatever the Request-URI scheme",
    ),
    (
        "bext01",
        "200: Require is not checked (RFC 3261 §8.2.2.3: 420 with Unsupported)",
    ),
    (
        "multi01",
        "processed (404): repeated Call-ID, CSeq, From, To and Max-Forwards are accepted",
    ),
    (
        "mcl01",
        "processed (200): two different Content-Length headers are accepted",
    ),
    (
        "zeromf",
        "483 Too Many Hops to an OPTIONS homeline answers itself (RFC 4475: only a proxy does)",
    ),
    (
        "inv2543",
        "answered 400 (\"missing From tag, Call-ID or CSeq\"): an RFC 2543 From has no tag, \
         and the transaction layer needs one",
    ),
];

fn strict() -> bool {
    std::env::var_os("HOMELINE_RFC4475_STRICT").is_some_and(|v| v != "0" && !v.is_empty())
}

fn vectors_dir() -> PathBuf {
    sip_dir().join("rfc4475")
}

fn message(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---- what came back ----

/// What homeline did with one message.
#[derive(Debug, Default)]
struct Observed {
    /// The status line of each response, in order.
    lines: Vec<String>,
    /// The final response's version and status code, if one came.
    last_final: Option<(String, u16)>,
    /// A `malformed` log line names the sender, with `total` above what it was before.
    counted: bool,
    /// TCP: homeline closed the connection.
    closed: bool,
}

impl Observed {
    /// Takes the status lines out of what arrived: one datagram, or a TCP stream so far.
    fn add(&mut self, bytes: &[u8]) {
        for line in bytes.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line).trim_end().to_string();
            let mut parts = line.splitn(3, ' ');
            let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(code) = code.parse::<u16>() else {
                continue;
            };
            if !version.starts_with("SIP/") || code.to_string().len() != 3 {
                continue;
            }
            if code >= 200 {
                self.last_final = Some((version.to_string(), code));
            }
            self.lines.push(line);
        }
    }

    fn has_final(&self) -> bool {
        self.last_final.is_some()
    }

    /// How long to wait for a `malformed` line after the answers: the edge's rejections
    /// (`400`, `413`, `501`) may come before the log line that counted them.
    fn count_wait(&self) -> Duration {
        match &self.last_final {
            Some((_, 400 | 413 | 501)) => COUNTED_GRACE,
            _ => Duration::ZERO,
        }
    }

    fn conforms(&self, accept: Accept) -> bool {
        let fin = self
            .last_final
            .as_ref()
            .filter(|(version, _)| version == "SIP/2.0")
            .map(|&(_, code)| code);
        match accept {
            Status(c) => fin == Some(c),
            AnyError => fin.is_some_and(|c| c >= 400),
            Processed => fin.is_some_and(|c| c != 400),
            DroppedAndCounted => self.lines.is_empty() && self.counted,
            Nothing => self.lines.is_empty() && !self.counted,
        }
    }

    fn describe(&self) -> String {
        let mut out = if self.lines.is_empty() {
            "nothing".to_string()
        } else {
            self.lines.join(", ")
        };
        if self.counted {
            out.push_str(" [counted as malformed]");
        }
        if self.closed {
            out.push_str(" [connection closed]");
        }
        out
    }
}

fn malformed_total(lines: &[LogLine]) -> u64 {
    lines
        .iter()
        .filter(|l| l.is("malformed", &[]))
        .filter_map(|l| l.field("total")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// Whether a `malformed` line from index `from` on names `source` with `total` above `before`,
/// waiting up to `wait` for it.
fn counted(h: &Homeline, from: usize, source: &str, before: u64, wait: Duration) -> bool {
    h.logs
        .wait_for(from, wait, |l| {
            l.is("malformed", &[("from", source)])
                && l.field("total")
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_some_and(|t| t > before)
        })
        .is_some()
}

fn target(h: &Homeline) -> SocketAddr {
    h.addr()
        .parse()
        .unwrap_or_else(|e| panic!("bad homeline address {}: {e}", h.addr()))
}

/// Sends `bytes` in one datagram from a socket of its own; collects the answers until a final
/// response, or until it was counted as malformed with nothing back, or [`ANSWER_WAIT`].
fn over_udp(h: &Homeline, bytes: &[u8]) -> Observed {
    let to = target(h);
    let sock = UdpSocket::bind((to.ip(), 0)).unwrap_or_else(|e| panic!("cannot bind UDP: {e}"));
    let source = sock
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .to_string();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap_or_else(|e| panic!("cannot set a read timeout: {e}"));
    let from = h.logs.len();
    let before = malformed_total(&h.logs.lines());
    sock.send_to(bytes, to)
        .unwrap_or_else(|e| panic!("cannot send to {to}: {e}"));

    let mut seen = Observed::default();
    let mut buf = vec![0u8; 65535];
    let start = Instant::now();
    let mut counted_at = None;
    while start.elapsed() < ANSWER_WAIT {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.add(&buf[..n]);
            if seen.has_final() {
                break;
            }
        }
        if counted_at.is_none() && counted(h, from, &source, before, Duration::ZERO) {
            counted_at = Some(Instant::now());
        }
        if seen.lines.is_empty() && counted_at.is_some_and(|t| t.elapsed() >= COUNTED_GRACE) {
            break;
        }
    }
    seen.counted = counted(h, from, &source, before, seen.count_wait());
    seen
}

/// Sends `bytes` on a connection of its own; collects the answers until a final response,
/// the connection's closing, or [`TCP_WAIT`].
fn over_tcp(h: &Homeline, bytes: &[u8]) -> Observed {
    let to = target(h);
    let mut seen = Observed::default();
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("cannot connect to {to} over TCP: {e}"));
    let source = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let from = h.logs.len();
    let before = malformed_total(&h.logs.lines());
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap_or_else(|e| panic!("cannot set a read timeout: {e}"));
    if stream.write_all(bytes).is_err() {
        seen.closed = true;
        return seen;
    }
    let mut received = Vec::new();
    let mut buf = vec![0u8; 65535];
    let start = Instant::now();
    while start.elapsed() < TCP_WAIT {
        match stream.read(&mut buf) {
            Ok(0) => {
                seen.closed = true;
                break;
            }
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                seen = Observed {
                    closed: seen.closed,
                    ..Observed::default()
                };
                seen.add(&received);
                if seen.has_final() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                seen.closed = true;
                break;
            }
        }
    }
    seen.counted = counted(h, from, &source, before, seen.count_wait());
    seen
}

/// Fails the test, naming `what`, if homeline has exited.
#[track_caller]
fn assert_alive(h: &mut Homeline, what: &str) {
    if h.exit_status().is_some() {
        std::thread::sleep(Duration::from_millis(100)); // the last lines
        panic!("homeline died after {what}\n{}", h.report());
    }
}

fn save(h: &Homeline, table: &str) {
    let path = h.dir.join("results.txt");
    std::fs::write(&path, table).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    println!("{table}\n(also in {})", path.display());
}

// ---- the tests ----

#[test]
fn the_vectors_are_the_49_byte_exact_messages_of_the_readme() {
    let readme = std::fs::read_to_string(vectors_dir().join("README.md"))
        .unwrap_or_else(|e| panic!("cannot read the RFC 4475 README: {e}"));
    // | `wsinv.dat` | 3.1.1.1 | title | class | handling | 1003 | `18da365734cc2dd3` |
    let rows: Vec<(String, String, usize)> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let file = cells[1].trim_matches('`').to_string();
            let bytes = cells[6]
                .parse()
                .unwrap_or_else(|e| panic!("bad byte count in README row {l}: {e}"));
            (file, cells[2].to_string(), bytes)
        })
        .collect();
    assert_eq!(rows.len(), 49, "the README lists {} messages", rows.len());
    assert_eq!(VECTORS.len(), rows.len(), "VECTORS and the README differ");
    for (file, section, bytes) in &rows {
        let name = file.trim_end_matches(".dat");
        let vector = VECTORS
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("{file} (README) is not in VECTORS"));
        assert_eq!(&vector.section, section, "{file}: section");
        let len = message(name).len();
        assert_eq!(
            len, *bytes,
            "{file} has {len} bytes, the README says {bytes}: line ends or trailing spaces \
             were changed (treat *.dat as binary)"
        );
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", vectors_dir().display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".dat"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = rows.into_iter().map(|(f, _, _)| f).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "the .dat files and the README differ");
    for (name, _) in DEVIATIONS {
        assert!(
            VECTORS.iter().any(|v| v.name == *name),
            "DEVIATIONS names {name}, which is no message"
        );
    }
}

#[test]
fn every_torture_message_over_udp_is_rejected_or_processed_as_rfc_4475_says() {
    let mut h = Homeline::start("torture_udp", Setup::default());
    let mut table = String::from(
        "RFC 4475 over UDP: file, section, class | homeline's answer | what §3 asks | verdict\n",
    );
    let mut wrong = Vec::new();
    let mut deviating = Vec::new();
    let mut conforming_again = Vec::new();
    for vector in VECTORS {
        let seen = over_udp(&h, &message(vector.name));
        assert_alive(&mut h, &format!("{}.dat over UDP", vector.name));
        let ok = vector.accept.iter().any(|&a| seen.conforms(a));
        let known = DEVIATIONS.iter().find(|(n, _)| *n == vector.name);
        let verdict = match (ok, known) {
            (true, None) => "ok".to_string(),
            (true, Some(_)) => {
                conforming_again.push(vector.name);
                "ok (listed in DEVIATIONS: take it off)".to_string()
            }
            (false, Some((_, what))) => {
                deviating.push(format!("{}: {what}", vector.name));
                format!("DEVIATION: {what}")
            }
            (false, None) => {
                wrong.push(format!(
                    "{}.dat ({} {}): got {}; RFC 4475: {} (accepted: {:?})",
                    vector.name,
                    vector.section,
                    vector.class,
                    seen.describe(),
                    vector.rfc,
                    vector.accept
                ));
                "WRONG".to_string()
            }
        };
        let _ = writeln!(
            table,
            "{:<11} {:<9} {:<12} | {} | {} | {verdict}",
            vector.name,
            vector.section,
            vector.class,
            seen.describe(),
            vector.rfc
        );
    }
    let _ = writeln!(
        table,
        "{} messages: {} as RFC 4475 asks, {} known deviations, {} wrong",
        VECTORS.len(),
        VECTORS.len() - deviating.len() - wrong.len(),
        deviating.len(),
        wrong.len()
    );
    save(&h, &table);
    assert!(
        wrong.is_empty(),
        "homeline's answers differ from RFC 4475 §3:\n  {}\n{table}\n{}",
        wrong.join("\n  "),
        h.report()
    );
    assert!(
        !strict() || deviating.is_empty(),
        "HOMELINE_RFC4475_STRICT: homeline deviates from RFC 4475 §3:\n  {}",
        deviating.join("\n  ")
    );
    if !conforming_again.is_empty() {
        println!("conform now, take them off DEVIATIONS: {conforming_again:?}");
    }

    // And homeline still answers as before.
    h.sipp("options.xml").run(&mut h);
    h.sipp("options.xml").tcp().run(&mut h);
}

#[test]
fn every_torture_message_over_tcp_leaves_homeline_answering() {
    let mut h = Homeline::start("torture_tcp", Setup::default());
    let mut table = String::from(
        "RFC 4475 over TCP, one connection each: file, section, class | homeline's answer\n",
    );
    for vector in VECTORS {
        let seen = over_tcp(&h, &message(vector.name));
        assert_alive(&mut h, &format!("{}.dat over TCP", vector.name));
        let _ = writeln!(
            table,
            "{:<11} {:<9} {:<12} | {}",
            vector.name,
            vector.section,
            vector.class,
            seen.describe()
        );
    }
    save(&h, &table);
    h.sipp("options.xml").run(&mut h);
    h.sipp("options.xml").tcp().run(&mut h);
}
