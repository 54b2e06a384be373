//! Serving one already-connected stream instead of a listener: how the privsep
//! helper (crate `regent-privsep`) serves its private socketpair through the same
//! connection code, pipeline and audit record as an accepted connection.

use super::{connection, Service};
use crate::error::Error;
use crate::identity::Caller;
use std::sync::Arc;
use tokio::net::UnixStream;
use tokio::sync::watch;

impl Service {
    /// Serve one already-connected Unix stream (e.g. one end of a socketpair) with
    /// the service's connection code and [`pipeline`](super::pipeline): the same
    /// framing and limits, the same steps, one audit record per request. Returns
    /// when the peer closes the stream (or a connection limit closes it). The
    /// socket path given to [`Service::builder`] is not used.
    ///
    /// The caller is the kernel's word: `SO_PEERCRED` of `stream` (for a
    /// socketpair, the process that created the pair, as it was then). Only the
    /// ids are used, without a user-database lookup, so that serving starts no
    /// thread and never waits on NSS: the caller has no user name (the audit
    /// record shows its uid) and no groups beyond its gid, and an allow rule
    /// naming users or groups by name does not match it.
    pub async fn serve_stream(self, stream: UnixStream) -> Result<(), Error> {
        let cred = stream
            .peer_cred()
            .map_err(|e| Error::io("reading the peer's credentials", e))?;
        let caller = Caller {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            user: None,
            groups: vec![cred.gid()],
            group_names: Vec::new(),
        };
        // Never sent: the stream is served until its peer closes it. Kept alive
        // to the end (a dropped sender would read as a shutdown).
        let (never, rx) = watch::channel(false);
        connection::serve(self.shared.clone(), stream, Arc::new(caller), rx).await;
        drop(never);
        self.shared.refusals.flush(true);
        Ok(())
    }
}
