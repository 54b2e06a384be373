//! regent-bench: how fast a Regent service answers, beside the bare C server of
//! `shared/bench` measured in the same run.
//!
//! [`run`] builds the C tools, starts the servers as root (the bare `userver`, and
//! our service with a no-op operation as its own process, see [`server`]), and
//! drives them with `uclient` running as an unprivileged user, so each request
//! crosses a uid boundary as in real use:
//!
//! - one persistent connection; a connection per request with one client and with
//!   several concurrent clients;
//! - a legitimate caller's latency while other clients, as another user, loop on
//!   wrong secrets;
//!
//! then prints the figures, the ratios against the bare server, and the targets of
//! the issue as PASS or MISS (a measurement, never a test failure).
#![forbid(unsafe_code)]

pub mod load;
pub mod procs;
pub mod report;
pub mod server;
pub mod tools;
pub mod users;

pub use report::{Mode, Report};
pub use server::AuditLog;

use load::{Figures, Load};
use procs::ServerProc;
use report::{per_round, AttackMeasured, Measured, Target};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;
use users::Account;

/// One configuration of our service to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Shown in the tables.
    pub label: String,
    /// The audit log.
    pub audit: AuditLog,
    /// How the service is run.
    pub runtime: server::Runtime,
    /// Another server program for this variant (e.g. a build with a change, to
    /// compare in one run); `None` uses [`BenchOptions::server_command`].
    pub program: Option<PathBuf>,
}

impl Variant {
    /// A variant labelled from its settings: `regent`, `regent, audit→null`, with
    /// `, threads = N` or `, multi-thread N` when not the daemon's default (one
    /// single-threaded event loop).
    pub fn new(audit: AuditLog, runtime: server::Runtime) -> Variant {
        let mut label = String::from("regent");
        if audit == AuditLog::DevNull {
            label.push_str(", audit→null");
        }
        match runtime {
            server::Runtime::Loops(1) => {}
            server::Runtime::Loops(n) => label.push_str(&format!(", threads = {n}")),
            server::Runtime::Multi(n) => label.push_str(&format!(", multi-thread {n}")),
        }
        Variant {
            label,
            audit,
            runtime,
            program: None,
        }
    }

    /// The same variant served by `program`, labelled with its file name.
    pub fn with_program(mut self, program: PathBuf) -> Variant {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.label = format!("{} @{name}", self.label);
        self.program = Some(program);
        self
    }

    /// Parse a list like `off,devnull,off:2,off:m2,off@/tmp/other-build`: the audit
    /// log, then optionally `:N` serving threads as the daemon's `threads` key (N
    /// single-threaded event loops; 1, the daemon's default, when omitted) or
    /// `:mN` for tokio's multi-threaded runtime with N workers; `@PROGRAM` for
    /// another server binary.
    pub fn parse_list(list: &str) -> Result<Vec<Variant>, String> {
        list.split(',')
            .map(|item| {
                let (item, program) = match item.trim().split_once('@') {
                    Some((i, p)) => (i, Some(PathBuf::from(p))),
                    None => (item.trim(), None),
                };
                let (audit, threads) = item.split_once(':').unwrap_or((item, "1"));
                let audit = match audit {
                    "off" => AuditLog::Off,
                    "devnull" => AuditLog::DevNull,
                    other => return Err(format!("audit log off|devnull, not {other:?}")),
                };
                let runtime = server::Runtime::parse(threads)?;
                let v = Variant::new(audit, runtime);
                Ok(match program {
                    Some(p) => v.with_program(p),
                    None => v,
                })
            })
            .collect()
    }
}

