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
///
/// Bytes arrive either copied in with [`extend`](Self::extend) or read straight into
/// the buffer: [`spare`](Self::spare) lends the free space, [`commit`](Self::commit)
/// counts what was read into it. Either way the buffer never holds more than one
/// line's cap beyond what has been returned.
#[derive(Debug)]
pub struct LineBuffer {
    /// Storage; `buf[..end]` holds data, the rest is initialised spare room that
    /// only grows, so lending it never zeroes memory twice.
    buf: Vec<u8>,
    /// End of the data.
    end: usize,
    /// Bytes after `start` already scanned and known to hold no newline.
    scanned: usize,
    /// Start of the unconsumed data.
    start: usize,
    max_line: usize,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` bytes (newline excluded).
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            end: 0,
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
        self.end - self.start
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

    /// Drop consumed bytes when nothing is pending, so the buffer starts over.
    fn reset_if_drained(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
        }
    }

    /// Free space to read into: at least one byte, at most `max` and at most
    /// [`room`](Self::room). Follow with [`commit`](Self::commit).
    pub fn spare(&mut self, max: usize) -> &mut [u8] {
        self.reset_if_drained();
        let want = self.room().min(max.max(1));
        if self.buf.len() < self.end + want {
            self.buf.resize(self.end + want, 0);
        }
        &mut self.buf[self.end..self.end + want]
    }

    /// Count `n` bytes just read into [`spare`](Self::spare).
    ///
    /// # Panics
    /// If `n` is more than the spare room lent.
    pub fn commit(&mut self, n: usize) {
        assert!(self.end + n <= self.buf.len(), "committed more than lent");
        self.end += n;
    }

    /// Append bytes read from the peer.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.reset_if_drained();
        self.buf.truncate(self.end);
        self.buf.extend_from_slice(bytes);
        self.end = self.buf.len();
    }

    /// The next complete line without its `\n` (a trailing `\r` is kept and is
    /// harmless to JSON), `Ok(None)` if no complete line is buffered yet, or
    /// `TooLarge` if the current line already exceeds the limit.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let from = self.start + self.scanned;
        match self.buf[from..self.end].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let at = from + i;
                if at - self.start > self.max_line {
                    return Err(FrameError::TooLarge);
                }
                let line = self.buf[self.start..at].to_vec();
                self.start = at + 1;
                self.scanned = 0;
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                } else if self.start > 64 * 1024 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                }
                Ok(Some(line))
            }
            None => {
                self.scanned = self.end - self.start;
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

    #[test]
    fn reading_in_place_frames_like_extend_and_stays_bounded() {
        let input = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
        for step in 1..input.len() {
            let mut b = LineBuffer::new(100);
            let mut lines = Vec::new();
            for piece in input.chunks(step) {
                let spare = b.spare(piece.len());
                let n = spare.len().min(piece.len());
                spare[..n].copy_from_slice(&piece[..n]);
                b.commit(n);
                while let Some(l) = b.next_line().unwrap() {
                    lines.push(l);
                }
            }
            assert_eq!(lines.len(), 3, "step {step}");
            assert_eq!(lines[2], b"{\"c\":3}".to_vec());
            assert_eq!(b.finish(), Ok(()));
        }
        // An endless line: the spare room never lets the buffer pass the cap.
        let mut b = LineBuffer::new(50);
        let mut held = 0;
        loop {
            let spare = b.spare(8192);
            assert!(held + spare.len() <= 51, "{held} + {}", spare.len());
            spare.fill(b'x');
            let n = spare.len();
            b.commit(n);
            held += n;
            if b.next_line() == Err(FrameError::TooLarge) {
                break;
            }
        }
    }

    #[test]
    #[should_panic(expected = "committed more than lent")]
    fn committing_more_than_lent_panics() {
        let mut b = LineBuffer::new(10);
        let n = b.spare(4).len();
        b.commit(n + 1);
    }
}
