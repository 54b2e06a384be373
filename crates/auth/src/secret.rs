//! The socket's shared secret: loaded from a protected file or a reader (stdin),
//! kept zeroized, compared in constant time.

use crate::{AuthError, Result};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The longest secret file accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 4096;

/// Permission bits a shared-secret file must not have: any access by others, or
/// write access by the group (the group may read: it is how clients get the secret).
pub const SECRET_FORBIDDEN_MODE: u32 = 0o027;

/// The socket's shared secret. Its `Debug` shows nothing of the value.
pub struct SharedSecret {
    value: Zeroizing<String>,
    digest: Zeroizing<[u8; 32]>,
}

impl SharedSecret {
    /// Read the secret from `path`. The file must be a regular file without
    /// permissions in [`SECRET_FORBIDDEN_MODE`] (e.g. 0600 or 0640). Trailing
    /// newlines are trimmed; an empty secret is refused. Errors name the path only.
    pub fn from_file(path: &Path) -> Result<SharedSecret> {
        let bytes = read_protected_file(path, SECRET_FORBIDDEN_MODE)?;
        SharedSecret::from_bytes(&bytes, &path.display().to_string())
    }

    /// Read the secret from a reader such as stdin; `source_name` (e.g. `<stdin>`)
    /// is what errors call it.
    pub fn from_reader<R: Read>(reader: R, source_name: &str) -> Result<SharedSecret> {
        let bytes = read_limited(reader).map_err(|source| AuthError::Io {
            path: source_name.into(),
            source,
        })?;
        SharedSecret::from_bytes(&bytes, source_name)
    }

    /// Use `value` as the secret (trailing newlines trimmed, empty refused).
    pub fn from_string(value: String) -> Result<SharedSecret> {
        let value = Zeroizing::new(value);
        SharedSecret::from_bytes(value.as_bytes(), "<string>")
    }

