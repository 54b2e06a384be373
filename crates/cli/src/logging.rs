//! Logs go to stderr through `tracing`, as text or JSON lines.
//!
//! The daemon starts with a plain stderr writer; once it has dropped its
//! privileges (capabilities belong to threads, so no other thread may exist before
//! that), [`start_background_writer`] moves writing to a background thread that
//! never drops a line (when its queue is full, the writer waits), so a slow stderr
//! does not slow requests.
//!
//! Every record is written on one line, whatever its fields hold: the writer
//! escapes control characters (a newline anywhere but at the end of a record,
//! an escape sequence), Unicode format characters (bidi overrides, zero-width
//! characters) and line separators as `\uXXXX` (still valid inside JSON
//! strings). The audit record escapes what callers send field by field already
//! ([`regent::server::audit::Escaped`]); this is the backstop for every other
//! record. Colours are used only when stderr is a terminal.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

static BACKGROUND: OnceLock<NonBlocking> = OnceLock::new();

/// Writes to stderr directly until the background writer is started.
struct Switch {
    /// Colours are on: the formatter's own escape sequences must pass.
    colours: bool,
}

enum SwitchWriter {
    Direct(io::Stderr),
    Background(NonBlocking),
}

impl SwitchWriter {
    fn write_all_inner(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            SwitchWriter::Direct(w) => w.write_all(buf),
            SwitchWriter::Background(w) => w.write_all(buf),
        }
    }
}

/// The writer of one record: escapes what must not reach a log line as it is.
struct Sanitizing {
    inner: SwitchWriter,
    colours: bool,
}

impl Write for Sanitizing {
    /// The formatter hands over one whole record per call; it is written whole.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match sanitize(buf, self.colours) {
            None => self.inner.write_all_inner(buf)?,
            Some(clean) => self.inner.write_all_inner(clean.as_bytes())?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            SwitchWriter::Direct(w) => w.flush(),
            SwitchWriter::Background(w) => w.flush(),
        }
    }
}

/// `None` when `record` can be written as it is (the common case, found by a
/// scan of its bytes); else the record with unsafe characters escaped. A newline
/// may only end the record; ESC passes only when colours are on.
fn sanitize(record: &[u8], colours: bool) -> Option<String> {
    let body = record.strip_suffix(b"\n").unwrap_or(record);
    let plain = body
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || (colours && b == 0x1b));
    if plain {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    let unsafe_char =
        |c: char| regent::server::audit::is_unsafe_char(c) && !(colours && c == '\x1b');
    if !text.chars().any(unsafe_char) && matches!(text, std::borrow::Cow::Borrowed(_)) {
        return None;
    }
    let mut out = String::with_capacity(record.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = regent::server::audit::write_escaped_char(&mut out, c);
        } else {
            out.push(c);
        }
    }
    if body.len() < record.len() {
        out.push('\n');
    }
    Some(out)
}

impl<'a> MakeWriter<'a> for Switch {
    type Writer = Sanitizing;
    fn make_writer(&'a self) -> Sanitizing {
        let inner = match BACKGROUND.get() {
            Some(nb) => SwitchWriter::Background(nb.clone()),
            None => SwitchWriter::Direct(io::stderr()),
        };
        Sanitizing {
            inner,
            colours: self.colours,
        }
    }
}

/// Install the subscriber. `RUST_LOG` overrides the default level (`info`).
/// Text is coloured only when stderr is a terminal.
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colours = format == Format::Text && io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(Switch { colours });
    let _ = match format {
        Format::Text => builder.with_target(true).try_init(),
        Format::Json => builder.json().with_current_span(false).try_init(),
    };
}

/// Move log writing to a background thread. Keep the guard until exit: dropping
/// it flushes what is queued.
pub fn start_background_writer() -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(io::stderr());
    let _ = BACKGROUND.set(writer);
    guard
}

/// Only warnings and errors (for the demo, whose own output tells the story).
pub fn init_quiet() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn records_stay_on_one_line_without_escape_sequences() {
        assert_eq!(sanitize(b"plain record\n", false), None);
        assert_eq!(sanitize("caf\u{e9}\n".as_bytes(), false), None);
        let forged = "op=a\n2026 INFO forged\x1b[2J\u{202e}\n";
        assert_eq!(
            sanitize(forged.as_bytes(), false).unwrap(),
            "op=a\\u000a2026 INFO forged\\u001b[2J\\u202e\n"
        );
        // With colours the formatter's ESC passes; nothing else does.
        assert_eq!(sanitize(b"\x1b[1mINFO\x1b[0m x\n", true), None);
        assert!(sanitize(b"\x1b[1mINFO\x1b[0m x\ny\n", true).is_some());
    }
}
