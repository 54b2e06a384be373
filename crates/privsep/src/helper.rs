//! The helper: a confined process serving one context's entrypoints over the private
//! channel, with the Regent protocol (`op` = entrypoint name, `data` = named
//! arguments).
//!
//! Each call runs in a fresh worker forked from the (single-threaded) helper, so a
//! timeout really stops the work: the helper is a child subreaper, and when the time
//! is up it SIGKILLs the worker and every process descending from it, reaps them
//! all, and answers `timeout`; the next call gets a new worker. After every call,
//! whatever the worker left behind is killed too. The helper exits on EOF from its
//! client, and with its parent (`PR_SET_PDEATHSIG`) when forked.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use regent_exec::sys::{self, Forked};
use regent_exec::tree::{self, ProcScratch};
use regent_exec::Confinement;
use regent_proto::{ErrorCode, LineBuffer, Request, Response};
use serde_json::json;

use crate::context::{Entrypoints, MAX_LINE, PING};

/// Entry of a forked helper: keep only the channel, confine, serve. Never returns.
pub(crate) fn run_forked(
    ep: &Entrypoints,
    confinement: &Confinement,
    channel: UnixStream,
    parent: i32,
) -> ! {
    let fd = channel.as_raw_fd();
    let mut keep = [0, 1, 2, fd];
    keep.sort_unstable();
    // Other contexts' channels and whatever else the program had open stay behind.
    let _ = sys::close_fds_except(&keep);
    let Ok(reader) = channel.try_clone() else {
        sys::exit_now(1)
    };
    let (input, mut output) = (
        File::from(OwnedFd::from(reader)),
        File::from(OwnedFd::from(channel)),
    );
    if let Err(failure) = confinement.apply() {
        let msg = format!(
            "the helper could not take on its policy: {}",
            failure.into_error()
        );
        let _ = output.write_all(&Response::error_with(ErrorCode::Internal, msg).to_line());
        sys::exit_now(1);
    }
    // Set after the credential changes, which clear it.
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    if sys::getppid() != parent {
        sys::exit_now(0);
    }
    serve(ep, input, output)
}

/// Entry of a helper started through a helper command: the channel is stdin/stdout.
pub(crate) fn run_commanded(ep: &Entrypoints) -> ! {
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
    let input = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .unwrap_or_else(|e| fail(e.to_string()));
    let output = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .unwrap_or_else(|e| fail(e.to_string()));
    // Entrypoints printing to stdout must not corrupt the channel.
    if let Err(e) = sys::stdio_to_dev_null(&[0, 1]) {
        fail(e.to_string());
    }
    let mut output = File::from(output);
    let confined = ep
        .context()
        .policy()
        .map_err(|e| e.to_string())
        .and_then(|p| Confinement::prepare(&p).map_err(|e| e.to_string()))
        .and_then(|c| c.apply().map_err(|f| f.into_error().to_string()));
    if let Err(e) = confined {
        let msg = format!("the helper could not take on its policy: {e}");
        let _ = output.write_all(&Response::error_with(ErrorCode::Internal, msg).to_line());
        sys::exit_now(1);
    }
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    serve(ep, File::from(input), output)
}

/// Read more from the client into `buf`; false on EOF or error.
fn read_more(input: &mut File, buf: &mut LineBuffer) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        match input.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend(&chunk[..n]);
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

fn serve(ep: &Entrypoints, mut input: File, mut output: File) -> ! {
    let _ = sys::set_child_subreaper();
    let mut buf = LineBuffer::new(MAX_LINE);
    let mut scratch = ProcScratch::default();
    loop {
        let line = match buf.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => {
                if read_more(&mut input, &mut buf) {
                    continue;
                }
                sys::exit_now(0)
            }
            Err(_) => {
                let _ = output.write_all(&Response::error(ErrorCode::TooLarge).to_line());
                sys::exit_now(0)
            }
        };
        let response = match Request::parse(&line) {
            Err(e) => Response::error_with(ErrorCode::BadRequest, e.to_string()).to_line(),
            Ok(Request::Continue { .. }) => Response::error_with(
                ErrorCode::BadRequest,
                "a privileged helper has no pending requests",
            )
            .to_line(),
            Ok(Request::New { op, .. }) if op == PING => {
                Response::Done(json!({"context": ep.context().name(), "pid": sys::getpid()}))
                    .to_line()
            }
            Ok(Request::New { op, .. }) if !ep.names().contains(&op.as_str()) => {
                Response::error_with(ErrorCode::UnknownOperation, format!("no entrypoint {op:?}"))
                    .to_line()
            }
            Ok(Request::New { op, data, .. }) => {
                let timeout = ep.context().call_timeout();
                match call_in_worker(ep, &op, data, timeout, &mut input, &mut buf, &mut scratch) {
                    Some(line) => line,
                    None => sys::exit_now(0),
                }
            }
        };
        if output.write_all(&response).is_err() {
            sys::exit_now(0);
        }
    }
}

