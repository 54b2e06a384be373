//! The supervisor's loop: reap the tree, stop it when the command exits, on
//! SIGTERM from the service (timeout) or when the service dies, then exit the way
//! the command did. Runs in the supervisor only (see `spawn`): from its first
//! step on (closing its descriptors), it touches only its own stack and its kit's
//! scratch buffers, through raw system calls that leave `errno` alone.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::tree::{self, ProcScratch};
use crate::sys::{self, SigSet};

/// What the supervisor keeps, on its own stack, once the command runs.
pub(super) struct Watch {
    /// The command's pid.
    pub(super) main: i32,
    /// A signalfd for SIGCHLD, SIGTERM, SIGINT and SIGHUP (all blocked).
    pub(super) signals: OwnedFd,
    pub(super) grace: Duration,
    pub(super) service_pid: i32,
    /// Exit when the command does, leaving its leftovers running (they are
    /// re-parented to the next subreaper or init); a timeout still stops them.
    pub(super) keep_descendants: bool,
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

/// Keep only `signals`, as descriptor 0; `false` if it could not be moved there
/// (every descriptor is closed then, and the loop polls).
fn keep_only(signals: OwnedFd) -> bool {
    let moved = signals.as_raw_fd() == 0 || sys::dup_onto(signals.as_fd(), 0).is_ok();
    // Its number is closed below with the rest (or is 0): never close it twice.
    std::mem::forget(signals);
    // Valid arguments: close_range cannot fail, so it writes no `errno`. This
    // closes the report pipe's write end: from here on the service may free the
    // run's hook.
    let _ = sys::close_range_from(if moved { 1 } else { 0 }, false);
    moved
}

pub(super) fn supervise(watch: Watch, scratch: &mut ProcScratch) -> ! {
    let Watch {
        main,
        signals,
        grace,
        service_pid,
        keep_descendants,
    } = watch;
    let me = sys::getpid();
    let have_signals = keep_only(signals);
    // SAFETY: descriptor 0 is the signalfd moved there by `keep_only`, open for
    // the rest of this process's life.
    let signals: Option<BorrowedFd<'_>> = have_signals.then(|| unsafe { sys::borrow_raw_fd(0) });
    let _ = sys::set_rlimit(rustix::process::Resource::Core, 0, 0);
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
            if keep_descendants {
                finish(me, main_status);
            }
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
            Phase::Running if signals.is_some() => None,
            // Without a signalfd: look again every 20 ms.
            Phase::Running | Phase::Killing => Some(Duration::from_millis(20)),
            Phase::Terminating { deadline } => Some(deadline.saturating_sub(sys::monotonic_now())),
        };
        let Some(fd) = signals else {
            sys::sleep_raw(wait.unwrap_or(Duration::from_millis(20)));
            continue;
        };
        if sys::wait_readable(fd, wait) {
            while let Some(sig) = sys::read_signal(fd) {
                if sig != libc::SIGCHLD && matches!(phase, Phase::Running) {
                    phase = terminate(me, grace, scratch);
                }
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
            // The dispositions were reset to the default at the start (see
            // `spawn`); all signals are blocked instead: unblock this one to die
            // by it.
            let _ = sys::unblock_signals(&SigSet::single(sig));
            let _ = sys::kill_process(me, sig);
            sys::exit_now(128 + sig)
        }
        _ => sys::exit_now(127),
    }
}
