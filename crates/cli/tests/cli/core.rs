//! The daemon face end to end: config, check, serve, call, exit statuses, audit,
//! command execution limits, shutdown.

use crate::util::*;
use std::time::{Duration, Instant};

const OPS: &str = r#"
[operations.greet]
description = "Greet someone"
command = ["printf", "hello %s", "{name}"]
params.name = { type = "string", pattern = "[a-z]{1,16}" }

[operations.fail]
description = "Always fails"
command = ["sh", "-c", "echo broken >&2; exit 3"]

[operations.slow]
description = "Sleeps"
command = ["sleep", "{secs}"]
params.secs = { type = "integer", min = 0, max = 60 }
timeout = "1s"

[operations.login]
description = "Takes a password on stdin"
command = ["wc", "-c"]
params.password = { type = "string", secret = true }
stdin = "password"

[operations.pause]
description = "Takes a second"
command = ["sleep", "1"]

[operations.nobody-only]
description = "Only for nobody"
command = ["true"]
allow = { users = ["nobody"] }
"#;

#[test]
fn check_accepts_a_good_config_and_explains_privilege() {
    let (_dir, _s, config, _) = write_config("", OPS);
    let mut c = std::process::Command::new(regent());
    c.args(["check", "--config"]).arg(&config);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(": OK"), "{out}");
    assert!(out.contains("operation greet"), "{out}");
    assert!(out.contains("privilege:"), "{out}");
    assert!(out.contains("callers: users [nobody]"), "{out}");
}

#[test]
fn check_and_serve_refuse_a_bad_config_with_locations() {
    let (_dir, _s, config, _) = write_config(
        "",
        "[operations.bad]\ncommand = [\"echo\", \"{missing}\"]\nparams.x = { type = \"ipv5\" }\n",
    );
    let mut c = std::process::Command::new(regent());
    c.args(["check", "--config"]).arg(&config);
    let o = run(c);
    assert_eq!(code(&o), 4);
    let out = stdout(&o);
    assert!(out.contains("regent.toml:"), "{out}");
    assert!(out.contains("ipv5"), "{out}");
    assert!(out.contains("missing"), "{out}");
    let mut c = std::process::Command::new(regent());
    c.args(["serve", "--config"]).arg(&config);
    let o = run(c);
    assert_eq!(code(&o), 4, "serve must refuse: {}", stderr(&o));
    assert!(stderr(&o).contains("refusing to start"), "{}", stderr(&o));
}

/// `regent check` quotes the config's keys and values in its diagnostics: a
/// terminal escape or a bidirectional override in the file reaches the terminal
/// escaped, not as a control.
#[test]
fn check_escapes_what_the_config_contains() {
    let (_dir, _s, config, _) = write_config(
        "",
        "[operations.bad]\ncommand = [\"true\"]\n\"x\\u001b]0;owned\\u0007\" = 1\n\"txt\u{202e}exe\" = 2\n",
    );
    let mut c = std::process::Command::new(regent());
    c.args(["check", "--config"]).arg(&config);
    let o = run(c);
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        !out.contains(['\u{1b}', '\u{7}', '\u{202e}']),
        "a control reached the terminal: {out:?}"
    );
    assert!(
        out.contains("unknown key 'x\\u{001b}]0;owned\\u{0007}'"),
        "{out}"
    );
    assert!(out.contains("unknown key 'txt\\u{202e}exe'"), "{out}");
}

