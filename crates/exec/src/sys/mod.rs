//! Thin, typed wrappers over Linux system calls: with `postfork`, the only module
//! of the workspace allowed `unsafe`.
//!
//! Most wrappers are rustix's typed calls (raw system calls, no `errno`, no
//! allocation). libc is used only where rustix has no call: `fork`/`clone`,
//! `_exit`, the signal mask and dispositions, `sigtimedwait`, `close_range`, and
//! the Landlock and seccomp system calls (through `libc::syscall`, each with its
//! own typed wrapper and `SAFETY` comment; there is no generic raw-syscall helper).
//!
//! Unless a wrapper's doc says otherwise it is **async-signal-safe**: system calls
//! only, no allocation, no lock. That is what makes them usable between `fork` and
//! `exec` in a multi-threaded program, where `postfork` runs the per-run supervisor
//! and the command's confinement.
//!
//! Credential wrappers (`set_res_uid`, `set_res_gid`, `clear_groups`, `capset`,
//! `capbset_drop`, ...) are raw system calls and so change **only the calling
//! thread** (unlike libc's `setresuid`, which signals every thread to change
//! them all); they are meant for a process known to be single-threaded: a freshly
//! forked child, which has exactly one thread, or a program that checked
//! [`thread_count`].
//!
//! Three functions are `unsafe` (crate-private, called only from `postfork`):
//! `clone_shared` and `vfork_on`, which start a process sharing this one's memory
//! (their callers promise that the code it runs is async-signal-safe, fits the
//! stack it is given and touches only memory kept alive for it), and
//! `borrow_raw_fd`. [`fork_single_threaded`] stays safe: it checks its own
//! precondition (one thread) at run time.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::process::{Pid, Resource, Rlimit, Signal, WaitOptions};
use rustix::thread::{CapabilitySet, CapabilitySets};

/// The crate's `io::Error` for a rustix error (no allocation).
fn err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

fn pid(p: i32) -> io::Result<Pid> {
    Pid::from_raw(p).ok_or_else(einval)
}

/// A signal number: a standard (named) signal, or a real-time one libc leaves to
/// applications (`SIGRTMIN..=SIGRTMAX`); anything else is `EINVAL`.
fn signal(sig: i32) -> io::Result<Signal> {
    if let Some(s) = Signal::from_named_raw(sig) {
        return Ok(s);
    }
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) {
        // SAFETY: a real-time signal in the range libc leaves to applications, not
        // one it reserves for itself; it is only ever sent, never handled here.
        return Ok(unsafe { Signal::from_raw_unchecked(sig) });
    }
    Err(einval())
}

// ---------------------------------------------------------------------------
// Processes and signals
// ---------------------------------------------------------------------------

/// Send `sig` to the single process `pid` (`sig` 0: only check that it exists and
/// may be signalled). Refuses `pid <= 0` (which would address a group or every
/// process) with `EINVAL`.
pub fn kill_process(pid_: i32, sig: i32) -> io::Result<()> {
    if pid_ <= 0 {
        return Err(einval());
    }
    let p = pid(pid_)?;
    if sig == 0 {
        return rustix::process::test_kill_process(p).map_err(err);
    }
    rustix::process::kill_process(p, signal(sig)?).map_err(err)
}

/// Send `sig` to every member of process group `pgid`. Refuses `pgid <= 1`.
pub fn kill_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(einval());
    }
    rustix::process::kill_process_group(pid(pgid)?, signal(sig)?).map_err(err)
}

/// `wait4(pid, WNOHANG)` (`pid` -1: any child): `Ok(None)` if nothing changed yet,
/// `Ok(Some((pid, status)))` for a reaped child, `Err(ECHILD)` when there is no
/// child left to wait for.
pub fn wait_nohang(pid_: i32) -> io::Result<Option<(i32, i32)>> {
    let r = if pid_ == -1 {
        rustix::process::wait(WaitOptions::NOHANG)
    } else {
        rustix::process::waitpid(Some(pid(pid_)?), WaitOptions::NOHANG)
    }
    .map_err(err)?;
    Ok(r.map(|(p, status)| (p.as_raw_nonzero().get(), status.as_raw())))
}

/// Blocking `wait4(pid)`, retried on `EINTR`. Returns the wait status.
pub fn wait_blocking(pid_: i32) -> io::Result<i32> {
    let p = pid(pid_)?;
    loop {
        match rustix::process::waitpid(Some(p), WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(status.as_raw()),
            Ok(None) => return Err(io::Error::from_raw_os_error(libc::ECHILD)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(err(e)),
        }
    }
}

/// This process's id.
pub fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// This process's effective user id (the calling thread's, as the kernel has it).
pub fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The parent process's id (0 when there is none visible).
pub fn getppid() -> i32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
}