/// What to run and how long.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The `shared/` directory; else `$REGENT_SHARED`, else `<workspace_root>/../shared`.
    pub shared: Option<PathBuf>,
    /// The workspace root, to find `shared/` beside it.
    pub workspace_root: Option<PathBuf>,
    /// How to start our bench server: the program and any leading arguments; the
    /// server's own arguments ([`server::ServerArgs`]) are appended and the secret is
    /// written to its stdin. E.g. the path of `regent-bench-server`.
    pub server_command: Vec<OsString>,
    /// The configurations of our service to measure.
    pub variants: Vec<Variant>,
    /// Measured time of each run.
    pub duration: Duration,
    /// How many times each figure is measured (servers interleaved); medians are shown.
    pub rounds: usize,
    /// Concurrent clients in the concurrent mode.
    pub clients: usize,
    /// Attackers in the attack measurement.
    pub attackers: usize,
    /// The legitimate clients' user (must exist).
    pub caller_user: String,
    /// The attackers' user (created as a system user if missing).
    pub attacker_user: String,
    /// Print progress on stderr.
    pub progress: bool,
}

impl BenchOptions {
    /// Defaults: our service with audit log off and with the daemon-style audit log
    /// to /dev/null, 3 rounds of 1 s, 8 clients, 8 attackers, callers `nobody`,
    /// attackers `regent-bench`.
    pub fn new(server_command: Vec<OsString>) -> BenchOptions {
        BenchOptions {
            shared: None,
            workspace_root: None,
            server_command,
            variants: vec![
                Variant::new(AuditLog::Off, server::Runtime::Loops(1)),
                Variant::new(AuditLog::DevNull, server::Runtime::Loops(1)),
            ],
            duration: Duration::from_secs(1),
            rounds: 3,
            clients: 8,
            attackers: 8,
            caller_user: "nobody".into(),
            attacker_user: "regent-bench".into(),
            progress: true,
        }
    }
}

/// Label of the bare C server.
pub const BARE: &str = "bare C epoll";

