//! Socket activation: serve the sockets a service manager passed
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) instead of binding.
//!
//! Three steps, the middle one pure:
//! 1. [`from_env`] takes the passed descriptors (once, at start-up, before the
//!    process opens anything else), unsets the variables, marks each descriptor
//!    close-on-exec and reads what the kernel says of it ([`SocketFacts`]);
//! 2. [`plan`] matches them to the configured Unix sockets by bound path and
//!    refuses anything else: a datagram socket, a socket not listening, an
//!    unknown path, two for one path, a family that is neither Unix nor IP;
//! 3. the daemon serves each matched descriptor ([`Passed::into_unix_listener`]);
//!    an IPv4 or IPv6 one is for the TCP listener ([`Plan::tcp`]).
//!
//! Configured sockets that were not passed are bound as usual.

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
    /// An IPv4 or IPv6 socket: for the TCP listener.
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
    /// The passed IP sockets, for the TCP listener.
    pub tcp: Vec<(usize, SocketAddr)>,
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
    #[error("socket activation: passed descriptor {index} ({what}) is not a configured socket (configured: {configured}); make ListenStream= and the config's socket paths agree")]
    Unknown {
        /// Its position among the passed descriptors.
        index: usize,
        /// [`fmt::Display`] of its address and name.
        what: String,
        /// The configured paths.
        configured: String,
    },
    /// Two passed descriptors for one configured path.
    #[error("socket activation: passed descriptors {first} and {second} are both bound to {}", path.display())]
    Duplicate {
        /// The first one.
        first: usize,
        /// The second one.
        second: usize,
        /// The path.
        path: PathBuf,
    },
}

fn describe(facts: &SocketFacts) -> String {
    match &facts.name {
        Some(n) => format!("{}, named {:?}", facts.address, n),
        None => facts.address.to_string(),
    }
}

/// Match passed sockets to the configured Unix socket paths (pure).
///
/// Each passed socket must be a listening stream socket; a Unix one must be
/// bound to exactly one of `configured` (compared as written: give absolute
/// paths), at most once; an IP one goes to [`Plan::tcp`]. Anything else is
/// refused, naming the descriptor.
pub fn plan(passed: &[SocketFacts], configured: &[&Path]) -> Result<Plan, ActivationError> {
    let mut out = Plan {
        unix: vec![None; configured.len()],
        tcp: Vec::new(),
    };
    for (index, facts) in passed.iter().enumerate() {
        let what = || describe(facts);
        if let PassedAddress::Other(_) = facts.address {
            return Err(ActivationError::Unknown {
                index,
                what: what(),
                configured: list(configured),
            });
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
        match &facts.address {
            PassedAddress::Inet(addr) => out.tcp.push((index, *addr)),
            PassedAddress::UnixPath(path) => {
                let Some(slot) = configured.iter().position(|c| *c == path.as_path()) else {
                    return Err(ActivationError::Unknown {
                        index,
                        what: what(),
                        configured: list(configured),
                    });
                };
                if let Some(first) = out.unix[slot] {
                    return Err(ActivationError::Duplicate {
                        first,
                        second: index,
                        path: path.clone(),
                    });
                }
                out.unix[slot] = Some(index);
            }
            PassedAddress::UnixUnnamed | PassedAddress::Other(_) => {
                return Err(ActivationError::Unknown {
                    index,
                    what: what(),
                    configured: list(configured),
                })
            }
        }
    }
    Ok(out)
}

fn list(configured: &[&Path]) -> String {
    if configured.is_empty() {
        return "none".into();
    }
    configured
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
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

/// The passed Unix listeners for the configured sockets, in their order (`None`
/// for a socket that was not passed: it is bound as usual). A passed TCP socket
/// is refused while no TCP listener is configured.
pub fn unix_listeners_for(
    passed: Vec<Passed>,
    sockets: &[std::path::PathBuf],
) -> Result<Vec<Option<std::os::unix::net::UnixListener>>, Error> {
    let facts: Vec<SocketFacts> = passed.iter().map(|p| p.facts.clone()).collect();
    let configured: Vec<&Path> = sockets.iter().map(|p| p.as_path()).collect();
    let plan = plan(&facts, &configured).map_err(|e| Error::Config(e.to_string()))?;
    if let Some((index, addr)) = plan.tcp.first() {
        return Err(Error::Config(format!(
            "socket activation: passed descriptor {index} (TCP socket {addr}) is for a TCP listener, and this daemon has none configured ([service.tcp]): remove it from the socket unit"
        )));
    }
    let mut passed: Vec<Option<Passed>> = passed.into_iter().map(Some).collect();
    Ok(plan
        .unix
        .iter()
        .map(|i| {
            i.and_then(|i| passed[i].take())
                .map(Passed::into_unix_listener)
        })
        .collect())
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
        let p = plan(
            &[unix("/run/regent/b.sock"), tcp, unix("/run/regent/a.sock")],
            &[a, b, c],
        )
        .unwrap();
        assert_eq!(p.unix, vec![Some(2), Some(0), None]);
        assert_eq!(p.tcp, vec![(1, "127.0.0.1:8443".parse().unwrap())]);
        assert_eq!(plan(&[], &[a]).unwrap().unix, vec![None]);
    }

    #[test]
    fn refuses_unknown_duplicate_and_wrong_kinds() {
        let a = Path::new("/run/regent/a.sock");
        let e = plan(&[unix("/run/other.sock")], &[a]).unwrap_err();
        assert!(
            matches!(e, ActivationError::Unknown { index: 0, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("/run/other.sock") && e.to_string().contains("a.sock"));
        let e = plan(
            &[unix("/run/regent/a.sock"), unix("/run/regent/a.sock")],
            &[a],
        )
        .unwrap_err();
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
        let dgram = SocketFacts {
            stream: false,
            ..unix("/run/regent/a.sock")
        };
        assert!(matches!(
            plan(&[dgram], &[a]),
            Err(ActivationError::NotStream { index: 0, .. })
        ));
        let idle = SocketFacts {
            listening: false,
            ..unix("/run/regent/a.sock")
        };
        assert!(matches!(
            plan(&[idle], &[a]),
            Err(ActivationError::NotListening { .. })
        ));
        let unnamed = SocketFacts {
            address: PassedAddress::UnixUnnamed,
            ..unix("")
        };
        assert!(matches!(
            plan(&[unnamed], &[a]),
            Err(ActivationError::Unknown { .. })
        ));
        let file = SocketFacts {
            address: PassedAddress::Other("not a socket".into()),
            stream: false,
            listening: false,
            name: Some("x".into()),
        };
        let e = plan(&[file], &[a]).unwrap_err();
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
