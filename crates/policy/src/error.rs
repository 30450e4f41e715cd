//! Validation diagnostics that name the file, line and field at fault.

use std::fmt;

use thiserror::Error;

/// One problem found in a policy or a number list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// File the problem is in (as the operator named it).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted path of the field at fault, e.g. `rule[2].source` or `lists.robocallers`.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A policy that cannot be installed, with every problem found.
#[derive(Debug, Clone, Error)]
pub struct PolicyError {
    /// The problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        writeln!(f, "policy is invalid ({n} problem{}):", if n == 1 { "" } else { "s" })?;
        for d in &self.diagnostics {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

impl PolicyError {
    /// An error with one diagnostic.
    pub fn single(file: &str, line: Option<usize>, field: &str, message: impl Into<String>) -> Self {
        PolicyError {
            diagnostics: vec![Diagnostic {
                file: file.to_string(),
                line,
                field: field.to_string(),
                message: message.into(),
            }],
        }
    }
}

/// Maps byte offsets of a source text to 1-based line numbers.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// Collects diagnostics for one file.
pub(crate) struct Diagnostics<'a> {
    pub(crate) file: &'a str,
    lines: LineIndex,
    pub(crate) list: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(file: &'a str, text: &str) -> Self {
        Diagnostics { file, lines: LineIndex::new(text), list: Vec::new() }
    }

    /// Records a problem at byte offset `at` (None when the position is unknown).
    pub(crate) fn push(&mut self, at: Option<usize>, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Diagnostic {
            file: self.file.to_string(),
            line: at.map(|o| self.lines.line(o)),
            field: field.into(),
            message: message.into(),
        });
    }

    /// The 1-based line of byte `offset` in this file.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }

    /// Adds already-built diagnostics (e.g. from a list file).
    pub(crate) fn extend(&mut self, more: Vec<Diagnostic>) {
        self.list.extend(more);
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, PolicyError> {
        if self.list.is_empty() { Ok(value) } else { Err(PolicyError { diagnostics: self.list }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_from_one() {
        let idx = LineIndex::new("a\nbb\n\nc");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(1), 1);
        assert_eq!(idx.line(2), 2);
        assert_eq!(idx.line(5), 3);
        assert_eq!(idx.line(6), 4);
    }

    #[test]
    fn diagnostic_display_names_file_line_field() {
        let d = Diagnostic {
            file: "p.toml".into(),
            line: Some(7),
            field: "rule[1].source".into(),
            message: "unknown list \"x\"".into(),
        };
        assert_eq!(d.to_string(), "p.toml:7: rule[1].source: unknown list \"x\"");
    }
}
