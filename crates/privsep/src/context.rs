//! The client side of a privileged [`Context`]: its policy, and calling its helper
//! over the private channel once started (see [`crate::Entrypoints::start`]).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use regent_exec::sys;
use regent_exec::{Capability, ExecError, ExecPolicy, RunAs};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::channel::Channel;
use crate::error::PrivsepError;

/// Extra time the client waits beyond the context's timeout (the helper enforces it).
const CLIENT_MARGIN: Duration = Duration::from_secs(5);

/// A privileged context: a name, the exact capabilities and user its helper runs with,
/// and a per-call timeout. Declare it as a `static` with the `const` builders.
///
/// ```
/// use std::time::Duration;
/// static MOTD: regent_privsep::Context = regent_privsep::Context::new("motd")
///     .capabilities(&["CAP_DAC_OVERRIDE"])
///     .timeout(Duration::from_secs(5));
/// assert_eq!(MOTD.name(), "motd");
/// ```
pub struct Context {
    name: &'static str,
    capabilities: &'static [&'static str],
    /// (uid, gid) to run as (kept as ids: a `const` builder cannot hold a `RunAs`).
    run_as: Option<(u32, u32)>,
    timeout: Duration,
    channel: Mutex<Option<Channel>>,
}

impl Context {
    /// A context with no capabilities, the starting user's identity and a 30 s timeout.
    pub const fn new(name: &'static str) -> Context {
        Context {
            name,
            capabilities: &[],
            run_as: None,
            timeout: Duration::from_secs(30),
            channel: Mutex::new(None),
        }
    }

    /// Exactly these capabilities (`CAP_NET_ADMIN` or `net_admin`) in the helper's
    /// effective, permitted, inheritable and ambient sets; the bounding set is reduced
    /// to them.
    pub const fn capabilities(self, caps: &'static [&'static str]) -> Context {
        let (run_as, timeout) = (self.run_as, self.timeout);
        self.rebuild(caps, run_as, timeout)
    }

    /// Run the helper as `uid`/`gid` (supplementary groups cleared).
    pub const fn run_as(self, uid: u32, gid: u32) -> Context {
        let (caps, timeout) = (self.capabilities, self.timeout);
        self.rebuild(caps, Some((uid, gid)), timeout)
    }

    /// Per-call time limit: past it the call's work is killed and the caller gets
    /// [`PrivsepError::Timeout`].
    pub const fn timeout(self, timeout: Duration) -> Context {
        let (caps, run_as) = (self.capabilities, self.run_as);
        self.rebuild(caps, run_as, timeout)
    }

    /// A copy with other settings (a `const` builder cannot drop `self`, whose
    /// channel is still empty: forgetting it leaks nothing).
    const fn rebuild(
        self,
        capabilities: &'static [&'static str],
        run_as: Option<(u32, u32)>,
        timeout: Duration,
    ) -> Context {
        let name = self.name;
        std::mem::forget(self);
        Context {
            name,
            capabilities,
            run_as,
            timeout,
            channel: Mutex::new(None),
        }
    }

    /// The context's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The per-call time limit.
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    /// The execution policy the helper applies to itself.
    pub fn policy(&self) -> Result<ExecPolicy, PrivsepError> {
        let caps = self
            .capabilities
            .iter()
            .map(|c| Capability::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PrivsepError::Policy {
                context: self.name,
                source: ExecError::Invalid {
                    reason: e.to_string(),
                },
            })?;
        Ok(ExecPolicy {
            timeout: self.timeout,
            run_as: self.run_as.map(|(uid, gid)| RunAs::ids(uid, gid)),
            capabilities: Some(caps),
            no_new_privs: true,
            ..ExecPolicy::default()
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Channel>> {
        self.channel
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The helper's pid, once started.
    pub fn helper_pid(&self) -> Option<i32> {
        self.lock().as_ref().map(|c| c.helper_pid)
    }

    /// Stop using the helper: closing the channel makes it exit; it is then reaped.
    pub fn stop(&self) {
        if let Some(mut channel) = self.lock().take() {
            let _ = channel.stream.shutdown(std::net::Shutdown::Both);
            match channel.child.take() {
                Some(mut child) => {
                    let _ = child.wait();
                }
                // A forked helper is our child: reap it.
                None => {
                    let _ = sys::wait_blocking(channel.helper_pid);
                }
            }
        }
    }

    /// Call entrypoint `op` with `data` (a JSON object of named arguments) and decode
    /// its result. Calls on one context are serialised. Used by the functions
    /// [`crate::entrypoints!`] generates.
    pub fn call<R: DeserializeOwned>(&self, op: &str, data: Value) -> Result<R, PrivsepError> {
        let mut slot = self.lock();
        let channel = slot
            .as_mut()
            .ok_or(PrivsepError::NotStarted { context: self.name })?;
        let wait = self.timeout.saturating_add(CLIENT_MARGIN);
        let value = channel.call(self.name, self.timeout, op, data, wait)?;
        Ok(serde_json::from_value(value)?)
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities)
            .field("run_as", &self.run_as)
            .field("timeout", &self.timeout)
            .finish()
    }
}
