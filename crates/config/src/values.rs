//! The values a template renders: validated parameters ([`Params`]) and the
//! caller's identity ([`CallerVars`]). Built by [`crate::validate_data`], read
//! by [`crate::Template::render`]; neither depends on the other's module.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::param::{canonical_json, ValueKind};

/// The caller's kernel identity, as templates see it (`{caller.uid}` ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerVars {
    /// Real uid from SO_PEERCRED.
    pub uid: u32,
    /// Real gid from SO_PEERCRED.
    pub gid: u32,
    /// The user name resolved from `uid` (or the uid in decimal if it has none).
    pub user: String,
}

/// One validated value: its canonical text (what argv or stdin receives).
/// The text is wiped from memory on drop.
#[derive(Clone)]
pub struct ParamValue {
    pub(crate) text: Zeroizing<String>,
    pub(crate) kind: ValueKind,
    pub(crate) secret: bool,
}

impl ParamValue {
    /// The canonical text, as passed to the command.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for a `secret = true` parameter.
    #[must_use]
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// The JSON form (string, integer or boolean).
    #[must_use]
    pub fn to_json(&self) -> Value {
        canonical_json(self.kind, &self.text)
    }
}

impl fmt::Debug for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<redacted>")
        } else {
            write!(f, "{:?}", self.text.as_str())
        }
    }
}

/// Validated request data: each present parameter (given or defaulted) by name.
/// Absent optional parameters without a default are not present. `Debug` redacts secrets.
#[derive(Clone, Default)]
pub struct Params {
    pub(crate) values: BTreeMap<String, ParamValue>,
}

impl Params {
    /// The value of a parameter, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name)
    }

    /// All present parameters, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when no parameter is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The full canonical data as a JSON object, secrets included (to hold a
    /// pending request and re-validate it later; it validates to the same `Params`).
    #[must_use]
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.values
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect::<Map<_, _>>(),
        )
    }

    /// The data as a JSON object for logs, audit and approval messages: secret
    /// parameters are replaced by `"<redacted>"`.
    #[must_use]
    pub fn redacted(&self) -> Value {
        Value::Object(
            self.values
                .iter()
                .map(|(k, v)| {
                    let j = if v.secret {
                        Value::String("<redacted>".into())
                    } else {
                        v.to_json()
                    };
                    (k.clone(), j)
                })
                .collect::<Map<_, _>>(),
        )
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.values.iter()).finish()
    }
}
