//! The service under test: a Regent service with one no-op operation, run as its
//! own process (`regent-bench-server`, or any binary that calls [`server_main`]) so
//! that it competes for the CPU like the bare C server does.
//!
//! Command line: `--socket PATH [--audit off|devnull] [--threads N | --multi N]`;
//! the secret is the first line of standard input, never an argument.
//! `--audit devnull` installs the kind of `tracing` subscriber a daemon uses (text,
//! info level) writing to `/dev/null`, so the cost of formatting the audit record
//! is measured. `--threads N` (default 1) runs like the daemon with `threads = N`:
//! N single-threaded event loops accepting on the socket; `--multi N` runs on
//! tokio's multi-threaded runtime with N workers instead.

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
    /// Not the library service: `regent serve` on a TOML config with its default
    /// logging, stderr (the audit records) to a file, as a service manager runs
    /// it. The request is the built-in `regent.ops`.
    Daemon,
}

impl AuditLog {
    /// The command-line word.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditLog::Off => "off",
            AuditLog::DevNull => "devnull",
            AuditLog::Daemon => "daemon",
        }
    }
}

/// How the service is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// As the daemon with `threads = N`: N single-threaded event loops, each
    /// accepting on the socket and serving its connections start to finish.
    Loops(usize),
    /// Tokio's multi-threaded runtime with N workers and one accept loop.
    Multi(usize),
}

impl Runtime {
    /// `N` for [`Runtime::Loops`], `mN` for [`Runtime::Multi`]; N at least 1.
    pub fn parse(s: &str) -> Result<Runtime, String> {
        let (multi, n) = match s.strip_prefix('m') {
            Some(n) => (true, n),
            None => (false, s),
        };
        let n: usize = n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("threads: N or mN with N at least 1, not {s:?}"))?;
        Ok(if multi {
            Runtime::Multi(n)
        } else {
            Runtime::Loops(n)
        })
    }
}

/// How the bench server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    /// The socket to create (mode 0666; its directory must be safe, e.g. 0755).
    pub socket: PathBuf,
    /// The audit log.
    pub audit: AuditLog,
    /// How the service is run.
    pub runtime: Runtime,
}

impl ServerArgs {
    /// Parse `--socket PATH [--audit off|devnull] [--threads N | --multi N]`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<ServerArgs, String> {
        let mut socket = None;
        let mut audit = AuditLog::Off;
        let mut runtime = Runtime::Loops(1);
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
                "--threads" => runtime = Runtime::parse(&value("--threads")?)?,
                "--multi" => {
                    runtime = match Runtime::parse(&value("--multi")?)? {
                        Runtime::Loops(n) => Runtime::Multi(n),
                        Runtime::Multi(_) => return Err("--multi takes a number".into()),
                    }
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; usage: --socket PATH [--audit off|devnull] [--threads N | --multi N] (secret on stdin)"
                    ))
                }
            }
        }
        Ok(ServerArgs {
            socket: socket.ok_or("--socket PATH is required")?,
            audit,
            runtime,
        })
    }

    /// The arguments that [`ServerArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--socket".into(),
            self.socket.display().to_string(),
            "--audit".into(),
            self.audit.as_str().into(),
        ]
        .into_iter()
        .chain(match self.runtime {
            Runtime::Loops(n) => ["--threads".into(), n.to_string()],
            Runtime::Multi(n) => ["--multi".into(), n.to_string()],
        })
        .collect()
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
    let (mut runtime, acceptors) = match args.runtime {
        Runtime::Loops(n) => (tokio::runtime::Builder::new_current_thread(), n),
        Runtime::Multi(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            (b, 1)
        }
    };
    let runtime = runtime
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
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

/// The whole bench server: parse `args`, read the secret from stdin, serve; or,
/// with `hold SOCKET N` first, [`hold`].
pub fn server_main(args: impl IntoIterator<Item = String>) -> Result<(), String> {
    let args: Vec<String> = args.into_iter().collect();
    if args.first().map(String::as_str) == Some("hold") {
        return hold(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("tls-echo") {
        return crate::tls::echo_main(&args[1..]);
    }
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

/// `hold SOCKET N`: open `N` connections to `SOCKET` and keep them; print
/// `connected N`; then read the request line (it holds the secret, so it comes on
/// stdin, never argv), send it on every connection once a `go` line follows, and
/// print `answered K`, the replies that report success.
pub fn hold(args: &[String]) -> Result<(), String> {
    use std::io::{Read, Write};
    let [socket, n] = args else {
        return Err("usage: hold SOCKET N (request line, then `go`, on stdin)".into());
    };
    let n: usize = n.parse().map_err(|_| format!("hold: N, not {n:?}"))?;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let c = std::os::unix::net::UnixStream::connect(socket)
            .map_err(|e| format!("hold: connection {i} of {n} to {socket}: {e}"))?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        conns.push(c);
    }
    println!("connected {n}");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let line = lines
        .next()
        .ok_or("hold: no request line on stdin")?
        .map_err(|e| e.to_string())?;
    while let Some(Ok(l)) = lines.next() {
        if l == "go" {
            break;
        }
    }
    let request = format!("{line}\n");
    for c in &mut conns {
        let _ = c.write_all(request.as_bytes());
    }
    let mut answered = 0;
    for c in &mut conns {
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        while !reply.ends_with(b"\n") {
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(k) => reply.extend_from_slice(&chunk[..k]),
            }
        }
        if reply.windows(14).any(|w| w == b"\"success\":true") {
            answered += 1;
        }
    }
    println!("answered {answered}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ServerArgs {
            socket: "/tmp/x.sock".into(),
            audit: AuditLog::DevNull,
            runtime: Runtime::Multi(3),
        };
        assert_eq!(ServerArgs::parse(a.to_args()).unwrap(), a);
        assert!(ServerArgs::parse(["--audit".to_string(), "off".into()]).is_err());
        assert!(ServerArgs::parse(["--secret".to_string(), "x".into()]).is_err());
    }
}
