//! Files handed to a command as descriptors opened in the command's own process.
//!
//! Why: a name checked by the service and opened later by the command can be
//! raced (a directory swapped for a symlink in between). Here the command's own
//! process opens the file after its confinement (credentials, capabilities,
//! Landlock), beneath a descriptor of the allowed directory, refusing every
//! symlink on the way, and keeps it open across `exec` at a number fixed before
//! the fork; the command is told `/proc/self/fd/N`.
//!
//! The file is first only *found* (`O_PATH`: no driver runs, no FIFO peer wakes,
//! no permission but search is needed), checked on that descriptor (type, links,
//! owner for `create`), and only then opened for real, through
//! `/proc/self/fd/<found>`, which reaches that very inode whatever has happened
//! to the names since. A new file for `create` is made with `O_EXCL`.
//!
//! [`PathFds::prepare`] runs before the fork (allocates, hands out descriptor
//! numbers reserved once per process, see [`reserve_path_descriptors`]);
//! [`PathFds::open_all`] runs in the forked
//! command process and is async-signal-safe: raw system calls (rustix's typed
//! wrappers, which allocate nothing for a `&CStr` path) over prepared memory only.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Component;
use std::sync::OnceLock;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use crate::error::ExecError;
use crate::policy::{FileAccess, PathArg};

/// First byte of a failure record on the report pipe; not a valid [`crate::Step`],
/// so the two kinds of records cannot be confused.
const MARK: u8 = 0xF7;
/// Length of a failure record: mark, index, reason, errno (little endian).
const RECORD_LEN: usize = 7;
/// Most descriptors one command may receive.
pub const MAX_PATHS: usize = 16;
/// Reserved numbers the command's process frees for the descriptors it needs on
/// the way (at most three at a time), so that they too fall below `open_files`.
const SCRATCH: usize = 4;

/// The descriptor numbers path descriptors are put at: `MAX_PATHS` targets, then
/// `SCRATCH`, each a close-on-exec `/dev/null`, reserved once for the life of the
/// process (every run's command process replaces them in its own table, so runs
/// can share them). `Err` holds the errno of a failed reservation.
static RESERVED: OnceLock<Result<Vec<OwnedFd>, i32>> = OnceLock::new();

/// Reserve the descriptor numbers path descriptors are given at (see
/// [`PathArg`](crate::PathArg)), if not done yet. Call it early (the daemon does,
/// at start): the numbers are the lowest free ones at the time, and they must stay
/// below a command's `open_files` limit. Otherwise the first run with a path does.
pub fn reserve_path_descriptors() -> io::Result<()> {
    reserved().map(drop)
}

fn reserved() -> io::Result<&'static [OwnedFd]> {
    let r = RESERVED.get_or_init(|| {
        (0..MAX_PATHS + SCRATCH)
            .map(|_| {
                let null = rustix::fs::open(
                    c"/dev/null",
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                // Never 0, 1 or 2, whatever the process was started with.
                rustix::io::fcntl_dupfd_cloexec(&null, 3)
            })
            .collect::<Result<Vec<_>, Errno>>()
            .map_err(|e| e.raw_os_error())
    });
    match r {
        Ok(fds) => Ok(fds),
        Err(e) => Err(io::Error::from_raw_os_error(*e)),
    }
}

/// Why a file was not handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// The open failed with this errno (missing, a symlink on the way, outside,
    /// permission denied, ...).
    Errno(i32),
    /// A regular file with more than one hard link (a link can bring a file from
    /// outside the directory inside).
    HardLink,
    /// Not a regular file (nor a directory, for reading).
    FileType,
    /// `create` found an existing file that belongs to another user than the
    /// command's (someone else made it, and could read what is written).
    Owner,
    /// A symlink in the directory's own path, or a directory on that path that
    /// a user other than root and the command's could rename (its parent is
    /// theirs, or writable by group or others and not sticky with a trusted entry).
    Ancestor,
}

