//! A store written by schema version 1 (the first release) opens with this
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
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let flow = AuthFlow::open(
        &path,
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
    let page = flow.list_page(None, 10).await.unwrap();
    assert_eq!(page.requests.len(), 2);
    assert_eq!(page.more, 0);

    let root = CallerId::unix(None, 0, 0, Some("root".into()));
    flow.approve("v1aaaaaa", &root, false).await.unwrap();
    for (id, uid) in [
        ("v1aaaaaa", "uid-written-by-version-1-a"),
        ("v1bbbbbb", "uid-written-by-version-1-b"),
    ] {
        match flow.resume(uid, &alice(), &json!(null), None).await {
            FlowOutcome::Run {
                op,
                data,
                request_id,
            } => {
                assert_eq!((op.as_str(), request_id.as_str()), ("restart", id));
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
