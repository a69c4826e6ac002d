//! Durations as written in the configuration: `"500ms"`, `"15s"`, `"2m"`, `"1h"`, or a sum
//! of such parts (`"1m30s"`).

use std::time::Duration;

/// A string that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{input}`: {reason} (write e.g. \"500ms\", \"15s\", \"2m\", \"1h\" or \"1m30s\")"
)]
pub struct InvalidDuration {
    input: String,
    reason: &'static str,
}

/// Parses `"500ms"`, `"15s"`, `"2m"`, `"1h"` and sums of them such as `"1h30m"`. Units are
/// `ms`, `s`, `m` and `h`; every number needs one. `"0s"` is zero.
pub fn parse_duration(input: &str) -> Result<Duration, InvalidDuration> {
    let err = |reason| InvalidDuration {
        input: input.to_owned(),
        reason,
    };
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(err("empty"));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err("expected a number followed by a unit"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| err("too large"))?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it (`"15s"`, `"1m30s"`, `"250ms"`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    let ms = d.subsec_millis();
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let ok = |s: &str| parse_duration(s).ok();
        assert_eq!(ok("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(ok("15s"), Some(Duration::from_secs(15)));
        assert_eq!(ok("2m"), Some(Duration::from_secs(120)));
        assert_eq!(ok("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(ok("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(ok("0s"), Some(Duration::ZERO));
        assert_eq!(ok(" 5s "), Some(Duration::from_secs(5)));
    }

    #[test]
    fn rejects_junk_with_a_reason() {
        for (s, why) in [
            ("", "empty"),
            ("15", "missing unit"),
            ("s", "expected a number"),
            ("1.5s", "unknown unit"),
            ("5 s", "unknown unit"),
            ("3d", "unknown unit"),
            ("-1s", "expected a number"),
            ("99999999999999999999s", "number too large"),
            ("9999999999999999999h", "too large"),
        ] {
            let e = parse_duration(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(why), "{s:?}: {e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["0s", "250ms", "15s", "2m", "1h", "1m30s", "1h0m5s"] {
            let d = parse_duration(s).ok();
            assert_eq!(
                d.map(format_duration).and_then(|f| parse_duration(&f).ok()),
                d
            );
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
