//! Error codes: the `code` extension of the error response.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable reason for an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, wrong types, `op` and `uid` both or neither.
    BadRequest,
    /// The request line is over the limit.
    TooLarge,
    /// Wrong or missing secret, or the caller is not allowed this operation.
    PermissionDenied,
    /// No such operation.
    UnknownOperation,
    /// `data` failed validation.
    InvalidData,
    /// A wrong code at an authorization step.
    AuthFailed,
    /// The uid is unknown, expired, used, or someone else's.
    NotFound,
    /// An approver refused the request.
    Denied,
    /// Too many failures from this caller.
    RateLimited,
    /// The service is at its connection or concurrency limit.
    Busy,
    /// The operation ran past its time limit and was stopped.
    Timeout,
    /// The operation ran and failed.
    OperationFailed,
    /// A fault in the service itself.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the protocol's table.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::PermissionDenied,
        ErrorCode::UnknownOperation,
        ErrorCode::InvalidData,
        ErrorCode::AuthFailed,
        ErrorCode::NotFound,
        ErrorCode::Denied,
        ErrorCode::RateLimited,
        ErrorCode::Busy,
        ErrorCode::Timeout,
        ErrorCode::OperationFailed,
        ErrorCode::Internal,
    ];

    /// The wire word, e.g. `permission_denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::UnknownOperation => "unknown_operation",
            ErrorCode::InvalidData => "invalid_data",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Denied => "denied",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Busy => "busy",
            ErrorCode::Timeout => "timeout",
            ErrorCode::OperationFailed => "operation_failed",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parse a wire word; `None` for a word this version does not know.
    pub fn parse(word: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// The human sentence used when there is nothing more specific to say.
    /// The first ones match the Python Regent's messages.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Invalid message",
            ErrorCode::TooLarge => "Request too large",
            ErrorCode::PermissionDenied => "Permission denied",
            ErrorCode::UnknownOperation => "Unknown operation",
            ErrorCode::InvalidData => "Invalid data",
            ErrorCode::AuthFailed => "Authorisation failed",
            ErrorCode::NotFound => "Not found",
            ErrorCode::Denied => "Request denied",
            ErrorCode::RateLimited => "Too many failures, try again later",
            ErrorCode::Busy => "Service busy, try again later",
            ErrorCode::Timeout => "Operation timed out",
            ErrorCode::OperationFailed => "Operation failed",
            ErrorCode::Internal => "Internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_serde_and_parse() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
