//! `sandbox`: the filesystem allowlist an operation's command runs under, and the
//! families of system calls it opts back in (`sandbox.allow`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A declared sandbox: everything outside its read and write lists is denied
/// (Landlock), and so are the families of [`SandboxAllow`] not opted in (seccomp
/// and Landlock's network and scope restrictions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sandbox {
    /// `read`: files and directory trees readable (and executable) beneath. The
    /// program and the libraries it loads must be covered (e.g. `/usr`, `/lib`).
    pub read: Vec<PathBuf>,
    /// `write`: trees readable and writable beneath (create, remove, truncate;
    /// execute too).
    pub write: Vec<PathBuf>,
    /// `allow`: what the sandbox lets through beyond its lists.
    pub allow: SandboxAllow,
}

/// What a sandbox lets a command do beyond its filesystem lists (`sandbox.allow`).
/// Each family is denied unless opted in; none of them applies without a sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SandboxAllow {
    /// `"metadata"`: the chmod, chown, utime and xattr system calls (and the
    /// `FS_IOC_SETFLAGS`/`FS_IOC_FSSETXATTR` ioctls) on any file the command can name.
    pub metadata: bool,
    /// `"unix"`: creating Unix sockets (connecting to any Unix socket, pathname or
    /// abstract, that the command's uid may reach).
    pub unix: bool,
    /// `"tcp"`: TCP `bind` and `connect` (Landlock ABI 4 and later deny both otherwise).
    pub tcp: bool,
    /// `"signals"`: signalling processes outside the sandbox (Landlock ABI 6 and
    /// later deny it otherwise).
    pub signals: bool,
}

impl SandboxAllow {
    /// The names accepted in `sandbox.allow`, in a fixed order.
    pub const NAMES: [&'static str; 4] = ["metadata", "unix", "tcp", "signals"];

    /// Turn on the family called `name`; `false` for an unknown name.
    pub fn set(&mut self, name: &str) -> bool {
        match name {
            "metadata" => self.metadata = true,
            "unix" => self.unix = true,
            "tcp" => self.tcp = true,
            "signals" => self.signals = true,
            _ => return false,
        }
        true
    }

    /// The families `names` turn on, or the first unknown name.
    pub fn from_names<'a, I>(names: I) -> Result<SandboxAllow, String>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut allow = SandboxAllow::default();
        for name in names {
            if !allow.set(name) {
                return Err(name.to_string());
            }
        }
        Ok(allow)
    }

    /// The names of the families turned on, in [`SandboxAllow::NAMES`] order.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        let on = [self.metadata, self.unix, self.tcp, self.signals];
        SandboxAllow::NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let all = SandboxAllow::from_names(SandboxAllow::NAMES).unwrap();
        assert_eq!(all.names(), SandboxAllow::NAMES);
        let opted = SandboxAllow::from_names(["signals", "tcp"]).unwrap();
        assert_eq!(opted.names(), vec!["tcp", "signals"]);
        assert!(opted.tcp && opted.signals && !opted.unix && !opted.metadata);
        assert_eq!(SandboxAllow::from_names(["tcp", "udp"]), Err("udp".into()));
        assert!(SandboxAllow::default().names().is_empty());
    }
}
