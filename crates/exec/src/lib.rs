//! Regent's execution sandbox: run one command under a declared least-privilege
//! policy.
//!
//! [`run`] executes a [`CommandSpec`] (an argument vector, never a shell, and
//! optional secret stdin) under an [`ExecPolicy`]: user and group, exact capability
//! sets, `no_new_privs`, a Landlock sandbox with a seccomp filter, resource limits, a wall-clock
//! timeout that stops the whole process tree, and bounded output capture. Where the
//! kernel lacks a requested protection the policy either refuses (default) or runs
//! with a logged warning.
//!
//! Layout: `policy` (the declared types), `caps` (the kernel's side of
//! `regent-model`'s capabilities), `resolve`
//! (finding the program), `child` ([`Confinement`]: computed before fork, applied
//! after), `landlock` (rulesets), `seccomp` (the sandbox's filter), `pathfd` (files
//! passed as descriptors opened in the command's process), `supervisor` (the per-run subreaper that owns the
//! process tree), `tree` (finding a tree through `/proc`), `run` (the async driver),
//! `describe` (summary for `regent check`) and [`sys`] (the only `unsafe`).
//!
//! **Boundaries.** Owns everything between fork and exec and all of the workspace's
//! `unsafe` (`sys`). Imports only `regent-model` (for [`Capability`] and [`RunAs`]),
//! no other Regent crate: callers hand it a resolved [`ExecPolicy`].

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod caps;
pub mod child;
mod describe;
mod error;
pub mod landlock;
mod pathfd;
mod policy;
mod resolve;
mod run;
pub mod seccomp;
mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
pub mod tree;

pub use caps::{Capability, UnknownCapability};
pub use child::{Confinement, SetupFailure, Step};
pub use describe::{describe, sandbox_protections, KernelSupport, Protection, ProtectionState};
pub use error::ExecError;
pub use pathfd::{reserve_path_descriptors, untrusted_directory, PathRefusal, MAX_PATHS};
pub use policy::{
    CommandSpec, ExecOutput, ExecPolicy, FileAccess, LandlockRules, PathArg, ResourceLimits,
    SandboxAllow, Unsupported, FIXED_PATH,
};
pub use regent_model::RunAs;
pub use run::run;
