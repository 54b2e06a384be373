//! Security, as genuinely unprivileged users: what they cannot do, and that their
//! real identity (not a claimed one) reaches the operation.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;

const OPS: &str = r#"
[operations.whoareyou]
description = "Reports the caller's kernel identity"
command = ["printf", "%s %s %s", "{caller.uid}", "{caller.gid}", "{caller.user}"]

[operations.for-alice]
description = "Only regent-e2e-alice"
command = ["true"]
allow = { users = ["regent-e2e-alice"] }

[operations.for-ops-team]
description = "Only group regent-e2e-ops"
command = ["true"]
allow = { groups = ["regent-e2e-ops"] }
"#;

fn users() -> ((u32, u32), (u32, u32)) {
    let alice = user("regent-e2e-alice");
    let bob = user("regent-e2e-bob");
    group_with("regent-e2e-ops", &["regent-e2e-bob"]);
    (alice, bob)
}

#[test]
fn the_callers_real_uid_reaches_the_operation() {
    let ((auid, agid), _) = users();
    let d = Daemon::start("socket_mode = \"0666\"", OPS);
    let o = d.cli_as(auid, agid, &["call", "whoareyou"], Some(SECRET));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{auid} {agid} regent-e2e-alice"));
    // Claims in the request change nothing.
    let o = d.cli_as(
        auid,
        agid,
        &["call", "whoareyou", "--data", "null", "--json"],
        Some(SECRET),
    );
    assert!(
        stdout(&o).contains(&format!("{auid} {agid}")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn policy_denies_by_user_and_by_group() {
    let ((auid, agid), (buid, bgid)) = users();
    let d = Daemon::start("socket_mode = \"0666\"", OPS);
    // alice: allowed by user, denied by group.
    assert_eq!(
        code(&d.cli_as(auid, agid, &["call", "for-alice"], Some(SECRET))),
        0
    );
    let o = d.cli_as(auid, agid, &["call", "for-ops-team"], Some(SECRET));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("permission_denied"));
    // bob: the reverse (his membership of regent-e2e-ops is supplementary).
    assert_eq!(
        code(&d.cli_as(buid, bgid, &["call", "for-alice"], Some(SECRET))),
        3
    );
    assert_eq!(
        code(&d.cli_as(buid, bgid, &["call", "for-ops-team"], Some(SECRET))),
        0
    );
    // Neither sees what they may not call.
    let o = d.cli_as(auid, agid, &["ops"], Some(SECRET));
    assert!(
        stdout(&o).contains("for-alice") && !stdout(&o).contains("for-ops-team"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_unprivileged_user_cannot_read_the_secret_and_without_it_gets_nothing() {
    let ((auid, agid), _) = users();
    let d = Daemon::start("socket_mode = \"0666\"", OPS);
    assert_eq!(
        std::fs::metadata(&d.secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Reading the secret file fails.
    let mut c = std::process::Command::new(regent());
    std::os::unix::process::CommandExt::uid(&mut c, auid);
    std::os::unix::process::CommandExt::gid(&mut c, agid);
    c.args(["call", "whoareyou", "--socket"])
        .arg(&d.socket)
        .arg("--secret-file")
        .arg(&d.secret_file)
        .env_clear();
    let o = run(c);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot read secret file") && stderr(&o).contains("ermission denied"),
        "{}",
        stderr(&o)
    );
    // Without it, or with a guess: permission_denied, and not even the list of operations.
    for secret in [None, Some("guess")] {
        let o = d.cli_as(auid, agid, &["ops"], secret);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(!stdout(&o).contains("whoareyou"));
    }
}

#[test]
fn socket_mode_and_group_decide_who_can_connect() {
    let ((auid, agid), (buid, bgid)) = users();
    let ops_gid = group_with("regent-e2e-ops", &["regent-e2e-bob"]);
    let d = Daemon::start(
        "socket_mode = \"0660\"\nsocket_group = \"regent-e2e-ops\"",
        OPS,
    );
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), ops_gid);
    // alice is not in the group: refused by the kernel at connect.
    let o = d.cli_as(auid, agid, &["call", "whoareyou"], Some(SECRET));
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("permission denied connecting"),
        "{}",
        stderr(&o)
    );
    // bob is, through a supplementary group: the CLI must run with his groups.
    let mut c = std::process::Command::new(regent());
    c.args(["call", "whoareyou", "--socket"])
        .arg(&d.socket)
        .env_clear()
        .env("REGENT_SECRET", SECRET);
    let mut c = with_groups(c, buid, bgid, &[ops_gid]);
    let o = run(std::mem::replace(
        &mut c,
        std::process::Command::new("true"),
    ));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("{buid} ")),
        "{}",
        stdout(&o)
    );
}

/// Run `c` as uid:gid with supplementary groups, through setpriv (util-linux).
fn with_groups(
    c: std::process::Command,
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> std::process::Command {
    let mut s = std::process::Command::new("setpriv");
    let list: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    s.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg(format!("--groups={}", list.join(",")))
        .arg("--")
        .arg(c.get_program())
        .args(c.get_args());
    s.env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    s
}
