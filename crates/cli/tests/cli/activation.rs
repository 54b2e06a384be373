//! The service manager's protocols without a service manager: the daemon started
//! by Debian's `systemd-socket-activate` serves the socket it was passed (and
//! refuses ones it was not configured for), and a datagram listener on
//! `NOTIFY_SOCKET` hears `READY=1`, watchdog pings, `RELOADING=1` and `STOPPING=1`.

use crate::util::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

const OPS: &str = r#"
[operations.whoami]
description = "Which user the service runs as"
command = ["whoami"]
capabilities = []
"#;

const KILL: u64 = 1 << 5;
const SETPCAP: u64 = 1 << 8;

/// Whether the tool is here (`.ci/run` installs Debian's `systemd` package).
fn activate_available() -> bool {
    if Path::new(ACTIVATE).exists() {
        return true;
    }
    eprintln!("skipped: {ACTIVATE} is missing (apt-get install systemd; .ci/run does)");
    false
}

/// Start `systemd-socket-activate ARGS regent serve --config ...` (through
/// `wrapper`, which must exec) for `d`, logging to a file in its directory.
/// Nothing runs the daemon until the first connection.
fn activate(d: &mut Daemon, args: &[&str], wrapper: &[&str]) {
    d.log = d.dir.path().join("activated.log");
    let log = std::fs::File::create(&d.log).unwrap();
    let child = Command::new(ACTIVATE)
        .args(args)
        .args(["-E", "RUST_LOG=info", "--"])
        .args(wrapper)
        .arg(regent())
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&d.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    d.child = Some(child);
}

/// Wait until `path` exists (the activator has bound it).
fn wait_for_path(d: &mut Daemon, path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("activator exited with {st}: {}", d.log_text());
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} not bound",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test listener on `NOTIFY_SOCKET`, writable by any user.
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notifications {
            socket,
            seen: Vec::new(),
        }
    }

    /// Receive until a message has the line `line`; returns that message.
    fn wait_for(&mut self, line: &str) -> String {
        self.wait_for_count(line, 1);
        let found = self.seen.iter().find(|m| m.lines().any(|l| l == line));
        found.unwrap().clone()
    }

    /// Receive until `n` messages have the line `line`.
    fn wait_for_count(&mut self, line: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = vec![0u8; 4096];
        while self.count(line) < n {
            assert!(
                Instant::now() < deadline,
                "not {n} {line:?} among {:?}",
                self.seen
            );
            if let Ok(got) = self.socket.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..got]).into_owned());
            }
        }
    }

    fn count(&self, line: &str) -> usize {
        self.seen
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

#[test]
fn socket_activation_serves_the_passed_socket_and_notifies_the_manager() {
    if !activate_available() {
        return;
    }
    let (dir, socket, config, secret) = write_config("", OPS);
    let mut d = Daemon::from_parts(dir, socket, config, secret);
    let notify_path = d.dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&notify_path);
    let notify = format!("NOTIFY_SOCKET={}", notify_path.display());
    let listen = d.socket.display().to_string();
    activate(
        &mut d,
        &[
            "-l",
            &listen,
            "--fdname=regent",
            "-E",
            &notify,
            "-E",
            "WATCHDOG_USEC=300000",
        ],
        &[],
    );
    let socket = d.socket.clone();
    wait_for_path(&mut d, &socket);
    // The activator made the socket (0644, its way); the daemon must keep it.
    let made = std::fs::metadata(&d.socket).unwrap().ino();
    // The first connection starts the daemon; it waits in the backlog meanwhile.
    let first = UnixStream::connect(&d.socket).unwrap();
    let ready = notes.wait_for("READY=1");
    // READY=1 comes only after the privilege drop: the daemon already holds
    // only what its operations need.
    let pid = d.pid();
    let bounding = u64::from_str_radix(&proc_status_field(pid, "CapBnd"), 16).unwrap();
    assert_eq!(bounding, KILL | SETPCAP, "the bounding set at READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=serving 1 operation")),
        "{ready:?}"
    );
    drop(first);
    let o = d.cli(&["call", "whoami"]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), d.log_text());
    assert_eq!(stdout(&o), "root");
    assert!(
        d.log_shows("serving the socket passed by the service manager"),
        "{}",
        d.log_text()
    );
    // The passed descriptor (3) is close-on-exec: no command inherits it.
    let fdinfo = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/3")).unwrap();
    let flags = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
        .unwrap();
    assert_ne!(flags & 0o2000000, 0, "fd 3 without O_CLOEXEC: {fdinfo}");
    // Watchdog pings, every half period, from the event loop.
    notes.wait_for_count("WATCHDOG=1", 3);
    // A reload (SIGHUP, what `systemctl reload` sends) says RELOADING=1, then
    // READY=1 again once the configuration is applied.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    notes.wait_for("RELOADING=1");
    notes.wait_for_count("READY=1", 2);
    let reloading = notes
        .seen
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"));
    let ready_again = notes
        .seen
        .iter()
        .enumerate()
        .filter(|(_, m)| m.lines().any(|l| l == "READY=1"))
        .nth(1)
        .map(|(i, _)| i);
    assert!(
        reloading < ready_again,
        "READY=1 before RELOADING=1: {:?}",
        notes.seen
    );
    assert!(d.log_shows("configuration reloaded"), "{}", d.log_text());
    // A graceful stop says so, and leaves the manager's socket in place.
    let st = d.stop();
    assert!(st.success(), "{st}: {}", d.log_text());
    notes.wait_for("STOPPING=1");
    let after = std::fs::metadata(&d.socket).expect("the passed socket stays");
    assert_eq!(
        after.ino(),
        made,
        "the daemon replaced the manager's socket"
    );
}

