//! Validation: every problem is reported, at its line, under its key.

use homeline_config::{Diagnostic, Severity, format_duration, parse};
use homeline_routing::QueueConfig;

/// The diagnostics of `src`, as `line: key: problem` strings (warnings marked).
fn diags(src: &str) -> Vec<String> {
    let list: Vec<Diagnostic> = match parse(src, "t.toml") {
        Ok(l) => l.warnings,
        Err(e) => e.0,
    };
    list.iter()
        .map(|d| {
            let w = if d.severity == Severity::Warning {
                "warning: "
            } else {
                ""
            };
            format!("{}: {}: {w}{}", d.line, d.key, d.problem)
        })
        .collect()
}

/// Asserts that some diagnostic starts with `line: key:` and contains `text`.
#[track_caller]
fn has(all: &[String], line: usize, key: &str, text: &str) {
    let prefix = format!("{line}: {key}: ");
    assert!(
        all.iter()
            .any(|d| d.starts_with(&prefix) && d.contains(text)),
        "expected `{prefix}...{text}...` among:\n{}",
        all.join("\n")
    );
}

#[test]
fn an_empty_file_is_valid_with_defaults() {
    let c = match parse("", "empty.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.sip.udp[0].to_string(), "127.0.0.1:5060");
    assert_eq!(c.sip.domain, "127.0.0.1");
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (20000, 20999));
    assert_eq!(c.log.level, "info");
    assert!(c.defaults.ready_on_register);
    assert!(c.trunks.is_empty() && c.queues.is_empty() && c.agents.is_empty());
}

#[test]
fn queue_defaults_match_the_routing_core() {
    let src =
        "[[queue]]\nname = \"q\"\n[[agent]]\nname = \"a\"\npassword = \"x\"\nqueues = [\"q\"]\n";
    let c = match parse(src, "t.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.queues[0].routing, QueueConfig::new("q"));
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/homeline.toml"
    ))
    .unwrap_or_default();
    let q = QueueConfig::new("q");
    for (key, default) in [
        ("ring_timeout", format_duration(q.ring_timeout)),
        ("wrap_up", format_duration(q.wrap_up)),
        ("service_level", format_duration(q.service_level)),
        ("strategy", q.strategy.as_str().to_owned()),
        ("max_misses", q.max_misses.to_string()),
    ] {
        let line = doc.lines().find(|l| l.starts_with(&format!("{key} =")));
        assert!(
            line.is_some_and(|l| l.contains(&default)),
            "{key}: documented default is not {default}"
        );
    }
}

const BROKEN: &str = r#"[sip]
udp = ["127.0.0.1:5060", "not-an-address"]
tcp = "127.0.0.1:5060"
colour = "blue"

[media]
rtp_port_min = 30000
rtp_port_max = 20000

[[trunk]]
name = "pbx"
pbx = "127.0.0.1:5080"
allow = ["10.0.0.0/33", "127.0.0.0/8"]
routes = { "8000" = "support", "8001" = "nowhere" }

[[trunk]]
name = "pbx"
pbx = "127.0.0.2:5080"
allow = ["192.0.2.0/24"]
routes = { "8000" = "sales" }

[[queue]]
name = "support"
ring_timeout = "fifteen"
wrap_up = 5
overflow = { queue = "missing" }
max_wait = "1m"

[[queue]]
name = "sales"
strategy = "cheapest"

[[queue]]
name = "support"

[[agent]]
name = "alice"
queues = ["support", "ghost"]
skills = { english = 7 }

[[agent]]
name = "bob"
password = "x"
password_ha1 = { md5 = "abc" }
queues = [{ queue = "sales", penalty = 1, priority = 2 }]
"#;

