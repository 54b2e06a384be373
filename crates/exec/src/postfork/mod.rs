//! Everything that runs between `fork` and `exec`, and the per-run supervisor: why
//! and how a command's whole process tree dies.
//!
//! **Why this module may use `unsafe`.** The service is multi-threaded; in a child
//! forked from it only async-signal-safe code may run (no allocation, no lock, no
//! unwinding) until it `exec`s or exits. The compiler cannot check that, so the two
//! entry points into such a child, [`sys::register_pre_exec`] and
//! [`sys::fork_in_pre_exec`], are `unsafe fn`s, and this module is the one place
//! that calls them: each call carries a `SAFETY:` comment saying why the code it
//! starts keeps the contract. All of that code lives here, in one place to review:
//! the hook ([`Hook::run`]), the supervisor's loop (`supervise`), the confinement a
//! process applies to itself (`confine`: [`Confinement::apply`]), the opening of
//! path descriptors (`paths`) and the process-tree walk (`tree`). It touches only
//! the async-signal-safe wrappers of `sys` and memory prepared before the fork; no
//! other module of the crate runs after a fork.
//!
//!
//! A process group alone does not hold a tree: a descendant can `setsid()` (or
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
//! `PR_SET_CHILD_SUBREAPER`, and forks the real command, which resets exactly those
//! dispositions (a handful, not all 62), restores an empty signal mask, applies the
//! [`Confinement`] and returns to std to `exec`. The supervisor then closes every descriptor it holds (so the
//! service sees EOF on the output pipes as soon as the tree is gone) and waits:
//!
//! - every orphan of the tree, `setsid` or not, is re-parented to it, so "no child
//!   left" (`ECHILD`) means "no member of the tree left";
//! - when the command exits, or when the service sends SIGTERM (timeout), or when the
//!   service dies (`PR_SET_PDEATHSIG`), it sends SIGTERM to every descendant and group
//!   member (found through `/proc` by parent-pid chains), waits `kill_grace`, then
//!   SIGKILLs what is left, again and again, reaping, until nothing is left;
//! - it then exits the way the command did (same code, or same signal), so the
//!   service reads the command's real status.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::child::{Confinement, SetupFailure, Step};
use crate::pathfd::PathFds;
use crate::sys::{self, Forked, SigSet};

mod confine;
mod paths;
mod supervise;
pub mod tree;

use tree::ProcScratch;

/// The state moved into the pre-exec hook.
pub(crate) struct Hook {
    confinement: Confinement,
    scratch: ProcScratch,
    grace: Duration,
    service_pid: i32,
    report: OwnedFd,
    paths: PathFds,
}

impl Hook {
    /// Prepare (before fork). `report` is the write end of a close-on-exec pipe on
    /// which a failed set-up step is reported; the hook owns it, so dropping the
    /// command (and its hook) after spawn closes the service's copy.
    pub(crate) fn new(
        confinement: Confinement,
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
        // memory prepared here before the fork (the scratch buffers, the prepared
        // confinement and path records), allocates and frees nothing, takes no lock,
        // never panics (no indexing, no unwrap), reports failure as an errno-built
        // `io::Error`, and its supervisor side ends in `sys::exit_now`.
        unsafe { sys::register_pre_exec(cmd, move || self.run()) }
    }

    fn fail(&self, failure: SetupFailure) -> io::Error {
        sys::write_all_raw(&self.report, &failure.encode());
        io::Error::from_raw_os_error(failure.errno)
    }

    /// Runs in the forked child: returns (to std, which `exec`s) in the command
    /// process; never returns in the supervisor.
    fn run(&mut self) -> io::Result<()> {
        let watched = SigSet::of(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
        // From here on no handler inherited from the service runs in this process.
        sys::block_signals(&SigSet::full()).map_err(|e| self.fail(fail(Step::Fork, e)))?;
        // Frozen since the fork: the dispositions the command must not inherit.
        let non_default = sys::non_default_signals();
        sys::set_child_subreaper().map_err(|e| self.fail(fail(Step::Fork, e)))?;
        // SAFETY: both sides below run only async-signal-safe code, as `run` itself
        // (see `register`): the command side resets signals, applies the prepared
        // confinement, opens the prepared paths and returns to std's `exec`; the
        // supervisor side runs `supervise`, which allocates nothing, uses the
        // scratch buffers allocated before the first fork, and ends in `exit_now`.
        match unsafe { sys::fork_in_pre_exec() }.map_err(|e| self.fail(fail(Step::Fork, e)))? {
            Forked::Child => {
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
            Forked::Parent(main) => supervise::supervise(
                main,
                &watched,
                self.grace,
                self.service_pid,
                &mut self.scratch,
            ),
        }
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