impl PathRefusal {
    fn code(self) -> (u8, i32) {
        match self {
            PathRefusal::Errno(e) => (0, e),
            PathRefusal::HardLink => (1, 0),
            PathRefusal::FileType => (2, 0),
            PathRefusal::Owner => (3, 0),
            PathRefusal::Ancestor => (4, 0),
        }
    }

    fn from_code(reason: u8, errno: i32) -> Option<PathRefusal> {
        Some(match reason {
            0 => PathRefusal::Errno(errno),
            1 => PathRefusal::HardLink,
            2 => PathRefusal::FileType,
            3 => PathRefusal::Owner,
            4 => PathRefusal::Ancestor,
            _ => return None,
        })
    }
}

impl std::fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathRefusal::Errno(e) => write!(f, "{}", io::Error::from_raw_os_error(*e)),
            PathRefusal::HardLink => f.write_str("a regular file with several hard links"),
            PathRefusal::FileType => f.write_str("not a file of a permitted type"),
            PathRefusal::Owner => f.write_str("an existing file of another user"),
            PathRefusal::Ancestor => f.write_str(
                "the directory's path crosses a symlink, a non-directory, or a directory another user could rename",
            ),
        }
    }
}

/// A failure record (fixed size, written by the forked command process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathFailure {
    pub(crate) index: usize,
    pub(crate) refusal: PathRefusal,
}

impl PathFailure {
    fn encode(self) -> [u8; RECORD_LEN] {
        let (reason, errno) = self.refusal.code();
        let e = errno.to_le_bytes();
        [MARK, self.index as u8, reason, e[0], e[1], e[2], e[3]]
    }

    /// The inverse of `encode`; `None` for anything else (e.g. a set-up failure).
    pub(crate) fn decode(b: &[u8]) -> Option<PathFailure> {
        if b.len() != RECORD_LEN || b[0] != MARK {
            return None;
        }
        let errno = i32::from_le_bytes(b[3..7].try_into().ok()?);
        Some(PathFailure {
            index: usize::from(b[1]),
            refusal: PathRefusal::from_code(b[2], errno)?,
        })
    }
}

struct Prepared {
    /// The components of the directory (absolute), opened one by one from `/`.
    beneath: Vec<CString>,
    /// The relative path for `openat2` (`.` for the directory itself).
    relative: CString,
    /// The same, component by component, for the fallback.
    components: Vec<CString>,
    /// The flags of the real open (through `/proc/self/fd`), without `O_CREAT`.
    flags: OFlags,
    /// Try `openat2` first (the tests turn it off to exercise the fallback).
    openat2: bool,
    access: FileAccess,
    /// The reserved descriptor number the command is told about; the file is put
    /// there in the command process.
    target: RawFd,
}

/// The descriptors of one run, prepared before the fork.
#[derive(Default)]
pub(crate) struct PathFds {
    paths: Vec<Prepared>,
    /// Reserved numbers to free in the command process before opening.
    scratch: Vec<RawFd>,
}

fn cstring(p: &[u8], what: &str) -> Result<CString, ExecError> {
    CString::new(p).map_err(|_| ExecError::Invalid {
        reason: format!("{what} contains a NUL byte"),
    })
}

