//! The unprivileged accounts the load clients run as, so that every request
//! crosses a uid boundary as in real use. The attackers get their own system user,
//! created once (idempotently) if it does not exist.

use nix::unistd::User;
use std::process::Command;

/// A user account to run clients as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// The account named `name`, if the user database has it.
pub fn lookup(name: &str) -> Result<Option<Account>, String> {
    let user = User::from_name(name).map_err(|e| format!("looking up user {name}: {e}"))?;
    Ok(user.map(|u| Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// The account named `name`, creating it as a system user without a home or a
/// login shell if it does not exist (safe to call concurrently).
pub fn ensure_system_user(name: &str) -> Result<Account, String> {
    if let Some(a) = lookup(name)? {
        return Ok(a);
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .output()
        .map_err(|e| format!("running useradd: {e}"))?;
    // Someone else may have created it meanwhile: look again either way.
    match lookup(name)? {
        Some(a) => Ok(a),
        None => Err(format!(
            "could not create system user {name} (are we root?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}
