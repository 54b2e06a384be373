//! Creating the listening socket safely.
//!
//! The socket is bound under a temporary name in the target directory, given its
//! mode, owner and group, and only then renamed onto the configured path, so there
//! is no moment when it exists with the wrong permissions. An existing file at the
//! path is replaced only if it is a socket nobody is listening on; a live service
//! or a non-socket file is an error. The directory must be owned by root or the
//! service's own user and writable by nobody else, sticky or not: in a sticky
//! world-writable directory such as `/tmp` any user can bind the path first while
//! the service is down, and callers would hand that user their secret and codes.
//! Every directory above it must be safe too (owned by root or the service, and
//! writable by no one else, or sticky above an entry owned by root or the
//! service): otherwise another user could put a directory of their own in its
//! place, between the check and the bind, or under the socket's `chmod` and
//! `chown`, which go by path (a symlink there would turn them on any file).

use crate::error::Error;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// How the socket file is created.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Where.
    pub path: PathBuf,
    /// File mode, default 0660.
    pub mode: u32,
    /// Owner uid, default: the service's.
    pub owner: Option<u32>,
    /// Group gid, default: the service's.
    pub group: Option<u32>,
}

impl SocketOptions {
    /// Options for `path` with mode 0660.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SocketOptions {
            path: path.into(),
            mode: 0o660,
            owner: None,
            group: None,
        }
    }
}

/// The directory a socket path lives in (`.` for a bare file name).
fn socket_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Check the directory `socket` would be bound in, as [`bind`] does: it must be
/// a directory owned by root or this process's user and writable by no one else
/// (a sticky bit does not make it safe). A directory that does not exist yet is
/// fine: [`bind`] creates it with mode 0755.
pub fn check_socket_dir(socket: &Path) -> Result<(), Error> {
    let dir = socket_dir(socket);
    if !dir.exists() {
        return Ok(());
    }
    check_parent(&dir)
}

fn check_parent(dir: &Path) -> Result<(), Error> {
    let me = nix::unistd::geteuid().as_raw();
    // The path as written first, before anything follows a symlink: where another
    // user's symlink sits in a sticky directory, the kernel (fs.protected_symlinks)
    // refuses to follow it even for root, and that EACCES would hide the reason.
    check_ancestors(dir, me, false)?;
    let meta = fs::metadata(dir)
        .map_err(|e| Error::io(format!("socket directory {}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Unsafe(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.uid() != 0 && meta.uid() != me {
        return Err(Error::Unsafe(format!(
            "socket directory {} is owned by uid {}, not root or the service (uid {me})",
            dir.display(),
            meta.uid()
        )));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 {
        let sticky = if mode & 0o1000 != 0 {
            " (the sticky bit does not help: another user can bind the path first while the service is down)"
        } else {
            ""
        };
        return Err(Error::Unsafe(format!(
            "socket directory {} is writable by group or others (mode {:o}): another user could take the socket's place{sticky}; use a directory only root or the service's user can write, such as /run/regent",
            dir.display(),
            mode & 0o7777
        )));
    }
    check_ancestors(dir, me, true)
}

/// Every directory above `dir`, as written (`resolved` false) or with symlinks
/// resolved (`resolved` true), must be
/// owned by root or `me` and writable by no one else; a sticky directory others
/// can write is fine above an entry owned by root or `me` (no one else may
/// rename or remove it).
fn check_ancestors(dir: &Path, me: u32, resolved: bool) -> Result<(), Error> {
    let path = if resolved {
        fs::canonicalize(dir)
    } else {
        std::path::absolute(dir)
    }
    .map_err(|e| Error::io(format!("socket directory {}", dir.display()), e))?;
    let mut child = path.as_path();
    while let Some(parent) = child.parent() {
        check_ancestor(parent, child, me)?;
        child = parent;
    }
    Ok(())
}

/// One directory above the socket's (see [`check_ancestors`]).
fn check_ancestor(dir: &Path, child: &Path, me: u32) -> Result<(), Error> {
    let inspect = |p: &Path, meta: io::Result<fs::Metadata>| {
        meta.map_err(|e| Error::io(format!("directory {} above the socket", p.display()), e))
    };
    let meta = inspect(dir, fs::metadata(dir))?;
    let trusted = |uid: u32| uid == 0 || uid == me;
    if !trusted(meta.uid()) {
        return Err(Error::Unsafe(format!(
            "directory {} above the socket is owned by uid {}, not root or the service (uid {me}): its owner could put another directory in the socket directory's place",
            dir.display(),
            meta.uid()
        )));
    }
    let mode = meta.mode();
    if mode & 0o022 == 0 {
        return Ok(());
    }
    let entry = inspect(child, fs::symlink_metadata(child))?;
    if mode & 0o1000 != 0 && trusted(entry.uid()) {
        return Ok(());
    }
    Err(Error::Unsafe(format!(
        "directory {} above the socket is writable by group or others (mode {:o}): another user could put a directory of their own in the place of {}; use a path whose directories only root or the service's user can write, such as /run/regent",
        dir.display(),
        mode & 0o7777,
        child.display()
    )))
}

/// Create the socket directory (and those above it) with mode 0755. The mode is
/// set through a descriptor opened without following a symlink: another user who
/// puts a symlink in the directory's place meanwhile gets an error, not root's
/// `chmod` on the symlink's target.
fn create_socket_dir(dir: &Path) -> Result<(), Error> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use std::os::unix::fs::DirBuilderExt;
    let failed = |what: &str, e: io::Error| Error::io(format!("{what} {}", dir.display()), e);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| failed("creating socket directory", e))?;
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| failed("opening socket directory", e.into()))?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o755))
        .map_err(|e| failed("setting mode of", e.into()))
}

