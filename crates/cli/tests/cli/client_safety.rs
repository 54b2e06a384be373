//! The caller's side of issue 7, as unprivileged users through the real daemon and
//! CLI: a squatted socket gets nothing (finding 5), a full service's `busy` is read
//! even after the write failed (7), what a service sends reaches a terminal escaped
//! (12), and `regent check` agrees with `serve` and survives a closed pipe (13).

use crate::util::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

const OPEN: &str = "socket_mode = \"0666\"";

const OPS: &str = r#"
[operations.whoareyou]
description = "Reports the caller's kernel identity"
command = ["printf", "%s %s", "{caller.uid}", "{caller.user}"]
"#;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `regent ARGS` as `uid:gid` with exactly the environment `env`.
fn regent_as(uid: u32, gid: u32, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(regent());
    c.args(args).uid(uid).gid(gid).env_clear();
    for (k, v) in env {
        c.env(k, v);
    }
    run(c)
}

/// A squatter: `uid` binds `path` first and records every byte any client sends
/// it, one `GOT <hex>` line per connection (empty when the client sent nothing).
struct Squatter {
    child: Child,
    lines: BufReader<ChildStdout>,
}

const SQUATTER: &str = r#"
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o666)
s.listen(16)
print("READY", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(3.0)
    got = b""
    try:
        while b"\n" not in got:
            b = c.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    print("GOT " + got.hex(), flush=True)
    if got:
        c.sendall(b'{"success": true, "uid": null, "data": "squatted"}\n')
    c.close()
"#;

impl Squatter {
    fn start(uid: u32, gid: u32, path: &Path) -> Squatter {
        let mut child = Command::new("python3")
            .args(["-c", SQUATTER])
            .arg(path)
            .uid(uid)
            .gid(gid)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "READY");
        Squatter { child, lines }
    }

    /// What the last connection sent.
    fn received(&mut self) -> Vec<u8> {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        let hex = line.trim().strip_prefix("GOT").expect("a GOT line").trim();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory like /tmp: root's, mode 1777.
fn sticky_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("regent-e2e-sticky-")
        .tempdir()
        .unwrap();
    chmod(dir.path(), 0o1777);
    dir
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_squatted_socket_gets_no_secret_and_the_daemon_refuses_a_sticky_directory() {
    let (muid, mgid) = user("regent-e2e-mallory");
    let (auid, agid) = user("regent-e2e-alice");
    let sticky = sticky_dir();
    let socket = sticky.path().join("regent.sock");

    // The real daemon refuses the sticky world-writable directory, and so does
    // `regent check`, before anyone has squatted.
    let (_cdir, _, config, _) = write_config(OPEN, OPS);
    let text = std::fs::read_to_string(&config).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("socket = "))
        .unwrap()
        .to_string();
    let text = text.replacen(&line, &format!("socket = {:?}", socket), 1);
    std::fs::write(&config, text).unwrap();
    let o = run({
        let mut c = Command::new(regent());
        c.args(["check", "--config"]).arg(&config);
        c
    });
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("writable by group or others") && stdout(&o).contains("sticky"),
        "{}",
        stdout(&o)
    );
    let mut serve = Command::new(regent())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut serve, Duration::from_secs(10));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains("sticky bit does not help"), "{log}");
    assert!(!socket.exists());

    // Mallory binds the path first; alice's CLI connects, sees who listens, and
    // sends nothing: not the secret, not an operation.
    let mut squatter = Squatter::start(muid, mgid, &socket);
    let s = socket.to_str().unwrap();
    let o = regent_as(
        auid,
        agid,
        &["call", "whoareyou", "--socket", s],
        &[("REGENT_SECRET", SECRET)],
    );
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refusing to talk to")
            && stderr(&o).contains(&format!("uid {muid}"))
            && stderr(&o).contains("nothing was sent"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(SECRET));
    assert_eq!(squatter.received(), b"", "the squatter received bytes");
    // The same for the other commands that talk to the service.
    for args in [
        vec!["ops"],
        vec!["call", "--uid", "abcdefgh", "--code", "123456"],
    ] {
        let mut all = args.clone();
        all.extend(["--socket", s]);
        let o = regent_as(auid, agid, &all, &[("REGENT_SECRET", SECRET)]);
        assert_eq!(code(&o), 6, "{args:?}: {}", stderr(&o));
        assert_eq!(squatter.received(), b"", "{args:?}");
    }
    // Root's CLI (an administrator's `regent pending`) refuses it too.
    let o = run({
        let mut c = Command::new(regent());
        c.args(["pending", "--socket", s]).env_clear();
        c
    });
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert_eq!(squatter.received(), b"");

    // Only a caller who names mallory as the service's user talks to her: the
    // squatter would have received the secret (this shows what was at stake).
    let o = regent_as(
        auid,
        agid,
        &[
            "call",
            "whoareyou",
            "--socket",
            s,
            "--server-uid",
            "regent-e2e-mallory",
        ],
        &[("REGENT_SECRET", SECRET)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "squatted");
    assert!(contains(&squatter.received(), SECRET.as_bytes()));
}

