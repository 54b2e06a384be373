//! Helpers: a daemon started from a TOML config on a temporary socket, the CLI run
//! as root or as an unprivileged user, and user creation.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const SECRET: &str = "e2e-secret-0123456789";

/// The Python that runs the tests' peers needing packages (aiosmtpd):
/// `REGENT_TEST_PYTHON` (`.ci/run` sets it to its virtual environment's), else
/// `python3` on PATH. Attackers run as other users use the system's python3
/// (stdlib only).
pub fn test_python() -> String {
    std::env::var("REGENT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The regent binary, copied into a world-readable directory so that unprivileged
/// users can run it wherever the checkout lives; `regent-module` (which the
/// daemon runs for module operations, from beside its own binary) is copied
/// beside it.
pub fn regent() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // One directory per checkout (test runs of other checkouts must not replace
        // this binary), refreshed by each run (copy, then rename into place).
        let checkout = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            env!("CARGO_BIN_EXE_regent").hash(&mut h);
            h.finish()
        };
        let dir = std::env::temp_dir().join(format!("regent-e2e-bin-{checkout:016x}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (name, from) in [
            ("regent-module", env!("CARGO_BIN_EXE_regent-module")),
            ("regent", env!("CARGO_BIN_EXE_regent")),
        ] {
            let dst = dir.join(name);
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::copy(from, &tmp).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&tmp, &dst).unwrap();
        }
        dir.join("regent")
    })
}

/// `regent-module`, beside [`regent`].
pub fn regent_module() -> PathBuf {
    regent().with_file_name("regent-module")
}

/// Serialises changes to the user and group databases across test threads and
/// processes (useradd and usermod lock /etc/passwd themselves and fail when busy).
fn users_lock() -> nix::fcntl::Flock<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/regent-e2e-users.lock")
        .unwrap();
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap()
}

/// A system user (and its group) for tests; created once, idempotently.
pub fn user(name: &str) -> (u32, u32) {
    let _g = users_lock();
    if nix::unistd::User::from_name(name).unwrap().is_none() {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {name}");
    }
    let u = nix::unistd::User::from_name(name).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

/// A group with the given members (created once; members added idempotently).
pub fn group_with(name: &str, members: &[&str]) -> u32 {
    let _g = users_lock();
    if nix::unistd::Group::from_name(name).unwrap().is_none() {
        assert!(Command::new("groupadd")
            .args(["--system", name])
            .status()
            .unwrap()
            .success());
    }
    for m in members {
        assert!(Command::new("usermod")
            .args(["-a", "-G", name, m])
            .status()
            .unwrap()
            .success());
    }
    nix::unistd::Group::from_name(name)
        .unwrap()
        .unwrap()
        .gid
        .as_raw()
}

/// A running daemon.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub secret_file: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
}

/// Write `[service]` + `ops` into a config in a fresh 0755 directory.
/// `{dir}` in `ops` is replaced by that directory.
pub fn write_config(
    service_extra: &str,
    ops: &str,
) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("regent-e2e-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("regent.sock");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = dir.path().display().to_string();
    let config = dir.path().join("regent.toml");
    let text = format!(
        "[service]\nsocket = \"{}\"\nsecret_file = \"{}\"\nstore = \"{d}/state/pending.db\"\n{}\n\n{}",
        socket.display(),
        secret_file.display(),
        service_extra,
        ops.replace("{dir}", &d)
    );
    std::fs::write(&config, text).unwrap();
    (dir, socket, config, secret_file)
}

impl Daemon {
    /// A daemon not started yet, on a config written by [`write_config`].
    pub fn from_parts(
        dir: tempfile::TempDir,
        socket: PathBuf,
        config: PathBuf,
        secret_file: PathBuf,
    ) -> Daemon {
        Daemon {
            dir,
            socket,
            config,
            secret_file,
            child: None,
            log: PathBuf::new(),
        }
    }

    /// Start `regent serve` on a config made of `service_extra` and `ops`.
    pub fn start(service_extra: &str, ops: &str) -> Daemon {
        let (dir, socket, config, secret_file) = write_config(service_extra, ops);
        let mut d = Daemon::from_parts(dir, socket, config, secret_file);
        d.spawn();
        d
    }

    /// (Re)start the daemon process on the same config.
    pub fn spawn(&mut self) {
        self.spawn_full(None, &[], "json");
    }

    /// (Re)start the daemon process on the same config, as `uid:gid` if given.
    pub fn spawn_as(&mut self, who: Option<(u32, u32)>) {
        self.spawn_full(who, &[], "json");
    }

    /// [`Daemon::spawn`] through a `wrapper` command line (e.g. `prlimit ...`),
    /// logging in `log_format`.
    pub fn spawn_with(&mut self, wrapper: &[&str], log_format: &str) {
        self.spawn_full(None, wrapper, log_format);
    }

    /// (Re)start the daemon: as `who` (`uid:gid`) if given, through `wrapper` if
    /// not empty, logging in `log_format`.
    pub fn spawn_full(&mut self, who: Option<(u32, u32)>, wrapper: &[&str], log_format: &str) {
        self.log = self.dir.path().join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log = std::fs::File::create(&self.log).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(regent());
                c
            }
            None => Command::new(regent()),
        };
        if let Some((uid, gid)) = who {
            command.uid(uid).gid(gid);
        }
        let child = command
            .args(["serve", "--log-format", log_format, "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        // Ready means the socket answers and the daemon has logged "listening",
        // which it does only after dropping its privileges (the socket is bound
        // before that, so a connect alone could race the drop).
        // The log is read first so that no probe connection is made (and left
        // for the daemon to count against root) before the daemon is ready.
        while !self.log_text().contains("listening")
            || std::os::unix::net::UnixStream::connect(&self.socket).is_err()
        {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {st}: {}", self.log_text());
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "daemon did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the daemon's log shows `needle` within a few seconds (the log is
    /// written by a background thread, after the answer went out).
    pub fn log_shows(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.log_text().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        wait_timeout(&mut child, Duration::from_secs(15))
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// `regent ARGS --socket S` as root with the secret file.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new(regent());
        c.args(args)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--secret-file")
            .arg(&self.secret_file);
        run(c)
    }

    /// `regent ARGS --socket S` as `uid:gid`, the secret in the environment.
    pub fn cli_as(&self, uid: u32, gid: u32, args: &[&str], secret: Option<&str>) -> Output {
        let mut c = Command::new(regent());
        c.args(args)
            .arg("--socket")
            .arg(&self.socket)
            .uid(uid)
            .gid(gid)
            .env_clear();
        if let Some(s) = secret {
            c.env("REGENT_SECRET", s);
        }
        run(c)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null());
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    Output {
        status,
        stdout: out.into_bytes(),
        stderr: err.into_bytes(),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The value of `name:` in `/proc/PID/status` (e.g. `CapBnd`, `NoNewPrivs`).
pub fn proc_status_field(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_string()
}
