//! Nothing blocks the event loop: a user-database lookup or a store call that
//! takes seconds delays only the connection that needs it, never another
//! caller's no-op.
//!
//! The service runs as the daemon does, on a single-threaded runtime of its own
//! thread, stopped through [`Service::run_until`]. The slowness is real: a
//! lookup that blocks its thread (injected through the library's
//! [`IdentityResolver::with_lookup`]) for a caller running as `nobody` in a
//! separate process, and an SQLite write lock held on the real store file by
//! another process (`BEGIN IMMEDIATE` from python3's `sqlite3`). The tests
//! assert on order and completion: the other callers are answered while the
//! slow call is still blocked, and the blocked call completes once released.

use crate::util::*;
use regent::identity::{lookup, IdentityResolver};
use regent::Service;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The system python (readable by every user, unlike a per-user install).
const PYTHON: &str = "/usr/bin/python3";

/// A one-request client: connect to argv[1], send argv[2], print the answer line.
const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(4096)
    if not d:
        break
    buf += d
sys.stdout.write(buf.decode())
"#;

/// `nobody`'s uid and gid: a real unprivileged user present on every system.
fn nobody() -> (u32, u32) {
    let u = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a user named nobody");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Start the one-request client as (uid, gid) in its own process.
fn client_as((uid, gid): (u32, u32), socket: &Path, request: &Value) -> Child {
    Command::new(PYTHON)
        .args(["-c", CLIENT])
        .arg(socket)
        .arg(request.to_string())
        .uid(uid)
        .gid(gid)
        .env_clear()
        .current_dir("/")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the python client")
}

/// The answer a [`client_as`] process printed.
fn answer_of(child: Child) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client printed no answer ({e}): {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A service running on its own thread's single-threaded runtime until `stop`.
struct Running {
    dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), regent::Error>>>,
}

impl Running {
    /// Build the service (socket 0666 in a 0755 directory) with `configure`,
    /// serve it with `run_until`, and wait until it answers.
    fn start(
        configure: impl FnOnce(regent::server::ServiceBuilder, &Path) -> regent::server::ServiceBuilder,
    ) -> Running {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("regent.sock");
        let builder = Service::builder(&socket)
            .mode(0o666)
            .register("caller", Caller)
            .unwrap();
        let service = configure(builder, dir.path()).build().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(service.run_until(async {
                    let _ = stopped.await;
                }))
        });
        let running = Running {
            dir,
            socket,
            stop: Some(stop),
            thread: Some(thread),
        };
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&running.socket).is_ok() {
                return running;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the service did not start listening");
    }

    /// Stop through the `run_until` future; the socket is removed.
    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = self.thread.take().unwrap().join().unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(!self.socket.exists(), "run_until removes the socket");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn noop() -> String {
    json!({"op": "caller", "data": null}).to_string()
}

#[test]
fn a_slow_user_lookup_delays_only_its_own_connection() {
    let slow = nobody();
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    // nobody's lookup blocks its thread until the test releases it (at most
    // 20 s), as an LDAP lookup that takes seconds would; everyone else's is the
    // system's own.
    let resolver = IdentityResolver::with_lookup(Duration::from_secs(5), 64, move |uid, gid| {
        if uid == slow.0 {
            let _ = started_tx.send(());
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20));
            done.store(true, Ordering::SeqCst);
        }
        lookup(uid, gid)
    });
    let service = Running::start(|b, _| b.identity_resolver(resolver));

    let slow_client = client_as(
        slow,
        &service.socket,
        &json!({"op": "caller", "data": null}),
    );
    started
        .recv_timeout(Duration::from_secs(30))
        .expect("nobody's lookup started");
    // While it is blocked: root's no-ops, each on a new connection, are answered
    // (with a 5 s read limit, well before the lookup would give up by itself).
    for _ in 0..3 {
        let r = Raw::connect(&service.socket).roundtrip(&noop());
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["data"]["uid"], 0, "{r}");
    }
    assert!(
        !finished.load(Ordering::SeqCst),
        "root was answered only after nobody's slow lookup had finished"
    );
    // Released, the waiting connection is served with its own identity.
    release.send(()).unwrap();
    let r = answer_of(slow_client);
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["uid"], slow.0, "{r}");
    assert_eq!(r["data"]["user"], "nobody", "{r}");
    service.stop();
}

/// Holds an SQLite write lock (`BEGIN IMMEDIATE`) on a database from another
/// process until [`Locker::release`].
struct Locker {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

const LOCKER: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("ROLLBACK")
c.close()
print("released", flush=True)
"#;

impl Locker {
    fn lock(db: &Path) -> Locker {
        let mut child = Command::new(PYTHON)
            .args(["-c", LOCKER])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the python locker");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked");
        Locker { child, out }
    }

