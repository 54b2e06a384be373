//! One request, start to finish: this is where a request is authenticated,
//! authorized and executed.
//!
//! 1. **parse** the line (`bad_request`);
//! 2. **rate limit**: a caller with too many recent failures gets `rate_limited`
//!    at once; one that keeps asking during its lockout is paced, its answers held
//!    on its own connection for up to [`Limits::rate_limit_hold`](super::Limits);
//!    nobody else ever waits;
//! 3. **authenticate**: the socket secret, in constant time (`permission_denied`);
//! 4. **resolve** the operation (`unknown_operation`) — reserved `regent.*` names
//!    are the service's own ([`crate::builtin`]); one the socket does not offer
//!    ([`super::sockets`]) is answered as one that does not exist;
//! 5. **authorize** the caller by the operation's `allow` rule
//!    ([`crate::policy::may_call`], `permission_denied`), before its
//!    data is looked at;
//! 6. **validate** the data (`invalid_data`);
//! 7. **verdict**: one [`crate::policy::evaluate`] of the caller, the
//!    operation's rule and what the operation said of the data: deny
//!    (`permission_denied`), hold for out-of-channel stages (pending), or run;
//! 8. **execute** within the operation's concurrency and time limits.
//!
//! Every request leaves exactly one audit record.

use super::audit::Audit;
use super::{Exposure, Shared};
use crate::identity::Caller;
use crate::operation::Context;
use crate::policy::{evaluate, may_call, Decision, Standing};
use crate::registry::{Entry, RESERVED_PREFIX};
use regent_model::Verdict;
use regent_proto::{ErrorCode, Request, Response};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

impl Shared {
    /// Answer one request line from `caller` on a socket offering everything.
    #[cfg(test)]
    pub(crate) async fn handle(&self, caller: &Arc<Caller>, line: &[u8]) -> Response {
        self.handle_on(caller, &Exposure::everything(), line).await
    }

    /// Answer one request line from `caller` on a socket offering `exposure`.
    pub(crate) async fn handle_on(
        &self,
        caller: &Arc<Caller>,
        exposure: &Exposure,
        line: &[u8],
    ) -> Response {
        let mut audit = Audit::start(caller);
        let response = self.process(caller, exposure, line, &mut audit).await;
        audit.finish(&response, &self.refusals);
        response
    }

    async fn process(
        &self,
        caller: &Arc<Caller>,
        exposure: &Exposure,
        line: &[u8],
        audit: &mut Audit,
    ) -> Response {
        let request = match Request::parse(line) {
            Ok(r) => r,
            Err(e) => {
                audit.refused();
                return Response::error_with(ErrorCode::BadRequest, e.to_string());
            }
        };

        if let Err(limited) = self.limiter.check(&caller.key()) {
            audit.refused();
            // The first answer of a lockout goes out at once. A caller that asks
            // again while told to wait is flooding: its answer is held on its own
            // connection (never a shared path; connections per uid are capped),
            // which keeps the flood from taking everyone else's CPU.
            let hold = if limited.repeated {
                limited.wait.min(self.limits.rate_limit_hold)
            } else {
                std::time::Duration::ZERO
            };
            if !hold.is_zero() {
                tokio::time::sleep(hold).await;
            }
            return Response::error(ErrorCode::RateLimited);
        }

        if let Some(secret) = &self.secret {
            if !secret.verify(request.secret().map(|s| s.expose())) {
                self.limiter.record_failure(&caller.key());
                audit.refused();
                audit.note("wrong or missing secret");
                return Response::error(ErrorCode::PermissionDenied);
            }
        }

        match request {
            Request::New {
                op, data, dry_run, ..
            } => {
                audit.op(&op);
                // Not offered on this socket: the same answer as no such
                // operation, so that nothing tells it exists elsewhere.
                if !exposure.offers(&op) {
                    audit.refused();
                    return Response::error(ErrorCode::UnknownOperation);
                }
                if op.starts_with(RESERVED_PREFIX) {
                    if dry_run {
                        audit.refused();
                        return no_dry_run(&op, "it is the service's own");
                    }
                    return crate::builtin::handle(self, caller, exposure, &op, data, audit).await;
                }
                let Some(entry) = self.registry.get(&op) else {
                    audit.refused();
                    return Response::error(ErrorCode::UnknownOperation);
                };
                self.new_request(caller, &op, entry, data, dry_run, audit)
                    .await
            }
            Request::Continue { uid, data, .. } => {
                audit.op("(continue)");
                // Boxed, as is `hold` below: the out-of-channel paths are large
                // futures, and inline they would make every connection's task,
                // moved on each spawn, that much bigger.
                Box::pin(self.continue_request(caller, exposure, &uid, data, audit)).await
            }
        }
    }

