//! The semantic pass over parameter declarations (`params.NAME = { type = ... }`
//! or the shorthand `params.NAME = "hostname"`).
//!
//! A parameter table is read in two steps: its `type` first, then the whole table
//! into the struct of that type (`raw::StringParam`...), whose fields are the
//! keys the type takes.

use std::ops::Range;

use serde_json::Value;
use toml::Spanned;

use super::context::{item, join, Reader};
use super::decode::{decode, fields, type_name, unknown_key};
use super::raw::{
    Common, EnumParam, IntegerParam, IpParam, ParamHead, PathParam, PlainParam, RawParam, Scalar,
    StringParam,
};
use crate::param::{
    canonical_json, IpVersion, ParamKind, ParamSpec, PathAccess, Pattern, DEFAULT_STRING_MAX_LEN,
};

const PARAM_TYPES: &[&str] = &[
    "string", "enum", "integer", "bool", "ip", "ipv4", "ipv6", "hostname", "timezone", "path",
];

/// Every key some parameter type takes, each once.
fn param_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for f in [
        fields::<StringParam>(),
        fields::<EnumParam>(),
        fields::<IntegerParam>(),
        fields::<IpParam>(),
        fields::<PathParam>(),
    ] {
        for k in f {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    keys
}

/// True for a key some parameter type takes.
fn is_param_key(key: &str) -> bool {
    param_keys().contains(&key)
}

/// Reads the parameter declared at key path `p`.
pub(super) fn read_param(
    r: &mut Reader<'_>,
    decl: &Spanned<RawParam>,
    p: &str,
) -> Option<ParamSpec> {
    if let RawParam::Short(ty) = decl.get_ref() {
        return short(r, decl.span(), p, ty);
    }
    let node = match r.value_at(&decl.span()) {
        Some(v) if v.get_ref().is_table() => v.clone(),
        found => {
            let found = found.map_or("something else", |v| type_name(v.get_ref()));
            r.err(decl.span(), p, format!("expected a table, found {found}"));
            return None;
        }
    };
    let head: ParamHead = decode(r, node.clone(), p, &|_, _| None)?;
    let Some(ty) = &head.ty else {
        let span = r.key_span(decl);
        r.missing(span, p, "type");
        // Without a type, a key no type takes is still reported (`tpye`).
        let known = param_keys();
        for (key, _) in node.get_ref().as_table().into_iter().flatten() {
            if !known.contains(&key.get_ref().as_ref()) {
                let msg = unknown_key(key.get_ref(), &known);
                r.err(key.span(), &join(p, key.get_ref()), msg);
            }
        }
        return None;
    };
    let Some(mut kind) = param_kind_defaults(ty.get_ref()) else {
        unknown_type(r, ty.span(), p, ty.get_ref());
        return None;
    };
    let ty = ty.get_ref().as_str();
    let before = r.errors();
    let other_type = |key: &str, _: &[&str]| {
        is_param_key(key).then(|| format!("key '{key}' does not apply to type '{ty}'"))
    };
    let at = |key: &str| join(p, key);
    let common = match &mut kind {
        ParamKind::String {
            pattern,
            min_len,
            max_len,
            allow_leading_dash,
        } => {
            let mut t: StringParam = decode(r, node, p, &other_type)?;
            if let Some(v) = &t.pattern {
                match Pattern::new(v.get_ref()) {
                    Ok(re) => *pattern = Some(re),
                    Err(e) => r.err(v.span(), &at("pattern"), e),
                }
            }
            if let Some(v) = &t.min_len {
                *min_len = r.int_in(v, &at("min_len"), 0, 1 << 20).unwrap_or(0);
            }
            if let Some(v) = &t.max_len {
                *max_len = r
                    .int_in(v, &at("max_len"), 1, 1 << 20)
                    .unwrap_or(DEFAULT_STRING_MAX_LEN);
                if *min_len > *max_len {
                    r.err(v.span(), &at("max_len"), "max_len is smaller than min_len");
                }
            }
            if let Some(v) = &t.allow_leading_dash {
                *allow_leading_dash = *v.get_ref();
            }
            t.common()
        }
        ParamKind::Enum { values } => {
            let mut t: EnumParam = decode(r, node, p, &other_type)?;
            match &t.values {
                Some(list) => {
                    for (i, v) in list.get_ref().iter().enumerate() {
                        let (path, text) = (item(&at("values"), i), v.get_ref());
                        if text.is_empty() || text.contains('\0') {
                            r.err(
                                v.span(),
                                &path,
                                "enum values must be non-empty and contain no NUL",
                            );
                        } else if values.contains(text) {
                            r.err(v.span(), &path, format!("'{text}' is listed twice"));
                        } else {
                            values.push(text.clone());
                        }
                    }
                    if values.is_empty() && !r.errors_since(before, p) {
                        r.err(
                            list.span(),
                            &at("values"),
                            "an enum needs at least one value",
                        );
                    }
                }
                None => {
                    let span = r.key_span(decl);
                    r.missing(span, p, "values");
                }
            }
            t.common()
        }
        ParamKind::Integer { min, max } => {
            let mut t: IntegerParam = decode(r, node, p, &other_type)?;
            *min = t.min.as_ref().map(|v| *v.get_ref());
            if let Some(v) = &t.max {
                *max = Some(*v.get_ref());
                if min.is_some_and(|a| a > *v.get_ref()) {
                    r.err(v.span(), &at("max"), "max is smaller than min");
                }
            }
            t.common()
        }
        ParamKind::Ip { public, .. } => {
            let mut t: IpParam = decode(r, node, p, &other_type)?;
            if let Some(v) = &t.public {
                *public = *v.get_ref();
            }
            t.common()
        }
        ParamKind::Path {
            under,
            must_exist,
            access,
        } => {
            let mut t: PathParam = decode(r, node, p, &other_type)?;
            *under = t.under.as_ref().and_then(|v| r.abs_path(v, &at("under")));
            if let Some(v) = &t.access {
                match PathAccess::parse(v.get_ref()) {
                    Some(a) => *access = a,
                    None => r.err(
                        v.span(),
                        &at("access"),
                        format!(
                            "unknown access '{}' (expected read, write or create)",
                            v.get_ref()
                        ),
                    ),
                }
            }
            // read and write open an existing file; create may make it.
            *must_exist = *access != PathAccess::Create;
            if let Some(v) = &t.must_exist {
                match (*v.get_ref(), *access) {
                    (false, PathAccess::Read | PathAccess::Write) => r.err(
                        v.span(),
                        &at("must_exist"),
                        format!(
                            "a file opened for {} must exist; use access = \"create\" for a file the command may create",
                            access.as_str()
                        ),
                    ),
                    (b, _) => *must_exist = b,
                }
            }
            t.common()
        }
        ParamKind::Bool | ParamKind::Hostname | ParamKind::Timezone => {
            let mut t: PlainParam = decode(r, node, p, &other_type)?;
            t.common()
        }
    };
    let spec = finish(r, p, kind, common);
    if r.errors_since(before, p) {
        return None;
    }
    spec
}

/// The keys every type takes, and the default checked against the type.
fn finish(r: &mut Reader<'_>, p: &str, kind: ParamKind, c: Common) -> Option<ParamSpec> {
    let secret = c.secret.is_some_and(|v| *v.get_ref());
    let path = join(p, "default");
    let default_key = r.key_of(&c.default, &path);
    if let Some(span) = default_key.filter(|_| secret) {
        r.err(
            span,
            &path,
            "a secret parameter cannot have a default (it would live in the config file)",
        );
    }
    let default = c.default.filter(|_| !secret).and_then(|v| {
        let json = match &v.get_ref().0 {
            Scalar::Str(s) => Some(Value::String(s.clone())),
            Scalar::Int(i) => Some(Value::from(*i)),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number),
            Scalar::Bool(b) => Some(Value::Bool(*b)),
            Scalar::Big(_) => None,
        };
        let Some(json) = json else {
            let found = match v.get_ref().0 {
                Scalar::Float(_) => "a float",
                _ => "an integer",
            };
            r.err(
                v.span(),
                &path,
                format!("expected a string, integer or boolean, found {found}"),
            );
            return None;
        };
        match kind.check(&json) {
            Ok(text) => Some(canonical_json(kind.value_kind(), &text)),
            Err(why) => {
                r.err(v.span(), &path, format!("invalid default: {why}"));
                None
            }
        }
    });
    Some(ParamSpec {
        kind,
        secret,
        optional: c.optional.is_some_and(|v| *v.get_ref()),
        default,
        description: c.description.map(Spanned::into_inner).unwrap_or_default(),
    })
}

/// `params.NAME = "hostname"`.
fn short(r: &mut Reader<'_>, span: Range<usize>, p: &str, ty: &str) -> Option<ParamSpec> {
    match param_kind_defaults(ty) {
        Some(ParamKind::Enum { .. }) => {
            r.err(
                span,
                p,
                "type 'enum' needs values: write { type = \"enum\", values = [...] }",
            );
            None
        }
        Some(kind) => Some(ParamSpec {
            kind,
            secret: false,
            optional: false,
            default: None,
            description: String::new(),
        }),
        None => {
            unknown_type(r, span, p, ty);
            None
        }
    }
}

/// Reported at the type's value, under the parameter's path.
fn unknown_type(r: &mut Reader<'_>, span: Range<usize>, p: &str, ty: &str) {
    r.err(
        span,
        p,
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
        "timezone" => ParamKind::Timezone,
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
