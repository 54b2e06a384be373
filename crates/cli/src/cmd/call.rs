//! `regent call` and `regent ops`: the caller's side.

use crate::exit;
use crate::out::{escape_line, escape_lines};
use regent::client::{Client, ClientError, Outcome};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where the service is and how to authenticate.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// The service's socket (default: the config's, else /run/regent/regent.sock).
    #[arg(long, short = 's', env = "REGENT_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Read the secret from this file (or set REGENT_SECRET; never on the command line).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Take the socket, secret file and `socket_owner` from this daemon config.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Talk to a service running as this user (name or uid) as well as to root and
    /// yourself. Nothing is sent to anyone else listening on the socket. Default
    /// with --config: its `socket_owner`. In a user namespace, where the host's
    /// root shows as the overflow uid, name that uid (e.g. 65534) to trust it.
    #[arg(long, env = "REGENT_SERVER_UID", value_name = "USER")]
    pub server_uid: Option<String>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Call a service over TCP with mutual TLS at HOST:PORT instead of a socket
    /// (with --cert, --key and --ca); the service's certificate must be valid
    /// for HOST.
    #[arg(long, env = "REGENT_CONNECT", value_name = "HOST:PORT", conflicts_with = "socket", requires_all = ["cert", "key", "ca"])]
    pub connect: Option<String>,
    /// This client's certificate (PEM) for --connect.
    #[arg(long, env = "REGENT_CERT", value_name = "FILE", requires = "connect")]
    pub cert: Option<PathBuf>,
    /// This client's private key (PEM) for --connect.
    #[arg(long, env = "REGENT_KEY", value_name = "FILE", requires = "connect")]
    pub key: Option<PathBuf>,
    /// The CA certificates (PEM) the service's certificate must chain to.
    #[arg(long, env = "REGENT_CA", value_name = "FILE", requires = "connect")]
    pub ca: Option<PathBuf>,
}

impl Target {
    pub fn client(&self) -> Result<Client, String> {
        let mut socket = self.socket.clone();
        let mut secret_file = self.secret_file.clone();
        let mut server = match &self.server_uid {
            Some(text) => Some(
                regent::config::Account::parse(text)
                    .map_err(|e| format!("--server-uid {:?}: {e}", escape_line(text)))?,
            ),
            None => None,
        };
        if let Some(path) = &self.config {
            let config = regent::config::load(path).map_err(|d| format!("{d}"))?;
            socket = socket.or(Some(config.service.socket));
            secret_file = secret_file.or(config.service.secret_file);
            server = server.or(config.service.socket_owner);
        }
        let socket = socket.unwrap_or_else(|| PathBuf::from(regent::config::DEFAULT_SOCKET));
        let mut c = match (&self.connect, &self.cert, &self.key, &self.ca) {
            (Some(at), Some(cert), Some(key), Some(ca)) => {
                Client::tls(at, cert, key, ca).map_err(|e| e.to_string())?
            }
            (Some(_), ..) => return Err("--connect needs --cert, --key and --ca".into()),
            _ => Client::new(socket),
        }
        .timeout(Duration::from_secs(self.timeout.max(1)));
        if let Some(owner) = server {
            let (uid, _) = regent::daemon::resolve_user(&owner)
                .map_err(|e| format!("the service's user: {e}"))?;
            c = c.server_uid(uid);
        }
        if let Some(s) = crate::secret::load(secret_file.as_deref())? {
            c = c.secret(s.as_str());
        }
        Ok(c)
    }
}

