//! Running `uclient` as an unprivileged user (through `setpriv`) and reading its
//! one-line result.

use crate::users::Account;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// What one `uclient` run measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Completed requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Completed (measured) requests.
    pub n: u64,
    /// Failed requests (no reply, or a reply without the expected text).
    pub errs: u64,
}

impl Figures {
    /// Parse `uclient`'s result line (`label key=value ...`).
    pub fn parse(line: &str) -> Result<Figures, String> {
        let mut f = Figures::default();
        let mut seen = 0;
        for word in line.split_whitespace() {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            let num = || {
                v.parse::<f64>()
                    .map_err(|_| format!("bad number {v:?} for {k} in {line:?}"))
            };
            match k {
                "rps" => f.rps = num()?,
                "p50_us" => f.p50_us = num()?,
                "p90_us" => f.p90_us = num()?,
                "p99_us" => f.p99_us = num()?,
                "n" => f.n = num()? as u64,
                "errs" => f.errs = num()? as u64,
                _ => continue,
            }
            seen += 1;
        }
        if seen < 6 {
            return Err(format!("not a uclient result line: {line:?}"));
        }
        Ok(f)
    }
}

/// One load: how `uclient` is to be run.
#[derive(Debug, Clone)]
pub struct Load {
    /// Concurrent workers.
    pub clients: usize,
    /// One persistent connection per worker instead of one per request.
    pub persistent: bool,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured requests per worker first.
    pub warmup: u32,
    /// The request line, without its newline.
    pub message: String,
    /// Text a reply must contain to count as a success.
    pub expect: Option<String>,
}

impl Load {
    fn command(&self, uclient: &Path, socket: &Path, who: &Account) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", who.uid))
            .arg(format!("--regid={}", who.gid))
            .arg("--clear-groups")
            .arg(uclient)
            .arg("-u")
            .arg(socket)
            .args(["-c", &self.clients.to_string()])
            .args(["-d", &format!("{:.3}", self.duration.as_secs_f64())])
            .args(["-w", &self.warmup.to_string()])
            .args(["-T", "5"])
            .args(["-m", &self.message]);
        if self.persistent {
            cmd.arg("-p");
        }
        if let Some(e) = &self.expect {
            cmd.args(["-e", e]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Start the load in the background as `who`.
    pub fn spawn(&self, uclient: &Path, socket: &Path, who: &Account) -> Result<Running, String> {
        let child = self
            .command(uclient, socket, who)
            .spawn()
            .map_err(|e| format!("starting setpriv/uclient: {e}"))?;
        Ok(Running {
            child: Some(child),
            socket: socket.to_path_buf(),
        })
    }

    /// Run the load as `who` and return its figures.
    pub fn run(&self, uclient: &Path, socket: &Path, who: &Account) -> Result<Figures, String> {
        self.spawn(uclient, socket, who)?.finish()
    }
}

/// A load running in the background; killed if dropped unfinished.
pub struct Running {
    child: Option<Child>,
    socket: PathBuf,
}

impl Running {
    /// Wait for the load to end and read its figures.
    pub fn finish(mut self) -> Result<Figures, String> {
        let child = self.child.take().expect("finished once");
        let out: Output = child
            .wait_with_output()
            .map_err(|e| format!("waiting for uclient: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "uclient on {} failed ({}): {}{}",
                self.socket.display(),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let line = stdout.lines().last().unwrap_or_default();
        Figures::parse(line)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_result_line() {
        let f = Figures::parse("uclient mode=conn conc=8 n=46012 errs=2 wall_s=1.000 rps=46012.3 p50_us=37.1 p90_us=60.0 p99_us=120.5 max_us=900.0").unwrap();
        assert_eq!(f.n, 46012);
        assert_eq!(f.errs, 2);
        assert_eq!(f.rps, 46012.3);
        assert_eq!(f.p50_us, 37.1);
        assert_eq!(f.p99_us, 120.5);
        assert!(Figures::parse("usage: uclient ...").is_err());
    }
}
