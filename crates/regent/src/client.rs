//! Calling a Regent service, blocking or async.
//!
//! Both clients return an [`Outcome`]: done with data, pending with a uid, or an
//! error with its code. Transport problems are a [`ClientError`], with distinct
//! cases for a missing socket and for a permission refused at connect.
//!
//! Before sending anything (the secret, a code, a uid), a client checks who is
//! listening: the kernel's `SO_PEERCRED` of the connected socket names the uid of
//! the process that bound it. A client talks only to root, to its own uid, or to a
//! uid it was told to trust ([`Client::server_uid`]); anyone else may have bound the
//! path first (socket squatting), and gets nothing ([`ClientError::UntrustedServer`]).
//! A caller in a user namespace, where the host's root shows as the overflow uid
//! (65534), names the uid it trusts explicitly.
//!
//! A remote caller connects over TCP with mutual TLS instead ([`Client::tls`]):
//! TLS 1.3 only (rustls, *ring*), its own certificate and key, and the service's
//! certificate verified against a CA file and for the host name (or address) it
//! dialled. The same requests, answers and codes as on the Unix socket.
//!
//! ```no_run
//! use regent::client::{Client, Outcome};
//! let client = Client::new("/run/regent/regent.sock").secret("123456");
//! match client.call("whoami", serde_json::Value::Null)? {
//!     Outcome::Done(data) => println!("{data}"),
//!     Outcome::Pending { uid, info } => println!("waiting: {uid} {info}"),
//!     Outcome::Error { code, message } => eprintln!("{code:?}: {message}"),
//! }
//! # Ok::<(), regent::client::ClientError>(())
//! ```

use regent_proto::{ErrorCode, LineBuffer, Request, Response, Secret};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The longest response a client accepts.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// What the service answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The operation ran; its result.
    Done(Value),
    /// The operation is held; send the next step with `uid`.
    Pending {
        /// The uid for the next step.
        uid: String,
        /// What the service says about the wait (method, message, expiry).
        info: Value,
    },
    /// The service refused or the operation failed.
    Error {
        /// The code (`None` from a service that sends none, like the Python original).
        code: Option<ErrorCode>,
        /// The service's sentence.
        message: String,
    },
}

impl Outcome {
    /// The result decoded as `T`, or an error for anything but `Done`.
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        match self {
            Outcome::Done(v) => {
                serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))
            }
            Outcome::Pending { uid, .. } => Err(ClientError::Protocol(format!(
                "operation is pending (uid {uid})"
            ))),
            Outcome::Error { code, message } => Err(ClientError::Service { code, message }),
        }
    }
}

impl From<Response> for Outcome {
    fn from(r: Response) -> Self {
        match r {
            Response::Done(v) => Outcome::Done(v),
            Response::Pending { uid, data } => Outcome::Pending { uid, info: data },
            Response::Error { error, code } => Outcome::Error {
                code,
                message: error,
            },
        }
    }
}

/// A transport failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing at the socket path.
    #[error("no Regent service at {0}: the socket does not exist (is the service running?)")]
    NoSocket(PathBuf),
    /// The socket (or its directory) refused us.
    #[error("permission denied connecting to {0}: this user may not use the socket (check its group and mode)")]
    SocketPermission(PathBuf),
    /// A socket file exists but nobody listens.
    #[error("no Regent service listening at {0} (connection refused)")]
    Refused(PathBuf),
    /// Read or write failed.
    #[error("I/O with {path}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The service took too long.
    #[error("timed out waiting for {0}")]
    Timeout(PathBuf),
    /// The process listening on the socket is not one this client trusts: nothing
    /// was sent.
    #[error("refusing to talk to {path}: the process listening there runs as uid {uid}, which is not root{others}; another user may have bound the socket in the service's place, so nothing was sent (if the service really runs as uid {uid}, trust it explicitly: --server-uid {uid}, REGENT_SERVER_UID or Client::server_uid)", others = trusted_list(.trusted))]
    UntrustedServer {
        /// Socket path.
        path: PathBuf,
        /// The listening process's uid, from `SO_PEERCRED`.
        uid: u32,
        /// The uids this client trusts besides root.
        trusted: Vec<u32>,
    },
    /// TLS set-up or handshake failed (files, certificate verification).
    #[error("TLS with {path}: {reason}")]
    Tls {
        /// `HOST:PORT`, or the file that could not be used.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The service's answer was not a Regent response.
    #[error("bad response: {0}")]
    Protocol(String),
    /// An error response, from [`Outcome::into_result`].
    #[error("{message}")]
    Service {
        /// The code.
        code: Option<ErrorCode>,
        /// The sentence.
        message: String,
    },
}

