//! A one-line human summary of a policy, and the sandbox protections the running
//! kernel gives it, for `regent check` (the same list decides, before each run,
//! what is missing and so refused or warned about).

use std::sync::OnceLock;

use crate::caps::Capability;
use crate::landlock::{ABI_NET, ABI_SCOPE};
use crate::policy::ExecPolicy;
use crate::{landlock, seccomp};
use regent_model::OnUnsupported;

/// What the running kernel (and this build) offers a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSupport {
    /// The Landlock ABI version, `None` without Landlock.
    pub landlock_abi: Option<u32>,
    /// The sandbox's seccomp filter can be installed.
    pub seccomp: bool,
}

impl KernelSupport {
    /// Ask the kernel (once per process; the answer cannot change while it runs).
    pub fn current() -> KernelSupport {
        static PROBED: OnceLock<KernelSupport> = OnceLock::new();
        *PROBED.get_or_init(|| KernelSupport {
            landlock_abi: landlock::abi_version(),
            seccomp: seccomp::available(),
        })
    }

    /// A one-line summary, e.g. `Landlock ABI 7, seccomp filter available`.
    pub fn summary(&self) -> String {
        format!(
            "{}, seccomp filter {}",
            match self.landlock_abi {
                Some(abi) => format!("Landlock ABI {abi}"),
                None => "no Landlock".to_string(),
            },
            if self.seccomp {
                "available"
            } else {
                "unavailable"
            }
        )
    }
}

/// Whether a protection applies to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectionState {
    /// The kernel enforces it.
    Enforced,
    /// The operation opted out of it (`sandbox.allow`).
    Allowed,
    /// The kernel lacks it: `on_unsupported` refuses the run or runs without it.
    Missing {
        /// What the kernel lacks.
        reason: String,
    },
}

/// One protection of a declared sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// What it denies, e.g. `TCP bind and connect (Landlock ABI 4)`.
    pub what: &'static str,
    /// The `sandbox.allow` name that lifts it, if any.
    pub allow_name: Option<&'static str>,
    /// Whether it applies.
    pub state: ProtectionState,
}

impl Protection {
    /// `WHAT: denied`, `WHAT: allowed (sandbox.allow = "NAME")` or
    /// `WHAT: NOT ENFORCED on this kernel (REASON)`.
    pub fn line(&self) -> String {
        match &self.state {
            ProtectionState::Enforced => format!("{}: denied", self.what),
            ProtectionState::Allowed => format!(
                "{}: allowed (sandbox.allow = \"{}\")",
                self.what,
                self.allow_name.unwrap_or("?")
            ),
            ProtectionState::Missing { reason } => {
                format!("{}: NOT ENFORCED on this kernel ({reason})", self.what)
            }
        }
    }
}

/// The protections a declared sandbox asks for and whether `kernel` gives each.
/// Empty for a policy without a sandbox (`sandbox: None`).
pub fn sandbox_protections(policy: &ExecPolicy, kernel: &KernelSupport) -> Vec<Protection> {
    let Some(sandbox) = &policy.sandbox else {
        return Vec::new();
    };
    let allow = &sandbox.allow;
    let abi = kernel.landlock_abi;
    let landlock_needs = |min: u32| match abi {
        Some(v) if v >= min => ProtectionState::Enforced,
        Some(v) => ProtectionState::Missing {
            reason: format!("needs Landlock ABI {min}, the kernel has {v}"),
        },
        None => ProtectionState::Missing {
            reason: format!("needs Landlock ABI {min}, the kernel has no Landlock"),
        },
    };
    let seccomp = || {
        if kernel.seccomp {
            ProtectionState::Enforced
        } else {
            ProtectionState::Missing {
                reason: seccomp::unsupported_reason()
                    .unwrap_or_else(|| "seccomp filter unavailable".into()),
            }
        }
    };
    let opt = |allowed: bool, state: ProtectionState| {
        if allowed {
            ProtectionState::Allowed
        } else {
            state
        }
    };
    vec![
        Protection {
            what: "files outside the read/write lists (Landlock)",
            allow_name: None,
            state: landlock_needs(1),
        },
        Protection {
            what: "chmod, chown, utime, xattr and chattr on any file (seccomp)",
            allow_name: Some("metadata"),
            state: opt(allow.metadata, seccomp()),
        },
        Protection {
            what: "creating Unix sockets, so connecting to any (seccomp)",
            allow_name: Some("unix"),
            state: opt(allow.unix, seccomp()),
        },
        Protection {
            what: "TCP bind and connect (Landlock ABI 4)",
            allow_name: Some("tcp"),
            state: opt(allow.tcp, landlock_needs(ABI_NET)),
        },
        Protection {
            what: "signals to processes outside the sandbox (Landlock ABI 6)",
            allow_name: Some("signals"),
            state: opt(allow.signals, landlock_needs(ABI_SCOPE)),
        },
    ]
}

fn human_bytes(b: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if b >= MIB && (b / MIB) * MIB == b {
        format!("{}MiB", b / MIB)
    } else {
        format!("{b}B")
    }
}

