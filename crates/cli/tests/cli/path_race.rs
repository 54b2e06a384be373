//! `path` parameters through the real daemon, against a genuinely unprivileged
//! attacker who owns a directory below `under` and swaps it for a symlink to a
//! root-only directory in a `renameat2(RENAME_EXCHANGE)` loop, while another
//! unprivileged user calls a root `cat` operation. Also `command_path`.

use crate::util::*;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

const OPS: &str = r#"
[operations.cat-file]
description = "cat a file below data (root)"
command = ["cat", "{file}"]
params.file = { type = "path", under = "{dir}/data" }

[operations.copy-new]
description = "copy a file to a new one"
command = ["cp", "{src}", "{dst}"]
params.src = { type = "path", under = "{dir}/data", access = "read" }
params.dst = { type = "path", under = "{dir}/data", access = "create" }

[operations.copy-over]
description = "copy a file over an existing one"
command = ["cp", "{src}", "{dst}"]
params.src = { type = "path", under = "{dir}/data", access = "read" }
params.dst = { type = "path", under = "{dir}/data", access = "write" }
"#;

/// Swaps two names atomically, forever, as whoever runs it.
const EXCHANGE_LOOP: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
if libc.renameat2(-100, a, -100, b, 2) != 0:
    sys.exit("renameat2 failed: errno %d" % ctypes.get_errno())
print("swapping", flush=True)
while True:
    libc.renameat2(-100, a, -100, b, 2)
"#;

const SECRET_TEXT: &str = "ROOT-ONLY-SECRET-7f3a";

fn data_call(d: &Daemon, who: (u32, u32), op: &str, data: &str) -> std::process::Output {
    d.cli_as(who.0, who.1, &["call", op, "--data", data], Some(SECRET))
}

