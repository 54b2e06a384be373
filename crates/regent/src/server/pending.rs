//! Holding requests for out-of-channel authorization, and resuming them.
//!
//! The engine is [`regent_auth::AuthFlow`] (SQLite store, methods, uids, attempts,
//! expiry). This module connects it to the pipeline: a held request is exactly the
//! validated operation and data, bound to the kernel uid that made it; when its last
//! stage passes, the stored data runs — never data sent later — and only if the
//! policy's [`evaluate`] still says so for that caller. After each stage the same
//! function weighs what the operation's `after_stage` says (see [`OpHook`]).
//!
//! Polling a request that waits for an administrator is rate-limited per caller
//! uid by its own limiter ([`poll_limiter`]), apart from the failure limiter: a
//! caller polling too fast is answered `rate_limited` at once, never slept, and
//! polling never counts as a failed code (nor a failed code as a poll).

use super::audit::Audit;
use super::Shared;
use crate::identity::Caller;
use crate::operation::{Authorization, Checked};
use crate::policy::{evaluate, may_call, Standing};
use crate::registry::{Entry, Registry};
use regent_auth::{
    Busy, FlowOutcome, HookDecision, RateLimitConfig, RateLimiter, Refusal, StageHook, StageReport,
    StartRequest,
};
use regent_model::{Stages, Verdict};
use regent_proto::{ErrorCode, Response};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Approval polls a caller may make in a burst before being limited.
pub(crate) const POLL_BURST: u32 = 10;
/// The sustained rate of approval polls: one per this interval (`regent call
/// --wait` polls once a second, so it is never limited).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The approval-poll limiter, keyed by caller (uid, or TLS client name): [`POLL_BURST`] polls at once,
/// then one per [`POLL_INTERVAL`]; a limited caller waits at most one interval.
pub(crate) fn poll_limiter() -> RateLimiter<regent_model::CallerKey> {
    RateLimiter::new(RateLimitConfig {
        burst: POLL_BURST,
        interval: POLL_INTERVAL,
        ..RateLimitConfig::default()
    })
}

/// The stages' names, as the pending store keeps them.
pub(crate) fn stage_names(stages: &Stages) -> Vec<String> {
    stages.iter().map(|s| s.name().to_string()).collect()
}

/// The answer to a refused held request: the one place where the auth engine's
/// typed refusals become wire codes.
pub(crate) fn refusal_response(refusal: &Refusal) -> Response {
    let code = match refusal {
        Refusal::WrongCode { .. } => ErrorCode::AuthFailed,
        Refusal::NotFound => return Response::error(ErrorCode::NotFound),
        Refusal::Denied { reason: None } => return Response::error(ErrorCode::Denied),
        Refusal::Denied { reason: Some(r) } => {
            let message = format!("{}: {r}", ErrorCode::Denied.default_message());
            return Response::error_with(ErrorCode::Denied, message);
        }
        Refusal::RateLimited { .. } => ErrorCode::RateLimited,
        Refusal::Busy(Busy::InProgress | Busy::Full { .. }) => ErrorCode::Busy,
        Refusal::Unavailable(None) => return Response::error(ErrorCode::OperationFailed),
        Refusal::Unavailable(Some(_)) => ErrorCode::OperationFailed,
        Refusal::Internal => return Response::error(ErrorCode::Internal),
    };
    Response::error_with(code, refusal.to_string())
}

/// The answer to an outcome that does not run anything.
fn outcome_response(outcome: FlowOutcome) -> Response {
    match outcome {
        FlowOutcome::Pending { uid, info } => Response::pending(uid, &info),
        FlowOutcome::Refused(r) => refusal_response(&r),
        FlowOutcome::Run { .. } => Response::error(ErrorCode::Internal),
    }
}

/// Lets a Rust operation react after each stage (`Operation::after_stage`); what
/// it says is weighed by the policy ([`evaluate`], [`Standing::AfterStage`]).
struct OpHook<'a> {
    registry: &'a Registry,
    caller: &'a Caller,
}

