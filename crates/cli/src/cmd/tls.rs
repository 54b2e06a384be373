//! `regent tls init|issue|revoke`: certificates for a lab or a test. A CA, a
//! server certificate, client certificates and a revocation list, in one
//! directory; production uses its own PKI (the README shows the openssl commands
//! that make the same files).
//!
//! The directory (0700) holds `ca.crt`, `ca.key`, `server.crt`, `server.key`,
//! `crl.pem` and `clients/NAME.crt`, `clients/NAME.key`: private keys 0600,
//! certificates and the CRL 0644; nothing is ever overwritten but the CRL, which
//! is replaced atomically. Keys are ECDSA P-256 made by rcgen on ring and never
//! printed; a key pair (rcgen zeroizes its PKCS#8 copy) and its PEM text are held
//! in `Zeroizing` wrappers, cleared when dropped.
//!
//! A client certificate names its client in its first DNS SAN and its subject CN
//! (both `NAME`, which must be a valid client name: `[A-Za-z0-9][A-Za-z0-9._@-]*`,
//! at most 64 characters), has the `clientAuth` extended key usage and a random
//! 16-byte serial, printed in hex as `openssl x509 -serial` shows it.

use crate::exit;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::revocation_list::CertificateRevocationList;
use zeroize::Zeroizing;

/// The CA certificate (give it to clients as `--ca` and to the server as `client_ca`).
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The server certificate.
pub const SERVER_CERT: &str = "server.crt";
/// The server's private key.
pub const SERVER_KEY: &str = "server.key";
/// The revocation list.
pub const CRL: &str = "crl.pem";
/// The subdirectory of client certificates and keys.
pub const CLIENTS: &str = "clients";

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;
/// The CA is valid this long; the CRL's next update is the CA's expiry.
const CA_DAYS: i64 = 3650;
/// Certificates start this long before they are made (clocks differ a little).
const BACKDATE: Duration = Duration::minutes(5);
/// The longest client name (as the server accepts it).
pub const MAX_CLIENT_NAME: usize = regent::model::principal::MAX_CLIENT_NAME;
/// Random serial bytes (RFC 5280 allows up to 20).
const SERIAL_BYTES: usize = 16;

/// `regent tls`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Make a CA and a server certificate with its key in DIR (made 0700 if new;
    /// an existing one must be closed to others), and an empty revocation list.
    Init {
        /// The directory.
        dir: PathBuf,
        /// A DNS name or IP address the server is reached by (repeat for several;
        /// the first is also its CN). Default: localhost, 127.0.0.1 and ::1.
        #[arg(long = "name", value_name = "DNS_OR_IP")]
        names: Vec<String>,
        /// Days the server certificate is valid (the CA: ten years).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
    /// Issue a client certificate named NAME (its DNS SAN and CN) from DIR's CA,
    /// into DIR/clients/NAME.crt and NAME.key; print its serial.
    Issue {
        /// The client's name, as policy lists it (`allow = { clients = [NAME] }`).
        name: String,
        /// The directory made by `regent tls init`.
        dir: PathBuf,
        /// Days the certificate is valid (at most until the CA expires).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
    /// Revoke a certificate by its serial (hex, as `issue` or `openssl x509
    /// -serial` prints it): add it to DIR/crl.pem, signed by the CA, keeping the
    /// earlier revocations.
    Revoke {
        /// The serial number in hex (colons allowed).
        serial: String,
        /// The directory made by `regent tls init`.
        dir: PathBuf,
    },
}

/// A failure, with the exit status it maps to.
struct Failure {
    message: String,
    status: u8,
}

impl Failure {
    fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status: exit::INVALID,
        }
    }

    fn other(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status: exit::OTHER,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::other(message)
    }
}

/// Run `regent tls ...`.
pub fn run(cmd: Command) -> ExitCode {
    let result = match cmd {
        Command::Init { dir, names, days } => init(&dir, &names, days),
        Command::Issue { name, dir, days } => issue(&name, &dir, days),
        Command::Revoke { serial, dir } => revoke(&serial, &dir),
    };
    match result {
        Ok(()) => exit::code(exit::OK),
        Err(f) => super::call::fail(f.message, f.status),
    }
}