    async fn new_request(
        &self,
        caller: &Arc<Caller>,
        op: &str,
        entry: &Entry,
        data: Value,
        dry_run: bool,
        audit: &mut Audit,
    ) -> Response {
        if let Decision::Deny(why) = may_call(caller, entry.options.allow.as_ref()) {
            audit.refused();
            audit.note(&why);
            return Response::error(ErrorCode::PermissionDenied);
        }
        if dry_run {
            audit.note("dry run");
            if !entry.op.dry_run() {
                audit.refused();
                return no_dry_run(op, "it does not offer one");
            }
        }
        let checked = match entry.op.check(data) {
            Ok(c) => c,
            Err(invalid) => {
                audit.refused();
                return Response::error_with(ErrorCode::InvalidData, invalid.to_string());
            }
        };
        audit.data(&checked.redacted);

        let said = entry.op.authorize(caller, &checked.data);
        match evaluate(caller, &entry.options.rule(), Standing::New(&said)) {
            Verdict::Run => {}
            Verdict::Deny(why) => {
                audit.refused();
                audit.note(&why);
                return Response::error(ErrorCode::PermissionDenied);
            }
            Verdict::Hold(_) if dry_run => {
                audit.refused();
                return no_dry_run(op, "it is held for authorization");
            }
            Verdict::Hold(stages) => {
                return Box::pin(self.hold(caller, op, entry, checked, stages, audit)).await;
            }
        }
        let mut refused = false;
        let response = self
            .execute_gated(
                caller,
                op,
                entry,
                checked.data,
                RunMode {
                    wait_for_slot: false,
                    dry_run,
                    preview: None,
                },
                &mut refused,
            )
            .await;
        if refused {
            audit.refused();
        }
        response
    }

    /// Run an operation on checked data within its limits.
    ///
    /// A new request finding the operation at its concurrency limit, or the
    /// service at its limit of runs at once ([`Limits::max_runs`](super::Limits)),
    /// is answered `busy`. An authorized held request (`wait_for_slot`) has been
    /// consumed by its last stage, so it waits for a slot instead, within the
    /// operation's time limit, rather than being lost.
    pub(crate) async fn execute(
        &self,
        caller: &Arc<Caller>,
        op: &str,
        entry: &Entry,
        data: Value,
        wait_for_slot: bool,
        preview: Option<Value>,
    ) -> Response {
        let mut refused = false;
        let mode = RunMode {
            wait_for_slot,
            dry_run: false,
            preview,
        };
        self.execute_gated(caller, op, entry, data, mode, &mut refused)
            .await
    }

    /// A dry run of a request about to be held (the operation offers dry
    /// runs): what the approvers will approve. Within the operation's limits,
    /// like a run.
    pub(crate) async fn preview(
        &self,
        caller: &Arc<Caller>,
        op: &str,
        entry: &Entry,
        data: Value,
    ) -> Response {
        let mut refused = false;
        let mode = RunMode {
            wait_for_slot: false,
            dry_run: true,
            preview: None,
        };
        self.execute_gated(caller, op, entry, data, mode, &mut refused)
            .await
    }

    /// [`Shared::execute`] (or a dry run of it), telling through `refused` whether the answer is a
    /// `busy` given before the operation ran.
    async fn execute_gated(
        &self,
        caller: &Arc<Caller>,
        op: &str,
        entry: &Entry,
        data: Value,
        mode: RunMode,
        refused: &mut bool,
    ) -> Response {
        let RunMode {
            wait_for_slot,
            dry_run,
            preview,
        } = mode;
        let timeout = entry.options.timeout;
        // Only a held request waits for slots (the clock is read for it alone).
        let waiting_until = wait_for_slot.then(|| tokio::time::Instant::now() + timeout);
        let until = || waiting_until.unwrap_or_else(tokio::time::Instant::now);
        let _permit = match &entry.gate {
            Some(gate) if wait_for_slot => {
                match tokio::time::timeout_at(until(), gate.clone().acquire_owned()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => return Response::error(ErrorCode::Busy),
                }
            }
            Some(gate) => match gate.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    *refused = true;
                    return Response::error(ErrorCode::Busy);
                }
            },
            None => None,
        };
        // The service-wide bound on runs at once (a borrowed permit: no allocation).
        let _run = if wait_for_slot {
            match tokio::time::timeout_at(until(), self.runs.acquire()).await {
                Ok(Ok(p)) => p,
                _ => return Response::error(ErrorCode::Busy),
            }
        } else {
            match self.runs.try_acquire() {
                Ok(p) => p,
                Err(_) => {
                    *refused = true;
                    tracing::debug!(op, "service at max_runs: busy");
                    return Response::error(ErrorCode::Busy);
                }
            }
        };
        let ctx = Context {
            caller: caller.clone(),
            op: op.to_string(),
            deadline: Instant::now() + timeout,
            dry_run,
            preview,
        };
        // Most operations answer on their first poll; only one that has to wait
        // gets a timer for its time limit (arming a timer costs more than a no-op).
        let mut fut = std::pin::pin!(entry.op.clone().perform(ctx, data));
        let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        let result = match first {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => tokio::time::timeout(timeout, fut).await,
        };
        match result {
            Ok(Ok(value)) => Response::Done(value),
            Ok(Err(e)) => {
                if let crate::operation::OpError::Internal(detail) = &e {
                    tracing::error!(op, detail = %detail, "operation fault");
                }
                Response::error_with(e.code(), e.client_message())
            }
            Err(_) => Response::error(ErrorCode::Timeout),
        }
    }
}

/// How [`Shared::execute_gated`] runs an operation.
struct RunMode {
    /// An authorized held request: wait for a slot rather than answer `busy`.
    wait_for_slot: bool,
    /// A dry run ([`crate::operation::Context::dry_run`]).
    dry_run: bool,
    /// What the dry run showed when it was held ([`crate::operation::Context::preview`]).
    preview: Option<Value>,
}

/// The answer to a dry run an operation cannot do.
fn no_dry_run(op: &str, why: &str) -> Response {
    Response::error_with(
        ErrorCode::BadRequest,
        format!("operation '{op}' cannot do a dry run: {why}"),
    )
}
