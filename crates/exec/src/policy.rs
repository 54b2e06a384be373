//! What to run ([`CommandSpec`]) and under which declared policy ([`ExecPolicy`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use regent_model::limits::{DEFAULT_MAX_OUTPUT, DEFAULT_RUN_TIMEOUT};
use regent_model::{Capability, ExecDecl, OnUnsupported, ResourceLimits, RunAs, Sandbox};

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
    /// Sandbox: a Landlock filesystem allowlist. When set, the command also runs
    /// under a seccomp filter and Landlock's network and scope restrictions, minus
    /// the families its `allow` opts back in (see
    /// [`SandboxAllow`](regent_model::SandboxAllow)).
    pub sandbox: Option<Sandbox>,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// Refuse (default) or warn when the kernel lacks a requested feature (decided
    /// per feature, see [`crate::sandbox_protections`]); refusing answers
    /// [`crate::ExecError::Unsupported`], warning logs a `tracing::warn!`.
    pub on_unsupported: OnUnsupported,
    /// The `PATH` a bare program name is resolved against and the command runs
    /// with (default [`FIXED_PATH`]); entries that are not absolute are skipped.
    pub command_path: String,
    /// Let the command's descendants outlive it (default false). Normally, when
    /// the command exits, whatever it left running in its tree is stopped
    /// (SIGTERM, then SIGKILL). With this set, the supervisor exits with the
    /// command instead and leaves its leftovers (a daemon an init script
    /// started) to be re-parented to init; on timeout the whole tree is still
    /// stopped. Only for the system modules whose work is starting services
    /// (see `regent_model::ModuleAccess::keep_descendants`), which also make sure
    /// nothing they start keeps the run's output pipes open. Never declared in
    /// a config.
    pub keep_descendants: bool,
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
            sandbox: None,
            limits: ResourceLimits::default(),
            on_unsupported: OnUnsupported::Refuse,
            command_path: FIXED_PATH.to_string(),
            keep_descendants: false,
        }
    }
}

impl ExecPolicy {
    /// The policy an operation's declaration asks for: its `run_as`,
    /// `capabilities`, `sandbox`, `limits` and `on_unsupported`, the rest at the
    /// defaults. `run_as` is taken as declared: a caller must resolve names to ids
    /// before it runs ([`Confinement::prepare`](crate::Confinement::prepare)
    /// refuses names).
    #[must_use]
    pub fn declared(decl: &ExecDecl) -> ExecPolicy {
        ExecPolicy {
            run_as: decl.run_as.clone(),
            capabilities: decl.capabilities.clone(),
            sandbox: decl.sandbox.clone(),
            limits: decl.limits,
            on_unsupported: decl.on_unsupported,
            ..ExecPolicy::default()
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