#[test]
fn a_daemon_running_as_its_own_user_is_trusted_only_when_named() {
    let (suid, sgid) = user("regent-e2e-svc");
    let (auid, agid) = user("regent-e2e-alice");
    let (dir, socket, config, secret_file) =
        write_config(&format!("{OPEN}\nsocket_owner = \"regent-e2e-svc\""), OPS);
    // The service's own directory and secret; the config stays readable.
    std::os::unix::fs::chown(dir.path(), Some(suid), Some(sgid)).unwrap();
    std::os::unix::fs::chown(&secret_file, Some(suid), Some(sgid)).unwrap();
    let mut d = Daemon::from_parts(dir, socket, config, secret_file);
    d.spawn_as(Some((suid, sgid)));
    let s = d.socket.to_str().unwrap();
    let env = [("REGENT_SECRET", SECRET)];

    // Not root, not alice: refused unless named.
    let o = regent_as(auid, agid, &["call", "whoareyou", "--socket", s], &env);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("runs as uid {suid}")),
        "{}",
        stderr(&o)
    );
    let want = format!("{auid} regent-e2e-alice");
    let suid_text = suid.to_string();
    for (args, env) in [
        (
            vec![
                "call",
                "whoareyou",
                "--socket",
                s,
                "--server-uid",
                "regent-e2e-svc",
            ],
            vec![("REGENT_SECRET", SECRET)],
        ),
        (
            vec!["call", "whoareyou", "--socket", s],
            vec![
                ("REGENT_SECRET", SECRET),
                ("REGENT_SERVER_UID", suid_text.as_str()),
            ],
        ),
    ] {
        let o = regent_as(auid, agid, &args, &env);
        assert_eq!(code(&o), 0, "{args:?} {env:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), want);
    }
    // With --config, its socket_owner is the service's user.
    let alices_secret = d.dir.path().join("alice-secret");
    std::fs::write(&alices_secret, SECRET).unwrap();
    std::os::unix::fs::chown(&alices_secret, Some(auid), Some(agid)).unwrap();
    chmod(&alices_secret, 0o600);
    let o = regent_as(
        auid,
        agid,
        &[
            "call",
            "whoareyou",
            "--config",
            d.config.to_str().unwrap(),
            "--secret-file",
            alices_secret.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), want);
    // A bad --server-uid is a clear local error.
    let o = regent_as(
        auid,
        agid,
        &[
            "call",
            "whoareyou",
            "--socket",
            s,
            "--server-uid",
            "no-such-user-e2e",
        ],
        &env,
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("no such user"), "{}", stderr(&o));
}

