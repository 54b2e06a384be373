//! Linux capabilities by name: one table, one parser (`CAP_NET_ADMIN`,
//! `cap_net_admin` or `net_admin`, any case), display, and sets as 64-bit masks.
//! The config checks `capabilities = [...]` with it and exec applies the result.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Capability names in kernel order (index = capability number), short and lower case.
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

/// One Linux capability (its kernel number). Serialised as its canonical name
/// (`"CAP_NET_ADMIN"`); deserialised from any form [`Capability::parse`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Capability(u8);

/// Why a capability name was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCapability(pub String);

impl fmt::Display for UnknownCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown capability {:?} (expected e.g. CAP_NET_ADMIN or net_admin)",
            self.0
        )
    }
}

impl std::error::Error for UnknownCapability {}

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

    /// Parse `CAP_NET_ADMIN`, `cap_net_admin` or `net_admin` (case-insensitive;
    /// nothing else, not even surrounding whitespace).
    pub fn parse(name: &str) -> Result<Capability, UnknownCapability> {
        let lower = name.to_ascii_lowercase();
        let short = lower.strip_prefix("cap_").unwrap_or(&lower);
        NAMES
            .iter()
            .position(|n| *n == short)
            .map(|i| Capability(i as u8))
            .ok_or_else(|| UnknownCapability(name.to_string()))
    }

    /// The capability with kernel number `n`, if this build knows it.
    #[must_use]
    pub fn from_number(n: u32) -> Option<Capability> {
        (n < NAMES.len() as u32).then_some(Capability(n as u8))
    }

    /// The kernel number.
    #[must_use]
    pub fn number(self) -> u32 {
        u32::from(self.0)
    }

    /// Short lower-case name, e.g. `net_admin`.
    #[must_use]
    pub fn name(self) -> &'static str {
        NAMES[usize::from(self.0)]
    }

    /// The bit of this capability in a 64-bit set.
    #[must_use]
    pub fn bit(self) -> u64 {
        1u64 << self.0
    }

    /// Every capability this build knows, in kernel order.
    pub fn all() -> impl Iterator<Item = Capability> {
        (0..NAMES.len() as u8).map(Capability)
    }

    /// The 64-bit mask of `caps`.
    #[must_use]
    pub fn mask_of(caps: &[Capability]) -> u64 {
        caps.iter().fold(0, |m, c| m | c.bit())
    }

    /// The capabilities in `mask`, in kernel order (unknown bits are skipped).
    #[must_use]
    pub fn in_mask(mask: u64) -> Vec<Capability> {
        Capability::all().filter(|c| mask & c.bit() != 0).collect()
    }
}

impl fmt::Display for Capability {
    /// The canonical name, e.g. `CAP_NET_ADMIN`.
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

impl TryFrom<String> for Capability {
    type Error = UnknownCapability;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Capability::parse(&s)
    }
}

impl From<Capability> for String {
    fn from(c: Capability) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(
            Capability::parse("CAP_NET_ADMIN"),
            Ok(Capability::NET_ADMIN)
        );
        assert_eq!(Capability::parse("net_admin"), Ok(Capability::NET_ADMIN));
        assert_eq!(
            Capability::parse("cap_sys_admin"),
            Ok(Capability::SYS_ADMIN)
        );
        assert_eq!(Capability::parse("Cap_Chown"), Ok(Capability::CHOWN));
        assert_eq!(
            Capability::parse("Checkpoint_Restore").unwrap().number(),
            40
        );
        for bad in [
            "CAP_NOPE",
            "CAP_NET_ADMINX",
            "",
            "CAP_",
            "cap_cap_chown",
            " CAP_CHOWN",
        ] {
            assert_eq!(Capability::parse(bad), Err(UnknownCapability(bad.into())));
        }
        let e = Capability::parse("x").unwrap_err().to_string();
        assert!(e.contains("CAP_NET_ADMIN"), "{e}");
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(Capability::NET_ADMIN.to_string(), "CAP_NET_ADMIN");
        assert_eq!(Capability::NET_ADMIN.name(), "net_admin");
        assert_eq!(
            Capability::from_number(40)
                .map(|c| c.to_string())
                .as_deref(),
            Some("CAP_CHECKPOINT_RESTORE")
        );
        assert_eq!(Capability::from_number(41), None);
        // Every name parses back to its own number, in both forms.
        for (i, c) in Capability::all().enumerate() {
            assert_eq!(c.number(), i as u32);
            assert_eq!(Capability::parse(&c.to_string()), Ok(c));
            assert_eq!(Capability::parse(c.name()), Ok(c));
        }
        assert_eq!(Capability::all().count(), 41);
    }

    #[test]
    fn masks_round_trip() {
        let caps = vec![Capability::CHOWN, Capability::NET_ADMIN];
        assert_eq!(Capability::NET_ADMIN.bit(), 0x1000);
        assert_eq!(Capability::mask_of(&caps), 0x1001);
        assert_eq!(Capability::in_mask(0x1001), caps);
        assert_eq!(Capability::in_mask(1 << 63), vec![]);
    }

    #[test]
    fn serde_uses_the_canonical_name() {
        let c: Capability = serde_json::from_str("\"net_raw\"").unwrap();
        assert_eq!(c, Capability::NET_RAW);
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"CAP_NET_RAW\"");
        assert!(serde_json::from_str::<Capability>("\"CAP_NOPE\"").is_err());
    }
}
