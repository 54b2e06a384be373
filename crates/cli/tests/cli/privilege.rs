//! Least privilege through the daemon: each operation runs with exactly its
//! declared privilege, and the daemon itself keeps only what its operations need.

use crate::util::*;

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_string()
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v, 16).unwrap()
}

const OPS: &str = r#"
[operations.netadmin-as-nobody]
description = "Reads its own status"
command = ["cat", "/proc/self/status"]
run_as = { user = "nobody" }
capabilities = ["CAP_NET_ADMIN"]

[operations.sandboxed]
description = "Tries to read a file outside its sandbox"
command = ["cat", "{dir}/outside/secret.txt"]
capabilities = []
sandbox = { read = ["/usr", "/lib", "/lib64", "/bin", "/etc"], write = [] }
limits = { open_files = 32 }
"#;

const NET_ADMIN: u64 = 1 << 12;
const KILL: u64 = 1 << 5;
const SETGID: u64 = 1 << 6;
const SETUID: u64 = 1 << 7;
const SETPCAP: u64 = 1 << 8;

#[test]
fn an_operation_runs_with_exactly_its_declared_privilege() {
    let d = Daemon::start("", OPS);
    let o = d.cli(&["call", "netadmin-as-nobody"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let status = stdout(&o);
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    assert!(
        field(&status, "Uid").starts_with(&format!("{nobody}\t")),
        "{status}"
    );
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(hex(&field(&status, set)), NET_ADMIN, "{set} in {status}");
    }
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Groups"), "");
}

#[test]
fn the_daemon_keeps_only_what_its_operations_need() {
    let d = Daemon::start("", OPS);
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let want = NET_ADMIN | KILL | SETGID | SETUID | SETPCAP;
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            hex(&field(&status, set)),
            want,
            "{set} of the daemon: {status}"
        );
    }
    // Every thread of the daemon, not only the main one.
    for task in std::fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap() {
        let s = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert_eq!(hex(&field(&s, "CapEff")), want, "a thread kept more: {s}");
    }
    assert!(d.log_shows("kept only"), "{}", d.log_text());
}

#[test]
fn landlock_keeps_a_command_inside_its_sandbox() {
    let d = Daemon::start("", OPS);
    let outside = d.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "top secret").unwrap();
    let o = d.cli(&["call", "sandboxed"]);
    assert_eq!(code(&o), 5, "read outside the sandbox: {}", stdout(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("top secret"));
}

/// The daemon as a non-root user holding only ambient capabilities (what systemd's
/// `AmbientCapabilities=` gives it): it serves, and hands the operation exactly the
/// capability it declares.
#[test]
fn the_daemon_runs_as_a_non_root_user_with_only_the_needed_capabilities() {
    let (uid, gid) = user("regent-e2e-svc");
    let (dir, socket, config, secret_file) = write_config("socket_mode = \"0666\"", OPS_NONROOT);
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(&secret_file, Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(&config, Some(uid), Some(gid)).unwrap();
    let caps = "+net_admin,+setpcap,+kill";
    let mut child = std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(regent())
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("daemon exited with {st}: {err}");
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "daemon did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let daemon = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    assert!(
        field(&daemon, "Uid").starts_with(&format!("{uid}\t")),
        "{daemon}"
    );
    assert_eq!(
        hex(&field(&daemon, "CapEff")),
        NET_ADMIN | SETPCAP | KILL,
        "{daemon}"
    );
    let mut c = std::process::Command::new(regent());
    c.args(["call", "netadmin", "--socket"])
        .arg(&socket)
        .arg("--secret-file")
        .arg(&secret_file);
    c.args(["--server-uid", "regent-e2e-svc"]); // the client trusts the service's user
    let o = run(c);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let status = stdout(&o);
    assert!(
        field(&status, "Uid").starts_with(&format!("{uid}\t")),
        "{status}"
    );
    assert_eq!(hex(&field(&status, "CapEff")), NET_ADMIN, "{status}");
    assert_eq!(hex(&field(&status, "CapBnd")), NET_ADMIN, "{status}");
    drop(dir);
}

const OPS_NONROOT: &str = r#"
[operations.netadmin]
description = "Reads its own status, holding CAP_NET_ADMIN"
command = ["cat", "/proc/self/status"]
capabilities = ["CAP_NET_ADMIN"]
"#;
