//! The helper: a confined process serving one context's entrypoints over the private
//! channel, through the Regent service's own connection code and pipeline.
//!
//! The helper builds a [`regent::Service`] whose operations are the context's
//! entrypoints (see [`crate::worker`]) plus the ping, and serves the one
//! already-connected channel with [`regent::Service::serve_stream`]: the same
//! framing with its hard cap (16 MiB here), parsing, rate limiting, resolution,
//! verdict, validation (the entrypoint's arguments are decoded in the helper before
//! anything runs), execution within the context's timeout, and **one audit record
//! per request**, in the daemon's format and to its tracing target
//! (`regent::audit`: op, caller pid and uid, outcome, duration).
//!
//! # Where the audit records go
//!
//! To the helper's stderr, which it inherits from the program (a helper command
//! passes it through), through the global `tracing` subscriber. A forked helper
//! keeps the subscriber the program installed before [`crate::Entrypoints::start`];
//! a program that wants its own in a commanded helper installs it before
//! [`crate::helper_main`]. Either must write synchronously (no writer thread: the
//! helper stays single-threaded, below). When none is installed, the helper
//! installs a plain text one (level info) on stderr, so that a privileged call is
//! never without its record. The caller in a record is the kernel's word about the
//! channel (`SO_PEERCRED`): the process that created the socketpair, with the ids
//! it had then (before the program dropped its privileges).
//!
//! # One thread, and why
//!
//! Each call runs in a worker forked from the helper, and a process may only fork
//! safely while it has one thread. So the helper serves on a current-thread tokio
//! runtime with nothing that starts a thread (no blocking pool: the caller is not
//! looked up in the user database, there is no store), and every fork checks the
//! thread count first (`regent_exec::sys::fork_single_threaded`): should a thread
//! appear, calls fail with `internal` instead of forking unsafely. A dedicated
//! pre-forked process to fork the workers from would need a second private
//! protocol between it and the server for the same guarantee. The worker runs the
//! entrypoint on a fresh thread of its own, outside the helper's runtime, so an
//! entrypoint may start a runtime of its own as before.
//!
//! The helper is a child subreaper: on timeout, the pipeline drops the call, which
//! SIGKILLs the worker and every process descending from it and reaps them all;
//! the caller gets `timeout` and the next call a new worker. The helper exits when
//! its client closes the channel (a call in progress then is stopped the same way),
//! and with its parent (`PR_SET_PDEATHSIG`) when forked.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use regent::operation::{
    Authorization, BoxResult, Checked, Context, DynOperation, InvalidData, OpInfo,
};
use regent::registry::{OpOptions, Registry};
use regent::{Caller, Limits, Service, Stage, Stages};
use regent_exec::sys;
use regent_exec::Confinement;
use regent_proto::{ErrorCode, Response};
use serde_json::{json, Value};

use crate::entrypoints::Entrypoints;
use crate::wire::{MAX_LINE, PING};
use crate::worker::{EntrypointOp, Workers};

/// The idle time allowed between calls: in practice never (the helper lives as
/// long as its client's channel).
const IDLE_NEVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Entry of a forked helper: keep only the channel, confine, serve. Never returns.
pub(crate) fn run_forked(
    ep: &'static Entrypoints,
    confinement: &Confinement,
    channel: UnixStream,
    parent: i32,
) -> ! {
    let fd = channel.as_raw_fd();
    let mut keep = [0, 1, 2, fd];
    keep.sort_unstable();
    // Other contexts' channels and whatever else the program had open stay behind.
    let _ = sys::close_fds_except(&keep);
    if let Err(failure) = confinement.apply() {
        let msg = format!(
            "the helper could not take on its policy: {}",
            failure.into_error()
        );
        refuse(&channel, msg);
    }
    // Set after the credential changes, which clear it.
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    if sys::getppid() != parent {
        sys::exit_now(0);
    }
    serve(ep, channel)
}

