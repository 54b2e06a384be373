//! Under a real systemd: a system manager in new pid, mount and cgroup
//! namespaces (its own `/run`, `/tmp` and `/var`, its own cgroup trees, no unit
//! but those under test and journald) runs the shipped
//! `dist/regent.socket` and `dist/regent.service`, changed only to run this
//! test's binary and config (with a socket group of its own). The
//! daemon starts on the first connection from the
//! host, reaches `active` through `Type=notify`, runs with the unit's bounding
//! set and no_new_privs, sends its records to the manager's journald with the
//! audit fields as journal fields (`journalctl REGENT_OP=whoami` finds them),
//! serves a TLS client on the TCP socket a drop-in adds to `regent.socket`,
//! applies a new config on `systemctl reload` (polled: systemd 252 has no
//! notify-reload), and `systemctl stop` stops it gracefully while the socket
//! stays.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SYSTEMD: &str = "/lib/systemd/systemd";

/// The socket's group.
const GROUP: &str = "regent-e2e-sock";

/// An operation that inherits the service's privilege, so the daemon keeps the
/// unit's whole bounding set.
const WHOAMI: &str = "[operations.whoami]\ndescription = \"who\"\ncommand = [\"whoami\"]\n";

/// An operation for root and TLS client `panel`.
const WHO: &str = "[operations.who]\ncommand = [\"echo\", \"client {caller.client}\"]\nallow = { users = [\"root\"], clients = [\"panel\"] }\n";

/// The shipped unit's `CapabilityBoundingSet=`, as a mask (read from
/// `dist/regent.service`, so the test follows the unit as it ships).
fn unit_bounding() -> u64 {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/regent.service"),
    )
    .unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet=");
    line.split_whitespace()
        .map(|name| regent::model::Capability::parse(name).unwrap().bit())
        .fold(0, |mask, bit| mask | bit)
}

/// Why this machine cannot run a system manager for the test, if it cannot.
fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for p in [
        SYSTEMD,
        "/usr/bin/unshare",
        "/usr/bin/nsenter",
        "/sys/fs/cgroup/unified/cgroup.procs",
        "/sys/fs/cgroup/systemd/cgroup.procs",
    ] {
        if !Path::new(p).exists() {
            return Some(format!(
                "{p} is missing (a hybrid cgroup layout and Debian's systemd are needed)"
            ));
        }
    }
    None
}

/// The system manager and what it serves; powered off and removed on drop.
struct Manager {
    base: PathBuf,
    /// The cgroups (under each hierarchy) the manager was moved into.
    cgroup: String,
    child: Option<Child>,
    pid: i32,
}

