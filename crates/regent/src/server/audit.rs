//! The audit trail: one record per request, except for floods of refusals.
//!
//! A record holds the caller's pid, uid and user (for a TLS client: its
//! certificate's name and serial and its address), the operation, the outcome code,
//! the duration, and the data with secret fields redacted. Never the secret: the
//! pipeline never hands it here.
//!
//! **Everything a caller sends is escaped** before it reaches the log ([`Escaped`]):
//! control characters (C0, DEL, C1), Unicode format characters (Cf: bidi
//! overrides, zero-width characters, ...) and line/paragraph separators are written
//! as `\uXXXX`, so a caller can neither forge a record with a newline nor reach an
//! administrator's terminal with an escape sequence. The operation name and the
//! user name are single words of the text log's `key=value` fields: whitespace in
//! them (a space, a no-break space, ...) is escaped too, so an unknown name such
//! as `restart outcome="ok"` cannot forge the fields that follow it. An operation
//! name is cut to [`MAX_LOGGED_OP`] characters (its length in bytes follows).
//!
//! **Refusals are aggregated per caller (uid, or TLS client)** (`Refusals`): a request refused before it
//! ran or was held (bad request, wrong secret, rate limited, unknown operation,
//! denied by policy, invalid data, busy) is logged in full for the first
//! [`REFUSALS_IN_FULL`] of a caller uid per [`REFUSAL_WINDOW`]; beyond that it is
//! only counted, and one summary record per uid and window gives the counts per
//! code. Records of requests that ran, were held, continued a held request, or
//! that the service's own `regent.*` operations answered (a listing, a decision)
//! are never aggregated; a `regent.*` call refused before that (an unknown name, a
//! caller who is not an administrator) is a refusal like the others.

use crate::identity::Caller;
use regent_model::CallerKey;
use regent_proto::Response;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest operation name written to the log, in characters.
pub const MAX_LOGGED_OP: usize = 64;

/// The longest string value of a request's data written whole to its record, in
/// characters; a longer one is cut, with its length in bytes.
pub const MAX_LOGGED_VALUE: usize = 200;

/// The longest data written to a record, in bytes (a backstop: with each value
/// cut to [`MAX_LOGGED_VALUE`], an operation's declared parameters fit).
pub const MAX_LOGGED_DATA: usize = 8192;

/// Whether some string in `v` is longer than [`MAX_LOGGED_VALUE`] characters.
fn has_long_string(v: &Value) -> bool {
    match v {
        Value::String(s) => s.len() > MAX_LOGGED_VALUE && s.chars().nth(MAX_LOGGED_VALUE).is_some(),
        Value::Array(a) => a.iter().any(has_long_string),
        Value::Object(m) => m.values().any(has_long_string),
        _ => false,
    }
}

/// `v` with every string cut to [`MAX_LOGGED_VALUE`] characters, then
/// `…(LEN bytes)`.
fn shorten(v: &Value) -> Value {
    match v {
        Value::String(s) => match s.char_indices().nth(MAX_LOGGED_VALUE) {
            Some((i, _)) => Value::String(format!("{}…({} bytes)", &s[..i], s.len())),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(shorten).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shorten(v))).collect()),
        other => other.clone(),
    }
}

/// Refusals of one caller uid logged in full per [`REFUSAL_WINDOW`].
pub const REFUSALS_IN_FULL: u32 = 10;

/// The window over which refusals beyond [`REFUSALS_IN_FULL`] are counted.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(10);

/// Whether `c` must not reach a log or a terminal as it is: C0 and C1 controls,
/// DEL, Unicode format characters (Cf, e.g. bidi overrides and zero-width
/// characters) and the line and paragraph separators (Zl, Zp).
pub fn is_unsafe_char(c: char) -> bool {
    regent_proto::text::needs_escape(c, regent_proto::text::Layout::Line)
}

/// Write `c` as a JSON-style escape (`\u001b`; a surrogate pair above U+FFFF), so
/// that escaped JSON text stays valid JSON.
pub fn write_escaped_char<W: fmt::Write>(out: &mut W, c: char) -> fmt::Result {
    let mut units = [0u16; 2];
    for u in c.encode_utf16(&mut units) {
        write!(out, "\\u{u:04x}")?;
    }
    Ok(())
}

