//! `regent tls init|issue|revoke` checked by peers that are not ours: `openssl
//! verify` and `openssl crl` read what it makes, and an `openssl s_server` that
//! requires a client certificate and checks the CRL accepts a freshly issued
//! client and refuses it once revoked.

use crate::util::{code, regent, run, stderr, stdout, wait_timeout};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `regent tls ARGS`.
fn tls(args: &[&str]) -> Output {
    let mut c = Command::new(regent());
    c.arg("tls").args(args);
    run(c)
}

/// `openssl ARGS`, its stdout and stderr together, and whether it succeeded.
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh lab: `regent tls init DIR/lab --name localhost --name 127.0.0.1`.
fn lab() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::Builder::new()
        .prefix("regent-tls-")
        .tempdir()
        .unwrap();
    let lab = top.path().join("lab");
    let out = tls(&[
        "init",
        s(&lab),
        "--name",
        "localhost",
        "--name",
        "127.0.0.1",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    (top, lab)
}

/// `regent tls issue NAME LAB`; returns the serial it printed.
fn issue(lab: &Path, name: &str) -> String {
    let out = tls(&["issue", name, s(lab)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let serial = text
        .split_whitespace()
        .skip_while(|w| *w != "serial")
        .nth(1)
        .unwrap_or_else(|| panic!("no serial in {text}"))
        .to_string();
    assert!(!text.contains("PRIVATE KEY"), "a key was printed: {text}");
    serial
}

fn serial_of(cert: &Path) -> String {
    let (ok, out) = openssl(&["x509", "-in", s(cert), "-noout", "-serial"]);
    assert!(ok, "{out}");
    out.trim().strip_prefix("serial=").unwrap().to_string()
}

/// `openssl crl -verify -text` of the lab's CRL, asserting that the CA signed it.
fn verified_crl(lab: &Path) -> String {
    let (ok, out) = openssl(&[
        "crl",
        "-in",
        s(&lab.join("crl.pem")),
        "-CAfile",
        s(&lab.join("ca.crt")),
        "-noout",
        "-verify",
        "-text",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    out
}

#[test]
fn init_makes_a_ca_and_a_server_certificate_with_the_right_modes() {
    let (_top, lab) = lab();
    assert_eq!(mode(&lab), 0o700);
    for key in ["ca.key", "server.key"] {
        assert_eq!(mode(&lab.join(key)), 0o600, "{key}");
    }
    for cert in ["ca.crt", "server.crt", "crl.pem"] {
        assert_eq!(mode(&lab.join(cert)), 0o644, "{cert}");
    }
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        s(&lab.join("ca.crt")),
        s(&lab.join("server.crt")),
    ]);
    assert!(ok && out.contains("server.crt: OK"), "{out}");
    let (ok, out) = openssl(&[
        "x509",
        "-in",
        s(&lab.join("server.crt")),
        "-noout",
        "-ext",
        "subjectAltName,extendedKeyUsage",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("DNS:localhost"), "{out}");
    assert!(out.contains("IP Address:127.0.0.1"), "{out}");
    assert!(out.contains("TLS Web Server Authentication"), "{out}");
    // The CA can sign certificates and CRLs.
    let (ok, out) = openssl(&["x509", "-in", s(&lab.join("ca.crt")), "-noout", "-text"]);
    assert!(
        ok && out.contains("CA:TRUE") && out.contains("CRL Sign"),
        "{out}"
    );
    // The first CRL is the CA's and lists nothing.
    let out = verified_crl(&lab);
    assert!(out.contains("No Revoked Certificates"), "{out}");
}

#[test]
fn a_second_init_refuses_and_leaves_the_files_alone() {
    let (_top, lab) = lab();
    let before: Vec<Vec<u8>> = ["ca.crt", "ca.key", "server.key"]
        .iter()
        .map(|f| std::fs::read(lab.join(f)).unwrap())
        .collect();
    let out = tls(&["init", s(&lab)]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("never overwrites"),
        "{}",
        stderr(&out)
    );
    let after: Vec<Vec<u8>> = ["ca.crt", "ca.key", "server.key"]
        .iter()
        .map(|f| std::fs::read(lab.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn init_refuses_a_directory_others_can_enter() {
    let top = tempfile::tempdir().unwrap();
    let open = top.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tls(&["init", s(&open)]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("open to others"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}

#[test]
fn issue_makes_a_client_certificate_named_by_its_dns_san_and_cn() {
    let (_top, lab) = lab();
    let serial = issue(&lab, "panel");
    let cert = lab.join("clients/panel.crt");
    let key = lab.join("clients/panel.key");
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&lab.join("clients")), 0o700);
    assert_eq!(
        serial,
        serial_of(&cert),
        "the printed serial is the certificate's"
    );
    let (ok, out) = openssl(&["verify", "-CAfile", s(&lab.join("ca.crt")), s(&cert)]);
    assert!(ok && out.contains("panel.crt: OK"), "{out}");
    let (ok, out) = openssl(&[
        "x509",
        "-in",
        s(&cert),
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName,extendedKeyUsage",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("CN = panel"), "{out}");
    assert!(out.contains("DNS:panel"), "{out}");
    assert!(out.contains("TLS Web Client Authentication"), "{out}");
    // The key is the certificate's.
    let (_, a) = openssl(&["x509", "-in", s(&cert), "-noout", "-pubkey"]);
    let (_, b) = openssl(&["pkey", "-in", s(&key), "-pubout"]);
    assert!(a.contains("PUBLIC KEY") && a == b, "{a}\n{b}");
    // Serials are random.
    assert_ne!(issue(&lab, "panel2"), serial);
    // The same name again is refused, the files kept.
    let out = tls(&["issue", "panel", s(&lab)]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    assert_eq!(serial_of(&cert), serial);
}

#[test]
fn a_bad_client_name_is_refused_clearly() {
    let (_top, lab) = lab();
    let long = "a".repeat(65);
    for bad in ["a b", "../x", ".x", "-x", "é", "a/b", "x;y", ""] {
        let out = tls(&["issue", "--", bad, s(&lab)]);
        assert_eq!(code(&out), 4, "{bad:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is not a client name"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    let out = tls(&["issue", &long, s(&lab)]);
    assert_eq!(code(&out), 4);
    assert!(stderr(&out).contains("too long"), "{}", stderr(&out));
    assert!(!lab.join("clients").exists(), "nothing was written");
    // The longest allowed name, with every allowed character, is issued.
    let ok = format!("A9._@-{}", "z".repeat(58));
    issue(&lab, &ok);
}

#[test]
fn revoke_adds_to_a_crl_signed_by_the_ca_keeping_earlier_revocations() {
    let (_top, lab) = lab();
    let first = issue(&lab, "first");
    let second = issue(&lab, "second");
    let crl_text = || verified_crl(&lab);
    let out = tls(&["revoke", &first, s(&lab)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("clients/first.crt"),
        "{}",
        stdout(&out)
    );
    let text = crl_text();
    assert!(text.contains(&format!("Serial Number: {first}")), "{text}");
    assert!(!text.contains(&second), "{text}");
    assert_eq!(mode(&lab.join("crl.pem")), 0o644);

    // Colons and lower case are accepted; the first revocation stays.
    let colons: Vec<String> = second
        .to_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let out = tls(&["revoke", &colons.join(":"), s(&lab)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = crl_text();
    assert!(text.contains(&format!("Serial Number: {first}")), "{text}");
    assert!(text.contains(&format!("Serial Number: {second}")), "{text}");
    let number = text
        .lines()
        .skip_while(|l| !l.contains("CRL Number"))
        .nth(1)
        .map(str::trim);
    assert_eq!(
        number,
        Some("3"),
        "init wrote 1, each revocation adds one: {text}"
    );

    // Revoking again changes nothing; a serial that is not hex is refused.
    let before = std::fs::read(lab.join("crl.pem")).unwrap();
    let out = tls(&["revoke", &first, s(&lab)]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("revoked already"), "{}", stdout(&out));
    assert_eq!(std::fs::read(lab.join("crl.pem")).unwrap(), before);
    let out = tls(&["revoke", "not-hex", s(&lab)]);
    assert_eq!(code(&out), 4);
    assert!(
        stderr(&out).contains("is not a serial number"),
        "{}",
        stderr(&out)
    );
}

/// Run `openssl s_server` (client certificate required and checked against the
/// lab's CA and CRL, TLS 1.3, echoing lines reversed) for one connection, and
/// connect `openssl s_client` with `client`'s certificate; returns the reply to
/// `ping` (if any) and what the server printed.
fn serve_once(lab: &Path, client: &str) -> (Option<String>, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = lab.parent().unwrap().join(format!("s_server-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let f = |name: &str| lab.join(name).to_str().unwrap().to_string();
    let mut server = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-naccept", "1", "-tls1_3", "-rev"])
        .args(["-cert", &f("server.crt"), "-key", &f("server.key")])
        .args([
            "-CAfile",
            &f("ca.crt"),
            "-Verify",
            "1",
            "-verify_return_error",
        ])
        .args(["-crl_check", "-CRL", &f("crl.pem")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("openssl s_server");
    let server_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let t = Instant::now();
    while !server_log().contains("ACCEPT") {
        if let Some(st) = server.try_wait().unwrap() {
            panic!("s_server exited with {st}: {}", server_log());
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{}", server_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client_proc = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args(["-CAfile", &f("ca.crt"), "-verify_return_error", "-quiet"])
        .args(["-cert", &f(&format!("clients/{client}.crt"))])
        .args(["-key", &f(&format!("clients/{client}.key"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let _ = client_proc.stdin.as_mut().unwrap().write_all(b"ping\n");
    let (tx, rx) = mpsc::channel();
    let out = client_proc.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let reply = rx.recv_timeout(Duration::from_secs(10)).ok();
    let _ = client_proc.kill();
    let _ = client_proc.wait();
    wait_timeout(&mut server, Duration::from_secs(10));
    (reply, server_log())
}

#[test]
fn a_tls_server_checking_the_crl_accepts_a_new_client_and_refuses_it_once_revoked() {
    let (_top, lab) = lab();
    let serial = issue(&lab, "panel");
    let (reply, log) = serve_once(&lab, "panel");
    assert_eq!(reply.as_deref(), Some("gnip"), "server said: {log}");
    assert!(log.contains("Verification: OK"), "{log}");

    let out = tls(&["revoke", &serial, s(&lab)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (reply, log) = serve_once(&lab, "panel");
    assert_eq!(
        reply, None,
        "a revoked client got an answer; server said: {log}"
    );
    assert!(log.contains("certificate revoked"), "{log}");

    // Another client of the same CA is still accepted.
    issue(&lab, "other");
    let (reply, log) = serve_once(&lab, "other");
    assert_eq!(reply.as_deref(), Some("gnip"), "server said: {log}");
}
