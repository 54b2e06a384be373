//! Requests: `{"secret", "op", "data"}` or `{"secret", "uid", "data"}`.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret as sent on the wire. Never printed, zeroed when dropped.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The bytes, for a constant-time comparison or for sending.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A parsed request. `data` is `Value::Null` when the key is missing or null.
#[derive(Debug, Clone)]
pub enum Request {
    /// A new operation.
    New {
        /// The socket secret, if the client sent one.
        secret: Option<Secret>,
        /// The operation name.
        op: String,
        /// The operation's data.
        data: Value,
        /// *Extension*: `"dry_run": true` asks for what the operation would do,
        /// doing nothing. Sent only to a service whose `regent.ops` lists the
        /// operation with `"dry_run": true`; an operation that cannot do one
        /// answers `bad_request`. Absent, `null` and `false` are the same.
        dry_run: bool,
    },
    /// The next step of an operation held for out-of-channel authorization.
    Continue {
        /// The socket secret, if the client sent one.
        secret: Option<Secret>,
        /// The uid from the pending response.
        uid: String,
        /// The step's data, e.g. `{"code": "123456"}`.
        data: Value,
    },
}

/// Why a line is not a request. Every variant answers `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Not valid UTF-8 JSON (the parser's message, which never echoes input).
    NotJson(String),
    /// Valid JSON that is not an object.
    NotObject,
    /// A known key has the wrong type.
    WrongType(&'static str, &'static str),
    /// Both `op` and `uid`.
    Both,
    /// Neither `op` nor `uid`.
    Neither,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NotJson(e) => write!(f, "Invalid message, could not decode JSON: {e}"),
            RequestError::NotObject => f.write_str("Invalid message: not a JSON object"),
            RequestError::WrongType(k, t) => write!(f, "Invalid message: '{k}' must be {t}"),
            RequestError::Both => f.write_str("Invalid message: 'op' and 'uid' are exclusive"),
            RequestError::Neither => f.write_str("Invalid message: operation not found"),
        }
    }
}

impl std::error::Error for RequestError {}

impl Request {
    /// Parse one request line (without its newline). Unknown keys are ignored; a
    /// repeated key counts once, with its last value (as in a JSON object).
    pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
        // serde_json's messages name a position and a category, never the input;
        // the visitors below accept every type, so no message quotes a value.
        let not_json = |e: serde_json::Error| RequestError::NotJson(e.to_string());
        let mut de = serde_json::Deserializer::from_slice(line);
        let top = de.deserialize_any(TopVisitor).map_err(not_json)?;
        de.end().map_err(not_json)?;
        let Some(mut fields) = top else {
            return Err(RequestError::NotObject);
        };
        let secret = take_string(&mut fields.secret, "secret")?.map(Secret);
        let op = take_string(&mut fields.op, "op")?;
        let uid = take_string(&mut fields.uid, "uid")?;
        let data = fields.data.take().unwrap_or(Value::Null);
        let dry_run = match fields.dry_run.take() {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(RequestError::WrongType("dry_run", "a boolean")),
        };
        match (op, uid) {
            (Some(op), None) => Ok(Request::New {
                secret,
                op,
                data,
                dry_run,
            }),
            (None, Some(uid)) => Ok(Request::Continue { secret, uid, data }),
            (Some(_), Some(_)) => Err(RequestError::Both),
            (None, None) => Err(RequestError::Neither),
        }
    }

    /// The secret the client sent, if any.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Request::New { secret, .. } | Request::Continue { secret, .. } => secret.as_ref(),
        }
    }

    /// Encode as a wire line (with its trailing newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut map = Map::new();
        let (secret, data) = match self {
            Request::New {
                secret,
                op,
                data,
                dry_run,
            } => {
                map.insert("op".into(), Value::String(op.clone()));
                if *dry_run {
                    map.insert("dry_run".into(), Value::Bool(true));
                }
                (secret, data)
            }
            Request::Continue { secret, uid, data } => {
                map.insert("uid".into(), Value::String(uid.clone()));
                (secret, data)
            }
        };
        if let Some(s) = secret {
            map.insert("secret".into(), Value::String(s.0.clone()));
        }
        map.insert("data".into(), data.clone());
        let mut out = serde_json::to_vec(&Value::Object(map)).expect("a JSON value serialises");
        out.push(b'\n');
        out
    }
}

