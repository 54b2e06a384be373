//! Who is calling: the principal a request is decided and audited for.
//!
//! Its identity is the transport's word, never the client's: on a Unix socket the
//! kernel's `SO_PEERCRED` (pid, uid, gid), completed by the user database (name,
//! groups). A TLS client is the same type, told apart by its [`Peer`]
//! ([`Principal::tls`]): it is named by its certificate and holds no Unix
//! account. Its `uid` and `gid` are [`TLS_ID`] (`(uid_t)-1`), a value the kernel
//! never reports for a process (`setuid(-1)` changes nothing, and an unmapped id
//! reads as the overflow id 65534), so it matches no Unix user; and policy
//! never compares a TLS client with `users` or `groups` at all, only with
//! `clients` (and a Unix peer never with `clients`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// How a principal reached the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "transport")]
pub enum Peer {
    /// A local process on the Unix socket; its ids come from the kernel.
    #[default]
    Unix,
    /// A remote client identified by its certificate over `[service.tcp]`.
    Tls {
        /// The client's name from its certificate: the first DNS SAN, else the
        /// first URI SAN, else the subject's CN (see [`valid_client_name`]).
        name: String,
        /// The certificate's serial number, in hex.
        serial: String,
        /// The client's address.
        address: SocketAddr,
    },
}

impl Peer {
    /// True for [`Peer::Unix`].
    #[must_use]
    pub fn is_unix(&self) -> bool {
        matches!(self, Peer::Unix)
    }

    /// The TLS client's name; `None` for a Unix peer.
    #[must_use]
    pub fn client(&self) -> Option<&str> {
        match self {
            Peer::Unix => None,
            Peer::Tls { name, .. } => Some(name),
        }
    }
}

/// The `uid` and `gid` of a TLS principal: `(uid_t)-1`, which no process has.
pub const TLS_ID: u32 = u32::MAX;

/// The longest client name a certificate may give.
pub const MAX_CLIENT_NAME: usize = 64;

/// Whether `name` may name a TLS client: `[A-Za-z0-9][A-Za-z0-9._@-]*`, at most
/// [`MAX_CLIENT_NAME`] bytes. A certificate naming anything else is refused at
/// the handshake, so a client name is safe in a log, a template and a mail.
#[must_use]
pub fn valid_client_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_CLIENT_NAME
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

/// Who a per-caller bound counts: a Unix uid, or a TLS client by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerKey {
    /// A local peer's uid.
    Uid(u32),
    /// A TLS client's name.
    Client(String),
}

/// The caller of a request: the account it acts as and how it connected.
///
/// Its serialised form (the caller of a held request in `regent.pending`'s answer)
/// is what the transport vouched for: `uid`, `gid`, `pid`, `user`, and the peer
/// when it is not a Unix one. The groups are not in it: they are the user
/// database's word at the time, resolved again rather than taken from a
/// serialised principal, so one read back is only in its primary group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Real user id (from the kernel on a Unix socket).
    pub uid: u32,
    /// Real (primary) group id (from the kernel on a Unix socket).
    pub gid: u32,
    /// Process id at connect time (`None` when the transport has none, or when
    /// the principal was read back from a store).
    pub pid: Option<i32>,
    /// User name for `uid`, if the user database knows it.
    pub user: Option<String>,
    /// Every group the user is in: `gid` plus the database's supplementary
    /// groups (only `gid` when they were not looked up).
    #[serde(skip)]
    pub groups: Vec<u32>,
    /// Names of `groups` that the group database knows.
    #[serde(skip)]
    pub group_names: Vec<String>,
    /// How it connected.
    #[serde(default, skip_serializing_if = "Peer::is_unix")]
    pub peer: Peer,
}

impl Principal {
    /// A Unix peer known by its kernel ids and, if known, its user name; its
    /// groups are only `gid` until the user database completes them.
    #[must_use]
    pub fn unix(pid: Option<i32>, uid: u32, gid: u32, user: Option<String>) -> Principal {
        Principal {
            uid,
            gid,
            pid,
            user,
            groups: vec![gid],
            group_names: Vec::new(),
            peer: Peer::Unix,
        }
    }