impl PathFds {
    /// Check `args`, turn them into C strings, and give each one of the reserved
    /// descriptor numbers. Not async-signal-safe.
    pub(crate) fn prepare(args: &[PathArg]) -> Result<PathFds, ExecError> {
        if args.len() > MAX_PATHS {
            return Err(ExecError::Invalid {
                reason: format!("more than {MAX_PATHS} path descriptors"),
            });
        }
        if args.is_empty() {
            return Ok(PathFds::default());
        }
        let reserved = reserved().map_err(|e| ExecError::Io {
            what: "reserving descriptors for paths",
            source: e,
        })?;
        let mut paths = Vec::with_capacity(args.len());
        for a in args {
            let invalid = |why: &str| ExecError::Invalid {
                reason: format!("path {}: {why}", a.field),
            };
            if !a.beneath.is_absolute() {
                return Err(invalid("the directory is not absolute"));
            }
            let mut beneath = Vec::new();
            for c in a.beneath.components() {
                match c {
                    Component::RootDir => {}
                    Component::Normal(n) => beneath.push(cstring(n.as_bytes(), "a directory")?),
                    _ => return Err(invalid("the directory is not a plain absolute path")),
                }
            }
            let mut components = Vec::new();
            for c in a.path.components() {
                match c {
                    Component::Normal(n) => components.push(cstring(n.as_bytes(), "a path")?),
                    _ => return Err(invalid("only plain components may follow the directory")),
                }
            }
            let relative = if components.is_empty() {
                c".".to_owned()
            } else {
                cstring(a.path.as_os_str().as_bytes(), "a path")?
            };
            let flags = OFlags::NOCTTY
                | OFlags::CLOEXEC
                | match a.access {
                    FileAccess::Read => OFlags::RDONLY,
                    FileAccess::Write | FileAccess::Create => OFlags::WRONLY,
                };
            let target = reserved[paths.len()].as_raw_fd();
            paths.push(Prepared {
                beneath,
                relative,
                components,
                flags,
                openat2: true,
                access: a.access,
                target,
            });
        }
        let scratch = reserved[MAX_PATHS..]
            .iter()
            .map(|f| f.as_raw_fd())
            .collect();
        Ok(PathFds { paths, scratch })
    }

    /// The reserved descriptor numbers, in the order of the arguments.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.paths.iter().map(|p| p.target)
    }

    /// The highest descriptor number the command process uses while opening
    /// (`None` without paths): it must be below the `open_files` limit.
    pub(crate) fn highest(&self) -> Option<RawFd> {
        self.numbers().chain(self.scratch.iter().copied()).max()
    }

    /// Open every file in the calling (forked, confined) process and put each at
    /// its reserved number, kept open across `exec`. Async-signal-safe. On failure,
    /// writes a record to `report_fd` and returns the error.
    pub(crate) fn open_all(&mut self, report_fd: RawFd) -> io::Result<()> {
        // This process's copies of the scratch placeholders: freed, they are the
        // lowest free numbers, below the `open_files` limit like the targets,
        // whatever else the service had open at the fork.
        for &fd in &self.scratch {
            crate::sys::close_fd(fd);
        }
        for (index, p) in self.paths.iter_mut().enumerate() {
            if let Err(refusal) = open_one(p) {
                crate::sys::write_all_raw(report_fd, &PathFailure { index, refusal }.encode());
                return Err(match refusal {
                    PathRefusal::Errno(e) => io::Error::from_raw_os_error(e),
                    _ => io::Error::from_raw_os_error(libc::EPERM),
                });
            }
        }
        Ok(())
    }
}

fn errno(e: Errno) -> PathRefusal {
    PathRefusal::Errno(e.raw_os_error())
}

fn io_errno(e: io::Error) -> PathRefusal {
    PathRefusal::Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

fn open_one(p: &mut Prepared) -> Result<(), PathRefusal> {
    let dir = open_beneath(p)?;
    // Find it without opening it: O_PATH runs no driver's open and wakes no FIFO
    // peer, whatever the name turns out to be.
    let found = match beneath(&dir, p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) {
        Err(PathRefusal::Errno(libc::ENOENT)) if p.access == FileAccess::Create => {
            // A new file, made here: O_EXCL, so nothing that appears meanwhile
            // (a file or a symlink someone else put there) is reused.
            let new =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOCTTY | OFlags::CLOEXEC;
            let file = beneath(&dir, p, new, Mode::from_raw_mode(0o600))?;
            // dup3(file, target, 0): the reserved number now holds the file,
            // without close-on-exec.
            crate::sys::dup_onto(file.as_raw_fd(), p.target).map_err(io_errno)?;
            return Ok(());
        }
        r => r?,
    };
    drop(dir);
    let st = rustix::fs::fstat(&found).map_err(errno)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile if st.st_nlink > 1 => return Err(PathRefusal::HardLink),
        FileType::RegularFile => {}
        FileType::Directory if p.access == FileAccess::Read => {}
        _ => return Err(PathRefusal::FileType),
    }
    if p.access == FileAccess::Create && st.st_uid != crate::sys::geteuid() {
        return Err(PathRefusal::Owner);
    }
    // Now open that very inode for real, with the command's own permissions.
    let mut name = [0u8; 32];
    let file = rustix::fs::openat(
        CWD,
        proc_fd_path(found.as_raw_fd(), &mut name)?,
        p.flags,
        Mode::empty(),
    )
    .map_err(errno)?;
    let again = rustix::fs::fstat(&file).map_err(errno)?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(PathRefusal::Errno(libc::ESTALE));
    }
    drop(found);
    // dup3(file, target, 0): the reserved number now holds the file, without
    // close-on-exec.
    crate::sys::dup_onto(file.as_raw_fd(), p.target).map_err(io_errno)?;
    Ok(())
}

