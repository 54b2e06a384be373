//! Exit statuses: distinct for each kind of failure, so scripts can branch.

use regent_proto::ErrorCode;
use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// Anything not below (e.g. a local I/O problem).
pub const OTHER: u8 = 1;
/// Refused: permission denied, denied by an approver, wrong code, rate limited, unknown uid.
pub const DENIED: u8 = 3;
/// The request was wrong: invalid data, bad request, unknown operation, too large.
pub const INVALID: u8 = 4;
/// The operation failed, timed out, the service was busy or faulted.
pub const FAILED: u8 = 5;
/// Could not reach the service.
pub const CONNECTION: u8 = 6;
/// The operation is pending (its uid was printed) and `--wait` was not given.
pub const PENDING: u8 = 7;

/// The exit status for an error code from the service.
pub fn for_code(code: Option<ErrorCode>) -> u8 {
    use ErrorCode::*;
    match code {
        Some(PermissionDenied | Denied | AuthFailed | RateLimited | NotFound) => DENIED,
        Some(InvalidData | BadRequest | UnknownOperation | TooLarge) => INVALID,
        Some(OperationFailed | Timeout | Internal | Busy) => FAILED,
        None => FAILED,
    }
}

/// Convert.
pub fn code(n: u8) -> ExitCode {
    ExitCode::from(n)
}