    /// A TLS client named `name` (already checked with [`valid_client_name`])
    /// by a certificate with this serial, from `address`. It has no Unix
    /// account: its ids are [`TLS_ID`], its user name none, its groups none.
    #[must_use]
    pub fn tls(name: String, serial: String, address: SocketAddr) -> Principal {
        Principal {
            uid: TLS_ID,
            gid: TLS_ID,
            pid: None,
            user: None,
            groups: Vec::new(),
            group_names: Vec::new(),
            peer: Peer::Tls {
                name,
                serial,
                address,
            },
        }
    }

    /// The TLS client's name; `None` for a Unix peer.
    #[must_use]
    pub fn client(&self) -> Option<&str> {
        self.peer.client()
    }

    /// Who per-caller bounds (rate limits, connections, held requests) count.
    #[must_use]
    pub fn key(&self) -> CallerKey {
        match self.client() {
            Some(name) => CallerKey::Client(name.to_string()),
            None => CallerKey::Uid(self.uid),
        }
    }

    /// True when `other` is the same caller for binding a held request: the
    /// same uid on a Unix socket, the same client name over TLS; never a Unix
    /// peer and a TLS client.
    #[must_use]
    pub fn same_caller(&self, other: &Principal) -> bool {
        self.key() == other.key()
    }

    /// True when the principal is in group `gid` (primary or supplementary);
    /// never for a TLS client.
    #[must_use]
    pub fn in_group(&self, gid: u32) -> bool {
        self.peer.is_unix() && self.gid == gid || self.groups.contains(&gid)
    }

    /// True when the principal is in the group named `name`.
    #[must_use]
    pub fn in_group_named(&self, name: &str) -> bool {
        self.group_names.iter().any(|g| g == name)
    }

    /// The user name, or the numeric uid when the database has no name: what
    /// templates see as `{caller.user}`.
    #[must_use]
    pub fn user_or_uid(&self) -> String {
        self.user.clone().unwrap_or_else(|| self.uid.to_string())
    }

