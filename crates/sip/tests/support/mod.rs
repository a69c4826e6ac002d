//! Helpers shared by this crate's SIPp-driven tests: free loopback ports, the scenarios of
//! `tests/sipp/`, and SIPp processes that are killed when dropped. Each test file uses part
//! of them.
#![allow(dead_code)]

use homeline_sip::digest::Algorithm;
use homeline_sip::registrar::Limits;
use homeline_sip::trunks::{TrunkSpec, TrunkTransport};
use homeline_sip::{EdgeEvent, EdgeSettings, UserSecret};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

/// The edge's address, and the trunk's PBX's.
pub const EDGE_IP: &str = "127.0.0.1";
/// The operators' password.
pub const PASSWORD: &str = "operator-password";

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal IP address")
}

/// A port free on `host` for both UDP and TCP.
pub fn free_port_pair(host: &str) -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind((ip(host), 0)) else {
            continue;
        };
        let Ok(port) = udp.local_addr().map(|a| a.port()) else {
            continue;
        };
        if TcpListener::bind((ip(host), port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on {host}")
}

/// The first of `n` consecutive UDP ports free on `host` (SIPp binds its media port and the
/// ones after it).
pub fn free_udp_block(host: &str, n: u16) -> u16 {
    for _ in 0..100 {
        let Ok(first) = UdpSocket::bind((ip(host), 0)) else {
            continue;
        };
        let Ok(base) = first.local_addr().map(|a| a.port()) else {
            continue;
        };
        if base.checked_add(n).is_none() {
            continue;
        }
        let rest: Vec<_> = (1..n)
            .map(|i| UdpSocket::bind((ip(host), base + i)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no block of {n} free UDP ports on {host}")
}

/// A fresh directory for test `name` of test file `group`, under `target/tmp/`.
pub fn test_dir(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A scenario file of `tests/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// An edge on `EDGE_IP:port` (UDP and TCP) with operators `alice` and `bob` (password
/// [`PASSWORD`]) and trunk `pbx` (UDP, PBX at port 9, from 127.0.0.1, 8000 → `support`).
pub fn settings(port: u16) -> EdgeSettings {
    let addr = SocketAddr::new(ip(EDGE_IP), port);
    EdgeSettings {
        udp: vec![addr],
        tcp: vec![addr],
        domain: "homeline.test".into(),
        user_agent: "homeline-test".into(),
        t1: Duration::from_millis(200),
        nonce_ttl: Duration::from_secs(60),
        qualify_interval: Duration::ZERO,
        limits: Limits {
            min: Duration::from_secs(2),
            max: Duration::from_secs(3600),
            default: Duration::from_secs(60),
            max_bindings: 4,
        },
        // SIPp 3.6.1 answers MD5 challenges only.
        algorithms: vec![Algorithm::Md5],
        max_message_size: 16384,
        rate_limit: None,
        users: [
            ("alice".to_string(), UserSecret::Password(PASSWORD.into())),
            ("bob".to_string(), UserSecret::Password(PASSWORD.into())),
        ]
        .into_iter()
        .collect(),
        trunks: vec![TrunkSpec {
            name: "pbx".into(),
            pbx: SocketAddr::new(ip(EDGE_IP), 9),
            transport: TrunkTransport::Udp,
            allow: vec!["127.0.0.1/32".parse().expect("net")],
            credentials: None,
            options_interval: None,
            caller_id: None,
            routes: [("8000".to_string(), "support".to_string())]
                .into_iter()
                .collect(),
        }],
        features: homeline_sip::FeatureCodes::default(),
    }
}

/// One SIPp process, killed when dropped.
pub struct Sipp {
    child: tokio::process::Child,
    name: String,
    dir: PathBuf,
}

impl Sipp {
    /// Starts SIPp with `scenario_file` against the edge at `EDGE_IP:port`, from `local_ip`,
    /// over TCP if `tcp`, for one call, with `extra` arguments; gives up after 15 s.
    pub fn start(
        dir: &Path,
        name: &str,
        scenario_file: &str,
        port: u16,
        local_ip: &str,
        tcp: bool,
        extra: &[&str],
    ) -> Sipp {
        let local_port = if tcp {
            free_port_pair(local_ip)
        } else {
            free_udp_block(local_ip, 1)
        };
        let remote = format!("{EDGE_IP}:{port}");
        let at = (local_ip, local_port);
        Sipp::spawn(dir, name, scenario_file, Some(&remote), at, tcp, 1, extra)
    }

    /// Starts SIPp as a server (a trunk's PBX) with `scenario_file` on `EDGE_IP:local_port`,
    /// over TCP if `tcp`, for `calls` calls, with `extra` arguments; gives up after 15 s.
    pub fn uas(
        dir: &Path,
        name: &str,
        scenario_file: &str,
        local_port: u16,
        tcp: bool,
        calls: u32,
        extra: &[&str],
    ) -> Sipp {
        let at = (EDGE_IP, local_port);
        Sipp::spawn(dir, name, scenario_file, None, at, tcp, calls, extra)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        dir: &Path,
        name: &str,
        scenario_file: &str,
        remote: Option<&str>,
        (local_ip, local_port): (&str, u16),
        tcp: bool,
        calls: u32,
        extra: &[&str],
    ) -> Sipp {
        let file = |what: &str| dir.join(format!("{name}.{what}"));
        let out = std::fs::File::create(file("out")).expect("SIPp output file");
        let err = out.try_clone().expect("SIPp output file");
        let mut cmd = tokio::process::Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario(scenario_file))
            .args(remote)
            .args(["-i", local_ip])
            .args(["-p", &local_port.to_string()])
            .args(["-cp", &free_udp_block("0.0.0.0", 1).to_string()])
            .args(["-mp", &free_udp_block(local_ip, 4).to_string()])
            .args(["-t", if tcp { "t1" } else { "u1" }])
            .args(["-m", &calls.to_string()])
            .args(["-timeout", "15s", "-timeout_error", "-nostdin"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(file("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(file("messages.log"))
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sipp (is SIPp installed?): {e}"));
        Sipp {
            child,
            name: name.into(),
            dir: dir.into(),
        }
    }

    /// Waits for SIPp to exit, at most `limit`.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => None,
        }
    }

    /// What SIPp left behind, for a failure message.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for what in ["errors.log", "messages.log", "out"] {
            let path = self.dir.join(format!("{}.{what}", self.name));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let start = text.len().saturating_sub(6000);
            let start = (start..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            out.push_str(&format!("--- {} ---\n{}\n", path.display(), &text[start..]));
        }
        out
    }

    /// Fails the test unless the out-of-call scenario (`-oocsf`) ran without an error (SIPp's
    /// exit status counts only the main scenario's call) and SIPp's message trace holds
    /// each of `seen`, in this order.
    pub fn expect_out_of_call_success(&self, seen: &[&str], events: &[EdgeEvent]) {
        let read = |what: &str| {
            std::fs::read_to_string(self.dir.join(format!("{}.{what}", self.name)))
                .unwrap_or_default()
        };
        let errors = read("errors.log");
        let failed = [
            "Abort",
            "nexpected",
            "ailed",
            "imeout",
            "etransmission",
            "Discard",
        ]
        .iter()
        .any(|w| errors.contains(w));
        let ran = errors.contains("out-of-call");
        let trace = read("messages.log");
        let mut at = 0;
        let in_order = seen.iter().all(|s| match trace[at..].find(s) {
            Some(i) => {
                at += i + s.len();
                true
            }
            None => false,
        });
        if failed || !ran || !in_order {
            panic!(
                "SIPp {}: out-of-call scenario failed (ran: {ran}, messages {seen:?} in order: \
                 {in_order})\nevents: {events:#?}\n{}",
                self.name,
                self.report()
            );
        }
    }

    /// Fails the test unless SIPp exits 0 within `limit`.
    pub async fn expect_success(&mut self, limit: Duration, events: &[EdgeEvent]) {
        let status = self.wait(limit).await;
        if !status.is_some_and(|s| s.success()) {
            panic!(
                "SIPp {} ended with {status:?}\nevents: {events:#?}\n{}",
                self.name,
                self.report()
            );
        }
    }
}
