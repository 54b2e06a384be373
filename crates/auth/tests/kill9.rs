//! Pending requests survive a `kill -9` of the process holding the store: a child
//! process (this test binary, re-run on the helper entry point) starts a request
//! and is killed with SIGKILL while the database is open; the parent reopens the
//! store, approves the request and completes it with the child's uid.

use regent_auth::{AuthFlow, CallerId, FlowOptions, FlowOutcome, MethodRegistry, StartRequest};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const DB_ENV: &str = "REGENT_AUTH_KILL9_DB";
const OUT_ENV: &str = "REGENT_AUTH_KILL9_OUT";

fn alice() -> CallerId {
    CallerId::unix(None, 1000, 1000, Some("alice".into()))
}

fn flow(db: &std::path::Path) -> AuthFlow {
    AuthFlow::open(
        db,
        MethodRegistry::with_builtins(None, None, 6),
        FlowOptions::default(),
    )
    .unwrap()
}

/// The child's part. Does nothing unless the parent test set the environment.
#[tokio::test]
async fn kill9_child_helper() {
    let (Ok(db), Ok(out)) = (std::env::var(DB_ENV), std::env::var(OUT_ENV)) else {
        return;
    };
    let flow = flow(&PathBuf::from(db));
    let outcome = flow
        .start(StartRequest {
            op: "reboot".into(),
            data: json!({"delay": 5}),
            display_data: json!({"delay": 5}),
            caller: alice(),
            stages: [regent_auth::Stage::Approval].into_iter().collect(),
            ttl: Duration::from_secs(600),
            max_attempts: 5,
            approvers: vec![],
            max_pending_per_uid: 100,
            declaration: None,
            preview: None,
        })
        .await;
    let FlowOutcome::Pending { uid, info } = outcome else {
        panic!("expected pending")
    };
    let line = format!("{uid} {}\n", info.extra["request_id"].as_str().unwrap());
    std::fs::write(format!("{out}.tmp"), line).unwrap();
    std::fs::rename(format!("{out}.tmp"), &out).unwrap();
    // Hold the database open until killed.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_pending_request_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/auth.db");
    let out = dir.path().join("uid.txt");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, &db)
        .env(OUT_ENV, &out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the child never wrote its uid");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));

    let text = std::fs::read_to_string(&out).unwrap();
    let (uid, id) = text.trim().split_once(' ').unwrap();
    let flow = flow(&db);
    let waiting = flow.list_waiting().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].op, "reboot");
    let root = CallerId::unix(None, 0, 0, Some("root".into()));
    flow.approve(id, &root, false).await.unwrap();
    match flow.resume(uid, &alice(), &Value::Null, None).await {
        FlowOutcome::Run {
            op,
            data,
            request_id,
            declaration: None,
            preview: None,
        } => {
            assert_eq!((op.as_str(), request_id.as_str()), ("reboot", id));
            assert_eq!(data, json!({"delay": 5}));
        }
        other => panic!("expected run, got {other:?}"),
    }
}
