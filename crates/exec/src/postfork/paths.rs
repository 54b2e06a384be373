//! The command process's half of path parameters (see `pathfd`): open each
//! prepared file after the confinement, beneath its directory, and put it at its
//! reserved number. Async-signal-safe: rustix's typed calls (which allocate nothing
//! for a `&CStr` path) over the records `PathFds::prepare` built before the fork.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use crate::pathfd::{others_could_rename, PathFailure, PathFds, PathRefusal, Prepared};
use crate::policy::FileAccess;
#[cfg(test)]
use crate::policy::PathArg;
use crate::sys;

impl PathFds {
    /// Open every file in the calling (forked, confined) process and put each at
    /// its reserved number, kept open across `exec`. Async-signal-safe. On failure,
    /// writes a record to `report_fd` and returns the error.
    pub(crate) fn open_all(&mut self, report: BorrowedFd<'_>) -> io::Result<()> {
        // This process's copies of the scratch placeholders: freed, they are the
        // lowest free numbers, below the `open_files` limit like the targets,
        // whatever else the service had open at the fork.
        for &fd in &self.scratch {
            sys::close_fd(fd);
        }
        for (index, p) in self.paths.iter_mut().enumerate() {
            if let Err(refusal) = open_one(p) {
                sys::write_all_raw(report, &PathFailure { index, refusal }.encode());
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
            sys::dup_onto(file.as_fd(), p.target).map_err(io_errno)?;
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
    if p.access == FileAccess::Create && st.st_uid != sys::geteuid() {
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
    sys::dup_onto(file.as_fd(), p.target).map_err(io_errno)?;
    Ok(())
}

/// Open the directory `p.beneath` from `/`, one component at a time with
/// `O_NOFOLLOW` (a symlink anywhere on its path is refused), and refuse it unless
/// only root and the command's user could have put it there: every directory on
/// the way must be theirs, and one that group or others may write must be sticky
/// with the next directory theirs. Otherwise whoever can rename a directory on
/// the path could swap in another (or a symlink) between any check and the open.
fn open_beneath(p: &Prepared) -> Result<OwnedFd, PathRefusal> {
    let euid = sys::geteuid();
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
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

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
