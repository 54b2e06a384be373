//! Held requests through the library face (the daemon's are in crates/cli/tests).

use crate::util::SECRET;
use regent::client::{AsyncClient, Outcome};
use regent::operation::{Authorization, Context, OpError, Operation};
use regent::{Caller, OpOptions, Service};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

struct Gated;

#[derive(Serialize, Deserialize)]
struct GatedData {
    ms: u64,
    approve: bool,
}

impl Operation for Gated {
    type Data = GatedData;
    type Output = u64;
    fn authorize(&self, _: &Caller, d: &GatedData) -> Authorization {
        if d.approve {
            Authorization::require([regent::Stage::Approval])
        } else {
            Authorization::Allow
        }
    }
    async fn perform(&self, _: Context, d: GatedData) -> Result<u64, OpError> {
        tokio::time::sleep(Duration::from_millis(d.ms)).await;
        Ok(d.ms)
    }
}

/// Regression: an approved request whose operation is at its concurrency limit
/// waits for a slot; it is not answered `busy` (its uid is already used up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_request_waits_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("r.sock");
    let service = Service::builder(&path)
        .secret_str(SECRET)
        .pending_store(dir.path().join("state/pending.db"))
        .allow_self_approval(true)
        .register_with(
            "gated",
            Gated,
            OpOptions::new()
                .concurrency(1)
                .timeout(Duration::from_secs(5)),
        )
        .unwrap()
        .build()
        .unwrap();
    let (handle, task) = service.spawn().unwrap();
    let client = AsyncClient::new(&path).secret(SECRET);

    let Outcome::Pending { uid, info } = client
        .call("gated", json!({"ms": 50, "approve": true}))
        .await
        .unwrap()
    else {
        panic!("not held")
    };
    let id = info["request_id"].as_str().unwrap().to_string();
    assert!(matches!(
        client
            .call("regent.approve", json!({"id": id}))
            .await
            .unwrap(),
        Outcome::Done(_)
    ));

    // Take the only slot, then resume the approved request while it is taken.
    let busy_one = {
        let c = client.clone();
        tokio::spawn(async move {
            c.call("gated", json!({"ms": 400, "approve": false}))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A new request is turned away at once...
    match client
        .call("gated", json!({"ms": 1, "approve": false}))
        .await
        .unwrap()
    {
        Outcome::Error { code, .. } => assert_eq!(code, Some(regent::proto::ErrorCode::Busy)),
        other => panic!("{other:?}"),
    }
    // ...but the approved one waits and runs.
    assert_eq!(
        client.resume(&uid, serde_json::Value::Null).await.unwrap(),
        Outcome::Done(json!(50))
    );
    assert_eq!(busy_one.await.unwrap(), Outcome::Done(json!(400)));
    handle.shutdown();
    task.await.unwrap().unwrap();
}
