//! `[[trunk]]`: PBX trunks, their source allow-lists, credentials and routed numbers.

use crate::model::{Credentials, Secret, Transport, Trunk};
use crate::reader::{self, Ctx, Table, Value};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub(crate) const TRUNK_KEYS: &[&str] = &[
    "name",
    "pbx",
    "transport",
    "allow",
    "username",
    "password",
    "caller_id",
    "options_interval",
    "routes",
];

/// A trunk as read, with the lines the cross-checks need. Fields that failed hold
/// placeholders (the file is rejected then anyway).
#[derive(Debug)]
pub(crate) struct TrunkDraft {
    pub(crate) trunk: Trunk,
    pub(crate) path: String,
    pub(crate) line: usize,
    pub(crate) name_line: usize,
    pub(crate) transport_line: usize,
    pub(crate) allow_line: usize,
    /// Number to the line of its route.
    pub(crate) route_lines: BTreeMap<String, usize>,
}

/// A network in CIDR notation, or a single address.
fn network(v: &Value<'_>) -> Result<(IpNet, bool), String> {
    let s = reader::string(v)?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((IpNet::from(ip), false));
    }
    let net: IpNet = s.parse().map_err(|_| {
        format!("invalid network `{s}`: expected CIDR such as \"192.0.2.0/24\" or \"2001:db8::/32\", or one address")
    })?;
    let host_bits = net != net.trunc();
    Ok((net.trunc(), host_bits))
}

/// A dialled number (the user part of the request URI), or a caller id.
pub(crate) fn check_number(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("the number must not be empty".into());
    }
    if !n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '-' | '_' | '.'))
    {
        return Err(format!(
            "`{n}` is not a dialled number: use digits, letters, `+`, `*`, `#`"
        ));
    }
    Ok(())
}

pub(crate) fn trunk(ctx: &mut Ctx, path: &str, v: &Value<'_>) -> Option<TrunkDraft> {
    let t = Table::new(ctx, path, v, TRUNK_KEYS)?;
    let name = t.req(ctx, "name", reader::name).unwrap_or_default();
    let pbx = t
        .req(ctx, "pbx", |v| {
            let a = reader::socket_addr(v)?;
            if a.ip().is_unspecified() || a.port() == 0 {
                Err(format!("`{a}`: give the PBX's own address and SIP port"))
            } else {
                Ok(a)
            }
        })
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    let transport = t
        .opt(ctx, "transport", |v| {
            reader::choice(v, &[("udp", Transport::Udp), ("tcp", Transport::Tcp)])
        })
        .unwrap_or_default();
    let allow_key = t.key("allow");
    let allow = t
        .list(ctx, "allow", |ctx, key, v| match network(v) {
            Ok((net, host_bits)) => {
                if host_bits {
                    ctx.warn(
                        ctx.line(v.span()),
                        key,
                        format!("host bits set: this means the network {net}"),
                    );
                }
                Some(net)
            }
            Err(p) => {
                ctx.error_at(v, key, p);
                None
            }
        })
        .unwrap_or_default();
    let username = t.opt(ctx, "username", reader::owned);
    let password = t.opt(ctx, "password", reader::owned);
    let credentials = match (username, password) {
        (Some(username), Some(password)) => Some(Credentials {
            username,
            password: Secret::new(password),
        }),
        (None, None) => None,
        (Some(_), None) if !t.has("password") => {
            t.error_on(ctx, "username", "set password too, or neither");
            None
        }
        (None, Some(_)) if !t.has("username") => {
            t.error_on(ctx, "password", "set username too, or neither");
            None
        }
        _ => None,
    };
    if allow.is_empty()
        && !t.has("username")
        && !t.has("password")
        && !ctx.has_errors_for(&allow_key)
    {
        t.error_on(
            ctx,
            "allow",
            "no allowed networks and no credentials: the trunk would take calls from anyone; \
             set allow, or username and password",
        );
    }
    let caller_id = t.opt(ctx, "caller_id", reader::owned);
    let options_interval = t
        .opt(ctx, "options_interval", reader::duration)
        .unwrap_or(Duration::from_secs(30));
    let mut route_lines = BTreeMap::new();
    let mut routes = BTreeMap::new();
    for e in t.entries(ctx, "routes").unwrap_or_default() {
        let key = format!("{}.routes.{}", t.path, e.name);
        let line = ctx.line(e.value.span());
        if let Err(p) = check_number(e.name) {
            ctx.error(line, &key, p);
            continue;
        }
        match reader::name(e.value) {
            Ok(queue) => {
                route_lines.insert(e.name.to_owned(), line);
                routes.insert(e.name.to_owned(), queue);
            }
            Err(p) => ctx.error(line, &key, format!("expected a queue name: {p}")),
        }
    }
    Some(TrunkDraft {
        path: t.path.clone(),
        line: t.line,
        name_line: t.line_of(ctx, "name"),
        transport_line: t.line_of(ctx, "transport"),
        allow_line: t.line_of(ctx, "allow"),
        route_lines,
        trunk: Trunk {
            name,
            pbx,
            transport,
            allow,
            credentials,
            caller_id,
            options_interval: (!options_interval.is_zero()).then_some(options_interval),
            routes,
        },
    })
}