    fn release(mut self) {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "released");
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_store_call_waiting_on_a_locked_database_delays_no_one_else() {
    let service = Running::start(|b, dir| b.pending_store(dir.join("state/pending.db")));
    let db = service.dir.path().join("state/pending.db");
    // Warm: root's identity is cached and the store has been used once.
    let mut admin = Raw::connect(&service.socket);
    let first = admin.roundtrip(&json!({"op": "regent.pending", "data": {}}).to_string());
    assert_eq!(first["success"], true, "{first}");

    let locker = Locker::lock(&db);
    // The administrator's listing purges expired requests first: a write, which
    // waits for the lock (the store's busy timeout is 5 s).
    admin.send(format!("{}\n", json!({"op": "regent.pending", "data": {}})).as_bytes());
    // Meanwhile: other callers' no-ops, root's and nobody's, are answered.
    for _ in 0..3 {
        let r = Raw::connect(&service.socket).roundtrip(&noop());
        assert_eq!(r["success"], true, "{r}");
    }
    let r = answer_of(client_as(
        nobody(),
        &service.socket,
        &json!({"op": "caller", "data": null}),
    ));
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["user"], "nobody", "{r}");
    // The listing is still waiting for the lock ...
    admin.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let read = admin.stream.read(&mut byte);
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the listing was answered while the store was locked: {read:?}"
    );
    admin.stream.set_nonblocking(false).unwrap();
    // ... and completes once the lock is released.
    locker.release();
    let r = admin.recv().expect("the listing's answer");
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["requests"], json!([]), "{r}");
    service.stop();
}

#[test]
fn a_totp_check_waiting_on_a_locked_store_completes_after_release() {
    let service = Running::start(|b, dir| {
        b.pending_store(dir.join("state/pending.db"))
            .register_with(
                "gated",
                Caller,
                regent::OpOptions::new().auth([regent::Stage::Totp]),
            )
            .unwrap()
    });
    let db = service.dir.path().join("state/pending.db");
    // Enrol root, recording the previous step as used so that the current
    // step's code is fresh.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let totp = regent::auth::TotpStore::open(&db).unwrap();
    let enrollment = totp.begin_enroll("root").unwrap();
    let earlier = now - 30;
    totp.confirm_enroll_at(&enrollment, &enrollment.secret().code_at(earlier), earlier)
        .unwrap();
    drop(totp);

    let mut caller = Raw::connect(&service.socket);
    let held = caller.roundtrip(&json!({"op": "gated", "data": null}).to_string());
    let uid = held["uid"]
        .as_str()
        .unwrap_or_else(|| panic!("held: {held}"));
    let code = enrollment.secret().code_at(now);

    let locker = Locker::lock(&db);
    // Checking the code records its step: a write, which waits for the lock.
    let resume = json!({"uid": uid, "data": {"code": code.as_str()}});
    caller.send(format!("{resume}\n").as_bytes());
    for _ in 0..3 {
        let r = Raw::connect(&service.socket).roundtrip(&noop());
        assert_eq!(r["success"], true, "{r}");
    }
    let r = answer_of(client_as(
        nobody(),
        &service.socket,
        &json!({"op": "caller", "data": null}),
    ));
    assert_eq!(r["data"]["user"], "nobody", "{r}");
    caller.stream.set_nonblocking(true).unwrap();
    let read = caller.stream.read(&mut [0u8; 1]);
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the code was checked while the store was locked: {read:?}"
    );
    caller.stream.set_nonblocking(false).unwrap();
    // Released: the code is accepted and the held request runs.
    locker.release();
    let r = caller.recv().expect("the held request's answer");
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["uid"], Value::Null, "{r}");
    assert_eq!(r["data"]["uid"], 0, "{r}");
    service.stop();
}

#[test]
fn a_user_database_that_does_not_answer_closes_only_the_waiting_connection() {
    let slow = nobody();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let resolver = IdentityResolver::with_lookup(Duration::from_secs(5), 64, move |uid, gid| {
        if uid == slow.0 {
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20));
        }
        lookup(uid, gid)
    });
    let service = Running::start(|b, _| {
        b.identity_resolver(resolver).limits(regent::Limits {
            idle_timeout: Duration::from_millis(300),
            ..regent::Limits::default()
        })
    });
    // nobody's lookup hangs: after idle_timeout its connection is answered
    // `busy` and closed; root is served all along.
    let slow_client = client_as(
        slow,
        &service.socket,
        &json!({"op": "caller", "data": null}),
    );
    let r = Raw::connect(&service.socket).roundtrip(&noop());
    assert_eq!(r["data"]["uid"], 0, "{r}");
    let r = answer_of(slow_client);
    assert_eq!(r["code"], "busy", "{r}");
    // Once the database answers, nobody is served.
    release.send(()).unwrap();
    let r = answer_of(client_as(
        slow,
        &service.socket,
        &json!({"op": "caller", "data": null}),
    ));
    assert_eq!(r["data"]["user"], "nobody", "{r}");
    service.stop();
}
