//! Operations declared in TOML: a validated command template, run without a shell.
//!
//! The request's data is validated against the declared parameters
//! ([`regent_config::validate_data`]); each placeholder fills one whole argv element;
//! `{caller.*}` comes from the kernel identity. A `path` parameter is never passed
//! by name: the command's own process opens it after its confinement, beneath
//! `under` with no symlink on the way, and the argv element becomes
//! `/proc/self/fd/N` (see [`regent_exec::PathArg`]). The command runs through
//! [`regent_exec::run`]: cleared environment, configured PATH, stdin from /dev/null (or a
//! secret parameter), output captured up to a limit, the operation's execution
//! policy (user, capabilities, sandbox, limits), and a timeout that stops the whole
//! process tree.

use crate::operation::{
    Authorization, BoxResult, Checked, Context, DynOperation, InvalidData, OpError, OpInfo,
};
use crate::Caller;
use regent_config::{OperationDecl, OutputMode, ParamKind, Params, PathAccess, Placeholder};
use regent_exec::{CommandSpec, ExecError, ExecPolicy, FileAccess, PathArg};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// How much of stderr a failure message carries.
const STDERR_TAIL: usize = 2048;

/// A command operation built from its declaration and resolved execution policy.
pub struct CommandOperation {
    name: String,
    decl: OperationDecl,
    policy: ExecPolicy,
    /// An Augeas operation's worker (started at its first request).
    worker: crate::module::AugeasWorker,
}

impl CommandOperation {
    /// Build from a declaration and an execution policy resolved at start-up.
    pub fn new(name: &str, decl: OperationDecl, policy: ExecPolicy) -> Self {
        CommandOperation {
            name: name.to_string(),
            decl,
            policy,
            worker: crate::module::AugeasWorker::default(),
        }
    }

    /// The declaration.
    pub fn decl(&self) -> &OperationDecl {
        &self.decl
    }

    /// The execution policy.
    pub fn policy(&self) -> &ExecPolicy {
        &self.policy
    }
}

fn invalid(e: regent_config::FieldError) -> InvalidData {
    InvalidData::new(e.field.clone(), e.reason.clone())
}

