//! The engine end to end over a real SQLite file: TOTP, approval, denial, attempt
//! limits, foreign and expired uids, hooks, and a custom method.

use async_trait::async_trait;
use regent_auth::method::{Check, MethodError, StageContext, StageStart};
use regent_auth::{
    AuthError, AuthFlow, AuthMethod, Busy, CallerId, FlowOptions, FlowOutcome, HookDecision,
    MethodRegistry, Refusal, Stage, StageHook, StageReport, Stages, StartRequest, TotpStore,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn alice() -> CallerId {
    CallerId::unix(Some(4242), 1000, 1000, Some("alice".into()))
}
fn mallory() -> CallerId {
    CallerId::unix(Some(666), 1001, 1001, Some("mallory".into()))
}
fn root() -> CallerId {
    CallerId::unix(Some(1), 0, 0, Some("root".into()))
}

/// A custom method: the right response is the code "open-sesame".
struct Passphrase;

#[async_trait]
impl AuthMethod for Passphrase {
    fn name(&self) -> &str {
        "passphrase"
    }
    async fn begin(&self, _ctx: &StageContext<'_>) -> Result<StageStart, MethodError> {
        Ok(StageStart::new(json!({}), "Say the passphrase"))
    }
    async fn check(
        &self,
        _ctx: &StageContext<'_>,
        _s: &Value,
        response: &Value,
    ) -> Result<Check, MethodError> {
        Ok(match response.get("code").and_then(Value::as_str) {
            Some("open-sesame") => Check::Passed,
            Some("never") => Check::Denied(Some("told to deny".into())),
            _ => Check::Failed,
        })
    }
}

fn registry(totp: Option<Arc<TotpStore>>) -> MethodRegistry {
    let mut r = MethodRegistry::with_builtins(totp, None, 6);
    assert!(r.register(Arc::new(Passphrase)).is_none());
    r
}

fn open(path: &Path) -> AuthFlow {
    AuthFlow::open(path, registry(None), FlowOptions::default()).unwrap()
}

fn request(stages: &[&str]) -> StartRequest {
    StartRequest {
        op: "restart".into(),
        data: json!({"service": "nginx"}),
        display_data: json!({"service": "nginx"}),
        caller: alice(),
        stages: stages.iter().map(|s| Stage::parse(s).unwrap()).collect(),
        ttl: Duration::from_secs(600),
        max_attempts: 3,
        approvers: vec![],
        max_pending_per_uid: 100,
        declaration: Some("digest-of-the-declaration".into()),
        preview: Some(preview_shown()),
    }
}

/// What a dry run showed when the request was held.
fn preview_shown() -> Value {
    json!({"diff": "-Port 22\n+Port 2222\n", "hash": "sha256:00"})
}

fn pending(o: FlowOutcome) -> (String, regent_proto::PendingInfo) {
    match o {
        FlowOutcome::Pending { uid, info } => (uid, info),
        other => panic!("expected pending, got {other:?}"),
    }
}

fn error(o: &FlowOutcome) -> (Refusal, String) {
    match o {
        FlowOutcome::Refused(r) => (r.clone(), r.to_string()),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn assert_run(o: FlowOutcome) -> String {
    match o {
        FlowOutcome::Run {
            op,
            data,
            request_id,
            declaration,
            preview,
        } => {
            assert_eq!(op, "restart");
            assert_eq!(
                preview,
                Some(preview_shown()),
                "the preview held is given back"
            );
            assert_eq!(declaration.as_deref(), Some("digest-of-the-declaration"));
            assert_eq!(
                data,
                json!({"service": "nginx"}),
                "the stored data runs, never later data"
            );
            request_id
        }
        other => panic!("expected run, got {other:?}"),
    }
}

fn code(c: &str) -> Value {
    json!({ "code": c })
}

#[tokio::test]
async fn totp_stage_accepts_once_and_refuses_replay_and_wrong_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    let totp = Arc::new(TotpStore::open(&db).unwrap());
    let enrollment = totp.begin_enroll("alice").unwrap();
    // Enroll with a code from 5 minutes ago so that "now" is a fresh step.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.confirm_enroll_at(
        &enrollment,
        &enrollment.secret().code_at(now - 300),
        now - 300,
    )
    .unwrap();
    let flow = AuthFlow::open(&db, registry(Some(totp.clone())), FlowOptions::default()).unwrap();

    let (uid, info) = pending(flow.start(request(&["totp"])).await);
    assert_eq!(info.pending, "totp");
    assert!(info.expires_at.ends_with('Z'));
    assert!(uid.len() >= 22);

    let good = enrollment.secret().code_at(now);
    let wrong = format!(
        "{:06}",
        (good.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let (c, msg) = error(&flow.resume(&uid, &alice(), &code(&wrong), None).await);
    assert!(matches!(c, Refusal::WrongCode { .. }), "{msg}");
    assert!(!msg.contains(&wrong));
    // Data sent later is ignored: the stored data runs.
    let mut resp = code(&good);
    resp["service"] = json!("sshd");
    assert_run(flow.resume(&uid, &alice(), &resp, None).await);
    // The uid is consumed.
    assert_eq!(
        error(&flow.resume(&uid, &alice(), &code(&good), None).await).0,
        Refusal::NotFound
    );

    // The same code on a new request is a replay (unless the clock ticked to a
    // new step, in which case the old code is one step old and was used anyway).
    let (uid2, _) = pending(flow.start(request(&["totp"])).await);
    let (c, _) = error(&flow.resume(&uid2, &alice(), &code(&good), None).await);
    assert!(matches!(c, Refusal::WrongCode { .. }), "{c:?}");

    // Mallory is not enrolled: the request cannot even start.
    let mut req = request(&["totp"]);
    req.caller = mallory();
    let (c, msg) = error(&flow.start(req).await);
    assert!(matches!(c, Refusal::Unavailable(Some(_))), "{c:?}");
    assert!(msg.contains("no authenticator is enrolled"), "{msg}");
}

#[tokio::test]
async fn wrong_codes_are_counted_and_the_limit_drops_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let flow = open(&dir.path().join("auth.db"));
    let (uid, _) = pending(flow.start(request(&["passphrase"])).await);
    for left in ["2 attempts left", "1 attempt left"] {
        let outcome = flow.resume(&uid, &alice(), &code("nope"), None).await;
        assert!(outcome.is_failure());
        assert!(
            !outcome.is_still_waiting(&uid),
            "a wrong code is not a poll"
        );
        let (c, msg) = error(&outcome);
        assert!(matches!(c, Refusal::WrongCode { .. }), "{c:?}");
        assert!(msg.contains(left), "{msg}");
        assert_eq!(flow.list_waiting().await.unwrap().len(), 1);
    }
    // Two wrong so far; the third drops it.
    let (c, msg) = error(&flow.resume(&uid, &alice(), &code("nope"), None).await);
    assert!(matches!(c, Refusal::WrongCode { .. }), "{c:?}");
    assert!(msg.contains("dropped"), "{msg}");
    assert_eq!(
        error(
            &flow
                .resume(&uid, &alice(), &code("open-sesame"), None)
                .await
        )
        .0,
        Refusal::NotFound
    );
    assert!(flow.list_waiting().await.unwrap().is_empty());
}

#[tokio::test]
async fn foreign_unknown_used_and_expired_uids_answer_one_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let flow = open(&dir.path().join("auth.db"));
    let (uid, _) = pending(flow.start(request(&["passphrase"])).await);

    let foreign = flow
        .resume(&uid, &mallory(), &code("open-sesame"), None)
        .await;
    let unknown = flow
        .resume(
            "AAAAAAAAAAAAAAAAAAAAAA",
            &alice(),
            &code("open-sesame"),
            None,
        )
        .await;
    assert_eq!(foreign, unknown, "one answer for all");
    assert_eq!(error(&foreign).0, Refusal::NotFound);
    assert!(foreign.is_failure());
    // Mallory's try neither consumed the uid nor counted an attempt.
    assert_eq!(flow.list_waiting().await.unwrap()[0].attempts, 0);
    assert_run(
        flow.resume(&uid, &alice(), &code("open-sesame"), None)
            .await,
    );
    let used = flow
        .resume(&uid, &alice(), &code("open-sesame"), None)
        .await;
    assert_eq!(used, unknown);

    let mut req = request(&["passphrase"]);
    req.ttl = Duration::from_millis(300);
    let (uid, _) = pending(flow.start(req).await);
    assert_eq!(flow.list_waiting().await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = flow
        .resume(&uid, &alice(), &code("open-sesame"), None)
        .await;
    assert_eq!(expired, unknown);
    // Expired rows are purged.
    let mut req = request(&["passphrase"]);
    req.ttl = Duration::from_millis(100);
    let _ = pending(flow.start(req).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(flow.list_waiting().await.unwrap().is_empty());
    assert!(
        flow.store().list().unwrap().is_empty(),
        "purged from the database"
    );
}

#[tokio::test]
async fn approval_polls_until_approved_and_refuses_self_approval() {
    let dir = tempfile::tempdir().unwrap();
    let flow = open(&dir.path().join("auth.db"));
    let (uid, info) = pending(flow.start(request(&["approval"])).await);
    assert_eq!(info.pending, "approval");
    let id = info.extra["request_id"].as_str().unwrap().to_string();

    // Polling answers the same pending response with the same uid.
    let again = flow.resume(&uid, &alice(), &Value::Null, None).await;
    assert!(
        again.is_still_waiting(&uid),
        "a poll that found nothing new"
    );
    assert!(!again.is_still_waiting("another-uid"));
    assert_eq!(
        again,
        FlowOutcome::Pending {
            uid: uid.clone(),
            info: info.clone()
        }
    );

    let waiting = flow.list_waiting().await.unwrap();
    assert_eq!(waiting.len(), 1);
    let w = &waiting[0];
    assert_eq!(
        (
            w.request_id.as_str(),
            w.op.as_str(),
            w.stage.as_ref().map(Stage::name).unwrap_or_default()
        ),
        (id.as_str(), "restart", "approval")
    );
    assert!(w.awaiting_approval && !w.approved);
    assert_eq!(w.caller, alice());

    // Alice may not approve her own request unless allowed.
    assert!(matches!(
        flow.approve(&id, &alice(), false).await,
        Err(AuthError::OwnRequest(_))
    ));
    assert!(matches!(
        flow.approve("nosuchid", &root(), false).await,
        Err(AuthError::RequestNotFound(_))
    ));
    assert!(matches!(
        flow.resume(&uid, &alice(), &Value::Null, None).await,
        FlowOutcome::Pending { .. }
    ));
    flow.approve(&id, &root(), false).await.unwrap();
    assert!(flow.list_waiting().await.unwrap()[0].approved);
    let done = flow.resume(&uid, &alice(), &Value::Null, None).await;
    assert!(
        !done.is_still_waiting(&uid),
        "the approved poll is not waiting"
    );
    assert_eq!(assert_run(done), id);

    let audit = flow.decisions(Some(&id)).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].decision.as_str(),
            audit[0].by_uid,
            audit[0].caller_uid
        ),
        ("approved", 0, 1000)
    );

    // Allowed self-approval works.
    let (uid, info) = pending(flow.start(request(&["approval"])).await);
    flow.approve(info.extra["request_id"].as_str().unwrap(), &alice(), true)
        .await
        .unwrap();
    assert_run(flow.resume(&uid, &alice(), &Value::Null, None).await);
}