/// Displays client-controlled text safely for a log line: unsafe characters
/// ([`is_unsafe_char`]) escaped as `\uXXXX`, backslashes doubled (unless the text
/// is JSON, whose own escapes must stay as they are), cut to a number of
/// characters with the full length in bytes appended.
pub struct Escaped<'a> {
    text: &'a str,
    json: bool,
    /// Whitespace is escaped too: the text is one field's value.
    word: bool,
    max_chars: usize,
}

impl<'a> Escaped<'a> {
    /// Plain text: backslashes are doubled too, so an escape cannot be faked.
    pub fn text(text: &'a str) -> Self {
        Escaped {
            text,
            json: false,
            word: false,
            max_chars: usize::MAX,
        }
    }

    /// Plain text shown as one word (an operation or user name): as
    /// [`Escaped::text`], and every whitespace character is escaped too, so that
    /// the value cannot look like several `key=value` fields.
    pub fn word(text: &'a str) -> Self {
        Escaped {
            word: true,
            ..Escaped::text(text)
        }
    }

    /// JSON text (already valid JSON): only unsafe characters are escaped, and the
    /// result is still valid JSON.
    pub fn json(text: &'a str) -> Self {
        Escaped {
            text,
            json: true,
            word: false,
            max_chars: usize::MAX,
        }
    }

    /// Write at most `n` characters, then `…(LEN bytes)`.
    pub fn at_most(mut self, n: usize) -> Self {
        self.max_chars = n;
        self
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text;
        // Fast path: printable ASCII without a backslash, short enough.
        if text.len() <= self.max_chars
            && text.bytes().all(|b| {
                ((0x21..0x7f).contains(&b) && (self.json || b != b'\\'))
                    || (b == b' ' && !self.word)
            })
        {
            return f.write_str(text);
        }
        let mut run_start = 0;
        let mut cut = None;
        for (n, (i, c)) in text.char_indices().enumerate() {
            if n == self.max_chars {
                cut = Some(i);
                break;
            }
            let unsafe_char =
                is_unsafe_char(c) || (!self.json && c == '\\') || (self.word && c.is_whitespace());
            if unsafe_char {
                f.write_str(&text[run_start..i])?;
                if c == '\\' {
                    f.write_str("\\\\")?;
                } else {
                    write_escaped_char(f, c)?;
                }
                run_start = i + c.len_utf8();
            }
        }
        match cut {
            Some(i) => {
                f.write_str(&text[run_start..i])?;
                write!(f, "…({} bytes)", text.len())
            }
            None => f.write_str(&text[run_start..]),
        }
    }
}

/// The caller's user name (escaped), or its uid when the user database has none.
struct UserOrUid<'a>(&'a Caller);

impl fmt::Display for UserOrUid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.user {
            Some(name) => Escaped::word(name).fmt(f),
            None => write!(f, "{}", self.0.uid),
        }
    }
}

/// An audit record being filled in while a request is processed.
pub(crate) struct Audit {
    started: Instant,
    caller: Arc<Caller>,
    op: String,
    /// The operation name's full length in bytes (`op` keeps a prefix of it).
    op_len: usize,
    data: Option<String>,
    note: Option<String>,
    /// Refused before it ran or was held: may be aggregated ([`Refusals`]).
    refused: bool,
}

impl Audit {
    pub(crate) fn start(caller: &Arc<Caller>) -> Self {
        Audit {
            started: Instant::now(),
            caller: caller.clone(),
            op: String::new(),
            op_len: 0,
            data: None,
            note: None,
            refused: false,
        }
    }

    /// Record the operation name. Only a prefix is kept (what the log shows).
    pub(crate) fn op(&mut self, op: &str) {
        self.op.clear();
        let keep = op
            .char_indices()
            .nth(MAX_LOGGED_OP)
            .map_or(op.len(), |(i, _)| i);
        self.op.push_str(&op[..keep]);
        self.op_len = op.len();
    }

    /// Record the (already redacted) data: each string value cut to
    /// [`MAX_LOGGED_VALUE`] characters (its length follows), so that one long
    /// value cannot push the others out of the record.
    pub(crate) fn data(&mut self, redacted: &Value) {
        if !redacted.is_null() {
            let mut s = if has_long_string(redacted) {
                shorten(redacted).to_string()
            } else {
                redacted.to_string()
            };
            if s.len() > MAX_LOGGED_DATA {
                let mut cut = MAX_LOGGED_DATA;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s.push('…');
            }
            self.data = Some(s);
        }
    }