// ---------------------------------------------------------------------------
// Names and serials

/// Check a client name: `[A-Za-z0-9][A-Za-z0-9._@-]*`, at most 64 characters.
pub fn check_client_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_CLIENT_NAME {
        return Err(format!(
            "client name \"{}\" is too long: at most {MAX_CLIENT_NAME} characters",
            crate::out::escape_line(name)
        ));
    }
    // The rule the server applies to a certificate's name.
    if !regent::model::principal::valid_client_name(name) {
        return Err(format!(
            "\"{}\" is not a client name: a letter or digit, then letters, digits, '.', '_', '@' or '-'",
            crate::out::escape_line(name)
        ));
    }
    Ok(())
}

/// Check a server name: an IP address, or a DNS name (labels of letters,
/// digits and inner hyphens, at most 253 characters).
fn check_server_name(name: &str) -> Result<(), String> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is neither an IP address nor a DNS name",
            crate::out::escape_line(name)
        ))
    }
}

/// A new random serial: 16 bytes whose first is 0x01..=0x7f, so that it is
/// positive, has no leading zero byte and reads the same in hex everywhere.
fn new_serial() -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; SERIAL_BYTES];
    loop {
        regent::auth::random::fill(&mut b).map_err(|e| format!("random serial: {e}"))?;
        b[0] &= 0x7f;
        if b[0] != 0 {
            return Ok(b);
        }
    }
}

/// Upper-case hex, as `openssl x509 -serial` prints it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A serial's magnitude: leading zero bytes (DER's sign padding) dropped.
fn magnitude(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Parse a serial in hex (`3A5F...`, `3a:5f:...`, `0x3a5f...`) into its magnitude.
fn parse_serial(text: &str) -> Result<Vec<u8>, String> {
    let refuse = || {
        format!(
            "\"{}\" is not a serial number: give it in hex, as `regent tls issue` printed it",
            crate::out::escape_line(text)
        )
    };
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = t.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(refuse());
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    let bytes: Vec<u8> = (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| refuse())?;
    let m = magnitude(&bytes).to_vec();
    if m.is_empty() || m.len() > 20 {
        return Err(refuse());
    }
    Ok(m)
}

// ---------------------------------------------------------------------------
// Files

/// Files created so far by one command, removed again if it fails half-way.
#[derive(Default)]
struct Created(Vec<PathBuf>);

impl Created {
    /// Create `path` (never replacing anything: not even a symlink) with exactly
    /// `mode`, whatever the umask, and write `contents`.
    fn file(&mut self, path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    format!("{} exists already: not overwriting it", path.display())
                }
                _ => format!("creating {}: {e}", path.display()),
            })?;
        self.0.push(path.to_path_buf());
        f.set_permissions(Permissions::from_mode(mode))
            .and_then(|()| f.write_all(contents))
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Keep what was created.
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Make `dir` (and its parents) 0700, or accept an existing directory that only
/// its owner can enter.
fn private_dir(dir: &Path) -> Result<(), String> {
    match DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) => return Err(format!("creating {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is open to others (mode {mode:04o}): it will hold private keys; \
             `chmod 0700` it or name a new directory",
            dir.display()
        ));
    }
    Ok(())
}

/// Read a private key, refusing one others may read.
fn read_key(path: &Path) -> Result<Zeroizing<KeyPair>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{} may be read by others (mode {:04o}): `chmod 0600` it first",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    let pem = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    );
    KeyPair::from_pem(&pem)
        .map(Zeroizing::new)
        .map_err(|e| format!("{}: not a private key rcgen reads: {e}", path.display()))
}

/// The DER of the first PEM block labelled `label` in `path`.
fn read_pem(path: &Path, label: &str) -> Result<Vec<u8>, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text)
        .map_err(|_| format!("{}: no PEM block", path.display()))?;
    if pem.label != label {
        return Err(format!(
            "{}: a {} where a {label} was expected",
            path.display(),
            pem.label
        ));
    }
    Ok(pem.contents)
}