#[test]
fn every_problem_is_reported_at_its_line() {
    let d = diags(BROKEN);
    has(&d, 2, "sip.udp", "invalid address `not-an-address`");
    has(&d, 3, "sip.tcp", "expected an array, found string");
    has(&d, 4, "sip.colour", "unknown key");
    has(&d, 8, "media.rtp_port_max", "below rtp_port_min");
    has(&d, 13, "trunk.pbx.allow", "invalid network `10.0.0.0/33`");
    has(&d, 14, "trunk.pbx.routes.8001", "unknown queue `nowhere`");
    has(
        &d,
        17,
        "trunk.pbx.name",
        "duplicate trunk name `pbx` (first on line 11)",
    );
    has(
        &d,
        20,
        "trunk.pbx.routes.8000",
        "already routed to queue `support`",
    );
    has(
        &d,
        24,
        "queue.support.ring_timeout",
        "invalid duration `fifteen`",
    );
    has(
        &d,
        25,
        "queue.support.wrap_up",
        "expected a duration string",
    );
    has(&d, 26, "queue.support.overflow", "unknown queue `missing`");
    has(&d, 31, "queue.sales.strategy", "unknown value \"cheapest\"");
    has(
        &d,
        34,
        "queue.support.name",
        "duplicate queue name `support`",
    );
    has(
        &d,
        36,
        "agent.alice.password",
        "missing: set password or password_ha1",
    );
    has(&d, 38, "agent.alice.queues", "unknown queue `ghost`");
    has(&d, 39, "agent.alice.skills.english", "between 1 and 5");
    has(&d, 44, "agent.bob.password_ha1", "not both");
    has(
        &d,
        44,
        "agent.bob.password_ha1.md5",
        "expected 32 hex digits",
    );
    has(&d, 45, "agent.bob.queues.priority", "unknown key");
    assert!(d.iter().all(|l| !l.contains("warning")) || d.len() > 18);
    // In file order.
    let lines: Vec<usize> = d
        .iter()
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn syntax_errors_and_other_problems_are_reported_together() {
    let src = "[sip]\nuser_agent = \"homeline\n[http]\nlisten = \"nowhere\"\n[[queue]]\nname = \"q\"\nbad = = 1\n";
    let d = diags(src);
    has(&d, 2, "syntax", "");
    has(&d, 4, "http.listen", "invalid address");
    has(&d, 7, "syntax", "");
}

#[test]
fn a_swallowed_rest_of_file_gives_one_syntax_error_per_line() {
    let src = "[sip]\nudp = [\"127.0.0.1:5060\"\n\n[http]\nlisten = \"nowhere\"\n[[queue]]\nname = \"q\"\n";
    let d = diags(src);
    assert!(!d.is_empty());
    let mut lines: Vec<&str> = d.iter().filter_map(|l| l.split(':').next()).collect();
    let n = lines.len();
    lines.dedup();
    assert_eq!(lines.len(), n, "{d:?}");
    assert!(d.iter().all(|l| l.contains(": syntax: ")), "{d:?}");
}

#[test]
fn a_file_that_cannot_be_read_is_one_error() {
    let e = homeline_config::load(std::path::Path::new("/nonexistent/homeline.toml"));
    let e = e.err().map(|e| e.0).unwrap_or_default();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string()
            .starts_with("/nonexistent/homeline.toml: cannot read:"),
        "{}",
        e[0]
    );
}

#[test]
fn wrong_shapes_and_unknown_tables() {
    let src =
        "queue = 3\n[extra]\nx = 1\n[[agent]]\nname = \"bad name\"\npassword = \"\"\n[trunk.pbx]\n";
    let d = diags(src);
    has(&d, 1, "queue", "expected an array of tables ([[queue]])");
    has(&d, 2, "extra", "unknown key");
    has(&d, 5, "agent[0].name", "use only letters");
    has(&d, 6, "agent[0].password", "must not be empty");
    has(&d, 7, "trunk", "expected an array of tables");
}

