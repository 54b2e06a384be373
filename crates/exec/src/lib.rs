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
//! calls) and `postfork` (everything that runs in the per-run supervisor and in the
//! command's process before `exec`: how the supervisor is started, its loop that
//! owns the process tree, [`Confinement::apply`], the opening of path descriptors,
//! and [`tree`], finding a tree through `/proc`).
//!
//! **Where the `unsafe` is, and why.** The crate is `deny(unsafe_code)` except two
//! modules. [`sys`] wraps system calls: rustix's typed calls where rustix has them,
//! and libc (`clone`, `execve`, `_exit`, signal masks and dispositions, `signalfd`,
//! `close_range`, Landlock, seccomp) where it has not, each `unsafe` block with its
//! `SAFETY:` comment. `postfork` is the only caller of the `unsafe fn`s of `sys`
//! that start a process sharing the service's memory (`clone_shared`, for the
//! per-run supervisor, and `vfork_on`, for the command until its `exec`), whose
//! contract (only async-signal-safe code, touching only memory the service keeps
//! alive and leaves alone) the compiler cannot check: keeping all that code in
//! that one module makes the contract reviewable in one place, with a `SAFETY:`
//! comment where each process is started. Every other crate of the workspace
//! forbids `unsafe`.
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
pub use run::{run, spawn, Spawned};
