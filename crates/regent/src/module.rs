//! Module operations (`service = {...}`, `packages = {...}`, `augeas =
//! {...}`): where their work runs.
//!
//! Never in the daemon's process: `regent-module` ([`program`], found once
//! beside the daemon's own binary) runs it, under the operation's
//! execution policy (capabilities, `run_as`, sandbox, limits, timeout and tree
//! kill, as a command's), and answers one JSON object per request:
//! `{"ok": ANSWER}`, or `{"error": {"code", "message"}}` (`timeout` answers
//! `timeout`, anything else `operation_failed` with the message). A crash, a
//! hang or a misbehaving tool fails that one request.
//!
//! - Services and packages: `run`, one `regent-module` per request through
//!   [`regent_exec::run`], the [`ModuleRequest`] on stdin.
//! - Augeas: `AugeasWorker`, one `regent-module --augeas-worker LENS` per
//!   operation, started through [`regent_exec::spawn`] at the operation's
//!   first request and kept: it compiled the lens once, and runs each request
//!   (one JSON line on its stdin, one answer line on its stdout) in a fork of
//!   itself. A request that outlives its time limit stops the worker's whole
//!   tree (the next request starts a new one); a reload builds new operations
//!   and so new workers, the old ones stopped when their operation goes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use regent_exec::{CommandSpec, ExecPolicy, Spawned};
use regent_model::{ModulePlan, ModuleRequest};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

use crate::command::{exec_error, tail};
use crate::operation::OpError;

static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The name of the binary module work runs in.
pub const MODULE_PROGRAM: &str = "regent-module";

/// The binary module work runs in: set by [`set_program`], else
/// `regent-module` beside this process's own executable (`/proc/self/exe`), or
/// else `../libexec/regent/regent-module` from its directory (where the
/// package installs it: `/usr/bin/regent` and
/// `/usr/libexec/regent/regent-module`). Resolved on the first call (the
/// daemon makes it when it builds its operations, at start-up) and kept: a
/// binary replaced on disk later (an upgrade) is found at the same path. The
/// file must be owned by root or by this process's user and writable by no
/// one else, as the directories it lies in: the daemon runs it with the
/// operations' privileges.
pub fn program() -> Result<&'static Path, String> {
    PROGRAM
        .get_or_init(|| {
            let exe = std::env::current_exe()
                .map_err(|e| format!("finding the service's own binary: {e}"))?;
            let dir = exe.parent().unwrap_or(Path::new("/"));
            let candidates = [
                dir.join(MODULE_PROGRAM),
                dir.join("../libexec/regent").join(MODULE_PROGRAM),
            ];
            let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                format!(
                    "module operations need {MODULE_PROGRAM}, found neither at {} nor at {}",
                    candidates[0].display(),
                    candidates[1].display()
                )
            })?;
            let path =
                std::fs::canonicalize(found).map_err(|e| format!("{}: {e}", found.display()))?;
            crate::trust::check(&path).map_err(|e| {
                format!(
                    "refusing to run {}: {e} (module work runs with the operations' privileges)",
                    path.display()
                )
            })?;
            Ok(path)
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// Name the `regent-module` binary module work runs in (for a program
/// embedding the service); `false` when it was fixed already.
pub fn set_program(path: PathBuf) -> bool {
    PROGRAM.set(Ok(path)).is_ok()
}

/// The request's JSON text.
fn encode(op: &str, plan: ModulePlan, policy: &ExecPolicy) -> Result<Vec<u8>, OpError> {
    let request = ModuleRequest {
        timeout_ms: u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX),
        plan,
    };
    let text = serde_json::to_vec(&request)
        .map_err(|e| OpError::Internal(format!("{op}: encoding the module plan: {e}")))?;
    // Larger, `regent-module` would refuse it; a worker would also stop, out of
    // step, after answering: refused here, nothing sent.
    if text.len() as u64 >= regent_model::module::MAX_MODULE_REQUEST {
        return Err(OpError::Failed(format!(
            "the request's plan is larger than {} bytes",
            regent_model::module::MAX_MODULE_REQUEST
        )));
    }
    Ok(text)
}