/// Terminate the process at once with `code` (no destructors, no atexit handlers).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns; nothing of ours needs
    // unwinding in the process it ends.
    unsafe { libc::_exit(code) }
}

/// A set of signals (wrapper over `sigset_t`).
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// The set holding exactly `signals`.
    pub fn of(signals: &[i32]) -> SigSet {
        // SAFETY: sigset_t is plain data, valid when zeroed; sigemptyset then
        // initialises it fully and sigaddset only writes into it (both are
        // async-signal-safe; an invalid signal number is ignored).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            SigSet(set)
        }
    }

    /// The set holding only `sig`, built without libc (whose `sigaddset` sets
    /// `errno` for the numbers it reserves): no thread-local is touched. An
    /// out-of-range number gives the empty set.
    pub fn single(sig: i32) -> SigSet {
        const WORDS: usize = std::mem::size_of::<libc::sigset_t>() / 8;
        const _: () = assert!(std::mem::size_of::<libc::sigset_t>() == WORDS * 8);
        let mut words = [0u64; WORDS];
        if let Ok(bit) = usize::try_from(sig - 1) {
            if let Some(w) = words.get_mut(bit / 64) {
                *w |= 1u64 << (bit % 64);
            }
        }
        // SAFETY: sigset_t is plain data of exactly this size (checked above),
        // a bit array in which bit `n - 1` is signal `n` (the kernel's layout,
        // which glibc uses as is).
        SigSet(unsafe { std::mem::transmute::<[u64; WORDS], libc::sigset_t>(words) })
    }

    /// Every signal.
    pub fn full() -> SigSet {
        // SAFETY: as in `of`: a zeroed sigset_t filled by sigfillset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            SigSet(set)
        }
    }
}

fn sigprocmask(how: libc::c_int, set: &SigSet) -> io::Result<()> {
    // SAFETY: `set` points to a valid, initialised sigset_t for the call; the old
    // mask is not asked for. `pthread_sigmask` is async-signal-safe and returns the
    // error number instead of setting errno.
    let r = unsafe { libc::pthread_sigmask(how, &set.0, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Block the signals in `set` for the calling thread.
pub fn block_signals(set: &SigSet) -> io::Result<()> {
    sigprocmask(libc::SIG_BLOCK, set)
}

/// Unblock the signals in `set` for the calling thread.
pub fn unblock_signals(set: &SigSet) -> io::Result<()> {
    sigprocmask(libc::SIG_UNBLOCK, set)
}

/// Replace the calling thread's signal mask with the empty set.
pub fn unblock_all_signals() -> io::Result<()> {
    sigprocmask(libc::SIG_SETMASK, &SigSet::of(&[]))
}

/// Wait for one of the (blocked) signals in `set`, at most `timeout` (`None`: forever).
/// Returns the signal number, or `None` on timeout or interruption.
pub fn sigtimedwait(set: &SigSet, timeout: Option<Duration>) -> Option<i32> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `set` and `ts_ptr` (null or a live timespec) are valid for the call;
    // no siginfo is asked for. sigtimedwait is async-signal-safe.
    let r = unsafe { libc::sigtimedwait(&set.0, std::ptr::null_mut(), ts_ptr) };
    (r > 0).then_some(r)
}

/// Reset the disposition of `sig` to `SIG_DFL` (errors, e.g. for a signal libc
/// reserves, are ignored).
pub fn reset_signal_disposition(sig: i32) {
    // SAFETY: a zeroed sigaction with SIG_DFL (0) as handler is valid; sigaction is
    // async-signal-safe and only reads `act`.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &act, std::ptr::null_mut());
    }
}

/// Reset the disposition of every catchable signal to `SIG_DFL` (handlers inherited
/// over `fork` would otherwise run in a child that never `exec`s).
pub fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            reset_signal_disposition(sig);
        }
    }
}

/// The signals whose disposition is not `SIG_DFL` in this process (caught or
/// ignored), as a mask (bit `n - 1` = signal `n`), read from the `SigCgt:` and
/// `SigIgn:` lines of `/proc/self/status` into a stack buffer: one `open`, a
/// `read` or two and a `close` instead of 62 `sigaction` calls. `None` when the
/// file cannot be read or parsed (then reset them all).
pub fn non_default_signals() -> Option<u64> {
    let fd = open_raw(None, c"/proc/self/status", false).ok()?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match read_raw(&fd, buf.get_mut(len..)?) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    let text = buf.get(..len)?;
    let field = |name: &[u8]| -> Option<u64> {
        let start = text.windows(name.len()).position(|w| w == name)? + name.len();
        let mut v: u64 = 0;
        let mut digits = 0;
        for &b in text.get(start..)? {
            let d = match b {
                b'\t' | b' ' if digits == 0 => continue,
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => break,
            };
            v = v.checked_mul(16)? | u64::from(d);
            digits += 1;
        }
        (digits == 16).then_some(v)
    };
    Some(field(b"\nSigCgt:")? | field(b"\nSigIgn:")?)
}

