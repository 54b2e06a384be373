//! The second transport: TCP with mutual TLS, served by the same connection code
//! and [`pipeline`](super::pipeline) as the Unix socket.
//!
//! - rustls with the *ring* provider, given explicitly; TLS 1.3 only (no 1.2, no
//!   anonymous fallback). Every client must present a certificate that chains to
//!   `client_ca` and is not revoked by `crl` (rustls' `WebPkiClientVerifier`).
//! - The client is named by its certificate ([`client_identity`]): the first valid
//!   DNS name of its subjectAltName, else its first URI, else the subject's
//!   commonName. A name outside `[A-Za-z0-9][A-Za-z0-9._@-]*` (at most 64 bytes)
//!   fails the handshake (alert `access_denied`). The caller is then a
//!   [`Principal::tls`](regent_model::Principal::tls): its name, the certificate's
//!   serial (hex) and its address; no Unix account.
//! - Bounds: a handshake must finish within `handshake_timeout`; at most
//!   [`MAX_HANDSHAKES_PER_ADDRESS`] handshakes run at once per source address
//!   (before any identity is known); at most `max_connections` TLS connections in
//!   all, and `max_connections_per_uid` per client name; beyond either, `busy`.
//! - The server ends every connection with `close_notify`.
//! - A reload swaps the material (`TlsMaterial`: certificate, key, client CAs,
//!   CRLs, handshake timeout) for new handshakes; the listeners and bounds
//!   (`TlsTransport`) stay.

use super::connection;
use super::reload::Current;
use super::{Counted, SocketEntry};
use crate::error::Error;
use crate::identity::Caller;
use regent_model::{valid_client_name, CallerKey};
use regent_proto::{ErrorCode, Response};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

/// Handshakes one source address may have in progress at once.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 8;

/// How long the server waits to send its `close_notify` and the last answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `[service.tcp]` declares: the config's declaration, used as it is.
pub use regent_config::TcpDecl as TlsOptions;

/// The TLS transport's fixed part: what was bound and sized at start (a
/// restart changes it), and the counts that outlive a reload.
pub(crate) struct TlsTransport {
    pub(crate) listen: Vec<SocketAddr>,
    slots: Arc<Semaphore>,
    handshakes: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client: Arc<Mutex<HashMap<CallerKey, usize>>>,
}

/// The TLS material a reload replaces ([`super::Reloader`]): the server's
/// certificate and key, the client CAs, the CRLs and the handshake timeout. It
/// lives in the configuration snapshot, so a new handshake uses the material
/// current when it starts; an established connection keeps its session, but is
/// closed at its next request once a reloaded CRL lists its serial
/// ([`TlsMaterial::revokes`]).
pub(crate) struct TlsMaterial {
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    /// What the CRLs in `crl` revoke: each CRL's issuer with a serial it lists.
    revoked: HashSet<Revoked>,
}

/// A certificate as a CRL names it: its issuer's distinguished name (DER, as
/// webpki compares a CRL's with a certificate's) and its serial (upper-case
/// hex, as [`client_identity`] gives it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Revoked {
    issuer: Vec<u8>,
    serial: String,
}

impl Revoked {
    /// The end-entity certificate's issuer and serial, if it parses.
    fn of(cert: &CertificateDer<'_>) -> Option<Revoked> {
        let ee = webpki::EndEntityCert::try_from(cert).ok()?;
        Some(Revoked {
            issuer: ee.issuer().to_vec(),
            serial: serial_hex(ee.serial()),
        })
    }
}

fn config_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("[service.tcp] {what} {}: {e}", path.display()))
}

