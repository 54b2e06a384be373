//! Running one external tool: no shell, a cleared environment, stdin from
//! `/dev/null`, stdout and stderr into anonymous files (so a daemon the tool
//! starts cannot hold a pipe of the run open), and an optional deadline after
//! which its process group is stopped.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::ModuleError;

/// The `PATH` tools run with.
pub const TOOL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Output kept per stream.
const MAX_KEPT: u64 = 64 * 1024;

/// One tool to run.
#[derive(Debug)]
pub struct Tool {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
}

/// How a tool ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Its stdout (the first 64 KiB).
    pub stdout: String,
    /// Its stderr (the first 64 KiB).
    pub stderr: String,
}

impl Output {
    /// Exited with 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `exit status N` or `killed by signal N`.
    #[must_use]
    pub fn status(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "ended".into(),
        }
    }

    /// A `failed` error: `WHAT: STATUS: TAIL`.
    #[must_use]
    pub fn failure(&self, what: &str) -> ModuleError {
        ModuleError::failed(format!("{what}: {}: {}", self.status(), self.tail()))
    }

    /// The last lines of stderr (else stdout), trimmed, at most 1 KiB.
    #[must_use]
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let t = text.trim();
        let mut start = t.len().saturating_sub(1024);
        while !t.is_char_boundary(start) {
            start += 1;
        }
        t[start..].to_string()
    }
}

impl Tool {
    /// `program` (an absolute path) with no arguments yet.
    pub fn new(program: impl AsRef<Path>) -> Tool {
        Tool {
            program: program.as_ref().as_os_str().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Add arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Add an environment variable (besides `PATH` and `LANG`).
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Tool {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line, for messages.
    #[must_use]
    pub fn shown(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Run it to its end, or until `deadline` (then its process group gets
    /// SIGTERM, SIGKILL a second later, and the answer is a `timeout`).
    pub fn run(&self, deadline: Option<Instant>) -> Result<Output, ModuleError> {
        let what = self.shown();
        let io = |e: std::io::Error| ModuleError::failed(format!("{what}: {e}"));
        let out = tempfile::tempfile().map_err(io)?;
        let err = tempfile::tempfile().map_err(io)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", TOOL_PATH)
            .env("LANG", "C.UTF-8")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(io)?)
            .stderr(err.try_clone().map_err(io)?)
            .process_group(0);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(io)?;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io)? {
                break status;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
                let _ = killpg(group, Signal::SIGTERM);
                let grace = Instant::now() + Duration::from_secs(1);
                while child.try_wait().map_err(io)?.is_none() && Instant::now() < grace {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                return Err(ModuleError::timeout(format!(
                    "{what}: did not finish in time"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Output {
            code: status.code(),
            signal: status.signal(),
            stdout: read_kept(out),
            stderr: read_kept(err),
        })
    }
}

fn read_kept(mut f: File) -> String {
    let mut buf = Vec::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.take(MAX_KEPT).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
