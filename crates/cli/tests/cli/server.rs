//! The daemon's server side under hostile callers (issue 7): audit log injection,
//! floods of refusals, clients that never read, the reserve for administrators,
//! descriptor limits and the global bound on runs, core dumps, SIGHUP.
//!
//! Raw protocol clients run as genuinely unprivileged users through `perl` (its
//! core `IO::Socket::UNIX`): a real process with the user's kernel identity, which
//! sends exactly the bytes a test gives it. The secret reaches it through the
//! environment (`S`), never argv: each `SECRET` in a line is replaced by it.

use crate::util::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Connects to `$ARGV[0]`, then for each further argument sends it as a line and
/// prints the answer line (or `EOF`).
pub(crate) const SEND_EACH: &str = r#"
use strict; use IO::Socket::UNIX;
$SIG{PIPE} = 'IGNORE';
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => shift @ARGV) or die "connect: $!";
for my $l (@ARGV) {
    $l =~ s/SECRET/$ENV{S}/g;
    print $s "$l\n";
    my $r = <$s>;
    print(defined $r ? $r : "EOF\n");
}
"#;

/// `perl -e SCRIPT ARGS` as `uid:gid`, the secret in `S`.
pub(crate) fn perl_as(uid: u32, gid: u32, script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/perl");
    c.arg("-e")
        .arg(script)
        .args(args)
        .uid(uid)
        .gid(gid)
        .env_clear()
        .env("S", SECRET);
    c
}

