//! Privileged contexts, end to end, as a real program (no test harness: the program
//! must be single-threaded to fork its helpers and drop its own privileges). Must run
//! as root. It forks helpers (one also through the helper-command path), drops itself
//! to an unprivileged uid, and checks what each side can and cannot do.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use regent_privsep::{drop_privileges, helper_main, Context, PrivsepError, Start, HELPER_FLAG};
use regent_proto::ErrorCode;
use serde_json::{json, Value};

const NOBODY: u32 = 65534;
/// The main program's uid after dropping (no passwd entry needed).
const MAIN_UID: u32 = 65533;

static WRITER: Context = Context::new("writer")
    .capabilities(&["CAP_DAC_OVERRIDE"])
    .run_as(NOBODY, NOBODY);
static PLAIN: Context = Context::new("plain")
    .capabilities(&[])
    .run_as(NOBODY, NOBODY);
static VIA_COMMAND: Context = Context::new("via-command")
    .capabilities(&["dac_override"])
    .run_as(NOBODY, NOBODY);
static SPIN: Context = Context::new("spin")
    .run_as(NOBODY, NOBODY)
    .timeout(Duration::from_secs(1));
/// Served only through a raw channel, by a helper command.
static SLOW: Context = Context::new("slow")
    .run_as(NOBODY, NOBODY)
    .timeout(Duration::from_secs(600));
static ORPHAN: Context = Context::new("orphan").run_as(NOBODY, NOBODY);
static NEVER: Context = Context::new("never");

macro_rules! file_ops {
    ($module:ident, $ctx:path) => {
        mod $module {
            regent_privsep::entrypoints! {
                context: $ctx;
                registry: pub static EP;
                /// Overwrite a file.
                pub fn write_file(path: String, text: String) -> Result<(), String> {
                    std::fs::write(&path, text).map_err(|e| e.to_string())
                }
                /// Read a file.
                pub fn read_file(path: String) -> Result<String, String> {
                    std::fs::read_to_string(&path).map_err(|e| e.to_string())
                }
                /// Remove a test directory.
                pub fn remove_tree(path: String) -> Result<(), String> {
                    std::fs::remove_dir_all(&path).map_err(|e| e.to_string())
                }
                /// The helper's own /proc/self/status.
                pub fn status() -> String {
                    std::fs::read_to_string("/proc/self/status").unwrap_or_default()
                }
            }
        }
    };
}

file_ops!(writer, crate::WRITER);
file_ops!(plain, crate::PLAIN);
file_ops!(via_command, crate::VIA_COMMAND);
file_ops!(orphan, crate::ORPHAN);
file_ops!(never, crate::NEVER);

macro_rules! spin_ops {
    ($module:ident, $ctx:path) => {
        mod $module {
            regent_privsep::entrypoints! {
                context: $ctx;
                registry: pub static EP;
                /// Start a child, record both pids, then never return (the helper must kill both).
                pub fn spin(pidfile: String) -> () {
                    #[allow(clippy::zombie_processes)]
                    let child = std::process::Command::new("/bin/sleep").arg("1000").spawn().expect("sleep starts");
                    std::fs::write(&pidfile, format!("{} {}", std::process::id(), child.id())).expect("pidfile");
                    #[allow(clippy::empty_loop)]
                    loop {}
                }
                /// Answer at once.
                pub fn quick(x: u32, y: Option<u32>) -> u32 {
                    x + y.unwrap_or(1)
                }
                /// Run async code on a runtime of its own.
                pub fn in_runtime(x: u32) -> u32 {
                    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
                    runtime.block_on(async move { x * 2 })
                }
                /// Panic.
                pub fn boom() -> () {
                    panic!("entrypoint panics on purpose")
                }
            }
        }
    };
}

spin_ops!(spin, crate::SPIN);
spin_ops!(slow, crate::SLOW);

type Check = Result<(), String>;

fn ensure(cond: bool, what: impl Into<String>) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn status_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Gone, or a zombie nobody reaped yet.
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

fn wait_dead(pid: i32, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if is_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    is_dead(pid)
}

struct Fixture {
    dir: PathBuf,
    protected: PathBuf,
    pids: PathBuf,
    setuid_cat: PathBuf,
}

