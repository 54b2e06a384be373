//! A store written by schema version 1 (the first release) or 2 opens with this
//! build, is migrated, and the requests it held complete.

use regent_auth::store::uid_hash;
use regent_auth::{AuthFlow, CallerId, FlowOptions, FlowOutcome, MethodRegistry};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The version 1 schema exactly as the first release created it.
const V1: &str = "
CREATE TABLE IF NOT EXISTS pending (
    request_id     TEXT PRIMARY KEY,
    stage_uid_hash TEXT NOT NULL UNIQUE,
    op             TEXT NOT NULL,
    data           TEXT NOT NULL,
    display_data   TEXT NOT NULL,
    caller_uid     INTEGER NOT NULL,
    caller_gid     INTEGER NOT NULL,
    caller_pid     INTEGER,
    caller_user    TEXT,
    approvers      TEXT NOT NULL,
    stages         TEXT NOT NULL,
    stage_index    INTEGER NOT NULL,
    stage_state    TEXT NOT NULL,
    pending_info   TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    max_attempts   INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'denied', 'failed')),
    status_reason  TEXT
);
CREATE INDEX IF NOT EXISTS pending_expires ON pending (expires_at);
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    op          TEXT NOT NULL,
    caller_uid  INTEGER NOT NULL,
    caller_user TEXT,
    decision    TEXT NOT NULL,
    by_uid      INTEGER NOT NULL,
    by_user     TEXT,
    reason      TEXT,
    at          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS totp_users (
    user       TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    last_step  INTEGER,
    created_at INTEGER NOT NULL
);
PRAGMA user_version = 1;
";

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Make the store at `path` root-only, open it with this build, and check that
/// it was migrated to the current schema version.
fn open_migrated(path: &std::path::Path) -> AuthFlow {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let flow = AuthFlow::open(
        path,
        MethodRegistry::with_builtins(None, None, 6),
        FlowOptions::default(),
    )
    .unwrap();
    let version: i64 = flow
        .store()
        .database()
        .lock()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, regent_auth::db::SCHEMA_VERSION);
    flow
}

/// A held `restart` request of alice's waiting on `approval`, written as
/// versions 1 and 2 wrote them (20 columns), its data `{"service": id}`.
fn insert_approval_row(
    conn: &rusqlite::Connection,
    id: &str,
    uid: &str,
    state: &serde_json::Value,
    now: SystemTime,
) {
    conn.execute(
        "INSERT INTO pending VALUES (?1, ?2, 'restart', ?3, ?3, 1000, 1000, 7, 'alice',
         '[]', '[\"approval\"]', 0, ?4, ?5, 0, 5, ?6, ?7, 'pending', NULL)",
        rusqlite::params![
            id,
            uid_hash(uid),
            json!({"service": id}).to_string(),
            state.to_string(),
            json!({"pending": "approval", "message": "Waiting", "expires_at": "2099-01-01T00:00:00Z",
                   "request_id": id, "stage": 1, "stages": 1})
            .to_string(),
            ms(now),
            ms(now + Duration::from_secs(600)),
        ],
    )
    .unwrap();
}

fn alice() -> CallerId {
    CallerId::unix(Some(7), 1000, 1000, Some("alice".into()))
}

