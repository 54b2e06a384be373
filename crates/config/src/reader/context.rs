//! The state of one reading and the helpers both passes share: where
//! diagnostics go, key paths, suggestions, and the checks of common values
//! (ranges, durations, sizes, paths, users and groups, choices).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use toml::de::DeValue;
use toml::Spanned;

use super::raw::{List, Period, Scalar, Size, Who, OUT_OF_RANGE};
use crate::diag::Sink;
use crate::paths::normalize_path;
use crate::units::{parse_duration, parse_size};
use regent_model::Account;

/// For a float or boolean where the serde pass lets none through.
pub(super) const UNEXPECTED: &str = "unexpected value";

/// Joins a key path, quoting keys that are not bare TOML keys.
pub(super) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let k = if bare {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    };
    if path.is_empty() {
        k
    } else {
        format!("{path}.{k}")
    }
}

/// The path of element `i` of the list at `path`.
pub(super) fn item(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Edit distance between two short strings (Levenshtein, by characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to a misspelt one, if it is close enough to suggest.
pub(super) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The reading of one config text: where diagnostics go, and what the semantic
/// pass needs from the text besides the raw declarations.
pub(super) struct Reader<'a> {
    pub(super) sink: Sink<'a>,
    /// The text, to see how an integer was written (`0o660` or `660`).
    text: &'a str,
    /// Each value of the document as parsed, by its span (parameter tables are
    /// read from it in a second step).
    values: HashMap<(usize, usize), &'a Spanned<DeValue<'a>>>,
    /// The span of each key, by the span of its value.
    keys: HashMap<(usize, usize), Range<usize>>,
    /// Key paths of entries the serde pass refused (and reported), with the
    /// spans of their keys: the semantic pass does not call them missing, and
    /// checks that only need the key to be there still apply.
    pub(super) failed: BTreeMap<String, Range<usize>>,
    /// Key paths of lists the serde pass refused an element of (a subset of
    /// `failed`): their other elements were there.
    pub(super) failed_items: BTreeSet<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(origin: &'a str, text: &'a str, tree: &'a Spanned<DeValue<'a>>) -> Self {
        let mut r = Reader {
            sink: Sink::new(origin, text),
            text,
            values: HashMap::new(),
            keys: HashMap::new(),
            failed: BTreeMap::new(),
            failed_items: BTreeSet::new(),
        };
        r.index(None, tree);
        r
    }

    /// Records `v` and the values inside it by span, and the key of each.
    fn index(&mut self, key: Option<Range<usize>>, v: &'a Spanned<DeValue<'a>>) {
        let s = v.span();
        self.values.entry((s.start, s.end)).or_insert(v);
        if let Some(k) = key {
            self.keys.entry((s.start, s.end)).or_insert(k);
        }
        match v.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .for_each(|(k, val)| self.index(Some(k.span()), val)),
            DeValue::Array(a) => a.iter().for_each(|el| self.index(None, el)),
            _ => {}
        }
    }

    pub(super) fn err(&mut self, span: Range<usize>, path: &str, msg: impl Into<String>) {
        self.sink.error(span, path, msg);
    }

    /// The number of errors reported so far.
    pub(super) fn errors(&self) -> usize {
        self.sink.diags.len()
    }

    /// True when an error was reported since there were `before`, or the serde
    /// pass refused something inside the table at `path`.
    pub(super) fn errors_since(&self, before: usize, path: &str) -> bool {
        self.errors() != before
            || self
                .failed
                .range(path.to_string()..)
                .take_while(|(p, _)| p.starts_with(path))
                .any(|(p, _)| p[path.len()..].starts_with(['.', '[']))
    }

    /// The span of the key whose value is `v` (the value's own span if none).
    pub(super) fn key_span<T>(&self, v: &Spanned<T>) -> Range<usize> {
        let s = v.span();
        self.keys.get(&(s.start, s.end)).cloned().unwrap_or(s)
    }

    /// The parsed value at exactly `span`.
    pub(super) fn value_at(&self, span: &Range<usize>) -> Option<&'a Spanned<DeValue<'a>>> {
        self.values.get(&(span.start, span.end)).copied()
    }

    /// The digits (without prefix) and radix of the integer written at `span`.
    pub(super) fn integer_at(&self, span: &Range<usize>) -> (String, u32) {
        match self.value_at(span).map(Spanned::get_ref) {
            Some(DeValue::Integer(i)) => (i.as_str().to_string(), i.radix()),
            _ => (
                self.text.get(span.clone()).unwrap_or_default().to_string(),
                10,
            ),
        }
    }

    /// The span of the key at `path`, whose value is `v`: there, or refused by
    /// the serde pass.
    pub(super) fn key_of<T>(&self, v: &Option<Spanned<T>>, path: &str) -> Option<Range<usize>> {
        match v {
            Some(v) => Some(self.key_span(v)),
            None => self.failed.get(path).cloned(),
        }
    }

    /// Reports `key` missing from the table at `path` (whose key is at `span`),
    /// unless it is there but was refused already.
    pub(super) fn missing(&mut self, span: Range<usize>, path: &str, key: &str) {
        if !self.failed.contains_key(&join(path, key)) {
            self.err(span, path, format!("missing required key '{key}'"));
        }
    }

    /// An integer in `min..=max`, converted to `T`.
    pub(super) fn int_in<T: TryFrom<i64>>(
        &mut self,
        v: &Spanned<i64>,
        path: &str,
        min: i64,
        max: i64,
    ) -> Option<T> {
        let n = *v.get_ref();
        if n < min || n > max {
            self.err(v.span(), path, format!("must be between {min} and {max}"));
            return None;
        }
        T::try_from(n).ok()
    }

    pub(super) fn duration(
        &mut self,
        v: &Spanned<Period>,
        path: &str,
        min: Duration,
    ) -> Option<Duration> {
        let r = match &v.get_ref().0 {
            Scalar::Str(s) => match parse_duration(s) {
                Ok(d) if d < min => Err(format!("must be at least {}ms", min.as_millis())),
                r => r,
            },
            Scalar::Int(_) | Scalar::Big(_) => {
                let (i, _) = self.integer_at(&v.span());
                Err(format!(
                    "a duration needs a unit: write e.g. \"{i}s\" or \"{i}ms\""
                ))
            }
            Scalar::Float(_) | Scalar::Bool(_) => Err(UNEXPECTED.into()),
        };
        r.map_err(|e| self.err(v.span(), path, e)).ok()
    }

    pub(super) fn size(&mut self, v: &Spanned<Size>, path: &str, min: u64) -> Option<u64> {
        let r = match &v.get_ref().0 {
            Scalar::Str(s) => parse_size(s),
            Scalar::Int(i) => u64::try_from(*i).map_err(|_| "a size cannot be negative".into()),
            Scalar::Big(_) => Err(OUT_OF_RANGE.into()),
            Scalar::Float(_) | Scalar::Bool(_) => Err(UNEXPECTED.into()),
        };
        let r = r.and_then(|n| {
            if n < min {
                Err(format!("must be at least {min} bytes"))
            } else {
                Ok(n)
            }
        });
        r.map_err(|e| self.err(v.span(), path, e)).ok()
    }

    pub(super) fn abs_path(&mut self, v: &Spanned<String>, path: &str) -> Option<PathBuf> {
        normalize_path(v.get_ref())
            .map_err(|e| self.err(v.span(), path, format!("path {e}")))
            .ok()
    }

    pub(super) fn principal(&mut self, v: &Spanned<Who>, path: &str) -> Option<Account> {
        let r = match &v.get_ref().0 {
            Scalar::Str(s) => Account::parse(s),
            Scalar::Int(n) => u32::try_from(*n)
                .ok()
                .and_then(Account::from_id)
                .ok_or_else(|| format!("id {n} is out of range")),
            Scalar::Big(_) => Err(OUT_OF_RANGE.into()),
            Scalar::Float(_) | Scalar::Bool(_) => Err(UNEXPECTED.into()),
        };
        r.map_err(|e| self.err(v.span(), path, e)).ok()
    }

    /// Every principal of a list, or `None` if one is wrong (each reported).
    pub(super) fn principals(
        &mut self,
        v: &Spanned<List<Who>>,
        path: &str,
    ) -> Option<Vec<Account>> {
        let items = v.get_ref();
        let out: Vec<Account> = items
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.principal(p, &item(path, i)))
            .collect();
        (out.len() == items.len()).then_some(out)
    }

    /// A string that must be one of `choices`.
    pub(super) fn choice<T: Copy>(
        &mut self,
        v: &Spanned<String>,
        path: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = v.get_ref();
        match choices.iter().find(|(n, _)| n == s) {
            Some((_, c)) => Some(*c),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.err(
                    v.span(),
                    path,
                    format!(
                        "unknown value '{s}' (expected one of: {})",
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("sockt", "socket"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("sockt", &["socket", "store"]), Some("socket"));
        assert_eq!(
            closest("comand", &["command", "description"]),
            Some("command")
        );
        assert_eq!(closest("bogus", &["service", "operations"]), None);
        assert_eq!(closest("x", &["ab"]), None);
        assert_eq!(closest("a", &["ab"]), Some("ab"));
        assert_eq!(join("operations", "regent.x"), "operations.\"regent.x\"");
        assert_eq!(join("", "service"), "service");
    }
}
