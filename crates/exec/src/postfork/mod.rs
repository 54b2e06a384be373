//! Everything that runs between `fork` and `exec`, and the per-run supervisor: why
//! and how a command's whole process tree dies.
//!
//! **Why this module may use `unsafe`.** The service is multi-threaded; in a child
//! forked from it only async-signal-safe code may run (no allocation, no lock, no
//! unwinding) until it `exec`s or exits. The compiler cannot check that, so the two
//! entry points into such a child, [`sys::register_pre_exec`] and
//! [`sys::vfork_on`], are `unsafe fn`s, and this module is the one place
//! that calls them: each call carries a `SAFETY:` comment saying why the code it
//! starts keeps the contract. All of that code lives here, in one place to review:
//! the hook ([`Hook::run`]), the supervisor's loop (`supervise`), the confinement a
//! process applies to itself (`confine`: [`Confinement::apply`]), the opening of
//! path descriptors (`paths`) and the process-tree walk (`tree`). It touches only
//! the async-signal-safe wrappers of `sys` and memory prepared before the fork; no
//! other module of the crate runs after a fork.
//!
//! **Why a per-run supervisor.** A process group alone does not hold a tree: a descendant can `setsid()` (or
//! `setpgid`) and double-fork, and once its parent exits it is re-parented to init,
//! out of any group or ancestry we could follow. Making the *service* a child
//! subreaper would collect those orphans, but process-wide: every orphan of every run
//! (and of anything else the service spawns) would land on the service, unattributed,
//! and someone would have to reap them without stealing the exit statuses tokio waits
//! for.
//!
//! So each run gets its own subreaper. The pre-exec hook runs in the child std forks;
//! that child becomes the **supervisor**: it blocks every signal (so no handler it
//! inherited from the service can run in it; it waits for SIGCHLD, SIGTERM, SIGINT
//! and SIGHUP with `sigtimedwait`), reads which signal dispositions are not the
//! default (`SigCgt`/`SigIgn` of `/proc/self/status`), sets
//! `PR_SET_CHILD_SUBREAPER`, and starts the real command in a process that shares
//! its memory until `exec` (`clone(CLONE_VM | CLONE_VFORK)` on a stack allocated
//! before the first fork, as `posix_spawn` does: the supervisor's copy of the
//! service's address space is not copied a second time). That process resets
//! exactly the non-default dispositions (a handful, not all 62), restores an empty
//! signal mask, applies the [`Confinement`], opens the path descriptors and
//! `execve`s the command's [`sys::ExecImage`], built before the first fork. A
//! failure on the way (a set-up step, or `execve` itself) is left in the hook's
//! memory for the supervisor, which reaps that process and returns the error to
//! std, which reports it to `spawn` exactly as a failed `exec` of its own.
//!
//! The supervisor then closes every descriptor it holds (so the service sees EOF
//! on the output pipes as soon as the tree is gone) and waits:
//!
//! - every orphan of the tree, `setsid` or not, is re-parented to it, so "no child
//!   left" (`ECHILD`) means "no member of the tree left";
//! - when the command exits, or when the service sends SIGTERM (timeout), or when the
//!   service dies (`PR_SET_PDEATHSIG`), it sends SIGTERM to every descendant and group
//!   member (found through `/proc` by parent-pid chains), waits `kill_grace`, then
//!   SIGKILLs what is left, again and again, reaping, until nothing is left;
//! - it then exits the way the command did (same code, or same signal), so the
//!   service reads the command's real status.
//!
//! **The cost per run** (strace of `regent serve` running `/bin/true`): one copy of
//! the service's address space (std's fork of the supervisor) where there were two
//! (the command shares the supervisor's until `execve`), and about 121 system calls
//! where there were 175: the 62 `rt_sigaction` resets became the 6 or 7 the service
//! really changed, and the kernel's `cap_last_cap` is read once per process. Doing
//! without the supervisor (one fork) would lose the guarantee above for `setsid`
//! double-forks unless the service itself became a process-wide subreaper.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::child::{Confinement, SetupFailure, Step};
use crate::pathfd::PathFds;
use crate::sys::{self, ExecImage, SigSet};

mod confine;
mod paths;
mod supervise;
pub mod tree;

use tree::ProcScratch;

/// Stack of the command's process between its start and its `exec` (it runs the
/// confinement and the opening of path descriptors; generous for debug builds).
const COMMAND_STACK: usize = 256 * 1024;

/// The state moved into the pre-exec hook.
pub(crate) struct Hook {
    confinement: Confinement,
    scratch: ProcScratch,
    grace: Duration,
    service_pid: i32,
    report: OwnedFd,
    paths: PathFds,
    image: ExecImage,
    /// Allocated (not initialised) before the fork; see `COMMAND_STACK`.
    stack: Vec<u8>,
    /// Set by the command's process, which shares the supervisor's memory until it
    /// `exec`s: the errno of the step that failed instead (0: none).
    failed: AtomicI32,
}

