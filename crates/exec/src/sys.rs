//! The only module with `unsafe`: thin wrappers over Linux system calls.
//!
//! Unless a wrapper's doc says otherwise it is **async-signal-safe**: one raw
//! `syscall(2)` (or a libc function POSIX lists as async-signal-safe), no allocation,
//! no lock. That is what makes them usable between `fork` and `exec` in a
//! multi-threaded program, where the rest of the crate runs the sandbox set-up
//! (`child.rs`) and the per-run supervisor (`supervisor.rs`).
//!
//! Credential wrappers (`set_res_uid`, `capset`, `capbset_drop`, ...) are raw system
//! calls and so change **only the calling thread**; they are meant for a process
//! known to be single-threaded (a freshly forked child, or a program that checked
//! [`thread_count`]).

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use libc::{c_int, c_long};

/// Turn a raw `-1 + errno` return into an `io::Result` (no allocation).
fn check(ret: c_long) -> io::Result<c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Invoke a system call with up to six integer arguments.
///
/// Private: callers pass only integers or pointers to memory they own for the
/// duration of the call.
fn syscall(nr: c_long, a: [usize; 6]) -> io::Result<c_long> {
    // SAFETY: every caller in this module passes arguments matching the kernel ABI of
    // `nr`; pointers among them point to live, correctly sized memory owned by the
    // caller for the duration of the call. `syscall` itself only sets errno.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    check(r)
}

// ---------------------------------------------------------------------------
// Processes and signals
// ---------------------------------------------------------------------------

/// Send `sig` to the single process `pid`. Refuses `pid <= 0` (which would address a
/// group or every process) with `EINVAL`.
pub fn kill_process(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    syscall(libc::SYS_kill, [pid as usize, sig as usize, 0, 0, 0, 0]).map(drop)
}

/// Send `sig` to every member of process group `pgid`. Refuses `pgid <= 1`.
pub fn kill_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    syscall(
        libc::SYS_kill,
        [(-pgid) as isize as usize, sig as usize, 0, 0, 0, 0],
    )
    .map(drop)
}

/// `wait4(pid, WNOHANG)`: `Ok(None)` if nothing changed yet, `Ok(Some((pid, status)))`
/// for a reaped child, `Err(ECHILD)` when there is no child left to wait for.
pub fn wait_nohang(pid: i32) -> io::Result<Option<(i32, i32)>> {
    let mut status: c_int = 0;
    let r = syscall(
        libc::SYS_wait4,
        [
            pid as isize as usize,
            &mut status as *mut c_int as usize,
            libc::WNOHANG as usize,
            0,
            0,
            0,
        ],
    )?;
    Ok(if r == 0 {
        None
    } else {
        Some((r as i32, status))
    })
}