#[test]
fn a_non_root_daemon_notifies_ready_and_stopping() {
    if !activate_available() {
        return;
    }
    let (uid, gid) = user("regent-e2e-notify");
    // No `capabilities`: a non-root daemon has none to drop.
    let ops = OPS.replace("capabilities = []\n", "");
    let (dir, socket, config, secret) = write_config("", &ops);
    std::os::unix::fs::chown(&secret, Some(uid), Some(gid)).unwrap();
    let mut d = Daemon::from_parts(dir, socket, config, secret);
    let notify_path = d.dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&notify_path);
    let notify = format!("NOTIFY_SOCKET={}", notify_path.display());
    let listen = d.socket.display().to_string();
    let (u, g) = (uid.to_string(), gid.to_string());
    activate(
        &mut d,
        &["-l", &listen, "-E", &notify],
        &[
            "/usr/bin/setpriv",
            "--reuid",
            &u,
            "--regid",
            &g,
            "--clear-groups",
        ],
    );
    let socket = d.socket.clone();
    wait_for_path(&mut d, &socket);
    let first = UnixStream::connect(&d.socket).unwrap();
    notes.wait_for("READY=1");
    assert_eq!(
        proc_status_field(d.pid(), "Uid").split_whitespace().next(),
        Some(u.as_str())
    );
    drop(first);
    let o = d.cli(&["call", "whoami"]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), d.log_text());
    assert_eq!(stdout(&o), "regent-e2e-notify");
    assert_eq!(notes.count("WATCHDOG=1"), 0, "no watchdog asked for");
    let st = d.stop();
    assert!(st.success(), "{st}: {}", d.log_text());
    notes.wait_for("STOPPING=1");
}

/// Start the activator with `args`, make the first connection with `trigger`,
/// and return the daemon's exit status and log.
fn refused(args: &[&str], trigger: impl FnOnce(&Daemon)) -> (std::process::ExitStatus, String) {
    refused_with("", args, trigger)
}

/// [`refused`], with `service_extra` in the config's `[service]`.
fn refused_with(
    service_extra: &str,
    args: &[&str],
    trigger: impl FnOnce(&Daemon),
) -> (std::process::ExitStatus, String) {
    let (dir, socket, config, secret) = write_config(service_extra, OPS);
    let mut d = Daemon::from_parts(dir, socket, config, secret);
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{dir}", &d.dir.path().display().to_string()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    activate(&mut d, &args, &[]);
    let first = args[1].to_string();
    if first.starts_with('/') {
        wait_for_path(&mut d, Path::new(&first));
    } else {
        std::thread::sleep(Duration::from_millis(300));
    }
    trigger(&d);
    let st = wait_timeout(d.child.as_mut().unwrap(), Duration::from_secs(15));
    d.child = None;
    (st, d.log_text())
}

#[test]
fn a_passed_socket_the_config_does_not_name_is_refused() {
    if !activate_available() {
        return;
    }
    let (st, log) = refused(&["-l", "{dir}/other.sock"], |d| {
        let _ = UnixStream::connect(d.dir.path().join("other.sock"));
    });
    assert!(!st.success(), "{log}");
    assert!(
        log.contains("is not a configured socket") && log.contains("other.sock"),
        "{log}"
    );
    assert!(!log.contains("listening"), "{log}");
}

