//! Figures of the daemon beyond the no-op round trip (issue 8 §5): a command
//! operation against a bare fork+exec of the same command, the daemon's memory
//! idle and after many requests, and a thousand connections from twenty users
//! held at once and then served.

use crate::load::{Figures, Load};
use crate::procs::ServerProc;
use crate::report::median;
use crate::tools::RefTools;
use crate::users::{self, Account};
use crate::BenchOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Users holding connections in the many-connections figure.
pub const HOLD_USERS: usize = 20;
/// Connections each of them holds.
pub const HOLD_PER_USER: usize = 50;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `PASS` or `MISS`.
pub(crate) fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

/// All the further figures of `daemon`, one printable line each. `rss_idle` is
/// its RSS (KiB) measured before any load.
pub fn daemon_figures(
    opts: &BenchOptions,
    tools: &RefTools,
    daemon: &ServerProc,
    caller: &Account,
    secret: &str,
    rss_idle: u64,
    say: &dyn Fn(&str),
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    say("command operation vs bare fork+exec of /bin/true");
    lines.push(command_vs_spawn(opts, tools, daemon, caller, secret)?);
    say("memory over 200k requests");
    lines.extend(memory(tools, daemon, caller, rss_idle)?);
    say("1,000 connections from 20 users");
    lines.push(many_connections(opts, tools, secret)?);
    Ok(lines)
}

