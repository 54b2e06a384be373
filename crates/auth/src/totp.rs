//! TOTP (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 6 digits, 30-second steps, one
//! step of clock skew either way; enrollment (otpauth:// URI and a QR code drawn
//! for a terminal); and [`TotpStore`], the root-only per-user secrets with the last
//! step used, so that a code is accepted once.

use crate::{db, random, AuthError, Result};
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use sha1::Sha1;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Seconds in a time step.
pub const PERIOD: u64 = 30;
/// Steps of clock skew accepted either side of the current one.
pub const SKEW: u64 = 1;
/// Bytes in a generated secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Regent";
/// Wrong codes a user may enter in a row before backing off.
pub const FREE_FAILURES: u32 = 3;
/// The first back-off; each further wrong code doubles it.
pub const BACKOFF_BASE: std::time::Duration = std::time::Duration::from_secs(30);
/// The longest back-off.
pub const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// How long a user backs off after `failures` wrong codes in a row (counted
/// across requests and restarts, reset by a right code, `enroll` or `remove`):
/// nothing for the first [`FREE_FAILURES`], then [`BACKOFF_BASE`] doubling with
/// each wrong code, up to [`BACKOFF_MAX`]. At most about 30 guesses a day get
/// checked, against a one in 333 333 chance each.
pub fn backoff_after(failures: u32) -> std::time::Duration {
    if failures <= FREE_FAILURES {
        return std::time::Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// HOTP (RFC 4226): the `digits`-digit code for `counter` (`digits` at most 9).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let digest: Zeroizing<[u8; 20]> = Zeroizing::new(mac.finalize().into_bytes().into());
    let offset = (digest[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]) & 0x7fff_ffff;
    bin % 10u32.pow(digits)
}

/// The time step of a Unix time.
pub fn step_at(unix: u64) -> u64 {
    unix / PERIOD
}

/// The TOTP code at Unix time `unix`, as a number.
pub fn totp_at(secret: &[u8], unix: u64, digits: u32) -> u32 {
    hotp(secret, step_at(unix), digits)
}

/// A code as text, zero-padded to `digits`.
pub fn format_code(code: u32, digits: u32) -> Zeroizing<String> {
    Zeroizing::new(format!("{code:0width$}", width = digits as usize))
}

/// The outcome of checking a TOTP code.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code is right, for this time step (now recorded as used).
    Accepted {
        /// The step the code belongs to.
        step: u64,
    },
    /// The code is right but its step was already used: a replay.
    Replayed,
    /// The code is wrong (or malformed).
    Rejected,
    /// The user has no TOTP secret.
    NotEnrolled,
    /// Too many wrong codes: the user is backing off and the code was not
    /// checked (see [`backoff_after`]).
    Locked {
        /// How long until a code is checked again.
        retry_after: std::time::Duration,
    },
}

impl TotpCheck {
    /// Whether the code was accepted.
    pub fn is_accepted(self) -> bool {
        matches!(self, TotpCheck::Accepted { .. })
    }
}

