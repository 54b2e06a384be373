//! Declared parameter types and the pure check of one JSON value against one
//! declaration, producing the canonical text passed in argv.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{json, Value};

use crate::net;
use crate::paths;

/// Default `max_len` of a string parameter, in characters.
pub const DEFAULT_STRING_MAX_LEN: usize = 4096;

/// A declared parameter: its type plus the options common to every type.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// The type and its constraints.
    pub kind: ParamKind,
    /// Never logged, never echoed, never in argv (only on stdin).
    pub secret: bool,
    /// May be absent (or `null`) in the request.
    pub optional: bool,
    /// Used when absent; already canonical and valid for `kind`. Implies optional.
    pub default: Option<Value>,
    /// Human description, shown by `regent ops`.
    pub description: String,
}

/// Which IP versions an `ip` parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4 or IPv6 (`type = "ip"`).
    Any,
    /// IPv4 only (`type = "ipv4"`).
    V4,
    /// IPv6 only (`type = "ipv6"`).
    V6,
}

/// A compiled, whole-value pattern: matches only if the entire value matches.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `source` anchored as `\A(?:source)\z` so it must match the whole value
    /// (a newline does not end the match early).
    pub fn new(source: &str) -> Result<Pattern, String> {
        let regex = regex::RegexBuilder::new(&format!(r"\A(?:{source})\z"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("invalid pattern: {e}"))?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// The pattern as written in the config.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the whole of `value` matches.
    #[must_use]
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

/// What the command does with the file a `path` parameter names (`access`). The
/// command never gets the name: it gets a descriptor opened in its own process,
/// after its confinement, beneath `under` with no symlink on the way, as
/// `/proc/self/fd/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathAccess {
    /// `O_RDONLY`: an existing regular file or directory (the default).
    #[default]
    Read,
    /// `O_WRONLY`: an existing regular file, not truncated.
    Write,
    /// `O_WRONLY | O_CREAT | O_EXCL`, mode 0600: a regular file, created when
    /// missing (unless `must_exist`); an existing one only if it belongs to the
    /// command's user; never truncated.
    Create,
}

impl PathAccess {
    /// The name as written in TOML.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PathAccess::Read => "read",
            PathAccess::Write => "write",
            PathAccess::Create => "create",
        }
    }

    /// Parses the TOML name.
    #[must_use]
    pub fn parse(s: &str) -> Option<PathAccess> {
        Some(match s {
            "read" => PathAccess::Read,
            "write" => PathAccess::Write,
            "create" => PathAccess::Create,
            _ => return None,
        })
    }
}

impl std::fmt::Display for PathAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a parameter and its constraints.
#[derive(Debug, Clone)]
pub enum ParamKind {
    /// Text. Without `pattern`, control characters and invisible or bidirectional
    /// format characters (Unicode Cf, Zl, Zp: U+202E, U+200B...) are refused. A
    /// value starting with `-` is refused unless `allow_leading_dash` (it could be
    /// read as an option).
    String {
        /// Whole-value pattern.
        pattern: Option<Pattern>,
        /// Minimum length in characters.
        min_len: usize,
        /// Maximum length in characters.
        max_len: usize,
        /// Accept values starting with `-`.
        allow_leading_dash: bool,
    },
    /// One of a fixed list of strings.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
    /// A JSON integer (not a float, not a string) within bounds.
    Integer {
        /// Inclusive lower bound.
        min: Option<i64>,
        /// Inclusive upper bound.
        max: Option<i64>,
    },
    /// A JSON boolean, rendered `true`/`false`.
    Bool,
    /// An IP address.
    Ip {
        /// Accepted versions.
        version: IpVersion,
        /// Refuse non-public ranges (private, loopback, documentation...).
        public: bool,
    },
    /// An RFC 1123 hostname, rendered lowercase.
    Hostname,
    /// A time zone name (`Europe/Paris`, `UTC`): components of ASCII letters,
    /// digits, `_`, `+` and `-` joined by `/`, naming a time zone file (TZif)
    /// of the system's `/usr/share/zoneinfo`, checked when a request arrives
    /// (the one check of a value that reads a file).
    Timezone,
    /// An absolute path, lexically normalised, no `..`, handed to the command as
    /// a descriptor (see [`PathAccess`]).
    Path {
        /// Required prefix (component-wise); the file is opened beneath it (beneath
        /// `/` when absent).
        under: Option<PathBuf>,
        /// The file must exist when the command starts: always for `read` and
        /// `write`; for `create`, `true` opens an existing file only.
        must_exist: bool,
        /// What the command does with the file.
        access: PathAccess,
    },
}