fn parse_cert<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("{}: not a certificate: {e}", path.display()))
}

fn from_timestamp(secs: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| format!("a date out of range: {e}"))
}

// ---------------------------------------------------------------------------
// The CA

/// DIR's CA: its key, its certificate's DER and its expiry.
struct Ca {
    key: Zeroizing<KeyPair>,
    cert_der: Vec<u8>,
    not_after: OffsetDateTime,
}

impl Ca {
    /// Load `dir/ca.crt` and `dir/ca.key`, checking that they belong together.
    fn load(dir: &Path) -> Result<Ca, String> {
        let cert_path = dir.join(CA_CERT);
        let key = read_key(&dir.join(CA_KEY))?;
        let cert_der = read_pem(&cert_path, "CERTIFICATE")?;
        let cert = parse_cert(&cert_der, &cert_path)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(format!(
                "{} and {} do not belong together (different public keys)",
                cert_path.display(),
                dir.join(CA_KEY).display()
            ));
        }
        if !cert.is_ca() {
            return Err(format!("{} is not a CA certificate", cert_path.display()));
        }
        let not_after = from_timestamp(cert.validity().not_after.timestamp())?;
        drop(cert);
        Ok(Ca {
            key,
            cert_der,
            not_after,
        })
    }

    /// The issuer to sign with (borrowing the key).
    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, String> {
        Issuer::from_ca_cert_der(&self.cert_der.clone().into(), &*self.key)
            .map_err(|e| format!("{CA_CERT}: {e}"))
    }

    fn cert(&self) -> Result<X509Certificate<'_>, String> {
        parse_cert(&self.cert_der, Path::new(CA_CERT))
    }
}

/// A new CA's parameters: a CN with a random tag (so two labs' CAs differ),
/// path length 0, signing certificates and CRLs.
fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Regent");
    dn.push(
        DnType::CommonName,
        format!("Regent lab CA {}", &hex(&new_serial()?)[..8]),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.serial_number = Some(SerialNumber::from_slice(&new_serial()?));
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(CA_DAYS);
    p.key_identifier_method = KeyIdMethod::Sha256;
    Ok(p)
}

