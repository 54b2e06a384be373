//! Landlock rulesets, built in the parent before fork: the child only calls
//! `landlock_restrict_self` on the prepared descriptor.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::ExecError;
use crate::sys;
use regent_model::Sandbox;

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;

/// `LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP` (ABI 4).
pub(crate) const NET_TCP: u64 = (1 << 0) | (1 << 1);
/// `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` (ABI 6).
pub(crate) const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
/// `LANDLOCK_SCOPE_SIGNAL` (ABI 6).
pub(crate) const SCOPE_SIGNAL: u64 = 1 << 1;

/// The first ABI with TCP `bind`/`connect` rules.
pub const ABI_NET: u32 = 4;
/// The first ABI with scopes (signals, abstract Unix sockets).
pub const ABI_SCOPE: u32 = 6;

/// Rights that make sense on a non-directory.
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
/// Rights granted on `read` paths.
const READ_RIGHTS: u64 = EXECUTE | READ_FILE | READ_DIR;

/// All filesystem rights known to Landlock ABI `abi`.
pub(crate) fn handled_for_abi(abi: u32) -> u64 {
    match abi {
        0 => 0,
        1 => (1 << 13) - 1,     // EXECUTE ..= MAKE_SYM
        2 => (1 << 14) - 1,     // + REFER
        3 | 4 => (1 << 15) - 1, // + TRUNCATE (4 adds network only)
        _ => (1 << 16) - 1,     // + IOCTL_DEV (ABI 5+)
    }
}

/// The Landlock ABI of this kernel, or `None` when Landlock is unavailable.
pub fn abi_version() -> Option<u32> {
    sys::landlock_abi().ok().filter(|&v| v >= 1)
}

/// Build the ruleset for `rules` on a kernel with Landlock ABI `abi` (the caller
/// decides what to do when [`abi_version`] is `None`). `net` are the network rights
/// to handle (all denied: no network rule is added) and `scoped` the scopes; both
/// must be 0 where `abi` lacks them.
pub(crate) fn build_ruleset(
    rules: &Sandbox,
    abi: u32,
    net: u64,
    scoped: u64,
) -> Result<OwnedFd, ExecError> {
    let handled = handled_for_abi(abi);
    let ruleset = if net == 0 && scoped == 0 {
        sys::landlock_create_ruleset(handled)
    } else {
        sys::landlock_create_ruleset_scoped(handled, net, scoped)
    }
    .map_err(|e| ExecError::setup("landlock_create_ruleset", e))?;
    for path in &rules.read {
        add_rule(&ruleset, path, READ_RIGHTS & handled)?;
    }
    for path in &rules.write {
        add_rule(&ruleset, path, handled)?;
    }
    Ok(ruleset)
}

fn add_rule(ruleset: &OwnedFd, path: &Path, rights: u64) -> Result<(), ExecError> {
    let step = || format!("landlock rule for {}", path.display());
    if !path.is_absolute() {
        return Err(ExecError::setup(
            step(),
            io::Error::new(io::ErrorKind::InvalidInput, "path must be absolute"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| ExecError::setup(step(), e))?;
    let is_dir = file
        .metadata()
        .map_err(|e| ExecError::setup(step(), e))?
        .is_dir();
    let rights = if is_dir { rights } else { rights & FILE_RIGHTS };
    sys::landlock_add_path_rule(ruleset.as_fd(), file.as_fd(), rights)
        .map_err(|e| ExecError::setup(step(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_masks_grow() {
        assert_eq!(handled_for_abi(1), 0x1fff);
        assert_eq!(handled_for_abi(2), 0x3fff);
        assert_eq!(handled_for_abi(3), 0x7fff);
        assert_eq!(handled_for_abi(6), 0xffff);
        assert_eq!(READ_RIGHTS & FILE_RIGHTS, EXECUTE | READ_FILE);
    }
}
