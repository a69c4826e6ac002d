//! The shipped configuration files: the default and the examples validate, and every key the
//! loader accepts is documented in the default file.

use homeline_config::{
    AgentSecret, Answer, DigestAlgorithm, KNOWN_KEYS, Loaded, LogFormat, Transport, load,
};
use homeline_routing::{OverflowConfig, Strategy, WhenEmpty};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load_ok(path: &Path) -> Loaded {
    match load(path) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn default_config_is_valid_and_as_documented() {
    let loaded = load_ok(&repo().join("config/homeline.toml"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert!(
        c.sip
            .udp
            .iter()
            .chain(&c.sip.tcp)
            .all(|a| a.ip().is_loopback() && a.port() == 5060)
    );
    assert_eq!((c.sip.udp.len(), c.sip.tcp.len()), (1, 1));
    assert_eq!(c.sip.t1, Duration::from_millis(500));
    assert_eq!(c.sip.nonce_ttl, Duration::from_secs(300));
    assert_eq!(c.sip.qualify_interval, Duration::from_secs(30));
    assert_eq!(
        (c.sip.min_expires, c.sip.default_expires, c.sip.max_expires),
        (
            Duration::from_secs(60),
            Duration::from_secs(3600),
            Duration::from_secs(3600)
        )
    );
    assert_eq!(c.sip.max_message_size, 65535);
    assert_eq!((c.sip.rate_limit, c.sip.rate_burst), (50, 200));
    assert_eq!(
        c.sip.digest_algorithms,
        [DigestAlgorithm::Md5],
        "the demo offers MD5 only, for baresip and JsSIP (the built-in default is SHA-256, MD5)"
    );
    assert!(c.http.listen.ip().is_loopback());
    assert_eq!(c.http.listen.port(), 8080);
    assert!(c.http.admin_token.is_none());
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.trunks.len(), 1);
    let pbx = &c.trunks[0];
    assert_eq!(pbx.name, "pbx");
    assert_eq!(pbx.transport, Transport::Udp);
    assert_eq!(pbx.pbx.to_string(), "127.0.0.1:5080");
    assert!(
        pbx.allows(
            "127.0.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into())
        )
    );
    assert!(
        !pbx.allows(
            "192.0.2.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into())
        )
    );
    assert_eq!(pbx.routes.get("8000").map(String::as_str), Some("support"));
    assert_eq!(pbx.routes.get("8001").map(String::as_str), Some("sales"));
    let names: Vec<_> = c.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    for a in &c.agents {
        assert!(matches!(&a.secret, AgentSecret::Password(p) if p.expose() == "demo-password"));
        assert!(a.ready_on_register);
        assert!(a.queues.iter().any(|m| m.queue == "support"));
    }
    let in_sales: Vec<_> = c
        .agents
        .iter()
        .filter(|a| a.queues.iter().any(|m| m.queue == "sales"))
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(in_sales, ["carol"]);
    let rc = c.router_config();
    assert!(rc.problems().is_empty());
    assert_eq!((rc.queues.len(), rc.agents.len()), (2, 3));
}

#[test]
fn examples_are_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("config/examples"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let loaded = load_ok(&entry.path());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        n += 1;
    }
    assert!(n >= 1, "no examples found");
}

#[test]
fn helpdesk_example_uses_what_it_says() {
    let c = load_ok(&repo().join("config/examples/multilingual-helpdesk.toml")).config;
    let general = c.queue("general").map(|q| &q.routing);
    assert_eq!(general.map(|q| q.strategy), Some(Strategy::Skills));
    assert_eq!(general.map(|q| q.relax.len()), Some(2));
    assert_eq!(
        general.and_then(|q| q.overflow.clone()),
        Some(OverflowConfig::Queue("escalation".into()))
    );
    let esc = c.queue("escalation");
    assert_eq!(esc.map(|q| q.routing.strategy), Some(Strategy::RingAll));
    assert_eq!(esc.map(|q| q.answer), Some(Answer::OnAgent));
    assert_eq!(esc.map(|q| q.routing.when_empty), Some(WhenEmpty::Reject));
    assert_eq!(
        c.queue("german").and_then(|q| q.routing.overflow.clone()),
        Some(OverflowConfig::External("sip:9100@main-pbx".into()))
    );
    assert_eq!(
        c.trunk("main-pbx").and_then(|t| t.options_interval),
        Some(Duration::from_secs(15))
    );
    assert!(
        matches!(c.agent("bruno").map(|a| &a.secret), Some(AgentSecret::Ha1(h)) if h.md5.is_some() && h.sha256.is_some())
    );
    assert_eq!(c.agent("alice").map(|a| a.ready_on_register), Some(false));
    assert_eq!(c.agent("bruno").map(|a| a.ready_on_register), Some(true));
    assert_eq!(c.agent("chen").map(|a| a.queues[0].penalty), Some(1));
}

#[test]
fn every_key_is_documented_in_the_default_config() {
    let text = std::fs::read_to_string(repo().join("config/homeline.toml")).unwrap_or_default();
    let mut missing = Vec::new();
    for (table, keys) in KNOWN_KEYS {
        for key in *keys {
            let header = [format!("[{key}]"), format!("[[{key}]]")];
            let documented = text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
                    || l.contains(&format!("{key} = "))
                    || header.iter().any(|h| l.starts_with(h.as_str()))
            });
            if !documented {
                missing.push(format!("{table}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}