/// The JSON shape of a canonical value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A JSON string.
    String,
    /// A JSON integer.
    Integer,
    /// A JSON boolean.
    Bool,
}

impl ParamKind {
    /// The type name as written in TOML.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamKind::String { .. } => "string",
            ParamKind::Enum { .. } => "enum",
            ParamKind::Integer { .. } => "integer",
            ParamKind::Bool => "bool",
            ParamKind::Ip {
                version: IpVersion::Any,
                ..
            } => "ip",
            ParamKind::Ip {
                version: IpVersion::V4,
                ..
            } => "ipv4",
            ParamKind::Ip {
                version: IpVersion::V6,
                ..
            } => "ipv6",
            ParamKind::Hostname => "hostname",
            ParamKind::Timezone => "timezone",
            ParamKind::Path { .. } => "path",
        }
    }

    /// The JSON shape of this type's values.
    #[must_use]
    pub fn value_kind(&self) -> ValueKind {
        match self {
            ParamKind::Integer { .. } => ValueKind::Integer,
            ParamKind::Bool => ValueKind::Bool,
            _ => ValueKind::String,
        }
    }

    /// Checks one JSON value; returns its canonical text. The error is a reason that
    /// never contains the value itself.
    pub fn check(&self, value: &Value) -> Result<String, String> {
        match self {
            ParamKind::String {
                pattern,
                min_len,
                max_len,
                allow_leading_dash,
            } => {
                let s = value.as_str().ok_or("expected a string")?;
                if s.contains('\0') {
                    return Err("must not contain a NUL character".into());
                }
                let n = s.chars().count();
                if n > *max_len {
                    return Err(format!("must be at most {max_len} characters"));
                }
                if n < *min_len {
                    return Err(format!("must be at least {min_len} characters"));
                }
                if !allow_leading_dash && s.starts_with('-') {
                    return Err("must not start with '-'".into());
                }
                match pattern {
                    Some(p) if !p.is_match(s) => {
                        Err(format!("does not match the pattern {}", p.as_str()))
                    }
                    None if s.chars().any(char::is_control) => {
                        Err("must not contain control characters".into())
                    }
                    None if s.chars().any(regent_proto::text::is_hidden_format) => Err(
                        "must not contain invisible or bidirectional format characters \
                         (such as U+200B or U+202E; declare a `pattern` to accept them)"
                            .into(),
                    ),
                    _ => Ok(s.to_string()),
                }
            }
            ParamKind::Enum { values } => {
                let s = value.as_str().ok_or("expected a string")?;
                if values.iter().any(|v| v == s) {
                    Ok(s.to_string())
                } else {
                    Err(format!("must be one of: {}", values.join(", ")))
                }
            }
            ParamKind::Integer { min, max } => {
                let n = match value {
                    Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                        (Some(n), _, _) => n,
                        // Beyond i64: too large, whatever the declared bounds.
                        (None, Some(_), _) => return Err(too_large(*max)),
                        // A number JSON could not hold as an integer (written with a
                        // fraction or an exponent, or beyond u64).
                        (None, None, Some(f)) if f.fract() != 0.0 => {
                            return Err("expected an integer, not a fraction".into())
                        }
                        (None, None, Some(f)) if f >= 2f64.powi(63) => return Err(too_large(*max)),
                        (None, None, Some(f)) if f <= -(2f64.powi(63)) => {
                            return Err(too_small(*min))
                        }
                        _ => {
                            return Err(
                                "expected an integer written without a fraction or exponent".into(),
                            )
                        }
                    },
                    _ => return Err("expected an integer".into()),
                };
                if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                    return Err(match (min, max) {
                        (Some(a), Some(b)) => format!("must be between {a} and {b}"),
                        (Some(a), None) => format!("must be at least {a}"),
                        (None, Some(b)) => format!("must be at most {b}"),
                        (None, None) => unreachable!("bounds checked above"),
                    });
                }
                Ok(n.to_string())
            }
            ParamKind::Bool => match value {
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err("expected true or false".into()),
            },
            ParamKind::Ip { version, public } => {
                let s = value.as_str().ok_or("expected a string")?;
                let label = match version {
                    IpVersion::Any => "IP",
                    IpVersion::V4 => "IPv4",
                    IpVersion::V6 => "IPv6",
                };
                let addr: IpAddr = s
                    .parse()
                    .map_err(|_| format!("not a valid {label} address"))?;
                match (version, addr) {
                    (IpVersion::V4, IpAddr::V6(_)) | (IpVersion::V6, IpAddr::V4(_)) => {
                        return Err(format!("not a valid {label} address"));
                    }
                    _ => {}
                }
                if *public {
                    if let Some(why) = net::non_public_reason(addr) {
                        return Err(format!("not a public {label} address ({why})"));
                    }
                }
                Ok(addr.to_string())
            }
            ParamKind::Hostname => {
                let s = value.as_str().ok_or("expected a string")?;
                net::check_hostname(s).map_err(|why| format!("not a valid hostname: {why}"))
            }
            ParamKind::Timezone => {
                let s = value.as_str().ok_or("expected a string")?;
                check_timezone(Path::new(ZONEINFO), s)
            }
            ParamKind::Path { under, .. } => {
                let s = value.as_str().ok_or("expected a string")?;
                let p = paths::normalize_path(s)?;
                paths::check_under(&p, under.as_deref())?;
                p.into_os_string()
                    .into_string()
                    .map_err(|_| "path is not valid UTF-8".to_string())
            }
        }
    }

    /// A JSON description of the type and its constraints (for `regent ops`).
    #[must_use]
    pub fn describe(&self) -> Value {
        let mut v = json!({ "type": self.type_name() });
        let m = v.as_object_mut().expect("object literal");
        match self {
            ParamKind::String {
                pattern,
                min_len,
                max_len,
                allow_leading_dash,
            } => {
                if let Some(p) = pattern {
                    m.insert("pattern".into(), json!(p.as_str()));
                }
                if *min_len > 0 {
                    m.insert("min_len".into(), json!(min_len));
                }
                m.insert("max_len".into(), json!(max_len));
                if *allow_leading_dash {
                    m.insert("allow_leading_dash".into(), json!(true));
                }
            }
            ParamKind::Enum { values } => {
                m.insert("values".into(), json!(values));
            }
            ParamKind::Integer { min, max } => {
                if let Some(a) = min {
                    m.insert("min".into(), json!(a));
                }
                if let Some(b) = max {
                    m.insert("max".into(), json!(b));
                }
            }
            ParamKind::Ip { public, .. } => {
                m.insert("public".into(), json!(public));
            }
            ParamKind::Path {
                under,
                must_exist,
                access,
            } => {
                if let Some(u) = under {
                    m.insert("under".into(), json!(u.to_string_lossy()));
                }
                m.insert("access".into(), json!(access.as_str()));
                if *must_exist {
                    m.insert("must_exist".into(), json!(true));
                }
            }
            ParamKind::Bool | ParamKind::Hostname | ParamKind::Timezone => {}
        }
        v
    }
}

