//! The typed, validated configuration: the `[service]` table and the declared
//! operations. Built only by [`crate::parse`] / [`crate::load`] (or by hand in Rust).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regent_model::{Account, ExecDecl, Limits, ModuleDecl, SmtpSecurity, Stages};
use serde_json::{json, Value};

use crate::param::ParamSpec;
use crate::template::Template;

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/regent/regent.sock";
/// Default pending-request store.
pub const DEFAULT_STORE: &str = "/var/lib/regent/pending.db";
pub use regent_model::limits::{
    DEFAULT_COMMAND_PATH, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_PER_UID,
    DEFAULT_RUN_TIMEOUT as DEFAULT_TIMEOUT,
};
/// Default lifetime of a pending request.
pub const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(600);
/// Default number of wrong codes before a pending request is dropped.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default `max_pending_per_uid` of an operation: requests of that operation
/// one caller uid may have held at once.
pub const DEFAULT_OP_MAX_PENDING_PER_UID: u32 = 8;
/// The built-in stages, kept in a static so that their names live as long as the program.
static BUILT_IN_STAGES: [regent_model::Stage; 3] = regent_model::Stage::BUILT_IN;

/// Authorization methods the daemon knows: the names of
/// [`Stage::BUILT_IN`](regent_model::Stage::BUILT_IN), in that order.
pub static AUTH_METHODS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| BUILT_IN_STAGES.iter().map(|s| s.name()).collect());

/// A whole config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `[service]` table.
    pub service: ServiceConfig,
    /// The `[operations.NAME]` tables, by name.
    pub operations: BTreeMap<String, OperationDecl>,
}

impl Config {
    /// An operation by name.
    #[must_use]
    pub fn operation(&self, name: &str) -> Option<&OperationDecl> {
        self.operations.get(name)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The `[service]` table.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Unix socket path (`socket`).
    pub socket: PathBuf,
    /// Socket file mode (`socket_mode = "0660"`).
    pub socket_mode: u32,
    /// Socket owner (`socket_owner`), default: the service's user.
    pub socket_owner: Option<Account>,
    /// Socket group (`socket_group`), default: the service's group.
    pub socket_group: Option<Account>,
    /// File holding the socket secret (`secret_file`); none means no secret.
    pub secret_file: Option<PathBuf>,
    /// The connection limits (`max_line`, `line_timeout`, `idle_timeout`,
    /// `max_connections`, `max_connections_per_uid`, `reserved_connections`,
    /// `max_runs`, `write_timeout`, `threads` as [`Limits::acceptors`],
    /// `rate_limit_hold`), the model's own type with its defaults.
    pub limits: Limits,
    /// `log_format = "text" | "json"`.
    pub log_format: LogFormat,
    /// SQLite store for pending requests (`store`).
    pub store: PathBuf,
    /// Group whose members may approve/deny/list pending requests, besides root.
    pub admin_group: Option<Account>,
    /// Whether an administrator may approve their own request (default false).
    pub allow_self_approval: bool,
    /// Requests held at once in all (`max_pending`); beyond it: `busy`.
    pub max_pending: u32,
    /// Requests one caller uid may have held at once (`max_pending_per_uid`);
    /// beyond it: `busy`.
    pub max_pending_per_uid: u32,
    /// The fixed PATH commands run with (`command_path`).
    pub command_path: String,
    /// Outgoing mail for the `email` method (`[service.smtp]`).
    pub smtp: Option<SmtpDecl>,
    /// TLS clients (by certificate name) who administer held requests like
    /// `admin_group`'s members (`admin_clients`).
    pub admin_clients: Vec<String>,
    /// Mutual-TLS listener (`[service.tcp]`).
    pub tcp: Option<TcpDecl>,
    /// Further Unix sockets (`[[service.sockets]]`), each offering only the
    /// operations it names; the `socket*` keys are the implicit first entry,
    /// see [`ServiceConfig::all_sockets`].
    pub sockets: Vec<SocketDecl>,
}

impl Default for ServiceConfig {
    /// The connection limits are [`Limits`]' defaults, written once for the
    /// config and for a library service.
    fn default() -> Self {
        ServiceConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_mode: 0o660,
            socket_owner: None,
            socket_group: None,
            secret_file: None,
            limits: Limits::default(),
            log_format: LogFormat::Text,
            store: PathBuf::from(DEFAULT_STORE),
            admin_group: None,
            allow_self_approval: false,
            max_pending: DEFAULT_MAX_PENDING,
            max_pending_per_uid: DEFAULT_MAX_PENDING_PER_UID,
            command_path: DEFAULT_COMMAND_PATH.to_string(),
            smtp: None,
            admin_clients: Vec::new(),
            tcp: None,
            sockets: Vec::new(),
        }
    }
}

