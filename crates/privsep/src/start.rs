//! Starting a context's helper: forked from this process, or run through a helper
//! command (`sudo`, `pkexec`), then checked with a ping.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use regent_exec::sys::{self, Forked};
use regent_exec::{Confinement, FIXED_PATH};
use serde_json::Value;

use crate::channel::Channel;
use crate::entrypoints::Entrypoints;
use crate::error::PrivsepError;
use crate::helper;
use crate::wire::{HELPER_FLAG, PING};

/// How long a fresh helper has to answer its first ping.
const START_WAIT: Duration = Duration::from_secs(60);

/// How to start a context's helper.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// Fork it from this process, which must be privileged enough for the context
    /// and still single-threaded (call before starting threads or an async runtime,
    /// and before [`crate::drop_privileges`]).
    Fork,
    /// Run this program again through a helper command, e.g. `&["sudo", "-n", "--"]`
    /// or `&["pkexec"]` (an empty slice runs it directly), with the hidden arguments
    /// `--regent-privsep-helper NAME`; the helper speaks on its stdin/stdout, which
    /// are one end of a private socketpair. The program's `main` must call
    /// [`crate::helper_main`] first.
    Command(&'a [&'a str]),
}

impl Entrypoints {
    /// Start the helper and check it answers. Returns the helper's pid.
    pub fn start(&'static self, how: Start<'_>) -> Result<i32, PrivsepError> {
        let ctx = self.context();
        let mut slot = ctx.lock();
        if slot.is_some() {
            return Err(PrivsepError::AlreadyStarted {
                context: ctx.name(),
            });
        }
        let start_err = |reason: String| PrivsepError::Start {
            context: ctx.name(),
            reason,
        };
        let mut channel = match how {
            Start::Fork => self.fork_helper()?,
            Start::Command(prefix) => self
                .command_helper(prefix)
                .map_err(|e| start_err(e.to_string()))?,
        };
        match channel.call(
            ctx.name(),
            ctx.call_timeout(),
            PING,
            Value::Null,
            START_WAIT,
        ) {
            Ok(answer) => {
                if let Some(pid) = answer.get("pid").and_then(Value::as_i64) {
                    channel.helper_pid = pid as i32;
                }
                let pid = channel.helper_pid;
                *slot = Some(channel);
                Ok(pid)
            }
            Err(e) => {
                if let Some(mut child) = channel.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                } else {
                    let _ = sys::kill_process(channel.helper_pid, libc::SIGKILL);
                    let _ = sys::wait_blocking(channel.helper_pid);
                }
                Err(start_err(e.to_string()))
            }
        }
    }

    fn fork_helper(&'static self) -> Result<Channel, PrivsepError> {
        let ctx = self.context();
        let policy = ctx.policy()?;
        let confinement = Confinement::prepare(&policy).map_err(|source| PrivsepError::Policy {
            context: ctx.name(),
            source,
        })?;
        let start_err = |e: io::Error| PrivsepError::Start {
            context: ctx.name(),
            reason: e.to_string(),
        };
        let (ours, theirs) = UnixStream::pair().map_err(start_err)?;
        let parent = sys::getpid();
        match sys::fork_single_threaded().map_err(start_err)? {
            Forked::Child => {
                drop(ours);
                helper::run_forked(self, &confinement, theirs, parent)
            }
            Forked::Parent(pid) => Ok(Channel::new(ours, pid, None)),
        }
    }

    fn command_helper(&'static self, prefix: &[&str]) -> io::Result<Channel> {
        let exe = std::env::current_exe()?;
        let mut argv: Vec<OsString> = prefix.iter().map(OsString::from).collect();
        argv.push(exe.into_os_string());
        argv.push(HELPER_FLAG.into());
        argv.push(self.context().name().into());
        let (ours, theirs) = UnixStream::pair()?;
        let theirs_in: OwnedFd = theirs.try_clone()?.into();
        let theirs_out: OwnedFd = theirs.into();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::from(theirs_in))
            .stdout(Stdio::from(theirs_out))
            .env_clear()
            .env("PATH", FIXED_PATH)
            .env("LANG", "C.UTF-8");
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        Ok(Channel::new(ours, pid, Some(child)))
    }
}