/// Entry of a helper started through a helper command: the channel is stdin (and
/// stdout, the same socket).
pub(crate) fn run_commanded(ep: &'static Entrypoints) -> ! {
    let fail = |msg: String| -> ! {
        eprintln!("regent-privsep helper {}: {msg}", ep.context().name());
        sys::exit_now(2)
    };
    match sys::thread_count() {
        Ok(1) => {}
        Ok(n) => fail(format!(
            "must be single-threaded, found {n} threads (call helper_main first in main)"
        )),
        Err(e) => fail(e.to_string()),
    }
    let channel: OwnedFd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .unwrap_or_else(|e| fail(e.to_string()));
    let channel = UnixStream::from(channel);
    // Entrypoints printing to stdout must not corrupt the channel.
    if let Err(e) = sys::stdio_to_dev_null(&[0, 1]) {
        fail(e.to_string());
    }
    let confined = ep
        .context()
        .policy()
        .map_err(|e| e.to_string())
        .and_then(|p| Confinement::prepare(&p).map_err(|e| e.to_string()))
        .and_then(|c| c.apply().map_err(|f| f.into_error().to_string()));
    if let Err(e) = confined {
        refuse(
            &channel,
            format!("the helper could not take on its policy: {e}"),
        );
    }
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    serve(ep, channel)
}

/// Answer the client's first request with `internal` and this sentence, and exit.
fn refuse(mut channel: &UnixStream, msg: String) -> ! {
    let _ = channel.write_all(&Response::error_with(ErrorCode::Internal, msg).to_line());
    sys::exit_now(1)
}

/// Serve the channel until the client closes it, then exit.
fn serve(ep: &'static Entrypoints, channel: UnixStream) -> ! {
    let _ = sys::set_child_subreaper();
    audit_to_stderr();
    let service = match channel
        .try_clone()
        .map_err(|e| format!("cannot watch the channel: {e}"))
        .and_then(|watched| service(ep, watched))
    {
        Ok(s) => s,
        Err(e) => refuse(&channel, e),
    };
    let served = channel
        .set_nonblocking(true)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .and_then(|runtime| {
            runtime.block_on(async {
                let stream = tokio::net::UnixStream::from_std(channel)
                    .map_err(|e| format!("registering the channel: {e}"))?;
                service
                    .serve_stream(stream)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
    match served {
        Ok(()) => sys::exit_now(0),
        Err(e) => {
            eprintln!("regent-privsep helper {}: {e}", ep.context().name());
            sys::exit_now(1)
        }
    }
}

/// Install a plain text subscriber on stderr if the program installed none, so
/// that every call leaves its audit record.
fn audit_to_stderr() {
    if !tracing::dispatcher::has_been_set() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init();
    }
}

/// The service the helper serves: the ping and one operation per entrypoint, each
/// with the context's timeout; limits for one private connection.
fn service(ep: &'static Entrypoints, channel: UnixStream) -> Result<Service, String> {
    let ctx = ep.context();
    let mut registry = Registry::new();
    let ping = Ping {
        context: ctx.name(),
    };
    registry
        .register_dyn(PING, Arc::new(ping), OpOptions::default())
        .map_err(|e| e.to_string())?;
    let workers = Arc::new(Workers::new(ep, channel));
    for &name in ep.names() {
        let op = EntrypointOp::new(name, workers.clone());
        let options = OpOptions::default().timeout(ctx.call_timeout());
        registry
            .register_dyn(name, Arc::new(op), options)
            .map_err(|e| format!("entrypoint {name}: {e}"))?;
    }
    // One connection, one call at a time; the daemon's line and write timeouts.
    let limits = Limits {
        max_line: MAX_LINE,
        idle_timeout: IDLE_NEVER,
        max_runs: 1,
        ..Limits::default()
    };
    Service::builder(format!("privsep:{}", ctx.name()))
        .registry(registry)
        .limits(limits)
        .build()
        .map_err(|e| e.to_string())
}

/// The ping: which context and which process answer.
struct Ping {
    context: &'static str,
}

impl DynOperation for Ping {
    fn info(&self) -> OpInfo {
        OpInfo {
            description: "Check that the helper answers".into(),
            params: Value::Null,
        }
    }

    fn check(&self, _data: Value) -> Result<Checked, InvalidData> {
        Ok(Checked {
            data: Value::Null,
            redacted: Value::Null,
        })
    }

    fn authorize(&self, _caller: &Caller, _data: &Value) -> Authorization {
        Authorization::Allow
    }

    fn after_stage(&self, _: &Caller, _: &Value, _: &Stage, remaining: &Stages) -> Authorization {
        Authorization::continue_with(remaining)
    }

    fn perform(self: Arc<Self>, _ctx: Context, _data: Value) -> BoxResult {
        let answer = json!({"context": self.context, "pid": sys::getpid()});
        Box::pin(async move { Ok(answer) })
    }
}
