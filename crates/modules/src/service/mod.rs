//! `service` operations: status, start, stop, restart, reload, enable, disable
//! of one unit.
//!
//! The backend is the declaration's (`backend = "systemd" | "sysv"`), or with
//! `auto` (the default) chosen per run: [`systemd`] when systemd is the init
//! (`/run/systemd/system` is a directory, as `sd_booted()` tests), else
//! [`sysv`], the `/etc/init.d` scripts.
//!
//! Every answer is an object; `status` answers the unit's [`Status`], the other
//! actions `{"unit", "backend", "action", "status"}` with the status after the
//! action.

use std::path::Path;

use regent_model::{ServiceAction, ServiceBackend};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{Deadline, ModuleError};

pub mod systemd;
pub mod sysv;

/// A unit's state, as `status` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The unit (or init script) name.
    pub unit: String,
    /// `systemd` or `sysv`.
    pub backend: &'static str,
    /// `active`, `inactive`, `failed` (systemd also `activating`,
    /// `deactivating`, `reloading`), or `unknown`.
    pub active: String,
    /// The sub-state: systemd's (`running`, `exited`, `dead`, `failed`...);
    /// for an init script `running`, `dead` or `unknown`.
    pub sub: String,
    /// When it entered its current state (RFC 3339, UTC), when known: systemd's
    /// `StateChangeTimestamp`; for an init script, the time its pid file
    /// (`/run/NAME.pid`) was written, if it is running and has one.
    pub since: Option<String>,
    /// Whether it starts at boot, when known.
    pub enabled: Option<bool>,
    /// Details of the backend: systemd's `Result` and `LoadState`, an init
    /// script's LSB status code.
    pub detail: Value,
}

/// Whether systemd is the init (`sd_booted()`).
#[must_use]
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Carry out `action` on `unit`.
pub fn run(
    unit: &str,
    action: ServiceAction,
    backend: ServiceBackend,
    deadline: Deadline,
) -> Result<Value, ModuleError> {
    let systemd = match backend {
        ServiceBackend::Auto => systemd_is_init(),
        ServiceBackend::Systemd => true,
        ServiceBackend::Sysv => false,
    };
    let status = if systemd {
        systemd::act(unit, action, deadline)?
    } else {
        sysv::act(unit, action)?
    };
    let status = serde_json::to_value(status)
        .map_err(|e| ModuleError::failed(format!("encoding the status: {e}")))?;
    if action == ServiceAction::Status {
        return Ok(status);
    }
    Ok(json!({
        "unit": unit,
        "backend": status["backend"],
        "action": action.name(),
        "status": status,
    }))
}

/// `t` (seconds since the epoch, UTC) as RFC 3339 (`2026-12-01T03:24:42Z`).
#[must_use]
pub fn rfc3339(t: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::rfc3339(1_796_095_482).unwrap(),
            "2026-12-01T03:24:42Z"
        );
    }
}
