//! The client end of a helper's private channel: one request, then its answer.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::time::{Duration, Instant};

use regent_proto::{ErrorCode, LineBuffer, Request, Response};
use serde_json::Value;

use crate::error::PrivsepError;
use crate::wire::MAX_LINE;

/// The client end of a helper's channel.
pub(crate) struct Channel {
    pub(crate) stream: UnixStream,
    buf: LineBuffer,
    pub(crate) helper_pid: i32,
    /// The helper command's process (command mode), reaped on stop.
    pub(crate) child: Option<Child>,
    /// Set once the channel is unusable.
    broken: Option<String>,
}

impl Channel {
    pub(crate) fn new(stream: UnixStream, helper_pid: i32, child: Option<Child>) -> Channel {
        Channel {
            stream,
            buf: LineBuffer::new(MAX_LINE),
            helper_pid,
            child,
            broken: None,
        }
    }

    /// Call `op` of context `context` (whose per-call limit is `limit`), waiting
    /// up to `wait` for the answer.
    pub(crate) fn call(
        &mut self,
        context: &'static str,
        limit: Duration,
        op: &str,
        data: Value,
        wait: Duration,
    ) -> Result<Value, PrivsepError> {
        if let Some(reason) = &self.broken {
            return Err(PrivsepError::HelperGone {
                context,
                reason: reason.clone(),
            });
        }
        match self.exchange(op, data, wait) {
            Ok(response) => match response {
                Response::Done(value) => Ok(value),
                Response::Error {
                    code: Some(ErrorCode::Timeout),
                    ..
                } => Err(PrivsepError::Timeout {
                    context,
                    op: op.to_string(),
                    after: limit,
                }),
                Response::Error { error, code } => Err(PrivsepError::Remote {
                    context,
                    op: op.to_string(),
                    code,
                    message: error,
                }),
                Response::Pending { .. } => Err(PrivsepError::Remote {
                    context,
                    op: op.to_string(),
                    code: None,
                    message: "unexpected pending response".into(),
                }),
            },
            Err(reason) => {
                self.broken = Some(reason.clone());
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                Err(PrivsepError::HelperGone { context, reason })
            }
        }
    }

    /// One request and its response; `Err` means the channel is no longer usable.
    fn exchange(&mut self, op: &str, data: Value, wait: Duration) -> Result<Response, String> {
        let request = Request::New {
            secret: None,
            op: op.to_string(),
            data,
            dry_run: false,
        };
        self.stream
            .write_all(&request.to_line())
            .map_err(|e| format!("cannot send: {e}"))?;
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 8192];
        loop {
            match self.buf.next_line() {
                Ok(Some(line)) => {
                    return Response::parse(&line).map_err(|e| format!("bad answer: {e}"));
                }
                Ok(None) => {}
                Err(e) => return Err(format!("bad answer: {e}")),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(format!("no answer within {wait:?}"));
            }
            self.stream
                .set_read_timeout(Some(remaining))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the helper closed the channel".into()),
                Ok(n) => self.buf.extend(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("cannot read: {e}")),
            }
        }
    }
}