#[tokio::test]
async fn a_version_1_store_opens_and_its_held_requests_complete() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.path().join("pending.db");
    let now = SystemTime::now();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch(V1).unwrap();
        // Two held requests as version 1 wrote them: one waiting for approval,
        // one already approved (the caller had not polled yet).
        for (id, uid, state) in [
            ("v1aaaaaa", "uid-written-by-version-1-a", json!(null)),
            (
                "v1bbbbbb",
                "uid-written-by-version-1-b",
                json!({"approved": true, "by_uid": 0, "by_user": "root", "at": ms(now)}),
            ),
        ] {
            insert_approval_row(&conn, id, uid, &state, now);
        }
    }
    let flow = open_migrated(&path);
    let page = flow.list_page(None, 10).await.unwrap();
    assert_eq!(page.requests.len(), 2);
    assert_eq!(page.more, 0);

    flow.approve("v1aaaaaa", &root(), false).await.unwrap();
    for (id, uid) in [
        ("v1aaaaaa", "uid-written-by-version-1-a"),
        ("v1bbbbbb", "uid-written-by-version-1-b"),
    ] {
        match flow.resume(uid, &alice(), &json!(null), None).await {
            FlowOutcome::Run {
                op,
                data,
                request_id,
                declaration,
                preview,
            } => {
                assert_eq!((op.as_str(), request_id.as_str()), ("restart", id));
                assert_eq!(preview, None, "held before previews were kept");
                // Held before digests were kept: the service decides (see
                // the README, "Reloading the configuration").
                assert_eq!(declaration, None);
                assert_eq!(data, json!({"service": id}));
            }
            other => panic!("{id}: expected run, got {other:?}"),
        }
    }
    assert!(flow.list_waiting().await.unwrap().is_empty());
    let integrity: String = flow
        .store()
        .database()
        .lock()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

/// A library method whose state (written at its `begin`) says the right answer:
/// a stored request of it completes only if that state is handed back as stored.
struct Passphrase;

#[async_trait::async_trait]
impl regent_auth::AuthMethod for Passphrase {
    fn name(&self) -> &str {
        "passphrase"
    }
    async fn begin(
        &self,
        _ctx: &regent_auth::StageContext<'_>,
    ) -> Result<regent_auth::StageStart, regent_auth::MethodError> {
        Ok(regent_auth::StageStart::new(
            json!({"want": "open"}),
            "Say it",
        ))
    }
    async fn check(
        &self,
        _ctx: &regent_auth::StageContext<'_>,
        state: &serde_json::Value,
        response: &serde_json::Value,
    ) -> Result<regent_auth::Check, regent_auth::MethodError> {
        Ok(
            if state.get("want").is_some() && state.get("want") == response.get("code") {
                regent_auth::Check::Passed
            } else {
                regent_auth::Check::Failed
            },
        )
    }
}

