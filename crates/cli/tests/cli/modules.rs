//! System modules end to end: `service` operations on real SysV init scripts
//! installed in /etc/init.d by the test, through `regent serve` and `regent
//! call` (the work runs in `regent-module`, a child of the daemon).

use crate::util::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A test's init script in /etc/init.d, removed (its daemon stopped, its rc
/// links gone) when dropped.
struct InitScript {
    name: String,
    path: PathBuf,
    dir: tempfile::TempDir,
}

impl InitScript {
    /// `/etc/init.d/regent-test-TAG-PID`: a daemon script honouring the LSB
    /// codes; its daemon records its own /proc status (sandbox, privileges)
    /// and every reload in the script's directory.
    fn daemon(tag: &str) -> InitScript {
        let dir = tempfile::Builder::new()
            .prefix("regent-initd-")
            .tempdir()
            .unwrap();
        let name = format!("regent-test-{tag}-{}", std::process::id());
        let d = dir.path().display();
        let body = format!(
            r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: Regent test daemon
### END INIT INFO
PIDFILE=/run/{name}.pid
running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
case "$1" in
start)
    running && exit 0
    setsid sh -c 'grep -E "^(NoNewPrivs|Seccomp|CapEff)" /proc/self/status > {d}/daemon-status; exec sleep 100000' {name}-daemon </dev/null >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
    echo started
    exit 0 ;;
stop)
    running && kill "$(cat "$PIDFILE")"
    rm -f "$PIDFILE"
    exit 0 ;;
restart)
    "$0" stop && "$0" start ;;
reload)
    running || exit 7
    echo reloaded >> {d}/reloads
    exit 0 ;;
status)
    running && exit 0
    [ -f "$PIDFILE" ] && exit 1
    exit 3 ;;
*)
    exit 2 ;;
