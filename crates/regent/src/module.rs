//! Module operations (`service = {...}`, `packages = {...}`): where their work
//! runs.
//!
//! Never in the daemon's process: each request runs the daemon's own binary as
//! `regent module` ([`program`], resolved once from `/proc/self/exe`) through
//! [`regent_exec::run`], under the operation's execution policy (capabilities,
//! `run_as`, sandbox, limits, timeout and tree kill, as a command's), with the
//! [`ModuleRequest`] as one JSON object on stdin. It answers one JSON object on
//! stdout: `{"ok": ANSWER}`, or `{"error": {"code", "message"}}` (`timeout`
//! answers `timeout`, anything else `operation_failed` with the message). A
//! crash, a hang or a misbehaving tool fails that one request.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regent_exec::{CommandSpec, ExecPolicy};
use regent_model::{ModulePlan, ModuleRequest};
use serde_json::Value;

use crate::command::{exec_error, tail};
use crate::operation::OpError;

static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The binary module work runs in: set by [`set_program`], else this
/// process's own executable (`/proc/self/exe`), resolved on the first call
/// (the daemon makes it when it builds its operations, at start-up) and kept:
/// a binary replaced on disk later (an upgrade) is found at the same path.
pub fn program() -> Result<&'static Path, String> {
    PROGRAM
        .get_or_init(|| {
            std::env::current_exe().map_err(|e| format!("finding the service's own binary: {e}"))
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// Name the `regent` binary module work runs in (for a program embedding the
/// service); `false` when it was fixed already.
pub fn set_program(path: PathBuf) -> bool {
    PROGRAM.set(Ok(path)).is_ok()
}

/// Run `plan` as operation `op` under `policy` (its timeout already cut to what
/// is left of the request's).
pub(crate) async fn run(op: &str, plan: ModulePlan, policy: &ExecPolicy) -> Result<Value, OpError> {
    let program = program().map_err(OpError::Internal)?;
    let request = ModuleRequest {
        timeout_ms: u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX),
        plan,
    };
    let input = serde_json::to_vec(&request)
        .map_err(|e| OpError::Internal(format!("{op}: encoding the module plan: {e}")))?;
    let argv = [program.to_string_lossy().into_owned(), "module".to_string()];
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
