//! Several Unix sockets, each offering its own operations.
//!
//! A service listens on one or more sockets. Each is a [`SocketEntry`]: where
//! and how its file is created ([`SocketOptions`]) and what it offers
//! ([`Exposure`]): which declared operations, and whether the administrator
//! operations. A socket mounted into a container offers only the operations
//! meant for that container, whatever uid its callers have there.
//!
//! Binding is kept apart from serving: [`SocketEntry::bind`] makes the file
//! (with the checks of [`super::listener`]), and a [`BoundSocket`] pairs an
//! entry with a listener however it was bound, so a socket passed by a service
//! manager can be matched to its entry by its bound path ([`SocketEntry::path`],
//! [`bound_path`]) and served the same way.
//!
//! On a socket, an operation it does not offer is answered exactly as one that
//! does not exist (`unknown_operation`), `regent.ops` lists only what it offers,
//! and the other reserved `regent.*` operations answer `unknown_operation`
//! unless the entry offers the administrator operations. Connection limits are
//! the service's, shared by all its sockets.

use super::listener::{self, SocketOptions};
use crate::error::Error;
use crate::registry::RESERVED_PREFIX;
use std::collections::BTreeSet;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The one reserved operation every socket offers: the list of its operations.
pub const LIST_OPERATIONS: &str = "regent.ops";

/// What a socket offers its callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// `None`: every registered operation.
    operations: Option<BTreeSet<String>>,
    admin: bool,
}

impl Exposure {
    /// Every operation and the administrator operations: the first socket's.
    #[must_use]
    pub fn everything() -> Self {
        Exposure {
            operations: None,
            admin: true,
        }
    }

    /// Only these operations; the administrator operations if `admin`.
    #[must_use]
    pub fn only<S: Into<String>>(operations: impl IntoIterator<Item = S>, admin: bool) -> Self {
        Exposure {
            operations: Some(operations.into_iter().map(Into::into).collect()),
            admin,
        }
    }

    /// May a caller of this socket ask for the operation `name` (declared or
    /// reserved)? A reserved name other than [`LIST_OPERATIONS`] is offered only
    /// with the administrator operations.
    #[must_use]
    pub fn offers(&self, name: &str) -> bool {
        if name.starts_with(RESERVED_PREFIX) {
            return name == LIST_OPERATIONS || self.admin;
        }
        self.operations
            .as_ref()
            .is_none_or(|ops| ops.contains(name))
    }

    /// Whether the administrator operations are offered.
    #[must_use]
    pub fn admin(&self) -> bool {
        self.admin
    }

    /// The declared operations offered, if not all of them.
    pub fn operations(&self) -> Option<impl Iterator<Item = &str>> {
        self.operations
            .as_ref()
            .map(|ops| ops.iter().map(String::as_str))
    }
}

/// One socket: its file and what it offers.
#[derive(Debug, Clone)]
pub struct SocketEntry {
    /// Where and how the file is made.
    pub options: SocketOptions,
    /// What it offers.
    pub exposure: Exposure,
}

impl SocketEntry {
    /// A socket at `options.path` offering `exposure`.
    #[must_use]
    pub fn new(options: SocketOptions, exposure: Exposure) -> Self {
        SocketEntry { options, exposure }
    }

    /// Its path: what a listener passed by a service manager is matched by.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.options.path
    }

    /// Bind its file safely (see [`listener::bind`]).
    pub fn bind(&self) -> Result<UnixListener, Error> {
        listener::bind(&self.options)
    }
}

/// An entry with its listening socket, ready to serve.
#[derive(Debug)]
pub struct BoundSocket {
    pub(crate) entry: Arc<SocketEntry>,
    pub(crate) listener: UnixListener,
    /// Passed by a service manager: its file is the manager's, left in place
    /// when the service stops.
    pub(crate) passed: bool,
}

impl BoundSocket {
    /// Pair an entry with a listener bound for it (by [`SocketEntry::bind`] or
    /// passed by a service manager; see [`bound_path`]).
    #[must_use]
    pub fn new(entry: Arc<SocketEntry>, listener: UnixListener) -> Self {
        BoundSocket {
            entry,
            listener,
            passed: false,
        }
    }

    /// Pair an entry with a listener a service manager passed (socket
    /// activation): served the same, but its file is not removed at stop.
    #[must_use]
    pub fn passed(entry: Arc<SocketEntry>, listener: UnixListener) -> Self {
        BoundSocket {
            entry,
            listener,
            passed: true,
        }
    }

    /// The entry.
    #[must_use]
    pub fn entry(&self) -> &SocketEntry {
        &self.entry
    }
}

/// The path a listening Unix socket is bound to, if it has one.
pub fn bound_path(listener: &UnixListener) -> Option<PathBuf> {
    listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf))
}

/// Refuse two entries with the same path, and an entry offering an operation
/// `registered` does not know.
pub(crate) fn check_entries<'a>(
    entries: &[Arc<SocketEntry>],
    registered: impl Fn(&str) -> bool + 'a,
) -> Result<(), Error> {
    for (i, e) in entries.iter().enumerate() {
        if entries[..i].iter().any(|o| o.path() == e.path()) {
            return Err(Error::Config(format!(
                "two sockets at {}: each socket needs its own path",
                e.path().display()
            )));
        }
        if let Some(unknown) = e
            .exposure
            .operations()
            .and_then(|mut ops| ops.find(|o| !registered(o)))
        {
            return Err(Error::Config(format!(
                "socket {} offers {unknown:?}, which is not registered",
                e.path().display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_offers_only_its_operations_and_the_admin_ones_if_it_says_so() {
        let all = Exposure::everything();
        assert!(all.offers("anything") && all.offers("regent.pending"));
        let only = Exposure::only(["a"], false);
        assert!(only.offers("a") && !only.offers("b"));
        assert!(only.offers("regent.ops"));
        for admin in [
            "regent.pending",
            "regent.approve",
            "regent.deny",
            "regent.status",
        ] {
            assert!(!only.offers(admin), "{admin}");
            assert!(Exposure::only(["a"], true).offers(admin), "{admin}");
        }
    }

    #[test]
    fn entries_need_their_own_paths_and_known_operations() {
        let entry = |p: &str, ops: &[&str]| {
            Arc::new(SocketEntry::new(
                SocketOptions::new(p),
                Exposure::only(ops.iter().copied(), false),
            ))
        };
        let known = |o: &str| o == "a";
        check_entries(&[entry("/r/a", &["a"]), entry("/r/b", &[])], known).unwrap();
        let e = check_entries(&[entry("/r/a", &["a"]), entry("/r/a", &[])], known).unwrap_err();
        assert!(e.to_string().contains("two sockets at /r/a"), "{e}");
        let e = check_entries(&[entry("/r/a", &["b"])], known).unwrap_err();
        assert!(e.to_string().contains("offers \"b\""), "{e}");
    }

    #[test]
    fn a_bound_listener_tells_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(bound_path(&l), Some(path));
    }
}
