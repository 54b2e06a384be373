//! Reading parameter declarations (`params.NAME = { type = ... }`).

use super::*;
use crate::param::PathAccess;

const PARAM_TYPES: &[&str] = &[
    "string", "enum", "integer", "bool", "ip", "ipv4", "ipv6", "hostname", "path",
];

const PARAM_COMMON_KEYS: &[&str] = &["type", "description", "secret", "optional", "default"];

const PARAM_STRING_KEYS: &[&str] = &[
    "type",
    "description",
    "secret",
    "optional",
    "default",
    "pattern",
    "min_len",
    "max_len",
    "allow_leading_dash",
];

const PARAM_ENUM_KEYS: &[&str] = &[
    "type",
    "description",
    "secret",
    "optional",
    "default",
    "values",
];

const PARAM_INT_KEYS: &[&str] = &[
    "type",
    "description",
    "secret",
    "optional",
    "default",
    "min",
    "max",
];

const PARAM_IP_KEYS: &[&str] = &[
    "type",
    "description",
    "secret",
    "optional",
    "default",
    "public",
];

const PARAM_PATH_KEYS: &[&str] = &[
    "type",
    "description",
    "secret",
    "optional",
    "default",
    "under",
    "must_exist",
    "access",
];

const PARAM_ALL_KEYS: &[&str] = &[
    "pattern",
    "min_len",
    "max_len",
    "allow_leading_dash",
    "values",
    "min",
    "max",
    "public",
    "under",
    "must_exist",
    "access",
];

fn toml_to_json(v: &DeValue<'_>) -> Option<Value> {
    match v {
        DeValue::String(s) => Some(Value::String(s.to_string())),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(Value::from),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        DeValue::Boolean(b) => Some(Value::Bool(*b)),
        _ => None,
    }
}

pub(super) fn read_param(r: &mut Reader<'_>, f: &Field<'_, '_>) -> Option<ParamSpec> {
    // Shorthand: params.host = "hostname".
    if let DeValue::String(ty) = f.value() {
        let kind = param_kind_defaults(ty);
        return match kind {
            Some(k) if !matches!(k, ParamKind::Enum { .. }) => Some(ParamSpec {
                kind: k,
                secret: false,
                optional: false,
                default: None,
                description: String::new(),
            }),
            Some(_) => {
                r.err(
                    f.span(),
                    &f.path,
                    "type 'enum' needs values: write { type = \"enum\", values = [...] }",
                );
                None
            }
            None => {
                unknown_type(r, f, ty);
                None
            }
        };
    }
    let mut t = r.table(f, PARAM_COMMON_KEYS)?;
    let before = r.errors();
    let Some(tf) = t.get("type") else {
        missing(r, &t, "type");
        return None;
    };
    let ty = r.string(&tf)?;
    let Some(mut kind) = param_kind_defaults(&ty) else {
        unknown_type(r, &tf, &ty);
        return None;
    };
    t.known = match kind {
        ParamKind::String { .. } => PARAM_STRING_KEYS,
        ParamKind::Enum { .. } => PARAM_ENUM_KEYS,
        ParamKind::Integer { .. } => PARAM_INT_KEYS,
        ParamKind::Ip { .. } => PARAM_IP_KEYS,
        ParamKind::Path { .. } => PARAM_PATH_KEYS,
        ParamKind::Bool | ParamKind::Hostname => PARAM_COMMON_KEYS,
    };
    match &mut kind {
        ParamKind::String {
            pattern,
            min_len,
            max_len,
            allow_leading_dash,
        } => {
            if let Some(f) = t.get("pattern") {
                if let Some(p) = r.string(&f) {
                    match Pattern::new(&p) {
                        Ok(p) => *pattern = Some(p),
                        Err(e) => r.err(f.span(), &f.path, e),
                    }
                }
            }
            if let Some(f) = t.get("min_len") {
                *min_len = r.int_in(&f, 0, 1 << 20).unwrap_or(0);
            }
            if let Some(f) = t.get("max_len") {
                *max_len = r.int_in(&f, 1, 1 << 20).unwrap_or(DEFAULT_STRING_MAX_LEN);
                if *min_len > *max_len {
                    r.err(f.span(), &f.path, "max_len is smaller than min_len");
                }
            }
            if let Some(f) = t.get("allow_leading_dash") {
                *allow_leading_dash = r.boolean(&f).unwrap_or(false);
            }
        }
        ParamKind::Enum { values } => match t.get("values") {
            Some(f) => {
                for (v, item) in r.strings(&f).unwrap_or_default() {
                    if v.is_empty() || v.contains('\0') {
                        r.err(
                            item.span(),
                            &item.path,
                            "enum values must be non-empty and contain no NUL",
                        );
                    } else if values.contains(&v) {
                        r.err(item.span(), &item.path, format!("'{v}' is listed twice"));
                    } else {
                        values.push(v);
                    }
                }
                if values.is_empty() && r.errors() == before {
                    r.err(f.span(), &f.path, "an enum needs at least one value");
                }
            }
            None => missing(r, &t, "values"),
        },
        ParamKind::Integer { min, max } => {
            *min = t.get("min").and_then(|f| r.integer(&f));
            if let Some(f) = t.get("max") {
                *max = r.integer(&f);
                if let (Some(a), Some(b)) = (*min, *max) {
                    if a > b {
                        r.err(f.span(), &f.path, "max is smaller than min");
                    }
                }
            }
        }
        ParamKind::Ip { public, .. } => {
            if let Some(f) = t.get("public") {
                *public = r.boolean(&f).unwrap_or(false);
            }
        }
        ParamKind::Path {
            under,
            must_exist,
            access,
        } => {
            *under = t.get("under").and_then(|f| r.abs_path(&f));
            if let Some(f) = t.get("access") {
                if let Some(a) = r.string(&f) {
                    match PathAccess::parse(&a) {
                        Some(a) => *access = a,
                        None => r.err(
                            f.span(),
                            &f.path,
                            format!("unknown access '{a}' (expected read, write or create)"),
                        ),
                    }
                }
            }
            // read and write open an existing file; create may make it.
            *must_exist = *access != PathAccess::Create;
            if let Some(f) = t.get("must_exist") {
                match (r.boolean(&f), *access) {
                    (Some(false), PathAccess::Read | PathAccess::Write) => r.err(
                        f.span(),
                        &f.path,
                        format!(
                            "a file opened for {} must exist; use access = \"create\" for a file the command may create",
                            access.as_str()
                        ),
                    ),
                    (Some(b), _) => *must_exist = b,
                    (None, _) => {}
                }
            }
        }
        ParamKind::Bool | ParamKind::Hostname => {}
    }
    let description = t
        .get("description")
        .and_then(|f| r.string(&f))
        .unwrap_or_default();
    let secret = t.get("secret").and_then(|f| r.boolean(&f)).unwrap_or(false);
    let optional = t
        .get("optional")
        .and_then(|f| r.boolean(&f))
        .unwrap_or(false);
    let default = t.get("default").and_then(|f| {
        if secret {
            r.err(
                f.key_span.clone(),
                &f.path,
                "a secret parameter cannot have a default (it would live in the config file)",
            );
            return None;
        }
        let Some(j) = toml_to_json(f.value()) else {
            r.wrong_type(&f, "a string, integer or boolean");
            return None;
        };
        match kind.check(&j) {
            Ok(text) => Some(canonical_json(kind.value_kind(), &text)),
            Err(why) => {
                r.err(f.span(), &f.path, format!("invalid default: {why}"));
                None
            }
        }
    });
    // Keys that belong to another type get a clearer message than "unknown key".
    for e in t.entries.iter().filter(|e| !e.used.get()) {
        if PARAM_ALL_KEYS.contains(&e.key) {
            e.used.set(true);
            r.err(
                e.key_span.clone(),
                &join(&t.path, e.key),
                format!("key '{}' does not apply to type '{ty}'", e.key),
            );
        }
    }
    t.finish(r);
    if r.errors() != before {
        return None;
    }
    Some(ParamSpec {
        kind,
        secret,
        optional,
        default,
        description,
    })
}

