//! Each call in a fresh worker: the helper's operations for a context's
//! entrypoints.
//!
//! Validation (the pipeline's `check`) decodes the entrypoint's arguments in the
//! helper, without running anything; the data that passed is the data the worker
//! decodes again and runs. The arguments are not written to the audit record:
//! nothing marks an entrypoint's argument as secret.
//!
//! A call forks a worker from the single-threaded helper (see [`crate::helper`]).
//! The worker keeps only stdio and the write end of a pipe, dies with the helper,
//! runs the entrypoint on a thread of its own (outside the helper's runtime, so an
//! entrypoint may start one; a panic is reported as `operation_failed`), writes one
//! line with the outcome and exits. The helper waits for that line without blocking
//! its loop. Whatever way the call ends (an answer, the worker dying, or the
//! pipeline dropping the call at its time limit), the worker and every process
//! descending from it are SIGKILLed and reaped: the helper is their subreaper.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regent::operation::{
    Authorization, BoxResult, Checked, Context, DynOperation, InvalidData, OpError, OpInfo,
};
use regent::{Caller, Stage, Stages};
use regent_exec::sys::{self, Forked};
use regent_exec::tree::{self, ProcScratch};
use regent_proto::LineBuffer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, Interest};

use crate::entrypoints::{Entrypoints, Step};
use crate::wire::MAX_LINE;

/// The stack of the thread an entrypoint runs on: a main thread's usual size.
const WORKER_STACK: usize = 8 * 1024 * 1024;

/// What the helper's workers share: the entrypoints, the buffers for finding a
/// worker's descendants, and the client's channel, watched during a call.
pub(crate) struct Workers {
    ep: &'static Entrypoints,
    scratch: Mutex<ProcScratch>,
    channel: UnixStream,
}

impl Workers {
    /// `channel`: a descriptor of the client's channel (a copy), to notice the
    /// client closing it while a call runs.
    pub(crate) fn new(ep: &'static Entrypoints, channel: UnixStream) -> Workers {
        Workers {
            ep,
            scratch: Mutex::new(ProcScratch::default()),
            channel,
        }
    }

    /// Run entrypoint `op` on `data` in a fresh worker.
    async fn run(&self, op: &'static str, data: Value) -> Result<Value, OpError> {
        let (answer, w) = sys::pipe_cloexec()
            .map_err(|e| OpError::Internal(format!("cannot create a pipe: {e}")))?;
        let pid = match sys::fork_single_threaded() {
            Err(e) => return Err(OpError::Internal(format!("cannot fork a worker: {e}"))),
            Ok(Forked::Child) => {
                drop(answer);
                worker_main(self.ep, op, data, w)
            }
            Ok(Forked::Parent(pid)) => pid,
        };
        drop(w);
        let mut worker = Worker {
            pid,
            workers: self,
            stopped: None,
        };
        let answer = tokio::select! {
            answer = read_answer(answer) => answer,
            () = client_gone(&self.channel) => {
                // No one can take the answer: stop the work now, not at its time limit.
                worker.stop();
                return Err(OpError::Failed("the client closed the channel".into()));
            }
        };
        let status = worker.stop();
        match answer {
            Some(answer) => answer.into_result(),
            None => Err(OpError::Failed(format!(
                "the entrypoint died ({})",
                describe(status)
            ))),
        }
    }
}

/// A running worker: stopped (its whole tree killed and reaped) when the call
/// ends, also when the pipeline drops the call at its time limit.
struct Worker<'a> {
    pid: i32,
    workers: &'a Workers,
    /// Set once stopped: the worker's wait status, if it was seen.
    stopped: Option<Option<i32>>,
}