impl Manager {
    fn systemctl(&self, args: &[&str]) -> std::process::Output {
        let pid = self.pid.to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "-p", "systemctl"])
            .args(args)
            .output()
            .unwrap()
    }

    /// `journalctl -o cat ARGS` in the manager (its journald).
    fn journal(&self, args: &[&str]) -> String {
        let pid = self.pid.to_string();
        let o = Command::new("nsenter")
            .args([
                "-t",
                &pid,
                "-m",
                "-p",
                "journalctl",
                "--no-pager",
                "-o",
                "cat",
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn show(&self, unit: &str, property: &str) -> String {
        let o = self.systemctl(&["show", "-p", property, "--value", unit]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The manager's `/run`, seen from the host.
    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/run", self.pid))
    }

    fn wait(&self, what: &str, mut done: impl FnMut() -> bool) {
        let t = Instant::now();
        while !done() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{what}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        let manager = std::fs::read_to_string(self.base.join("manager.log")).unwrap_or_default();
        let daemon = self.journal(&["SYSLOG_IDENTIFIER=regent"]);
        let units = self.systemctl(&["status", "--no-pager", "regent.socket", "regent.service"]);
        format!(
            "manager:\n{manager}\ndaemon:\n{daemon}\nunits:\n{}{}",
            String::from_utf8_lossy(&units.stdout),
            String::from_utf8_lossy(&units.stderr)
        )
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.systemctl(&["poweroff", "--no-block"]);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Killing the namespace's init ends every process in it.
            let _ = child.kill();
            let _ = child.wait();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_dir_all(&self.base);
        for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"] {
            remove_cgroup(&Path::new(root).join(&self.cgroup));
        }
    }
}

/// Remove a cgroup and those below it (empty once their processes are gone).
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    // The processes may take a moment to be gone after their init was killed.
    for _ in 0..250 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shipped unit, with `/usr/local/bin/regent` and the config's path
/// replaced by this test's.
fn shipped(name: &str, bin: &Path, config: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .replace("/usr/local/bin/regent", &bin.display().to_string())
        .replace("/etc/regent/regent.toml", &config.display().to_string())
}

/// The host pid of the process whose pid in the manager's namespace is `inner`.
fn host_pid(inner: i32, comm: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(pid) = entry.ok()?.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let name = status.lines().find_map(|l| l.strip_prefix("Name:"));
        let ns = status.lines().find_map(|l| l.strip_prefix("NSpid:"));
        if let (Some(name), Some(ns)) = (name, ns) {
            let ids: Vec<&str> = ns.split_whitespace().collect();
            if name.trim() == comm && ids.len() == 2 && ids[1] == inner.to_string() {
                return Some(pid);
            }
        }
    }
    None
}

/// What the test adds to the shipped setup: a `[service.tcp]` table for the
/// config, and a drop-in for `regent.socket` (as README's "Deploying" says).
struct Extra {
    tcp_table: String,
    socket_dropin: String,
}

fn start_manager(extra: &Extra) -> Manager {
    start_manager_with("units", extra, &format!("{WHOAMI}{WHO}"), &[])
}

/// A manager whose daemon serves `ops`, with `units_under_test` (name, text)
/// loaded besides the daemon's own (not started). `tag` tells apart the
/// managers of tests running at once.
fn start_manager_with(
    tag: &str,
    extra: &Extra,
    ops: &str,
    units_under_test: &[(&str, &str)],
) -> Manager {
    // Outside /tmp (the unit has PrivateTmp=) and /var (private to the manager).
    let base = PathBuf::from(format!(
        "/opt/regent-e2e-sysmgr-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("units")).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = base.join("regent");
    std::fs::copy(regent(), &bin).unwrap();
    // Module operations' work runs in `regent-module`, found beside `regent`.
    std::fs::copy(regent_module(), base.join("regent-module")).unwrap();
    let secret = base.join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = base.join("regent.toml");
    // The shipped socket's path.
    std::fs::write(
        &config,
        format!(
            "[service]\nsocket = \"/run/regent/regent.sock\"\nsocket_group = \"{GROUP}\"\nsecret_file = \"{}\"\n\n{}\n{ops}",
            secret.display(),
            extra.tcp_table,
        ),
    )
    .unwrap();
    // SocketGroup=: a group of this test's, not `regent` (which the package's
    // tests create and purge).
    group_with(GROUP, &[]);
    let units = base.join("units");
    let socket_unit = shipped("regent.socket", &bin, &config)
        .replace("SocketGroup=regent\n", &format!("SocketGroup={GROUP}\n"));
    assert!(socket_unit.contains(&format!("SocketGroup={GROUP}\n")));
    std::fs::write(units.join("regent.socket"), socket_unit).unwrap();
    std::fs::create_dir(units.join("regent.socket.d")).unwrap();
    std::fs::write(units.join("regent.socket.d/tcp.conf"), &extra.socket_dropin).unwrap();
    let service = shipped("regent.service", &bin, &config);
    std::fs::write(units.join("regent.service"), service).unwrap();
    std::fs::write(
        units.join("regent-e2e.target"),
        "[Unit]\nDescription=regent e2e\nDefaultDependencies=no\nWants=regent.socket\n",
    )
    .unwrap();
    for (name, text) in units_under_test {
        std::fs::write(units.join(name), text).unwrap();
    }
    let inner = base.join("inner.sh");
    std::fs::write(
        &inner,
        format!(
            r#"#!/bin/sh
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system /run/user
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
mkdir /sys/fs/cgroup/unified /sys/fs/cgroup/systemd
mount -t cgroup2 nscg2 /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd nscgsd /sys/fs/cgroup/systemd
# The manager shares the host's files but for these: its boot tasks
# (tmpfiles --remove, the journal, StateDirectory=) must not touch the host's.
for d in /tmp /var/tmp /var/lib /var/log /var/cache; do mount -t tmpfs tmpfs "$d"; done
cp -r {units}/* /run/systemd/system/
# Nothing but the units under test and journald: every other unit the system's
# targets pull in (sysctl, sysusers, tmpfiles, utmp, ...) is masked.
for f in /lib/systemd/system/*.wants/* /etc/systemd/system/*.wants/*; do
  n=$(basename "$f")
  case "$n" in systemd-journald*) continue ;; esac
  [ -e "/run/systemd/system/$n" ] || ln -s /dev/null "/run/systemd/system/$n"
done
export container=regent-e2e
exec {SYSTEMD} --system --unit=regent-e2e.target --log-target=console --log-level=info
"#,
            units = units.display()
        ),
    )
    .unwrap();
    let cg = format!("regent-e2e-{}-{tag}", std::process::id());
    let outer = format!(
        r#"set -e
mkdir -p /sys/fs/cgroup/unified/{cg} /sys/fs/cgroup/systemd/{cg}
echo $$ > /sys/fs/cgroup/unified/{cg}/cgroup.procs
echo $$ > /sys/fs/cgroup/systemd/{cg}/cgroup.procs
exec unshare --pid --fork --mount --cgroup --mount-proc sh {inner}"#,
        inner = inner.display()
    );
    let log = std::fs::File::create(base.join("manager.log")).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", &outer])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // systemd is unshare's child.
    let t = Instant::now();
    let pid = loop {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        // Before its exec, the shell's children are its own commands (mkdir).
        let comm =
            |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if let Some(p) = children.split_whitespace().next() {
            if comm(&child.id().to_string()).trim() == "unshare" && comm(p).trim() == "systemd" {
                break p.parse::<i32>().unwrap();
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            let text = std::fs::read_to_string(base.join("manager.log")).unwrap_or_default();
            panic!("the manager exited with {st}: {text}");
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no manager");
        std::thread::sleep(Duration::from_millis(20));
    };
    Manager {
        base,
        cgroup: cg,
        child: Some(child),
        pid,
    }
}

#[test]
fn the_shipped_units_run_the_daemon_under_systemd() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: cannot run a system manager here: {why}");
        return;
    }
    // TCP with mutual TLS, as README's "Deploying" enables it: a drop-in
    // adding the address to regent.socket, the same address in `listen`. The
    // shipped service (PrivateNetwork=, IPAddressDeny=any, AF_UNIX only) is
    // unchanged: the socket is the socket unit's, opened in the host's network.
    // Under /opt: the unit's ProtectHome= and PrivateTmp= hide /home, /root
    // and /tmp, where the repository (and its target directory) may be.
    let (pki, _) =
        crate::tls::Pki::lab_in(Path::new("/opt"), &["localhost", "127.0.0.1"], &["panel"]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tcp = format!("127.0.0.1:{port}");
    let m = start_manager(&Extra {
        tcp_table: pki.tcp_table_on(&tcp, ""),
        socket_dropin: format!("[Socket]\nListenStream={tcp}\n"),
    });
    let socket = m.run_dir().join("regent/regent.sock");
    m.wait("the socket unit listens", || socket.exists());
    m.wait("the manager settles", || {
        m.show("regent.socket", "ActiveState") == "listening"
            || m.show("regent.socket", "ActiveState") == "active"
    });
    // Nothing runs the daemon before the first connection.
    assert_eq!(
        m.show("regent.service", "ActiveState"),
        "inactive",
        "{}",
        m.log()
    );

    // The first connection, from the host, starts it; Type=notify makes the
    // unit active only once the daemon said READY=1.
    let call = |socket: &Path| {
        // The copy outside /tmp (the unit's binary), as a client.
        let mut c = Command::new(m.base.join("regent"));
        c.args(["call", "whoami", "--socket"])
            .arg(socket)
            .arg("--secret-file")
            .arg(m.base.join("secret"));
        run(c)
    };
    let o = call(&socket);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), m.log());
    assert_eq!(stdout(&o), "root");
    m.wait("the service is active", || {
        m.show("regent.service", "ActiveState") == "active"
    });
    assert_eq!(m.show("regent.service", "Type"), "notify");
    assert_eq!(
        m.show("regent.service", "StatusText"),
        "serving 2 operation(s) on /run/regent/regent.sock"
    );
    // A remote client, on the TCP socket the socket unit passed.
    let o = crate::tls::remote(&pki, port, "panel", &["call", "who"]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), m.log());
    assert_eq!(stdout(&o), "client panel");
    m.wait("the TLS client's record in the journal", || {
        m.journal(&["REGENT_CLIENT=panel", "REGENT_OP=who", "REGENT_OUTCOME=ok"])
            .contains("request ")
    });

    // The daemon's own process: the unit's bounding set, no_new_privs.
    let inner: i32 = m.show("regent.service", "MainPID").parse().unwrap();
    let pid = host_pid(inner, "regent").unwrap_or_else(|| panic!("no daemon {inner}: {}", m.log()));
    assert_eq!(
        u64::from_str_radix(&proc_status_field(pid, "CapBnd"), 16).unwrap(),
        unit_bounding(),
        "{}",
        m.log()
    );
    assert_eq!(proc_status_field(pid, "NoNewPrivs"), "1");
    // Its records are in the journal, with the audit fields as journal fields.
    m.wait("the audit record in the journal", || {
        m.journal(&[
            "REGENT_OP=whoami",
            "REGENT_OUTCOME=ok",
            "REGENT_CALLER_UID=0",
            "_SYSTEMD_UNIT=regent.service",
        ])
        .contains("request ")
    });
    let daemon_log = m.journal(&["SYSLOG_IDENTIFIER=regent"]);
    assert!(
        daemon_log.contains("serving the socket passed by the service manager")
            && daemon_log.contains("serving the TCP socket passed by the service manager"),
        "{}",
        m.log()
    );

    // `systemctl reload` applies a new config: `whoami` removed, `hello`
    // added. systemd 252 has no Type=notify-reload: poll until it shows.
    let config = m.base.join("regent.toml");
    let before = std::fs::read_to_string(&config).unwrap();
    let hello = "[operations.hello]\ncommand = [\"echo\", \"hello\"]\ncapabilities = []\n";
    std::fs::write(&config, format!("{}{hello}", before.replace(WHOAMI, ""))).unwrap();
    let cli = |args: &[&str]| {
        let mut c = Command::new(m.base.join("regent"));
        c.args(args)
            .arg("--socket")
            .arg(&socket)
            .arg("--secret-file")
            .arg(m.base.join("secret"));
        run(c)
    };
    let o = m.systemctl(&["reload", "regent.service"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    m.wait("the reloaded operations", || {
        let ops = stdout(&cli(&["ops"]));
        ops.contains("hello") && !ops.contains("whoami")
    });
    let o = cli(&["call", "hello"]);
    assert_eq!(stdout(&o), "hello", "{}\n{}", stderr(&o), m.log());
    let o = cli(&["call", "whoami"]);
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    assert!(stderr(&o).contains("unknown_operation"), "{}", stderr(&o));
    // The log line follows (records are written in batches).
    m.wait("the reload's log line", || {
        m.journal(&["SYSLOG_IDENTIFIER=regent"])
            .contains("configuration reloaded: operations added: hello, operations removed: whoami")
    });
    // The same process, still active; TLS clients still served.
    assert_eq!(m.show("regent.service", "MainPID"), inner.to_string());
    assert_eq!(m.show("regent.service", "ActiveState"), "active");
    let o = crate::tls::remote(&pki, port, "panel", &["call", "who"]);
    assert_eq!(stdout(&o), "client panel", "{}\n{}", stderr(&o), m.log());

    // A graceful stop: the daemon exits 0 on SIGTERM; the socket stays.
    let o = m.systemctl(&["stop", "regent.service"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(m.show("regent.service", "ActiveState"), "inactive");
    assert_eq!(m.show("regent.service", "Result"), "success", "{}", m.log());
    assert_eq!(
        m.show("regent.service", "ExecMainStatus"),
        "0",
        "{}",
        m.log()
    );
    m.wait("the last record", || {
        m.journal(&["SYSLOG_IDENTIFIER=regent", "MESSAGE=stopped"])
            .contains("stopped")
    });
    assert!(socket.exists(), "the socket unit's socket was removed");

    // The next connection starts it again, with the reloaded config.
    let o = cli(&["call", "hello"]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), m.log());
    assert_eq!(stdout(&o), "hello");
}

/// `service` operations through the systemd backend: the daemon under the
/// manager (socket activated, the shipped unit's confinement) runs `regent
/// module`, which drives real units with `systemctl`.
#[test]
fn service_operations_drive_real_units_through_systemctl() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: cannot run a system manager here: {why}");
        return;
    }
    let web = "regent-e2e-web.service";
    let broken = "regent-e2e-broken.service";
    let hung = "regent-e2e-hung.service";
    let mut ops = String::new();
    for action in [
        "status", "start", "stop", "restart", "reload", "enable", "disable",
    ] {
        ops.push_str(&format!(
            "[operations.svc-{action}]\ndescription = \"{action}\"\n\
             service = {{ unit = \"{{unit}}\", action = \"{action}\" }}\n\
             params.unit = {{ type = \"enum\", values = [\"{web}\", \"{broken}\", \"{hung}\"] }}\n\
             timeout = \"4s\"\n\n"
        ));
    }
    let none = Extra {
        tcp_table: String::new(),
        socket_dropin: String::new(),
    };
    let m = start_manager_with(
        "service",
        &none,
        &ops,
        &[
            (
                web,
                "[Service]\nExecStart=/bin/sleep 100000\nExecReload=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
            ),
            (broken, "[Service]\nType=oneshot\nExecStart=/bin/false\n"),
            (
                hung,
                "[Service]\nExecStart=/bin/sleep 100000\nExecStop=/bin/sleep 100000\nTimeoutStopSec=600\n",
            ),
        ],
    );
    let socket = m.run_dir().join("regent/regent.sock");
    m.wait("the socket unit listens", || socket.exists());
    let call = |op: &str, unit: &str| {
        let mut c = Command::new(m.base.join("regent"));
        c.args([
            "call",
            op,
            "--json",
            "--data",
            &format!(r#"{{"unit": "{unit}"}}"#),
            "--socket",
        ])
        .arg(&socket)
        .arg("--secret-file")
        .arg(m.base.join("secret"));
        let o = run(c);
        let v: serde_json::Value =
            serde_json::from_str(&stdout(&o)).unwrap_or(serde_json::Value::Null);
        (
            code(&o),
            v,
            format!("{}{}\n{}", stdout(&o), stderr(&o), m.log()),
        )
    };

    let (c, v, e) = call("svc-status", web);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["backend"], "systemd", "{e}");
    assert_eq!(v["data"]["active"], "inactive", "{e}");

    let (c, v, e) = call("svc-start", web);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["active"], "active", "{e}");
    assert_eq!(v["data"]["status"]["sub"], "running", "{e}");
    assert!(v["data"]["status"]["since"].is_string(), "{e}");
    assert_eq!(m.show(web, "ActiveState"), "active");
    let first: u32 = m.show(web, "MainPID").parse().unwrap();

    let (c, v, e) = call("svc-reload", web);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["active"], "active", "{e}");

    let (c, _, e) = call("svc-restart", web);
    assert_eq!(c, 0, "{e}");
    let second: u32 = m.show(web, "MainPID").parse().unwrap();
    assert!(second != 0 && second != first, "{e}");

    let (c, v, e) = call("svc-stop", web);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["active"], "inactive", "{e}");
    assert_eq!(m.show(web, "ActiveState"), "inactive");

    // Enabled at boot, then not.
    let (c, v, e) = call("svc-enable", web);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["enabled"], true, "{e}");
    assert_eq!(m.show(web, "UnitFileState"), "enabled");
    let (c, v, e) = call("svc-disable", web);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["status"]["enabled"], false, "{e}");
    assert_eq!(m.show(web, "UnitFileState"), "disabled");

    // A unit that fails to start: the failure, and `failed` in its status.
    let (c, _, e) = call("svc-start", broken);
    assert_eq!(c, 5, "{e}");
    assert!(e.contains("operation_failed") && e.contains(broken), "{e}");
    let (c, v, e) = call("svc-status", broken);
    assert_eq!(c, 0, "{e}");
    assert_eq!(v["data"]["active"], "failed", "{e}");
    assert_eq!(v["data"]["detail"]["result"], "exit-code", "{e}");

    // A hung ExecStop: the run's timeout cancels the job; the caller gets
    // `timeout`.
    let (c, _, e) = call("svc-start", hung);
    assert_eq!(c, 0, "{e}");
    let (_, v, e) = call("svc-stop", hung);
    assert_eq!(v["code"], "timeout", "{e}");
    let jobs = m.systemctl(&["list-jobs", "--no-legend", hung]);
    assert!(
        String::from_utf8_lossy(&jobs.stdout).trim().is_empty(),
        "the stop job was not cancelled: {}",
        String::from_utf8_lossy(&jobs.stdout)
    );
}
