//! [`run`]: spawn one command under its policy, feed its stdin, capture its output
//! within bounds, and stop its whole tree on timeout.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::child::{Confinement, SetupFailure, Step};
use crate::error::ExecError;
use crate::pathfd::{self, PathFailure, PathFds};
use crate::policy::{CommandSpec, ExecOutput, ExecPolicy};
use crate::postfork::{self, Hook, StartError, Stdio, Supervisor};
use crate::resolve::resolve_program;
use crate::sys::{self, Ended};

/// How long after SIGTERM (beyond the grace) to wait for the supervisor before
/// SIGKILLing its group directly.
const SUPERVISOR_MARGIN: Duration = Duration::from_secs(5);

fn pipe_error(e: std::io::Error) -> ExecError {
    ExecError::Io {
        what: "setting up the command's pipes",
        source: e,
    }
}

/// A close-on-exec pipe whose end `ours` (0: read, 1: write) is non-blocking.
fn pipe_pair(ours_reads: bool) -> Result<(OwnedFd, OwnedFd), ExecError> {
    let (read, write) = sys::pipe_cloexec().map_err(pipe_error)?;
    let ours = if ours_reads { &read } else { &write };
    sys::set_nonblocking(ours.as_fd()).map_err(pipe_error)?;
    Ok((read, write))
}

/// The error for a start that failed with `report` (a record of the report pipe).
fn start_failure(spec: &CommandSpec, name: String, report: &[u8]) -> ExecError {
    if let Some(f) = PathFailure::decode(report) {
        let field = spec
            .paths
            .get(f.index)
            .map_or_else(String::new, |p| p.field.clone());
        return ExecError::Path {
            field,
            refusal: f.refusal,
        };
    }
    match SetupFailure::decode(report) {
        Some(f) if f.step == Step::Exec && f.errno == libc::ENOENT => {
            ExecError::NotFound { program: name }
        }
        Some(f) if f.step == Step::Exec => ExecError::Spawn {
            program: name,
            source: std::io::Error::from_raw_os_error(f.errno),
        },
        Some(f) => f.into_error(),
        None => ExecError::Spawn {
            program: name,
            source: std::io::Error::from_raw_os_error(libc::EIO),
        },
    }
}

/// Read `reader` to its end, keeping at most `max` bytes.
async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    max: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let Some(mut reader) = reader else {
        return Ok((Vec::new(), false));
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        let room = max.saturating_sub(kept.len());
        if n > room {
            truncated = true;
        }
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// A command started by [`spawn`], running under its policy until it exits or
/// is stopped. Dropped before [`Spawned::wait`] returned, its supervisor gets
/// SIGTERM and stops the whole tree (as at a timeout).
pub struct Spawned {
    supervisor: Supervisor,
    name: String,
    grace: Duration,
    /// Its standard input: a pipe when the spec had `stdin` (whose bytes
    /// [`spawn`] does not write: the caller writes what it wants), else none
    /// (`/dev/null`).
    pub stdin: Option<pipe::Sender>,
    /// Its standard output (always there until taken).
    pub stdout: Option<pipe::Receiver>,
    /// Its standard error (always there until taken).
    pub stderr: Option<pipe::Receiver>,
}

impl std::fmt::Debug for Spawned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawned")
            .field("program", &self.name)
            .field("pid", &self.supervisor.pid())
            .finish_non_exhaustive()
    }
}

impl Spawned {
    /// The pid of its supervisor (also the command's process group).
    #[must_use]
    pub fn pid(&self) -> i32 {
        self.supervisor.pid()
    }

    /// Wait until the command has ended and its tree is gone: its exit code,
    /// or the signal that killed it.
    pub async fn wait(&mut self) -> std::io::Result<Ended> {
        self.supervisor.wait().await
    }

    /// Stop the whole tree now (SIGTERM, SIGKILL after the policy's
    /// `kill_grace`) and wait until it is gone.
    pub async fn stop(&mut self) {
        stop(&mut self.supervisor, self.grace).await;
    }
}

/// Stop a supervisor's tree: SIGTERM to the supervisor, which stops the tree;
/// if it has not finished `grace` and a margin later, SIGKILL to its group.
async fn stop(supervisor: &mut Supervisor, grace: Duration) {
    let pid = supervisor.pid();
    let _ = supervisor.signal(libc::SIGTERM);
    let bound = grace.saturating_add(SUPERVISOR_MARGIN);
    if tokio::time::timeout(bound, supervisor.wait())
        .await
        .is_err()
    {
        tracing::warn!(pid, "supervisor did not finish; killing its process group");
        let _ = sys::kill_group(pid, libc::SIGKILL);
        let _ = supervisor.signal(libc::SIGKILL);
        let _ = supervisor.wait().await;
    }
}