    /// Why a request was refused, for the log only.
    pub(crate) fn note(&mut self, why: &str) {
        self.note = Some(why.to_string());
    }

    /// Mark the request as refused before it ran or was held: its record may be
    /// folded into a per-uid summary during a flood.
    pub(crate) fn refused(&mut self) {
        self.refused = true;
    }

    pub(crate) fn finish(self, response: &Response, refusals: &Refusals) {
        let outcome = match response {
            Response::Done(_) => "ok",
            Response::Pending { .. } => "pending",
            Response::Error { code: Some(c), .. } => c.as_str(),
            Response::Error { code: None, .. } => "error",
        };
        if self.refused
            && matches!(response, Response::Error { .. })
            && !refusals.admit(&self.caller, outcome, self.started)
        {
            return;
        }
        let micros = self.started.elapsed().as_micros() as u64;
        let op = OpName {
            kept: &self.op,
            len: self.op_len,
        };
        // A TLS client: its certificate's name (checked at the handshake to be
        // a plain word) and serial, and its address.
        let (client, serial, peer) = match &self.caller.peer {
            regent_model::Peer::Unix => (None, None, None),
            regent_model::Peer::Tls {
                name,
                serial,
                address,
            } => (Some(name.as_str()), Some(serial.as_str()), Some(address)),
        };
        // A pid, uid and user name only for a Unix caller: a TLS client has none.
        let unix = client.is_none();
        tracing::info!(
            target: "regent::audit",
            pid = unix.then_some(self.caller.pid),
            uid = unix.then_some(self.caller.uid),
            user = unix.then(|| tracing::field::display(UserOrUid(&self.caller))),
            client = client.map(Escaped::word).map(tracing::field::display),
            serial = serial.map(Escaped::word).map(tracing::field::display),
            peer = peer.map(tracing::field::display),
            op = %op,
            outcome,
            duration_us = micros,
            data = self.data.as_deref().map(Escaped::json).map(tracing::field::display),
            note = self.note.as_deref().map(Escaped::text).map(tracing::field::display),
            "request"
        );
    }
}

/// The kept prefix of an operation name, escaped, with the full length when cut.
struct OpName<'a> {
    kept: &'a str,
    len: usize,
}

impl fmt::Display for OpName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped::word(self.kept).fmt(f)?;
        if self.len > self.kept.len() {
            write!(f, "…({} bytes)", self.len)?;
        }
        Ok(())
    }
}

/// Counts refusals per caller (uid, or TLS client by name) so that a flood of
/// them cannot flood the log (see the module documentation).
pub(crate) struct Refusals {
    windows: Mutex<HashMap<CallerKey, Window>>,
    /// Set when some window is open (to be summarized or forgotten).
    open: AtomicBool,
}

/// One uid's current window.
struct Window {
    started: Instant,
    user: Option<String>,
    in_full: u32,
    /// Refusals only counted, per outcome code.
    counted: Vec<(&'static str, u64)>,
}

impl Refusals {
    pub(crate) fn new() -> Self {
        Refusals {
            windows: Mutex::new(HashMap::new()),
            open: AtomicBool::new(false),
        }
    }

    /// Whether this refusal is logged in full (`true`) or only counted.
    fn admit(&self, caller: &Caller, code: &'static str, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.entry(caller.key()).or_insert_with(|| {
            self.open.store(true, Ordering::Relaxed);
            Window {
                started: now,
                user: caller.user.clone(),
                in_full: 0,
                counted: Vec::new(),
            }
        });
        if now.saturating_duration_since(w.started) >= REFUSAL_WINDOW {
            summarize(&caller.key(), w, now);
            w.started = now;
            w.in_full = 0;
        }
        if w.in_full < REFUSALS_IN_FULL {
            w.in_full += 1;
            return true;
        }
        match w.counted.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => w.counted.push((code, 1)),
        }
        false
    }

    /// Refusals counted (not logged in full) in the windows still open: they
    /// will be written as summaries.
    pub(crate) fn counted(&self) -> u64 {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows
            .values()
            .flat_map(|w| w.counted.iter().map(|(_, n)| n))
            .sum()
    }

    /// Write the summaries of windows that have ended (all of them with `all`)
    /// and forget those uids. Cheap when no window is open: the service calls it
    /// every second.
    pub(crate) fn flush(&self, all: bool) {
        if !self.open.load(Ordering::Relaxed) && !all {
            return;
        }
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.retain(|key, w| {
            let ended = now.saturating_duration_since(w.started) >= REFUSAL_WINDOW;
            if ended || all {
                summarize(key, w, now);
                return false;
            }
            true
        });
        self.open.store(!windows.is_empty(), Ordering::Relaxed);
    }
}

