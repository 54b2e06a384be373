//! Everything that runs in the per-run supervisor and in the command's process
//! before its `exec`: why and how a command's whole process tree dies.
//!
//! **Why this module may use `unsafe`.** The supervisor shares the memory of the
//! multi-threaded service (see `spawn`), and the command's process shares it until
//! `exec`: only async-signal-safe code may run in them (no allocation, no lock, no
//! unwinding, no thread-local state). The compiler cannot check that, so the two
//! ways to start such a process, `sys::clone_shared` and `sys::vfork_on`, are
//! `unsafe fn`s, and this module is the one place that calls them: each call
//! carries a `SAFETY:` comment saying why the code it starts keeps the contract.
//! All of that code lives here, in one place to review: the start (`spawn`), the
//! command's side of the hook ([`Hook::command`]), the supervisor's loop
//! (`supervise`), the confinement a process applies to itself (`confine`:
//! [`Confinement::apply`]), the opening of path descriptors (`paths`) and the
//! process-tree walk (`tree`). It touches only the async-signal-safe wrappers of
//! `sys` and memory prepared before the start; no other module of the crate runs in
//! those processes.
//!
//! **Why a per-run supervisor.** A process group alone does not hold a tree: a
//! descendant can `setsid()` (or `setpgid`) and double-fork, and once its parent
//! exits it is re-parented to init, out of any group or ancestry we could follow.
//! Making the *service* a child subreaper would collect those orphans, but
//! process-wide: every orphan of every run (and of anything else the service
//! spawns) would land on the service, unattributed, and someone would have to reap
//! them.
//!
//! So each run gets its own subreaper, the **supervisor**, started by `spawn`
//! without copying the service's address space (`clone(CLONE_VM)` on a stack of its
//! own; `spawn` says why that is sound). It starts with every signal blocked (so
//! no handler inherited from the service can run in it), takes the command's
//! descriptors, directory (`/`) and a new process group, resets the dispositions
//! that are not the default (`SigCgt`/`SigIgn` of `/proc/self/status`: a handful,
//! not all 62), opens a signalfd for SIGCHLD, SIGTERM, SIGINT and SIGHUP, sets
//! `PR_SET_CHILD_SUBREAPER`, and starts the real command in a process that shares
//! the memory until `exec` (`clone(CLONE_VM | CLONE_VFORK)` on a second stack, as
//! `posix_spawn` does). That process restores an empty signal mask, applies the
//! [`Confinement`], opens the path descriptors and `execve`s the command's
//! [`sys::ExecImage`], built before the start. A failure on the way (a set-up step,
//! or `execve` itself) is written to the report pipe and left in the hook's memory
//! for the supervisor, which reaps that process and exits; the service reads the
//! record and reports it as before.
//!
//! The supervisor then closes every descriptor it holds but the signalfd (so the
//! service sees EOF on the output pipes as soon as the tree is gone) and waits:
//!
//! - every orphan of the tree, `setsid` or not, is re-parented to it, so "no child
//!   left" (`ECHILD`) means "no member of the tree left";
//! - when the command exits, or when the service sends SIGTERM (timeout, or the
//!   run abandoned), or when the service dies (`PR_SET_PDEATHSIG`), it sends SIGTERM
//!   to every descendant and group member (found through `/proc` by parent-pid
//!   chains), waits `kill_grace`, then SIGKILLs what is left, again and again,
//!   reaping, until nothing is left;
//! - it then exits the way the command did (same code, or same signal), so the
//!   service, which reaps it through a pidfd, reads the command's real status.
//!
//! **The cost per run.** No copy of the service's address space at all (before:
//! one, std's fork of the supervisor, with its page-table copy and the
//! copy-on-write faults that followed in both processes); two light clones, an
//! `exec`, and the supervisor's few system calls. Doing without the supervisor
//! (one fork) would lose the guarantee above for `setsid` double-forks unless the
//! service itself became a process-wide subreaper.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::child::{Confinement, SetupFailure, Step};
use crate::pathfd::PathFds;
use crate::sys::{self, ExecImage, SigSet};

mod confine;
mod paths;
mod spawn;
mod supervise;
pub mod tree;

pub(crate) use spawn::{start, StartError, Stdio, Supervisor};

