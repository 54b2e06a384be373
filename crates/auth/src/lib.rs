//! Regent's out-of-channel authorization.
//!
//! The unprivileged caller is assumed compromised, so a risky operation can be held
//! until a second factor or a person confirms it (`shared/PROTOCOL.md`, "Pending
//! operations"). This crate holds the building blocks and the engine the service
//! calls; it knows nothing about sockets or operations beyond their names and data.
//!
//! - [`secret`]: the socket's shared secret, verified in constant time;
//! - [`ratelimit`]: a per-caller failure limiter that answers at once, never sleeps;
//! - [`totp`]: RFC 6238 codes, enrollment (URI and terminal QR code), per-user store;
//! - [`otp`]: one-time numeric codes for email, stored salted and hashed;
//! - [`caller`]: [`CallerId`], who asked;
//! - [`email`]: SMTP delivery of those codes;
//! - [`store`]: the persistent pending-request store and decisions audit (SQLite);
//! - [`state`]: the typed state each built-in method keeps with a held request;
//! - [`method`]: the [`AuthMethod`] trait a library implements, and the
//!   [`MethodRegistry`] of the built-in `totp`, `email`, `approval` and the library's;
//! - [`machine`]: the flow as a state machine without I/O, [`machine::step`];
//! - [`flow`]: [`AuthFlow`], the thin async driver of the machine: start, resume,
//!   list, approve, deny.
//!
//! **Boundaries.** Owns secrets, rate limits, TOTP, email codes, the SQLite store and
//! the flow. The caller ([`CallerId`], i.e. `regent_model::Principal`), the mail
//! security ([`SmtpSecurity`]) and the stages are `regent-model`'s. May import
//! `regent-model` and `regent-proto` (the pending response's shape) only: it knows
//! nothing of sockets, the config, wire error codes (it answers typed [`Refusal`]s;
//! the server picks the codes) or how commands run. Modules import only modules
//! before them in this order, never after: `error`, `random`, `secret`, `db`, `otp`,
//! `ratelimit`, `caller`, `store`, `totp`, `email`, `state`, `method`, `machine`, `flow`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod caller;
pub mod db;
pub mod email;
pub mod error;
pub mod flow;
pub mod machine;
pub mod method;
pub mod otp;
pub mod random;
pub mod ratelimit;
pub mod secret;
pub mod state;
pub mod store;
pub mod totp;

pub use caller::CallerId;
pub use email::{Mailer, SmtpConfig, SmtpSecurity};
pub use error::{AdminError, AuthError};
pub use flow::{
    AuthFlow, FlowOptions, FlowOutcome, PendingPage, PendingSummary, StageHook, StageReport,
    StartRequest,
};
pub use machine::{Busy, HookDecision, Refusal};
pub use method::{AuthMethod, Check, MethodError, MethodRegistry, StageContext, StageStart};
pub use ratelimit::{Limited, RateLimitConfig, RateLimiter};
pub use regent_model::{Stage, Stages};
pub use secret::{SecretDigest, SharedSecret};
pub use store::{CapReached, Decision, PendingStore};
pub use totp::{Enrollment, TotpCheck, TotpSecret, TotpStore};

/// A result whose error is this crate's [`AuthError`].
pub type Result<T, E = AuthError> = std::result::Result<T, E>;
