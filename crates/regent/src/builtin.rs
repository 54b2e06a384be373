//! The service's own operations, under the reserved `regent.` prefix.
//!
//! - `regent.ops`: the operations this caller may call on this socket, with
//!   descriptions and parameters. Operations the caller may not call, or that
//!   the socket does not offer ([`crate::server::sockets`]), are not listed.
//! - `regent.pending` (`{"limit"?}`), `regent.approve` (`{"id"}`), `regent.deny`
//!   (`{"id", "reason"?}`): the administrator channel. Open only to root and to
//!   members of the configured admin group (or an operation's `approve` rule), by
//!   kernel identity, as [`crate::policy::may_decide`] says; every decision is
//!   recorded in the store and in the audit log. `regent.pending` answers
//!   `{"requests": [...], "more": N}`: the newest requests the caller may decide on ([`DEFAULT_PAGE`] unless `limit` says, at
//!   most [`MAX_PAGE`]) and how many more wait. Every store call runs on the
//!   blocking pool, and requests are found by their key, never by a scan. An id
//!   the caller may not decide on answers `not_found`, like an unknown one.
//!
//! - `regent.status`: the service's version, uptime, connections (open and the
//!   limit), held requests, audit refusals counted but not yet summarized, and
//!   the features it offers (plus what the embedding program adds, e.g. the
//!   daemon's log queue). Root and `admin_group` only
//!   ([`crate::policy::may_read_status`]).
//!
//! A call refused before anything was decided (an unknown `regent.*` name, a
//! caller who may not administer, bad data, an id the caller may not decide on)
//! is a refusal like any other: a flood of them is summarized per uid in the
//! audit log ([`crate::server::audit`]).

use crate::identity::Caller;
use crate::policy::{
    may_call, may_decide, may_read_status, AdminAction, AdminDecision, HeldRequest,
};
use crate::registry::Entry;
use crate::server::audit::Audit;
use crate::server::{Exposure, Shared};
use regent_model::CallerKey;
use regent_proto::{ErrorCode, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Requests `regent.pending` returns when not told (`{"limit": N}`).
pub const DEFAULT_PAGE: usize = 50;
/// The most it returns at once.
pub const MAX_PAGE: usize = 1000;

/// `regent.pending`'s data: `null` or `{"limit": N}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decide {
    id: String,
    reason: Option<String>,
}

/// `regent.status`'s data: `null` or `{}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {}

/// What `regent.status` answers.
async fn status(shared: &Shared) -> serde_json::Map<String, Value> {
    use std::sync::atomic::Ordering;
    let limit = shared.limits.max_connections;
    let open = limit.saturating_sub(shared.slots.available_permits());
    let held = match &shared.flow {
        None => Value::Null,
        Some(flow) => match flow.list_page(None, 1).await {
            Ok(page) => json!(page.requests.len() as u64 + page.more),
            Err(e) => {
                tracing::warn!(error = %e, "counting held requests for regent.status");
                Value::Null
            }
        },
    };
    let mut features = vec!["unix"];
    if shared.secret.is_some() {
        features.push("secret");
    }
    if let Some(flow) = &shared.flow {
        features.push("pending");
        for method in ["totp", "email", "approval"] {
            if flow.methods().get(method).is_some() {
                features.push(method);
            }
        }
    }
    if shared.activated.load(Ordering::Relaxed) {
        features.push("socket-activation");
    }
    if crate::notify::watchdog_interval().is_some() {
        features.push("watchdog");
    }
    let mut out = serde_json::Map::new();
    out.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    out.insert(
        "uptime_seconds".into(),
        json!(shared.started.elapsed().as_secs()),
    );
    out.insert("connections".into(), json!({"open": open, "limit": limit}));
    out.insert("operations".into(), json!(shared.registry.len()));
    out.insert("held_requests".into(), held);
    out.insert(
        "audit".into(),
        json!({"refusals_counted": shared.refusals.counted()}),
    );
    out.insert("features".into(), json!(features));
    if let Some(extra) = &shared.status_extra {
        for (k, v) in extra() {
            out.entry(k).or_insert(v);
        }
    }
    out
}

/// A held request of the operation `entry` (if it still exists) made by `by`,
/// as [`may_decide`] weighs it.
fn held(entry: Option<&Entry>, by: Option<CallerKey>, action: AdminAction) -> HeldRequest<'_> {
    HeldRequest {
        approve: entry.and_then(|e| e.options.approve.as_ref()),
        requested_by: by,
        action,
    }
}

