//! The single-table sections: `[sip]`, `[http]`, `[media]`, `[log]` and `[defaults]`.

use crate::duration::format_duration;
use crate::model::{Defaults, DigestAlgorithm, Host, Http, Log, LogFormat, Media, Secret, Sip};
use crate::reader::{self, Ctx, Table, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub(crate) const SIP_KEYS: &[&str] = &[
    "udp",
    "tcp",
    "domain",
    "public_address",
    "user_agent",
    "t1",
    "nonce_ttl",
    "qualify_interval",
    "min_expires",
    "max_expires",
    "default_expires",
    "max_message_size",
    "digest_algorithms",
    "rate_limit",
    "rate_burst",
];
pub(crate) const HTTP_KEYS: &[&str] = &["listen", "admin_token"];
pub(crate) const MEDIA_KEYS: &[&str] = &["public_ip", "rtp_port_min", "rtp_port_max", "webrtc_udp"];
pub(crate) const LOG_KEYS: &[&str] = &["format", "level"];
pub(crate) const DEFAULTS_KEYS: &[&str] = &["ready_on_register"];

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A listen address list; each bad or repeated address is reported at its own line.
fn listen_list(t: &Table<'_, '_>, ctx: &mut Ctx, k: &str, default: SocketAddr) -> Vec<SocketAddr> {
    let Some(list) = t.list(ctx, k, |ctx, key, v| match reader::socket_addr(v) {
        Ok(a) => Some((a, v)),
        Err(p) => {
            ctx.error_at(v, key, p);
            None
        }
    }) else {
        return vec![default];
    };
    let mut out: Vec<SocketAddr> = Vec::with_capacity(list.len());
    for (addr, v) in list {
        if out.contains(&addr) {
            ctx.error_at(v, &t.key(k), format!("`{addr}` is listed twice"));
        } else {
            out.push(addr);
        }
    }
    out
}

/// An IP address or DNS name.
pub(crate) fn host(v: &Value<'_>) -> Result<Host, String> {
    let s = reader::string(v)?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if s.len() <= 253 && s.split('.').all(label_ok) {
        Ok(Host::Name(s.to_ascii_lowercase()))
    } else {
        Err(format!("`{s}` is neither an IP address nor a host name"))
    }
}

fn not_unspecified(ip: IpAddr) -> Result<IpAddr, String> {
    if ip.is_unspecified() {
        Err(format!(
            "`{ip}` is not an address peers can reach: give this host's own address"
        ))
    } else {
        Ok(ip)
    }
}

/// A duration in `min..=max`.
fn duration_in(min: Duration, max: Duration) -> impl Fn(&Value<'_>) -> Result<Duration, String> {
    move |v| {
        let d = reader::duration(v)?;
        if (min..=max).contains(&d) {
            Ok(d)
        } else {
            Err(format!(
                "must be between {} and {}, found {}",
                format_duration(min),
                format_duration(max),
                format_duration(d)
            ))
        }
    }
}

/// A registration expiry: whole seconds (the `Expires` header counts seconds), at least 1s.
fn expiry(v: &Value<'_>) -> Result<Duration, String> {
    let d = duration_in(Duration::from_secs(1), Duration::from_secs(u32::MAX.into()))(v)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "must be a whole number of seconds (Expires counts seconds), found {}",
            format_duration(d)
        ));
    }
    Ok(d)
}

