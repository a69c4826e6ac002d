//! Diagnostics: one problem (or warning) in a configuration file, with its line and key.

use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The configuration is accepted, but probably not what was meant (or unsafe).
    Warning,
    /// The configuration is rejected.
    Error,
}

/// One problem in a configuration file.
///
/// Displayed as `file:line: key: problem`, or `file:line: key: warning: problem` for a
/// warning. `line` is 1-based; `0` means the problem is about the file as a whole (it could
/// not be read), and the line part is left out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// The file, as it was named to [`crate::load`] or [`crate::parse`].
    pub file: String,
    /// 1-based line, or 0 for the whole file.
    pub line: usize,
    /// Where in the configuration: `sip.udp`, `queue.support.ring_timeout`, `agent[2].name`.
    pub key: String,
    /// What is wrong, in words.
    pub problem: String,
    pub severity: Severity,
}

impl Diagnostic {
    /// Whether this diagnostic rejects the configuration.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        if self.severity == Severity::Warning {
            f.write_str(" warning:")?;
        }
        write!(f, " {}", self.problem)
    }
}

/// A configuration that was rejected: every diagnostic found, errors and warnings, in file
/// order. At least one of them is an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl ConfigErrors {
    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().count();
        write!(
            f,
            "{n} configuration error{}",
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.0 {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

/// Byte offset to 1-based line.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based() {
        let idx = LineIndex::new("a\nbc\n\nd");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(1), 1);
        assert_eq!(idx.line(2), 2);
        assert_eq!(idx.line(5), 3);
        assert_eq!(idx.line(6), 4);
        assert_eq!(idx.line(100), 4);
    }

    #[test]
    fn display_formats() {
        let mut d = Diagnostic {
            file: "h.toml".into(),
            line: 3,
            key: "sip.udp".into(),
            problem: "bad".into(),
            severity: Severity::Error,
        };
        assert_eq!(d.to_string(), "h.toml:3: sip.udp: bad");
        d.severity = Severity::Warning;
        assert_eq!(d.to_string(), "h.toml:3: sip.udp: warning: bad");
        d.line = 0;
        d.key.clear();
        assert_eq!(d.to_string(), "h.toml: warning: bad");
    }
}
