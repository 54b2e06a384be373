//! Socket activation: serve the sockets a service manager passed
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) instead of binding.
//!
//! Three steps, the middle one pure:
//! 1. [`from_env`] takes the passed descriptors (once, at start-up, before the
//!    process opens anything else), unsets the variables, marks each descriptor
//!    close-on-exec and reads what the kernel says of it ([`SocketFacts`]);
//! 2. [`plan`] matches them to the configured Unix sockets by bound path, and
//!    to `[service.tcp]`'s `listen` addresses by bound address and port, and
//!    refuses anything else: a datagram socket, a socket not listening, an
//!    unknown path or address, two for one path or address, a family that is
//!    neither Unix nor IPv4/IPv6;
//! 3. the daemon serves each matched descriptor ([`listeners_for`]).
//!
//! Configured sockets and addresses that were not passed are bound as usual.

use crate::error::Error;
use nix::sys::socket::{
    getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike, SockaddrStorage,
};
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The environment variables of the protocol.
pub const VARIABLES: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// What the kernel says of one passed descriptor: the input of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketFacts {
    /// Its name in `LISTEN_FDNAMES` (`FileDescriptorName=`, `--fdname`), if given.
    pub name: Option<String>,
    /// Its address.
    pub address: PassedAddress,
    /// `SOCK_STREAM`.
    pub stream: bool,
    /// `listen()` was called on it (`SO_ACCEPTCONN`).
    pub listening: bool,
}

/// The bound address of a passed descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassedAddress {
    /// A Unix socket bound to a path.
    UnixPath(PathBuf),
    /// A Unix socket without a path (abstract or unnamed): it cannot match a
    /// configured socket.
    UnixUnnamed,
    /// An IPv4 or IPv6 socket: for a TCP listen address.
    Inet(SocketAddr),
    /// Not a socket, or another family (described).
    Other(String),
}

impl fmt::Display for PassedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassedAddress::UnixPath(p) => write!(f, "Unix socket {}", p.display()),
            PassedAddress::UnixUnnamed => f.write_str("a Unix socket without a path"),
            PassedAddress::Inet(a) => write!(f, "TCP socket {a}"),
            PassedAddress::Other(d) => f.write_str(d),
        }
    }
}

/// Which passed descriptor serves what: the output of [`plan`]. Indexes are
/// into the passed list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// For each configured Unix socket, in order, the passed descriptor that
    /// serves it, or `None` if it was not passed (then it is bound as usual).
    pub unix: Vec<Option<usize>>,
    /// For each configured TCP listen address, in order, the passed descriptor
    /// bound to it, or `None` (then it is bound as usual).
    pub tcp: Vec<Option<usize>>,
}

/// Why the passed sockets are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    /// The variables are malformed.
    #[error("socket activation: {variable} is malformed: {reason}")]
    Malformed {
        /// Which variable.
        variable: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A passed descriptor is not a stream socket.
    #[error("socket activation: passed descriptor {index} ({what}) is not a stream socket (ListenStream= is needed, not ListenDatagram= or ListenSequentialPacket=)")]
    NotStream {
        /// Its position among the passed descriptors.
        index: usize,
        /// [`fmt::Display`] of its address and name.
        what: String,
    },
    /// A passed descriptor is not listening.
    #[error("socket activation: passed descriptor {index} ({what}) is not a listening socket (Accept=no is needed)")]
    NotListening {
        /// Its position among the passed descriptors.
        index: usize,
        /// [`fmt::Display`] of its address and name.
        what: String,
    },
    /// A passed descriptor matches no configured socket.
    #[error("socket activation: passed descriptor {index} ({what}) is not a configured socket (configured: {configured}); make ListenStream= and the config's socket paths and [service.tcp] listen addresses agree")]
    Unknown {
        /// Its position among the passed descriptors.
        index: usize,
        /// [`fmt::Display`] of its address and name.
        what: String,
        /// The configured paths and addresses.
        configured: String,
    },
    /// Two passed descriptors for one configured path or address.
    #[error(
        "socket activation: passed descriptors {first} and {second} are both bound to {address}"
    )]
    Duplicate {
        /// The first one.
        first: usize,
        /// The second one.
        second: usize,
        /// The path or address.
        address: String,
    },
}