#[test]
fn a_full_service_answers_busy_even_when_the_request_cannot_be_written() {
    let (auid, agid) = user("regent-e2e-alice");
    let d = Daemon::start(&format!("{OPEN}\nmax_connections_per_uid = 1"), OPS);
    // Alice holds her one connection (connected, sending nothing).
    let holder = Command::new("python3")
        .args([
            "-c",
            "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('ok',flush=True)\ntime.sleep(30)",
        ])
        .arg(&d.socket)
        .uid(auid)
        .gid(agid)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder = HolderGuard(holder);
    let mut ok = String::new();
    BufReader::new(holder.0.stdout.as_mut().unwrap())
        .read_line(&mut ok)
        .unwrap();
    assert_eq!(ok.trim(), "ok");
    // Her next request is far larger than the socket buffers: the service answers
    // busy and closes without reading it, so the write fails with EPIPE.
    let big = d.dir.path().join("big-secret");
    std::fs::write(&big, "s".repeat(4 * 1024 * 1024)).unwrap();
    std::os::unix::fs::chown(&big, Some(auid), Some(agid)).unwrap();
    let o = regent_as(
        auid,
        agid,
        &[
            "call",
            "whoareyou",
            "--socket",
            d.socket.to_str().unwrap(),
            "--secret-file",
            big.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    assert!(stderr(&o).contains("busy"), "{}", stderr(&o));
    assert!(
        !stderr(&o).to_lowercase().contains("broken pipe"),
        "{}",
        stderr(&o)
    );
    // And others are still served.
    let o = d.cli(&["call", "whoareyou"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

struct HolderGuard(Child);

impl Drop for HolderGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TRICKY_OPS: &str = r#"
[operations.tricky]
description = "Output with control, bidi and invisible characters"
command = ["printf", "a\\033[2Jb\\342\\200\\256c\\342\\200\\213d\\302\\233e\\342\\200\\250f\\nline2"]

[operations.say]
description = "Echo a free string"
command = ["printf", "%s", "{msg}"]
params.msg = { type = "string" }

[operations.port]
description = "A port number"
command = ["printf", "%s", "{port}"]
params.port = { type = "integer", min = 1, max = 65535 }

[operations.held]
description = "Held for approval; any text"
command = ["printf", "%s", "{file}"]
params.file = { type = "string", pattern = ".*" }
auth = ["approval"]
"#;

/// The raw characters that must never reach a terminal unescaped.
const RAW: [char; 5] = ['\u{1b}', '\u{202e}', '\u{200b}', '\u{9b}', '\u{2028}'];

fn assert_no_raw(text: &str) {
    for c in RAW {
        assert!(!text.contains(c), "raw U+{:04X} in: {text:?}", u32::from(c));
    }
}

#[test]
fn operation_output_errors_and_held_data_reach_the_terminal_escaped() {
    let (auid, agid) = user("regent-e2e-alice");
    let d = Daemon::start(OPEN, TRICKY_OPS);

    // Operation output: escaped in human output, newline kept; raw with --json.
    let o = d.cli_as(auid, agid, &["call", "tricky"], Some(SECRET));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_no_raw(&stdout(&o));
    assert_eq!(
        stdout(&o),
        "a\\u{001b}[2Jb\\u{202e}c\\u{200b}d\\u{009b}e\\u{2028}f\nline2"
    );
    let o = d.cli_as(auid, agid, &["call", "tricky", "--json"], Some(SECRET));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["data"],
        "a\u{1b}[2Jb\u{202e}c\u{200b}d\u{9b}e\u{2028}f\nline2"
    );

    // Error text from the service (an unknown field named with a bidi override).
    let o = d.cli_as(
        auid,
        agid,
        &["call", "say", "--data", "{\"x\u{202e}y\": 1}"],
        Some(SECRET),
    );
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_no_raw(&stderr(&o));
    assert!(stderr(&o).contains("x\\u{202e}y"), "{}", stderr(&o));

    // A free string (no pattern) refuses invisible and bidi characters.
    for bad in ["ro\u{200b}ot", "invoice_\u{202e}fdp.exe", "a\u{2028}b"] {
        let data = serde_json::json!({ "msg": bad }).to_string();
        let o = d.cli_as(auid, agid, &["call", "say", "--data", &data], Some(SECRET));
        assert_eq!(code(&o), 4, "{bad:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("invalid_data")
                && stderr(&o).contains("invisible or bidirectional format characters"),
            "{}",
            stderr(&o)
        );
    }

    // An integer beyond any i64 is "too large", not "a fraction".
    for big in ["18446744073709551615", "1e30", "100000000000000000000000"] {
        let data = format!("{{\"port\": {big}}}");
        let o = d.cli_as(auid, agid, &["call", "port", "--data", &data], Some(SECRET));
        assert_eq!(code(&o), 4, "{big}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("port: too large: must be at most 65535"),
            "{big}: {}",
            stderr(&o)
        );
    }

    // Held data shown to an approver by `regent pending`.
    let data = serde_json::json!({ "file": "invoice_\u{202e}fdp.exe\u{200b}" }).to_string();
    let o = d.cli_as(auid, agid, &["call", "held", "--data", &data], Some(SECRET));
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    let o = d.cli(&["pending"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_no_raw(&stdout(&o));
    assert!(
        stdout(&o).contains("invoice_\\u{202e}fdp.exe\\u{200b}"),
        "{}",
        stdout(&o)
    );
    let o = d.cli(&["pending", "--json"]);
    assert!(stdout(&o).contains('\u{202e}'), "--json stays raw");
}

/// Run `regent ARGS` with its standard output a pipe whose reader has already
/// gone, so every write fails with EPIPE.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(regent())
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn check_refuses_what_serve_refuses_and_output_survives_a_closed_pipe() {
    let (auid, agid) = user("regent-e2e-alice");
    let (_dir, _socket, config, secret_file) = write_config(OPEN, OPS);
    let c = config.to_str().unwrap();
    let o = run({
        let mut cmd = Command::new(regent());
        cmd.args(["check", "--config", c]);
        cmd
    });
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    // `regent check | head -1`: no panic, no message; the status is check's own.
    let o = with_closed_stdout(&["check", "--config", c]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let o = with_closed_stdout(&["--help"]);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // And for a caller's output, through the real daemon.
    let d = Daemon::start(OPEN, OPS);
    let mut cmd = Command::new(regent());
    cmd.args(["call", "whoareyou", "--socket"])
        .arg(&d.socket)
        .uid(auid)
        .gid(agid)
        .env_clear()
        .env("REGENT_SECRET", SECRET);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // A secret file others can read: `serve` refuses it, and so does `check`.
    chmod(&secret_file, 0o644);
    let o = run({
        let mut cmd = Command::new(regent());
        cmd.args(["check", "--config", c]);
        cmd
    });
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    let checked = stdout(&o);
    let mut serve = Command::new(regent())
        .args(["serve", "--config", c])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut serve, Duration::from_secs(10));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!status.success(), "{log}");
    let file = secret_file.display().to_string();
    assert!(
        checked.contains(&file) && checked.contains("0644"),
        "{checked}"
    );
    assert!(log.contains(&file) && log.contains("0644"), "{log}");
}

#[test]
fn the_demo_works_as_root_and_as_an_unprivileged_user() {
    let (auid, agid) = user("regent-e2e-alice");
    let root = run({
        let mut c = Command::new(regent());
        c.arg("demo");
        c
    });
    let alice = regent_as(auid, agid, &["demo"], &[]);
    for o in [root, alice] {
        assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains("calls answered as expected"),
            "{}",
            stdout(&o)
        );
    }
}