#[tokio::test]
async fn denial_reaches_the_caller_with_its_reason_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let flow = open(&dir.path().join("auth.db"));
    let (uid, info) = pending(flow.start(request(&["passphrase", "approval"])).await);
    let id = info.extra["request_id"].as_str().unwrap().to_string();
    // Not an approval stage yet: approve is refused, deny works at any stage.
    assert!(matches!(
        flow.approve(&id, &root(), false).await,
        Err(AuthError::NotAwaitingApproval { .. })
    ));
    flow.deny(&id, &root(), Some("not during business hours\n".into()))
        .await
        .unwrap();
    assert!(flow.list_waiting().await.unwrap().is_empty());
    assert!(matches!(
        flow.deny(&id, &root(), None).await,
        Err(AuthError::RequestNotFound(_))
    ));
    let (c, msg) = error(
        &flow
            .resume(&uid, &alice(), &code("open-sesame"), None)
            .await,
    );
    assert!(matches!(c, Refusal::Denied { .. }), "{c:?}");
    assert!(msg.contains("not during business hours"), "{msg}");
    assert_eq!(
        error(&flow.resume(&uid, &alice(), &Value::Null, None).await).0,
        Refusal::NotFound
    );
    let audit = flow.decisions(None).await.unwrap();
    assert_eq!(audit[0].decision, "denied");
    assert_eq!(
        audit[0].reason.as_deref(),
        Some("not during business hours")
    );

    // A method may deny too.
    let (uid, _) = pending(flow.start(request(&["passphrase"])).await);
    let (c, msg) = error(&flow.resume(&uid, &alice(), &code("never"), None).await);
    assert!(matches!(c, Refusal::Denied { .. }), "{c:?}");
    assert!(msg.contains("told to deny"));
}