fn trusted_list(trusted: &[u32]) -> String {
    let others: Vec<String> = trusted
        .iter()
        .filter(|&&u| u != 0)
        .map(u32::to_string)
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!(" or a trusted uid ({})", others.join(", "))
    }
}

/// Whom a client talks to: root, its own effective uid, and the uids it was told
/// to trust.
fn check_server(path: &Path, uid: u32, trusted: &[u32]) -> Result<(), ClientError> {
    if uid == 0 || trusted.contains(&uid) {
        return Ok(());
    }
    Err(ClientError::UntrustedServer {
        path: path.to_path_buf(),
        uid,
        trusted: trusted.to_vec(),
    })
}

/// After a failed write, the service may still have answered before it closed
/// (a full service answers `busy` and closes without reading): a write that
/// failed because the peer is gone is followed by a read.
fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

fn connect_error(path: &Path, e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::NotFound => ClientError::NoSocket(path.to_path_buf()),
        io::ErrorKind::PermissionDenied => ClientError::SocketPermission(path.to_path_buf()),
        io::ErrorKind::ConnectionRefused => ClientError::Refused(path.to_path_buf()),
        _ => ClientError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

fn io_error(path: &Path, e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            ClientError::Timeout(path.to_path_buf())
        }
        _ => ClientError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// A blocking client. Each call opens a connection, unless you [`Client::connect`].
#[derive(Debug, Clone)]
pub struct Client {
    /// The socket path, or `HOST:PORT` for TLS.
    path: PathBuf,
    secret: Option<Secret>,
    timeout: Duration,
    trusted: Vec<u32>,
    /// Set for a TCP + mutual TLS service ([`Client::tls`]).
    tls: Option<TlsTarget>,
}

/// A TLS service's address and the client's TLS configuration.
#[derive(Debug, Clone)]
struct TlsTarget {
    connect: String,
    server_name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
}

fn tls_error(path: &Path, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Tls {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The host part of `HOST:PORT` (`[v6]:PORT` without its brackets).
fn host_of(connect: &str) -> Option<&str> {
    let (host, port) = connect.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

impl TlsTarget {
    fn new(connect: &str, cert: &Path, key: &Path, ca: &Path) -> Result<TlsTarget, ClientError> {
        let at = PathBuf::from(connect);
        let host = host_of(connect).ok_or_else(|| tls_error(&at, "expected HOST:PORT"))?;
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| tls_error(&at, format!("{host:?} is not a host name or address: {e}")))?;
        let pem_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, ClientError> {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_error(path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error(path, e))?;
            if certs.is_empty() {
                return Err(tls_error(path, "no PEM certificate in it"));
            }
            Ok(certs)
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in pem_certs(ca)? {
            roots.add(c).map_err(|e| tls_error(ca, e))?;
        }
        let chain = pem_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error(key, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_error(&at, e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_error(cert, e))?;
        Ok(TlsTarget {
            connect: connect.to_string(),
            server_name,
            config: Arc::new(config),
        })
    }

    /// Connect (trying each address the name resolves to) within `timeout`.
    fn tcp(&self, timeout: Duration) -> Result<TcpStream, ClientError> {
        let at = PathBuf::from(&self.connect);
        let addrs = self
            .connect
            .to_socket_addrs()
            .map_err(|e| connect_error(&at, e))?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(connect_error(&at, last))
    }
}

/// A blocking connection's stream: the Unix socket, or TLS over TCP.
enum Stream {
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Client {
    /// A client for the service at `path`, without a secret, 60 s timeout,
    /// trusting a service that runs as root or as this process's effective uid.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Client {
            path: path.into(),
            secret: None,
            timeout: Duration::from_secs(60),
            trusted: vec![nix::unistd::geteuid().as_raw()],
            tls: None,
        }
    }

    /// A client for a service reached over TCP with mutual TLS at `connect`
    /// (`HOST:PORT`), presenting the certificate `cert` with its key `key`, and
    /// verifying the service's certificate against the CAs in `ca` and for
    /// `HOST` (a DNS name or an IP address). TLS 1.3 only.
    pub fn tls(connect: &str, cert: &Path, key: &Path, ca: &Path) -> Result<Client, ClientError> {
        Ok(Client {
            tls: Some(TlsTarget::new(connect, cert, key, ca)?),
            ..Client::new(connect)
        })
    }

    /// Also trust a service whose listening socket was bound by `uid` (the service
    /// runs as a dedicated user, or host root shows as the overflow uid in a user
    /// namespace). Root and this process's own uid are always trusted.
    pub fn server_uid(mut self, uid: u32) -> Self {
        if !self.trusted.contains(&uid) {
            self.trusted.push(uid);
        }
        self
    }

    /// Send this secret.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(Secret::new(secret));
        self
    }

    /// Send this secret.
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Per-call timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open a persistent connection for several calls. Fails with
    /// [`ClientError::UntrustedServer`] before anything is sent when the socket's
    /// listener runs as a uid this client does not trust.
    pub fn connect(&self) -> Result<Connection, ClientError> {
        if let Some(tls) = &self.tls {
            return self.connect_tls(tls);
        }
        let stream = UnixStream::connect(&self.path).map_err(|e| connect_error(&self.path, e))?;
        let cred =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                .map_err(|e| io_error(&self.path, e.into()))?;
        check_server(&self.path, cred.uid(), &self.trusted)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| io_error(&self.path, e))?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| io_error(&self.path, e))?;
        Ok(Connection {
            stream: Stream::Unix(stream),
            buf: LineBuffer::new(MAX_RESPONSE),
            client: self.clone(),
        })
    }

    /// Connect over TCP and finish the TLS handshake before anything is sent.
    fn connect_tls(&self, tls: &TlsTarget) -> Result<Connection, ClientError> {
        let mut tcp = tls.tcp(self.timeout)?;
        tcp.set_read_timeout(Some(self.timeout))
            .and_then(|()| tcp.set_write_timeout(Some(self.timeout)))
            .and_then(|()| tcp.set_nodelay(true))
            .map_err(|e| io_error(&self.path, e))?;
        let mut conn = rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|e| tls_error(&self.path, e))?;
        while conn.is_handshaking() {
            match conn.complete_io(&mut tcp) {
                // A caught signal interrupts a read with a timeout (SO_RCVTIMEO
                // is never restarted): go on with the handshake.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => {
                    r.map_err(|e| tls_error(&self.path, e))?;
                }
            }
        }
        Ok(Connection {
            stream: Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))),
            buf: LineBuffer::new(MAX_RESPONSE),
            client: self.clone(),
        })
    }

    /// Ask for an operation.
    pub fn call(&self, op: &str, data: Value) -> Result<Outcome, ClientError> {
        self.connect()?.call(op, data)
    }

    /// Ask for a dry run of an operation (`"dry_run": true`): what it would do,
    /// done by nothing. Send it only to an operation `regent.ops` lists with
    /// `"dry_run": true` ([`Client::offers_dry_run`]): a service that does not
    /// know the key ignores it and runs the operation for real.
    pub fn dry_run(&self, op: &str, data: Value) -> Result<Outcome, ClientError> {
        self.connect()?.send_new(op, data, true)
    }

    /// Whether the service's `regent.ops` lists `op` for this caller with
    /// `"dry_run": true`.
    pub fn offers_dry_run(&self, op: &str) -> Result<bool, ClientError> {
        let ops: Value = self.call_as("regent.ops", Value::Null)?;
        Ok(ops
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["name"].as_str() == Some(op) && o["dry_run"].as_bool() == Some(true)))
    }

    /// Send the next step of a pending operation.
    pub fn resume(&self, uid: &str, data: Value) -> Result<Outcome, ClientError> {
        self.connect()?.resume(uid, data)
    }

    /// Ask for an operation and decode its result as `T`.
    pub fn call_as<T: DeserializeOwned>(&self, op: &str, data: Value) -> Result<T, ClientError> {
        self.call(op, data)?.into_result()
    }
}

