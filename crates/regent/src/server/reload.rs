//! Swapping a running service's configuration: [`Reloader`].
//!
//! The service keeps its configuration as one snapshot (`Shared`) behind a
//! lock held only to copy an `Arc`. A request takes the snapshot when it starts
//! and keeps it to its end, so it sees one configuration throughout: a reload
//! swaps in a new snapshot for new requests while requests in flight finish under
//! the old. What outlives a reload is shared by both snapshots (see
//! `Shared`): the failure and poll limiters, the bound on runs, the limits and
//! the open pending store, whose held requests survive.

use super::{ServiceBuilder, Shared};
use crate::error::Error;
use std::sync::{Arc, RwLock};

/// The snapshot new requests are served under.
pub(crate) struct Current(RwLock<Arc<Shared>>);

impl Current {
    pub(crate) fn new(shared: Arc<Shared>) -> Current {
        Current(RwLock::new(shared))
    }

    /// The snapshot to serve one request (or admit one connection) under.
    pub(crate) fn load(&self) -> Arc<Shared> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn store(&self, next: Arc<Shared>) -> Arc<Shared> {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, next)
    }
}

/// Swaps a running service's operations, policy, secret, authorization
/// methods (e.g. SMTP settings) and TLS material for new requests (and new
/// TLS handshakes). Get one with
/// [`crate::Service::reloader`] before running the service.
///
/// Not reloaded: the socket, the TCP listen addresses and connection bound,
/// the limits and the pending store's path (the
/// daemon's reload refuses a config that changes them, see
/// [`crate::reload`]).
#[derive(Clone)]
pub struct Reloader {
    current: Arc<Current>,
}

/// What a reload changed in the operations, for its log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Reloaded {
    /// Operations new requests can now call.
    pub added: Vec<String>,
    /// Operations no longer served (their held requests answer `denied`).
    pub removed: Vec<String>,
    /// Operations whose declaration changed (their held requests answer `denied`).
    pub changed: Vec<String>,
}

impl Reloaded {
    /// True when no operation was added, removed or changed.
    pub fn operations_unchanged(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.operations_unchanged() {
            return f.write_str("operations unchanged");
        }
        let mut first = true;
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if names.is_empty() {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "operations {what}: {}", names.join(" "))?;
        }
        Ok(())
    }
}

impl Reloader {
    pub(crate) fn new(current: Arc<Current>) -> Reloader {
        Reloader { current }
    }

    /// Build the configuration `next` describes (its socket and limits are not
    /// used: the running service's stay) and make it the one new requests are
    /// served under. On an error nothing changes.
    ///
    /// A blocking call (it may open the store's TOTP table): run it off an event
    /// loop. Reloads are expected one at a time (the daemon's come from its
    /// signal loop); two at once both succeed, the later one winning.
    pub fn apply(&self, next: ServiceBuilder) -> Result<Reloaded, Error> {
        let running = self.current.load();
        let (_, _, shared) = next.snapshot(Some(&running))?;
        // The TLS material (certificate, key, client CAs, CRLs) is part of the
        // snapshot: new handshakes use the new one.
        let reloaded = compare(&running, &shared);
        drop(self.current.store(Arc::new(shared)));
        Ok(reloaded)
    }
}

fn compare(old: &Shared, new: &Shared) -> Reloaded {
    let mut r = Reloaded::default();
    for (name, entry) in new.registry.iter() {
        match old.registry.get(name) {
            None => r.added.push(name.clone()),
            Some(o) if o.declaration != entry.declaration => r.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    for (name, _) in old.registry.iter() {
        if new.registry.get(name).is_none() {
            r.removed.push(name.clone());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Caller;
    use crate::operation::{Context, OpError, Operation};
    use crate::Service;
    use regent_proto::{ErrorCode, Response};

    struct Say(&'static str);

    impl Operation for Say {
        type Data = ();
        type Output = String;
        async fn perform(&self, _: Context, _: ()) -> Result<String, OpError> {
            Ok(self.0.into())
        }
    }

    async fn call(current: &Current, op: &str, secret: &str) -> Response {
        let root = Arc::new(Caller::unix(None, 0, 0, None));
        let line = serde_json::json!({"op": op, "data": null, "secret": secret}).to_string();
        current.load().handle(&root, line.as_bytes()).await
    }

    #[tokio::test]
    async fn a_reload_swaps_operations_and_secret_for_new_requests_only() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let service = Service::builder(&sock)
            .secret_str("first-secret")
            .register("a", Say("a"))
            .unwrap()
            .build()
            .unwrap();
        let reloader = service.reloader();
        let current = &service.current;
        let before = current.load();
        assert_eq!(
            call(current, "a", "first-secret").await,
            Response::Done("a".into())
        );

        // The secret kept, `a` replaced by `b`.
        let next = Service::builder(&sock)
            .register("b", Say("b"))
            .unwrap()
            .keep_current_secret();
        let r = reloader.apply(next).unwrap();
        assert_eq!((r.added, r.removed), (vec!["b".into()], vec!["a".into()]));
        assert_eq!(
            call(current, "b", "first-secret").await,
            Response::Done("b".into())
        );
        assert_eq!(
            call(current, "a", "first-secret").await,
            Response::error(ErrorCode::UnknownOperation)
        );
        // A request that took the old snapshot still sees it whole.
        let root = Arc::new(Caller::unix(None, 0, 0, None));
        let old = serde_json::json!({"op": "a", "data": null, "secret": "first-secret"});
        assert_eq!(
            before.handle(&root, old.to_string().as_bytes()).await,
            Response::Done("a".into())
        );

        // A new secret: the old one is refused.
        let next = Service::builder(&sock)
            .secret_str("second-secret")
            .register("b", Say("b"))
            .unwrap();
        assert!(reloader.apply(next).unwrap().operations_unchanged());
        assert_eq!(
            call(current, "b", "first-secret").await,
            Response::error(ErrorCode::PermissionDenied)
        );
        assert_eq!(
            call(current, "b", "second-secret").await,
            Response::Done("b".into())
        );
    }
}
