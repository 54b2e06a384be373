//! Files the daemon trusts with its privilege: its configuration and the
//! `regent-module` binary it runs. Whoever could replace one of them (or a
//! directory on its way) could make the daemon run anything.
//!
//! [`check`]: the file, and every directory above it, as written and with
//! symlinks resolved, must be owned by root or this process's user and
//! writable by no one else; a sticky directory others can write is fine above
//! an entry owned by root or this process's user (no one else may rename or
//! remove it). A symlink on the way must be owned by root or this process's
//! user (its own mode means nothing).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// See the module's head: why not, naming the path at fault.
pub fn check(path: &Path) -> Result<(), String> {
    let me = regent_exec::sys::geteuid();
    let written = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let resolved = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    chain(&written, me)?;
    chain(&resolved, me)
}

fn chain(path: &Path, me: u32) -> Result<(), String> {
    let trusted = |uid: u32| uid == 0 || uid == me;
    let mut child: Option<PathBuf> = None;
    let mut at = Some(path);
    while let Some(p) = at {
        let meta = std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !trusted(meta.uid()) {
            return Err(format!(
                "{} is owned by uid {}, not root or this service (uid {me})",
                p.display(),
                meta.uid()
            ));
        }
        let sticky_above_trusted = meta.is_dir()
            && meta.mode() & 0o1000 != 0
            && child
                .as_deref()
                .is_some_and(|c| std::fs::symlink_metadata(c).is_ok_and(|m| trusted(m.uid())));
        if !meta.file_type().is_symlink() && meta.mode() & 0o022 != 0 && !sticky_above_trusted {
            return Err(format!(
                "{} is writable by its group or others (mode {:o})",
                p.display(),
                meta.mode() & 0o7777
            ));
        }
        child = Some(p.to_path_buf());
        at = p.parent();
    }
    Ok(())
}