/// A persistent connection: several requests in turn.
pub struct Connection {
    stream: Stream,
    buf: LineBuffer,
    client: Client,
}

impl Connection {
    /// Ask for an operation.
    pub fn call(&mut self, op: &str, data: Value) -> Result<Outcome, ClientError> {
        self.send_new(op, data, false)
    }

    fn send_new(&mut self, op: &str, data: Value, dry_run: bool) -> Result<Outcome, ClientError> {
        let req = Request::New {
            secret: self.client.secret.clone(),
            op: op.to_string(),
            data,
            dry_run,
        };
        self.exchange(&req.to_line())
    }

    /// Send the next step of a pending operation.
    pub fn resume(&mut self, uid: &str, data: Value) -> Result<Outcome, ClientError> {
        let req = Request::Continue {
            secret: self.client.secret.clone(),
            uid: uid.to_string(),
            data,
        };
        self.exchange(&req.to_line())
    }

    /// Send a raw line (newline added if missing) and read one response.
    pub fn exchange(&mut self, line: &[u8]) -> Result<Outcome, ClientError> {
        let path = self.client.path.clone();
        let mut sent = self.stream.write_all(line);
        if sent.is_ok() && line.last() != Some(&b'\n') {
            sent = self.stream.write_all(b"\n");
        }
        match sent {
            Ok(()) => self.read_response(),
            Err(e) if peer_gone(&e) => match self.read_response() {
                Ok(answer) => Ok(answer),
                Err(_) => Err(io_error(&path, e)),
            },
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn read_response(&mut self) -> Result<Outcome, ClientError> {
        let path = &self.client.path;
        let mut chunk = [0u8; 8192];
        loop {
            match self.buf.next_line() {
                Ok(Some(line)) => {
                    let r =
                        Response::parse(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
                    return Ok(r.into());
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            // A signal caught by this process interrupts a read with a timeout
            // (SO_RCVTIMEO: never restarted, whatever SA_RESTART says): read again.
            let n = match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.map_err(|e| io_error(path, e))?,
            };
            if n == 0 {
                return Err(ClientError::Protocol(
                    "the service closed the connection without answering".into(),
                ));
            }
            self.buf.extend(&chunk[..n]);
        }
    }
}

/// An async client (tokio).
#[derive(Debug, Clone)]
pub struct AsyncClient {
    inner: Client,
}

impl AsyncClient {
    /// A client for the service at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AsyncClient {
            inner: Client::new(path),
        }
    }

    /// Send this secret.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.inner = self.inner.secret(secret);
        self
    }

    /// Per-call timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.timeout(timeout);
        self
    }

