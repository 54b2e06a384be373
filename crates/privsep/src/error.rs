//! The crate's one error type.

use std::io;
use std::time::Duration;

use regent_proto::ErrorCode;

/// Why a privileged call (or starting a helper, or dropping privileges) failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivsepError {
    /// The context's helper was never started in this process.
    #[error("privileged context {context:?} is not started")]
    NotStarted {
        /// The context's name.
        context: &'static str,
    },
    /// `start` was called twice for one context.
    #[error("privileged context {context:?} is already started")]
    AlreadyStarted {
        /// The context's name.
        context: &'static str,
    },
    /// The helper could not be started or did not answer its first ping.
    #[error("cannot start the helper of {context:?}: {reason}")]
    Start {
        /// The context's name.
        context: &'static str,
        /// Why.
        reason: String,
    },
    /// The context's policy could not be prepared (unknown capability, kernel support).
    #[error("policy of {context:?}: {source}")]
    Policy {
        /// The context's name.
        context: &'static str,
        /// The sandbox error.
        #[source]
        source: regent_exec::ExecError,
    },
    /// The entrypoint ran past the context's timeout and its work was killed.
    #[error("{context}.{op} ran past its time limit of {after:?} and was stopped")]
    Timeout {
        /// The context's name.
        context: &'static str,
        /// The entrypoint.
        op: String,
        /// The limit.
        after: Duration,
    },
    /// The helper answered with an error (bad arguments, unknown entrypoint, panic).
    #[error("{context}.{op} failed ({}): {message}", code.map_or("unknown", ErrorCode::as_str))]
    Remote {
        /// The context's name.
        context: &'static str,
        /// The entrypoint.
        op: String,
        /// The protocol's error code.
        code: Option<ErrorCode>,
        /// The helper's sentence.
        message: String,
    },
    /// The helper is gone or the channel broke; the context cannot be used any more.
    #[error("the helper of {context:?} is gone: {reason}")]
    HelperGone {
        /// The context's name.
        context: &'static str,
        /// What happened.
        reason: String,
    },
    /// Arguments or a result could not be (de)serialised.
    #[error("cannot encode or decode a privileged call: {0}")]
    Encode(#[from] serde_json::Error),
    /// Dropping or applying privileges failed.
    #[error("privilege change failed at {step}: {source}")]
    Privileges {
        /// The step.
        step: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
}
