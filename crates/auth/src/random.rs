//! Values from the operating system's random source: uids, request ids, uniform numbers.

use crate::{AuthError, Result};
use data_encoding::{BASE32_DNSSEC, BASE64URL_NOPAD};

/// Fill `buf` from the OS random source.
pub fn fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| AuthError::Random(e.to_string()))
}

/// Random bytes drawn for a pending uid (136 bits, so that at least 128 remain
/// after the first character is constrained).
pub const UID_BYTES: usize = 17;

/// A new pending uid: base64url without padding (23 characters) of 136 random
/// bits, whose first character is a letter or digit so that a uid is never read as
/// a command-line option (`regent call --uid UID`). Redrawing the few values whose
/// first character would be `-` or `_` costs under 0.05 bits: over 135 remain.
pub fn new_uid() -> Result<String> {
    let mut b = [0u8; UID_BYTES];
    loop {
        fill(&mut b)?;
        // The first character is the top 6 bits of the first byte; 62 and 63 are
        // '-' and '_' in the base64url alphabet.
        if b[0] >> 2 < 62 {
            return Ok(BASE64URL_NOPAD.encode(&b));
        }
    }
}

/// A new request id shown to administrators: 40 random bits, 8 lowercase characters.
/// It is not a credential (uids are); uniqueness is enforced by the store.
pub fn new_request_id() -> Result<String> {
    let mut b = [0u8; 5];
    fill(&mut b)?;
    Ok(BASE32_DNSSEC.encode(&b))
}

/// A uniform number in `0..n` (`n > 0`), by rejection sampling: no modulo bias.
pub fn uniform_below(n: u32) -> Result<u32> {
    assert!(n > 0, "uniform_below(0)");
    // The largest multiple of n that fits; draws at or above it are rejected.
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut b = [0u8; 4];
        fill(&mut b)?;
        let v = u32::from_le_bytes(b);
        if v < zone {
            return Ok(v % n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uids_are_long_url_safe_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let u = new_uid().unwrap();
            assert_eq!(u.len(), 23);
            assert!(u
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert!(seen.insert(u));
        }
        let id = new_request_id().unwrap();
        assert_eq!(id.len(), 8);
    }

    #[test]
    fn uids_never_look_like_command_line_options() {
        // `regent call --uid UID` must not read a uid as an option: none may start
        // with '-' (nor '_', for symmetry). 2000 draws would show one ~63 times.
        for _ in 0..2000 {
            let u = new_uid().unwrap();
            assert!(u.as_bytes()[0].is_ascii_alphanumeric(), "{u}");
        }
    }

    #[test]
    fn uniform_below_covers_the_range_and_stays_inside() {
        let mut counts = [0u32; 7];
        for _ in 0..7000 {
            counts[uniform_below(7).unwrap() as usize] += 1;
        }
        // Each bucket expects 1000; a loose bound that still catches a broken sampler.
        assert!(counts.iter().all(|&c| c > 700 && c < 1300), "{counts:?}");
    }
}