/// An end-entity certificate's parameters: SANs, CN, one extended key usage, a
/// random serial, valid from now (backdated a little) to `not_after`.
fn leaf_params(
    sans: &[String],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(CertificateParams, Vec<u8>), String> {
    let mut p = CertificateParams::new(sans.to_vec()).map_err(|e| format!("{cn}: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![usage];
    p.use_authority_key_identifier_extension = true;
    let serial = new_serial()?;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.not_before = now - BACKDATE;
    p.not_after = not_after;
    Ok((p, serial))
}

/// A new key pair, its PEM in a zeroized buffer.
fn new_key() -> Result<(Zeroizing<KeyPair>, Zeroizing<String>), String> {
    let key = Zeroizing::new(KeyPair::generate().map_err(|e| format!("generating a key: {e}"))?);
    let pem = Zeroizing::new(key.serialize_pem());
    Ok((key, pem))
}

/// A signed CRL listing `revoked`, number `number`, valid until the CA expires.
fn crl_pem(
    ca: &Issuer<'_, impl rcgen::SigningKey>,
    ca_not_after: OffsetDateTime,
    number: &[u8],
    revoked: Vec<RevokedCertParams>,
    now: OffsetDateTime,
) -> Result<String, String> {
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: ca_not_after.max(now + Duration::days(1)),
        crl_number: SerialNumber::from_slice(number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(ca)
        .and_then(|crl| crl.pem())
        .map_err(|e| format!("signing the CRL: {e}"))
}

// ---------------------------------------------------------------------------
// The commands

fn init(dir: &Path, names: &[String], days: u32) -> Result<(), Failure> {
    let mut sans: Vec<String> = Vec::new();
    let given: Vec<String> = if names.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        names.to_vec()
    };
    for n in given {
        check_server_name(&n).map_err(Failure::invalid)?;
        if !sans.contains(&n) {
            sans.push(n);
        }
    }
    let targets = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, CRL];
    let existing: Vec<String> = targets
        .iter()
        .map(|t| dir.join(t))
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Failure::other(format!(
            "{} exist(s) already: `regent tls init` never overwrites; use another directory",
            existing.join(", ")
        )));
    }
    private_dir(dir)?;

    let now = OffsetDateTime::now_utc();
    let (ca_key, ca_key_pem) = new_key()?;
    let ca_params = ca_params(now)?;
    let ca_not_after = ca_params.not_after;
    let ca_cert = ca_params
        .self_signed(&*ca_key)
        .map_err(|e| format!("signing the CA certificate: {e}"))?;
    let ca = Issuer::new(ca_params, &*ca_key);

    let (server_key, server_key_pem) = new_key()?;
    let not_after = (now + Duration::days(days.into())).min(ca_not_after);
    let (params, _) = leaf_params(
        &sans,
        &sans[0],
        ExtendedKeyUsagePurpose::ServerAuth,
        now,
        not_after,
    )?;
    let server_cert = params
        .signed_by(&*server_key, &ca)
        .map_err(|e| format!("signing the server certificate: {e}"))?;
    let crl = crl_pem(&ca, ca_not_after, &[1], Vec::new(), now)?;

    let mut created = Created::default();
    created.file(&dir.join(CA_KEY), ca_key_pem.as_bytes(), KEY_MODE)?;
    created.file(&dir.join(CA_CERT), ca_cert.pem().as_bytes(), CERT_MODE)?;
    created.file(&dir.join(SERVER_KEY), server_key_pem.as_bytes(), KEY_MODE)?;
    created.file(
        &dir.join(SERVER_CERT),
        server_cert.pem().as_bytes(),
        CERT_MODE,
    )?;
    created.file(&dir.join(CRL), crl.as_bytes(), CERT_MODE)?;
    created.keep();

    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let d = abs.display();
    println!("made a lab CA and a server certificate in {d} (mode 0700):");
    let files = [
        (
            CA_CERT,
            "the CA certificate: the server's client_ca, the clients' --ca".to_string(),
        ),
        (
            CA_KEY,
            "the CA's private key (0600): keep it here, it signs every certificate".into(),
        ),
        (
            SERVER_CERT,
            format!("the server certificate for {}", sans.join(", ")),
        ),
        (SERVER_KEY, "its private key (0600)".into()),
        (CRL, "the revocation list (none revoked yet)".into()),
    ];
    for (file, what) in files {
        println!("  {file:<11} {what}");
    }
    println!();
    println!("in the daemon's config:");
    println!("  [service.tcp]");
    println!("  listen = [\"0.0.0.0:7443\"]");
    println!("  cert = \"{d}/{SERVER_CERT}\"");
    println!("  key = \"{d}/{SERVER_KEY}\"");
    println!("  client_ca = \"{d}/{CA_CERT}\"");
    println!("  crl = \"{d}/{CRL}\"");
    println!();
    println!("next, a certificate for each client: regent tls issue NAME {d}");
    Ok(())
}