impl ServiceConfig {
    /// Every Unix socket the service listens on: first the one of the `socket`,
    /// `socket_mode`, `socket_owner` and `socket_group` keys (every operation, and
    /// the administrator operations), then the `[[service.sockets]]` entries.
    #[must_use]
    pub fn all_sockets(&self) -> Vec<SocketDecl> {
        let first = SocketDecl {
            path: self.socket.clone(),
            mode: self.socket_mode,
            owner: self.socket_owner.clone(),
            group: self.socket_group.clone(),
            operations: None,
            admin: true,
        };
        std::iter::once(first)
            .chain(self.sockets.iter().cloned())
            .collect()
    }

    /// The connection limits this table declares (the rest at their defaults).
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits.clone()
    }
}

/// The `[service.smtp]` table.
#[derive(Debug, Clone)]
pub struct SmtpDecl {
    /// Server host name or address.
    pub host: String,
    /// Server port (default from `security`: 587, 465 or 25).
    pub port: u16,
    /// `security = "starttls" | "tls" | "none"`.
    pub security: SmtpSecurity,
    /// Envelope and header sender address.
    pub from: String,
    /// Root-only file with `username` and `password` lines; none: no authentication.
    pub credentials_file: Option<PathBuf>,
    /// Connect/send timeout (default 30s).
    pub timeout: Duration,
}

/// Default `handshake_timeout` of `[service.tcp]`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `max_connections` of `[service.tcp]`.
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 256;

/// The `[service.tcp]` table: TCP with mutual TLS. A reload reads `cert`,
/// `key`, `client_ca` and `crl` again and takes `handshake_timeout`; `listen`
/// and `max_connections` need a restart.
#[derive(Debug, Clone)]
pub struct TcpDecl {
    /// Addresses and ports to listen on (one or more; IPv4 and IPv6).
    pub listen: Vec<SocketAddr>,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM); refused at start and on a reload if group or
    /// others may read it.
    pub key: PathBuf,
    /// CAs (PEM bundle) a client certificate must chain to (required).
    pub client_ca: PathBuf,
    /// Certificate revocation lists (PEM), if any.
    pub crl: Option<PathBuf>,
    /// How long a client has to finish its handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// TLS connections at once, all clients together (default 256).
    pub max_connections: usize,
}

/// One Unix socket and what it offers (`[[service.sockets]]`, or the implicit
/// first entry of the `socket*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketDecl {
    /// Where (`path`); no two entries share one.
    pub path: PathBuf,
    /// File mode (`mode`, default `"0660"`).
    pub mode: u32,
    /// Owner (`owner`), default: the service's user.
    pub owner: Option<Account>,
    /// Group (`group`), default: the service's group.
    pub group: Option<Account>,
    /// The declared operations callers of this socket may ask for
    /// (`operations = [...]`, each declared); `None`: every one (the implicit
    /// first entry). Any other name is answered as an unknown operation.
    pub operations: Option<Vec<String>>,
    /// Whether the administrator operations (`regent.pending`, `regent.approve`,
    /// `regent.deny`, and every other reserved one but `regent.ops`) are offered
    /// here (`admin`): default true for the implicit first entry, false for the
    /// `[[service.sockets]]` entries.
    pub admin: bool,
}

