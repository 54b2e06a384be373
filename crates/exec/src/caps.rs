//! Linux capabilities by name: parsing (`CAP_NET_ADMIN` or `net_admin`), display,
//! and sets as 64-bit masks.

use std::fmt;

/// Capability names in kernel order (index = capability number).
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// One Linux capability (its kernel number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(u8);

/// Why a capability name was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {0:?} (expected e.g. CAP_NET_ADMIN or net_admin)")]
pub struct UnknownCapability(pub String);

impl Capability {
    /// `CAP_CHOWN`.
    pub const CHOWN: Capability = Capability(0);
    /// `CAP_DAC_OVERRIDE`.
    pub const DAC_OVERRIDE: Capability = Capability(1);
    /// `CAP_KILL`.
    pub const KILL: Capability = Capability(5);
    /// `CAP_SETGID`.
    pub const SETGID: Capability = Capability(6);
    /// `CAP_SETUID`.
    pub const SETUID: Capability = Capability(7);
    /// `CAP_SETPCAP`.
    pub const SETPCAP: Capability = Capability(8);
    /// `CAP_NET_BIND_SERVICE`.
    pub const NET_BIND_SERVICE: Capability = Capability(10);
    /// `CAP_NET_ADMIN`.
    pub const NET_ADMIN: Capability = Capability(12);
    /// `CAP_NET_RAW`.
    pub const NET_RAW: Capability = Capability(13);
    /// `CAP_SYS_ADMIN`.
    pub const SYS_ADMIN: Capability = Capability(21);

    /// Parse `CAP_NET_ADMIN`, `cap_net_admin` or `net_admin` (case-insensitive).
    pub fn parse(name: &str) -> Result<Capability, UnknownCapability> {
        let lower = name.trim().to_ascii_lowercase();
        let short = lower.strip_prefix("cap_").unwrap_or(&lower);
        NAMES
            .iter()
            .position(|n| *n == short)
            .map(|i| Capability(i as u8))
            .ok_or_else(|| UnknownCapability(name.to_string()))
    }

    /// The capability with kernel number `n`, if this crate knows it.
    pub fn from_number(n: u32) -> Option<Capability> {
        (n < NAMES.len() as u32).then_some(Capability(n as u8))
    }

    /// The kernel number.
    pub fn number(self) -> u32 {
        u32::from(self.0)
    }

    /// Short lower-case name, e.g. `net_admin`.
    pub fn name(self) -> &'static str {
        NAMES[usize::from(self.0)]
    }

    /// The bit of this capability in a 64-bit set.
    pub fn bit(self) -> u64 {
        1u64 << self.0
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAP_{}", self.name().to_ascii_uppercase())
    }
}

impl std::str::FromStr for Capability {
    type Err = UnknownCapability;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::parse(s)
    }
}

/// Every capability this crate knows, in kernel order.
pub fn all_capabilities() -> Vec<Capability> {
    (0..NAMES.len() as u8).map(Capability).collect()
}

/// The 64-bit mask of `caps`.
pub fn mask_of(caps: &[Capability]) -> u64 {
    caps.iter().fold(0, |m, c| m | c.bit())
}

/// The capabilities in `mask`, in kernel order (unknown bits are skipped).
pub fn caps_in(mask: u64) -> Vec<Capability> {
    all_capabilities()
        .into_iter()
        .filter(|c| mask & c.bit() != 0)
        .collect()
}

/// The highest capability number the running kernel knows
/// (`/proc/sys/kernel/cap_last_cap`). Read once per process (the kernel's value
/// cannot change while it runs); a failed read is not remembered.
pub fn kernel_last_cap() -> std::io::Result<u32> {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(&v) = LAST.get() {
        return Ok(v);
    }
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?;
    let v = text
        .trim()
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad cap_last_cap"))?;
    Ok(*LAST.get_or_init(|| v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(
            Capability::parse("CAP_NET_ADMIN").unwrap(),
            Capability::NET_ADMIN
        );
        assert_eq!(
            Capability::parse("net_admin").unwrap(),
            Capability::NET_ADMIN
        );
        assert_eq!(Capability::parse("cap_chown").unwrap(), Capability::CHOWN);
        assert_eq!(
            Capability::parse("Checkpoint_Restore").unwrap().number(),
            40
        );
        assert!(Capability::parse("CAP_NOPE").is_err());
        assert!(Capability::parse("").is_err());
        assert_eq!(Capability::NET_ADMIN.to_string(), "CAP_NET_ADMIN");
        assert_eq!(Capability::NET_ADMIN.bit(), 0x1000);
    }

    #[test]
    fn masks_round_trip() {
        let caps = vec![Capability::CHOWN, Capability::NET_ADMIN];
        assert_eq!(mask_of(&caps), 0x1001);
        assert_eq!(caps_in(0x1001), caps);
        assert_eq!(all_capabilities().len(), 41);
    }
}