/// The message for an integer above every value an `integer` parameter holds.
fn too_large(max: Option<i64>) -> String {
    format!("too large: must be at most {}", max.unwrap_or(i64::MAX))
}

/// The message for an integer below every value an `integer` parameter holds.
fn too_small(min: Option<i64>) -> String {
    format!("too small: must be at least {}", min.unwrap_or(i64::MIN))
}

impl ParamSpec {
    /// True when the request may leave this parameter out.
    #[must_use]
    pub fn is_optional(&self) -> bool {
        self.optional || self.default.is_some()
    }

    /// A JSON description for `regent ops`: type, constraints, `optional`,
    /// `secret`, `default` (never for a secret) and `description`.
    #[must_use]
    pub fn describe(&self) -> Value {
        let mut v = self.kind.describe();
        let m = v.as_object_mut().expect("describe returns an object");
        if self.is_optional() {
            m.insert("optional".into(), json!(true));
        }
        if self.secret {
            m.insert("secret".into(), json!(true));
        }
        if let (Some(d), false) = (&self.default, self.secret) {
            m.insert("default".into(), d.clone());
        }
        if !self.description.is_empty() {
            m.insert("description".into(), json!(self.description));
        }
        v
    }
}

/// Builds the JSON form of a canonical text of the given kind.
pub(crate) fn canonical_json(kind: ValueKind, text: &str) -> Value {
    match kind {
        ValueKind::String => Value::String(text.to_string()),
        ValueKind::Integer => text
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.to_string()), Value::from),
        ValueKind::Bool => Value::Bool(text == "true"),
    }
}