/// Open the directory `p.beneath` from `/`, one component at a time with
/// `O_NOFOLLOW` (a symlink anywhere on its path is refused), and refuse it unless
/// only root and the command's user could have put it there: every directory on
/// the way must be theirs, and one that group or others may write must be sticky
/// with the next directory theirs. Otherwise whoever can rename a directory on
/// the path could swap in another (or a symlink) between any check and the open.
fn open_beneath(p: &Prepared) -> Result<OwnedFd, PathRefusal> {
    let euid = crate::sys::geteuid();
    let trusted = |uid: u32| uid == 0 || uid == euid;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::openat(CWD, c"/", flags, Mode::empty()).map_err(errno)?;
    let mut st = rustix::fs::fstat(&dir).map_err(errno)?;
    for c in &p.beneath {
        let next = match rustix::fs::openat(&dir, c.as_c_str(), flags, Mode::empty()) {
            // O_PATH | O_NOFOLLOW | O_DIRECTORY on a symlink.
            Err(Errno::NOTDIR) => return Err(PathRefusal::Ancestor),
            r => r.map_err(errno)?,
        };
        let next_st = rustix::fs::fstat(&next).map_err(errno)?;
        if others_could_rename(st.st_uid, st.st_mode, next_st.st_uid, trusted) {
            return Err(PathRefusal::Ancestor);
        }
        dir = next;
        st = next_st;
    }
    Ok(dir)
}

/// Whether a user other than the trusted ones could rename an entry (owned by
/// `child_uid`) of a directory owned by `parent_uid` with `parent_mode`.
fn others_could_rename(
    parent_uid: u32,
    parent_mode: u32,
    child_uid: u32,
    trusted: impl Fn(u32) -> bool,
) -> bool {
    let shared = parent_mode & 0o022 != 0;
    let sticky = parent_mode & 0o1000 != 0;
    !trusted(parent_uid) || (shared && !(sticky && trusted(child_uid)))
}

/// Why the command's process would refuse `dir` as the directory of a path
/// parameter ([`PathRefusal::Ancestor`]) for a command running as `uid`: a symlink
/// or a non-directory on its path, or a directory on it that a user other than
/// root and `uid` could rename. `None` when it is fine today (or cannot be seen:
/// it may not exist yet). Not async-signal-safe; for `regent check`.
pub fn untrusted_directory(dir: &std::path::Path, uid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let trusted = |u: u32| u == 0 || u == uid;
    let mut at = std::path::PathBuf::from("/");
    let mut st = std::fs::symlink_metadata(&at).ok()?;
    for c in dir.components().skip(1) {
        let next = at.join(c);
        let next_st = std::fs::symlink_metadata(&next).ok()?;
        if !next_st.is_dir() {
            return Some(format!(
                "{} is not a directory (a symlink?)",
                next.display()
            ));
        }
        if others_could_rename(st.uid(), st.mode(), next_st.uid(), trusted) {
            return Some(format!(
                "{} (owner uid {}, mode {:04o}) lets another user rename {}",
                at.display(),
                st.uid(),
                st.mode() & 0o7777,
                next.display()
            ));
        }
        at = next;
        st = next_st;
    }
    None
}

