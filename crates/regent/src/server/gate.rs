//! TEMPORARY shim until regent-auth lands: secret check and failure limiter.
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The socket secret.
pub struct SharedSecret(Zeroizing<[u8; 32]>);
impl SharedSecret {
    /// From a string.
    pub fn new(s: &str) -> Self {
        SharedSecret(Zeroizing::new(Sha256::digest(s.as_bytes()).into()))
    }
    /// Constant-time check.
    pub fn verify(&self, candidate: Option<&str>) -> bool {
        let c: [u8; 32] = Sha256::digest(candidate.unwrap_or("").as_bytes()).into();
        bool::from(c.ct_eq(&*self.0)) && candidate.is_some()
    }
}
/// Failure limiter.
#[derive(Default)]
pub struct RateLimiter(Mutex<HashMap<u32, (u32, Instant)>>);
impl RateLimiter {
    /// Check.
    pub fn check(&self, k: &u32) -> Result<(), Duration> {
        let m = self.0.lock().unwrap();
        match m.get(k) {
            Some((n, until)) if *n >= 10 && Instant::now() < *until => Err(*until - Instant::now()),
            _ => Ok(()),
        }
    }
    /// Record.
    pub fn record_failure(&self, k: &u32) {
        let mut m = self.0.lock().unwrap();
        let e = m.entry(*k).or_insert((0, Instant::now()));
        e.0 += 1;
        e.1 = Instant::now() + Duration::from_secs(1);
    }
}