/// Where [`ParamKind::Timezone`] names are looked up.
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Checks a time zone name against the time zone files beneath `zoneinfo`:
/// 1 to 64 bytes, components of `[A-Za-z0-9_+-]` joined by `/` (so no `.`,
/// `..`, empty component or absolute path), not `localtime` or `posixrules`
/// (links to the current zone, not zones), naming a regular file that starts
/// with the `TZif` magic. Returns the name.
pub fn check_timezone(zoneinfo: &Path, name: &str) -> Result<String, String> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b))
    };
    if name.is_empty() || name.len() > 64 || !name.split('/').all(component_ok) {
        return Err("not a valid time zone name (such as Europe/Paris or UTC)".into());
    }
    if matches!(name, "localtime" | "posixrules") {
        return Err("not a time zone".into());
    }
    let mut magic = [0u8; 4];
    let file = std::fs::File::open(zoneinfo.join(name));
    let is_zone = file.is_ok_and(|mut f| {
        f.metadata().is_ok_and(|m| m.is_file())
            && std::io::Read::read_exact(&mut f, &mut magic).is_ok()
            && &magic == b"TZif"
    });
    if is_zone {
        Ok(name.to_string())
    } else {
        Err(format!("no such time zone in {}", zoneinfo.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(pattern: Option<&str>, min: usize, max: usize, dash: bool) -> ParamKind {
        ParamKind::String {
            pattern: pattern.map(|p| Pattern::new(p).unwrap()),
            min_len: min,
            max_len: max,
            allow_leading_dash: dash,
        }
    }

    /// Runs a table: (value, expected canonical text or None for rejection).
    fn table(kind: &ParamKind, cases: &[(Value, Option<&str>)]) {
        for (v, want) in cases {
            let got = kind.check(v);
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "{} {v}", kind.type_name()),
                None => assert!(got.is_err(), "{} {v} should be rejected", kind.type_name()),
            }
        }
    }

    #[test]
    fn string_type() {
        let k = string(Some("[a-z]+"), 0, 10, false);
        table(
            &k,
            &[
                (json!("abc"), Some("abc")),
                (json!("abc\nrm"), None),
                (json!("abc\n"), None),
                (json!("\nabc"), None),
                (json!("ABC"), None),
                (json!("abcdefghijk"), None),
                (json!(""), None),
                (json!(5), None),
                (json!(null), None),
                (json!(["abc"]), None),
            ],
        );
        // Alternation must not escape the anchoring.
        let alt = string(Some("a|b"), 0, 10, false);
        table(
            &alt,
            &[
                (json!("a"), Some("a")),
                (json!("ab"), None),
                (json!("xa"), None),
                (json!("bx"), None),
            ],
        );
        // Multi-line flag inside the pattern does not change the outer anchors.
        let ml = string(Some("(?m)^[a-z]+$"), 0, 100, false);
        table(
            &ml,
            &[(json!("abc"), Some("abc")), (json!("abc\nrm"), None)],
        );
        // Without a pattern: control characters and NUL refused, leading dash refused.
        let free = string(None, 2, 5, false);
        table(
            &free,
            &[
                (json!("héllo"), Some("héllo")),
                (json!("a"), None),
                (json!("a\tb"), None),
                (json!("a\u{0}b"), None),
                (json!("-rf"), None),
                (json!("a-b"), Some("a-b")),
            ],
        );
        let dash = string(Some(".*"), 0, 5, true);
        table(&dash, &[(json!("-n"), Some("-n")), (json!("a\u{0}"), None)]);
    }

    #[test]
    fn strings_without_a_pattern_refuse_invisible_and_bidi_characters() {
        let free = string(None, 0, 100, false);
        for bad in [
            "invoice_\u{202e}fdp.exe",
            "ro\u{200b}ot",
            "a\u{2066}b",
            "\u{feff}x",
            "soft\u{ad}hyphen",
            "a\u{2028}b",
            "a\u{2029}b",
            "tag\u{e0041}",
        ] {
            let e = free.check(&json!(bad)).unwrap_err();
            assert!(
                e.contains("invisible or bidirectional format characters") && e.contains("pattern"),
                "{bad:?}: {e}"
            );
            // The reason never repeats the value.
            assert!(!e.contains(bad), "{e}");
        }
        table(
            &free,
            &[
                (json!("مرحبا"), Some("مرحبا")),
                (json!("日本語 text"), Some("日本語 text")),
                (json!("a\u{a0}b"), Some("a\u{a0}b")),
            ],
        );
        // A declared pattern decides on its own.
        let any = string(Some(".*"), 0, 100, false);
        table(&any, &[(json!("a\u{202e}b"), Some("a\u{202e}b"))]);
    }

    #[test]
    fn integers_out_of_range_say_so() {
        let port = ParamKind::Integer {
            min: Some(1),
            max: Some(65535),
        };
        let open = ParamKind::Integer {
            min: None,
            max: None,
        };
        let msg = |k: &ParamKind, text: &str| {
            let v: Value = serde_json::from_str(text).unwrap();
            k.check(&v).unwrap_err()
        };
        // Beyond i64 (u64 range), beyond u64 (parsed as a float), and written with
        // an exponent: too large, not "a fraction".
        for text in ["18446744073709551615", "1e30", "100000000000000000000000"] {
            assert_eq!(
                msg(&port, text),
                "too large: must be at most 65535",
                "{text}"
            );
            assert_eq!(
                msg(&open, text),
                "too large: must be at most 9223372036854775807",
                "{text}"
            );
        }
        for text in ["-1e30", "-9223372036854775809"] {
            assert_eq!(msg(&port, text), "too small: must be at least 1", "{text}");
            assert_eq!(
                msg(&open, text),
                "too small: must be at least -9223372036854775808",
                "{text}"
            );
        }
        assert_eq!(msg(&port, "1.5"), "expected an integer, not a fraction");
        assert_eq!(
            msg(&port, "1e3"),
            "expected an integer written without a fraction or exponent"
        );
        assert_eq!(msg(&port, "70000"), "must be between 1 and 65535");
    }

    #[test]
    fn enum_type() {
        let k = ParamKind::Enum {
            values: vec!["nginx".into(), "postgresql".into()],
        };
        table(
            &k,
            &[
                (json!("nginx"), Some("nginx")),
                (json!("NGINX"), None),
                (json!("nginx "), None),
                (json!("ssh"), None),
                (json!(1), None),
            ],
        );
    }

    #[test]
    fn integer_type() {
        let k = ParamKind::Integer {
            min: Some(-5),
            max: Some(65535),
        };
        table(
            &k,
            &[
                (json!(22), Some("22")),
                (json!(-5), Some("-5")),
                (json!(65535), Some("65535")),
                (json!(65536), None),
                (json!(-6), None),
                (json!(1.5), None),
                (json!(1.0), None),
                (json!("1"), None),
                (json!(true), None),
                (json!(u64::MAX), None),
            ],
        );
        let open = ParamKind::Integer {
            min: None,
            max: None,
        };
        table(
            &open,
            &[
                (json!(i64::MIN), Some("-9223372036854775808")),
                (json!(null), None),
            ],
        );
    }

    #[test]
    fn bool_type() {
        table(
            &ParamKind::Bool,
            &[
                (json!(true), Some("true")),
                (json!(false), Some("false")),
                (json!("true"), None),
                (json!(1), None),
            ],
        );
    }

    #[test]
    fn ip_types() {
        let v4p = ParamKind::Ip {
            version: IpVersion::V4,
            public: true,
        };
        table(
            &v4p,
            &[
                (json!("8.8.8.8"), Some("8.8.8.8")),
                (json!("10.0.0.1"), None),
                (json!("172.31.255.255"), None),
                (json!("172.32.0.0"), Some("172.32.0.0")),
                (json!("100.64.0.1"), None),
                (json!("127.0.0.1"), None),
                (json!("2606:4700::1111"), None),
                (json!("08.8.8.8"), None),
                (json!("8.8.8"), None),
                (json!("8.8.8.8 "), None),
                (json!(" 8.8.8.8"), None),
                (json!("8.8.8.8/32"), None),
                (json!("0x8.8.8.8"), None),
                (json!(134744072), None),
            ],
        );
        let err = v4p.check(&json!("192.168.1.1")).unwrap_err();
        assert!(err.starts_with("not a public IPv4 address"), "{err}");
        let v4 = ParamKind::Ip {
            version: IpVersion::V4,
            public: false,
        };
        table(&v4, &[(json!("10.0.0.1"), Some("10.0.0.1"))]);
        let v6p = ParamKind::Ip {
            version: IpVersion::V6,
            public: true,
        };
        table(
            &v6p,
            &[
                (
                    json!("2606:4700:4700:0:0:0:0:1111"),
                    Some("2606:4700:4700::1111"),
                ),
                (json!("2606:4700:4700::1111"), Some("2606:4700:4700::1111")),
                (json!("fd00::1"), None),
                (json!("fe80::1"), None),
                (json!("fe80::1%eth0"), None),
                (json!("2001:db8::1"), None),
                (json!("::ffff:8.8.8.8"), None),
                (json!("8.8.8.8"), None),
                (json!("[2606:4700::1]"), None),
            ],
        );
        let any = ParamKind::Ip {
            version: IpVersion::Any,
            public: true,
        };
        table(
            &any,
            &[
                (json!("8.8.8.8"), Some("8.8.8.8")),
                (json!("2606:4700::1"), Some("2606:4700::1")),
                (json!("::1"), None),
                (json!("example.org"), None),
            ],
        );
    }

    #[test]
    fn timezone_type() {
        table(
            &ParamKind::Timezone,
            &[
                (json!("Europe/Paris"), Some("Europe/Paris")),
                (json!("UTC"), Some("UTC")),
                (
                    json!("America/Argentina/Buenos_Aires"),
                    Some("America/Argentina/Buenos_Aires"),
                ),
                (json!("Etc/GMT+5"), Some("Etc/GMT+5")),
                (json!("Europe/Nowhere"), None),
                (json!("Europe"), None),
                (json!("../../etc/passwd"), None),
                (json!("/etc/localtime"), None),
                (json!("localtime"), None),
                (json!("Europe//Paris"), None),
                (json!(""), None),
                (json!(3), None),
            ],
        );
    }

    #[test]
    fn hostname_type() {
        table(
            &ParamKind::Hostname,
            &[
                (json!("Example.ORG"), Some("example.org")),
                (json!("example.org."), None),
                (json!("-x.org"), None),
                (json!("10.0.0.1"), None),
                (json!("a b"), None),
                (json!(""), None),
            ],
        );
    }

    #[test]
    fn path_type() {
        let k = ParamKind::Path {
            under: Some(PathBuf::from("/srv/data")),
            must_exist: false,
            access: PathAccess::Create,
        };
        table(
            &k,
            &[
                (json!("/srv/data/x"), Some("/srv/data/x")),
                (json!("/srv/data//x/./y/"), Some("/srv/data/x/y")),
                (json!("/srv/data"), Some("/srv/data")),
                (json!("/srv/data/../../etc/shadow"), None),
                (json!("/srv/data/x/.."), None),
                (json!("/srv/database"), None),
                (json!("/etc/passwd"), None),
                (json!("srv/data/x"), None),
                (json!("/srv/data/\u{0}"), None),
                (json!(1), None),
            ],
        );
    }

    #[test]
    fn reasons_never_contain_the_value() {
        let k = string(Some("[a-z]+"), 0, 100, false);
        let err = k.check(&json!("HUNTER2SECRET")).unwrap_err();
        assert!(!err.contains("HUNTER2SECRET"), "{err}");
        let ip = ParamKind::Ip {
            version: IpVersion::V4,
            public: true,
        };
        let err = ip.check(&json!("not-an-ip-SECRET")).unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
    }
}
