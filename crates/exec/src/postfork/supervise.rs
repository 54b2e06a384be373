//! The supervisor's loop: reap the tree, stop it when the command exits, on
//! SIGTERM from the service (timeout) or when the service dies, then exit the way
//! the command did. Runs in the forked supervisor only (see the parent module):
//! async-signal-safe code over memory prepared before the fork.

use std::time::Duration;

use super::tree::{self, ProcScratch};
use crate::sys::{self, SigSet};

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

pub(super) fn supervise(
    main: i32,
    watched: &SigSet,
    grace: Duration,
    service_pid: i32,
    scratch: &mut ProcScratch,
) -> ! {
    let me = sys::getpid();
    let _ = sys::close_range_from(0, false);
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
            // The supervisor kept the service's dispositions (all signals blocked
            // instead): the default action is needed to die by this one.
            sys::reset_signal_disposition(sig);
            let _ = sys::unblock_signals(&SigSet::of(&[sig]));
            let _ = sys::kill_process(me, sig);
            sys::exit_now(128 + sig)
        }
        _ => sys::exit_now(127),
    }
}