/// Check `candidate` against the steps around `unix`, accepting only steps after
/// `used` (the last step already used). Each step's code is compared in constant
/// time and all of them are computed whatever the candidate.
pub fn verify_code(secret: &[u8], candidate: &str, unix: u64, used: Option<u64>) -> TotpCheck {
    let candidate = candidate.trim();
    let well_formed =
        candidate.len() == DIGITS as usize && candidate.bytes().all(|b| b.is_ascii_digit());
    let now = step_at(unix);
    let mut accepted = None;
    let mut replayed = false;
    for step in now.saturating_sub(SKEW)..=now + SKEW {
        let code = format_code(hotp(secret, step, DIGITS), DIGITS);
        let equal: bool = code.as_bytes().ct_eq(candidate.as_bytes()).into();
        if equal && well_formed {
            if used.is_none_or(|u| step > u) {
                accepted = Some(step);
            } else {
                replayed = true;
            }
        }
    }
    match (accepted, replayed) {
        (Some(step), _) => TotpCheck::Accepted { step },
        (None, true) => TotpCheck::Replayed,
        (None, false) => TotpCheck::Rejected,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A TOTP secret, zeroized on drop; its `Debug` shows nothing.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A new 160-bit secret from the OS random source.
    pub fn generate() -> Result<TotpSecret> {
        let mut b = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        random::fill(&mut b)?;
        Ok(TotpSecret(b))
    }

    /// A secret from raw bytes (at least 16).
    pub fn from_bytes(bytes: &[u8]) -> Result<TotpSecret> {
        if bytes.len() < 16 {
            return Err(AuthError::InvalidTotpSecret);
        }
        Ok(TotpSecret(Zeroizing::new(bytes.to_vec())))
    }

    /// A secret from base32 (case, spaces and padding ignored).
    pub fn from_base32(text: &str) -> Result<TotpSecret> {
        let clean: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '=')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let bytes = Zeroizing::new(
            BASE32_NOPAD
                .decode(clean.as_bytes())
                .map_err(|_| AuthError::InvalidTotpSecret)?,
        );
        TotpSecret::from_bytes(&bytes)
    }

    /// The secret in base32 without padding, as authenticator apps take it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE32_NOPAD.encode(&self.0))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The current code (for tests and for showing during enrollment checks).
    pub fn code_at(&self, unix: u64) -> Zeroizing<String> {
        format_code(totp_at(&self.0, unix, DIGITS), DIGITS)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://totp/Regent:USER?...` URI an authenticator app imports.
pub fn otpauth_uri(user: &str, secret: &TotpSecret) -> Zeroizing<String> {
    let b32 = secret.to_base32();
    Zeroizing::new(format!(
        "otpauth://totp/{issuer}:{user}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        issuer = ISSUER,
        user = percent_encode(user),
        secret = b32.as_str(),
    ))
}

/// Draw `data` as a QR code with Unicode half blocks, light on dark (for a
/// terminal with a dark background; scanners accept both), quiet zone included.
pub fn render_qr(data: &str) -> Result<Zeroizing<String>> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(data.as_bytes()).map_err(|e| AuthError::Qr(e.to_string()))?;
    Ok(Zeroizing::new(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    ))
}

/// Check that `user` can name a TOTP account: 1 to 64 characters, no control
/// characters, no `:` (the URI label separator). `#UID` names a user by number.
pub fn validate_user(user: &str) -> Result<()> {
    let ok =
        !user.is_empty() && user.len() <= 64 && !user.chars().any(|c| c.is_control() || c == ':');
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidUser(user.chars().take(64).collect()))
    }
}

/// A started enrollment: show [`uri`](Self::uri) or [`qr`](Self::qr) to the user,
/// then [`TotpStore::confirm_enroll`] with a code from their app.
pub struct Enrollment {
    user: String,
    secret: TotpSecret,
    uri: Zeroizing<String>,
    qr: Zeroizing<String>,
}

impl Enrollment {
    /// The user being enrolled.
    pub fn user(&self) -> &str {
        &self.user
    }
    /// The new secret.
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }
    /// The otpauth:// URI (contains the secret).
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// The QR code of the URI, drawn for a terminal (contains the secret).
    pub fn qr(&self) -> &str {
        &self.qr
    }
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Per-user TOTP secrets and last used steps, in the root-only SQLite database
/// (it may be the same file as the pending store).
pub struct TotpStore {
    db: Arc<db::Database>,
    path: PathBuf,
}

impl fmt::Debug for TotpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpStore")
            .field("path", &self.path)
            .finish()
    }
}

impl TotpStore {
    /// Open (creating root-only if missing) the database at `path`.
    /// The pending store of the same file shares its connection (see [`crate::db`]).
    pub fn open(path: &Path) -> Result<TotpStore> {
        Ok(TotpStore {
            db: db::open(path)?,
            path: path.to_path_buf(),
        })
    }

