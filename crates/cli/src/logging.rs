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
//!
//! When stderr is the journal (`JOURNAL_STREAM`), records go instead to
//! journald's native socket with their fields as journal fields (see
//! [`crate::journal`]), through the same queue: each record is queued with its
//! length, and the background thread sends it as one datagram.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
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

/// Set when records go to the journal ([`init`] found stderr to be the journal).
static JOURNAL: OnceLock<crate::journal::Sender> = OnceLock::new();

/// Each record queued for the journal is preceded by its length (4 bytes, native
/// order), so the background thread can send one datagram per record.
const FRAME: usize = 4;

/// Send each framed record of `batch` to the journal.
fn send_frames(journal: &crate::journal::Sender, mut batch: &[u8]) {
    while batch.len() >= FRAME {
        let mut len = [0u8; FRAME];
        len.copy_from_slice(&batch[..FRAME]);
        let len = (u32::from_ne_bytes(len) as usize).min(batch.len() - FRAME);
        journal.send(&batch[FRAME..FRAME + len]);
        batch = &batch[FRAME + len..];
    }
}

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
    fn new() -> Queue {
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

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent buffer: go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue one record; waits while the queue is full. `false` when the
    /// background thread has ended (the caller writes directly).
    #[cfg(test)]
    fn push(&self, record: &[u8]) -> bool {
        self.push_parts(&[record])
    }

    /// Queue one record given in parts (kept together, e.g. a journal record and
    /// its length); waits while the queue is full. `false` when the background
    /// thread has ended (the caller writes directly).
    fn push_parts(&self, parts: &[&[u8]]) -> bool {
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
        for part in parts {
            st.buf.extend_from_slice(part);
        }
        let wake = before == 0 || (before < HIGH_WATER && st.buf.len() >= HIGH_WATER);
        drop(st);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// The background thread: gather for up to [`FLUSH_INTERVAL`], write, repeat
    /// until stopped and empty.
    #[cfg(test)]
    fn serve(&self, mut out: impl Write) {
        self.serve_with(|batch| {
            let _ = out.write_all(batch);
            let _ = out.flush();
        })
    }

    /// The background thread: gather for up to [`FLUSH_INTERVAL`], hand the batch
    /// to `deliver` (a write to stderr, or one datagram per journal record),
    /// repeat until stopped and empty.
    fn serve_with(&self, mut deliver: impl FnMut(&[u8])) {
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
            deliver(&batch);
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
            Some(q) if q.push_parts(&[record]) => Ok(()),
            _ => io::stderr().write_all(record),
        }
    }

    /// A journal record (escaped field by field by its formatter): queued with
    /// its length, or sent at once.
    fn emit_journal(&self, journal: &crate::journal::Sender, record: &[u8]) {
        let len = (record.len() as u32).to_ne_bytes();
        match self.queue {
            Some(q) if q.push_parts(&[&len, record]) => {}
            _ => journal.send(record),
        }
    }
}

impl Write for Sanitizing {
    /// The formatter hands over one whole record per call; it is written whole.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(journal) = JOURNAL.get() {
            self.emit_journal(journal, buf);
            return Ok(buf.len());
        }
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
/// When stderr is the journal (`JOURNAL_STREAM`), records go to journald's
/// native socket instead, whatever the format (see [`crate::journal`]).
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if crate::journal::stderr_is_journal() {
        match crate::journal::Sender::new(crate::journal::socket_path()) {
            Ok(sender) => {
                if JOURNAL.set(sender).is_ok() {
                    let _ = tracing_subscriber::fmt()
                        .with_env_filter(filter)
                        .with_ansi(false)
                        .with_writer(Switch { colours: false })
                        .event_format(crate::journal::JournalFormat)
                        .try_init();
                    return;
                }
            }
            Err(e) => {
                eprintln!("regent: cannot open a socket to the journal, logging to stderr: {e}")
            }
        }
    }
    let colours = format == Format::Text && io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(Switch { colours });
    let _ = match format {
        Format::Text if !colours => builder.event_format(PlainText).try_init(),
        Format::Text => builder.with_target(true).try_init(),
        Format::Json => builder.json().with_current_span(false).try_init(),
    };
}

/// Bytes of records waiting for the background writer (for `regent status`).
pub fn queued_bytes() -> usize {
    BACKGROUND.get().map_or(0, |q| q.lock().buf.len())
}