/// Run `plan` as operation `op` under `policy` (its timeout already cut to what
/// is left of the request's).
pub(crate) async fn run(op: &str, plan: ModulePlan, policy: &ExecPolicy) -> Result<Value, OpError> {
    let program = program().map_err(OpError::Internal)?;
    let input = encode(op, plan, policy)?;
    let argv = [program.to_string_lossy().into_owned()];
    let spec = CommandSpec::new(argv).with_stdin(input);
    let out = regent_exec::run(&spec, policy)
        .await
        .map_err(|e| exec_error(op, e))?;
    answer(&out.stdout).unwrap_or_else(|| {
        let status = match (out.code, out.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "failed".to_string(),
        };
        let err = tail(&out.stderr, 2048);
        tracing::warn!(op = %op, %status, "module gave no answer");
        Err(OpError::Failed(if err.is_empty() {
            format!("module failed ({status})")
        } else {
            format!("module failed ({status}): {err}")
        }))
    })
}

/// The largest answer line read from a worker (a `match` of a large file),
/// whatever the operation's `max_output`.
const MAX_ANSWER: usize = 64 << 20;
/// How much of a worker's stderr is kept for a failure's message.
const STDERR_KEEP: usize = 2048;

/// The worker of one Augeas operation (see the module's head). Requests of the
/// operation, and of every other on the same file ([`file_lock`]), run one at
/// a time: the next waits (within its own time limit) until the last is
/// answered.
#[derive(Default)]
pub(crate) struct AugeasWorker {
    live: tokio::sync::Mutex<Option<Live>>,
}

/// A running worker.
struct Live {
    lens: String,
    process: Spawned,
    stdin: pipe::Sender,
    stdout: BufReader<pipe::Receiver>,
    /// The end of what it wrote on stderr (drained by a task of its own).
    stderr: Arc<Mutex<Vec<u8>>>,
    /// A request was sent and its answer not read (yet, or ever: the request
    /// abandoned midway). Such a worker is out of step with its requests and
    /// never used again.
    in_flight: bool,
}

impl Live {
    fn start(lens: &str, policy: &ExecPolicy, op: &str) -> Result<Live, OpError> {
        let program = program().map_err(OpError::Internal)?;
        let mut argv = vec![
            program.to_string_lossy().into_owned(),
            "--augeas-worker".to_string(),
            lens.to_string(),
        ];
        // The CPU limit is each request's, as when each ran in a process of
        // its own: put on the worker, it would add up over all its requests
        // and kill it in the middle of one.
        let mut policy = policy.clone();
        if let Some(s) = policy.limits.cpu_seconds() {
            argv.extend(["--request-cpu".to_string(), s.to_string()]);
            policy.limits.cpu = None;
        }
        let spec = CommandSpec::new(argv).with_stdin(Vec::new());
        let mut process = regent_exec::spawn(&spec, &policy).map_err(|e| exec_error(op, e))?;
        let stdin = process
            .stdin
            .take()
            .ok_or_else(|| OpError::Internal(format!("{op}: the worker has no stdin")))?;
        let (Some(stdout), Some(mut stderr)) = (process.stdout.take(), process.stderr.take())
        else {
            return Err(OpError::Internal(format!("{op}: the worker has no output")));
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&kept);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut kept = tail
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                kept.extend_from_slice(&buf[..n]);
                let excess = kept.len().saturating_sub(STDERR_KEEP);
                kept.drain(..excess);
            }
        });
        tracing::debug!(op = %op, pid = process.pid(), lens, "Augeas worker started");
        Ok(Live {
            lens: lens.to_string(),
            process,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: kept,
            in_flight: false,
        })
    }

    fn stderr_tail(&self) -> String {
        let kept = self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tail(&kept, STDERR_KEEP)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        tracing::debug!(pid = self.process.pid(), "Augeas worker stopped");
    }
}