#[test]
fn calls_and_exit_statuses() {
    let d = Daemon::start("", OPS);
    let o = d.cli(&["call", "greet", "--data", r#"{"name": "world"}"#]);
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hello world"),
        "{}",
        stderr(&o)
    );

    let o = d.cli(&["call", "greet", "--data", r#"{"name": "World; rm -rf /"}"#]);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).contains("invalid_data") && stderr(&o).contains("name"),
        "{}",
        stderr(&o)
    );

    let o = d.cli(&["call", "nope"]);
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("unknown_operation"));

    let o = d.cli(&["call", "fail"]);
    assert_eq!(code(&o), 5);
    assert!(
        stderr(&o).contains("operation_failed") && stderr(&o).contains("broken"),
        "{}",
        stderr(&o)
    );

    let o = d.cli(&["call", "nobody-only"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));

    let o = d.cli(&["call", "greet", "--json", "--data", r#"{"name": "x"}"#]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"success": true, "uid": null, "data": "hello x"})
    );

    let o = d.cli(&["call", "greet", "--data", "{not json"]);
    assert_eq!(code(&o), 4);

    let o = d.cli(&["ops"]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains("greet") && !stdout(&o).contains("nobody-only"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn connection_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(regent());
    c.args(["call", "x", "--socket"])
        .arg(dir.path().join("none.sock"));
    let o = run(c);
    assert_eq!(code(&o), 6);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn a_command_past_its_timeout_is_stopped_and_the_service_still_answers() {
    let d = Daemon::start("", OPS);
    let t = Instant::now();
    let o = d.cli(&["call", "slow", "--data", r#"{"secs": 30}"#]);
    assert_eq!(code(&o), 5);
    assert!(stderr(&o).contains("timeout"), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // No `sleep 30` survives.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 30$"])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "sleep survived: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    let o = d.cli(&["call", "greet", "--data", r#"{"name": "after"}"#]);
    assert_eq!(stdout(&o), "hello after");
}

#[test]
fn secrets_go_on_stdin_and_never_into_the_audit_log() {
    let mut d = Daemon::start("", OPS);
    let o = d.cli(&[
        "call",
        "login",
        "--data",
        r#"{"password": "hunter2-correct-horse"}"#,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // wc -c counts the password plus its newline: it arrived on stdin.
    assert_eq!(stdout(&o), "22");
    let o = d.cli(&["call", "greet", "--data", r#"{"name": "bob"}"#]);
    assert_eq!(code(&o), 0);
    d.stop();
    let log = d.log_text();
    assert!(!log.contains("hunter2"), "password leaked into the log");
    assert!(!log.contains(SECRET), "socket secret leaked into the log");
    // One JSON audit record per request, with caller, op, outcome, duration.
    let audits: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "regent::audit")
        .collect();
    assert_eq!(audits.len(), 2, "{log}");
    let greet = &audits[1]["fields"];
    assert_eq!(greet["op"], "greet");
    assert_eq!(greet["outcome"], "ok");
    assert_eq!(greet["uid"], 0);
    assert!(greet["duration_us"].as_u64().is_some());
    assert!(greet["data"].as_str().unwrap().contains("bob"));
    assert!(
        audits[0]["fields"]["data"]
            .as_str()
            .unwrap()
            .contains("<redacted>"),
        "{}",
        audits[0]
    );
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_removes_the_socket() {
    let mut d = Daemon::start("", OPS);
    let socket = d.socket.clone();
    let secret_file = d.secret_file.clone();
    let in_flight = std::thread::spawn(move || {
        let mut c = std::process::Command::new(regent());
        c.args(["call", "pause", "--socket"])
            .arg(&socket)
            .arg("--secret-file")
            .arg(&secret_file);
        run(c)
    });
    std::thread::sleep(Duration::from_millis(400));
    let st = d.stop();
    let o = in_flight.join().unwrap();
    assert_eq!(code(&o), 0, "the request in flight was cut: {}", stderr(&o));
    assert!(st.success(), "{st}");
    assert!(!d.socket.exists(), "socket left behind");
    assert!(d.log_shows("finishing requests in flight"));
}

/// `max_connections_per_uid`, `rate_limit_hold` and `threads` from the config take
/// effect.
#[test]
fn per_uid_connection_cap_and_rate_limit_hold() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    // Not the default hold (1 s), so that the key is seen to take effect.
    let d = Daemon::start(
        "max_connections_per_uid = 2\nrate_limit_hold = \"600ms\"\nthreads = 2",
        OPS,
    );
    // `threads = 2`: a second event loop accepts on the socket.
    let acceptors = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter(|t| {
                let comm = t.as_ref().unwrap().path().join("comm");
                std::fs::read_to_string(comm).is_ok_and(|c| c.starts_with("regent-accept"))
            })
            .count()
    };
    // The second loop may start just after the daemon logged "listening".
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while acceptors(d.pid()) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // At least one: a thread started from that loop without a name of its own
    // (Linux gives it its creator's name) may count too.
    assert!(
        acceptors(d.pid()) >= 1,
        "threads = 2 started no second loop"
    );
    let line = |s: &mut UnixStream| {
        let mut l = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut l)
            .unwrap();
        l
    };
    // Two idle connections from this uid are fine; one of three is turned away.
    // With two loops accepting, which one is refused is a race (a loop may take
    // the third connection before the other loop has counted the second), and
    // the start-up probes' connections may still be counted for a moment, so
    // count the answers and try again until those have closed.
    let busy_of_three = || {
        let three: Vec<UnixStream> = (0..3)
            .map(|_| UnixStream::connect(&d.socket).unwrap())
            .collect();
        three
            .iter()
            .filter(|s| {
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut l = String::new();
                // An admitted idle connection is not answered: the read times out.
                let _ = BufReader::new(*s).read_line(&mut l);
                l.contains("\"busy\"")
            })
            .count()
    };
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.last() != Some(&1) && Instant::now() < deadline {
        seen.push(busy_of_three());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        seen.last(),
        Some(&1),
        "max_connections_per_uid = 2: busy answers among 3 connections, per try: {seen:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    // Wrong secrets: the first few are answered at once (permission_denied), then
    // the lockout's first rate_limited at once too; asking again during the
    // lockout is a flood, whose answers are held.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut limited = Vec::new();
    for _ in 0..8 {
        let t = Instant::now();
        s.write_all(b"{\"secret\": \"wrong\", \"op\": \"greet\"}\n")
            .unwrap();
        let l = line(&mut s);
        assert!(
            l.contains("permission_denied") || l.contains("rate_limited"),
            "{l}"
        );
        if l.contains("rate_limited") {
            limited.push(t.elapsed());
        }
    }
    assert!(limited.len() >= 2, "{limited:?}");
    assert!(
        limited[0] < Duration::from_millis(500),
        "the first rate_limited answer was not at once: {limited:?}"
    );
    let held = limited[1..].iter().max().copied().unwrap_or_default();
    assert!(
        held >= Duration::from_millis(500) && held < Duration::from_millis(950),
        "rate-limited answers not held for rate_limit_hold (600ms): {held:?}"
    );
}