    /// Also trust a service running as `uid` (see [`Client::server_uid`]).
    pub fn server_uid(mut self, uid: u32) -> Self {
        self.inner = self.inner.server_uid(uid);
        self
    }

    /// A client for a service over TCP with mutual TLS (see [`Client::tls`]).
    pub fn tls(connect: &str, cert: &Path, key: &Path, ca: &Path) -> Result<Self, ClientError> {
        Ok(AsyncClient {
            inner: Client::tls(connect, cert, key, ca)?,
        })
    }

    /// Ask for an operation.
    pub async fn call(&self, op: &str, data: Value) -> Result<Outcome, ClientError> {
        let req = Request::New {
            secret: self.inner.secret.clone(),
            op: op.to_string(),
            data,
            dry_run: false,
        };
        self.exchange(req.to_line()).await
    }

    /// Send the next step of a pending operation.
    pub async fn resume(&self, uid: &str, data: Value) -> Result<Outcome, ClientError> {
        let req = Request::Continue {
            secret: self.inner.secret.clone(),
            uid: uid.to_string(),
            data,
        };
        self.exchange(req.to_line()).await
    }

    async fn exchange(&self, line: Vec<u8>) -> Result<Outcome, ClientError> {
        use tokio::io::AsyncWriteExt;
        let path = self.inner.path.clone();
        if let Some(tls) = &self.inner.tls {
            return match tokio::time::timeout(self.inner.timeout, self.exchange_tls(tls, &line))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(ClientError::Timeout(path)),
            };
        }
        let work = async {
            let mut stream = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(|e| connect_error(&path, e))?;
            let cred = stream.peer_cred().map_err(|e| io_error(&path, e))?;
            check_server(&path, cred.uid(), &self.inner.trusted)?;
            match stream.write_all(&line).await {
                Ok(()) => read_response_async(&mut stream, &path).await,
                Err(e) if peer_gone(&e) => read_response_async(&mut stream, &path)
                    .await
                    .map_err(|_| io_error(&path, e)),
                Err(e) => Err(io_error(&path, e)),
            }
        };
        match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(path.clone())),
        }
    }
}

