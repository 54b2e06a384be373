//! The declarations as written: what serde reads from the TOML, before any
//! semantic check. Every struct denies unknown keys; every field is optional
//! (whether a key is required is a semantic check, so that a missing key and a
//! key of the wrong type are reported alike wherever they occur) and
//! `Spanned` (a later check reports at its location).
//!
//! The names of a struct's fields are the keys its table accepts: serde's
//! unknown-field error lists them, and that list is the one "did you mean" picks
//! from. There is no other list of keys.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Unexpected, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// An optional key.
pub(super) type Opt<T> = Option<Spanned<T>>;

/// A list of values, each with its location.
pub(super) type List<T> = Vec<Spanned<T>>;

/// A table read into the struct `T` (only a table: serde would also read a
/// struct from an array).
pub(super) struct Table<T>(pub T);

impl<T> Deref for Table<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Table<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Table<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Table)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// How the TOML deserialiser hands a datetime over: a table with this one key.
pub(super) const DATETIME_KEY: &str = "$__toml_private_datetime";

/// A table of declarations by name (`[operations.NAME]`, `params.NAME`), each
/// name with its location.
pub(super) struct Named<T>(BTreeMap<Spanned<String>, Spanned<T>>);

impl<T> Deref for Named<T> {
    type Target = BTreeMap<Spanned<String>, Spanned<T>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    if key.get_ref() == DATETIME_KEY {
                        return Err(de::Error::invalid_type(
                            Unexpected::Other("datetime"),
                            &self,
                        ));
                    }
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(Named(out))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub service: Opt<Table<RawService>>,
    /// Each operation is read in a second step, on its own (an error in one
    /// does not make the others read again).
    pub operations: Opt<Named<IgnoredAny>>,
}

/// `[service]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub socket: Opt<String>,
    pub socket_mode: Opt<Mode>,
    pub socket_owner: Opt<Who>,
    pub socket_group: Opt<Who>,
    pub secret_file: Opt<String>,
    pub max_line: Opt<Size>,
    pub line_timeout: Opt<Period>,
    pub idle_timeout: Opt<Period>,
    pub max_connections: Opt<i64>,
    pub max_connections_per_uid: Opt<i64>,
    pub reserved_connections: Opt<i64>,
    pub max_runs: Opt<i64>,
    pub write_timeout: Opt<Period>,
    pub rate_limit_hold: Opt<Period>,
    pub threads: Opt<i64>,
    pub log_format: Opt<String>,
    pub store: Opt<String>,
    pub admin_group: Opt<Who>,
    pub allow_self_approval: Opt<bool>,
    pub max_pending: Opt<i64>,
    pub max_pending_per_uid: Opt<i64>,
    pub command_path: Opt<String>,
    pub admin_clients: Opt<List<String>>,
    pub smtp: Opt<Table<RawSmtp>>,
    pub tcp: Opt<Table<RawTcp>>,
    pub sockets: Opt<List<Table<RawSocket>>>,
}

/// One `[[service.sockets]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSocket {
    pub path: Opt<String>,
    pub mode: Opt<Mode>,
    pub owner: Opt<Who>,
    pub group: Opt<Who>,
    pub operations: Opt<List<String>>,
    pub admin: Opt<bool>,
}

/// `[service.smtp]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub host: Opt<String>,
    pub port: Opt<i64>,
    pub security: Opt<String>,
    pub from: Opt<String>,
    pub credentials_file: Opt<String>,
    pub timeout: Opt<Period>,
}

/// `[service.tcp]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcp {
    pub listen: Opt<OneOrMany>,
    pub cert: Opt<String>,
    pub key: Opt<String>,
    pub client_ca: Opt<String>,
    pub crl: Opt<String>,
    pub handshake_timeout: Opt<Period>,
    pub max_connections: Opt<i64>,
}

