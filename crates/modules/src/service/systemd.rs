//! The systemd backend, through `systemctl` (not D-Bus): it is what an
//! administrator runs, it waits for the job to finish and says how it ended
//! (`systemctl start` blocks until the start job completes and exits non-zero
//! when it failed), it needs only the manager's private socket, and it adds no
//! D-Bus stack to the service. Every call has `--no-ask-password` and `--`
//! before the unit; on the run's deadline the waiting `systemctl` is stopped
//! and the unit's pending jobs are cancelled (`systemctl cancel`), and the
//! caller gets `timeout`.

use std::collections::BTreeMap;

use regent_model::ServiceAction;
use serde_json::json;

use super::{rfc3339, Status};
use crate::{Deadline, ModuleError, Output, Tool};

/// `systemctl`.
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";

fn systemctl<'a>(args: impl IntoIterator<Item = &'a str>) -> Tool {
    Tool::new(SYSTEMCTL)
        .args(["--no-ask-password", "--no-pager"])
        .args(args)
}

/// The unit's properties (`systemctl show`).
fn show(unit: &str, deadline: Deadline) -> Result<BTreeMap<String, String>, ModuleError> {
    let out = systemctl([
        "show",
        "--timestamp=unix",
        "-p",
        "Id,LoadState,ActiveState,SubState,Result,StateChangeTimestamp,UnitFileState",
        "--",
        unit,
    ])
    .run(Some(deadline.at()))?;
    if !out.success() {
        return Err(out.failure(&format!("systemctl show {unit}")));
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The unit's state.
pub fn status(unit: &str, deadline: Deadline) -> Result<Status, ModuleError> {
    let p = show(unit, deadline)?;
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if get("LoadState") == "not-found" {
        return Err(ModuleError::refused(format!("no such unit: {unit}")));
    }
    let since = get("StateChangeTimestamp")
        .strip_prefix('@')
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|t| *t > 0)
        .and_then(rfc3339);
    let enabled = match get("UnitFileState").as_str() {
        "enabled" | "enabled-runtime" | "alias" | "static" | "indirect" | "generated" => Some(true),
        "disabled" | "masked" | "masked-runtime" => Some(false),
        _ => None,
    };
    Ok(Status {
        unit: unit.to_string(),
        backend: "systemd",
        active: get("ActiveState"),
        sub: get("SubState"),
        since,
        enabled,
        detail: json!({
            "id": get("Id"),
            "load": get("LoadState"),
            "result": get("Result"),
            "unit_file": get("UnitFileState"),
        }),
    })
}

/// Cancel `unit`'s pending jobs (after a timeout).
fn cancel_jobs(unit: &str) {
    let Ok(out) = systemctl(["list-jobs", "--no-legend", "--plain", "--", unit]).run(None) else {
        return;
    };
    let ids: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    if !ids.is_empty() {
        let _ = systemctl(["cancel", "--"])
            .args(ids.iter().map(String::as_str))
            .run(None);
    }
}

/// Carry out `action`, waiting for its job; the status after.
pub fn act(unit: &str, action: ServiceAction, deadline: Deadline) -> Result<Status, ModuleError> {
    if action == ServiceAction::Status {
        return status(unit, deadline);
    }
    // Refuse an unknown unit before acting (enable would say little).
    status(unit, deadline)?;
    let out: Output = match systemctl([action.name(), "--", unit]).run(Some(deadline.at())) {
        Ok(out) => out,
        Err(e) if e.code == "timeout" => {
            cancel_jobs(unit);
            return Err(ModuleError::timeout(format!(
                "systemctl {} {unit}: the job did not finish in time and was cancelled",
                action.name()
            )));
        }
        Err(e) => return Err(e),
    };
    if !out.success() {
        return Err(out.failure(&format!("systemctl {} {unit}", action.name())));
    }
    status(unit, deadline)
}
