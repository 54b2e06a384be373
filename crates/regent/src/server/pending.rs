//! Holding requests for out-of-channel authorization, and resuming them.
//!
//! The engine is [`regent_auth::AuthFlow`] (SQLite store, methods, uids, attempts,
//! expiry). This module connects it to the pipeline: a held request is exactly the
//! validated operation and data, bound to the kernel uid that made it; when its last
//! stage passes, the stored data runs — never data sent later — and only if the
//! caller is still allowed by the operation's policy.

use super::audit::Audit;
use super::Shared;
use crate::identity::Caller;
use crate::operation::{Authorization, Checked};
use crate::policy::{decide, Decision};
use crate::registry::{Entry, Registry};
use regent_auth::{CallerId, FlowOutcome, HookDecision, StageHook, StageReport, StartRequest};
use regent_proto::{ErrorCode, Response};
use serde_json::Value;
use std::sync::Arc;

/// The flow's view of a caller.
pub(crate) fn caller_id(caller: &Caller) -> CallerId {
    CallerId {
        uid: caller.uid,
        gid: caller.gid,
        pid: caller.pid,
        user: caller.user.clone(),
    }
}

/// Lets a Rust operation react after each stage (`Operation::after_stage`).
struct OpHook<'a> {
    registry: &'a Registry,
    caller: &'a Caller,
}

impl StageHook for OpHook<'_> {
    fn after_stage(&self, report: &StageReport<'_>) -> HookDecision {
        let Some(entry) = self.registry.get(report.op) else {
            return HookDecision::Deny(None);
        };
        match entry
            .op
            .after_stage(self.caller, report.data, report.stage, report.remaining)
        {
            Authorization::Allow => HookDecision::ReplaceRemainingStages(Vec::new()),
            Authorization::Deny(why) => {
                tracing::info!(
                    op = report.op,
                    request = report.request_id,
                    why,
                    "operation denied after a stage"
                );
                HookDecision::Deny(None)
            }
            Authorization::Require(stages) if stages == report.remaining => HookDecision::Continue,
            Authorization::Require(stages) => HookDecision::ReplaceRemainingStages(stages),
        }
    }
}

impl Shared {
    pub(crate) async fn hold(
        &self,
        caller: &Arc<Caller>,
        op: &str,
        entry: &Entry,
        checked: Checked,
        stages: Vec<String>,
        audit: &mut Audit,
    ) -> Response {
        let Some(flow) = &self.flow else {
            tracing::error!(
                op,
                ?stages,
                "operation requires out-of-channel stages but the service has no pending store"
            );
            return Response::error(ErrorCode::Internal);
        };
        audit.note(&format!("held for {}", stages.join(" then ")));
        let request = StartRequest {
            op: op.to_string(),
            data: checked.data,
            display_data: checked.redacted,
            caller: caller_id(caller),
            stages,
            ttl: entry.options.pending_ttl,
            max_attempts: entry.options.max_attempts,
            approvers: entry.options.approvers.clone(),
        };
        match flow.start(request).await {
            FlowOutcome::Run { op, data, .. } => {
                self.execute(caller, &op, entry, data, false).await
            }
            other => other
                .to_response()
                .unwrap_or_else(|| Response::error(ErrorCode::Internal)),
        }
    }

    pub(crate) async fn continue_request(
        &self,
        caller: &Arc<Caller>,
        uid: &str,
        data: Value,
        audit: &mut Audit,
    ) -> Response {
        let Some(flow) = &self.flow else {
            self.limiter.record_failure(&caller.uid);
            return Response::error(ErrorCode::NotFound);
        };
        let hook = OpHook {
            registry: &self.registry,
            caller,
        };
        let outcome = flow
            .resume(uid, &caller_id(caller), &data, Some(&hook))
            .await;
        if outcome.is_failure() {
            self.limiter.record_failure(&caller.uid);
        }
        match outcome {
            FlowOutcome::Run {
                op,
                data,
                request_id,
            } => {
                audit.op(&op);
                audit.note(&format!("request {request_id} authorized"));
                let Some(entry) = self.registry.get(&op) else {
                    tracing::error!(op, request_id, "held operation no longer exists");
                    return Response::error(ErrorCode::OperationFailed);
                };
                if let Decision::Deny(why) = decide(entry.options.allow.as_ref(), caller) {
                    audit.note(&why);
                    return Response::error(ErrorCode::PermissionDenied);
                }
                self.execute(caller, &op, entry, data, true).await
            }
            other => other
                .to_response()
                .unwrap_or_else(|| Response::error(ErrorCode::Internal)),
        }
    }
}