#[test]
fn a_symlink_swap_race_never_reads_outside_under() {
    let mallory = user("regent-e2e-mallory");
    let alice = user("regent-e2e-alice");
    let d = Daemon::start("socket_mode = \"0666\"", OPS);
    let base = d.dir.path();
    let data = base.join("data");
    let m = data.join("m");
    std::fs::create_dir_all(m.join("real")).unwrap();
    std::fs::write(m.join("real/f"), "public data\n").unwrap();
    symlink(base.join("outside"), m.join("link")).unwrap();
    for p in [&m, &m.join("real"), &m.join("real/f"), &m.join("link")] {
        lchown(p, Some(mallory.0), Some(mallory.1)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The root-only secret outside `under`.
    let outside = base.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f"), SECRET_TEXT).unwrap();
    std::fs::set_permissions(outside.join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = format!(r#"{{"file": "{}"}}"#, m.join("real/f").display());

    // `regent check` says how each path parameter reaches its command.
    let mut c = Command::new(regent());
    c.args(["check", "--config"]).arg(&d.config);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    for line in [
        format!("path file: opened for read beneath {}", data.display()),
        format!(
            "path dst: opened for create (created if missing) beneath {}",
            data.display()
        ),
        format!("path dst: opened for write beneath {}", data.display()),
    ] {
        assert!(stdout(&o).contains(&line), "{line} not in {}", stdout(&o));
    }

    // Before the attack: a plain read works.
    let o = data_call(&d, alice, "cat-file", &target);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "public data");

    // One answer for "does not exist" and "escapes under" (no oracle for what
    // lies outside).
    let under_msg = format!("not found under {}", data.display());
    let escape = data_call(
        &d,
        alice,
        "cat-file",
        &format!(r#"{{"file": "{}"}}"#, m.join("link/f").display()),
    );
    let missing = data_call(
        &d,
        alice,
        "cat-file",
        &format!(r#"{{"file": "{}"}}"#, m.join("real/nothing").display()),
    );
    assert_ne!(code(&escape), 0);
    assert!(
        stderr(&escape).contains("invalid_data"),
        "{}",
        stderr(&escape)
    );
    assert!(stderr(&escape).contains(&under_msg), "{}", stderr(&escape));
    assert_eq!(stderr(&escape), stderr(&missing));
    assert!(!stdout(&escape).contains(SECRET_TEXT));

    // The attack: mallory swaps m/real and m/link in a loop.
    let python = Path::new("/usr/bin/python3");
    assert!(
        python.exists(),
        "this test needs /usr/bin/python3 for the attacker"
    );
    let mut attacker = python_as(
        mallory,
        EXCHANGE_LOOP,
        &[m.join("real").as_os_str(), m.join("link").as_os_str()],
        "swapping",
    );
    let mut ok = 0;
    let mut refused = 0;
    for i in 0..200 {
        let o = data_call(&d, alice, "cat-file", &target);
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(
            !out.contains(SECRET_TEXT) && !err.contains(SECRET_TEXT),
            "call {i} read the root-only file outside under: {out} {err}"
        );
        if code(&o) == 0 {
            assert_eq!(out, "public data", "call {i}");
            ok += 1;
        } else {
            assert_eq!(err, stderr(&missing), "call {i}");
            refused += 1;
        }
    }
    assert!(
        attacker.try_wait().unwrap().is_none(),
        "the attacker stopped swapping during the test"
    );
    attacker.kill().unwrap();
    attacker.wait().unwrap();
    assert_eq!(ok + refused, 200);
    eprintln!("under attack: {ok} read the public file, {refused} refused");

    // Afterwards (whichever way the names ended up) normal calls work again.
    if m.join("real").is_symlink() {
        std::fs::rename(m.join("real"), m.join("tmp")).unwrap();
        std::fs::rename(m.join("link"), m.join("real")).unwrap();
        std::fs::rename(m.join("tmp"), m.join("link")).unwrap();
    }
    let o = data_call(&d, alice, "cat-file", &target);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "public data");

    // Write and create through descriptors, as root, below `under`.
    let new = data.join("copy");
    let o = data_call(
        &d,
        alice,
        "copy-new",
        &format!(
            r#"{{"src": "{}", "dst": "{}"}}"#,
            m.join("real/f").display(),
            new.display()
        ),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&new).unwrap(), "public data\n");
    std::fs::write(data.join("existing"), "old contents, longer than the new\n").unwrap();
    let o = data_call(
        &d,
        alice,
        "copy-over",
        &format!(
            r#"{{"src": "{}", "dst": "{}"}}"#,
            m.join("real/f").display(),
            data.join("existing").display()
        ),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(data.join("existing")).unwrap(),
        "public data\n"
    );
    // `write` needs an existing file; `create` through a symlink is refused and
    // creates nothing outside.
    let o = data_call(
        &d,
        alice,
        "copy-over",
        &format!(
            r#"{{"src": "{}", "dst": "{}"}}"#,
            m.join("real/f").display(),
            data.join("absent").display()
        ),
    );
    assert!(stderr(&o).contains(&under_msg), "{}", stderr(&o));
    assert!(!data.join("absent").exists());
    let o = data_call(
        &d,
        alice,
        "copy-new",
        &format!(
            r#"{{"src": "{}", "dst": "{}"}}"#,
            m.join("real/f").display(),
            m.join("link/planted").display()
        ),
    );
    assert!(stderr(&o).contains(&under_msg), "{}", stderr(&o));
    assert!(!outside.join("planted").exists());
}

#[test]
fn command_path_is_where_bare_names_are_found_and_the_path_commands_get() {
    let bin = tempfile::Builder::new()
        .prefix("regent-e2e-bin-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let prog = bin.path().join("regent-e2e-only-here");
    std::fs::write(&prog, "#!/bin/sh\nprintf 'found %s' \"$PATH\"\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let search = format!("{}:/usr/bin:/bin", bin.path().display());
    let d = Daemon::start(
        &format!("command_path = \"{search}\""),
        "[operations.custom]\ncommand = [\"regent-e2e-only-here\"]\n",
    );
    let o = d.cli(&["call", "custom"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("found {search}"));
}

const EXPORT_OPS: &str = r#"
[operations.export]
description = "copy the root-only report to a new file below data (root)"
command = ["cp", "{dir}/report", "{dst}"]
params.dst = { type = "path", under = "{dir}/data", access = "create" }
"#;

/// Runs `sh -c SCRIPT sh ARGS...` as `who` and says whether it succeeded.
fn sh_as(who: (u32, u32), script: &str, args: &[&Path]) -> std::process::Output {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .uid(who.0)
        .gid(who.1)
        .env_clear();
    run(c)
}

/// `create` must not write into a file the caller planted: mallory, who may write
/// below `under`, pre-creates the name as her own world-readable file and asks a
/// root operation to "create" it; the root-only report must not end up in her file.
#[test]
fn create_never_writes_into_a_file_the_caller_planted() {
    let mallory = user("regent-e2e-mallory");
    let d = Daemon::start("socket_mode = \"0666\"", EXPORT_OPS);
    let base = d.dir.path();
    let data = base.join("data");
    let m = data.join("m");
    std::fs::create_dir_all(&m).unwrap();
    lchown(&m, Some(mallory.0), Some(mallory.1)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(base.join("report"), SECRET_TEXT).unwrap();
    std::fs::set_permissions(base.join("report"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let under_msg = format!("not found under {}", data.display());

    // Mallory plants her own file, mode 0666, where the export will go.
    let planted = m.join("planted");
    let o = sh_as(mallory, "umask 0; : > \"$1\"", &[&planted]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = data_call(
        &d,
        mallory,
        "export",
        &format!(r#"{{"dst": "{}"}}"#, planted.display()),
    );
    assert_ne!(code(&o), 0, "the export wrote into mallory's file");
    assert!(stderr(&o).contains(&under_msg), "{}", stderr(&o));
    let o = sh_as(mallory, "cat \"$1\"", &[&planted]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stdout(&o).contains(SECRET_TEXT), "mallory read the report");
    assert!(d.log_shows("an existing file of another user"));

    // A new name is created by root, mode 0600: mallory cannot read it.
    let fresh = m.join("fresh");
    let o = data_call(
        &d,
        mallory,
        "export",
        &format!(r#"{{"dst": "{}"}}"#, fresh.display()),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), SECRET_TEXT);
    let meta = std::fs::metadata(&fresh).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    assert_eq!(meta.permissions().mode() & 0o077, 0);
    let o = sh_as(mallory, "cat \"$1\"", &[&fresh]);
    assert_ne!(code(&o), 0);
    assert!(!stdout(&o).contains(SECRET_TEXT));
    // Run again over root's own file: still allowed.
    let o = data_call(
        &d,
        mallory,
        "export",
        &format!(r#"{{"dst": "{}"}}"#, fresh.display()),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// A path parameter reaches a command only as a whole descriptor: `regent check`
/// (and so `serve`) refuses a template that appends a name to it (the command would
/// resolve `/proc/self/fd/N/NAME` itself, following symlinks below `under`) and a
/// path parameter on stdin (the command would get the name and open it later: the
/// race of issue 7 again).
#[test]
fn a_path_parameter_cannot_be_extended_or_passed_by_name() {
    for (ops, message) in [
        (
            r#"
[operations.cat-conf]
command = ["cat", "{d}/conf"]
params.d = { type = "path", under = "{dir}/data" }
"#,
            "path parameter {d} must end its element",
        ),
        (
            r#"
[operations.cat-two]
command = ["cat", "--in={d}{name}"]
params.d = { type = "path", under = "{dir}/data" }
params.name = { type = "string", pattern = "[a-z]+" }
"#,
            "path parameter {d} must end its element",
        ),
        (
            r#"
[operations.read-name]
command = ["xargs", "cat"]
stdin = "file"
params.file = { type = "path", under = "{dir}/data" }
"#,
            "stdin names the path parameter 'file'",
        ),
    ] {
        let (_dir, _socket, config, _secret) = write_config("", ops);
        let mut c = Command::new(regent());
        c.args(["check", "--config"]).arg(&config);
        let o = run(c);
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert_ne!(code(&o), 0, "accepted: {ops}");
        assert!(text.contains(message), "{message} not in {text}");
    }
    // A prefix is fine: the element still ends with the descriptor's name.
    let (_dir, _socket, config, _secret) = write_config(
        "",
        r#"
[operations.with-prefix]
command = ["dd", "if={d}"]
params.d = { type = "path", under = "{dir}/data" }
"#,
    );
    let mut c = Command::new(regent());
    c.args(["check", "--config"]).arg(&config);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

/// `under` itself must not be replaceable: mallory owns the directory that holds
/// `under` (say, her home), so she can rename `under` away and put a symlink to a
/// root-only directory in its place. The root operation must never read through
/// it: a directory above the file that another user could rename is refused.
#[test]
fn under_in_a_directory_the_caller_controls_is_refused() {
    let mallory = user("regent-e2e-mallory");
    let d = Daemon::start(
        "socket_mode = \"0666\"",
        r#"
[operations.cat-inbox]
description = "cat a file from mallory's inbox (root)"
command = ["cat", "{file}"]
params.file = { type = "path", under = "{dir}/home/inbox" }
"#,
    );
    let base = d.dir.path();
    let home = base.join("home");
    std::fs::create_dir_all(home.join("inbox")).unwrap();
    std::fs::write(home.join("inbox/f"), "public data\n").unwrap();
    let outside = base.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f"), SECRET_TEXT).unwrap();
    std::fs::set_permissions(outside.join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    for p in [&home, &home.join("inbox"), &home.join("inbox/f")] {
        lchown(p, Some(mallory.0), Some(mallory.1)).unwrap();
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = format!(r#"{{"file": "{}"}}"#, home.join("inbox/f").display());
    let under_msg = format!("not found under {}", home.join("inbox").display());
    let check = |warned: bool| {
        let mut c = Command::new(regent());
        c.args(["check", "--config"]).arg(&d.config);
        let o = run(c);
        assert_eq!(code(&o), 0, "{}", stdout(&o));
        let line = format!(
            "warning: path file: every call will be refused: {} (owner uid {}, mode 0755) lets another user rename {}",
            home.display(),
            mallory.0,
            home.join("inbox").display()
        );
        assert_eq!(
            stdout(&o).contains(&line),
            warned,
            "{line} / {}",
            stdout(&o)
        );
    };

    // `regent check` warns.
    check(true);

    // Mallory swaps her inbox for a symlink to the root-only directory.
    let o = sh_as(
        mallory,
        "mv \"$1/inbox\" \"$1/old\" && ln -s \"$2\" \"$1/inbox\"",
        &[&home, &outside],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = data_call(&d, mallory, "cat-inbox", &target);
    assert!(
        !stdout(&o).contains(SECRET_TEXT),
        "read the root-only file through a replaced under"
    );
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains(&under_msg), "{}", stderr(&o));

    // Put back, the directory is still hers to rename: refused all the same.
    let o = sh_as(
        mallory,
        "rm \"$1/inbox\" && mv \"$1/old\" \"$1/inbox\"",
        &[&home],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = data_call(&d, mallory, "cat-inbox", &target);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains(&under_msg), "{}", stderr(&o));
    assert!(d.log_shows("another user could rename"));

    // Once the parent is root's and not writable by others, it works.
    lchown(&home, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = data_call(&d, mallory, "cat-inbox", &target);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "public data");
    check(false);
}

/// Holds N connections to a socket open, idle, until killed.
const HOLD_CONNECTIONS: &str = r#"
import socket, sys, time
held = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
print("held", flush=True)
time.sleep(600)
"#;

/// Descriptor numbers do not depend on how busy the daemon is: mallory holds 40
/// idle connections (she needs no secret for that), which used to push the numbers
/// of a run's path descriptors past a small `open_files` limit, so that every run
/// of that operation failed for everyone.
#[test]
fn idle_connections_do_not_push_path_descriptors_past_open_files() {
    let mallory = user("regent-e2e-mallory");
    let alice = user("regent-e2e-alice");
    let d = Daemon::start(
        "socket_mode = \"0666\"",
        r#"
[operations.cat-small]
description = "cat a file below data, with few descriptors"
command = ["cat", "{file}"]
params.file = { type = "path", under = "{dir}/data" }
limits = { open_files = 32 }
"#,
    );
    let data = d.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), "public data\n").unwrap();
    let target = format!(r#"{{"file": "{}"}}"#, data.join("f").display());
    let o = data_call(&d, alice, "cat-small", &target);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let mut holder = python_as(
        mallory,
        HOLD_CONNECTIONS,
        &[d.socket.as_os_str(), std::ffi::OsStr::new("40")],
        "held",
    );
    let o = data_call(&d, alice, "cat-small", &target);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "public data");
}

/// Start Debian's `python3 -c script args...` as `who`, and wait until it prints
/// `ready` on its first line (it has set up whatever the test needs).
fn python_as(
    who: (u32, u32),
    script: &str,
    args: &[&std::ffi::OsStr],
    ready: &str,
) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .uid(who.0)
        .gid(who.1)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), ready, "{script:.40}... did not get ready");
    child
}