fn describe(facts: &SocketFacts) -> String {
    match &facts.name {
        Some(n) => format!("{}, named {:?}", facts.address, n),
        None => facts.address.to_string(),
    }
}

/// Match passed sockets to the configured Unix socket paths and TCP listen
/// addresses (pure).
///
/// Each passed socket must be a listening stream socket; a Unix one must be
/// bound to exactly one of `unix` (compared as written: give absolute paths),
/// an IPv4 or IPv6 one to exactly one of `tcp` (address and port, as
/// `getsockname` gives them: `0.0.0.0:7443` and `[::]:7443` differ), each at
/// most once. Anything else is refused, naming the descriptor.
pub fn plan(
    passed: &[SocketFacts],
    unix: &[&Path],
    tcp: &[SocketAddr],
) -> Result<Plan, ActivationError> {
    let mut out = Plan {
        unix: vec![None; unix.len()],
        tcp: vec![None; tcp.len()],
    };
    for (index, facts) in passed.iter().enumerate() {
        let what = || describe(facts);
        let unknown = || ActivationError::Unknown {
            index,
            what: what(),
            configured: list(unix, tcp),
        };
        if let PassedAddress::Other(_) = facts.address {
            return Err(unknown());
        }
        if !facts.stream {
            return Err(ActivationError::NotStream {
                index,
                what: what(),
            });
        }
        if !facts.listening {
            return Err(ActivationError::NotListening {
                index,
                what: what(),
            });
        }
        let (slot, address) = match &facts.address {
            PassedAddress::Inet(addr) => {
                let slot = tcp.iter().position(|c| c == addr).ok_or_else(unknown)?;
                (&mut out.tcp[slot], addr.to_string())
            }
            PassedAddress::UnixPath(path) => {
                let slot = unix
                    .iter()
                    .position(|c| *c == path.as_path())
                    .ok_or_else(unknown)?;
                (&mut out.unix[slot], path.display().to_string())
            }
            PassedAddress::UnixUnnamed | PassedAddress::Other(_) => return Err(unknown()),
        };
        if let Some(first) = *slot {
            return Err(ActivationError::Duplicate {
                first,
                second: index,
                address,
            });
        }
        *slot = Some(index);
    }
    Ok(out)
}

fn list(unix: &[&Path], tcp: &[SocketAddr]) -> String {
    let join = |items: Vec<String>| match items.is_empty() {
        true => "none".to_string(),
        false => items.join(", "),
    };
    format!(
        "Unix sockets {}; [service.tcp] listen {}",
        join(unix.iter().map(|p| p.display().to_string()).collect()),
        join(tcp.iter().map(ToString::to_string).collect()),
    )
}

/// One passed descriptor, owned, with what the kernel says of it.
#[derive(Debug)]
pub struct Passed {
    /// The descriptor (close-on-exec).
    pub fd: OwnedFd,
    /// What it is.
    pub facts: SocketFacts,
}

impl Passed {
    /// The descriptor as a Unix listener (for a [`PassedAddress::UnixPath`] that
    /// [`plan`] matched).
    pub fn into_unix_listener(self) -> std::os::unix::net::UnixListener {
        std::os::unix::net::UnixListener::from(self.fd)
    }
}

