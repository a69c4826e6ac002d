//! The harness of the SIP edge tests: runs the real `homeline` binary on free loopback ports
//! with a configuration made from `tests/sip/homeline.toml.in`, collects its JSON log lines,
//! and runs real peers (SIPp, baresip, linphone, a python sender) against it.
//!
//! Everything is bounded in time: homeline must answer OPTIONS within [`READY_TIMEOUT`], SIPp
//! runs with `-timeout 20s -timeout_error` and is killed after [`peers::SIPP_TIMEOUT`], and every
//! wait for a log line takes its own limit. Every process started here is killed when its
//! guard is dropped, a failing test included.
//!
//! A tool that is missing fails the test with a message to run `bash tests/run-all.sh`,
//! which installs it. `HOMELINE_BIN=/path/to/homeline` runs the tests against another build.

mod logs;
mod peers;

pub use logs::{LogLine, Logs};
pub use peers::{Background, RunningSipp, Sipp};

use logs::LOG_TAIL;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long homeline may take to answer its first OPTIONS.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The loopback address homeline listens on; the trunk `pbx` accepts only this source.
pub const HOMELINE_IP: &str = "127.0.0.1";
/// The IPv6 loopback address, for homeline on IPv6 ([`Setup::listen_ip`]).
pub const HOMELINE_IP6: &str = "::1";
/// Where softphones (SIPp as an operator, baresip, linphone) run from.
pub const AGENT_IP: &str = "127.0.0.2";
/// A source outside every trunk's allow-list.
pub const STRANGER_IP: &str = "127.0.0.3";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/sip`: scenarios, templates and helpers.
pub fn sip_dir() -> PathBuf {
    repo().join("tests/sip")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Fails the test unless `command` is on the PATH.
#[track_caller]
pub fn require(command: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(command).is_file()));
    assert!(
        found,
        "`{command}` is not installed (Debian package `{package}`): run `bash tests/run-all.sh`, \
         which installs the peers the SIP edge tests need"
    );
}

// ---- ports ----

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad IP address {s}: {e}"))
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

/// A free TCP port on `host`.
pub fn free_tcp_port(host: &str) -> u16 {
    TcpListener::bind((ip(host), 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free TCP port on {host}: {e}"))
}

/// A range of 100 RTP ports of this process's own (20000-29999; ephemeral ports, where the
/// other ports come from, start above).
pub fn rtp_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = (std::process::id() as u16 % 50 + NEXT.fetch_add(1, Ordering::Relaxed)) % 100;
    let min = 20000 + slot * 100;
    (min, min + 99)
}

// ---- per-test directory ----

/// `target/tmp/sip_edge/NAME`, emptied first: the configuration, peer configurations and
/// traces of one test, kept after it for a look.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("sip_edge")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Fills every `@NAME@` placeholder of `template`; panics when one is left unfilled.
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("@{name}@"), value);
    }
    let mut rest = out.as_str();
    while let Some(start) = rest.find('@') {
        rest = &rest[start + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        assert!(
            name.is_empty() || !rest[name.len()..].starts_with('@'),
            "placeholder @{name}@ left unfilled"
        );
    }
    out
}

// ---- homeline ----

/// What a test changes in `tests/sip/homeline.toml.in`.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `[sip]` keys with their TOML values, e.g. `("nonce_ttl", "\"1s\"")`.
    sip: Vec<(String, String)>,
    /// Port of the trunk's PBX on 127.0.0.1; `None`: a free port nobody listens on.
    pbx_port: Option<u16>,
    options_interval: String,
    /// The address homeline's SIP listeners (UDP and TCP) bind to.
    listen_ip: String,
    /// `username`/`password` lines of the trunk `pbx` (empty: no credentials).
    trunk_auth: String,
    /// The configuration template; `None`: `tests/sip/homeline.toml.in`.
    template: Option<PathBuf>,
    /// How many RTP ports homeline gets; `None`: the 100 of [`rtp_range`].
    rtp_ports: Option<u16>,
    /// Values of the template's own placeholders, besides the ones the harness fills.
    values: Vec<(String, String)>,
}

impl Default for Setup {
    /// `min_expires = "2s"`, no OPTIONS keepalive.
    fn default() -> Self {
        Setup {
            sip: vec![("min_expires".into(), "\"2s\"".into())],
            pbx_port: None,
            options_interval: "0s".into(),
            listen_ip: HOMELINE_IP.into(),
            trunk_auth: String::new(),
            template: None,
            rtp_ports: None,
            values: Vec::new(),
        }
    }
}

impl Setup {
    /// Sets `[sip]` key `key` to the TOML value `value`.
    pub fn sip(mut self, key: &str, value: &str) -> Self {
        self.sip.retain(|(k, _)| k != key);
        self.sip.push((key.into(), value.into()));
        self
    }

    /// Listens for SIP (UDP and TCP) on `ip` instead of 127.0.0.1, e.g. [`HOMELINE_IP6`]; it is
    /// also `public_address` and `domain` (the digest realm). The trunk `pbx` stays on
    /// 127.0.0.1.
    pub fn listen_ip(mut self, ip: &str) -> Self {
        self.listen_ip = ip.into();
        self
    }

    /// Makes the configuration from `template` instead of `tests/sip/homeline.toml.in`; it
    /// has the same placeholders, plus any given with [`Setup::value`].
    pub fn template(mut self, template: PathBuf) -> Self {
        self.template = Some(template);
        self
    }

    /// Gives homeline `count` RTP ports (a free block of them) instead of the 100 of
    /// [`rtp_range`]; a call takes 4 (RTP and RTCP on each leg).
    pub fn rtp_ports(mut self, count: u16) -> Self {
        self.rtp_ports = Some(count);
        self
    }

    /// Fills the template's placeholder `@NAME@` with `value`.
    pub fn value(mut self, name: &str, value: &str) -> Self {
        self.values.retain(|(k, _)| k != name);
        self.values.push((name.into(), value.into()));
        self
    }

    /// Digest credentials of trunk `pbx` (it must then authenticate too).
    pub fn trunk_credentials(mut self, user: &str, password: &str) -> Self {
        self.trunk_auth = format!("username = \"{user}\"\npassword = \"{password}\"");
        self
    }

    /// Points the trunk `pbx` at 127.0.0.1:`port`, pinged every `interval`.
    pub fn pbx(mut self, port: u16, interval: &str) -> Self {
        self.pbx_port = Some(port);
        self.options_interval = interval.into();
        self
    }
}

/// A running homeline, killed when dropped.
#[derive(Debug)]
pub struct Homeline {
    child: Child,
    pub name: String,
    pub dir: PathBuf,
    /// The address homeline's SIP listeners bind to (`127.0.0.1` unless the test said).
    pub ip: String,
    pub sip_port: u16,
    /// homeline's RTP port range (`media.rtp_port_min`, `media.rtp_port_max`).
    pub rtp_ports: (u16, u16),
    pub logs: Logs,
    runs: AtomicUsize,
}

impl Homeline {
    /// Writes the configuration, starts `homeline run --config` and waits until it answers
    /// OPTIONS over UDP and accepts TCP connections.
    pub fn start(name: &str, setup: Setup) -> Homeline {
        let dir = test_dir(name);
        let sip_port = free_port_pair(&setup.listen_ip);
        let (rtp_min, rtp_max) = match setup.rtp_ports {
            Some(n) => {
                let min = free_udp_block(HOMELINE_IP, n);
                (min, min + n - 1)
            }
            None => rtp_range(),
        };
        let pbx_port = setup
            .pbx_port
            .unwrap_or_else(|| free_udp_block(HOMELINE_IP, 1));
        let sip_keys: String = setup
            .sip
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        let template = setup
            .template
            .clone()
            .unwrap_or_else(|| sip_dir().join("homeline.toml.in"));
        let mut values = vec![
            ("SIP_IP", setup.listen_ip.clone()),
            ("SIP_ADDR", host_port(&setup.listen_ip, sip_port)),
            ("SIP_KEYS", sip_keys),
            ("HTTP_PORT", free_tcp_port(HOMELINE_IP).to_string()),
            ("RTP_PORT_MIN", rtp_min.to_string()),
            ("RTP_PORT_MAX", rtp_max.to_string()),
            ("WEBRTC_PORT", free_udp_block(HOMELINE_IP, 1).to_string()),
            ("PBX_PORT", pbx_port.to_string()),
            ("OPTIONS_INTERVAL", setup.options_interval.clone()),
            ("TRUNK_AUTH", setup.trunk_auth.clone()),
        ];
        values.extend(setup.values.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let config = fill(&read(&template), &values);
        let config_path = dir.join("homeline.toml");
        write(&config_path, &config);

        let bin = std::env::var_os("HOMELINE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_homeline")));
        let mut child = Command::new(&bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let logs = Logs::default();
        if let Some(err) = child.stderr.take() {
            logs.collect(err);
        }
        if let Some(out) = child.stdout.take() {
            logs.collect(out);
        }
        let mut h = Homeline {
            child,
            name: name.into(),
            dir,
            ip: setup.listen_ip,
            sip_port,
            rtp_ports: (rtp_min, rtp_max),
            logs,
            runs: AtomicUsize::new(0),
        };
        h.wait_ready();
        h
    }

    /// `127.0.0.1:PORT` (`[::1]:PORT` on IPv6), homeline's SIP address (UDP and TCP).
    pub fn addr(&self) -> String {
        host_port(&self.ip, self.sip_port)
    }

    /// How homeline exited, if it has; `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let target: SocketAddr = SocketAddr::new(ip(&self.ip), self.sip_port);
        let mut attempt = 0;
        loop {
            if let Some(status) = self.exit_status() {
                // Give the reader threads a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "homeline exited ({status}) before answering OPTIONS on {}: is the SIP edge \
                     built? Its output:\n{}",
                    self.addr(),
                    self.logs.tail(LOG_TAIL)
                );
            }
            attempt += 1;
            if options_probe(target, attempt) && TcpStream::connect(target).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "homeline did not answer OPTIONS over UDP (and accept TCP) on {} within {:?}. \
                     Its output:\n{}",
                    self.addr(),
                    READY_TIMEOUT,
                    self.logs.tail(LOG_TAIL)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A report for a failure message: whether homeline still runs, and its last lines.
    pub fn report(&mut self) -> String {
        let state = match self.exit_status() {
            Some(s) => format!("homeline of test `{}` has exited ({s})", self.name),
            None => format!("homeline of test `{}` is still running", self.name),
        };
        format!(
            "{state}; config and traces in {}; its last lines:\n{}",
            self.dir.display(),
            self.logs.tail(LOG_TAIL)
        )
    }

    /// Waits for the event `message` with `fields`, at index `from` or later.
    #[track_caller]
    pub fn expect_event(
        &mut self,
        from: usize,
        timeout: Duration,
        message: &str,
        fields: &[(&str, &str)],
    ) -> usize {
        match self.logs.wait_for(from, timeout, |l| l.is(message, fields)) {
            Some((i, _)) => i,
            None => panic!(
                "no log line \"{message}\" with {fields:?} within {timeout:?}; {}",
                self.report()
            ),
        }
    }

    /// A SIPp run of `tests/sip/sipp/SCENARIO` against this homeline, from homeline's own
    /// address unless [`Sipp::source_ip`] says otherwise.
    pub fn sipp(&self, scenario: &str) -> Sipp {
        Sipp::new(scenario, &self.dir, self.next_run())
            .target(&self.addr())
            .source_ip(&self.ip)
    }

    /// A number for the next peer run, unique within this homeline's test.
    pub fn next_run(&self) -> usize {
        self.runs.fetch_add(1, Ordering::Relaxed)
    }

    /// A SIPp run of `DIR/SCENARIO` (a scenario outside `tests/sip/sipp/`) against this
    /// homeline, from homeline's own address unless [`Sipp::source_ip`] says otherwise.
    pub fn sipp_in(&self, dir: &Path, scenario: &str) -> Sipp {
        Sipp::new(scenario, &self.dir, self.next_run())
            .scenario_dir(dir)
            .target(&self.addr())
            .source_ip(&self.ip)
    }
}

impl Drop for Homeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `IP:PORT`, or `[IP]:PORT` for an IPv6 address.
pub fn host_port(ip: &str, port: u16) -> String {
    SocketAddr::new(self::ip(ip), port).to_string()
}

/// Sends one OPTIONS over UDP to `target`; whether a 200 came back within 300 ms.
fn options_probe(target: SocketAddr, attempt: u32) -> bool {
    let Ok(sock) = UdpSocket::bind((target.ip(), 0)) else {
        return false;
    };
    let Ok(local) = sock.local_addr() else {
        return false;
    };
    let pid = std::process::id();
    let msg = format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-ready-{pid}-{attempt};rport\r\n\
         From: <sip:probe@{target}>;tag=ready-{attempt}\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: ready-{pid}-{attempt}@homeline-test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    if sock.send_to(msg.as_bytes(), target).is_err()
        || sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 65535];
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) if buf[..n].starts_with(b"SIP/2.0 200") => return true,
            Ok(_) => continue, // 100 Trying, or something else: keep listening
            Err(_) => return false,
        }
    }
    false
}
