//! Dropping the main program's privileges for good, after its helpers are started.

use std::io;

use regent_exec::sys;
use regent_exec::{Capability, Confinement, ExecPolicy, RunAs};

use crate::error::PrivsepError;

fn failed(step: &str, source: io::Error) -> PrivsepError {
    PrivsepError::Privileges {
        step: step.to_string(),
        source,
    }
}

/// Become `uid`/`gid` for good: supplementary groups cleared, real, effective and
/// saved ids all changed, every capability dropped from every set including the
/// bounding set, and `no_new_privs` set, so nothing this process executes later
/// regains privilege: a set-uid or set-gid program runs with the caller's ids (without
/// `no_new_privs` a set-uid-root program would get euid 0 back, and with it every
/// root-owned file), and file capabilities are ignored. Then check that root cannot
/// be regained and that `no_new_privs` is set.
///
/// The process must be single-threaded (start helpers and drop privileges at the top
/// of `main`, before any thread or async runtime). `no_new_privs` is inherited
/// by everything started later and cannot be undone.
pub fn drop_privileges(uid: u32, gid: u32) -> Result<(), PrivsepError> {
    match sys::thread_count() {
        Ok(1) => {}
        Ok(n) => {
            return Err(failed(
                "thread check",
                io::Error::other(format!(
                    "{n} threads: privileges would change for this thread only"
                )),
            ))
        }
        Err(e) => return Err(failed("thread check", e)),
    }
    let held = sys::capget().map_err(|e| failed("capget", e))?;
    if held.effective & Capability::SETPCAP.bit() == 0 {
        return Err(failed(
            "capability bounding set",
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "CAP_SETPCAP is needed to drop privileges",
            ),
        ));
    }
    let policy = ExecPolicy {
        run_as: Some(RunAs::ids(uid, gid)),
        capabilities: Some(Vec::new()),
        no_new_privs: true,
        ..ExecPolicy::default()
    };
    let confinement = Confinement::prepare(&policy)
        .map_err(|e| failed("prepare", io::Error::other(e.to_string())))?;
    confinement
        .apply()
        .map_err(|f| failed(f.step.as_str(), io::Error::from_raw_os_error(f.errno)))?;
    if uid != 0 && sys::set_res_uid(0).is_ok() {
        return Err(failed("verify", io::Error::other("root could be regained")));
    }
    if !sys::no_new_privs().map_err(|e| failed("verify", e))? {
        return Err(failed(
            "verify",
            io::Error::other("no_new_privs is not set"),
        ));
    }
    let now = sys::capget().map_err(|e| failed("capget", e))?;
    if now != sys::CapSets::default() {
        return Err(failed("verify", io::Error::other("capabilities remain")));
    }
    Ok(())
}
