//! Real processes under real policies. These tests must run as root (they change
//! uid and hand out capabilities); `/bin/sh -c` appears here only to build
//! scenarios, never in the crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use regent_exec::{
    run, sys, Capability, CommandSpec, ExecError, ExecPolicy, OnUnsupported, ResourceLimits, RunAs,
    Sandbox,
};

/// nobody's uid and gid.
const NOBODY_ID: u32 = 65534;
const NOBODY: RunAs = RunAs::ids(NOBODY_ID, NOBODY_ID);

fn policy() -> ExecPolicy {
    ExecPolicy {
        timeout: Duration::from_secs(20),
        ..ExecPolicy::default()
    }
}

fn cmd(argv: &[&str]) -> CommandSpec {
    CommandSpec::new(argv.iter().copied())
}

fn sh(script: &str, arg0: &str) -> CommandSpec {
    cmd(&["/bin/sh", "-c", script, arg0])
}

fn status_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn own_status() -> HashMap<String, String> {
    status_map(&std::fs::read_to_string("/proc/self/status").unwrap())
}

async fn child_status(p: &ExecPolicy) -> HashMap<String, String> {
    let out = run(&cmd(&["cat", "/proc/self/status"]), p)
        .await
        .expect("cat /proc/self/status runs");
    assert!(
        out.success(),
        "cat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    status_map(&String::from_utf8(out.stdout).unwrap())
}

fn hex(mask: u64) -> String {
    format!("{mask:016x}")
}

/// A unique marker for processes of one test.
fn marker(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "regent-exec-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live (non-zombie) processes whose command line or environment holds `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let dir = entry.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().starts_with('Z'))
            .unwrap_or(true)
        {
            continue;
        }
        let mut hay = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        hay.extend(std::fs::read(dir.join("environ")).unwrap_or_default());
        if hay.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(marker(tag));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn nobody_with_net_admin_has_exactly_that() {
    let p = ExecPolicy {
        run_as: Some(NOBODY),
        capabilities: Some(vec![Capability::NET_ADMIN]),
        ..policy()
    };
    let s = child_status(&p).await;
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(s[set], hex(0x1000), "{set}");
    }
    assert_eq!(s["NoNewPrivs"], "1");
    assert_eq!(s["Uid"], "65534\t65534\t65534\t65534");
    assert_eq!(s["Gid"], "65534\t65534\t65534\t65534");
    assert_eq!(s["Groups"], "");
}

#[tokio::test]
async fn root_with_two_caps_keeps_only_them() {
    let p = ExecPolicy {
        capabilities: Some(vec![
            Capability::CHOWN,
            Capability::parse("net_admin").unwrap(),
        ]),
        ..policy()
    };
    let s = child_status(&p).await;
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(s[set], hex(0x1001), "{set}");
    }
    assert_eq!(s["Uid"], "0\t0\t0\t0");
    assert_eq!(s["NoNewPrivs"], "1");
}

#[tokio::test]
async fn no_caps_at_all_as_root() {
    let p = ExecPolicy {
        capabilities: Some(vec![]),
        ..policy()
    };
    let s = child_status(&p).await;
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(s[set], hex(0), "{set}");
    }
}

#[tokio::test]
async fn inherit_means_the_services_own_privilege() {
    let me = own_status();
    let p = ExecPolicy {
        no_new_privs: false,
        ..policy()
    };
    let s = child_status(&p).await;
    for key in [
        "CapEff",
        "CapPrm",
        "CapBnd",
        "CapAmb",
        "Uid",
        "Gid",
        "Groups",
        "NoNewPrivs",
    ] {
        assert_eq!(s[key], me[key], "{key}");
    }
}

#[tokio::test]
async fn run_as_without_caps_gets_none() {
    let me = own_status();
    let p = ExecPolicy {
        run_as: Some(NOBODY),
        ..policy()
    };
    let s = child_status(&p).await;
    assert_eq!(s["CapEff"], hex(0));
    assert_eq!(s["CapPrm"], hex(0));
    assert_eq!(s["CapAmb"], hex(0));
    assert_eq!(
        s["CapBnd"], me["CapBnd"],
        "bounding set untouched when capabilities are inherited"
    );
    assert_eq!(s["Uid"], "65534\t65534\t65534\t65534");
    assert_eq!(s["Groups"], "");
}