/// `regent call OP`.
#[derive(clap::Args)]
pub struct Args {
    /// The operation's name (omit with --uid).
    #[arg(required_unless_present = "uid")]
    pub op: Option<String>,
    /// The operation's data, as JSON.
    #[arg(long, short = 'd')]
    pub data: Option<String>,
    /// Continue a pending operation with this uid instead of starting one.
    #[arg(long, conflicts_with = "op", allow_hyphen_values = true)]
    pub uid: Option<String>,
    /// Submit this code for a pending totp/email stage (with --uid).
    #[arg(long, requires = "uid")]
    pub code: Option<String>,
    /// Wait while a request is pending approval, polling with its uid.
    #[arg(long)]
    pub wait: bool,
    /// Print the raw JSON response.
    #[arg(long)]
    pub json: bool,
    /// Show what the operation would change (a unified diff), changing nothing:
    /// only for an operation `regent ops` marks "dry run".
    #[arg(long, conflicts_with_all = ["uid", "wait"])]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `regent ops`.
#[derive(clap::Args)]
pub struct OpsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// Print a local error (escaped; its own lines kept, e.g. a config's diagnostics).
pub fn fail(msg: impl std::fmt::Display, status: u8) -> ExitCode {
    eprintln!("regent: {}", escape_lines(&msg.to_string()));
    exit::code(status)
}

pub fn connection_failure(e: ClientError) -> ExitCode {
    let status = match e {
        ClientError::Protocol(_) | ClientError::Service { .. } => exit::FAILED,
        _ => exit::CONNECTION,
    };
    fail(e, status)
}

fn raw_json(outcome: &Outcome) -> Value {
    let r = match outcome.clone() {
        Outcome::Done(v) => regent_proto::Response::Done(v),
        Outcome::Pending { uid, info } => regent_proto::Response::Pending { uid, data: info },
        Outcome::Error { code, message } => regent_proto::Response::Error {
            error: message,
            code,
        },
    };
    r.to_value()
}

/// Print an outcome; return the exit status. Human output shows what the service
/// sent escaped (see [`crate::out`]); `--json` prints the response as it came.
pub fn report(outcome: &Outcome, json: bool) -> u8 {
    if json {
        println!("{}", raw_json(outcome));
    }
    match outcome {
        Outcome::Done(v) => {
            if !json {
                match v {
                    Value::String(s) => println!("{}", escape_lines(s)),
                    Value::Null => {}
                    other => println!(
                        "{}",
                        escape_lines(&serde_json::to_string_pretty(other).unwrap_or_default())
                    ),
                }
            }
            exit::OK
        }
        Outcome::Pending { uid, info } => {
            if !json {
                let method = info
                    .get("pending")
                    .and_then(Value::as_str)
                    .unwrap_or("authorization");
                let message = info.get("message").and_then(Value::as_str).unwrap_or("");
                let until = info
                    .get("expires_at")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                eprintln!(
                    "pending {}: {} (until {})",
                    escape_line(method),
                    escape_line(message),
                    escape_line(until)
                );
                println!("{}", escape_line(uid));
            }
            exit::PENDING
        }
        Outcome::Error { code, message } => {
            if !json {
                let word = code.map(|c| c.as_str()).unwrap_or("error");
                eprintln!("regent: {word}: {}", escape_line(message));
            }
            exit::for_code(*code)
        }
    }
}

pub fn call(args: Args) -> ExitCode {
    let client = match args.target.client() {
        Ok(c) => c,
        Err(e) => return fail(e, exit::OTHER),
    };
    let data: Value = match &args.data {
        None => Value::Null,
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return fail(format!("--data is not JSON: {e}"), exit::INVALID),
        },
    };
    let op = args.op.as_deref().unwrap_or_default();
    if args.dry_run {
        // Sent only where advertised: a service that does not know the key
        // would ignore it and run the operation for real.
        return match client.offers_dry_run(op) {
            Ok(true) => match client.dry_run(op, data) {
                Ok(outcome) => exit::code(report_dry_run(&outcome, args.json)),
                Err(e) => connection_failure(e),
            },
            Ok(false) => fail(
                format!(
                    "the service offers no dry run of '{}' (see regent ops)",
                    escape_line(op)
                ),
                exit::INVALID,
            ),
            Err(e) => connection_failure(e),
        };
    }
    let first = match (&args.uid, &args.code) {
        (Some(uid), Some(code)) => client.resume(uid, serde_json::json!({ "code": code })),
        (Some(uid), None) => client.resume(uid, data),
        (None, _) => client.call(op, data),
    };
    let mut outcome = match first {
        Ok(o) => o,
        Err(e) => return connection_failure(e),
    };
    if args.wait {
        let spinner = Spinner::new();
        while let Outcome::Pending { uid, info } = &outcome {
            if info.get("pending").and_then(Value::as_str) != Some("approval") {
                break;
            }
            spinner.tick(
                info.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("waiting for approval"),
            );
            std::thread::sleep(Duration::from_millis(1000));
            outcome = match client.resume(uid, Value::Null) {
                Ok(o) => o,
                Err(e) => return connection_failure(e),
            };
        }
        spinner.clear();
    }
    exit::code(report(&outcome, args.json))
}

/// A dry run's answer: its `diff` as lines (escaped), or a note that nothing
/// would change; anything else as [`report`] shows it.
fn report_dry_run(outcome: &Outcome, json: bool) -> u8 {
    match outcome {
        Outcome::Done(v) if !json => match v.get("diff").and_then(Value::as_str) {
            Some("") => {
                eprintln!("dry run: nothing would change");
                exit::OK
            }
            Some(diff) => {
                print!("{}", escape_lines(diff));
                if !diff.ends_with('\n') {
                    println!();
                }
                exit::OK
            }
            None => report(outcome, json),
        },
        _ => report(outcome, json),
    }
}

pub fn ops(args: OpsArgs) -> ExitCode {
    let client = match args.target.client() {
        Ok(c) => c,
        Err(e) => return fail(e, exit::OTHER),
    };
    let outcome = match client.call("regent.ops", Value::Null) {
        Ok(o) => o,
        Err(e) => return connection_failure(e),
    };
    match (&outcome, args.json) {
        (Outcome::Done(v), false) => {
            for op in v.as_array().into_iter().flatten() {
                let name = escape_line(op["name"].as_str().unwrap_or("?"));
                let desc = escape_line(op["description"].as_str().unwrap_or(""));
                println!("{name:<24} {desc}");
                if let Some(params) = op["params"].as_object() {
                    for (p, spec) in params {
                        println!("    {}: {}", escape_line(p), escape_line(&spec.to_string()));
                    }
                }
                if op["dry_run"].as_bool() == Some(true) {
                    println!("    dry run: regent call {name} --dry-run");
                }
                if let Some(auth) = op["auth"].as_array().filter(|a| !a.is_empty()) {
                    let stages: Vec<&str> = auth.iter().filter_map(Value::as_str).collect();
                    println!("    requires: {}", escape_line(&stages.join(" then ")));
                }
            }
            exit::code(exit::OK)
        }
        _ => exit::code(report(&outcome, args.json)),
    }
}

/// A one-line spinner on a terminal; silent otherwise.
struct Spinner {
    tty: bool,
    start: Instant,
}

impl Spinner {
    fn new() -> Self {
        use std::io::IsTerminal;
        Spinner {
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
        }
    }
    fn tick(&self, message: &str) {
        if self.tty {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let i = (self.start.elapsed().as_secs() % 4) as usize;
            eprint!(
                "\r{} {} ({}s)",
                FRAMES[i],
                escape_line(message),
                self.start.elapsed().as_secs()
            );
        }
    }
    fn clear(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}
