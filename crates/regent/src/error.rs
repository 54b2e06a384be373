//! The service-side error type: what can stop a service from starting or running.

use std::io;

/// Errors setting up or running a service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: io::Error,
    },
    /// A refusal for safety's sake.
    #[error("unsafe: {0}")]
    Unsafe(String),
    /// A configuration problem.
    #[error("configuration: {0}")]
    Config(String),
    /// A registration problem.
    #[error(transparent)]
    Register(#[from] crate::registry::RegisterError),
}

impl Error {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