/// Blocking `wait4(pid)`, retried on `EINTR`. Returns the wait status.
pub fn wait_blocking(pid: i32) -> io::Result<i32> {
    loop {
        let mut status: c_int = 0;
        match syscall(
            libc::SYS_wait4,
            [pid as usize, &mut status as *mut c_int as usize, 0, 0, 0, 0],
        ) {
            Ok(_) => return Ok(status),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// This process's id.
pub fn getpid() -> i32 {
    syscall(libc::SYS_getpid, [0; 6]).unwrap_or(0) as i32
}

/// This process's effective user id (the calling thread's, as the kernel has it).
pub fn geteuid() -> u32 {
    syscall(libc::SYS_geteuid, [0; 6]).unwrap_or(-1) as u32
}

/// The parent process's id.
pub fn getppid() -> i32 {
    syscall(libc::SYS_getppid, [0; 6]).unwrap_or(0) as i32
}

/// Terminate the process at once with `code` (no destructors, no atexit handlers).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns; nothing of ours needs
    // unwinding in the process it ends.
    unsafe { libc::_exit(code) }
}

/// A raw `fork` by `clone(SIGCHLD)`, without libc's atfork handlers (which are not
/// async-signal-safe). Private: the child may only run async-signal-safe code; see
/// [`register_pre_exec`], the only caller.
fn raw_fork() -> io::Result<i32> {
    syscall(libc::SYS_clone, [libc::SIGCHLD as usize, 0, 0, 0, 0, 0]).map(|r| r as i32)
}

/// A set of signals (wrapper over `sigset_t`).
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// The set holding exactly `signals`.
    pub fn of(signals: &[i32]) -> SigSet {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it fully.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t owned here; both functions are
        // async-signal-safe and only write into it.
        unsafe {
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
        }
        SigSet(set)
    }
}

/// Kernel's `sigsetsize` for the rt_sig* calls (64 signals).
const KERNEL_SIGSET_SIZE: usize = 8;

fn sigprocmask(how: c_int, set: &SigSet) -> io::Result<()> {
    syscall(
        libc::SYS_rt_sigprocmask,
        [
            how as usize,
            &set.0 as *const libc::sigset_t as usize,
            0,
            KERNEL_SIGSET_SIZE,
            0,
            0,
        ],
    )
    .map(drop)
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
        tv_nsec: t.subsec_nanos() as c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(0, |t| t as *const libc::timespec as usize);
    syscall(
        libc::SYS_rt_sigtimedwait,
        [
            &set.0 as *const libc::sigset_t as usize,
            0,
            ts_ptr,
            KERNEL_SIGSET_SIZE,
            0,
            0,
        ],
    )
    .ok()
    .map(|s| s as i32)
}

/// Reset the disposition of every catchable signal to `SIG_DFL` (handlers inherited
/// over `fork` would otherwise run in a child that never `exec`s).
pub fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction with SIG_DFL (0) as handler is valid; sigaction is
        // async-signal-safe. Errors (libc-reserved real-time signals) are ignored.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// `CLOCK_MONOTONIC` now, as a duration since an arbitrary origin.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec owned here; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

// ---------------------------------------------------------------------------
// prctl
// ---------------------------------------------------------------------------

fn prctl(option: c_int, arg2: usize) -> io::Result<c_long> {
    syscall(libc::SYS_prctl, [option as usize, arg2, 0, 0, 0, 0])
}

/// `PR_SET_CHILD_SUBREAPER`: orphaned descendants are re-parented to this process.
pub fn set_child_subreaper() -> io::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1).map(drop)
}

/// `PR_SET_PDEATHSIG`: receive `sig` when the parent (thread) dies. Cleared by the
/// kernel on credential changes, so set it after them.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    prctl(libc::PR_SET_PDEATHSIG, sig as usize).map(drop)
}

/// `PR_SET_KEEPCAPS`: keep the permitted set across a change away from uid 0.
pub fn set_keep_caps(keep: bool) -> io::Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, keep as usize).map(drop)
}

/// `PR_SET_NO_NEW_PRIVS`: nothing executed from now on can gain privileges.
pub fn set_no_new_privs() -> io::Result<()> {
    syscall(
        libc::SYS_prctl,
        [libc::PR_SET_NO_NEW_PRIVS as usize, 1, 0, 0, 0, 0],
    )
    .map(drop)
}

/// `PR_GET_NO_NEW_PRIVS`.
pub fn no_new_privs() -> io::Result<bool> {
    syscall(
        libc::SYS_prctl,
        [libc::PR_GET_NO_NEW_PRIVS as usize, 0, 0, 0, 0, 0],
    )
    .map(|r| r == 1)
}

/// `PR_CAPBSET_DROP`: remove `cap` from the bounding set (needs `CAP_SETPCAP`).
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap as usize).map(drop)
}