/// `min_expires`, `max_expires` and `default_expires`, with `min <= default <= max`.
fn expires(ctx: &mut Ctx, t: &Table<'_, '_>) -> (Duration, Duration, Duration) {
    const HOUR: Duration = Duration::from_secs(3600);
    let min = t.opt(ctx, "min_expires", expiry);
    let max = t.opt(ctx, "max_expires", expiry);
    let default = t.opt(ctx, "default_expires", expiry);
    let (min_v, max_v) = (min.unwrap_or(Duration::from_secs(60)), max.unwrap_or(HOUR));
    let f = format_duration;
    // A bound that failed to read is reported already; comparing its default would add noise.
    let bad = |ctx: &Ctx, k: &str| ctx.has_errors_for(&t.key(k));
    if bad(ctx, "min_expires") || bad(ctx, "max_expires") || bad(ctx, "default_expires") {
        return (min_v, max_v, default.unwrap_or(HOUR.min(max_v).max(min_v)));
    }
    if min_v > max_v {
        let k = if t.has("min_expires") {
            "min_expires"
        } else {
            "max_expires"
        };
        t.error_on(
            ctx,
            k,
            format!(
                "min_expires ({}) is above max_expires ({})",
                f(min_v),
                f(max_v)
            ),
        );
    }
    // Left out, the default follows the bounds: one hour, or the nearest bound.
    let default_v = default.unwrap_or_else(|| HOUR.min(max_v).max(min_v));
    if default.is_some() && !(min_v..=max_v).contains(&default_v) && min_v <= max_v {
        t.error_on(
            ctx,
            "default_expires",
            format!(
                "{} is outside min_expires..max_expires ({}..{})",
                f(default_v),
                f(min_v),
                f(max_v)
            ),
        );
    }
    (min_v, max_v, default_v)
}

/// `digest_algorithms`: a non-empty list without repeats, in order of preference.
fn digest_algorithms(ctx: &mut Ctx, t: &Table<'_, '_>) -> Vec<DigestAlgorithm> {
    const CHOICES: &[(&str, DigestAlgorithm)] = &[
        ("SHA-256", DigestAlgorithm::Sha256),
        ("MD5", DigestAlgorithm::Md5),
    ];
    let Some(list) = t.list(
        ctx,
        "digest_algorithms",
        |ctx, key, v| match reader::choice(v, CHOICES) {
            Ok(a) => Some((a, v)),
            Err(p) => {
                ctx.error_at(v, key, p);
                None
            }
        },
    ) else {
        return vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5];
    };
    let key = t.key("digest_algorithms");
    let mut out: Vec<DigestAlgorithm> = Vec::with_capacity(list.len());
    for (a, v) in list {
        if out.contains(&a) {
            ctx.error_at(v, &key, format!("\"{}\" is listed twice", a.as_str()));
        } else {
            out.push(a);
        }
    }
    if out.is_empty() && !ctx.has_errors_for(&key) {
        t.error_on(
            ctx,
            "digest_algorithms",
            "must not be empty: list \"SHA-256\" and/or \"MD5\"",
        );
    }
    out
}

pub(crate) fn sip(ctx: &mut Ctx, t: &Table<'_, '_>) -> Sip {
    let default = SocketAddr::new(LOOPBACK, 5060);
    let udp = listen_list(t, ctx, "udp", default);
    let tcp = listen_list(t, ctx, "tcp", default);
    let public_address = t
        .opt(ctx, "public_address", |v| match host(v)? {
            Host::Ip(ip) => not_unspecified(ip).map(Host::Ip),
            h => Ok(h),
        })
        .unwrap_or(Host::Ip(LOOPBACK));
    let domain = t
        .opt(ctx, "domain", |v| host(v).map(|h| h.to_string()))
        .unwrap_or_else(|| public_address.to_string());
    let user_agent = t
        .opt(ctx, "user_agent", reader::owned)
        .unwrap_or_else(|| "homeline".into());
    let t1 = t
        .opt(
            ctx,
            "t1",
            duration_in(Duration::from_millis(10), Duration::from_secs(10)),
        )
        .unwrap_or(Duration::from_millis(500));
    let nonce_ttl = t
        .opt(
            ctx,
            "nonce_ttl",
            duration_in(Duration::from_secs(1), Duration::from_secs(3600)),
        )
        .unwrap_or(Duration::from_secs(300));
    let qualify_interval = t
        .opt(ctx, "qualify_interval", |v| {
            let d = reader::duration(v)?;
            if d.is_zero() || (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) {
                Ok(d)
            } else {
                Err(format!(
                    "must be 0s (off) or between 1s and 1h, found {}",
                    format_duration(d)
                ))
            }
        })
        .unwrap_or(Duration::from_secs(30));
    let (min_expires, max_expires, default_expires) = expires(ctx, t);
    let max_message_size = t
        .opt(ctx, "max_message_size", |v| {
            reader::int::<usize>(v, 512, 65535)
        })
        .unwrap_or(65535);
    let digest_algorithms = digest_algorithms(ctx, t);
    let rate_limit = t
        .opt(ctx, "rate_limit", |v| reader::int::<u32>(v, 0, 100_000))
        .unwrap_or(50);
    let rate_burst = t
        .opt(ctx, "rate_burst", |v| reader::int::<u32>(v, 1, 1_000_000))
        .unwrap_or(200);
    if rate_limit == 0 && t.has("rate_burst") {
        t.warn_on(
            ctx,
            "rate_burst",
            "has no effect: rate_limit = 0 turns the limit off",
        );
    }
    Sip {
        udp,
        tcp,
        domain,
        public_address,
        user_agent,
        t1,
        nonce_ttl,
        qualify_interval,
        min_expires,
        max_expires,
        default_expires,
        max_message_size,
        digest_algorithms,
        rate_limit,
        rate_burst,
    }
}