/// The signals the supervisor waits for (through a signalfd; all are blocked).
fn watched() -> SigSet {
    SigSet::of(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
}

/// A run's prepared command: what the supervisor and the command's process read
/// (and, for `paths` and `failed`, write) between the supervisor's start and the
/// command's `exec`. The service keeps it, untouched, until then (see `spawn`).
pub(crate) struct Hook {
    confinement: Confinement,
    grace: Duration,
    service_pid: i32,
    /// Exit with the command, leaving its leftovers running
    /// ([`crate::ExecPolicy::keep_descendants`]).
    keep_descendants: bool,
    /// Number of the write end of the report pipe in the supervisor's descriptor
    /// table (a copy of the service's, made when the supervisor starts); set by
    /// `spawn::start`, never a standard descriptor.
    report: RawFd,
    paths: PathFds,
    image: ExecImage,
    /// Set by the command's process, which shares the supervisor's memory until it
    /// `exec`s: the errno of the step that failed instead (0: none).
    failed: AtomicI32,
}

impl Hook {
    /// Prepare (before the supervisor starts).
    pub(crate) fn new(
        confinement: Confinement,
        image: ExecImage,
        grace: Duration,
        service_pid: i32,
    ) -> Hook {
        Hook {
            confinement,
            grace,
            service_pid,
            keep_descendants: false,
            report: -1,
            paths: PathFds::default(),
            image,
            failed: AtomicI32::new(0),
        }
    }

    /// Let the command's leftovers outlive it (see
    /// [`crate::ExecPolicy::keep_descendants`]).
    pub(crate) fn keeping_descendants(mut self, keep: bool) -> Hook {
        self.keep_descendants = keep;
        self
    }

    /// The files to open in the command process, after its confinement.
    pub(crate) fn with_paths(mut self, paths: PathFds) -> Hook {
        self.paths = paths;
        self
    }

    fn report_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: only the supervisor and the command's process call this, before
        // the supervisor closes its descriptors: `report` is open in both tables
        // (copied from the service's, where the caller of `spawn::start` held it
        // open until the supervisor started).
        unsafe { sys::borrow_raw_fd(self.report) }
    }

    fn fail(&self, failure: SetupFailure) -> io::Error {
        sys::write_all_raw(self.report_fd(), &failure.encode());
        io::Error::from_raw_os_error(failure.errno)
    }

    /// The command's process, sharing the supervisor's memory until `exec`:
    /// take on the command's signal mask, confinement and path descriptors, and
    /// `exec` it. Returns (its exit status) only on failure, recorded in `failed`
    /// and written to the report pipe.
    fn command(&mut self) -> i32 {
        let errno = match self.prepare_command() {
            Ok(()) => {
                let e = self.image.exec().raw_os_error().unwrap_or(libc::EIO);
                let _ = self.fail(fail(Step::Exec, io::Error::from_raw_os_error(e)));
                e
            }
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        };
        self.failed.store(errno.max(1), Ordering::SeqCst);
        127
    }

    fn prepare_command(&mut self) -> io::Result<()> {
        // The supervisor reset the dispositions the command must not inherit.
        sys::unblock_all_signals().map_err(|e| self.fail(fail(Step::Fork, e)))?;
        // The marking is best effort: exec closes everything close-on-exec anyway.
        let _ = sys::close_range_from(3, true);
        self.confinement.apply().map_err(|f| self.fail(f))?;
        // With the command's own credentials and sandbox: its path descriptors.
        let report = self.report;
        // SAFETY: as in `report_fd`.
        self.paths.open_all(unsafe { sys::borrow_raw_fd(report) })?;
        // After the credential changes (which clear it): die with the supervisor.
        sys::set_parent_death_signal(libc::SIGKILL)
            .map_err(|e| self.fail(fail(Step::DeathSignal, e)))?;
        Ok(())
    }
}

/// Reset to `SIG_DFL` the signals in `mask` (bit `n - 1` = signal `n`), or every
/// catchable signal when the mask could not be read. `exec` resets caught signals
/// by itself but keeps ignored ones; resetting both in the supervisor also keeps
/// the service's handlers from ever running in it or in the command's process.
fn reset_dispositions(mask: Option<u64>) {
    let Some(mask) = mask else {
        sys::reset_signal_dispositions();
        return;
    };
    for sig in 1..=64 {
        if mask & (1u64 << (sig - 1)) != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
            sys::reset_signal_disposition(sig);
        }
    }
}

fn fail(step: Step, e: io::Error) -> SetupFailure {
    SetupFailure {
        step,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}
