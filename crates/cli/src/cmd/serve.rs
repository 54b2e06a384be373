//! `regent serve --config FILE`: run the daemon.

use crate::logging;
use regent::server::SharedSecret;
use std::path::PathBuf;
use std::process::ExitCode;

/// `regent serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The TOML config.
    #[arg(long, short = 'c', default_value = "/etc/regent/regent.toml")]
    pub config: PathBuf,
    /// Read the socket secret from standard input (instead of `secret_file`).
    #[arg(long)]
    pub secret_stdin: bool,
    /// Log format (default: the config's `log_format`).
    #[arg(long, value_enum)]
    pub log_format: Option<logging::Format>,
}

pub fn run(args: Args) -> ExitCode {
    // First, before the secret is read: no core dumps, no SIGHUP death.
    if let Err(e) = harden_process() {
        eprintln!("regent: refusing to start: {e}");
        return ExitCode::from(crate::exit::OTHER);
    }
    // Sockets passed by the service manager, taken before this process opens
    // anything else (their numbers are 3, 4, ...); refused further down, once
    // the log is set up, if they do not match the config.
    let passed = regent::activation::from_env();
    // Whoever could change the config would choose what this service runs.
    let file = match regent::trust::open(&args.config) {
        Ok(file) => file,
        Err(e) => {
            eprintln!(
                "regent: refusing to start: {}: {e}: whoever can change the config chooses what the service runs",
                args.config.display()
            );
            return ExitCode::from(crate::exit::INVALID);
        }
    };
    let config = match regent::config::load_file(file, &args.config) {
        Ok(c) => c,
        Err(diags) => {
            eprintln!("{diags}");
            eprintln!(
                "regent: refusing to start: {} has errors (see `regent check`)",
                args.config.display()
            );
            return ExitCode::from(crate::exit::INVALID);
        }
    };
    let format = args.log_format.unwrap_or(match config.service.log_format {
        regent::config::LogFormat::Text => logging::Format::Text,
        regent::config::LogFormat::Json => logging::Format::Json,
    });
    logging::init(format);
    // Still single-threaded: reads and unsets NOTIFY_SOCKET and the watchdog's
    // variables.
    regent::notify::init();
    // Before anything else holds descriptors: path parameters get low numbers.
    if let Err(e) = regent::exec::reserve_path_descriptors() {
        tracing::error!("cannot reserve descriptors for path parameters: {e}");
        return ExitCode::from(crate::exit::OTHER);
    }
    check_descriptor_limit(&config);
    let secret = match load_secret(&config, args.secret_stdin) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(crate::exit::OTHER);
        }
    };
    if secret.is_none() {
        tracing::warn!("no secret configured: any local user who can open the socket may call operations their policy allows");
    }
    // Bind the socket and open the store while this process is still
    // single-threaded, drop the capabilities no operation needs, and only then start
    // the runtime's threads (capabilities belong to threads).
    let prepared =
        regent::daemon::service_with(&config, secret, Some(status_extra())).and_then(|service| {
            let (service, listener) = listen(service, passed)?;
            let kept = regent::daemon::drop_service_privileges(&config)?;
            Ok((service, listener, kept))
        });
    let (service, listener, kept) = match prepared {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(crate::exit::OTHER);
        }
    };
    // Records are batched by a background thread from here on; the guard writes
    // what is queued when dropped, at the end of this function.
    let log_guard = logging::start_background_writer();
    tracing::info!("privilege: {kept}");
    // A single-threaded event loop; `threads = N` in the config adds N-1 more,
    // each with its own loop accepting on the same socket (see `Limits::acceptors`).
    // Threads start only now, after the privilege drop, and inherit it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(crate::exit::OTHER);
        }
    };
    // SIGHUP (`systemctl reload`) reloads the config (see README, "Reloading").
    let secret_source = if args.secret_stdin {
        regent::reload::SecretSource::KeptFromStart
    } else {
        regent::reload::SecretSource::ConfigFile
    };
    let reload =
        regent::reload::DaemonReload::new(&args.config, config, secret_source, service.reloader());
    let result = runtime.block_on(service.run_on_reloading(listener, move || reload.run()));
    drop(runtime);
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(crate::exit::OTHER)
        }
    };
    // A graceful stop (SIGTERM, SIGINT) writes every queued record before exiting.
    drop(log_guard);
    code
}

/// What the daemon adds to `regent.status`: its log queue, and whether records
/// go to the journal.
fn status_extra() -> regent::server::StatusExtra {
    std::sync::Arc::new(|| {
        let mut m = serde_json::Map::new();
        m.insert(
            "log".into(),
            serde_json::json!({
                "queued_bytes": logging::queued_bytes(),
                "journal": logging::to_journal(),
            }),
        );
        m
    })
}