/// A random token of `len` characters from `[a-z0-9]` (the kernel's randomness).
fn token(len: usize) -> Result<String, String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// The no-op request line with `secret` (59 bytes for a 17-character secret, 60
/// with the newline, like `uclient`'s default request).
fn request_line(secret: &str) -> String {
    format!(
        r#"{{"secret": "{secret}", "op": "{}", "data": null}}"#,
        server::NOOP
    )
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

struct Servers {
    // Field order: servers stop before their socket directory goes.
    all: Vec<ServerProc>,
    _dir: tempfile::TempDir,
}

/// Run the whole benchmark. Needs root (servers run as root, clients as other users),
/// `sh`, `gcc` and `setpriv`.
pub fn run(opts: &BenchOptions) -> Result<Report, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("run the benchmark as root: servers run as root and clients as unprivileged users, so that every request crosses a uid boundary".into());
    }
    if opts.rounds == 0 || opts.clients == 0 || opts.variants.is_empty() {
        return Err("need at least one round, one client and one variant".into());
    }
    let say = |msg: &str| {
        if opts.progress {
            eprintln!("regent-bench: {msg}");
        }
    };

    let shared = tools::locate_shared(opts.shared.as_deref(), opts.workspace_root.as_deref())?;
    say(&format!(
        "building the C reference tools from {}",
        shared.display()
    ));
    let tools = tools::RefTools::build(&shared)?;

    let caller = users::lookup(&opts.caller_user)?
        .ok_or_else(|| format!("user {} does not exist", opts.caller_user))?;
    let attacker = users::ensure_system_user(&opts.attacker_user)?;
    if caller.uid == attacker.uid || caller.uid == 0 || attacker.uid == 0 {
        return Err("the caller and the attackers must be distinct unprivileged users".into());
    }

    let secret = token(17)?;
    let mut wrong = token(17)?;
    while wrong == secret {
        wrong = token(17)?;
    }
    let line = request_line(&secret);
    let attack_line = request_line(&wrong);

    let servers = start_servers(opts, &tools, &secret, &line, &attack_line)?;
    let reply = servers.all[0].ask(&line)?;

    let modes = [
        report::Mode::Persistent,
        report::Mode::PerRequest,
        report::Mode::PerRequestConcurrent(opts.clients),
    ];
    let mut measured: Vec<Measured> = modes
        .iter()
        .flat_map(|mode| {
            servers.all.iter().map(move |s| Measured {
                server: s.label.clone(),
                mode: *mode,
                rounds: Vec::new(),
            })
        })
        .collect();
    let mut attacks: Vec<AttackMeasured> = servers
        .all
        .iter()
        .map(|s| AttackMeasured {
            server: s.label.clone(),
            quiet: Vec::new(),
            attacked: Vec::new(),
            attackers: Vec::new(),
        })
        .collect();

    for round in 0..opts.rounds {
        say(&format!("round {}/{}", round + 1, opts.rounds));
        for (mi, mode) in modes.iter().enumerate() {
            // Rotate the order each round so no server always runs first.
            for k in 0..servers.all.len() {
                let si = (k + round) % servers.all.len();
                let s = &servers.all[si];
                let load = Load {
                    clients: match mode {
                        report::Mode::PerRequestConcurrent(n) => *n,
                        _ => 1,
                    },
                    persistent: *mode == report::Mode::Persistent,
                    duration: opts.duration,
                    warmup: 100,
                    message: line.clone(),
                    expect: Some(reply.clone()),
                };
                let fig = load.run(&tools.uclient, &s.socket, &caller)?;
                measured[mi * servers.all.len() + si].rounds.push(fig);
            }
        }
        for (si, s) in servers.all.iter().enumerate() {
            let quiet = measured[servers.all.len() + si].rounds[round];
            let (hit, att) = attack(
                opts,
                &tools,
                s,
                &caller,
                &attacker,
                &line,
                &attack_line,
                &reply,
            )?;
            attacks[si].quiet.push(quiet);
            attacks[si].attacked.push(hit);
            attacks[si].attackers.push(att);
        }
    }
    let mut servers = servers;
    for s in &mut servers.all {
        if !s.alive() {
            return Err(format!(
                "{} died during the run: {}",
                s.label,
                s.stderr_text()
            ));
        }
    }
    drop(servers);

    let n = opts.variants.len() + 1;
    let by =
        |mode_index: usize, server_index: usize| &measured[mode_index * n + server_index].rounds;
    let mut targets = Vec::new();
    for (vi, v) in opts.variants.iter().enumerate() {
        let si = vi + 1;
        targets.push(Target {
            what: "persistent p50 / bare".into(),
            server: v.label.clone(),
            ratio: per_round(by(0, 0), by(0, si), |f| f.p50_us),
            limit: 1.5,
            at_least: false,
        });
        targets.push(Target {
            what: format!("conn/request {}-client req/s / bare", opts.clients),
            server: v.label.clone(),
            ratio: per_round(by(2, 0), by(2, si), |f| f.rps),
            limit: 0.8,
            at_least: true,
        });
        targets.push(Target {
            what: format!("caller p50 under {}-client attack / alone", opts.attackers),
            server: v.label.clone(),
            ratio: attacks[si].slowdown(),
            limit: 3.0,
            at_least: false,
        });
    }

    Ok(Report {
        cpus: cpus(),
        rounds: opts.rounds,
        duration: opts.duration,
        request_bytes: line.len() + 1,
        reply,
        caller: format!("{} (uid {})", caller.name, caller.uid),
        attacker: format!("{} (uid {})", attacker.name, attacker.uid),
        attackers: opts.attackers,
        bare: BARE.into(),
        measured,
        attacks,
        targets,
    })
}

