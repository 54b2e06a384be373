//! regent-bench: how fast a Regent service answers, beside the bare C server of
//! `shared/bench` measured in the same run.
//!
//! [`run`] builds the C tools, starts the servers as root (the bare `userver`;
//! `regent serve` on a TOML config with its default logging, stderr to a file, the
//! headline; and the library service with a no-op operation as its own process,
//! see [`server`]), and
//! drives them with `uclient` running as an unprivileged user, so each request
//! crosses a uid boundary as in real use:
//!
//! - one persistent connection; a connection per request with one client and with
//!   several concurrent clients;
//! - a legitimate caller's latency while other clients, as another user, loop on
//!   wrong secrets;
//!
//! then, for the daemon, the further figures of [`extra`] (a command against a bare
//! fork+exec, memory, a thousand connections), and prints the figures, the ratios
//! against the bare server, and the targets of the issue as PASS or MISS (a
//! measurement, never a test failure).
//!
//! **Boundaries.** Owns the benchmark harness. Imports `regent` only (and runs the
//! `regent` binary).
#![forbid(unsafe_code)]

pub mod augeas;
pub mod extra;
pub mod load;
pub mod procs;
pub mod report;
pub mod server;
pub mod tls;
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
        let mut label = String::from(match audit {
            AuditLog::Daemon => "regent serve",
            _ => "library",
        });
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
                    "daemon" => AuditLog::Daemon,
                    other => return Err(format!("audit log daemon|off|devnull, not {other:?}")),
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
    /// The `regent` binary, for the `daemon` variants (`regent serve`).
    pub daemon_program: Option<PathBuf>,
    /// The configurations of our service to measure; the first is the headline
    /// (the bare server sends its reply).
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
    /// Defaults: `regent serve` (the headline) and the library service with no
    /// audit subscriber, 3 rounds of 1 s, 8 clients, 8 attackers, callers `nobody`,
    /// attackers `regent-bench`.
    pub fn new(server_command: Vec<OsString>) -> BenchOptions {
        BenchOptions {
            shared: None,
            workspace_root: None,
            server_command,
            daemon_program: None,
            variants: vec![
                Variant::new(AuditLog::Daemon, server::Runtime::Loops(1)),
                Variant::new(AuditLog::Off, server::Runtime::Loops(1)),
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
    op_line(secret, server::NOOP)
}

/// A request line for `op` with no data.
fn op_line(secret: &str, op: &str) -> String {
    format!(r#"{{"secret": "{secret}", "op": "{op}", "data": null}}"#)
}

/// The daemon's request in the measured modes: the built-in `regent.ops` (every
/// operation in its config is a command, a process per call).
pub const DAEMON_OP: &str = "regent.ops";

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
    let reply = servers.all[0].reply.clone();
    let request_bytes = servers.all[0].request.len() + 1;
    let rss_idle = servers
        .all
        .iter()
        .find(|s| s.label.starts_with("regent serve"))
        .map(|s| s.rss_kib())
        .transpose()?;

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
                    message: s.request.clone(),
                    expect: Some(s.reply.clone()),
                };
                let fig = load.run(&tools.uclient, &s.socket, &caller)?;
                measured[mi * servers.all.len() + si].rounds.push(fig);
            }
        }
        for (si, s) in servers.all.iter().enumerate() {
            let quiet = measured[servers.all.len() + si].rounds[round];
            let (hit, att) = attack(opts, &tools, s, &caller, &attacker)?;
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
    let mut extras = Vec::new();
    if let Some(daemon) = servers
        .all
        .iter()
        .find(|s| s.label.starts_with("regent serve"))
    {
        extras = extra::daemon_figures(
            opts,
            &tools,
            daemon,
            &caller,
            &secret,
            rss_idle.unwrap_or(0),
            &say,
        )?;
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
        request_bytes,
        reply,
        caller: format!("{} (uid {})", caller.name, caller.uid),
        attacker: format!("{} (uid {})", attacker.name, attacker.uid),
        attackers: opts.attackers,
        bare: BARE.into(),
        measured,
        attacks,
        targets,
        extras,
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
        let socket = dir.path().join(format!("regent-{i}.sock"));
        let stderr = dir.path().join(format!("regent-{i}.stderr"));
        let mut s = if v.audit == AuditLog::Daemon {
            let (s, request) =
                start_daemon(opts, dir.path(), &format!("{i}"), &v.label, secret, "")?;
            let mut s = s;
            s.request = request;
            s.attack_request = op_line(&wrong_secret(attack_line), DAEMON_OP);
            s
        } else {
            let args = server::ServerArgs {
                socket: socket.clone(),
                audit: v.audit,
                runtime: v.runtime,
            };
            let mut argv = match &v.program {
                Some(p) => vec![p.clone().into_os_string()],
                None => opts.server_command.clone(),
            };
            argv.extend(args.to_args().into_iter().map(OsString::from));
            let mut s = ServerProc::start(&v.label, &argv, Some(secret), &socket, &stderr)?;
            s.request = line.to_string();
            s.attack_request = attack_line.to_string();
            s
        };
        let ok = s.ask(&s.request)?;
        if !ok.contains("\"success\":true") {
            return Err(format!("{} answered {} with {ok}", v.label, s.request));
        }
        let denied = s.ask(&s.attack_request)?;
        if !denied.contains("permission_denied") {
            return Err(format!("{} answered a wrong secret with {denied}", v.label));
        }
        s.reply = ok;
        ours.push(s);
    }
    for s in &ours[1..] {
        if s.request == ours[0].request && s.reply != ours[0].reply {
            return Err(format!(
                "{} replies {}, {} replies {}",
                s.label, s.reply, ours[0].label, ours[0].reply
            ));
        }
    }
    let (line, reply) = (ours[0].request.clone(), ours[0].reply.clone());

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
    let mut bare = ServerProc::start(
        BARE,
        &argv,
        None,
        &bare_socket,
        &dir.path().join("userver.stderr"),
    )?;
    let r = bare.ask(&line)?;
    if r != reply {
        return Err(format!("{BARE} replies {r}, ours {reply}"));
    }
    bare.request = line;
    bare.attack_request = ours[0].attack_request.clone();
    bare.reply = reply;
    let mut all = vec![bare];
    all.extend(ours);
    Ok(Servers { all, _dir: dir })
}