#[test]
fn trunks_need_a_source_or_credentials_and_a_listener() {
    let src = "[sip]\ntcp = []\n[[trunk]]\nname = \"open\"\npbx = \"192.0.2.1:5060\"\ntransport = \"tcp\"\nusername = \"u\"\n[[trunk]]\nname = \"nobody\"\npbx = \"0.0.0.0:5060\"\n";
    let d = diags(src);
    has(
        &d,
        6,
        "trunk.open.transport",
        "sip.tcp has no listen address",
    );
    has(&d, 7, "trunk.open.username", "set password too");
    has(&d, 8, "trunk.nobody.allow", "would take calls from anyone");
    has(&d, 10, "trunk.nobody.pbx", "give the PBX's own address");
}

#[test]
fn queue_details_are_checked() {
    let src = r#"[[queue]]
name = "a"
overflow = { queue = "a", external = "sip:1@x" }
max_misses = -1
required_skills = [{ skill = "english", min = 0 }, { skill = "english" }]
relax = [{ after = "60s", min_proficiency = 1 }, { after = "30s", min_proficiency = 6 }]
[[queue]]
name = "b"
overflow = { external = "9000" }
ring_timeout = "0s"
[[queue]]
name = "c"
overflow = { queue = "c" }
max_wait = "1m"
"#;
    let d = diags(src);
    has(&d, 3, "queue.a.overflow", "not both");
    has(&d, 4, "queue.a.max_misses", "between 0 and");
    has(&d, 5, "queue.a.required_skills.min", "between 1 and 5");
    has(&d, 6, "queue.a.relax.min_proficiency", "between 0 and 5");
    has(
        &d,
        9,
        "queue.b.overflow.external",
        "sip:, sips: or tel: URI",
    );
    has(&d, 10, "queue.b.ring_timeout", "greater than zero");
    has(&d, 13, "queue.c.overflow", "cannot overflow to itself");
}

#[test]
fn relax_order_and_duplicate_skills() {
    let src = r#"[[queue]]
name = "a"
required_skills = [{ skill = "english" }, { skill = "english", min = 2 }]
relax = [{ after = "60s", min_proficiency = 1 }, { after = "30s", min_proficiency = 0 }]
[[agent]]
name = "x"
password = "p"
queues = ["a", "a"]
"#;
    let d = diags(src);
    has(
        &d,
        3,
        "queue.a.required_skills",
        "skill `english` listed twice",
    );
    has(&d, 4, "queue.a.relax", "strictly increasing");
    has(&d, 8, "agent.x.queues", "queue `a` listed twice");
}

#[test]
fn ha1_is_checked() {
    let src = r#"[[agent]]
name = "x"
password_ha1 = { md5 = "zz", sha1 = "00" }
[[agent]]
name = "y"
password_ha1 = {}
[[agent]]
name = "z"
password_ha1 = { sha256 = "0e96c1d975361ce2bee9f772b0cbd3548dd79037fdda07c51a7d9164cc7f2945" }
"#;
    let d = diags(src);
    has(&d, 3, "agent.x.password_ha1.md5", "expected 32 hex digits");
    has(&d, 3, "agent.x.password_ha1.sha1", "unknown key");
    has(&d, 6, "agent.y.password_ha1", "set md5 and/or sha256");
    assert!(
        !d.iter()
            .any(|l| l.contains("agent.z") && !l.contains("warning")),
        "{d:?}"
    );
}

#[test]
fn demo_credentials_off_loopback_warn() {
    let base = "[[queue]]\nname = \"q\"\n[[agent]]\nname = \"a\"\npassword = \"demo-password\"\nqueues = [\"q\"]\n";
    assert!(diags(base).is_empty(), "{:?}", diags(base));
    for exposed in [
        "[sip]\nudp = [\"0.0.0.0:5060\"]\n",
        "[sip]\npublic_address = \"192.0.2.1\"\n",
        "[http]\nlisten = \"[::]:8080\"\n",
    ] {
        let src = format!("{base}{exposed}");
        let loaded = parse(&src, "t.toml");
        let Ok(loaded) = loaded else {
            panic!("{src}: not accepted")
        };
        let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert!(
            w.iter()
                .any(|w| w.starts_with("t.toml:5: agent.a.password: warning: demo credentials")),
            "{src}: {w:?}"
        );
    }
}

