//! The daemon's reload (SIGHUP, `systemctl reload`): read and validate the config
//! with the same reader as at start; refuse it, keeping the running one, if it
//! has errors or changes a key only a restart can apply; otherwise swap its
//! operations, policy, secret and SMTP settings in for new requests at once
//! ([`Reloader::apply`]). One log line per reload says which.
//!
//! Keys that need a restart ([`RESTART_ONLY`]): what was bound, sized or dropped
//! at start. Capabilities are among them in effect: the daemon dropped every
//! capability its operations did not need, so a config whose operations need one
//! it no longer holds is refused ([`needs_dropped_capabilities`]).

use crate::daemon;
use crate::error::Error;
use crate::server::reload::Reloaded;
use crate::server::{Reloader, SharedSecret};
use regent_config::Config;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The `[service]` keys a reload cannot apply: the socket (bound at start), the
/// serving threads and connection limits (sized at start), the log format, the
/// pending store's path (open), and `[service.tcp]`'s `listen` (bound at start;
/// adding or removing the table changes it) and `max_connections` (sized at
/// start). The rest of `[service.tcp]` (`cert`, `key`, `client_ca`, `crl`,
/// `handshake_timeout`) is reloaded: its files are read again.
pub const RESTART_ONLY: &[&str] = &[
    "socket",
    "socket_mode",
    "socket_owner",
    "socket_group",
    "sockets",
    "threads",
    "max_line",
    "line_timeout",
    "idle_timeout",
    "write_timeout",
    "max_connections",
    "max_connections_per_uid",
    "reserved_connections",
    "max_runs",
    "rate_limit_hold",
    "log_format",
    "store",
    "tcp.listen",
    "tcp.max_connections",
];

/// The restart-only keys (of [`RESTART_ONLY`]) whose values differ.
pub fn restart_only_changes(running: &Config, next: &Config) -> Vec<&'static str> {
    let (a, b) = (&running.service, &next.service);
    // `Debug` renders every value of these keys whole (none is a secret).
    let values = |s: &regent_config::ServiceConfig| -> Vec<String> {
        vec![
            format!("{:?}", s.socket),
            format!("{:?}", s.socket_mode),
            format!("{:?}", s.socket_owner),
            format!("{:?}", s.socket_group),
            format!("{:?}", s.sockets),
            format!("{:?}", s.limits.acceptors),
            format!("{:?}", s.limits.max_line),
            format!("{:?}", s.limits.line_timeout),
            format!("{:?}", s.limits.idle_timeout),
            format!("{:?}", s.limits.write_timeout),
            format!("{:?}", s.limits.max_connections),
            format!("{:?}", s.limits.max_connections_per_uid),
            format!("{:?}", s.limits.reserved_connections),
            format!("{:?}", s.limits.max_runs),
            format!("{:?}", s.limits.rate_limit_hold),
            format!("{:?}", s.log_format),
            format!("{:?}", s.store),
            format!("{:?}", s.tcp.as_ref().map(|t| &t.listen)),
            format!("{:?}", s.tcp.as_ref().map(|t| t.max_connections)),
        ]
    };
    RESTART_ONLY
        .iter()
        .zip(values(a).into_iter().zip(values(b)))
        .filter(|(_, (x, y))| x != y)
        .map(|(key, _)| *key)
        .collect()
}

/// The capabilities `next`'s operations need that the running daemon, started
/// with `running`, has dropped (empty if none; all of them named `ALL` when
/// `next` needs the full privilege and it was dropped).
pub fn needs_dropped_capabilities(running: &Config, next: &Config) -> Result<Vec<String>, Error> {
    let Some(kept) = daemon::needed_capabilities(running)? else {
        return Ok(Vec::new()); // Nothing was dropped.
    };
    Ok(match daemon::needed_capabilities(next)? {
        None => vec!["ALL (an operation declares no `capabilities`)".into()],
        Some(wanted) => wanted
            .into_iter()
            .filter(|c| !kept.contains(c))
            .map(|c| c.to_string())
            .collect(),
    })
}

/// Where the daemon's secret comes from on a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// The config's `secret_file`, read again (none if the key is gone).
    ConfigFile,
    /// Kept as read at start (`--secret-stdin`: standard input is read once).
    KeptFromStart,
}