/// One summary record for a window's counted refusals (none when nothing was counted).
fn summarize(key: &CallerKey, w: &mut Window, now: Instant) {
    if w.counted.is_empty() {
        return;
    }
    let total: u64 = w.counted.iter().map(|(_, n)| n).sum();
    let mut codes = String::new();
    for (code, n) in &w.counted {
        if !codes.is_empty() {
            codes.push(' ');
        }
        let _ = write!(codes, "{code}={n}");
    }
    let user = w.user.as_deref().map(Escaped::word);
    let (uid, client) = match key {
        CallerKey::Uid(uid) => (Some(*uid), None),
        CallerKey::Client(name) => (None, Some(Escaped::word(name))),
    };
    tracing::info!(
        target: "regent::audit",
        uid,
        user = user.map(tracing::field::display),
        client = client.map(tracing::field::display),
        refused = total,
        codes = %codes,
        logged_in_full = w.in_full,
        window_ms = now.saturating_duration_since(w.started).as_millis() as u64,
        "refused requests summarized"
    );
    w.counted.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_bidi_and_backslashes() {
        let s = Escaped::text("a\nb\x1b[31m\u{202e}c\\d\u{85}\u{e0041}").to_string();
        assert_eq!(s, r"a\u000ab\u001b[31m\u202ec\\d\u0085\udb40\udc41");
        assert_eq!(Escaped::text("plain-op.name").to_string(), "plain-op.name");
        // JSON text keeps its own escapes and stays valid JSON.
        let j = Escaped::json("{\"k\":\"\\n\u{2028}\"}").to_string();
        assert_eq!(j, r#"{"k":"\n\u2028"}"#);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["k"], "\n\u{2028}");
        // A name is one word: no whitespace of any kind separates fields.
        assert_eq!(
            Escaped::word("a outcome=\"ok\"\u{a0}b\u{3000}c").to_string(),
            r#"a\u0020outcome="ok"\u00a0b\u3000c"#
        );
        assert_eq!(Escaped::text("a b").to_string(), "a b");
        // A long value is cut on its own: the values after it stay in the record.
        let mut audit = Audit::start(&Arc::new(Caller {
            peer: regent_model::Peer::Unix,
            pid: None,
            uid: 1,
            gid: 1,
            user: None,
            groups: vec![],
            group_names: vec![],
        }));
        let long = "é".repeat(3000);
        audit.data(&serde_json::json!({"a": long, "n": 7, "z": "TARGET"}));
        let d = audit.data.unwrap();
        let v: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(v["z"], "TARGET");
        assert_eq!(v["n"], 7);
        assert_eq!(
            v["a"],
            format!("{}…(6000 bytes)", "é".repeat(MAX_LOGGED_VALUE))
        );
        // Cut with the length.
        assert_eq!(
            Escaped::text("abcdef").at_most(3).to_string(),
            "abc…(6 bytes)"
        );
    }

    #[test]
    fn refusals_beyond_the_first_are_counted() {
        let r = Refusals::new();
        let c = Caller {
            peer: regent_model::Peer::Unix,
            pid: None,
            uid: 4242,
            gid: 4242,
            user: None,
            groups: vec![],
            group_names: vec![],
        };
        let t = Instant::now();
        for _ in 0..REFUSALS_IN_FULL {
            assert!(r.admit(&c, "bad_request", t));
        }
        assert!(!r.admit(&c, "bad_request", t));
        assert!(!r.admit(&c, "permission_denied", t));
        assert!(r.open.load(Ordering::Relaxed));
        // A new window logs in full again.
        assert!(r.admit(&c, "bad_request", t + REFUSAL_WINDOW));
        r.flush(true);
        assert!(r.windows.lock().unwrap().is_empty());
        assert!(!r.open.load(Ordering::Relaxed));
    }
}