/// The keys of a request object, each with its last value.
#[derive(Default)]
struct Fields {
    secret: Option<Value>,
    op: Option<Value>,
    uid: Option<Value>,
    data: Option<Value>,
    dry_run: Option<Value>,
}

impl Drop for Fields {
    fn drop(&mut self) {
        // A request abandoned halfway (bad JSON after the secret) still wipes it.
        if let Some(secret) = &mut self.secret {
            wipe(secret);
        }
    }
}

/// The top-level value: `Some` fields for an object, `None` for anything else,
/// read straight from the line without building a map of every key.
struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Option<Fields>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Secret => &mut fields.secret,
                Key::Op => &mut fields.op,
                Key::Uid => &mut fields.uid,
                Key::Data => &mut fields.data,
                Key::DryRun => &mut fields.dry_run,
                Key::Other => {
                    map.next_value::<Checked>()?;
                    continue;
                }
            };
            let value = map.next_value::<Value>()?;
            if let Some(mut earlier) = slot.replace(value) {
                // A repeated secret may still be a secret: wipe what we can.
                if key == Key::Secret {
                    wipe(&mut earlier);
                }
            }
        }
        Ok(Some(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A value read in full and dropped: unlike `IgnoredAny`, which skips a value
/// without checking it, this holds an ignored value to the same rules as any
/// other (UTF-8 and surrogate pairs in strings, numbers in range), so a line is
/// refused or accepted whatever key the bad part sits under. Nothing is kept.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Checked, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
}

/// A key of a request object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Secret,
    Op,
    Uid,
    Data,
    DryRun,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "secret" => Key::Secret,
                    "op" => Key::Op,
                    "uid" => Key::Uid,
                    "data" => Key::Data,
                    "dry_run" => Key::DryRun,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Best effort: zero a value's string bytes before it is dropped.
fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(m) => m.values_mut().for_each(wipe),
        _ => {}
    }
}