    /// True for root (uid 0 on a Unix socket; never a TLS client).
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.uid == 0 && self.peer.is_unix()
    }

    /// The value of a `{caller.KEY}` template placeholder: `uid`, `gid` or
    /// `user` for a Unix peer, `client` for a TLS client; `None` for any other
    /// key or one the peer does not have (`regent check` refuses an operation
    /// TLS clients may call that uses `uid`, `gid` or `user`).
    #[must_use]
    pub fn template_value(&self, key: &str) -> Option<String> {
        match (key, &self.peer) {
            ("uid", Peer::Unix) => Some(self.uid.to_string()),
            ("gid", Peer::Unix) => Some(self.gid.to_string()),
            ("user", Peer::Unix) => Some(self.user_or_uid()),
            ("client", Peer::Tls { name, .. }) => Some(name.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    /// `alice (uid 1000)`, `uid 1000` without a name; a TLS client adds its
    /// certificate's name and its address. The user name comes from the local
    /// database, but a name may hold anything: escape before a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Peer::Tls { name, address, .. } = &self.peer {
            if self.uid == TLS_ID {
                return write!(f, "client {name} from {address}");
            }
        }
        match &self.user {
            Some(u) => write!(f, "{u} (uid {})", self.uid)?,
            None => write!(f, "uid {}", self.uid)?,
        }
        match &self.peer {
            Peer::Unix => Ok(()),
            Peer::Tls { name, address, .. } => write!(f, " as {name} from {address}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            groups: vec![1000, 27],
            group_names: vec!["alice".into(), "sudo".into()],
            ..Principal::unix(Some(42), 1000, 1000, Some("alice".into()))
        }
    }

    #[test]
    fn groups_by_id_and_name() {
        let a = alice();
        assert!(a.in_group(1000) && a.in_group(27));
        assert!(!a.in_group(0));
        assert!(a.in_group_named("sudo"));
        assert!(!a.in_group_named("root"));
        // The primary gid counts even when the database left it out.
        let bare = Principal {
            groups: vec![],
            ..Principal::unix(None, 5, 6, None)
        };
        assert!(bare.in_group(6));
        assert_eq!(Principal::unix(None, 5, 6, None).groups, vec![6]);
    }

    #[test]
    fn names_and_template_values() {
        let a = alice();
        assert_eq!(a.user_or_uid(), "alice");
        assert!(!a.is_root());
        assert_eq!(a.template_value("uid").as_deref(), Some("1000"));
        assert_eq!(a.template_value("gid").as_deref(), Some("1000"));
        assert_eq!(a.template_value("user").as_deref(), Some("alice"));
        assert_eq!(a.template_value("pid"), None);
        let nameless = Principal::unix(None, 3_999_999_999, 7, None);
        assert_eq!(nameless.user_or_uid(), "3999999999");
        assert_eq!(
            nameless.template_value("user").as_deref(),
            Some("3999999999")
        );
        assert_eq!(nameless.to_string(), "uid 3999999999");
        assert_eq!(a.to_string(), "alice (uid 1000)");
        assert!(Principal::unix(None, 0, 0, None).is_root());
    }

    #[test]
    fn a_tls_client_is_the_same_type() {
        let t = Principal {
            peer: Peer::Tls {
                name: "backup.example.org".into(),
                serial: "0a1b".into(),
                address: "192.0.2.7:5000".parse().unwrap(),
            },
            ..Principal::unix(None, 34, 34, Some("backup".into()))
        };
        assert_eq!(
            t.to_string(),
            "backup (uid 34) as backup.example.org from 192.0.2.7:5000"
        );
        let back: Principal = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.peer, t.peer);
        assert_eq!((back.uid, back.user), (34, Some("backup".into())));
    }

    #[test]
    fn a_tls_principal_matches_no_unix_account() {
        let t = Principal::tls("panel".into(), "1001".into(), "[::1]:4000".parse().unwrap());
        assert_eq!((t.uid, t.gid), (TLS_ID, TLS_ID));
        assert!(!t.is_root() && !t.in_group(TLS_ID) && t.user.is_none());
        assert_eq!(t.client(), Some("panel"));
        assert_eq!(t.template_value("client").as_deref(), Some("panel"));
        for k in ["uid", "gid", "user"] {
            assert_eq!(t.template_value(k), None, "{k}");
        }
        assert_eq!(alice().template_value("client"), None);
        assert_eq!(t.to_string(), "client panel from [::1]:4000");
        assert_eq!(t.key(), CallerKey::Client("panel".into()));
        assert_eq!(alice().key(), CallerKey::Uid(1000));
        let other = Principal::tls(
            "panel2".into(),
            "1001".into(),
            "[::1]:4000".parse().unwrap(),
        );
        assert!(!t.same_caller(&other) && t.same_caller(&t.clone()));
        let unix_max = Principal::unix(None, TLS_ID, TLS_ID, Some("panel".into()));
        assert!(!t.same_caller(&unix_max) && !unix_max.same_caller(&t));
    }

    #[test]
    fn client_names() {
        for good in [
            "panel",
            "a",
            "backup.example.org",
            "x@y-z.9",
            "a_b",
            "A0",
            &"a".repeat(64),
        ] {
            assert!(valid_client_name(good), "{good}");
        }
        for bad in [
            "",
            ".a",
            "-a",
            "a b",
            "a\n",
            "é",
            "a/b",
            &"a".repeat(65),
            "a:b",
        ] {
            assert!(!valid_client_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_serialised_form_is_what_the_transport_vouched_for() {
        // Exactly the caller object of `regent.pending`'s answer, in its order.
        let text = serde_json::to_string(&alice()).unwrap();
        assert_eq!(text, r#"{"uid":1000,"gid":1000,"pid":42,"user":"alice"}"#);
        // Read back, it claims no supplementary group.
        let back: Principal = serde_json::from_str(
            r#"{"uid":1000,"gid":1000,"pid":null,"user":"alice","groups":[0]}"#,
        )
        .unwrap();
        assert_eq!(back.peer, Peer::Unix);
        assert!(back.groups.is_empty() && back.in_group(1000) && !back.in_group(0));
    }
}
