//! The execution part of an operation's declaration: the least-privilege keys
//! (`run_as`, `capabilities`, `sandbox`, `limits`, `on_unsupported`,
//! `concurrency`), as the config reads them and the executor takes them.

use crate::capability::Capability;
use crate::rlimits::ResourceLimits;
use crate::run_as::RunAs;
use crate::sandbox::Sandbox;
use serde::{Deserialize, Serialize};

/// What to do when the kernel lacks a protection an operation asks for. It
/// applies to each protection on its own: a kernel with Landlock ABI 2 still
/// enforces the filesystem rules and the seccomp filter, and refuses (or warns
/// about) only TCP rules (ABI 4) and signal scoping (ABI 6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OnUnsupported {
    /// `"refuse"`: do not run the operation (the default).
    #[default]
    Refuse,
    /// `"warn"`: log a warning and run without the missing protection.
    Warn,
}

impl OnUnsupported {
    /// Every value, in the order the config lists them.
    pub const ALL: [OnUnsupported; 2] = [OnUnsupported::Refuse, OnUnsupported::Warn];

    /// The name the config writes: `refuse` or `warn`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            OnUnsupported::Refuse => "refuse",
            OnUnsupported::Warn => "warn",
        }
    }
}

/// How an operation's command runs (least privilege), as declared. `run_as` may
/// still name accounts: the daemon resolves them to ids once, at start-up, and
/// the executor runs only resolved ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExecDecl {
    /// `run_as`; none: the service's own user.
    pub run_as: Option<RunAs>,
    /// `capabilities`; none: not restricted, `Some(vec![])`: all dropped.
    pub capabilities: Option<Vec<Capability>>,
    /// `sandbox`; none: no sandbox.
    pub sandbox: Option<Sandbox>,
    /// `limits`.
    pub limits: ResourceLimits,
    /// `on_unsupported = "refuse" | "warn"`.
    pub on_unsupported: OnUnsupported,
    /// `concurrency`: runs at once; beyond it: `busy`.
    pub concurrency: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_unsupported_names() {
        let names: Vec<&str> = OnUnsupported::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names, ["refuse", "warn"]);
        assert_eq!(OnUnsupported::default(), OnUnsupported::Refuse);
    }
}
