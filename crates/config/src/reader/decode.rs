//! The serde pass: a TOML value into a raw declaration struct, reporting every
//! error rather than the first.
//!
//! serde stops at the first error. The error has a span; the node at that span
//! is found in the tree (which gives the key path and the type actually
//! written), reported, and removed, and the value is read again, until it reads
//! cleanly. Removed table entries are remembered (`Reader::failed`) so that the
//! semantic pass does not also call them missing.

use std::collections::HashMap;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

use super::context::{closest, join, Reader};
use super::raw::{DATETIME_KEY, OUT_OF_RANGE};

/// Reads stop after this many errors in one value (each costs a re-read).
const MAX_ERRORS: usize = 200;

/// One step from a value to a node inside it.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The node an error is at.
struct Hit {
    /// Its key path (`operations.x.command[1]`).
    path: String,
    /// The path of the table entry holding it (`operations.x.command`).
    entry: String,
    /// The span of that entry's key.
    entry_key: Range<usize>,
    /// Steps from the decoded value to the node.
    route: Vec<Step>,
    /// Steps to the table entry holding it.
    entry_route: usize,
    /// What was written there (`an integer`).
    found: &'static str,
    /// The key, when the error is at a key (an unknown key).
    key: Option<String>,
    /// The array path and index as written, when the node is an array element.
    array: Option<(String, usize)>,
}

