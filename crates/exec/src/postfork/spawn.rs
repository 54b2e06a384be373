//! Starting the per-run supervisor without copying the service.
//!
//! The supervisor is started with [`sys::clone_shared`]: a process of its own
//! (own descriptor table, working directory, signal dispositions, process group,
//! credentials and rlimits, all copied at its start) that **shares the service's
//! memory**, so no page table is copied and no copy-on-write fault follows in
//! either process. It runs on a stack of its own ([`Kit`]) and starts the command
//! with [`sys::vfork_on`] on a second one, as before. What makes sharing the
//! memory sound is who touches what, and when:
//!
//! 1. **Before the report pipe's end of file.** The service thread that calls
//!    [`start`] blocks every signal, starts the supervisor, closes its own copies
//!    of the command's descriptors and of the report pipe's write end, then reads
//!    the report pipe until end of file, synchronously (no other code runs on that
//!    thread, and with every signal blocked no handler either). The write end is
//!    close-on-exec and open in the supervisor's and the command's tables only, so
//!    end of file means: the command has `exec`ed or exited, and the supervisor
//!    has closed its descriptors (the first thing [`supervise`] does) or exited.
//!    Until then the supervisor and the command read the run's [`Hook`] and
//!    [`Launch`], which live in [`start`]'s frame, and write only `Hook::failed`
//!    and the path records, which the service reads after end of file. They also
//!    share the blocked thread's thread pointer: a failing libc call in them may
//!    write that thread's `errno`, which the thread does not read across the
//!    blocking `read` (it only looks at `errno` after a failed call, and its
//!    `read` cannot fail with every signal blocked).
//! 2. **After it.** The supervisor touches only its own stack and the [`Kit`]'s
//!    scratch buffers, with raw system calls that leave `errno` and every other
//!    thread-local alone (rustix's typed calls; `pthread_sigmask`, which returns
//!    its error; `close_range` with valid arguments, which cannot fail; `_exit`).
//!    A [`Kit`] belongs to its supervisor until the service has reaped it
//!    ([`Supervisor::wait`]): only then is it reused or unmapped. A supervisor
//!    abandoned before being reaped (its run's future dropped) gets SIGTERM, and
//!    its kit is kept until a later [`start`] reaps it; if the service exits
//!    first, the memory stays mapped for the supervisor (it holds the address
//!    space), which stops its tree (parent-death signal) and exits.
//!
//! The supervisor starts with every signal blocked (the mask of the thread that
//! started it) and a copy of the service's dispositions: before anything else it
//! resets the non-default ones, so no handler of the service ever runs in it or in
//! the command's process, and it waits for its signals through a signalfd.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::supervise::{self, Watch};
use super::tree::ProcScratch;
use super::{fail, reset_dispositions, watched, Hook};
use crate::child::Step;
use crate::sys::{self, Ended, Stack};

/// Stack of the supervisor (its loop and the `/proc` scan; generous for debug
/// builds).
const SUPERVISOR_STACK: usize = 128 * 1024;
/// Stack of the command's process between its start and its `exec` (it runs the
/// confinement and the opening of path descriptors).
const COMMAND_STACK: usize = 256 * 1024;
/// Kits kept for reuse once their supervisor is reaped.
const MAX_IDLE_KITS: usize = 8;

/// The memory a supervisor uses after its start: its stack, the stack of the
/// command's process, and the buffers of the process-tree walk. Allocated once and
/// reused (a reused kit's touched pages stay mapped: no fault per run).
struct Kit {
    supervisor_stack: Stack,
    command_stack: Stack,
    scratch: ProcScratch,
}

impl Kit {
    fn new() -> io::Result<Box<Kit>> {
        Ok(Box::new(Kit {
            supervisor_stack: Stack::new(SUPERVISOR_STACK)?,
            command_stack: Stack::new(COMMAND_STACK)?,
            scratch: ProcScratch::default(),
        }))
    }
}

/// Kits whose supervisor has been reaped. Boxed: a supervisor holds the
/// address of its kit (its scratch buffers' headers), which must not move.
#[allow(clippy::vec_box)]
static IDLE: Mutex<Vec<Box<Kit>>> = Mutex::new(Vec::new());
/// Supervisors whose run was abandoned before they were reaped.
static ABANDONED: Mutex<Vec<Live>> = Mutex::new(Vec::new());