/// Start `spec` under `policy` and return at once, the command running: what
/// [`run`] does before it waits, for a caller that talks with the command for
/// as long as it runs (the daemon's Augeas workers). The policy's `timeout` is
/// not applied: the caller stops the command ([`Spawned::stop`], or dropping
/// it). Call it within a Tokio runtime.
pub fn spawn(spec: &CommandSpec, policy: &ExecPolicy) -> Result<Spawned, ExecError> {
    let paths = PathFds::prepare(&spec.paths)?;
    let numbers: Vec<i32> = paths.numbers().collect();
    if let (Some(limit), Some(high)) = (policy.limits.open_files, paths.highest()) {
        if u64::try_from(high).unwrap_or(u64::MAX) >= limit {
            return Err(ExecError::Invalid {
                reason: format!(
                    "descriptor {high} for a path is beyond the open_files limit of {limit}"
                ),
            });
        }
    }
    let argv = pathfd::substitute(&spec.argv, &numbers)?;
    let program = resolve_program(&argv, &policy.command_path)?;
    let name = argv[0].clone();
    let confinement = Confinement::prepare(policy)?;
    if !sys::shared_clone_supported() {
        return Err(ExecError::Unsupported {
            feature: "pidfds usable with waitid (Linux 5.4), which the per-run supervisor needs"
                .into(),
        });
    }
    let (report_read, report_write) =
        sys::pipe_cloexec().map_err(|e| ExecError::setup("pipe", e))?;
    let (out_read, out_write) = pipe_pair(true)?;
    let (err_read, err_write) = pipe_pair(true)?;
    let (stdin, stdin_write) = if spec.stdin.is_some() {
        let (read, write) = pipe_pair(false)?;
        (read, Some(write))
    } else {
        (sys::open_dev_null().map_err(pipe_error)?, None)
    };
    // The environment is cleared but for these.
    let env = [
        format!("PATH={}", policy.command_path),
        "LANG=C.UTF-8".to_string(),
    ];
    let image = sys::ExecImage::new(program.as_os_str().as_bytes(), &argv, &env).map_err(|_| {
        ExecError::Invalid {
            reason: "the program path or command_path contains a NUL byte".into(),
        }
    })?;
    let hook = Hook::new(confinement, image, policy.kill_grace, sys::getpid())
        .with_paths(paths)
        .keeping_descendants(policy.keep_descendants);
    let stdio = Stdio {
        stdin,
        stdout: out_write,
        stderr: err_write,
    };
    // Blocks until the command has exec'd (or failed to), as fork+exec does.
    let supervisor = match postfork::start(hook, stdio, report_write, report_read) {
        Ok(supervisor) => supervisor,
        Err(StartError::Report(report)) => return Err(start_failure(spec, name, &report)),
        Err(StartError::Os(e)) => {
            return Err(ExecError::Spawn {
                program: name,
                source: e,
            })
        }
    };
    let pid = supervisor.pid();
    tracing::debug!(program = %name, pid, "command started");

    // Dropped on an error or with the run's future, the supervisor gets SIGTERM
    // and stops the tree.
    let stdout = Some(pipe::Receiver::from_owned_fd_unchecked(out_read).map_err(pipe_error)?);
    let stderr = Some(pipe::Receiver::from_owned_fd_unchecked(err_read).map_err(pipe_error)?);
    let stdin = stdin_write
        .map(pipe::Sender::from_owned_fd_unchecked)
        .transpose()
        .map_err(pipe_error)?;
    Ok(Spawned {
        supervisor,
        name,
        grace: policy.kill_grace,
        stdin,
        stdout,
        stderr,
    })
}

/// Run `spec` under `policy`.
///
/// The environment is cleared (`PATH` is the policy's `command_path`,
/// `LANG=C.UTF-8`), the working directory is `/`, the files of `spec.paths` are
/// opened in the command's process after its confinement and passed as
/// `/proc/self/fd/N` (a file that cannot be opened gives [`ExecError::Path`] and
/// nothing runs), stdin is `/dev/null` unless `spec.stdin` is given, and no shell is
/// involved. The command runs in its own process group under a per-run supervisor
/// (see the `postfork` module): when it exits, leftovers of its tree are stopped
/// (unless [`ExecPolicy::keep_descendants`]);
/// on timeout, the whole tree gets SIGTERM, then SIGKILL after `kill_grace`, and the
/// result is [`ExecError::Timeout`]. A non-zero exit is not an error: see
/// [`ExecOutput::code`].
pub async fn run(spec: &CommandSpec, policy: &ExecPolicy) -> Result<ExecOutput, ExecError> {
    let Spawned {
        mut supervisor,
        name,
        stdin,
        stdout,
        stderr,
        ..
    } = spawn(spec, policy)?;
    let pid = supervisor.pid();
    let input = spec.stdin.as_ref();
    let max = policy.max_output;
    let feed = async move {
        if let (Some(mut pipe), Some(data)) = (stdin, input) {
            // The command may exit without reading: a broken pipe is not an error.
            let _ = pipe.write_all(data).await;
            let _ = pipe.shutdown().await;
        }
    };
    let work = async {
        let (status, out, err, ()) = tokio::join!(
            supervisor.wait(),
            read_capped(stdout, max),
            read_capped(stderr, max),
            feed
        );
        (status, out, err)
    };
    match tokio::time::timeout(policy.timeout, work).await {
        Ok((status, out, err)) => {
            let status = status.map_err(|e| ExecError::Io {
                what: "waiting for the command",
                source: e,
            })?;
            let (stdout, stdout_truncated) = out.map_err(|e| ExecError::Io {
                what: "reading stdout",
                source: e,
            })?;
            let (stderr, stderr_truncated) = err.map_err(|e| ExecError::Io {
                what: "reading stderr",
                source: e,
            })?;
            let (code, signal) = match status {
                Ended::Code(c) => (Some(c), None),
                Ended::Signal(s) => (None, Some(s)),
            };
            tracing::debug!(program = %name, pid, ?code, ?signal, "command finished");
            Ok(ExecOutput {
                code,
                signal,
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
            })
        }
        Err(_) => {
            tracing::info!(program = %name, pid, timeout = ?policy.timeout, "command timed out; stopping its tree");
            stop(&mut supervisor, policy.kill_grace).await;
            Err(ExecError::Timeout {
                after: policy.timeout,
            })
        }
    }
}
