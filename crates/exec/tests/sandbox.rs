//! The sandbox beyond Landlock's filesystem rules: the seccomp filter (metadata and
//! Unix sockets) and Landlock's TCP rules and signal scoping, on real processes run
//! as root with no capabilities (the set-up the security review measured). Must run
//! as root. `/bin/sh` and `perl` appear here only to build scenarios.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use regent_exec::{landlock, run, CommandSpec, ExecOutput, ExecPolicy, Sandbox, SandboxAllow};

fn cmd(argv: &[&str]) -> CommandSpec {
    CommandSpec::new(argv.iter().copied())
}

/// A fresh directory with `outside/` (root-only file and a listening Unix socket,
/// in neither list), `read/` (a root-owned file in the read list) and `write/`.
struct Scene {
    dir: PathBuf,
    outside: PathBuf,
    readonly: PathBuf,
    socket: PathBuf,
    listener: UnixListener,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "regent-exec-sandbox-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for sub in ["outside", "read", "write"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let outside = dir.join("outside/root-only");
        std::fs::write(&outside, "secret\n").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        let readonly = dir.join("read/file");
        std::fs::write(&readonly, "listed\n").unwrap();
        let socket = dir.join("outside/sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        Scene {
            dir,
            outside,
            readonly,
            socket,
            listener,
        }
    }

    fn policy(&self, allow: SandboxAllow) -> ExecPolicy {
        let mut read: Vec<PathBuf> = ["/usr", "/lib", "/lib64", "/lib32", "/etc"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect();
        read.push(self.dir.join("read"));
        // perl -e opens /dev/null as its script file.
        read.push(PathBuf::from("/dev/null"));
        ExecPolicy {
            timeout: Duration::from_secs(20),
            capabilities: Some(Vec::new()),
            sandbox: Some(Sandbox {
                read,
                write: vec![self.dir.join("write")],
                allow,
            }),
            ..ExecPolicy::default()
        }
    }

    /// A connection reached the listener since the last call.
    fn accepted(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn denied(out: &ExecOutput, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.success() && err.contains("Operation not permitted"),
        "{what} was not denied with EPERM: {out:?} {err}"
    );
}

fn allowed(out: &ExecOutput, what: &str) {
    assert!(
        out.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

fn mtime(p: &Path) -> i64 {
    std::fs::metadata(p).unwrap().mtime()
}

fn has_xattr(p: &Path) -> bool {
    let buf = "x".repeat(8);
    let script = format!(
        "my ($p, $n, $b) = ($ARGV[0], \"user.regent\", \"{buf}\"); \
         exit(syscall({nr}, $p, $n, $b, 8) > 0 ? 0 : 1)",
        nr = libc::SYS_getxattr
    );
    std::process::Command::new("perl")
        .args(["-e", &script])
        .arg(p)
        .status()
        .unwrap()
        .success()
}

fn setxattr(path: &Path) -> CommandSpec {
    let script = format!(
        "my ($p, $n, $v) = ($ARGV[0], \"user.regent\", \"v\"); \
         syscall({nr}, $p, $n, $v, 1, 0) == 0 or die \"setxattr: $!\\n\"",
        nr = libc::SYS_setxattr
    );
    cmd(&["perl", "-e", &script, s(path)])
}

fn connect_unix(path: &Path) -> CommandSpec {
    cmd(&[
        "perl",
        "-MSocket",
        "-e",
        "socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die \"socket: $!\\n\"; \
         connect($s, pack_sockaddr_un($ARGV[0])) or die \"connect: $!\\n\"",
        s(path),
    ])
}

fn metadata_changes(target: &Path) -> Vec<(&'static str, CommandSpec)> {
    vec![
        ("chmod", cmd(&["chmod", "0666", s(target)])),
        (
            "touch",
            cmd(&["touch", "-c", "-d", "2001-02-03", s(target)]),
        ),
        ("chown", cmd(&["chown", "0:0", s(target)])),
        ("setxattr", setxattr(target)),
    ]
}

#[tokio::test]
async fn metadata_of_files_outside_the_lists_cannot_change() {
    let scene = Scene::new("meta");
    let p = scene.policy(SandboxAllow::default());
    let before = (mode(&scene.outside), mtime(&scene.outside));
    for (what, spec) in metadata_changes(&scene.outside) {
        let out = run(&spec, &p).await.unwrap();
        denied(&out, what);
    }
    // The newest chmod, fchmodat2 (452 on every architecture, Linux 6.6).
    let fchmodat2 = cmd(&[
        "perl",
        "-e",
        "my $p = $ARGV[0]; syscall(452, -100, $p, 0666, 0) == 0 or die \"fchmodat2: $!\\n\"",
        s(&scene.outside),
    ]);
    denied(&run(&fchmodat2, &p).await.unwrap(), "fchmodat2");
    assert_eq!((mode(&scene.outside), mtime(&scene.outside)), before);
    assert!(!has_xattr(&scene.outside), "an xattr was set");

    // A file in the read list: readable, and its flags stay as they are (chattr).
    let out = run(&cmd(&["chattr", "+d", s(&scene.readonly)]), &p)
        .await
        .unwrap();
    denied(&out, "chattr +d");
    let out = run(&cmd(&["cat", s(&scene.readonly)]), &p).await.unwrap();
    assert_eq!(out.stdout, b"listed\n");
}

#[tokio::test]
async fn unix_sockets_outside_the_lists_cannot_be_reached() {
    let scene = Scene::new("unix");
    let p = scene.policy(SandboxAllow::default());
    let out = run(&connect_unix(&scene.socket), &p).await.unwrap();
    denied(&out, "socket(AF_UNIX)");
    assert!(!scene.accepted(), "the sandboxed command connected");
    // A datagram pair could sendto any named socket: refused too. A stream pair
    // (used by ordinary programs for their own plumbing) is fine.
    let pair = |ty: &str| {
        cmd(&[
            "perl",
            "-MSocket",
            "-e",
            &format!("socketpair(my $a, my $b, AF_UNIX, {ty}, 0) or die \"socketpair: $!\\n\""),
        ])
    };
    denied(
        &run(&pair("SOCK_DGRAM"), &p).await.unwrap(),
        "socketpair(AF_UNIX, SOCK_DGRAM)",
    );
    allowed(
        &run(&pair("SOCK_STREAM"), &p).await.unwrap(),
        "socketpair(AF_UNIX, SOCK_STREAM)",
    );
}

#[tokio::test]
async fn each_opt_in_reenables_exactly_its_family() {
    let scene = Scene::new("optin");
    let metadata = scene.policy(SandboxAllow {
        metadata: true,
        ..SandboxAllow::default()
    });
    for (what, spec) in metadata_changes(&scene.outside) {
        allowed(&run(&spec, &metadata).await.unwrap(), what);
    }
    assert_eq!(mode(&scene.outside), 0o666);
    assert!(has_xattr(&scene.outside), "the allowed xattr is missing");
    denied(
        &run(&connect_unix(&scene.socket), &metadata).await.unwrap(),
        "socket(AF_UNIX) with only metadata allowed",
    );
    assert!(!scene.accepted());

    let unix = scene.policy(SandboxAllow {
        unix: true,
        ..SandboxAllow::default()
    });
    allowed(
        &run(&connect_unix(&scene.socket), &unix).await.unwrap(),
        "connect with unix allowed",
    );
    assert!(scene.accepted(), "no connection arrived");
    denied(
        &run(&cmd(&["chmod", "0600", s(&scene.outside)]), &unix)
            .await
            .unwrap(),
        "chmod with only unix allowed",
    );
    assert_eq!(mode(&scene.outside), 0o666);
}

#[tokio::test]
async fn without_a_sandbox_nothing_changes() {
    let scene = Scene::new("plain");
    let p = ExecPolicy {
        sandbox: None,
        ..scene.policy(SandboxAllow::default())
    };
    for (what, spec) in metadata_changes(&scene.outside) {
        allowed(&run(&spec, &p).await.unwrap(), what);
    }
    assert_eq!(mode(&scene.outside), 0o666);
    allowed(
        &run(&connect_unix(&scene.socket), &p).await.unwrap(),
        "connect",
    );
    assert!(scene.accepted());
}

#[tokio::test]
async fn tcp_needs_an_opt_in() {
    let abi = landlock::abi_version().unwrap_or(0);
    if abi < landlock::ABI_NET {
        eprintln!("SKIPPED tcp_needs_an_opt_in: Landlock ABI {abi} has no TCP rules (needs 4)");
        return;
    }
    let scene = Scene::new("tcp");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let connect = cmd(&[
        "perl",
        "-MSocket",
        "-e",
        "socket(my $s, AF_INET, SOCK_STREAM, 0) or die \"socket: $!\\n\"; \
         connect($s, pack_sockaddr_in($ARGV[0], inet_aton(\"127.0.0.1\"))) or die \"connect: $!\\n\"",
        &port,
    ]);
    let out = run(&connect, &scene.policy(SandboxAllow::default()))
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.success() && err.contains("connect: Permission denied"),
        "{out:?} {err}"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "a connection arrived");
    let tcp = scene.policy(SandboxAllow {
        tcp: true,
        ..SandboxAllow::default()
    });
    allowed(
        &run(&connect, &tcp).await.unwrap(),
        "connect with tcp allowed",
    );
}

#[tokio::test]
async fn signals_stay_inside_the_sandbox() {
    let abi = landlock::abi_version().unwrap_or(0);
    if abi < landlock::ABI_SCOPE {
        eprintln!(
            "SKIPPED signals_stay_inside_the_sandbox: Landlock ABI {abi} has no signal scoping (needs 6)"
        );
        return;
    }
    let scene = Scene::new("signals");
    let mut victim = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = victim.id().to_string();
    let p = scene.policy(SandboxAllow::default());
    let out = run(&cmd(&["kill", "-TERM", &pid]), &p).await.unwrap();
    denied(&out, "kill of an unrelated root process");
    assert!(victim.try_wait().unwrap().is_none(), "the victim died");
    // Its own children it may still signal.
    let out = run(
        &cmd(&["/bin/sh", "-c", "sleep 100 & kill $!; wait $!; echo $?"]),
        &p,
    )
    .await
    .unwrap();
    assert_eq!(
        out.stdout,
        b"143\n",
        "{out:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let signals = scene.policy(SandboxAllow {
        signals: true,
        ..SandboxAllow::default()
    });
    allowed(
        &run(&cmd(&["kill", "-TERM", &pid]), &signals).await.unwrap(),
        "kill with signals allowed",
    );
    let status = victim.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
}

/// The scopes restrict the command, not the supervisor: a sandboxed tree that
/// ignores SIGTERM is still stopped at its timeout.
#[tokio::test]
async fn a_sandboxed_tree_is_still_stopped_at_its_timeout() {
    let scene = Scene::new("timeout");
    let p = ExecPolicy {
        timeout: Duration::from_millis(500),
        kill_grace: Duration::from_millis(200),
        ..scene.policy(SandboxAllow::default())
    };
    // A duration no other process uses marks the tree's sleeps.
    let mark = format!("1000.{}", std::process::id());
    let script = format!("trap '' TERM; sleep {mark} & sleep {mark}");
    let spec = cmd(&["/bin/sh", "-c", &script]);
    let r = run(&spec, &p).await;
    assert!(
        matches!(r, Err(regent_exec::ExecError::Timeout { .. })),
        "{r:?}"
    );
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&mark))
        .collect();
    assert!(left.is_empty(), "survivors: {left:?}");
}
