//! The crate's one error type. Messages name the file, the action and the path
//! (relative to the file's tree), never a value set: a value may be secret.

/// Everything that can go wrong editing a declared file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lens or file that is not a valid declaration.
    #[error("{what}: {message}")]
    Declaration {
        /// `lens` or `file`.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A path refused before Augeas saw it (outside the file's tree, or not
    /// in the accepted path language).
    #[error("path {path:?} refused: {message}")]
    Path {
        /// The path, relative to the file's tree.
        path: String,
        /// Why.
        message: String,
    },
    /// A path that matched a node outside the declared file.
    #[error("path {path:?} matches {node:?}, outside {file}")]
    Outside {
        /// The path, relative to the file's tree.
        path: String,
        /// The node it matched.
        node: String,
        /// The declared file.
        file: String,
    },
    /// A value refused before Augeas saw it (a control character, too long).
    #[error("{what} refused: {message}")]
    Value {
        /// What the value is for (`value of set Port`).
        what: String,
        /// Why.
        message: String,
    },
    /// Starting Augeas or compiling the lens failed (before any file was read).
    #[error("compiling the lens {lens} failed: {message}")]
    Compile {
        /// The lens.
        lens: String,
        /// Augeas's errors.
        message: String,
    },
    /// Starting Augeas, loading the lens or parsing the file failed.
    #[error("{file}: loading with {lens} failed: {message}")]
    Load {
        /// The declared file.
        file: String,
        /// The lens.
        lens: String,
        /// Augeas's errors.
        message: String,
    },
    /// An action failed; nothing was written.
    #[error("{file}: {action} {path:?} failed: {message}")]
    Action {
        /// The declared file.
        file: String,
        /// The action's name.
        action: &'static str,
        /// Its path.
        path: String,
        /// Augeas's error.
        message: String,
    },
    /// Saving failed (Augeas's own `save` reports success on failure: this is
    /// read from `/augeas//error`).
    #[error("{file}: saving failed: {message}")]
    Save {
        /// The declared file.
        file: String,
        /// Augeas's errors.
        message: String,
    },
    /// The file no longer has the content it had when a change was shown, or
    /// when it was loaded.
    #[error("{file} changed since the change was shown or the file read (hash {expected}, now {actual}); refusing to apply it")]
    Changed {
        /// The declared file.
        file: String,
        /// The hash the request carried.
        expected: String,
        /// The file's hash now.
        actual: String,
    },
    /// Reading the file for its hash or a diff failed.
    #[error("{path}: {source}")]
    Io {
        /// The file on disk.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable machine-readable kind: `declaration`, `path`, `value`, `load`,
    /// `action`, `save`, `changed` or `io` (a lens that does not compile is
    /// `load`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Declaration { .. } => "declaration",
            Error::Path { .. } | Error::Outside { .. } => "path",
            Error::Value { .. } => "value",
            Error::Compile { .. } | Error::Load { .. } => "load",
            Error::Action { .. } => "action",
            Error::Save { .. } => "save",
            Error::Changed { .. } => "changed",
            Error::Io { .. } => "io",
        }
    }
}
