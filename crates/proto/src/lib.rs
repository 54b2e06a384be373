//! The Regent wire protocol, version 1 (`shared/PROTOCOL.md` is the contract).
//!
//! A stream carries UTF-8 JSON objects, one per line. This crate holds the pieces
//! both ends agree on and nothing that does I/O:
//!
//! - [`code`]: the stable machine-readable error codes;
//! - [`request`]: parsing a request line into a validated [`Request`];
//! - [`response`]: the three response shapes and their JSON encoding;
//! - [`framing`]: a sans-IO line buffer with a hard size cap (check, then parse);
//! - [`text`]: escaping what a caller sent before a person reads it.
//!
//! **Boundaries.** Owns the wire format: framing, requests, responses, error codes, and
//! the escaping of caller text for people (`text`). Imports no other Regent crate and
//! does no I/O.
#![forbid(unsafe_code)]

pub mod code;
pub mod framing;
pub mod request;
pub mod response;
pub mod text;

pub use code::ErrorCode;
pub use framing::{FrameError, LineBuffer};
pub use request::{Request, RequestError, Secret};
pub use response::{PendingInfo, Response};

/// Default longest request line, in bytes (newline excluded).
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;
