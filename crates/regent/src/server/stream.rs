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
        let caller = Caller::unix(cred.pid(), cred.uid(), cred.gid(), None);
        // Never sent: the stream is served until its peer closes it. Kept alive
        // to the end (a dropped sender would read as a shutdown).
        let (never, rx) = watch::channel(false);
        // As on the first socket: everything the service offers.
        let first = &self.sockets[0];
        connection::serve(
            self.current.clone(),
            stream,
            Arc::new(caller),
            first,
            None,
            rx,
        )
        .await;
        drop(never);
        self.current.load().refusals.flush(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{Context, OpError, Operation};
    use std::sync::Mutex;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// Answers with the caller the service saw.
    struct WhoCalls;
    impl Operation for WhoCalls {
        type Data = ();
        type Output = (Option<i32>, u32);
        async fn perform(&self, ctx: Context, _: ()) -> Result<(Option<i32>, u32), OpError> {
            Ok((ctx.caller.pid, ctx.caller.uid))
        }
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn serves_a_socketpair_through_the_pipeline_with_its_audit() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answers = tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let service = Service::builder("unused")
                    .register("who", WhoCalls)
                    .unwrap()
                    .build()
                    .unwrap();
                let (ours, theirs) = UnixStream::pair().unwrap();
                let served = tokio::spawn(service.serve_stream(theirs));
                let (read, mut write) = ours.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut answers = Vec::new();
                for request in [r#"{"op":"who"}"#, "not json", r#"{"op":"nope"}"#] {
                    write
                        .write_all(format!("{request}\n").as_bytes())
                        .await
                        .unwrap();
                    answers.push(lines.next_line().await.unwrap().unwrap());
                }
                drop(write);
                // The peer closed: serving ends.
                tokio::time::timeout(std::time::Duration::from_secs(10), served)
                    .await
                    .expect("serve_stream returns once the peer closes")
                    .unwrap()
                    .unwrap();
                answers
            })
        });
        let me = (std::process::id(), nix::unistd::Uid::current().as_raw());
        let done = regent_proto::Response::parse(answers[0].as_bytes()).unwrap();
        assert_eq!(
            done,
            regent_proto::Response::Done(serde_json::json!([me.0, me.1]))
        );
        assert!(answers[1].contains("bad_request"), "{}", answers[1]);
        assert!(answers[2].contains("unknown_operation"), "{}", answers[2]);
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let records: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("regent::audit"))
            .collect();
        assert_eq!(records.len(), 3, "{log}");
        for (record, outcome) in records
            .iter()
            .zip(["ok", "bad_request", "unknown_operation"])
        {
            assert!(
                record.contains(&format!("pid={} uid={} ", me.0, me.1)),
                "{record}"
            );
            assert!(record.contains(outcome), "{record}");
        }
    }
}
