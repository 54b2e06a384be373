//! Configuration files through Augeas end to end (issue 10): `augeas = {...}`
//! operations through `regent serve` and `regent call`, the work run by
//! `regent-module` (a child of the daemon) on real files with the real
//! libaugeas and lenses; callers running as unprivileged users.

use crate::pending::{assert_error, pending_of, who, OPEN};
use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SSHD: &str = "Port 22\nPermitRootLogin no\nListenAddress 0.0.0.0\nListenAddress ::\n";

/// The operations, on `{dir}/etc/ssh/sshd_config`.
const OPS: &str = r#"
[operations.ssh-port]
description = "Set the SSH port"
augeas = { lens = "Sshd", file = "{dir}/etc/ssh/sshd_config", set = { "Port" = "{port}" } }
params.port = { type = "integer", min = 1024, max = 65535 }

[operations.ssh-port-boxed]
description = "Set the SSH port, sandboxed: the module adds what Augeas needs"
augeas = { lens = "Sshd", file = "{dir}/etc/ssh/sshd_config", set = { "Port" = "{port}" } }
params.port = { type = "integer", min = 1024, max = 65535 }
sandbox = { read = ["/usr/lib", "/lib", "/etc/ld.so.cache"] }

[operations.ssh-show]
description = "Show the SSH settings"
augeas = { lens = "Sshd", file = "{dir}/etc/ssh/sshd_config", get = ["Port"], match = ["ListenAddress"] }

[operations.ssh-set]
description = "Set one SSH setting"
params.key = { type = "enum", values = ["PermitRootLogin", "Banner", "../../x"] }
params.value = { type = "string", max_len = 64 }
[operations.ssh-set.augeas]
lens = "Sshd"
file = "{dir}/etc/ssh/sshd_config"
actions = [ { set = "{key}", value = "{value}" } ]

[operations.ssh-two]
description = "Set the port and add a banner after the listen address (which is two nodes)"
params.port = { type = "integer", min = 1024, max = 65535 }
[operations.ssh-two.augeas]
lens = "Sshd"
file = "{dir}/etc/ssh/sshd_config"
actions = [
  { set = "Port", value = "{port}" },
  { insert = "Banner", after = "ListenAddress" },
]

[operations.ssh-held]
description = "Set the SSH port, once an administrator approves"
augeas = { lens = "Sshd", file = "{dir}/etc/ssh/sshd_config", set = { "Port" = "{port}", "PermitRootLogin" = "{root}" } }
params.port = { type = "integer", min = 1024, max = 65535 }
params.root = { type = "enum", values = ["yes", "no"], optional = true }
auth = ["approval"]
"#;

fn start() -> (Daemon, PathBuf) {
    let d = Daemon::start(OPEN, OPS);
    let file = d.dir.path().join("etc/ssh/sshd_config");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, SSHD).unwrap();
    (d, file)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// `regent call OP --data DATA --json` as root: the exit code and the response.
