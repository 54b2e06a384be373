//! The crate's one error type.

use std::io;
use std::time::Duration;

/// Why a command did not run to completion. Messages never contain stdin or output.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The command ran past its wall-clock limit; its whole process tree was stopped.
    #[error("the command ran past its time limit of {after:?} and was stopped")]
    Timeout {
        /// The limit that was hit.
        after: Duration,
    },
    /// The program does not exist (absolute path) or is not on the fixed PATH.
    #[error("program not found: {program}")]
    NotFound {
        /// `argv[0]` as given.
        program: String,
    },
    /// The program exists but could not be executed.
    #[error("cannot execute {program}: {source}")]
    Spawn {
        /// `argv[0]` as given.
        program: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The policy asks for something this kernel does not support (and the policy
    /// says to refuse).
    #[error("not supported by this kernel: {feature}")]
    Unsupported {
        /// What is missing.
        feature: String,
    },
    /// Preparing or applying the sandbox failed.
    #[error("sandbox set-up failed at {step}: {source}")]
    Setup {
        /// The step, e.g. `setresuid` or `landlock rule for /srv`.
        step: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// I/O with the running command failed.
    #[error("I/O error while {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// A file of [`crate::CommandSpec::paths`] could not be opened in the command's
    /// process (missing, outside its directory, a symlink on the way, not
    /// permitted, or of a refused kind); the command did not run.
    #[error("path {field}: {refusal}")]
    Path {
        /// [`crate::PathArg::field`].
        field: String,
        /// Why.
        refusal: crate::pathfd::PathRefusal,
    },
    /// The command or policy is malformed (empty argv, relative program path, ...).
    #[error("invalid command: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl ExecError {
    pub(crate) fn setup(step: impl Into<String>, source: io::Error) -> ExecError {
        ExecError::Setup {
            step: step.into(),
            source,
        }
    }
}
