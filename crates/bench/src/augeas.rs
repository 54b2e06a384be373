//! The Augeas part (issue 10 §6): one `set` plus save on a copy of
//! sshd_config, timed end to end, through `regent serve` (a request to an
//! `augeas = {...}` operation: the operation's worker, `regent-module
//! --augeas-worker`, compiled the lens once and forks per request, which loads
//! the file, applies the change and saves) beside `augtool -s set` with every
//! lens and `augtool -A -t 'Sshd incl ...' -s set` with the one lens, measured
//! in the same run on the same file. Each call sets another port, so every one
//! writes the file.
//!
//! Figures: the median time of one change for each, over [`CHANGES`] changes per
//! round, the medians of the rounds; and, apart, the operation's first request,
//! which starts its worker (compiling the lens). Target: Regent faster than the
//! one-lens `augtool` (about 40–55 ms here, most of it compiling the lens and
//! saving).

use crate::extra::verdict;
use crate::procs::ServerProc;
use crate::report::median;
use crate::BenchOptions;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Changes timed per round for each way.
pub const CHANGES: usize = 10;

const SSHD: &str = "Port 22\nPermitRootLogin no\nPasswordAuthentication no\nListenAddress 0.0.0.0\nListenAddress ::\nSubsystem sftp /usr/lib/openssh/sftp-server\n";

fn augtool(root: &Path, one_lens: bool, port: u32) -> Result<(), String> {
    let mut c = Command::new("augtool");
    c.arg("-r").arg(root);
    if one_lens {
        c.args(["-A", "-t", "Sshd incl /etc/ssh/sshd_config"]);
    }
    c.args([
        "-s",
        "set",
        "/files/etc/ssh/sshd_config/Port",
        &port.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let out = c
        .output()
        .map_err(|e| format!("augtool (apt-get install augeas-tools): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "augtool failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Milliseconds of each of `n` runs of `f(port)`, ports changing every run.
fn time(
    n: usize,
    base: u32,
    mut f: impl FnMut(u32) -> Result<(), String>,
) -> Result<Vec<f64>, String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        f(base + u32::try_from(i).unwrap_or(0))?;
        out.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// Runs the Augeas part; its lines for the report.
pub fn run(opts: &BenchOptions) -> Result<Vec<String>, String> {
    let program = opts
        .daemon_program
        .as_ref()
        .ok_or("the Augeas part needs the `regent` binary (BenchOptions::daemon_program)")?;
    let dir = tempfile::Builder::new()
        .prefix("regent-bench-augeas.")
        .tempdir()
        .map_err(|e| format!("creating a directory: {e}"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", dir.path().display()))?;
    let root = dir.path().join("root");
    let file = root.join("etc/ssh/sshd_config");
    std::fs::create_dir_all(file.parent().expect("a parent"))
        .map_err(|e| format!("creating {}: {e}", file.display()))?;
    std::fs::write(&file, SSHD).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let socket = dir.path().join("regent.sock");
    let config = dir.path().join("regent.toml");
    let text = format!(
        "[service]\nsocket = \"{}\"\nstore = \"{}\"\n\n\
         [operations.ssh-port]\ndescription = \"Set the SSH port\"\n\
         augeas = {{ lens = \"Sshd\", file = \"{}\", set = {{ \"Port\" = \"{{port}}\" }} }}\n\
         params.port = {{ type = \"integer\", min = 1024, max = 65535 }}\n",
        socket.display(),
        dir.path().join("pending.db").display(),
        file.display()
    );
    std::fs::write(&config, text).map_err(|e| format!("writing the config: {e}"))?;
    let argv: Vec<OsString> = vec![
        program.into(),
        "serve".into(),
        "--config".into(),
        config.into(),
    ];
    let server = ServerProc::start(
        "regent serve (augeas)",
        &argv,
        None,
        &socket,
        &dir.path().join("serve.log"),
    )?;
    let client = regent::client::Client::new(&socket);
    let regent_set = |port: u32| -> Result<(), String> {
        match client.call("ssh-port", serde_json::json!({ "port": port })) {
            Ok(regent::client::Outcome::Done(v)) if v["changed"] == true => Ok(()),
            Ok(other) => Err(format!("regent: unexpected answer {other:?}")),
            Err(e) => Err(format!("regent: {e}")),
        }
    };
    // The operation's first request starts its worker: timed apart.
    let first = time(1, 1999, &regent_set)?[0];
    let (mut ours, mut all, mut one) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..opts.rounds.max(1) {
        // Servers interleaved, each round on other ports than the last.
        let base = 2000 + u32::try_from(round * 3 * CHANGES).unwrap_or(0);
        ours.push(median(time(CHANGES, base, &regent_set)?));
        all.push(median(time(CHANGES, base + 100, |p| {
            augtool(&root, false, p)
        })?));
        one.push(median(time(CHANGES, base + 200, |p| {
            augtool(&root, true, p)
        })?));
    }
    drop(server);
    let (ours, all, one) = (median(ours), median(all), median(one));
    Ok(vec![
        format!(
            "Augeas: one set + save on sshd_config, median ms of {CHANGES} changes x {} rounds",
            opts.rounds.max(1)
        ),
        format!("  regent call (augeas operation, its worker forks per request) {ours:>5.1} ms"),
        format!("  regent call, the operation's first (starts its worker)     {first:>5.1} ms"),
        format!("  augtool -s set (every lens)                              {all:>8.1} ms"),
        format!("  augtool -A -t 'Sshd incl ...' -s set (one lens)          {one:>8.1} ms"),
        format!(
            "  target: regent faster than the one-lens augtool: {:.2}x  {}",
            ours / one.max(f64::MIN_POSITIVE),
            verdict(ours < one)
        ),
    ])
}
