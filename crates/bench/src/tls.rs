//! The TLS part (issue 9 §5): `regent serve` with `[service.tcp]` beside a
//! minimal TLS echo server on the same TLS library (rustls with ring, TLS 1.3, a
//! client certificate required), measured in the same run by the same client.
//!
//! Figures, each the median over rounds (servers interleaved): the p50 of one
//! persistent connection sending a request line and reading the reply in turn,
//! and the rate of new connections (TCP connect, a full handshake with the
//! client certificate, resumption off, one request, close) from
//! [`NEW_CONN_CLIENTS`] clients at once. Targets: persistent p50 ≤ 1.5x the echo
//! server's, new connections ≥ 0.8x.
//!
//! The certificates are made by the daemon's own `regent tls init` and
//! `regent tls issue`. A daemon that refuses the config (one built without
//! `[service.tcp]`) gets `regent serve TLS: not available` and its reason after
//! the echo server's figures. The ratios are medians of per-round ratios; each
//! round's ratio is printed too, since on a busy machine the p50s are bimodal.

use crate::extra::verdict;
use crate::report::median;
use crate::BenchOptions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent clients in the new-connection figure.
pub const NEW_CONN_CLIENTS: usize = 4;
/// The client certificate's name.
pub const CLIENT: &str = "bench-client";
/// The line the daemon prints when it does not serve `[service.tcp]`.
pub const NOT_AVAILABLE: &str = "regent serve TLS: not available (TCP listener refused)";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("reading {}: {e}", path.display()))
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    Ok(Arc::new(roots))
}

// ---------------------------------------------------------------------------
// The echo server

/// `tls-echo ADDR CERT KEY CA`: a TLS 1.3 server on one single-threaded tokio
/// event loop (like the daemon's default), requiring a client certificate from
/// `CA`, writing back every line it reads; it answers close_notify with its own.
pub fn echo_main(args: &[String]) -> Result<(), String> {
    let [addr, cert, key, ca] = args else {
        return Err("usage: tls-echo ADDR CERT KEY CA".into());
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("not an address: {addr}"))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(Path::new(ca))?,
        provider(),
    )
    .build()
    .map_err(|e| format!("client verifier: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(Path::new(cert))?, private_key(Path::new(key))?)
        .map_err(|e| format!("server certificate: {e}"))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding {addr}: {e}"))?;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok(tls) = acceptor.accept(tcp).await {
                    echo(tls).await;
                }
            });
        }
    })
}

async fn echo(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = BufReader::new(tls);
    let mut line = Vec::new();
    loop {
        line.clear();
        match stream.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let w = stream.get_mut();
                if w.write_all(&line).await.is_err() || w.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = stream.get_mut().shutdown().await;
}

/// A server process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// The client

/// How to reach one server, and what a good reply contains.
struct Target {
    label: String,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    request: Vec<u8>,
    expect: String,
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

impl Target {
    fn connect(&self) -> Result<Tls, String> {
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| format!("{}: connecting: {e}", self.label))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
        let name = ServerName::try_from("localhost").expect("a DNS name");
        let conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| format!("{}: {e}", self.label))?;
        Ok(StreamOwned::new(conn, tcp))
    }

    /// Send the request and read one reply line; true when it is a good one.
    fn ask(&self, s: &mut Tls, buf: &mut Vec<u8>) -> Result<bool, String> {
        s.write_all(&self.request)
            .and_then(|()| s.flush())
            .map_err(|e| format!("{}: writing: {e}", self.label))?;
        buf.clear();
        crate::procs::read_line(s, buf, &self.label)?;
        Ok(String::from_utf8_lossy(buf).contains(&self.expect))
    }

    /// One request on a new connection (the first reply, for messages).
    fn probe(&self) -> Result<String, String> {
        let mut s = self.connect()?;
        let mut buf = Vec::new();
        self.ask(&mut s, &mut buf)?;
        close(s);
        Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
    }
}

fn close(mut s: Tls) {
    s.conn.send_close_notify();
    let _ = s.flush();
}

/// One persistent connection for `duration` after `warmup` requests: (p50 µs, errors).
fn persistent(t: &Target, duration: Duration, warmup: u32) -> Result<(f64, u64), String> {
    let mut s = t.connect()?;
    let mut buf = Vec::new();
    for _ in 0..warmup {
        t.ask(&mut s, &mut buf)?;
    }
    let mut lat = Vec::new();
    let mut errs = 0;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let t0 = Instant::now();
        if !t.ask(&mut s, &mut buf)? {
            errs += 1;
        }
        lat.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    close(s);
    Ok((median(lat), errs))
}