#[test]
fn a_passed_datagram_socket_is_refused() {
    if !activate_available() {
        return;
    }
    let (st, log) = refused(&["-d", "-l", "{dir}/regent.sock"], |d| {
        let s = UnixDatagram::unbound().unwrap();
        let _ = s.send_to(b"x", &d.socket);
    });
    assert!(!st.success(), "{log}");
    assert!(log.contains("is not a stream socket"), "{log}");
}

/// A TCP port free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_passed_tcp_socket_serves_tls_clients_beside_the_passed_unix_socket() {
    if !activate_available() {
        return;
    }
    let (pki, _) = crate::tls::Pki::lab(&["panel"]);
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    let ops = r#"
[operations.who]
command = ["echo", "client {caller.client}"]
allow = { users = ["root"], clients = ["panel"] }
capabilities = []
"#;
    let (dir, socket, config, secret) = write_config(&pki.tcp_table_on(&tcp, ""), ops);
    let mut d = Daemon::from_parts(dir, socket, config, secret);
    let listen = d.socket.display().to_string();
    activate(
        &mut d,
        &["-l", &listen, "-l", &tcp, "--fdname=unix:tcp"],
        &[],
    );
    let socket = d.socket.clone();
    wait_for_path(&mut d, &socket);
    // The first connection, a TLS one, starts the daemon; it waits in the
    // passed socket's backlog meanwhile. The activator still holds the port:
    // a daemon that bound it itself would fail (address in use).
    let o = crate::tls::remote(&pki, port, "panel", &["call", "who"]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), d.log_text());
    assert_eq!(stdout(&o), "client panel");
    let o = d.cli(&["call", "who"]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), d.log_text());
    assert_eq!(stdout(&o), "client");
    assert!(
        d.log_shows(&format!(
            "serving the TCP socket passed by the service manager\",\"address\":\"{tcp}\""
        )),
        "{}",
        d.log_text()
    );
    assert!(
        d.log_shows("serving the socket passed by the service manager"),
        "{}",
        d.log_text()
    );
    let st = d.stop();
    assert!(st.success(), "{st}: {}", d.log_text());
}

#[test]
fn a_passed_tcp_socket_no_listen_address_names_is_refused() {
    if !activate_available() {
        return;
    }
    let (pki, _) = crate::tls::Pki::lab(&[]);
    let (configured, passed) = (free_port(), free_port());
    let tcp = format!("127.0.0.1:{passed}");
    let (st, log) = refused_with(
        &pki.tcp_table_on(&format!("127.0.0.1:{configured}"), ""),
        &["-l", "{dir}/regent.sock", "-l", &tcp, "--fdname=unix:tcp"],
        |d| {
            let _ = UnixStream::connect(&d.socket);
        },
    );
    assert!(!st.success(), "{log}");
    assert!(
        log.contains(&format!("(TCP socket {tcp}, named "))
            && log.contains("is not a configured socket")
            && log.contains(&format!("[service.tcp] listen 127.0.0.1:{configured}")),
        "{log}"
    );
    assert!(!log.contains("listening"), "{log}");
}

#[test]
fn a_passed_udp_socket_at_a_listen_address_is_refused() {
    if !activate_available() {
        return;
    }
    let (pki, _) = crate::tls::Pki::lab(&[]);
    let address = format!("127.0.0.1:{}", free_port());
    let (st, log) = refused_with(
        &pki.tcp_table_on(&address, ""),
        &["-d", "-l", &address],
        |_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let _ = s.send_to(b"x", &address);
        },
    );
    assert!(!st.success(), "{log}");
    assert!(
        log.contains(&format!("socket {address}")) && log.contains("is not a stream socket"),
        "{log}"
    );
}

#[test]
fn a_passed_tcp_socket_is_refused_without_a_tcp_listener() {
    if !activate_available() {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tcp = format!("127.0.0.1:{port}");
    let (st, log) = refused(
        &["-l", "{dir}/regent.sock", "-l", &tcp, "--fdname=unix:tcp"],
        |d| {
            let _ = UnixStream::connect(&d.socket);
        },
    );
    assert!(!st.success(), "{log}");
    assert!(
        log.contains(&format!("TCP socket {tcp}")) && log.contains("[service.tcp]"),
        "{log}"
    );
}
