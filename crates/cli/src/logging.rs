//! Logs go to stderr through `tracing`, as text or JSON lines.
//!
//! The daemon starts with a plain stderr writer; once it has dropped its
//! privileges (capabilities belong to threads, so no other thread may exist before
//! that), [`start_background_writer`] moves writing to a background thread:
//!
//! - **batched**: a record is copied into a shared buffer (no allocation, no
//!   system call on the request's path but a wake-up when the buffer was empty);
//!   the thread writes what has gathered with one `write` at most every
//!   [`FLUSH_INTERVAL`], or at once when [`HIGH_WATER`] bytes are waiting;
//! - **never lossy**: when [`QUEUE_CAP`] bytes are waiting (stderr is slower than
//!   the records come), the code logging waits for room, so a slow log slows the
//!   requests (back-pressure) instead of dropping their records;
//! - **flushed at a graceful stop**: dropping the [`LogGuard`] (at the end of
//!   `regent serve`, after SIGTERM/SIGINT) writes everything queued, however long
//!   stderr takes, before the process exits. A `kill -9` loses what is queued: the
//!   records of the last [`FLUSH_INTERVAL`] or so (at most [`QUEUE_CAP`] bytes, plus
//!   the batch being written).
//!
//! Every record is written on one line, whatever its fields hold: the writer
//! escapes control characters (a newline anywhere but at the end of a record,
//! an escape sequence), Unicode format characters (bidi overrides, zero-width
//! characters) and line separators as `\uXXXX` (still valid inside JSON
//! strings). The audit record escapes what callers send field by field already
//! ([`regent::server::audit::Escaped`]); this is the backstop for every other
//! record. Colours are used only when stderr is a terminal.