/// `CLOCK_MONOTONIC` now, as a duration since an arbitrary origin.
pub fn monotonic_now() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

// ---------------------------------------------------------------------------
// prctl
// ---------------------------------------------------------------------------

/// `PR_SET_CHILD_SUBREAPER`: orphaned descendants are re-parented to this process.
pub fn set_child_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(err)
}

/// `PR_SET_PDEATHSIG`: receive `sig` when the parent (thread) dies. Cleared by the
/// kernel on credential changes, so set it after them.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(signal(sig)?)).map_err(err)
}

/// `PR_SET_KEEPCAPS`: keep the permitted set across a change away from uid 0.
pub fn set_keep_caps(keep: bool) -> io::Result<()> {
    rustix::thread::set_keep_capabilities(keep).map_err(err)
}

/// `PR_SET_NO_NEW_PRIVS`: nothing executed from now on can gain privileges.
pub fn set_no_new_privs() -> io::Result<()> {
    rustix::thread::set_no_new_privs(true).map_err(err)
}

/// `PR_GET_NO_NEW_PRIVS`.
pub fn no_new_privs() -> io::Result<bool> {
    rustix::thread::no_new_privs().map_err(err)
}

fn one_cap(cap: u32) -> io::Result<CapabilitySet> {
    let bit = 1u64.checked_shl(cap).ok_or_else(einval)?;
    Ok(CapabilitySet::from_bits_retain(bit))
}

/// `PR_CAPBSET_DROP`: remove `cap` from the bounding set (needs `CAP_SETPCAP`).
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    rustix::thread::remove_capability_from_bounding_set(one_cap(cap)?).map_err(err)
}

/// `PR_CAP_AMBIENT_CLEAR_ALL`.
pub fn ambient_clear_all() -> io::Result<()> {
    rustix::thread::clear_ambient_capability_set().map_err(err)
}

/// `PR_CAP_AMBIENT_RAISE` for `cap` (must be permitted and inheritable).
pub fn ambient_raise(cap: u32) -> io::Result<()> {
    rustix::thread::configure_capability_in_ambient_set(one_cap(cap)?, true).map_err(err)
}

// ---------------------------------------------------------------------------
// Credentials and capabilities (calling thread only)
// ---------------------------------------------------------------------------

/// `setgroups(0, NULL)` for the calling thread: clear the supplementary groups.
pub fn clear_groups() -> io::Result<()> {
    rustix::thread::set_thread_groups(&[]).map_err(err)
}

/// `setresgid(gid, gid, gid)` for the calling thread.
pub fn set_res_gid(gid: u32) -> io::Result<()> {
    let g = rustix::process::Gid::from_raw(gid);
    rustix::thread::set_thread_res_gid(g, g, g).map_err(err)
}

/// `setresuid(uid, uid, uid)` for the calling thread.
pub fn set_res_uid(uid: u32) -> io::Result<()> {
    let u = rustix::process::Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(u, u, u).map_err(err)
}

/// The three capability sets of a thread as 64-bit masks (bit n = capability n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
}

/// `capset(2)` on the calling thread.
pub fn capset(sets: CapSets) -> io::Result<()> {
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::from_bits_retain(sets.effective),
            permitted: CapabilitySet::from_bits_retain(sets.permitted),
            inheritable: CapabilitySet::from_bits_retain(sets.inheritable),
        },
    )
    .map_err(err)
}

/// `capget(2)` on the calling thread.
pub fn capget() -> io::Result<CapSets> {
    let s = rustix::thread::capabilities(None).map_err(err)?;
    Ok(CapSets {
        effective: s.effective.bits(),
        permitted: s.permitted.bits(),
        inheritable: s.inheritable.bits(),
    })
}

/// `prlimit64(0, resource, {soft, hard}, NULL)` (`u64::MAX`: unlimited).
pub fn set_rlimit(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let finite = |v: u64| (v != u64::MAX).then_some(v);
    rustix::process::setrlimit(
        resource,
        Rlimit {
            current: finite(soft),
            maximum: finite(hard),
        },
    )
    .map_err(err)
}

// ---------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------