fn take_string(
    slot: &mut Option<Value>,
    key: &'static str,
) -> Result<Option<String>, RequestError> {
    match slot.take() {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(mut other) => {
            // A mistyped secret may still be a secret: wipe what we can.
            if key == "secret" {
                wipe(&mut other);
            }
            Err(RequestError::WrongType(key, "a string"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_client_request_parses() {
        let r = Request::parse(br#"{"secret": "123456", "op": "whoami", "data": null}"#).unwrap();
        match r {
            Request::New {
                secret,
                op,
                data,
                dry_run,
            } => {
                assert!(!dry_run);
                assert_eq!(secret.unwrap().expose(), "123456");
                assert_eq!(op, "whoami");
                assert_eq!(data, Value::Null);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn continue_request_parses_and_unknown_keys_are_ignored() {
        let r = Request::parse(br#"{"uid": "abc", "data": {"code": "1"}, "x": [1]}"#).unwrap();
        match r {
            Request::Continue { secret, uid, data } => {
                assert!(secret.is_none());
                assert_eq!(uid, "abc");
                assert_eq!(data, json!({"code": "1"}));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_requests_are_rejected_with_a_reason() {
        assert!(matches!(
            Request::parse(b"{"),
            Err(RequestError::NotJson(_))
        ));
        assert!(matches!(
            Request::parse(b"\xff\xfe"),
            Err(RequestError::NotJson(_))
        ));
        assert_eq!(
            Request::parse(b"[1,2]").unwrap_err(),
            RequestError::NotObject
        );
        assert_eq!(
            Request::parse(b"\"op\"").unwrap_err(),
            RequestError::NotObject
        );
        assert_eq!(
            Request::parse(br#"{"op": 1}"#).unwrap_err(),
            RequestError::WrongType("op", "a string")
        );
        assert_eq!(
            Request::parse(br#"{"secret": {"a": 1}, "op": "x"}"#).unwrap_err(),
            RequestError::WrongType("secret", "a string")
        );
        assert_eq!(
            Request::parse(br#"{"op": "a", "uid": "b"}"#).unwrap_err(),
            RequestError::Both
        );
        assert_eq!(
            Request::parse(br#"{"secret": "s"}"#).unwrap_err(),
            RequestError::Neither
        );
    }

    /// The reading of a request through a whole `serde_json::Value`, which
    /// [`Request::parse`] must match on every input.
    fn parse_via_value(line: &[u8]) -> Result<Request, RequestError> {
        let value: Value =
            serde_json::from_slice(line).map_err(|e| RequestError::NotJson(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(RequestError::NotObject);
        };
        let mut take = |k: &'static str| -> Result<Option<String>, RequestError> {
            match map.remove(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(RequestError::WrongType(k, "a string")),
            }
        };
        let secret = take("secret")?.map(Secret);
        let op = take("op")?;
        let uid = take("uid")?;
        let data = map.remove("data").unwrap_or(Value::Null);
        let dry_run = match map.remove("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(RequestError::WrongType("dry_run", "a boolean")),
        };
        match (op, uid) {
            (Some(op), None) => Ok(Request::New {
                secret,
                op,
                data,
                dry_run,
            }),
            (None, Some(uid)) => Ok(Request::Continue { secret, uid, data }),
            (Some(_), Some(_)) => Err(RequestError::Both),
            (None, None) => Err(RequestError::Neither),
        }
    }

    #[test]
    fn parse_matches_reading_a_whole_json_value() {
        let lines: &[&[u8]] = &[
            br#"{"secret": "s", "op": "a", "data": {"x": [1, 2]}}"#,
            br#"{"op": "a", "op": "b", "data": 1, "data": null}"#,
            br#"{"secret": 1, "secret": "s", "op": "a"}"#,
            br#"{"secret": "s", "secret": 1, "op": "a"}"#,
            br#"{"op": null, "uid": "u"}"#,
            br#"{"op": "a", "uid": null, "extra": {"deep": [[[]]]}}"#,
            br#"{"uid": 5}"#,
            br#"{"op": "\u00e9\n", "data": "\ud83d\ude00"}"#,
            br#"{"\u006fp": "escaped key"}"#,
            br#"{}"#,
            br#"[]"#,
            br#"[{"op": "a"}]"#,
            br#"null"#,
            br#"true"#,
            br#"-1.5e3"#,
            br#"18446744073709551615"#,
            br#""op""#,
            br#"{"op": "a"} x"#,
            br#"{"op": "a"}{"op": "b"}"#,
            br#"{"op": "a",}"#,
            br#"{"op" "a"}"#,
            b"{\"op\": \"a\0\"}",
            b"",
            b"   ",
            b"\xff",
            // Found by fuzzing: an ignored key's value was skipped unchecked, so
            // these lines were accepted although they are not UTF-8 JSON.
            br#"{"op": "a", "x": 1e400}"#,
            br#"{"op": "a", "x": "\ud800"}"#,
            br#"{"op": "a", "x": {"\udc00": 1}}"#,
            b"{\"op\": \"a\", \"x\": \"\xff\"}",
            b"{\"op\": \"a\", \"x\": [\"\xed\xa0\x80\"]}",
            br#"[1e400]"#,
            br#"[{"a": "\ud800"}]"#,
        ];
        for line in lines {
            let ours = Request::parse(line);
            let reference = parse_via_value(line);
            assert_eq!(
                format!("{ours:?}"),
                format!("{reference:?}"),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_bad_value_under_an_ignored_key_is_still_not_json() {
        // Found by fuzzing: these were accepted as `{"op": "a"}`.
        let lines: &[&[u8]] = &[
            br#"{"op": "a", "x": 1e400}"#,
            br#"{"x": "\ud800", "op": "a"}"#,
            b"{\"op\": \"a\", \"x\": \"\xff\"}",
            b"{\"op\": \"a\", \"x\": {\"k\": [\"\xc0\xaf\"]}}",
        ];
        for line in lines {
            assert!(
                matches!(Request::parse(line), Err(RequestError::NotJson(_))),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // Valid values under unknown keys are still ignored.
        let r = Request::parse(br#"{"op": "a", "x": {"k": ["\ud83d\ude00", 1e300, null]}}"#);
        assert!(matches!(r, Ok(Request::New { op, .. }) if op == "a"));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut line = String::from(r#"{"op": "x", "data": "#);
        line.push_str(&"[".repeat(100_000));
        line.push_str(&"]".repeat(100_000));
        line.push('}');
        assert!(matches!(
            Request::parse(line.as_bytes()),
            Err(RequestError::NotJson(_))
        ));
    }

    #[test]
    fn error_messages_never_echo_the_secret() {
        let e = Request::parse(br#"{"secret": "hunter2-very-secret", "op": 7}"#).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let e = Request::parse(br#"{"secret": "hunter2-very-secret" "op": "x"}"#).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn to_line_round_trips() {
        let r = Request::New {
            secret: Some(Secret::new("s")),
            op: "o".into(),
            data: json!({"a": 1}),
            dry_run: false,
        };
        let line = r.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(!String::from_utf8_lossy(&line).contains("dry_run"));
        let back = Request::parse(&line[..line.len() - 1]).unwrap();
        assert!(matches!(back, Request::New { op, dry_run: false, .. } if op == "o"));
        let dry = Request::New {
            secret: None,
            op: "o".into(),
            data: Value::Null,
            dry_run: true,
        };
        let line = dry.to_line();
        let back = Request::parse(&line[..line.len() - 1]).unwrap();
        assert!(matches!(back, Request::New { dry_run: true, .. }));
    }

    #[test]
    fn dry_run_is_a_boolean() {
        for (line, dry) in [
            (r#"{"op": "o", "dry_run": true}"#, true),
            (r#"{"op": "o", "dry_run": false}"#, false),
            (r#"{"op": "o", "dry_run": null}"#, false),
            (r#"{"op": "o"}"#, false),
        ] {
            let r = Request::parse(line.as_bytes()).unwrap();
            assert!(
                matches!(r, Request::New { dry_run, .. } if dry_run == dry),
                "{line}"
            );
        }
        let e = Request::parse(br#"{"op": "o", "dry_run": "yes"}"#).unwrap_err();
        assert_eq!(e, RequestError::WrongType("dry_run", "a boolean"));
    }
}

#[cfg(test)]
mod float_tests {
    use super::*;

    /// Regression (found by the fuzzer): a number beyond 64-bit integers is a
    /// float, and it must come back the same after encoding (serde_json's
    /// default float parser can be one bit off; `float_roundtrip` makes it exact).
    #[test]
    fn large_numbers_and_negative_zero_round_trip() {
        let line = br#"{"op": "x", "data": {"n": -92262222222222222222222222222222222337036854775802, "m": -0.0}}"#;
        let req = Request::parse(line).unwrap();
        let encoded = req.to_line();
        let back = Request::parse(&encoded[..encoded.len() - 1]).unwrap();
        let (Request::New { data: a, .. }, Request::New { data: b, .. }) = (&req, &back) else {
            panic!("not a new request");
        };
        assert_eq!(a, b, "{}", String::from_utf8_lossy(&encoded));
    }
}
