//! Interop with the Python Regent 0.1.0 (PyPI `regent`), the protocol's origin:
//!
//! - its client (`regent.client.Client`) calling our service, through
//!   `tests/python/py_client.py`;
//! - our clients (blocking and async) calling its service (`regent.service.Service`),
//!   run by `tests/python/py_service.py`.
//!
//! The Python package is required: without it these tests fail and say how to
//! install it (`pip install regent==0.1.0`). Secrets reach the scripts on stdin,
//! never on their command line.

use crate::util::*;
use regent::client::{AsyncClient, Client, ClientError, Outcome};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PIP_HINT: &str = "pip install regent==0.1.0";

/// The Python interpreter (`REGENT_TEST_PYTHON` or `python3`), checked to import
/// Regent 0.1.0. Panics with the install command when it cannot.
fn python() -> String {
    let python = std::env::var("REGENT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(&python)
        .args([
            "-c",
            "import regent, regent.client, regent.service; print(regent.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): the interop tests need Python 3 with the Python Regent client; install python3, then: {PIP_HINT}")
        });
    assert!(
        out.status.success(),
        "the Python Regent package is not importable by {python}: {}\ninstall it with: {PIP_HINT} (for this interpreter: {python} -m {PIP_HINT})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        version, "0.1.0",
        "the interop tests target Python Regent 0.1.0, found {version}; install it with: {PIP_HINT}"
    );
    python
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Run `py_client.py` on `spec` and return its list of responses.
fn python_client(python: &str, spec: Value) -> Vec<Value> {
    let mut child = Command::new(python)
        .arg(script("py_client.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start py_client.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "py_client.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "py_client.py printed no JSON list ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_our_service() {
    let python = python();
    let s = start().await;
    let spec = json!({
        "socket": s.path,
        "secret": SECRET,
        "calls": [
            {"op": "echo", "data": {"message": "hi", "times": 2}},
            {"op": "caller"},
            {"op": "echo", "data": {"message": "x"}, "secret": "not-the-secret"},
            {"op": "no-such-op", "data": null},
            {"op": "echo", "data": {"message": 5}},
            {"op": "echo", "data": {"message": "x", "evil": true}},
            {"op": "fail"},
        ]
    });
    let r = blocking(move || python_client(&python, spec)).await;
    assert_eq!(r.len(), 7, "{r:?}");

    // Success: exactly the shape the Python client expects.
    assert_eq!(r[0], json!({"success": true, "uid": null, "data": "hihi"}));
    // No data (the client sends `"data": null`); the kernel's uid reaches the op.
    assert_eq!(r[1]["success"], true, "{}", r[1]);
    assert_eq!(
        r[1]["data"]["uid"],
        nix::unistd::getuid().as_raw(),
        "{}",
        r[1]
    );
    assert_eq!(r[1]["data"]["pid"].as_i64().map(|p| p > 0), Some(true));
    // Wrong secret: the Python wording, plus our code.
    assert_eq!(
        r[2],
        json!({"error": "Permission denied", "code": "permission_denied"})
    );
    assert_eq!(
        r[3],
        json!({"error": "Unknown operation", "code": "unknown_operation"})
    );
    for bad in [&r[4], &r[5]] {
        assert_eq!(bad["code"], "invalid_data", "{bad}");
        assert!(bad.get("success").is_none(), "{bad}");
    }
    let msg = r[4]["error"].as_str().unwrap();
    assert!(msg.starts_with("Invalid data: message"), "{msg}");
    assert!(r[5]["error"].as_str().unwrap().contains("evil"), "{}", r[5]);
    assert_eq!(
        r[6],
        json!({"error": "the disk is on fire", "code": "operation_failed"})
    );

    s.handle.shutdown();
    s.task.await.unwrap().unwrap();
}

/// The Python service, killed when dropped.
struct PyService {
    child: Child,
    path: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyService {
    fn start(python: &str, secret: &str) -> PyService {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("py-regent.sock");
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(python)
            .arg(script("py_service.py"))
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start py_service.py");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{secret}\n").as_bytes()).unwrap();
        drop(stdin);
        let service = PyService {
            child,
            path,
            stderr,
            _dir: dir,
        };
        service.wait_ready(secret);
        service
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait until the socket exists and the service answers a real call.
    fn wait_ready(&self, secret: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = Client::new(&self.path)
            .secret(secret)
            .timeout(Duration::from_secs(10));
        loop {
            if self.path.exists() {
                match client.call("whoami", Value::Null) {
                    Ok(_) => return,
                    Err(ClientError::Refused(_) | ClientError::NoSocket(_)) => {}
                    Err(e) => panic!("the Python service answered badly: {e}\n{}", self.stderr()),
                }
            }
            assert!(
                Instant::now() < deadline,
                "the Python service did not come up on {}\n{}",
                self.path.display(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PyService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn error(message: &str) -> Outcome {
    Outcome::Error {
        code: None,
        message: message.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_calls_the_python_service() {
    let python = python();
    let secret = "py-interop-secret-42";
    let (service, path) = blocking(move || {
        let s = PyService::start(&python, secret);
        let p = s.path.clone();
        (s, p)
    })
    .await;
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .expect("the test user has a name")
        .name;

    let p = path.clone();
    blocking(move || {
        let client = Client::new(&p).secret(secret);
        assert_eq!(
            client.call("whoami", Value::Null).unwrap(),
            Outcome::Done(json!(me))
        );
        assert_eq!(
            client.call("greet", json!({"name": "ada"})).unwrap(),
            Outcome::Done(json!({"greeting": "hello ada", "length": 3}))
        );
        let typed: Value = client.call_as("greet", json!({"name": "bo"})).unwrap();
        assert_eq!(typed["length"], 2);

        // Its errors carry no code: `code: None` with its sentence.
        assert_eq!(
            client.call("greet", json!({"name": 5})).unwrap(),
            error("Invalid data: name must be a non-empty string")
        );
        assert_eq!(
            client.call("greet", Value::Null).unwrap(),
            error("Invalid data: data must be an object with a name")
        );
        assert_eq!(
            client.call("no-such-op", Value::Null).unwrap(),
            error("Unknown operation")
        );
        match client.call_as::<Value>("no-such-op", Value::Null) {
            Err(ClientError::Service {
                code: None,
                message,
            }) => {
                assert_eq!(message, "Unknown operation")
            }
            other => panic!("expected a service error, got {other:?}"),
        }
        // Wrong secret (the Python service sleeps 1 s first).
        let wrong = Client::new(&p).secret("not-the-secret");
        assert_eq!(
            wrong.call("whoami", Value::Null).unwrap(),
            error("Permission denied")
        );
        // And it still serves afterwards.
        assert!(matches!(
            client.call("whoami", Value::Null).unwrap(),
            Outcome::Done(_)
        ));
    })
    .await;

    // The async client too.
    let client = AsyncClient::new(&path).secret(secret);
    assert_eq!(
        client
            .call("greet", json!({"name": "async"}))
            .await
            .unwrap(),
        Outcome::Done(json!({"greeting": "hello async", "length": 5}))
    );
    let outcome = client.call("greet", json!({})).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Error { code: None, message } if message.starts_with("Invalid data")),
        "{outcome:?}"
    );
    drop(service);
}