/// How a type is named in diagnostics.
pub(super) fn type_name(v: &DeValue<'_>) -> &'static str {
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

/// What serde's `expecting` says, as the diagnostics say it.
fn expected_name(serde: &str) -> &str {
    match serde {
        "a boolean" => "true or false",
        "a sequence" => "an array",
        "a map" => "a table",
        "i64" => "an integer",
        s if s.starts_with("struct ") => "a table",
        s => s,
    }
}

/// Builds the message for an unknown key, given the keys its table takes.
pub(super) fn unknown_key(key: &str, known: &[&str]) -> String {
    match closest(key, known) {
        Some(k) => format!("unknown key '{key}' (did you mean '{k}'?)"),
        None if known.is_empty() => format!("unknown key '{key}'"),
        None => format!(
            "unknown key '{key}' (expected one of: {})",
            known.join(", ")
        ),
    }
}

/// A special message for an unknown key (given the known keys), or `None` for
/// the usual one.
pub(super) type OnUnknown<'f> = &'f dyn Fn(&str, &[&str]) -> Option<String>;

/// The diagnostic for a serde error at `hit`.
fn describe(message: &str, hit: &Hit, on_unknown: OnUnknown<'_>) -> String {
    if let Some(key) = &hit.key {
        if let Some(rest) = message.strip_prefix(&format!("unknown field `{key}`, ")) {
            // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`"
            // or "there are no fields": the names are between backquotes.
            let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
            return on_unknown(key, &known).unwrap_or_else(|| unknown_key(key, &known));
        }
    }
    if hit.key.is_none() && message.starts_with(&format!("unknown field `{DATETIME_KEY}`")) {
        // A struct read a datetime as a table with one odd key.
        return format!("expected a table, found {}", hit.found);
    }
    let expected = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .map(|rest| expected_name(rest.rsplit_once(", expected ").map_or("", |(_, e)| e)));
    match expected {
        // An integer refused where an integer is expected does not fit in 64 bits.
        Some("an integer") if hit.found == "an integer" => OUT_OF_RANGE.to_string(),
        Some(expected) => format!("expected {expected}, found {}", hit.found),
        None if message == "integer number overflowed" => OUT_OF_RANGE.to_string(),
        None => message.to_string(),
    }
}

/// Elements removed from arrays so far: by array path, their indices as written.
type Removed = HashMap<String, Vec<usize>>;

/// The index as written of what is now element `i` of the array at `path`.
fn written_index(removed: &Removed, path: &str, i: usize) -> usize {
    let mut gone = removed.get(path).cloned().unwrap_or_default();
    gone.sort_unstable();
    gone.iter().fold(i, |i, &g| if g <= i { i + 1 } else { i })
}

/// Finds the node whose key or value spans exactly `span`, deepest first.
fn find(
    v: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    at: (&str, (&str, &Range<usize>), &Removed),
    route: &mut Vec<Step>,
    entry_route: usize,
) -> Option<Hit> {
    let (path, (entry, entry_key), removed) = at;
    match v.get_ref() {
        DeValue::Table(t) => {
            for (k, val) in t.iter() {
                let key: &str = k.get_ref();
                let p = join(path, key);
                route.push(Step::Key(key.to_string()));
                let depth = route.len();
                let key_span = k.span();
                if let Some(hit) = find(val, span, (&p, (&p, &key_span), removed), route, depth) {
                    return Some(hit);
                }
                if key_span == *span || val.span() == *span {
                    return Some(Hit {
                        entry: p.clone(),
                        entry_key: key_span.clone(),
                        path: p,
                        route: route.clone(),
                        entry_route: depth,
                        found: type_name(val.get_ref()),
                        key: (k.span() == *span).then(|| key.to_string()),
                        array: None,
                    });
                }
                route.pop();
            }
        }
        DeValue::Array(a) => {
            for (i, el) in a.iter().enumerate() {
                let p = format!("{path}[{}]", written_index(removed, path, i));
                route.push(Step::Index(i));
                let at = (p.as_str(), (entry, entry_key), removed);
                if let Some(hit) = find(el, span, at, route, entry_route) {
                    return Some(hit);
                }
                if el.span() == *span {
                    return Some(Hit {
                        array: Some((path.to_string(), written_index(removed, path, i))),
                        path: p,
                        entry: entry.to_string(),
                        entry_key: entry_key.clone(),
                        route: route.clone(),
                        entry_route,
                        found: type_name(el.get_ref()),
                        key: None,
                    });
                }
                route.pop();
            }
        }
        _ => {}
    }
    None
}

/// Removes the node at the end of `route` (a table entry or an array element).
fn remove(v: &mut Spanned<DeValue<'_>>, route: &[Step]) {
    let Some((last, parents)) = route.split_last() else {
        return;
    };
    let mut node = v;
    for step in parents {
        let next = match (node.get_mut(), step) {
            (DeValue::Table(t), Step::Key(k)) => t
                .iter_mut()
                .find(|(key, _)| AsRef::<str>::as_ref(key.get_ref()) == k)
                .map(|(_, val)| val),
            (DeValue::Array(a), Step::Index(i)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    match (node.get_mut(), last) {
        (DeValue::Table(t), Step::Key(k)) => {
            let key = t
                .keys()
                .find(|key| AsRef::<str>::as_ref(key.get_ref()) == k);
            if let Some(key) = key.cloned() {
                t.remove(&key);
            }
        }
        (DeValue::Array(a), Step::Index(i)) => {
            *a = a
                .iter()
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, el)| el.clone())
                .collect();
        }
        _ => {}
    }
}

/// Reads `value` (at key path `base`) into `T`, reporting each error with its
/// location and key path. `None` when nothing could be read.
pub(super) fn decode<T: DeserializeOwned>(
    r: &mut Reader<'_>,
    mut value: Spanned<DeValue<'_>>,
    base: &str,
    on_unknown: OnUnknown<'_>,
) -> Option<T> {
    // Entries whose array lost an element: dropped whole once the rest reads.
    let mut drop_after: Vec<Vec<Step>> = Vec::new();
    let mut removed = Removed::new();
    for _ in 0..MAX_ERRORS {
        let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) if drop_after.is_empty() => return Some(v),
            Ok(_) => {
                for route in drop_after.drain(..).rev() {
                    remove(&mut value, &route);
                }
                continue;
            }
            Err(e) => e,
        };
        let span = e.span().unwrap_or_else(|| value.span());
        let at = (base, (base, &value.span()), &removed);
        let Some(hit) = find(&value, &span, at, &mut Vec::new(), 0) else {
            // The value itself (a table read from an integer...): nothing to remove.
            let message = if span == value.span() {
                let whole = Hit {
                    path: base.to_string(),
                    entry: base.to_string(),
                    entry_key: span.clone(),
                    route: Vec::new(),
                    entry_route: 0,
                    found: type_name(value.get_ref()),
                    key: None,
                    array: None,
                };
                describe(e.message(), &whole, on_unknown)
            } else {
                e.message().to_string()
            };
            r.err(span, base, message);
            return None;
        };
        r.err(span, &hit.path, describe(e.message(), &hit, on_unknown));
        r.failed.insert(hit.entry.clone(), hit.entry_key.clone());
        if let Some((array, index)) = hit.array {
            r.failed_items.insert(hit.entry.clone());
            drop_after.push(hit.route[..hit.entry_route].to_vec());
            removed.entry(array).or_default().push(index);
        }
        remove(&mut value, &hit.route);
    }
    r.err(
        value.span(),
        base,
        format!("more than {MAX_ERRORS} errors; stopped reading here"),
    );
    None
}

/// The keys a struct's table takes: its serde field names.
pub(super) fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldProbe) {
        Err(Fields(f)) => f,
        Ok(_) => &[],
    }
}

