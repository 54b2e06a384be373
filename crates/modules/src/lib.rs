//! Regent's system modules: the work of `service` and `packages` operations.
//!
//! This code runs only in `regent-module`, the child process the daemon starts
//! per request under the operation's execution policy (never in the daemon):
//! [`read_request`] takes the [`ModuleRequest`] from stdin, [`run`] does the
//! work, [`write_answer`] prints one JSON object: `{"ok": ANSWER}` or
//! `{"error": {"code", "message"}}`. Other modules (Augeas) live in their own
//! crates and plug into the same three steps: `regent-module` dispatches on the
//! plan's `module`.
//!
//! - [`service`]: systemd when it is the init (`systemctl`), SysV
//!   `/etc/init.d` scripts otherwise, honouring LSB exit codes.
//! - [`packages`]: Debian's apt, non-interactive, simulated first.
//!
//! **Boundaries.** Imports `regent-model` only. Runs external tools with a
//! cleared environment, no shell, `--` before names, stdin from `/dev/null`,
//! and their output in an anonymous file (never a pipe a started daemon could
//! hold open).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use regent_model::{ModulePlan, ModuleRequest};
use serde_json::{json, Value};

pub mod packages;
pub mod service;
mod tool;

pub use tool::{Output, Tool};

/// The largest request read from stdin.
pub const MAX_REQUEST: u64 = regent_model::module::MAX_MODULE_REQUEST;

/// Why a module's work failed: the answer's `error` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleError {
    /// `failed` (the work failed), `refused` (not attempted: outside the
    /// declaration, or it would do more than asked), `timeout`.
    pub code: &'static str,
    /// What the caller reads.
    pub message: String,
}

impl ModuleError {
    /// The work failed.
    pub fn failed(message: impl Into<String>) -> Self {
        ModuleError {
            code: "failed",
            message: message.into(),
        }
    }

    /// The work was not attempted.
    pub fn refused(message: impl Into<String>) -> Self {
        ModuleError {
            code: "refused",
            message: message.into(),
        }
    }

    /// The work did not finish in time (and was stopped).
    pub fn timeout(message: impl Into<String>) -> Self {
        ModuleError {
            code: "timeout",
            message: message.into(),
        }
    }
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ModuleError {}

/// When a request's work must be over: `timeout_ms` from now, less a margin
/// (a tenth, at most 2 s) left for stopping it and answering.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// From a request's `timeout_ms`.
    #[must_use]
    pub fn from_request(timeout_ms: u64) -> Deadline {
        let total = Duration::from_millis(timeout_ms);
        let margin = (total / 10).min(Duration::from_secs(2));
        Deadline(Instant::now() + total.saturating_sub(margin))
    }

    /// Time left (zero when past).
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// The instant.
    #[must_use]
    pub fn at(&self) -> Instant {
        self.0
    }
}

/// Read the request from `input` (at most [`MAX_REQUEST`] bytes), its plan's
/// names checked again.
pub fn read_request(input: impl Read) -> Result<ModuleRequest, ModuleError> {
    let mut text = Vec::new();
    input
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut text)
        .map_err(|e| ModuleError::failed(format!("reading the request: {e}")))?;
    if text.len() as u64 > MAX_REQUEST {
        return Err(ModuleError::refused("the request is too large"));
    }
    let request: ModuleRequest = serde_json::from_slice(&text)
        .map_err(|e| ModuleError::refused(format!("not a module request: {e}")))?;
    request.plan.check().map_err(ModuleError::refused)?;
    Ok(request)
}

/// Carry out a `service` or `packages` request; `None` for another module's.
pub fn run(request: &ModuleRequest) -> Option<Result<Value, ModuleError>> {
    let deadline = Deadline::from_request(request.timeout_ms);
    Some(match &request.plan {
        ModulePlan::Service {
            unit,
            action,
            backend,
        } => service::run(unit, *action, *backend, deadline),
        ModulePlan::Packages {
            action,
            names,
            allowed,
        } => packages::run(*action, names, allowed.as_deref(), deadline),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Print the answer to `out` as one JSON object and a newline; the exit status
/// `regent-module` should end with (0: ok, 1: error).
pub fn write_answer(mut out: impl Write, answer: Result<Value, ModuleError>) -> u8 {
    let (value, status) = match answer {
        Ok(v) => (json!({ "ok": v }), 0),
        Err(e) => (
            json!({ "error": { "code": e.code, "message": e.message } }),
            1,
        ),
    };
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_any_work() {
        let refused = |text: &[u8]| read_request(text).map(|_| ()).unwrap_err().code;
        assert_eq!(refused(b"not json"), "refused");
        assert_eq!(
            refused(br#"{"timeout_ms":1,"plan":{"module":"service","unit":"x","action":"start","extra":1}}"#),
            "refused"
        );
        assert_eq!(
            refused(br#"{"timeout_ms":1,"plan":{"module":"service","unit":"../../bin/sh","action":"start"}}"#),
            "refused"
        );
        assert_eq!(
            refused(br#"{"timeout_ms":1,"plan":{"module":"packages","action":"install","names":["-oAPT::x"],"allowed":null}}"#),
            "refused"
        );
        assert_eq!(
            refused(br#"{"timeout_ms":1,"plan":{"module":"shell","command":"id"}}"#),
            "refused"
        );
        let big = vec![b' '; usize::try_from(MAX_REQUEST).unwrap() + 1];
        assert_eq!(refused(&big), "refused");
        let ok = read_request(
            &br#"{"timeout_ms":1,"plan":{"module":"service","unit":"nginx","action":"status"}}"#[..],
        )
        .unwrap();
        assert_eq!(ok.plan.module(), "service");
    }

    #[test]
    fn answers_are_one_json_object() {
        let mut out = Vec::new();
        assert_eq!(write_answer(&mut out, Ok(json!({"a": 1}))), 0);
        assert_eq!(out, b"{\"ok\":{\"a\":1}}\n");
        let mut out = Vec::new();
        assert_eq!(write_answer(&mut out, Err(ModuleError::timeout("slow"))), 1);
        assert_eq!(
            out,
            b"{\"error\":{\"code\":\"timeout\",\"message\":\"slow\"}}\n"
        );
    }
}
