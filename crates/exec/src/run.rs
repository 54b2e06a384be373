//! [`run`]: spawn one command under its policy, feed its stdin, capture its output
//! within bounds, and stop its whole tree on timeout.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::child::{Confinement, SetupFailure};
use crate::error::ExecError;
use crate::pathfd::{self, PathFailure, PathFds};
use crate::policy::{CommandSpec, ExecOutput, ExecPolicy};
use crate::postfork::Hook;
use crate::resolve::resolve_program;
use crate::sys;

/// How long after SIGTERM (beyond the grace) to wait for the supervisor before
/// SIGKILLing its group directly.
const SUPERVISOR_MARGIN: Duration = Duration::from_secs(5);

/// Sends SIGTERM to the supervisor if the run is abandoned (future dropped) before
/// the child was reaped; the supervisor then tears the tree down and tokio reaps it.
struct AbandonGuard {
    pid: Option<i32>,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = sys::kill_process(pid, libc::SIGTERM);
        }
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

/// Run `spec` under `policy`.
///
/// The environment is cleared (`PATH` is the policy's `command_path`,
/// `LANG=C.UTF-8`), the working directory is `/`, the files of `spec.paths` are
/// opened in the command's process after its confinement and passed as
/// `/proc/self/fd/N` (a file that cannot be opened gives [`ExecError::Path`] and
/// nothing runs), stdin is `/dev/null` unless `spec.stdin` is given, and no shell is
/// involved. The command runs in its own process group under a per-run supervisor
/// (see the `postfork` module): when it exits, leftovers of its tree are stopped;
/// on timeout, the whole tree gets SIGTERM, then SIGKILL after `kill_grace`, and the
/// result is [`ExecError::Timeout`]. A non-zero exit is not an error: see
/// [`ExecOutput::code`].
pub async fn run(spec: &CommandSpec, policy: &ExecPolicy) -> Result<ExecOutput, ExecError> {
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
    let (report_read, report_write) =
        sys::pipe_cloexec().map_err(|e| ExecError::setup("pipe", e))?;

    // std forks the supervisor and sets up its descriptors, directory and process
    // group; the hook never returns to std's `exec` but to report a failure: the
    // command is executed from the prepared `image` (see `postfork`).
    let mut cmd = tokio::process::Command::new(&program);
    cmd.env_clear()
        .current_dir("/")
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
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
    Hook::new(
        confinement,
        image,
        policy.kill_grace,
        sys::getpid(),
        report_write,
    )
    .with_paths(paths)
    .register(&mut cmd);
    let spawned = cmd.spawn();
    // Drops the hook in this process: closes the Landlock ruleset descriptor and
    // the write end of the report pipe.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let mut report = Vec::new();
            let _ = std::fs::File::from(report_read).read_to_end(&mut report);
            if let Some(f) = PathFailure::decode(&report) {
                let field = spec
                    .paths
                    .get(f.index)
                    .map_or_else(String::new, |p| p.field.clone());
                return Err(ExecError::Path {
                    field,
                    refusal: f.refusal,
                });
            }
            if let Some(failure) = SetupFailure::decode(&report) {
                return Err(failure.into_error());
            }
            if e.kind() == std::io::ErrorKind::NotFound {
                return Err(ExecError::NotFound { program: name });
            }
            return Err(ExecError::Spawn {
                program: name,
                source: e,
            });
        }
    };
    drop(report_read);
    let pid = child.id().map(|p| p as i32).ok_or_else(|| ExecError::Io {
        what: "reading the child's pid",
        source: std::io::Error::other("child already reaped"),
    })?;
    let mut guard = AbandonGuard { pid: Some(pid) };
    tracing::debug!(program = %name, pid, "command started");

    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdin = child.stdin.take();
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
            child.wait(),
            read_capped(stdout, max),
            read_capped(stderr, max),
            feed
        );
        (status, out, err)
    };
    match tokio::time::timeout(policy.timeout, work).await {
        Ok((status, out, err)) => {
            guard.pid = None;
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
            tracing::debug!(program = %name, pid, code = ?status.code(), signal = ?status.signal(), "command finished");
            Ok(ExecOutput {
                code: status.code(),
                signal: status.signal(),
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
            })
        }
        Err(_) => {
            tracing::info!(program = %name, pid, timeout = ?policy.timeout, "command timed out; stopping its tree");
            let _ = sys::kill_process(pid, libc::SIGTERM);
            let bound = policy.kill_grace.saturating_add(SUPERVISOR_MARGIN);
            if tokio::time::timeout(bound, child.wait()).await.is_err() {
                tracing::warn!(pid, "supervisor did not finish; killing its process group");
                let _ = sys::kill_group(pid, libc::SIGKILL);
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            guard.pid = None;
            Err(ExecError::Timeout {
                after: policy.timeout,
            })
        }
    }
}