#[test]
fn other_warnings() {
    let src = r#"[http]
admin_token = "short"
[[trunk]]
name = "a"
pbx = "192.0.2.1:5060"
allow = ["10.0.0.1/8"]
[[trunk]]
name = "b"
pbx = "192.0.2.2:5060"
allow = ["10.1.0.0/16"]
[[queue]]
name = "empty"
overflow = { external = "sip:1@a" }
[[queue]]
name = "skilled"
required_skills = [{ skill = "welsh" }]
[[agent]]
name = "x"
password = "p"
queues = ["skilled"]
[[agent]]
name = "y"
password = "p"
"#;
    let loaded = parse(src, "t.toml");
    let Ok(loaded) = loaded else {
        panic!("not accepted: {loaded:?}")
    };
    let d: Vec<String> = loaded
        .warnings
        .iter()
        .map(|d| format!("{}: {}: {}", d.line, d.key, d.problem))
        .collect();
    has(&d, 2, "http.admin_token", "shorter than 16");
    has(&d, 6, "trunk.a.allow", "host bits set");
    has(&d, 10, "trunk.b.allow", "overlaps trunk `a`");
    has(&d, 11, "queue.empty", "no operator is a member");
    has(&d, 13, "queue.empty.overflow", "no effect without max_wait");
    has(
        &d,
        16,
        "queue.skilled.required_skills",
        "no member has skill `welsh`",
    );
    has(&d, 21, "agent.y", "is in no queue");
}

#[test]
fn numbers_routed_twice_to_the_same_queue_are_fine() {
    let src = "[[queue]]\nname = \"q\"\n[[agent]]\nname = \"a\"\npassword = \"p\"\nqueues = [\"q\"]\n\
               [[trunk]]\nname = \"a\"\npbx = \"192.0.2.1:5060\"\nallow = [\"192.0.2.1\"]\nroutes = { \"1\" = \"q\" }\n\
               [[trunk]]\nname = \"b\"\npbx = \"192.0.2.2:5060\"\nallow = [\"192.0.2.2\"]\nroutes = { \"1\" = \"q\" }\n";
    assert!(diags(src).is_empty(), "{:?}", diags(src));
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let src = "[http]\nadmin_token = \"a-very-secret-admin-token\"\n[[agent]]\nname = \"a\"\npassword = \"hunter2-hunter2\"\n";
    let c = match parse(src, "t.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("hunter2") && !dbg.contains("a-very-secret"),
        "{dbg}"
    );
}

#[test]
fn log_settings_are_checked() {
    let d = diags("[log]\nformat = \"xml\"\nlevel = \"loud\"\n");
    has(&d, 2, "log.format", "expected one of: \"json\", \"text\"");
    // A bare word is a target for tracing; "loud" is accepted as one, a broken directive is not.
    let d = diags("[log]\nlevel = \"info,homeline=chatty\"\n");
    has(&d, 2, "log.level", "invalid filter `homeline=chatty`");
}