/// `clients` clients each opening a connection per request for `duration`:
/// (connections per second, p50 µs of connect → reply, errors).
fn new_connections(t: &Target, clients: usize, duration: Duration) -> (f64, f64, u64) {
    let start = Instant::now();
    let end = start + duration;
    let results: Vec<(Vec<f64>, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let (mut lat, mut errs, mut buf) = (Vec::new(), 0u64, Vec::new());
                    while Instant::now() < end {
                        let t0 = Instant::now();
                        let ok = t
                            .connect()
                            .and_then(|mut s| {
                                let ok = t.ask(&mut s, &mut buf)?;
                                close(s);
                                Ok(ok)
                            })
                            .unwrap_or(false);
                        if ok {
                            lat.push(t0.elapsed().as_secs_f64() * 1e6);
                        } else {
                            errs += 1;
                        }
                    }
                    (lat, errs)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let n: usize = results.iter().map(|(l, _)| l.len()).sum();
    let errs = results.iter().map(|(_, e)| e).sum();
    let p50 = median(results.into_iter().flat_map(|(l, _)| l));
    (n as f64 / wall, p50, errs)
}

// ---------------------------------------------------------------------------
// The part

fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))
}

fn regent_tls(program: &Path, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program)
        .arg("tls")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} tls: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} tls {:?} failed: {}",
            program.display(),
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Wait until `t` answers (or `alive` says its server has gone), for 10 s.
fn wait_answer(t: &Target, mut alive: impl FnMut() -> bool) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match t.probe() {
            Ok(reply) => return Ok(reply),
            Err(e) if Instant::now() > deadline || !alive() => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Figures of one server over the rounds.
#[derive(Default)]
struct Rounds {
    p50: Vec<f64>,
    rate: Vec<f64>,
    conn_p50: Vec<f64>,
    errs: u64,
}

impl Rounds {
    fn measure(&mut self, t: &Target, opts: &BenchOptions) -> Result<(), String> {
        let (p50, e1) = persistent(t, opts.duration, 100)?;
        let (rate, conn_p50, e2) = new_connections(t, NEW_CONN_CLIENTS, opts.duration);
        self.p50.push(p50);
        self.rate.push(rate);
        self.conn_p50.push(conn_p50);
        self.errs += e1 + e2;
        Ok(())
    }

    fn line(&self, label: &str) -> String {
        format!(
            "{label:<34} persistent p50 {:>8.1} µs   new connections {:>7.0}/s (p50 {:>7.0} µs)   errs {}",
            median(self.p50.iter().copied()),
            median(self.rate.iter().copied()),
            median(self.conn_p50.iter().copied()),
            self.errs
        )
    }
}

/// Median over rounds of `ours[i] / base[i]`.
fn ratio(base: &[f64], ours: &[f64]) -> f64 {
    median(base.iter().zip(ours).map(|(b, o)| o / b))
}

/// Each round's `ours[i] / base[i]`, for the report.
fn rounds(base: &[f64], ours: &[f64]) -> String {
    let each: Vec<String> = base
        .iter()
        .zip(ours)
        .map(|(b, o)| format!("{:.2}x", o / b))
        .collect();
    each.join(", ")
}

/// Run the TLS part; one printable line each.
pub fn run(opts: &BenchOptions) -> Result<Vec<String>, String> {
    let say = |msg: &str| {
        if opts.progress {
            eprintln!("regent-bench: {msg}");
        }
    };
    let program = opts
        .daemon_program
        .as_ref()
        .ok_or("the TLS part needs the `regent` binary (BenchOptions::daemon_program)")?;
    let echo_program = opts
        .server_command
        .first()
        .ok_or("no bench server program for the TLS echo server")?;
    let dir = tempfile::Builder::new()
        .prefix("regent-bench-tls.")
        .tempdir()
        .map_err(|e| format!("creating a directory: {e}"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", dir.path().display()))?;
    let lab = dir.path().join("lab");
    say("TLS: certificates from `regent tls init` and `regent tls issue`");
    regent_tls(
        program,
        &[
            "init".as_ref(),
            lab.as_os_str(),
            "--name".as_ref(),
            "localhost".as_ref(),
            "--name".as_ref(),
            "127.0.0.1".as_ref(),
        ],
    )?;
    regent_tls(
        program,
        &["issue".as_ref(), CLIENT.as_ref(), lab.as_os_str()],
    )?;
    let f = |name: &str| -> PathBuf { lab.join(name) };
    let client_key = f(&format!("clients/{CLIENT}.key"));
    let client_cert = f(&format!("clients/{CLIENT}.crt"));
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(&f("ca.crt"))?)
        .with_client_auth_cert(certs(&client_cert)?, private_key(&client_key)?)
        .map_err(|e| format!("client certificate: {e}"))?;
    // Every new connection is a full handshake.
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);

    say("TLS: starting the echo server");
    let echo_addr = free_port()?;
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let mut echo = Proc(
        Command::new(echo_program)
            .arg("tls-echo")
            .arg(echo_addr.to_string())
            .args([
                path(f("server.crt")),
                path(f("server.key")),
                path(f("ca.crt")),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the TLS echo server: {e}"))?,
    );
    let secret = crate::token(17)?;
    let request = crate::op_line(&secret, crate::DAEMON_OP);
    let echo_target = Target {
        label: "TLS echo server".into(),
        addr: echo_addr,
        config: client.clone(),
        request: format!("{request}\n").into_bytes(),
        expect: request.clone(),
    };
    wait_answer(&echo_target, || matches!(echo.0.try_wait(), Ok(None)))?;

    say("TLS: starting regent serve with [service.tcp]");
    let daemon_addr = free_port()?;
    let tcp = format!(
        "\n[service.tcp]\nlisten = [\"{daemon_addr}\"]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\ncrl = \"{}\"\n",
        f("server.crt").display(),
        f("server.key").display(),
        f("ca.crt").display(),
        f("crl.pem").display(),
    );
    let label = "regent serve with [service.tcp]";
    let mut daemon = None;
    let mut unavailable = None;
    match crate::start_daemon(opts, dir.path(), "tls", label, &secret, &tcp) {
        Err(e) => unavailable = Some(e),
        Ok((mut proc, _)) => {
            let t = Target {
                label: label.into(),
                addr: daemon_addr,
                config: client.clone(),
                request: format!("{request}\n").into_bytes(),
                expect: "\"success\":true".into(),
            };
            match wait_answer(&t, || proc.alive()) {
                Ok(reply) if reply.contains(&t.expect) => daemon = Some((proc, t)),
                Ok(reply) => unavailable = Some(format!("it answered {reply}")),
                Err(e) => unavailable = Some(format!("{e}; {}", proc.stderr_text())),
            }
        }
    }

    let (mut e, mut d) = (Rounds::default(), Rounds::default());
    for round in 0..opts.rounds {
        say(&format!("TLS: round {}/{}", round + 1, opts.rounds));
        let order: Vec<bool> = if round % 2 == 0 {
            vec![true, false]
        } else {
            vec![false, true]
        };
        for is_echo in order {
            if is_echo {
                e.measure(&echo_target, opts)?;
            } else if let Some((_, t)) = &daemon {
                d.measure(t, opts)?;
            }
        }
    }
    let mut lines = vec![
        format!(
            "TLS 1.3 (rustls + ring), client certificate `{CLIENT}`, request {} bytes ({}); new connections: {NEW_CONN_CLIENTS} clients, full handshake (no resumption) + one request + close",
            request.len() + 1,
            crate::DAEMON_OP
        ),
        e.line("minimal TLS echo server (tokio)"),
    ];
    match (&daemon, unavailable) {
        (Some(_), _) => {
            let p = ratio(&e.p50, &d.p50);
            let r = ratio(&e.rate, &d.rate);
            lines.push(d.line(label));
            lines.push(format!(
                "  persistent p50 / echo {p:.2}x (target <= 1.5x) {}; new connections / echo {r:.2}x (target >= 0.8x) {}",
                verdict(p <= 1.5),
                verdict(r >= 0.8)
            ));
            // The medians above are of per-round ratios (servers interleaved), which
            // need not be the ratio of the medians printed per server: show each round.
            lines.push(format!(
                "  per round: persistent p50 / echo {}; new connections / echo {}",
                rounds(&e.p50, &d.p50),
                rounds(&e.rate, &d.rate)
            ));
        }
        (None, reason) => {
            lines.push(NOT_AVAILABLE.into());
            if let Some(reason) = reason {
                let first = reason.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                lines.push(format!("  ({})", first.trim()));
            }
        }
    }
    if !matches!(echo.0.try_wait(), Ok(None)) {
        return Err("the TLS echo server died during the run".into());
    }
    drop(daemon);
    Ok(lines)
}
