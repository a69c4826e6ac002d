//! Walking the spanned TOML tree: typed reads that report every problem (with its line) into
//! a [`Ctx`] instead of stopping at the first, and unknown-key detection per table.

use crate::diagnostic::{Diagnostic, LineIndex, Severity};
use crate::duration::parse_duration;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A spanned TOML value.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// Where diagnostics go while a file is read.
#[derive(Debug)]
pub(crate) struct Ctx {
    file: String,
    lines: LineIndex,
    pub(crate) diags: Vec<Diagnostic>,
    /// The file had syntax errors: the parser's placeholders (empty spans) are skipped
    /// silently, their error is already reported.
    recovering: bool,
    /// Line of every key read, by key path (`queue.support.relax`), to place problems that
    /// come back from elsewhere (the routing core's own checks).
    pub(crate) key_lines: HashMap<String, usize>,
}

impl Ctx {
    pub(crate) fn new(file: &str, source: &str) -> Self {
        Ctx {
            file: file.to_owned(),
            lines: LineIndex::new(source),
            diags: Vec::new(),
            recovering: false,
            key_lines: HashMap::new(),
        }
    }

    pub(crate) fn set_recovering(&mut self) {
        self.recovering = true;
    }

    pub(crate) fn line(&self, span: Range<usize>) -> usize {
        self.lines.line(span.start)
    }

    pub(crate) fn push(&mut self, severity: Severity, line: usize, key: &str, problem: String) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            key: key.to_owned(),
            problem,
            severity,
        });
    }

    pub(crate) fn error(&mut self, line: usize, key: &str, problem: impl Into<String>) {
        self.push(Severity::Error, line, key, problem.into());
    }

    pub(crate) fn warn(&mut self, line: usize, key: &str, problem: impl Into<String>) {
        self.push(Severity::Warning, line, key, problem.into());
    }

    /// An error at the line of `v`.
    pub(crate) fn error_at(&mut self, v: &Value<'_>, key: &str, problem: impl Into<String>) {
        let line = self.line(v.span());
        self.error(line, key, problem);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// Whether an error about exactly `key` has been reported.
    pub(crate) fn has_errors_for(&self, key: &str) -> bool {
        self.diags.iter().any(|d| d.is_error() && d.key == key)
    }

    fn is_placeholder(&self, v: &Value<'_>) -> bool {
        self.recovering && v.span().is_empty()
    }
}

/// One TOML table being read, with its key path and header line.
#[derive(Debug)]
pub(crate) struct Table<'a, 'i> {
    pub(crate) path: String,
    pub(crate) line: usize,
    map: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Reads `v` as the table at `path`, reporting every key not in `known`.
    pub(crate) fn new(ctx: &mut Ctx, path: &str, v: &'a Value<'i>, known: &[&str]) -> Option<Self> {
        let DeValue::Table(map) = v.get_ref() else {
            if !ctx.is_placeholder(v) {
                ctx.error_at(
                    v,
                    path,
                    format!("expected a table, found {}", v.get_ref().type_str()),
                );
            }
            return None;
        };
        let line = ctx.line(v.span());
        ctx.key_lines.insert(path.to_owned(), line);
        for (k, _) in map.iter() {
            if !known.contains(&k.get_ref().as_ref()) {
                let line = ctx.line(k.span());
                let key = if path.is_empty() {
                    k.get_ref().to_string()
                } else {
                    format!("{path}.{}", k.get_ref())
                };
                ctx.error(line, &key, unknown_key_message(known));
            }
        }
        Some(Table {
            path: path.to_owned(),
            line,
            map,
        })
    }

    /// The key path of `k` in this table.
    pub(crate) fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_owned()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    /// The value of `k`, if present (and not a parser placeholder).
    pub(crate) fn raw(&self, ctx: &mut Ctx, k: &str) -> Option<&'a Value<'i>> {
        let v = self.map.get(k)?;
        if ctx.is_placeholder(v) {
            return None;
        }
        let line = ctx.line(v.span());
        ctx.key_lines.insert(self.key(k), line);
        Some(v)
    }