fn issue(name: &str, dir: &Path, days: u32) -> Result<(), Failure> {
    check_client_name(name).map_err(Failure::invalid)?;
    let ca = Ca::load(dir)?;
    let clients = dir.join(CLIENTS);
    let cert_path = clients.join(format!("{name}.crt"));
    let key_path = clients.join(format!("{name}.key"));
    for p in [&cert_path, &key_path] {
        if p.symlink_metadata().is_ok() {
            return Err(Failure::other(format!(
                "{} exists already: a client of that name has a certificate \
                 (revoke it and remove its files, or choose another name)",
                p.display()
            )));
        }
    }
    private_dir(&clients)?;

    let now = OffsetDateTime::now_utc();
    let not_after = (now + Duration::days(days.into())).min(ca.not_after);
    if not_after <= now {
        return Err(Failure::other(format!(
            "the CA in {} has expired: make a new one with `regent tls init`",
            dir.display()
        )));
    }
    let (key, key_pem) = new_key()?;
    let (params, serial) = leaf_params(
        &[name.to_string()],
        name,
        ExtendedKeyUsagePurpose::ClientAuth,
        now,
        not_after,
    )?;
    let cert = params
        .signed_by(&*key, &ca.issuer()?)
        .map_err(|e| format!("signing the certificate: {e}"))?;

    let mut created = Created::default();
    created.file(&key_path, key_pem.as_bytes(), KEY_MODE)?;
    created.file(&cert_path, cert.pem().as_bytes(), CERT_MODE)?;
    created.keep();

    println!(
        "issued a client certificate for {name}, serial {}",
        hex(&serial)
    );
    println!("  certificate: {}", cert_path.display());
    println!(
        "  key:         {} (0600: give it to that client only)",
        key_path.display()
    );
    println!("  valid until {} UTC", not_after.date());
    println!(
        "revoke it with: regent tls revoke {} {}",
        hex(&serial),
        dir.display()
    );
    Ok(())
}

/// The certificates in `dir` (the server's and the clients'), to name the one a
/// serial belongs to.
fn find_by_serial(dir: &Path, serial: &[u8]) -> Option<PathBuf> {
    let mut paths = vec![dir.join(SERVER_CERT)];
    if let Ok(entries) = std::fs::read_dir(dir.join(CLIENTS)) {
        paths.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "crt")),
        );
    }
    paths.into_iter().find(|p| {
        read_pem(p, "CERTIFICATE")
            .ok()
            .and_then(|der| {
                parse_cert(&der, p)
                    .ok()
                    .map(|c| magnitude(c.raw_serial()) == serial)
            })
            .unwrap_or(false)
    })
}

fn reason(code: u8) -> Option<RevocationReason> {
    use RevocationReason::*;
    Some(match code {
        0 => Unspecified,
        1 => KeyCompromise,
        2 => CaCompromise,
        3 => AffiliationChanged,
        4 => Superseded,
        5 => CessationOfOperation,
        6 => CertificateHold,
        8 => RemoveFromCrl,
        9 => PrivilegeWithdrawn,
        10 => AaCompromise,
        _ => return None,
    })
}

/// The revocations of DIR's current CRL (checked to be the CA's) and its number.
fn current_crl(
    path: &Path,
    ca_cert: &X509Certificate<'_>,
) -> Result<(Vec<RevokedCertParams>, Vec<u8>), String> {
    if path.symlink_metadata().is_err() {
        return Ok((Vec::new(), vec![0]));
    }
    let der = read_pem(path, "X509 CRL")?;
    let (_, crl): (_, CertificateRevocationList<'_>) = x509_parser::parse_x509_crl(&der)
        .map_err(|e| format!("{}: not a CRL: {e}", path.display()))?;
    if crl.issuer() != ca_cert.subject() || crl.verify_signature(ca_cert.public_key()).is_err() {
        return Err(format!(
            "{} is not signed by this directory's CA: move it away to start a new one",
            path.display()
        ));
    }
    let mut revoked = Vec::new();
    for r in crl.iter_revoked_certificates() {
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(magnitude(r.raw_serial())),
            revocation_time: from_timestamp(r.revocation_date.timestamp())?,
            reason_code: r.reason_code().and_then(|(_, c)| reason(c.0)),
            invalidity_date: match r.invalidity_date() {
                Some((_, t)) => Some(from_timestamp(t.timestamp())?),
                None => None,
            },
        });
    }
    let number = crl
        .crl_number()
        .map(|n| n.to_bytes_be())
        .unwrap_or_else(|| vec![0]);
    Ok((revoked, number))
}

/// A big-endian number in decimal when it fits in 128 bits, else in hex.
fn decimal(number: &[u8]) -> String {
    let n = magnitude(number);
    if n.len() > 16 {
        return format!("0x{}", hex(n));
    }
    n.iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
        .to_string()
}