impl StageHook for OpHook<'_> {
    fn after_stage(&self, report: &StageReport<'_>) -> HookDecision {
        let Some(entry) = self.registry.get(report.op) else {
            return HookDecision::Deny(None);
        };
        let remaining: Stages = report.remaining.iter().cloned().collect();
        let said = entry
            .op
            .after_stage(self.caller, report.data, report.stage, &remaining);
        match evaluate(
            self.caller,
            &entry.options.rule(),
            Standing::AfterStage(&said),
        ) {
            Verdict::Run => HookDecision::ReplaceRemainingStages(Stages::none()),
            // A caller the operation's `allow` rule no longer admits (and whom
            // the operation did not refuse itself) is asked no further stage:
            // the request ends here, and the last verdict (the same caller and
            // rule, `Standing::StagesPassed` in `continue_request`) refuses it
            // `permission_denied` with the reason in its audit record, as a
            // refused caller has always been. Denied here, the flow would answer
            // `denied`, the word for an approver's or the operation's refusal,
            // and the record would not say why.
            Verdict::Deny(_)
                if !matches!(said, Authorization::Deny(_))
                    && !may_call(self.caller, entry.options.allow.as_ref()).is_allowed() =>
            {
                HookDecision::ReplaceRemainingStages(Stages::none())
            }
            Verdict::Deny(why) => {
                tracing::info!(
                    op = report.op,
                    request = report.request_id,
                    why,
                    "operation denied after a stage"
                );
                HookDecision::Deny(None)
            }
            Verdict::Hold(stages) if stages == remaining => HookDecision::Continue,
            Verdict::Hold(stages) => HookDecision::ReplaceRemainingStages(stages),
        }
    }
}

/// Why a held request whose operation changed answers `denied`.
pub(crate) const CHANGED_WHILE_HELD: &str =
    "the operation was changed or removed while the request was held";

impl Shared {
    /// Whether a held request, stored with the digest `held` of its operation's
    /// declaration, may run as `entry` (the operation now). A request stored
    /// without one (by a store of schema version 2, or a library operation with
    /// no declaration) is taken to have been held under the declaration the
    /// service started with: it runs unless a reload changed the operation.
    fn held_under(&self, op: &str, held: Option<&str>, entry: &Entry) -> bool {
        let held = match held {
            Some(d) => Some(d),
            None => self.started_with.get(op).and_then(|d| d.as_deref()),
        };
        held == entry.declaration.as_deref()
    }

    pub(crate) async fn hold(
        &self,
        caller: &Arc<Caller>,
        op: &str,
        entry: &Entry,
        checked: Checked,
        stages: Stages,
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
        // The change the approvers approve: a dry run of exactly this request,
        // made now. One that cannot be made is answered now, not held.
        let preview = if entry.op.dry_run() {
            match self.preview(caller, op, entry, checked.data.clone()).await {
                Response::Done(v) => Some(v),
                other => {
                    audit.note("its dry run failed: not held");
                    return other;
                }
            }
        } else {
            None
        };
        audit.note(&format!("held for {}", stage_names(&stages).join(" then ")));
        let request = StartRequest {
            op: op.to_string(),
            data: checked.data,
            display_data: checked.redacted,
            caller: Caller::clone(caller),
            stages,
            ttl: entry.options.pending_ttl,
            max_attempts: entry.options.max_attempts,
            approvers: entry.options.approvers.clone(),
            max_pending_per_uid: entry.options.max_pending_per_uid,
            declaration: entry.declaration.clone(),
            preview,
        };
        match flow.start(request).await {
            FlowOutcome::Run {
                op, data, preview, ..
            } => self.execute(caller, &op, entry, data, false, preview).await,
            other => outcome_response(other),
        }
    }