#[tokio::test]
async fn stages_chain_with_a_new_uid_each_and_unknown_methods_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let flow = open(&dir.path().join("auth.db"));
    let (uid1, info1) = pending(flow.start(request(&["passphrase", "approval"])).await);
    assert_eq!(
        (info1.extra["stage"].clone(), info1.extra["stages"].clone()),
        (json!(1), json!(2))
    );
    let (uid2, info2) = pending(
        flow.resume(&uid1, &alice(), &code("open-sesame"), None)
            .await,
    );
    assert_ne!(uid1, uid2);
    assert_eq!(info2.pending, "approval");
    // Passing a stage is not a poll that found nothing new: the uid changed.
    let passed = FlowOutcome::Pending {
        uid: uid2.clone(),
        info: info2.clone(),
    };
    assert!(!passed.is_still_waiting(&uid1));
    assert_eq!(info2.extra["request_id"], info1.extra["request_id"]);
    assert_eq!(
        error(
            &flow
                .resume(&uid1, &alice(), &code("open-sesame"), None)
                .await
        )
        .0,
        Refusal::NotFound
    );
    flow.approve(info2.extra["request_id"].as_str().unwrap(), &root(), false)
        .await
        .unwrap();
    assert_run(flow.resume(&uid2, &alice(), &Value::Null, None).await);

    assert_eq!(
        error(&flow.start(request(&["carrier-pigeon"])).await).0,
        Refusal::Internal
    );
    // No stage at all: runs at once.
    assert_run(flow.start(request(&[])).await);
}