fn close_range(first: u32, last: u32, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: close_range takes integers only; glibc's wrapper is a plain system
    // call (errno is thread-local and only read back here).
    if unsafe { libc::close_range(first, last, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `close_range(first, ~0, flags)` (flags 0: close; `CLOSE_RANGE_CLOEXEC`: mark).
/// For a freshly forked child about to `exec` or exit: the descriptors it closes
/// may be owned by values this process still holds.
pub fn close_range_from(first: u32, cloexec_only: bool) -> io::Result<()> {
    let flags = if cloexec_only {
        libc::CLOSE_RANGE_CLOEXEC as libc::c_int
    } else {
        0
    };
    close_range(first, u32::MAX, flags)
}

/// Close every descriptor except those in `keep` (which must be sorted ascending).
/// For a freshly forked child, as [`close_range_from`].
pub fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    let mut first: u32 = 0;
    for &k in keep {
        let Ok(k) = u32::try_from(k) else { continue };
        if k > first {
            close_range(first, k - 1, 0)?;
        }
        first = first.max(k.saturating_add(1));
    }
    close_range_from(first, false)
}

/// `dup2(src, dst)`: descriptor number `dst` now refers to `src`'s file, without
/// close-on-exec (what was open at `dst` is closed). For a forked child placing a
/// file at a number reserved for it.
pub fn dup_onto(src: BorrowedFd<'_>, dst: RawFd) -> io::Result<()> {
    if dst < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `dst` is a non-negative descriptor number; the temporary OwnedFd is
    // never dropped (ManuallyDrop), so this function closes nothing beyond what
    // dup2 itself replaces, which is the documented purpose of the call.
    let mut target = std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(dst) });
    rustix::io::dup2(src, &mut target).map_err(err)
}

/// Point each of the standard descriptors in `fds` (0, 1 or 2 only) at `/dev/null`.
pub fn stdio_to_dev_null(fds: &[RawFd]) -> io::Result<()> {
    if fds.iter().any(|fd| !(0..=2).contains(fd)) {
        return Err(einval());
    }
    let null = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(err)?;
    for &fd in fds {
        dup_onto(null.as_fd(), fd)?;
    }
    Ok(())
}

/// Close a raw descriptor this process owns and nothing else refers to (errors
/// ignored). For a forked child dropping its copy of a placeholder.
pub fn close_fd(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: the caller hands over a descriptor number it owns (documented);
        // the OwnedFd is dropped at once, closing it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Open `path` (relative to `dir`, or absolute) read-only, close-on-exec.
pub fn open_raw(dir: Option<BorrowedFd<'_>>, path: &CStr, directory: bool) -> io::Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC;
    if directory {
        flags |= OFlags::DIRECTORY;
    }
    match dir {
        Some(d) => rustix::fs::openat(d, path, flags, Mode::empty()),
        None => rustix::fs::openat(CWD, path, flags, Mode::empty()),
    }
    .map_err(err)
}

/// `read(2)` into `buf`, retried on `EINTR`.
pub fn read_raw(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd.as_fd(), &mut *buf) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(err),
        }
    }
}