/// One string, or a list of strings (`listen = "a"` or `listen = ["a", "b"]`).
pub(super) struct OneOrMany(pub List<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                // The whole value's span is the caller's; one string has no other.
                Ok(OneOrMany(vec![Spanned::new(0..0, v.to_string())]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Spanned<String>>()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[operations.NAME]`, its least-privilege keys included.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperation {
    pub description: Opt<String>,
    pub command: Opt<List<String>>,
    pub service: Opt<Table<RawServiceModule>>,
    pub packages: Opt<Table<RawPackages>>,
    pub augeas: Opt<Table<RawAugeas>>,
    pub params: Opt<Named<RawParam>>,
    pub stdin: Opt<String>,
    pub allow: Opt<Table<RawAllow>>,
    pub timeout: Opt<Period>,
    pub output: Opt<String>,
    pub max_output: Opt<Size>,
    pub auth: Opt<List<String>>,
    pub approvers: Opt<List<String>>,
    pub approve: Opt<Table<RawAllow>>,
    pub pending_ttl: Opt<Period>,
    pub max_attempts: Opt<i64>,
    pub max_pending_per_uid: Opt<i64>,
    pub run_as: Opt<RawRunAs>,
    pub capabilities: Opt<List<String>>,
    pub sandbox: Opt<Table<RawSandbox>>,
    pub limits: Opt<Table<RawLimits>>,
    pub on_unsupported: Opt<String>,
    pub concurrency: Opt<i64>,
}

/// `service = { unit, action }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServiceModule {
    pub unit: Opt<String>,
    pub action: Opt<String>,
    pub backend: Opt<String>,
}

/// `packages = { install | remove | update | status = [...] }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPackages {
    pub install: Opt<List<String>>,
    pub remove: Opt<List<String>>,
    pub update: Opt<List<String>>,
    pub status: Opt<List<String>>,
}

/// `augeas = { lens, file, set, remove, get, match, actions }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAugeas {
    pub lens: Opt<String>,
    pub file: Opt<String>,
    pub set: Opt<Named<String>>,
    pub remove: Opt<List<String>>,
    pub get: Opt<List<String>>,
    pub r#match: Opt<List<String>>,
    pub actions: Opt<List<Table<RawAugAction>>>,
}

/// One element of `augeas.actions`: one action key, and the keys it takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAugAction {
    pub get: Opt<String>,
    pub r#match: Opt<String>,
    pub set: Opt<String>,
    pub setm: Opt<String>,
    pub insert: Opt<String>,
    pub r#move: Opt<String>,
    pub remove: Opt<String>,
    pub value: Opt<String>,
    pub sub: Opt<String>,
    pub before: Opt<String>,
    pub after: Opt<String>,
    pub to: Opt<String>,
}

/// `allow` and `approve`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    pub users: Opt<List<Who>>,
    pub groups: Opt<List<Who>>,
    pub clients: Opt<List<String>>,
}

/// `run_as = { user, group }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunAsTable {
    pub user: Opt<Who>,
    pub group: Opt<Who>,
}

/// `sandbox`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSandbox {
    pub read: Opt<List<String>>,
    pub write: Opt<List<String>>,
    pub allow: Opt<List<String>>,
}

/// `limits`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub cpu: Opt<Period>,
    pub memory: Opt<Size>,
    pub open_files: Opt<i64>,
    pub processes: Opt<i64>,
}

/// Declares the table of one parameter type: the keys every type takes, then
/// the type's own keys (`name: Type,`). A key of another type is refused with
/// "does not apply to type", found from these structs' fields.
macro_rules! param_table {
    ($(#[$doc:meta])* $name:ident { $($key:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            /// Read by [`ParamHead`].
            #[serde(rename = "type")]
            pub _ty: Option<IgnoredAny>,
            pub description: Opt<String>,
            pub secret: Opt<bool>,
            pub optional: Opt<bool>,
            pub default: Opt<DefaultValue>,
            $(pub $key: Opt<$ty>,)*
        }

        impl $name {
            /// Takes out the keys every type has.
            pub fn common(&mut self) -> Common {
                Common {
                    description: self.description.take(),
                    secret: self.secret.take(),
                    optional: self.optional.take(),
                    default: self.default.take(),
                }
            }
        }
    };
}

/// The keys every parameter type takes (besides `type`).
pub(super) struct Common {
    pub description: Opt<String>,
    pub secret: Opt<bool>,
    pub optional: Opt<bool>,
    pub default: Opt<DefaultValue>,
}