/// Open a TLS file (certificate, key, client CAs, CRLs), refusing one that a
/// user other than root and the service's own could change: the file (checked
/// on the descriptor it is read from) must be owned by one of them and not
/// writable by group or others, and its path must pass [`crate::trust`]'s
/// check and lead to the file opened: every entry met on the way (symlinks
/// included) owned by one of them, every directory looked into writable by no
/// one else unless sticky (as `/tmp`, where others cannot replace an entry
/// they do not own).
/// Whoever could replace `client_ca` or `crl` could let in any client.
fn open_trusted(what: &str, path: &Path) -> Result<std::fs::File, Error> {
    let file = std::fs::File::open(path).map_err(|e| config_error(what, path, e))?;
    let meta = file.metadata().map_err(|e| config_error(what, path, e))?;
    let me = nix::unistd::geteuid().as_raw();
    let unsafe_file = |why: String| {
        Error::Unsafe(format!(
            "[service.tcp] {what} {} {why}: make it root's (or the service user's) and writable by its owner only",
            path.display()
        ))
    };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_file(format!("is owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_file(format!(
            "is writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        )));
    }
    // The way to it: each entry owned by root or the service's user, each
    // directory writable by no one else unless sticky, every symlink met.
    crate::trust::leads_to(path, &file).map_err(|e| {
        unsafe_file(format!(
            "is reached through a path another user could change ({e})"
        ))
    })?;
    Ok(file)
}

/// Read a PEM file's certificates; an empty file is an error.
fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_reader_iter(open_trusted(what, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(what, path, e))?;
    if certs.is_empty() {
        return Err(config_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// Read the private key, refusing a file that group or others may access: the
/// mode is checked on the descriptor the key is read from. A parse error is
/// described without quoting the file (which could quote key bytes).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let mut file = open_trusted("key", path)?;
    let meta = file.metadata().map_err(|e| config_error("key", path, e))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::Unsafe(format!(
            "[service.tcp] key {} is accessible to group or others (mode {mode:04o}): make it readable by its owner only (chmod 600)",
            path.display()
        )));
    }
    let mut pem = zeroize::Zeroizing::new(Vec::new());
    file.read_to_end(&mut pem)
        .map_err(|e| config_error("key", path, e))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        use rustls::pki_types::pem::Error as Pem;
        let why = match e {
            Pem::NoItemsFound => "no PEM private key in it (PKCS#8, PKCS#1 or SEC1)",
            Pem::Io(_) => "unreadable",
            _ => "not a well-formed PEM private key",
        };
        config_error("key", path, why)
    })
}

/// Read the CRLs of a PEM file, and the certificates they revoke.
fn revocation_lists(
    path: &Path,
) -> Result<(Vec<CertificateRevocationListDer<'static>>, HashSet<Revoked>), Error> {
    let crls = CertificateRevocationListDer::pem_reader_iter(open_trusted("crl", path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error("crl", path, e))?;
    let mut revoked = HashSet::new();
    let bad = |e: webpki::Error| config_error("crl", path, format!("{e:?}"));
    for crl in &crls {
        let list = webpki::BorrowedCertRevocationList::from_der(crl.as_ref()).map_err(bad)?;
        let issuer = webpki::BorrowedCertRevocationList::from_der(crl.as_ref())
            .map(webpki::CertRevocationList::from)
            .map_err(bad)?
            .issuer()
            .to_vec();
        for entry in &list {
            let entry = entry.map_err(bad)?;
            revoked.insert(Revoked {
                issuer: issuer.clone(),
                serial: serial_hex(entry.serial_number),
            });
        }
    }
    Ok((crls, revoked))
}

/// A serial's upper-case hex, without DER's leading zero byte.
fn serial_hex(serial: &[u8]) -> String {
    let serial = match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        s => s,
    };
    serial.iter().map(|b| format!("{b:02X}")).collect()
}

