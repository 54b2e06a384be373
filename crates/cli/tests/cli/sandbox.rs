//! The sandbox's gaps, through the daemon: a root operation with `capabilities = []`
//! and a Landlock `sandbox`, called by an unprivileged user, cannot change the
//! metadata of a root-only file outside its lists, reach a Unix socket outside
//! them, or signal an unrelated root process; each `sandbox.allow` opt-in re-enables
//! exactly its family; an operation without a sandbox is unaffected.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::util::*;

const READ: &str = r#"read = ["/usr", "/lib", "/lib64", "/bin", "/etc", "/dev/null"]"#;

/// Perl scenarios (the config's `{dir}` is the daemon's directory); no braces, so
/// no template placeholders.
const CONNECT: &str = r#"'socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n"; connect($s, pack_sockaddr_un($ARGV[0])) or die "connect: $!\n"'"#;

fn setxattr_script() -> String {
    format!(
        r#"'my ($p, $n, $v) = ($ARGV[0], "user.regent", "v"); syscall({}, $p, $n, $v, 1, 0) == 0 or die "setxattr: $!\n"'"#,
        nix::libc::SYS_setxattr
    )
}

/// One operation per family and opt-in. `victim` is the pid the kill operations
/// aim at.
fn ops(victim: u32) -> String {
    let target = "\"{dir}/outside/root-only\"";
    let sock = "\"{dir}/outside/sock\"";
    let setxattr = setxattr_script();
    let mut ops = String::new();
    let mut op = |name: &str, command: String, sandbox: Option<&str>| {
        ops.push_str(&format!(
            "[operations.{name}]\ndescription = \"{name}\"\ncommand = {command}\ncapabilities = []\n"
        ));
        if let Some(allow) = sandbox {
            ops.push_str(&format!(
                "sandbox = {{ {READ}, write = [\"{{dir}}/write\"], allow = [{allow}] }}\n"
            ));
        }
        ops.push('\n');
    };
    let chmod = format!("[\"chmod\", \"0666\", {target}]");
    let touch = format!("[\"touch\", \"-c\", \"-d\", \"2001-02-03\", {target}]");
    let chown = format!("[\"chown\", \"0:0\", {target}]");
    let xattr = format!("[\"perl\", \"-e\", {setxattr}, {target}]");
    let connect = format!("[\"perl\", \"-MSocket\", \"-e\", {CONNECT}, {sock}]");
    let kill = format!("[\"kill\", \"-TERM\", \"{victim}\"]");
    for (family, cmd) in [
        ("chmod", &chmod),
        ("touch", &touch),
        ("chown", &chown),
        ("setxattr", &xattr),
        ("connect", &connect),
        ("kill", &kill),
    ] {
        op(family, cmd.clone(), Some(""));
        op(
            &format!("{family}-metadata"),
            cmd.clone(),
            Some("\"metadata\""),
        );
        op(&format!("{family}-unix"), cmd.clone(), Some("\"unix\""));
        op(
            &format!("{family}-signals"),
            cmd.clone(),
            Some("\"signals\""),
        );
        op(&format!("{family}-plain"), cmd.clone(), None);
    }
    ops
}

struct Scene {
    d: Daemon,
    caller: (u32, u32),
    target: PathBuf,
    listener: UnixListener,
}

