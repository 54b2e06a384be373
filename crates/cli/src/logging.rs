//! Logs go to stderr through `tracing`, as text or JSON lines.

use tracing_subscriber::EnvFilter;

/// Log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Install the subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Text => builder.with_target(true).try_init(),
        Format::Json => builder.json().with_current_span(false).try_init(),
    };
}

/// Only warnings and errors (for the demo, whose own output tells the story).
pub fn init_quiet() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
