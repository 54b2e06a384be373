//! The pending store under an attacker and an administrator (issue 7, findings 2,
//! 3 and 9): the real daemon, the real CLI, callers running as genuinely
//! unprivileged users.

use crate::pending::*;
use crate::util::*;
use serde_json::Value;
use std::path::Path;

/// `PRAGMA integrity_check` of the store, through the store's own opener (a
/// separate SQLite connection in this process, as any admin tool would be).
fn integrity(store: &Path) -> String {
    let db = regent_auth::db::open(store).unwrap();
    let conn = db.lock();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
}

/// Finding 2: the daemon opened its store twice (TOTP and pending) and closed a
/// plain descriptor of it each time, which drops every POSIX lock the process
/// holds on the file. An admin command run meanwhile (`regent totp enroll`) then
/// found the database unlocked, checkpointed it and deleted the live WAL on
/// close: what the daemon wrote afterwards went to an unlinked file and was lost
/// at the next crash.
#[test]
fn held_requests_survive_an_enrolment_while_the_daemon_runs_and_kill_9() {
    let caller = who("regent-e2e-walloss");
    let mut d = Daemon::start(OPEN, APPROVAL_OPS);
    let store = d.dir.path().join("state/pending.db");
    let mut held = Vec::new();
    for i in 0..3 {
        held.push((
            caller.start(&d, "say", &format!(r#"{{"msg":"before {i}"}}"#)),
            format!("before {i}"),
        ));
    }
    // An administrator enrols someone while the daemon serves.
    enroll(&d, "regent-e2e-walloss-admin");
    let wal = store.with_file_name("pending.db-wal");
    assert!(
        wal.exists(),
        "the daemon's WAL was deleted by the enrolment"
    );
    for i in 0..3 {
        held.push((
            caller.start(&d, "say", &format!(r#"{{"msg":"after {i}"}}"#)),
            format!("after {i}"),
        ));
    }
    // One is approved before the crash, after the enrolment.
    assert_eq!(code(&d.cli(&["approve", held[4].0.request_id()])), 0);
    d.kill9();
    assert_eq!(integrity(&store), "ok");
    d.spawn();

    let listed: Vec<String> = pending_list(&d)
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    for (p, _) in &held {
        assert!(
            listed.iter().any(|id| id == p.request_id()),
            "request {} was lost: {listed:?}",
            p.request_id()
        );
    }
    // Every held request completes with the data it was held with.
    for (i, (p, msg)) in held.iter().enumerate() {
        if i != 4 {
            let o = d.cli(&["approve", p.request_id()]);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
        }
        assert_ran(&caller.poll(&d, &p.uid), msg);
    }
    assert!(pending_list(&d).is_empty());
    d.stop();
    assert_eq!(integrity(&store), "ok");
}

const CAPPED_OPS: &str = r#"
[operations.say]
description = "Print a message once an administrator approves"
command = ["printf", "%s", "{msg}"]
params.msg = { type = "string", pattern = "[a-z0-9 -]{1,40}" }
auth = ["approval"]
max_pending_per_uid = 2

[operations.echo]
description = "Print a message once an administrator approves"
command = ["printf", "%s", "{msg}"]
params.msg = { type = "string", pattern = "[a-z0-9 -]{1,40}" }
auth = ["approval"]
"#;

/// `regent call OP --data DATA` as `who`, which must answer `busy`.
#[track_caller]
fn assert_busy(who: &Who, d: &Daemon, op: &str, msg: &str, why: &str) {
    let o = who.run(d, &["call", op, "--data", &format!(r#"{{"msg":"{msg}"}}"#)]);
    assert_error(&o, 5, "busy");
    assert!(stderr(&o).contains(why), "{}", stderr(&o));
}

/// Finding 3: one user could hold requests without bound. Held requests are
/// capped per caller uid and operation, per caller uid, and in all; beyond a
/// cap the answer is `busy` and nothing is stored, while other users are still
/// held; `regent pending` pages, newest first, and says how many more wait.
#[test]
fn held_requests_are_capped_per_user_per_operation_and_in_all_and_listed_by_page() {
    let greedy = who("regent-e2e-greedy");
    let other = who("regent-e2e-modest");
    let third = who("regent-e2e-third");
    // An unprivileged administrator lists them.
    let admin = who("regent-e2e-adm");
    group_with("regent-e2e-admins", &["regent-e2e-adm"]);
    let service = format!(
        "{OPEN}\nadmin_group = \"regent-e2e-admins\"\nmax_pending_per_uid = 3\nmax_pending = 5"
    );
    let d = Daemon::start(&service, CAPPED_OPS);

    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(greedy.start(&d, "say", &format!(r#"{{"msg":"g{i}"}}"#)));
    }
    // The operation's cap for this user.
    assert_busy(&greedy, &d, "say", "g2", "for this operation by this user");
    // Another operation still holds, up to the user's cap for all operations.
    ids.push(greedy.start(&d, "echo", r#"{"msg":"g3"}"#));
    assert_busy(&greedy, &d, "echo", "g4", "by this user");
    // Another user is still held...
    ids.push(other.start(&d, "say", r#"{"msg":"o0"}"#));
    ids.push(other.start(&d, "echo", r#"{"msg":"o1"}"#));
    // ... until the store's cap, which then holds for everyone.
    assert_busy(&other, &d, "echo", "o2", "in all");
    assert_busy(&third, &d, "say", "t0", "in all");
    // Nothing refused was stored.
    let all = pending_list(&d);
    assert_eq!(all.len(), 5, "{all:?}");

    // Pages, newest first, with the count of the rest.
    let o = d.cli(&["pending", "--json", "--limit", "2"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let page = v["data"]["requests"].as_array().unwrap();
    let got: Vec<&str> = page
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [ids[4].request_id(), ids[3].request_id()],
        "newest first"
    );
    assert_eq!(v["data"]["more"], 3);
    let o = admin.run(&d, &["pending", "--limit", "1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(ids[4].request_id()), "{}", stdout(&o));
    assert!(!stdout(&o).contains(ids[3].request_id()), "{}", stdout(&o));
    assert!(stdout(&o).contains("4 older requests"), "{}", stdout(&o));
    // A bad limit is refused with a clear message.
    let o = d.cli(&["pending", "--limit", "0"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("--limit"), "{}", stderr(&o));

    // A decided (and collected) request frees its place.
    assert_eq!(code(&d.cli(&["deny", ids[0].request_id()])), 0);
    assert_error(&greedy.poll(&d, &ids[0].uid), 3, "denied");
    let again = greedy.start(&d, "say", r#"{"msg":"g5"}"#);
    assert_eq!(code(&d.cli(&["approve", again.request_id()])), 0);
    assert_ran(&greedy.poll(&d, &again.uid), "g5");
    // The refusals are logged.
    assert!(d.log_shows("at their cap"), "{}", d.log_text());
}

/// Finding 9: a new request reset `max_attempts`, so a caller could guess codes
/// forever. Wrong codes are counted per user in the store, across requests and
/// restarts, with an exponential back-off (`rate_limited`) that a new
/// enrolment resets.
#[test]
fn wrong_totp_codes_back_off_across_requests_and_restarts_until_enrolled_again() {
    let name = "regent-e2e-guesser";
    let caller = who(name);
    let mut d = Daemon::start(OPEN, TOTP_OPS);
    let secret = enroll(&d, name);
    let wrong = wrong_code(&secret);
    // max_attempts = 2: each request is dropped after two wrong codes, and a new
    // one used to start from zero.
    for key in ["k1", "k2"] {
        let p = caller.start(&d, "rotate", &format!(r#"{{"key":"{key}"}}"#));
        assert_error(&caller.code(&d, &p.uid, &wrong), 3, "auth_failed");
        assert_error(&caller.code(&d, &p.uid, &wrong), 3, "auth_failed");
    }
    // Four wrong codes in a row: the user backs off, even with the right code.
    let right = totp_code(&secret, unix_now() + 30);
    let p = caller.start(&d, "rotate", r#"{"key":"k3"}"#);
    let o = caller.code(&d, &p.uid, &right);
    assert_error(&o, 3, "rate_limited");
    assert!(stderr(&o).contains("wrong codes"), "{}", stderr(&o));
    let log = d.log_text();
    assert!(log.contains("backs off") && log.contains(name), "{log}");

    // A restart (a crash even) keeps the count.
    d.kill9();
    d.spawn();
    let p = caller.start(&d, "rotate", r#"{"key":"k4"}"#);
    assert_error(&caller.code(&d, &p.uid, &right), 3, "rate_limited");

    // Enrolling again resets it: codes are checked again.
    let secret = enroll(&d, name);
    let p = caller.start(&d, "rotate", r#"{"key":"k5"}"#);
    assert_error(
        &caller.code(&d, &p.uid, &wrong_code(&secret)),
        3,
        "auth_failed",
    );
    let right = totp_code(&secret, unix_now() + 30);
    assert_ran(&caller.code(&d, &p.uid, &right), "rotated k5");
}
