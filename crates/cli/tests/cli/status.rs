//! `regent status`: the reserved `regent.status` operation, for root and
//! administrators only.

use crate::util::*;

const OPS: &str = r#"
[operations.whoami]
description = "Which user the service runs as"
command = ["whoami"]
"#;

#[test]
fn administrators_read_the_status_and_plain_users_are_denied() {
    let (admin_uid, admin_gid) = user("regent-e2e-stadm");
    let (plain_uid, plain_gid) = user("regent-e2e-stusr");
    group_with("regent-e2e-stadmins", &["regent-e2e-stadm"]);
    let d = Daemon::start(
        "admin_group = \"regent-e2e-stadmins\"\nmax_connections = 40\nsocket_mode = \"0666\"",
        OPS,
    );

    let o = d.cli_as(admin_uid, admin_gid, &["status", "--json"], Some(SECRET));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let s = &v["data"];
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert_eq!(s["connections"]["limit"], 40, "{v}");
    // This very connection is open.
    assert!(s["connections"]["open"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(s["operations"], 1, "{v}");
    assert!(s["uptime_seconds"].as_u64().is_some(), "{v}");
    assert_eq!(s["audit"]["refusals_counted"], 0, "{v}");
    assert_eq!(s["log"]["journal"], false, "{v}");
    assert!(s["log"]["queued_bytes"].as_u64().is_some(), "{v}");
    let features: Vec<&str> = s["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        features.contains(&"unix") && features.contains(&"secret"),
        "{v}"
    );
    assert!(!features.contains(&"socket-activation"), "{v}");

    // Root, in human form.
    let o = d.cli(&["status"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("open of 40"), "{text}");
    assert!(
        text.contains(&format!("version      {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );

    // A plain user with the secret: refused, and the audit record says why.
    let o = d.cli_as(plain_uid, plain_gid, &["status", "--json"], Some(SECRET));
    assert_eq!(code(&o), 3, "{}\n{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["code"], "permission_denied", "{v}");
    assert!(
        d.log_shows("may not read the service's status"),
        "{}",
        d.log_text()
    );
}