/// The daemon's reload: the config file, the config running now, and the
/// service's [`Reloader`].
pub struct DaemonReload {
    path: PathBuf,
    running: Mutex<Config>,
    secret: SecretSource,
    reloader: Reloader,
}

impl DaemonReload {
    /// Reload `path` into the service `reloader` swaps, which runs `running`.
    pub fn new(
        path: &Path,
        running: Config,
        secret: SecretSource,
        reloader: Reloader,
    ) -> DaemonReload {
        DaemonReload {
            path: path.to_path_buf(),
            running: Mutex::new(running),
            secret,
            reloader,
        }
    }

    /// Reload once and log one line: `configuration reloaded` with what changed,
    /// or `configuration reload refused` with every error (each with its
    /// `FILE:LINE:COL` when it has one, escaped). Blocking (it reads files and
    /// the user database): run it off an event loop.
    pub fn run(&self) {
        // The service manager sees the reload (systemctl reload waits for READY=1).
        crate::notify::reloading();
        match self.try_reload() {
            Ok(summary) => tracing::info!(
                config = %self.path.display(),
                "configuration reloaded: {summary}"
            ),
            Err(errors) => tracing::warn!(
                config = %self.path.display(),
                "configuration reload refused, still serving the previous configuration: {}",
                errors.join("; ")
            ),
        }
        crate::notify::ready();
    }

    /// Reload once: what changed, or why nothing did.
    pub fn try_reload(&self) -> Result<String, Vec<String>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let file = crate::trust::open(&self.path).map_err(|e| {
            vec![format!(
                "{}: {e}: whoever can change the config chooses what the service runs",
                self.path.display()
            )]
        })?;
        let next = regent_config::load_file(file, &self.path)
            .map_err(|diags| diags.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
        let restart = restart_only_changes(&running, &next);
        if !restart.is_empty() {
            return Err(vec![format!(
                "changed key(s) that need a restart: {} (restart the service to apply them)",
                restart.join(", ")
            )]);
        }
        let dropped =
            needs_dropped_capabilities(&running, &next).map_err(|e| vec![e.to_string()])?;
        if !dropped.is_empty() {
            return Err(vec![format!(
                "the operations need capabilities the daemon dropped at start: {} \
                 (restart the service to apply them)",
                dropped.join(", ")
            )]);
        }
        let secret = match self.secret {
            SecretSource::KeptFromStart => None,
            SecretSource::ConfigFile => match &next.service.secret_file {
                Some(path) => Some(SharedSecret::from_file(path).map_err(|e| vec![e.to_string()])?),
                None => None,
            },
        };
        let mut builder = daemon::builder(&next, secret).map_err(|e| vec![e.to_string()])?;
        if self.secret == SecretSource::KeptFromStart {
            builder = builder.keep_current_secret();
        }
        let reloaded = self
            .reloader
            .apply(builder)
            .map_err(|e| vec![e.to_string()])?;
        let summary = summary(&running, &next, &reloaded);
        *running = next;
        Ok(summary)
    }
}

