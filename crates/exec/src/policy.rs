//! What to run ([`CommandSpec`]) and under which declared policy ([`ExecPolicy`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use regent_model::limits::{DEFAULT_MAX_OUTPUT, DEFAULT_RUN_TIMEOUT};
use regent_model::{Capability, RunAs};

/// The default `PATH` commands get (and bare program names are resolved against).
pub use regent_model::limits::DEFAULT_COMMAND_PATH as FIXED_PATH;

/// One command: an argument vector (no shell), optional secret input, and files
/// the command receives as already-open descriptors.
#[derive(Clone, Default)]
pub struct CommandSpec {
    /// `argv[0]` is an absolute path or a bare name resolved against the policy's
    /// [`ExecPolicy::command_path`]. An element may contain
    /// [`PathArg::placeholder`]`(i)`, replaced by `/proc/self/fd/N` where `N` is the
    /// descriptor of `paths[i]`.
    pub argv: Vec<String>,
    /// Bytes written to the command's stdin through a pipe (zeroed when dropped);
    /// `None` gives `/dev/null`.
    pub stdin: Option<Zeroizing<Vec<u8>>>,
    /// Files opened in the command's own process (after its confinement) and
    /// passed as descriptors; see [`PathArg`].
    pub paths: Vec<PathArg>,
}

/// What a command does with a file it receives as a descriptor, which fixes the
/// flags it is opened with (always with `O_NOCTTY`, and no symlink anywhere below
/// [`PathArg::beneath`]). The file is found with `O_PATH` and checked before it is
/// opened, so a device or FIFO is never opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileAccess {
    /// `O_RDONLY`: an existing regular file or directory. The default.
    #[default]
    Read,
    /// `O_WRONLY`: an existing regular file, not truncated.
    Write,
    /// `O_WRONLY | O_CREAT | O_EXCL`, mode `0600` (less the umask), when missing
    /// (its directory must exist); an existing regular file only if it belongs to
    /// the command's effective user, never truncated.
    Create,
}

impl FileAccess {
    /// `read`, `write` or `create`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileAccess::Read => "read",
            FileAccess::Write => "write",
            FileAccess::Create => "create",
        }
    }
}

impl fmt::Display for FileAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file the command gets as an open descriptor instead of a name.
///
/// The command's own process opens it between fork and exec, after the
/// credential switch and the rest of the confinement (so it gets no more than the
/// command's own access): first `beneath`, from `/` with `O_NOFOLLOW`, through
/// directories that only root and the command's user could rename, then `path`
/// beneath that descriptor with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (component by component with
/// `O_NOFOLLOW` where `openat2` is missing), first with `O_PATH`. Only regular
/// files (and directories for [`FileAccess::Read`]) with a single link are
/// accepted, and only then opened, through `/proc/self/fd`. The descriptor is
/// kept open across `exec` at a number chosen before the fork; the argv element
/// names it `/proc/self/fd/N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArg {
    /// The name shown in errors (e.g. the parameter's name).
    pub field: String,
    /// The absolute directory the file must be beneath.
    pub beneath: PathBuf,
    /// The file, relative to `beneath`: normal components only (no `..`, `.` or
    /// root); empty for `beneath` itself.
    pub path: PathBuf,
    /// The open flags.
    pub access: FileAccess,
}

impl PathArg {
    /// The text to put in an argv element where descriptor `index` of
    /// [`CommandSpec::paths`] is meant; it contains NUL bytes, so it can never come
    /// from a validated value.
    pub fn placeholder(index: usize) -> String {
        format!("\0regent-path-{index}\0")
    }
}

impl CommandSpec {
    /// A command with no input.
    pub fn new<I, S>(argv: I) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            paths: Vec::new(),
        }
    }

    /// The same command with `input` on its stdin.
    pub fn with_stdin(mut self, input: Vec<u8>) -> CommandSpec {
        self.stdin = Some(Zeroizing::new(input));
        self
    }
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSpec")
            .field("argv", &self.argv)
            .field(
                "stdin",
                &self
                    .stdin
                    .as_ref()
                    .map(|s| format!("<{} bytes redacted>", s.len())),
            )
            .field("paths", &self.paths)
            .finish()
    }
}