impl Worker<'_> {
    fn stop(&mut self) -> Option<i32> {
        if let Some(status) = self.stopped {
            return status;
        }
        let mut scratch = self
            .workers
            .scratch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let status = kill_and_reap_all(self.pid, &mut scratch);
        self.stopped = Some(status);
        status
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A worker's outcome, one JSON line on its pipe.
#[derive(Serialize, Deserialize)]
enum Answer {
    Done(Value),
    Failed(String),
    Invalid { field: String, reason: String },
    Internal(String),
}

impl Answer {
    fn from_result(result: Result<Value, OpError>) -> Answer {
        match result {
            Ok(value) => Answer::Done(value),
            Err(OpError::Failed(message)) => Answer::Failed(message),
            Err(OpError::Invalid(i)) => Answer::Invalid {
                field: i.field,
                reason: i.reason,
            },
            Err(OpError::Internal(detail)) => Answer::Internal(detail),
            Err(other) => Answer::Internal(other.client_message()),
        }
    }

    fn into_result(self) -> Result<Value, OpError> {
        match self {
            Answer::Done(value) => Ok(value),
            Answer::Failed(message) => Err(OpError::Failed(message)),
            Answer::Invalid { field, reason } => {
                Err(OpError::Invalid(InvalidData { field, reason }))
            }
            Answer::Internal(detail) => Err(OpError::Internal(detail)),
        }
    }
}

/// The worker: run the entrypoint, write its outcome, exit. Never returns.
fn worker_main(ep: &'static Entrypoints, op: &'static str, data: Value, answer: OwnedFd) -> ! {
    let fd = answer.as_raw_fd();
    let mut keep = [0, 1, 2, fd];
    keep.sort_unstable();
    // The worker never touches the client's channel nor the helper's event loop.
    let _ = sys::close_fds_except(&keep);
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    let thread = std::thread::Builder::new()
        .name(op.to_string())
        .stack_size(WORKER_STACK)
        .spawn(move || ep.dispatch(op, data, Step::Run));
    let outcome = match thread.map(|t| t.join()) {
        Err(e) => Answer::Internal(format!("cannot start the entrypoint's thread: {e}")),
        Ok(Ok(Some(result))) => Answer::from_result(result),
        Ok(Ok(None)) => Answer::Internal(format!("no entrypoint {op:?}")),
        Ok(Err(_panic)) => Answer::Failed("the entrypoint panicked".into()),
    };
    let mut line = serde_json::to_vec(&outcome).unwrap_or_default();
    line.push(b'\n');
    sys::write_all_raw(&answer, &line);
    sys::exit_now(0)
}

/// The worker's outcome, `None` if it ended (or closed its pipe) without one.
async fn read_answer(answer: OwnedFd) -> Option<Answer> {
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(answer).ok()?;
    let mut buf = LineBuffer::new(MAX_LINE);
    loop {
        match buf.next_line() {
            Ok(Some(line)) => return serde_json::from_slice(&line).ok(),
            Ok(None) => {}
            Err(_) => return None,
        }
        match pipe.read(buf.spare(64 * 1024)).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.commit(n),
        }
    }
}

/// Resolves once the client has closed its end of the channel (never, if that
/// cannot be watched). Only looks: a request sent meanwhile stays for the
/// connection to read.
async fn client_gone(channel: &UnixStream) {
    let watched = channel
        .try_clone()
        .and_then(|dup| dup.set_nonblocking(true).map(|()| dup))
        .and_then(tokio::net::UnixStream::from_std);
    let Ok(watched) = watched else {
        return std::future::pending().await;
    };
    loop {
        let Ok(ready) = watched.ready(Interest::READABLE).await else {
            return std::future::pending().await;
        };
        if ready.is_read_closed() {
            return;
        }
        // Readable only (a request sent meanwhile): forget that readiness without
        // reading, and wait for the next event.
        let _ = watched.try_io(Interest::READABLE, || {
            Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
        });
    }
}

/// How a worker ended, for the caller.
fn describe(status: Option<i32>) -> String {
    match status {
        Some(st) if libc::WIFSIGNALED(st) => format!("killed by signal {}", libc::WTERMSIG(st)),
        Some(st) => format!("exited with status {}", libc::WEXITSTATUS(st)),
        None => "vanished".into(),
    }
}

/// SIGKILL every descendant of the helper (the worker's whole tree, wherever it
/// went: orphans come back to the helper as subreaper) and reap them all. Returns
/// the worker's wait status. Blocks the helper's loop for the few milliseconds
/// this takes; the helper serves only its one client, who is waiting for this call.
fn kill_and_reap_all(worker: i32, scratch: &mut ProcScratch) -> Option<i32> {
    let me = sys::getpid();
    let mut status = None;
    loop {
        loop {
            match sys::wait_nohang(-1) {
                Ok(Some((pid, st))) => {
                    if pid == worker {
                        status = Some(st);
                    }
                }
                Ok(None) => break,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return status,
                Err(_) => break,
            }
        }
        if status.is_none() {
            let _ = sys::kill_process(worker, libc::SIGKILL);
        }
        tree::signal_tree(me, None, libc::SIGKILL, scratch);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One entrypoint as an operation of the helper's service.
pub(crate) struct EntrypointOp {
    name: &'static str,
    workers: Arc<Workers>,
}

impl EntrypointOp {
    pub(crate) fn new(name: &'static str, workers: Arc<Workers>) -> EntrypointOp {
        EntrypointOp { name, workers }
    }
}

impl DynOperation for EntrypointOp {
    fn info(&self) -> OpInfo {
        OpInfo {
            description: format!(
                "An entrypoint of the privileged context {}",
                self.workers.ep.context().name()
            ),
            params: Value::Null,
        }
    }

    fn check(&self, data: Value) -> Result<Checked, InvalidData> {
        match self
            .workers
            .ep
            .dispatch(self.name, data.clone(), Step::Check)
        {
            Some(Ok(_)) => Ok(Checked {
                data,
                redacted: Value::Null,
            }),
            Some(Err(OpError::Invalid(invalid))) => Err(invalid),
            Some(Err(other)) => Err(InvalidData::new("", other.client_message())),
            None => Err(InvalidData::new("", "no such entrypoint")),
        }
    }

    fn authorize(&self, _caller: &Caller, _data: &Value) -> Authorization {
        Authorization::Allow
    }

    fn after_stage(&self, _: &Caller, _: &Value, _: &Stage, remaining: &Stages) -> Authorization {
        Authorization::continue_with(remaining)
    }

    fn perform(self: Arc<Self>, _ctx: Context, data: Value) -> BoxResult {
        Box::pin(async move { self.workers.run(self.name, data).await })
    }
}