/// Read the variables, and if they are for this process (`LISTEN_PID` is its
/// pid), take the passed descriptors and inspect them. The variables are unset
/// in any case, so nothing this process starts sees them. `Ok(None)`: not
/// socket-activated. Call it once, first thing at start-up, while the process
/// is single-threaded (it changes the environment).
pub fn from_env() -> Result<Option<Vec<Passed>>, ActivationError> {
    let get = |v: &str| std::env::var(v).ok();
    let (pid, fds, names) = (get(VARIABLES[0]), get(VARIABLES[1]), get(VARIABLES[2]));
    for v in VARIABLES {
        std::env::remove_var(v);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    let malformed = |variable, reason: String| ActivationError::Malformed { variable, reason };
    let pid: u32 = pid
        .parse()
        .map_err(|_| malformed("LISTEN_PID", format!("{pid:?} is not a pid")))?;
    if pid != std::process::id() {
        // Meant for another process (e.g. a wrapper that did not exec).
        return Ok(None);
    }
    let count: u32 = fds
        .parse()
        .map_err(|_| malformed("LISTEN_FDS", format!("{fds:?} is not a count")))?;
    let names: Vec<Option<String>> = match names {
        None => vec![None; count as usize],
        Some(n) => {
            let split: Vec<Option<String>> = n.split(':').map(|s| Some(s.to_string())).collect();
            if split.len() != count as usize {
                return Err(malformed(
                    "LISTEN_FDNAMES",
                    format!("{} names for LISTEN_FDS={count}", split.len()),
                ));
            }
            split
        }
    };
    let owned = regent_exec::sys::take_inherited_listeners(count)
        .map_err(|e| malformed("LISTEN_FDS", e.to_string()))?;
    Ok(Some(
        owned
            .into_iter()
            .zip(names)
            .map(|(fd, name)| {
                let facts = inspect(&fd, name);
                Passed { fd, facts }
            })
            .collect(),
    ))
}

/// What the kernel says of a descriptor.
pub fn inspect(fd: &OwnedFd, name: Option<String>) -> SocketFacts {
    let kind = getsockopt(fd, sockopt::SockType);
    let stream = matches!(kind, Ok(SockType::Stream));
    let listening = getsockopt(fd, sockopt::AcceptConn).unwrap_or(false);
    let address = match (
        kind,
        getsockname::<SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(fd)),
    ) {
        (Err(e), _) | (_, Err(e)) => PassedAddress::Other(format!("not a socket ({e})")),
        (Ok(_), Ok(addr)) => address_of(fd, &addr),
    };
    SocketFacts {
        name,
        address,
        stream,
        listening,
    }
}

fn address_of(fd: &OwnedFd, addr: &SockaddrStorage) -> PassedAddress {
    // The IP address through std (a copy of the descriptor, closed at once).
    let inet = || {
        fd.try_clone()
            .map(std::net::TcpListener::from)
            .and_then(|l| l.local_addr())
            .map_or_else(
                |e| PassedAddress::Other(format!("an IP socket without an address ({e})")),
                PassedAddress::Inet,
            )
    };
    match addr.family() {
        Some(AddressFamily::Unix) => match addr.as_unix_addr().and_then(|u| u.path()) {
            Some(p) => PassedAddress::UnixPath(p.to_path_buf()),
            None => PassedAddress::UnixUnnamed,
        },
        Some(AddressFamily::Inet | AddressFamily::Inet6) => inet(),
        other => PassedAddress::Other(format!("a socket of family {other:?}")),
    }
}

/// The passed listeners, matched by [`plan`].
#[derive(Debug, Default)]
pub struct Listeners {
    /// For each configured Unix socket, in order, its passed listener (`None`:
    /// not passed, to be bound as usual).
    pub unix: Vec<Option<std::os::unix::net::UnixListener>>,
    /// For each configured TCP listen address, in order, its passed listener.
    pub tcp: Vec<Option<std::net::TcpListener>>,
}

