//! The TOML reader: walks the spanned TOML tree, builds the typed [`Config`] and
//! reports every problem (unknown keys, wrong types, bad values, cross-checks) with
//! its line, column and key path. No serde: a hand walk lets us report all errors.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{Diagnostics, Sink};
use crate::model::*;
use crate::net::{check_email, check_hostname};
use crate::param::{
    canonical_json, IpVersion, ParamKind, ParamSpec, Pattern, DEFAULT_STRING_MAX_LEN,
};
use crate::paths::normalize_path;
use crate::template::{is_valid_param_name, Placeholder, Template};
use crate::units::{check_mode, parse_duration, parse_mode, parse_size};
use regent_model::{Account, Capability, RunAs, SmtpSecurity};

mod exec;
mod operation;
mod params;
mod service;

use exec::read_exec;
use operation::read_operation;
use params::read_param;
use service::read_service;

type Val<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["service", "operations"];

/// Joins a key path, quoting keys that are not bare TOML keys.
fn join(path: &str, key: &str) -> String {
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

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A key and its value, with the key path.
#[derive(Clone)]
struct Field<'t, 'i> {
    path: String,
    key_span: Range<usize>,
    val: &'t Val<'i>,
}

impl Field<'_, '_> {
    fn span(&self) -> Range<usize> {
        self.val.span()
    }
    fn value(&self) -> &DeValue<'_> {
        self.val.get_ref()
    }
}

struct Entry<'t, 'i> {
    key: &'t str,
    key_span: Range<usize>,
    val: &'t Val<'i>,
    used: Cell<bool>,
}

/// A table being read: tracks which keys were consumed to report unknown ones.
struct Tbl<'t, 'i> {
    path: String,
    key_span: Range<usize>,
    entries: Vec<Entry<'t, 'i>>,
    known: &'static [&'static str],
}

impl<'t, 'i> Tbl<'t, 'i> {
    fn new(
        path: String,
        key_span: Range<usize>,
        t: &'t DeTable<'i>,
        known: &'static [&'static str],
    ) -> Self {
        let entries = t
            .iter()
            .map(|(k, v)| Entry {
                key: k.get_ref().as_ref(),
                key_span: k.span(),
                val: v,
                used: Cell::new(false),
            })
            .collect();
        Tbl {
            path,
            key_span,
            entries,
            known,
        }
    }

    /// Takes a known key.
    fn get(&self, key: &str) -> Option<Field<'t, 'i>> {
        debug_assert!(self.known.contains(&key), "{key} not in known list");
        let e = self.entries.iter().find(|e| e.key == key)?;
        e.used.set(true);
        Some(Field {
            path: join(&self.path, key),
            key_span: e.key_span.clone(),
            val: e.val,
        })
    }

    /// All entries as fields (for tables with free-form keys).
    fn all(&self) -> Vec<(&'t str, Field<'t, 'i>)> {
        self.entries
            .iter()
            .map(|e| {
                e.used.set(true);
                (
                    e.key,
                    Field {
                        path: join(&self.path, e.key),
                        key_span: e.key_span.clone(),
                        val: e.val,
                    },
                )
            })
            .collect()
    }

    /// Reports every key not taken.
    fn finish(self, r: &mut Reader<'_>) {
        for e in self.entries.iter().filter(|e| !e.used.get()) {
            r.sink.error(
                e.key_span.clone(),
                &join(&self.path, e.key),
                match closest(e.key, self.known) {
                    Some(k) => format!("unknown key '{}' (did you mean '{k}'?)", e.key),
                    None => format!(
                        "unknown key '{}' (expected one of: {})",
                        e.key,
                        self.known.join(", ")
                    ),
                },
            );
        }
    }
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
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

struct Reader<'a> {
    sink: Sink<'a>,
}

