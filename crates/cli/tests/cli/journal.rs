//! Records to journald's native protocol when stderr is the journal
//! (`JOURNAL_STREAM` names the daemon's stderr). Here the daemon is pointed,
//! through `REGENT_JOURNAL_SOCKET` (for tests only), at a real datagram socket
//! the test binds, and the test parses the native protocol as journald would;
//! the real journald, queried with `journalctl REGENT_OP=...`, is in
//! `systemd.rs` (it needs a system manager).

use crate::util::*;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OPS: &str = r#"
[operations.whoami]
description = "Which user the service runs as"
command = ["whoami"]
"#;

/// One native-protocol datagram as fields; every line must be `KEY=value` with
/// a valid journal field name (the daemon never needs the binary form: values
/// hold no newline).
fn parse(datagram: &[u8]) -> HashMap<String, String> {
    let text = std::str::from_utf8(datagram).expect("UTF-8");
    assert!(text.ends_with('\n'), "{text:?}");
    let mut fields = HashMap::new();
    for line in text.lines() {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{line:?} in {text:?}"));
        assert!(
            !key.is_empty()
                && key.len() <= 64
                && !key.starts_with('_')
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "bad field name {key:?}"
        );
        assert!(
            !value.chars().any(|c| c.is_control()),
            "a control character in {key}={value:?}"
        );
        fields.insert(key.to_string(), value.to_string());
    }
    fields
}

struct Journal {
    socket: UnixDatagram,
    records: Vec<HashMap<String, String>>,
}

impl Journal {
    /// Receive until a record matches `want`.
    fn wait_for(
        &mut self,
        what: &str,
        want: impl Fn(&HashMap<String, String>) -> bool,
    ) -> HashMap<String, String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(r) = self.records.iter().find(|r| want(r)) {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} among {:?}",
                self.records
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.records.push(parse(&buf[..n]));
            }
        }
    }
}

#[test]
fn with_stderr_on_the_journal_records_go_to_the_native_socket_with_audit_fields() {
    let (dir, socket, config, secret) = write_config("", OPS);
    let mut d = Daemon::from_parts(dir, socket, config, secret);
    let path = d.dir.path().join("journal.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut journal = Journal {
        socket,
        records: Vec::new(),
    };
    d.log = d.dir.path().join("stderr.log");
    let err_file = std::fs::File::create(&d.log).unwrap();
    let meta = err_file.metadata().unwrap();
    let child = Command::new(regent())
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&d.config)
        .env("RUST_LOG", "info")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("REGENT_JOURNAL_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .unwrap();
    d.child = Some(child);
    let listening = journal.wait_for("listening", |r| r["MESSAGE"].starts_with("listening"));
    assert_eq!(listening["SYSLOG_IDENTIFIER"], "regent");
    assert_eq!(listening["PRIORITY"], "6");
    assert_eq!(listening["REGENT_OPERATIONS"], "1");

    let o = d.cli(&["call", "whoami"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = journal.wait_for("the whoami record", |r| {
        r.get("REGENT_OP").map(String::as_str) == Some("whoami")
    });
    assert_eq!(r["REGENT_OUTCOME"], "ok", "{r:?}");
    assert_eq!(r["REGENT_CALLER_UID"], "0", "{r:?}");
    assert_eq!(r["REGENT_USER"], "root", "{r:?}");
    assert!(r["MESSAGE"].starts_with("request "), "{r:?}");
    assert!(r["MESSAGE"].contains("op=whoami"), "{r:?}");

    // What a caller sends stays escaped: no newline or escape sequence in a value.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let evil = serde_json::json!({"secret": SECRET, "op": "evil\nREGENT_OP=forged\u{1b}[2J"});
    s.write_all(format!("{evil}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut answer).unwrap();
    assert!(answer.contains("unknown_operation"), "{answer}");
    let r = journal.wait_for("the evil record", |r| {
        r.get("REGENT_OUTCOME").map(String::as_str) == Some("unknown_operation")
    });
    assert!(
        r["REGENT_OP"].starts_with("evil\\u000aREGENT_OP=forged\\u001b"),
        "{r:?}"
    );
    assert!(
        !journal
            .records
            .iter()
            .any(|r| r.get("REGENT_OP").map(String::as_str) == Some("forged")),
        "a forged record"
    );

    let st = d.stop();
    assert!(st.success(), "{st}");
    journal.wait_for("the stop", |r| r["MESSAGE"] == "stopped");
    // Nothing went to stderr.
    let text = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        !text.contains("listening") && !text.contains("whoami"),
        "{text}"
    );
}

#[test]
fn with_stderr_elsewhere_records_stay_on_stderr() {
    let (dir, socket, config, secret) = write_config("", OPS);
    let mut d = Daemon::from_parts(dir, socket, config, secret);
    let path = d.dir.path().join("journal.sock");
    let journal = UnixDatagram::bind(&path).unwrap();
    journal.set_nonblocking(true).unwrap();
    // A JOURNAL_STREAM that is not this stderr (an inherited one, say).
    let env_arg = format!("REGENT_JOURNAL_SOCKET={}", path.display());
    d.spawn_with(&["/usr/bin/env", "JOURNAL_STREAM=1:1", &env_arg], "json");
    let o = d.cli(&["call", "whoami"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(d.log_shows("\"op\":\"whoami\""), "{}", d.log_text());
    let mut buf = [0u8; 16];
    assert!(
        journal.recv(&mut buf).is_err(),
        "a record went to the journal socket"
    );
}