/// The listeners: the ones the service manager passed for the configured
/// sockets and TCP addresses (socket activation), else freshly bound ones.
fn listen(
    service: regent::Service,
    passed: Result<Option<Vec<regent::activation::Passed>>, regent::activation::ActivationError>,
) -> Result<(regent::Service, Vec<regent::server::BoundSocket>), regent::Error> {
    let passed = passed.map_err(|e| regent::Error::Config(e.to_string()))?;
    let Some(passed) = passed else {
        let bound = service.bind_all()?;
        return Ok((service, bound));
    };
    let count = passed.len();
    let paths = service
        .sockets()
        .iter()
        .map(|e| {
            std::path::absolute(e.path()).map_err(|err| {
                regent::Error::io(format!("socket path {}", e.path().display()), err)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tcp = service.tcp_listen().to_vec();
    let listeners = regent::activation::listeners_for(passed, &paths, &tcp)?;
    let mut bound = Vec::new();
    for (entry, listener) in service.sockets().iter().zip(listeners.unix) {
        match listener {
            Some(l) => {
                tracing::info!(
                    socket = %entry.path().display(),
                    passed = count,
                    "serving the socket passed by the service manager (its mode, owner and group are the socket unit's)"
                );
                bound.push(regent::server::BoundSocket::passed(entry.clone(), l));
            }
            None => bound.push(regent::server::BoundSocket::new(
                entry.clone(),
                entry.bind()?,
            )),
        }
    }
    for (address, listener) in tcp.iter().zip(&listeners.tcp) {
        if listener.is_some() {
            tracing::info!(
                %address,
                "serving the TCP socket passed by the service manager"
            );
        }
    }
    // The `[service.tcp]` addresses that were not passed are bound here.
    service.bind_tcp_passed(listeners.tcp)?;
    Ok((service.socket_passed(), bound))
}

/// The secret from stdin or the config's `secret_file`.
pub fn load_secret(
    config: &regent::config::Config,
    stdin: bool,
) -> Result<Option<SharedSecret>, String> {
    if stdin {
        return SharedSecret::from_reader(RawStdin, "standard input")
            .map(Some)
            .map_err(|e| e.to_string());
    }
    match &config.service.secret_file {
        Some(path) => SharedSecret::from_file(path)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// Standard input read straight from descriptor 0: `std::io::stdin()` would keep
/// a copy of the secret in its buffer for the life of the process.
struct RawStdin;

impl std::io::Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        nix::unistd::read(std::io::stdin(), buf).map_err(std::io::Error::from)
    }
}

/// Keep the daemon's memory out of reach and its signals harmless, before it
/// reads any secret:
/// - `RLIMIT_CORE` 0 (soft and hard): no core dump, even if something resets
///   the dumpable flag;
/// - `PR_SET_DUMPABLE` 0: no core dump, and its `/proc/PID` files (memory,
///   environment) and `ptrace` are for root only, not for its owner's uid;
/// - SIGHUP blocked until the service installs its handler (which reloads the
///   config and goes on serving), so a hangup at any moment cannot kill the daemon. Commands
///   start with every signal unblocked.
fn harden_process() -> Result<(), String> {
    use nix::sys::resource::{setrlimit, Resource};
    setrlimit(Resource::RLIMIT_CORE, 0, 0)
        .map_err(|e| format!("cannot set RLIMIT_CORE to 0: {e}"))?;
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| format!("cannot clear the dumpable flag: {e}"))?;
    let mut hup = nix::sys::signal::SigSet::empty();
    hup.add(nix::sys::signal::Signal::SIGHUP);
    hup.thread_block()
        .map_err(|e| format!("cannot block SIGHUP: {e}"))?;
    Ok(())
}

/// Descriptors one command run may hold in the daemon at once (its standard
/// streams' pipes, the set-up report pipe, the process descriptor), with margin.
const FDS_PER_RUN: u64 = 6;

/// Descriptors the daemon holds besides connections and runs (listener, event
/// loops, stores, logs), with margin.
const FDS_BASE: u64 = 64;

/// Raise the soft descriptor limit to the hard one (systemd's default soft limit
/// is 1024), and warn when even that is below what the configured maxima may use.
fn check_descriptor_limit(config: &regent::config::Config) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (mut soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the descriptor limit (RLIMIT_NOFILE)");
            return;
        }
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::info!(
                    from = soft,
                    to = hard,
                    "descriptor limit raised to the hard limit"
                );
                soft = hard;
            }
            Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise the descriptor limit"),
        }
    }
    let s = &config.service.limits;
    let needed = s.max_connections as u64
        + s.max_runs as u64 * FDS_PER_RUN
        + s.acceptors as u64 * 4
        + FDS_BASE;
    if soft < needed {
        tracing::warn!(
            limit = soft,
            needed,
            max_connections = s.max_connections,
            max_runs = s.max_runs,
            "the descriptor limit is below what max_connections and max_runs may use \
             (each run holds about {FDS_PER_RUN}): under load, connections and runs would \
             fail (EMFILE). Raise the limit (LimitNOFILE= in the unit, or ulimit -n) or \
             lower max_connections / max_runs"
        );
    }
}
