//! Sans-IO framing: bytes in, complete lines out, with a hard cap.
//!
//! The reader appends what it read with [`LineBuffer::extend`] and takes lines with
//! [`LineBuffer::next_line`]. The cap is checked before anything is parsed: a line
//! longer than the cap is an error as soon as the buffer holds more than the cap
//! without a newline, so a client can never make the service hold more than
//! `max_line` bytes of one request.

use std::fmt;

/// Why framing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A line is longer than the limit.
    TooLarge,
    /// The peer closed with a partial line in the buffer.
    Truncated,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge => f.write_str("request line over the size limit"),
            FrameError::Truncated => f.write_str("connection closed in the middle of a line"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Accumulates bytes and yields newline-terminated lines of at most `max_line` bytes.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes at the front already scanned and known to hold no newline.
    scanned: usize,
    /// Start of the unconsumed data.
    start: usize,
    max_line: usize,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` bytes (newline excluded).
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::with_capacity(4096.min(max_line + 1)),
            scanned: 0,
            start: 0,
            max_line,
        }
    }

    /// The limit.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes held that are not yet part of a returned line.
    pub fn pending_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True when part of a line has arrived (a line is "started").
    pub fn has_partial(&self) -> bool {
        self.pending_len() > 0
    }

    /// How many more bytes may be read before the cap is certainly exceeded.
    /// Readers size their reads with this so memory stays bounded.
    pub fn room(&self) -> usize {
        (self.max_line + 1)
            .saturating_sub(self.pending_len())
            .max(1)
    }

    /// Append bytes read from the peer.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line without its `\n` (a trailing `\r` is kept and is
    /// harmless to JSON), `Ok(None)` if no complete line is buffered yet, or
    /// `TooLarge` if the current line already exceeds the limit.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let from = self.start + self.scanned;
        match self.buf[from..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = from + i;
                if end - self.start > self.max_line {
                    return Err(FrameError::TooLarge);
                }
                let line = self.buf[self.start..end].to_vec();
                self.start = end + 1;
                self.scanned = 0;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                } else if self.start > 64 * 1024 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(line))
            }
            None => {
                self.scanned = self.buf.len() - self.start;
                if self.scanned > self.max_line {
                    Err(FrameError::TooLarge)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Called at end of stream: an error if a partial line was left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.has_partial() {
            Err(FrameError::Truncated)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_arbitrary_chunks() {
        let mut b = LineBuffer::new(100);
        b.extend(b"{\"a\"");
        assert_eq!(b.next_line(), Ok(None));
        assert!(b.has_partial());
        b.extend(b":1}\n{\"b\":2}\n{\"c\"");
        assert_eq!(b.next_line(), Ok(Some(b"{\"a\":1}".to_vec())));
        assert_eq!(b.next_line(), Ok(Some(b"{\"b\":2}".to_vec())));
        assert_eq!(b.next_line(), Ok(None));
        assert_eq!(b.finish(), Err(FrameError::Truncated));
        b.extend(b":3}\n");
        assert_eq!(b.next_line(), Ok(Some(b"{\"c\":3}".to_vec())));
        assert_eq!(b.finish(), Ok(()));
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes_one_more_byte_fails() {
        let mut b = LineBuffer::new(10);
        b.extend(b"0123456789\n");
        assert_eq!(b.next_line(), Ok(Some(b"0123456789".to_vec())));
        b.extend(b"0123456789X\n");
        assert_eq!(b.next_line(), Err(FrameError::TooLarge));
    }

    #[test]
    fn an_endless_line_fails_before_the_buffer_grows_past_the_cap() {
        let mut b = LineBuffer::new(1000);
        let chunk = [b'a'; 100];
        let mut fed = 0;
        loop {
            let n = b.room().min(chunk.len());
            b.extend(&chunk[..n]);
            fed += n;
            match b.next_line() {
                Ok(None) => continue,
                Err(FrameError::TooLarge) => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(fed <= 1001, "fed {fed}");
    }

    #[test]
    fn scanning_is_incremental_not_quadratic() {
        // One byte at a time up to the cap: finishes quickly because already
        // scanned bytes are not scanned again.
        let mut b = LineBuffer::new(200_000);
        for _ in 0..200_000 {
            b.extend(b"x");
            assert_eq!(b.next_line(), Ok(None));
        }
        b.extend(b"\n");
        assert_eq!(b.next_line().unwrap().unwrap().len(), 200_000);
    }
}