/// The `true` operation (`/bin/true`) through the daemon, one caller, a
/// connection per request, against `spawnloop` forking and executing
/// `/bin/true` in turn; rounds interleaved, the p50 ratio is the median of the
/// rounds' ratios.
fn command_vs_spawn(
    opts: &BenchOptions,
    tools: &RefTools,
    daemon: &ServerProc,
    caller: &Account,
    secret: &str,
) -> Result<String, String> {
    let mut ratios = Vec::new();
    let (mut ours, mut bare): (Vec<Figures>, Vec<Figures>) = (Vec::new(), Vec::new());
    for _ in 0..opts.rounds {
        let f = Load {
            clients: 1,
            persistent: false,
            duration: opts.duration,
            warmup: 20,
            message: crate::op_line(secret, "true"),
            expect: Some("\"success\":true".into()),
        }
        .run(&tools.uclient, &daemon.socket, caller)?;
        let n = ((f.rps * opts.duration.as_secs_f64()) as u64).clamp(200, 20_000);
        let out = Command::new(&tools.spawnloop)
            .args(["-n", &n.to_string(), "-w", "20", "--", "/bin/true"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running spawnloop: {e}"))?;
        let b = Figures::parse(String::from_utf8_lossy(&out.stdout).trim())?;
        ratios.push(f.p50_us / b.p50_us);
        ours.push(f);
        bare.push(b);
    }
    let ratio = median(ratios);
    let p50 = |v: &[Figures]| median(v.iter().map(|f| f.p50_us));
    let rps = |v: &[Figures]| median(v.iter().map(|f| f.rps));
    Ok(format!(
        "command `/bin/true`: daemon p50 {:.0} µs ({:.0}/s, errs {}) vs bare fork+exec p50 {:.0} µs ({:.0}/s): {ratio:.2}x (target <= 1.3x) {}",
        p50(&ours),
        rps(&ours),
        ours.iter().map(|f| f.errs).sum::<u64>(),
        p50(&bare),
        rps(&bare),
        verdict(ratio <= 1.3)
    ))
}

/// Send at least `n` no-op requests (8 clients, a connection per request).
fn requests(
    tools: &RefTools,
    daemon: &ServerProc,
    caller: &Account,
    n: u64,
) -> Result<u64, String> {
    let mut done = 0;
    while done < n {
        let f = Load {
            clients: 8,
            persistent: false,
            duration: Duration::from_secs(1),
            warmup: 0,
            message: daemon.request.clone(),
            expect: Some(daemon.reply.clone()),
        }
        .run(&tools.uclient, &daemon.socket, caller)?;
        if f.n == 0 {
            return Err(format!("{} answered nothing", daemon.label));
        }
        done += f.n;
    }
    Ok(done)
}

/// RSS idle, after 100k more requests, after 100k more again.
fn memory(
    tools: &RefTools,
    daemon: &ServerProc,
    caller: &Account,
    rss_idle: u64,
) -> Result<Vec<String>, String> {
    let a = requests(tools, daemon, caller, 100_000)?;
    let first = daemon.rss_kib()?;
    let b = requests(tools, daemon, caller, 100_000)?;
    let second = daemon.rss_kib()?;
    let growth = second as i64 - first as i64;
    Ok(vec![format!(
        "RSS: idle {:.1} MiB (target <= 10 MiB) {}; after the measured rounds and {a} more requests {:.1} MiB; after {b} more {:.1} MiB (growth {growth:+} KiB) {}",
        mib(rss_idle),
        verdict(mib(rss_idle) <= 10.0),
        mib(first),
        mib(second),
        verdict(growth <= 256),
    )])
}

/// A daemon with `max_connections = 1100`; 20 users each open 50 connections and
/// keep them; once all are open (and the daemon holds them: its descriptors are
/// counted), every connection sends one request and reads its answer.
fn many_connections(opts: &BenchOptions, tools: &RefTools, secret: &str) -> Result<String, String> {
    let total = HOLD_USERS * HOLD_PER_USER;
    let dir = tempfile::Builder::new()
        .prefix("regent-bench-hold.")
        .tempdir()
        .map_err(|e| format!("creating a directory: {e}"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.path().display()))?;
    // The holders run as other users: they need a copy of the program they can reach.
    let program = opts
        .server_command
        .first()
        .ok_or("no bench server program for the connection holders")?;
    let holder = tools.dir().join("regent-bench-hold");
    std::fs::copy(program, &holder).map_err(|e| format!("copying the holder program: {e}"))?;
    std::fs::set_permissions(&holder, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", holder.display()))?;

    let (daemon, request) = crate::start_daemon(
        opts,
        dir.path(),
        "hold",
        "regent serve (max_connections = 1100)",
        secret,
        "max_connections = 1100",
    )?;
    let accounts = (0..HOLD_USERS)
        .map(|i| users::ensure_system_user(&format!("regent-bench-h{i:02}")))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let mut holders: Vec<(Child, BufReader<std::process::ChildStdout>)> = Vec::new();
    for a in &accounts {
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={}", a.uid))
            .arg(format!("--regid={}", a.gid))
            .arg("--clear-groups")
            .arg(&holder)
            .arg("hold")
            .arg(&daemon.socket)
            .arg(HOLD_PER_USER.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting a holder as {}: {e}", a.name))?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        holders.push((child, out));
    }
    for (_, out) in &mut holders {
        let mut l = String::new();
        out.read_line(&mut l)
            .map_err(|e| format!("reading a holder: {e}"))?;
        if l.trim() != format!("connected {HOLD_PER_USER}") {
            return Err(format!("a holder said {l:?}"));
        }
    }
    let open = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let fds = daemon.open_fds();
    let rss = daemon.rss_kib()?;
    let go = Instant::now();
    for (child, _) in &mut holders {
        let stdin = child.stdin.as_mut().expect("piped");
        stdin
            .write_all(format!("{request}\ngo\n").as_bytes())
            .map_err(|e| format!("starting a holder: {e}"))?;
    }
    let mut answered = 0;
    for (child, out) in &mut holders {
        let mut l = String::new();
        out.read_line(&mut l)
            .map_err(|e| format!("reading a holder: {e}"))?;
        answered += l
            .trim()
            .strip_prefix("answered ")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("a holder said {l:?}"))?;
        drop(child.stdin.take());
        let _ = child.wait();
    }
    let served = go.elapsed();
    Ok(format!(
        "{total} connections from {HOLD_USERS} uids: all open in {:.0} ms, held at once (the daemon had {fds} descriptors open, RSS {:.1} MiB), {answered} of {total} answered in {:.0} ms {}",
        open.as_secs_f64() * 1e3,
        mib(rss),
        served.as_secs_f64() * 1e3,
        verdict(answered == total && fds >= total)
    ))
}
