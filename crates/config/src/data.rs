//! Request data validation: a request's `data` checked against an operation's
//! declared parameters, giving [`Params`] (canonical values) or a [`FieldError`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::model::OperationDecl;
use crate::param::ParamKind;
use crate::paths::check_path_no_symlink_escape;
use crate::values::{ParamValue, Params};

/// Why `data` was refused: the field and the reason. Never contains a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The offending field (`data` when the whole value is wrong).
    pub field: String,
    /// Why, e.g. `not a public IPv4 address`.
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Shows a client-supplied key safely in an error: at most 64 characters, control
/// characters replaced.
fn sanitize_key(key: &str) -> String {
    let mut s: String = key
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if key.chars().count() > 64 {
        s.push_str("...");
    }
    s
}

/// Validates `data` against `op`'s parameters (pure: no I/O).
///
/// `data` must be an object, or `null` (meaning `{}`). Unknown fields, missing
/// required fields and wrong types are refused, naming the field. A field set to
/// `null` counts as absent. Defaults fill absent fields. Path parameters are
/// checked lexically only: call [`check_paths`] before running the command.
pub fn validate_data(op: &OperationDecl, data: &Value) -> Result<Params, FieldError> {
    let empty = Map::new();
    let obj = match data {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return Err(FieldError::new("data", "must be a JSON object")),
    };
    if let Some(k) = obj.keys().find(|k| !op.params.contains_key(k.as_str())) {
        return Err(FieldError::new(&sanitize_key(k), "unknown field"));
    }
    let mut values = BTreeMap::new();
    for (name, spec) in &op.params {
        let given = obj.get(name).filter(|v| !v.is_null());
        let value = match (given, &spec.default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) if spec.optional => continue,
            (None, None) => return Err(FieldError::new(name, "missing required field")),
        };
        let text = spec
            .kind
            .check(value)
            .map_err(|reason| FieldError::new(name, reason))?;
        values.insert(
            name.clone(),
            ParamValue {
                text: Zeroizing::new(text),
                kind: spec.kind.value_kind(),
                secret: spec.secret,
            },
        );
    }
    Ok(Params { values })
}

/// Request-time (I/O) checks of every path parameter present in `params`: resolves
/// symlinks, refuses escapes from `under` and dangling symlinks, and enforces
/// `must_exist`. Replaces each path by its resolved form.
///
/// Advisory only: a check by name can be raced (the file can change between the
/// check and any later open). The daemon does not rely on it: commands receive
/// path parameters as descriptors opened in their own process (see
/// [`crate::PathAccess`]). Escapes and missing files get one answer, `not found
/// under <under>`, so a caller learns nothing about files outside `under`.
pub fn check_paths(op: &OperationDecl, params: &mut Params) -> Result<(), FieldError> {
    for (name, spec) in &op.params {
        let ParamKind::Path {
            under, must_exist, ..
        } = &spec.kind
        else {
            continue;
        };
        let Some(v) = params.values.get_mut(name) else {
            continue;
        };
        let resolved =
            check_path_no_symlink_escape(Path::new(v.as_str()), under.as_deref(), *must_exist)
                .map_err(|e| FieldError::new(name, crate::paths::refusal(&e, under.as_deref())))?;
        let text = resolved
            .into_os_string()
            .into_string()
            .map_err(|_| FieldError::new(name, "path is not valid UTF-8"))?;
        v.text = Zeroizing::new(text);
    }
    Ok(())
}
