//! Linux capabilities: the one table and parser are `regent-model`'s
//! [`Capability`]; this module adds what needs the running kernel.

pub use regent_model::{Capability, UnknownCapability};

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
    fn this_build_knows_every_capability_the_kernel_does_or_more() {
        let last = kernel_last_cap().unwrap();
        assert!(
            last >= 36,
            "a kernel of this decade knows at least CAP_BLOCK_SUSPEND"
        );
        // The table may be ahead of the kernel or behind it; what it has is dense.
        let known = Capability::all().count() as u32;
        assert_eq!(
            Capability::from_number(known - 1).map(|c| c.number()),
            Some(known - 1)
        );
    }
}