/// Requests held by the code before the flow became a state machine, written
/// row by row as that code wrote them (its columns, its stage names, and each
/// method's stage state JSON), complete with this build.
#[tokio::test]
async fn held_requests_written_before_the_state_machine_complete() {
    use regent_auth::{otp::HashedCode, Mailer, Refusal, SmtpConfig, SmtpSecurity, TotpStore};
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.path().join("pending.db");
    let now = SystemTime::now();
    let unix = now.duration_since(UNIX_EPOCH).unwrap().as_secs();

    // Alice's authenticator, enrolled 5 minutes ago so that now is a fresh step.
    let totp = std::sync::Arc::new(TotpStore::open(&path).unwrap());
    let enrollment = totp.begin_enroll("alice").unwrap();
    totp.confirm_enroll_at(
        &enrollment,
        &enrollment.secret().code_at(unix - 300),
        unix - 300,
    )
    .unwrap();
    let email_code = HashedCode::new("123456").unwrap();
    let approved_at = ms(now);
    // (request id, uid, stages, index, stage state, attempts, status, reason)
    let rows = [
        (
            "totp0001",
            "uid-totp",
            json!(["totp"]),
            0,
            json!({"user": "alice"}),
            0,
            "pending",
            None,
        ),
        (
            "mail0001",
            "uid-mail",
            json!(["email", "approval"]),
            0,
            json!({"salt": email_code.salt, "hash": email_code.hash}),
            1,
            "pending",
            None,
        ),
        (
            "appr0001",
            "uid-appr",
            json!(["totp", "approval"]),
            1,
            json!({"approved": true, "by_uid": 0, "by_user": null, "at": approved_at}),
            0,
            "pending",
            None,
        ),
        (
            "wait0001",
            "uid-wait",
            json!(["approval"]),
            0,
            json!({"approved": false}),
            0,
            "pending",
            None,
        ),
        (
            "pass0001",
            "uid-pass",
            json!(["passphrase"]),
            0,
            json!({"want": "open"}),
            0,
            "pending",
            None,
        ),
        (
            "deny0001",
            "uid-deny",
            json!(["approval"]),
            0,
            json!({"approved": false}),
            0,
            "denied",
            Some("not today"),
        ),
        (
            "fail0001",
            "uid-fail",
            json!(["email"]),
            0,
            json!({"salt": "00", "hash": "00"}),
            0,
            "failed",
            Some("The authorization email could not be sent"),
        ),
    ];
    {
        let db = regent_auth::db::open(&path).unwrap();
        let conn = db.lock();
        for (id, uid, stages, index, state, attempts, status, reason) in rows {
            let stage = stages[index].as_str().unwrap();
            let info = json!({"pending": stage, "message": "as stored", "expires_at": "2099-01-01T00:00:00Z",
                              "request_id": id, "stage": index + 1, "stages": stages.as_array().unwrap().len()});
            conn.execute(
                "INSERT INTO pending (request_id, stage_uid_hash, op, data, display_data, caller_uid,
                     caller_gid, caller_pid, caller_user, approvers, stages, stage_index, stage_state,
                     pending_info, attempts, max_attempts, created_at, expires_at, status, status_reason)
                 VALUES (?1, ?2, 'restart', ?3, ?3, 1000, 1000, 7, 'alice', '[\"admin@example.org\"]',
                     ?4, ?5, ?6, ?7, ?8, 3, ?9, ?10, ?11, ?12)",
                rusqlite::params![
                    id,
                    uid_hash(uid),
                    json!({"service": id}).to_string(),
                    stages.to_string(),
                    index as i64,
                    state.to_string(),
                    info.to_string(),
                    attempts,
                    ms(now),
                    ms(now + Duration::from_secs(600)),
                    status,
                    reason,
                ],
            )
            .unwrap();
        }
    }

    // A mailer that is never reached: the email stage is only checked here.
    let mailer = Mailer::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: 9,
        security: SmtpSecurity::None,
        credentials_file: None,
        from: "regent@example.org".into(),
    })
    .unwrap();
    let mut methods =
        MethodRegistry::with_builtins(Some(totp.clone()), Some(std::sync::Arc::new(mailer)), 6);
    assert!(methods.register(std::sync::Arc::new(Passphrase)).is_none());
    let flow = AuthFlow::open(&path, methods, FlowOptions::default()).unwrap();

    let waiting = flow.list_waiting().await.unwrap();
    assert_eq!(waiting.len(), 5, "{waiting:?}");
    let appr = waiting.iter().find(|w| w.request_id == "appr0001").unwrap();
    assert!(appr.awaiting_approval && appr.approved, "{appr:?}");
    let wait = waiting.iter().find(|w| w.request_id == "wait0001").unwrap();
    assert!(wait.awaiting_approval && !wait.approved, "{wait:?}");

    let ran = |o: FlowOutcome, id: &str| match o {
        FlowOutcome::Run {
            data, request_id, ..
        } => {
            assert_eq!(request_id, id);
            assert_eq!(data, json!({"service": id}));
        }
        other => panic!("{id}: expected run, got {other:?}"),
    };
    let resume = |uid: &'static str, response: serde_json::Value| {
        let flow = &flow;
        async move { flow.resume(uid, &alice(), &response, None).await }
    };

    // TOTP: the stored account is checked with today's code.
    let good = enrollment.secret().code_at(unix);
    ran(resume("uid-totp", json!({"code": *good})).await, "totp0001");
    // Email: the stored hash checks the code, the stored attempt counts.
    let o = resume("uid-mail", json!({"code": "654321"})).await;
    assert_eq!(
        o.refusal(),
        Some(&Refusal::WrongCode { attempts_left: 1 }),
        "one attempt was stored, this is the second of three"
    );
    let FlowOutcome::Pending { uid, info } = resume("uid-mail", json!({"code": "123456"})).await
    else {
        panic!("expected the approval stage")
    };
    assert_eq!(info.pending, "approval");
    flow.approve("mail0001", &root(), false).await.unwrap();
    ran(
        flow.resume(&uid, &alice(), &json!(null), None).await,
        "mail0001",
    );
    // Approval: approved before the change, and approved after it.
    ran(resume("uid-appr", json!(null)).await, "appr0001");
    assert!(resume("uid-wait", json!(null))
        .await
        .is_still_waiting("uid-wait"));
    flow.approve("wait0001", &root(), false).await.unwrap();
    ran(resume("uid-wait", json!(null)).await, "wait0001");
    // A library method gets its state back as stored.
    ran(
        resume("uid-pass", json!({"code": "open"})).await,
        "pass0001",
    );
    // Decided before: answered as decided.
    assert_eq!(
        resume("uid-deny", json!(null)).await.refusal(),
        Some(&Refusal::Denied {
            reason: Some("not today".into())
        })
    );
    assert_eq!(
        resume("uid-fail", json!(null)).await.refusal(),
        Some(&Refusal::Unavailable(Some(
            "The authorization email could not be sent".into()
        )))
    );
    assert!(flow.store().list().unwrap().is_empty(), "all completed");
}