/// The wrong secret of an attack line made by [`request_line`].
fn wrong_secret(attack_line: &str) -> String {
    attack_line
        .split('"')
        .nth(3)
        .unwrap_or_default()
        .to_string()
}

/// Start `regent serve` on a config written into `dir` (name `regent-TAG`), with
/// `service_extra` lines in `[service]`, the secret on stdin, stderr (its default
/// logging) to a file; returns it and its `regent.ops` request line.
pub(crate) fn start_daemon(
    opts: &BenchOptions,
    dir: &std::path::Path,
    tag: &str,
    label: &str,
    secret: &str,
    service_extra: &str,
) -> Result<(ServerProc, String), String> {
    let program = opts
        .daemon_program
        .as_ref()
        .ok_or("the daemon variant needs the `regent` binary (BenchOptions::daemon_program)")?;
    let socket = dir.join(format!("regent-{tag}.sock"));
    let config = dir.join(format!("regent-{tag}.toml"));
    let text = format!(
        "[service]\nsocket = \"{}\"\nsocket_mode = \"0666\"\nstore = \"{}\"\n{service_extra}\n\
         [operations.true]\ndescription = \"Runs /bin/true\"\ncommand = [\"/bin/true\"]\n",
        socket.display(),
        dir.join(format!("state-{tag}/pending.db")).display(),
    );
    std::fs::write(&config, text).map_err(|e| format!("writing {}: {e}", config.display()))?;
    let argv: Vec<OsString> = vec![
        program.clone().into_os_string(),
        "serve".into(),
        "--config".into(),
        config.into_os_string(),
        "--secret-stdin".into(),
    ];
    let s = ServerProc::start(
        label,
        &argv,
        Some(secret),
        &socket,
        &dir.join(format!("regent-{tag}.stderr")),
    )?;
    Ok((s, op_line(secret, DAEMON_OP)))
}

/// The caller's figures while `opts.attackers` clients as `attacker` send wrong
/// secrets to `server`, and the attackers' own figures.
fn attack(
    opts: &BenchOptions,
    tools: &tools::RefTools,
    server: &ServerProc,
    caller: &Account,
    attacker: &Account,
) -> Result<(Figures, Figures), String> {
    let settle = Duration::from_millis(300);
    let attackers = Load {
        clients: opts.attackers,
        persistent: false,
        duration: opts.duration + settle * 2,
        warmup: 0,
        message: server.attack_request.clone(),
        expect: None,
    }
    .spawn(&tools.uclient, &server.socket, attacker)?;
    std::thread::sleep(settle);
    let hit = Load {
        clients: 1,
        persistent: false,
        duration: opts.duration,
        warmup: 50,
        message: server.request.clone(),
        expect: Some(server.reply.clone()),
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
                "library",
                "library, audit→null",
                "library, threads = 2",
                "library, audit→null, multi-thread 2"
            ]
        );
        assert_eq!(v[3].runtime, server::Runtime::Multi(2));
        let v = Variant::parse_list("devnull:2@/tmp/x/other").unwrap();
        assert_eq!(v[0].label, "library, audit→null, threads = 2 @other");
        assert_eq!(
            Variant::parse_list("daemon").unwrap()[0].label,
            "regent serve"
        );
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
