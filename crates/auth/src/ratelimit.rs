//! A per-key failure limiter (GCRA, a token bucket kept as one instant per key).
//!
//! The service calls [`RateLimiter::check`] on every request and
//! [`RateLimiter::record_failure`] after a failed secret, code or uid. A key may fail
//! `burst` times in a row, then once per `interval`; a limited key gets the time to
//! wait at once, nobody is ever slept, and other keys are never slowed. Memory is
//! bounded: at most `max_keys` keys are tracked, stale ones are evicted first.
//!
//! [`Limited::repeated`] tells a key that was already told to wait in this lockout
//! and asks again anyway (a flood) from one asking for the first time, so that the
//! service can answer the first at once and pace the flood on its own connection.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limiter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Failures allowed in a burst before the key is limited (at least 1).
    pub burst: u32,
    /// Time after which one failure is forgiven (the sustained rate).
    pub interval: Duration,
    /// The most keys tracked at once.
    pub max_keys: usize,
}

impl Default for RateLimitConfig {
    /// 5 failures, then one every 2 s; 65 536 keys.
    fn default() -> Self {
        RateLimitConfig {
            burst: 5,
            interval: Duration::from_secs(2),
            max_keys: 65_536,
        }
    }
}

/// A key is limited: what [`RateLimiter::check`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Limited {
    /// Time until the key may try again.
    pub wait: Duration,
    /// The key was already answered "limited" during this lockout and asks again.
    pub repeated: bool,
}

/// Per key: the theoretical arrival time, the instant at which the key is back to
/// a clean slate (limited while `tat > now + tolerance`), and whether the key has
/// been told it is limited since it last got through.
#[derive(Debug, Clone, Copy)]
struct Slate {
    tat: Instant,
    told: bool,
}

/// A thread-safe per-key failure limiter.
#[derive(Debug)]
pub struct RateLimiter<K> {
    config: RateLimitConfig,
    tats: Mutex<HashMap<K, Slate>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter with these settings (`burst` 0 is taken as 1, `max_keys` 0 as 1).
    pub fn new(config: RateLimitConfig) -> Self {
        let config = RateLimitConfig {
            burst: config.burst.max(1),
            max_keys: config.max_keys.max(1),
            ..config
        };
        RateLimiter {
            config,
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> RateLimitConfig {
        self.config
    }

    fn tolerance(&self) -> Duration {
        self.config.interval * (self.config.burst - 1)
    }

    /// `Ok` if `key` may proceed now, else `Err` with the time to wait. Never blocks
    /// beyond a short lock; a key without failures costs one hash lookup.
    pub fn check(&self, key: &K) -> Result<(), Limited> {
        self.check_at(key, Instant::now())
    }

    /// [`check`](Self::check) at a given instant.
    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), Limited> {
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slate) = tats.get_mut(key) else {
            return Ok(());
        };
        let allowed_until = now + self.tolerance();
        if slate.tat > allowed_until {
            let repeated = slate.told;
            slate.told = true;
            Err(Limited {
                wait: slate.tat - allowed_until,
                repeated,
            })
        } else {
            slate.told = false;
            Ok(())
        }
    }

    /// Count one failure for `key`.
    pub fn record_failure(&self, key: &K) {
        self.record_failure_at(key, Instant::now())
    }

    /// [`record_failure`](Self::record_failure) at a given instant.
    pub fn record_failure_at(&self, key: &K, now: Instant) {
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if !tats.contains_key(key) && tats.len() >= self.config.max_keys {
            // Evict keys back to a clean slate; if none, the least limited one.
            tats.retain(|_, slate| slate.tat > now);
            if tats.len() >= self.config.max_keys {
                if let Some(k) = tats
                    .iter()
                    .min_by_key(|(_, slate)| slate.tat)
                    .map(|(k, _)| k.clone())
                {
                    tats.remove(&k);
                }
            }
        }
        let slate = tats.entry(key.clone()).or_insert(Slate {
            tat: now,
            told: false,
        });
        // Never let the debt grow past one interval beyond the limit: a limited key
        // waits at most `interval` after its last failure.
        let cap = now + self.tolerance() + self.config.interval;
        slate.tat = (slate.tat.max(now) + self.config.interval).min(cap);
    }

    /// Forget every key whose slate is clean at `now` (also done lazily when full).
    pub fn evict_stale(&self, now: Instant) {
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        tats.retain(|_, slate| slate.tat > now);
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.tats.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, max_keys: usize) -> RateLimiter<u32> {
        RateLimiter::new(RateLimitConfig {
            burst,
            interval: Duration::from_secs(2),
            max_keys,
        })
    }

    #[test]
    fn burst_then_limited_then_recovers() {
        let l = limiter(3, 10);
        let t0 = Instant::now();
        assert!(l.check_at(&1000, t0).is_ok());
        for _ in 0..2 {
            l.record_failure_at(&1000, t0);
            assert!(l.check_at(&1000, t0).is_ok());
        }
        l.record_failure_at(&1000, t0);
        let limited = l.check_at(&1000, t0).unwrap_err();
        assert_eq!(limited.wait, Duration::from_secs(2));
        assert!(!limited.repeated, "the first answer of a lockout");
        let again = l
            .check_at(&1000, t0 + Duration::from_millis(10))
            .unwrap_err();
        assert!(again.repeated, "asking again during the lockout");
        // Another key is not affected.
        assert!(l.check_at(&1001, t0).is_ok());
        // Just before the wait is over: still limited; after: allowed once more.
        assert!(l.check_at(&1000, t0 + Duration::from_millis(1999)).is_err());
        let t1 = t0 + Duration::from_secs(2);
        assert!(l.check_at(&1000, t1).is_ok());
        l.record_failure_at(&1000, t1);
        // Through once, so the next lockout's first answer is not a repeat.
        assert!(!l.check_at(&1000, t1).unwrap_err().repeated);
        // Long after, the key is clean and evictable.
        let t2 = t1 + Duration::from_secs(60);
        assert!(l.check_at(&1000, t2).is_ok());
        l.evict_stale(t2);
        assert!(l.is_empty());
    }

    #[test]
    fn hammering_does_not_extend_the_wait_without_bound() {
        let l = limiter(2, 10);
        let t0 = Instant::now();
        for _ in 0..1000 {
            l.record_failure_at(&7, t0);
        }
        assert!(l.check_at(&7, t0).unwrap_err().wait <= Duration::from_secs(2));
    }

    #[test]
    fn memory_is_bounded_and_stale_keys_go_first() {
        let l = limiter(1, 4);
        let t0 = Instant::now();
        for k in 0..4 {
            l.record_failure_at(&k, t0);
        }
        assert_eq!(l.len(), 4);
        // Later, keys 0..4 are stale: adding one evicts them all.
        let t1 = t0 + Duration::from_secs(10);
        l.record_failure_at(&100, t1);
        assert_eq!(l.len(), 1);
        // When nothing is stale, the least limited key makes room; the cap holds.
        for k in 200..300 {
            l.record_failure_at(&k, t1 + Duration::from_millis(k as u64));
            assert!(l.len() <= 4);
        }
    }

    #[test]
    fn is_thread_safe() {
        let l = std::sync::Arc::new(limiter(1000, 100));
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        l.record_failure(&i);
                        let _ = l.check(&i);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(l.len(), 4);
    }
}
