//! Telling the service manager how the service is doing (`sd_notify`), without
//! libsystemd: one datagram per message to the `AF_UNIX` socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract name written `@name`).
//!
//! [`init`] reads and unsets `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`
//! once at start-up (nothing the service starts sees them); every other function
//! does nothing when the service was not started with them. A failed send is
//! logged once, never fatal: the service serves whether or not anyone listens.
//!
//! The daemon sends `READY=1` once its socket is served and its privileges are
//! dropped, `STOPPING=1` when it starts a graceful stop, and `WATCHDOG=1` every
//! half `WATCHDOG_USEC` from its event loop (a stuck loop stops pinging, and the
//! manager restarts it). A reload is bracketed by [`reloading`] and [`ready`].

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Where notifications go, set once by [`init`].
struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
    watchdog: Option<Duration>,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();
static SEND_FAILED: AtomicBool = AtomicBool::new(false);

/// The environment variables read (and unset) by [`init`].
pub const VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Read `NOTIFY_SOCKET` (and the watchdog's variables), unset them, and open the
/// socket notifications are sent from. Call once at start-up while the process is
/// single-threaded (it changes the environment); later calls do nothing. Returns
/// whether a service manager listens.
pub fn init() -> bool {
    NOTIFIER.get_or_init(from_env).is_some()
}

fn from_env() -> Option<Notifier> {
    let get = |v: &str| std::env::var_os(v);
    let (socket, usec, pid) = (get(VARIABLES[0]), get(VARIABLES[1]), get(VARIABLES[2]));
    for v in VARIABLES {
        std::env::remove_var(v);
    }
    let socket = socket?;
    let target = match target_address(socket.as_encoded_bytes()) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "NOTIFY_SOCKET is not a usable address; not notifying");
            return None;
        }
    };
    let for_us = pid
        .and_then(|p| p.to_str().and_then(|p| p.parse::<u32>().ok()))
        .is_none_or(|p| p == std::process::id());
    let watchdog = usec
        .and_then(|u| u.to_str().and_then(|u| u.parse::<u64>().ok()))
        .filter(|&u| u > 0 && for_us)
        .map(Duration::from_micros);
    match UnixDatagram::unbound() {
        Ok(socket) => Some(Notifier {
            socket,
            target,
            watchdog,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open a socket to notify the service manager");
            None
        }
    }
}

/// The address `NOTIFY_SOCKET` names: a path (absolute), or `@name` for an
/// abstract socket.
fn target_address(value: &[u8]) -> std::io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match value {
        [b'@', name @ ..] if !name.is_empty() => SocketAddr::from_abstract_name(name),
        [b'/', ..] => SocketAddr::from_pathname(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(value),
        ),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@name)",
        )),
    }
}

/// Send one notification (lines `KEY=value`), if a manager listens.
pub fn send(message: &str) {
    let Some(Some(n)) = NOTIFIER.get() else {
        return;
    };
    if let Err(e) = n.socket.send_to_addr(message.as_bytes(), &n.target) {
        if !SEND_FAILED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "cannot notify the service manager (further failures are not logged)");
        }
    }
}

/// `STATUS=`: a one-line status the manager shows (`systemctl status`). Newlines
/// and control characters are replaced by spaces.
fn status_line(status: &str) -> String {
    let clean: String = status
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(256)
        .collect();
    format!("STATUS={clean}")
}

/// The service is ready to serve (after start-up, and after a reload), with a status.
pub fn ready_with_status(status: &str) {
    send(&format!("READY=1\n{}", status_line(status)));
}

/// The service is ready again (e.g. after a reload).
pub fn ready() {
    send("READY=1");
}

/// The service starts reloading its configuration; follow with [`ready`].
pub fn reloading() {
    send("RELOADING=1");
}

/// The service starts a graceful stop.
pub fn stopping() {
    send(&format!(
        "STOPPING=1\n{}",
        status_line("stopping: finishing requests in flight")
    ));
}

/// A free-form status line.
pub fn status(status: &str) {
    send(&status_line(status));
}

/// How often to ping the watchdog (half of `WATCHDOG_USEC`), if it is enabled
/// for this process.
pub fn watchdog_interval() -> Option<Duration> {
    match NOTIFIER.get() {
        Some(Some(n)) => n.watchdog.map(|d| d / 2),
        _ => None,
    }
}

/// Ping the watchdog.
pub fn watchdog() {
    send("WATCHDOG=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_status_lines() {
        use std::os::linux::net::SocketAddrExt;
        let a = target_address(b"@sd-notify").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"sd-notify"[..]));
        let p = target_address(b"/run/systemd/notify").unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(target_address(b"relative").is_err());
        assert!(target_address(b"@").is_err());
        assert_eq!(status_line("a\nb\u{1b}c"), "STATUS=a b c");
    }
}
