//! Names and numbers of Linux capabilities, for validating `capabilities = [...]`.

/// Every Linux capability known to this build, by canonical name and number.
pub const CAPABILITIES: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// Canonical name (`CAP_NET_ADMIN`) for `name`, accepted in any case with or
/// without the `CAP_` prefix; `None` when unknown.
#[must_use]
pub fn canonical_capability(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITIES
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(n, _)| *n)
}

/// Number of a capability given its canonical or accepted name.
#[must_use]
pub fn capability_number(name: &str) -> Option<u32> {
    let canon = canonical_capability(name)?;
    CAPABILITIES
        .iter()
        .find(|(n, _)| *n == canon)
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(canonical_capability("CAP_NET_ADMIN"), Some("CAP_NET_ADMIN"));
        assert_eq!(canonical_capability("net_admin"), Some("CAP_NET_ADMIN"));
        assert_eq!(canonical_capability("cap_sys_admin"), Some("CAP_SYS_ADMIN"));
        assert_eq!(canonical_capability("CAP_NET_ADMINX"), None);
        assert_eq!(canonical_capability(""), None);
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("chown"), Some(0));
        for (i, (_, n)) in CAPABILITIES.iter().enumerate() {
            assert_eq!(i as u32, *n, "table is dense and ordered");
        }
    }
}
