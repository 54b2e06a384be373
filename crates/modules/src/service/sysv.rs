//! The SysV backend: `/etc/init.d/NAME ACTION`, honouring the LSB exit codes
//! (status: 0 running, 1 and 2 dead with a pid or lock file left, 3 not
//! running, 4 unknown; actions: 0 success, 1 to 7 the LSB failures), and
//! `update-rc.d` for enable and disable.
//!
//! A script runs with no deadline of its own: the run's timeout stops the whole
//! tree (the run's supervisor owns it until the module exits), and the caller
//! gets `timeout`. What a script starts keeps running after it exits: the
//! module runs with `keep_descendants` and unconfined (see
//! `regent_model::ModuleAccess`), and a script's output goes to anonymous
//! files, never the run's pipes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use regent_model::ServiceAction;
use serde_json::json;

use super::{rfc3339, Status};
use crate::{ModuleError, Tool};

/// Where the scripts are.
pub const INIT_D: &str = "/etc/init.d";

/// The script of `unit` (a `.service` suffix dropped): a regular executable
/// file, or `refused`.
pub fn script(unit: &str) -> Result<PathBuf, ModuleError> {
    let name = unit.strip_suffix(".service").unwrap_or(unit);
    let path = Path::new(INIT_D).join(name);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path),
        Ok(_) => Err(ModuleError::refused(format!(
            "{} is not an executable file",
            path.display()
        ))),
        Err(_) => Err(ModuleError::refused(format!(
            "no such service: {} does not exist",
            path.display()
        ))),
    }
}

/// What an LSB action exit code means.
#[must_use]
pub fn action_code(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "generic or unspecified error",
        2 => "invalid or excess arguments",
        3 => "unimplemented feature",
        4 => "user had insufficient privilege",
        5 => "program is not installed",
        6 => "program is not configured",
        7 => "program is not running",
        _ => "reserved or application-specific error",
    }
}

/// `(active, sub)` of an LSB status exit code.
#[must_use]
pub fn status_code(code: Option<i32>) -> (&'static str, &'static str) {
    match code {
        Some(0) => ("active", "running"),
        // Dead, with a pid file (1) or a lock file (2) left behind.
        Some(1 | 2) => ("failed", "dead"),
        Some(3) => ("inactive", "dead"),
        _ => ("unknown", "unknown"),
    }
}

fn name_of(script: &Path) -> String {
    script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether an rc link's file name (`S01NAME`) starts the script `name`; a
/// name with a multi-byte character at its fourth byte is no such link.
#[must_use]
fn starts(link: &str, name: &str) -> bool {
    link.starts_with('S') && link.get(3..) == Some(name)
}

/// Whether `/etc/rc[2-5].d` start the script (an `S` link in any of them);
/// `None` when none of those directories can be read.
fn enabled(name: &str) -> Option<bool> {
    let mut seen = false;
    for level in 2..=5 {
        let Ok(dir) = std::fs::read_dir(format!("/etc/rc{level}.d")) else {
            continue;
        };
        seen = true;
        for e in dir.flatten() {
            let f = e.file_name();
            let f = f.to_string_lossy();
            if starts(&f, name) {
                return Some(true);
            }
        }
    }
    seen.then_some(false)
}

/// The script's state.
pub fn status(unit: &str) -> Result<Status, ModuleError> {
    let script = script(unit)?;
    let name = name_of(&script);
    let out = Tool::new(&script).args(["status"]).run(None)?;
    let (active, sub) = status_code(out.code);
    let since = (active == "active")
        .then(|| std::fs::metadata(format!("/run/{name}.pid")).ok())
        .flatten()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| rfc3339(i64::try_from(d.as_secs()).ok()?));
    Ok(Status {
        unit: unit.to_string(),
        backend: "sysv",
        active: active.into(),
        sub: sub.into(),
        since,
        enabled: enabled(&name),
        detail: json!({ "lsb_status": out.code }),
    })
}

/// Carry out `action` (the script's own, or `update-rc.d`); the status after.
pub fn act(unit: &str, action: ServiceAction) -> Result<Status, ModuleError> {
    let script = script(unit)?;
    let name = name_of(&script);
    let tool = match action {
        ServiceAction::Status => return status(unit),
        ServiceAction::Enable => {
            // Install the links the script's LSB header asks for, then make
            // them start links.
            let defaults = Tool::new("/usr/sbin/update-rc.d")
                .args([name.as_str(), "defaults"])
                .run(None)?;
            check(&defaults, "update-rc.d defaults")?;
            Tool::new("/usr/sbin/update-rc.d").args([name.as_str(), "enable"])
        }
        ServiceAction::Disable => {
            Tool::new("/usr/sbin/update-rc.d").args([name.as_str(), "disable"])
        }
        a => Tool::new(&script).args([a.name()]),
    };
    let out = tool.run(None)?;
    check(&out, &format!("{name} {}", action.name()))?;
    status(unit)
}

fn check(out: &crate::Output, what: &str) -> Result<(), ModuleError> {
    if out.success() {
        return Ok(());
    }
    let meaning = out.code.map_or("", action_code);
    let tail = out.tail();
    Err(ModuleError::failed(format!(
        "{what}: {}{}{}",
        out.status(),
        if meaning.is_empty() {
            String::new()
        } else {
            format!(" ({meaning})")
        },
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsb_codes() {
        assert_eq!(status_code(Some(0)), ("active", "running"));
        assert_eq!(status_code(Some(1)), ("failed", "dead"));
        assert_eq!(status_code(Some(3)), ("inactive", "dead"));
        assert_eq!(status_code(Some(4)), ("unknown", "unknown"));
        assert_eq!(status_code(None), ("unknown", "unknown"));
        assert_eq!(action_code(7), "program is not running");
        assert!(script("../passwd").is_err());
        assert!(starts("S01nginx", "nginx"));
        assert!(!starts("K01nginx", "nginx") && !starts("S01nginx", "ngin"));
        // Slicing at a byte inside a character panicked the module.
        assert!(!starts("S0é", "x"));
    }
}