/// A deserializer that only asks a struct for its field names.
struct FieldProbe;

/// The field names, carried out as the "error".
#[derive(Debug)]
struct Fields(&'static [&'static str]);

impl std::fmt::Display for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Fields {}

impl de::Error for Fields {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Fields(&[])
    }
}

impl<'de> Deserializer<'de> for FieldProbe {
    type Error = Fields;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
        Err(Fields(&[]))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Fields> {
        Err(Fields(fields))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        alpha: Option<i64>,
        beta: Option<String>,
    }

    /// The message shapes `describe` reads are serde's: pin them.
    #[test]
    fn serde_messages_are_read() {
        let e = toml::from_str::<T>("gamma = 1").err().unwrap();
        assert_eq!(
            e.message(),
            "unknown field `gamma`, expected `alpha` or `beta`"
        );
        let e = toml::from_str::<T>("alpha = \"x\"").err().unwrap();
        assert_eq!(e.message(), "invalid type: string \"x\", expected i64");
        assert_eq!(fields::<T>(), ["alpha", "beta"]);
    }

    /// A struct a test adds a key to: the field is all it takes.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Grown {
        alpha: Option<Spanned<i64>>,
        brand_new: Option<Spanned<String>>,
    }

    #[test]
    fn a_new_field_is_accepted_and_suggested() {
        let text = "alpha = 1\nbrand_new = \"x\"\nbrand_nwe = 2\nalpha_ = \"y\"\n";
        let (root, e) = toml::de::DeTable::parse_recoverable(text);
        assert!(e.is_empty());
        let tree = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
        let mut r = Reader::new("t", text, &tree);
        let got: Grown = decode(&mut r, tree.clone(), "", &|_, _| None).unwrap();
        assert_eq!(got.alpha.map(Spanned::into_inner), Some(1));
        assert_eq!(got.brand_new.map(Spanned::into_inner).as_deref(), Some("x"));
        let d = r.sink.finish().unwrap_err();
        assert_eq!(
            d.to_string(),
            "t:3:1: brand_nwe: unknown key 'brand_nwe' (did you mean 'brand_new'?)\n\
             t:4:1: alpha_: unknown key 'alpha_' (did you mean 'alpha'?)"
        );
    }

    #[test]
    fn unknown_key_messages() {
        assert_eq!(
            unknown_key("alhpa", &["alpha", "beta"]),
            "unknown key 'alhpa' (did you mean 'alpha'?)"
        );
        assert_eq!(
            unknown_key("zzz", &["alpha", "beta"]),
            "unknown key 'zzz' (expected one of: alpha, beta)"
        );
        assert_eq!(unknown_key("zzz", &[]), "unknown key 'zzz'");
    }
}