impl Scene {
    fn start(victim: u32) -> Scene {
        let d = Daemon::start("socket_mode = \"0666\"", &ops(victim));
        let dir = d.dir.path();
        for sub in ["outside", "write"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let target = dir.join("outside/root-only");
        let listener = UnixListener::bind(dir.join("outside/sock")).unwrap();
        listener.set_nonblocking(true).unwrap();
        let scene = Scene {
            d,
            caller: user("regent-e2e-alice"),
            target,
            listener,
        };
        scene.reset_target();
        scene
    }

    /// The root-only file, fresh: mode 0600, an old mtime, no xattr.
    fn reset_target(&self) {
        let _ = std::fs::remove_file(&self.target);
        std::fs::write(&self.target, "root only\n").unwrap();
        std::fs::set_permissions(&self.target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// `regent call OP` as the unprivileged caller.
    fn call(&self, op: &str) -> std::process::Output {
        self.d
            .cli_as(self.caller.0, self.caller.1, &["call", op], Some(SECRET))
    }

    fn denied(&self, op: &str) {
        let o = self.call(op);
        assert_eq!(code(&o), 5, "{op} ran: {} {}", stdout(&o), stderr(&o));
        assert!(
            stderr(&o).contains("Operation not permitted"),
            "{op}: {}",
            stderr(&o)
        );
    }

    fn allowed(&self, op: &str) {
        let o = self.call(op);
        assert_eq!(code(&o), 0, "{op} failed: {}", stderr(&o));
    }

    /// A connection reached the socket outside the lists since the last call.
    fn accepted(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }

    fn unchanged(&self) -> bool {
        let m = std::fs::metadata(&self.target).unwrap();
        m.mode() & 0o7777 == 0o600 && m.mtime() > 1_000_000_000 && !xattr(&self.target)
    }
}

/// The file has the `user.regent` xattr (read back with perl's raw getxattr).
fn xattr(p: &Path) -> bool {
    let script = format!(
        r#"my ($p, $n, $b) = ($ARGV[0], "user.regent", "xxxxxxxx"); exit(syscall({}, $p, $n, $b, 8) > 0 ? 0 : 1)"#,
        nix::libc::SYS_getxattr
    );
    std::process::Command::new("perl")
        .args(["-e", &script])
        .arg(p)
        .status()
        .unwrap()
        .success()
}

fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap()
}

#[test]
fn a_sandboxed_root_operation_cannot_change_metadata_outside_its_lists() {
    let mut victim = sleeper();
    let s = Scene::start(victim.id());
    for op in ["chmod", "touch", "chown", "setxattr"] {
        s.denied(op);
        assert!(s.unchanged(), "{op} changed the root-only file");
        // Opting in to another family changes nothing for this one.
        s.denied(&format!("{op}-unix"));
        s.denied(&format!("{op}-signals"));
        assert!(s.unchanged(), "{op} changed the root-only file");
    }
    // Opting in re-enables exactly this family.
    s.allowed("chmod-metadata");
    assert_eq!(std::fs::metadata(&s.target).unwrap().mode() & 0o7777, 0o666);
    s.reset_target();
    s.allowed("touch-metadata");
    assert!(std::fs::metadata(&s.target).unwrap().mtime() < 1_000_000_000);
    s.reset_target();
    s.allowed("chown-metadata");
    s.allowed("setxattr-metadata");
    assert!(xattr(&s.target));
    // Without a sandbox, nothing changes.
    s.reset_target();
    for op in [
        "chmod-plain",
        "touch-plain",
        "chown-plain",
        "setxattr-plain",
    ] {
        s.allowed(op);
    }
    assert!(xattr(&s.target));
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn a_sandboxed_root_operation_cannot_reach_unix_sockets_outside_its_lists() {
    let mut victim = sleeper();
    let s = Scene::start(victim.id());
    for op in ["connect", "connect-metadata", "connect-signals"] {
        s.denied(op);
        assert!(!s.accepted(), "{op} connected");
    }
    s.allowed("connect-unix");
    assert!(s.accepted(), "connect-unix did not connect");
    s.allowed("connect-plain");
    assert!(s.accepted(), "connect-plain did not connect");
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn a_sandboxed_root_operation_cannot_signal_unrelated_processes() {
    let abi = regent::exec::landlock::abi_version().unwrap_or(0);
    if abi < regent::exec::landlock::ABI_SCOPE {
        println!(
            "SKIPPED a_sandboxed_root_operation_cannot_signal_unrelated_processes: \
             Landlock ABI {abi} has no signal scoping (needs {})",
            regent::exec::landlock::ABI_SCOPE
        );
        return;
    }
    let mut victim = sleeper();
    let s = Scene::start(victim.id());
    for op in ["kill", "kill-metadata", "kill-unix"] {
        s.denied(op);
        assert!(victim.try_wait().unwrap().is_none(), "{op} killed it");
    }
    s.allowed("kill-signals");
    let status = wait_timeout(&mut victim, std::time::Duration::from_secs(10));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    let mut other = sleeper();
    let s = Scene::start(other.id());
    s.allowed("kill-plain");
    let status = wait_timeout(&mut other, std::time::Duration::from_secs(10));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
}

#[test]
fn check_says_which_protections_the_kernel_gives() {
    let s = Scene::start(1);
    let mut c = std::process::Command::new(regent());
    c.args(["check", "--config"]).arg(&s.d.config);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let kernel = regent::exec::KernelSupport::current();
    assert!(out.contains(&kernel.summary()), "{out}");
    let section = |op: &str| -> String {
        let start = out
            .find(&format!("operation {op}: "))
            .unwrap_or_else(|| panic!("no {op} in {out}"));
        let rest = &out[start + 1..];
        rest[..rest.find("\noperation ").unwrap_or(rest.len())].to_string()
    };
    let chmod = section("chmod");
    let signals = if kernel.landlock_abi.unwrap_or(0) >= 6 {
        "signals to processes outside the sandbox (Landlock ABI 6): denied"
    } else {
        "signals to processes outside the sandbox (Landlock ABI 6): NOT ENFORCED"
    };
    for line in [
        "chmod, chown, utime, xattr and chattr on any file (seccomp): denied",
        "creating Unix sockets, so connecting to any (seccomp): denied",
        signals,
    ] {
        assert!(chmod.contains(line), "{line} missing from {chmod}");
    }
    assert!(
        section("chmod-metadata")
            .contains("chmod, chown, utime, xattr and chattr on any file (seccomp): allowed (sandbox.allow = \"metadata\")"),
        "{out}"
    );
    assert!(section("chmod-plain").contains("sandbox: none"), "{out}");
}