/// `number + 1`, big-endian.
fn next_number(number: &[u8]) -> Vec<u8> {
    let mut n = number.to_vec();
    for b in n.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            return n;
        }
    }
    n.insert(0, 1);
    n
}

fn revoke(serial_text: &str, dir: &Path) -> Result<(), Failure> {
    let serial = parse_serial(serial_text).map_err(Failure::invalid)?;
    let ca = Ca::load(dir)?;
    let ca_cert = ca.cert()?;
    let path = dir.join(CRL);
    let (mut revoked, number) = current_crl(&path, &ca_cert)?;
    if let Some(r) = revoked
        .iter()
        .find(|r| r.serial_number.to_bytes() == serial)
    {
        println!(
            "{} was revoked already (on {} UTC); {} is unchanged",
            hex(&serial),
            r.revocation_time.date(),
            path.display()
        );
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    revoked.push(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&serial),
        revocation_time: now,
        reason_code: None,
        invalidity_date: None,
    });
    let count = revoked.len();
    let number = next_number(&number);
    let pem = crl_pem(&ca.issuer()?, ca.not_after, &number, revoked, now)?;

    // Replace the CRL atomically: a server reloading it never reads half a file.
    let tmp = dir.join(format!(".{CRL}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut created = Created::default();
    created.file(&tmp, pem.as_bytes(), CERT_MODE)?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("replacing {}: {e}", path.display()))?;
    created.keep();

    let whose = match find_by_serial(dir, &serial) {
        Some(p) => format!(" ({})", p.display()),
        None => {
            eprintln!(
                "regent: warning: no certificate in {} has serial {}; revoked anyway \
                 (check the serial if you meant one issued here)",
                dir.display(),
                hex(&serial)
            );
            String::new()
        }
    };
    println!("revoked {}{whose}", hex(&serial));
    println!(
        "{} now lists {count} revoked certificate{} (CRL number {}); a server reads it \
         as its `crl` when it starts or reloads",
        path.display(),
        if count == 1 { "" } else { "s" },
        decimal(&number)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_follow_the_servers_rule() {
        for ok in ["panel", "a", "host-1.example", "svc_backup@site", "9lives"] {
            assert!(check_client_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(MAX_CLIENT_NAME + 1);
        for bad in ["", "-x", ".hidden", "a b", "a/b", "é", "x\n", &long] {
            assert!(check_client_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_client_name(&"a".repeat(MAX_CLIENT_NAME)).is_ok());
    }

    #[test]
    fn server_names_are_dns_names_or_addresses() {
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "regent.example.org",
            "a-b.c",
        ] {
            assert!(check_server_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a.b", "a..b", "a_b", "*.example.org", "x y"] {
            assert!(check_server_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serials_parse_as_printed() {
        assert_eq!(parse_serial("3A5F").unwrap(), vec![0x3a, 0x5f]);
        assert_eq!(parse_serial("3a:5f").unwrap(), vec![0x3a, 0x5f]);
        assert_eq!(parse_serial("0x00A1").unwrap(), vec![0xa1]);
        assert_eq!(parse_serial("abc").unwrap(), vec![0x0a, 0xbc]);
        for bad in ["", "0", "00", "xyz", "12 34", &"11".repeat(21)] {
            assert!(parse_serial(bad).is_err(), "{bad:?}");
        }
        let s = new_serial().unwrap();
        assert_eq!(s.len(), SERIAL_BYTES);
        assert!((1..=0x7f).contains(&s[0]));
        assert_eq!(parse_serial(&hex(&s)).unwrap(), s);
    }

    #[test]
    fn crl_numbers_count_up() {
        assert_eq!(next_number(&[0]), vec![1]);
        assert_eq!(next_number(&[1, 0xff]), vec![2, 0]);
        assert_eq!(next_number(&[0xff]), vec![1, 0]);
        assert_eq!(decimal(&[1, 0]), "256");
    }
}