/// Describe the privilege `policy` gives a command, e.g.
/// `uid 65534 gid 65534 (no supplementary groups), caps: net_admin, no_new_privs,
/// landlock: read [/usr] write [/var/lib/x], limits: nofile 64, timeout 10s (grace 2s)`.
pub fn describe(policy: &ExecPolicy) -> String {
    let mut parts = Vec::new();
    parts.push(match &policy.run_as {
        Some(r) => match r.resolved() {
            Some((uid, gid)) => format!("uid {uid} gid {gid} (no supplementary groups)"),
            None => format!("run_as {r} (not resolved to ids: refused)"),
        },
        None => "the service's uid and gid".to_string(),
    });
    parts.push(match &policy.capabilities {
        None => "caps: inherited from the service".to_string(),
        Some(list) if list.is_empty() => "caps: none".to_string(),
        Some(list) => {
            let names: Vec<&str> = list.iter().map(|c: &Capability| c.name()).collect();
            format!("caps: {}", names.join(", "))
        }
    });
    if policy.no_new_privs {
        parts.push("no_new_privs".to_string());
    }
    parts.push(match &policy.sandbox {
        None => "landlock: off".to_string(),
        Some(sandbox) => {
            let list = |v: &[std::path::PathBuf]| {
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let allow = sandbox.allow.names();
            format!(
                "landlock: read [{}] write [{}]{}",
                list(&sandbox.read),
                list(&sandbox.write),
                if allow.is_empty() {
                    String::new()
                } else {
                    format!(" allow [{}]", allow.join(", "))
                }
            )
        }
    });
    let l = &policy.limits;
    let mut limits = Vec::new();
    if let Some(s) = l.cpu_seconds() {
        limits.push(format!("cpu {s}s"));
    }
    if let Some(b) = l.memory {
        limits.push(format!("memory {}", human_bytes(b)));
    }
    if let Some(n) = l.open_files {
        limits.push(format!("nofile {n}"));
    }
    if let Some(n) = l.processes {
        limits.push(format!("nproc {n}"));
    }
    if !limits.is_empty() {
        parts.push(format!("limits: {}", limits.join(" ")));
    }
    parts.push(format!(
        "timeout {:?} (grace {:?})",
        policy.timeout, policy.kill_grace
    ));
    parts.push(format!(
        "output cap {}",
        human_bytes(policy.max_output as u64)
    ));
    if policy.on_unsupported == OnUnsupported::Warn {
        parts.push("runs with a warning where the kernel lacks a protection".to_string());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use regent_model::{RunAs, Sandbox, SandboxAllow};

    #[test]
    fn summarises() {
        let p = ExecPolicy {
            run_as: Some(RunAs::ids(0, 0)),
            capabilities: Some(vec![Capability::NET_ADMIN]),
            sandbox: Some(Sandbox {
                read: vec!["/usr".into()],
                ..Sandbox::default()
            }),
            ..ExecPolicy::default()
        };
        let d = describe(&p);
        assert!(d.starts_with("uid 0 gid 0"), "{d}");
        assert!(d.contains("caps: net_admin"), "{d}");
        assert!(d.contains("landlock: read [/usr] write []"), "{d}");
        assert!(d.contains("output cap 1MiB"), "{d}");
        let d = describe(&ExecPolicy::default());
        assert!(
            d.contains("caps: inherited") && d.contains("landlock: off"),
            "{d}"
        );
    }

    #[test]
    fn protections_are_judged_per_feature() {
        let usr = Sandbox {
            read: vec!["/usr".into()],
            ..Sandbox::default()
        };
        let sandboxed = ExecPolicy {
            sandbox: Some(usr.clone()),
            ..ExecPolicy::default()
        };
        let missing = |p: &ExecPolicy, k: &KernelSupport| -> Vec<&'static str> {
            sandbox_protections(p, k)
                .into_iter()
                .filter(|x| matches!(x.state, ProtectionState::Missing { .. }))
                .map(|x| x.what)
                .collect()
        };
        // Debian 12 (Landlock ABI 2): the filesystem rules and the filter hold, only
        // TCP rules and signal scoping are missing.
        let debian = KernelSupport {
            landlock_abi: Some(2),
            seccomp: true,
        };
        let m = missing(&sandboxed, &debian);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].starts_with("TCP") && m[1].starts_with("signals"),
            "{m:?}"
        );
        // Opting in to what is missing leaves nothing to refuse.
        let opted = ExecPolicy {
            sandbox: Some(Sandbox {
                allow: SandboxAllow::from_names(["tcp", "signals"]).unwrap(),
                ..usr
            }),
            ..sandboxed.clone()
        };
        assert!(missing(&opted, &debian).is_empty());
        let full = KernelSupport {
            landlock_abi: Some(6),
            seccomp: true,
        };
        let all = sandbox_protections(&sandboxed, &full);
        assert_eq!(all.len(), 5);
        assert!(all.iter().all(|p| p.state == ProtectionState::Enforced));
        let none = KernelSupport {
            landlock_abi: None,
            seccomp: false,
        };
        assert_eq!(missing(&sandboxed, &none).len(), 5);
        let lines: Vec<String> = sandbox_protections(&opted, &full)
            .iter()
            .map(Protection::line)
            .collect();
        assert!(
            lines[3].contains("allowed (sandbox.allow = \"tcp\")"),
            "{lines:?}"
        );
        assert!(sandbox_protections(&ExecPolicy::default(), &full).is_empty());
        assert!(describe(&opted).contains("allow [tcp, signals]"));
    }
}
