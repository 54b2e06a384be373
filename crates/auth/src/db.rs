//! Opening the root-only SQLite database shared by the pending store and the TOTP
//! store: directory 0700 (created if missing, refused if others may write to it),
//! file 0600 (refused if others may read it), WAL, `synchronous=FULL`, and a
//! versioned schema (`PRAGMA user_version`, migrated forward on open).
//!
//! # One opener per file per process
//!
//! SQLite guards a WAL database with POSIX advisory locks, and POSIX drops *all*
//! of a process's locks on a file when *any* descriptor of that file is closed.
//! So this module never closes a descriptor of an open database: the descriptor
//! whose `fstat` checked the file's mode and owner is kept open, and closed only
//! after the last SQLite connection to that file in this process (opening and
//! closing are serialised by one lock), and opening a file this process already
//! has open returns the same [`Database`] (the TOTP store and the pending store
//! share one connection). Other processes (`regent totp enroll`, the
//! `sqlite3` shell) then meet the daemon's locks and wait, instead of taking the
//! database for their own and deleting the live WAL when they close it.

use crate::{secret, AuthError, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 4;

/// Version 1: the pending requests, the decisions audit and the TOTP secrets.
pub const SCHEMA_V1: &str = "
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

/// Version 2: indexes for the per-caller caps and the newest-first listing, and
/// the per-user count of failed TOTP codes (with its back-off).
const SCHEMA_V2: &str = "
CREATE INDEX IF NOT EXISTS pending_caller ON pending (caller_uid, op);
CREATE INDEX IF NOT EXISTS pending_created ON pending (created_at);
CREATE TABLE IF NOT EXISTS totp_failures (
    user         TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
);
";

/// Version 3: each held request keeps the digest of its operation's declaration
/// when it was held (see `PendingRecord::declaration`); rows held by version 2
/// have none (NULL), and the service decides what that means.
const SCHEMA_V3: &str = "
ALTER TABLE pending ADD COLUMN declaration TEXT;
";

/// Version 4: each held request keeps what a dry run of it showed when it was
/// held (see `PendingRecord::preview`); NULL for none.
const SCHEMA_V4: &str = "
ALTER TABLE pending ADD COLUMN preview TEXT;
";

/// An open database: one SQLite connection behind a lock. The descriptors of the
/// file this process opened to check it are kept open until the last connection
/// to the file in this process is closed (see the [module documentation](self)).
/// Share it through the `Arc` [`open`] gives.
pub struct Database {
    conn: Mutex<Option<Connection>>,
    path: PathBuf,
    id: (u64, u64),
}

/// The connection of a [`Database`], locked for the holder's use.
pub struct Guard<'a>(MutexGuard<'a, Option<Connection>>);

impl std::ops::Deref for Guard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.0.as_ref().expect("open until the database is dropped")
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.0.as_mut().expect("open until the database is dropped")
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The connection, locked for the caller's use. Never hold it across an await.
    pub fn lock(&self) -> Guard<'_> {
        Guard(self.conn.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many descriptors of the file this process keeps open besides SQLite's
    /// own (1, or more if the file was opened by several names).
    pub fn kept_descriptors(&self) -> usize {
        let registry = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        registry
            .iter()
            .find(|f| f.id == self.id)
            .map_or(0, |f| f.kept.len())
    }
}