/// Whether records go to the journal's native socket.
pub fn to_journal() -> bool {
    JOURNAL.get().is_some()
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
    let queue: &'static Queue = Box::leak(Box::new(Queue::new()));
    let thread = std::thread::Builder::new()
        .name("regent-log".into())
        .spawn(move || match JOURNAL.get() {
            Some(journal) => queue.serve_with(|batch| send_frames(journal, batch)),
            None => {
                let mut out = io::stderr();
                queue.serve_with(|batch| {
                    let _ = out.write_all(batch);
                    let _ = out.flush();
                })
            }
        });
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

/// The text layout of `tracing_subscriber`'s default format without colours
/// (`2026-12-01T00:04:22.858883Z  INFO target: message key=value ...`), written
/// without its styling layer and with the date formatted once a second: the
/// audit record is formatted on the request's path, and the styling (even when
/// it adds no colour) cost about a third of the record. Colours and JSON keep
/// `tracing_subscriber`'s own formats. The daemon opens no spans, so none are
/// written.
struct PlainText;

impl<S, N> FormatEvent<S, N> for PlainText
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
        write_timestamp(&mut writer, std::time::SystemTime::now())?;
        writer.write_str(match *meta.level() {
            tracing::Level::TRACE => " TRACE ",
            tracing::Level::DEBUG => " DEBUG ",
            tracing::Level::INFO => "  INFO ",
            tracing::Level::WARN => "  WARN ",
            tracing::Level::ERROR => " ERROR ",
        })?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = PlainFields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes the fields of one record as `tracing_subscriber`'s default visitor
/// does: the message as it is, then `name=value` (values in `Debug` form: strings
/// quoted), separated by spaces.
pub(crate) struct PlainFields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl<'w, 'a> PlainFields<'w, 'a> {
    /// Fields written to `writer`.
    pub(crate) fn new(writer: &'w mut Writer<'a>) -> Self {
        PlainFields {
            writer,
            first: true,
            result: Ok(()),
        }
    }

    /// Whether every field was written.
    pub(crate) fn finish(self) -> fmt::Result {
        self.result
    }

    fn pad(&mut self) {
        if self.first {
            self.first = false;
        } else if self.result.is_ok() {
            self.result = self.writer.write_char(' ');
        }
    }
}

impl tracing::field::Visit for PlainFields<'_, '_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"))
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        match value.source() {
            None => self.record_debug(field, &format_args!("{value}")),
            Some(_) => {
                let mut sources = Vec::new();
                let mut next = value.source();
                while let Some(e) = next {
                    sources.push(e.to_string());
                    next = e.source();
                }
                let name = field.name();
                self.record_debug(field, &format_args!("{value} {name}.sources={sources:?}"))
            }
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.pad();
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        self.result = match name {
            "message" => write!(self.writer, "{value:?}"),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.writer, "{name}={value:?}")
            }
        };
    }
}

thread_local! {
    /// `YYYY-MM-DDTHH:MM:SS` of the last second formatted on this thread.
    static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// `2026-12-01T00:04:22.858883Z` (RFC 3339, UTC, microseconds), as
/// `tracing_subscriber`'s default timer writes it.
fn write_timestamp(w: &mut impl fmt::Write, now: std::time::SystemTime) -> fmt::Result {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut text) = SECOND.with(|c| c.get());
    if cached != secs {
        text = civil_text(secs);
        SECOND.with(|c| c.set((secs, text)));
    }
    // Only ASCII digits and separators were written.
    w.write_str(std::str::from_utf8(&text).unwrap_or("????-??-??T??:??:??"))?;
    let mut frac = *b".000000Z";
    let mut micros = since.subsec_micros();
    for i in (1..7).rev() {
        frac[i] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    w.write_str(std::str::from_utf8(&frac).unwrap_or(".??????Z"))
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the epoch (UTC; the proleptic
/// Gregorian calendar, days to civil date after Howard Hinnant's algorithm).
fn civil_text(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    out
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
mod format_tests {
    use super::{civil_text, write_timestamp, PlainText};
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn events() {
        let err = io::Error::other("disk on fire");
        tracing::info!(target: "regent::audit", pid = 12, uid = 65534u32, user = %"nobody", op = %"regent.ops", outcome = "ok", duration_us = 3u64, data = tracing::field::Empty, "request");
        tracing::warn!(
            limit = 1024,
            needed = 1100,
            "the descriptor limit is below {}",
            "what is needed"
        );
        tracing::error!(error = %err, r#type = "x", "cannot serve");
        tracing::error!(
            error = &err as &(dyn std::error::Error + 'static),
            ok = true,
            ratio = 0.5,
            "x"
        );
    }

    /// The text of `events()` with the timestamps cut off.
    fn render(ours: bool) -> Vec<String> {
        let buf = Buf::default();
        let w = buf.clone();
        let b = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || w.clone());
        if ours {
            tracing::subscriber::with_default(b.event_format(PlainText).finish(), events);
        } else {
            tracing::subscriber::with_default(b.finish(), events);
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| l[27..].to_string()).collect()
    }

    #[test]
    fn plain_text_is_the_default_layout_without_colours() {
        let ours = render(true);
        assert_eq!(ours, render(false));
        assert_eq!(ours.len(), 4);
        assert!(ours[0].starts_with("  INFO regent::audit: request pid=12 uid=65534 user=nobody op=regent.ops outcome=\"ok\" duration_us=3"), "{}", ours[0]);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut s = String::new();
        let t = UNIX_EPOCH + Duration::from_micros(1_764_547_462_858_883);
        write_timestamp(&mut s, t).unwrap();
        assert_eq!(s, "2025-12-01T00:04:22.858883Z");
        assert_eq!(&civil_text(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil_text(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&civil_text(4_107_542_399), b"2100-02-28T23:59:59");
    }
}

#[cfg(test)]
mod queue_tests {
    use super::{Queue, QUEUE_CAP};
    use std::io::{self, Write};
    use std::sync::Mutex;
    use std::time::Duration;

    fn queue() -> Queue {
        Queue::new()
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