fn fixture() -> Fixture {
    // dir (owned by nobody, so the helper can remove it from sticky /tmp)
    //   locked/ (root, 0755)  protected (root, 0600)
    //   pids/   (0777)        where the spinning entrypoint records its pids
    let dir = std::env::temp_dir().join(format!("regent-privsep-test-{}", std::process::id()));
    let locked = dir.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let protected = locked.join("protected");
    std::fs::write(&protected, "old\n").unwrap();
    std::fs::set_permissions(&protected, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pids = dir.join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    std::fs::set_permissions(&pids, std::fs::Permissions::from_mode(0o777)).unwrap();
    // A set-uid-root copy of cat (root, 04755): what a dropped main process could
    // execute to get euid 0 back.
    let setuid_cat = dir.join("setuid-cat");
    std::fs::copy("/bin/cat", &setuid_cat).unwrap();
    std::os::unix::fs::chown(&setuid_cat, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&setuid_cat, std::fs::Permissions::from_mode(0o4755)).unwrap();
    Fixture {
        dir,
        protected,
        pids,
        setuid_cat,
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// As root: a child program starts a helper and is killed; the helper must follow.
fn helper_dies_with_its_parent() -> Check {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--parent-death-child")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let helper: i32 = line
        .trim()
        .parse()
        .map_err(|_| format!("bad line {line:?}"))?;
    ensure(!is_dead(helper), "the helper was not running")?;
    child.kill().map_err(|e| e.to_string())?;
    child.wait().map_err(|e| e.to_string())?;
    ensure(
        wait_dead(helper, Duration::from_secs(5)),
        format!("helper {helper} outlived its parent"),
    )
}

/// The calls [`audit_child`] makes: (entrypoint, outcome), each exactly once.
const AUDITED: [(&str, &str); 7] = [
    ("privsep.ping", "ok"),
    ("privsep.ping", "ok"),
    ("quick", "ok"),
    ("quick", "invalid_data"),
    ("boom", "operation_failed"),
    ("spin", "timeout"),
    ("status", "ok"),
];

/// As root: a child program starts a forked and a commanded helper (installing no
/// subscriber of its own), makes the calls of [`AUDITED`] and stops them. Each call
/// leaves exactly one audit record, with the caller's pid and uid, on the helpers'
/// stderr (the child's, captured here).
fn calls_leave_audit_records() -> Check {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg("--audit-child")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure(
        out.status.success(),
        format!("the audit child failed: {stdout} {stderr}"),
    )?;
    let records: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("regent::audit"))
        .collect();
    ensure(
        records.len() == AUDITED.len(),
        format!(
            "{} records for {} calls: {stderr}",
            records.len(),
            AUDITED.len()
        ),
    )?;
    for record in &records {
        for field in [
            format!("pid={pid} "),
            "uid=0 ".into(),
            "duration_us=".into(),
        ] {
            ensure(
                record.contains(&field),
                format!("no {field:?} in {record:?}"),
            )?;
        }
    }
    for (op, outcome) in AUDITED {
        let expected = AUDITED.iter().filter(|c| **c == (op, outcome)).count();
        let found = records
            .iter()
            .filter(|r| {
                r.contains(&format!(" op={op} "))
                    && (r.contains(&format!("outcome=\"{outcome}\""))
                        || r.contains(&format!("outcome={outcome} ")))
            })
            .count();
        ensure(
            found == expected,
            format!("{found} records of {op} {outcome}, expected {expected}: {stderr}"),
        )?;
    }
    Ok(())
}

fn audit_child() -> ExitCode {
    let pidfile = std::env::temp_dir().join(format!("regent-privsep-audit-{}", std::process::id()));
    let started = [
        spin::EP.start(Start::Fork),
        via_command::EP.start(Start::Command(&[])),
    ];
    let calls = || -> Check {
        for r in started {
            r.map_err(|e| e.to_string())?;
        }
        ensure(matches!(spin::quick(1, Some(2)), Ok(3)), "quick")?;
        ensure(
            SPIN.call::<Value>("quick", json!({"x": "no"})).is_err(),
            "bad argument",
        )?;
        ensure(spin::boom().is_err(), "boom")?;
        ensure(
            matches!(spin::spin(s(&pidfile)), Err(PrivsepError::Timeout { .. })),
            "spin",
        )?;
        ensure(via_command::status().is_ok(), "status")
    };
    let result = calls();
    SPIN.stop();
    VIA_COMMAND.stop();
    let _ = std::fs::remove_file(&pidfile);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The two pids a spinning entrypoint recorded in `pidfile`, once it has.
fn spin_pids(pidfile: &Path, within: Duration) -> Result<Vec<i32>, String> {
    let end = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(pidfile).unwrap_or_default();
        let pids: Vec<i32> = text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.len() == 2 {
            return Ok(pids);
        }
        if Instant::now() > end {
            return Err(format!("pidfile {text:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// As root: a client that closes the channel while a call runs (here a raw client
/// of a commanded helper) makes the helper stop the call's work and exit, long
/// before the call's time limit (600 s).
fn client_closing_mid_call_stops_the_work(f: &Fixture) -> Check {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
    let theirs_in = theirs.try_clone().map_err(|e| e.to_string())?;
    let mut helper = Command::new(exe)
        .args([HELPER_FLAG, "slow"])
        .stdin(Stdio::from(OwnedFd::from(theirs_in)))
        .stdout(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .map_err(|e| e.to_string())?;
    let pidfile = f.pids.join("slow");
    let request = json!({"op": "spin", "data": {"pidfile": s(&pidfile)}});
    let sent = (&ours).write_all(format!("{request}\n").as_bytes());
    let pids = sent
        .map_err(|e| e.to_string())
        .and_then(|()| spin_pids(&pidfile, Duration::from_secs(10)));
    drop(ours);
    let end = Instant::now() + Duration::from_secs(10);
    let exited = loop {
        match helper.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    if exited.is_none() {
        let _ = helper.kill();
        let _ = helper.wait();
    }
    let pids = pids?;
    ensure(exited.is_some(), "the helper outlived its client's channel")?;
    let alive: Vec<i32> = pids
        .into_iter()
        .filter(|&pid| !wait_dead(pid, Duration::from_secs(2)))
        .collect();
    for &pid in &alive {
        // Not left behind when this check fails.
        let _ = regent_exec::sys::kill_process(pid, libc::SIGKILL);
    }
    ensure(
        alive.is_empty(),
        format!("pids {alive:?} of the abandoned call are alive"),
    )
}

fn main_cannot_write(f: &Fixture) -> Check {
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&f.protected)
        .err();
    ensure(
        err.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EACCES),
        format!("main opened it: {err:?}"),
    )?;
    let err = std::fs::read(&f.protected).err();
    ensure(
        err.map(|e| e.kind()) == Some(std::io::ErrorKind::PermissionDenied),
        "main read it",
    )
}

fn main_has_nothing() -> Check {
    let st = status_map(&std::fs::read_to_string("/proc/self/status").unwrap());
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        ensure(
            st[set] == "0000000000000000",
            format!("main {set} = {}", st[set]),
        )?;
    }
    ensure(
        st["Uid"] == "65533\t65533\t65533\t65533",
        format!("main Uid {}", st["Uid"]),
    )?;
    ensure(
        st["Groups"].is_empty(),
        format!("main Groups {}", st["Groups"]),
    )?;
    ensure(
        st["NoNewPrivs"] == "1",
        format!("main NoNewPrivs {}", st["NoNewPrivs"]),
    )
}

/// A set-uid-root program executed by the dropped main process runs with the main
/// process's ids (`no_new_privs`), so it cannot read a root-only file either.
fn setuid_gives_nothing_back(f: &Fixture) -> Check {
    let meta = std::fs::metadata(&f.setuid_cat).map_err(|e| e.to_string())?;
    ensure(
        meta.uid() == 0 && meta.mode() & 0o4000 != 0,
        format!("the fixture is not set-uid root: {meta:?}"),
    )?;
    let out = Command::new(&f.setuid_cat)
        .arg("/proc/self/status")
        .output()
        .map_err(|e| e.to_string())?;
    let st = status_map(&String::from_utf8_lossy(&out.stdout));
    ensure(
        st.get("Uid").map(String::as_str) == Some("65533\t65533\t65533\t65533"),
        format!("a set-uid-root program ran with Uid {:?}", st.get("Uid")),
    )?;
    let out = Command::new(&f.setuid_cat)
        .arg(&f.protected)
        .output()
        .map_err(|e| e.to_string())?;
    ensure(
        !out.status.success() && out.stdout.is_empty(),
        "a set-uid-root program read the root-only file for the main process",
    )
}

fn writer_can_write(f: &Fixture) -> Check {
    match writer::write_file(s(&f.protected), "new\n".into()) {
        Ok(Ok(())) => {}
        other => return Err(format!("write through the helper: {other:?}")),
    }
    let meta = std::fs::metadata(&f.protected).map_err(|e| e.to_string())?;
    ensure(
        meta.uid() == 0 && meta.mode() & 0o777 == 0o600 && meta.len() == 4,
        format!("{meta:?}"),
    )?;
    match writer::read_file(s(&f.protected)) {
        Ok(Ok(text)) => ensure(text == "new\n", format!("read back {text:?}")),
        other => Err(format!("read through the helper: {other:?}")),
    }
}

fn plain_cannot_write(f: &Fixture) -> Check {
    match plain::write_file(s(&f.protected), "plain\n".into()) {
        Ok(Err(e)) => ensure(e.contains("Permission denied"), e),
        other => Err(format!("a helper without the capability wrote: {other:?}")),
    }
}

fn helper_state(status: Result<String, PrivsepError>, caps: &str) -> Check {
    let st = status_map(&status.map_err(|e| e.to_string())?);
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        ensure(st[set] == caps, format!("helper {set} = {}", st[set]))?;
    }
    ensure(st["NoNewPrivs"] == "1", "helper NoNewPrivs")?;
    ensure(
        st["Uid"] == "65534\t65534\t65534\t65534",
        format!("helper Uid {}", st["Uid"]),
    )?;
    ensure(
        st["Gid"] == "65534\t65534\t65534\t65534",
        format!("helper Gid {}", st["Gid"]),
    )?;
    ensure(st["Groups"].is_empty(), "helper Groups")
}

fn timeout_stops_the_work(f: &Fixture) -> Check {
    let pidfile = f.pids.join("spin");
    let started = Instant::now();
    let result = spin::spin(s(&pidfile));
    let elapsed = started.elapsed();
    ensure(
        matches!(result, Err(PrivsepError::Timeout { .. })),
        format!("expected a timeout, got {result:?}"),
    )?;
    ensure(
        elapsed < Duration::from_secs(4),
        format!("took {elapsed:?}"),
    )?;
    let text = std::fs::read_to_string(&pidfile).map_err(|e| format!("no pidfile: {e}"))?;
    let pids: Vec<i32> = text
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    ensure(pids.len() == 2, format!("pidfile {text:?}"))?;
    for pid in pids {
        ensure(
            wait_dead(pid, Duration::from_secs(2)),
            format!("pid {pid} of the timed-out call is alive"),
        )?;
    }
    match spin::quick(41, None) {
        Ok(42) => {}
        other => return Err(format!("the call after a timeout: {other:?}")),
    }
    ensure(
        matches!(spin::quick(1, Some(2)), Ok(3)),
        "optional argument",
    )
}

/// The helper serves on a runtime; an entrypoint may still start one of its own.
fn entrypoint_may_start_a_runtime() -> Check {
    match spin::in_runtime(21) {
        Ok(42) => Ok(()),
        other => Err(format!("an entrypoint with its own runtime: {other:?}")),
    }
}

fn failures_are_reported() -> Check {
    let code = |r: Result<Value, PrivsepError>| match r {
        Err(PrivsepError::Remote { code, .. }) => code,
        _ => None,
    };
    ensure(
        matches!(
            spin::boom(),
            Err(PrivsepError::Remote {
                code: Some(ErrorCode::OperationFailed),
                ..
            })
        ),
        "panic not reported",
    )?;
    ensure(
        code(WRITER.call("write_file", json!({"path": 1}))) == Some(ErrorCode::InvalidData),
        "bad type",
    )?;
    ensure(
        code(WRITER.call("read_file", json!({"path": "/x", "extra": true})))
            == Some(ErrorCode::InvalidData),
        "unknown argument",
    )?;
    ensure(
        code(WRITER.call("rm_rf", json!({}))) == Some(ErrorCode::UnknownOperation),
        "unknown entrypoint",
    )?;
    ensure(
        matches!(never::status(), Err(PrivsepError::NotStarted { .. })),
        "never-started context",
    )?;
    ensure(
        matches!(spin::quick(1, None), Ok(2)),
        "context unusable after errors",
    )
}

fn command_mode_works(f: &Fixture) -> Check {
    let pid = VIA_COMMAND.helper_pid().ok_or("no helper pid")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).map_err(|e| e.to_string())?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    ensure(
        cmdline.contains("--regent-privsep-helper via-command"),
        format!("cmdline {cmdline:?}"),
    )?;
    match via_command::write_file(s(&f.protected), "cmd\n".into()) {
        Ok(Ok(())) => {}
        other => return Err(format!("write through the commanded helper: {other:?}")),
    }
    helper_state(via_command::status(), "0000000000000002")
}

fn stop_ends_the_helper() -> Check {
    let pid = PLAIN.helper_pid().ok_or("no helper pid")?;
    PLAIN.stop();
    ensure(
        wait_dead(pid, Duration::from_secs(2)),
        "helper alive after stop",
    )?;
    ensure(
        matches!(plain::status(), Err(PrivsepError::NotStarted { .. })),
        "stopped context still answers",
    )
}

fn parent_death_child() -> ExitCode {
    let pid = orphan::EP.start(Start::Fork).expect("helper starts");
    println!("{pid}");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn main() -> ExitCode {
    helper_main(&[&via_command::EP, &slow::EP]);
    if std::env::args().nth(1).as_deref() == Some("--parent-death-child") {
        return parent_death_child();
    }
    if std::env::args().nth(1).as_deref() == Some("--audit-child") {
        return audit_child();
    }
    if std::fs::read_to_string("/proc/self/status")
        .map(|s| !s.contains("\nUid:\t0\t"))
        .unwrap_or(true)
    {
        eprintln!("privsep tests need root");
        println!("0 passed, 1 failed");
        return ExitCode::FAILURE;
    }
    let f = fixture();
    let mut results: Vec<(&str, Check)> = Vec::new();
    results.push(("helper_dies_with_its_parent", helper_dies_with_its_parent()));
    results.push(("calls_leave_audit_records", calls_leave_audit_records()));
    results.push((
        "client_closing_mid_call_stops_the_work",
        client_closing_mid_call_stops_the_work(&f),
    ));

    // Start every helper while root and single-threaded.
    let started = [
        writer::EP.start(Start::Fork),
        plain::EP.start(Start::Fork),
        spin::EP.start(Start::Fork),
        via_command::EP.start(Start::Command(&[])),
    ];
    for (i, r) in started.iter().enumerate() {
        if let Err(e) = r {
            results.push(("start", Err(format!("helper {i}: {e}"))));
        }
    }
    results.push((
        "already_started",
        ensure(
            matches!(
                writer::EP.start(Start::Fork),
                Err(PrivsepError::AlreadyStarted { .. })
            ),
            "second start",
        ),
    ));
    results.push((
        "drop_privileges",
        drop_privileges(MAIN_UID, MAIN_UID).map_err(|e| e.to_string()),
    ));

    results.push(("main_has_nothing", main_has_nothing()));
    results.push(("main_cannot_write", main_cannot_write(&f)));
    results.push(("setuid_gives_nothing_back", setuid_gives_nothing_back(&f)));
    results.push(("writer_can_write", writer_can_write(&f)));
    results.push((
        "writer_state",
        helper_state(writer::status(), "0000000000000002"),
    ));
    results.push(("plain_cannot_write", plain_cannot_write(&f)));
    results.push((
        "plain_state",
        helper_state(plain::status(), "0000000000000000"),
    ));
    results.push(("timeout_stops_the_work", timeout_stops_the_work(&f)));
    results.push(("failures_are_reported", failures_are_reported()));
    results.push((
        "entrypoint_may_start_a_runtime",
        entrypoint_may_start_a_runtime(),
    ));
    results.push(("command_mode_works", command_mode_works(&f)));
    results.push(("stop_ends_the_helper", stop_ends_the_helper()));
    results.push(("main_still_cannot_write", main_cannot_write(&f)));

    // Root is gone: the helper with CAP_DAC_OVERRIDE cleans up.
    let cleaned = writer::remove_tree(s(&f.dir));
    results.push((
        "cleanup",
        ensure(
            matches!(cleaned, Ok(Ok(()))) && !f.dir.exists(),
            format!("{cleaned:?}"),
        ),
    ));

    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