/// Write all of `buf` to `fd` (errors end the attempt silently; used for best-effort
/// reports from a forked child).
pub fn write_all_raw(fd: impl AsFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        match rustix::io::write(fd.as_fd(), buf) {
            Ok(n) if n > 0 => buf = buf.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => continue,
            _ => return,
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(err)
}

/// `poll(2)` for readability (or hang-up) on `fds`, at most `timeout` (`None`: forever).
/// Not async-signal-safe (allocates).
/// Returns, per descriptor, whether it is readable or closed. Retries on `EINTR`.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    use rustix::event::{PollFd, PollFlags};
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|&fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
        .collect();
    let ts = timeout.map(|t| rustix::time::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    loop {
        match rustix::event::poll(&mut pfds, ts.as_ref()) {
            Ok(_) => break,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(err(e)),
        }
    }
    let ready = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
    Ok(pfds.iter().map(|p| p.revents().intersects(ready)).collect())
}

// ---------------------------------------------------------------------------
// Landlock and seccomp (no rustix call: typed wrappers over libc::syscall)
// ---------------------------------------------------------------------------

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_ruleset_attr` as of ABI 6: handled filesystem rights, handled
/// network rights (ABI 4) and scopes (ABI 6).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// A `-1 + errno` return as an `io::Result`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The Landlock ABI version this kernel supports (`Err` with `ENOSYS` or
/// `EOPNOTSUPP` when Landlock is absent or disabled).
pub fn landlock_abi() -> io::Result<u32> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // reads no memory and returns the ABI version.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    check(r).map(|v| v as u32)
}

/// Create a ruleset from the first `len` bytes of `attr`.
fn landlock_create(attr: &RulesetAttr, len: usize) -> io::Result<OwnedFd> {
    debug_assert!(len <= std::mem::size_of::<RulesetAttr>());
    // SAFETY: `attr` is a live RulesetAttr of at least `len` bytes for the call;
    // the kernel reads `len` bytes of it (a prefix of the struct is accepted).
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            attr as *const RulesetAttr,
            len,
            0 as libc::c_uint,
        )
    })?;
    // SAFETY: the call returned a fresh descriptor (close-on-exec) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Create a ruleset handling the filesystem rights `handled_fs` (the kernel gets
/// only the first field of the ruleset attribute, which every ABI accepts).
pub fn landlock_create_ruleset(handled_fs: u64) -> io::Result<OwnedFd> {
    let attr = RulesetAttr {
        handled_access_fs: handled_fs,
        handled_access_net: 0,
        scoped: 0,
    };
    landlock_create(&attr, std::mem::size_of::<u64>())
}

/// Create a ruleset handling the filesystem rights `handled_fs`, the network
/// rights `handled_net` (Landlock ABI 4) and the scopes `scoped` (ABI 6). Fields
/// the kernel does not know must be 0 (it accepts a longer struct whose unknown tail
/// is zero).
pub fn landlock_create_ruleset_scoped(
    handled_fs: u64,
    handled_net: u64,
    scoped: u64,
) -> io::Result<OwnedFd> {
    let attr = RulesetAttr {
        handled_access_fs: handled_fs,
        handled_access_net: handled_net,
        scoped,
    };
    landlock_create(&attr, std::mem::size_of::<RulesetAttr>())
}

/// Allow `access` beneath the file or directory open at `parent` (an `O_PATH` fd).
pub fn landlock_add_path_rule(
    ruleset: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    access: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: both descriptors are borrowed, so open for the call; `attr` is a live
    // landlock_path_beneath_attr the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0 as libc::c_uint,
        )
    };
    check(r).map(drop)
}

/// Enforce the ruleset on the calling thread (needs `no_new_privs` or
/// `CAP_SYS_ADMIN`).
pub fn landlock_restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: integers only: a borrowed (so open) descriptor and flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            ruleset.as_raw_fd(),
            0 as libc::c_uint,
        )
    };
    check(r).map(drop)
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;

/// Whether this kernel supports the seccomp filter return action `action` (e.g.
/// `SECCOMP_RET_KILL_PROCESS`); `Err` (`ENOSYS`, `EINVAL`, `EOPNOTSUPP`) when it or
/// seccomp filtering itself is unavailable. Not needed after fork.
pub fn seccomp_action_available(action: u32) -> io::Result<()> {
    // SAFETY: `action` is a live u32 the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_uint,
            &action as *const u32,
        )
    };
    check(r).map(drop)
}

/// Install the classic BPF program `filter` as a seccomp filter on the calling
/// thread (needs `no_new_privs` or `CAP_SYS_ADMIN`). The program must have been
/// built before fork; this only points the kernel at it (async-signal-safe). The
/// filter is inherited by children and kept across `execve`.
pub fn seccomp_set_filter(filter: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(filter.len()).map_err(|_| einval())?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` live sock_filter instructions borrowed for the
    // call; the kernel copies the program and never writes through the pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    check(r).map(drop)
}

// ---------------------------------------------------------------------------
// fork, for single-threaded programs; exec images
// ---------------------------------------------------------------------------

/// Which side of a fork this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Number of threads of this process (from `/proc/self/status`). Not
/// async-signal-safe (allocates).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no Threads: line in /proc/self/status",
            )
        })
}

/// Whether this process is single-threaded right now, as the kernel sees it:
/// no other thread, and no other process sharing its memory. Asks
/// `unshare(CLONE_VM)`, which changes nothing and succeeds exactly then
/// (`EINVAL` otherwise): no `/proc` needed, so it also works under a Landlock
/// sandbox that does not grant `/proc`.
pub fn single_threaded() -> io::Result<bool> {
    // SAFETY: `unshare` with only CLONE_VM changes nothing: the kernel refuses it
    // (EINVAL) unless the memory is shared with no other task, in which case
    // there is nothing to unshare. No memory is passed.
    match unsafe { libc::unshare(libc::CLONE_VM) } {
        0 => Ok(true),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
            e => Err(e),
        },
    }
}

