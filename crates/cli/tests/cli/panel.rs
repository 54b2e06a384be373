//! The example web panel end to end (issue 10, §5): `dist/examples/home-panel.py`,
//! on the Python Regent 0.1.0 client, run as an unprivileged user and driven over
//! HTTP, calling a real daemon that serves `dist/examples/home-server.toml` itself,
//! rewritten only where it cannot run on a test machine or would change the host
//! (socket and store, the panel's user and group, sshd_config, and the programs
//! `hostnamectl` and `timedatectl`, found through `command_path` in stand-ins that
//! record their arguments). Every operation's name, parameters, types, auth and
//! module are the example's, so the test breaks when the example and the panel
//! drift apart.
//!
//! The Python package is required, as by the interop tests: its interpreter is
//! `REGENT_TEST_PYTHON` (`.ci/run`'s virtual environment, readable by all), else
//! `python3`; without Regent 0.1.0 importable by the panel's user the test fails
//! and says how to install it.

use crate::pending::{pending_list, who, Who};
use crate::util::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The panel's user, in the example `www-data`; its own group is the socket's.
const PANEL_USER: &str = "regent-e2e-panel";

const PIP_HINT: &str = "pip install regent==0.1.0";

/// The sshd_config the SSH operations work on (in the test's directory).
const SSHD: &str = "Port 22\nPermitRootLogin yes\nPasswordAuthentication no\n";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist/examples")
        .join(name)
}

/// The Python that runs the panel, checked to import Regent 0.1.0 as the panel's
/// user (who must be able to read the interpreter and the package).
fn panel_python(user: Who) -> String {
    let python = test_python();
    let mut c = Command::new(&python);
    c.args([
        "-c",
        "import regent, regent.client, regent.exceptions; print(regent.__version__)",
    ])
    .uid(user.uid)
    .gid(user.gid)
    .current_dir("/")
    .env_clear();
    let out = c.output().unwrap_or_else(|e| {
        panic!("cannot run {python} ({e}): the panel test needs Python 3 with the Python Regent client; install python3, then: {PIP_HINT}")
    });
    assert!(
        out.status.success(),
        "the Python Regent package is not importable by {python} as {PANEL_USER}: {}\ninstall it, readable by all (e.g. .ci/run's virtual environment, then REGENT_TEST_PYTHON=/var/cache/regent-ci/venv/bin/python): {PIP_HINT}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        version, "0.1.0",
        "the panel targets Python Regent 0.1.0, found {version}; install it with: {PIP_HINT}"
    );
    python
}

/// Replace `from` by `to` in `text`, which must hold it exactly `count` times.
#[track_caller]
fn rewrite(text: &mut String, from: &str, to: &str, count: usize) {
    assert_eq!(
        text.matches(from).count(),
        count,
        "home-server.toml no longer holds {from:?} {count} times: update this test with the example"
    );
    *text = text.replace(from, to);
}

/// home-server.toml, rewritten to run in `dir` for `user` (whose group is `group`).
fn home_server_config(dir: &Path, user: &str, group: &str) -> String {
    let mut text = std::fs::read_to_string(example("home-server.toml")).unwrap();
    let d = dir.display();
    let operations = text.matches("\n[operations.").count();
    assert_eq!(operations, 8, "{text}");
    rewrite(
        &mut text,
        "socket = \"/run/regent/regent.sock\"\n",
        &format!(
            "socket = \"{d}/regent.sock\"\nstore = \"{d}/state/pending.db\"\n\
             # The test's stand-ins for hostnamectl and timedatectl, and nothing else.\n\
             command_path = \"{d}/bin\"\n"
        ),
        1,
    );
    rewrite(
        &mut text,
        "socket_group = \"www-data\"",
        &format!("socket_group = \"{group}\""),
        1,
    );
    // Every operation is the panel's user's alone.
    rewrite(
        &mut text,
        "allow = { users = [\"www-data\"] }",
        &format!("allow = {{ users = [\"{user}\"] }}"),
        operations,
    );
    rewrite(
        &mut text,
        "file = \"/etc/ssh/sshd_config\"",
        &format!("file = \"{d}/etc/ssh/sshd_config\""),
        2,
    );
    // Nothing else names the host's accounts or files (comments aside).
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(
            !line.contains("www-data") && !line.contains("\"/etc/") && !line.contains("\"/run/"),
            "home-server.toml: a line this test does not rewrite: {line}"
        );
    }
    text
}

/// A program that records its arguments (`[a][b]...`, one line per run) in
/// `DIR/NAME.argv` and changes nothing. Only shell builtins: it runs with the
/// operation's PATH, the stand-ins' directory.
fn stand_in(dir: &Path, name: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = bin.join(name);
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\n# A stand-in for {name} (test): records its arguments.\n\
             for a in \"$@\"; do printf '[%s]' \"$a\"; done >> '{argv}'\necho >> '{argv}'\n",
            argv = argv_file(dir, name).display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn argv_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.argv"))
}

