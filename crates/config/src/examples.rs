//! The complete commented example config (for the README and `regent check`
//! docs) and the built-in demo config used by `regent demo`.

use std::path::Path;

use crate::model::Config;

const EXAMPLE: &str = r#"# Regent example configuration.
# Check it with:  regent check --config /etc/regent/regent.toml
# Serve it with:  regent serve --config /etc/regent/regent.toml

[service]
socket = "/run/regent/regent.sock"   # in a directory no one else can write (not /tmp)
socket_mode = "0660"                 # octal, as a string
socket_group = "regent"              # members of this group may connect
# socket_owner = "regent"            # when the service runs as this user: `regent --config` clients trust it
secret_file = "/etc/regent/secret"   # optional shared secret; never on argv
max_line = "1M"                      # longest request line
line_timeout = "10s"                 # time to finish a started line
idle_timeout = "60s"                 # idle time between requests
max_connections = 512                # beyond this, callers get "busy"
max_connections_per_uid = 64         # one user cannot take every slot
reserved_connections = 8             # of max_connections, kept for root and admin_group
max_runs = 256                       # operations running at once, service-wide; beyond: "busy"
write_timeout = "10s"                # a client that does not take its answer is closed
threads = 1                          # serving threads (event loops); 1 is plenty
rate_limit_hold = "1s"               # pace a caller that keeps asking while rate-limited
log_format = "text"                  # or "json"
store = "/var/lib/regent/pending.db" # pending requests (SQLite, root-only)
admin_group = "regent-admins"        # may list/approve/deny pending requests
allow_self_approval = false

[service.smtp]                       # needed by auth = ["email"]
host = "smtp.example.org"
port = 587
security = "starttls"                # starttls | tls | none
from = "regent@example.org"
credentials_file = "/etc/regent/smtp-credentials"  # root-only; username and password lines

# The simplest operation: no parameters.
[operations.whoami]
description = "Which user the service runs as"
command = ["whoami"]

# A string parameter. The pattern must match the WHOLE value; a value may not
# start with '-' (so it cannot be taken for an option) unless allow_leading_dash.
[operations.echo]
description = "Echo a short message back"
command = ["echo", "{message}"]
params.message = { type = "string", pattern = "[A-Za-z0-9 .,!?-]{1,64}", description = "Text to echo" }

# Placeholders fill one whole argv element each; no shell is ever involved.
[operations.firewall-open]
description = "Allow SSH from one public IPv4 address"
command = ["ufw", "allow", "proto", "tcp", "from", "{ip}", "to", "any", "port", "22"]
params.ip = { type = "ipv4", public = true }
allow = { users = ["www-data"], groups = ["admin"] }
timeout = "10s"
output = "text"                      # text (trimmed stdout) | json | full {stdout, stderr, status}
capabilities = ["CAP_NET_ADMIN", "CAP_NET_RAW"]  # all the command keeps

[operations.firewall-close]
description = "Remove the SSH rule for one public IPv4 address"
command = ["ufw", "delete", "allow", "proto", "tcp", "from", "{ip}", "to", "any", "port", "22"]
params.ip = { type = "ipv4", public = true }
allow = { users = ["www-data"], groups = ["admin"] }
timeout = "10s"
capabilities = ["CAP_NET_ADMIN", "CAP_NET_RAW"]

# An allowlist of services, and a second person must approve each restart.
[operations.restart]
description = "Restart an allowlisted service"
command = ["systemctl", "restart", "{service}"]
params.service = { type = "enum", values = ["nginx", "postgresql"] }
allow = { groups = ["admin"] }
auth = ["approval"]                  # regent pending / regent approve ID / regent deny ID
approve = { groups = ["regent-admins"] }
pending_ttl = "15m"
timeout = "60s"

# A secret never goes on the command line: it is written to the command's stdin.
# The caller also confirms with a TOTP code (enrol with: regent totp enroll USER).
[operations.web-password]
description = "Set the caller's own password for the web UI"
command = ["htpasswd", "-i", "-B", "/etc/nginx/htpasswd", "{caller.user}"]
params.password = { type = "string", secret = true, min_len = 12, max_len = 128 }
stdin = "password"
auth = ["totp"]
max_attempts = 3

# A code mailed to the approvers, then an administrator's approval, in that order.
[operations.reboot]
description = "Reboot the machine"
command = ["systemctl", "reboot"]
allow = { groups = ["admin"] }
auth = ["email", "approval"]
approvers = ["ops@example.org"]

# Least privilege: run as an unprivileged user with no capabilities, inside a
# Landlock sandbox and resource limits. The directory is opened by the command's
# own process beneath /var/cache/myapp (no symlink on the way) and passed as
# /proc/self/fd/N, hence find's -H (follow the starting point).
[operations.cache-clear]
description = "Delete one directory of the application cache"
command = ["find", "-H", "{dir}", "-mindepth", "1", "-delete"]
params.dir = { type = "path", under = "/var/cache/myapp", access = "read" }
run_as = { user = "www-data", group = "www-data" }
capabilities = []
sandbox = { read = ["/usr", "/etc"], write = ["/var/cache/myapp"] }
limits = { cpu = "30s", memory = "256M", open_files = 256, processes = 16 }
on_unsupported = "refuse"            # or "warn": run without a missing kernel feature
concurrency = 1
timeout = "2m"

# Optional parameters and defaults; integers are JSON integers only.
[operations.journal]
description = "Last lines of a unit's journal"
command = ["journalctl", "--no-pager", "--unit={unit}", "--lines={lines}"]
params.unit = { type = "enum", values = ["nginx.service", "postgresql.service"] }
params.lines = { type = "integer", min = 1, max = 1000, default = 50 }
allow = { groups = ["admin"] }
output = "full"
max_output = "256K"
"#;

const DEMO: &str = r#"
[service]
socket_mode = "0666"
max_connections = 64

[operations.whoami]
description = "Which user the service runs as"
command = ["id", "-un"]

[operations.echo]
description = "Echo a short message back"
command = ["echo", "{message}"]
params.message = { type = "string", pattern = "[A-Za-z0-9 .,!?-]{1,64}", description = "Text to echo (letters, digits, spaces, .,!?-)" }

[operations.hello]
description = "Greets the caller by the identity the kernel reports"
command = ["echo", "hello {caller.user}, your uid is {caller.uid} and gid {caller.gid}"]

[operations.date]
description = "The service's current time (UTC)"
command = ["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]

[operations.kernel]
description = "Kernel version (members of regent-admins only)"
command = ["uname", "-sr"]
allow = { groups = ["regent-admins"] }
"#;

/// A complete, commented example config covering every feature; it parses cleanly.
#[must_use]
pub fn example_config() -> &'static str {
    EXAMPLE
}

/// The TOML text behind [`demo_config`] (without the socket and store paths).
#[must_use]
pub fn demo_config_text() -> &'static str {
    DEMO
}

/// The built-in demo config: operations that work on any Linux box without extra
/// packages (`whoami`, `echo`, `hello`, `date`, and `kernel`, restricted to the
/// group `regent-admins` so the demo can show a denial). The socket is `socket`
/// (mode 0666; `regent demo` puts it in a private 0700 directory, as the service
/// refuses a directory others can write, such as `/tmp` itself) and the store
/// sits next to it.
#[must_use]
pub fn demo_config(socket: &Path) -> Config {
    let mut config = crate::parse(DEMO, "<demo>").expect("the built-in demo config is valid");
    config.service.socket = socket.to_path_buf();
    config.service.store = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .join("regent-demo-pending.db");
    config
}