#[test]
fn sip_timers_and_registration_defaults() {
    use homeline_config::DigestAlgorithm;
    use std::time::Duration;
    let c = match parse("", "t.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.sip.t1, Duration::from_millis(500));
    assert_eq!(c.sip.nonce_ttl, Duration::from_secs(300));
    assert_eq!(c.sip.qualify_interval, Duration::from_secs(30));
    assert_eq!(c.sip.min_expires, Duration::from_secs(60));
    assert_eq!(c.sip.max_expires, Duration::from_secs(3600));
    assert_eq!(c.sip.default_expires, Duration::from_secs(3600));
    assert_eq!(c.sip.max_message_size, 65535);
    assert_eq!(
        c.sip.digest_algorithms,
        [DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
    );

    let src = "[sip]\nt1 = \"50ms\"\nnonce_ttl = \"1s\"\nmin_expires = \"2s\"\nmax_expires = \"10m\"\n\
               default_expires = \"5m\"\nmax_message_size = 512\ndigest_algorithms = [\"MD5\"]\n";
    let c = match parse(src, "t.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.sip.t1, Duration::from_millis(50));
    assert_eq!(c.sip.nonce_ttl, Duration::from_secs(1));
    assert_eq!(
        (c.sip.min_expires, c.sip.default_expires, c.sip.max_expires),
        (
            Duration::from_secs(2),
            Duration::from_secs(300),
            Duration::from_secs(600)
        )
    );
    assert_eq!(c.sip.max_message_size, 512);
    assert_eq!(c.sip.digest_algorithms, [DigestAlgorithm::Md5]);
}

#[test]
fn qualify_interval_is_off_or_between_a_second_and_an_hour() {
    use std::time::Duration;
    let interval = |src: &str| match parse(src, "t.toml") {
        Ok(l) => l.config.sip.qualify_interval,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        interval("[sip]\nqualify_interval = \"0s\"\n"),
        Duration::ZERO
    );
    assert_eq!(
        interval("[sip]\nqualify_interval = \"1s\"\n"),
        Duration::from_secs(1)
    );
    assert_eq!(
        interval("[sip]\nqualify_interval = \"1h\"\n"),
        Duration::from_secs(3600)
    );
    let d = diags("[sip]\nt1 = \"50ms\"\nqualify_interval = \"500ms\"\n");
    has(
        &d,
        3,
        "sip.qualify_interval",
        "must be 0s (off) or between 1s and 1h, found 500ms",
    );
    let d = diags("[sip]\nqualify_interval = \"2h\"\n");
    has(&d, 2, "sip.qualify_interval", "found 2h");
    let d = diags("[sip]\nqualify_interval = 30\n");
    has(&d, 2, "sip.qualify_interval", "expected a duration string");
}

#[test]
fn the_per_source_rate_limit_is_checked() {
    let limit = |src: &str| match parse(src, "t.toml") {
        Ok(l) => (l.config.sip.rate_limit, l.config.sip.rate_burst),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(limit(""), (50, 200));
    assert_eq!(limit("[sip]\nrate_limit = 0\n"), (0, 200));
    assert_eq!(
        limit("[sip]\nrate_limit = 100000\nrate_burst = 1000000\n"),
        (100_000, 1_000_000)
    );
    let d = diags("[sip]\nrate_limit = -1\nrate_burst = 0\n");
    has(
        &d,
        2,
        "sip.rate_limit",
        "must be between 0 and 100000, found -1",
    );
    has(
        &d,
        3,
        "sip.rate_burst",
        "must be between 1 and 1000000, found 0",
    );
    let d = diags("[sip]\nrate_limit = \"50/s\"\nrate_burst = 1000001\n");
    has(&d, 2, "sip.rate_limit", "expected an integer");
    has(&d, 3, "sip.rate_burst", "must be between 1 and 1000000");
    let d = diags("[sip]\nrate_limit = 0\nrate_burst = 10\n");
    has(&d, 3, "sip.rate_burst", "warning: has no effect");
}

#[test]
fn a_left_out_default_expires_follows_the_bounds() {
    use std::time::Duration;
    let expiry = |src: &str| match parse(src, "t.toml") {
        Ok(l) => (l.config.sip.default_expires, l.config.sip.max_expires),
        Err(e) => panic!("{e}"),
    };
    let (default, max) = expiry("[sip]\nmax_expires = \"10m\"\n");
    assert_eq!(
        (default, max),
        (Duration::from_secs(600), Duration::from_secs(600))
    );
    let (default, _) = expiry("[sip]\nmin_expires = \"2h\"\nmax_expires = \"3h\"\n");
    assert_eq!(default, Duration::from_secs(7200));
}

#[test]
fn sip_timers_and_registration_bounds_are_checked() {
    let src = r#"[sip]
t1 = "5ms"
nonce_ttl = "2h"
min_expires = "500ms"
max_expires = 3600
default_expires = "soon"
max_message_size = 70000
digest_algorithms = ["SHA-256", "sha-512", "SHA-256"]
"#;
    let d = diags(src);
    has(&d, 2, "sip.t1", "must be between 10ms and 10s, found 5ms");
    has(
        &d,
        3,
        "sip.nonce_ttl",
        "must be between 1s and 1h, found 2h",
    );
    has(&d, 4, "sip.min_expires", "must be between 1s and");
    has(&d, 5, "sip.max_expires", "expected a duration string");
    has(&d, 6, "sip.default_expires", "invalid duration `soon`");
    has(
        &d,
        7,
        "sip.max_message_size",
        "must be between 512 and 65535, found 70000",
    );
    has(&d, 8, "sip.digest_algorithms", "unknown value \"sha-512\"");
    has(
        &d,
        8,
        "sip.digest_algorithms",
        "\"SHA-256\" is listed twice",
    );

    let d = diags("[sip]\nt1 = \"11s\"\nmin_expires = \"1500ms\"\nmax_message_size = 511\n");
    has(&d, 2, "sip.t1", "must be between 10ms and 10s");
    has(&d, 3, "sip.min_expires", "whole number of seconds");
    has(
        &d,
        4,
        "sip.max_message_size",
        "must be between 512 and 65535",
    );

    let d = diags("[sip]\nmin_expires = \"2h\"\nmax_expires = \"1h\"\n");
    has(
        &d,
        2,
        "sip.min_expires",
        "min_expires (2h) is above max_expires (1h)",
    );
    // Only the written key can be blamed.
    let d = diags("[sip]\nmax_expires = \"30s\"\n");
    has(
        &d,
        2,
        "sip.max_expires",
        "min_expires (1m) is above max_expires (30s)",
    );

    let d = diags("[sip]\nmin_expires = \"2m\"\nmax_expires = \"10m\"\ndefault_expires = \"1m\"\n");
    has(
        &d,
        4,
        "sip.default_expires",
        "1m is outside min_expires..max_expires (2m..10m)",
    );
    let d = diags("[sip]\ndefault_expires = \"2h\"\n");
    has(
        &d,
        2,
        "sip.default_expires",
        "outside min_expires..max_expires (1m..1h)",
    );

    let d = diags("[sip]\ndigest_algorithms = []\n");
    has(&d, 2, "sip.digest_algorithms", "must not be empty");
    let d = diags("[sip]\ndigest_algorithms = \"MD5\"\n");
    has(&d, 2, "sip.digest_algorithms", "expected an array");
}

#[test]
fn operators_need_a_hash_for_an_offered_algorithm() {
    let src = r#"[sip]
digest_algorithms = ["MD5"]
[[agent]]
name = "x"
password_ha1 = { sha256 = "0e96c1d975361ce2bee9f772b0cbd3548dd79037fdda07c51a7d9164cc7f2945" }
[[agent]]
name = "y"
password_ha1 = { md5 = "0123456789abcdef0123456789abcdef" }
[[agent]]
name = "z"
password = "p"
"#;
    let d = diags(src);
    has(
        &d,
        5,
        "agent.x.password_ha1",
        "no hash for an algorithm in sip.digest_algorithms (MD5)",
    );
    assert!(
        !d.iter()
            .any(|l| l.contains("agent.y.password") || l.contains("agent.z.password")),
        "{d:?}"
    );
}

#[test]
fn a_bad_expiry_bound_is_reported_once() {
    let d = diags("[sip]\nmin_expires = \"soon\"\nmax_expires = \"30s\"\n");
    has(&d, 2, "sip.min_expires", "invalid duration `soon`");
    assert_eq!(d.len(), 1, "{d:?}");
}

#[test]
fn feature_codes_default_and_are_checked() {
    let c = match parse("", "t.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        (
            c.features.ready.as_str(),
            c.features.not_ready.as_str(),
            c.features.logout.as_str()
        ),
        ("*1", "*2", "*3")
    );
    let c = match parse("[features]\nready = \"#71\"\nlogout = \"*99\"\n", "t.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.features.ready, "#71");
    assert_eq!(c.features.not_ready, "*2");
    assert_eq!(c.features.logout, "*99");

    let d =
        diags("[features]\nready = \"\"\nnot_ready = \"*2a\"\nlogout = \"*12345678901234567\"\n");
    has(&d, 2, "features.ready", "must not be empty");
    has(&d, 3, "features.not_ready", "not dialable");
    has(&d, 4, "features.logout", "longer than 16");
    let d = diags("[features]\nready = \"*5\"\nnot_ready = \"*5\"\n");
    has(
        &d,
        3,
        "features.not_ready",
        "also the code of features.ready",
    );
    let d = diags("[features]\nready = \"*2\"\n");
    has(
        &d,
        2,
        "features.ready",
        "also the code of features.not_ready (its default)",
    );
    let d = diags("[features]\nstate = \"*4\"\n");
    assert!(d.iter().any(|l| l.contains("features.state")), "{d:?}");
}

const OPERATOR_TRUNKS: &str = r#"[[trunk]]
name = "pbx"
pbx = "127.0.0.1:5080"
allow = ["127.0.0.1"]

[[trunk]]
name = "carrier"
pbx = "127.0.0.2:5060"
allow = ["127.0.0.2"]
caller_id = "+15550100"

[[agent]]
name = "alice"
password = "x"

[[agent]]
name = "bob"
password = "x"
trunk = "carrier"
caller_id = "+15550142"
"#;

#[test]
fn an_operator_names_the_trunk_and_caller_id_of_its_own_calls() {
    let c = match parse(OPERATOR_TRUNKS, "t.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    let alice = c
        .agent("alice")
        .map(|a| (a.trunk.clone(), a.caller_id.clone()));
    assert_eq!(
        alice,
        Some((None, None)),
        "absent: the first trunk's settings"
    );
    let bob = c
        .agent("bob")
        .map(|a| (a.trunk.clone(), a.caller_id.clone()));
    assert_eq!(
        bob,
        Some((Some("carrier".into()), Some("+15550142".into())))
    );
}

#[test]
fn an_operator_trunk_must_exist_and_a_caller_id_be_dialable() {
    let src = OPERATOR_TRUNKS
        .replace("trunk = \"carrier\"", "trunk = \"nowhere\"")
        .replace("caller_id = \"+15550142\"", "caller_id = \"<sip:x>\"");
    let d = diags(&src);
    has(&d, 19, "agent.bob.trunk", "unknown trunk `nowhere`");
    has(&d, 20, "agent.bob.caller_id", "not a dialled number");
    let d = diags("[[agent]]\nname = \"alice\"\npassword = \"x\"\ntrunk = \"pbx\"\n");
    has(
        &d,
        4,
        "agent.alice.trunk",
        "unknown trunk `pbx`: no [[trunk]] is configured",
    );
    let d = diags("[[agent]]\nname = \"alice\"\npassword = \"x\"\ntrunk = \"a b\"\n");
    has(&d, 4, "agent.alice.trunk", "use only letters");
    let trunk_problems = d.iter().filter(|l| l.contains("agent.alice.trunk"));
    assert_eq!(
        trunk_problems.count(),
        1,
        "a malformed name is one problem: {d:?}"
    );
}