/// What the stand-in `name` was run with so far (empty: never run).
fn argv_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(argv_file(dir, name)).unwrap_or_default()
}

/// The panel's process, killed when dropped (also when the test panics).
struct Panel {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Panel {
    /// `python home-panel.py 127.0.0.1 PORT` as `user`, with `REGENT_SOCKET`;
    /// ready when its port accepts a connection. A port taken meanwhile by
    /// another process (the panel exits: address in use) is tried again.
    fn start(python: &str, script: &Path, socket: &Path, user: Who, mut log: PathBuf) -> Panel {
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let err = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let child = Command::new(python)
                .arg(script)
                .args(["127.0.0.1", &port.to_string()])
                .uid(user.uid)
                .gid(user.gid)
                .current_dir(script.parent().unwrap())
                .env_clear()
                .env("REGENT_SOCKET", socket)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .expect("start home-panel.py");
            let mut panel = Panel { child, port, log };
            let t = Instant::now();
            loop {
                if let Some(st) = panel.child.try_wait().unwrap() {
                    let text = panel.log_text();
                    assert!(
                        text.contains("Address already in use"),
                        "home-panel.py exited with {st}: {text}"
                    );
                    break;
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return panel;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "home-panel.py did not listen on {port}: {}",
                    panel.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            log = std::mem::take(&mut panel.log);
        }
        panic!("no free port for home-panel.py");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.0 request with a form; the status and the body.
    fn http(&self, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.raw(
            &format!("{method} {path}"),
            &format!(
                "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    }

    /// Send `request` as it is and read the answer to its end: the status and
    /// the body.
    fn raw(&self, what: &str, request: &str) -> (u16, String) {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).unwrap();
        // Generous: a page asks the daemon three things (one reads apt's cache).
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap_or_else(|e| {
            panic!(
                "{what}: no answer ({e}); the panel says: {}",
                self.log_text()
            )
        });
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| {
            panic!(
                "{what}: not HTTP: {raw:?}; the panel says: {}",
                self.log_text()
            )
        });
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no status: {head}"));
        (status, body.to_string())
    }

    /// GET /: the page.
    fn get(&self) -> Page {
        let (status, body) = self.http("GET", "/", &[]);
        assert_eq!(status, 200, "{body}");
        let page = Page::parse(&body, None);
        assert!(page.result.is_none(), "{body}");
        page
    }

    /// POST /OP with a form: the page, with the answer to OP.
    fn post(&self, op: &str, form: &[(&str, &str)]) -> Page {
        let (status, body) = self.http("POST", &format!("/{op}"), form);
        assert_eq!(status, 200, "POST {op}: {body}");
        let page = Page::parse(&body, Some(op));
        assert!(page.result.is_some(), "POST {op}: no answer shown: {body}");
        page
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Python's `html.escape` undone.
fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// A page of the panel: the answers it shows, as the JSON it printed.
#[derive(Debug)]
struct Page {
    /// The answer to the POSTed operation.
    result: Option<Value>,
    web: Value,
    apps: Value,
    ssh: Value,
    /// The uid the "run it once approved" button sends back, if shown.
    held_uid: Option<String>,
    body: String,
}

impl Page {
    fn parse(body: &str, op: Option<&str>) -> Page {
        let result = op.map(|op| pre_after(body, &format!("<h1>Home server</h1><h2>{op}</h2>")));
        let held_uid = body
            .split_once("name=uid value=\"")
            .map(|(_, rest)| html_unescape(rest.split_once('"').expect("a closed value").0));
        Page {
            result,
            web: pre_after(body, "<h2>Web server</h2>"),
            apps: pre_after(body, "<h2>Apps</h2>"),
            ssh: pre_after(body, "<h2>SSH</h2>"),
            held_uid,
            body: body.to_string(),
        }
    }

    fn result(&self) -> &Value {
        self.result.as_ref().unwrap()
    }
}

/// The JSON in the `<pre>` right after `marker`.
#[track_caller]
fn pre_after(body: &str, marker: &str) -> Value {
    let rest = body
        .split_once(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the page: {body}"))
        .1;
    let text = rest
        .strip_prefix("<pre>")
        .and_then(|r| r.split_once("</pre>"))
        .unwrap_or_else(|| panic!("no <pre> after {marker:?}: {body}"))
        .0;
    serde_json::from_str(&html_unescape(text))
        .unwrap_or_else(|e| panic!("not JSON after {marker:?} ({e}): {text}"))
}

/// `regent call OP --json` as the panel's user: the daemon's answer.
fn direct(d: &Daemon, user: Who, op: &str) -> Value {
    let o = user.run(d, &["call", op, "--json"]);
    serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("regent call {op}: no JSON ({e}): {}", stderr(&o)))
}

/// An error answer from the daemon with this code, naming `field`.
#[track_caller]
fn assert_refused(answer: &Value, code: &str, field: &str) {
    assert_eq!(answer["code"], code, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains(field), "{answer}");
    assert!(!error.contains("cannot reach the service"), "{answer}");
}

#[test]
fn the_home_panel_drives_the_home_server_example() {
    let user = who(PANEL_USER);
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(user.gid))
        .unwrap()
        .expect("the panel user's group")
        .name;
    let python = panel_python(user);

    // The example's configuration, rewritten to run here.
    let dir = tempfile::Builder::new()
        .prefix("regent-e2e-panel-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let base = dir.path().to_path_buf();
    stand_in(&base, "hostnamectl");
    stand_in(&base, "timedatectl");
    let sshd = base.join("etc/ssh/sshd_config");
    std::fs::create_dir_all(sshd.parent().unwrap()).unwrap();
    std::fs::write(&sshd, SSHD).unwrap();
    let config = base.join("home-server.toml");
    std::fs::write(&config, home_server_config(&base, PANEL_USER, &group)).unwrap();
    // The CLI (root's `regent pending` and `approve`) reads a secret file; the
    // example has no secret, so the daemon ignores what it sends.
    let secret_file = base.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = base.join("home-panel.py");
    std::fs::copy(example("home-panel.py"), &script).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();

    // It passes `regent check` clean.
    let mut c = Command::new(regent());
    c.args(["check", "--config"]).arg(&config);
    let o = run(c);
    let checked = format!("{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "{checked}");
    assert!(checked.contains(": OK"), "{checked}");
    assert!(!checked.contains("warning"), "{checked}");
    assert!(
        checked.contains(&format!(
            "file: {} (lens Sshd.lns, no other)",
            sshd.display()
        )),
        "{checked}"
    );
    assert_eq!(
        checked
            .matches(&format!("callers: users [{PANEL_USER}] groups []"))
            .count(),
        8,
        "{checked}"
    );

    let socket = base.join("regent.sock");
    let mut d = Daemon::from_parts(dir, socket.clone(), config, secret_file);
    d.spawn();
    // The socket is the panel group's, as the example's is www-data's.
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.gid(), user.gid);
    assert_eq!(meta.mode() & 0o777, 0o660);
    // The operations the panel calls are the example's.
    let o = user.run(&d, &["ops", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ops: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut names: Vec<&str> = ops["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "app-status",
            "install-app",
            "restart-web",
            "set-hostname",
            "set-timezone",
            "ssh-settings",
            "ssh-show",
            "web-status"
        ],
        "{ops}"
    );

    let panel = Panel::start(&python, &script, &socket, user, base.join("panel.log"));

    // The page: the SSH settings from the file, and whatever the daemon
    // answers about the web server and the apps on this machine (an error
    // object where there is no nginx), exactly as the user gets them.
    let page = panel.get();
    assert_eq!(
        page.ssh,
        json!({"success": true, "uid": null, "data": {
            "file": sshd.display().to_string(), "changed": false, "saved": [],
            "results": [
                {"get": "Port", "value": "22"},
                {"get": "PermitRootLogin", "value": "yes"}]}}),
        "{}",
        page.body
    );
    for (shown, op) in [(&page.web, "web-status"), (&page.apps, "app-status")] {
        assert!(
            shown["success"] == true || shown["code"].is_string(),
            "{op}: {shown}"
        );
        assert_eq!(*shown, direct(&d, user, op), "{op}");
    }

    // The host name: the stand-in got exactly the example's argv.
    let p = panel.post("set-hostname", &[("name", "panel-test-host")]);
    assert_eq!(p.result()["success"], true, "{}", p.body);
    assert_eq!(
        argv_of(&base, "hostnamectl"),
        "[set-hostname][--][panel-test-host]\n"
    );
    // Not a host name: the daemon's refusal is shown, and nothing ran.
    for bad in ["not a host;name", "-rf"] {
        let p = panel.post("set-hostname", &[("name", bad)]);
        assert_refused(p.result(), "invalid_data", "name");
    }
    assert_eq!(
        argv_of(&base, "hostnamectl"),
        "[set-hostname][--][panel-test-host]\n"
    );

    // The time zone: a zoneinfo name runs, another is refused by the daemon.
    let p = panel.post("set-timezone", &[("zone", "Europe/Paris")]);
    assert_eq!(p.result()["success"], true, "{}", p.body);
    assert_eq!(
        argv_of(&base, "timedatectl"),
        "[set-timezone][Europe/Paris]\n"
    );
    let p = panel.post("set-timezone", &[("zone", "Not/AZone")]);
    assert_refused(p.result(), "invalid_data", "zone");
    assert_eq!(
        argv_of(&base, "timedatectl"),
        "[set-timezone][Europe/Paris]\n"
    );

    // An app outside the allowlist: refused by the daemon, nothing held.
    let p = panel.post("install-app", &[("app", "netcat-openbsd")]);
    assert_refused(p.result(), "invalid_data", "app");
    assert!(p.held_uid.is_none(), "{}", p.body);
    // A port that is no number (digits of another script once crashed the
    // panel's request): sent as text, refused by the daemon.
    let p = panel.post("ssh-settings", &[("port", "²²²²"), ("root_login", "no")]);
    assert_refused(p.result(), "invalid_data", "port");
    assert!(pending_list(&d).is_empty());

    // The SSH settings: held for an administrator, who sees the diff.
    let p = panel.post("ssh-settings", &[("port", "2222"), ("root_login", "no")]);
    let held = p.result().clone();
    assert_eq!(held["success"], true, "{}", p.body);
    assert_eq!(held["data"]["pending"], "approval", "{}", p.body);
    let uid = held["uid"].as_str().expect("a uid").to_string();
    assert_eq!(p.held_uid.as_deref(), Some(uid.as_str()), "{}", p.body);
    // Asking again before the approval: still held, nothing written.
    let again = panel.post("continue", &[("uid", &uid)]);
    assert_eq!(
        again.result()["data"]["pending"],
        "approval",
        "{}",
        again.body
    );
    assert_eq!(std::fs::read_to_string(&sshd).unwrap(), SSHD);
    let list = pending_list(&d);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["op"], "ssh-settings", "{list:?}");
    assert_eq!(list[0]["caller"]["user"], PANEL_USER, "{list:?}");
    let id = list[0]["request_id"].as_str().unwrap().to_string();
    let o = d.cli(&["pending"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let listing = stdout(&o);
    assert!(
        listing.contains(
            "      -Port 22\n      -PermitRootLogin yes\n      +Port 2222\n      +PermitRootLogin no\n"
        ),
        "{listing}"
    );
    let o = d.cli(&["approve", &id]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Approved: the panel's button runs it, and the file has the new settings.
    let done = panel.post("continue", &[("uid", &uid)]);
    assert_eq!(done.result()["success"], true, "{}", done.body);
    assert_eq!(done.result()["data"]["changed"], true, "{}", done.body);
    assert!(done.held_uid.is_none(), "{}", done.body);
    assert_eq!(
        std::fs::read_to_string(&sshd).unwrap(),
        "Port 2222\nPermitRootLogin no\nPasswordAuthentication no\n"
    );
    assert_eq!(
        done.ssh["data"]["results"],
        json!([{"get": "Port", "value": "2222"}, {"get": "PermitRootLogin", "value": "no"}]),
        "{}",
        done.body
    );
    // Its uid is used up: asking again is the daemon's not_found.
    let p = panel.post("continue", &[("uid", &uid)]);
    assert_eq!(p.result()["code"], "not_found", "{}", p.body);

    // An action the panel does not know.
    let (status, body) = panel.http("POST", "/regent.approve", &[("id", &id)]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body, "unknown action");
    // A body length that is no number, or too long, is refused before reading
    // (a negative one once had the panel read until the client hung up).
    for (length, status) in [("-1", 400), ("1e3", 400), ("4097", 413)] {
        let (got, body) = panel.raw(
            &format!("Content-Length: {length}"),
            &format!("POST /set-hostname HTTP/1.0\r\nContent-Length: {length}\r\n\r\nname=x"),
        );
        assert_eq!(got, status, "Content-Length: {length}: {body}");
    }
    assert_eq!(
        argv_of(&base, "hostnamectl"),
        "[set-hostname][--][panel-test-host]\n"
    );

    // Through all of it the panel served every request.
    let mut panel = panel;
    assert!(
        panel.child.try_wait().unwrap().is_none(),
        "{}",
        panel.log_text()
    );
    assert!(
        !panel.log_text().contains("Traceback"),
        "{}",
        panel.log_text()
    );

    // The daemon gone: the page says the service cannot be reached.
    assert!(d.stop().success(), "{}", d.log_text());
    let page = panel.get();
    for shown in [&page.web, &page.apps, &page.ssh] {
        assert_eq!(shown["success"], false, "{}", page.body);
        assert!(
            shown["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("cannot reach the service: ")),
            "{}",
            page.body
        );
    }
}
