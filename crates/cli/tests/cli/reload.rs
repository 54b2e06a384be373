//! Reloading the configuration on SIGHUP (issue 9, section 3): the real daemon,
//! its config rewritten on disk, `kill -HUP` as `systemctl reload` sends it.

use crate::pending::{assert_error, pending_of, Pending};
use crate::util::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) const RELOADED: &str = "configuration reloaded";
pub(crate) const REFUSED: &str = "configuration reload refused";

/// Rewrite the daemon's config as [`write_config`] writes it.
fn rewrite(d: &Daemon, service_extra: &str, ops: &str) {
    let dir = d.dir.path().display().to_string();
    let text = format!(
        "[service]\nsocket = \"{}\"\nsecret_file = \"{}\"\nstore = \"{dir}/state/pending.db\"\n{}\n\n{}",
        d.socket.display(),
        d.secret_file.display(),
        service_extra,
        ops.replace("{dir}", &dir)
    );
    std::fs::write(&d.config, text).unwrap();
}

/// Send SIGHUP and wait until the log has one more line containing `outcome`
/// (each reload logs exactly one line, [`RELOADED`] or [`REFUSED`]).
pub(crate) fn hup(d: &Daemon, outcome: &str) {
    let before = d.log_text().matches(outcome).count();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let t = Instant::now();
    while d.log_text().matches(outcome).count() <= before {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no '{outcome}' line after SIGHUP: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log's reload lines (and nothing else).
fn reload_lines(d: &Daemon) -> Vec<String> {
    d.log_text()
        .lines()
        .filter(|l| l.contains(RELOADED) || l.contains(REFUSED))
        .map(str::to_string)
        .collect()
}

fn ops_listed(d: &Daemon) -> String {
    let o = d.cli(&["ops"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    stdout(&o)
}

const TWO_OPS: &str = r#"
[operations.first]
description = "Stays"
command = ["printf", "first"]

[operations.second]
description = "Goes away"
command = ["printf", "second"]
"#;

const FIRST_AND_THIRD: &str = r#"
[operations.first]
description = "Stays"
command = ["printf", "first"]

[operations.third]
description = "Comes"
command = ["printf", "third"]
"#;

/// `PATH:LINE:COL` of `path` somewhere in `text`.
fn has_location(text: &str, path: &Path) -> bool {
    let prefix = format!("{}:", path.display());
    text.match_indices(&prefix).any(|(i, _)| {
        let rest = &text[i + prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let num = |s: Option<&str>| {
            s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        };
        num(parts.next()) && num(parts.next())
    })
}

#[test]
fn a_valid_config_adds_and_removes_operations_and_an_invalid_one_keeps_the_old() {
    let mut d = Daemon::start("", TWO_OPS);
    assert!(ops_listed(&d).contains("second"));

    rewrite(&d, "", FIRST_AND_THIRD);
    hup(&d, RELOADED);
    let lines = reload_lines(&d);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("operations added: third") && lines[0].contains("removed: second"),
        "{lines:?}"
    );
    // New requests see the new operations, `regent.ops` included.
    let listed = ops_listed(&d);
    assert!(
        listed.contains("third") && !listed.contains("second"),
        "{listed}"
    );
    let o = d.cli(&["call", "third"]);
    assert_eq!(
        (code(&o), stdout(&o).trim()),
        (0, "third"),
        "{}",
        stderr(&o)
    );
    assert_error(&d.cli(&["call", "second"]), 4, "unknown_operation");

    // Invalid: an unknown key and a bad value. Refused whole, each error with
    // its FILE:LINE:COL; the previous configuration goes on serving.
    let broken = format!(
        "{FIRST_AND_THIRD}\n[operations.fourth]\ndescription = \"Bad\"\ncommand = [\"true\"]\ntimeot = \"5s\"\n"
    );
    rewrite(&d, "", &broken);
    hup(&d, REFUSED);
    let lines = reload_lines(&d);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("timeot"), "{lines:?}");
    assert!(has_location(&lines[1], &d.config), "{lines:?}");
    assert!(!ops_listed(&d).contains("fourth"));
    let o = d.cli(&["call", "first"]);
    assert_eq!(
        (code(&o), stdout(&o).trim()),
        (0, "first"),
        "{}",
        stderr(&o)
    );
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none());
    assert!(d.stop().success());
}

#[test]
fn a_request_in_flight_finishes_under_the_declaration_it_started_with() {
    let ops = r#"
[operations.slow]
description = "Says which declaration ran it, once told to go"
command = ["/bin/sh", "-c", "touch {dir}/started; while [ ! -e {dir}/go ]; do sleep 0.05; done; printf old"]
timeout = "20s"
"#;
    let d = Daemon::start("", ops);
    let started = d.dir.path().join("started");
    let mut in_flight = std::process::Command::new(regent());
    in_flight
        .args(["call", "slow", "--socket"])
        .arg(&d.socket)
        .arg("--secret-file")
        .arg(&d.secret_file);
    let in_flight = std::thread::spawn(move || run(in_flight));
    let t = Instant::now();
    while !started.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    rewrite(
        &d,
        "",
        r#"
[operations.slow]
description = "Changed"
command = ["printf", "new"]
"#,
    );
    hup(&d, RELOADED);
    assert!(reload_lines(&d)[0].contains("operations changed: slow"));
    // A new request runs the new declaration at once...
    let o = d.cli(&["call", "slow"]);
    assert_eq!((code(&o), stdout(&o).trim()), (0, "new"), "{}", stderr(&o));
    // ... while the one in flight finishes under the old.
    std::fs::write(d.dir.path().join("go"), "").unwrap();
    let o = in_flight.join().unwrap();
    assert_eq!((code(&o), stdout(&o).trim()), (0, "old"), "{}", stderr(&o));
}

const HELD: &str = r#"
[operations.same]
description = "Unchanged by the reload"
command = ["printf", "same"]
auth = ["approval"]

[operations.changed]
description = "Its command changes while held"
command = ["printf", "before"]
auth = ["approval"]

[operations.removed]
description = "Removed while held"
command = ["printf", "removed"]
auth = ["approval"]
"#;

/// [`HELD`] after the reload: `same` only described anew, `changed` running
/// another command, `removed` gone.
fn held_after() -> String {
    let (kept, _removed) = HELD.split_at(HELD.find("[operations.removed]").unwrap());
    kept.replace("Unchanged by the reload", "Described anew by the reload")
        .replace(r#"["printf", "before"]"#, r#"["printf", "after"]"#)
}
#[test]
fn held_requests_survive_a_reload_and_never_run_under_another_declaration() {
    let d = Daemon::start("allow_self_approval = true", HELD);
    let start = |op: &str| -> Pending { pending_of(&d.cli(&["call", op, "--json"])) };
    let (same, changed, removed) = (start("same"), start("changed"), start("removed"));

    rewrite(&d, "allow_self_approval = true", &held_after());
    hup(&d, RELOADED);
    let line = &reload_lines(&d)[0];
    assert!(
        line.contains("removed: removed") && line.contains("changed: changed"),
        "{line}"
    );
    assert!(!line.contains("changed: same"), "{line}");

    // Still listed and approvable after the reload (the removed one by root).
    for p in [&same, &changed, &removed] {
        let o = d.cli(&["approve", p.request_id()]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let o = d.cli(&["call", "--uid", &same.uid]);
    assert_eq!((code(&o), stdout(&o).trim()), (0, "same"), "{}", stderr(&o));
    // Approved, but held under another declaration: denied, never run.
    let o = d.cli(&["call", "--uid", &changed.uid]);
    assert_error(&o, 3, "denied");
    assert!(stderr(&o).contains("changed or removed"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("after"));
    let o = d.cli(&["call", "--uid", &removed.uid]);
    assert_error(&o, 3, "denied");
    // A new request of the changed operation runs the new declaration.
    let again = start("changed");
    let o = d.cli(&["approve", again.request_id()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = d.cli(&["call", "--uid", &again.uid]);
    assert_eq!(
        (code(&o), stdout(&o).trim()),
        (0, "after"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_changed_restart_only_key_is_refused_whole() {
    let d = Daemon::start("", TWO_OPS);
    rewrite(&d, "threads = 2\nsocket_mode = \"0666\"", FIRST_AND_THIRD);
    hup(&d, REFUSED);
    let line = &reload_lines(&d)[0];
    assert!(
        line.contains("need a restart") && line.contains("threads") && line.contains("socket_mode"),
        "{line}"
    );
    // Nothing of it applied: not the operations either.
    let listed = ops_listed(&d);
    assert!(
        listed.contains("second") && !listed.contains("third"),
        "{listed}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn a_new_secret_takes_effect_and_the_old_one_is_refused() {
    let d = Daemon::start("", TWO_OPS);
    let call = |secret: &str| d.cli_as(0, 0, &["call", "first"], Some(secret));
    assert_eq!(code(&call(SECRET)), 0);
    let new_secret = "the-reloaded-secret-987654321";
    std::fs::write(&d.secret_file, format!("{new_secret}\n")).unwrap();
    hup(&d, RELOADED);
    assert_error(&call(SECRET), 3, "permission_denied");
    let o = call(new_secret);
    assert_eq!(
        (code(&o), stdout(&o).trim()),
        (0, "first"),
        "{}",
        stderr(&o)
    );
    // The secret is never logged.
    assert!(!d.log_text().contains(new_secret) && !d.log_text().contains(SECRET));
}

/// Requests held before digests were kept (a store of schema version 2) are
/// taken to have been held under the declaration the daemon started with: they
/// run, unless a reload since the start changed their operation.
#[test]
fn requests_held_without_a_digest_run_until_a_reload_changes_their_operation() {
    let mut d = Daemon::start("allow_self_approval = true", HELD);
    let start = |d: &Daemon, op: &str| -> Pending { pending_of(&d.cli(&["call", op, "--json"])) };
    let (same, changed) = (start(&d, "same"), start(&d, "changed"));
    assert!(d.stop().success());
    // Remove their digests, as version 2 wrote them (Python's sqlite3 module).
    let store = d.dir.path().join("state/pending.db");
    let mut c = std::process::Command::new("python3");
    c.args([
        "-c",
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         n = c.execute('UPDATE pending SET declaration = NULL WHERE declaration IS NOT NULL').rowcount\n\
         c.commit()\n\
         print(n)",
    ])
    .arg(&store);
    let o = run(c);
    assert_eq!(stdout(&o).trim(), "2", "{}", stderr(&o));
    d.spawn();

    for p in [&same, &changed] {
        let o = d.cli(&["approve", p.request_id()]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let o = d.cli(&["call", "--uid", &same.uid]);
    assert_eq!((code(&o), stdout(&o).trim()), (0, "same"), "{}", stderr(&o));
    rewrite(&d, "allow_self_approval = true", &held_after());
    hup(&d, RELOADED);
    let o = d.cli(&["call", "--uid", &changed.uid]);
    assert_error(&o, 3, "denied");
}

/// Regression: a symlink the path to the config met only while resolving
/// another symlink's target (on the path neither as written nor as resolved)
/// was not checked: its owner, another user, could point it at a config of
/// their own between the check and the read.
#[test]
fn a_config_reached_through_another_users_symlink_is_refused_at_reload_and_start() {
    use std::os::unix::fs::{lchown, symlink, PermissionsExt};
    let (dir, socket, config, secret_file) = write_config("", TWO_OPS);
    // A shared sticky directory (as /tmp), a symlink in it to the config's
    // directory, and the path given to the daemon: root's symlink through it.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let stage = shared.join("stage");
    symlink(dir.path(), &stage).unwrap();
    let via = dir.path().join("via.toml");
    symlink(stage.join(config.file_name().unwrap()), &via).unwrap();
    let mut d = Daemon::from_parts(dir, socket, via.clone(), secret_file);
    d.spawn();
    hup(&d, RELOADED);
    // The symlink in the shared directory another user's (pointing at the
    // same place for now): the reload is refused, and a start.
    lchown(&stage, Some(65534), Some(65534)).unwrap();
    hup(&d, REFUSED);
    let line = reload_lines(&d).pop().unwrap();
    assert!(
        line.contains(&format!("{} is owned by uid 65534", stage.display())),
        "{line}"
    );
    let mut serve = Command::new(regent());
    serve.args(["serve", "--config"]).arg(&via);
    let o = run(serve);
    assert_ne!(code(&o), 0);
    let e = stderr(&o);
    assert!(
        e.contains("refusing to start") && e.contains("is owned by uid 65534"),
        "{e}"
    );
}

#[test]
fn a_config_another_user_could_change_is_refused_at_start_and_at_reload() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    // Group-writable: the daemon does not start, and says why.
    let (dir, socket, config, secret_file) = write_config("", TWO_OPS);
    chmod(&config, 0o664);
    let mut serve = Command::new(regent());
    serve.args(["serve", "--config"]).arg(&config);
    let o = run(serve);
    assert_ne!(code(&o), 0);
    let e = stderr(&o);
    assert!(
        e.contains("refusing to start") && e.contains("writable by its group or others"),
        "{e}"
    );
    assert!(!socket.exists());

    // Trusted at start, then made world-writable (or its directory): the
    // reload is refused and the running operations stay.
    chmod(&config, 0o644);
    let mut d = Daemon::from_parts(dir, socket, config, secret_file);
    d.spawn();
    rewrite(&d, "", FIRST_AND_THIRD);
    chmod(&d.config, 0o646);
    hup(&d, REFUSED);
    let line = reload_lines(&d).pop().unwrap();
    assert!(line.contains("writable by its group or others"), "{line}");
    chmod(&d.config, 0o644);
    chmod(d.dir.path(), 0o777);
    hup(&d, REFUSED);
    chmod(d.dir.path(), 0o755);
    assert!(ops_listed(&d).contains("second"));
    // Trusted again: the same file reloads.
    hup(&d, RELOADED);
    assert!(ops_listed(&d).contains("third"));
}