/// `PR_CAP_AMBIENT_CLEAR_ALL`.
pub fn ambient_clear_all() -> io::Result<()> {
    syscall(
        libc::SYS_prctl,
        [
            libc::PR_CAP_AMBIENT as usize,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as usize,
            0,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

/// `PR_CAP_AMBIENT_RAISE` for `cap` (must be permitted and inheritable).
pub fn ambient_raise(cap: u32) -> io::Result<()> {
    syscall(
        libc::SYS_prctl,
        [
            libc::PR_CAP_AMBIENT as usize,
            libc::PR_CAP_AMBIENT_RAISE as usize,
            cap as usize,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
// Credentials and capabilities (calling thread only)
// ---------------------------------------------------------------------------

/// `setgroups(0, NULL)`: clear the supplementary groups.
pub fn clear_groups() -> io::Result<()> {
    syscall(libc::SYS_setgroups, [0; 6]).map(drop)
}

/// `setresgid(gid, gid, gid)`.
pub fn set_res_gid(gid: u32) -> io::Result<()> {
    syscall(
        libc::SYS_setresgid,
        [gid as usize, gid as usize, gid as usize, 0, 0, 0],
    )
    .map(drop)
}

/// `setresuid(uid, uid, uid)`.
pub fn set_res_uid(uid: u32) -> io::Result<()> {
    syscall(
        libc::SYS_setresuid,
        [uid as usize, uid as usize, uid as usize, 0, 0, 0],
    )
    .map(drop)
}

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
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
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: sets.effective as u32,
            permitted: sets.permitted as u32,
            inheritable: sets.inheritable as u32,
        },
        CapData {
            effective: (sets.effective >> 32) as u32,
            permitted: (sets.permitted >> 32) as u32,
            inheritable: (sets.inheritable >> 32) as u32,
        },
    ];
    syscall(
        libc::SYS_capset,
        [
            &header as *const CapHeader as usize,
            data.as_ptr() as usize,
            0,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

/// `capget(2)` on the calling thread.
pub fn capget() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    syscall(
        libc::SYS_capget,
        [
            &mut header as *mut CapHeader as usize,
            data.as_mut_ptr() as usize,
            0,
            0,
            0,
            0,
        ],
    )?;
    let join = |lo: u32, hi: u32| (u64::from(hi) << 32) | u64::from(lo);
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// `prlimit64(0, resource, {soft, hard}, NULL)`.
pub fn set_rlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    syscall(
        libc::SYS_prlimit64,
        [
            0,
            resource as usize,
            &lim as *const libc::rlimit64 as usize,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------

/// `close_range(first, ~0, flags)` (flags 0: close; `CLOSE_RANGE_CLOEXEC`: mark).
pub fn close_range_from(first: u32, cloexec_only: bool) -> io::Result<()> {
    let flags = if cloexec_only {
        libc::CLOSE_RANGE_CLOEXEC as usize
    } else {
        0
    };
    syscall(
        libc::SYS_close_range,
        [first as usize, u32::MAX as usize, flags, 0, 0, 0],
    )
    .map(drop)
}

/// `dup3(src, dst, 0)`: `dst` now refers to `src`'s file, without close-on-exec.
pub fn dup_onto(src: RawFd, dst: RawFd) -> io::Result<()> {
    if src < 0 || dst < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    syscall(libc::SYS_dup3, [src as usize, dst as usize, 0, 0, 0, 0]).map(drop)
}

/// Close every descriptor except those in `keep` (which must be sorted ascending).
pub fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    let mut first: u32 = 0;
    for &k in keep {
        let Ok(k) = u32::try_from(k) else { continue };
        if k > first {
            syscall(
                libc::SYS_close_range,
                [first as usize, (k - 1) as usize, 0, 0, 0, 0],
            )?;
        }
        first = first.max(k.saturating_add(1));
    }
    close_range_from(first, false)
}

/// Point each of the standard descriptors in `fds` (0, 1 or 2 only) at `/dev/null`.
pub fn stdio_to_dev_null(fds: &[RawFd]) -> io::Result<()> {
    if fds.iter().any(|fd| !(0..=2).contains(fd)) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = (libc::O_RDWR | libc::O_CLOEXEC) as usize;
    let path = c"/dev/null".as_ptr() as usize;
    let null = syscall(
        libc::SYS_openat,
        [libc::AT_FDCWD as isize as usize, path, flags, 0, 0, 0],
    )? as RawFd;
    for &fd in fds {
        if fd != null {
            syscall(libc::SYS_dup3, [null as usize, fd as usize, 0, 0, 0, 0])?;
        }
    }
    if !fds.contains(&null) {
        close_fd(null);
    }
    Ok(())
}

/// Close a raw descriptor (errors ignored).
pub fn close_fd(fd: RawFd) {
    let _ = syscall(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]);
}

/// Open `path` (relative to `dir`, or absolute) read-only, close-on-exec. The caller
/// owns the returned raw descriptor and must [`close_fd`] it.
pub fn open_raw(dir: Option<RawFd>, path: &CStr, directory: bool) -> io::Result<RawFd> {
    let mut flags = libc::O_RDONLY | libc::O_CLOEXEC;
    if directory {
        flags |= libc::O_DIRECTORY;
    }
    let dirfd = dir.unwrap_or(libc::AT_FDCWD);
    syscall(
        libc::SYS_openat,
        [
            dirfd as isize as usize,
            path.as_ptr() as usize,
            flags as usize,
            0,
            0,
            0,
        ],
    )
    .map(|fd| fd as RawFd)
}

/// `read(2)` into `buf`, retried on `EINTR`.
pub fn read_raw(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match syscall(
            libc::SYS_read,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// Write all of `buf` to `fd` (errors end the attempt silently; used for best-effort
/// reports from a forked child).
pub fn write_all_raw(fd: RawFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        match syscall(
            libc::SYS_write,
            [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
        ) {
            Ok(n) if n > 0 => buf = &buf[n as usize..],
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            _ => return,
        }
    }
}

/// `getdents64(2)`: fill `buf` with `linux_dirent64` records; 0 at the end.
pub fn getdents64(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    syscall(
        libc::SYS_getdents64,
        [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
    )
    .map(|n| n as usize)
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    syscall(
        libc::SYS_pipe2,
        [
            fds.as_mut_ptr() as usize,
            libc::O_CLOEXEC as usize,
            0,
            0,
            0,
            0,
        ],
    )?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `poll(2)` for readability (or hang-up) on `fds`, at most `timeout` (`None`: forever).
/// Not async-signal-safe (allocates).
/// Returns, per descriptor, whether it is readable or closed. Retries on `EINTR`.
pub fn poll_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as c_int);
    loop {
        // SAFETY: `pfds` is a live, correctly sized array of pollfd for the call.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}

// ---------------------------------------------------------------------------
// Landlock
// ---------------------------------------------------------------------------

const LANDLOCK_CREATE_RULESET_VERSION: usize = 1;
const LANDLOCK_RULE_PATH_BENEATH: usize = 1;

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version this kernel supports (`Err` with `ENOSYS` or
/// `EOPNOTSUPP` when Landlock is absent or disabled).
pub fn landlock_abi() -> io::Result<u32> {
    syscall(
        libc::SYS_landlock_create_ruleset,
        [0, 0, LANDLOCK_CREATE_RULESET_VERSION, 0, 0, 0],
    )
    .map(|v| v as u32)
}

/// Create a ruleset handling the filesystem rights `handled_fs`.
pub fn landlock_create_ruleset(handled_fs: u64) -> io::Result<OwnedFd> {
    // struct landlock_ruleset_attr, first field only: the kernel accepts a prefix.
    let attr: u64 = handled_fs;
    let fd = syscall(
        libc::SYS_landlock_create_ruleset,
        [
            &attr as *const u64 as usize,
            std::mem::size_of::<u64>(),
            0,
            0,
            0,
            0,
        ],
    )?;
    // SAFETY: the call returned a fresh descriptor (close-on-exec) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Allow `access` beneath the file or directory open at `parent` (an `O_PATH` fd).
pub fn landlock_add_path_rule(ruleset: RawFd, parent: RawFd, access: u64) -> io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent,
    };
    syscall(
        libc::SYS_landlock_add_rule,
        [
            ruleset as usize,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr as usize,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

/// Enforce the ruleset on the calling thread (needs `no_new_privs` or
/// `CAP_SYS_ADMIN`).
pub fn landlock_restrict_self(ruleset: RawFd) -> io::Result<()> {
    syscall(
        libc::SYS_landlock_restrict_self,
        [ruleset as usize, 0, 0, 0, 0, 0],
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
// fork for the pre-exec hook, and for single-threaded programs
// ---------------------------------------------------------------------------

/// Which side of a fork this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Fork a raw child from inside a pre-exec hook (async-signal-safe; no atfork
/// handlers). The child may only run async-signal-safe code until it `exec`s or
/// exits. Crate-private: used by the per-run supervisor.
pub(crate) fn fork_in_pre_exec() -> io::Result<Forked> {
    raw_fork().map(|pid| {
        if pid == 0 {
            Forked::Child
        } else {
            Forked::Parent(pid)
        }
    })
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

/// `fork(2)` for a program that is single-threaded right now (checked: `Err` with
/// `io::ErrorKind::Other` otherwise). In a single-threaded process the child is an
/// exact copy with no lock held by a vanished thread, so it may go on running
/// ordinary Rust code.
pub fn fork_single_threaded() -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "fork refused: the process has {threads} threads (fork before starting any thread or runtime)"
        )));
    }
    // SAFETY: the process has exactly one thread (checked above, and only this thread
    // could have created another), so the child inherits no lock held by another
    // thread and may continue running arbitrary code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// Register `hook` to run in the child between `fork` and `exec` of `cmd`.
///
/// The crate's hooks (see `child.rs` and `supervisor.rs`) only call the
/// async-signal-safe wrappers of this module and touch memory prepared before the
/// fork: no allocation, no lock, no I/O beyond raw system calls.
pub(crate) fn register_pre_exec<F>(cmd: &mut tokio::process::Command, hook: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    // SAFETY: the hook is async-signal-safe as documented above (it runs in a forked
    // child of a possibly multi-threaded process), and it never unwinds: it returns
    // an io::Error instead, and its supervisor branch ends in `exit_now`.
    unsafe {
        cmd.pre_exec(hook);
    }
}

// ---------------------------------------------------------------------------
// Landlock network rules and scopes (ABI 4 and 6), and seccomp
// ---------------------------------------------------------------------------

/// `struct landlock_ruleset_attr` as of ABI 6: handled filesystem rights, handled
/// network rights (ABI 4) and scopes (ABI 6).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
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
    let fd = syscall(
        libc::SYS_landlock_create_ruleset,
        [
            &attr as *const RulesetAttr as usize,
            std::mem::size_of::<RulesetAttr>(),
            0,
            0,
            0,
            0,
        ],
    )?;
    // SAFETY: the call returned a fresh descriptor (close-on-exec) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

const SECCOMP_SET_MODE_FILTER: usize = 1;
const SECCOMP_GET_ACTION_AVAIL: usize = 2;

/// Whether this kernel supports the seccomp filter return action `action` (e.g.
/// `SECCOMP_RET_KILL_PROCESS`); `Err` (`ENOSYS`, `EINVAL`, `EOPNOTSUPP`) when it or
/// seccomp filtering itself is unavailable. Not needed after fork.
pub fn seccomp_action_available(action: u32) -> io::Result<()> {
    syscall(
        libc::SYS_seccomp,
        [
            SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32 as usize,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

/// Install the classic BPF program `filter` as a seccomp filter on the calling
/// thread (needs `no_new_privs` or `CAP_SYS_ADMIN`). The program must have been
/// built before fork; this only points the kernel at it (async-signal-safe). The
/// filter is inherited by children and kept across `execve`.
pub fn seccomp_set_filter(filter: &[libc::sock_filter]) -> io::Result<()> {
    let len =
        u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    syscall(
        libc::SYS_seccomp,
        [
            SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog as usize,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}