esac
"#
        );
        Self::install(name, dir, &body)
    }

    /// A script whose `start` never finishes.
    fn hanging(tag: &str) -> InitScript {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("regent-test-{tag}-{}", std::process::id());
        let body = format!(
            "#!/bin/sh\ncase \"$1\" in\nstart) exec sh -c 'sleep 1000' {name}-hung ;;\nstatus) exit 3 ;;\n*) exit 0 ;;\nesac\n"
        );
        Self::install(name, dir, &body)
    }

    fn install(name: String, dir: tempfile::TempDir, body: &str) -> InitScript {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from("/etc/init.d").join(&name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        InitScript { name, path, dir }
    }

    fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(format!("/run/{}.pid", self.name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

impl Drop for InitScript {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.path).arg("stop").status();
        let _ = std::process::Command::new("update-rc.d")
            .args(["-f", &self.name, "remove"])
            .output();
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(format!("/run/{}.pid", self.name));
        for pid in pids_with(&self.name) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Processes whose command line contains `marker`.
fn pids_with(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: i32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// One operation per action on the enum parameter `unit`.
fn service_ops(units: &[&str], timeout: &str) -> String {
    let values: Vec<String> = units.iter().map(|u| format!("\"{u}\"")).collect();
    let mut ops = String::new();
    for action in [
        "status", "start", "stop", "restart", "reload", "enable", "disable",
    ] {
        ops.push_str(&format!(
            "[operations.svc-{action}]\ndescription = \"{action} a service\"\n\
             service = {{ unit = \"{{unit}}\", action = \"{action}\", backend = \"sysv\" }}\n\
             params.unit = {{ type = \"enum\", values = [{}] }}\ntimeout = \"{timeout}\"\n\n",
            values.join(", ")
        ));
    }
    ops
}

/// `regent call OP --json --data {"unit": UNIT}`: the exit code and the answer.
fn call(d: &Daemon, op: &str, unit: &str) -> (i32, Value, String) {
    let data = format!(r#"{{"unit": "{unit}"}}"#);
    let o = d.cli(&["call", op, "--json", "--data", &data]);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    // With --json an error is on stdout too: {"code", "error"}.
    (code(&o), v, format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn sysv_service_actions_end_to_end() {
    let s = InitScript::daemon("svc");
    let d = Daemon::start("", &service_ops(&[&s.name], "20s"));

    let (c, v, e) = call(&d, "svc-status", &s.name);
    assert_eq!(c, 0, "{e}");
    let st = &v["data"];
    assert_eq!(st["backend"], "sysv", "{v}");
    assert_eq!(
        (st["active"].as_str(), st["sub"].as_str()),
        (Some("inactive"), Some("dead")),
        "{v}"
    );
    assert_eq!(st["detail"]["lsb_status"], 3, "{v}");
    assert_eq!(st["since"], Value::Null, "{v}");

    let (c, v, e) = call(&d, "svc-start", &s.name);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["action"], "start", "{v}");
    assert_eq!(v["data"]["status"]["active"], "active", "{v}");
    assert_eq!(v["data"]["status"]["sub"], "running", "{v}");
    assert!(v["data"]["status"]["since"].is_string(), "{v}");
    // The daemon the script started outlives the script and the module's run,
    // and did not inherit an operation's confinement.
    let pid = s.daemon_pid().expect("a pid file");
    assert!(alive(pid), "the started daemon was stopped with the run");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(t) = std::fs::read_to_string(s.dir.path().join("daemon-status")) {
            if t.contains("CapEff") {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not write its status"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("0"), "{status}");
    assert_eq!(field("Seccomp:").as_deref(), Some("0"), "{status}");
    assert_eq!(
        field("CapEff:"),
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| v.trim().to_string()),
        "{status}"
    );
    let (c, v, _) = call(&d, "svc-status", &s.name);
    assert_eq!(
        (c, v["data"]["active"].as_str()),
        (0, Some("active")),
        "{v}"
    );

    let (c, v, e) = call(&d, "svc-reload", &s.name);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["active"], "active", "{v}");
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("reloads")).unwrap(),
        "reloaded\n"
    );

    let (c, v, e) = call(&d, "svc-restart", &s.name);
    assert_eq!(c, 0, "{e}");
    let new_pid = s.daemon_pid().expect("a pid file");
    assert_ne!(new_pid, pid, "restart started a new daemon");
    assert!(!alive(pid) && alive(new_pid), "{v}");

    let (c, v, e) = call(&d, "svc-stop", &s.name);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["active"], "inactive", "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(new_pid) {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Reload of a stopped service: LSB 7, reported as a failure.
    let (c, _, e) = call(&d, "svc-reload", &s.name);
    assert_eq!(c, 5, "{e}");
    assert!(
        e.contains("exit status 7") && e.contains("not running"),
        "{e}"
    );

    let (c, v, e) = call(&d, "svc-enable", &s.name);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["enabled"], true, "{v}");
    assert!(
        std::fs::read_dir("/etc/rc2.d")
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy() == format!("S01{}", s.name)),
        "no start link"
    );
    let (c, v, e) = call(&d, "svc-disable", &s.name);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["enabled"], false, "{v}");

    // Only the declared unit: anything else is invalid data, nothing runs.
    let (c, _, e) = call(&d, "svc-start", "dbus");
    assert_eq!(c, 4, "{e}");
    assert!(e.contains("invalid_data") && e.contains("unit"), "{e}");
}

#[test]
fn a_hanging_init_script_is_stopped_by_the_timeout() {
    let s = InitScript::hanging("hang");
    let d = Daemon::start("", &service_ops(&[&s.name], "2s"));
    let (c, v, e) = call(&d, "svc-start", &s.name);
    assert_eq!(v["code"], "timeout", "{c}: {e}");
    let left = pids_with(&format!("{}-hung", s.name));
    assert!(left.is_empty(), "the hung script survived: {left:?}");
    // The service keeps serving.
    let (c, v, e) = call(&d, "svc-status", &s.name);
    assert_eq!(
        (c, v["data"]["active"].as_str()),
        (0, Some("inactive")),
        "{e}"
    );
}

#[test]
fn a_missing_init_script_is_refused() {
    let d = Daemon::start("", &service_ops(&["regent-test-none"], "5s"));
    let (c, _, e) = call(&d, "svc-start", "regent-test-none");
    assert_eq!(c, 5, "{e}");
    assert!(e.contains("no such service"), "{e}");
}

/// A local apt repository built by the test (`dpkg-deb`, `dpkg-scanpackages`,
/// a `[trusted=yes] file:` source, no network), its source and lists removed
/// (and its packages purged) when dropped.
struct AptRepo {
    dir: tempfile::TempDir,
    list: PathBuf,
    packages: Vec<String>,
}

impl AptRepo {
    /// `(name, depends)` packages, version 1.0, architecture `all`.
    fn build(packages: &[(&str, &str)]) -> AptRepo {
        let dir = tempfile::Builder::new()
            .prefix("regent-apt-")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        for (name, depends) in packages {
            let root = dir.path().join(name);
            std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
            std::fs::create_dir_all(root.join("usr/share").join(name)).unwrap();
            std::fs::write(root.join("usr/share").join(name).join("hello"), "hi\n").unwrap();
            let depends = if depends.is_empty() {
                String::new()
            } else {
                format!("Depends: {depends}\n")
            };
            std::fs::write(
                root.join("DEBIAN/control"),
                format!("Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: Regent tests <root@localhost>\n{depends}Description: a tiny package for Regent's tests\n"),
            )
            .unwrap();
            let mut build = cmd("dpkg-deb", &["--root-owner-group", "--build"]);
            build.arg(&root).arg(&repo);
            let o = run(build);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
        }
        let mut scan = cmd("dpkg-scanpackages", &[".", "/dev/null"]);
        scan.current_dir(&repo);
        let o = run(scan);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        std::fs::write(repo.join("Packages"), o.stdout).unwrap();
        let list = PathBuf::from(format!(
            "/etc/apt/sources.list.d/regent-test-{}.list",
            std::process::id()
        ));
        std::fs::write(
            &list,
            format!("deb [trusted=yes] file:{} ./\n", repo.display()),
        )
        .unwrap();
        let r = AptRepo {
            dir,
            list,
            packages: packages.iter().map(|(n, _)| n.to_string()).collect(),
        };
        // Only this source, and the machine's other lists kept.
        let o = run(cmd(
            "apt-get",
            &[
                "update",
                "-qq",
                "-o",
                &format!("Dir::Etc::sourcelist={}", r.list.display()),
                "-o",
                "Dir::Etc::sourceparts=-",
                "-o",
                "APT::Get::List-Cleanup=0",
            ],
        ));
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        r
    }

    fn installed(&self, name: &str) -> bool {
        let o = run(cmd(
            "dpkg-query",
            &["-W", "-f", "${db:Status-Status}", name],
        ));
        stdout(&o) == "installed"
    }
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        let mut purge = cmd("dpkg", &["--purge"]);
        purge.args(&self.packages);
        let _ = purge.output();
        let _ = std::fs::remove_file(&self.list);
        // The lists apt fetched from it: named after the repository's path.
        let prefix = self.dir.path().display().to_string().replace('/', "_");
        if let Ok(lists) = std::fs::read_dir("/var/lib/apt/lists") {
            for e in lists.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

fn cmd(program: &str, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.args(args);
    c
}

/// Holds the dpkg frontend lock as dpkg and apt do (`fcntl`, not `flock`) for
/// `secs` seconds; returns once it holds it.
fn hold_dpkg_lock(secs: u32) -> std::process::Child {
    use std::io::BufRead;
    let mut child = cmd(
        "/usr/bin/python3",
        &[
            "-c",
            "import fcntl, os, sys, time\n\
             fd = os.open('/var/lib/dpkg/lock-frontend', os.O_RDWR | os.O_CREAT, 0o640)\n\
             fcntl.lockf(fd, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[1]))",
            &secs.to_string(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// `packages = {ACTION = ["{package}"]}` operations over an enum allowlist.
fn package_ops(allowed: &[&str], timeout: &str) -> String {
    let values: Vec<String> = allowed.iter().map(|u| format!("\"{u}\"")).collect();
    let mut ops = String::new();
    for action in ["install", "remove", "update", "status"] {
        ops.push_str(&format!(
            "[operations.pkg-{action}]\ndescription = \"{action} an app\"\n\
             packages = {{ {action} = [\"{{package}}\"] }}\n\
             params.package = {{ type = \"enum\", values = [{}] }}\ntimeout = \"{timeout}\"\n\n",
            values.join(", ")
        ));
    }
    ops
}

fn call_pkg(d: &Daemon, op: &str, package: &str) -> (i32, Value, String) {
    let data = format!(r#"{{"package": "{package}"}}"#);
    let o = d.cli(&["call", op, "--json", "--data", &data]);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    (code(&o), v, format!("{}{}", stdout(&o), stderr(&o)))
}

/// One test for every apt scenario: they share the machine's dpkg lock.
#[test]
fn apt_packages_end_to_end() {
    let tiny = format!("regent-test-tiny-{}", std::process::id());
    let dep = format!("regent-test-dep-{}", std::process::id());
    let other = format!("regent-test-other-{}", std::process::id());
    let repo = AptRepo::build(&[(&tiny, ""), (&dep, &tiny), (&other, "")]);
    let d = Daemon::start("", &package_ops(&[&tiny, &dep], "60s"));

    let (c, v, e) = call_pkg(&d, "pkg-status", &tiny);
    assert_eq!(c, 0, "{e}");
    assert_eq!(
        v["data"]["packages"][&tiny]["installed"],
        Value::Null,
        "{v}"
    );
    assert_eq!(v["data"]["packages"][&tiny]["candidate"], "1.0", "{v}");

    let (c, v, e) = call_pkg(&d, "pkg-install", &tiny);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["packages"][&tiny]["installed"], "1.0", "{v}");
    assert!(repo.installed(&tiny));
    let (c, v, e) = call_pkg(&d, "pkg-status", &tiny);
    assert_eq!(
        (c, &v["data"]["packages"][&tiny]["installed"]),
        (0, &Value::from("1.0")),
        "{e}"
    );
    let (c, v, e) = call_pkg(&d, "pkg-update", &tiny);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["changed"], serde_json::json!([]), "{v}");

    // Outside the allowlist: refused as invalid data, before apt runs.
    let (c, _, e) = call_pkg(&d, "pkg-install", &other);
    assert_eq!(c, 4, "{e}");
    assert!(e.contains("invalid_data") && e.contains("package"), "{e}");
    assert!(!repo.installed(&other));
    // And `regent-module` itself refuses a plan naming a package outside the
    // declaration's list.
    let plan = serde_json::json!({"timeout_ms": 10000, "plan": {
        "module": "packages", "action": "install", "names": [&other], "allowed": [&tiny]}});
    let o = module_as(None, &plan);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("not in the declaration"),
        "{}",
        stdout(&o)
    );
    assert!(!repo.installed(&other));

    // A removal apt would widen (the dependent package too) is refused.
    let (c, _, e) = call_pkg(&d, "pkg-install", &dep);
    assert_eq!(c, 0, "{e}");
    let (c, _, e) = call_pkg(&d, "pkg-remove", &tiny);
    assert_eq!(c, 5, "{e}");
    assert!(e.contains("would also remove") && e.contains(&dep), "{e}");
    assert!(repo.installed(&tiny) && repo.installed(&dep));
    let (c, v, e) = call_pkg(&d, "pkg-remove", &dep);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["packages"][&dep]["installed"], Value::Null, "{v}");

    // A held dpkg lock is waited for: the install ends after the holder let go.
    let mut holder = hold_dpkg_lock(3);
    let (c, v, e) = call_pkg(&d, "pkg-remove", &tiny);
    assert_eq!(c, 0, "{e}");
    assert_eq!(
        v["data"]["packages"][&tiny]["installed"],
        Value::Null,
        "{v}"
    );
    assert!(
        holder.try_wait().unwrap().is_some(),
        "apt ran while the lock was held"
    );
    assert!(!repo.installed(&tiny));

    // A name apt does not know exactly is a pattern to apt-get: a trailing
    // `+` makes a removal install, a `.` a regular expression matching other
    // packages. Both are refused before apt acts (found in review).
    let pid = std::process::id();
    let open_ops = "[operations.app-install]\ndescription = \"install an app\"\n\
         packages = { install = [\"regent-test-{app}\"] }\n\
         params.app = { type = \"string\", pattern = \"[a-z0-9.+-]{1,40}\" }\n\n\
         [operations.app-remove]\ndescription = \"remove an app\"\n\
         packages = { remove = [\"regent-test-{app}\"] }\n\
         params.app = { type = \"string\", pattern = \"[a-z0-9.+-]{1,40}\" }\n";
    let d = Daemon::start("", open_ops);
    let call_app = |op: &str, app: &str| {
        let data = format!(r#"{{"app": "{app}"}}"#);
        let o = d.cli(&["call", op, "--json", "--data", &data]);
        (code(&o), format!("{}{}", stdout(&o), stderr(&o)))
    };
    assert!(!repo.installed(&tiny));
    let (c, e) = call_app("app-remove", &format!("tiny-{pid}+"));
    assert_eq!(c, 5, "{e}");
    assert!(e.contains("no package is named exactly"), "{e}");
    assert!(!repo.installed(&tiny), "a removal installed {tiny}");
    let (c, e) = call_app("app-install", &format!("other.{pid}"));
    assert_eq!(c, 5, "{e}");
    assert!(e.contains("no package is named exactly"), "{e}");
    assert!(!repo.installed(&other), "a pattern installed {other}");
    // The exact names still work through the same operations.
    let (c, e) = call_app("app-install", &format!("other-{pid}"));
    assert_eq!(c, 0, "{e}");
    assert!(repo.installed(&other));
    let (c, e) = call_app("app-remove", &format!("other-{pid}"));
    assert_eq!(c, 0, "{e}");
    assert!(!repo.installed(&other));
    drop(d);

    // ... up to the operation's timeout: then the caller gets `timeout`.
    let d = Daemon::start("", &package_ops(&[&tiny], "4s"));
    let mut holder2 = hold_dpkg_lock(120);
    let (c, v, e) = call_pkg(&d, "pkg-install", &tiny);
    let _ = holder2.kill();
    let _ = holder2.wait();
    let _ = holder.wait();
    assert_eq!(v["code"], "timeout", "{c}: {e}");
    assert!(!repo.installed(&tiny));
}

#[test]
fn check_shows_what_a_module_operation_may_touch() {
    let ops = r#"
[operations.restart]
description = "Restart the web server"
service = { unit = "{unit}", action = "restart" }
params.unit = { type = "enum", values = ["nginx", "apache2"] }

[operations.any]
description = "Any package's status"
packages = { status = ["{name}"] }
params.name = { type = "string", pattern = "[a-z]{2,20}" }
"#;
    let (_dir, _s, config, _) = write_config("", ops);
    let mut check = cmd(regent().to_str().unwrap(), &["check", "--config"]);
    check.arg(&config);
    let o = run(check);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("units: nginx, apache2"), "{out}");
    assert!(
        out.contains("runs: service restart in `regent-module`"),
        "{out}"
    );
    assert!(
        out.contains("warning: {name}: name is not an enum"),
        "{out}"
    );
}

#[test]
fn the_home_server_example_checks_clean() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist/examples/home-server.toml");
    let mut check = cmd(regent().to_str().unwrap(), &["check", "--config"]);
    check.arg(&example);
    let o = run(check);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
    assert!(out.contains("units: nginx, apache2"), "{out}");
    assert!(
        out.contains("packages: nextcloud-desktop, transmission-daemon, minidlna"),
        "{out}"
    );
    assert!(
        out.contains("file: /etc/ssh/sshd_config (lens Sshd.lns, no other)\n    set Port = {port}\n    set PermitRootLogin = {root_login}\n    dry run: its approvers see the diff"),
        "{out}"
    );
}

#[test]
fn a_timezone_parameter_names_a_zone_of_the_system() {
    let d = Daemon::start(
        "",
        "[operations.tz]\ndescription = \"echo a zone\"\ncommand = [\"echo\", \"{zone}\"]\nparams.zone = { type = \"timezone\" }\n",
    );
    let o = d.cli(&["call", "tz", "--data", r#"{"zone": "Europe/Paris"}"#]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "Europe/Paris"),
        "{}",
        stderr(&o)
    );
    for bad in [
        "Europe/Atlantis",
        "../../etc/passwd",
        "localtime",
        "Europe/../UTC",
    ] {
        let data = format!(r#"{{"zone": "{bad}"}}"#);
        let o = d.cli(&["call", "tz", "--data", &data]);
        assert_eq!(code(&o), 4, "{bad}: {}", stdout(&o));
        assert!(stderr(&o).contains("zone"), "{}", stderr(&o));
    }
}

/// `regent-module` run directly by an unprivileged user runs as that user: an
/// install goes as far as apt lets that user (the simulation) and fails on the
/// dpkg lock it may not take, answered `failed` (found in review: it was
/// answered `timeout`, as if another process held the lock).
#[test]
fn regent_module_run_by_an_unprivileged_user_gains_nothing() {
    let plan = serde_json::json!({"timeout_ms": 20000, "plan": {
        "module": "packages", "action": "install", "names": ["bash"], "allowed": null}});
    let o = module_as(Some(user("regent-t-modusr")), &plan);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"]["code"], "failed", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{v}"
    );
}

/// `regent-module` with `plan` on stdin, as `who` (uid, gid) or as root.
fn module_as(who: Option<(u32, u32)>, plan: &Value) -> std::process::Output {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let mut m = std::process::Command::new(regent_module());
    m.env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    if let Some((uid, gid)) = who {
        m.uid(uid).gid(gid);
    }
    let mut child = m.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plan.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