enum Outcome {
    Answer(Vec<u8>),
    TimedOut,
    Died,
    ClientGone,
}

/// Run one call in a forked worker. Returns the response line, or `None` if the client
/// went away meanwhile.
fn call_in_worker(
    ep: &Entrypoints,
    op: &str,
    data: serde_json::Value,
    timeout: Duration,
    input: &mut File,
    inbuf: &mut LineBuffer,
    scratch: &mut ProcScratch,
) -> Option<Vec<u8>> {
    let internal = |what: &str| Some(Response::error_with(ErrorCode::Internal, what).to_line());
    let Ok((r, w)) = sys::pipe_cloexec() else {
        return internal("cannot create a pipe");
    };
    let worker = match sys::fork_single_threaded() {
        Err(_) => return internal("cannot fork a worker"),
        Ok(Forked::Child) => {
            drop(r);
            let mut keep = [0, 1, 2, w.as_raw_fd()];
            keep.sort_unstable();
            // The worker never touches the client's channel.
            let _ = sys::close_fds_except(&keep);
            let _ = sys::set_parent_death_signal(libc::SIGKILL);
            let response = match catch_unwind(AssertUnwindSafe(|| ep.dispatch(op, data))) {
                Ok(Some(response)) => response,
                Ok(None) => Response::error_with(
                    ErrorCode::UnknownOperation,
                    format!("no entrypoint {op:?}"),
                ),
                Err(_) => {
                    Response::error_with(ErrorCode::OperationFailed, "the entrypoint panicked")
                }
            };
            sys::write_all_raw(&w, &response.to_line());
            sys::exit_now(0)
        }
        Ok(Forked::Parent(pid)) => pid,
    };
    drop(w);
    let outcome = wait_for_worker(File::from(r), timeout, input, inbuf);
    let status = kill_and_reap_all(worker, scratch);
    match outcome {
        Outcome::Answer(mut line) => {
            line.push(b'\n');
            Some(line)
        }
        Outcome::TimedOut => Some(
            Response::error_with(
                ErrorCode::Timeout,
                format!("{op} ran past its time limit of {timeout:?} and was stopped"),
            )
            .to_line(),
        ),
        Outcome::Died => {
            let how = match status {
                Some(st) if libc::WIFSIGNALED(st) => {
                    format!("killed by signal {}", libc::WTERMSIG(st))
                }
                Some(st) => format!("exited with status {}", libc::WEXITSTATUS(st)),
                None => "vanished".into(),
            };
            Some(
                Response::error_with(
                    ErrorCode::OperationFailed,
                    format!("the entrypoint died ({how})"),
                )
                .to_line(),
            )
        }
        Outcome::ClientGone => None,
    }
}

fn wait_for_worker(
    mut from_worker: File,
    timeout: Duration,
    input: &mut File,
    inbuf: &mut LineBuffer,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut answer = LineBuffer::new(MAX_LINE);
    let mut chunk = [0u8; 8192];
    loop {
        match answer.next_line() {
            Ok(Some(line)) => return Outcome::Answer(line),
            Ok(None) => {}
            Err(_) => return Outcome::Died,
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Outcome::TimedOut;
        }
        let Ok(ready) = sys::poll_readable(&[from_worker.as_fd(), input.as_fd()], Some(remaining))
        else {
            return Outcome::Died;
        };
        if ready.get(1) == Some(&true) {
            // EOF here means the client is gone; data is kept for after this call.
            if !read_more(input, inbuf) || inbuf.pending_len() > MAX_LINE {
                return Outcome::ClientGone;
            }
        }
        if ready.first() == Some(&true) {
            match from_worker.read(&mut chunk) {
                Ok(0) => return Outcome::Died,
                Ok(n) => answer.extend(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Outcome::Died,
            }
        }
    }
}

/// SIGKILL every descendant of the helper (the worker's whole tree, wherever it
/// went: orphans come back to us as subreaper) and reap them all. Returns the
/// worker's wait status.
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
