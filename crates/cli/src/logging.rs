//! Logs go to stderr through `tracing`, as text or JSON lines.
//!
//! The daemon starts with a plain stderr writer; once it has dropped its
//! privileges (capabilities belong to threads, so no other thread may exist before
//! that), [`start_background_writer`] moves writing to a background thread that
//! never drops a line (when its queue is full, the writer waits), so a slow stderr
//! does not slow requests.

use std::io::{self, Write};
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
struct Switch;

enum SwitchWriter {
    Direct(io::Stderr),
    Background(NonBlocking),
}

impl Write for SwitchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SwitchWriter::Direct(w) => w.write(buf),
            SwitchWriter::Background(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            SwitchWriter::Direct(w) => w.flush(),
            SwitchWriter::Background(w) => w.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Switch {
    type Writer = SwitchWriter;
    fn make_writer(&'a self) -> SwitchWriter {
        match BACKGROUND.get() {
            Some(nb) => SwitchWriter::Background(nb.clone()),
            None => SwitchWriter::Direct(io::stderr()),
        }
    }
}

/// Install the subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Switch);
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
        .with_writer(io::stderr)
        .try_init();
}
