//! Several sockets, each with its own operations (issue 9 §2), and callers in
//! containers: new user, pid and mount namespaces made with `unshare`, given
//! only the second socket by a bind mount, reach its operations and no others,
//! and the audit record shows the identity the daemon saw (the host's uid and
//! pid, whatever the caller is inside).

use crate::util::{code, regent, run, stdout, user, write_config, Daemon, SECRET};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// A client: connects to `argv[1]`, asks each operation of `argv[2:]` on its
/// own connection, and prints what it saw of itself (uid, pid in its own pid
/// namespace, pid in the namespace of the `/proc` mounted, the host's) and
/// every answer, as JSON.
const CLIENT: &str = r#"
import json, os, socket, sys
path, secret = sys.argv[1], os.environ["S"]
out = {"uid": os.getuid(), "pid": os.getpid(), "proc_pid": int(os.readlink("/proc/self")), "answers": {}}
for op in sys.argv[2:]:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall((json.dumps({"secret": secret, "op": op, "data": None}) + "\n").encode())
    out["answers"][op] = json.loads(s.makefile("rb").readline())
    s.close()
print(json.dumps(out))
"#;

/// In the new mount namespace: an empty `/mnt` holding only the second socket
/// (bound over an empty file), and the daemon's directory, with the first
/// socket, hidden under an empty tmpfs; then the client on `/mnt/regent.sock`.
const CONTAINER: &str = r#"set -e
mount -t tmpfs none /mnt
touch /mnt/regent.sock
mount --bind "$WEB" /mnt/regent.sock
mount -t tmpfs none "$DIR"
test ! -e "$DIR/regent.sock"
script="$1"
shift
exec python3 -c "$script" /mnt/regent.sock "$@"
"#;

/// The operations: one for the host's socket, one for the container's (whose
/// answer is the uid the daemon saw), and the second socket, offering only the
/// latter, at `{dir}/web/regent.sock`, usable by anyone.
const OPS: &str = r#"
[[service.sockets]]
path = "{dir}/web/regent.sock"
mode = "0666"
operations = ["web-status"]

[operations.host-reboot]
description = "host only"
command = ["/bin/true"]

[operations.web-status]
description = "for the container"
command = ["/bin/echo", "{caller.uid}"]
"#;

/// What a caller asks on the second socket: its operation, the host's, one that
/// does not exist, the list, and the administrator operations.
const ASKED: [&str; 6] = [
    "web-status",
    "host-reboot",
    "no-such-op",
    "regent.ops",
    "regent.pending",
    "regent.approve",
];

fn daemon() -> Daemon {
    let d = Daemon::start("", OPS);
    assert!(web(&d).exists(), "{}", d.log_text());
    d
}

fn web(d: &Daemon) -> std::path::PathBuf {
    d.dir.path().join("web").join("regent.sock")
}