/// Bind the socket as the options say.
pub fn bind(opts: &SocketOptions) -> Result<UnixListener, Error> {
    let path = &opts.path;
    let dir = socket_dir(path);
    // Not `exists()`, which follows a symlink (and reads a link the kernel will
    // not follow as missing): only a path with nothing at all there is created.
    match fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_socket_dir(&dir)?,
        _ => {}
    }
    check_parent(&dir)?;

    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::Unsafe(format!(
                    "another service is already listening on {}",
                    path.display()
                )))
            }
            Err(_) => { /* stale: the rename below replaces it atomically */ }
        },
        Ok(_) => {
            return Err(Error::Unsafe(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("inspecting {}", path.display()), e)),
    }

    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Config(format!("socket path {} has no file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| Error::io(format!("binding {}", tmp.display()), e))?;
    let result = (|| {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(opts.mode & 0o777))
            .map_err(|e| Error::io(format!("setting mode of {}", tmp.display()), e))?;
        if opts.owner.is_some() || opts.group.is_some() {
            std::os::unix::fs::chown(&tmp, opts.owner, opts.group)
                .map_err(|e| Error::io(format!("setting owner of {}", tmp.display()), e))?;
        }
        fs::rename(&tmp, path)
            .map_err(|e| Error::io(format!("moving socket to {}", path.display()), e))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_with_mode_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("r.sock");
        let mut opts = SocketOptions::new(&path);
        opts.mode = 0o600;
        let l = bind(&opts).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // Live: refused.
        let e = bind(&opts).unwrap_err();
        assert!(e.to_string().contains("already listening"), "{e}");
        drop(l);
        // Stale: replaced.
        let _l2 = bind(&opts).unwrap();
    }

    #[test]
    fn refuses_a_regular_file_and_an_unsafe_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("file");
        fs::write(&path, "x").unwrap();
        let e = bind(&SocketOptions::new(&path)).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "x");

        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = bind(&SocketOptions::new(dir.path().join("s"))).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
    }

    #[test]
    fn refuses_a_sticky_world_writable_directory_like_tmp() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let path = dir.path().join("s");
        let e = bind(&SocketOptions::new(&path)).unwrap_err();
        assert!(
            e.to_string().contains("writable by group or others")
                && e.to_string().contains("sticky bit does not help"),
            "{e}"
        );
        assert!(!path.exists());
        let e = check_socket_dir(&path).unwrap_err();
        assert!(e.to_string().contains("sticky"), "{e}");
        // Group-writable and sticky: refused too.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1770)).unwrap();
        assert!(bind(&SocketOptions::new(&path)).is_err());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        check_socket_dir(&path).unwrap();
        check_socket_dir(&dir.path().join("not-yet").join("s")).unwrap();
    }

    #[test]
    fn refuses_a_directory_others_can_write_above_the_socket_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mode =
            |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        let open = dir.path().join("open");
        let sub = open.join("sub");
        fs::create_dir_all(&sub).unwrap();
        mode(&sub, 0o755);
        mode(&open, 0o777);
        let e = bind(&SocketOptions::new(sub.join("s"))).unwrap_err();
        assert!(e.to_string().contains("above the socket"), "{e}");
        assert!(check_socket_dir(&sub.join("s")).is_err());
        // Reached through a symlink from a safe directory: still refused.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&sub, &link).unwrap();
        assert!(bind(&SocketOptions::new(link.join("s"))).is_err());
        // Sticky above an entry owned by root (or us): no one else can move it.
        mode(&open, 0o1777);
        let _l = bind(&SocketOptions::new(sub.join("s"))).unwrap();
        mode(&open, 0o755);
        check_socket_dir(&link.join("s")).unwrap();
    }

    #[test]
    fn creates_a_missing_directory_0755_and_never_chmods_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        create_socket_dir(&nested).unwrap();
        assert_eq!(fs::metadata(&nested).unwrap().mode() & 0o7777, 0o755);
        // A symlink in the directory's place: an error, and its target keeps its mode.
        let target = dir.path().join("private");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_socket_dir(&link).is_err());
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o700);
    }
}
