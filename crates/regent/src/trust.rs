//! Files the daemon trusts with its privilege: its configuration and the
//! `regent-module` binary it runs. Whoever could replace one of them (or a
//! directory on its way) could make the daemon run anything.
//!
//! [`check`]: the path is resolved as the kernel resolves it, one entry at a
//! time, following every symlink met on the way (those met while resolving
//! another's target too). Every entry met, the file itself included, must be
//! owned by root or this process's user; every directory looked into, and the
//! file, must be writable by no one else, except that a sticky directory
//! others can write is fine (no one else may rename or remove the entry, which
//! is root's or this process's user's). A symlink's own mode means nothing.
//!
//! [`open`]: the same check, on the file actually opened: the file is opened
//! first, and refused unless the path, checked after, leads to that very file
//! (a path changed between the two is refused, not read).

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one resolution at most (as the kernel's `ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// See the module's head: why not, naming the path at fault.
pub fn check(path: &Path) -> Result<(), String> {
    walk(path).map(drop)
}

/// Open `path` for reading, refused unless [`check`] passes on the file opened
/// (see the module's head): what is read from it is what was checked.
pub fn open(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    leads_to(path, &file)?;
    Ok(file)
}

/// [`check`] on `path`, and that it leads to `file`, opened from it before:
/// a path changed in between is refused.
pub fn leads_to(path: &Path, file: &std::fs::File) -> Result<(), String> {
    let opened = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let checked = walk(path)?;
    if (opened.dev(), opened.ino()) != (checked.dev(), checked.ino()) {
        return Err(format!("{} changed while it was checked", path.display()));
    }
    Ok(())
}

/// Resolve `path` entry by entry (see the module's head), checking each;
/// the metadata of the file it leads to.
fn walk(path: &Path) -> Result<std::fs::Metadata, String> {
    let me = regent_exec::sys::geteuid();
    let trusted = |at: &Path, meta: &std::fs::Metadata| {
        if meta.uid() == 0 || meta.uid() == me {
            Ok(())
        } else {
            Err(format!(
                "{} is owned by uid {}, not root or this service (uid {me})",
                at.display(),
                meta.uid()
            ))
        }
    };
    let unwritable = |at: &Path, meta: &std::fs::Metadata| {
        let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !sticky_dir {
            Err(format!(
                "{} is writable by its group or others (mode {:o})",
                at.display(),
                meta.mode() & 0o7777
            ))
        } else {
            Ok(())
        }
    };
    let lstat =
        |at: &Path| std::fs::symlink_metadata(at).map_err(|e| format!("{}: {e}", at.display()));
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut at = PathBuf::from("/");
    let mut meta = lstat(&at)?;
    trusted(&at, &meta)?;
    // The components left to resolve, the next last.
    let mut left: Vec<OsString> = Vec::new();
    push_components(&mut left, &absolute);
    let mut followed = 0;
    while let Some(name) = left.pop() {
        if name == ".." {
            // Back to a directory checked on the way down (`at` is resolved).
            at.pop();
            meta = lstat(&at)?;
            continue;
        }
        if !meta.is_dir() {
            return Err(format!("{}: not a directory", at.display()));
        }
        unwritable(&at, &meta)?;
        let next = at.join(&name);
        let next_meta = lstat(&next)?;
        trusted(&next, &next_meta)?;
        if next_meta.file_type().is_symlink() {
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(format!("{}: too many symlinks", path.display()));
            }
            let target =
                std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
            if target.is_absolute() {
                at = PathBuf::from("/");
                meta = lstat(&at)?;
            }
            push_components(&mut left, &target);
            continue;
        }
        at = next;
        meta = next_meta;
    }
    unwritable(&at, &meta)?;
    Ok(meta)
}

/// Put `path`'s components on `left` (a stack: the first on top), `.` and the
/// root left out.
fn push_components(left: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    left.extend(names.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_as_the_kernel_does() {
        let dir = tempfile::Builder::new()
            .prefix("regent-trust-")
            .tempdir()
            .unwrap();
        let top = dir.path();
        std::fs::create_dir_all(top.join("a/b")).unwrap();
        std::fs::write(top.join("a/file"), b"x = 1\n").unwrap();
        // `..` after a symlink goes up from its target, not from the link.
        symlink(top.join("a/b"), top.join("link")).unwrap();
        symlink("../file", top.join("a/b/rel")).unwrap();
        for path in [
            top.join("a/b/../file"),
            top.join("link/../file"),
            top.join("link/rel"),
            top.join("./a/./file"),
        ] {
            let file = open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let same = std::fs::metadata(top.join("a/file")).unwrap();
            let got = file.metadata().unwrap();
            assert_eq!(
                (got.dev(), got.ino()),
                (same.dev(), same.ino()),
                "{}",
                path.display()
            );
        }
        // A symlink loop is an error, not a hang.
        symlink(top.join("loop"), top.join("loop")).unwrap();
        assert!(check(&top.join("loop")).unwrap_err().contains("symlinks"));
        // A missing entry is an error naming it.
        assert!(check(&top.join("a/none")).unwrap_err().contains("a/none"));
    }

    #[test]
    fn a_symlink_met_only_in_another_ones_target_is_checked() {
        use std::os::unix::fs::PermissionsExt;
        if regent_exec::sys::geteuid() != 0 {
            return;
        }
        let dir = tempfile::Builder::new()
            .prefix("regent-trust-")
            .tempdir()
            .unwrap();
        let top = dir.path();
        std::fs::write(top.join("file"), b"").unwrap();
        let shared = top.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        symlink(top, shared.join("stage")).unwrap();
        symlink(shared.join("stage/file"), top.join("via")).unwrap();
        assert_eq!(check(&top.join("via")), Ok(()));
        std::os::unix::fs::lchown(shared.join("stage"), Some(65534), None).unwrap();
        let e = check(&top.join("via")).unwrap_err();
        assert!(e.contains("stage is owned by uid 65534"), "{e}");
        // Non-sticky, the shared directory itself is refused.
        std::os::unix::fs::lchown(shared.join("stage"), Some(0), None).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check(&top.join("via")).unwrap_err();
        assert!(
            e.contains("shared is writable by its group or others"),
            "{e}"
        );
    }
}
