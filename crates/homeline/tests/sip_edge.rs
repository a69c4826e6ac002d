//! The SIP edge end to end: the real `homeline` binary (`homeline run --config`) on free
//! loopback ports, driven by real peers: SIPp scenarios from `tests/sip/sipp/`, baresip,
//! linphone, and a python sender of malformed messages. `tests/sip/README.md` describes each
//! scenario; `sip_harness` starts and stops everything and reads homeline's JSON log lines.
//!
//! Log events these tests wait for (message, then fields):
//! - `registered`: `user`, `algorithm` (`MD5` | `SHA-256`), `transport`, `expires`
//! - `malformed`: `total` (the running count of dropped or 400-answered messages)
//! - `rate limited`: `total` (requests dropped over the per-source rate limit), `from`
//! - `trunk up` / `trunk down`: `trunk`
//!
//! One test runs homeline on the IPv6 loopback `[::1]` (UDP and TCP), SIPp with it. The RFC 4475
//! torture messages are in `sip_torture.rs`.
//!
//! Each test starts its own homeline and stays under 30 s; the peers they need come from
//! `bash tests/run-all.sh`.

// Each test file uses a part of the shared harness.
#[allow(dead_code, unused_imports)]
mod sip_harness;

use serde_json::Value;
use sip_harness::{
    AGENT_IP, Background, HOMELINE_IP, HOMELINE_IP6, Homeline, STRANGER_IP, Setup, Sipp, fill,
    free_port_pair, free_udp_block, require, sip_dir,
};
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "demo-password";
/// SIPp 3.6.1 answers only MD5 challenges, and only the first `WWW-Authenticate` header.
const MD5_FIRST: &str = r#"["MD5", "SHA-256"]"#;

#[test]
fn options_over_udp_and_tcp_lists_what_homeline_supports() {
    let mut h = Homeline::start("options", Setup::default());
    h.sipp("options.xml").run(&mut h);
    h.sipp("options.xml").tcp().run(&mut h);
}

#[test]
fn options_and_digest_register_over_ipv6() {
    assert!(
        std::net::UdpSocket::bind((HOMELINE_IP6, 0)).is_ok(),
        "the IPv6 loopback address ::1 is not usable here (see `ip -6 addr show lo`)"
    );
    let mut h = Homeline::start(
        "ipv6",
        Setup::default()
            .listen_ip(HOMELINE_IP6)
            .sip("digest_algorithms", MD5_FIRST),
    );
    // SIPp runs from ::1 too (`-i ::1`, target `[::1]:PORT`).
    h.sipp("options.xml").run(&mut h);
    h.sipp("options.xml").tcp().run(&mut h);
    let from = h.logs.len();
    h.sipp("register.xml")
        .service("alice")
        .auth("alice", PASSWORD)
        .run(&mut h);
    h.expect_event(
        from,
        Duration::from_secs(2),
        "registered",
        &[
            ("user", "alice"),
            ("algorithm", "MD5"),
            ("transport", "UDP"),
            ("expires", "60"),
        ],
    );
}