impl Reader<'_> {
    fn err(&mut self, span: Range<usize>, path: &str, msg: impl Into<String>) {
        self.sink.error(span, path, msg);
    }

    fn errors(&self) -> usize {
        self.sink.diags.len()
    }

    fn wrong_type(&mut self, f: &Field<'_, '_>, expected: &str) {
        let found = type_name(f.value());
        self.err(
            f.span(),
            &f.path,
            format!("expected {expected}, found {found}"),
        );
    }

    fn table<'t, 'i>(
        &mut self,
        f: &Field<'t, 'i>,
        known: &'static [&'static str],
    ) -> Option<Tbl<'t, 'i>> {
        match f.val.get_ref() {
            DeValue::Table(t) => Some(Tbl::new(f.path.clone(), f.key_span.clone(), t, known)),
            _ => {
                self.wrong_type(f, "a table");
                None
            }
        }
    }

    fn array<'t, 'i>(&mut self, f: &Field<'t, 'i>) -> Option<Vec<Field<'t, 'i>>> {
        match f.val.get_ref() {
            DeValue::Array(a) => Some(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| Field {
                        path: format!("{}[{i}]", f.path),
                        key_span: v.span(),
                        val: v,
                    })
                    .collect(),
            ),
            _ => {
                self.wrong_type(f, "an array");
                None
            }
        }
    }

    fn string(&mut self, f: &Field<'_, '_>) -> Option<String> {
        match f.value() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(f, "a string");
                None
            }
        }
    }

    fn strings<'t, 'i>(&mut self, f: &Field<'t, 'i>) -> Option<Vec<(String, Field<'t, 'i>)>> {
        let items = self.array(f)?;
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            match self.string(&item) {
                Some(s) => out.push((s, item)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn boolean(&mut self, f: &Field<'_, '_>) -> Option<bool> {
        match f.value() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(f, "true or false");
                None
            }
        }
    }

    fn integer(&mut self, f: &Field<'_, '_>) -> Option<i64> {
        match f.value() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(f.span(), &f.path, "integer is out of range");
                    None
                }
            },
            _ => {
                self.wrong_type(f, "an integer");
                None
            }
        }
    }

    /// An integer in `min..=max`, converted to `T`.
    fn int_in<T: TryFrom<i64>>(&mut self, f: &Field<'_, '_>, min: i64, max: i64) -> Option<T> {
        let n = self.integer(f)?;
        if n < min || n > max {
            self.err(
                f.span(),
                &f.path,
                format!("must be between {min} and {max}"),
            );
            return None;
        }
        T::try_from(n).ok()
    }

    fn duration(&mut self, f: &Field<'_, '_>, min: Duration) -> Option<Duration> {
        match f.value() {
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) if d < min => {
                    self.err(
                        f.span(),
                        &f.path,
                        format!("must be at least {}ms", min.as_millis()),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(f.span(), &f.path, e);
                    None
                }
            },
            DeValue::Integer(i) => {
                self.err(
                    f.span(),
                    &f.path,
                    format!(
                        "a duration needs a unit: write e.g. \"{}s\" or \"{}ms\"",
                        i.as_str(),
                        i.as_str()
                    ),
                );
                None
            }
            _ => {
                self.wrong_type(f, "a duration string such as \"10s\"");
                None
            }
        }
    }

    fn size(&mut self, f: &Field<'_, '_>, min: u64) -> Option<u64> {
        let n = match f.value() {
            DeValue::String(s) => match parse_size(s) {
                Ok(n) => n,
                Err(e) => {
                    self.err(f.span(), &f.path, e);
                    return None;
                }
            },
            DeValue::Integer(_) => {
                let n = self.integer(f)?;
                match u64::try_from(n) {
                    Ok(n) => n,
                    Err(_) => {
                        self.err(f.span(), &f.path, "a size cannot be negative");
                        return None;
                    }
                }
            }
            _ => {
                self.wrong_type(f, "a size such as \"512M\" or a number of bytes");
                return None;
            }
        };
        if n < min {
            self.err(f.span(), &f.path, format!("must be at least {min} bytes"));
            return None;
        }
        Some(n)
    }

    fn abs_path(&mut self, f: &Field<'_, '_>) -> Option<PathBuf> {
        let s = self.string(f)?;
        match normalize_path(&s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(f.span(), &f.path, format!("path {e}"));
                None
            }
        }
    }

    fn principal(&mut self, f: &Field<'_, '_>) -> Option<Account> {
        let r = match f.value() {
            DeValue::String(s) => Account::parse(s),
            DeValue::Integer(_) => {
                let n = self.integer(f)?;
                u32::try_from(n)
                    .ok()
                    .and_then(Account::from_id)
                    .ok_or_else(|| format!("id {n} is out of range"))
            }
            _ => {
                self.wrong_type(f, "a name or a numeric id");
                return None;
            }
        };
        r.map_err(|e| self.err(f.span(), &f.path, e)).ok()
    }

    fn principals(&mut self, f: &Field<'_, '_>) -> Option<Vec<Account>> {
        let items = self.array(f)?;
        let before = self.errors();
        let out: Vec<Account> = items.iter().filter_map(|i| self.principal(i)).collect();
        (self.errors() == before).then_some(out)
    }

    /// A string that must be one of `choices`.
    fn choice<T: Copy>(&mut self, f: &Field<'_, '_>, choices: &[(&str, T)]) -> Option<T> {
        let s = self.string(f)?;
        match choices.iter().find(|(n, _)| *n == s) {
            Some((_, v)) => Some(*v),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.err(
                    f.span(),
                    &f.path,
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

/// Parses and validates a whole config text.
pub(crate) fn parse_config(text: &str, origin: &str) -> Result<Config, Diagnostics> {
    let mut r = Reader {
        sink: Sink::new(origin, text),
    };
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            r.sink.error(
                e.span().unwrap_or(0..0),
                "",
                format!("TOML syntax: {}", e.message()),
            );
        }
        return Err(r.sink.finish().expect_err("errors were recorded"));
    }
    let top = Tbl::new(String::new(), 0..0, root.get_ref(), TOP_KEYS);
    let service = match top.get("service") {
        Some(f) => read_service(&mut r, &f),
        None => ServiceConfig::default(),
    };
    let mut operations = BTreeMap::new();
    if let Some(f) = top.get("operations") {
        if let Some(ops) = r.table(&f, &[]) {
            for (name, field) in ops.all() {
                check_op_name(&mut r, name, &field);
                if let Some(op) = read_operation(&mut r, &field, &service) {
                    operations.insert(name.to_string(), op);
                }
            }
        }
    }
    top.finish(&mut r);
    r.sink.finish()?;
    Ok(Config {
        service,
        operations,
    })
}

fn check_op_name(r: &mut Reader<'_>, name: &str, f: &Field<'_, '_>) {
    let valid = name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !valid {
        r.err(
            f.key_span.clone(),
            &f.path,
            format!(
                "invalid operation name '{name}' (expected [a-z0-9][a-z0-9._-]*, at most 64 characters)"
            ),
        );
    } else if name.starts_with("regent.") {
        r.err(
            f.key_span.clone(),
            &f.path,
            format!("operation name '{name}' is reserved (names starting with 'regent.' belong to Regent)"),
        );
    }
}

fn missing(r: &mut Reader<'_>, t: &Tbl<'_, '_>, key: &str) {
    r.err(
        t.key_span.clone(),
        &t.path,
        format!("missing required key '{key}'"),
    );
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