/// What to return on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Trimmed stdout as a JSON string (default).
    #[default]
    Text,
    /// Stdout parsed as JSON (not JSON: `operation_failed`).
    Json,
    /// `{"stdout", "stderr", "status"}`.
    Full,
}

/// Who may call (or approve) an operation: a caller matching any user or any group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowDecl {
    /// Allowed users.
    pub users: Vec<Account>,
    /// Allowed groups (primary or supplementary).
    pub groups: Vec<Account>,
    /// Allowed TLS clients, by certificate name (`clients`).
    pub clients: Vec<String>,
}

/// One `[operations.NAME]` table.
#[derive(Debug, Clone)]
pub struct OperationDecl {
    /// Human description.
    pub description: String,
    /// The argv template. For a module operation (`module` set) the fixed
    /// `["regent", "module"]`: the daemon runs its own binary (see
    /// [`ModuleDecl`]) with the plan on stdin.
    pub command: Template,
    /// The system module (`service`, `packages`) an operation declares instead of
    /// a `command`; its answer is JSON (`output = "json"`).
    pub module: Option<ModuleDecl>,
    /// Declared parameters, by name.
    pub params: BTreeMap<String, ParamSpec>,
    /// Name of the parameter written to the command's stdin (the only way to pass a secret).
    pub stdin: Option<String>,
    /// Caller restriction; none: any caller that can connect (and knows the secret).
    pub allow: Option<AllowDecl>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// `output = "text" | "json" | "full"`.
    pub output: OutputMode,
    /// Captured bytes per stream.
    pub max_output: usize,
    /// Authorization stages, in order (`totp`, `email`, `approval`).
    pub auth: Stages,
    /// Email addresses the `email` method sends codes to.
    pub approvers: Vec<String>,
    /// Who may approve with the `approval` method; none: root and `admin_group`.
    pub approve: Option<AllowDecl>,
    /// Lifetime of a pending request.
    pub pending_ttl: Duration,
    /// Wrong codes allowed before the request is dropped.
    pub max_attempts: u32,
    /// Requests of this operation one caller uid may have held at once
    /// (`max_pending_per_uid`); beyond it: `busy`.
    pub max_pending_per_uid: u32,
    /// Execution policy (least privilege), the model's [`ExecDecl`].
    pub exec: ExecDecl,
}

impl OperationDecl {
    /// A minimal operation running `command` with defaults everywhere else.
    #[must_use]
    pub fn new(description: &str, command: Template) -> Self {
        OperationDecl {
            description: description.to_string(),
            command,
            module: None,
            params: BTreeMap::new(),
            stdin: None,
            allow: None,
            timeout: DEFAULT_TIMEOUT,
            output: OutputMode::Text,
            max_output: DEFAULT_MAX_OUTPUT,
            auth: Stages::none(),
            approvers: Vec::new(),
            approve: None,
            pending_ttl: DEFAULT_PENDING_TTL,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_pending_per_uid: DEFAULT_OP_MAX_PENDING_PER_UID,
            exec: ExecDecl::default(),
        }
    }

    /// A module operation: `module` run by the daemon's own binary
    /// (`["regent", "module"]`), answering JSON, defaults everywhere else.
    #[must_use]
    pub fn module(description: &str, module: ModuleDecl) -> Self {
        OperationDecl {
            module: Some(module),
            output: OutputMode::Json,
            ..OperationDecl::new(description, module_command())
        }
    }

    /// A JSON description for `regent ops`: description, params (with
    /// constraints, never secret defaults) and auth stages.
    #[must_use]
    pub fn describe(&self) -> Value {
        let params: serde_json::Map<String, Value> = self
            .params
            .iter()
            .map(|(k, p)| (k.clone(), p.describe()))
            .collect();
        json!({
            "description": self.description,
            "params": params,
            "auth": self.auth,
        })
    }
}

/// The command of a module operation, as `regent check` shows it.
#[must_use]
pub fn module_command() -> Template {
    Template::parse(&["regent", "module"]).expect("a literal template")
}