param_table! {
    /// `type = "string"`.
    StringParam { pattern: String, min_len: i64, max_len: i64, allow_leading_dash: bool, }
}
param_table! {
    /// `type = "enum"`.
    EnumParam { values: List<String>, }
}
param_table! {
    /// `type = "integer"`.
    IntegerParam { min: i64, max: i64, }
}
param_table! {
    /// `type = "ip"`, `"ipv4"`, `"ipv6"`.
    IpParam { public: bool, }
}
param_table! {
    /// `type = "path"`.
    PathParam { under: String, must_exist: bool, access: String, }
}
param_table! {
    /// `type = "bool"`, `"hostname"`, `"timezone"`: the common keys only.
    PlainParam {}
}

/// The `type` of a parameter table, read first to choose its struct; the other
/// keys are read by that struct.
#[derive(Deserialize)]
pub(super) struct ParamHead {
    #[serde(rename = "type")]
    pub ty: Opt<String>,
}

/// A parameter: the shorthand `params.NAME = "hostname"`, or a table read in a
/// second step into the struct of its type (its keys depend on the type).
/// Anything else is refused in that step, with the parameter still declared (a
/// placeholder naming it is not reported as well).
pub(super) enum RawParam {
    Short(String),
    Other,
}

impl<'de> Deserialize<'de> for RawParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawParam;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawParam, E> {
                Ok(RawParam::Short(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawParam, A::Error> {
                IgnoredAny::deserialize(MapAccessDeserializer::new(map)).map(|_| RawParam::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<RawParam, A::Error> {
                IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(|_| RawParam::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawParam, E> {
                Ok(RawParam::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawParam, E> {
                Ok(RawParam::Other)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<RawParam, E> {
                Ok(RawParam::Other)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<RawParam, E> {
                Ok(RawParam::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawParam, E> {
                Ok(RawParam::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawParam, E> {
                Ok(RawParam::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `run_as`: `"user"`, `"user:group"`, a uid, or `{ user, group }`.
pub(super) enum RawRunAs {
    Text(String),
    Id(i64),
    Table(RawRunAsTable),
}

impl<'de> Deserialize<'de> for RawRunAs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRunAs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"user\", \"user:group\", a uid or { user, group }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRunAs, E> {
                Ok(RawRunAs::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawRunAs, E> {
                Ok(RawRunAs::Id(v))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawRunAs, E> {
                Err(E::custom(OUT_OF_RANGE))
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<RawRunAs, E> {
                Err(E::custom(OUT_OF_RANGE))
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<RawRunAs, E> {
                Err(E::custom(OUT_OF_RANGE))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRunAs, A::Error> {
                RawRunAsTable::deserialize(MapAccessDeserializer::new(map))
                    .map(RawRunAs::Table)
                    .map_err(|e| {
                        // A datetime comes as a table with one odd key.
                        if e.to_string().contains(DATETIME_KEY) {
                            de::Error::invalid_type(Unexpected::Other("datetime"), &self)
                        } else {
                            e
                        }
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// The message for an integer beyond 64 bits.
pub(super) const OUT_OF_RANGE: &str = "integer is out of range";

/// A string, integer, float or boolean, as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Str(String),
    Int(i64),
    /// An integer beyond 64 bits, as its digits.
    Big(String),
    Float(f64),
    Bool(bool),
}

/// Reads a [`Scalar`], refusing floats and booleans unless `any`.
struct ScalarVisitor {
    expecting: &'static str,
    any: bool,
}

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(i64::try_from(v).map_or_else(|_| Scalar::Big(v.to_string()), Scalar::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Big(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(Scalar::Big(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        if self.any {
            Ok(Scalar::Float(v))
        } else {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        if self.any {
            Ok(Scalar::Bool(v))
        } else {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
    }
}

/// Declares a value written as a string or an integer, whose meaning a later
/// check gives (`expecting` names it in a wrong-type error).
macro_rules! scalar {
    ($(#[$doc:meta])* $name:ident, $expecting:expr, $any:expr) => {
        $(#[$doc])*
        pub(super) struct $name(pub Scalar);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ScalarVisitor {
                    expecting: $expecting,
                    any: $any,
                })
                .map($name)
            }
        }
    };
}

scalar!(
    /// A duration: `"10s"` (an integer is refused later, with a hint).
    Period,
    "a duration string such as \"10s\"",
    false
);
scalar!(
    /// A size: `"512M"` or a number of bytes.
    Size,
    "a size such as \"512M\" or a number of bytes",
    false
);
scalar!(
    /// A file mode: `"0660"` or `0o660`.
    Mode,
    "an octal mode string such as \"0660\"",
    false
);
scalar!(
    /// A user or group: a name or a numeric id.
    Who,
    "a name or a numeric id",
    false
);
scalar!(
    /// A parameter's default: a string, integer, float or boolean.
    DefaultValue,
    "a string, integer or boolean",
    true
);

#[cfg(test)]
mod tests {
    use super::super::decode::fields;
    use super::*;

    /// The keys an unknown key's diagnostic lists for the table in `text`.
    fn listed(text: &str) -> Vec<String> {
        let d = crate::parse(text, "t").expect_err("zzzzzzzz is no key");
        let line = d
            .iter()
            .find(|d| d.message.starts_with("unknown key 'zzzzzzzz'"))
            .unwrap_or_else(|| panic!("{d}"));
        let list = line.message.split_once("expected one of: ").unwrap().1;
        list.trim_end_matches(')')
            .split(", ")
            .map(String::from)
            .collect()
    }

    /// The keys a table takes are its struct's fields and nothing else: adding
    /// a field is all it takes for the key to be accepted and suggested.
    #[test]
    fn each_table_takes_the_fields_of_its_struct() {
        let op = "[operations.x]\ncommand = [\"echo\", \"{p}\"]\n";
        let param = |ty: &str| format!("{op}params.p = {{ type = \"{ty}\", zzzzzzzz = 1 }}\n");
        let cases: Vec<(String, &[&str])> = vec![
            ("zzzzzzzz = 1\n".into(), fields::<RawConfig>()),
            ("[service]\nzzzzzzzz = 1\n".into(), fields::<RawService>()),
            ("[service.smtp]\nzzzzzzzz = 1\n".into(), fields::<RawSmtp>()),
            ("[service.tcp]\nzzzzzzzz = 1\n".into(), fields::<RawTcp>()),
            (format!("{op}zzzzzzzz = 1\n"), fields::<RawOperation>()),
            (
                format!("{op}allow = {{ zzzzzzzz = 1 }}\n"),
                fields::<RawAllow>(),
            ),
            (
                format!("{op}service = {{ zzzzzzzz = 1 }}\n"),
                fields::<RawServiceModule>(),
            ),
            (
                format!("{op}packages = {{ zzzzzzzz = 1 }}\n"),
                fields::<RawPackages>(),
            ),
            (
                format!("{op}augeas = {{ zzzzzzzz = 1 }}\n"),
                fields::<RawAugeas>(),
            ),
            (
                format!("{op}augeas = {{ actions = [{{ zzzzzzzz = 1 }}] }}\n"),
                fields::<RawAugAction>(),
            ),
            (
                format!("{op}run_as = {{ zzzzzzzz = 1 }}\n"),
                fields::<RawRunAsTable>(),
            ),
            (
                format!("{op}sandbox = {{ zzzzzzzz = 1 }}\n"),
                fields::<RawSandbox>(),
            ),
            (
                format!("{op}limits = {{ zzzzzzzz = 1 }}\n"),
                fields::<RawLimits>(),
            ),
            (param("string"), fields::<StringParam>()),
            (param("enum"), fields::<EnumParam>()),
            (param("integer"), fields::<IntegerParam>()),
            (param("ipv6"), fields::<IpParam>()),
            (param("path"), fields::<PathParam>()),
            (param("hostname"), fields::<PlainParam>()),
        ];
        for (text, want) in cases {
            assert!(!want.is_empty(), "{text}");
            assert_eq!(listed(&text), want, "{text}");
        }
    }
}
