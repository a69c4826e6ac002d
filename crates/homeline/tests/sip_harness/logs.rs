//! homeline's log lines: collected from its stderr by reader threads, parsed as JSON, and
//! waited for with a time limit.

use serde_json::Value;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Log lines shown when a test fails.
pub const LOG_TAIL: usize = 80;
/// Characters shown of each of them (a raw 60 kB message is logged whole).
const LINE_LIMIT: usize = 1500;

/// One line homeline wrote to stderr (a JSON object when `log.format = "json"`).
#[derive(Debug, Clone)]
pub struct LogLine {
    pub raw: String,
    json: Option<Value>,
}

impl LogLine {
    fn new(raw: String) -> Self {
        let json = serde_json::from_str(&raw).ok();
        LogLine { raw, json }
    }

    /// The event's message: `fields.message` (tracing-subscriber's JSON layout) or a
    /// top-level `message` (its flattened layout).
    pub fn message(&self) -> Option<&str> {
        let j = self.json.as_ref()?;
        j.pointer("/fields/message")
            .or_else(|| j.get("message"))
            .and_then(Value::as_str)
    }

    /// Field `name` of the event (or, failing that, of its span) as a string.
    pub fn field(&self, name: &str) -> Option<String> {
        let j = self.json.as_ref()?;
        let v = j
            .get("fields")
            .and_then(|f| f.get(name))
            .or_else(|| j.get(name))
            .or_else(|| j.get("span").and_then(|s| s.get(name)))?;
        Some(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Field `name` as a whole number (0 when absent or not a number): counters such as the
    /// relay report's `pbx_forwarded`.
    pub fn count(&self, name: &str) -> u64 {
        self.field(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }

    /// `INFO`, `WARN`, ...
    pub fn level(&self) -> Option<&str> {
        self.json.as_ref()?.get("level").and_then(Value::as_str)
    }

    /// Whether this is the event `message` (exactly, or followed by more words) with each
    /// field equal to its value (ignoring ASCII case: `udp` matches `UDP`).
    pub fn is(&self, message: &str, fields: &[(&str, &str)]) -> bool {
        let Some(m) = self.message() else {
            return false;
        };
        let head = m.strip_prefix(message);
        let message_ok =
            head.is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':', ',', ';']));
        message_ok
            && fields.iter().all(|(k, v)| {
                self.field(k)
                    .is_some_and(|actual| actual.eq_ignore_ascii_case(v))
            })
    }
}

/// The lines homeline has written so far, filled by reader threads.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    inner: Arc<(Mutex<Vec<LogLine>>, Condvar)>,
}

impl Logs {
    fn push(&self, line: String) {
        let (lines, changed) = &*self.inner;
        lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(LogLine::new(line));
        changed.notify_all();
    }

    /// Collects `stream` line by line on a thread of its own.
    pub(crate) fn collect(&self, stream: impl Read + Send + 'static) {
        let logs = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                match line {
                    Ok(l) => logs.push(l),
                    Err(_) => break,
                }
            }
        });
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many lines so far: a position to wait from.
    pub fn len(&self) -> usize {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The lines so far that `pred` accepts.
    pub fn matching(&self, pred: impl Fn(&LogLine) -> bool) -> Vec<LogLine> {
        self.lines().into_iter().filter(|l| pred(l)).collect()
    }

    /// Waits up to `timeout` for a line at index `from` or later that `pred` accepts;
    /// returns its index and the line.
    pub fn wait_for(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&LogLine) -> bool,
    ) -> Option<(usize, LogLine)> {
        let deadline = Instant::now() + timeout;
        let (lines, changed) = &*self.inner;
        let mut guard = lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = from;
        loop {
            if let Some(i) = (next..guard.len()).find(|&i| pred(&guard[i])) {
                return Some((i, guard[i].clone()));
            }
            next = guard.len().max(from);
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits up to `timeout` until `cond` holds for all the lines so far.
    pub fn wait_until(&self, timeout: Duration, cond: impl Fn(&[LogLine]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lines, changed) = &*self.inner;
        let mut guard = lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if cond(&guard) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The last `n` lines, for a failure message.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        let skip = lines.len().saturating_sub(n);
        let mut out = String::new();
        for l in &lines[skip..] {
            let raw = l.raw.as_str();
            match raw.char_indices().nth(LINE_LIMIT) {
                Some((cut, _)) => {
                    let _ = writeln!(out, "    {}... ({} bytes)", &raw[..cut], raw.len());
                }
                None => {
                    let _ = writeln!(out, "    {raw}");
                }
            }
        }
        out
    }
}
