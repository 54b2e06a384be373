//! The service's own operations, under the reserved `regent.` prefix.
//!
//! - `regent.ops`: the operations this caller may call, with descriptions and
//!   parameters. Operations the caller may not call are not listed.
//! - `regent.pending`, `regent.approve` (`{"id"}`), `regent.deny` (`{"id",
//!   "reason"?}`): the administrator channel. Open only to root and to members of
//!   the configured admin group, by kernel identity; every decision is recorded in
//!   the store and in the audit log.
//!
//! A call refused before anything was decided (an unknown `regent.*` name, a
//! caller who may not administer, bad data, an id the caller may not decide on)
//! is a refusal like any other: a flood of them is summarized per uid in the
//! audit log ([`crate::server::audit`]).

use crate::identity::Caller;
use crate::policy::decide;
use crate::server::audit::Audit;
use crate::server::pending::caller_id;
use crate::server::Shared;
use regent_proto::{ErrorCode, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decide {
    id: String,
    reason: Option<String>,
}

fn is_admin(shared: &Shared, caller: &Caller) -> bool {
    caller.uid == 0
        || shared
            .admin_group
            .as_ref()
            .is_some_and(|g| group_matches(g, caller))
}

/// May `caller` approve or deny held requests for `op`? Root always; otherwise the
/// operation's `approve` rule if it has one, else the admin group.
fn may_decide(shared: &Shared, caller: &Caller, op: &str) -> bool {
    if caller.uid == 0 {
        return true;
    }
    match shared
        .registry
        .get(op)
        .and_then(|e| e.options.approve.as_ref())
    {
        Some(rule) => decide(Some(rule), caller).is_allowed(),
        None => is_admin(shared, caller),
    }
}

/// May `caller` use the administrator channel at all?
fn may_administer(shared: &Shared, caller: &Caller) -> bool {
    is_admin(shared, caller)
        || shared.registry.iter().any(|(_, e)| {
            e.options
                .approve
                .as_ref()
                .is_some_and(|r| decide(Some(r), caller).is_allowed())
        })
}

fn admin_error(e: regent_auth::AuthError) -> Response {
    use regent_auth::AuthError as E;
    match e {
        E::RequestNotFound(_) => Response::error_with(ErrorCode::NotFound, e.to_string()),
        E::NotAwaitingApproval { .. } => {
            Response::error_with(ErrorCode::OperationFailed, e.to_string())
        }
        E::OwnRequest(_) => Response::error_with(ErrorCode::PermissionDenied, e.to_string()),
        other => {
            tracing::error!(error = %other, "administrator decision failed");
            Response::error(ErrorCode::Internal)
        }
    }
}

fn group_matches(g: &regent_config::Principal, caller: &Caller) -> bool {
    match g {
        regent_config::Principal::Id(id) => caller.in_group(*id),
        regent_config::Principal::Name(n) => caller.in_group_named(n),
    }
}

pub(crate) async fn handle(
    shared: &Shared,
    caller: &Arc<Caller>,
    op: &str,
    data: Value,
    audit: &mut Audit,
) -> Response {
    match op {
        "regent.ops" => {
            let ops: Vec<Value> = shared
                .registry
                .iter()
                .filter(|(_, e)| decide(e.options.allow.as_ref(), caller).is_allowed())
                .map(|(name, e)| {
                    let info = e.op.info();
                    json!({
                        "name": name,
                        "description": info.description,
                        "params": info.params,
                        "auth": e.options.auth,
                    })
                })
                .collect();
            Response::Done(Value::Array(ops))
        }
        "regent.pending" | "regent.approve" | "regent.deny" => {
            if !may_administer(shared, caller) {
                audit.refused();
                audit.note("not an administrator");
                return Response::error(ErrorCode::PermissionDenied);
            }
            let Some(flow) = &shared.flow else {
                return Response::error_with(
                    ErrorCode::OperationFailed,
                    "this service has no pending store",
                );
            };
            if op == "regent.pending" {
                return match flow.list_waiting() {
                    Ok(list) => {
                        let visible: Vec<_> = list
                            .into_iter()
                            .filter(|r| may_decide(shared, caller, &r.op))
                            .collect();
                        Response::Done(serde_json::to_value(visible).unwrap_or(Value::Null))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "listing pending requests");
                        Response::error(ErrorCode::Internal)
                    }
                };
            }
            let d: Decide = match crate::operation::decode(data) {
                Ok(d) => d,
                Err(e) => {
                    audit.refused();
                    return Response::error_with(ErrorCode::InvalidData, e.to_string());
                }
            };
            audit.data(&json!({"id": d.id, "reason": d.reason}));
            // The request's operation decides who may approve it. An id the caller may
            // not decide on answers like an unknown one.
            let op_of = match flow.list_waiting() {
                Ok(list) => list
                    .into_iter()
                    .find(|r| r.request_id == d.id)
                    .map(|r| r.op),
                Err(e) => {
                    tracing::error!(error = %e, "listing pending requests");
                    return Response::error(ErrorCode::Internal);
                }
            };
            match &op_of {
                Some(op_name) if may_decide(shared, caller, op_name) => {}
                Some(op_name) => {
                    audit.refused();
                    audit.note(&format!("may not decide on {op_name} requests"));
                    return Response::error(ErrorCode::PermissionDenied);
                }
                None => {
                    audit.refused();
                    return Response::error_with(
                        ErrorCode::NotFound,
                        format!("no pending request {:?}", d.id),
                    );
                }
            }
            let by = caller_id(caller);
            let result = if op == "regent.approve" {
                flow.approve(&d.id, &by, shared.allow_self_approval)
            } else {
                flow.deny(&d.id, &by, d.reason.clone())
            };
            match result {
                Ok(()) => Response::Done(
                    json!({"id": d.id, "decision": if op == "regent.approve" { "approved" } else { "denied" }}),
                ),
                Err(e) => admin_error(e),
            }
        }
        _ => {
            audit.refused();
            Response::error(ErrorCode::UnknownOperation)
        }
    }
}
