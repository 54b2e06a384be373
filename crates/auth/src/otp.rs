//! One-time numeric codes (for email): drawn uniformly from the OS random source,
//! kept only as a salted HMAC-SHA256, checked in constant time.

use crate::{random, Result};
use data_encoding::HEXLOWER;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The fewest digits a code may have.
pub const MIN_DIGITS: u32 = 6;
/// The most digits a code may have.
pub const MAX_DIGITS: u32 = 9;

/// A new code of `digits` digits (clamped to 6..=9), uniform over all such codes.
pub fn generate(digits: u32) -> Result<Zeroizing<String>> {
    let digits = digits.clamp(MIN_DIGITS, MAX_DIGITS);
    let n = random::uniform_below(10u32.pow(digits))?;
    Ok(Zeroizing::new(format!(
        "{n:0width$}",
        width = digits as usize
    )))
}

/// A code as stored: a random salt and HMAC-SHA256(salt, code), both hex.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashedCode {
    /// 128-bit random salt, hex.
    pub salt: String,
    /// HMAC-SHA256 keyed by the salt over the code, hex.
    pub hash: String,
}

impl std::fmt::Debug for HashedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashedCode(<redacted>)")
    }
}

fn mac(salt: &[u8], code: &str) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(salt).expect("HMAC takes any key length");
    m.update(code.as_bytes());
    m.finalize().into_bytes().into()
}

impl HashedCode {
    /// Hash `code` with a fresh salt.
    pub fn new(code: &str) -> Result<HashedCode> {
        let mut salt = [0u8; 16];
        random::fill(&mut salt)?;
        Ok(HashedCode {
            salt: HEXLOWER.encode(&salt),
            hash: HEXLOWER.encode(&mac(&salt, code)),
        })
    }

    /// Whether `candidate` (surrounding whitespace ignored) is the code. Constant
    /// time in the comparison; a corrupt record never matches.
    #[must_use]
    pub fn verify(&self, candidate: &str) -> bool {
        let (Ok(salt), Ok(want)) = (
            HEXLOWER.decode(self.salt.as_bytes()),
            HEXLOWER.decode(self.hash.as_bytes()),
        ) else {
            return false;
        };
        let got = mac(&salt, candidate.trim());
        got.ct_eq(want.as_slice()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_right_shape_and_vary() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let c = generate(6).unwrap();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
            seen.insert(c.to_string());
        }
        assert!(seen.len() > 190);
        assert_eq!(generate(3).unwrap().len(), 6);
        assert_eq!(generate(8).unwrap().len(), 8);
        assert_eq!(generate(20).unwrap().len(), 9);
    }

    #[test]
    fn first_digit_is_uniform_including_zero() {
        let mut counts = [0u32; 10];
        for _ in 0..5000 {
            counts[(generate(6).unwrap().as_bytes()[0] - b'0') as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 350 && c < 650), "{counts:?}");
    }

    #[test]
    fn hashed_codes_verify_only_the_code_and_are_salted() {
        let h = HashedCode::new("042917").unwrap();
        assert!(h.verify("042917"));
        assert!(h.verify(" 042917\n"));
        assert!(!h.verify("042918"));
        assert!(!h.verify("42917"));
        assert!(!h.verify(""));
        let h2 = HashedCode::new("042917").unwrap();
        assert_ne!(h.hash, h2.hash, "salted");
        assert!(!format!("{h:?}").contains(&h.hash));
        let corrupt = HashedCode {
            salt: "zz".into(),
            hash: h.hash.clone(),
        };
        assert!(!corrupt.verify("042917"));
        let state = serde_json::to_value(&h).unwrap();
        let back: HashedCode = serde_json::from_value(state).unwrap();
        assert!(back.verify("042917"));
    }
}