/// What a reload changed, in one clause per kind of change.
fn summary(running: &Config, next: &Config, ops: &Reloaded) -> String {
    let (a, b) = (&running.service, &next.service);
    let mut changed: Vec<&str> = Vec::new();
    let differ = |x: String, y: String| x != y;
    for (key, differs) in [
        (
            "secret_file",
            differ(
                format!("{:?}", a.secret_file),
                format!("{:?}", b.secret_file),
            ),
        ),
        (
            "admin_group",
            differ(
                format!("{:?}", a.admin_group),
                format!("{:?}", b.admin_group),
            ),
        ),
        (
            "allow_self_approval",
            a.allow_self_approval != b.allow_self_approval,
        ),
        ("max_pending", a.max_pending != b.max_pending),
        (
            "max_pending_per_uid",
            a.max_pending_per_uid != b.max_pending_per_uid,
        ),
        ("command_path", a.command_path != b.command_path),
        (
            "smtp",
            differ(format!("{:?}", a.smtp), format!("{:?}", b.smtp)),
        ),
        (
            "tcp",
            differ(format!("{:?}", a.tcp), format!("{:?}", b.tcp)),
        ),
    ] {
        if differs {
            changed.push(key);
        }
    }
    let service = if changed.is_empty() {
        "service settings unchanged".to_string()
    } else {
        format!("service settings changed: {}", changed.join(", "))
    };
    // The TLS files are read again on every reload, changed or not.
    let tls = match &b.tcp {
        Some(_) => "; TLS certificate, key, client CAs and CRLs read again",
        None => "",
    };
    format!(
        "{ops}; {service}{tls}; {} operation(s) served",
        next.operations.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::declaration_digest;
    use regent_exec::Capability;

    fn config(service: &str, ops: &str) -> Config {
        regent_config::parse(&format!("[service]\n{service}\n{ops}"), "t.toml").unwrap()
    }

    const NET: &str = r#"
[operations.fw]
description = "x"
command = ["/bin/true"]
capabilities = ["net_admin"]
"#;

    #[test]
    fn only_restart_only_keys_are_named() {
        let running = config("threads = 1", NET);
        let same_but_reloadable = config(
            "threads = 1\nallow_self_approval = true\nmax_pending = 7\ncommand_path = \"/bin\"",
            "",
        );
        assert!(restart_only_changes(&running, &same_but_reloadable).is_empty());
        let moved = config(
            "threads = 2\nsocket = \"/run/other/regent.sock\"\nmax_runs = 3\nstore = \"/var/lib/x/p.db\"",
            NET,
        );
        assert_eq!(
            restart_only_changes(&running, &moved),
            ["socket", "threads", "max_runs", "store"]
        );
        let more = config(
            "threads = 1\n[[service.sockets]]\npath = \"/run/regent/web.sock\"\noperations = [\"fw\"]",
            NET,
        );
        assert_eq!(restart_only_changes(&running, &more), ["sockets"]);
    }

    #[test]
    fn tls_files_reload_and_listen_addresses_need_a_restart() {
        let tcp = |listen: &str, dir: &str, extra: &str| {
            config(
                "",
                &format!(
                    "[service.tcp]\nlisten = \"{listen}\"\ncert = \"/{dir}/s.crt\"\nkey = \"/{dir}/s.key\"\nclient_ca = \"/{dir}/ca.crt\"\n{extra}"
                ),
            )
        };
        let running = tcp("127.0.0.1:8443", "a", "");
        let files = tcp(
            "127.0.0.1:8443",
            "b",
            "crl = \"/b/crl.pem\"\nhandshake_timeout = \"3s\"",
        );
        assert!(restart_only_changes(&running, &files).is_empty());
        let moved = tcp("127.0.0.1:9443", "a", "max_connections = 3");
        assert_eq!(
            restart_only_changes(&running, &moved),
            ["tcp.listen", "tcp.max_connections"]
        );
        assert_eq!(
            restart_only_changes(&running, &config("", "")),
            ["tcp.listen", "tcp.max_connections"],
            "removing [service.tcp]"
        );
    }

    #[test]
    fn capabilities_the_daemon_dropped_refuse_the_reload() {
        let running = config("", NET);
        assert!(needs_dropped_capabilities(&running, &running)
            .unwrap()
            .is_empty());
        let raw = config(
            "",
            r#"
[operations.fw]
description = "x"
command = ["/bin/true"]
capabilities = ["net_admin", "net_raw"]
"#,
        );
        assert_eq!(
            needs_dropped_capabilities(&running, &raw).unwrap(),
            [Capability::NET_RAW.to_string()]
        );
        // An operation without `capabilities` needs the full privilege.
        let full = config(
            "",
            "[operations.all]\ndescription = \"x\"\ncommand = [\"/bin/true\"]\n",
        );
        assert_eq!(
            needs_dropped_capabilities(&running, &full).unwrap().len(),
            1
        );
        // A daemon that kept its full privilege may take any of them.
        assert!(needs_dropped_capabilities(&full, &raw).unwrap().is_empty());
    }

    #[test]
    fn the_digest_follows_what_runs_and_not_the_description() {
        let a = config("", NET);
        let digest = |c: &Config| declaration_digest(&c.operations["fw"], &c.service.command_path);
        let described = config(
            "",
            &NET.replace("description = \"x\"", "description = \"y\""),
        );
        assert_eq!(digest(&a), digest(&described));
        let other_command = config("", &NET.replace("/bin/true", "/bin/false"));
        assert_ne!(digest(&a), digest(&other_command));
        let other_path = config("command_path = \"/bin\"", NET);
        assert_ne!(digest(&a), digest(&other_path));
    }
}
