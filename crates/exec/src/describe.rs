//! A one-line human summary of a policy, for `regent check`.

use crate::caps::Capability;
use crate::policy::{ExecPolicy, Unsupported};

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
    parts.push(match policy.run_as {
        Some(r) => format!("uid {} gid {} (no supplementary groups)", r.uid, r.gid),
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
    parts.push(match &policy.landlock {
        None => "landlock: off".to_string(),
        Some(rules) => {
            let list = |v: &[std::path::PathBuf]| {
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "landlock: read [{}] write [{}]",
                list(&rules.read),
                list(&rules.write)
            )
        }
    });
    let l = &policy.limits;
    let mut limits = Vec::new();
    if let Some(s) = l.cpu_seconds {
        limits.push(format!("cpu {s}s"));
    }
    if let Some(b) = l.memory_bytes {
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
    if policy.on_unsupported == Unsupported::Warn {
        parts.push("runs with a warning where the kernel lacks a protection".to_string());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{LandlockRules, RunAs};

    #[test]
    fn summarises() {
        let p = ExecPolicy {
            run_as: Some(RunAs { uid: 0, gid: 0 }),
            capabilities: Some(vec![Capability::NET_ADMIN]),
            landlock: Some(LandlockRules {
                read: vec!["/usr".into()],
                write: vec![],
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
}