/// The descriptors a run gets: one per path parameter present and used in the
/// command (secret ones are never in argv), by parameter name.
fn path_args(decl: &OperationDecl, params: &Params) -> Result<Vec<PathArg>, InvalidData> {
    let used: Vec<&str> = decl
        .command
        .placeholders()
        .filter_map(|p| match p {
            Placeholder::Param(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (name, spec) in &decl.params {
        let ParamKind::Path {
            under,
            must_exist,
            access,
        } = &spec.kind
        else {
            continue;
        };
        let Some(value) = params.get(name) else {
            continue;
        };
        if spec.secret || !used.contains(&name.as_str()) {
            continue;
        }
        let beneath = under
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("/"));
        // Validation normalised the path and checked `under` lexically.
        let path = Path::new(value.as_str())
            .strip_prefix(&beneath)
            .map_err(|_| {
                InvalidData::new(
                    name.clone(),
                    regent_config::not_found_message(under.as_deref()),
                )
            })?
            .to_path_buf();
        let access = match (access, must_exist) {
            (PathAccess::Read, _) => FileAccess::Read,
            (PathAccess::Write, _) | (PathAccess::Create, true) => FileAccess::Write,
            (PathAccess::Create, false) => FileAccess::Create,
        };
        out.push(PathArg {
            field: name.clone(),
            beneath,
            path,
            access,
        });
    }
    Ok(out)
}

/// The answer for a run that did not complete (anything but a refused path).
pub(crate) fn exec_error(op: &str, e: ExecError) -> OpError {
    match e {
        ExecError::Timeout { .. } => OpError::Timeout,
        ExecError::NotFound { program } => OpError::failed(format!("command not found: {program}")),
        ExecError::Unsupported { feature } => {
            tracing::error!(op = %op, %feature, "refusing to run without a sandbox feature");
            OpError::failed(format!("refused: the kernel lacks {feature}"))
        }
        e => OpError::Internal(format!("{op}: {e}")),
    }
}

pub(crate) fn tail(bytes: &[u8], n: usize) -> String {
    let start = bytes.len().saturating_sub(n);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

impl DynOperation for CommandOperation {
    fn info(&self) -> OpInfo {
        let d = self.decl.describe();
        OpInfo {
            description: self.decl.description.clone(),
            params: d["params"].clone(),
        }
    }

    fn check(&self, data: Value) -> Result<Checked, InvalidData> {
        let params = regent_config::validate_data(&self.decl, &data).map_err(invalid)?;
        Ok(Checked {
            data: params.to_json(),
            redacted: params.redacted(),
        })
    }

    fn authorize(&self, _caller: &Caller, _data: &Value) -> Authorization {
        Authorization::Allow
    }

    fn after_stage(
        &self,
        _caller: &Caller,
        _data: &Value,
        _stage: &regent_model::Stage,
        remaining: &regent_model::Stages,
    ) -> Authorization {
        Authorization::continue_with(remaining)
    }

    fn dry_run(&self) -> bool {
        self.decl.module.as_ref().is_some_and(|m| m.dry_run())
    }

    fn perform(self: Arc<Self>, ctx: Context, data: Value) -> BoxResult {
        Box::pin(async move {
            // Data was checked when the request arrived (possibly long ago, if it
            // was held): check again. Paths are not resolved here (that could be
            // raced): the command's process opens them, confined.
            let params = regent_config::validate_data(&self.decl, &data)
                .map_err(|e| OpError::Invalid(invalid(e)))?;
            let mut policy = self.policy.clone();
            let remaining = ctx
                .deadline
                .saturating_duration_since(std::time::Instant::now());
            policy.timeout = policy
                .timeout
                .min(remaining.max(std::time::Duration::from_millis(1)));
            if let Some(plan) = regent_config::module_plan(&self.decl, &params) {
                let mut plan = plan.map_err(|e| OpError::Invalid(invalid(e)))?;
                if let regent_model::ModulePlan::Augeas {
                    dry_run,
                    expect_hash,
                    ..
                } = &mut plan
                {
                    *dry_run = ctx.dry_run;
                    // Held: save only the file its approvers saw the diff of.
                    *expect_hash = ctx
                        .preview
                        .as_ref()
                        .and_then(|p| p.get("hash"))
                        .and_then(Value::as_str)
                        .map(String::from);
                    return self.worker.run(&self.name, plan, &policy).await;
                }
                return crate::module::run(&self.name, plan, &policy).await;
            }
            let paths = path_args(&self.decl, &params).map_err(OpError::Invalid)?;
            let argv = self.decl.command.render_with(&params, &ctx.caller, |name| {
                paths
                    .iter()
                    .position(|p| p.field == name)
                    .map(PathArg::placeholder)
            });
            let mut spec = CommandSpec::new(argv);
            spec.paths = paths;
            if let Some(name) = &self.decl.stdin {
                if let Some(value) = params.get(name) {
                    let mut bytes = value.as_str().as_bytes().to_vec();
                    bytes.push(b'\n');
                    spec = spec.with_stdin(bytes);
                }
            }
            let out = match regent_exec::run(&spec, &policy).await {
                Ok(out) => out,
                Err(ExecError::Path { field, refusal }) => {
                    // One answer for missing, escaping, symlinked or forbidden: the
                    // caller learns nothing about files it cannot see. The log says why.
                    tracing::info!(op = %self.name, %field, %refusal, "path parameter refused");
                    let under = match self.decl.params.get(&field).map(|s| &s.kind) {
                        Some(ParamKind::Path { under, .. }) => under.clone(),
                        _ => None,
                    };
                    return Err(OpError::Invalid(InvalidData::new(
                        field,
                        regent_config::not_found_message(under.as_deref()),
                    )));
                }
                Err(e) => return Err(exec_error(&self.name, e)),
            };
            if !out.success() {
                let status = match (out.code, out.signal) {
                    (Some(c), _) => format!("exit status {c}"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    _ => "failed".to_string(),
                };
                let err = tail(&out.stderr, STDERR_TAIL);
                let msg = if err.is_empty() {
                    format!("command failed ({status})")
                } else {
                    format!("command failed ({status}): {err}")
                };
                return Err(OpError::Failed(msg));
            }
            Ok(match self.decl.output {
                OutputMode::Text => {
                    Value::String(String::from_utf8_lossy(&out.stdout).trim().to_string())
                }
                OutputMode::Json => serde_json::from_slice(&out.stdout)
                    .map_err(|e| OpError::failed(format!("command output is not JSON: {e}")))?,
                OutputMode::Full => json!({
                    "stdout": String::from_utf8_lossy(&out.stdout),
                    "stderr": String::from_utf8_lossy(&out.stderr),
                    "status": out.code,
                    "truncated": out.stdout_truncated || out.stderr_truncated,
                }),
            })
        })
    }
}