#[tokio::test]
async fn environment_cwd_and_stdin_are_fixed() {
    let out = run(&cmd(&["env"]), &policy()).await.unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut vars: Vec<&str> = text.lines().collect();
    vars.sort_unstable();
    assert_eq!(
        vars,
        [
            "LANG=C.UTF-8",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );
    let out = run(&cmd(&["pwd"]), &policy()).await.unwrap();
    assert_eq!(out.stdout, b"/\n");
    // stdin is /dev/null: cat ends at once with nothing.
    let out = run(&cmd(&["cat"]), &policy()).await.unwrap();
    assert!(out.success() && out.stdout.is_empty());
    let out = run(&cmd(&["readlink", "/proc/self/fd/0"]), &policy())
        .await
        .unwrap();
    assert_eq!(out.stdout, b"/dev/null\n");
}

#[tokio::test]
async fn secret_stdin_is_delivered() {
    let secret = b"s3cret-value\nwith two lines\n".to_vec();
    let out = run(&cmd(&["cat"]).with_stdin(secret.clone()), &policy())
        .await
        .unwrap();
    assert_eq!(out.stdout, secret);
    // A large input the command never reads must not hang the run.
    let big = vec![b'x'; 4 * 1024 * 1024];
    let out = run(&cmd(&["true"]).with_stdin(big), &policy())
        .await
        .unwrap();
    assert!(out.success());
    // Debug output never shows it.
    let shown = format!("{:?}", cmd(&["cat"]).with_stdin(b"topsecret".to_vec()));
    assert!(!shown.contains("topsecret"), "{shown}");
}

#[tokio::test]
async fn output_is_capped_and_both_streams_drain() {
    let p = ExecPolicy {
        max_output: 1000,
        ..policy()
    };
    let out = run(
        &sh(
            "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2; echo end >&2",
            "t",
        ),
        &p,
    )
    .await
    .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stderr.len(), 1000);
    assert!(out.stdout_truncated && out.stderr_truncated);
    let out = run(&cmd(&["echo", "short"]), &p).await.unwrap();
    assert_eq!(out.stdout, b"short\n");
    assert!(!out.stdout_truncated && !out.stderr_truncated);
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let out = run(&sh("echo oops >&2; exit 3", "t"), &policy())
        .await
        .unwrap();
    assert_eq!((out.code, out.signal), (Some(3), None));
    assert_eq!(out.stderr, b"oops\n");
    let out = run(&sh("kill -KILL $$", "t"), &policy()).await.unwrap();
    assert_eq!((out.code, out.signal), (None, Some(9)));
}