/// The passed listeners for the configured Unix sockets and TCP listen
/// addresses, in their order; a passed socket that matches none of them is
/// refused (see [`plan`]).
pub fn listeners_for(
    passed: Vec<Passed>,
    unix: &[PathBuf],
    tcp: &[SocketAddr],
) -> Result<Listeners, Error> {
    let facts: Vec<SocketFacts> = passed.iter().map(|p| p.facts.clone()).collect();
    let paths: Vec<&Path> = unix.iter().map(PathBuf::as_path).collect();
    let plan = plan(&facts, &paths, tcp).map_err(|e| Error::Config(e.to_string()))?;
    let mut passed: Vec<Option<OwnedFd>> = passed.into_iter().map(|p| Some(p.fd)).collect();
    let mut take = |i: &Option<usize>| i.and_then(|i| passed[i].take());
    let unix = plan
        .unix
        .iter()
        .map(|i| take(i).map(std::os::unix::net::UnixListener::from))
        .collect();
    let tcp = plan
        .tcp
        .iter()
        .map(|i| take(i).map(std::net::TcpListener::from))
        .collect();
    Ok(Listeners { unix, tcp })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(path: &str) -> SocketFacts {
        SocketFacts {
            name: None,
            address: PassedAddress::UnixPath(path.into()),
            stream: true,
            listening: true,
        }
    }

    #[test]
    fn matches_by_bound_path_in_any_order() {
        let a = Path::new("/run/regent/a.sock");
        let b = Path::new("/run/regent/b.sock");
        let c = Path::new("/run/regent/c.sock");
        let tcp = SocketFacts {
            address: PassedAddress::Inet("127.0.0.1:8443".parse().unwrap()),
            ..unix("")
        };
        let listen: [SocketAddr; 2] = [
            "[::1]:8443".parse().unwrap(),
            "127.0.0.1:8443".parse().unwrap(),
        ];
        let p = plan(
            &[
                unix("/run/regent/b.sock"),
                tcp.clone(),
                unix("/run/regent/a.sock"),
            ],
            &[a, b, c],
            &listen,
        )
        .unwrap();
        assert_eq!(p.unix, vec![Some(2), Some(0), None]);
        assert_eq!(p.tcp, vec![None, Some(1)]);
        assert_eq!(plan(&[], &[a], &[]).unwrap().unix, vec![None]);
        // A TCP socket bound elsewhere, or with no TCP listener configured.
        let e = plan(std::slice::from_ref(&tcp), &[a], &listen[..1]).unwrap_err();
        assert!(
            matches!(e, ActivationError::Unknown { index: 0, .. }),
            "{e}"
        );
        assert!(
            e.to_string().contains("TCP socket 127.0.0.1:8443")
                && e.to_string().contains("[service.tcp] listen [::1]:8443"),
            "{e}"
        );
        let e = plan(std::slice::from_ref(&tcp), &[a], &[]).unwrap_err();
        assert!(e.to_string().contains("[service.tcp] listen none"), "{e}");
    }

    #[test]
    fn refuses_unknown_duplicate_and_wrong_kinds() {
        let a = Path::new("/run/regent/a.sock");
        let e = plan(&[unix("/run/other.sock")], &[a], &[]).unwrap_err();
        assert!(
            matches!(e, ActivationError::Unknown { index: 0, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("/run/other.sock") && e.to_string().contains("a.sock"));
        let tcp = SocketFacts {
            address: PassedAddress::Inet("127.0.0.1:8443".parse().unwrap()),
            ..unix("")
        };
        let listen = ["127.0.0.1:8443".parse().unwrap()];
        for twice in [
            [unix("/run/regent/a.sock"), unix("/run/regent/a.sock")],
            [tcp.clone(), tcp],
        ] {
            let e = plan(&twice, &[a], &listen).unwrap_err();
            assert!(
                matches!(
                    e,
                    ActivationError::Duplicate {
                        first: 0,
                        second: 1,
                        ..
                    }
                ),
                "{e}"
            );
        }
        let dgram = SocketFacts {
            stream: false,
            ..unix("/run/regent/a.sock")
        };
        assert!(matches!(
            plan(&[dgram], &[a], &[]),
            Err(ActivationError::NotStream { index: 0, .. })
        ));
        let idle = SocketFacts {
            listening: false,
            ..unix("/run/regent/a.sock")
        };
        assert!(matches!(
            plan(&[idle], &[a], &[]),
            Err(ActivationError::NotListening { .. })
        ));
        let unnamed = SocketFacts {
            address: PassedAddress::UnixUnnamed,
            ..unix("")
        };
        assert!(matches!(
            plan(&[unnamed], &[a], &[]),
            Err(ActivationError::Unknown { .. })
        ));
        let file = SocketFacts {
            address: PassedAddress::Other("not a socket".into()),
            stream: false,
            listening: false,
            name: Some("x".into()),
        };
        let e = plan(&[file], &[a], &[]).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
    }

    #[test]
    fn inspects_real_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let facts = inspect(&OwnedFd::from(l), Some("unix".into()));
        assert_eq!(facts.address, PassedAddress::UnixPath(path));
        assert!(facts.stream && facts.listening);
        let d = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let facts = inspect(&OwnedFd::from(d), None);
        assert!(!facts.stream && !facts.listening);
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = t.local_addr().unwrap();
        let facts = inspect(&OwnedFd::from(t), None);
        assert_eq!(facts.address, PassedAddress::Inet(addr));
        let f = std::fs::File::open("/dev/null").unwrap();
        let facts = inspect(&OwnedFd::from(f), None);
        assert!(
            matches!(facts.address, PassedAddress::Other(_)),
            "{facts:?}"
        );
    }
}