/// The JSON log's records.
pub(crate) fn records(d: &Daemon) -> Vec<serde_json::Value> {
    d.log_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// Audit records (`"request"`) of `uid`.
pub(crate) fn audit_of(d: &Daemon, uid: u32) -> Vec<serde_json::Value> {
    records(d)
        .into_iter()
        .filter(|r| r["fields"]["message"] == "request" && r["fields"]["uid"] == uid)
        .collect()
}

/// What a caller may put in a field to reach a terminal or forge a record (as
/// JSON text): escape sequences (clear screen, red), a bidi override, a
/// zero-width space, a C1 control, and a newline followed by a fake record.
const EVIL: &str =
    "x\\u001b[2J\\u001b[31m\u{202e}gnp.exe\u{200b}\u{85}\\nFORGED INFO request outcome=ok";

const OPS_ECHO: &str = r#"
[operations.echo]
description = "Echoes a message"
command = ["printf", "%s", "{msg}"]
params.msg = { type = "string", pattern = "(?s).{0,300}" }
"#;

/// The hostile lines: in the operation name, in data that reaches the record, in
/// a continued request's uid, and a name far too long to log whole.
fn evil_lines() -> Vec<String> {
    vec![
        format!(r#"{{"secret": "SECRET", "op": "{EVIL}"}}"#),
        format!(r#"{{"secret": "SECRET", "op": "echo", "data": {{"msg": "{EVIL}"}}}}"#),
        format!(r#"{{"secret": "SECRET", "uid": "{EVIL}", "data": {{"code": "1"}}}}"#),
        format!(r#"{{"secret": "SECRET", "op": "{}"}}"#, "A".repeat(5000)),
    ]
}

fn send_evil(d: &Daemon, uid: u32, gid: u32) -> String {
    let lines = evil_lines();
    let mut args = vec![d.socket.to_str().unwrap()];
    args.extend(lines.iter().map(String::as_str));
    let o = run(perl_as(uid, gid, SEND_EACH, &args));
    assert!(o.status.success(), "{}", stderr(&o));
    let answers = stdout(&o);
    assert_eq!(answers.lines().count(), 4, "{answers}");
    answers
}

/// Nothing a caller sent may reach the log raw: no escape character, bidi
/// override, zero-width space or C1 control anywhere in it.
fn assert_nothing_raw(log: &str) {
    for bad in ['\u{1b}', '\u{202e}', '\u{200b}', '\u{85}'] {
        assert!(!log.contains(bad), "{:?} reached the log raw:\n{log}", bad);
    }
}

/// Finding 4, text log: a newline in an operation name no longer forges a record
/// and escape sequences no longer reach the administrator's terminal; the record
/// shows them escaped. No colours when stderr is not a terminal.
#[test]
fn the_text_log_escapes_what_callers_send() {
    let (uid, gid) = user("regent-e2e-mallory");
    let mut d = Daemon::start("socket_mode = \"0666\"", OPS_ECHO);
    // The default daemon logs JSON; this one logs text to a file.
    d.kill9();
    d.spawn_with(&[], "text");
    let answers = send_evil(&d, uid, gid);
    assert!(answers.contains("unknown_operation"), "{answers}");
    assert!(
        answers.contains("\"success\":true") || answers.contains("gnp.exe"),
        "{answers}"
    );
    d.stop();
    let log = d.log_text();
    assert_nothing_raw(&log);
    // Every line is a record of its own (begins with a timestamp): the newline in
    // the name forged none.
    for line in log.lines() {
        assert!(
            line.starts_with("20") && line.as_bytes().get(4) == Some(&b'-'),
            "a line that is not a record: {line:?}\n{log}"
        );
        assert!(!line.starts_with("FORGED"), "{log}");
    }
    let mine: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("regent::audit") && l.contains(&format!("uid={uid}")))
        .collect();
    assert_eq!(mine.len(), 4, "{log}");
    // The name, escaped: the newline and ESC as \u escapes, the override too.
    assert!(
        mine[0].contains(r"op=x\u001b[2J\u001b[31m\u202egnp.exe\u200b\u0085\u000aFORGED\u0020INFO"),
        "{}",
        mine[0]
    );
    // The data (JSON) keeps its own escapes; what JSON leaves raw is escaped.
    assert!(
        mine[1].contains(r#"data={"msg":"x\u001b[2J"#)
            && mine[1].contains(r"\u202egnp.exe\u200b\u0085\nFORGED"),
        "{}",
        mine[1]
    );
    // A name far too long is cut, with its length.
    assert!(mine[3].contains("…(5000 bytes)"), "{}", mine[3]);
    assert!(!mine[3].contains(&"A".repeat(100)), "{}", mine[3]);
    // Not a terminal: no colour codes at all (checked above: no ESC in the log).
}

/// Finding 4, JSON log: every line is one JSON object, and what JSON would leave
/// raw (bidi, zero-width, C1) is escaped too.
#[test]
fn the_json_log_escapes_what_callers_send() {
    let (uid, gid) = user("regent-e2e-mallory");
    let mut d = Daemon::start("socket_mode = \"0666\"", OPS_ECHO);
    send_evil(&d, uid, gid);
    d.stop();
    assert_nothing_raw(&d.log_text());
    let mine = audit_of(&d, uid);
    assert_eq!(mine.len(), 4, "{}", d.log_text());
    let op = mine[0]["fields"]["op"].as_str().unwrap();
    assert!(
        op.starts_with(r"x\u001b[2J") && op.contains(r"\u202egnp.exe\u200b\u0085\u000aFORGED"),
        "{op}"
    );
    let data: serde_json::Value =
        serde_json::from_str(mine[1]["fields"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        data["msg"],
        "x\u{1b}[2J\u{1b}[31m\u{202e}gnp.exe\u{200b}\u{85}\nFORGED INFO request outcome=ok",
        "the escaped data still decodes to what was sent"
    );
}

const OPS_FLOOD: &str = r#"
[operations.ok]
description = "Succeeds"
command = ["true"]

[operations.held]
description = "Needs an administrator's approval"
command = ["true"]
auth = ["approval"]
"#;

/// Finding 13: a flood of refused requests leaves a bounded number of full
/// records and a summary per uid with counts per code that add up; records of
/// requests that ran or were held are all kept, even during the flood.
#[test]
fn refusals_are_summarized_per_uid_and_nothing_that_ran_or_was_held_is_lost() {
    let (uid, gid) = user("regent-e2e-flooder");
    let mut d = Daemon::start(
        "socket_mode = \"0666\"\nrate_limit_hold = \"0s\"",
        OPS_FLOOD,
    );
    const GARBAGE: usize = 150;
    const UNKNOWN: usize = 150;
    const RAN: usize = 20;
    const HELD: usize = 3;
    let mut lines: Vec<String> = Vec::new();
    lines.extend((0..GARBAGE).map(|i| format!("garbage {i}")));
    lines.extend((0..UNKNOWN).map(|i| format!(r#"{{"secret": "SECRET", "op": "nope-{i}"}}"#)));
    lines.extend((0..RAN).map(|_| r#"{"secret": "SECRET", "op": "ok"}"#.to_string()));
    lines.extend((0..HELD).map(|_| r#"{"secret": "SECRET", "op": "held"}"#.to_string()));
    let mut args = vec![d.socket.to_str().unwrap()];
    args.extend(lines.iter().map(String::as_str));
    let o = run(perl_as(uid, gid, SEND_EACH, &args));
    let answers = stdout(&o);
    assert_eq!(answers.lines().count(), lines.len(), "{}", stderr(&o));
    assert_eq!(answers.matches("bad_request").count(), GARBAGE);
    assert_eq!(answers.matches("unknown_operation").count(), UNKNOWN);
    assert_eq!(answers.matches("\"pending\"").count(), HELD, "{answers}");
    // Stopping flushes the summaries.
    d.stop();
    let mine = audit_of(&d, uid);
    let outcome = |o: &str| mine.iter().filter(|r| r["fields"]["outcome"] == o).count();
    assert_eq!(outcome("ok"), RAN, "every run is in the log");
    assert_eq!(outcome("pending"), HELD, "every held request is in the log");
    let refused_in_full = outcome("bad_request") + outcome("unknown_operation");
    assert!(
        refused_in_full < 40,
        "{refused_in_full} refusals logged in full: the flood was not aggregated"
    );
    let summaries: Vec<serde_json::Value> = records(&d)
        .into_iter()
        .filter(|r| {
            r["fields"]["message"] == "refused requests summarized" && r["fields"]["uid"] == uid
        })
        .collect();
    assert!(!summaries.is_empty(), "{}", d.log_text());
    let mut counted = 0;
    for s in &summaries {
        let codes = s["fields"]["codes"].as_str().unwrap();
        let mut sum = 0;
        for part in codes.split(' ') {
            let (code, n) = part.split_once('=').unwrap();
            assert!(
                code == "bad_request" || code == "unknown_operation",
                "{codes}"
            );
            sum += n.parse::<u64>().unwrap();
        }
        assert_eq!(s["fields"]["refused"].as_u64().unwrap(), sum, "{s}");
        counted += sum;
    }
    assert_eq!(
        counted as usize + refused_in_full,
        GARBAGE + UNKNOWN,
        "refusals lost: neither logged nor counted"
    );
}

/// An operation whose answer (about 230 KB) does not fit a socket buffer.
const OPS_BIG: &str = r#"
[operations.big]
description = "A large answer"
command = ["seq", "1", "40000"]
"#;

/// Sends `$ARGV[1]` requests for `big` without reading (receive buffer made
/// small), prints `sent`, sleeps `$ARGV[2]` s, then reads until the end and
/// prints how many whole answers came and how the connection ended.
const NON_READER: &str = r#"
use strict; use IO::Socket::UNIX; use Socket;
$| = 1;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die "connect: $!";
setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096) or die "rcvbuf: $!";
print $s qq({"secret": "$ENV{S}", "op": "big"}\n) for 1 .. $ARGV[1];
print "sent\n";
sleep $ARGV[2];
local $SIG{ALRM} = sub { print "answers $main::n TIMEOUT\n"; exit 0 };
alarm 20;
our $n = 0;
while (my $l = <$s>) { $n++ if $l =~ /\n\z/ }
print "answers $n CLOSED\n";
"#;

/// Finding 6: a client that never reads is disconnected once `write_timeout`
/// passes; it does not keep its connection (until now it kept it forever: when
/// it finally read, every answer came and the connection stayed open).
#[test]
fn a_client_that_does_not_read_is_closed_after_the_write_timeout() {
    let (uid, gid) = user("regent-e2e-sloth");
    let d = Daemon::start("socket_mode = \"0666\"\nwrite_timeout = \"1s\"", OPS_BIG);
    let sock = d.socket.to_str().unwrap();
    let o = run(perl_as(uid, gid, NON_READER, &[sock, "10", "4"]));
    let out = stdout(&o);
    assert!(out.contains("CLOSED"), "{out} {}", stderr(&o));
    let n: usize = out
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(n < 10, "all {n} answers were delivered: no write deadline");
    assert!(
        d.log_text()
            .contains("did not take its answer within write_timeout"),
        "{}",
        d.log_text()
    );
    // The service goes on serving others.
    assert_eq!(code(&d.cli(&["call", "big"])), 0);
}

/// Finding 6: during shutdown a connection whose write is blocked is closed at
/// once, so it does not hold the shutdown for the grace period (30 s).
#[test]
fn a_client_that_does_not_read_does_not_hold_shutdown() {
    let (uid, gid) = user("regent-e2e-sloth");
    // A write deadline longer than the grace: only the shutdown can end the write.
    let mut d = Daemon::start("socket_mode = \"0666\"\nwrite_timeout = \"120s\"", OPS_BIG);
    let sock = d.socket.to_str().unwrap().to_string();
    let mut client = perl_as(uid, gid, NON_READER, &[&sock, "10", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "sent\n");
    // Let the daemon run the first request and block writing its answer.
    wait_for(&d, "blocked write", || {
        d.log_text().contains("\"outcome\":\"ok\"")
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    // `stop` fails the test if the daemon is not gone within 15 s (the grace is 30 s).
    let status = d.stop();
    let took = t.elapsed();
    let _ = client.kill();
    let _ = client.wait();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(15),
        "shutdown took {took:?}: held by the non-reading client"
    );
    assert!(
        d.log_text()
            .contains("shutting down: closing a connection whose client does not read"),
        "{}",
        d.log_text()
    );
}

fn wait_for(d: &Daemon, what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "waited in vain for {what}: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens `$ARGV[1]` connections, on each sends a request for `ok` and reads its
/// answer, prints the answers, then holds the connections until killed.
const HOLDER: &str = r#"
use strict; use IO::Socket::UNIX;
$| = 1;
my @held;
for (1 .. $ARGV[1]) {
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die "connect: $!";
    print $s qq({"secret": "$ENV{S}", "op": "ok"}\n);
    my $r = <$s>;
    print(defined $r ? $r : "EOF\n");
    push @held, $s;
}
print "held\n";
sleep 600;
"#;

/// Holds `n` connections as `uid:gid`; returns the process and its answers.
fn hold(d: &Daemon, uid: u32, gid: u32, n: usize) -> (Child, String) {
    let sock = d.socket.to_str().unwrap().to_string();
    let mut child = perl_as(uid, gid, HOLDER, &[&sock, &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut answers = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 || line == "held\n" {
            break;
        }
        answers.push_str(&line);
    }
    (child, answers)
}

const OPS_OK: &str = r#"
[operations.ok]
description = "Succeeds"
command = ["true"]
"#;

/// Finding 7: once only the reserved connections are left, other users get
/// `busy`, while root and members of `admin_group` still get in.
#[test]
fn reserved_connections_keep_root_and_administrators_in() {
    let alice = user("regent-e2e-crowd1");
    let bob = user("regent-e2e-crowd2");
    let dave = user("regent-e2e-crowd3");
    let carol = user("regent-e2e-srvadmin");
    group_with("regent-e2e-srvadmins", &["regent-e2e-srvadmin"]);
    let d = Daemon::start(
        "socket_mode = \"0666\"\nmax_connections = 12\nreserved_connections = 4\n\
         admin_group = \"regent-e2e-srvadmins\"",
        OPS_OK,
    );
    // Two users take the 8 slots that are not reserved.
    let (mut a, answers) = hold(&d, alice.0, alice.1, 4);
    assert_eq!(answers.matches("\"success\":true").count(), 4, "{answers}");
    let (mut b, answers) = hold(&d, bob.0, bob.1, 4);
    assert_eq!(answers.matches("\"success\":true").count(), 4, "{answers}");
    // A third user is turned away with `busy`.
    let sock = d.socket.to_str().unwrap();
    let o = run(perl_as(
        dave.0,
        dave.1,
        SEND_EACH,
        &[sock, r#"{"secret": "SECRET", "op": "ok"}"#],
    ));
    let turned_away = stdout(&o);
    // An administrator and root still get in.
    let admin = d.cli_as(carol.0, carol.1, &["call", "ok"], Some(SECRET));
    let root = d.cli(&["call", "ok"]);
    for p in [&mut a, &mut b] {
        let _ = p.kill();
        let _ = p.wait();
    }
    assert!(turned_away.contains("\"busy\""), "{turned_away}");
    assert_eq!(
        code(&admin),
        0,
        "administrator locked out: {}",
        stderr(&admin)
    );
    assert_eq!(code(&root), 0, "root locked out: {}", stderr(&root));
}

const OPS_SLOW: &str = r#"
[operations.slow-a]
description = "Takes a while"
command = ["sleep", "4"]
concurrency = 8

[operations.slow-b]
description = "Takes a while too"
command = ["sleep", "4"]
concurrency = 8
"#;

/// Finding 8: `max_runs` bounds the operations running at once across the whole
/// service (not per operation): beyond it, `busy`.
#[test]
fn max_runs_bounds_runs_across_operations() {
    let alice = user("regent-e2e-crowd1");
    let bob = user("regent-e2e-crowd2");
    let d = Daemon::start("socket_mode = \"0666\"\nmax_runs = 2", OPS_SLOW);
    let sock = d.socket.to_str().unwrap().to_string();
    let line = r#"{"secret": "SECRET", "op": "slow-a"}"#;
    let running: Vec<Child> = (0..2)
        .map(|_| {
            perl_as(alice.0, alice.1, SEND_EACH, &[&sock, line])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both runs started: two `sleep 4` below the daemon.
    wait_for(&d, "two runs", || sleeps_below(d.pid()) == 2);
    let o = d.cli_as(bob.0, bob.1, &["call", "slow-b"], Some(SECRET));
    let busy = (code(&o), stderr(&o));
    for c in running {
        let out = c.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\"success\":true"),
            "{:?}",
            out
        );
    }
    assert_eq!(busy.0, 5, "{}", busy.1);
    assert!(busy.1.contains("busy"), "{}", busy.1);
    // Below the bound again: it runs.
    let o = d.cli_as(bob.0, bob.1, &["call", "slow-b"], Some(SECRET));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// Processes named `sleep` descending from `pid`.
fn sleeps_below(pid: i32) -> usize {
    let parent_of = |p: i32| -> Option<(i32, String)> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let (name, rest) = stat.split_once(") ")?;
        let comm = name.split_once(" (")?.1.to_string();
        let ppid = rest.split(' ').nth(1)?.parse().ok()?;
        Some((ppid, comm))
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| {
            let Some((mut up, comm)) = parent_of(p) else {
                return false;
            };
            if comm != "sleep" {
                return false;
            }
            for _ in 0..8 {
                if up == pid {
                    return true;
                }
                match parent_of(up) {
                    Some((pp, _)) => up = pp,
                    None => return false,
                }
            }
            false
        })
        .count()
}

/// A limit line of `/proc/PID/limits`: (soft, hard).
fn limit(pid: i32, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{text}"));
    let mut words = line[name.len()..].split_whitespace();
    (
        words.next().unwrap().to_string(),
        words.next().unwrap().to_string(),
    )
}

/// Finding 8: started with systemd's kind of low soft limit, the daemon raises
/// it to the hard limit; with a hard limit too low for its maxima, it says so.
#[test]
fn the_descriptor_limit_is_raised_and_checked() {
    let (dir, socket, config, secret_file) = write_config("", OPS_OK);
    let mut d = Daemon::from_parts(dir, socket, config, secret_file);
    d.spawn_with(&["prlimit", "--nofile=256:8192", "--"], "json");
    assert_eq!(
        limit(d.pid(), "Max open files"),
        ("8192".into(), "8192".into())
    );
    assert!(!d.log_text().contains("descriptor limit is below"));
    assert_eq!(code(&d.cli(&["call", "ok"])), 0);
    d.stop();
    // 100 descriptors cannot serve 512 connections and 256 runs: a clear warning.
    d.spawn_with(&["prlimit", "--nofile=100:100", "--"], "json");
    let log = d.log_text();
    assert!(
        log.contains("the descriptor limit is below what max_connections and max_runs may use"),
        "{log}"
    );
    assert!(log.contains("LimitNOFILE="), "{log}");
}

/// Finding 10: the daemon cannot dump core and is not dumpable: run as a
/// non-root user, its `/proc/PID` files belong to root, so that user (or anyone
/// running as it) cannot read its environment or memory; and its memory holds
/// no copy of the secret, only the digest.
#[test]
fn the_daemon_is_not_dumpable_and_keeps_no_plaintext_secret() {
    let (uid, gid) = user("regent-e2e-svc");
    let (dir, socket, config, secret_file) = write_config("socket_mode = \"0666\"", OPS_OK);
    for p in [dir.path(), &secret_file, &config] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    let mut d = Daemon::from_parts(dir, socket, config, secret_file);
    let reuid = format!("--reuid={uid}");
    let regid = format!("--regid={gid}");
    d.spawn_with(&["setpriv", &reuid, &regid, "--clear-groups"], "json");
    let pid = d.pid();
    assert_eq!(limit(pid, "Max core file size"), ("0".into(), "0".into()));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains(&format!("\nUid:\t{uid}\t")), "{status}");
    // Non-dumpable: the kernel gives its /proc files to root.
    let meta = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(
        meta.uid(),
        0,
        "/proc/{pid}/environ belongs to the daemon's user"
    );
    let mut cat = Command::new("cat");
    cat.arg(format!("/proc/{pid}/environ")).uid(uid).gid(gid);
    let o = run(cat);
    assert_ne!(code(&o), 0, "the daemon's user read its environment");
    // Its memory (read as root, before any request carried the secret) holds no
    // copy of the secret.
    assert!(
        !memory_contains(pid, SECRET.as_bytes()),
        "the plaintext secret is in the daemon's memory"
    );
    // The daemon is not root: the client is told which uid to trust.
    let server_uid = uid.to_string();
    let o = d.cli(&["call", "ok", "--server-uid", &server_uid]);
    assert_eq!(code(&o), 0, "{o:?}");
}

/// Whether the readable, writable mappings of `pid` contain `needle`.
fn memory_contains(pid: i32, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    for line in maps.lines() {
        let mut words = line.split_whitespace();
        let (range, perms) = (words.next().unwrap(), words.next().unwrap());
        if !perms.starts_with("rw") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

/// Finding 11: SIGHUP is logged and the daemon goes on serving.
#[test]
fn sighup_does_not_stop_the_daemon() {
    let mut d = Daemon::start("", OPS_OK);
    for _ in 0..3 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(d.pid()),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        d.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the daemon died of SIGHUP"
    );
    assert_eq!(code(&d.cli(&["call", "ok"])), 0);
    // Each SIGHUP reloads the (unchanged) config and says so in one line (the
    // log is written by a background thread: wait for the third).
    let t = std::time::Instant::now();
    while d.log_text().matches("configuration reloaded").count() < 3
        && t.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        d.log_text().matches("configuration reloaded").count(),
        3,
        "{}",
        d.log_text()
    );
    assert!(d.stop().success());
}