/// May `caller` use the administrator channel at all: see the held requests of
/// some operation, or those of one without an `approve` rule?
fn may_administer(shared: &Shared, caller: &Caller) -> bool {
    let admins = shared.admins();
    std::iter::once(None)
        .chain(shared.registry.iter().map(|(_, e)| Some(e)))
        .any(|e| may_decide(caller, &admins, &held(e, None, AdminAction::See)).is_allowed())
}

/// The answer for an id that is unknown, expired, decided, or that the caller
/// may not decide on: one answer for all, so that it tells nothing. The id is
/// echoed quoted (control characters escaped) and cut to 64 characters.
fn not_found(id: &str) -> Response {
    let shown: String = id.chars().take(64).collect();
    Response::error_with(
        ErrorCode::NotFound,
        regent_auth::AuthError::RequestNotFound(shown).to_string(),
    )
}

fn admin_error(e: regent_auth::AuthError) -> Response {
    use regent_auth::AuthError as E;
    match e {
        E::RequestNotFound(id) => not_found(&id),
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

pub(crate) async fn handle(
    shared: &Shared,
    caller: &Arc<Caller>,
    exposure: &Exposure,
    op: &str,
    data: Value,
    audit: &mut Audit,
) -> Response {
    match op {
        "regent.ops" => {
            let ops: Vec<Value> = shared
                .registry
                .iter()
                .filter(|(name, e)| {
                    exposure.offers(name) && may_call(caller, e.options.allow.as_ref()).is_allowed()
                })
                .map(|(name, e)| {
                    let info = e.op.info();
                    let mut op = json!({
                        "name": name,
                        "description": info.description,
                        "params": info.params,
                        "auth": e.options.auth,
                    });
                    if e.op.dry_run() && e.options.auth.is_empty() {
                        // The request key `dry_run` is sent only to an operation
                        // that lists it here (see PROTOCOL.md); one held for
                        // authorization has none (its approver sees the change).
                        op["dry_run"] = Value::Bool(true);
                    }
                    op
                })
                .collect();
            Response::Done(Value::Array(ops))
        }
        "regent.status" => {
            if let AdminDecision::NotEntitled(why) = may_read_status(caller, &shared.admins()) {
                audit.refused();
                audit.note(&why);
                return Response::error(ErrorCode::PermissionDenied);
            }
            if let Err(e) = crate::operation::decode::<StatusQuery>(data) {
                audit.refused();
                return Response::error_with(ErrorCode::InvalidData, e.to_string());
            }
            Response::Done(Value::Object(status(shared).await))
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
                let q: PageQuery = match crate::operation::decode(data) {
                    Ok(q) => q,
                    Err(e) => return Response::error_with(ErrorCode::InvalidData, e.to_string()),
                };
                let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
                // Only the operations this caller may decide on, filtered in the
                // store so that the page and the count are of what they see.
                let admins = shared.admins();
                let ops = (caller.uid != 0).then(|| {
                    shared
                        .registry
                        .iter()
                        .filter(|(_, e)| {
                            may_decide(caller, &admins, &held(Some(e), None, AdminAction::See))
                                .is_allowed()
                        })
                        .map(|(name, _)| name.to_string())
                        .collect::<Vec<_>>()
                });
                return match flow.list_page(ops, limit).await {
                    Ok(page) => Response::Done(serde_json::to_value(page).unwrap_or(Value::Null)),
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
            // The request's operation and who made it decide who may approve it
            // (found by its key, off the event loop). An id the caller may not
            // decide on answers exactly like an unknown one.
            let owner = match flow.request_owner(&d.id).await {
                Ok(owner) => owner,
                Err(e) => {
                    tracing::error!(error = %e, "looking up a pending request");
                    return Response::error(ErrorCode::Internal);
                }
            };
            let Some((op_name, requester)) = owner else {
                audit.refused();
                return not_found(&d.id);
            };
            let action = if op == "regent.approve" {
                AdminAction::Approve
            } else {
                AdminAction::Deny
            };
            let request = held(shared.registry.get(&op_name), Some(requester.key()), action);
            match may_decide(caller, &shared.admins(), &request) {
                AdminDecision::Allow => {}
                AdminDecision::NotEntitled(_) => {
                    audit.refused();
                    audit.note(&format!("may not decide on {op_name} requests"));
                    return not_found(&d.id);
                }
                AdminDecision::OwnRequest(why) => {
                    audit.note(&why);
                    return admin_error(regent_auth::AuthError::OwnRequest(d.id));
                }
            }
            let by: &Caller = caller;
            let result = if op == "regent.approve" {
                flow.approve(&d.id, by, shared.allow_self_approval).await
            } else {
                flow.deny(&d.id, by, d.reason.clone()).await
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