impl AugeasWorker {
    /// Run `plan` (an Augeas plan) as operation `op` in its worker, started
    /// under `policy` if none runs; `policy.timeout` (already cut to what is
    /// left of the request's) bounds the wait for the worker and the work.
    pub(crate) async fn run(
        &self,
        op: &str,
        plan: ModulePlan,
        policy: &ExecPolicy,
    ) -> Result<Value, OpError> {
        let deadline = tokio::time::Instant::from_std(Instant::now() + policy.timeout);
        let ModulePlan::Augeas { lens, file, .. } = &plan else {
            return run(op, plan, policy).await;
        };
        let lens = lens.clone();
        // Every operation on this file, this configuration's or one a reload
        // replaced, waits for the one at work: two requests that load the file
        // at once would each save their own change, the second one's undoing
        // the first's, both answering success.
        let file_lock = file_lock(file);
        let Ok(_file_turn) = tokio::time::timeout_at(deadline, file_lock.lock()).await else {
            return Err(OpError::Timeout);
        };
        // An answer line (newline included) is held within the operation's
        // `max_output`, as a one-shot module's stdout is.
        let max = policy.max_output.clamp(1, MAX_ANSWER);
        let mut line = encode(op, plan, policy)?;
        line.push(b'\n');
        let Ok(mut slot) = tokio::time::timeout_at(deadline, self.live.lock()).await else {
            return Err(OpError::Timeout);
        };
        let exchange = async {
            // A worker that died since its last answer (stopped, or its CPU
            // limit) cannot have read this request: start another and send it
            // there. One that dies after reading it fails the request.
            let mut fresh = false;
            loop {
                // Another lens (cannot happen: one worker per operation), or a
                // worker whose last request was abandoned after it was sent
                // (its answer would be taken for this one's): stopped.
                // (Its tree gone before this request begins: that request's
                // process could still be saving the file.)
                if slot.as_ref().is_some_and(|l| l.lens != lens || l.in_flight) {
                    if let Some(mut old) = slot.take() {
                        old.process.stop().await;
                    }
                }
                if slot.is_none() {
                    *slot = Some(Live::start(&lens, policy, op)?);
                    fresh = true;
                }
                let live = slot.as_mut().expect("a worker was just started");
                live.in_flight = true;
                match live.stdin.write_all(&line).await {
                    Ok(()) => break,
                    Err(e) if !fresh => {
                        tracing::debug!(op = %op, error = %e, "Augeas worker gone; starting another");
                        *slot = None;
                    }
                    Err(e) => {
                        let err = live.stderr_tail();
                        *slot = None;
                        return Err(OpError::Failed(if err.is_empty() {
                            format!("module failed: the worker did not take the request ({e})")
                        } else {
                            format!("module failed: {err}")
                        }));
                    }
                }
            }
            let live = slot.as_mut().expect("the request was sent to a worker");
            let mut answer_line = Vec::new();
            let read = (&mut live.stdout)
                .take(max as u64)
                .read_until(b'\n', &mut answer_line)
                .await;
            match read {
                Ok(_) if answer_line.last() == Some(&b'\n') => {
                    live.in_flight = false;
                    Ok(answer_line)
                }
                Ok(n) if n >= max => {
                    // The rest of the line is still to come: out of step.
                    let mut big = slot.take().expect("a worker");
                    big.process.stop().await;
                    tracing::warn!(op = %op, max, "Augeas answer larger than max_output");
                    Err(OpError::Failed(format!(
                        "module failed: the answer is larger than max_output ({max} bytes)"
                    )))
                }
                _ => {
                    // Died (or said too much): what it wrote on stderr says why.
                    let mut dead = slot.take().expect("a worker");
                    dead.process.stop().await;
                    let err = dead.stderr_tail();
                    tracing::warn!(op = %op, "Augeas worker gave no answer");
                    Err(OpError::Failed(if err.is_empty() {
                        "module failed: the worker gave no answer".to_string()
                    } else {
                        format!("module failed: the worker gave no answer: {err}")
                    }))
                }
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer_line)) => match answer(&answer_line) {
                Some(answer) => answer,
                None => {
                    // Not the worker's own line: whatever it is, the next line
                    // could be this request's answer. Never used again.
                    if let Some(mut live) = slot.take() {
                        tracing::warn!(op = %op, "Augeas worker gave something else than an answer; stopping it");
                        live.process.stop().await;
                    }
                    Err(OpError::Failed("module failed: not an answer".to_string()))
                }
            },
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // Stop the whole tree: the request's process and the worker.
                if let Some(mut live) = slot.take() {
                    tracing::info!(op = %op, pid = live.process.pid(), "Augeas request timed out; stopping its worker");
                    live.process.stop().await;
                }
                Err(OpError::Timeout)
            }
        }
    }
}

