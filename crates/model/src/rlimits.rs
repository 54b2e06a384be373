//! `limits`: the resource limits (rlimits) an operation's command runs under.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Resource limits; each `None` leaves the inherited limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// `cpu`: CPU time (`RLIMIT_CPU`, in whole seconds: see
    /// [`ResourceLimits::cpu_seconds`]; soft limit, the hard one a second later,
    /// then SIGKILL).
    pub cpu: Option<Duration>,
    /// `memory`: bytes of address space (`RLIMIT_AS`).
    pub memory: Option<u64>,
    /// `open_files`: highest file descriptor number + 1 (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// `processes`: processes of the target real uid (`RLIMIT_NPROC`; ignored by
    /// the kernel for root and for holders of `CAP_SYS_ADMIN`/`CAP_SYS_RESOURCE`).
    pub processes: Option<u64>,
}

impl ResourceLimits {
    /// True when no limit is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == ResourceLimits::default()
    }

    /// The CPU limit in whole seconds as `RLIMIT_CPU` takes it: rounded down, and
    /// at least 1 (0 would be no time at all).
    #[must_use]
    pub fn cpu_seconds(&self) -> Option<u64> {
        self.cpu.map(|d| d.as_secs().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_whole_seconds_and_at_least_one() {
        let at = |ms| ResourceLimits {
            cpu: Some(Duration::from_millis(ms)),
            ..ResourceLimits::default()
        };
        assert_eq!(at(1500).cpu_seconds(), Some(1));
        assert_eq!(at(30_000).cpu_seconds(), Some(30));
        assert_eq!(at(10).cpu_seconds(), Some(1));
        assert_eq!(ResourceLimits::default().cpu_seconds(), None);
        assert!(ResourceLimits::default().is_empty());
        assert!(!at(1000).is_empty());
    }
}
