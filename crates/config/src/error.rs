//! The crate's error enum for failures outside config reading (which reports
//! [`crate::Diagnostics`]) and request validation (which reports [`crate::FieldError`]).

use std::io;

/// Errors from building templates and from request-time path checks.
///
/// Messages never include a parameter's value.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A command template element is malformed.
    Template {
        /// Index of the argv element.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The path (or its `under` prefix) does not exist and must.
    PathNotFound,
    /// After resolving symlinks, the path is not under its prefix.
    PathEscapes,
    /// The last existing component is a dangling symlink, which could redirect a write.
    DanglingSymlink,
    /// The path is not absolute, is not normalised, or contains `..` or NUL.
    PathInvalid(String),
    /// An I/O error while resolving the path.
    PathIo(io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Template { index, reason } => {
                write!(f, "command element {index}: {reason}")
            }
            Error::PathNotFound => f.write_str("path does not exist"),
            Error::PathEscapes => f.write_str("path resolves outside its allowed directory"),
            Error::DanglingSymlink => f.write_str("path is a dangling symbolic link"),
            Error::PathInvalid(why) => f.write_str(why),
            Error::PathIo(e) => write!(f, "cannot resolve path: {}", e.kind()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::PathIo(e) => Some(e),
            _ => None,
        }
    }
}