    fn from_bytes(bytes: &[u8], source_name: &str) -> Result<SharedSecret> {
        let invalid = |reason| AuthError::InvalidSecret {
            source_name: source_name.to_string(),
            reason,
        };
        if bytes.len() > MAX_SECRET_LEN {
            return Err(invalid("longer than 4096 bytes"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8"))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        let value = Zeroizing::new(text.to_string());
        let digest = Zeroizing::new(sha256(value.as_bytes()));
        Ok(SharedSecret { value, digest })
    }

    /// Whether `candidate` is the secret. A missing candidate never is. The time
    /// taken does not depend on where the candidate differs nor on its length
    /// relative to the secret: SHA-256 digests are compared in constant time.
    #[must_use]
    pub fn verify(&self, candidate: Option<&str>) -> bool {
        verify_digest(&self.digest, candidate)
    }

    /// Keep only the digest: the secret's text is zeroized now. A service, which
    /// only checks candidates, keeps this (so the secret is not in its memory,
    /// nor in a dump of it).
    #[must_use]
    pub fn into_digest(self) -> SecretDigest {
        SecretDigest {
            digest: self.digest,
        }
    }

    /// The secret itself, for a client that must send it. Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

/// Only the SHA-256 digest of a [`SharedSecret`] ([`SharedSecret::into_digest`]):
/// enough to verify a candidate, not to recover or send the secret.
pub struct SecretDigest {
    digest: Zeroizing<[u8; 32]>,
}

impl SecretDigest {
    /// Whether `candidate` is the secret, as [`SharedSecret::verify`].
    #[must_use]
    pub fn verify(&self, candidate: Option<&str>) -> bool {
        verify_digest(&self.digest, candidate)
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

fn verify_digest(digest: &[u8; 32], candidate: Option<&str>) -> bool {
    let Some(candidate) = candidate else {
        // Still do the work, so a missing secret takes as long as a wrong one.
        let d = Zeroizing::new(sha256(b""));
        let _ = d.ct_eq(digest);
        return false;
    };
    let d = Zeroizing::new(sha256(candidate.as_bytes()));
    d.ct_eq(digest).into()
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Read at most [`MAX_SECRET_LEN`] + 1 bytes into a buffer that is zeroized on drop
/// and never reallocated (so no copy of the secret is left behind).
fn read_limited<R: Read>(reader: R) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET_LEN + 1));
    reader
        .take(MAX_SECRET_LEN as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// Open `path`, check (on the open file, so no race) that it is a regular file
/// without any of the `forbidden` permission bits, owned by root or by us, and read
/// it (at most [`MAX_SECRET_LEN`] + 1 bytes).
pub(crate) fn read_protected_file(path: &Path, forbidden: u32) -> Result<Zeroizing<Vec<u8>>> {
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    check_protected(path, &meta, forbidden)?;
    read_limited(file).map_err(io)
}

/// Check the metadata of a secret-holding file (see [`read_protected_file`]).
pub(crate) fn check_protected(path: &Path, meta: &std::fs::Metadata, forbidden: u32) -> Result<()> {
    let insecure = |reason: String| AuthError::InsecurePermissions {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.is_file() {
        return Err(insecure("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & forbidden != 0 {
        let who = if mode & 0o007 != 0 {
            "others"
        } else {
            "the group"
        };
        return Err(insecure(format!(
            "accessible by {who} (mode {mode:04o}); allowed at most {:04o}",
            0o666 & !forbidden
        )));
    }
    check_owner(meta, insecure)
}

/// Refuse a file or directory owned by anyone but root or this process's user.
pub(crate) fn check_owner(
    meta: &std::fs::Metadata,
    insecure: impl Fn(String) -> AuthError,
) -> Result<()> {
    let euid = rustix::process::geteuid().as_raw();
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(insecure(format!(
            "owned by uid {}, neither root nor us",
            meta.uid()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_file(dir: &Path, name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).unwrap();
        f.write_all(content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn loads_trims_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(dir.path(), "s", b"hunter2-long\n", 0o600);
        let s = SharedSecret::from_file(&p).unwrap();
        assert!(s.verify(Some("hunter2-long")));
        assert!(!s.verify(Some("hunter2-long\n")));
        assert!(!s.verify(Some("hunter2-lonG")));
        assert!(!s.verify(Some("")));
        assert!(!s.verify(Some("hunter2-long-and-more")));
        assert!(!s.verify(None));
        assert_eq!(s.expose(), "hunter2-long");
        // Group-readable is fine: clients in the socket group read it.
        let p = write_file(dir.path(), "g", b"abc\r\n", 0o640);
        assert!(SharedSecret::from_file(&p).unwrap().verify(Some("abc")));
    }

    #[test]
    fn refuses_world_readable_and_group_writable_naming_the_path_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o604, 0o620, 0o666] {
            let p = write_file(dir.path(), "w", b"topsecretvalue\n", mode);
            let err = SharedSecret::from_file(&p).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, AuthError::InsecurePermissions { .. }),
                "{mode:o}: {msg}"
            );
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(!msg.contains("topsecret"), "{msg}");
        }
    }

    #[test]
    fn refuses_empty_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_file(dir.path(), "e", b"\n\n", 0o600);
        assert!(matches!(
            SharedSecret::from_file(&p).unwrap_err(),
            AuthError::InvalidSecret {
                reason: "empty",
                ..
            }
        ));
        let missing = dir.path().join("missing");
        let msg = SharedSecret::from_file(&missing).unwrap_err().to_string();
        assert!(msg.contains("missing"), "{msg}");
        assert!(SharedSecret::from_reader(&b""[..], "<stdin>").is_err());
        let big = vec![b'a'; MAX_SECRET_LEN + 1];
        assert!(SharedSecret::from_reader(&big[..], "<stdin>").is_err());
    }

    #[test]
    fn reader_and_debug_do_not_leak() {
        let s = SharedSecret::from_reader(&b"from-stdin\n"[..], "<stdin>").unwrap();
        assert!(s.verify(Some("from-stdin")));
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("from-stdin"), "{dbg}");
        let d = s.into_digest();
        assert!(d.verify(Some("from-stdin")));
        assert!(!d.verify(Some("from-stdin\n")));
        assert!(!d.verify(None));
        assert!(!format!("{d:?}").contains("from-stdin"));
    }
}