/// Start the bare server first (as index 0), then each variant of ours; check that
/// they answer the no-op request alike and that ours refuses the wrong secret.
fn start_servers(
    opts: &BenchOptions,
    tools: &tools::RefTools,
    secret: &str,
    line: &str,
    attack_line: &str,
) -> Result<Servers, String> {
    let dir = tempfile::Builder::new()
        .prefix("regent-bench.")
        .tempdir()
        .map_err(|e| format!("creating the socket directory: {e}"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.path().display()))?;

    let mut ours = Vec::new();
    for (i, v) in opts.variants.iter().enumerate() {
        let args = server::ServerArgs {
            socket: dir.path().join(format!("regent-{i}.sock")),
            audit: v.audit,
            runtime: v.runtime,
        };
        let mut argv = match &v.program {
            Some(p) => vec![p.clone().into_os_string()],
            None => opts.server_command.clone(),
        };
        argv.extend(args.to_args().into_iter().map(OsString::from));
        let s = ServerProc::start(
            &v.label,
            &argv,
            Some(secret),
            &args.socket,
            &dir.path().join(format!("regent-{i}.stderr")),
        )?;
        let ok = s.ask(line)?;
        if !ok.contains("\"success\":true") || !ok.contains("\"ok\"") {
            return Err(format!("{} answered the no-op request with {ok}", v.label));
        }
        let denied = s.ask(attack_line)?;
        if !denied.contains("permission_denied") {
            return Err(format!("{} answered a wrong secret with {denied}", v.label));
        }
        ours.push(s);
    }
    let reply = ours[0].ask(line)?;
    for s in &ours[1..] {
        let r = s.ask(line)?;
        if r != reply {
            return Err(format!(
                "{} replies {r}, {} replies {reply}",
                s.label, ours[0].label
            ));
        }
    }

    let bare_socket = dir.path().join("userver.sock");
    let argv: Vec<OsString> = vec![
        tools.userver.clone().into(),
        "-u".into(),
        bare_socket.clone().into(),
        "-m".into(),
        "epoll".into(),
        "-r".into(),
        reply.clone().into(),
    ];
    let bare = ServerProc::start(
        BARE,
        &argv,
        None,
        &bare_socket,
        &dir.path().join("userver.stderr"),
    )?;
    let r = bare.ask(line)?;
    if r != reply {
        return Err(format!("{BARE} replies {r}, ours {reply}"));
    }
    let mut all = vec![bare];
    all.extend(ours);
    Ok(Servers { all, _dir: dir })
}

/// The caller's figures while `opts.attackers` clients as `attacker` send wrong
/// secrets to `server`, and the attackers' own figures.
#[allow(clippy::too_many_arguments)]
fn attack(
    opts: &BenchOptions,
    tools: &tools::RefTools,
    server: &ServerProc,
    caller: &Account,
    attacker: &Account,
    line: &str,
    attack_line: &str,
    reply: &str,
) -> Result<(Figures, Figures), String> {
    let settle = Duration::from_millis(300);
    let attackers = Load {
        clients: opts.attackers,
        persistent: false,
        duration: opts.duration + settle * 2,
        warmup: 0,
        message: attack_line.to_string(),
        expect: None,
    }
    .spawn(&tools.uclient, &server.socket, attacker)?;
    std::thread::sleep(settle);
    let hit = Load {
        clients: 1,
        persistent: false,
        duration: opts.duration,
        warmup: 50,
        message: line.to_string(),
        expect: Some(reply.to_string()),
    }
    .run(&tools.uclient, &server.socket, caller)?;
    let att = attackers.finish()?;
    Ok((hit, att))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn variants_parse_and_label_themselves() {
        let v = Variant::parse_list("off, devnull:1,off:2,devnull:m2").unwrap();
        let labels: Vec<_> = v.iter().map(|v| v.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "regent",
                "regent, audit→null",
                "regent, threads = 2",
                "regent, audit→null, multi-thread 2"
            ]
        );
        assert_eq!(v[3].runtime, server::Runtime::Multi(2));
        let v = Variant::parse_list("devnull:2@/tmp/x/other").unwrap();
        assert_eq!(v[0].label, "regent, audit→null, threads = 2 @other");
        assert_eq!(v[0].program.as_deref(), Some(Path::new("/tmp/x/other")));
        assert!(Variant::parse_list("loud:2").is_err());
        assert!(Variant::parse_list("off:x").is_err());
        assert!(Variant::parse_list("off:0").is_err());
        assert!(Variant::parse_list("off:m0").is_err());
    }

    #[test]
    fn the_request_line_is_60_bytes_like_uclients_default() {
        let line = request_line(&token(17).unwrap());
        assert_eq!(line.len() + 1, 60, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["op"], "noop");
    }
}