#[allow(clippy::vec_box)]
fn idle() -> std::sync::MutexGuard<'static, Vec<Box<Kit>>> {
    IDLE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn abandoned() -> std::sync::MutexGuard<'static, Vec<Live>> {
    ABANDONED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn give_back(kit: Box<Kit>) {
    let mut idle = idle();
    if idle.len() < MAX_IDLE_KITS {
        idle.push(kit);
    }
}

/// Reap the abandoned supervisors that have ended, freeing their kits.
fn sweep() {
    let mut list = abandoned();
    if list.is_empty() {
        return;
    }
    let mut i = 0;
    while i < list.len() {
        if matches!(sys::wait_pidfd(list[i].pidfd.as_fd(), false), Ok(Some(_))) {
            let live = list.swap_remove(i);
            live.release();
        } else {
            i += 1;
        }
    }
}

/// A started supervisor not yet reaped: its pidfd and its kit.
struct Live {
    pidfd: OwnedFd,
    kit: NonNull<Kit>,
}

// SAFETY: `kit` is owned (from `Box::into_raw`) and only turned back into a box
// once the supervisor using it is reaped; nothing else refers to it from the
// service.
unsafe impl Send for Live {}

impl Live {
    /// The supervisor has been reaped: its kit may be reused.
    fn release(self) {
        // SAFETY: `kit` came from `Box::into_raw` in `start`, and the only other
        // user of its memory, the supervisor, has been reaped (so has ended).
        give_back(unsafe { Box::from_raw(self.kit.as_ptr()) });
    }
}

/// The command's ends of its standard descriptors.
pub(crate) struct Stdio {
    /// Standard input (a pipe's read end, or `/dev/null`).
    pub(crate) stdin: OwnedFd,
    /// Standard output (a pipe's write end).
    pub(crate) stdout: OwnedFd,
    /// Standard error (a pipe's write end).
    pub(crate) stderr: OwnedFd,
}

/// Why [`start`] did not leave a command running.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The command did not start: the record the supervisor or the command's
    /// process wrote to the report pipe (a `SetupFailure` or a `PathFailure`).
    Report(Vec<u8>),
    /// The supervisor could not be started.
    Os(io::Error),
}

/// What the supervisor reads at its start (lives in `start`'s frame).
struct Launch {
    hook: *mut Hook,
    /// The command's stdin, stdout and stderr, numbered 3 or above.
    stdio: [RawFd; 3],
    kit: *mut Kit,
}

/// A running supervisor (and so a running command). Dropped before
/// [`Supervisor::wait`] returned, it gets SIGTERM (the supervisor then stops the
/// tree) and is reaped later.
pub(crate) struct Supervisor {
    pid: i32,
    live: Option<Live>,
    ended: Option<Ended>,
}

impl Supervisor {
    /// Its pid (also its process group, the command's).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Send `sig` to the supervisor (nothing once it has been reaped).
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        match &self.live {
            Some(live) => sys::pidfd_signal(live.pidfd.as_fd(), sig),
            None => Ok(()),
        }
    }

    fn try_reap(&mut self, block: bool) -> io::Result<Option<Ended>> {
        if let Some(ended) = self.ended {
            return Ok(Some(ended));
        }
        let Some(live) = &self.live else {
            return Err(io::Error::from_raw_os_error(libc::ECHILD));
        };
        let ended = sys::wait_pidfd(live.pidfd.as_fd(), block)?;
        if let Some(e) = ended {
            self.ended = Some(e);
            if let Some(live) = self.live.take() {
                live.release();
            }
        }
        Ok(ended)
    }

    /// Wait for the supervisor to end and reap it: it ends the way the command
    /// did, once the command's whole tree is gone.
    pub(crate) async fn wait(&mut self) -> io::Result<Ended> {
        loop {
            if let Some(ended) = self.try_reap(false)? {
                return Ok(ended);
            }
            let Some(live) = &self.live else {
                return Err(io::Error::from_raw_os_error(libc::ECHILD));
            };
            // SAFETY: `live.pidfd` stays open, and the same descriptor, while
            // `watch` lives: nothing in this block reaps the supervisor or drops
            // the pidfd (`live` is borrowed for the whole block).
            let watch = unsafe {
                AsyncFd::register_with_interest(
                    Registered(live.pidfd.as_raw_fd()),
                    Interest::READABLE,
                )
            }
            .map_err(io::Error::from)?;
            // A pidfd is readable once its process has ended.
            drop(watch.readable().await?);
        }
    }
}