impl Drop for Database {
    /// Close the connection; close the kept descriptors only if no other
    /// connection to the file is open in this process (one may have been opened
    /// by a thread that found this one already dropping). Serialised with
    /// [`open`] by the registry's lock.
    fn drop(&mut self) {
        let mut registry = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        drop(
            self.conn
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let me: *const Database = self;
        if let Some(pos) = registry.iter().position(|f| f.id == self.id) {
            registry[pos]
                .dbs
                .retain(|(_, w)| !std::ptr::eq(w.as_ptr(), me));
            if registry[pos].dbs.is_empty() {
                // The last connection is closed: now the descriptors may be.
                registry.swap_remove(pos);
            }
        }
    }
}

/// A file this process has open: its identity (device, inode), the descriptors
/// kept open for it, and its databases by the absolute path each was opened by.
/// A database stays listed until its `Drop` has closed its connection.
struct OpenFile {
    id: (u64, u64),
    kept: Vec<File>,
    dbs: Vec<(PathBuf, Weak<Database>)>,
}

/// Every database file this process has open. Held while opening and while
/// closing, so that a descriptor is never closed while a connection to its
/// file is open.
static OPEN: Mutex<Vec<OpenFile>> = Mutex::new(Vec::new());

/// Open the database at `path`, creating it (and its directory) root-only if
/// missing, refusing it if its permissions are too open, and migrating its
/// schema. A file this process already has open (by any name) is not opened
/// again: the same [`Database`] is returned.
pub fn open(path: &Path) -> Result<Arc<Database>> {
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ensure_private_dir(dir)?;
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let absolute = std::fs::canonicalize(dir).map_err(io)?.join(name);
    let mut registry = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    // Already open by this name: no descriptor is opened (nor, so, closed).
    if let Some(db) = registry
        .iter()
        .flat_map(|f| f.dbs.iter())
        .filter(|(p, _)| *p == absolute)
        .find_map(|(_, w)| w.upgrade())
    {
        return Ok(db);
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let id = (meta.dev(), meta.ino());
    // From here the descriptor is kept with its file's entry: it is closed only
    // once no connection to the file is open in this process.
    let pos = match registry.iter().position(|f| f.id == id) {
        Some(pos) => pos,
        None => {
            registry.push(OpenFile {
                id,
                kept: Vec::new(),
                dbs: Vec::new(),
            });
            registry.len() - 1
        }
    };
    registry[pos].kept.push(file);
    // No `Arc` of a database may be dropped while the registry is locked (its
    // `Drop` takes the lock): every one made below is returned.
    let result = match secret::check_protected(path, &meta, 0o077) {
        Err(e) => Err(e),
        Ok(()) => match registry[pos].dbs.iter().find_map(|(_, w)| w.upgrade()) {
            // Already open by another name: the same database.
            Some(db) => Ok(db),
            None => connect(path, id).map(|conn| {
                Arc::new(Database {
                    conn: Mutex::new(Some(conn)),
                    path: path.to_path_buf(),
                    id,
                })
            }),
        },
    };
    match &result {
        Ok(db) => registry[pos].dbs.push((absolute, Arc::downgrade(db))),
        // No connection to the file is open or closing here: close the descriptors.
        Err(_) if registry[pos].dbs.is_empty() => {
            registry.swap_remove(pos);
        }
        Err(_) => {}
    }
    result
}

/// Open SQLite's connection to `path`, which must still be the file `id`, in
/// WAL mode with synchronous writes, and migrate its schema.
fn connect(path: &Path, id: (u64, u64)) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // SQLite opened the path again: it must be the file that was checked.
    let now = std::fs::symlink_metadata(path).map_err(|source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if (now.dev(), now.ino()) != id {
        return Err(AuthError::InsecurePermissions {
            path: path.to_path_buf(),
            reason: "the file was replaced while it was being opened".into(),
        });
    }
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
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        if version > 0 {
            tracing::info!(path = %path.display(), from = version, to = SCHEMA_VERSION, "store schema migrated");
        }
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
    secret::check_owner(&meta, insecure)
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
        let db = open(&path).unwrap();
        let conn = db.lock();
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
        drop(db);
        // Reopening keeps the data.
        let db = open(&path).unwrap();
        let n: i64 = db
            .lock()
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

        let db = open(&p).unwrap();
        db.lock().pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        assert!(matches!(
            open(&p).unwrap_err(),
            AuthError::SchemaTooNew { found: 99, .. }
        ));
    }

    #[test]
    fn one_database_per_file_per_process_keeping_its_descriptors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("auth.db");
        let a = open(&path).unwrap();
        let b = open(&tmp.path().join(".").join("auth.db")).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the same file opens one connection");
        assert_eq!(a.kept_descriptors(), 1, "no second descriptor was opened");
        // By another name (a hard link): the same database, and the descriptor
        // opened to check it is kept, never closed under SQLite's locks.
        let link = tmp.path().join("link.db");
        std::fs::hard_link(&path, &link).unwrap();
        let c = open(&link).unwrap();
        assert!(Arc::ptr_eq(&a, &c));
        assert_eq!(a.kept_descriptors(), 2);
        drop((a, b, c));
        // Once closed, it opens afresh.
        let d = open(&path).unwrap();
        assert_eq!(d.kept_descriptors(), 1);
    }

    #[test]
    fn a_version_1_store_is_migrated() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let db = open(&path).unwrap();
        let conn = db.lock();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM totp_failures", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // Version 3's column, empty.
        let n: i64 = conn
            .query_row("SELECT count(declaration) FROM pending", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // Version 4's column, empty.
        let n: i64 = conn
            .query_row("SELECT count(preview) FROM pending", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn concurrent_opens_and_drops_neither_deadlock_nor_leak_descriptors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("auth.db");
        drop(open(&path).unwrap());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..25 {
                        let db = open(&path).unwrap();
                        db.lock()
                            .execute("INSERT INTO totp_users VALUES (hex(randomblob(8)), x'00', NULL, 0)", [])
                            .unwrap();
                    }
                });
            }
        });
        let db = open(&path).unwrap();
        assert_eq!(
            db.kept_descriptors(),
            1,
            "every other descriptor was closed"
        );
        let n: i64 = db
            .lock()
            .query_row("SELECT count(*) FROM totp_users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200);
    }
}