    /// The line of `k`'s value, or of the table when `k` is absent.
    pub(crate) fn line_of(&self, ctx: &Ctx, k: &str) -> usize {
        self.map.get(k).map_or(self.line, |v| ctx.line(v.span()))
    }

    /// An error about `k`, at its line.
    pub(crate) fn error_on(&self, ctx: &mut Ctx, k: &str, problem: impl Into<String>) {
        let line = self.line_of(ctx, k);
        ctx.error(line, &self.key(k), problem);
    }

    /// A warning about `k`, at its line.
    pub(crate) fn warn_on(&self, ctx: &mut Ctx, k: &str, problem: impl Into<String>) {
        let line = self.line_of(ctx, k);
        ctx.warn(line, &self.key(k), problem);
    }

    /// Whether `k` is present at all (placeholders included).
    pub(crate) fn has(&self, k: &str) -> bool {
        self.map.get(k).is_some()
    }

    /// Reads optional `k` with a simple conversion; a failed conversion is reported at the
    /// value's line.
    pub(crate) fn opt<T>(
        &self,
        ctx: &mut Ctx,
        k: &str,
        conv: impl FnOnce(&'a Value<'i>) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.raw(ctx, k)?;
        match conv(v) {
            Ok(t) => Some(t),
            Err(problem) => {
                let key = self.key(k);
                ctx.error_at(v, &key, problem);
                None
            }
        }
    }

    /// Like [`Table::opt`], but a missing key is an error too.
    pub(crate) fn req<T>(
        &self,
        ctx: &mut Ctx,
        k: &str,
        conv: impl FnOnce(&'a Value<'i>) -> Result<T, String>,
    ) -> Option<T> {
        if !self.has(k) {
            let key = self.key(k);
            ctx.error(self.line, &key, "missing (required)");
            return None;
        }
        self.opt(ctx, k, conv)
    }