    pub(crate) async fn continue_request(
        &self,
        caller: &Arc<Caller>,
        exposure: &super::Exposure,
        uid: &str,
        data: Value,
        audit: &mut Audit,
    ) -> Response {
        let Some(flow) = &self.flow else {
            self.limiter.record_failure(&caller.key());
            return Response::error(ErrorCode::NotFound);
        };
        // Approval polls are limited here, before the resume, because that is
        // where a refusal is cheapest: a limited caller costs a hash lookup, not a
        // read of the pending store. Which continue is a poll is only known after
        // the resume, so only a continue that found its request still waiting
        // (the same uid answered pending again) is counted below; first requests
        // and code submissions are never counted. A caller over its poll rate is
        // thus refused any continue until its next poll is due (at most
        // POLL_INTERVAL), a code submission included, which counts as neither
        // a poll nor a failure and may simply be sent again.
        if self.poll_limiter.check(&caller.key()).is_err() {
            audit.note("approval polls too fast");
            return Response::error(ErrorCode::RateLimited);
        }
        // Its operation not offered on this socket: as if unknown, and left as
        // it is (resuming it could consume it: an approved request would run
        // nowhere, and its caller could not take it up on the right socket).
        if let Some(op) = flow.op_of(uid, caller).await {
            if !exposure.offers(&op) {
                audit.op(&op);
                audit.note("not offered on this socket");
                return Response::error(ErrorCode::UnknownOperation);
            }
        }
        let hook = OpHook {
            registry: &self.registry,
            caller,
        };
        let outcome = flow.resume(uid, caller, &data, Some(&hook)).await;
        if outcome.is_failure() {
            self.limiter.record_failure(&caller.key());
        }
        if outcome.is_still_waiting(uid) {
            self.poll_limiter.record_failure(&caller.key());
        }
        match outcome {
            FlowOutcome::Run {
                op,
                data,
                request_id,
                declaration,
                preview,
            } => {
                audit.op(&op);
                audit.note(&format!("request {request_id} authorized"));
                // Continued on a socket that does not offer it: as if unknown.
                if !exposure.offers(&op) {
                    audit.note("not offered on this socket");
                    return Response::error(ErrorCode::UnknownOperation);
                }
                // Never run under another declaration than the one it was held
                // under: an operation a reload changed or removed meanwhile
                // answers `denied`.
                let Some(entry) = self
                    .registry
                    .get(&op)
                    .filter(|e| self.held_under(&op, declaration.as_deref(), e))
                else {
                    tracing::warn!(
                        op,
                        request_id,
                        "held request denied: its operation was changed or removed while it was held"
                    );
                    audit.note("its operation was changed or removed while it was held");
                    return refusal_response(&Refusal::Denied {
                        reason: Some(CHANGED_WHILE_HELD.into()),
                    });
                };
                // The data approved is the data that runs, and only if the
                // caller still may run it.
                match evaluate(caller, &entry.options.rule(), Standing::StagesPassed) {
                    Verdict::Run => self.execute(caller, &op, entry, data, true, preview).await,
                    Verdict::Deny(why) => {
                        audit.note(&why);
                        Response::error(ErrorCode::PermissionDenied)
                    }
                    Verdict::Hold(stages) => {
                        tracing::error!(op, request_id, ?stages, "stages left after the last");
                        Response::error(ErrorCode::Internal)
                    }
                }
            }
            other => outcome_response(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{Context, OpError, Operation};
    use crate::policy::AllowRule;
    use crate::registry::OpOptions;
    use crate::Service;
    use regent_model::{CallerKey, Stage};
    use std::time::Instant;

    #[test]
    fn refusals_answer_the_codes_and_sentences_callers_have_always_seen() {
        let wire = |r: Refusal| match refusal_response(&r) {
            Response::Error {
                code: Some(code),
                error,
            } => (code, error),
            other => panic!("{r:?}: expected an error, got {other:?}"),
        };
        let default = |c: ErrorCode| (c, c.default_message().to_string());
        let cases = [
            (
                Refusal::WrongCode { attempts_left: 2 },
                (ErrorCode::AuthFailed, "Wrong code (2 attempts left)".into()),
            ),
            (
                Refusal::WrongCode { attempts_left: 0 },
                (
                    ErrorCode::AuthFailed,
                    "Wrong code; too many attempts, the request was dropped".into(),
                ),
            ),
            (Refusal::NotFound, default(ErrorCode::NotFound)),
            (Refusal::Denied { reason: None }, default(ErrorCode::Denied)),
            (
                Refusal::Denied {
                    reason: Some("not today".into()),
                },
                (
                    ErrorCode::Denied,
                    format!("{}: not today", ErrorCode::Denied.default_message()),
                ),
            ),
            (
                Refusal::RateLimited {
                    retry_after: Duration::from_millis(300),
                },
                (
                    ErrorCode::RateLimited,
                    "Too many wrong codes for this user; try again in 1 s".into(),
                ),
            ),
            (
                Refusal::Busy(Busy::InProgress),
                (
                    ErrorCode::Busy,
                    "Another step of this request is in progress".into(),
                ),
            ),
            (
                Refusal::Busy(Busy::Full {
                    which: regent_auth::CapReached::PerUid,
                    cap: 32,
                }),
                (
                    ErrorCode::Busy,
                    "Too many requests are waiting for authorization by this user (at most 32); \
                     try again once some are decided"
                        .into(),
                ),
            ),
            (
                Refusal::Unavailable(Some("The authorization email could not be sent".into())),
                (
                    ErrorCode::OperationFailed,
                    "The authorization email could not be sent".into(),
                ),
            ),
            (
                Refusal::Unavailable(None),
                default(ErrorCode::OperationFailed),
            ),
            (Refusal::Internal, default(ErrorCode::Internal)),
        ];
        for (refusal, want) in cases {
            assert_eq!(wire(refusal.clone()), want, "{refusal:?}");
        }
    }

    #[test]
    fn the_poll_rate_allows_a_burst_and_one_poll_a_second() {
        let l = poll_limiter();
        let t0 = Instant::now();
        // `regent call --wait` (one poll a second) is never limited.
        for i in 0..100 {
            let t = t0 + POLL_INTERVAL * i;
            assert!(l.check_at(&CallerKey::Uid(1000), t).is_ok(), "poll {i}");
            l.record_failure_at(&CallerKey::Uid(1000), t);
        }
        // A burst of POLL_BURST polls at once is allowed, then one is refused,
        // and the wait is at most one interval.
        let t1 = t0 + Duration::from_secs(1000);
        for _ in 0..POLL_BURST {
            assert!(l.check_at(&CallerKey::Uid(7), t1).is_ok());
            l.record_failure_at(&CallerKey::Uid(7), t1);
        }
        let wait = l.check_at(&CallerKey::Uid(7), t1).unwrap_err().wait;
        assert!(wait <= POLL_INTERVAL, "{wait:?}");
        assert!(l.check_at(&CallerKey::Uid(7), t1 + POLL_INTERVAL).is_ok());
        assert!(
            l.check_at(&CallerKey::Uid(8), t1).is_ok(),
            "another uid is not limited"
        );
    }

    struct Say;

    impl Operation for Say {
        type Data = ();
        type Output = String;
        async fn perform(&self, _: Context, _: ()) -> Result<String, OpError> {
            Ok("said".into())
        }
    }

    fn caller(uid: u32) -> Arc<Caller> {
        Arc::new(Caller {
            peer: regent_model::Peer::Unix,
            pid: None,
            uid,
            gid: uid,
            user: None,
            groups: vec![uid],
            group_names: Vec::new(),
        })
    }

    async fn ask(shared: &Shared, who: &Arc<Caller>, line: Value) -> Response {
        shared.handle(who, line.to_string().as_bytes()).await
    }

    /// A service in `dir` offering `op` as `name`, with a pending store.
    fn one_op<O: Operation>(
        dir: &std::path::Path,
        name: &str,
        op: O,
        options: OpOptions,
    ) -> Service {
        Service::builder(dir.join("s.sock"))
            .register_with(name, op, options)
            .unwrap()
            .pending_store(dir.join("pending.db"))
            .build()
            .unwrap()
    }

    fn pending_uid(r: &Response) -> String {
        match r {
            Response::Pending { uid, .. } => uid.clone(),
            other => panic!("expected pending, got {other:?}"),
        }
    }

    fn is_rate_limited(r: &Response) -> bool {
        matches!(
            r,
            Response::Error {
                code: Some(ErrorCode::RateLimited),
                ..
            }
        )
    }

    #[tokio::test]
    async fn only_polls_that_find_the_request_waiting_count_against_the_poll_rate() {
        let dir = tempfile::tempdir().unwrap();
        // Room for the many first requests below.
        let options = OpOptions {
            auth: [Stage::Approval].into_iter().collect(),
            max_pending_per_uid: 100,
            ..OpOptions::default()
        };
        let service = one_op(dir.path(), "say", Say, options);
        let shared = &service.current.load();
        let (alice, bob) = (caller(1000), caller(1001));
        let new = serde_json::json!({"op": "say", "data": null});
        let uid = pending_uid(&ask(shared, &alice, new.clone()).await);
        let poll = serde_json::json!({"uid": uid, "data": null});

        // First requests and unknown uids are not polls.
        for _ in 0..POLL_BURST * 2 {
            pending_uid(&ask(shared, &alice, new.clone()).await);
        }
        let unknown = serde_json::json!({"uid": "no-such-uid-aaaaaaaaaaaaaaaa", "data": null});
        let r = ask(shared, &alice, unknown).await;
        assert!(
            matches!(
                r,
                Response::Error {
                    code: Some(ErrorCode::NotFound),
                    ..
                }
            ),
            "{r:?}"
        );
        assert!(shared.poll_limiter.is_empty(), "nothing counted as a poll");
        assert!(
            shared.limiter.check(&alice.key()).is_ok(),
            "one failure only"
        );
        assert_eq!(shared.limiter.len(), 1, "the unknown uid is a failure");

        // The burst of polls is answered, then the next poll is refused at once.
        for i in 0..POLL_BURST {
            assert_eq!(
                pending_uid(&ask(shared, &alice, poll.clone()).await),
                uid,
                "poll {i}"
            );
        }
        let r = ask(shared, &alice, poll.clone()).await;
        assert!(is_rate_limited(&r), "{r:?}");
        // Not a failure: the failure limiter saw only the unknown uid.
        assert!(shared.limiter.check(&alice.key()).is_ok());
        // Another caller is not affected, nor is a first request.
        let bob_uid = pending_uid(&ask(shared, &bob, new.clone()).await);
        let bob_poll = serde_json::json!({"uid": bob_uid, "data": null});
        assert_eq!(pending_uid(&ask(shared, &bob, bob_poll).await), bob_uid);
        pending_uid(&ask(shared, &alice, new.clone()).await);
    }

    /// Says whether it ran as a dry run.
    struct Dry;

    impl Operation for Dry {
        type Data = ();
        type Output = &'static str;
        fn dry_run(&self) -> bool {
            true
        }
        async fn perform(&self, ctx: Context, _: ()) -> Result<&'static str, OpError> {
            Ok(if ctx.dry_run { "dry" } else { "real" })
        }
    }

    #[tokio::test]
    async fn a_dry_run_reaches_only_an_operation_that_offers_one() {
        let dir = tempfile::tempdir().unwrap();
        let held = OpOptions {
            auth: [Stage::Approval].into_iter().collect(),
            ..OpOptions::default()
        };
        let service = Service::builder(dir.path().join("s.sock"))
            .register("say", Say)
            .unwrap()
            .register("dry", Dry)
            .unwrap()
            .register_with("dry-held", Dry, held)
            .unwrap()
            .pending_store(dir.path().join("pending.db"))
            .build()
            .unwrap();
        let shared = &service.current.load();
        let alice = caller(1000);
        let call =
            |op: &str, dry: bool| serde_json::json!({"op": op, "data": null, "dry_run": dry});
        let done = |r: Response| match r {
            Response::Done(v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(done(ask(shared, &alice, call("dry", true)).await), "dry");
        assert_eq!(done(ask(shared, &alice, call("dry", false)).await), "real");
        assert_eq!(done(ask(shared, &alice, call("say", false)).await), "said");
        for op in ["say", "dry-held", "regent.ops"] {
            let r = ask(shared, &alice, call(op, true)).await;
            let Response::Error { code, error } = &r else {
                panic!("{op}: {r:?}");
            };
            assert_eq!(*code, Some(ErrorCode::BadRequest), "{op}");
            assert!(error.contains("cannot do a dry run"), "{op}: {error}");
        }
        // Nothing was held for the refused dry run.
        let ops = done(ask(shared, &alice, call("regent.ops", false)).await);
        let offers: Vec<(&str, bool)> = ops
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["name"].as_str().unwrap(), o["dry_run"] == true))
            .collect();
        assert_eq!(offers, [("dry", true), ("dry-held", false), ("say", false)]);
    }

    /// Counts its runs; after the first approval it asks for a second one.
    #[derive(Default)]
    struct TwoApprovals {
        asked: std::sync::atomic::AtomicUsize,
        ran: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Operation for TwoApprovals {
        type Data = ();
        type Output = String;
        fn after_stage(&self, _: &Caller, _: &(), stage: &Stage, rest: &Stages) -> Authorization {
            use std::sync::atomic::Ordering::SeqCst;
            if *stage == Stage::Approval && rest.is_empty() && self.asked.fetch_add(1, SeqCst) == 0
            {
                Authorization::require([Stage::Approval])
            } else {
                Authorization::continue_with(rest)
            }
        }
        async fn perform(&self, _: Context, _: ()) -> Result<String, OpError> {
            self.ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok("ran".into())
        }
    }

    fn member(uid: u32, groups: &[u32]) -> Arc<Caller> {
        let mut c = Caller::clone(&caller(uid));
        c.groups.extend_from_slice(groups);
        Arc::new(c)
    }

    fn request_id(r: &Response) -> String {
        match r {
            Response::Pending { data, .. } => data["request_id"].as_str().unwrap().to_string(),
            other => panic!("expected pending, got {other:?}"),
        }
    }

    async fn approve(shared: &Shared, id: &str) {
        let line = serde_json::json!({"op": "regent.approve", "data": {"id": id}});
        let r = ask(shared, &caller(0), line).await;
        assert!(matches!(r, Response::Done(_)), "{r:?}");
    }

    /// Offers dry runs: shows a change (or fails to, when asked), and when run
    /// answers what it was shown.
    struct Shows;

    #[derive(serde::Deserialize, serde::Serialize)]
    struct ShowsData {
        fail: bool,
    }

    impl Operation for Shows {
        type Data = ShowsData;
        type Output = Value;
        fn dry_run(&self) -> bool {
            true
        }
        async fn perform(&self, ctx: Context, data: ShowsData) -> Result<Value, OpError> {
            if data.fail {
                return Err(OpError::Failed("cannot be made".into()));
            }
            Ok(if ctx.dry_run {
                serde_json::json!({"diff": "-a\n+b\n", "hash": "h1"})
            } else {
                serde_json::json!({"ran with": ctx.preview})
            })
        }
    }

    /// Issue 10: a held request of an operation that offers dry runs is held
    /// with its dry run's answer, which the approver sees and the run gets
    /// back; one whose dry run fails is answered at once, not held.
    #[tokio::test]
    async fn a_held_request_keeps_its_dry_run_for_the_approver_and_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let service = one_op(
            dir.path(),
            "shows",
            Shows,
            OpOptions::new().auth([Stage::Approval]),
        );
        let shared = &service.current.load();
        let alice = caller(1000);
        let new = |fail: bool| serde_json::json!({"op": "shows", "data": {"fail": fail}});

        let r = ask(shared, &alice, new(true)).await;
        assert!(
            matches!(
                &r,
                Response::Error {
                    code: Some(ErrorCode::OperationFailed),
                    ..
                }
            ),
            "{r:?}"
        );
        let held = ask(shared, &alice, new(false)).await;
        let (id, uid) = (request_id(&held), pending_uid(&held));
        let list = ask(
            shared,
            &caller(0),
            serde_json::json!({"op": "regent.pending", "data": null}),
        )
        .await;
        let Response::Done(list) = list else {
            panic!("{list:?}");
        };
        let shown = serde_json::json!({"diff": "-a\n+b\n", "hash": "h1"});
        let requests = list["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 1, "the failed one was not held: {list}");
        assert_eq!(requests[0]["preview"], shown);
        approve(shared, &id).await;
        let r = ask(
            shared,
            &alice,
            serde_json::json!({"uid": uid, "data": null}),
        )
        .await;
        let Response::Done(ran) = r else {
            panic!("{r:?}");
        };
        assert_eq!(ran, serde_json::json!({"ran with": shown}));
    }

    /// Review of issue 8: a stage the operation adds after a stage passed is
    /// waited for (never skipped), and a caller who left the operation's `allow`
    /// group while its request waited never runs it, whatever stage it was at.
    #[tokio::test]
    async fn a_stage_added_after_a_stage_is_waited_for_and_a_caller_who_lost_the_right_never_runs()
    {
        let dir = tempfile::tempdir().unwrap();
        let op = TwoApprovals::default();
        let ran = op.ran.clone();
        let options = OpOptions::new()
            .auth([Stage::Approval])
            .allow(AllowRule::groups([60u32]));
        let service = Service::builder(dir.path().join("s.sock"))
            .register_with("two", op, options)
            .unwrap()
            .pending_store(dir.path().join("pending.db"))
            .build()
            .unwrap();
        let shared = &service.current.load();
        let (alice, alice_removed) = (member(1000, &[60]), member(1000, &[]));
        let new = serde_json::json!({"op": "two", "data": null});
        let poll = |uid: &str| serde_json::json!({"uid": uid, "data": null});

        // Approved once: the operation asks for a second approval, which is waited for.
        let first = ask(shared, &alice, new.clone()).await;
        let id = request_id(&first);
        approve(shared, &id).await;
        let second = ask(shared, &alice, poll(&pending_uid(&first))).await;
        assert_eq!(request_id(&second), id, "{second:?}");
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Still waiting until approved again, then it runs, once.
        let again = ask(shared, &alice, poll(&pending_uid(&second))).await;
        assert_eq!(pending_uid(&again), pending_uid(&second));
        approve(shared, &id).await;
        let done = ask(shared, &alice, poll(&pending_uid(&second))).await;
        assert_eq!(done, Response::Done(serde_json::json!("ran")));
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Removed from the group while held: approved, it is refused and not run.
        let held = ask(shared, &alice, new.clone()).await;
        approve(shared, &request_id(&held)).await;
        let refused = |r: &Response, want: ErrorCode| matches!(r, Response::Error { code: Some(c), .. } if *c == want);
        let r = ask(shared, &alice_removed, poll(&pending_uid(&held))).await;
        assert!(refused(&r, ErrorCode::PermissionDenied), "{r:?}");
        // Nor can the uid be used again once the member is back.
        let r = ask(shared, &alice, poll(&pending_uid(&held))).await;
        assert!(refused(&r, ErrorCode::NotFound), "{r:?}");
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// A held request continued on a socket that does not offer its operation
    /// answers as an unknown operation, and does not run.
    #[tokio::test]
    async fn a_held_request_continued_on_a_socket_without_its_operation_is_unknown_there() {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::builder(dir.path().join("s.sock"))
            .register_with("say", Say, OpOptions::new().auth([Stage::Approval]))
            .unwrap()
            .pending_store(dir.path().join("pending.db"))
            .build()
            .unwrap();
        let shared = &service.current.load();
        let alice = caller(1000);
        let held = ask(
            shared,
            &alice,
            serde_json::json!({"op": "say", "data": null}),
        )
        .await;
        approve(shared, &request_id(&held)).await;
        let other = super::super::Exposure::only(["something-else"], false);
        let poll = serde_json::json!({"uid": pending_uid(&held), "data": null});
        let r = shared
            .handle_on(&alice, &other, poll.to_string().as_bytes())
            .await;
        assert!(
            matches!(
                r,
                Response::Error {
                    code: Some(ErrorCode::UnknownOperation),
                    ..
                }
            ),
            "{r:?}"
        );
    }
}