    fn conn(&self) -> db::Guard<'_> {
        self.db.lock()
    }

    /// The shared database (for tests and diagnostics).
    pub fn database(&self) -> &Arc<db::Database> {
        &self.db
    }

    /// Start enrolling `user`: a new secret, its URI and QR code. Nothing is saved.
    pub fn begin_enroll(&self, user: &str) -> Result<Enrollment> {
        validate_user(user)?;
        let secret = TotpSecret::generate()?;
        let uri = otpauth_uri(user, &secret);
        let qr = render_qr(&uri)?;
        Ok(Enrollment {
            user: user.to_string(),
            secret,
            uri,
            qr,
        })
    }

    /// Save the enrollment if `code` is valid for its secret now, replacing any
    /// previous secret of the user. The code's step is recorded as used.
    pub fn confirm_enroll(&self, enrollment: &Enrollment, code: &str) -> Result<()> {
        self.confirm_enroll_at(enrollment, code, unix_now())
    }

    /// [`confirm_enroll`](Self::confirm_enroll) at a given Unix time.
    pub fn confirm_enroll_at(&self, enrollment: &Enrollment, code: &str, unix: u64) -> Result<()> {
        let TotpCheck::Accepted { step } =
            verify_code(enrollment.secret.as_bytes(), code, unix, None)
        else {
            return Err(AuthError::InvalidCode);
        };
        let step = i64::try_from(step).map_err(|_| AuthError::InvalidCode)?;
        self.conn().execute(
            "INSERT INTO totp_users (user, secret, last_step, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(user) DO UPDATE SET secret = excluded.secret, last_step = excluded.last_step,
                                             created_at = excluded.created_at",
            params![enrollment.user, enrollment.secret.as_bytes(), step, unix as i64],
        )?;
        self.conn().execute(
            "DELETE FROM totp_failures WHERE user = ?1",
            params![enrollment.user],
        )?;
        tracing::info!(user = %enrollment.user.escape_debug(), "TOTP secret enrolled; wrong-code count reset");
        Ok(())
    }

    /// Remove `user`'s secret; whether there was one.
    pub fn remove(&self, user: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM totp_users WHERE user = ?1", params![user])?;
        tx.execute("DELETE FROM totp_failures WHERE user = ?1", params![user])?;
        tx.commit()?;
        if n > 0 {
            tracing::info!(user = %user.escape_debug(), "TOTP secret removed");
        }
        Ok(n > 0)
    }

    /// `user`'s wrong codes in a row, and until when they back off (`None` if not).
    pub fn failures(&self, user: &str) -> Result<(u32, Option<SystemTime>)> {
        let row: Option<(i64, i64)> = self
            .conn()
            .query_row(
                "SELECT failures, locked_until FROM totp_failures WHERE user = ?1",
                params![user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            None => (0, None),
            Some((n, until)) => (
                u32::try_from(n).unwrap_or(u32::MAX),
                (until > 0).then(|| crate::store::from_ms(until)),
            ),
        })
    }

    /// Whether `user` has a secret.
    pub fn is_enrolled(&self, user: &str) -> Result<bool> {
        let found: Option<i64> = self
            .conn()
            .query_row(
                "SELECT 1 FROM totp_users WHERE user = ?1",
                params![user],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// The enrolled users, sorted.
    pub fn users(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT user FROM totp_users ORDER BY user")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    /// Check `user`'s `code` now; an accepted code's step is recorded so the same
    /// code (or an older one) is refused afterwards. Atomic across processes.
    pub fn verify(&self, user: &str, code: &str) -> Result<TotpCheck> {
        self.verify_at(user, code, unix_now())
    }

    /// [`verify`](Self::verify) at a given Unix time. While the user backs off
    /// (too many wrong codes, [`backoff_after`]) the code is not checked and
    /// [`TotpCheck::Locked`] is answered; a wrong code is counted for the user in
    /// the store, a right one resets the count.
    pub fn verify_at(&self, user: &str, code: &str, unix: u64) -> Result<TotpCheck> {
        let now_ms = i64::try_from(unix.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(Vec<u8>, Option<i64>)> = tx
            .query_row(
                "SELECT secret, last_step FROM totp_users WHERE user = ?1",
                params![user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((secret, last)) = row else {
            return Ok(TotpCheck::NotEnrolled);
        };
        let secret = Zeroizing::new(secret);
        let (failures, locked_until): (i64, i64) = tx
            .query_row(
                "SELECT failures, locked_until FROM totp_failures WHERE user = ?1",
                params![user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, 0));
        if locked_until > now_ms {
            let wait = u64::try_from(locked_until - now_ms).unwrap_or(0);
            return Ok(TotpCheck::Locked {
                retry_after: std::time::Duration::from_millis(wait),
            });
        }
        let check = verify_code(
            &secret,
            code,
            unix,
            last.and_then(|l| u64::try_from(l).ok()),
        );
        match check {
            TotpCheck::Accepted { step } => {
                tx.execute(
                    "UPDATE totp_users SET last_step = ?2 WHERE user = ?1",
                    params![user, i64::try_from(step).unwrap_or(i64::MAX)],
                )?;
                tx.execute("DELETE FROM totp_failures WHERE user = ?1", params![user])?;
            }
            TotpCheck::Rejected | TotpCheck::Replayed => {
                let failures = u32::try_from(failures)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                let backoff = backoff_after(failures);
                let until = if backoff.is_zero() {
                    0
                } else {
                    now_ms.saturating_add(i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX))
                };
                tx.execute(
                    "INSERT INTO totp_failures (user, failures, locked_until) VALUES (?1, ?2, ?3)
                     ON CONFLICT(user) DO UPDATE SET failures = excluded.failures,
                                                     locked_until = excluded.locked_until",
                    params![user, failures, until],
                )?;
                let user = user.escape_debug();
                if check == TotpCheck::Replayed {
                    tracing::warn!(user = %user, failures, "replayed TOTP code refused");
                }
                if backoff.is_zero() {
                    tracing::info!(user = %user, failures, "wrong TOTP code");
                } else {
                    tracing::warn!(user = %user, failures, backoff_secs = backoff.as_secs(),
                        "wrong TOTP codes in a row: the user backs off");
                }
            }
            TotpCheck::NotEnrolled | TotpCheck::Locked { .. } => {}
        }
        tx.commit()?;
        Ok(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";
    // RFC 6238 appendix B, SHA-1 column.
    const VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn rfc6238_sha1_vectors_8_and_6_digits() {
        for (t, want) in VECTORS {
            assert_eq!(*format_code(totp_at(RFC_SECRET, t, 8), 8), want, "t={t}");
            assert_eq!(
                *format_code(totp_at(RFC_SECRET, t, 6), 6),
                &want[2..],
                "t={t}"
            );
            let secret = TotpSecret::from_bytes(RFC_SECRET).unwrap();
            assert_eq!(*secret.code_at(t), &want[2..]);
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let want = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, w) in want.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), *w);
        }
    }

    #[test]
    fn skew_window_and_replay() {
        let t = 1_234_567_890;
        let s = step_at(t);
        let code = |step: u64| format_code(hotp(RFC_SECRET, step, 6), 6);
        assert_eq!(
            verify_code(RFC_SECRET, &code(s), t, None),
            TotpCheck::Accepted { step: s }
        );
        assert_eq!(
            verify_code(RFC_SECRET, &code(s - 1), t, None),
            TotpCheck::Accepted { step: s - 1 }
        );
        assert_eq!(
            verify_code(RFC_SECRET, &code(s + 1), t, None),
            TotpCheck::Accepted { step: s + 1 }
        );
        assert_eq!(
            verify_code(RFC_SECRET, &code(s - 2), t, None),
            TotpCheck::Rejected
        );
        assert_eq!(
            verify_code(RFC_SECRET, &code(s + 2), t, None),
            TotpCheck::Rejected
        );
        assert_eq!(
            verify_code(RFC_SECRET, &code(s), t, Some(s)),
            TotpCheck::Replayed
        );
        assert_eq!(
            verify_code(RFC_SECRET, &code(s - 1), t, Some(s - 1)),
            TotpCheck::Replayed
        );
        assert_eq!(
            verify_code(RFC_SECRET, &code(s), t, Some(s - 1)),
            TotpCheck::Accepted { step: s }
        );
        assert_eq!(
            verify_code(RFC_SECRET, " 12345x", t, None),
            TotpCheck::Rejected
        );
        assert_eq!(verify_code(RFC_SECRET, "", t, None), TotpCheck::Rejected);
        let long = format!("{}0", code(s).as_str());
        assert_eq!(verify_code(RFC_SECRET, &long, t, None), TotpCheck::Rejected);
    }

    #[test]
    fn base32_uri_and_qr() {
        let s = TotpSecret::generate().unwrap();
        assert_eq!(s.as_bytes().len(), 20);
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        let lower = b32.to_lowercase();
        assert_eq!(
            TotpSecret::from_base32(&lower).unwrap().as_bytes(),
            s.as_bytes()
        );
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert!(!format!("{s:?}").contains(b32.as_str()));

        let uri = otpauth_uri("alice smith", &s);
        assert!(
            uri.starts_with("otpauth://totp/Regent:alice%20smith?secret="),
            "{}",
            *uri
        );
        assert!(uri.contains(&format!("secret={}&issuer=Regent", b32.as_str())));
        let qr = render_qr(&uri).unwrap();
        assert!(qr.lines().count() > 20);
        assert!(qr.contains('▀') || qr.contains('▄') || qr.contains('█'));
    }

    #[test]
    fn store_enrolls_only_with_a_valid_code_and_refuses_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = TotpStore::open(&dir.path().join("auth.db")).unwrap();
        let e = store.begin_enroll("alice").unwrap();
        assert!(!format!("{e:?}").contains(e.secret().to_base32().as_str()));
        let t = 2_000_000_000u64;
        assert!(matches!(
            store.confirm_enroll_at(&e, "000000x", t),
            Err(AuthError::InvalidCode)
        ));
        let wrong = format!(
            "{:06}",
            (totp_at(e.secret().as_bytes(), t, 6) + 1) % 1_000_000
        );
        assert!(store.confirm_enroll_at(&e, &wrong, t).is_err());
        assert!(!store.is_enrolled("alice").unwrap());
        store
            .confirm_enroll_at(&e, &e.secret().code_at(t), t)
            .unwrap();
        assert!(store.is_enrolled("alice").unwrap());
        assert_eq!(store.users().unwrap(), vec!["alice".to_string()]);

        // The enrollment code's step is used; the next step's code works once.
        let t2 = t + PERIOD;
        assert_eq!(
            store
                .verify_at("alice", &e.secret().code_at(t), t2)
                .unwrap(),
            TotpCheck::Replayed
        );
        let c2 = e.secret().code_at(t2);
        assert_eq!(
            store.verify_at("alice", &c2, t2).unwrap(),
            TotpCheck::Accepted { step: step_at(t2) }
        );
        assert_eq!(
            store.verify_at("alice", &c2, t2).unwrap(),
            TotpCheck::Replayed
        );
        assert_eq!(
            store.verify_at("bob", &c2, t2).unwrap(),
            TotpCheck::NotEnrolled
        );

        // The used step survives a reopen.
        drop(store);
        let store = TotpStore::open(&dir.path().join("auth.db")).unwrap();
        assert_eq!(
            store.verify_at("alice", &c2, t2 + 1).unwrap(),
            TotpCheck::Replayed
        );
        assert!(store.remove("alice").unwrap());
        assert!(!store.remove("alice").unwrap());
        assert_eq!(
            store.verify_at("alice", &c2, t2).unwrap(),
            TotpCheck::NotEnrolled
        );
        assert!(store.begin_enroll("a:b").is_err());
        assert!(store.begin_enroll("").is_err());
    }

    #[test]
    fn wrong_codes_back_off_per_user_across_reopens_until_enrolled_again() {
        assert_eq!(backoff_after(FREE_FAILURES), std::time::Duration::ZERO);
        assert_eq!(backoff_after(FREE_FAILURES + 1), BACKOFF_BASE);
        assert_eq!(backoff_after(FREE_FAILURES + 2), BACKOFF_BASE * 2);
        assert_eq!(backoff_after(u32::MAX), BACKOFF_MAX);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.db");
        let store = TotpStore::open(&path).unwrap();
        let t = 2_000_000_000u64;
        let e = store.begin_enroll("alice").unwrap();
        store
            .confirm_enroll_at(&e, &e.secret().code_at(t), t)
            .unwrap();
        let bob = store.begin_enroll("bob").unwrap();
        store
            .confirm_enroll_at(&bob, &bob.secret().code_at(t), t)
            .unwrap();
        let wrong = |at: u64| {
            format!(
                "{:06}",
                (totp_at(e.secret().as_bytes(), at, 6) + 500_000) % 1_000_000
            )
        };
        let t2 = t + PERIOD;
        for n in 1..=FREE_FAILURES + 1 {
            assert_eq!(
                store.verify_at("alice", &wrong(t2), t2).unwrap(),
                TotpCheck::Rejected,
                "failure {n}"
            );
        }
        assert_eq!(store.failures("alice").unwrap().0, FREE_FAILURES + 1);
        // Backing off: even the right code is not checked.
        let right = e.secret().code_at(t2);
        assert_eq!(
            store.verify_at("alice", &right, t2 + 1).unwrap(),
            TotpCheck::Locked {
                retry_after: BACKOFF_BASE - std::time::Duration::from_secs(1)
            }
        );
        // Another user is not affected.
        assert!(store
            .verify_at("bob", &bob.secret().code_at(t2), t2)
            .unwrap()
            .is_accepted());
        // The count survives a reopen.
        drop(store);
        let store = TotpStore::open(&path).unwrap();
        assert!(matches!(
            store.verify_at("alice", &right, t2 + 2).unwrap(),
            TotpCheck::Locked { .. }
        ));
        // After the back-off a wrong code doubles it...
        let t3 = t2 + BACKOFF_BASE.as_secs();
        assert_eq!(
            store.verify_at("alice", &wrong(t3), t3).unwrap(),
            TotpCheck::Rejected
        );
        assert_eq!(
            store.verify_at("alice", &right, t3).unwrap(),
            TotpCheck::Locked {
                retry_after: BACKOFF_BASE * 2
            }
        );
        // ... and enrolling again resets it.
        let again = store.begin_enroll("alice").unwrap();
        store
            .confirm_enroll_at(&again, &again.secret().code_at(t3), t3)
            .unwrap();
        assert_eq!(store.failures("alice").unwrap(), (0, None));
        let t4 = t3 + PERIOD;
        assert!(store
            .verify_at("alice", &again.secret().code_at(t4), t4)
            .unwrap()
            .is_accepted());
        // A right code resets the count too; `remove` clears it.
        assert_eq!(
            store.verify_at("alice", &wrong(t4), t4).unwrap(),
            TotpCheck::Rejected
        );
        assert_eq!(store.failures("alice").unwrap().0, 1);
        assert!(store.remove("alice").unwrap());
        assert_eq!(store.failures("alice").unwrap(), (0, None));
    }
}
