//! One connection: read request lines within the limits, answer each in turn.
//!
//! - a line longer than `max_line` gets `too_large` and the connection closes;
//! - a started line must finish within `line_timeout`, else the connection closes;
//! - between requests the connection may idle for `idle_timeout`, then it closes;
//! - on shutdown, an idle connection closes at once; a request in progress finishes.
//! - an answer must be taken within `write_timeout`, else the connection closes
//!   (a client that never reads cannot keep its slot); on shutdown, a connection
//!   whose write is blocked closes at once, so it cannot hold the shutdown.
//!
//! Each connection is its own task, so a slow client or a slow operation holds up
//! nobody else.

use super::reload::Current;
use super::tls::ClientCert;
use super::{Limits, SocketEntry};
use crate::identity::Caller;
use regent_proto::{ErrorCode, FrameError, LineBuffer, Response};
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

/// The most read at once. Requests are small; a big one takes several reads.
/// Kept under 1 KiB so the buffer is a small allocation (glibc serves those from
/// its per-thread cache; a larger one would also consolidate free lists).
const READ_SIZE: usize = 960;

/// Why reading the next line ended without one.
enum ReadEnd {
    /// Clean close between requests, idle timeout, or shutdown.
    Closed,
    /// Closed or stalled mid-line.
    Broken,
    /// Over the size limit.
    TooLarge,
}

async fn next_line<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut LineBuffer,
    limits: &Limits,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Vec<u8>, ReadEnd> {
    let mut deadline = Instant::now() + limits.idle_timeout;
    let mut started = buf.has_partial();
    if started {
        deadline = Instant::now() + limits.line_timeout;
    }
    loop {
        match buf.next_line() {
            Ok(Some(line)) => return Ok(line),
            Ok(None) => {}
            Err(FrameError::TooLarge) => return Err(ReadEnd::TooLarge),
            Err(FrameError::Truncated) => return Err(ReadEnd::Broken),
        }
        if !started && buf.has_partial() {
            started = true;
            deadline = Instant::now() + limits.line_timeout;
        }
        // Read straight into the line buffer, never more than its cap allows.
        let spare = buf.spare(READ_SIZE);
        let read = tokio::select! {
            r = timeout_at(deadline, reader.read(spare)) => r,
            _ = shutdown.changed(), if !started => return Err(ReadEnd::Closed),
        };
        match read {
            Err(_elapsed) => {
                return Err(if started {
                    ReadEnd::Broken
                } else {
                    ReadEnd::Closed
                })
            }
            Ok(Err(_)) => return Err(ReadEnd::Broken),
            Ok(Ok(0)) => {
                return Err(if buf.finish().is_err() {
                    ReadEnd::Broken
                } else {
                    ReadEnd::Closed
                })
            }
            Ok(Ok(n)) => buf.commit(n),
        }
    }
}

/// Write one answer within the write deadline. Most answers fit the socket's
/// buffer and are written on the first try, without arming a timer; a write that
/// blocks gets `write_timeout`, and is abandoned at once when the service is
/// shutting down. `false`: the connection is to be closed.
async fn write_answer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    limits: &Limits,
    caller: &Caller,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut write = std::pin::pin!(writer.write_all(bytes));
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    if let Poll::Ready(r) = first {
        return r.is_ok();
    }
    // Boxed: the timer and the shutdown watch would otherwise make every
    // connection's task bigger, for the rare write that blocks.
    Box::pin(finish_blocked_write(write, limits, caller, shutdown)).await
}

/// The rest of [`write_answer`] once its write has blocked.
async fn finish_blocked_write<F: Future<Output = std::io::Result<()>>>(
    write: std::pin::Pin<&mut F>,
    limits: &Limits,
    caller: &Caller,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        tracing::info!(
            uid = caller.uid,
            "shutting down: closing a connection whose client does not read"
        );
        return false;
    }
    let deadline = Instant::now() + limits.write_timeout;
    let stopping = async {
        if shutdown.changed().await.is_err() {
            // No one can stop the service any more: only the deadline applies.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = timeout_at(deadline, write) => match r {
            Ok(r) => r.is_ok(),
            Err(_elapsed) => {
                tracing::warn!(
                    uid = caller.uid,
                    pid = caller.pid,
                    "client did not take its answer within write_timeout; closing"
                );
                false
            }
        },
        _ = stopping => {
            tracing::info!(
                uid = caller.uid,
                "shutting down: closing a connection whose client does not read"
            );
            false
        }
    }
}

/// Whether the current CRLs revoke the TLS client certificate `cert` or a CA
/// certificate its client presented with it (one revoked after its handshake:
/// a reload brought the new CRL).
fn revoked_since_handshake(shared: &super::Shared, cert: Option<&ClientCert>) -> bool {
    match (cert, &shared.tls) {
        (Some(cert), Some(material)) => cert.revoked_by(material),
        _ => false,
    }
}

/// Serve one connection until it closes.
///
/// Each request is served under the configuration current when it arrives
/// (see [`super::reload`]); the limits are the same in every one. A TLS client
/// (`cert`: its certificate) whose certificate a reloaded CRL revokes, or
/// whose certificate has expired since its handshake, is closed at its next
/// request, unanswered.
pub(crate) async fn serve<S>(
    current: Arc<Current>,
    stream: S,
    caller: Arc<Caller>,
    socket: &SocketEntry,
    cert: Option<&ClientCert>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A connection reads a request, then writes its answer, in turn: one stream
    // serves both, with no lock around each read and write as a split would add.
    let mut stream = stream;
    let limits = current.load().limits.clone();
    let mut buf = LineBuffer::new(limits.max_line);
    loop {
        if *shutdown.borrow() && !buf.has_partial() {
            break;
        }
        let line = match next_line(&mut stream, &mut buf, &limits, &mut shutdown).await {
            Ok(line) => line,
            Err(ReadEnd::TooLarge) => {
                tracing::warn!(
                    uid = caller.uid,
                    pid = caller.pid,
                    "request over the size limit; closing"
                );
                let line = Response::error(ErrorCode::TooLarge).to_line();
                if write_answer(&mut stream, &line, &limits, &caller, &mut shutdown).await {
                    let _ = stream.shutdown().await;
                }
                break;
            }
            Err(ReadEnd::Broken) => {
                tracing::debug!(uid = caller.uid, "connection broken or stalled mid-line");
                break;
            }
            Err(ReadEnd::Closed) => break,
        };
        // Boxed: the request's future is as large as its longest path, and held
        // inline it would make every connection's task (allocated per connection)
        // too big for the allocator's fast path.
        let shared = current.load();
        if cert.is_some_and(|c| c.expired_at(std::time::SystemTime::now())) {
            // Not answered: the client is no longer one.
            tracing::warn!(
                client = caller.client(),
                "closing a TLS connection whose certificate has expired"
            );
            break;
        }
        if revoked_since_handshake(&shared, cert) {
            // Not answered: the client is no longer one.
            tracing::warn!(
                client = caller.client(),
                "closing a TLS connection whose certificate the reloaded CRL revokes"
            );
            break;
        }
        let response = Box::pin(shared.handle_on(&caller, &socket.exposure, &line)).await;
        drop(shared);
        let line = response.to_line();
        if !write_answer(&mut stream, &line, &limits, &caller, &mut shutdown).await {
            break;
        }
    }
}