/// `fork(2)` for a program that is single-threaded right now (checked with
/// [`single_threaded`]: `Err` with `io::ErrorKind::Other` otherwise). In a
/// single-threaded process the child is an exact copy with no lock held by a
/// vanished thread, so it may go on running ordinary Rust code.
///
/// Safe, unlike `clone_shared` and `vfork_on`: the one precondition that would make the
/// child's code restricted (other threads, or other processes sharing the memory) is
/// checked here at run time, and only the calling thread could start another thread
/// between the check and the fork.
pub fn fork_single_threaded() -> io::Result<Forked> {
    if !single_threaded()? {
        let threads = thread_count().map_or_else(|_| "several".to_string(), |n| n.to_string());
        return Err(io::Error::other(format!(
            "fork refused: the process has {threads} threads (fork before starting any thread or runtime)"
        )));
    }
    // SAFETY: the process has exactly one thread and shares its memory with no
    // other process (checked above, and only this thread could have created
    // another), so the child inherits no lock held by another thread and may
    // continue running arbitrary code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// A program, its argument vector and its environment as `execve(2)` takes them,
/// built before a fork so that a forked child can execute it without allocating.
pub struct ExecImage {
    program: std::ffi::CString,
    _strings: Vec<std::ffi::CString>,
    /// Null-terminated pointer arrays into `_strings` (argv first, then envp).
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into the heap buffers of the `CString`s owned by
// the same value (which never move or change while it lives, whatever happens to
// the `ExecImage` itself), and are only ever read.
unsafe impl Send for ExecImage {}
// SAFETY: as for `Send`: nothing is mutated through a shared reference.
unsafe impl Sync for ExecImage {}

impl ExecImage {
    /// `program` (a path) run with `args` (`args[0]` is the name it is told) and
    /// the environment `env` (`NAME=value` entries). `EINVAL` if any holds a NUL.
    pub fn new<S: AsRef<[u8]>>(program: &[u8], args: &[S], env: &[S]) -> io::Result<ExecImage> {
        let c = |b: &[u8]| std::ffi::CString::new(b).map_err(|_| einval());
        let program = c(program)?;
        let mut strings = Vec::with_capacity(args.len() + env.len());
        for s in args.iter().chain(env) {
            strings.push(c(s.as_ref())?);
        }
        let ptrs = |v: &[std::ffi::CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let (a, e) = strings.split_at(args.len());
        let (argv, envp) = (ptrs(a), ptrs(e));
        Ok(ExecImage {
            program,
            _strings: strings,
            argv,
            envp,
        })
    }

    /// `execve` the image: returns only on failure, with its error.
    /// Async-signal-safe.
    pub fn exec(&self) -> io::Error {
        // SAFETY: `program` is a valid C string; `argv` and `envp` are
        // null-terminated arrays of pointers to valid C strings, all owned by
        // `self`, which outlives the call (on success the process image is gone).
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        io::Error::last_os_error()
    }
}

/// The closure run by [`vfork_on`]'s child, behind a thin pointer.
type VforkChild<'a> = &'a mut dyn FnMut() -> i32;

extern "C" fn vfork_trampoline(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&mut VforkChild` `vfork_on` passed, alive until the
    // child has exec'd or exited (the parent is suspended until then).
    let child = unsafe { &mut *arg.cast::<VforkChild<'_>>() };
    child()
}

/// Run `child` in a new process that shares this process's memory and runs on
/// `stack` (`clone(CLONE_VM | CLONE_VFORK | SIGCHLD)`, as `posix_spawn` does): no
/// copy of the address space is made, and this process is suspended until the child
/// `exec`s or exits. The child's exit status is `child`'s return value. Returns the
/// child's pid.
///
/// # Safety
///
/// - The calling process must be the per-run supervisor (see `postfork`), whose
///   only thread is the caller: the new process shares its memory and its
///   thread-local state (`errno`), which only a suspended caller leaves alone.
/// - `child` runs in a process sharing the memory of a possibly multi-threaded
///   one, on `stack`: it must be async-signal-safe (no allocation or
///   deallocation, no lock, no unwinding), must fit in `stack`, and may write only
///   memory the caller expects it to write (everything it writes is seen by the
///   caller afterwards). It should end in an `exec` ([`ExecImage::exec`]) or
///   return its exit status.
/// - No other process may use `stack` until the child has `exec`ed or exited.
pub(crate) unsafe fn vfork_on(stack: &Stack, mut child: VforkChild<'_>) -> io::Result<i32> {
    let arg = (&mut child as *mut VforkChild<'_>).cast::<libc::c_void>();
    // SAFETY: `vfork_trampoline` runs `child` on `stack` (a live mapping with a
    // guard page below it, used by no one else until the child execs or exits:
    // caller's contract); CLONE_VFORK suspends us until then, so `child` and
    // everything it borrows outlive its use; the rest is the caller's contract.
    let pid = unsafe {
        libc::clone(
            vfork_trampoline,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
    };
    if pid == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// Whether [`take_inherited_listeners`] has run in this process.
static LISTENERS_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Take ownership of the `count` descriptors a service manager passed to this
/// process (`LISTEN_FDS`: numbers 3, 4, ...), each checked to be open and marked
/// close-on-exec (so no command inherits it). Succeeds once per process: a second
/// call is refused, so no descriptor gets two owners. Call it first thing, before
/// this process opens anything else. Not async-signal-safe (it is for start-up).
pub fn take_inherited_listeners(count: u32) -> io::Result<Vec<OwnedFd>> {
    use std::sync::atomic::Ordering;
    const MAX: u32 = 1024;
    if count > MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={count}: more than {MAX} descriptors"),
        ));
    }
    if LISTENERS_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the passed descriptors were already taken",
        ));
    }
    let mut fds = Vec::with_capacity(count as usize);
    for fd in (0..count).map(|i| LISTEN_FDS_START + i as RawFd) {
        // SAFETY: F_GETFD only reads the descriptor's flags; on a number that is
        // not open it fails with EBADF and touches nothing.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("descriptor {fd} named by LISTEN_FDS is not open"),
            ));
        }
        // SAFETY: the descriptor is open (checked above) and was passed to this
        // process by its service manager; the flag above makes this the only
        // call that takes these numbers, so each gets exactly one owner.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC).map_err(err)?;
        fds.push(owned);
    }
    Ok(fds)
}

// ---------------------------------------------------------------------------
// The per-run supervisor: a process sharing the service's memory
// ---------------------------------------------------------------------------

/// Memory for the stack of a process started by `clone_shared` or `vfork_on`:
/// a private anonymous mapping whose lowest page is inaccessible (a guard: an
/// overflow faults instead of writing into the memory it shares with the
/// service). Unmapped when dropped.
pub struct Stack {
    base: std::ptr::NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: a `Stack` owns its mapping (no one else refers to it through the value);
// it only hands out its address, so moving or sharing the value between threads is
// harmless.
unsafe impl Send for Stack {}
// SAFETY: as for `Send`: `&Stack` gives only the address.
unsafe impl Sync for Stack {}

impl Stack {
    /// At least `size` usable bytes (rounded up to pages) above a guard page.
    /// Not async-signal-safe only in that it maps memory: call it before a clone.
    pub fn new(size: usize) -> io::Result<Stack> {
        use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
        let page = rustix::param::page_size();
        let len = size
            .checked_next_multiple_of(page)
            .and_then(|s| s.checked_add(page))
            .ok_or_else(einval)?;
        // SAFETY: a new private anonymous mapping at an address the kernel picks:
        // it overlaps nothing of ours, and only this value refers to it.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(err)?;
        let base = std::ptr::NonNull::new(base).ok_or_else(einval)?;
        let stack = Stack { base, len };
        // SAFETY: the first page of the mapping just made, which nothing uses.
        unsafe { rustix::mm::mprotect(base.as_ptr(), page, MprotectFlags::empty()) }
            .map_err(err)?;
        Ok(stack)
    }

    /// The initial stack pointer (the stack grows down): the end of the mapping,
    /// page-aligned (so 16-byte aligned).
    pub fn top(&self) -> *mut libc::c_void {
        self.base
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(self.len)
            .cast()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and, the value being dropped, no longer used
        // (an owner of a stack a process may still run on must not drop it: see
        // `postfork::spawn`).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr(), self.len) };
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stack({} bytes)", self.len)
    }
}

/// The function a process started by [`clone_shared`] runs; its return value is
/// the process's exit status.
pub(crate) type SharedEntry = extern "C" fn(*mut libc::c_void) -> libc::c_int;

/// Start a process that shares this process's memory but nothing else
/// (`clone(CLONE_VM | CLONE_PIDFD | SIGCHLD)`): its own descriptor table, working
/// directory, signal dispositions (copies made now), process group and
/// credentials, running `entry(arg)` on `stack` while this process goes on. No page
/// table is copied. Returns its pid and a pidfd for it (close-on-exec).
///
/// The kernel gives such a process no `rseq` area and no robust-futex list and
/// is not asked to write a thread id anywhere (no `CLONE_CHILD_*TID`): on exit it
/// writes no memory of ours. Its signal mask is the calling thread's, so the
/// caller blocks every signal around the call ([`block_all_signals`]).
///
/// # Safety
///
/// The new process runs concurrently with every thread of this one, in the same
/// memory, with the calling thread's thread pointer (its `errno`, its TLS). So:
/// - `entry` must be async-signal-safe (no allocation or deallocation, no lock,
///   no unwinding, no thread-local state) and fit in `stack`;
/// - everything it reads or writes (`stack`, what `arg` leads to) must stay
///   allocated, and be left alone by this process, for as long as it uses it
///   (`stack`: until it has been reaped);
/// - while it may still write thread-local state (`errno`, through a failing libc
///   call), the calling thread must not run user code that could read it.
pub(crate) unsafe fn clone_shared(
    stack: &Stack,
    entry: SharedEntry,
    arg: *mut libc::c_void,
) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: `stack` is a live mapping with a guard page; the flags share only
    // the memory (no CLONE_FILES, CLONE_FS, CLONE_SIGHAND, CLONE_THREAD,
    // CLONE_SETTLS or CLONE_*TID); `pidfd` is a live c_int the kernel writes the
    // new pidfd into before returning (CLONE_PIDFD); the rest is the caller's
    // contract above.
    let pid = unsafe {
        libc::clone(
            entry,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_PIDFD | libc::SIGCHLD,
            arg,
            &mut pidfd as *mut libc::c_int,
        )
    };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    if pidfd < 0 {
        // A kernel older than 5.2 ignores CLONE_PIDFD: the caller's support check
        // (`shared_clone_supported`) keeps this from happening.
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    // SAFETY: the kernel gave us this new descriptor (close-on-exec); we own it.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// Whether this kernel has what `clone_shared` and [`wait_pidfd`] need: pidfds
/// that `waitid(P_PIDFD)` accepts (Linux 5.4). Probed once, on this process's own
/// pidfd (`ECHILD`: supported; `EINVAL`/`ENOSYS`: not). Not async-signal-safe.
pub fn shared_clone_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let Ok(fd) = rustix::process::pidfd_open(
            rustix::process::getpid(),
            rustix::process::PidfdFlags::empty(),
        ) else {
            return false;
        };
        matches!(
            rustix::process::waitid(
                rustix::process::WaitId::PidFd(fd.as_fd()),
                rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG,
            ),
            Err(Errno::CHILD)
        )
    })
}

/// How a process ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

/// Reap the child `pidfd` refers to if it has ended (`waitid(P_PIDFD, WEXITED)`,
/// with `WNOHANG` unless `block`): `Ok(None)` while it runs.
pub fn wait_pidfd(pidfd: BorrowedFd<'_>, block: bool) -> io::Result<Option<Ended>> {
    use rustix::process::{WaitId, WaitIdOptions};
    let mut options = WaitIdOptions::EXITED;
    if !block {
        options |= WaitIdOptions::NOHANG;
    }
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd), options) {
            Ok(None) => return Ok(None),
            Ok(Some(st)) => {
                return Ok(Some(match (st.exit_status(), st.terminating_signal()) {
                    (Some(code), _) => Ended::Code(code),
                    (None, Some(sig)) => Ended::Signal(sig),
                    (None, None) => Ended::Code(127),
                }))
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(err(e)),
        }
    }
}

/// Send `sig` to the process `pidfd` refers to (no pid-reuse race).
pub fn pidfd_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    rustix::process::pidfd_send_signal(pidfd, signal(sig)?).map_err(err)
}

/// Block every signal for the calling thread; returns the mask it had, for
/// [`set_signal_mask`].
pub fn block_all_signals() -> io::Result<SigSet> {
    let full = SigSet::full();
    let mut old = SigSet::of(&[]);
    // SAFETY: both point to valid sigset_t values for the call; pthread_sigmask is
    // async-signal-safe and returns the error number instead of setting errno.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &full.0, &mut old.0) };
    if r == 0 {
        Ok(old)
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// Replace the calling thread's signal mask with `set`.
pub fn set_signal_mask(set: &SigSet) -> io::Result<()> {
    sigprocmask(libc::SIG_SETMASK, set)
}

/// A `signalfd` for the (blocked) signals of `set`, non-blocking, close-on-exec.
pub fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: `set` is a valid sigset_t for the call; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Wait until `fd` is readable, at most `timeout` (`None`: forever); `false` on
/// timeout or interruption. A raw system call (no `errno`).
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut pfd = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let ts = timeout.map(|t| rustix::time::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    matches!(rustix::event::poll(&mut pfd, ts.as_ref()), Ok(n) if n > 0)
}

/// Sleep for `duration` (`poll` on no descriptor: a raw system call, no `errno`);
/// a signal may end it early.
pub fn sleep_raw(duration: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(duration.subsec_nanos()),
    };
    let _ = rustix::event::poll(&mut [], Some(&ts));
}

/// The next signal queued on the non-blocking signalfd `fd`, if any. A raw
/// system call (no `errno`).
pub fn read_signal(fd: BorrowedFd<'_>) -> Option<i32> {
    // struct signalfd_siginfo: 128 bytes, `ssi_signo` (u32) first.
    let mut info = [0u8; 128];
    match rustix::io::read(fd, &mut info) {
        Ok(128) => {
            let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
            i32::try_from(signo).ok()
        }
        _ => None,
    }
}

/// Make the calling process the leader of a new process group (`setpgid(0, 0)`).
pub fn new_process_group() -> io::Result<()> {
    rustix::process::setpgid(None, None).map_err(err)
}

/// `chdir("/")`.
pub fn chdir_root() -> io::Result<()> {
    rustix::process::chdir(c"/").map_err(err)
}

/// A close-on-exec duplicate of `fd` numbered 3 or above (never a standard
/// descriptor).
pub fn dup_above_stdio(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(err)
}

/// Set `O_NONBLOCK` on the open file `fd` refers to (a pipe end this process
/// keeps; the other end, in the command, stays blocking).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(err)?;
    rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK).map_err(err)
}

/// `/dev/null`, opened read-write and close-on-exec.
pub fn open_dev_null() -> io::Result<OwnedFd> {
    rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(err)
}

/// A descriptor number this process has open, borrowed. For the supervisor,
/// which refers by number to descriptors of its own table (copied at its start).
///
/// # Safety
///
/// `fd` must be open in the calling process for as long as the result is used.
pub(crate) unsafe fn borrow_raw_fd<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the caller's contract.
    unsafe { BorrowedFd::borrow_raw(fd) }
}
