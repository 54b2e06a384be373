//! The audit log keeps every record (issue 8 §5): when stderr is slower than the
//! records come, requests wait for room in the log's queue instead of their
//! records being dropped, and a graceful stop writes everything queued, however
//! long stderr takes.
//!
//! The daemon's stderr goes through a pipe to a relay that the test pauses (by a
//! file): a real slow log reader, as a stuck journal or a full disk would be.

use crate::util::{user, wait_timeout, write_config, Daemon, SECRET};
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Copies its child's stderr to its own, except while the file `argv[1]` exists;
/// passes SIGTERM/SIGINT on to the child and exits with its status.
const RELAY: &str = r#"
import os, signal, subprocess, sys, time
pause = sys.argv[1]
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, f: child.send_signal(n))
fd = child.stderr.fileno()
while True:
    if os.path.exists(pause):
        time.sleep(0.01)
        continue
    b = os.read(fd, 65536)
    if not b:
        break
    sys.stderr.buffer.write(b)
    sys.stderr.buffer.flush()
code = child.wait()
sys.exit(code if code >= 0 else 128 - code)
"#;

/// A caller: `WORKERS` persistent connections, each sending `PER` `regent.ops`
/// requests in turn and printing `ok` for each successful answer.
const CLIENT: &str = r#"
import os, socket, sys, threading
path, per, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = ('{"secret": "%s", "op": "regent.ops", "data": null}\n' % os.environ["S"]).encode()
out = threading.Lock()
def work():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile("rb")
    for _ in range(per):
        try:
            s.sendall(line)
            reply = f.readline()
        except OSError:
            return
        if not reply:
            return
        if b'"success":true' in reply:
            with out:
                sys.stdout.write("ok\n")
                sys.stdout.flush()
ts = [threading.Thread(target=work) for _ in range(workers)]
for t in ts: t.start()
for t in ts: t.join()
"#;

#[test]
fn a_slow_log_holds_requests_back_and_a_graceful_stop_writes_every_record() {
    let (uid, gid) = user("regent-e2e-log");
    let (dir, socket, config, secret_file) = write_config(
        "socket_mode = \"0666\"\n",
        "[operations.t]\ncommand = [\"true\"]\n",
    );
    let mut d = Daemon::from_parts(dir, socket, config, secret_file);
    let relay = d.dir.path().join("relay.py");
    std::fs::write(&relay, RELAY).unwrap();
    let client = d.dir.path().join("client.py");
    std::fs::write(&client, CLIENT).unwrap();
    let pause = d.dir.path().join("pause");
    d.spawn_with(
        &["python3", relay.to_str().unwrap(), pause.to_str().unwrap()],
        "json",
    );

    // The log reader stops reading; a caller sends far more requests than the
    // pipe and the log's queue hold (each record is a few hundred bytes).
    std::fs::write(&pause, "").unwrap();
    let (workers, per) = (8, 1500);
    let mut caller = Command::new("python3")
        .arg(&client)
        .arg(&d.socket)
        .arg(per.to_string())
        .arg(workers.to_string())
        .env_clear()
        .env("S", SECRET)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = {
        let answered = answered.clone();
        let out = caller.stdout.take().unwrap();
        std::thread::spawn(move || {
            for _ in std::io::BufReader::new(out).lines() {
                answered.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Wait until the answers stop coming (or all came, which is the failure).
    let (mut last, mut since) = (0, Instant::now());
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = answered.load(Ordering::SeqCst);
        if now == workers * per || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        } else if now > 0 && since.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    let held = answered.load(Ordering::SeqCst);
    assert!(held > 0, "no request was answered before the log filled");
    assert!(
        held < workers * per,
        "all {held} requests were answered while nothing read the log: records were dropped or queued without bound"
    );

    // A graceful stop while the log is still not read, held longer than a
    // writer that gives up after a timeout would wait; then the reader resumes.
    let relay_pid = nix::unistd::Pid::from_raw(d.pid());
    nix::sys::signal::kill(relay_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::remove_file(&pause).unwrap();
    let mut child = d.child.take().unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(60));
    assert!(status.success(), "daemon: {status}");
    wait_timeout(&mut caller, Duration::from_secs(30));
    counter.join().unwrap();
    let answered = answered.load(Ordering::SeqCst);

    let log = d.log_text();
    let mut records = 0;
    for line in log.lines() {
        let r: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        if r["fields"]["message"] == "request" && r["fields"]["uid"] == uid {
            assert_eq!(r["fields"]["op"], "regent.ops", "{line}");
            records += 1;
        }
    }
    assert!(
        records >= answered,
        "{answered} requests answered, only {records} audit records written"
    );
    assert!(
        records <= workers * per,
        "{records} records for at most {} requests",
        workers * per
    );
    assert!(
        log.lines().last().unwrap_or("").contains("stopped"),
        "the last record is the stop: {}",
        log.lines().last().unwrap_or("")
    );
}