/// `/proc/self/fd/<fd>` written into `buf` (no allocation).
fn proc_fd_path(fd: RawFd, buf: &mut [u8; 32]) -> Result<&CStr, PathRefusal> {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut digits = [0u8; 10];
    let mut n = u32::try_from(fd).map_err(|_| PathRefusal::Errno(libc::EBADF))?;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    for (i, d) in digits[..len].iter().rev().enumerate() {
        buf[PREFIX.len() + i] = *d;
    }
    buf[PREFIX.len() + len] = 0;
    CStr::from_bytes_until_nul(&buf[..]).map_err(|_| PathRefusal::Errno(libc::EINVAL))
}

/// Open `p.relative` beneath `dir` with `flags`: `openat2(RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS)`, or component by component where `openat2` is missing.
fn beneath(dir: &OwnedFd, p: &Prepared, flags: OFlags, mode: Mode) -> Result<OwnedFd, PathRefusal> {
    if !p.openat2 {
        return open_by_components(dir, p, flags, mode);
    }
    match rustix::fs::openat2(
        dir,
        p.relative.as_c_str(),
        flags,
        mode,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    ) {
        Err(Errno::NOSYS) => open_by_components(dir, p, flags, mode),
        r => r.map_err(errno),
    }
}

/// The fallback where `openat2` is missing (before Linux 5.6): one component at
/// a time, each directory with `O_PATH | O_NOFOLLOW | O_DIRECTORY`, the last with
/// `O_NOFOLLOW` (with `O_PATH`, a symlink there is found as itself, and refused by
/// its type). The components hold no `..`, so nothing climbs out.
fn open_by_components(
    dir: &OwnedFd,
    p: &Prepared,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, PathRefusal> {
    let Some((last, parents)) = p.components.split_last() else {
        return rustix::fs::openat(dir, c".", flags, mode).map_err(errno);
    };
    let mut cur: Option<OwnedFd> = None;
    for c in parents {
        let at = cur.as_ref().map_or(dir.as_fd(), |f| f.as_fd());
        let next = rustix::fs::openat(
            at,
            c.as_c_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        cur = Some(next);
    }
    let at = cur.as_ref().map_or(dir.as_fd(), |f| f.as_fd());
    rustix::fs::openat(at, last.as_c_str(), flags | OFlags::NOFOLLOW, mode).map_err(errno)
}

/// Replace each [`PathArg::placeholder`] in `argv` by `/proc/self/fd/N`.
pub(crate) fn substitute(argv: &[String], numbers: &[RawFd]) -> Result<Vec<String>, ExecError> {
    let mut out = Vec::with_capacity(argv.len());
    for a in argv {
        let mut s = a.clone();
        for (i, n) in numbers.iter().enumerate() {
            let ph = PathArg::placeholder(i);
            if s.contains(&ph) {
                s = s.replace(&ph, &format!("/proc/self/fd/{n}"));
            }
        }
        if s.contains('\0') {
            return Err(ExecError::Invalid {
                reason: "an argument contains a NUL byte or an unknown path placeholder".into(),
            });
        }
        out.push(s);
    }
    Ok(out)
}

/// Opens as `open_one` does, without `openat2` (for the tests of the fallback).
#[cfg(test)]
fn open_fallback_for_test(arg: &PathArg) -> Result<OwnedFd, PathRefusal> {
    let mut fds = PathFds::prepare(std::slice::from_ref(arg))
        .map_err(|_| PathRefusal::Errno(libc::EINVAL))?;
    fds.paths[0].openat2 = false;
    let mine = own_target(&mut fds);
    open_one(&mut fds.paths[0])?;
    Ok(mine)
}

/// In-process tests must not touch the shared reserved numbers: point the first
/// path at a descriptor of the test's own, which then receives the file.
#[cfg(test)]
fn own_target(fds: &mut PathFds) -> OwnedFd {
    let mine = rustix::fs::open(
        c"/dev/null",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    fds.paths[0].target = mine.as_raw_fd();
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for refusal in [
            PathRefusal::Errno(libc::ELOOP),
            PathRefusal::HardLink,
            PathRefusal::FileType,
            PathRefusal::Owner,
            PathRefusal::Ancestor,
        ] {
            let f = PathFailure { index: 3, refusal };
            assert_eq!(PathFailure::decode(&f.encode()), Some(f));
        }
        assert_eq!(PathFailure::decode(&[6, 1, 0, 0, 0]), None);
        assert_eq!(PathFailure::decode(&[MARK, 0, 9, 0, 0, 0, 0]), None);
    }

    #[test]
    fn proc_fd_names() {
        let mut buf = [0u8; 32];
        for (fd, name) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234, "/proc/self/fd/1234"),
            (i32::MAX, "/proc/self/fd/2147483647"),
        ] {
            assert_eq!(proc_fd_path(fd, &mut buf).unwrap().to_str().unwrap(), name);
        }
        assert!(proc_fd_path(-1, &mut buf).is_err());
    }

    #[test]
    fn placeholders_are_replaced_or_refused() {
        let argv = vec![
            "cat".to_string(),
            format!("--in={}", PathArg::placeholder(0)),
            PathArg::placeholder(1),
        ];
        assert_eq!(
            substitute(&argv, &[7, 9]).unwrap(),
            ["cat", "--in=/proc/self/fd/7", "/proc/self/fd/9"]
        );
        assert!(substitute(&argv, &[7]).is_err());
    }

    /// A scratch tree: `under/{sub/file, evil -> OUTSIDE (absolute), rel ->
    /// ../outside (relative), inner -> sub/file, dangling -> OUTSIDE/none,
    /// fifo, hard (a second link of sub/file2)}`, `outside/secret`.
    struct Tree {
        root: std::path::PathBuf,
    }

    impl Tree {
        fn new(tag: &str) -> Tree {
            use std::os::unix::fs::symlink;
            let root =
                std::env::temp_dir().join(format!("regent-pathfd-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let under = root.join("under");
            let outside = root.join("outside");
            std::fs::create_dir_all(under.join("sub")).unwrap();
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::write(under.join("sub/file"), b"inside").unwrap();
            std::fs::write(under.join("sub/file2"), b"two").unwrap();
            std::fs::hard_link(under.join("sub/file2"), under.join("hard")).unwrap();
            std::fs::write(outside.join("secret"), b"SECRET").unwrap();
            symlink(&outside, under.join("evil")).unwrap();
            symlink("../outside", under.join("rel")).unwrap();
            symlink("sub/file", under.join("inner")).unwrap();
            symlink(outside.join("none"), under.join("dangling")).unwrap();
            let fifo = CString::new(under.join("fifo").as_os_str().as_bytes()).unwrap();
            rustix::fs::mknodat(
                CWD,
                fifo.as_c_str(),
                FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            Tree { root }
        }

        fn arg(&self, rel: &str, access: FileAccess) -> PathArg {
            PathArg {
                field: "p".into(),
                beneath: self.root.join("under"),
                path: rel.into(),
                access,
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn read_fd(fd: &OwnedFd) -> String {
        let mut buf = [0u8; 64];
        let n = rustix::io::pread(fd, &mut buf, 0).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Opens `arg` both ways (openat2 and component by component); returns the two
    /// results, which must agree.
    fn open_both(arg: &PathArg) -> Result<OwnedFd, PathRefusal> {
        let mut fds = PathFds::prepare(std::slice::from_ref(arg)).unwrap();
        let mine = own_target(&mut fds);
        let direct = open_one(&mut fds.paths[0]);
        if direct.is_ok() {
            // The number now holds the file, without close-on-exec.
            let fl = rustix::io::fcntl_getfd(&mine).unwrap();
            assert!(!fl.contains(rustix::io::FdFlags::CLOEXEC));
            let st = rustix::fs::fstat(&mine).unwrap();
            assert_ne!(
                FileType::from_raw_mode(st.st_mode),
                FileType::CharacterDevice
            );
        }
        let fallback = open_fallback_for_test(arg);
        assert_eq!(
            direct.is_ok(),
            fallback.is_ok(),
            "{arg:?}: {direct:?} vs {fallback:?}"
        );
        direct?;
        Ok(mine)
    }

    fn refused(r: Result<OwnedFd, PathRefusal>) -> PathRefusal {
        r.map(drop).expect_err("should be refused")
    }

    #[test]
    fn opens_inside_and_refuses_escapes() {
        let t = Tree::new("escape");
        let fd = open_both(&t.arg("sub/file", FileAccess::Read)).unwrap();
        assert_eq!(read_fd(&fd), "inside");
        // The directory itself, and a directory below it, for reading.
        open_both(&t.arg("", FileAccess::Read)).unwrap();
        open_both(&t.arg("sub", FileAccess::Read)).unwrap();
        // An absolute symlink, a relative one climbing out, and a symlink that
        // stays inside: all refused (no symlink at all).
        for rel in ["evil/secret", "rel/secret", "inner", "dangling"] {
            let r = refused(open_both(&t.arg(rel, FileAccess::Read)));
            assert_eq!(r, PathRefusal::Errno(libc::ELOOP), "{rel}");
        }
        // Missing.
        let r = refused(open_both(&t.arg("sub/none", FileAccess::Read)));
        assert_eq!(r, PathRefusal::Errno(libc::ENOENT));
        let r = refused(open_both(&t.arg("none/x", FileAccess::Create)));
        assert_eq!(r, PathRefusal::Errno(libc::ENOENT));
        // Kinds: a FIFO, a hard-linked file, a directory opened for writing.
        assert_eq!(
            refused(open_both(&t.arg("fifo", FileAccess::Read))),
            PathRefusal::FileType
        );
        assert_eq!(
            refused(open_both(&t.arg("hard", FileAccess::Read))),
            PathRefusal::HardLink
        );
        assert!(refused(open_both(&t.arg("sub", FileAccess::Write))) != PathRefusal::HardLink);
        // `..` never gets this far.
        assert!(PathFds::prepare(&[t.arg("sub/../../outside/secret", FileAccess::Read)]).is_err());
    }

    #[test]
    fn write_and_create() {
        let t = Tree::new("create");
        // Write: existing only, not truncated.
        let fd = open_both(&t.arg("sub/file", FileAccess::Write)).unwrap();
        rustix::io::write(&fd, b"IN").unwrap();
        assert_eq!(
            std::fs::read_to_string(t.root.join("under/sub/file")).unwrap(),
            "INside"
        );
        assert_eq!(
            refused(open_both(&t.arg("sub/new", FileAccess::Write))),
            PathRefusal::Errno(libc::ENOENT)
        );
        // Create: a new file, mode 0600; an existing one is opened, not truncated.
        let fd = open_both(&t.arg("sub/new", FileAccess::Create)).unwrap();
        rustix::io::write(&fd, b"made").unwrap();
        let meta = std::fs::metadata(t.root.join("under/sub/new")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077,
            0
        );
        assert_eq!(
            std::fs::read_to_string(t.root.join("under/sub/new")).unwrap(),
            "made"
        );
        // A dangling symlink or a symlinked directory cannot redirect the creation.
        for rel in ["dangling", "evil/planted", "rel/planted"] {
            assert_eq!(
                refused(open_both(&t.arg(rel, FileAccess::Create))),
                PathRefusal::Errno(libc::ELOOP),
                "{rel}"
            );
        }
        assert!(!t.root.join("outside/none").exists());
        assert!(!t.root.join("outside/planted").exists());
    }

    #[test]
    fn bad_relative_paths_are_refused() {
        for rel in ["../x", "a/../b", "/abs", "./x"] {
            let a = PathArg {
                field: "p".into(),
                beneath: "/tmp".into(),
                path: rel.into(),
                access: FileAccess::Read,
            };
            assert!(PathFds::prepare(&[a]).is_err(), "{rel}");
        }
        let rel = PathArg {
            field: "p".into(),
            beneath: "tmp".into(),
            path: "x".into(),
            access: FileAccess::Read,
        };
        assert!(PathFds::prepare(&[rel]).is_err());
    }
}