#[test]
fn a_register_without_credentials_is_challenged_with_sha256_then_md5() {
    let mut h = Homeline::start("register_challenge", Setup::default());
    h.sipp("register_challenge.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .run(&mut h);
}

#[test]
fn register_with_digest_over_udp_and_tcp() {
    let mut h = Homeline::start(
        "register",
        Setup::default().sip("digest_algorithms", MD5_FIRST),
    );
    let from = h.logs.len();
    h.sipp("register.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .run(&mut h);
    let registered = |transport| {
        [
            ("user", "alice"),
            ("algorithm", "MD5"),
            ("transport", transport),
            ("expires", "60"),
        ]
    };
    let at = h.expect_event(
        from,
        Duration::from_secs(2),
        "registered",
        &registered("UDP"),
    );
    h.sipp("register.xml")
        .source_ip(AGENT_IP)
        .tcp()
        .service("alice")
        .auth("alice", PASSWORD)
        .run(&mut h);
    h.expect_event(
        at + 1,
        Duration::from_secs(2),
        "registered",
        &registered("TCP"),
    );
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_403() {
    let mut h = Homeline::start(
        "register_forbidden",
        Setup::default().sip("digest_algorithms", MD5_FIRST),
    );
    h.sipp("register_forbidden.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", "not-the-password")
        .run(&mut h);
    h.sipp("register_forbidden.xml")
        .source_ip(AGENT_IP)
        .service("mallory")
        .auth("mallory", PASSWORD)
        .run(&mut h);
    let registered = h.logs.matching(|l| l.is("registered", &[]));
    assert!(
        registered.is_empty(),
        "refused registrations were logged as registered: {registered:?}"
    );
}

#[test]
fn an_expired_nonce_is_challenged_again_as_stale() {
    let mut h = Homeline::start(
        "register_stale",
        Setup::default()
            .sip("digest_algorithms", MD5_FIRST)
            .sip("nonce_ttl", "\"1s\""),
    );
    h.sipp("register_stale.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .run(&mut h);
}

#[test]
fn bindings_are_listed_and_removed_one_at_a_time_and_all_at_once() {
    let mut h = Homeline::start(
        "unregister",
        Setup::default().sip("digest_algorithms", MD5_FIRST),
    );
    h.sipp("unregister.xml")
        .source_ip(AGENT_IP)
        .service("carol")
        .auth("carol", PASSWORD)
        .run(&mut h);
}

#[test]
fn an_expiry_below_min_expires_gets_423() {
    let mut h = Homeline::start(
        "register_too_brief",
        Setup::default().sip("digest_algorithms", MD5_FIRST),
    );
    h.sipp("register_too_brief.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .run(&mut h);
}

#[test]
fn invites_are_checked_by_source_then_number() {
    // MD5 offered first: SIPp answers MD5 only.
    let mut h = Homeline::start(
        "invite",
        Setup::default().sip("digest_algorithms", MD5_FIRST),
    );
    // The trunk `pbx` accepts 127.0.0.1 only: anyone else must authenticate as an operator.
    h.sipp("invite_forbidden.xml")
        .source_ip(STRANGER_IP)
        .service("8000")
        .auth("pbx", "wrong")
        .run(&mut h);
    h.sipp("invite_not_found.xml")
        .source_ip(HOMELINE_IP)
        .service("9999")
        .run(&mut h);
    // 8000 is routed to the queue `support`, which refuses calls while nobody is logged in:
    // 480 after 100 Trying, never answered.
    h.sipp("invite_unavailable.xml")
        .source_ip(HOMELINE_IP)
        .service("8000")
        .run(&mut h);
}

/// What the python sender reports for one message.
#[derive(Debug)]
struct Sent {
    name: String,
    expect: String,
    status: Option<u64>,
}

#[test]
fn a_malformed_burst_is_answered_or_counted_and_homeline_keeps_working() {
    require("python3", "python3");
    let mut h = Homeline::start(
        "malformed",
        // Below the 60 kB message the burst sends over UDP.
        Setup::default().sip("max_message_size", "16384"),
    );
    let out = Command::new("python3")
        .arg(sip_dir().join("malformed_burst.py"))
        .args(["--udp", &h.addr(), "--tcp", &h.addr(), "--wait", "2"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "malformed_burst.py failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("malformed_burst.py printed no JSON ({e}): {stdout}"));
    let sent: Vec<Sent> = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| Sent {
            name: r["name"].as_str().unwrap_or_default().into(),
            expect: r["expect"].as_str().unwrap_or_default().into(),
            status: r["status"].as_u64(),
        })
        .collect();
    assert!(sent.len() >= 10, "too few results: {stdout}");

    let mut wrong = Vec::new();
    for s in &sent {
        let (kind, codes) = s.expect.split_once(':').unwrap_or((&s.expect, ""));
        let allowed = |c: u64| codes.split(',').any(|x| x == c.to_string());
        let ok = match (kind, s.status) {
            ("reply", Some(c)) => allowed(c),
            ("reply", None) => false,
            ("reply-or-drop", Some(c)) => allowed(c),
            ("reply-or-drop", None) => true,
            ("drop", None) => true,
            _ => false,
        };
        if !ok {
            wrong.push(format!(
                "{}: expected {}, got {:?}",
                s.name, s.expect, s.status
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "wrong answers to malformed messages:\n  {}\n{}",
        wrong.join("\n  "),
        h.report()
    );

    // Every message left unanswered was counted.
    let unanswered = sent.iter().filter(|s| s.status.is_none()).count() as u64;
    let total = |lines: &[sip_harness::LogLine]| {
        lines
            .iter()
            .filter(|l| l.is("malformed", &[]))
            .filter_map(|l| l.field("total")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    let counted = h
        .logs
        .wait_until(Duration::from_secs(3), |lines| total(lines) >= unanswered);
    if !counted {
        let t = total(&h.logs.lines());
        panic!(
            "{unanswered} malformed messages got no answer, but the last \"malformed\" log line \
             says total={t}\n{}",
            h.report()
        );
    }

    // And homeline still answers as before.
    h.sipp("options.xml").run(&mut h);
    h.sipp("options.xml").tcp().run(&mut h);
}

#[test]
fn trunk_keepalive_follows_the_pbx_going_down_and_coming_back() {
    let pbx_port = free_port_pair(HOMELINE_IP);
    let dir = sip_harness::test_dir("keepalive_pbx");
    let pbx = |n| Sipp::uas("pbx_options_uas.xml", &dir, n).spawn(pbx_port);
    let mut first = pbx(0);
    let mut h = Homeline::start(
        "keepalive",
        // A ping times out after 64*T1 = 3.2 s.
        Setup::default().sip("t1", "\"50ms\"").pbx(pbx_port, "1s"),
    );
    let trunk = [("trunk", "pbx")];
    let up = h.expect_event(0, Duration::from_secs(8), "trunk up", &trunk);
    first.kill();
    let down = h.expect_event(up + 1, Duration::from_secs(10), "trunk down", &trunk);
    let _second = pbx(1);
    h.expect_event(down + 1, Duration::from_secs(10), "trunk up", &trunk);
}

#[test]
fn keepalive_answers_the_pbxs_digest_challenge_with_the_trunk_credentials() {
    let pbx_port = free_port_pair(HOMELINE_IP);
    let dir = sip_harness::test_dir("keepalive_auth_pbx");
    for (password, ok) in [("trunk-secret", true), ("wrong", false)] {
        let mut pbx = Sipp::uas("pbx_options_auth_uas.xml", &dir, usize::from(ok))
            .arg("-m")
            .arg("1")
            .spawn(pbx_port);
        let _h = Homeline::start(
            if ok {
                "keepalive_auth"
            } else {
                "keepalive_auth_wrong"
            },
            Setup::default()
                .sip("t1", "\"50ms\"")
                .pbx(pbx_port, "1s")
                .trunk_credentials("homeline", password),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = pbx.exited() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the PBX saw no authenticated ping"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(
            status.success(),
            ok,
            "credentials {password}: {}",
            pbx.output()
        );
    }
}

#[test]
fn baresip_registers_and_stays_registered_across_refreshes() {
    require("baresip", "baresip-core");
    let mut h = Homeline::start(
        "baresip",
        // baresip 1.0 gives up on a 401 with any algorithm but MD5 in it.
        Setup::default().sip("digest_algorithms", r#"["MD5"]"#),
    );
    let conf = h.dir.join("baresip");
    std::fs::create_dir_all(&conf).unwrap_or_else(|e| panic!("cannot create baresip dir: {e}"));
    let (rtp_min, rtp_max) = sip_harness::rtp_range();
    let values = [
        ("AGENT_IP", AGENT_IP.to_string()),
        ("SIP_PORT", free_udp_block(AGENT_IP, 1).to_string()),
        ("RTP_PORT_MIN", rtp_min.to_string()),
        ("RTP_PORT_MAX", rtp_max.to_string()),
        ("USER", "alice".to_string()),
        ("REGISTRAR", h.addr()),
        ("PASSWORD", PASSWORD.to_string()),
        ("REGINT", "3".to_string()),
    ];
    for (template, file) in [("config.in", "config"), ("accounts.in", "accounts")] {
        let text = std::fs::read_to_string(sip_dir().join("baresip").join(template))
            .unwrap_or_else(|e| panic!("cannot read tests/sip/baresip/{template}: {e}"));
        std::fs::write(conf.join(file), fill(&text, &values))
            .unwrap_or_else(|e| panic!("cannot write baresip {file}: {e}"));
    }
    std::fs::write(conf.join("contacts"), "")
        .unwrap_or_else(|e| panic!("cannot write baresip contacts: {e}"));
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(&conf).env("HOME", &h.dir);
    let mut baresip = Background::start("baresip", cmd, h.dir.join("baresip.out"), false);

    // The first registration, then a refresh about 2.7 s later (90 % of 3 s).
    let alice = |l: &sip_harness::LogLine| l.is("registered", &[("user", "alice")]);
    let refreshed = h.logs.wait_until(Duration::from_secs(12), |lines| {
        lines.iter().filter(|l| alice(l)).count() >= 2
    });
    if !refreshed {
        let n = h.logs.matching(alice).len();
        panic!(
            "alice registered {n} time(s) in 12 s, expected a registration and a refresh\n{}\n{}",
            baresip.report(),
            h.report()
        );
    }
    let out = baresip.output();
    let failures: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Register:") || (l.contains("/UDP/v4}") && !l.contains(" 200 OK")))
        .collect();
    let complaints = h.logs.matching(|l| {
        l.field("user").as_deref() == Some("alice") && matches!(l.level(), Some("WARN" | "ERROR"))
    });
    assert!(
        failures.is_empty() && complaints.is_empty(),
        "registration failures: baresip: {failures:?}; homeline: {complaints:?}\n{}\n{}",
        baresip.report(),
        h.report()
    );
    assert!(
        baresip.exited().is_none(),
        "baresip stopped: {}",
        baresip.report()
    );
}

#[test]
fn linphone_registers_with_sha256() {
    require("linphone-daemon", "linphone-cli");
    let mut h = Homeline::start("linphone", Setup::default());
    let home = h.dir.join("linphone-home");
    // Without ~/.local/share/linphone the database cannot open and SIP never starts.
    for d in [".local/share/linphone", ".config", "run/pulse"] {
        std::fs::create_dir_all(home.join(d))
            .unwrap_or_else(|e| panic!("cannot create {d} in linphone's home: {e}"));
    }
    let (rtp_min, rtp_max) = sip_harness::rtp_range();
    let (video_min, video_max) = sip_harness::rtp_range();
    let rc = fill(
        &std::fs::read_to_string(sip_dir().join("linphone/linphonerc.in"))
            .unwrap_or_else(|e| panic!("cannot read tests/sip/linphone/linphonerc.in: {e}")),
        &[
            ("AGENT_IP", AGENT_IP.to_string()),
            ("SIP_PORT", free_udp_block(AGENT_IP, 1).to_string()),
            ("RTP_PORT_MIN", rtp_min.to_string()),
            ("RTP_PORT_MAX", rtp_max.to_string()),
            ("VIDEO_PORT_MIN", video_min.to_string()),
            ("VIDEO_PORT_MAX", video_max.to_string()),
            ("USER", "bob".to_string()),
            ("REGISTRAR", h.addr()),
            ("PASSWORD", PASSWORD.to_string()),
            ("EXPIRES", "60".to_string()),
        ],
    );
    let rc_path = h.dir.join("linphonerc");
    std::fs::write(&rc_path, rc).unwrap_or_else(|e| panic!("cannot write linphonerc: {e}"));
    let mut cmd = Command::new("linphone-daemon");
    cmd.arg("--config")
        .arg(&rc_path)
        .arg("--disable-stats-events")
        .arg("--log")
        .arg(h.dir.join("linphone-daemon.log"))
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("PULSE_RUNTIME_PATH", home.join("run/pulse"));
    // The daemon reads commands on stdin and crashes when it closes: keep it open.
    let mut linphone = Background::start("linphone-daemon", cmd, h.dir.join("linphone.out"), true);
    let found = h.logs.wait_for(0, Duration::from_secs(10), |l| {
        l.is("registered", &[("user", "bob")])
    });
    match found {
        Some((_, line)) => assert_eq!(
            line.field("algorithm").as_deref(),
            Some("SHA-256"),
            "linphone registered, but not with SHA-256: {}",
            line.raw
        ),
        None => panic!(
            "linphone did not register as bob within 10 s\n{}\n{}",
            linphone.report(),
            h.report()
        ),
    }
}

/// Sends `n` OPTIONS over UDP from `source`, 25 at a time with `pause` between, and counts the
/// `200`s back within 2 s of the last; also how long sending took. The pause keeps the kernel
/// from dropping any: homeline's socket holds only a few hundred datagrams.
fn options_burst(h: &Homeline, source: &str, n: usize, pause: Duration) -> (usize, Duration) {
    use std::collections::HashSet;
    use std::net::UdpSocket;
    let sock = UdpSocket::bind((source, 0)).unwrap_or_else(|e| panic!("bind {source}: {e}"));
    let local = sock
        .local_addr()
        .unwrap_or_else(|e| panic!("local address: {e}"));
    let reader = sock
        .try_clone()
        .unwrap_or_else(|e| panic!("clone socket: {e}"));
    reader
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("read timeout: {e}"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    // Reads while sending: 500 answers would overflow the socket's buffer.
    let answers = std::thread::spawn(move || {
        let mut ok = HashSet::new();
        let mut buf = [0u8; 65535];
        let mut quiet_since = None;
        loop {
            match reader.recv(&mut buf) {
                Ok(len) => {
                    quiet_since = None;
                    let text = String::from_utf8_lossy(&buf[..len]);
                    if text.starts_with("SIP/2.0 200") {
                        let call_id = text.lines().find(|l| l.starts_with("Call-ID:"));
                        ok.insert(call_id.unwrap_or_default().to_owned());
                    }
                }
                Err(_) if stop.load(std::sync::atomic::Ordering::Relaxed) => {
                    let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= Duration::from_secs(2) {
                        return ok.len();
                    }
                }
                Err(_) => {}
            }
        }
    });
    let target = h.addr();
    let started = std::time::Instant::now();
    for i in 0..n {
        let msg = format!(
            "OPTIONS sip:{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-flood-{i};rport\r\n\
             From: <sip:flood@{source}>;tag=f{i}\r\n\
             To: <sip:{target}>\r\n\
             Call-ID: flood-{i}-{local}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), &target)
            .unwrap_or_else(|e| panic!("send to {target}: {e}"));
        if i % 25 == 24 {
            std::thread::sleep(pause);
        }
    }
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = answers
        .join()
        .unwrap_or_else(|_| panic!("the reader thread panicked"));
    (answered, took)
}

/// Datagrams the kernel dropped at homeline's UDP socket on 127.0.0.1 (its receive buffer was
/// full), from `/proc/net/udp`; 0 when it cannot be read.
fn udp_drops(h: &Homeline) -> u64 {
    let local = format!("0100007F:{:04X}", h.sip_port);
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// The running count of the last "rate limited" line among `lines` (0 if none).
fn limited_in(lines: &[sip_harness::LogLine]) -> u64 {
    (lines.iter())
        .filter(|l| l.is("rate limited", &[]))
        .map(|l| l.count("total"))
        .max()
        .unwrap_or(0)
}

/// The running count of homeline's last "rate limited" log line (0 if none).
fn rate_limited(h: &Homeline) -> u64 {
    limited_in(&h.logs.lines())
}

#[test]
fn a_request_flood_from_a_source_that_is_no_trunk_is_limited_and_a_trunk_is_not() {
    const N: usize = 500;
    const RATE: f64 = 10.0;
    const BURST: usize = 50;
    let mut h = Homeline::start(
        "rate_limit",
        Setup::default()
            .sip("digest_algorithms", MD5_FIRST)
            .sip("rate_limit", &RATE.to_string())
            .sip("rate_burst", &BURST.to_string()),
    );
    // 127.0.0.2 is no trunk: the burst, then 10 per second while homeline reads the flood
    // (bounded generously by the time sending took plus a second).
    let kernel_drops = udp_drops(&h);
    let (answered, took) = options_burst(&h, AGENT_IP, N, Duration::from_millis(5));
    let most = BURST + (RATE * (took.as_secs_f64() + 1.0)).ceil() as usize;
    assert!(
        (BURST..=most).contains(&answered),
        "{answered} of {N} OPTIONS from {AGENT_IP} answered in {took:?}, expected {BURST}..={most}\n{}",
        h.report()
    );
    // Every other one was dropped and counted (but those the kernel dropped before homeline
    // could read them, when its socket's buffer was full).
    let kernel_drops = udp_drops(&h) - kernel_drops;
    let dropped = (N - answered) as u64 - kernel_drops;
    let counted = h
        .logs
        .wait_until(Duration::from_secs(3), |lines| limited_in(lines) >= dropped);
    assert!(
        counted && rate_limited(&h) == dropped,
        "{dropped} OPTIONS went unanswered (and {kernel_drops} more never reached homeline), \
         the last \"rate limited\" line says {}\n{}",
        rate_limited(&h),
        h.report()
    );
    let from = h.logs.matching(|l| l.is("rate limited", &[]));
    assert!(
        from.iter()
            .all(|l| l.field("from").is_some_and(|f| f.starts_with(AGENT_IP))),
        "{from:?}"
    );

    // The trunk's source is never limited. Each of its requests is answered, which takes
    // longer (a debug build, logging every message): 500 in 400 ms.
    let kernel_drops = udp_drops(&h);
    let (answered, took) = options_burst(&h, HOMELINE_IP, N, Duration::from_millis(20));
    let kernel_drops = udp_drops(&h) - kernel_drops;
    assert_eq!(
        answered as u64 + kernel_drops,
        N as u64,
        "the trunk's {N} OPTIONS (sent in {took:?}, {kernel_drops} dropped by the kernel) were \
         not all answered\n{}",
        h.report()
    );
    assert_eq!(rate_limited(&h), dropped, "{}", h.report());

    // Half a second later the limited source has tokens again: a REGISTER (two requests)
    // goes through.
    std::thread::sleep(Duration::from_millis(500));
    let at = h.logs.len();
    h.sipp("register.xml")
        .source_ip(AGENT_IP)
        .service("alice")
        .auth("alice", PASSWORD)
        .run(&mut h);
    h.expect_event(
        at,
        Duration::from_secs(2),
        "registered",
        &[("user", "alice")],
    );

    // Over TCP the same limit applies per source (a bucket of its own, full again).
    require("python3", "python3");
    let before = rate_limited(&h);
    let out = Command::new("python3")
        .arg("-c")
        .arg(TCP_BURST_PY)
        .args([AGENT_IP, &h.addr(), "200"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answered: usize = stdout.trim().parse().unwrap_or_else(|_| {
        panic!(
            "the TCP burst printed no count ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        (BURST..=BURST + 2 * RATE as usize).contains(&answered),
        "{answered} of 200 OPTIONS over TCP answered\n{}",
        h.report()
    );
    let dropped = before + (200 - answered) as u64;
    let counted = h
        .logs
        .wait_until(Duration::from_secs(3), |lines| limited_in(lines) >= dropped);
    assert!(counted, "expected total={dropped}\n{}", h.report());
}

/// `python3 -c TCP_BURST_PY SOURCE_IP HOST:PORT N`: N OPTIONS on one TCP connection from
/// SOURCE_IP; prints how many got a `200` within a second of the last.
const TCP_BURST_PY: &str = r#"
import socket, sys, time
src, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = target.rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind((src, 0))
s.connect((host, int(port)))
local = "%s:%d" % s.getsockname()
for i in range(n):
    msg = (
        "OPTIONS sip:%s;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcp-%d\r\n"
        "From: <sip:flood@%s>;tag=t%d\r\nTo: <sip:%s>\r\nCall-ID: tcp-flood-%d\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ) % (target, local, i, src, i, target, i)
    s.sendall(msg.encode())
s.settimeout(1.0)
data = b""
try:
    while True:
        chunk = s.recv(65535)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
print(data.count(b"SIP/2.0 200"))
"#;