use std::io::{self, IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The longest a record waits in the queue before the background thread writes it
/// (while stderr takes what it is given).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(2);

/// Bytes waiting that make the background thread write at once.
pub const HIGH_WATER: usize = 64 * 1024;

/// Bytes waiting beyond which a new record waits for room (back-pressure).
pub const QUEUE_CAP: usize = 256 * 1024;

/// Log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

static BACKGROUND: OnceLock<&'static Queue> = OnceLock::new();

/// The records waiting for the background thread.
struct Queue {
    state: Mutex<State>,
    /// The background thread waits here for records (or the stop).
    ready: Condvar,
    /// Records wait here for room when the queue is full.
    room: Condvar,
}

struct State {
    buf: Vec<u8>,
    /// Records waiting for room.
    waiting: usize,
    /// The guard was dropped: write what is left and end.
    stop: bool,
    /// The background thread has ended: write directly.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent buffer: go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue one record; waits while the queue is full. `false` when the
    /// background thread has ended (the caller writes directly).
    fn push(&self, record: &[u8]) -> bool {
        let mut st = self.lock();
        while st.buf.len() >= QUEUE_CAP && !st.closed {
            st.waiting += 1;
            st = self.room.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiting -= 1;
        }
        if st.closed {
            return false;
        }
        let before = st.buf.len();
        st.buf.extend_from_slice(record);
        let wake = before == 0 || (before < HIGH_WATER && st.buf.len() >= HIGH_WATER);
        drop(st);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// The background thread: gather for up to [`FLUSH_INTERVAL`], write, repeat
    /// until stopped and empty.
    fn serve(&self, mut out: impl Write) {
        let mut spare = Vec::new();
        loop {
            let mut st = self.lock();
            while st.buf.is_empty() && !st.stop {
                st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.buf.is_empty() {
                st.closed = true;
                drop(st);
                self.room.notify_all();
                return;
            }
            let deadline = Instant::now() + FLUSH_INTERVAL;
            while !st.stop && st.buf.len() < HIGH_WATER && st.waiting == 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = self
                    .ready
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let batch = std::mem::replace(&mut st.buf, spare);
            let wake = st.waiting > 0;
            drop(st);
            if wake {
                self.room.notify_all();
            }
            // Nothing better to do with an error than to go on: the records
            // cannot go anywhere else, and the requests must not stop.
            let _ = out.write_all(&batch);
            let _ = out.flush();
            spare = batch;
            spare.clear();
            if spare.capacity() > 4 * QUEUE_CAP {
                spare = Vec::new();
            }
        }
    }
}

/// Writes to stderr directly until the background writer is started.
struct Switch {
    /// Colours are on: the formatter's own escape sequences must pass.
    colours: bool,
}

/// The writer of one record: escapes what must not reach a log line as it is.
struct Sanitizing {
    queue: Option<&'static Queue>,
    colours: bool,
}

impl Sanitizing {
    fn emit(&self, record: &[u8]) -> io::Result<()> {
        match self.queue {
            Some(q) if q.push(record) => Ok(()),
            _ => io::stderr().write_all(record),
        }
    }
}

impl Write for Sanitizing {
    /// The formatter hands over one whole record per call; it is written whole.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match sanitize(buf, self.colours) {
            None => self.emit(buf)?,
            Some(clean) => self.emit(clean.as_bytes())?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        // The background thread writes within FLUSH_INTERVAL; direct writes
        // are unbuffered.
        Ok(())
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
        Sanitizing {
            queue: BACKGROUND.get().copied(),
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

/// Writes what is queued and stops the background writer when dropped.
#[must_use = "dropping the guard stops the background writer"]
pub struct LogGuard {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    /// Write every queued record (however long stderr takes), then return;
    /// records logged afterwards are written directly.
    fn drop(&mut self) {
        if let (Some(q), Some(t)) = (BACKGROUND.get(), self.thread.take()) {
            q.lock().stop = true;
            q.ready.notify_one();
            let _ = t.join();
        }
    }
}

/// Move log writing to a background thread (see the module documentation). Keep
/// the guard until exit: dropping it writes what is queued. Called once; a second
/// call returns a guard that does nothing.
pub fn start_background_writer() -> LogGuard {
    let queue: &'static Queue = Box::leak(Box::new(Queue {
        state: Mutex::new(State {
            buf: Vec::new(),
            waiting: 0,
            stop: false,
            closed: false,
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
    }));
    let thread = std::thread::Builder::new()
        .name("regent-log".into())
        .spawn(move || queue.serve(io::stderr()));
    match thread {
        Ok(t) if BACKGROUND.set(queue).is_ok() => LogGuard { thread: Some(t) },
        Ok(t) => {
            // Already started: end this thread.
            queue.lock().stop = true;
            queue.ready.notify_one();
            let _ = t.join();
            LogGuard { thread: None }
        }
        Err(e) => {
            tracing::warn!("cannot start the log writer thread, writing directly: {e}");
            LogGuard { thread: None }
        }
    }
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

#[cfg(test)]
mod queue_tests {
    use super::{Queue, State, QUEUE_CAP};
    use std::io::{self, Write};
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    fn queue() -> Queue {
        Queue {
            state: Mutex::new(State {
                buf: Vec::new(),
                waiting: 0,
                stop: false,
                closed: false,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
        }
    }

    /// A stderr that takes a while per write and counts the writes.
    struct Slow<'a>(&'a Mutex<(Vec<u8>, usize)>);
    impl Write for Slow<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            let n = buf.len().min(16 * 1024);
            let mut out = self.0.lock().unwrap();
            out.0.extend_from_slice(&buf[..n]);
            out.1 += 1;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_writer_holds_records_back_and_the_stop_writes_them_all() {
        let q = queue();
        let out = Mutex::new((Vec::new(), 0));
        let records = 20_000;
        std::thread::scope(|s| {
            let writer = s.spawn(|| q.serve(Slow(&out)));
            for i in 0..records {
                assert!(q.push(format!("record {i:06} {}\n", "x".repeat(100)).as_bytes()));
                assert!(
                    q.lock().buf.len() <= QUEUE_CAP + 200,
                    "the queue is bounded"
                );
            }
            q.lock().stop = true;
            q.ready.notify_one();
            writer.join().unwrap();
        });
        let (text, writes) = out.into_inner().unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), records, "every record was written");
        for (i, l) in lines.iter().enumerate() {
            assert!(l.starts_with(&format!("record {i:06} ")), "in order: {l}");
        }
        assert!(
            writes < records / 10,
            "{writes} writes for {records} records"
        );
        assert!(!q.push(b"late\n"), "after the stop, records go directly");
    }
}