#[tokio::test]
async fn missing_programs_are_not_found() {
    for argv in [
        ["no-such-program-regent"],
        ["/usr/bin/no-such-program-regent"],
    ] {
        match run(&cmd(&argv), &policy()).await {
            Err(ExecError::NotFound { program }) => assert_eq!(program, argv[0]),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert!(matches!(
        run(&cmd(&[]), &policy()).await,
        Err(ExecError::Invalid { .. })
    ));
    assert!(matches!(
        run(&cmd(&["bin/true"]), &policy()).await,
        Err(ExecError::Invalid { .. })
    ));
    // A run_as the executor would have to look up is refused, never guessed.
    for unresolved in [
        RunAs {
            user: regent_model::Account::Name("nobody".into()),
            group: None,
        },
        RunAs {
            user: regent_model::Account::Id(NOBODY_ID),
            group: None,
        },
    ] {
        let p = ExecPolicy {
            run_as: Some(unresolved),
            ..policy()
        };
        match run(&cmd(&["/bin/true"]), &p).await {
            Err(ExecError::Invalid { reason }) => {
                assert!(reason.contains("not resolved"), "{reason}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_failing_exec_is_reported() {
    // Found, but not executable: execve itself fails (EACCES) in the command's
    // process, and the error comes back from spawn as before.
    let dir = temp_dir("noexec");
    let file = dir.join("not-a-program");
    std::fs::write(&file, "#!/bin/sh\ntrue\n").unwrap();
    let path = file.to_str().unwrap();
    match run(&cmd(&[path]), &policy()).await {
        Err(ExecError::Spawn { program, source }) => {
            assert_eq!(program, path);
            assert_eq!(source.raw_os_error(), Some(libc::EACCES), "{source}");
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The next run works as usual.
    assert!(run(&cmd(&["true"]), &policy()).await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_starts_with_default_signals() {
    // The test process ignores SIGPIPE (Rust's runtime) and tokio catches SIGCHLD:
    // the command ignores, catches and blocks nothing (but signals 32 and 33, which
    // glibc reserves and lets no one change).
    let mask = |st: &HashMap<String, String>, key: &str| {
        u64::from_str_radix(&st[key], 16).unwrap() & !(0b11 << 31)
    };
    assert_ne!(
        mask(&own_status(), "SigIgn"),
        0,
        "the scenario needs an ignored signal"
    );
    let st = child_status(&policy()).await;
    for key in ["SigIgn", "SigCgt", "SigBlk"] {
        assert_eq!(mask(&st, key), 0, "{key}: {}", st[key]);
    }
}

#[tokio::test]
async fn a_failing_setup_step_is_named() {
    // Above fs.nr_open: refused by the kernel even for root, after fork.
    let p = ExecPolicy {
        limits: ResourceLimits {
            open_files: Some(1 << 40),
            ..ResourceLimits::default()
        },
        ..policy()
    };
    match run(&cmd(&["true"]), &p).await {
        Err(ExecError::Setup { step, .. }) => assert_eq!(step, "setrlimit"),
        other => panic!("expected a setup error, got {other:?}"),
    }
}

#[tokio::test]
async fn resource_limits_are_enforced() {
    let limited = ExecPolicy {
        limits: ResourceLimits {
            cpu: Some(Duration::from_secs(30)),
            memory: Some(512 * 1024 * 1024),
            open_files: Some(6),
            processes: Some(100),
        },
        ..policy()
    };
    let out = run(&cmd(&["cat", "/proc/self/limits"]), &limited)
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(line("Max cpu time").contains("30 31 seconds"), "{text}");
    assert!(
        line("Max address space").contains("536870912 536870912 bytes"),
        "{text}"
    );
    assert!(line("Max open files").contains("6 6 files"), "{text}");
    assert!(
        line("Max processes").contains("100 100 processes"),
        "{text}"
    );

    // Descriptor 7 is beyond RLIMIT_NOFILE=6: bash cannot open it.
    let script = cmd(&["bash", "-c", "exec 7</dev/null && echo opened"]);
    let out = run(&script, &limited).await.unwrap();
    assert!(
        !out.success() && out.stdout.is_empty(),
        "fd 7 opened under nofile=6"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Bad file descriptor"),
        "{out:?}"
    );
    let out = run(&script, &policy()).await.unwrap();
    assert_eq!(out.stdout, b"opened\n");

    // CPU seconds: a busy loop is stopped by SIGXCPU.
    let cpu = ExecPolicy {
        limits: ResourceLimits {
            cpu: Some(Duration::from_secs(1)),
            ..ResourceLimits::default()
        },
        ..policy()
    };
    let out = run(&sh("while :; do :; done", "t"), &cpu).await.unwrap();
    assert_eq!(out.signal, Some(libc_sigxcpu()), "{out:?}");
}

fn libc_sigxcpu() -> i32 {
    24
}

fn system_read_paths() -> Vec<PathBuf> {
    ["/usr", "/lib", "/lib64", "/lib32", "/etc"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

#[tokio::test]
async fn landlock_denies_what_is_not_listed() {
    let readable = temp_dir("ll-read");
    let writable = temp_dir("ll-write");
    let denied = temp_dir("ll-denied");
    std::fs::write(readable.join("f"), "readable\n").unwrap();
    std::fs::write(denied.join("secret"), "denied\n").unwrap();
    let mut read = system_read_paths();
    read.push(readable.clone());
    let p = ExecPolicy {
        sandbox: Some(Sandbox {
            read,
            write: vec![writable.clone()],
            ..Sandbox::default()
        }),
        ..policy()
    };
    let path = |d: &Path, f: &str| d.join(f).to_string_lossy().into_owned();

    if regent_exec::landlock::abi_version().is_none() {
        // This kernel has no Landlock: the default policy must refuse, Warn must run.
        eprintln!("kernel without Landlock: checking the refusal path instead");
        assert!(matches!(
            run(&cmd(&["true"]), &p).await,
            Err(ExecError::Unsupported { .. })
        ));
        let warn = ExecPolicy {
            on_unsupported: OnUnsupported::Warn,
            ..p
        };
        assert!(run(&cmd(&["true"]), &warn).await.unwrap().success());
        return;
    }

    let out = run(&cmd(&["cat", &path(&readable, "f")]), &p)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"readable\n");

    let out = run(&cmd(&["cat", &path(&denied, "secret")]), &p)
        .await
        .unwrap();
    assert!(!out.success() && out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );

    let out = run(&cmd(&["ls", &denied.to_string_lossy()]), &p)
        .await
        .unwrap();
    assert!(!out.success(), "listing a denied directory succeeded");

    let out = run(
        &cmd(&["tee", &path(&denied, "new")]).with_stdin(b"x".to_vec()),
        &p,
    )
    .await
    .unwrap();
    assert!(!out.success());
    assert!(!denied.join("new").exists(), "a denied path was written");

    let out = run(
        &cmd(&["tee", &path(&readable, "new")]).with_stdin(b"x".to_vec()),
        &p,
    )
    .await
    .unwrap();
    assert!(
        !out.success() && !readable.join("new").exists(),
        "a read-only path was written"
    );

    let out = run(
        &cmd(&["tee", &path(&writable, "new")]).with_stdin(b"written".to_vec()),
        &p,
    )
    .await
    .unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(std::fs::read(writable.join("new")).unwrap(), b"written");

    // Even root with every capability stays inside the sandbox.
    assert_eq!(own_status()["Uid"], "0\t0\t0\t0");
    let out = run(&cmd(&["cat", &path(&denied, "secret")]), &p)
        .await
        .unwrap();
    assert!(!out.success());

    for d in [readable, writable, denied] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[tokio::test]
async fn landlock_needs_no_new_privs() {
    let p = ExecPolicy {
        no_new_privs: false,
        sandbox: Some(Sandbox {
            read: system_read_paths(),
            write: vec![],
            ..Sandbox::default()
        }),
        ..policy()
    };
    assert!(matches!(
        run(&cmd(&["true"]), &p).await,
        Err(ExecError::Invalid { .. })
    ));
}

/// A tree where everyone ignores SIGTERM: a child in the group, a `setsid` child,
/// and a double-forked `setsid` grandchild whose parent exits (orphaned).
fn stubborn_tree(m: &str) -> CommandSpec {
    let script = format!(
        "trap '' TERM; \
         sh -c 'sleep 1000' {m}-child & \
         setsid sh -c 'sleep 1000' {m}-session & \
         (setsid sh -c 'sleep 1000' {m}-orphan &); \
         sleep 1000"
    );
    sh(&script, &format!("{m}-main"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_whole_tree() {
    let m = marker("timeout");
    let p = ExecPolicy {
        timeout: Duration::from_secs(2),
        kill_grace: Duration::from_millis(500),
        ..policy()
    };
    let started = Instant::now();
    let spec = stubborn_tree(&m);
    let (result, seen) = tokio::join!(run(&spec, &p), async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        processes_with(&m)
    });
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(ExecError::Timeout { after }) if after == p.timeout),
        "{result:?}"
    );
    assert!(seen.len() >= 4, "the scenario did not start: {seen:?}");
    assert!(
        elapsed < p.timeout + p.kill_grace + Duration::from_secs(3),
        "took {elapsed:?}"
    );
    let left = processes_with(&m);
    assert!(left.is_empty(), "survivors after timeout: {left:?}");
    // The next run works as usual.
    assert!(run(&cmd(&["true"]), &policy()).await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_die_when_the_command_exits() {
    let m = marker("leftover");
    let p = ExecPolicy {
        kill_grace: Duration::from_millis(300),
        ..policy()
    };
    let script =
        format!("(setsid sh -c \"trap '' TERM; sleep 1000\" {m}-daemon &); sleep 0.3; echo done");
    let out = run(&sh(&script, "t"), &p).await.unwrap();
    assert!(out.success());
    assert_eq!(out.stdout, b"done\n");
    let left = processes_with(&m);
    assert!(left.is_empty(), "stray daemon survived: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_descendants_outlive_the_command_but_not_a_timeout() {
    // What an init script does: start a daemon (detached, its output away from
    // the run's pipes) and exit.
    let m = marker("kept");
    let p = ExecPolicy {
        kill_grace: Duration::from_millis(300),
        keep_descendants: true,
        ..policy()
    };
    let script = format!(
        "(setsid sh -c 'sleep 1000' {m}-daemon </dev/null >/dev/null 2>&1 &); sleep 0.3; echo done"
    );
    let out = run(&sh(&script, "t"), &p).await.unwrap();
    assert!(out.success());
    assert_eq!(out.stdout, b"done\n");
    let left = processes_with(&m);
    assert_eq!(
        left.len(),
        1,
        "the started daemon should keep running: {left:?}"
    );
    for pid in left {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    // On timeout the tree is stopped all the same.
    let m = marker("kept-timeout");
    let p = ExecPolicy {
        timeout: Duration::from_secs(1),
        ..p
    };
    let result = run(&stubborn_tree(&m), &p).await;
    assert!(
        matches!(result, Err(ExecError::Timeout { .. })),
        "{result:?}"
    );
    let left = processes_with(&m);
    assert!(left.is_empty(), "survivors after timeout: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_run_still_stops_its_tree() {
    let m = marker("abandon");
    let p = ExecPolicy {
        timeout: Duration::from_secs(60),
        kill_grace: Duration::from_millis(300),
        ..policy()
    };
    let spec = stubborn_tree(&m);
    let r = tokio::time::timeout(Duration::from_millis(800), run(&spec, &p)).await;
    assert!(r.is_err(), "the run should still be going");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(&m);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "survivors of an abandoned run: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_supervisor_is_invisible_to_the_command() {
    // The command's parent is the supervisor, which runs as the service and holds no
    // descriptor of it; the command is in its own process group.
    let out = run(&cmd(&["cat", "/proc/self/stat"]), &policy())
        .await
        .unwrap();
    let stat = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let (ppid, pgid): (i32, i32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    assert_eq!(ppid, pgid, "the supervisor leads the command's group");
    assert_ne!(pgid, sys::getpid());
    assert!(
        sys::kill_process(ppid, 0).is_err(),
        "the supervisor outlived the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_command_is_talked_with_and_stopped_with_its_tree() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let m = marker("spawned");
    let p = ExecPolicy {
        kill_grace: Duration::from_millis(300),
        // Not applied to a spawned command: the caller stops it.
        timeout: Duration::from_millis(1),
        ..policy()
    };
    let script = format!(
        "setsid sh -c \"trap '' TERM; sleep 1000\" {m}-daemon & \
         while read -r line; do echo \"got $line\"; done"
    );
    let mut spawned = regent_exec::spawn(
        &sh(&script, &format!("{m}-main")).with_stdin(Vec::new()),
        &p,
    )
    .unwrap();
    let mut input = spawned.stdin.take().expect("a stdin pipe");
    let mut output = BufReader::new(spawned.stdout.take().unwrap());
    for word in ["one", "two"] {
        input
            .write_all(format!("{word}\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        output.read_line(&mut line).await.unwrap();
        assert_eq!(line, format!("got {word}\n"));
    }
    // Well past the policy's timeout: still running.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(processes_with(&m).len() >= 2, "{:?}", processes_with(&m));
    spawned.stop().await;
    let left = processes_with(&m);
    assert!(left.is_empty(), "survivors after stop: {left:?}");
    assert!(spawned.wait().await.is_ok(), "reaped");

    // Dropped without stop: its tree goes too.
    let m = marker("dropped");
    let spawned = regent_exec::spawn(&sh("sleep 1000", &format!("{m}-main")), &p).unwrap();
    assert!(spawned.stdin.is_none(), "no stdin asked for: /dev/null");
    assert_eq!(processes_with(&m).len(), 1);
    drop(spawned);
    let t = Instant::now();
    while !processes_with(&m).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            processes_with(&m)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn fork_is_refused_while_other_threads_run() {
    // A second thread, alive during the checks (whatever thread the harness
    // runs this test on).
    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || wait.recv());
    assert!(!sys::single_threaded().unwrap());
    let e = sys::fork_single_threaded().map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("fork refused"), "{e}");
    stop.send(()).unwrap();
    other.join().unwrap().unwrap();
}
