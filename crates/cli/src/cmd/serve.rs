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
    let config = match regent::config::load(&args.config) {
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
    // Before anything else holds descriptors: path parameters get low numbers.
    if let Err(e) = regent::exec::reserve_path_descriptors() {
        tracing::error!("cannot reserve descriptors for path parameters: {e}");
        return ExitCode::from(crate::exit::OTHER);
    }
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
    let prepared = regent::daemon::service(&config, secret).and_then(|service| {
        let listener = service.bind()?;
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
    let _log_guard = logging::start_background_writer();
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
    match runtime.block_on(service.run_on(listener)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(crate::exit::OTHER)
        }
    }
}

/// The secret from stdin or the config's `secret_file`.
pub fn load_secret(
    config: &regent::config::Config,
    stdin: bool,
) -> Result<Option<SharedSecret>, String> {
    if stdin {
        return SharedSecret::from_reader(std::io::stdin().lock(), "standard input")
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