impl Hook {
    /// Prepare (before fork). `report` is the write end of a close-on-exec pipe on
    /// which a failed set-up step is reported; the hook owns it, so dropping the
    /// command (and its hook) after spawn closes the service's copy.
    pub(crate) fn new(
        confinement: Confinement,
        image: ExecImage,
        grace: Duration,
        service_pid: i32,
        report: OwnedFd,
    ) -> Hook {
        Hook {
            confinement,
            scratch: ProcScratch::default(),
            grace,
            service_pid,
            report,
            paths: PathFds::default(),
            image,
            stack: Vec::with_capacity(COMMAND_STACK),
            failed: AtomicI32::new(0),
        }
    }

    /// The files to open in the command process, after its confinement.
    pub(crate) fn with_paths(mut self, paths: PathFds) -> Hook {
        self.paths = paths;
        self
    }

    /// Register the hook on `cmd`: it runs in the child std forks for it.
    pub(crate) fn register(mut self, cmd: &mut tokio::process::Command) {
        // SAFETY: `Hook::run` is async-signal-safe: it calls only the
        // async-signal-safe wrappers of `sys` (raw system calls), writes only into
        // memory prepared here before the fork (the scratch buffers, the command's
        // stack, the prepared confinement and path records), allocates and frees
        // nothing (taking the stack out of the hook leaves an empty `Vec`, no
        // allocation), takes no lock, does not panic (no unwrap; its few indexing
        // operations are into fixed-size buffers within bounds by construction),
        // reports failure as an errno-built `io::Error`, and its supervisor side
        // ends in `sys::exit_now`.
        unsafe { sys::register_pre_exec(cmd, move || self.run()) }
    }

    fn fail(&self, failure: SetupFailure) -> io::Error {
        sys::write_all_raw(&self.report, &failure.encode());
        io::Error::from_raw_os_error(failure.errno)
    }

    /// Runs in the forked child, which becomes the supervisor: it starts the
    /// command and never returns, but for a failure before the command's `exec`
    /// (returned to std, which reports it to `spawn`).
    fn run(&mut self) -> io::Result<()> {
        let watched = SigSet::of(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
        // From here on no handler inherited from the service runs in this process.
        sys::block_signals(&SigSet::full()).map_err(|e| self.fail(fail(Step::Fork, e)))?;
        // Frozen since the fork: the dispositions the command must not inherit.
        let non_default = sys::non_default_signals();
        sys::set_child_subreaper().map_err(|e| self.fail(fail(Step::Fork, e)))?;
        // Never dropped here: freeing memory is not async-signal-safe.
        let mut stack = std::mem::ManuallyDrop::new(std::mem::take(&mut self.stack));
        // SAFETY: this process is single-threaded (a fresh fork) and stays suspended
        // until the command's process execs or exits; `command` is async-signal-safe
        // like the rest of the hook (see `register`), runs well within
        // `COMMAND_STACK`, and writes only the hook's own state (`paths`, `failed`),
        // which this side reads afterwards.
        let main = unsafe {
            sys::vfork_on(stack.spare_capacity_mut(), &mut || {
                self.command(non_default)
            })
        }
        .map_err(|e| self.fail(fail(Step::Fork, e)))?;
        let errno = self.failed.load(Ordering::SeqCst);
        if errno != 0 {
            let _ = sys::wait_blocking(main);
            return Err(io::Error::from_raw_os_error(errno));
        }
        supervise::supervise(
            main,
            &watched,
            self.grace,
            self.service_pid,
            &mut self.scratch,
        )
    }

    /// The command's process, sharing the supervisor's memory until `exec`:
    /// take on the command's signals, confinement and path descriptors, and
    /// `exec` it. Returns (its exit status) only on failure, recorded in `failed`
    /// (set-up steps also write their record to the report pipe).
    fn command(&mut self, non_default: Option<u64>) -> i32 {
        let errno = match self.prepare_command(non_default) {
            Ok(()) => self.image.exec().raw_os_error().unwrap_or(libc::EIO),
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        };
        self.failed.store(errno.max(1), Ordering::SeqCst);
        127
    }

    fn prepare_command(&mut self, non_default: Option<u64>) -> io::Result<()> {
        reset_dispositions(non_default);
        sys::unblock_all_signals().map_err(|e| self.fail(fail(Step::Fork, e)))?;
        // The marking is best effort: exec closes everything close-on-exec anyway.
        let _ = sys::close_range_from(3, true);
        self.confinement.apply().map_err(|f| self.fail(f))?;
        // With the command's own credentials and sandbox: its path descriptors.
        self.paths.open_all(&self.report)?;
        // After the credential changes (which clear it): die with the supervisor.
        sys::set_parent_death_signal(libc::SIGKILL)
            .map_err(|e| self.fail(fail(Step::DeathSignal, e)))?;
        Ok(())
    }
}

/// Reset to `SIG_DFL` the signals in `mask` (bit `n - 1` = signal `n`), or every
/// catchable signal when the mask could not be read. `exec` resets caught signals
/// by itself but keeps ignored ones; resetting both also keeps the service's
/// handlers from running in the command's process before its `exec`.
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