    /// Reads optional `k` as an array, converting each element and reporting each bad one at
    /// its own line. `None` when absent or not an array.
    pub(crate) fn list<T>(
        &self,
        ctx: &mut Ctx,
        k: &str,
        mut conv: impl FnMut(&mut Ctx, &str, &'a Value<'i>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let v = self.raw(ctx, k)?;
        let key = self.key(k);
        let DeValue::Array(items) = v.get_ref() else {
            ctx.error_at(
                v,
                &key,
                format!("expected an array, found {}", v.get_ref().type_str()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            if ctx.is_placeholder(item) {
                continue;
            }
            if let Some(t) = conv(ctx, &key, item) {
                out.push(t);
            }
        }
        Some(out)
    }

    /// Reads optional `k` as a table of `key = value` entries (skills, routes), converting
    /// each value; yields (key, key line, value).
    pub(crate) fn entries(&self, ctx: &mut Ctx, k: &str) -> Option<Vec<Entry<'a, 'i>>> {
        let v = self.raw(ctx, k)?;
        let DeValue::Table(map) = v.get_ref() else {
            let key = self.key(k);
            ctx.error_at(
                v,
                &key,
                format!("expected a table, found {}", v.get_ref().type_str()),
            );
            return None;
        };
        Some(
            map.iter()
                .filter(|(_, v)| !ctx.is_placeholder(v))
                .map(|(name, value)| Entry {
                    name: name.get_ref().as_ref(),
                    value,
                })
                .collect(),
        )
    }
}

/// One `key = value` of a free-form table.
#[derive(Debug)]
pub(crate) struct Entry<'a, 'i> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a Value<'i>,
}

fn unknown_key_message(known: &[&str]) -> String {
    format!("unknown key (expected one of: {})", known.join(", "))
}

/// `[[name]]` at the top level: its tables, each with the line of its header.
pub(crate) fn array_of_tables<'a, 'i>(
    ctx: &mut Ctx,
    root: &'a DeTable<'i>,
    name: &str,
) -> Vec<&'a Value<'i>> {
    let Some(v) = root.get(name) else {
        return Vec::new();
    };
    match v.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        other => {
            ctx.error_at(
                v,
                name,
                format!(
                    "expected an array of tables ([[{name}]]), found {}",
                    other.type_str()
                ),
            );
            Vec::new()
        }
    }
}

/// The path of element `i` of `[[kind]]`: `kind.NAME` when it has a usable name, else
/// `kind[i]`.
pub(crate) fn element_path(kind: &str, i: usize, v: &Value<'_>) -> String {
    match v
        .get_ref()
        .as_table()
        .and_then(|t| t.get("name"))
        .and_then(|n| n.get_ref().as_str())
    {
        Some(n) if check_name(n).is_ok() => format!("{kind}.{n}"),
        _ => format!("{kind}[{i}]"),
    }
}

// ---- conversions: each returns the problem in words ----

fn found(v: &Value<'_>) -> &'static str {
    v.get_ref().type_str()
}

pub(crate) fn string<'a>(v: &'a Value<'_>) -> Result<&'a str, String> {
    v.get_ref()
        .as_str()
        .ok_or_else(|| format!("expected a string, found {}", found(v)))
}

pub(crate) fn nonempty<'a>(v: &'a Value<'_>) -> Result<&'a str, String> {
    match string(v)? {
        "" => Err("must not be empty".into()),
        s => Ok(s),
    }
}

pub(crate) fn owned(v: &Value<'_>) -> Result<String, String> {
    nonempty(v).map(str::to_owned)
}

pub(crate) fn boolean(v: &Value<'_>) -> Result<bool, String> {
    v.get_ref()
        .as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", found(v)))
}

/// An integer in `min..=max`.
pub(crate) fn int<T: TryFrom<i64>>(v: &Value<'_>, min: i64, max: i64) -> Result<T, String> {
    let i = v
        .get_ref()
        .as_integer()
        .ok_or_else(|| format!("expected an integer, found {}", found(v)))?;
    let n = i64::from_str_radix(i.as_str(), i.radix())
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("must be between {min} and {max}, found {i}"))?;
    T::try_from(n).map_err(|_| format!("must be between {min} and {max}, found {i}"))
}

pub(crate) fn duration(v: &Value<'_>) -> Result<Duration, String> {
    let s = v.get_ref().as_str().ok_or_else(|| {
        format!(
            "expected a duration string such as \"15s\" or \"500ms\", found {}",
            found(v)
        )
    })?;
    parse_duration(s).map_err(|e| e.to_string())
}

pub(crate) fn socket_addr(v: &Value<'_>) -> Result<SocketAddr, String> {
    let s = string(v)?;
    s.parse().map_err(|_| {
        format!(
            "invalid address `{s}`: expected IP:PORT, e.g. \"127.0.0.1:5060\" or \"[::1]:5060\""
        )
    })
}

pub(crate) fn ip(v: &Value<'_>) -> Result<IpAddr, String> {
    let s = string(v)?;
    s.parse().map_err(|_| {
        format!("invalid IP address `{s}`: expected e.g. \"192.0.2.10\" or \"2001:db8::10\"")
    })
}

/// One of a fixed set of spellings.
pub(crate) fn choice<T: Copy>(v: &Value<'_>, options: &[(&str, T)]) -> Result<T, String> {
    let s = string(v)?;
    options
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<_> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            format!(
                "unknown value \"{s}\" (expected one of: {})",
                names.join(", ")
            )
        })
}

/// A name of a trunk, queue, agent or skill: used in SIP user parts, URLs and metric labels.
pub(crate) fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 64 {
        return Err(format!("`{s}` is longer than 64 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("`{s}`: use only letters, digits, `-`, `_` and `.`"));
    }
    Ok(())
}

pub(crate) fn name(v: &Value<'_>) -> Result<String, String> {
    let s = string(v)?;
    check_name(s)?;
    Ok(s.to_owned())
}