fn parse(out: &std::process::Output) -> Value {
    assert_eq!(code(out), 0, "{out:?}");
    serde_json::from_str(stdout(out).trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The client on the host, as root.
fn ask(path: &Path, ops: &[&str]) -> Value {
    let mut c = Command::new("python3");
    c.arg("-c").arg(CLIENT).arg(path).args(ops).env("S", SECRET);
    parse(&run(c))["answers"].clone()
}

/// The names `regent.ops` answered.
fn listed(answer: &Value) -> Vec<String> {
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

fn unknown(answer: &Value) -> bool {
    answer["success"] != true && answer["code"] == "unknown_operation"
}

#[test]
fn each_socket_offers_only_its_operations() {
    let d = daemon();
    let host = ask(&d.socket, &["regent.ops", "host-reboot", "web-status"]);
    assert_eq!(listed(&host["regent.ops"]), ["host-reboot", "web-status"]);
    assert_eq!(host["host-reboot"]["success"], true, "{host}");
    assert_eq!(host["web-status"]["data"], "0", "{host}");

    // The second socket as its entry says (`mode = "0666"`), in the directory
    // the daemon made 0755.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&web(&d)), 0o666);
    assert_eq!(mode(web(&d).parent().unwrap()), 0o755);
    let second = ask(&web(&d), &ASKED);
    assert_eq!(listed(&second["regent.ops"]), ["web-status"]);
    assert_eq!(second["web-status"]["data"], "0", "{second}");
    // The host's operation answers exactly as one that does not exist.
    assert!(unknown(&second["host-reboot"]), "{second}");
    assert_eq!(second["host-reboot"], second["no-such-op"]);
    // Root on the first socket reaches the administrator channel (this service
    // has no pending store: `operation_failed`); on the second it does not exist.
    let admin = ask(&d.socket, &["regent.pending"]);
    assert_eq!(
        admin["regent.pending"]["code"], "operation_failed",
        "{admin}"
    );
    for op in ["regent.pending", "regent.approve"] {
        assert_eq!(second[op], second["no-such-op"], "{op}: {second}");
    }
    // The CLI too, by path.
    let o = run({
        let mut c = Command::new(regent());
        c.args(["call", "host-reboot", "--socket"])
            .arg(web(&d))
            .env("REGENT_SECRET", SECRET);
        c
    });
    assert_ne!(code(&o), 0, "{o:?}");
    assert_eq!(code(&d.cli(&["call", "host-reboot"])), 0);
}

/// Run the client in new pid and mount namespaces (and a user namespace when
/// `as_user`), given only the second socket; returns what it printed.
fn in_container(d: &Daemon, unshare: &[&str], as_user: Option<(u32, u32)>) -> Value {
    let mut c = Command::new("unshare");
    c.args(unshare)
        .args(["sh", "-c", CONTAINER, "sh", CLIENT])
        .args(ASKED)
        .env("S", SECRET)
        .env("WEB", web(d))
        .env("DIR", d.dir.path())
        .current_dir("/");
    if let Some((uid, gid)) = as_user {
        c.uid(uid).gid(gid);
    }
    parse(&run(c))
}

/// The caller reached the second socket's operation and no other, and the
/// daemon saw it as host uid `uid` with its host pid.
fn check_container(d: &Daemon, seen: &Value, uid: u32) {
    let a = &seen["answers"];
    assert_eq!(seen["uid"], 0, "root inside: {seen}");
    let host_pid = seen["proc_pid"].as_u64().unwrap();
    assert_ne!(
        seen["pid"].as_u64().unwrap(),
        host_pid,
        "a pid namespace: {seen}"
    );
    assert_eq!(a["web-status"]["success"], true, "{seen}");
    assert_eq!(a["web-status"]["data"], uid.to_string(), "{seen}");
    assert_eq!(listed(&a["regent.ops"]), ["web-status"]);
    for op in ["host-reboot", "regent.pending", "regent.approve"] {
        assert!(unknown(&a[op]), "{op}: {seen}");
        assert_eq!(a[op], a["no-such-op"], "{op}: {seen}");
    }
    // One audit record per request, each with the host's uid and pid.
    for op in ASKED {
        let wanted = |r: &Value| {
            r["fields"]["message"] == "request"
                && r["fields"]["op"] == op
                && r["fields"]["pid"] == host_pid
        };
        assert!(
            d.log_shows(&format!("\"op\":\"{op}\"")),
            "{op}: {}",
            d.log_text()
        );
        let log = d.log_text();
        let records: Vec<Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(wanted)
            .collect();
        assert_eq!(records.len(), 1, "{op} from pid {host_pid}: {log}");
        assert_eq!(records[0]["fields"]["uid"], uid, "{op}: {}", records[0]);
        let outcome = if op == "web-status" || op == "regent.ops" {
            "ok"
        } else {
            "unknown_operation"
        };
        assert_eq!(records[0]["fields"]["outcome"], outcome, "{}", records[0]);
    }
}

#[test]
fn a_caller_in_user_pid_and_mount_namespaces_reaches_only_its_socket_as_its_host_uid() {
    let (uid, gid) = user("regent-e2e-ctr");
    let d = daemon();
    let seen = in_container(
        &d,
        &["--user", "--map-root-user", "--pid", "--fork", "--mount"],
        Some((uid, gid)),
    );
    // Root inside its user namespace; the daemon sees the host uid.
    check_container(&d, &seen, uid);
}

#[test]
fn container_root_without_a_user_namespace_is_host_root_and_reaches_only_its_socket() {
    let d = daemon();
    let seen = in_container(&d, &["--pid", "--fork", "--mount"], None);
    // Uid 0 inside is uid 0 to the daemon: the socket, not the uid, limits it.
    check_container(&d, &seen, 0);
}

/// The line (1-based) of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn socket_entry_errors_have_locations() {
    let (dir, _socket, config, _secret) = write_config(
        "",
        r#"
[[service.sockets]]
path = "{dir}/a/regent.sock"
operations = ["web-stauts"]
[[service.sockets]]
path = "{dir}/a/regent.sock"
operations = ["web-status"]

[operations.web-status]
command = ["/bin/true"]
"#,
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let o = run({
        let mut c = Command::new(regent());
        c.args(["check", "--config"]).arg(&config);
        c
    });
    assert_ne!(code(&o), 0, "{o:?}");
    let all = format!("{}{}", stdout(&o), crate::util::stderr(&o));
    let file = config.display();
    let typo = line_of(&text, "web-stauts");
    let dup = line_of(&text, "operations = [\"web-status\"]") - 1;
    for want in [
        format!(
            "{file}:{typo}:15: service.sockets[0].operations[0]: no operation \"web-stauts\" is declared (did you mean 'web-status'?)"
        ),
        format!(
            "{file}:{dup}:8: service.sockets[1].path: {}/a/regent.sock is already the path of another socket",
            dir.path().display()
        ),
    ] {
        assert!(all.contains(&want), "missing {want:?} in {all}");
    }

    // A socket directory others can write is refused, as the first socket's is.
    let (dir, _socket, config, _secret) = write_config(
        "",
        "[[service.sockets]]\npath = \"{dir}/open/regent.sock\"\noperations = []\n",
    );
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = run({
        let mut c = Command::new(regent());
        c.args(["check", "--config"]).arg(&config);
        c
    });
    assert_ne!(code(&o), 0, "{o:?}");
    assert!(stdout(&o).contains("writable by group or others"), "{o:?}");
}

/// Holds a connection on `argv[1]` (answered once), then asks `regent.ops` on
/// `argv[2]` while holding it, and again after closing it; prints the codes.
const HOLD_ONE: &str = r#"
import json, os, socket, sys, time
line = (json.dumps({"secret": os.environ["S"], "op": "regent.ops", "data": None}) + "\n").encode()
def ask(s):
    try:
        s.sendall(line)
    except BrokenPipeError:
        pass  # refused at accept: its answer is already waiting
    reply = s.makefile("rb").readline()
    return json.loads(reply).get("code", "ok") if reply else "closed"
held = socket.socket(socket.AF_UNIX)
held.connect(sys.argv[1])
first = ask(held)
other = socket.socket(socket.AF_UNIX)
other.connect(sys.argv[2])
during = ask(other)
held.close()
other.close()
# The slot is freed once the daemon has seen the close: ask until then.
for _ in range(100):
    again = socket.socket(socket.AF_UNIX)
    again.connect(sys.argv[2])
    after = ask(again)
    again.close()
    if after != "busy":
        break
    time.sleep(0.05)
print(json.dumps([first, during, after]))
"#;

#[test]
fn connection_limits_count_every_socket_together() {
    let d = Daemon::start("max_connections_per_uid = 1", OPS);
    let mut c = Command::new("python3");
    c.arg("-c")
        .arg(HOLD_ONE)
        .arg(&d.socket)
        .arg(web(&d))
        .env("S", SECRET);
    let codes = parse(&run(c));
    // One connection of this uid on the first socket: none more on the second.
    assert_eq!(codes, serde_json::json!(["ok", "busy", "ok"]));
}

#[test]
fn a_caller_the_daemons_user_namespace_does_not_map_is_seen_as_65534() {
    // The daemon in a user namespace that maps host root alone (root inside is
    // host root), as in a container; the caller a host user it does not map.
    let (uid, gid) = user("regent-e2e-unmapped");
    let (dir, socket, config, secret) = write_config(
        "socket_mode = \"0666\"",
        "[operations.seen]\ndescription = \"the uid the daemon saw\"\ncommand = [\"/bin/echo\", \"{caller.uid}\"]\n",
    );
    let mut d = Daemon::from_parts(dir, socket, config, secret);
    d.spawn_with(&["unshare", "--user", "--map-root-user"], "json");
    let map = std::fs::read_to_string(format!("/proc/{}/uid_map", d.pid())).unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "1"],
        "{map}"
    );
    let o = d.cli_as(uid, gid, &["call", "seen"], Some(SECRET));
    assert_eq!(code(&o), 0, "{o:?}\n{}", d.log_text());
    assert_eq!(stdout(&o), "65534");
    // The audit record shows the uid the daemon saw, not the caller's host uid.
    assert!(d.log_shows("\"uid\":65534"), "{}", d.log_text());
    assert!(
        d.log_text()
            .lines()
            .any(|l| l.contains("\"op\":\"seen\"") && l.contains("\"uid\":65534")),
        "{}",
        d.log_text()
    );
    assert!(
        !d.log_text().contains(&format!("\"uid\":{uid}")),
        "{}",
        d.log_text()
    );
    // Host root, mapped, is root.
    let o = d.cli(&["call", "seen"]);
    assert_eq!(stdout(&o), "0", "{o:?}");
}

/// Regression: a held request taken up on a socket that does not offer its
/// operation was consumed before it was refused (once approved, it then ran
/// nowhere and its caller could not take it up on the right socket).
#[test]
fn a_held_request_taken_up_on_the_wrong_socket_is_refused_and_kept() {
    let ops = r#"
[[service.sockets]]
path = "{dir}/web/regent.sock"
mode = "0666"
operations = ["web-status"]

[operations.web-status]
description = "for the web socket"
command = ["/bin/true"]

[operations.held-reboot]
description = "main socket only, approved first"
command = ["/bin/echo", "rebooted"]
auth = ["approval"]
"#;
    let d = Daemon::start("socket_mode = \"0666\"", ops);
    let alice = crate::pending::who("regent-e2e-sock-alice");
    let held = alice.start(&d, "held-reboot", "null");
    let o = d.cli(&["approve", held.request_id()]);
    assert_eq!(code(&o), 0, "{o:?}");
    for _ in 0..2 {
        let mut c = Command::new(regent());
        c.args(["call", "--uid", &held.uid, "--socket"])
            .arg(web(&d))
            .uid(alice.uid)
            .gid(alice.gid)
            .env_clear()
            .env("REGENT_SECRET", SECRET);
        crate::pending::assert_error(&run(c), 4, "unknown_operation");
    }
    // Still there, and it runs where it is offered.
    let o = alice.poll(&d, &held.uid);
    crate::pending::assert_ran(&o, "rebooted");
}