fn call(d: &Daemon, op: &str, data: &str) -> (i32, Value, String) {
    let o = d.cli(&["call", op, "--json", "--data", data]);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    (code(&o), v, format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn augeas_operations_end_to_end() {
    let (d, file) = start();
    let name = file.display().to_string();

    // get and match: the values as JSON.
    let (c, v, e) = call(&d, "ssh-show", "null");
    assert_eq!(c, 0, "{e}");
    assert_eq!(
        v["data"],
        serde_json::json!({
            "file": name, "changed": false, "saved": [],
            "results": [
                {"get": "Port", "value": "22"},
                {"match": "ListenAddress", "nodes": [
                    {"path": "ListenAddress[1]", "value": "0.0.0.0"},
                    {"path": "ListenAddress[2]", "value": "::"}]}]
        })
    );

    // regent ops marks the operations that change the file as offering a dry run.
    let o = d.cli(&["ops", "--json"]);
    let ops: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let dry: Vec<&str> = ops["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["dry_run"] == true)
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        dry,
        ["ssh-port", "ssh-port-boxed", "ssh-set", "ssh-two"],
        "{ops}"
    );

    // A dry run as an unprivileged caller: the diff, nothing written.
    let alice = who("regent-aug-alice");
    let o = alice.run(
        &d,
        &[
            "call",
            "ssh-port",
            "--data",
            r#"{"port": 2222}"#,
            "--dry-run",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let diff = stdout(&o);
    assert_eq!(
        diff,
        format!("--- {name}\n+++ {name}\n@@ -1,4 +1,4 @@\n-Port 22\n+Port 2222\n PermitRootLogin no\n ListenAddress 0.0.0.0\n ListenAddress ::")
    );
    assert_eq!(read(&file), SSHD, "a dry run writes nothing");
    // A read-only operation offers none: refused before anything is sent.
    let o = alice.run(&d, &["call", "ssh-show", "--dry-run"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("offers no dry run"), "{}", stderr(&o));

    // The change for real, asked by the unprivileged caller: the file is
    // changed as the dry run showed, and stays root's with its mode.
    let o = alice.run(
        &d,
        &["call", "ssh-port", "--data", r#"{"port": 2222}"#, "--json"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["data"],
        serde_json::json!({"file": name, "changed": true, "saved": [name], "results": []})
    );
    assert_eq!(read(&file), SSHD.replace("Port 22\n", "Port 2222\n"));
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o644));
    // Under a sandbox (Landlock and the seccomp filter), extended by the module
    // with the lenses, the file's directory and chown/chmod: the same change.
    let (c, v, e) = call(&d, "ssh-port-boxed", r#"{"port": 2200}"#);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["changed"], true, "{v}");
    assert_eq!(read(&file), SSHD.replace("Port 22\n", "Port 2200\n"));
    let (c, _, e) = call(&d, "ssh-port", r#"{"port": 2222}"#);
    assert_eq!(c, 0, "{e}");
    // Again: nothing changes, nothing is written.
    let (c, v, e) = call(&d, "ssh-port", r#"{"port": 2222}"#);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["changed"], false, "{v}");

    // A label from an enum value; one that would leave the file is refused
    // before Augeas runs, naming the parameter.
    let (c, _, e) = call(
        &d,
        "ssh-set",
        r#"{"key": "Banner", "value": "/etc/issue.net"}"#,
    );
    assert_eq!(c, 0, "{e}");
    assert!(
        read(&file).ends_with("Banner /etc/issue.net\n"),
        "{}",
        read(&file)
    );
    let before = read(&file);
    let (c, _, e) = call(&d, "ssh-set", r#"{"key": "../../x", "value": "1"}"#);
    assert_eq!(c, 4, "{e}");
    assert!(e.contains("invalid_data") && e.contains("key"), "{e}");
    assert_eq!(read(&file), before);
}

#[test]
fn augeas_writes_all_or_nothing_and_reports_a_failed_save() {
    let (d, file) = start();
    // The second action fails (ListenAddress is two nodes): the first is not
    // written either.
    let (c, _, e) = call(&d, "ssh-two", r#"{"port": 2200}"#);
    assert_eq!(c, 5, "{e}");
    assert!(e.contains("insert") && e.contains("matches 2 nodes"), "{e}");
    assert_eq!(read(&file), SSHD);

    // A directory Augeas cannot write its temporary file in: libaugeas says
    // the save succeeded, the module reads /augeas//error and fails.
    let dir = file.parent().unwrap();
    let st = Command::new("chattr").arg("+i").arg(dir).status().unwrap();
    assert!(st.success(), "chattr +i (the tests run as root on ext4)");
    let (c, _, e) = call(&d, "ssh-port", r#"{"port": 2200}"#);
    let _ = Command::new("chattr").arg("-i").arg(dir).status();
    assert_eq!(c, 5, "{e}");
    assert!(
        e.contains("operation_failed") && e.contains("saving failed"),
        "{e}"
    );
    assert_eq!(read(&file), SSHD);
}

#[test]
fn a_held_augeas_change_shows_its_diff_and_refuses_a_changed_file() {
    let (d, file) = start();
    let alice = who("regent-aug-alice");
    let name = file.display().to_string();

    // Held: the administrator sees the diff it will apply.
    let p = pending_of(&alice.run(
        &d,
        &[
            "call",
            "ssh-held",
            "--data",
            r#"{"port": 2022, "root": "yes"}"#,
            "--json",
        ],
    ));
    let o = d.cli(&["pending"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let listing = stdout(&o);
    assert!(
        listing.contains("change (runs only while it still applies as shown):"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("      --- {name}\n      +++ {name}\n")),
        "{listing}"
    );
    assert!(
        listing.contains("      -Port 22\n      -PermitRootLogin no\n      +Port 2022\n      +PermitRootLogin yes\n"),
        "{listing}"
    );
    assert_eq!(read(&file), SSHD, "held: nothing written");
    let o = d.cli(&["approve", p.request_id()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = alice.poll(&d, &p.uid);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        read(&file),
        SSHD.replace("Port 22\n", "Port 2022\n")
            .replace("PermitRootLogin no", "PermitRootLogin yes")
    );

    // The file changes between the diff and the approval: the approved change
    // is refused, and the file is left as it now is.
    let p = pending_of(&alice.run(
        &d,
        &["call", "ssh-held", "--data", r#"{"port": 2023}"#, "--json"],
    ));
    std::fs::write(&file, "Port 2024\n").unwrap();
    let o = d.cli(&["approve", p.request_id()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = alice.poll(&d, &p.uid);
    assert_error(&o, 5, "changed since the change was shown");
    assert_eq!(read(&file), "Port 2024\n");

    // A dry run of a held operation is refused, not held.
    let o = alice.run(
        &d,
        &[
            "call",
            "ssh-held",
            "--data",
            r#"{"port": 2025}"#,
            "--dry-run",
        ],
    );
    assert_eq!(code(&o), 4, "{}", stderr(&o));
}

#[test]
fn augeas_declarations_are_checked_at_load_with_locations() {
    let (_dir, _socket, config, _secret) = write_config(
        "",
        r#"
[operations.bad-path]
description = "x"
augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", set = { "../shadow" = "1" } }

[operations.bad-file]
description = "x"
augeas = { lens = "Sshd", file = "/etc/ssh/*", get = ["Port"] }

[operations.secret-label]
description = "x"
params.k = { type = "string", secret = true }
augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", remove = ["{k}"] }

[operations.undeclared]
description = "x"
augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", get = ["*[x = '{who}']"] }

[operations.both]
description = "x"
augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", get = ["Port"], actions = [{ get = "Port" }] }

[operations.insert-nowhere]
description = "x"
augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", actions = [{ insert = "Banner", value = "x" }] }
"#,
    );
    let o = run({
        let mut c = Command::new(regent());
        c.args(["check", "--config"]).arg(&config);
        c
    });
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let err = stdout(&o);
    let file = config.display().to_string();
    // Lines counted from the first operation's header.
    let first = read(&config)
        .lines()
        .position(|l| l == "[operations.bad-path]")
        .unwrap();
    for (line, needle) in [
        (
            2,
            "operations.bad-path.augeas.set.\"../shadow\": path: '..'",
        ),
        (6, "operations.bad-file.augeas.file: '*' in the file name"),
        (11, "secret parameter 'k' can only fill a value"),
        (15, "placeholder {who} is not a declared parameter"),
        (19, "'get' and 'actions' cannot be used together"),
        (23, "'value' does not apply to insert"),
        (23, "insert needs before = PATH or after = PATH"),
    ] {
        let at = format!("{file}:{}:", first + 1 + line);
        assert!(
            err.lines()
                .any(|l| l.starts_with(&at) && l.contains(needle)),
            "no {at}...{needle} in:\n{err}"
        );
    }
}

/// The Augeas workers (`regent-module --augeas-worker LENS`) running under the
/// daemon `daemon`, by lens: the workers themselves, not the processes they
/// fork per request (whose parent is a worker).
fn workers(daemon: i32) -> Vec<(i32, String)> {
    let argv = |pid: i32| -> Vec<String> {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let is_worker = |pid: i32| {
        let a = argv(pid);
        a.len() >= 3 && a[0].ends_with("/regent-module") && a[1] == "--augeas-worker"
    };
    let ppid = |pid: i32| -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name's closing parenthesis: state, then ppid.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if !is_worker(pid) || is_worker(ppid(pid)) {
            continue;
        }
        // Under the daemon (through the run's supervisor).
        let mut p = ppid(pid);
        while p > 1 && p != daemon {
            p = ppid(p);
        }
        if p == daemon {
            out.push((pid, argv(pid)[2].clone()));
        }
    }
    out.sort();
    out
}

/// Polls until `f` holds (at most 10 s).
fn eventually(what: impl Fn() -> String, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            what()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_augeas_worker_compiles_once_and_reads_the_file_anew_for_each_request() {
    let (d, file) = start();
    let port = |d: &Daemon| {
        let (c, v, e) = call(d, "ssh-show", "null");
        assert_eq!(c, 0, "{e}");
        v["data"]["results"][0]["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(workers(d.pid()).is_empty(), "started at the first request");
    assert_eq!(port(&d), "22");
    let first = workers(d.pid());
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].1, "Sshd.lns");
    // Changed behind its back, same size, within the same second: the next
    // request reads the file as it is now (Augeas alone would keep its tree of
    // a file whose mtime, to the second, did not change).
    std::fs::write(&file, SSHD.replace("Port 22\n", "Port 23\n")).unwrap();
    assert_eq!(port(&d), "23");
    let (c, _, e) = call(&d, "ssh-port", r#"{"port": 2222}"#);
    assert_eq!(c, 0, "{e}");
    assert_eq!(port(&d), "2222");
    // One worker per operation, each kept: the first is the same process.
    let now = workers(d.pid());
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.contains(&first[0]), "{now:?} {first:?}");

    // A reload builds new operations: the old workers are stopped, and the
    // next request starts a new one.
    crate::reload::hup(&d, crate::reload::RELOADED);
    eventually(
        || {
            format!(
                "the old workers stopped after the reload: {:?}\n{}",
                workers(d.pid()),
                d.log_text()
            )
        },
        || workers(d.pid()).is_empty(),
    );
    assert_eq!(port(&d), "2222");
    let after = workers(d.pid());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].0, first[0].0);
}

#[test]
fn a_hung_augeas_request_stops_its_worker_and_the_next_one_works() {
    let (d, hosts) = hosts_daemon(LOCALHOST, "timeout = \"1s\"");
    // A FIFO with no writer: opening it blocks, as a hung read would.
    nix::unistd::mkfifo(&hosts, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (c, v, e) = call(&d, "hosts", "null");
    assert_eq!(v["code"], "timeout", "{c}: {e}");
    // The worker and its request's process are gone, not left hanging.
    eventually(
        || format!("the hung worker stopped: {:?}", workers(d.pid())),
        || workers(d.pid()).is_empty(),
    );
    std::fs::remove_file(&hosts).unwrap();
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let (c, v, e) = call(&d, "hosts", "null");
    assert_eq!(c, 0, "{e}");
    assert_eq!(
        v["data"]["results"][0]["nodes"][0]["value"], "localhost",
        "{v}"
    );
    assert_eq!(workers(d.pid()).len(), 1);
}

/// The process the worker `worker` forked for its request, once there.
fn request_process(worker: i32) -> i32 {
    let mut forked = 0;
    eventually(
        || "the request's process appears".into(),
        || {
            forked = std::fs::read_to_string(format!("/proc/{worker}/task/{worker}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            forked > 0
        },
    );
    forked
}

/// A worker started by hand, as the daemon starts it (without its policy).
struct Worker {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Worker {
    fn start(lens: &str) -> Worker {
        let mut child = Command::new(regent_module())
            .args(["--augeas-worker", lens])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        Worker {
            child,
            input,
            output,
        }
    }

    fn send(&mut self, line: &[u8]) {
        use std::io::Write;
        self.input.write_all(line).unwrap();
        self.input.flush().unwrap();
    }

    fn answer(&mut self) -> Value {
        use std::io::BufRead;
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn ask(&mut self, request: &Value) -> Value {
        self.send(format!("{request}\n").as_bytes());
        self.answer()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_port(file: &Path, lens: &str) -> Value {
    serde_json::json!({"timeout_ms": 10000, "plan": {
        "module": "augeas", "lens": lens, "file": file.display().to_string(),
        "actions": [{"get": {"path": "Port"}}],
        "dry_run": false, "expect_hash": null, "secrets": []}})
}

#[test]
fn the_augeas_worker_answers_each_line_and_outlives_its_requests() {
    // (Files under a directory whose name starts with a dot are refused.)
    let dir = tempfile::Builder::new()
        .prefix("regent-aug-worker-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("sshd_config");
    std::fs::write(&file, SSHD).unwrap();
    let mut w = Worker::start("Sshd");
    let ok = w.ask(&get_port(&file, "Sshd"));
    assert_eq!(ok["ok"]["results"][0]["value"], "22", "{ok}");

    // Not a request; another module's plan; another lens: refused, and the
    // worker goes on.
    w.send(b"{not json\n");
    assert_eq!(w.answer()["error"]["code"], "refused");
    let service = serde_json::json!({"timeout_ms": 1000, "plan":
        {"module": "service", "unit": "nginx", "action": "status"}});
    let e = w.ask(&service);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Augeas plans with the lens Sshd only"),
        "{e}"
    );
    let e = w.ask(&get_port(&file, "Hosts"));
    assert_eq!(e["error"]["code"], "refused", "{e}");
    assert_eq!(
        w.ask(&get_port(&file, "Sshd.lns"))["ok"]["results"][0]["value"],
        "22"
    );

    // A request's process that dies (here: SIGKILLed while blocked on a FIFO;
    // a SIGSEGV sent by kill would only reset Rust's stack-overflow handler):
    // that request fails, the worker answers the next.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    w.send(format!("{}\n", get_port(&fifo, "Sshd")).as_bytes());
    let forked = request_process(w.child.id() as i32);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(forked),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let e = w.answer();
    assert_eq!(e["error"]["code"], "failed", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("killed by signal 9"),
        "{e}"
    );
    assert_eq!(
        w.ask(&get_port(&file, "Sshd"))["ok"]["results"][0]["value"],
        "22"
    );

    // A line longer than a request may be: refused, and the worker stops (the
    // stream is out of step).
    w.send(&vec![b' '; (1 << 20) + 10]);
    assert_eq!(w.answer()["error"]["code"], "refused");
    let status = wait_timeout(&mut w.child, std::time::Duration::from_secs(10));
    assert!(!status.success());
}

/// The host names of 127.0.0.1, as a path of the Hosts lens.
const LOCALHOST: &str = "*[ipaddr = '127.0.0.1']/canonical";

/// A daemon serving one operation, `hosts`: a `match` of `matched` in
/// `{dir}/etc/hosts` (not created; its directory is), with `extra` keys; and
/// that file.
fn hosts_daemon(matched: &str, extra: &str) -> (Daemon, PathBuf) {
    let ops = format!(
        "[operations.hosts]\ndescription = \"Host names\"\n\
         augeas = {{ lens = \"Hosts\", file = \"{{dir}}/etc/hosts\", match = [\"{matched}\"] }}\n{extra}\n"
    );
    let d = Daemon::start(OPEN, &ops);
    let hosts = d.dir.path().join("etc/hosts");
    std::fs::create_dir_all(hosts.parent().unwrap()).unwrap();
    (d, hosts)
}

/// `n` lines of `/etc/hosts`, about 40 bytes of answer each for a `match` of
/// their canonical names.
fn many_hosts(n: usize) -> String {
    (0..n)
        .map(|i| format!("10.0.{}.{} host{i}.example.org\n", i / 250, i % 250))
        .collect()
}

#[test]
fn an_augeas_answer_is_held_within_the_operations_max_output() {
    let (d, hosts) = hosts_daemon("*/canonical", "max_output = \"64K\"");
    // About 200 KiB of answer: more than the operation may answer.
    std::fs::write(&hosts, many_hosts(5000)).unwrap();
    let bob = who("regent-aug-bob");
    let o = bob.run(&d, &["call", "hosts"]);
    assert_error(&o, 5, "larger than max_output (65536 bytes)");
    assert!(stdout(&o).is_empty(), "{} bytes", stdout(&o).len());
    // The worker that was cut short is not reused: the next request gets its
    // own answer.
    std::fs::write(&hosts, many_hosts(3)).unwrap();
    let o = bob.run(&d, &["call", "hosts", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["data"]["results"][0]["nodes"][2]["value"], "host2.example.org",
        "{v}"
    );
}

/// `hosts` (see [`hosts_daemon`]) on a one-line `hosts`, called by an
/// unprivileged caller: the caller, and the worker that answered.
fn first_call(d: &Daemon, hosts: &Path) -> (crate::pending::Who, i32) {
    std::fs::write(hosts, "127.0.0.1 localhost\n").unwrap();
    let bob = who("regent-aug-bob");
    let o = bob.run(d, &["call", "hosts", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let worker = workers(d.pid());
    assert_eq!(worker.len(), 1, "{worker:?}");
    (bob, worker[0].0)
}

/// The value of `field` (`Max cpu time`) in `/proc/PID/limits`: soft, hard.
fn proc_limit(pid: i32, field: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    let mut words = line[field.len()..].split_whitespace();
    let soft = words.next().unwrap().to_string();
    (soft, words.next().unwrap().to_string())
}

#[test]
fn an_augeas_requests_process_has_its_own_cpu_limit_and_not_the_workers_stream() {
    // The CPU limit is each request's: on the long-lived worker it would add
    // up over every request it ever served (with `cpu = "1s"`, a worker forking
    // for a `match` of a large file died mid-request after about 150, failing
    // that request, whoever had sent it).
    let (d, hosts) = hosts_daemon(LOCALHOST, "limits = { cpu = \"3s\" }\ntimeout = \"2s\"");
    let (bob, worker) = first_call(&d, &hosts);
    assert_eq!(
        proc_limit(worker, "Max cpu time"),
        ("unlimited".to_string(), "unlimited".to_string())
    );

    // A request held on a FIFO: its process, forked by the worker.
    std::fs::remove_file(&hosts).unwrap();
    nix::unistd::mkfifo(&hosts, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let caller = {
        use std::os::unix::process::CommandExt;
        let d_socket = d.socket.clone();
        let (uid, gid) = (bob.uid, bob.gid);
        std::thread::spawn(move || {
            let mut c = Command::new(regent());
            c.args(["call", "hosts", "--socket"])
                .arg(d_socket)
                .uid(uid)
                .gid(gid)
                .env_clear()
                .env("REGENT_SECRET", SECRET);
            run(c)
        })
    };
    let forked = request_process(worker);
    assert_eq!(
        proc_limit(forked, "Max cpu time"),
        ("3".to_string(), "4".to_string())
    );
    // Its stdin and stdout are not the worker's (the daemon's request stream):
    // nothing it prints can be taken for an answer, this one or the next. Nor
    // its stderr (whose end the daemon keeps for the message of whichever
    // request meets a dead worker next): what it writes there goes to its own
    // failure's message only.
    let fd = |pid: i32, n: i32| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap();
    for n in [0, 1, 2] {
        assert_ne!(fd(forked, n), fd(worker, n), "fd {n}");
    }
    let o = caller.join().unwrap();
    assert_error(&o, 5, "timeout");
}

#[test]
fn augeas_operations_on_one_file_take_turns_and_lose_no_change() {
    // Two operations, two workers, one file: an unprivileged caller's change
    // and an administrator's, sent at once. Each request loads the file,
    // changes it and saves it whole: at the same time, the second save undid
    // the first change while both answered success (29 times out of 30).
    let ops = r#"
[operations.ssh-port]
description = "Set the SSH port"
augeas = { lens = "Sshd", file = "{dir}/etc/ssh/sshd_config", set = { "Port" = "{v}" } }
params.v = { type = "integer", min = 1024, max = 65535 }

[operations.ssh-banner]
description = "Set the SSH banner"
augeas = { lens = "Sshd", file = "{dir}/etc/ssh/sshd_config", set = { "Banner" = "/etc/issue.{v}" } }
params.v = { type = "integer", min = 1024, max = 65535 }
"#;
    let d = Daemon::start(OPEN, ops);
    let file = d.dir.path().join("etc/ssh/sshd_config");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "Port 22\nBanner /etc/issue\n").unwrap();
    let bob = who("regent-aug-bob");
    for v in 2000..2010 {
        let data = format!(r#"{{"v": {v}}}"#);
        let (port, banner) = std::thread::scope(|s| {
            let port = s.spawn(|| bob.run(&d, &["call", "ssh-port", "--data", &data]));
            let banner = s.spawn(|| d.cli(&["call", "ssh-banner", "--data", &data]));
            (port.join().unwrap(), banner.join().unwrap())
        });
        assert_eq!(code(&port), 0, "{}", stderr(&port));
        assert_eq!(code(&banner), 0, "{}", stderr(&banner));
        assert_eq!(read(&file), format!("Port {v}\nBanner /etc/issue.{v}\n"));
    }
}

#[test]
fn an_augeas_worker_run_as_a_user_is_closed_to_that_users_other_processes() {
    // The worker lives on and holds every caller's requests (secret values
    // too): another process of its `run_as` user could trace it, or read its
    // memory or environment, at leisure.
    let (uid, gid) = user("regent-aug-runas");
    let (d, hosts) = hosts_daemon(
        LOCALHOST,
        "run_as = { user = \"regent-aug-runas\" }\ncapabilities = []",
    );
    let (bob, worker) = first_call(&d, &hosts);
    assert_eq!(
        proc_status_field(worker, "Uid").split_whitespace().next(),
        Some(&*uid.to_string())
    );
    // As that user, as any other process of it would.
    let mut c = Command::new("cat");
    c.arg(format!("/proc/{worker}/environ")).uid(uid).gid(gid);
    use std::os::unix::process::CommandExt;
    let o = run(c);
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    // The worker still answers.
    let o = bob.run(&d, &["call", "hosts", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// A plan larger than `regent-module` reads (a value of 4,000 bytes, the most an
/// Augeas value may be, set at 300 keys) is refused by the daemon before it is
/// sent: the worker is not left out of step, and the next request runs.
#[test]
fn a_plan_too_large_for_the_module_is_refused_before_it_is_sent() {
    let actions: Vec<String> = (0..300)
        .map(|i| format!("{{ set = \"Key{i}\", value = \"{{text}}\" }}"))
        .collect();
    let ops = format!(
        r#"
[operations.banner-many]
description = "Set many keys to one long value"
params.text = {{ type = "string", max_len = 4000 }}
[operations.banner-many.augeas]
lens = "Sshd"
file = "{{dir}}/etc/ssh/sshd_config"
actions = [ {} ]

[operations.ssh-show]
description = "Show the SSH settings"
augeas = {{ lens = "Sshd", file = "{{dir}}/etc/ssh/sshd_config", get = ["Port"] }}
"#,
        actions.join(", ")
    );
    let d = Daemon::start("", &ops);
    let file = d.dir.path().join("etc/ssh/sshd_config");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, SSHD).unwrap();
    let long = "x".repeat(4000);
    let client = regent::client::Client::new(&d.socket).secret(SECRET);
    let out = client.call("banner-many", serde_json::json!({ "text": long }));
    let e = format!("{out:?}");
    let e = &e[..e.len().min(300)];
    assert!(
        matches!(&out, Ok(regent::client::Outcome::Error { message, .. }) if message.contains("larger than")),
        "{e}"
    );
    assert_eq!(read(&file), SSHD);
    let (c, v, e) = call(&d, "ssh-show", "null");
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["results"][0]["value"], "22");
}
