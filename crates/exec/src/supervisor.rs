//! The per-run supervisor: why and how a command's whole process tree dies.
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
//! that child becomes the **supervisor**: it resets its signal handlers, blocks
//! SIGCHLD/SIGTERM/SIGINT/SIGHUP, sets `PR_SET_CHILD_SUBREAPER`, and forks the real
//! command (which restores its signal mask, applies the [`Confinement`] and returns
//! to std to `exec`). The supervisor then closes every descriptor it holds (so the
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
//!
//! Everything here runs between fork and exec of a multi-threaded program: only the
//! async-signal-safe wrappers of `sys` and memory prepared before the fork.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::child::{Confinement, SetupFailure, Step};
use crate::pathfd::PathFds;
use crate::sys::{self, Forked, SigSet};
use crate::tree::{self, ProcScratch};

/// The state moved into the pre-exec hook.
pub(crate) struct Hook {
    confinement: Confinement,
    scratch: ProcScratch,
    grace: Duration,
    service_pid: i32,
    report_fd: RawFd,
    paths: PathFds,
}

impl Hook {
    /// Prepare (before fork). `report_fd` is the write end of a close-on-exec pipe on
    /// which a failed set-up step is reported; it must stay open until spawn returns.
    pub(crate) fn new(
        confinement: Confinement,
        grace: Duration,
        service_pid: i32,
        report_fd: RawFd,
    ) -> Hook {
        Hook {
            confinement,
            scratch: ProcScratch::default(),
            grace,
            service_pid,
            report_fd,
            paths: PathFds::default(),
        }
    }

    /// The files to open in the command process, after its confinement.
    pub(crate) fn with_paths(mut self, paths: PathFds) -> Hook {
        self.paths = paths;
        self
    }

    fn fail(&self, failure: SetupFailure) -> io::Error {
        sys::write_all_raw(self.report_fd, &failure.encode());
        io::Error::from_raw_os_error(failure.errno)
    }

    /// Runs in the forked child: returns (to std, which `exec`s) in the command
    /// process; never returns in the supervisor.
    pub(crate) fn run(&mut self) -> io::Result<()> {
        let watched = SigSet::of(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
        sys::reset_signal_dispositions();
        sys::block_signals(&watched).map_err(|e| self.fail(fail(Step::Fork, e)))?;
        sys::set_child_subreaper().map_err(|e| self.fail(fail(Step::Fork, e)))?;
        match sys::fork_in_pre_exec().map_err(|e| self.fail(fail(Step::Fork, e)))? {
            Forked::Child => {
                sys::unblock_all_signals().map_err(|e| self.fail(fail(Step::Fork, e)))?;
                // The marking is best effort: exec closes everything close-on-exec anyway.
                let _ = sys::close_range_from(3, true);
                self.confinement.apply().map_err(|f| self.fail(f))?;
                // With the command's own credentials and sandbox: its path descriptors.
                self.paths.open_all(self.report_fd)?;
                // After the credential changes (which clear it): die with the supervisor.
                sys::set_parent_death_signal(libc::SIGKILL)
                    .map_err(|e| self.fail(fail(Step::DeathSignal, e)))?;
                Ok(())
            }
            Forked::Parent(main) => supervise(
                main,
                &watched,
                self.grace,
                self.service_pid,
                &mut self.scratch,
            ),
        }
    }
}

fn fail(step: Step, e: io::Error) -> SetupFailure {
    SetupFailure {
        step,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

enum Phase {
    Running,
    Terminating { deadline: Duration },
    Killing,
}

/// Start the SIGTERM phase.
fn terminate(me: i32, grace: Duration, scratch: &mut ProcScratch) -> Phase {
    tree::signal_tree(me, Some(me), libc::SIGTERM, scratch);
    Phase::Terminating {
        deadline: sys::monotonic_now().saturating_add(grace),
    }
}

fn supervise(
    main: i32,
    watched: &SigSet,
    grace: Duration,
    service_pid: i32,
    scratch: &mut ProcScratch,
) -> ! {
    let me = sys::getpid();
    let _ = sys::close_range_from(0, false);
    let _ = sys::set_rlimit(libc::RLIMIT_CORE, 0, 0);
    let _ = sys::set_parent_death_signal(libc::SIGTERM);
    let mut phase = Phase::Running;
    if sys::getppid() != service_pid {
        phase = terminate(me, grace, scratch);
    }
    let mut main_status: Option<i32> = None;
    loop {
        // Reap everything that has exited; stop when no child is left.
        loop {
            match sys::wait_nohang(-1) {
                Ok(Some((pid, status))) => {
                    if pid == main {
                        main_status = Some(status);
                    }
                }
                Ok(None) => break,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => finish(me, main_status),
                Err(_) => break,
            }
        }
        if main_status.is_some() && matches!(phase, Phase::Running) {
            phase = terminate(me, grace, scratch);
        }
        if let Phase::Terminating { deadline } = phase {
            if sys::monotonic_now() >= deadline {
                phase = Phase::Killing;
            }
        }
        if matches!(phase, Phase::Killing) {
            tree::signal_tree(me, Some(me), libc::SIGKILL, scratch);
        }
        let wait = match phase {
            Phase::Running => None,
            Phase::Terminating { deadline } => Some(deadline.saturating_sub(sys::monotonic_now())),
            Phase::Killing => Some(Duration::from_millis(20)),
        };
        if let Some(sig) = sys::sigtimedwait(watched, wait) {
            if sig != libc::SIGCHLD && matches!(phase, Phase::Running) {
                phase = terminate(me, grace, scratch);
            }
        }
    }
}

/// Exit the way the command did.
fn finish(me: i32, status: Option<i32>) -> ! {
    match status {
        Some(st) if libc::WIFEXITED(st) => sys::exit_now(libc::WEXITSTATUS(st)),
        Some(st) if libc::WIFSIGNALED(st) => {
            let sig = libc::WTERMSIG(st);
            let _ = sys::unblock_signals(&SigSet::of(&[sig]));
            let _ = sys::kill_process(me, sig);
            sys::exit_now(128 + sig)
        }
        _ => sys::exit_now(127),
    }
}
