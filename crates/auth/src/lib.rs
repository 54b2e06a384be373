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
//! - [`email`]: SMTP delivery of those codes;
//! - [`store`]: the persistent pending-request store and decisions audit (SQLite);
//! - [`method`]: the [`AuthMethod`] trait and the built-in `totp`, `email`, `approval`;
//! - [`flow`]: [`AuthFlow`], the engine: start, resume, list, approve, deny.
//!
//! **Boundaries.** Owns secrets, rate limits, TOTP, email codes, the SQLite store and
//! the flow. The caller ([`CallerId`], i.e. `regent_model::Principal`) and the mail
//! security ([`SmtpSecurity`]) are `regent-model`'s. May import `regent-model` and
//! `regent-proto` only: it knows nothing of sockets, the config or how commands run.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod db;
pub mod email;
pub mod error;
pub mod flow;
pub mod method;
pub mod otp;
pub mod random;
pub mod ratelimit;
pub mod secret;
pub mod store;
pub mod totp;

pub use email::{Mailer, SmtpConfig, SmtpSecurity};
pub use error::{AdminError, AuthError};
pub use flow::{
    AuthFlow, CallerId, FlowOptions, FlowOutcome, HookDecision, PendingPage, PendingSummary,
    StageHook, StageReport, StartRequest,
};
pub use method::{
    ApprovalMethod, AuthMethod, Check, EmailMethod, MethodError, MethodRegistry, StageContext,
    StageStart, TotpMethod,
};
pub use ratelimit::{Limited, RateLimitConfig, RateLimiter};
pub use secret::{SecretDigest, SharedSecret};
pub use store::{Decision, PendingStore};
pub use totp::{Enrollment, TotpCheck, TotpSecret, TotpStore};

/// A result whose error is this crate's [`AuthError`].
pub type Result<T, E = AuthError> = std::result::Result<T, E>;
