//! TCP with mutual TLS (`[service.tcp]`), seen by peers that are not ours
//! (`openssl s_client`, Python's `ssl` module) and by our own CLI. The test
//! harness makes its certificates with the `openssl` command line: a CA, a
//! server certificate for localhost and 127.0.0.1, clients `panel` and `other`,
//! an expired and a revoked client (with a CRL), and one from another CA.

use crate::pending::{assert_error, pending_of};
use crate::util::*;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The test PKI, made with the `openssl` CLI (OpenSSL 3.0: the expired
/// certificate comes from `openssl ca -startdate/-enddate`).
const MKCERTS: &str = r#"set -eu
cd "$1"
mkdir -p db/newcerts; : > db/index.txt; echo 1000 > db/serial; echo 1000 > db/crlnumber
cat > ca.cnf <<'CNF'
[ ca ]
default_ca = testca
[ testca ]
dir = ./db
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = ./ca.crt
private_key = ./ca.key
default_md = sha256
default_days = 825
default_crl_days = 3650
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ policy_any ]
commonName = supplied
[ server_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_san_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:https://example.org/x,DNS:backup.example.org,DNS:second.example.org
[ crl_ext ]
authorityKeyIdentifier = keyid
CNF
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout ca.key -out ca.crt -days 3650 -subj "/CN=Regent Test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" 2>/dev/null
issue() {
  name=$1; cn=$2; ext=$3; shift 3
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  openssl ca -batch -notext -config ca.cnf -extensions "$ext" -in "$name.csr" -out "$name.crt" "$@" 2>/dev/null
  rm -f "$name.csr"
}
issue server localhost server_ext
issue panel panel client_ext
issue other other client_ext
issue expired panel client_ext -startdate 20200101000000Z -enddate 20200201000000Z
issue revoked panel client_ext
issue badname "bad name" client_ext
issue sanned panel client_san_ext
openssl ca -batch -config ca.cnf -revoke revoked.crt -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -crlexts crl_ext -out crl.pem 2>/dev/null
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout rogue.key -out rogue.crt -days 365 -subj "/CN=panel" 2>/dev/null
chmod 600 ./*.key
"#;

/// One TLS request from Python's `ssl` module: prints the answer line, or
/// `REFUSED ` and the error. argv: port, CA, cert or "", key or "", max TLS
/// version ("1.2" or ""), line, the server's name.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, ca, cert, key, maxv, line, name = sys.argv[1:]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
if cert:
    ctx.load_cert_chain(cert, key)
if maxv == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
try:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            print(data.decode().strip() or "REFUSED closed without an answer")
except Exception as e:
    print("REFUSED", type(e).__name__, e)
"#;

/// The certificates, in a directory of their own.
pub(crate) struct Pki {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        // Under the target directory: nothing else in the machine cleans it.
        let dir = tempfile::Builder::new()
            .prefix("regent-pki-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let mut c = Command::new("sh");
        c.args(["-c", MKCERTS, "mkcerts"]).arg(dir.path());
        let o = run(c);
        assert!(o.status.success(), "mkcerts: {}", stderr(&o));
        let path = dir.path().to_path_buf();
        Pki { _dir: dir, path }
    }

    /// A lab made by our own `regent tls init` (server names localhost and
    /// 127.0.0.1), with clients issued by `regent tls issue`, laid out as
    /// [`MKCERTS`] lays its files out (`NAME.crt` and `NAME.key` link to
    /// `clients/`). Returns each client's serial.
    pub(crate) fn lab(clients: &[&str]) -> (Pki, Vec<String>) {
        Pki::lab_for(&["localhost", "127.0.0.1"], clients)
    }

    /// [`Pki::lab`] with a server certificate for `names` alone.
    fn lab_for(names: &[&str], clients: &[&str]) -> (Pki, Vec<String>) {
        // Under the target directory: nothing else in the machine cleans it.
        Pki::lab_in(Path::new(env!("CARGO_TARGET_TMPDIR")), names, clients)
    }

    /// [`Pki::lab_for`] in a new directory under `parent`.
    pub(crate) fn lab_in(parent: &Path, names: &[&str], clients: &[&str]) -> (Pki, Vec<String>) {
        let top = tempfile::Builder::new()
            .prefix("regent-lab-")
            .tempdir_in(parent)
            .unwrap();
        let path = top.path().join("lab");
        let tls = |args: &[&str]| {
            let mut c = Command::new(regent());
            c.arg("tls").args(args);
            let o = run(c);
            assert_eq!(code(&o), 0, "regent tls {args:?}: {}", stderr(&o));
            stdout(&o)
        };
        let lab = path.display().to_string();
        let mut init = vec!["init", &lab];
        for name in names {
            init.extend(["--name", name]);
        }
        tls(&init);
        let mut serials = Vec::new();
        for name in clients {
            let out = tls(&["issue", name, &lab]);
            let serial = out
                .split_whitespace()
                .skip_while(|w| *w != "serial")
                .nth(1)
                .unwrap_or_else(|| panic!("no serial in {out}"));
            serials.push(serial.to_string());
            for ext in ["crt", "key"] {
                std::os::unix::fs::symlink(
                    path.join(format!("clients/{name}.{ext}")),
                    path.join(format!("{name}.{ext}")),
                )
                .unwrap();
            }
        }
        (Pki { _dir: top, path }, serials)
    }

    fn file(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }

    /// The `[service.tcp]` table for these certificates.
    fn tcp_table(&self, extra: &str) -> String {
        self.tcp_table_on("127.0.0.1:0", extra)
    }

    /// [`Pki::tcp_table`] listening on `listen`.
    pub(crate) fn tcp_table_on(&self, listen: &str, extra: &str) -> String {
        format!(
            "[service.tcp]\nlisten = [\"{listen}\"]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\ncrl = \"{}\"\n{extra}\n",
            self.file("server.crt"),
            self.file("server.key"),
            self.file("ca.crt"),
            self.file("crl.pem"),
        )
    }
}

const OPS: &str = r#"
[operations.who]
command = ["echo", "client {caller.client}"]
allow = { users = ["root"], clients = ["panel", "other", "backup.example.org"] }

[operations.panel-only]
command = ["echo", "for panel"]
allow = { clients = ["panel"] }

[operations.approved]
command = ["echo", "approved {caller.client}"]
allow = { clients = ["panel", "other"] }
auth = ["approval"]
"#;

/// The port the daemon's TLS listener got (it listens on port 0).
fn tls_port(d: &Daemon) -> u16 {
    let t = Instant::now();
    loop {
        let log = d.log_text();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("listening for TLS clients"))
        {
            let at = line.find("127.0.0.1:").expect("an address") + "127.0.0.1:".len();
            let digits: String = line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            return digits.parse().unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no TLS listener: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(pki: &Pki, tcp_extra: &str) -> (Daemon, u16) {
    let d = Daemon::start(&pki.tcp_table(tcp_extra), OPS);
    let port = tls_port(&d);
    (d, port)
}

fn request(op: &str) -> String {
    format!(r#"{{"secret":"{SECRET}","op":"{op}"}}"#)
}

/// Python's `ssl` client: the answer line, or `REFUSED ...`.
fn python(pki: &Pki, port: u16, who: Option<&str>, max_version: &str, line: &str) -> String {
    python_to(
        "localhost",
        pki,
        &pki.file("ca.crt"),
        port,
        who,
        max_version,
        line,
    )
}

/// [`python`], verifying the server against the CAs in `ca` and its
/// certificate's name against `server`.
fn python_to(
    server: &str,
    pki: &Pki,
    ca: &str,
    port: u16,
    who: Option<&str>,
    max_version: &str,
    line: &str,
) -> String {
    let (cert, key) = match who {
        Some(w) => (pki.file(&format!("{w}.crt")), pki.file(&format!("{w}.key"))),
        None => (String::new(), String::new()),
    };
    let mut c = Command::new("/usr/bin/python3");
    c.args(["-c", PY_CLIENT, &port.to_string(), ca])
        .args([&cert, &key, max_version, line, server]);
    let o = run(c);
    assert!(o.status.success(), "python: {}", stderr(&o));
    stdout(&o)
}

/// `openssl s_client` as `who`, sending `line`: its standard output and error.
fn s_client(pki: &Pki, port: u16, who: &str, extra: &[&str], line: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args([
            "-CAfile",
            &pki.file("ca.crt"),
            "-verify_return_error",
            "-quiet",
            "-no_ign_eof",
        ])
        .args(["-cert", &pki.file(&format!("{who}.crt"))])
        .args(["-key", &pki.file(&format!("{who}.key"))])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
        // Keep stdin open until the answer came (s_client quits at its EOF),
        // then close it.
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut out = String::new();
        loop {
            let mut line = String::new();
            match std::io::BufRead::read_line(&mut stdout, &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    out.push_str(&line);
                    if line.starts_with('{') {
                        break;
                    }
                }
            }
        }
        drop(stdin);
        let _ = stdout.read_to_string(&mut out);
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        wait_timeout(&mut child, Duration::from_secs(20));
        format!("{out}\n{err}")
    }
}

/// Our CLI as a remote caller: `regent ARGS --connect localhost:PORT ...`.
pub(crate) fn remote(pki: &Pki, port: u16, who: &str, args: &[&str]) -> std::process::Output {
    remote_at(pki, &format!("localhost:{port}"), who, args)
}

/// [`remote`], connecting to `at` (`HOST:PORT`).
fn remote_at(pki: &Pki, at: &str, who: &str, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(regent());
    c.args(args)
        .args(["--connect", at])
        .args(["--cert", &pki.file(&format!("{who}.crt"))])
        .args(["--key", &pki.file(&format!("{who}.key"))])
        .args(["--ca", &pki.file("ca.crt")])
        .env("REGENT_SECRET", SECRET);
    run(c)
}

#[test]
fn peers_not_ours_call_and_every_bad_client_is_refused() {
    let pki = Pki::new();
    let (d, port) = start(&pki, "");

    // openssl s_client, then Python, as client "panel".
    let out = s_client(&pki, port, "panel", &[], &request("who"));
    assert!(out.contains(r#""data":"client panel""#), "{out}");
    let answer = python(&pki, port, Some("panel"), "", &request("who"));
    assert!(answer.contains(r#""data":"client panel""#), "{answer}");
    // The audit record names the client, its certificate's serial and address.
    assert!(d.log_shows(r#""client":"panel""#), "{}", d.log_text());
    assert!(d.log_shows(r#""serial":"1001""#), "{}", d.log_text());
    assert!(d.log_shows(r#""peer":"127.0.0.1:"#), "{}", d.log_text());
    // And no pid, uid or user: a TLS client has none (not 4294967295).
    let log = d.log_text();
    let record = log
        .lines()
        .find(|l| l.contains(r#""client":"panel""#))
        .unwrap();
    for absent in [r#""pid""#, r#""uid""#, r#""user""#] {
        assert!(!record.contains(absent), "{absent} in {record}");
    }
    // The socket secret is required on TCP too.
    let answer = python(&pki, port, Some("panel"), "", r#"{"op":"who"}"#);
    assert!(
        answer.contains("permission_denied") || answer.contains("\"code\""),
        "{answer}"
    );
    assert!(!answer.contains("client panel"), "{answer}");

    // Refused: no certificate, an unknown CA, expired, revoked, a bad name, TLS 1.2.
    let cases: &[(Option<&str>, &str, &[&str])] = &[
        (None, "", &["certificate required", "certificate_required"]),
        // Self-signed by another CA (and itself a CA certificate): rustls
        // answers unknown_ca or certificate_unknown.
        (
            Some("rogue"),
            "",
            &["unknown ca", "unknown_ca", "certificate unknown"],
        ),
        (Some("expired"), "", &["expired"]),
        (Some("revoked"), "", &["revoked"]),
        (Some("badname"), "", &["access denied", "access_denied"]),
        (
            Some("panel"),
            "1.2",
            &[
                "protocol version",
                "protocol_version",
                "unsupported protocol",
            ],
        ),
    ];
    for (who, max_version, why) in cases {
        let answer = python(&pki, port, *who, max_version, &request("who"));
        let lower = answer.to_lowercase();
        assert!(
            answer.starts_with("REFUSED"),
            "{who:?} {max_version}: {answer}"
        );
        assert!(
            why.iter().any(|w| lower.contains(w)),
            "{who:?} {max_version}: expected one of {why:?}: {answer}"
        );
    }
    // openssl's own TLS 1.2 client is refused too.
    let out = s_client(&pki, port, "panel", &["-tls1_2"], &request("who"));
    assert!(!out.contains("client panel"), "{out}");
    assert!(out.to_lowercase().contains("protocol version"), "{out}");
    // The daemon still serves.
    let answer = python(&pki, port, Some("other"), "", &request("who"));
    assert!(answer.contains(r#""data":"client other""#), "{answer}");
    // Named by the first DNS subjectAltName, before any URI and the CN.
    let answer = python(&pki, port, Some("sanned"), "", &request("who"));
    assert!(
        answer.contains(r#""data":"client backup.example.org""#),
        "{answer}"
    );
}

#[test]
fn a_client_allowed_by_name_runs_what_another_is_denied_through_our_cli() {
    let pki = Pki::new();
    let (d, port) = start(&pki, "");
    let o = remote(&pki, port, "panel", &["call", "panel-only"]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "for panel");
    let o = remote(&pki, port, "other", &["call", "panel-only"]);
    assert_error(&o, 3, "permission_denied");
    // `regent check` names the clients an operation admits.
    let mut c = Command::new(regent());
    c.args(["check", "--config"]).arg(&d.config);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("callers: users [] groups [] clients [panel]"),
        "{}",
        stdout(&o)
    );
    // A Unix caller, even root, is never a client.
    let o = d.cli(&["call", "panel-only"]);
    assert_error(&o, 3, "permission_denied");
    // Root on the socket may call `who` (users = ["root"]); `{caller.client}` is empty.
    let o = d.cli(&["call", "who"]);
    assert_eq!(stdout(&o), "client", "{}", stderr(&o));
    // The server's name is verified: the CA file must vouch for it.
    let mut c = Command::new(regent());
    c.args(["call", "who", "--connect", &format!("localhost:{port}")])
        .args([
            "--cert",
            &pki.file("panel.crt"),
            "--key",
            &pki.file("panel.key"),
        ])
        .args(["--ca", &pki.file("rogue.crt")])
        .env("REGENT_SECRET", SECRET);
    let o = run(c);
    assert_eq!(code(&o), 6, "{} {}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("TLS with localhost"), "{}", stderr(&o));
}

#[test]
fn a_pending_request_of_one_client_cannot_be_completed_by_another() {
    let pki = Pki::new();
    let (_d, port) = start(&pki, "");
    let held = pending_of(&remote(
        &pki,
        port,
        "panel",
        &["call", "approved", "--json"],
    ));
    // Another client presenting the uid: as if it did not exist.
    let o = remote(&pki, port, "other", &["call", "--uid", &held.uid]);
    assert_error(&o, 3, "not_found");
    // Its own client still finds it waiting.
    let again = pending_of(&remote(
        &pki,
        port,
        "panel",
        &["call", "--uid", &held.uid, "--json"],
    ));
    assert_eq!(again.request_id(), held.request_id());
}

#[test]
fn a_stalled_handshake_is_closed_after_the_timeout() {
    let pki = Pki::new();
    let (d, port) = start(&pki, "handshake_timeout = \"1h\"");
    // The timeout is reloaded, for new handshakes.
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace("\"1h\"", "\"1s\"")).unwrap();
    crate::reload::hup(&d, crate::reload::RELOADED);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A limit far beyond the timeout: reaching it would mean the daemon kept us.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the daemon sent {n} bytes to a client that sent nothing"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the daemon kept a stalled handshake open: {e}"
        ),
    }
    assert!(d.log_shows("handshake not finished within handshake_timeout"));
}

#[test]
fn a_key_others_can_read_is_refused_at_start() {
    let pki = Pki::new();
    let key = Path::new(&pki.file("server.key")).to_path_buf();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_dir, _socket, config, _secret) = write_config(&pki.tcp_table(""), OPS);
    let mut c = Command::new(regent());
    c.args(["serve", "--config"]).arg(&config);
    let o = run(c);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("server.key is accessible to group or others (mode 0644)"),
        "{err}"
    );
}

#[test]
fn the_rust_clients_blocking_and_async_call_over_tls() {
    use regent::client::{AsyncClient, Client, Outcome};
    let pki = Pki::new();
    let (_d, port) = start(&pki, "");
    let at = format!("localhost:{port}");
    let (cert, key, ca) = (
        pki.file("panel.crt"),
        pki.file("panel.key"),
        pki.file("ca.crt"),
    );
    let (cert, key, ca) = (Path::new(&cert), Path::new(&key), Path::new(&ca));
    let client = Client::tls(&at, cert, key, ca).unwrap().secret(SECRET);
    let want = Outcome::Done(serde_json::json!("client panel"));
    assert_eq!(client.call("who", serde_json::Value::Null).unwrap(), want);
    // A persistent connection serves several requests.
    let mut conn = client.connect().unwrap();
    for _ in 0..3 {
        assert_eq!(conn.call("who", serde_json::Value::Null).unwrap(), want);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        AsyncClient::tls(&at, cert, key, ca)
            .unwrap()
            .secret(SECRET)
            .call("who", serde_json::Value::Null)
            .await
    });
    assert_eq!(answer.unwrap(), want);
    // Without the secret: refused, as on the socket.
    let bare = Client::tls(&at, cert, key, ca).unwrap();
    match bare.call("who", serde_json::Value::Null).unwrap() {
        Outcome::Error { .. } => {}
        other => panic!("no secret, yet {other:?}"),
    }
}

#[test]
fn totp_secrets_are_managed_for_a_client_by_name() {
    let dir = tempfile::Builder::new()
        .prefix("regent-totp-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let store = dir.path().join("state").join("pending.db");
    let store = store.display().to_string();
    let totp = |args: &[&str]| {
        let mut c = Command::new(regent());
        c.arg("totp").args(args).args(["--store", &store]);
        run(c)
    };
    let o = totp(&["remove", "--client", "panel"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tls:panel has no TOTP secret"),
        "{}",
        stderr(&o)
    );
    let o = totp(&["remove", "--client", "not a name"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a client name"), "{}", stderr(&o));
    // A user and a client at once: a usage error.
    let o = totp(&["remove", "alice", "--client", "panel"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

/// `regent tls revoke SERIAL DIR`.
fn revoke(pki: &Pki, serial: &str) {
    let mut c = Command::new(regent());
    c.args(["tls", "revoke", serial]).arg(&pki.path);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn a_client_revoked_then_reloaded_is_refused_while_another_still_calls() {
    use regent::client::{Client, Outcome};
    let (pki, serials) = Pki::lab(&["panel", "other"]);
    let (d, port) = start(&pki, "");
    let at = format!("localhost:{port}");
    let ca = pki.file("ca.crt");
    let connect = |who: &str| {
        let (cert, key) = (
            pki.file(&format!("{who}.crt")),
            pki.file(&format!("{who}.key")),
        );
        Client::tls(&at, Path::new(&cert), Path::new(&key), Path::new(&ca))
            .unwrap()
            .secret(SECRET)
            .connect()
            .unwrap()
    };
    let mut panel = connect("panel");
    let mut other = connect("other");
    let said = |who: &str| Outcome::Done(serde_json::json!(format!("client {who}")));
    assert_eq!(
        panel.call("who", serde_json::Value::Null).unwrap(),
        said("panel")
    );
    assert_eq!(
        other.call("who", serde_json::Value::Null).unwrap(),
        said("other")
    );

    revoke(&pki, &serials[0]);
    // The CRL is read at start and on a reload, not at each handshake.
    let answer = python(&pki, port, Some("panel"), "", &request("who"));
    assert!(answer.contains(r#""data":"client panel""#), "{answer}");
    crate::reload::hup(&d, crate::reload::RELOADED);
    assert!(
        d.log_shows("TLS certificate, key, client CAs and CRLs read again"),
        "{}",
        d.log_text()
    );

    // A new handshake with the revoked certificate is refused ...
    let answer = python(&pki, port, Some("panel"), "", &request("who"));
    assert!(
        answer.starts_with("REFUSED") && answer.to_lowercase().contains("revoked"),
        "{answer}"
    );
    let o = remote(&pki, port, "panel", &["call", "who"]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    assert!(!stdout(&o).contains("client panel"), "{}", stdout(&o));
    // ... and its established connection is closed at its next request, unanswered.
    assert!(
        panel.call("who", serde_json::Value::Null).is_err(),
        "a revoked client's connection still answered"
    );
    assert!(
        d.log_shows("closing a TLS connection whose certificate the reloaded CRL revokes"),
        "{}",
        d.log_text()
    );
    // The other client goes on, on its connection and on new ones.
    assert_eq!(
        other.call("who", serde_json::Value::Null).unwrap(),
        said("other")
    );
    let answer = python(&pki, port, Some("other"), "", &request("who"));
    assert!(answer.contains(r#""data":"client other""#), "{answer}");
    let o = remote(&pki, port, "other", &["call", "who"]);
    assert_eq!(stdout(&o), "client other", "{}", stderr(&o));
}

#[test]
fn a_replaced_server_certificate_and_ca_serve_new_handshakes_after_a_reload() {
    let (old, _) = Pki::lab(&["panel"]);
    let (new, _) = Pki::lab(&["panel"]);
    // Keep a copy of the old CA: the files at the configured paths are replaced.
    let old_ca = old.path.join("old-ca.crt");
    std::fs::copy(old.path.join("ca.crt"), &old_ca).unwrap();
    let old_ca = old_ca.display().to_string();
    let old_panel = |pki: &Pki| {
        for ext in ["crt", "key"] {
            let keep = pki.path.join(format!("old-panel.{ext}"));
            std::fs::copy(pki.path.join(format!("panel.{ext}")), keep).unwrap();
        }
    };
    old_panel(&old);
    let serial = |cert: &str| {
        let o = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in", cert])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let old_serial = serial(&old.file("server.crt"));
    let (d, port) = start(&old, "");
    // `who` as `client`, trusting the server certificates of `ca`.
    let who = |ca: &str, client: &str| {
        python_to(
            "localhost",
            &old,
            ca,
            port,
            Some(client),
            "",
            &request("who"),
        )
    };
    let answer = who(&old_ca, "panel");
    assert!(answer.contains(r#""data":"client panel""#), "{answer}");

    // New material at the same paths: a new CA, server certificate and key,
    // CRL and client `panel`; nothing changes until the reload.
    for f in ["ca.crt", "server.crt", "server.key", "crl.pem"] {
        std::fs::copy(new.path.join(f), old.path.join(f)).unwrap();
    }
    for ext in ["crt", "key"] {
        let link = old.path.join(format!("panel.{ext}"));
        std::fs::remove_file(&link).unwrap();
        std::fs::copy(new.path.join(format!("clients/panel.{ext}")), &link).unwrap();
    }
    let new_ca = new.file("ca.crt");
    let answer = who(&new_ca, "panel");
    assert!(answer.starts_with("REFUSED"), "before the reload: {answer}");

    crate::reload::hup(&d, crate::reload::RELOADED);
    // The server now presents the new certificate, which the new CA verifies
    // and the old one does not; client certificates chain to the new CA.
    let answer = who(&new_ca, "panel");
    assert!(answer.contains(r#""data":"client panel""#), "{answer}");
    let answer = who(&old_ca, "panel");
    assert!(
        answer.starts_with("REFUSED") && answer.contains("CERTIFICATE_VERIFY_FAILED"),
        "the old CA still verifies the server: {answer}"
    );
    let answer = who(&new_ca, "old-panel");
    assert!(
        answer.starts_with("REFUSED"),
        "a client of the old CA is still accepted: {answer}"
    );
    // openssl s_client sees the new certificate's serial.
    let served = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost -cert {} -key {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
            old.file("panel.crt"),
            old.file("panel.key")
        ))
        .output()
        .unwrap();
    let served = String::from_utf8_lossy(&served.stdout).trim().to_string();
    assert_eq!(served, serial(&new.file("server.crt")));
    assert_ne!(served, old_serial);
}

/// A client CA or CRL another user could replace would let that user in: one
/// owned by another user, or writable by group or others, is refused at start
/// and on a reload (found in review: both were read).
#[test]
fn tls_files_another_user_could_replace_are_refused_at_start_and_on_reload() {
    let (uid, _) = user("regent-t-tlsown");
    let (pki, _) = Pki::lab(&["panel"]);
    let ca = pki.path.join("ca.crt");
    std::os::unix::fs::chown(&ca, Some(uid), None).unwrap();
    let (_dir, _socket, config, _secret) = write_config(&pki.tcp_table(""), OPS);
    let mut child = Command::new(regent())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A daemon that serves instead of refusing is a failure, not a hang.
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("client_ca {} is owned by uid {uid}", ca.display())),
        "{err}"
    );
    std::os::unix::fs::chown(&ca, Some(0), None).unwrap();

    let (d, port) = start(&pki, "");
    let works = || {
        let answer = python(&pki, port, Some("panel"), "", &request("who"));
        assert!(answer.contains(r#""data":"client panel""#), "{answer}");
    };
    works();
    let crl = pki.path.join("crl.pem");
    std::fs::set_permissions(&crl, std::fs::Permissions::from_mode(0o666)).unwrap();
    crate::reload::hup(&d, crate::reload::REFUSED);
    let log = d.log_text();
    let line = log
        .lines()
        .rfind(|l| l.contains(crate::reload::REFUSED))
        .unwrap();
    assert!(
        line.contains(&format!(
            "crl {} is writable by group or others",
            crl.display()
        )),
        "{line}"
    );
    works();
    std::fs::set_permissions(&crl, std::fs::Permissions::from_mode(0o644)).unwrap();
    crate::reload::hup(&d, crate::reload::RELOADED);
    works();
}

#[test]
fn broken_tls_material_refuses_the_reload_and_the_old_material_serves() {
    use std::os::unix::fs::PermissionsExt as _;
    let (pki, _) = Pki::lab(&["panel"]);
    let (other_lab, _) = Pki::lab(&[]);
    let (d, port) = start(&pki, "");
    let works = || {
        let answer = python(&pki, port, Some("panel"), "", &request("who"));
        assert!(answer.contains(r#""data":"client panel""#), "{answer}");
    };
    works();
    let key = pki.path.join("server.key");
    let good_key = std::fs::read(&key).unwrap();
    let refused = |what: &str| {
        crate::reload::hup(&d, crate::reload::REFUSED);
        let log = d.log_text();
        let line = log
            .lines()
            .rfind(|l| l.contains(crate::reload::REFUSED))
            .unwrap()
            .to_string();
        assert!(line.contains(what), "{what}: {line}");
        // The daemon still serves with what it had.
        works();
        line
    };

    // A key that does not parse: its file named, none of its bytes quoted.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nS3CR3TKEYBYTESxx\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let line = refused(&format!("key {}", key.display()));
    assert!(!line.contains("S3CR3T"), "key bytes in the log: {line}");
    assert!(!d.log_text().contains("S3CR3T"), "key bytes in the log");

    // Both the certificate and the key broken: each error with its file.
    let cert = pki.path.join("server.crt");
    let good_cert = std::fs::read(&cert).unwrap();
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let line = refused(&format!("key {}", key.display()));
    assert!(line.contains(&format!("cert {}", cert.display())), "{line}");
    std::fs::write(&cert, &good_cert).unwrap();

    // A key that others can read.
    std::fs::write(&key, &good_key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused("accessible to group or others (mode 0644)");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A key that is not the certificate's (another lab's server key).
    std::fs::write(
        &key,
        std::fs::read(other_lab.path.join("server.key")).unwrap(),
    )
    .unwrap();
    refused(&format!(
        "cert {} and key {}",
        cert.display(),
        key.display()
    ));

    // A CRL that does not parse.
    std::fs::write(&key, &good_key).unwrap();
    let crl = pki.path.join("crl.pem");
    let good_crl = std::fs::read(&crl).unwrap();
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n",
    )
    .unwrap();
    refused(&format!("crl {}", crl.display()));

    // Repaired: the reload goes through.
    std::fs::write(&crl, &good_crl).unwrap();
    crate::reload::hup(&d, crate::reload::RELOADED);
    works();

    // New listen addresses or a new max_connections need a restart.
    let text = std::fs::read_to_string(&d.config).unwrap();
    let moved = text.replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\", \"[::1]:0\"]\nmax_connections = 3",
    );
    assert_ne!(moved, text);
    std::fs::write(&d.config, moved).unwrap();
    let line = refused("need a restart");
    assert!(line.contains("tcp.listen, tcp.max_connections"), "{line}");
}

#[test]
fn an_admin_client_sees_and_approves_what_another_client_may_not() {
    let pki = Pki::new();
    let d = Daemon::start(
        &format!("admin_clients = [\"other\"]\n{}", pki.tcp_table("")),
        OPS,
    );
    let port = tls_port(&d);
    let held = pending_of(&remote(
        &pki,
        port,
        "panel",
        &["call", "approved", "--json"],
    ));
    // `panel` is no administrator: it may neither list nor approve, its own
    // request included.
    let o = remote(&pki, port, "panel", &["pending"]);
    assert_error(&o, 3, "permission_denied");
    let o = remote(&pki, port, "panel", &["approve", held.request_id()]);
    assert_error(&o, 3, "permission_denied");
    // `other`, in admin_clients, sees it and approves it.
    let o = remote(&pki, port, "other", &["pending"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(held.request_id()), "{}", stdout(&o));
    let o = remote(&pki, port, "other", &["approve", held.request_id()]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    // Its requester's next poll runs it, as `panel`.
    let o = remote(&pki, port, "panel", &["call", "--uid", &held.uid]);
    assert_eq!(stdout(&o), "approved panel", "{}", stderr(&o));
}

#[test]
fn the_client_verifies_the_name_or_address_it_connected_to() {
    // A server certificate for the IP address alone.
    let (pki, _) = Pki::lab_for(&["127.0.0.1"], &["panel"]);
    let (_d, port) = start(&pki, "");
    let o = remote_at(
        &pki,
        &format!("127.0.0.1:{port}"),
        "panel",
        &["call", "who"],
    );
    assert_eq!(stdout(&o), "client panel", "{}", stderr(&o));
    // The same server reached by a name its certificate does not give.
    let o = remote_at(
        &pki,
        &format!("localhost:{port}"),
        "panel",
        &["call", "who"],
    );
    assert_eq!(code(&o), 6, "{} {}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("certificate not valid for name \"localhost\""),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("client panel"));
}

/// The README's ```` ```sh ```` block under `heading`.
fn readme_block(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let after = &readme[readme.find(heading).expect(heading)..];
    let start = after.find("```sh\n").unwrap() + "```sh\n".len();
    let block = &after[start..];
    block[..block.find("```").unwrap()].to_string()
}

#[test]
fn the_readmes_openssl_pki_serves_its_client_and_revokes_it() {
    let script = readme_block("### A production PKI: the same with openssl");
    // First every command but the revocation (its -gencrl makes the first CRL).
    let make: Vec<&str> = script
        .lines()
        .filter(|l| !l.contains(" -revoke "))
        .collect();
    let revoke: Vec<&str> = script
        .lines()
        .filter(|l| l.contains(" -revoke ") || l.contains(" -gencrl "))
        .collect();
    assert_eq!(revoke.len(), 2, "{script}");
    let dir = tempfile::Builder::new()
        .prefix("regent-readme-pki-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().to_path_buf();
    let sh = |lines: &[&str]| {
        let mut c = Command::new("sh");
        c.args(["-ec", &lines.join("\n")]).current_dir(&path);
        let o = run(c);
        assert!(o.status.success(), "{lines:?}: {}", stderr(&o));
    };
    sh(&make);
    let pki = Pki {
        path: path.clone(),
        _dir: dir,
    };
    let (d, port) = start(&pki, "");
    let ca = pki.file("ca.crt");
    let ask = || {
        python_to(
            "regent.example.org",
            &pki,
            &ca,
            port,
            Some("panel"),
            "",
            &request("who"),
        )
    };
    let answer = ask();
    assert!(answer.contains(r#""data":"client panel""#), "{answer}");
    // `openssl ca -revoke`, `-gencrl`, then a reload: refused at the handshake.
    sh(&revoke);
    crate::reload::hup(&d, crate::reload::RELOADED);
    let answer = ask();
    assert!(
        answer.starts_with("REFUSED") && answer.to_lowercase().contains("revoked"),
        "{answer}"
    );
}

/// A connection outliving its client's certificate is closed at its next
/// request, unanswered (the handshake checked the validity once).
#[test]
fn a_connection_whose_certificate_expires_is_closed_at_its_next_request() {
    let pki = Pki::new();
    // A client certificate valid for a few more seconds.
    let end = std::time::SystemTime::now() + Duration::from_secs(4);
    let mut c = Command::new("sh");
    c.current_dir(&pki.path).args([
        "-c",
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -keyout brief.key -out brief.csr -subj /CN=panel 2>/dev/null && \
         openssl ca -batch -notext -config ca.cnf -extensions client_ext \
           -in brief.csr -out brief.crt -enddate \"$1\" 2>/dev/null && chmod 600 brief.key",
        "sh",
        &openssl_time(end),
    ]);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let (d, port) = start(&pki, "");
    let client = panel_answered(&pki, port, "brief");
    closed_after(&d, client, end);
}

/// Once `end` has passed, `client`'s next request is not answered and its
/// connection is closed as expired.
fn closed_after(d: &Daemon, mut client: regent::client::Connection, end: std::time::SystemTime) {
    while std::time::SystemTime::now() < end + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        client.call("who", serde_json::Value::Null).is_err(),
        "an expired client's connection still answered"
    );
    assert!(
        d.log_shows("closing a TLS connection whose certificate has expired"),
        "{}",
        d.log_text()
    );
}

/// An intermediate CA (`sub.crt`, issued by the test CA with `args`, such as
/// `-enddate`) and a client "panel" it issued (`subpanel.crt`: its
/// certificate then the intermediate's, as the client presents them); the
/// intermediate's CRL is added to `crl.pem` (every CA of a chain needs one).
const MKSUB: &str = r#"set -eu
cat >> ca.cnf <<'CNF'
[ subca_ext ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout sub.key -out sub.csr -subj "/CN=Regent Test Sub CA" 2>/dev/null
openssl ca -batch -notext -config ca.cnf -extensions subca_ext -in sub.csr -out sub.crt "$@" 2>/dev/null
mkdir -p subdb/newcerts; : > subdb/index.txt; echo 2000 > subdb/serial; echo 2000 > subdb/crlnumber
sed -e 's|^dir = ./db$|dir = ./subdb|' -e 's|^certificate = ./ca.crt$|certificate = ./sub.crt|' \
  -e 's|^private_key = ./ca.key$|private_key = ./sub.key|' ca.cnf > sub.cnf
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout subpanel.key -out subpanel.csr -subj /CN=panel 2>/dev/null
openssl ca -batch -notext -config sub.cnf -extensions client_ext -in subpanel.csr -out subpanel.leaf 2>/dev/null
cat subpanel.leaf sub.crt > subpanel.crt
openssl ca -batch -config sub.cnf -gencrl -crlexts crl_ext -out sub-crl.pem 2>/dev/null
cat sub-crl.pem >> crl.pem
chmod 600 sub.key subpanel.key
"#;

/// [`MKSUB`] in `pki` with `args`; then the daemon and a connection of client
/// "panel" (issued by the intermediate) that has been answered once.
fn through_an_intermediate(pki: &Pki, args: &[&str]) -> (Daemon, regent::client::Connection) {
    let mut c = Command::new("sh");
    c.current_dir(&pki.path)
        .args(["-c", MKSUB, "mksub"])
        .args(args);
    let o = run(c);
    assert!(o.status.success(), "mksub: {}", stderr(&o));
    let (d, port) = start(pki, "");
    let client = panel_answered(pki, port, "subpanel");
    (d, client)
}

/// A connection with `NAME.crt` and `NAME.key` (a certificate of client
/// "panel"), answered once.
fn panel_answered(pki: &Pki, port: u16, name: &str) -> regent::client::Connection {
    use regent::client::{Client, Outcome};
    let mut client = Client::tls(
        &format!("localhost:{port}"),
        Path::new(&pki.file(&format!("{name}.crt"))),
        Path::new(&pki.file(&format!("{name}.key"))),
        Path::new(&pki.file("ca.crt")),
    )
    .unwrap()
    .secret(SECRET)
    .connect()
    .unwrap();
    assert_eq!(
        client.call("who", serde_json::Value::Null).unwrap(),
        Outcome::Done(serde_json::json!("client panel"))
    );
    client
}

/// Regression: only the client's own certificate was checked after the
/// handshake; a connection outlived the intermediate CA that chained it to
/// `client_ca` (a new handshake fails once it has expired).
#[test]
fn a_connection_whose_intermediate_ca_expires_is_closed_at_its_next_request() {
    let pki = Pki::new();
    let end = std::time::SystemTime::now() + Duration::from_secs(4);
    let (d, client) = through_an_intermediate(&pki, &["-enddate", &openssl_time(end)]);
    closed_after(&d, client, end);
}

/// Regression: only the client's own certificate was looked up in a reloaded
/// CRL; a connection outlived the revocation of the intermediate CA that
/// chained it to `client_ca` (a new handshake is refused).
#[test]
fn a_connection_whose_intermediate_ca_is_revoked_is_closed_after_the_reload() {
    let pki = Pki::new();
    let (d, mut client) = through_an_intermediate(&pki, &[]);
    let mut c = Command::new("sh");
    c.current_dir(&pki.path).args([
        "-c",
        "set -eu; openssl ca -batch -config ca.cnf -revoke sub.crt -crl_reason cACompromise 2>/dev/null; \
         openssl ca -batch -config ca.cnf -gencrl -crlexts crl_ext -out root-crl.pem 2>/dev/null; \
         cat root-crl.pem sub-crl.pem > crl.pem",
    ]);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    crate::reload::hup(&d, crate::reload::RELOADED);
    assert!(
        client.call("who", serde_json::Value::Null).is_err(),
        "a connection whose intermediate CA was revoked still answered"
    );
    assert!(
        d.log_shows("closing a TLS connection whose certificate the reloaded CRL revokes"),
        "{}",
        d.log_text()
    );
}

/// `YYYYMMDDHHMMSSZ`, as `openssl ca -enddate` takes it.
fn openssl_time(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let o = run({
        let mut c = Command::new("date");
        c.args(["-u", "-d", &format!("@{secs}"), "+%Y%m%d%H%M%SZ"]);
        c
    });
    stdout(&o).trim().to_string()
}
