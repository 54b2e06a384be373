//! Diagnostics: configuration errors with their file, line, column and key path.
//!
//! Every error found while reading a config is collected (not just the first) and
//! rendered one per line as `FILE:LINE:COL: key.path: message`.
//!
//! Key paths and messages quote what the file contains, which may hide terminal
//! escapes or bidirectional overrides: they are escaped
//! ([`regent_proto::text::escape_line`]) when recorded and again when shown.

use std::fmt;
use std::ops::Range;

use regent_proto::text::escape_line;

/// One configuration error, located in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the text came from (a file path, or a label such as `<demo>`).
    pub origin: String,
    /// 1-based line and column (in characters) of the offending text, when known.
    pub location: Option<(usize, usize)>,
    /// Dotted key path, e.g. `operations.firewall-open.params.ip`; empty for syntax errors.
    pub path: String,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl Diagnostic {
    /// 1-based line, or 0 when unknown.
    #[must_use]
    pub fn line(&self) -> usize {
        self.location.map_or(0, |(l, _)| l)
    }

    /// 1-based column, or 0 when unknown.
    #[must_use]
    pub fn column(&self) -> usize {
        self.location.map_or(0, |(_, c)| c)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_line(&self.origin))?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", escape_line(&self.path))?;
        }
        f.write_str(&escape_line(&self.message))
    }
}

/// All errors found in a config, in source order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The individual errors.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Number of errors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no error (never the case for a returned `Err`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one source text, turning byte spans into line:column.
pub(crate) struct Sink<'a> {
    origin: &'a str,
    text: &'a str,
    line_starts: Vec<usize>,
    pub(crate) diags: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(origin: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Sink {
            origin,
            text,
            line_starts,
            diags: Vec::new(),
        }
    }

    /// 1-based line and character column of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Records an error at `span` for key path `path`, both escaped.
    pub(crate) fn error(&mut self, span: Range<usize>, path: &str, message: impl Into<String>) {
        let location = Some(self.line_col(span.start));
        let message: String = message.into();
        self.diags.push(Diagnostic {
            origin: self.origin.to_string(),
            location,
            path: escape_line(path).into_owned(),
            message: escape_line(&message).into_owned(),
        });
    }

    /// Finishes: the diagnostics sorted by position (stable), or `Ok` when none.
    pub(crate) fn finish(mut self) -> Result<(), Diagnostics> {
        if self.diags.is_empty() {
            return Ok(());
        }
        self.diags.sort_by_key(|d| d.location);
        Err(Diagnostics(std::mem::take(&mut self.diags)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_and_lines() {
        let s = Sink::new("f", "ab\nçd\n\nx");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(1), (1, 2));
        assert_eq!(s.line_col(3), (2, 1));
        assert_eq!(s.line_col(5), (2, 2)); // after the 2-byte 'ç'
        assert_eq!(s.line_col(7), (3, 1));
        assert_eq!(s.line_col(8), (4, 1));
    }

    #[test]
    fn display_formats() {
        let d = Diagnostic {
            origin: "c.toml".into(),
            location: Some((3, 7)),
            path: "operations.x".into(),
            message: "bad".into(),
        };
        assert_eq!(d.to_string(), "c.toml:3:7: operations.x: bad");
        let d2 = Diagnostic {
            origin: "c.toml".into(),
            location: None,
            path: String::new(),
            message: "cannot read".into(),
        };
        assert_eq!(d2.to_string(), "c.toml: cannot read");
        assert_eq!(
            Diagnostics(vec![d, d2]).to_string(),
            "c.toml:3:7: operations.x: bad\nc.toml: cannot read"
        );
    }
}
