//! The `homeline` binary, run as users run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn homeline(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_homeline"))
        .args(args)
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .output();
    match out {
        Ok(o) => o,
        Err(e) => panic!("cannot run homeline: {e}"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes `contents` to a file of this test's own and returns its path.
fn temp_file(name: &str, contents: &str) -> String {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if let Err(e) = std::fs::write(&path, contents) {
        panic!("cannot write {}: {e}", path.display());
    }
    path.display().to_string()
}

#[test]
fn default_config_checks_ok() {
    let out = homeline(&["check-config", "config/homeline.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "config/homeline.toml: ok");
    assert_eq!(text(&out.stderr), "", "the default config has no warnings");
}

#[test]
fn examples_check_ok() {
    for entry in std::fs::read_dir(repo().join("config/examples"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path().display().to_string();
        let out = homeline(&["check-config", &path]);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", text(&out.stderr));
    }
}

const BROKEN: &str = r#"[sip]
udp = ["127.0.0.1:99999"]

[[trunk]]
name = "pbx"
pbx = "127.0.0.1:5080"
allow = ["127.0.0.0/8"]
routes = { "8000" = "nowhere" }

[[queue]]
name = "support"
ring_timeout = "soon"

[[agent]]
name = "alice"
password = "demo-password"
queues = ["support"]
skills = { english = 9 }
shoe_size = 42
"#;

#[test]
fn broken_config_lists_every_problem_with_its_line() {
    let path = temp_file("broken.toml", BROKEN);
    let out = homeline(&["check-config", &path]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    let err = text(&out.stderr);
    for expected in [
        format!("{path}:2: sip.udp: invalid address `127.0.0.1:99999`"),
        format!("{path}:8: trunk.pbx.routes.8000: unknown queue `nowhere`"),
        format!("{path}:12: queue.support.ring_timeout: invalid duration `soon`"),
        format!("{path}:18: agent.alice.skills.english: proficiency: must be between 1 and 5"),
        format!("{path}:19: agent.alice.shoe_size: unknown key"),
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(&expected)),
            "missing `{expected}` in:\n{err}"
        );
    }
    assert!(err.contains("5 errors"), "{err}");
}

#[test]
fn demo_credentials_on_all_interfaces_warn_but_pass() {
    let config = std::fs::read_to_string(repo().join("config/homeline.toml")).unwrap_or_default();
    let exposed = config.replace("udp = [\"127.0.0.1:5060\"]", "udp = [\"0.0.0.0:5060\"]");
    assert_ne!(config, exposed);
    let path = temp_file("exposed.toml", &exposed);
    let out = homeline(&["check-config", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{path}: ok"));
    let err = text(&out.stderr);
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(": warning: demo credentials"))
        .collect();
    assert_eq!(warnings.len(), 3, "one per demo operator:\n{err}");
    assert!(
        warnings
            .iter()
            .all(|w| w.starts_with(&format!("{path}:")) && w.contains(".password: warning:"))
    );
}

#[test]
fn run_with_a_bad_config_exits_2_and_starts_nothing() {
    let path = temp_file("run-broken.toml", BROKEN);
    let out = homeline(&["run", "--config", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{path}:12: queue.support.ring_timeout:")),
        "{err}"
    );
    assert!(!err.contains("routing core ready"), "{err}");
}

#[test]
fn run_with_a_missing_config_exits_2() {
    let out = homeline(&["run", "--config", "/nonexistent/homeline.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/homeline.toml: cannot read"));
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port");
}

#[test]
fn run_serves_the_default_config_until_sigterm_and_says_what_is_not_built() {
    // The default configuration, on free ports instead of 5060/8080.
    let sip = free_port();
    let default = std::fs::read_to_string(repo().join("config/homeline.toml"))
        .unwrap_or_else(|e| panic!("cannot read the default config: {e}"));
    let cfg = default
        .replace("127.0.0.1:5060", &format!("127.0.0.1:{sip}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port()));
    let path = temp_file("run-default.toml", &cfg);
    let mut child = Command::new(env!("CARGO_BIN_EXE_homeline"))
        .args(["run", "--config", &path])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start homeline: {e}"));
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lines
        .iter()
        .any(|l: &String| l.contains("SIP edge listening"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("homeline did not start listening:\n{}", lines.join("\n"));
            }
        }
    }
    // It keeps serving: still running a moment later.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "homeline exited early"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    let status = child.wait().expect("homeline exit status");
    let _ = reader.join();
    lines.extend(rx.try_iter());
    let err = lines.join("\n");
    assert_eq!(status.code(), Some(0), "graceful stop on SIGTERM:\n{err}");
    assert!(
        err.contains("routing core ready with 2 queues and 3 operators"),
        "{err}"
    );
    for missing in ["WebRTC", "HTTP API"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("not built yet") && l.contains(missing)),
            "no word on {missing}:\n{err}"
        );
    }
    assert!(err.contains("shutting down"), "{err}");
    // JSON logs by default: every line is one object.
    assert!(
        lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{err}"
    );
}

#[test]
fn help_is_there_for_every_command() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check-config", "--help"],
    ] {
        let out = homeline(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: homeline"), "{args:?}");
    }
    let out = homeline(&["--help"]);
    let help = text(&out.stdout);
    assert!(
        help.contains("run") && help.contains("check-config"),
        "{help}"
    );
}

#[test]
fn unknown_command_is_a_usage_error() {
    let out = homeline(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
}