/// A pidfd registered with the runtime without handing it over (the
/// [`Supervisor`] owns it and outlives the registration).
struct Registered(RawFd);

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.live.is_none() {
            return;
        }
        // Abandoned: the supervisor stops the tree (SIGTERM, then SIGKILL after
        // the grace) and exits; whoever starts the next run reaps it.
        let _ = self.signal(libc::SIGTERM);
        if matches!(self.try_reap(false), Ok(Some(_))) {
            return;
        }
        if let Some(live) = self.live.take() {
            abandoned().push(live);
        }
    }
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        Ok(fd)
    } else {
        sys::dup_above_stdio(fd.as_fd())
    }
}

/// Read the report pipe to its end (at most one record is kept).
fn read_report(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut report = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        let n = sys::read_raw(fd, &mut buf)?;
        if n == 0 {
            return Ok(report);
        }
        if report.len() < buf.len() {
            report.extend_from_slice(&buf[..n.min(buf.len() - report.len())]);
        }
    }
}

/// Start the supervisor of `hook`'s command, with `stdio` as the command's
/// standard descriptors, and wait until the command has `exec`ed (or failed to).
/// `report_write` is the write end of the close-on-exec pipe whose read end is
/// `report_read`, on which a failed step is reported. Blocks the calling thread
/// for as long as the command's set-up takes, as a `fork`+`exec` does.
pub(crate) fn start(
    hook: Hook,
    stdio: Stdio,
    report_write: OwnedFd,
    report_read: OwnedFd,
) -> Result<Supervisor, StartError> {
    sweep();
    let mut hook = hook;
    // Not 0, 1 or 2, which the supervisor replaces: the report pipe must stay
    // open in it until it closes everything (see the module doc).
    let report_write = above_stdio(report_write).map_err(StartError::Os)?;
    hook.report = report_write.as_raw_fd();
    let stdio = [
        above_stdio(stdio.stdin).map_err(StartError::Os)?,
        above_stdio(stdio.stdout).map_err(StartError::Os)?,
        above_stdio(stdio.stderr).map_err(StartError::Os)?,
    ];
    let kit = match idle().pop() {
        Some(kit) => kit,
        None => Kit::new().map_err(StartError::Os)?,
    };
    let kit = NonNull::from(Box::leak(kit));
    let mut launch = Launch {
        hook: &mut hook,
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        kit: kit.as_ptr(),
    };
    // The supervisor's clock calls go through the vDSO, whose address rustix
    // looks up once: do it here, not in the supervisor.
    let _ = sys::monotonic_now();
    let old_mask = match sys::block_all_signals() {
        Ok(mask) => mask,
        Err(e) => {
            // SAFETY: `kit` came from `Box::leak` above and no process uses it.
            give_back(unsafe { Box::from_raw(kit.as_ptr()) });
            return Err(StartError::Os(e));
        }
    };
    // SAFETY: the contract of `clone_shared`, as this module's doc explains:
    // `supervisor_main` is async-signal-safe and fits its stack; before the report
    // pipe's end of file it uses `launch` and `hook` (in this frame, which does
    // not return before that end of file and leaves both alone until then) and
    // the kit; after it, only its stack and the kit, which stay allocated until it
    // is reaped (`Live`); this thread runs no user code between the start and the
    // end of file (a blocking `read` with every signal blocked), so the
    // supervisor's writes to its `errno` are never read.
    let cloned = unsafe {
        sys::clone_shared(
            &(*kit.as_ptr()).supervisor_stack,
            supervisor_main,
            (&mut launch as *mut Launch).cast(),
        )
    };
    // This process's copies: the supervisor has its own (or does not exist).
    drop(stdio);
    drop(report_write);
    let (pid, pidfd) = match cloned {
        Ok(started) => started,
        Err(e) => {
            let _ = sys::set_signal_mask(&old_mask);
            // SAFETY: no process was started: the kit is unused.
            give_back(unsafe { Box::from_raw(kit.as_ptr()) });
            return Err(StartError::Os(e));
        }
    };
    let report = read_report(&report_read);
    let _ = sys::set_signal_mask(&old_mask);
    let mut supervisor = Supervisor {
        pid,
        live: Some(Live { pidfd, kit }),
        ended: None,
    };
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            // Cannot happen for a pipe; without the end of file the supervisor
            // may still read `hook` and `launch`: never free them.
            std::mem::forget(hook);
            return Err(StartError::Os(e));
        }
    };
    // End of file: the supervisor and the command no longer use `hook`, `launch`.
    drop(hook);
    if report.is_empty() {
        return Ok(supervisor);
    }
    // A failure: the supervisor has exited (its descriptors are closed), reap it.
    let _ = supervisor.try_reap(true);
    Err(StartError::Report(report))
}

