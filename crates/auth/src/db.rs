//! Opening the root-only SQLite database shared by the pending store and the TOTP
//! store: directory 0700 (created if missing, refused if others may write to it),
//! file 0600 (refused if others may read it), WAL, `synchronous=FULL`, and a
//! versioned schema (`PRAGMA user_version`).

use crate::{secret, AuthError, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS pending (
    request_id     TEXT PRIMARY KEY,
    stage_uid_hash TEXT NOT NULL UNIQUE,
    op             TEXT NOT NULL,
    data           TEXT NOT NULL,
    display_data   TEXT NOT NULL,
    caller_uid     INTEGER NOT NULL,
    caller_gid     INTEGER NOT NULL,
    caller_pid     INTEGER,
    caller_user    TEXT,
    approvers      TEXT NOT NULL,
    stages         TEXT NOT NULL,
    stage_index    INTEGER NOT NULL,
    stage_state    TEXT NOT NULL,
    pending_info   TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    max_attempts   INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'denied', 'failed')),
    status_reason  TEXT
);
CREATE INDEX IF NOT EXISTS pending_expires ON pending (expires_at);
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    op          TEXT NOT NULL,
    caller_uid  INTEGER NOT NULL,
    caller_user TEXT,
    decision    TEXT NOT NULL,
    by_uid      INTEGER NOT NULL,
    by_user     TEXT,
    reason      TEXT,
    at          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS totp_users (
    user       TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    last_step  INTEGER,
    created_at INTEGER NOT NULL
);
";

/// Open the database at `path`, creating it (and its directory) root-only if
/// missing, refusing it if its permissions are too open.
pub fn open(path: &Path) -> Result<Connection> {
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ensure_private_dir(dir)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    secret::check_protected(path, &meta, 0o077)?;
    drop(file);

    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(AuthError::Database(rusqlite::Error::InvalidParameterName(
            format!("journal_mode is {mode}, WAL refused"),
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(path, conn)
}

fn migrate(path: &Path, mut conn: Connection) -> Result<Connection> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(AuthError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(conn)
}

/// Create `dir` (and missing parents) as 0700, or check that an existing one is a
/// directory owned by root or us that neither the group nor others may write to.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    let io = |source| AuthError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let meta = std::fs::metadata(dir).map_err(io)?;
    let insecure = |reason: String| AuthError::InsecurePermissions {
        path: dir.to_path_buf(),
        reason,
    };
    if !meta.is_dir() {
        return Err(insecure("not a directory".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "writable by the group or others (mode {mode:04o}); use 0700"
        )));
    }
    check_owner(&meta, insecure)
}

/// Refuse a file or directory owned by anyone but root or this process's user.
pub(crate) fn check_owner(
    meta: &std::fs::Metadata,
    insecure: impl Fn(String) -> crate::AuthError,
) -> Result<()> {
    let euid = rustix::process::geteuid().as_raw();
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

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_root_only_and_is_wal_full_versioned() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state/sub/auth.db");
        let conn = open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&tmp.path().join("state")), 0o700);
        let jm: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.execute("INSERT INTO totp_users VALUES ('x', x'00', NULL, 0)", [])
            .unwrap();
        // SQLite gives the WAL file the database file's mode.
        let wal = path.with_file_name("auth.db-wal");
        assert_eq!(mode(&wal), 0o600);
        drop(conn);
        // Reopening keeps the data.
        let conn = open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM totp_users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn refuses_open_permissions_and_newer_schemas() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = open(&shared.join("a.db")).unwrap_err();
        assert!(
            matches!(err, AuthError::InsecurePermissions { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("shared"), "{err}");

        let p = tmp.path().join("b.db");
        open(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = open(&p).unwrap_err();
        assert!(err.to_string().contains("b.db"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();

        let conn = open(&p).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            open(&p).unwrap_err(),
            AuthError::SchemaTooNew { found: 99, .. }
        ));
    }
}
