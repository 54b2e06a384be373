//! Responses: success, pending, or error.

use crate::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// What a pending response carries in `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingInfo {
    /// The method of the stage awaited: `totp`, `email`, `approval`, or a custom one.
    pub pending: String,
    /// A sentence for the person at the other end.
    pub message: String,
    /// When the pending request expires, RFC 3339 UTC.
    pub expires_at: String,
    /// Anything else the method wants to say (kept when decoding).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A response, as the service sends it and as a client decodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `{"success": true, "uid": null, "data": ...}`
    Done(Value),
    /// `{"success": true, "uid": "...", "data": {...}}`. A Python Regent service may
    /// put anything in `data`; our service always sends a [`PendingInfo`].
    Pending {
        /// The uid to send with the next step.
        uid: String,
        /// The pending information.
        data: Value,
    },
    /// `{"error": "...", "code": "..."}`. `code` is `None` from a service that
    /// does not send it (the Python original) or sends a word we do not know.
    Error {
        /// The human sentence.
        error: String,
        /// The machine word.
        code: Option<ErrorCode>,
    },
}

/// Why a response line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError(pub String);

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed response: {}", self.0)
    }
}

impl std::error::Error for ResponseError {}

impl Response {
    /// An error response with the code's default sentence.
    pub fn error(code: ErrorCode) -> Response {
        Response::Error {
            error: code.default_message().to_string(),
            code: Some(code),
        }
    }

    /// An error response with a specific sentence.
    pub fn error_with(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Error {
            error: message.into(),
            code: Some(code),
        }
    }

    /// A pending response with our pending information.
    pub fn pending(uid: impl Into<String>, info: &PendingInfo) -> Response {
        Response::Pending {
            uid: uid.into(),
            data: serde_json::to_value(info).expect("PendingInfo serialises"),
        }
    }

    /// The error code, if this is an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Response::Error { code, .. } => *code,
            _ => None,
        }
    }

    /// The JSON value sent on the wire.
    pub fn to_value(&self) -> Value {
        match self {
            Response::Done(data) => json!({"success": true, "uid": null, "data": data}),
            Response::Pending { uid, data } => json!({"success": true, "uid": uid, "data": data}),
            Response::Error { error, code } => match code {
                Some(c) => json!({"error": error, "code": c.as_str()}),
                None => json!({"error": error}),
            },
        }
    }

    /// Encode as a wire line, newline included: the same bytes as serialising
    /// [`to_value`](Self::to_value) (keys in sorted order), written directly.
    pub fn to_line(&self) -> Vec<u8> {
        /// `{"data","success","uid"}`, in the key order of a JSON map.
        #[derive(Serialize)]
        struct Success<'a> {
            data: &'a Value,
            success: bool,
            uid: Option<&'a str>,
        }
        /// `{"code","error"}`, in the key order of a JSON map.
        #[derive(Serialize)]
        struct Failure<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            code: Option<&'static str>,
            error: &'a str,
        }
        let mut out = Vec::with_capacity(64);
        let written = match self {
            Response::Done(data) => serde_json::to_writer(
                &mut out,
                &Success {
                    data,
                    success: true,
                    uid: None,
                },
            ),
            Response::Pending { uid, data } => serde_json::to_writer(
                &mut out,
                &Success {
                    data,
                    success: true,
                    uid: Some(uid),
                },
            ),
            Response::Error { error, code } => serde_json::to_writer(
                &mut out,
                &Failure {
                    code: code.map(|c| c.as_str()),
                    error,
                },
            ),
        };
        written.expect("a JSON value serialises");
        out.push(b'\n');
        out
    }

    /// Decode a response line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Response, ResponseError> {
        let value: Value =
            serde_json::from_slice(line).map_err(|e| ResponseError(e.to_string()))?;
        Response::from_value(value)
    }

    /// Decode a response from its JSON value.
    pub fn from_value(value: Value) -> Result<Response, ResponseError> {
        let Value::Object(mut map) = value else {
            return Err(ResponseError("not a JSON object".into()));
        };
        if let Some(err) = map.remove("error") {
            let error = match err {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let code = map
                .get("code")
                .and_then(Value::as_str)
                .and_then(ErrorCode::parse);
            return Ok(Response::Error { error, code });
        }
        if map.get("success") != Some(&Value::Bool(true)) {
            return Err(ResponseError("neither 'error' nor 'success': true".into()));
        }
        let data = map.remove("data").unwrap_or(Value::Null);
        match map.remove("uid") {
            None | Some(Value::Null) => Ok(Response::Done(data)),
            Some(Value::String(uid)) => Ok(Response::Pending { uid, data }),
            Some(_) => Err(ResponseError("'uid' is neither null nor a string".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_serialised_value() {
        for r in [
            Response::Done(json!("ok")),
            Response::Done(Value::Null),
            Response::Done(json!({"z": [1, {"b": "\u{0}\"\n"}], "a": 1.5})),
            Response::Pending {
                uid: "u-1".into(),
                data: json!({"pending": "approval", "message": "wait"}),
            },
            Response::error(ErrorCode::RateLimited),
            Response::error_with(ErrorCode::InvalidData, "field \"x\": bad\tvalue"),
            Response::Error {
                error: "from a Python service".into(),
                code: None,
            },
        ] {
            let mut want = serde_json::to_vec(&r.to_value()).unwrap();
            want.push(b'\n');
            assert_eq!(
                String::from_utf8(r.to_line()).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }

    #[test]
    fn shapes_match_the_protocol() {
        assert_eq!(
            Response::Done(json!("root")).to_value(),
            json!({"success": true, "uid": null, "data": "root"})
        );
        assert_eq!(
            Response::error(ErrorCode::PermissionDenied).to_value(),
            json!({"error": "Permission denied", "code": "permission_denied"})
        );
        let info = PendingInfo {
            pending: "totp".into(),
            message: "Enter the code".into(),
            expires_at: "2026-11-22T10:15:00Z".into(),
            extra: Map::new(),
        };
        let v = Response::pending("u1", &info).to_value();
        assert_eq!(v["uid"], "u1");
        assert_eq!(v["data"]["pending"], "totp");
        assert_eq!(v["data"]["expires_at"], "2026-11-22T10:15:00Z");
    }

    #[test]
    fn decodes_every_shape_including_the_python_services() {
        for r in [
            Response::Done(json!({"a": [1, 2]})),
            Response::Pending {
                uid: "x".into(),
                data: json!({"pending": "email"}),
            },
            Response::error_with(ErrorCode::InvalidData, "ip: not an IPv4 address"),
        ] {
            let line = r.to_line();
            assert_eq!(Response::parse(&line[..line.len() - 1]).unwrap(), r);
        }
        // The Python Regent sends no code.
        assert_eq!(
            Response::parse(br#"{"error": "Unknown operation"}"#).unwrap(),
            Response::Error {
                error: "Unknown operation".into(),
                code: None
            }
        );
        assert!(Response::parse(br#"{"success": false}"#).is_err());
        assert!(Response::parse(br#"[]"#).is_err());
    }
}
