//! Writing to standard output and error without panicking, and escaping what a
//! service sent before a person reads it.
//!
//! `std`'s `println!` panics when the reader has gone (`regent check | head -1`:
//! Rust ignores SIGPIPE, so the write fails with EPIPE). This module's macros, which
//! shadow `println!`, `print!`, `eprintln!` and `eprint!` for the whole crate
//! (they are declared before every other module), write through [`stdout`] and
//! [`stderr`] instead: after the first failed write to a stream, that stream is
//! left alone and the command carries on quietly; its exit status is its own.
//!
//! Human output (everything but `--json`) shows text from the service escaped with
//! [`regent_proto::text`], whether or not the output is a terminal: control, bidi
//! and invisible characters appear as `\u{XXXX}`. `--json` output is the raw JSON.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

pub use regent_proto::text::{escape_line, escape_lines};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

fn write_to(gone: &AtomicBool, mut w: impl Write, args: fmt::Arguments<'_>) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    if w.write_fmt(args).and_then(|()| w.flush()).is_err() {
        gone.store(true, Ordering::Relaxed);
    }
}

/// Write to standard output; a closed pipe (or any write error) silences it.
pub fn stdout(args: fmt::Arguments<'_>) {
    write_to(&STDOUT_GONE, io::stdout().lock(), args);
}

/// Write to standard error; a closed pipe (or any write error) silences it.
pub fn stderr(args: fmt::Arguments<'_>) {
    write_to(&STDERR_GONE, io::stderr().lock(), args);
}

/// `println!` that never panics (see the module docs).
macro_rules! println {
    () => {
        $crate::out::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics.
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::out::stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! eprintln {
    () => {
        $crate::out::stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::out::stderr(format_args!($($arg)*))
    };
}

/// `println!` of text that carries what a service sent, shown as lines: control,
/// bidi and invisible characters escaped, newline and tab kept.
macro_rules! println_escaped {
    ($($arg:tt)*) => {
        $crate::out::stdout(format_args!(
            "{}\n",
            $crate::out::escape_lines(&format!($($arg)*))
        ))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone.
    struct ClosedPipe(usize);

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.0 += 1;
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_silences_the_stream_without_panicking() {
        let gone = AtomicBool::new(false);
        let mut w = ClosedPipe(0);
        write_to(&gone, &mut w, format_args!("line {}\n", 1));
        assert!(gone.load(Ordering::Relaxed));
        assert_eq!(w.0, 1);
        write_to(&gone, &mut w, format_args!("line {}\n", 2));
        assert_eq!(w.0, 1, "nothing more is written once the reader has gone");
    }
}
