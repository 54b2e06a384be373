//! Calling a Regent service, blocking or async.
//!
//! Both clients return an [`Outcome`]: done with data, pending with a uid, or an
//! error with its code. Transport problems are a [`ClientError`], with distinct
//! cases for a missing socket and for a permission refused at connect.
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
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
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
    path: PathBuf,
    secret: Option<Secret>,
    timeout: Duration,
}

impl Client {
    /// A client for the service at `path`, without a secret, 60 s timeout.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Client {
            path: path.into(),
            secret: None,
            timeout: Duration::from_secs(60),
        }
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

    /// Open a persistent connection for several calls.
    pub fn connect(&self) -> Result<Connection, ClientError> {
        let stream = UnixStream::connect(&self.path).map_err(|e| connect_error(&self.path, e))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| io_error(&self.path, e))?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| io_error(&self.path, e))?;
        Ok(Connection {
            stream,
            buf: LineBuffer::new(MAX_RESPONSE),
            client: self.clone(),
        })
    }

    /// Ask for an operation.
    pub fn call(&self, op: &str, data: Value) -> Result<Outcome, ClientError> {
        self.connect()?.call(op, data)
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
    stream: UnixStream,
    buf: LineBuffer,
    client: Client,
}

impl Connection {
    /// Ask for an operation.
    pub fn call(&mut self, op: &str, data: Value) -> Result<Outcome, ClientError> {
        let req = Request::New {
            secret: self.client.secret.clone(),
            op: op.to_string(),
            data,
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
        self.stream
            .write_all(line)
            .map_err(|e| io_error(&path, e))?;
        if line.last() != Some(&b'\n') {
            self.stream
                .write_all(b"\n")
                .map_err(|e| io_error(&path, e))?;
        }
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
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| io_error(&path, e))?;
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

    /// Ask for an operation.
    pub async fn call(&self, op: &str, data: Value) -> Result<Outcome, ClientError> {
        let req = Request::New {
            secret: self.inner.secret.clone(),
            op: op.to_string(),
            data,
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
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = self.inner.path.clone();
        let work = async {
            let mut stream = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(|e| connect_error(&path, e))?;
            stream
                .write_all(&line)
                .await
                .map_err(|e| io_error(&path, e))?;
            let mut buf = LineBuffer::new(MAX_RESPONSE);
            let mut chunk = [0u8; 8192];
            loop {
                match buf.next_line() {
                    Ok(Some(line)) => {
                        let r = Response::parse(&line)
                            .map_err(|e| ClientError::Protocol(e.to_string()))?;
                        return Ok(r.into());
                    }
                    Ok(None) => {}
                    Err(e) => return Err(ClientError::Protocol(e.to_string())),
                }
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| io_error(&path, e))?;
                if n == 0 {
                    return Err(ClientError::Protocol(
                        "the service closed the connection without answering".into(),
                    ));
                }
                buf.extend(&chunk[..n]);
            }
        };
        match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(path.clone())),
        }
    }
}
