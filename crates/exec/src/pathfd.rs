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
//! `PathFds::open_all` (in `postfork::paths`, with everything else that runs
//! after a fork) runs in the forked command process and is async-signal-safe: raw
//! system calls (rustix's typed wrappers, which allocate nothing for a `&CStr`
//! path) over prepared memory only.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Component;
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};
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
    pub(crate) fn encode(self) -> [u8; RECORD_LEN] {
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

pub(crate) struct Prepared {
    /// The components of the directory (absolute), opened one by one from `/`.
    pub(crate) beneath: Vec<CString>,
    /// The relative path for `openat2` (`.` for the directory itself).
    pub(crate) relative: CString,
    /// The same, component by component, for the fallback.
    pub(crate) components: Vec<CString>,
    /// The flags of the real open (through `/proc/self/fd`), without `O_CREAT`.
    pub(crate) flags: OFlags,
    /// Try `openat2` first (the tests turn it off to exercise the fallback).
    pub(crate) openat2: bool,
    pub(crate) access: FileAccess,
    /// The reserved descriptor number the command is told about; the file is put
    /// there in the command process.
    pub(crate) target: RawFd,
}

/// The descriptors of one run, prepared before the fork.
#[derive(Default)]
pub(crate) struct PathFds {
    pub(crate) paths: Vec<Prepared>,
    /// Reserved numbers to free in the command process before opening.
    pub(crate) scratch: Vec<RawFd>,
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
}

/// Whether a user other than the trusted ones could rename an entry (owned by
/// `child_uid`) of a directory owned by `parent_uid` with `parent_mode`.
pub(crate) fn others_could_rename(
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
}