pub(crate) fn http(ctx: &mut Ctx, t: &Table<'_, '_>) -> Http {
    let listen = t
        .opt(ctx, "listen", reader::socket_addr)
        .unwrap_or_else(|| SocketAddr::new(LOOPBACK, 8080));
    let admin_token = t.opt(ctx, "admin_token", reader::owned);
    if admin_token.as_ref().is_some_and(|token| token.len() < 16) {
        t.warn_on(
            ctx,
            "admin_token",
            "shorter than 16 characters: easy to guess",
        );
    }
    Http {
        listen,
        admin_token: admin_token.map(Secret::new),
    }
}

pub(crate) fn media(ctx: &mut Ctx, t: &Table<'_, '_>) -> Media {
    let public_ip = t
        .opt(ctx, "public_ip", |v| {
            reader::ip(v).and_then(not_unspecified)
        })
        .unwrap_or(LOOPBACK);
    let min = t.opt(ctx, "rtp_port_min", |v| reader::int::<u16>(v, 1024, 65535));
    let max = t.opt(ctx, "rtp_port_max", |v| reader::int::<u16>(v, 1024, 65535));
    let (rtp_port_min, rtp_port_max) = (min.unwrap_or(20000), max.unwrap_or(20999));
    if rtp_port_min > rtp_port_max {
        t.error_on(
            ctx,
            "rtp_port_max",
            format!("{rtp_port_max} is below rtp_port_min ({rtp_port_min}): the range is empty"),
        );
    }
    let webrtc_udp = t
        .opt(ctx, "webrtc_udp", reader::socket_addr)
        .unwrap_or_else(|| SocketAddr::new(LOOPBACK, 3478));
    if (rtp_port_min..=rtp_port_max).contains(&webrtc_udp.port()) {
        t.error_on(
            ctx,
            "webrtc_udp",
            format!(
                "port {} is inside the RTP port range {rtp_port_min}-{rtp_port_max}",
                webrtc_udp.port()
            ),
        );
    }
    Media {
        public_ip,
        rtp_port_min,
        rtp_port_max,
        webrtc_udp,
    }
}

/// A `tracing` filter directive list: `LEVEL`, `TARGET=LEVEL` or `TARGET`, comma-separated.
fn log_filter(v: &Value<'_>) -> Result<String, String> {
    let s = reader::nonempty(v)?;
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l));
    let is_target = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
    };
    for part in s.split(',').map(str::trim) {
        let ok = match part.split_once('=') {
            Some((target, level)) => is_target(target) && is_level(level),
            None => is_level(part) || is_target(part),
        };
        if !ok {
            return Err(format!(
                "invalid filter `{part}`: expected a level (trace, debug, info, warn, error, off) \
                 or TARGET=LEVEL, comma-separated"
            ));
        }
    }
    Ok(s.to_owned())
}

pub(crate) fn log(ctx: &mut Ctx, t: &Table<'_, '_>) -> Log {
    let format = t
        .opt(ctx, "format", |v| {
            reader::choice(v, &[("json", LogFormat::Json), ("text", LogFormat::Text)])
        })
        .unwrap_or_default();
    let level = t
        .opt(ctx, "level", log_filter)
        .unwrap_or_else(|| "info".into());
    Log { format, level }
}

pub(crate) fn defaults(ctx: &mut Ctx, t: &Table<'_, '_>) -> Defaults {
    Defaults {
        ready_on_register: t
            .opt(ctx, "ready_on_register", reader::boolean)
            .unwrap_or(true),
    }
}
