//! The servers under test as child processes (run as root, like a real service):
//! started, waited on until their socket answers, stopped with SIGTERM.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ServerProc {
    /// What it is, for messages.
    pub label: String,
    /// Its socket.
    pub socket: PathBuf,
    /// The request line it is measured with (without the newline).
    pub request: String,
    /// A request line with a wrong secret.
    pub attack_request: String,
    /// Its reply to `request`.
    pub reply: String,
    child: Child,
    stderr: PathBuf,
}

impl ServerProc {
    /// Start `argv` with `stdin_line` (e.g. a secret) on its standard input, stderr
    /// to `stderr_file`, and wait until `socket` accepts connections.
    pub fn start(
        label: &str,
        argv: &[OsString],
        stdin_line: Option<&str>,
        socket: &Path,
        stderr_file: &Path,
    ) -> Result<ServerProc, String> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| format!("{label}: empty command"))?;
        let err = std::fs::File::create(stderr_file)
            .map_err(|e| format!("creating {}: {e}", stderr_file.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {label} ({}): {e}", program.to_string_lossy()))?;
        let mut stdin = child.stdin.take().expect("piped");
        if let Some(line) = stdin_line {
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .map_err(|e| format!("writing to {label}'s stdin: {e}"))?;
        }
        drop(stdin);
        let mut server = ServerProc {
            label: label.to_string(),
            socket: socket.to_path_buf(),
            request: String::new(),
            attack_request: String::new(),
            reply: String::new(),
            child,
            stderr: stderr_file.to_path_buf(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening: {}",
                    self.label,
                    self.stderr_text()
                ));
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not listen on {} within 10 s: {}",
                    self.label,
                    self.socket.display(),
                    self.stderr_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Send one line on a fresh connection and return the reply line (without newline).
    pub fn ask(&self, line: &str) -> Result<String, String> {
        let mut s = UnixStream::connect(&self.socket)
            .map_err(|e| format!("connecting to {}: {e}", self.label))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("writing to {}: {e}", self.label))?;
        let mut reply = Vec::new();
        read_line(&mut s, &mut reply, &self.label)?;
        reply.pop();
        String::from_utf8(reply).map_err(|_| format!("{} replied with non-UTF-8", self.label))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident set size (`VmRSS`), KiB.
    pub fn rss_kib(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| format!("reading {}'s /proc status: {e}", self.label))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmRSS for {}", self.label))
    }

    /// Descriptors it holds open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Read from `r` into `buf` until it ends with a newline (`label` names the
/// server in errors).
pub(crate) fn read_line(r: &mut impl Read, buf: &mut Vec<u8>, label: &str) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"\n") {
        let n = r
            .read(&mut chunk)
            .map_err(|e| format!("reading from {label}: {e}"))?;
        if n == 0 {
            return Err(format!("{label} closed without a reply"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
