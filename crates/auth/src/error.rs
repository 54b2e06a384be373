//! The crate's one error type. Messages name paths, users and request ids, never a
//! secret, a code or an SMTP server's reply.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file or directory holding secrets is open to more people than it should be.
    #[error("{path}: refusing insecure permissions: {reason}")]
    InsecurePermissions {
        /// The offending path.
        path: PathBuf,
        /// What is wrong, e.g. "readable by others (mode 0644)".
        reason: String,
    },
    /// Reading or creating a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A secret source was empty, too long or not UTF-8 (the content is never shown).
    #[error("{source_name}: invalid secret: {reason}")]
    InvalidSecret {
        /// Where the secret came from: a path or `<stdin>`.
        source_name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The operating system's random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
    /// A database error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database was written by a newer version of this crate.
    #[error("{path}: schema version {found} is newer than the supported {supported}")]
    SchemaTooNew {
        /// The database path.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored record could not be decoded.
    #[error("stored record {id} is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        id: String,
        /// What failed to decode.
        reason: String,
    },
    /// A user name that cannot be used as a TOTP account.
    #[error("invalid user name {0:?}")]
    InvalidUser(String),
    /// A TOTP code did not verify (at enrollment).
    #[error("the code is not valid")]
    InvalidCode,
    /// A TOTP secret given in base32 could not be decoded (the text is never shown).
    #[error("the TOTP secret is not valid base32 of at least 128 bits")]
    InvalidTotpSecret,
    /// The SMTP configuration is unusable.
    #[error("SMTP configuration: {0}")]
    SmtpConfig(String),
    /// Sending an email failed. Details are in the log only.
    #[error("the email could not be sent")]
    MailFailed,
    /// A stage names a method that is not registered.
    #[error("unknown authorization method {0:?}")]
    UnknownMethod(String),
    /// No pending request has this id (or it expired).
    #[error("no pending request {0:?}")]
    RequestNotFound(String),
    /// The request's current stage is not one an administrator decides.
    #[error("request {request_id} is not awaiting approval (current stage: {stage})")]
    NotAwaitingApproval {
        /// The request id.
        request_id: String,
        /// The current stage's method name.
        stage: String,
    },
    /// An administrator tried to approve their own request and that is forbidden.
    #[error(
        "request {0} was made by the approver themself; approving one's own request is not allowed"
    )]
    OwnRequest(String),
    /// Store work on the blocking pool was cancelled (the runtime is stopping).
    #[error("the pending store task was cancelled")]
    StoreCancelled,
    /// A QR code could not be drawn.
    #[error("cannot draw the QR code: {0}")]
    Qr(String),
}

/// What `approve` and `deny` return on failure (the same enum, named for readers).
pub type AdminError = AuthError;