/// One error, or several joined (each names its file).
fn one_error(mut errors: Vec<Error>) -> Error {
    if errors.len() == 1 {
        return errors.remove(0);
    }
    Error::Config(
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

impl TlsMaterial {
    /// Load the certificate, key, client CAs and CRLs, and build the server's
    /// TLS configuration. Every file is read, and every error reported (each
    /// naming its file, never quoting a key); a key that does not match the
    /// certificate is refused.
    pub(crate) fn load(opts: &TlsOptions) -> Result<TlsMaterial, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The process's default too, so that no other provider is ever picked.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut errors = Vec::new();
        let mut roots = rustls::RootCertStore::empty();
        match certificates("client_ca", &opts.client_ca) {
            Ok(cas) => {
                for ca in cas {
                    if let Err(e) = roots.add(ca) {
                        errors.push(config_error("client_ca", &opts.client_ca, e));
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        let (crls, revoked) = match opts.crl.as_deref().map(revocation_lists) {
            None => (Vec::new(), HashSet::new()),
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                errors.push(e);
                (Vec::new(), HashSet::new())
            }
        };
        let chain = certificates("cert", &opts.cert).map_err(|e| errors.push(e));
        // The key alone first, so that its error names it whatever the cert.
        let key = private_key(&opts.key)
            .and_then(|k| {
                provider.key_provider.load_private_key(k).map_err(|_| {
                    config_error(
                        "key",
                        &opts.key,
                        "not a usable private key (RSA, ECDSA or Ed25519)",
                    )
                })
            })
            .map_err(|e| errors.push(e));
        let (Ok(chain), Ok(key), true) = (chain, key, errors.is_empty()) else {
            return Err(one_error(errors));
        };
        let certified = rustls::sign::CertifiedKey::new(chain, key);
        match certified.keys_match() {
            // A key whose public half rustls cannot tell is taken as it is.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e @ rustls::Error::InvalidCertificate(_)) => {
                return Err(config_error("cert", &opts.cert, e))
            }
            Err(e) => {
                return Err(Error::Config(format!(
                    "[service.tcp] cert {} and key {} do not belong together: {e}",
                    opts.cert.display(),
                    opts.key.display()
                )))
            }
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .with_crls(crls)
                .build()
                .map_err(|e| config_error("client_ca or crl", &opts.client_ca, e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Config(format!("[service.tcp]: {e}")))?
            .with_client_cert_verifier(Arc::new(NamedClients(verifier)))
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        Ok(TlsMaterial {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: opts.handshake_timeout,
            revoked,
        })
    }

    /// Whether a CRL of this material's issuer revokes the certificate: a
    /// connection whose certificate it is is closed at its next request.
    #[must_use]
    pub(crate) fn revokes(&self, cert: &Revoked) -> bool {
        self.revoked.contains(cert)
    }
}

impl TlsTransport {
    /// The transport's fixed part for `opts` (its material is loaded into the
    /// configuration snapshot, see [`TlsMaterial`]).
    pub(crate) fn new(opts: &TlsOptions) -> TlsTransport {
        TlsTransport {
            listen: opts.listen.clone(),
            slots: Arc::new(Semaphore::new(opts.max_connections.max(1))),
            handshakes: Arc::default(),
            per_client: Arc::default(),
        }
    }

    /// Bind every `listen` address that `passed` has no listener for; `passed`
    /// is in `listen`'s order. An IPv6 socket is bound with the system's default
    /// `IPV6_V6ONLY` (`net.ipv6.bindv6only`, 0 on Debian: `[::]` takes IPv4
    /// connections too, and then conflicts with `0.0.0.0` on the same port).
    pub(crate) fn bind(
        &self,
        passed: Vec<Option<std::net::TcpListener>>,
    ) -> Result<Vec<std::net::TcpListener>, Error> {
        let mut passed = passed.into_iter();
        self.listen
            .iter()
            .map(|addr| {
                let l = match passed.next().flatten() {
                    Some(l) => l,
                    None => std::net::TcpListener::bind(addr)
                        .map_err(|e| Error::io(format!("binding TCP {addr}"), e))?,
                };
                l.set_nonblocking(true)
                    .map_err(|e| Error::io(format!("setting TCP {addr} non-blocking"), e))?;
                Ok(l)
            })
            .collect()
    }
}

/// The client's name and certificate serial (upper-case hex), from its
/// end-entity certificate: the first valid DNS name in its subjectAltName, else
/// the first URI there, else the subject's first commonName. `Err` says why the
/// certificate names no acceptable client.
pub fn client_identity(cert: &CertificateDer<'_>) -> Result<(String, String), String> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let name = ee
        .valid_dns_names()
        .next()
        .or_else(|| ee.valid_uri_names().next())
        .map(str::to_string)
        .or_else(|| common_name(ee.subject()))
        .ok_or("the certificate has no DNS or URI subjectAltName and no commonName")?;
    if !valid_client_name(&name) {
        return Err(format!(
            "the certificate's name {:?} is not a client name ([A-Za-z0-9][A-Za-z0-9._@-]*, at most 64)",
            name.chars().take(80).collect::<String>()
        ));
    }
    Ok((name, serial_hex(ee.serial())))
}

/// The client certificate of a TLS connection, as each request checks it: the
/// issuer and serial of each certificate the client presented (against the
/// CRLs current then) and the end of their validity.
///
/// Each certificate the client presented counts, its own first, then the
/// intermediate CAs that chained it to `client_ca` at the handshake: one of
/// those revoked or expired, a new handshake would fail, so the connection is
/// closed too. (A certificate the client sent that was not on the chain can
/// only close its own connection sooner.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// The issuer and serial of each certificate presented (the client's own
    /// first; one that does not parse was not on the verified chain).
    pub(crate) revocable: Vec<Revoked>,
    /// The earliest `notAfter` among them. The client's own not read (the
    /// handshake read it): the epoch, so that the connection is closed at its
    /// first request rather than never.
    pub(crate) not_after: std::time::SystemTime,
}

impl ClientCert {
    fn of(chain: &[CertificateDer<'_>]) -> Option<ClientCert> {
        let (own, intermediates) = chain.split_first()?;
        let mut revocable = vec![Revoked::of(own)?];
        revocable.extend(intermediates.iter().filter_map(Revoked::of));
        let own_end = not_after(own).unwrap_or(std::time::UNIX_EPOCH);
        let not_after = intermediates
            .iter()
            .filter_map(|c| not_after(c))
            .fold(own_end, std::cmp::min);
        Some(ClientCert {
            revocable,
            not_after,
        })
    }

    /// Past the `notAfter` of one of its certificates at `now`.
    #[must_use]
    pub(crate) fn expired_at(&self, now: std::time::SystemTime) -> bool {
        now > self.not_after
    }

    /// Whether `material`'s CRLs revoke one of its certificates.
    #[must_use]
    pub(crate) fn revoked_by(&self, material: &TlsMaterial) -> bool {
        self.revocable.iter().any(|r| material.revokes(r))
    }
}

/// A certificate's `notAfter` (RFC 5280: `Certificate` → `tbsCertificate` →
/// `validity`), from its DER.
fn not_after(cert: &[u8]) -> Option<std::time::SystemTime> {
    let (0x30, certificate, _) = der(cert)? else {
        return None;
    };
    let (0x30, mut tbs, _) = der(certificate)? else {
        return None;
    };
    // [0] version (optional), serialNumber, signature, issuer, validity.
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs)?.2;
    }
    for _ in 0..3 {
        tbs = der(tbs)?.2;
    }
    let (0x30, validity, _) = der(tbs)? else {
        return None;
    };
    let (_, _, after) = der(validity)?;
    let (tag, time, _) = der(after)?;
    der_time(tag, time)
}

/// A DER UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18) as a system time.
fn der_time(tag: u8, text: &[u8]) -> Option<std::time::SystemTime> {
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |d: &[u8]| d.iter().fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let (month, day) = (num(&rest[..2]), num(&rest[2..4]));
    let (hour, min, sec) = (num(&rest[4..6]), num(&rest[6..8]), num(&rest[8..10]));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3_600 + min * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

/// One DER element: its tag, its content and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The first commonName (OID 2.5.4.3) of a DER Name's content, if it is a
/// UTF8String, PrintableString or IA5String.
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: [u8; 3] = [0x55, 0x04, 0x03];
    while !name.is_empty() {
        let (tag, mut set, rest) = der(name)?;
        name = rest;
        if tag != 0x31 {
            return None;
        }
        while !set.is_empty() {
            let (tag, pair, rest) = der(set)?;
            set = rest;
            let (oid_tag, oid, value) = der(pair)?;
            if tag == 0x30 && oid_tag == 0x06 && oid == CN {
                let (kind, text, _) = der(value)?;
                return match kind {
                    0x0c | 0x13 | 0x16 => String::from_utf8(text.to_vec()).ok(),
                    _ => None,
                };
            }
        }
    }
    None
}

/// rustls' verifier (chain to `client_ca`, CRLs, validity), then a check that
/// the certificate names an acceptable client: both at the handshake.
#[derive(Debug)]
struct NamedClients(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for NamedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        if let Err(why) = client_identity(end_entity) {
            tracing::warn!(reason = %why.escape_debug(), "client certificate refused");
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accept TLS connections on `listener` until `shutdown`, then wait (up to the
/// grace) for their requests in flight.
pub(crate) async fn accept_loop(
    current: Arc<Current>,
    tls: Arc<TlsTransport>,
    entry: Arc<SocketEntry>,
    listener: std::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let listener =
        TcpListener::from_std(listener).map_err(|e| Error::io("registering a TCP listener", e))?;
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let (stream, address) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(handshake) =
            Counted::acquire(&tls.handshakes, address.ip(), MAX_HANDSHAKES_PER_ADDRESS)
        else {
            tracing::warn!(%address, "too many TLS handshakes from this address; closing");
            continue;
        };
        let Ok(slot) = tls.slots.clone().try_acquire_owned() else {
            tracing::warn!(%address, "TLS connections at max_connections; closing");
            continue;
        };
        // The material current now serves this handshake (a reload may swap it).
        let Some(material) = current.load().tls.clone() else {
            tracing::warn!(%address, "no TLS material configured; closing");
            continue;
        };
        let (current, tls, entry, rx) = (
            current.clone(),
            tls.clone(),
            entry.clone(),
            shutdown.clone(),
        );
        connections.spawn(async move {
            let endpoint = Endpoint {
                tls: &tls,
                material: &material,
                entry: &entry,
            };
            serve_one(current, endpoint, stream, address, handshake, rx).await;
            drop(slot);
        });
    }
    drop(listener);
    // The limits are the same in every configuration (not reloaded).
    let limits = current.load().limits.clone();
    super::finish_in_flight(connections, &limits).await;
    Ok(())
}

/// What a TLS connection is served with.
struct Endpoint<'a> {
    tls: &'a TlsTransport,
    material: &'a TlsMaterial,
    entry: &'a SocketEntry,
}

/// Handshake (bounded), name the client, then serve it like any connection.
async fn serve_one(
    current: Arc<Current>,
    Endpoint {
        tls,
        material,
        entry,
    }: Endpoint<'_>,
    stream: tokio::net::TcpStream,
    address: SocketAddr,
    handshake: Counted<IpAddr>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let accepted = tokio::select! {
        r = tokio::time::timeout(material.handshake_timeout, material.acceptor.accept(stream)) => r,
        _ = shutdown.changed() => return,
    };
    drop(handshake);
    let mut stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%address, error = %e, "TLS handshake failed");
            return;
        }
        Err(_elapsed) => {
            tracing::info!(%address, "TLS handshake not finished within handshake_timeout; closing");
            return;
        }
    };
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| "no client certificate".to_string())
        .and_then(client_identity);
    let (name, serial) = match identity {
        Ok(id) => id,
        Err(why) => {
            // The verifier already refused such a certificate: fail closed.
            tracing::warn!(%address, reason = %why.escape_debug(), "TLS client refused");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
            return;
        }
    };
    let caller = Caller::tls(name, serial, address);
    let max_per_client = current.load().limits.max_connections_per_uid;
    let Some(per_client) = Counted::acquire(&tls.per_client, caller.key(), max_per_client) else {
        tracing::warn!(client = caller.client(), %address, "client at max_connections_per_uid; closing");
        let line = Response::error(ErrorCode::Busy).to_line();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = stream.write_all(&line).await;
            let _ = stream.shutdown().await;
        })
        .await;
        return;
    };
    tracing::debug!(client = caller.client(), %address, "TLS client connected");
    // Checked at each request against the CRLs current then (see TlsMaterial)
    // and against the clock.
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(ClientCert::of);
    connection::serve(
        current,
        &mut stream,
        Arc::new(caller),
        entry,
        cert.as_ref(),
        shutdown,
    )
    .await;
    // close_notify, so that a client can tell the end from a cut connection.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
    drop(per_client);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_der_times() {
        let at = |tag, text: &[u8]| {
            der_time(tag, text).map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
        };
        assert_eq!(at(0x17, b"250101000000Z"), Some(1_735_689_600));
        assert_eq!(at(0x17, b"700101000001Z"), Some(1));
        assert_eq!(at(0x18, b"20500101000000Z"), Some(2_524_608_000));
        assert_eq!(at(0x18, b"20240229235959Z"), Some(1_709_251_199));
        for (tag, bad) in [
            (0x17, &b"2501010000Z"[..]),
            (0x17, b"250101000000"),
            (0x18, b"250101000000Z"),
            (0x17, b"251301000000Z"),
            (0x17, b"25010100000aZ"),
            (0x05, b"250101000000Z"),
        ] {
            assert_eq!(at(tag, bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reads_the_first_common_name() {
        // SET { SEQ { OID 2.5.4.6 (C), PrintableString "FR" } },
        // SET { SEQ { OID 2.5.4.3 (CN), UTF8String "panel" } }
        let name = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'F', b'R', 0x31,
            0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b'p', b'a', b'n', b'e',
            b'l',
        ];
        assert_eq!(common_name(&name).as_deref(), Some("panel"));
        assert_eq!(common_name(&name[..13]), None, "no CN");
        assert_eq!(common_name(&name[..20]), None, "truncated");
        assert_eq!(common_name(&[]), None);
    }

    #[test]
    fn refuses_an_unreadable_certificate() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        assert!(client_identity(&junk).unwrap_err().contains("unreadable"));
    }

    #[test]
    fn counts_are_bounded_and_released() {
        let counts = Arc::default();
        let a = Counted::acquire(&counts, 1u8, 2).unwrap();
        let _b = Counted::acquire(&counts, 1u8, 2).unwrap();
        assert!(Counted::acquire(&counts, 1u8, 2).is_none());
        assert!(Counted::acquire(&counts, 2u8, 2).is_some());
        drop(a);
        assert!(Counted::acquire(&counts, 1u8, 2).is_some());
    }

    #[test]
    fn a_tls_file_others_could_replace_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("tls");
        std::fs::create_dir(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        mode(&ca, 0o644);
        assert!(open_trusted("client_ca", &ca).is_ok());
        mode(&ca, 0o664);
        let e = open_trusted("client_ca", &ca).unwrap_err().to_string();
        assert!(e.contains("writable by group or others (mode 0664)"), "{e}");
        mode(&ca, 0o644);
        // A directory others may write, on the path as written or resolved.
        mode(&dir, 0o777);
        let e = open_trusted("client_ca", &ca).unwrap_err().to_string();
        assert!(
            e.contains("writable by its group or others (mode 777)"),
            "{e}"
        );
        let link = top.path().join("link.pem");
        std::os::unix::fs::symlink(&ca, &link).unwrap();
        assert!(open_trusted("client_ca", &link).is_err());
        // ... unless sticky (as /tmp).
        mode(&dir, 0o1777);
        assert!(open_trusted("client_ca", &link).is_ok());
        mode(&dir, 0o755);
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&ca, Some(65534), None).unwrap();
            let e = open_trusted("client_ca", &ca).unwrap_err().to_string();
            assert!(e.contains("is owned by uid 65534"), "{e}");
            std::os::unix::fs::chown(&ca, Some(0), None).unwrap();
            // Regression: a directory on the way another user owns (not
            // writable by others) was accepted; its owner could put another
            // file there (a symlink to any of root's) in the file's place.
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            let e = open_trusted("client_ca", &ca).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{} is owned by uid 65534", dir.display())),
                "{e}"
            );
            let e = open_trusted("client_ca", &link).unwrap_err().to_string();
            assert!(e.contains("is owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "not a key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = private_key(&key).unwrap_err().to_string();
        assert!(
            e.contains("accessible to group or others (mode 0644)"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = private_key(&key).unwrap_err().to_string();
        assert!(!e.contains("accessible"), "{e}");
    }
}
