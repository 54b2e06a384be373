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
//! Layout: `policy` (what to run and the policy it runs under), `caps` (the
//! kernel's side of `regent-model`'s capabilities), `resolve` (finding the
//! program), `child` ([`Confinement`]: computed before fork), `landlock` (rulesets
//! for a [`Sandbox`]), `seccomp` (the sandbox's filter), `pathfd` (files passed as
//! descriptors opened in the command's process: prepared before fork), `run` (the
//! async driver), `describe` (summary for `regent check`), [`sys`] (typed system
//! calls) and `postfork` (everything that runs between fork and exec: the pre-exec
//! hook, the per-run supervisor that owns the process tree, [`Confinement::apply`],
//! the opening of path descriptors, and [`tree`], finding a tree through `/proc`).
//!
//! **Where the `unsafe` is, and why.** The crate is `deny(unsafe_code)` except two
//! modules. [`sys`] wraps system calls: rustix's typed calls where rustix has them,
//! and libc (fork and `clone`, `execve`, `_exit`, signal masks and dispositions,
//! `close_range`, Landlock, seccomp) where it has not, each `unsafe` block with its
//! `SAFETY:` comment. `postfork` is the only caller of the two `unsafe fn`s of `sys`
//! (`register_pre_exec`, `vfork_on`), whose contract (only async-signal-safe code
//! may run in a child forked from a multi-threaded process) the compiler cannot
//! check: keeping all post-fork code in that one module makes the contract
//! reviewable in one place, with a `SAFETY:` comment where each hook is registered
//! and each child started. Every other crate of the workspace forbids `unsafe`.
//!
//! **Boundaries.** Owns everything between fork and exec and all of the workspace's
//! `unsafe` (`sys`, `postfork`). Imports only `regent-model` (for [`Capability`],
//! [`RunAs`], [`Sandbox`], [`ResourceLimits`], [`OnUnsupported`] and the declared
//! [`ExecDecl`] a policy starts from, [`ExecPolicy::declared`]), no other Regent
//! crate: callers hand it a resolved [`ExecPolicy`].

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod caps;
pub mod child;
mod describe;
mod error;
pub mod landlock;
mod pathfd;
mod policy;
#[allow(unsafe_code)]
mod postfork;
mod resolve;
mod run;
pub mod seccomp;
#[allow(unsafe_code)]
pub mod sys;

pub use postfork::tree;

pub use caps::{Capability, UnknownCapability};
pub use child::{Confinement, SetupFailure, Step};
pub use describe::{describe, sandbox_protections, KernelSupport, Protection, ProtectionState};
pub use error::ExecError;
pub use pathfd::{reserve_path_descriptors, untrusted_directory, PathRefusal, MAX_PATHS};
pub use policy::{CommandSpec, ExecOutput, ExecPolicy, FileAccess, PathArg, FIXED_PATH};
pub use regent_model::{ExecDecl, OnUnsupported, ResourceLimits, RunAs, Sandbox, SandboxAllow};
pub use run::run;
