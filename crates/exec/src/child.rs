//! The confinement a process applies to itself: computed by [`Confinement::prepare`]
//! before fork (may allocate, log, open files), applied by [`Confinement::apply`]
//! after fork (async-signal-safe: raw system calls over prepared values only; it
//! lives in `postfork::confine`, with everything else that runs after a fork).
//!
//! Order of [`Confinement::apply`]: resource limits; bounding set (needs
//! `CAP_SETPCAP`, so while still privileged); supplementary groups, gid;
//! `PR_SET_KEEPCAPS` then uid (so the permitted set survives leaving uid 0);
//! `capset` (effective = permitted = inheritable = declared); ambient set = declared;
//! `no_new_privs`; Landlock; the sandbox's seccomp filter. The ambient set is what carries the capabilities of a
//! non-root user across `execve`; for root, the reduced bounding and inheritable
//! sets cap what `execve` grants.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;

use rustix::process::Resource;

use crate::caps::{self, Capability};
use crate::describe::{sandbox_protections, KernelSupport, ProtectionState};
use crate::error::ExecError;
use crate::landlock;
use crate::policy::ExecPolicy;
use crate::{seccomp, sys};
use regent_model::{OnUnsupported, Sandbox};

/// A step of [`Confinement::apply`], reported when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// `setrlimit`.
    Rlimit = 1,
    /// Reducing the bounding set.
    BoundingSet = 2,
    /// `setgroups([])`.
    Groups = 3,
    /// `setresgid`.
    Gid = 4,
    /// `PR_SET_KEEPCAPS`.
    KeepCaps = 5,
    /// `setresuid`.
    Uid = 6,
    /// `capset`.
    Capset = 7,
    /// Setting the ambient set.
    Ambient = 8,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs = 9,
    /// `landlock_restrict_self`.
    Landlock = 10,
    /// Preparing the child (signal mask, start of the command by the supervisor).
    Fork = 11,
    /// `PR_SET_PDEATHSIG`.
    DeathSignal = 12,
    /// `execve` of the command itself (reported as [`ExecError::NotFound`] or
    /// [`ExecError::Spawn`], as a failed start).
    Exec = 13,
    /// Installing the sandbox's seccomp filter.
    Seccomp = 20,
}

