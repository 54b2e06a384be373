//! The service under test: a Regent service with one no-op operation, run as its
//! own process (`regent-bench-server`, or any binary that calls [`server_main`]) so
//! that it competes for the CPU like the bare C server does.
//!
//! Command line: `--socket PATH [--audit off|devnull] [--threads N]`; the secret is
//! the first line of standard input, never an argument. `--audit devnull` installs
//! the kind of `tracing` subscriber a daemon uses (text, info level) writing to
//! `/dev/null`, so the cost of formatting the audit record is measured.
//! `--threads 0` runs on tokio's current-thread runtime.

use regent::operation::{Context, OpError, Operation};
use regent::Service;
use std::io::BufRead;
use std::path::PathBuf;

/// The name of the no-op operation.
pub const NOOP: &str = "noop";

/// An operation that takes no data and answers `"ok"`.
pub struct Noop;

impl Operation for Noop {
    type Data = ();
    type Output = &'static str;

    async fn perform(&self, _ctx: Context, _data: ()) -> Result<&'static str, OpError> {
        Ok("ok")
    }
}

/// What happens to the audit log while serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditLog {
    /// No subscriber: the `tracing` macros do nothing.
    Off,
    /// A text subscriber at info level writing to `/dev/null`.
    DevNull,
}

impl AuditLog {
    /// The command-line word.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditLog::Off => "off",
            AuditLog::DevNull => "devnull",
        }
    }
}

/// How the bench server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    /// The socket to create (mode 0666; its directory must be safe, e.g. 0755).
    pub socket: PathBuf,
    /// The audit log.
    pub audit: AuditLog,
    /// Tokio worker threads; 0 means the current-thread runtime.
    pub threads: usize,
}

impl ServerArgs {
    /// Parse `--socket PATH [--audit off|devnull] [--threads N]`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<ServerArgs, String> {
        let mut socket = None;
        let mut audit = AuditLog::Off;
        let mut threads = 2;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--socket" => socket = Some(PathBuf::from(value("--socket")?)),
                "--audit" => {
                    audit = match value("--audit")?.as_str() {
                        "off" => AuditLog::Off,
                        "devnull" => AuditLog::DevNull,
                        other => return Err(format!("--audit off|devnull, not {other:?}")),
                    }
                }
                "--threads" => {
                    let v = value("--threads")?;
                    threads = v
                        .parse()
                        .map_err(|_| format!("--threads takes a number, not {v:?}"))?;
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; usage: --socket PATH [--audit off|devnull] [--threads N] (secret on stdin)"
                    ))
                }
            }
        }
        Ok(ServerArgs {
            socket: socket.ok_or("--socket PATH is required")?,
            audit,
            threads,
        })
    }

    /// The arguments that [`ServerArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--socket".into(),
            self.socket.display().to_string(),
            "--audit".into(),
            self.audit.as_str().into(),
            "--threads".into(),
            self.threads.to_string(),
        ]
    }
}

/// Serve the no-op operation until SIGTERM or SIGINT, with `secret`.
pub fn serve_noop(args: &ServerArgs, secret: &str) -> Result<(), String> {
    if args.audit == AuditLog::DevNull {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("opening /dev/null: {e}"))?;
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(null))
            .try_init()
            .map_err(|e| format!("installing the log subscriber: {e}"))?;
    }
    let runtime = if args.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("starting the runtime: {e}"))?;
    // `--threads 0`: what the daemon does, a single-threaded runtime per CPU
    // accepting on the same socket.
    let acceptors = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    };
    let service = Service::builder(&args.socket)
        .limits(regent::Limits {
            acceptors,
            ..regent::Limits::default()
        })
        .mode(0o666)
        .secret_str(secret)
        .register(NOOP, Noop)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(service.run())
        .map_err(|e| format!("serving on {}: {e}", args.socket.display()))
}

/// The whole bench server: parse `args`, read the secret from stdin, serve.
pub fn server_main(args: impl IntoIterator<Item = String>) -> Result<(), String> {
    let args = ServerArgs::parse(args)?;
    let mut secret = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut secret)
        .map_err(|e| format!("reading the secret from stdin: {e}"))?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err("no secret on stdin".into());
    }
    serve_noop(&args, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ServerArgs {
            socket: "/tmp/x.sock".into(),
            audit: AuditLog::DevNull,
            threads: 0,
        };
        assert_eq!(ServerArgs::parse(a.to_args()).unwrap(), a);
        assert!(ServerArgs::parse(["--audit".to_string(), "off".into()]).is_err());
        assert!(ServerArgs::parse(["--secret".to_string(), "x".into()]).is_err());
    }
}
