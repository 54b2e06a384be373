//! [`Confinement::apply`]: the confinement a process applies to itself after fork
//! (see `child` for what it holds and the order of the steps). Async-signal-safe:
//! typed system calls over values computed by `Confinement::prepare`.

use std::os::fd::AsFd;

use crate::child::{Confinement, SetupFailure, Step};
use crate::sys;

impl Confinement {
    /// Apply to the calling process, which must be single-threaded (a forked child, or
    /// a program that checked). Async-signal-safe.
    pub fn apply(&self) -> Result<(), SetupFailure> {
        for (res, soft, hard) in self.rlimits.iter().flatten() {
            sys::set_rlimit(*res, *soft, *hard).map_err(|e| SetupFailure::new(Step::Rlimit, e))?;
        }
        if let Some(mask) = self.caps {
            for cap in 0..=self.last_cap.min(63) {
                if mask & (1u64 << cap) == 0 {
                    sys::capbset_drop(cap).map_err(|e| SetupFailure::new(Step::BoundingSet, e))?;
                }
            }
        }
        if let Some((uid, gid)) = self.run_as {
            sys::clear_groups().map_err(|e| SetupFailure::new(Step::Groups, e))?;
            sys::set_res_gid(gid).map_err(|e| SetupFailure::new(Step::Gid, e))?;
            if self.caps.is_some() {
                sys::set_keep_caps(true).map_err(|e| SetupFailure::new(Step::KeepCaps, e))?;
            }
            sys::set_res_uid(uid).map_err(|e| SetupFailure::new(Step::Uid, e))?;
        }
        if let Some(mask) = self.caps {
            sys::capset(sys::CapSets {
                effective: mask,
                permitted: mask,
                inheritable: mask,
            })
            .map_err(|e| SetupFailure::new(Step::Capset, e))?;
            sys::ambient_clear_all().map_err(|e| SetupFailure::new(Step::Ambient, e))?;
            for cap in 0..=self.last_cap.min(63) {
                if mask & (1u64 << cap) != 0 {
                    sys::ambient_raise(cap).map_err(|e| SetupFailure::new(Step::Ambient, e))?;
                }
            }
            if self.run_as.is_some() {
                sys::set_keep_caps(false).map_err(|e| SetupFailure::new(Step::KeepCaps, e))?;
            }
        }
        if self.no_new_privs {
            sys::set_no_new_privs().map_err(|e| SetupFailure::new(Step::NoNewPrivs, e))?;
        }
        if let Some(fd) = &self.landlock {
            sys::landlock_restrict_self(fd.as_fd())
                .map_err(|e| SetupFailure::new(Step::Landlock, e))?;
        }
        if let Some(filter) = &self.seccomp {
            sys::seccomp_set_filter(filter).map_err(|e| SetupFailure::new(Step::Seccomp, e))?;
        }
        Ok(())
    }
}