struct Hook(HookDecision);

impl StageHook for Hook {
    fn after_stage(&self, report: &StageReport<'_>) -> HookDecision {
        assert_eq!(report.op, "restart");
        assert_eq!(report.data["service"], "nginx");
        self.0.clone()
    }
}

#[tokio::test]
async fn hooks_can_skip_add_or_deny_stages() {
    let dir = tempfile::tempdir().unwrap();
    let flow = open(&dir.path().join("auth.db"));

    // Skip the approval: nginx restarts pass after the first stage.
    let (uid, _) = pending(flow.start(request(&["passphrase", "approval"])).await);
    let skip = Hook(HookDecision::ReplaceRemainingStages(Stages::none()));
    assert_run(
        flow.resume(&uid, &alice(), &code("open-sesame"), Some(&skip))
            .await,
    );

    // Add an approval to a one-stage request.
    let (uid, _) = pending(flow.start(request(&["passphrase"])).await);
    let add = Hook(HookDecision::ReplaceRemainingStages(
        [Stage::Approval].into_iter().collect(),
    ));
    let (_, info) = pending(
        flow.resume(&uid, &alice(), &code("open-sesame"), Some(&add))
            .await,
    );
    assert_eq!(info.pending, "approval");
    assert_eq!(
        flow.list_waiting().await.unwrap()[0].stages,
        vec![Stage::parse("passphrase").unwrap(), Stage::Approval]
    );

    let (uid, _) = pending(flow.start(request(&["passphrase"])).await);
    let deny = Hook(HookDecision::Deny(Some("not this one".into())));
    let (c, msg) = error(
        &flow
            .resume(&uid, &alice(), &code("open-sesame"), Some(&deny))
            .await,
    );
    assert!(matches!(c, Refusal::Denied { .. }), "{c:?}");
    assert!(msg.contains("not this one"));
}

