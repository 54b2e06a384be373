//! The core protocol through a real socket: every error code that applies without
//! pending requests, the limits, concurrency and shutdown.

use crate::util::*;
use regent::client::{AsyncClient, Client, ClientError, Outcome};
use regent::proto::ErrorCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_and_several_requests_per_connection() {
    let s = start().await;
    let path = s.path.clone();
    blocking(move || {
        let mut c = Raw::connect(&path);
        let r = c.roundtrip(&req("echo", json!({"message": "hi", "times": 2})));
        assert_eq!(r, json!({"success": true, "uid": null, "data": "hihi"}));
        let r = c.roundtrip(&req("echo", json!({"message": "again"})));
        assert_eq!(r["data"], "again");
        // Two requests in one write are answered in order.
        c.send(
            format!(
                "{}\n{}\n",
                req("echo", json!({"message": "a"})),
                req("echo", json!({"message": "b"}))
            )
            .as_bytes(),
        );
        assert_eq!(c.recv().unwrap()["data"], "a");
        assert_eq!(c.recv().unwrap()["data"], "b");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests() {
    let s = start().await;
    let path = s.path.clone();
    blocking(move || {
        let mut c = Raw::connect(&path);
        for line in [
            "not json".to_string(),
            "[1,2,3]".to_string(),
            json!({"secret": SECRET}).to_string(),
            json!({"secret": SECRET, "op": "echo", "uid": "x"}).to_string(),
            json!({"secret": SECRET, "op": 5}).to_string(),
        ] {
            let r = c.roundtrip(&line);
            assert_eq!(code(&r), "bad_request", "{line} -> {r}");
            assert!(
                r["error"].as_str().unwrap().starts_with("Invalid message"),
                "{r}"
            );
        }
        // The connection survives bad requests.
        assert_eq!(
            c.roundtrip(&req("echo", json!({"message": "ok"})))["data"],
            "ok"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_is_checked_before_anything_else() {
    let s = start().await;
    let path = s.path.clone();
    blocking(move || {
        let mut c = Raw::connect(&path);
        for line in [
            json!({"op": "echo", "data": {"message": "x"}}).to_string(),
            json!({"secret": "wrong", "op": "echo", "data": {"message": "x"}}).to_string(),
            json!({"secret": "wrong", "op": "no-such-op"}).to_string(),
            json!({"secret": "", "op": "regent.ops"}).to_string(),
            json!({"secret": "wrong", "uid": "whatever"}).to_string(),
        ] {
            let r = c.roundtrip(&line);
            assert_eq!(
                r,
                json!({"error": "Permission denied", "code": "permission_denied"}),
                "{line}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_invalid_failed_and_policy_denied() {
    let s = start().await;
    let path = s.path.clone();
    blocking(move || {
        let mut c = Raw::connect(&path);
        assert_eq!(
            code(&c.roundtrip(&req("nope", Value::Null))),
            "unknown_operation"
        );
        let r = c.roundtrip(&req("echo", json!({"message": 5})));
        assert_eq!(code(&r), "invalid_data");
        assert!(r["error"].as_str().unwrap().contains("message"), "{r}");
        let r = c.roundtrip(&req("echo", json!({"message": "x", "extra": 1})));
        assert_eq!(code(&r), "invalid_data");
        assert!(r["error"].as_str().unwrap().contains("extra"), "{r}");
        let r = c.roundtrip(&req("echo", json!({"message": "x".repeat(101)})));
        assert_eq!(code(&r), "invalid_data");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("message: longer than 100"),
            "{r}"
        );
        let r = c.roundtrip(&req("echo", Value::Null));
        assert_eq!(code(&r), "invalid_data");
        let r = c.roundtrip(&req("fail", Value::Null));
        assert_eq!(
            r,
            json!({"error": "the disk is on fire", "code": "operation_failed"})
        );
        // The tests run as root: root-only passes, a group root is not in is refused.
        assert_eq!(
            c.roundtrip(&req("root-only", Value::Null))["data"]["uid"],
            0
        );
        assert_eq!(
            code(&c.roundtrip(&req("nobody-only", Value::Null))),
            "permission_denied"
        );
        // A continue with an unknown uid.
        let r = c.roundtrip(
            &json!({"secret": SECRET, "uid": "nope", "data": {"code": "1"}}).to_string(),
        );
        assert_eq!(code(&r), "not_found");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_identity_comes_from_the_kernel_not_the_client() {
    let s = start().await;
    let path = s.path.clone();
    blocking(move || {
        let mut c = Raw::connect(&path);
        let r = c.roundtrip(
            &json!({"secret": SECRET, "op": "caller", "uid_claim": 1000, "user": "alice"})
                .to_string(),
        );
        assert_eq!(r["data"]["uid"], 0);
        assert_eq!(r["data"]["user"], "root");
        assert_eq!(r["data"]["pid"], std::process::id());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_lists_only_what_the_caller_may_call() {
    let s = start().await;
    let client = Client::new(&s.path).secret(SECRET);
    let ops = blocking(move || {
        client
            .call_as::<Vec<Value>>("regent.ops", Value::Null)
            .unwrap()
    })
    .await;
    let names: Vec<&str> = ops.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"root-only"),
        "{names:?}"
    );
    assert!(!names.contains(&"nobody-only"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_answers_then_closes() {
    let s = start().await;
    let path = s.path.clone();
    blocking(move || {
        let mut c = Raw::connect(&path);
        let big = format!(
            "{{\"secret\": \"{SECRET}\", \"op\": \"echo\", \"data\": {{\"message\": \"{}\"}}}}\n",
            "x".repeat(5000)
        );
        // The service may close before we finish writing; ignore write errors.
        let _ = std::io::Write::write_all(&mut c.stream, big.as_bytes());
        let r = c.recv().expect("too_large response");
        assert_eq!(code(&r), "too_large");
        assert_eq!(c.recv(), None, "connection closed after too_large");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_line_and_idle_connection_are_closed() {
    let s = start().await;
    let path = s.path.clone();
    blocking(move || {
        // Started line never finished: closed after line_timeout (300 ms), no answer.
        let mut c = Raw::connect(&path);
        c.send(b"{\"secret\": ");
        let t = Instant::now();
        assert_eq!(c.recv(), None);
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(250) && e < Duration::from_secs(3),
            "{e:?}"
        );
        // Idle: closed after idle_timeout (800 ms).
        let mut c = Raw::connect(&path);
        let t = Instant::now();
        assert_eq!(c.recv(), None);
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(700) && e < Duration::from_secs(4),
            "{e:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_concurrency_limit() {
    let s = start().await;
    let client = AsyncClient::new(&s.path).secret(SECRET);
    match client.call("sleep", json!({"ms": 2000})).await.unwrap() {
        Outcome::Error { code, .. } => assert_eq!(code, Some(ErrorCode::Timeout)),
        other => panic!("{other:?}"),
    }
    // sleep allows 2 at once: the third concurrent call is busy.
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("sleep", json!({"ms": 300})).await.unwrap() })
        })
        .collect();
    let mut busy = 0;
    let mut done = 0;
    for c in calls {
        match c.await.unwrap() {
            Outcome::Done(_) => done += 1,
            Outcome::Error {
                code: Some(ErrorCode::Busy),
                ..
            } => busy += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((done, busy), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_operation_does_not_block_others() {
    let s = start().await;
    let client = AsyncClient::new(&s.path).secret(SECRET);
    let slow = {
        let c = client.clone();
        tokio::spawn(async move { c.call("sleep", json!({"ms": 400})).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            client.call("echo", json!({"message": "x"})).await.unwrap(),
            Outcome::Done(json!("x"))
        );
    }
    assert!(
        t.elapsed() < Duration::from_millis(350),
        "fast calls waited for the slow one: {:?}",
        t.elapsed()
    );
    assert_eq!(slow.await.unwrap(), Outcome::Done(json!(400)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_answers_busy() {
    let mut l = limits();
    l.max_connections = 2;
    l.idle_timeout = Duration::from_secs(5);
    let s = start_with(l).await;
    let path = s.path.clone();
    blocking(move || {
        let mut a = Raw::connect(&path);
        let mut b = Raw::connect(&path);
        assert_eq!(
            a.roundtrip(&req("echo", json!({"message": "a"})))["data"],
            "a"
        );
        assert_eq!(
            b.roundtrip(&req("echo", json!({"message": "b"})))["data"],
            "b"
        );
        let mut c = Raw::connect(&path);
        assert_eq!(code(&c.recv().expect("busy line")), "busy");
        drop(a);
        std::thread::sleep(Duration::from_millis(100));
        let mut d = Raw::connect(&path);
        assert_eq!(
            d.roundtrip(&req("echo", json!({"message": "d"})))["data"],
            "d"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let s = start().await;
    let client = AsyncClient::new(&s.path).secret(SECRET);
    shut_down_during_a_request(s, &client).await;
    // Nobody listens any more.
    match client.call("echo", json!({"message": "x"})).await {
        Err(ClientError::Refused(_)) | Err(ClientError::NoSocket(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::new(dir.path().join("missing.sock"));
    let e = c.call("x", Value::Null).unwrap_err();
    assert!(matches!(e, ClientError::NoSocket(_)), "{e}");
    assert!(e.to_string().contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_huge_strings_and_deep_nesting() {
    let mut l = limits();
    l.max_line = 1 << 20;
    let s = start_with(l).await;
    let path = s.path.clone();
    blocking(move || {
        let mut c = Raw::connect(&path);
        let deep = format!(
            "{{\"secret\": \"{SECRET}\", \"op\": \"echo\", \"data\": {}{}}}",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert_eq!(code(&c.roundtrip(&deep)), "bad_request");
        let huge = req("echo", json!({"message": "y".repeat(900_000)}));
        assert_eq!(code(&c.roundtrip(&huge)), "invalid_data");
        let nul = "{\"secret\": \"x\0\", \"op\": \"echo\"}";
        assert_eq!(code(&c.roundtrip(nul)), "bad_request");
        assert_eq!(
            c.roundtrip(&req("echo", json!({"message": "still here"})))["data"],
            "still here"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_acceptor_threads_serve_and_shut_down_gracefully() {
    let mut l = limits();
    l.acceptors = 3;
    let s = start_with(l).await;
    let client = AsyncClient::new(&s.path).secret(SECRET);
    let calls: Vec<_> = (0..60)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move {
                c.call("echo", json!({"message": format!("m{i}")}))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(c.await.unwrap(), Outcome::Done(json!(format!("m{i}"))));
    }
    // A request in flight on whichever thread accepted it still finishes.
    shut_down_during_a_request(s, &client).await;
}

/// Start a 300 ms request, shut the service down while it runs, and check that the
/// request still got its answer and the service stopped cleanly.
async fn shut_down_during_a_request(s: TestService, client: &AsyncClient) {
    let in_flight = {
        let c = client.clone();
        tokio::spawn(async move { c.call("sleep", json!({"ms": 300})).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.handle.shutdown();
    assert_eq!(in_flight.await.unwrap().unwrap(), Outcome::Done(json!(300)));
    s.task.await.unwrap().unwrap();
}

/// Regression (the demo's `regent call` failed with "Interrupted system call"): a
/// signal caught by the client's process while its blocking client waits for an
/// answer interrupts the read (a socket read with a timeout is never restarted,
/// whatever `SA_RESTART` says); the client reads again instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_survives_signals_caught_while_it_waits() {
    use nix::sys::pthread::{pthread_kill, pthread_self};
    use nix::sys::signal::Signal;
    let s = start().await;
    // A handler for SIGUSR1 in this process (tokio's, installed with SA_RESTART).
    let mut usr1 =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).unwrap();
    let path = s.path.clone();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let caller = std::thread::spawn(move || {
        tid_tx.send(pthread_self()).unwrap();
        Client::new(&path)
            .secret(SECRET)
            .call("sleep", json!({"ms": 400}))
    });
    let tid = tid_rx.recv().unwrap();
    let mut sent = 0;
    while !caller.is_finished() {
        std::thread::sleep(Duration::from_millis(10));
        if !caller.is_finished() && pthread_kill(tid, Signal::SIGUSR1).is_ok() {
            sent += 1;
        }
    }
    match caller.join().unwrap() {
        Ok(Outcome::Done(_)) => {}
        other => panic!("the call failed when signalled ({sent} signals): {other:?}"),
    }
    assert!(sent > 5, "the call ended before it was signalled ({sent})");
    assert!(usr1.recv().await.is_some());
}