impl AsyncClient {
    /// One request over TLS: connect, handshake, send, read one answer.
    async fn exchange_tls(&self, tls: &TlsTarget, line: &[u8]) -> Result<Outcome, ClientError> {
        use tokio::io::AsyncWriteExt;
        let path = &self.inner.path;
        let tcp = tokio::net::TcpStream::connect(&tls.connect)
            .await
            .map_err(|e| connect_error(path, e))?;
        let _ = tcp.set_nodelay(true);
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let mut stream = connector
            .connect(tls.server_name.clone(), tcp)
            .await
            .map_err(|e| tls_error(path, e))?;
        match stream.write_all(line).await {
            Ok(()) => read_response_async(&mut stream, path).await,
            Err(e) if peer_gone(&e) => read_response_async(&mut stream, path)
                .await
                .map_err(|_| io_error(path, e)),
            Err(e) => Err(io_error(path, e)),
        }
    }
}

async fn read_response_async<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    path: &Path,
) -> Result<Outcome, ClientError> {
    use tokio::io::AsyncReadExt;
    let mut buf = LineBuffer::new(MAX_RESPONSE);
    let mut chunk = [0u8; 8192];
    loop {
        match buf.next_line() {
            Ok(Some(line)) => {
                let r = Response::parse(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
                return Ok(r.into());
            }
            Ok(None) => {}
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io_error(path, e))?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the service closed the connection without answering".into(),
            ));
        }
        buf.extend(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A service that answers `busy` at once and closes without reading, as a full
    /// service does.
    fn busy_service(path: &Path) -> std::thread::JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(&Response::error(ErrorCode::Busy).to_line())
                .unwrap();
        })
    }

    fn big_request() -> String {
        // Far beyond what the socket buffers hold: the write fails once the
        // service has closed.
        "x".repeat(8 * 1024 * 1024)
    }

    fn assert_busy(outcome: Result<Outcome, ClientError>) {
        match outcome {
            Ok(Outcome::Error { code, .. }) => assert_eq!(code, Some(ErrorCode::Busy)),
            other => panic!("expected busy, got {other:?}"),
        }
    }

    #[test]
    fn a_busy_answer_is_read_after_the_write_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let server = busy_service(&path);
        let client = Client::new(&path).secret(big_request());
        assert_busy(client.call("whoami", Value::Null));
        server.join().unwrap();
    }

    #[tokio::test]
    async fn the_async_client_reads_a_busy_answer_after_the_write_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let server = busy_service(&path);
        let client = AsyncClient::new(&path).secret(big_request());
        assert_busy(client.call("whoami", Value::Null).await);
        server.join().unwrap();
    }

    #[test]
    fn tls_targets_name_their_host() {
        assert_eq!(host_of("localhost:8443"), Some("localhost"));
        assert_eq!(host_of("[::1]:8443"), Some("::1"));
        assert_eq!(host_of("127.0.0.1:1"), Some("127.0.0.1"));
        assert_eq!(host_of("localhost"), None);
        assert_eq!(host_of(":8443"), None);
        assert_eq!(host_of("h:99999"), None);
        let missing = Path::new("/nonexistent/regent-ca.pem");
        let e = Client::tls("localhost:1", missing, missing, missing).unwrap_err();
        assert!(matches!(e, ClientError::Tls { .. }), "{e}");
    }

    #[test]
    fn only_root_own_and_named_uids_are_trusted() {
        let p = Path::new("/run/x.sock");
        let me = nix::unistd::geteuid().as_raw();
        let c = Client::new(p);
        assert!(check_server(p, 0, &c.trusted).is_ok());
        assert!(check_server(p, me, &c.trusted).is_ok());
        let stranger = if me == 4242 { 4343 } else { 4242 };
        let e = check_server(p, stranger, &c.trusted).unwrap_err();
        assert!(
            matches!(e, ClientError::UntrustedServer { uid, .. } if uid == stranger),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!("uid {stranger}")) && text.contains("nothing was sent"),
            "{text}"
        );
        let c = c.server_uid(stranger);
        assert!(check_server(p, stranger, &c.trusted).is_ok());
        assert!(check_server(p, 65534, &c.trusted).is_err());
    }
}