fn unknown_type(r: &mut Reader<'_>, f: &Field<'_, '_>, ty: &str) {
    // Reported at the type's value, under the parameter's path.
    let path = f.path.strip_suffix(".type").unwrap_or(&f.path).to_string();
    r.err(
        f.span(),
        &path,
        format!(
            "unknown type '{ty}' (expected one of {})",
            PARAM_TYPES.join(", ")
        ),
    );
}

fn param_kind_defaults(ty: &str) -> Option<ParamKind> {
    Some(match ty {
        "string" => ParamKind::String {
            pattern: None,
            min_len: 0,
            max_len: DEFAULT_STRING_MAX_LEN,
            allow_leading_dash: false,
        },
        "enum" => ParamKind::Enum { values: Vec::new() },
        "integer" => ParamKind::Integer {
            min: None,
            max: None,
        },
        "bool" => ParamKind::Bool,
        "ip" => ParamKind::Ip {
            version: IpVersion::Any,
            public: false,
        },
        "ipv4" => ParamKind::Ip {
            version: IpVersion::V4,
            public: false,
        },
        "ipv6" => ParamKind::Ip {
            version: IpVersion::V6,
            public: false,
        },
        "hostname" => ParamKind::Hostname,
        "path" => ParamKind::Path {
            under: None,
            must_exist: true,
            access: PathAccess::Read,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::{ParamKind, PathAccess};

    fn path_kind(decl: &str) -> Result<ParamKind, String> {
        let text = format!("[operations.x]\ncommand = [\"cat\", \"{{p}}\"]\nparams.p = {decl}\n");
        crate::parse(&text, "t.toml")
            .map(|c| c.operations["x"].params["p"].kind.clone())
            .map_err(|d| d.to_string())
    }

    fn access_of(decl: &str) -> (PathAccess, bool) {
        match path_kind(decl).unwrap() {
            ParamKind::Path {
                access, must_exist, ..
            } => (access, must_exist),
            k => panic!("not a path: {k:?}"),
        }
    }

    #[test]
    fn access_and_must_exist() {
        assert_eq!(access_of(r#""path""#), (PathAccess::Read, true));
        assert_eq!(
            access_of(r#"{ type = "path", under = "/srv" }"#),
            (PathAccess::Read, true)
        );
        assert_eq!(
            access_of(r#"{ type = "path", access = "write", must_exist = true }"#),
            (PathAccess::Write, true)
        );
        assert_eq!(
            access_of(r#"{ type = "path", access = "create" }"#),
            (PathAccess::Create, false)
        );
        assert_eq!(
            access_of(r#"{ type = "path", access = "create", must_exist = true }"#),
            (PathAccess::Create, true)
        );
        let e = path_kind(r#"{ type = "path", access = "append" }"#).unwrap_err();
        assert!(e.contains("unknown access 'append'"), "{e}");
        let e = path_kind(r#"{ type = "path", must_exist = false }"#).unwrap_err();
        assert!(e.contains("a file opened for read must exist"), "{e}");
        let e = path_kind(r#"{ type = "string", access = "read" }"#).unwrap_err();
        assert!(e.contains("does not apply to type 'string'"), "{e}");
    }
}