/// A Landlock filesystem sandbox: everything not listed is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandlockRules {
    /// Readable (and executable) files and directory trees. The program and the
    /// libraries it loads must be covered (e.g. `/usr`, `/lib`, `/etc`).
    pub read: Vec<PathBuf>,
    /// Readable and writable trees (create, remove, truncate; execute too).
    pub write: Vec<PathBuf>,
}

/// What a declared sandbox lets a command do beyond its filesystem lists
/// (`sandbox.allow`). Each family is denied unless opted in; none of them applies to
/// an operation without a sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// Resource limits (each `None` leaves the inherited limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// `RLIMIT_CPU` seconds (soft; hard is one more, then SIGKILL).
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_AS` bytes of address space.
    pub memory_bytes: Option<u64>,
    /// `RLIMIT_NOFILE`: highest file descriptor number + 1.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC`: processes of the target real uid (ignored by the kernel for
    /// root and for holders of `CAP_SYS_ADMIN`/`CAP_SYS_RESOURCE`).
    pub processes: Option<u64>,
}

impl ResourceLimits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == ResourceLimits::default()
    }
}

/// What to do when the kernel lacks a feature the policy asks for. It applies to
/// each feature on its own: a kernel with Landlock ABI 2 still enforces the
/// filesystem rules and the seccomp filter, and refuses (or warns about) only TCP
/// rules (ABI 4) and signal scoping (ABI 6); see [`crate::sandbox_protections`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unsupported {
    /// Do not run; answer [`crate::ExecError::Unsupported`]. The default.
    #[default]
    Refuse,
    /// Log a `tracing::warn!` and run without the missing protection.
    Warn,
}

/// The declared execution policy of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPolicy {
    /// Wall-clock limit; then SIGTERM to the whole tree, `kill_grace`, SIGKILL.
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL (default 2 s).
    pub kill_grace: Duration,
    /// Bytes kept per output stream (default 1 MiB); the rest is read and dropped.
    pub max_output: usize,
    /// Run as another user and group (supplementary groups are cleared); `None`
    /// keeps the service's. It must be resolved to ids ([`RunAs::ids`]): names are
    /// refused, the executor looks nothing up.
    pub run_as: Option<RunAs>,
    /// `None`: inherit. `Some(list)`: exactly these capabilities in the effective,
    /// permitted, inheritable and ambient sets, and a bounding set reduced to them.
    pub capabilities: Option<Vec<Capability>>,
    /// Set `no_new_privs` (default true; required with Landlock).
    pub no_new_privs: bool,
    /// Filesystem sandbox. When set, the command also runs under a seccomp filter
    /// and Landlock's network and scope restrictions, minus what `sandbox_allow`
    /// opts back in (see [`SandboxAllow`]).
    pub landlock: Option<LandlockRules>,
    /// What the sandbox lets through (ignored without `landlock`).
    pub sandbox_allow: SandboxAllow,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// Refuse (default) or warn when the kernel lacks a requested feature (decided
    /// per feature).
    pub on_unsupported: Unsupported,
    /// The `PATH` a bare program name is resolved against and the command runs
    /// with (default [`FIXED_PATH`]); entries that are not absolute are skipped.
    pub command_path: String,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy {
            timeout: DEFAULT_RUN_TIMEOUT,
            kill_grace: Duration::from_secs(2),
            max_output: DEFAULT_MAX_OUTPUT,
            run_as: None,
            capabilities: None,
            no_new_privs: true,
            landlock: None,
            sandbox_allow: SandboxAllow::default(),
            limits: ResourceLimits::default(),
            on_unsupported: Unsupported::Refuse,
            command_path: FIXED_PATH.to_string(),
        }
    }
}

/// The result of a command that ran to completion (whatever its exit status).
#[derive(Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Captured stdout (at most `max_output` bytes).
    pub stdout: Vec<u8>,
    /// Captured stderr (at most `max_output` bytes).
    pub stderr: Vec<u8>,
    /// More stdout was produced than kept.
    pub stdout_truncated: bool,
    /// More stderr was produced than kept.
    pub stderr_truncated: bool,
}

impl ExecOutput {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Output may be sensitive: show sizes, not contents.
        f.debug_struct("ExecOutput")
            .field("code", &self.code)
            .field("signal", &self.signal)
            .field("stdout_len", &self.stdout.len())
            .field("stderr_len", &self.stderr.len())
            .field("stdout_truncated", &self.stdout_truncated)
            .field("stderr_truncated", &self.stderr_truncated)
            .finish()
    }
}