/// The lock of the declared file `file` (by its path as declared), shared by
/// every Augeas operation that declares it while one of them holds or waits
/// for it.
fn file_lock(file: &str) -> Arc<tokio::sync::Mutex<()>> {
    type Locks = HashMap<String, Weak<tokio::sync::Mutex<()>>>;
    static LOCKS: OnceLock<Mutex<Locks>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(lock) = locks.get(file).and_then(Weak::upgrade) {
        return lock;
    }
    // Those of files nobody uses now go (a reload may declare others).
    locks.retain(|_, l| l.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(file.to_string(), Arc::downgrade(&lock));
    lock
}

/// The module's answer, `None` when stdout is not one.
fn answer(stdout: &[u8]) -> Option<Result<Value, OpError>> {
    let Value::Object(mut m) = serde_json::from_slice(stdout).ok()? else {
        return None;
    };
    if let Some(ok) = m.remove("ok") {
        return Some(Ok(ok));
    }
    let err = m.remove("error")?;
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("module failed");
    Some(Err(match err.get("code").and_then(Value::as_str) {
        Some("timeout") => OpError::Timeout,
        _ => OpError::Failed(message.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_program_must_be_writable_by_no_one_else() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        // Under /tmp (sticky: allowed above the program).
        let dir = tempfile::Builder::new()
            .prefix("regent-module-trust-")
            .tempdir()
            .unwrap();
        mode(dir.path(), 0o755);
        let program = dir.path().join(MODULE_PROGRAM);
        std::fs::write(&program, b"").unwrap();
        mode(&program, 0o755);
        assert_eq!(crate::trust::check(&program), Ok(()));
        mode(&program, 0o775);
        assert!(crate::trust::check(&program)
            .unwrap_err()
            .contains("writable by its group or others"));
        mode(&program, 0o755);
        mode(dir.path(), 0o777);
        assert!(crate::trust::check(&program)
            .unwrap_err()
            .contains("writable"));
        mode(dir.path(), 0o755);
        if regent_exec::sys::geteuid() == 0 {
            std::os::unix::fs::chown(&program, Some(65534), None).unwrap();
            assert!(crate::trust::check(&program)
                .unwrap_err()
                .contains("owned by uid 65534"));
        }
    }

    #[test]
    fn answers() {
        assert!(matches!(answer(br#"{"ok": {"a": 1}}"#), Some(Ok(v)) if v["a"] == 1));
        assert!(matches!(
            answer(br#"{"error": {"code": "timeout", "message": "x"}}"#),
            Some(Err(OpError::Timeout))
        ));
        assert!(matches!(
            answer(br#"{"error": {"code": "failed", "message": "no"}}"#),
            Some(Err(OpError::Failed(m))) if m == "no"
        ));
        assert!(answer(b"garbage").is_none());
        assert!(answer(b"[1]").is_none());
    }
}
