//! A second attacker's review of issue 7's fixes, run as unprivileged users against
//! the real daemon: what the first round of fixes still let through.

use crate::server::{audit_of, perl_as, records, SEND_EACH};
use crate::util::*;

const OPS_ECHO: &str = r#"
[operations.echo]
description = "Echoes a message"
command = ["printf", "%s", "{msg}"]
params.msg = { type = "string", pattern = "(?s).{0,300}" }
"#;

/// Sends `lines` on one connection as `uid:gid`; returns the answers.
fn send(d: &Daemon, uid: u32, gid: u32, lines: &[String]) -> String {
    let mut args = vec![d.socket.to_str().unwrap()];
    args.extend(lines.iter().map(String::as_str));
    let o = run(perl_as(uid, gid, SEND_EACH, &args));
    assert!(o.status.success(), "{}", stderr(&o));
    let answers = stdout(&o);
    assert_eq!(answers.lines().count(), lines.len(), "{answers}");
    answers
}

/// The text log writes fields as `key=value` separated by spaces, and an unknown
/// operation's name is logged as sent. A name holding a space (or a no-break
/// space, which looks the same) forged the fields after it: the record of a
/// refused request read `op=echo outcome="ok" duration_us=812 data={...}`, then
/// the real outcome. Names are one word now: their whitespace is escaped.
#[test]
fn an_operation_name_cannot_forge_the_fields_of_its_text_record() {
    let (uid, gid) = user("regent-e2e-mallory");
    let mut d = Daemon::start("socket_mode = \"0666\"", OPS_ECHO);
    d.kill9();
    d.spawn_with(&[], "text");
    let forged = [
        r#"echo outcome=\"ok\" duration_us=812 data={\"msg\":\"hi\"}"#,
        "echo\u{a0}outcome=\\\"ok\\\"\u{3000}duration_us=9",
    ];
    let lines: Vec<String> = forged
        .iter()
        .map(|op| format!(r#"{{"secret": "SECRET", "op": "{op}"}}"#))
        .collect();
    let answers = send(&d, uid, gid, &lines);
    assert_eq!(answers.matches("unknown_operation").count(), 2, "{answers}");
    d.stop();
    let log = d.log_text();
    let mine: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("regent::audit") && l.contains(&format!("uid={uid}")))
        .collect();
    assert_eq!(mine.len(), 2, "{log}");
    for line in &mine {
        // One outcome field, the real one; nothing that reads as a second field.
        assert_eq!(line.matches(" outcome=").count(), 1, "forged field: {line}");
        assert!(line.contains("outcome=\"unknown_operation\""), "{line}");
        assert!(
            !line.contains('\u{a0}') && !line.contains('\u{3000}'),
            "{line}"
        );
    }
    assert!(mine[0].contains(r"op=echo\u0020outcome"), "{}", mine[0]);
    assert!(mine[1].contains(r"op=echo\u00a0outcome"), "{}", mine[1]);
}

/// Refusals are aggregated per uid, but the service's own `regent.*` names were
/// never aggregated, even when refused: an unknown `regent.x`, or
/// `regent.pending`/`regent.approve` from a caller who is no administrator, left
/// one full record each, at the full request rate (and no rate limit applies).
#[test]
fn refused_regent_calls_are_summarized_like_other_refusals() {
    let (uid, gid) = user("regent-e2e-flooder2");
    let mut d = Daemon::start("socket_mode = \"0666\"\nrate_limit_hold = \"0s\"", OPS_ECHO);
    const EACH: usize = 100;
    let mut lines: Vec<String> = Vec::new();
    lines.extend((0..EACH).map(|i| format!(r#"{{"secret": "SECRET", "op": "regent.nope-{i}"}}"#)));
    lines.extend((0..EACH).map(|_| r#"{"secret": "SECRET", "op": "regent.pending"}"#.to_string()));
    lines.extend((0..EACH).map(|i| {
        format!(r#"{{"secret": "SECRET", "op": "regent.approve", "data": {{"id": "r{i}"}}}}"#)
    }));
    let answers = send(&d, uid, gid, &lines);
    assert_eq!(
        answers.matches("unknown_operation").count(),
        EACH,
        "{answers}"
    );
    assert_eq!(
        answers.matches("permission_denied").count(),
        2 * EACH,
        "{answers}"
    );
    // Still answered as usual: regent.ops is not a refusal.
    let ops = send(
        &d,
        uid,
        gid,
        &[r#"{"secret": "SECRET", "op": "regent.ops"}"#.to_string()],
    );
    assert!(ops.contains("echo"), "{ops}");
    d.stop();
    let mine = audit_of(&d, uid);
    let in_full = mine
        .iter()
        .filter(|r| r["fields"]["outcome"] != "ok")
        .count();
    assert!(
        in_full < 40,
        "{in_full} refused regent.* calls logged in full: the flood was not aggregated"
    );
    assert_eq!(
        mine.iter()
            .filter(|r| r["fields"]["outcome"] == "ok")
            .count(),
        1,
        "the listing is logged"
    );
    let counted: u64 = records(&d)
        .iter()
        .filter(|r| {
            r["fields"]["message"] == "refused requests summarized" && r["fields"]["uid"] == uid
        })
        .map(|s| s["fields"]["refused"].as_u64().unwrap())
        .sum();
    assert_eq!(
        counted as usize + in_full,
        3 * EACH,
        "refusals lost: neither logged nor counted"
    );
}

/// The socket directory was checked, but not the directories above it. With one
/// of them writable by others (here `open`, mode 0777, not sticky), another user
/// renames the checked directory away and puts their own in its place: between
/// the daemon's check and its bind, or between its bind and the `chmod`/`chown`
/// of the socket by path (a symlink there hands root's `chmod 0666` any file).
/// Every directory the path goes through must be safe: owned by root or the
/// service, writable by no one else (a sticky directory only above an entry
/// owned by root or the service).
#[test]
fn a_socket_below_a_directory_others_can_write_is_refused() {
    let (uid, gid) = user("regent-e2e-mallory");
    let (dir, socket, config, _secret) = write_config("socket_mode = \"0666\"", OPS_ECHO);
    let open = dir.path().join("open");
    let sub = open.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let squatted = sub.join("regent.sock");
    std::fs::write(
        &config,
        text.replace(
            &format!("socket = \"{}\"", socket.display()),
            &format!("socket = \"{}\"", squatted.display()),
        ),
    )
    .unwrap();
    // The other user can indeed take `sub`'s place: `open` is theirs to write.
    let mut mv = std::process::Command::new("mv");
    mv.arg(&sub).arg(open.join("moved")).uid(uid).gid(gid);
    use std::os::unix::process::CommandExt;
    assert_eq!(code(&run(mv)), 0);
    std::fs::rename(open.join("moved"), &sub).unwrap();

    let err = serve_refuses(&config, &dir.path().join("serve.log"));
    assert!(
        err.contains(&open.display().to_string()) && err.contains("writable"),
        "{err}"
    );
    assert!(!squatted.exists());
    let mut check = std::process::Command::new(regent());
    check.args(["check", "--config"]).arg(&config);
    let o = run(check);
    assert_ne!(code(&o), 0, "check passed: {}", stdout(&o));
    // Made safe, the same config serves.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut check = std::process::Command::new(regent());
    check.args(["check", "--config"]).arg(&config);
    let o = run(check);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
}

const OPS_TWO: &str = r#"
[operations.note]
description = "Files a note about a host"
command = ["printf", "%s: %s", "{host}", "{about}"]
params.about = { type = "string", pattern = "[a-z ]*" }
params.host = { type = "string", pattern = "[a-z0-9.-]{1,64}" }
"#;

/// An audit record cut the data's JSON text at 512 bytes: a caller padding one
/// free-text value (`about`, which comes first) pushed the value that mattered
/// (`host`) out of the record of a request that ran. Each value is cut on its own
/// now, with its length, and every parameter stays in the record.
#[test]
fn a_long_value_cannot_hide_the_other_values_of_a_record() {
    let (uid, gid) = user("regent-e2e-mallory");
    let mut d = Daemon::start("socket_mode = \"0666\"", OPS_TWO);
    let padding = "x".repeat(1500);
    let line = format!(
        r#"{{"secret": "SECRET", "op": "note", "data": {{"about": "{padding}", "host": "db1.internal"}}}}"#
    );
    let answers = send(&d, uid, gid, &[line]);
    assert!(
        answers.contains("db1.internal: xxx"),
        "the request ran: {answers}"
    );
    d.stop();
    let mine = audit_of(&d, uid);
    assert_eq!(mine.len(), 1, "{}", d.log_text());
    assert_eq!(mine[0]["fields"]["outcome"], "ok");
    let data: serde_json::Value =
        serde_json::from_str(mine[0]["fields"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["host"], "db1.internal", "{data}");
    let about = data["about"].as_str().unwrap();
    assert!(
        about.ends_with("…(1500 bytes)") && about.len() < 400,
        "{about}"
    );
}

/// Runs `regent serve --config CONFIG` for up to 5 s and asserts that it refused
/// to start; returns what it logged.
fn serve_refuses(config: &std::path::Path, log: &std::path::Path) -> String {
    let mut serve = std::process::Command::new(regent())
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = serve.try_wait().unwrap() {
            break Some(st);
        }
        if t.elapsed() > std::time::Duration::from_secs(5) {
            let _ = serve.kill();
            let _ = serve.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(log).unwrap();
    assert!(
        status.is_some_and(|st| !st.success()),
        "serve started: {err}"
    );
    err
}

/// A symlink another user put in a sticky directory (like `/tmp`) in place of the
/// socket directory: it led to a safe-looking directory (root's, 0755), which
/// alone was checked, so the daemon started there, on a path whose symlink that
/// user may replace at any time. Refused now: in a sticky directory others can
/// write, only an entry owned by root or the service is safe.
#[test]
fn a_socket_directory_reached_through_another_users_symlink_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (uid, gid) = user("regent-e2e-mallory");
    let (dir, socket, config, _secret) = write_config("socket_mode = \"0666\"", OPS_ECHO);
    let sticky = dir.path().join("tmp");
    let target = dir.path().join("target");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = sticky.join("regent");
    let mut ln = std::process::Command::new("ln");
    ln.arg("-s").arg(&target).arg(&link).uid(uid).gid(gid);
    assert_eq!(code(&run(ln)), 0);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            &format!("socket = \"{}\"", socket.display()),
            &format!("socket = \"{}\"", link.join("regent.sock").display()),
        ),
    )
    .unwrap();
    let err = serve_refuses(&config, &dir.path().join("serve.log"));
    assert!(
        err.contains(&sticky.display().to_string()) && err.contains("writable"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_none(),
        "a socket was bound"
    );
}

/// Issue 8's review: the authorization rewrite (`policy::evaluate`,
/// `policy::may_decide`) must decide as before. An `approve` rule that names a
/// user makes them an approver of that operation only: they see its requests
/// and no other, and they may not approve their own; an administrator the rule
/// leaves out sees nothing of it; a user in neither gets no listing at all.
#[test]
fn an_approve_rule_neither_lets_its_approver_approve_their_own_nor_see_others() {
    use crate::pending::{admins_config, assert_error, who};
    let approver = who("regent-e2e-rv-appr");
    let plain = who("regent-e2e-rv-plain");
    let admin = who("regent-e2e-rv-adm");
    group_with("regent-e2e-admins", &["regent-e2e-rv-adm"]);
    let ops = r#"
[operations.guarded]
description = "Approved by one named user"
command = ["printf", "guarded"]
auth = ["approval"]
approve = { users = ["regent-e2e-rv-appr"] }

[operations.plain]
description = "Approved by the administrators"
command = ["printf", "plain"]
auth = ["approval"]

[operations.closed]
description = "For the administrators only"
command = ["printf", "closed"]
allow = { groups = ["regent-e2e-admins"] }
"#;
    let d = Daemon::start(&admins_config(), ops);
    let mine = approver.start(&d, "guarded", "null");
    let theirs = plain.start(&d, "guarded", "null");
    let other_op = plain.start(&d, "plain", "null");

    // The approver may not approve their own request (permission_denied, as an
    // administrator approving their own), which stays pending.
    let o = approver.run(&d, &["approve", mine.request_id()]);
    assert_error(&o, 3, "permission_denied");
    assert_eq!(code(&approver.poll(&d, &mine.uid)), 7, "still pending");
    // They see the requests of `guarded` only, their own among them.
    let o = approver.run(&d, &["pending", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let listing = stdout(&o);
    assert!(
        listing.contains(mine.request_id()) && listing.contains(theirs.request_id()),
        "{listing}"
    );
    assert!(!listing.contains(other_op.request_id()), "{listing}");
    // And may not decide on `plain`: it answers like an unknown id.
    for verb in ["approve", "deny"] {
        let o = approver.run(&d, &[verb, other_op.request_id()]);
        assert_error(&o, 3, "not_found");
    }
    // The administrator, left out by the rule, sees `plain` and nothing of `guarded`.
    let o = admin.run(&d, &["pending", "--json"]);
    let listing = stdout(&o);
    assert!(listing.contains(other_op.request_id()), "{listing}");
    assert!(
        !listing.contains(mine.request_id()) && !listing.contains(theirs.request_id()),
        "{listing}"
    );
    // A user in neither gets no listing, and `regent ops` hides what they may not call.
    assert_error(&plain.run(&d, &["pending"]), 3, "permission_denied");
    let o = plain.run(&d, &["ops", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("guarded") && !stdout(&o).contains("closed"),
        "{}",
        stdout(&o)
    );
    // The approver approves someone else's, which runs; root approves theirs.
    let o = approver.run(&d, &["approve", theirs.request_id()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    crate::pending::assert_ran(&plain.poll(&d, &theirs.uid), "guarded");
    assert_eq!(code(&d.cli(&["approve", mine.request_id()])), 0);
    crate::pending::assert_ran(&approver.poll(&d, &mine.uid), "guarded");
}

/// Serialises group changes with the other tests' user and group changes.
fn users_lock() -> nix::fcntl::Flock<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/regent-e2e-users.lock")
        .unwrap();
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap()
}

/// Issue 8's review: a caller who leaves the operation's `allow` group while
/// their request waits for approval never runs it, though it was approved (the
/// groups are the user database's word when the request resumes, never the
/// ones it was held with). The rewrite let the policy refuse them after the
/// stage, inside the flow, which answered `denied` ("Request denied", as if an
/// approver had) and left the reason out of the audit record; they are refused
/// `permission_denied`, with the reason in the record, as before.
#[test]
fn a_caller_removed_from_the_allowed_group_while_held_does_not_run() {
    use crate::pending::{assert_error, OPEN};
    let caller = crate::pending::who("regent-e2e-rv-held");
    group_with("regent-e2e-rv-holders", &["regent-e2e-rv-held"]);
    let ops = r#"
[operations.deploy]
description = "Deploys, once approved"
command = ["printf", "deployed"]
auth = ["approval"]
allow = { groups = ["regent-e2e-rv-holders"] }
"#;
    let mut d = Daemon::start(OPEN, ops);
    let p = caller.start(&d, "deploy", "null");
    {
        let _g = users_lock();
        let st = std::process::Command::new("gpasswd")
            .args(["-d", "regent-e2e-rv-held", "regent-e2e-rv-holders"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    // A fresh daemon on the same store: nothing of the caller is cached.
    d.kill9();
    d.spawn();
    assert_eq!(code(&d.cli(&["approve", p.request_id()])), 0);
    let o = caller.poll(&d, &p.uid);
    assert_error(&o, 3, "permission_denied");
    assert!(!stdout(&o).contains("deployed"), "{}", stdout(&o));
    // Consumed: the uid is not usable again.
    assert_error(&caller.poll(&d, &p.uid), 3, "not_found");
    d.stop();
    let mine = audit_of(&d, caller.uid);
    let refused = mine
        .iter()
        .find(|r| r["fields"]["outcome"] == "permission_denied")
        .unwrap_or_else(|| panic!("no permission_denied record: {mine:?}"));
    assert_eq!(refused["fields"]["op"], "deploy", "{refused}");
    let note = refused["fields"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("not among the allowed"), "{refused}");
}