/// The supervisor's first function, in the new process on the kit's supervisor
/// stack.
extern "C" fn supervisor_main(arg: *mut libc::c_void) -> libc::c_int {
    let launch = arg.cast::<Launch>();
    // SAFETY: `arg` is `start`'s `Launch`, alive and left alone by the service
    // until this process closes its copy of the report pipe (see the module doc);
    // `start_command` is where it is used, and it returns before that.
    let (kit, watch) = unsafe {
        let kit = (*launch).kit;
        (kit, start_command(&mut *launch, &(*kit).command_stack))
    };
    match watch {
        // SAFETY: the kit stays allocated until this process is reaped, and no
        // one else touches its scratch buffers meanwhile (see `Live`).
        Some(watch) => supervise::supervise(watch, unsafe { &mut (*kit).scratch }),
        None => sys::exit_now(127),
    }
}

/// In the supervisor: take the command's descriptors, directory and group, drop
/// the service's signal dispositions, become the tree's subreaper and start the
/// command. `None` when something failed (recorded on the report pipe).
///
/// # Safety
///
/// Called once, from `supervisor_main`, with `start`'s `Launch` and the kit's
/// command stack.
unsafe fn start_command(launch: &mut Launch, command_stack: &Stack) -> Option<Watch> {
    // SAFETY: `launch.hook` points to `start`'s `Hook`, alive and untouched by the
    // service until this process closes its descriptors (after this function).
    let hook = unsafe { &mut *launch.hook };
    let failed = |hook: &Hook, e: io::Error| {
        let _ = hook.fail(fail(Step::Fork, e));
    };
    // Every signal is blocked (inherited from the thread that started us).
    if let Err(e) = sys::new_process_group().and_then(|()| sys::chdir_root()) {
        failed(hook, e);
        return None;
    }
    for (target, &fd) in launch.stdio.iter().enumerate() {
        // SAFETY: the three numbers are open in this process's table (copied from
        // the service's while `start` held them open).
        let src = unsafe { sys::borrow_raw_fd(fd) };
        if let Err(e) = sys::dup_onto(src, target as RawFd) {
            failed(hook, e);
            return None;
        }
    }
    // Read in this process: the dispositions it was started with.
    reset_dispositions(sys::non_default_signals());
    let signals = match sys::set_child_subreaper().and_then(|()| sys::signalfd(&watched())) {
        Ok(fd) => fd,
        Err(e) => {
            failed(hook, e);
            return None;
        }
    };
    // SAFETY: this process's only thread is this one, suspended until the
    // command's process execs or exits; `command` is async-signal-safe (system
    // calls over the prepared hook, no allocation, no lock, no panic), runs
    // within `COMMAND_STACK` on the kit's command stack (used by no one else),
    // and writes only the hook's `paths` and `failed`, which this side and the
    // service read afterwards.
    let started = unsafe { sys::vfork_on(command_stack, &mut || hook.command()) };
    let main = match started {
        Ok(pid) => pid,
        Err(e) => {
            failed(hook, e);
            return None;
        }
    };
    if hook.failed.load(Ordering::SeqCst) != 0 {
        let _ = sys::wait_blocking(main);
        return None;
    }
    Some(Watch {
        main,
        signals,
        grace: hook.grace,
        service_pid: hook.service_pid,
        keep_descendants: hook.keep_descendants,
    })
}