impl Step {
    /// A short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Rlimit => "setrlimit",
            Step::BoundingSet => "capability bounding set",
            Step::Groups => "setgroups",
            Step::Gid => "setresgid",
            Step::KeepCaps => "PR_SET_KEEPCAPS",
            Step::Uid => "setresuid",
            Step::Capset => "capset",
            Step::Ambient => "ambient capabilities",
            Step::NoNewPrivs => "no_new_privs",
            Step::Landlock => "landlock_restrict_self",
            Step::Fork => "supervisor fork",
            Step::DeathSignal => "PR_SET_PDEATHSIG",
            Step::Exec => "execve",
            Step::Seccomp => "seccomp filter",
        }
    }

    fn from_u8(v: u8) -> Option<Step> {
        const ALL: [Step; 14] = [
            Step::Rlimit,
            Step::BoundingSet,
            Step::Groups,
            Step::Gid,
            Step::KeepCaps,
            Step::Uid,
            Step::Capset,
            Step::Ambient,
            Step::NoNewPrivs,
            Step::Landlock,
            Step::Fork,
            Step::DeathSignal,
            Step::Exec,
            Step::Seccomp,
        ];
        ALL.iter().copied().find(|s| *s as u8 == v)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step and its errno (fixed size, so a forked child can report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupFailure {
    /// Which step.
    pub step: Step,
    /// The errno.
    pub errno: i32,
}

impl SetupFailure {
    pub(crate) fn new(step: Step, e: io::Error) -> SetupFailure {
        SetupFailure {
            step,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// Five bytes: step, errno (little endian).
    pub(crate) fn encode(self) -> [u8; 5] {
        let e = self.errno.to_le_bytes();
        [self.step as u8, e[0], e[1], e[2], e[3]]
    }

    /// The inverse of `encode`.
    pub(crate) fn decode(b: &[u8]) -> Option<SetupFailure> {
        let step = Step::from_u8(*b.first()?)?;
        let errno = i32::from_le_bytes(b.get(1..5)?.try_into().ok()?);
        Some(SetupFailure { step, errno })
    }

    /// As the crate's error.
    pub fn into_error(self) -> ExecError {
        ExecError::setup(self.step.as_str(), io::Error::from_raw_os_error(self.errno))
    }
}

/// Maximum number of rlimits (cpu, memory, files, processes).
const MAX_RLIMITS: usize = 4;

/// Everything a process applies to itself to take on a policy's privileges,
/// computed in advance.
pub struct Confinement {
    pub(crate) rlimits: [Option<(Resource, u64, u64)>; MAX_RLIMITS],
    pub(crate) caps: Option<u64>,
    pub(crate) last_cap: u32,
    /// (uid, gid) of the resolved `run_as`.
    pub(crate) run_as: Option<(u32, u32)>,
    pub(crate) no_new_privs: bool,
    pub(crate) landlock: Option<OwnedFd>,
    /// The sandbox's seccomp program (built before fork).
    pub(crate) seccomp: Option<Vec<libc::sock_filter>>,
}

impl fmt::Debug for Confinement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Confinement")
            .field("rlimits", &self.rlimits)
            .field("caps", &self.caps.map(|m| format!("{m:#x}")))
            .field("run_as", &self.run_as)
            .field("no_new_privs", &self.no_new_privs)
            .field("landlock", &self.landlock.is_some())
            .field("seccomp", &self.seccomp.as_ref().map(Vec::len))
            .finish()
    }
}

impl Confinement {
    /// Compute the confinement for `policy`: check the kernel supports it (refusing
    /// or warning per `on_unsupported`), check this process holds the capabilities
    /// to hand out, and build the Landlock ruleset. Not async-signal-safe.
    pub fn prepare(policy: &ExecPolicy) -> Result<Confinement, ExecError> {
        let warn_or_refuse = |feature: String| -> Result<(), ExecError> {
            match policy.on_unsupported {
                OnUnsupported::Refuse => Err(ExecError::Unsupported { feature }),
                OnUnsupported::Warn => {
                    tracing::warn!(%feature, "kernel lacks a requested protection; running without it");
                    Ok(())
                }
            }
        };

        let last_cap =
            caps::kernel_last_cap().map_err(|e| ExecError::setup("read cap_last_cap", e))?;
        let caps = match &policy.capabilities {
            None => None,
            Some(list) => {
                let mut mask = 0u64;
                for cap in list {
                    if cap.number() > last_cap {
                        warn_or_refuse(format!(
                            "capability {cap} (kernel knows up to {last_cap})"
                        ))?;
                    } else {
                        mask |= cap.bit();
                    }
                }
                let held = sys::capget().map_err(|e| ExecError::setup("capget", e))?;
                let missing = mask & !held.permitted;
                if missing != 0 {
                    let names: Vec<String> = Capability::in_mask(missing)
                        .iter()
                        .map(Capability::to_string)
                        .collect();
                    return Err(ExecError::setup(
                        "capabilities",
                        io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            format!("the service does not hold {}", names.join(", ")),
                        ),
                    ));
                }
                Some(mask)
            }
        };

        let (landlock, seccomp) = match &policy.sandbox {
            None => (None, None),
            Some(rules) => {
                if !policy.no_new_privs {
                    return Err(ExecError::Invalid {
                        reason: "a Landlock sandbox requires no_new_privs".into(),
                    });
                }
                prepare_sandbox(policy, rules)?
            }
        };

        // The executor does no user-database lookup: a `run_as` still naming an
        // account (or leaving the group to the user's primary one) is refused.
        let run_as = match &policy.run_as {
            None => None,
            Some(r) => Some(r.resolved().ok_or_else(|| ExecError::Invalid {
                reason: format!("run_as {r} is not resolved to a uid and a gid"),
            })?),
        };

        let l = &policy.limits;
        let rlimits = [
            l.cpu_seconds()
                .map(|s| (Resource::Cpu, s, s.saturating_add(1))),
            l.memory.map(|b| (Resource::As, b, b)),
            l.open_files.map(|n| (Resource::Nofile, n, n)),
            l.processes.map(|n| (Resource::Nproc, n, n)),
        ];

        Ok(Confinement {
            rlimits,
            caps,
            last_cap,
            run_as,
            no_new_privs: policy.no_new_privs,
            landlock,
            seccomp,
        })
    }

    /// True when a Landlock ruleset will be enforced.
    pub fn has_landlock(&self) -> bool {
        self.landlock.is_some()
    }
}

type Prepared = (Option<OwnedFd>, Option<Vec<libc::sock_filter>>);

/// The Landlock ruleset and seccomp program of a declared sandbox. Each protection
/// the kernel lacks is refused or warned about on its own (`on_unsupported`), so a
/// kernel without signal scoping still gets the filesystem rules.
fn prepare_sandbox(policy: &ExecPolicy, rules: &Sandbox) -> Result<Prepared, ExecError> {
    let kernel = KernelSupport::current();
    let missing: Vec<String> = sandbox_protections(policy, &kernel)
        .into_iter()
        .filter_map(|p| match p.state {
            ProtectionState::Missing { reason } => Some(format!("{} ({reason})", p.what)),
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        match policy.on_unsupported {
            OnUnsupported::Refuse => {
                return Err(ExecError::Unsupported {
                    feature: missing.join("; "),
                })
            }
            OnUnsupported::Warn => {
                for feature in &missing {
                    tracing::warn!(%feature, "kernel lacks a requested protection; running without it");
                }
            }
        }
    }
    let allow = &rules.allow;
    let landlock = match kernel.landlock_abi {
        None => None,
        Some(abi) => {
            let net = if !allow.tcp && abi >= landlock::ABI_NET {
                landlock::NET_TCP
            } else {
                0
            };
            let mut scoped = 0;
            if abi >= landlock::ABI_SCOPE {
                if !allow.signals {
                    scoped |= landlock::SCOPE_SIGNAL;
                }
                if !allow.unix {
                    scoped |= landlock::SCOPE_ABSTRACT_UNIX;
                }
            }
            Some(landlock::build_ruleset(rules, abi, net, scoped)?)
        }
    };
    let filter = match (kernel.seccomp, seccomp::native_arch()) {
        (true, Some(arch)) => seccomp::build_for(arch, allow),
        _ => None,
    };
    Ok((landlock, filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_round_trips() {
        let f = SetupFailure {
            step: Step::Uid,
            errno: libc::EPERM,
        };
        assert_eq!(SetupFailure::decode(&f.encode()), Some(f));
        assert_eq!(SetupFailure::decode(&[0, 1, 0, 0, 0]), None);
        assert_eq!(SetupFailure::decode(&[6, 1]), None);
    }
}