fn root() -> CallerId {
    CallerId::unix(None, 0, 0, Some("root".into()))
}

/// The indexes and the TOTP failure table version 2 added, exactly as it did.
const V2: &str = "
CREATE INDEX IF NOT EXISTS pending_caller ON pending (caller_uid, op);
CREATE INDEX IF NOT EXISTS pending_created ON pending (created_at);
CREATE TABLE IF NOT EXISTS totp_failures (
    user         TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
);
PRAGMA user_version = 2;
";

/// A store written by version 2 (before held requests kept their declaration's
/// digest) opens, is migrated to version 3, and its held request completes with
/// no digest; a request held after the migration keeps the digest it was given.
#[tokio::test]
async fn a_version_2_store_opens_and_its_held_requests_complete_without_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.path().join("pending.db");
    let now = SystemTime::now();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(V2).unwrap();
        insert_approval_row(
            &conn,
            "v2aaaaaa",
            "uid-written-by-version-2",
            &json!(null),
            now,
        );
    }
    let flow = open_migrated(&path);
    flow.approve("v2aaaaaa", &root(), false).await.unwrap();
    match flow
        .resume("uid-written-by-version-2", &alice(), &json!(null), None)
        .await
    {
        FlowOutcome::Run {
            op,
            data,
            request_id,
            declaration,
            preview,
        } => {
            assert_eq!((op.as_str(), request_id.as_str()), ("restart", "v2aaaaaa"));
            assert_eq!(preview, None);
            assert_eq!(data, json!({"service": "v2aaaaaa"}));
            assert_eq!(declaration, None, "version 2 kept no digest");
        }
        other => panic!("expected run, got {other:?}"),
    }

    // Held now: the digest is stored and given back.
    let digest = regent_auth::store::declaration_digest(b"restart v3");
    let outcome = flow
        .start(regent_auth::StartRequest {
            op: "restart".into(),
            data: json!({"service": "v3"}),
            display_data: json!({"service": "v3"}),
            caller: alice(),
            stages: [regent_auth::Stage::Approval].into_iter().collect(),
            ttl: Duration::from_secs(600),
            max_attempts: 5,
            approvers: vec![],
            max_pending_per_uid: 10,
            declaration: Some(digest.clone()),
            preview: None,
        })
        .await;
    let FlowOutcome::Pending { uid, info } = outcome else {
        panic!("expected pending, got {outcome:?}")
    };
    let id = info.extra["request_id"].as_str().unwrap().to_string();
    flow.approve(&id, &root(), false).await.unwrap();
    match flow.resume(&uid, &alice(), &json!(null), None).await {
        FlowOutcome::Run { declaration, .. } => assert_eq!(declaration, Some(digest)),
        other => panic!("expected run, got {other:?}"),
    }
}
