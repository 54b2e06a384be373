//! Records to journald's native socket, without libsystemd, when stderr is the
//! journal.
//!
//! systemd connects a service's stderr to the journal and says so in
//! `JOURNAL_STREAM=DEV:INODE`; when that names the daemon's own stderr
//! ([`stderr_is_journal`]), each record goes as one datagram of journald's
//! native protocol (`KEY=value` lines) to `/run/systemd/journal/socket`, with
//! the record's fields as journal fields: `op` is `REGENT_OP`, `uid` is
//! `REGENT_CALLER_UID`, `client` `REGENT_CLIENT`, `request_id`
//! `REGENT_REQUEST_ID`, `outcome` `REGENT_OUTCOME`, and any other field
//! `REGENT_<NAME>`; `MESSAGE` is the text log's line, `PRIORITY` the level,
//! `SYSLOG_IDENTIFIER=regent`. So `journalctl REGENT_OP=firewall-open` finds an
//! operation's records.
//!
//! Values are what the text log writes (the audit record escapes and cuts what
//! callers send), escaped once more as the text log's backstop does (no newline,
//! no control character, so the simple `KEY=value` form always applies) and cut
//! to [`MAX_VALUE`] bytes. The records go through the same batched, lossless
//! queue as stderr's (see [`crate::logging`]).
//!
//! `REGENT_JOURNAL_SOCKET` (for tests only) names another datagram socket than
//! journald's.

use std::fmt::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// journald's native socket.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The environment variable naming another socket (for tests only).
pub const SOCKET_OVERRIDE: &str = "REGENT_JOURNAL_SOCKET";

/// The longest value sent, in bytes (journald refuses larger datagrams than
/// its socket's buffer; the audit record's own caps keep values far below).
pub const MAX_VALUE: usize = 16 * 1024;

/// Whether `JOURNAL_STREAM` names this process's stderr (device and inode).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// The socket records are sent to.
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_OVERRIDE)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SOCKET))
}

/// Sends records, one datagram each.
pub struct Sender {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Sender {
    /// An unbound datagram socket for `path`.
    pub fn new(path: PathBuf) -> std::io::Result<Sender> {
        Ok(Sender {
            socket: UnixDatagram::unbound()?,
            path,
        })
    }

    /// Send one record (errors are dropped: the records cannot go elsewhere).
    pub fn send(&self, record: &[u8]) {
        let _ = self.socket.send_to(record, &self.path);
    }
}

/// The journal field of a record's field.
fn field_name(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    match name {
        "uid" => "REGENT_CALLER_UID".into(),
        _ => {
            let mut out = String::from("REGENT_");
            out.extend(name.chars().take(57).map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            }));
            out
        }
    }
}

/// Append `KEY=value\n`, the value escaped and cut.
fn push_field(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    let start = out.len();
    for c in value.chars() {
        if out.len() - start >= MAX_VALUE {
            let _ = write!(out, "…({} bytes)", value.len());
            break;
        }
        if regent::server::audit::is_unsafe_char(c) {
            let _ = regent::server::audit::write_escaped_char(out, c);
        } else {
            out.push(c);
        }
    }
    out.push('\n');
}

/// Formats one record as a native-protocol datagram.
pub struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut message = String::new();
        {
            let mut w = Writer::new(&mut message);
            let mut fields = crate::logging::PlainFields::new(&mut w);
            event.record(&mut fields);
            fields.finish()?;
        }
        let mut out = String::with_capacity(message.len() * 2 + 64);
        push_field(&mut out, "MESSAGE", &message);
        let priority = match *meta.level() {
            tracing::Level::ERROR => "3",
            tracing::Level::WARN => "4",
            tracing::Level::INFO => "6",
            tracing::Level::DEBUG | tracing::Level::TRACE => "7",
        };
        push_field(&mut out, "PRIORITY", priority);
        push_field(&mut out, "SYSLOG_IDENTIFIER", "regent");
        push_field(&mut out, "REGENT_TARGET", meta.target());
        let mut fields = JournalFields { out: &mut out };
        event.record(&mut fields);
        writer.write_str(&out)
    }
}

/// Writes each field (but the message) as a journal field.
struct JournalFields<'a> {
    out: &'a mut String,
}

impl tracing::field::Visit for JournalFields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() != "message" {
            push_field(self.out, &field_name(field.name()), value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            push_field(self.out, &field_name(field.name()), &format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_caps() {
        assert_eq!(field_name("op"), "REGENT_OP");
        assert_eq!(field_name("uid"), "REGENT_CALLER_UID");
        assert_eq!(field_name("r#type"), "REGENT_TYPE");
        assert_eq!(field_name("duration_us"), "REGENT_DURATION_US");
        let mut out = String::new();
        push_field(&mut out, "MESSAGE", "a\nb\u{1b}[2J\u{202e}");
        assert_eq!(out, "MESSAGE=a\\u000ab\\u001b[2J\\u202e\n");
        let mut out = String::new();
        push_field(&mut out, "X", &"y".repeat(MAX_VALUE * 2));
        assert!(out.len() < MAX_VALUE + 64, "{}", out.len());
        assert!(out.ends_with(&format!("…({} bytes)\n", MAX_VALUE * 2)));
    }
}
