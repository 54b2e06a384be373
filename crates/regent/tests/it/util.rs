//! Helpers: a service with test operations on a temp socket, and raw line I/O.

use regent::operation::{Context, InvalidData, OpError, Operation};
use regent::{AllowRule, Limits, OpOptions, Service, ShutdownHandle};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

pub const SECRET: &str = "test-secret-123456";

pub struct Echo;
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoData {
    pub message: String,
    pub times: Option<u8>,
}
impl Operation for Echo {
    type Data = EchoData;
    type Output = String;
    fn validate(&self, d: &EchoData) -> Result<(), InvalidData> {
        if d.message.len() > 100 {
            return Err(InvalidData::new("message", "longer than 100 characters"));
        }
        Ok(())
    }
    async fn perform(&self, _: Context, d: EchoData) -> Result<String, OpError> {
        Ok(d.message.repeat(d.times.unwrap_or(1) as usize))
    }
}

pub struct Sleep;
#[derive(Serialize, Deserialize)]
pub struct SleepData {
    pub ms: u64,
}
impl Operation for Sleep {
    type Data = SleepData;
    type Output = u64;
    async fn perform(&self, _: Context, d: SleepData) -> Result<u64, OpError> {
        tokio::time::sleep(Duration::from_millis(d.ms)).await;
        Ok(d.ms)
    }
}

pub struct Fail;
impl Operation for Fail {
    type Data = ();
    type Output = ();
    async fn perform(&self, _: Context, _: ()) -> Result<(), OpError> {
        Err(OpError::failed("the disk is on fire"))
    }
}

pub struct Caller;
impl Operation for Caller {
    type Data = ();
    type Output = serde_json::Value;
    async fn perform(&self, ctx: Context, _: ()) -> Result<serde_json::Value, OpError> {
        Ok(
            serde_json::json!({"uid": ctx.caller.uid, "gid": ctx.caller.gid, "pid": ctx.caller.pid, "user": ctx.caller.user}),
        )
    }
}

/// A running test service; `dir` keeps the socket directory alive.
#[allow(dead_code)]
pub struct TestService {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub handle: ShutdownHandle,
    pub task: tokio::task::JoinHandle<Result<(), regent::Error>>,
}

pub fn limits() -> Limits {
    Limits {
        max_line: 4096,
        line_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(800),
        max_connections: 64,
        shutdown_grace: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// Start the test service; the socket is 0666 in a 0755 dir so other users can connect.
pub async fn start_with(limits: Limits) -> TestService {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("regent.sock");
    let service = Service::builder(&path)
        .mode(0o666)
        .secret_str(SECRET)
        .limits(limits)
        .register("echo", Echo)
        .unwrap()
        .register_with(
            "sleep",
            Sleep,
            OpOptions::new()
                .timeout(Duration::from_millis(500))
                .concurrency(2),
        )
        .unwrap()
        .register("fail", Fail)
        .unwrap()
        .register("caller", Caller)
        .unwrap()
        .register_with(
            "root-only",
            Caller,
            OpOptions::new().allow(AllowRule::users(["root"])),
        )
        .unwrap()
        .register_with(
            "nobody-only",
            Caller,
            OpOptions::new().allow(AllowRule::groups(["nogroup"])),
        )
        .unwrap()
        .build()
        .unwrap();
    let (handle, task) = service.spawn().unwrap();
    TestService {
        dir,
        path,
        handle,
        task,
    }
}

pub async fn start() -> TestService {
    start_with(limits()).await
}

/// A raw connection for line-level tests (blocking; call from spawn_blocking or plain threads).
pub struct Raw {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    pub fn connect(path: &std::path::Path) -> Raw {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Read one response line as JSON; None at EOF.
    pub fn recv(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read: {e}"),
        }
    }

    pub fn roundtrip(&mut self, line: &str) -> serde_json::Value {
        self.send(format!("{line}\n").as_bytes());
        self.recv().expect("a response")
    }
}

pub fn req(op: &str, data: serde_json::Value) -> String {
    serde_json::json!({"secret": SECRET, "op": op, "data": data}).to_string()
}

/// Run a blocking closure off the runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}