/// A method whose check signals that it holds the request, then waits until released.
struct Gate {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl AuthMethod for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    async fn begin(&self, _ctx: &StageContext<'_>) -> Result<StageStart, MethodError> {
        Ok(StageStart::new(json!({}), "wait"))
    }
    async fn check(
        &self,
        _ctx: &StageContext<'_>,
        _s: &Value,
        _r: &Value,
    ) -> Result<Check, MethodError> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(Check::Failed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_check_at_a_time_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let (entered, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let mut reg = registry(None);
    reg.register(Arc::new(Gate {
        entered: entered.clone(),
        release: release.clone(),
    }));
    let flow =
        Arc::new(AuthFlow::open(&dir.path().join("auth.db"), reg, FlowOptions::default()).unwrap());
    let (uid, _) = pending(flow.start(request(&["gate"])).await);
    let first = {
        let (flow, uid) = (flow.clone(), uid.clone());
        tokio::spawn(async move { flow.resume(&uid, &alice(), &code("x"), None).await })
    };
    tokio::time::timeout(Duration::from_secs(20), entered.notified())
        .await
        .expect("the first check started");
    // While the first check holds the request, a second one is turned away.
    let second = flow.resume(&uid, &alice(), &code("y"), None).await;
    assert_eq!(second.refusal(), Some(&Refusal::Busy(Busy::InProgress)));
    release.notify_one();
    let first = tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("released")
        .unwrap();
    assert!(
        matches!(first.refusal(), Some(Refusal::WrongCode { .. })),
        "{first:?}"
    );
    assert_eq!(
        flow.list_waiting().await.unwrap()[0].attempts,
        1,
        "the busy answer counted nothing"
    );
}

#[tokio::test]
async fn requests_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    let flow = open(&db);
    let (uid, info) = pending(flow.start(request(&["approval"])).await);
    let id = info.extra["request_id"].as_str().unwrap().to_string();
    drop(flow);
    let flow = open(&db);
    flow.approve(&id, &root(), false).await.unwrap();
    assert_run(flow.resume(&uid, &alice(), &Value::Null, None).await);
}

#[tokio::test]
async fn a_page_stays_under_the_response_cap_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let flow = open(&dir.path().join("auth.db"));
    let big = "x".repeat(3 << 20);
    for i in 0..4 {
        let mut req = request(&["approval"]);
        req.display_data = json!({ "n": i, "blob": big });
        pending(flow.start(req).await);
    }
    let page = flow.list_page(None, 50).await.unwrap();
    let size = serde_json::to_vec(&page.requests).unwrap().len();
    assert!(size <= regent_auth::flow::MAX_PAGE_BYTES, "{size}");
    assert_eq!(page.requests.len(), 2);
    assert_eq!(page.more, 2);
    // Newest first.
    assert_eq!(page.requests[0].display_data["n"], 3);
    assert_eq!(page.requests[1].display_data["n"], 2);
    // The limit applies too.
    let page = flow.list_page(None, 1).await.unwrap();
    assert_eq!((page.requests.len(), page.more), (1, 3));
}
