//! The service's limits and defaults, written once: the config's defaults, a
//! library service's, the executor's and the pending store's are these.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fixed `PATH` commands run with and bare program names are resolved against
/// (`command_path`).
pub const DEFAULT_COMMAND_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An operation's wall-clock limit (`timeout`).
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of output captured per stream (`max_output`).
pub const DEFAULT_MAX_OUTPUT: usize = 1 << 20;

/// Requests held at once in all (`max_pending`).
pub const DEFAULT_MAX_PENDING: u32 = 1024;

/// Requests one caller uid may have held at once, all operations together
/// (`[service] max_pending_per_uid`).
pub const DEFAULT_MAX_PENDING_PER_UID: u32 = 32;

/// Connection limits (see `PROTOCOL.md`, Framing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest request line (default 1 MiB, the protocol's own default).
    pub max_line: usize,
    /// Time to finish a started line (default 10 s).
    pub line_timeout: Duration,
    /// Idle time between requests (default 60 s). Also the longest a new
    /// connection waits for its caller's user-database lookup; then it is answered
    /// `busy` and closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more get `busy` (default 512).
    pub max_connections: usize,
    /// Connections one uid may hold at once; more get `busy` (default 64).
    pub max_connections_per_uid: usize,
    /// Of `max_connections`, this many are kept for root and the members of
    /// `admin_group`: other callers get `busy` once only these are left, so a
    /// crowd of users cannot lock the administrators out. Default 8; at most
    /// `max_connections - 1` take effect.
    pub reserved_connections: usize,
    /// Operations running at once, across all operations and callers (each
    /// command run holds a few descriptors and a process); a new request beyond
    /// it gets `busy`. Default 256.
    pub max_runs: usize,
    /// Time a client has to take each answer: a write that cannot finish within
    /// it (the client does not read) closes the connection. During shutdown a
    /// connection whose write is blocked is closed at once. Default 10 s.
    pub write_timeout: Duration,
    /// Accepting threads (`threads` in the config): 1 (the default) serves on the
    /// caller's runtime; more start threads with their own single-threaded
    /// runtimes, each accepting on the same socket and serving its connections
    /// start to finish (thread-per-core, no cross-thread wake-ups per request).
    /// The daemon runs its first acceptor on a single-threaded runtime too.
    pub acceptors: usize,
    /// Pace a flood: a rate-limited caller gets its first `rate_limited` answer at
    /// once, but each further request during the same lockout is answered after up
    /// to this long (its remaining penalty), held on its own connection, so that a
    /// caller looping on bad secrets cannot take the CPU other callers need (see
    /// the benchmark's attack figures). Default 1 s; zero answers every one at once.
    pub rate_limit_hold: Duration,
    /// How long shutdown waits for requests in flight (default 30 s).
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 1 << 20,
            line_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_connections_per_uid: 64,
            reserved_connections: 8,
            max_runs: 256,
            write_timeout: Duration::from_secs(10),
            acceptors: 1,
            rate_limit_hold: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
