//! The persistent pending-request store and the decisions audit, in the root-only
//! SQLite database (see [`crate::db`]).
//!
//! A record holds exactly what will run (operation and validated data), who asked,
//! the stages and where the request is in them, and the current stage's state. The
//! current stage's uid is stored only as its SHA-256. Changes that consume a uid are
//! compare-and-set on that hash, so a uid is used once even under races.

use crate::caller::CallerId;
use crate::{db, AuthError, Result};
use data_encoding::HEXLOWER;
use regent_model::Stage;
use regent_proto::PendingInfo;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The SHA-256 of a uid, hex: what the store keeps instead of the uid.
pub fn uid_hash(uid: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(uid.as_bytes()))
}

/// The SHA-256 of an operation's canonical declaration, hex: what a held request
/// keeps to tell, when it would run, whether its operation changed meanwhile.
pub fn declaration_digest(canonical: &[u8]) -> String {
    HEXLOWER.encode(&Sha256::digest(canonical))
}

/// Milliseconds since the Unix epoch (0 before it, saturating far after).
pub fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Where a pending request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// Waiting on its current stage.
    Pending,
    /// An administrator denied it; the next poll answers `denied`.
    Denied,
    /// Its challenge could not be delivered; the next poll answers `operation_failed`.
    Failed,
}

impl RecordStatus {
    fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Pending => "pending",
            RecordStatus::Denied => "denied",
            RecordStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<RecordStatus> {
        match s {
            "pending" => Some(RecordStatus::Pending),
            "denied" => Some(RecordStatus::Denied),
            "failed" => Some(RecordStatus::Failed),
            _ => None,
        }
    }
}

/// One pending request.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRecord {
    /// Stable id shown to administrators.
    pub request_id: String,
    /// SHA-256 (hex) of the current stage's uid.
    pub stage_uid_hash: String,
    /// The operation to run.
    pub op: String,
    /// Its validated data: exactly what runs.
    pub data: Value,
    /// The data with secret parameters redacted, for display and email.
    pub display_data: Value,
    /// Who asked.
    pub caller: CallerId,
    /// Approver email addresses.
    pub approvers: Vec<String>,
    /// The stages, in order (stored as their names). A hook may add a stage the
    /// request already passed, so this is a path, not a set.
    pub stages: Vec<Stage>,
    /// The current stage.
    pub stage_index: usize,
    /// The current stage's state (method-specific JSON).
    pub stage_state: Value,
    /// The pending response for the current stage.
    pub pending_info: PendingInfo,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Failed attempts after which the request is dropped.
    pub max_attempts: u32,
    /// When the request was made.
    pub created_at: SystemTime,
    /// When it expires.
    pub expires_at: SystemTime,
    /// Where it stands.
    pub status: RecordStatus,
    /// Why it was denied or failed (a sentence safe to show the caller).
    pub status_reason: Option<String>,
    /// The digest ([`declaration_digest`]) of the operation's declaration when
    /// the request was held; `None` for a request held by a build before schema
    /// version 3, or by a service whose operation has no declaration.
    pub declaration: Option<String>,
    /// What a dry run of the request answered when it was held (for an
    /// operation that offers dry runs: the change an approver approves, e.g. a
    /// diff and the hash of the file it was made from); approvers see it, and
    /// the run gets it back to refuse a world that changed since.
    pub preview: Option<Value>,
}

impl PendingRecord {
    /// The current stage (`None` past the last one: a corrupt record).
    pub fn stage(&self) -> Option<&Stage> {
        self.stages.get(self.stage_index)
    }
}

/// An administrator's decision, as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The request decided.
    pub request_id: String,
    /// Its operation.
    pub op: String,
    /// Who had asked (uid).
    pub caller_uid: u32,
    /// Who had asked (name), if known.
    pub caller_user: Option<String>,
    /// `approved` or `denied`.
    pub decision: String,
    /// Who decided (uid).
    pub by_uid: u32,
    /// Who decided (name), if known.
    pub by_user: Option<String>,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// When.
    pub at: SystemTime,
}

/// The pending store. Thread-safe; every write is durable when it returns.
pub struct PendingStore {
    db: Arc<db::Database>,
    path: PathBuf,
}

/// Caps on the requests held at once (see [`PendingStore::insert_capped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCaps {
    /// Held requests in the whole store.
    pub total: u32,
    /// Held requests of one caller uid, all operations together.
    pub per_uid: u32,
    /// Held requests of one caller uid for the record's operation.
    pub per_uid_op: u32,
}

/// Which cap refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapReached {
    /// [`PendingCaps::total`].
    Total,
    /// [`PendingCaps::per_uid`].
    PerUid,
    /// [`PendingCaps::per_uid_op`].
    PerUidOp,
}

impl CapReached {
    /// Whose requests the cap counts, as a sentence says it.
    pub fn what(self) -> &'static str {
        match self {
            CapReached::PerUidOp => "for this operation by this user",
            CapReached::PerUid => "by this user",
            CapReached::Total => "in all",
        }
    }
}

/// What [`PendingStore::insert_capped`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The record is stored.
    Stored,
    /// Its request id or uid hash is taken; nothing stored.
    Taken,
    /// A cap is reached; nothing stored.
    Full(CapReached),
}

impl std::fmt::Debug for PendingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingStore")
            .field("path", &self.path)
            .finish()
    }
}

const COLUMNS: &str =
    "request_id, stage_uid_hash, op, data, display_data, caller_uid, caller_gid, caller_pid,
    caller_user, approvers, stages, stage_index, stage_state, pending_info, attempts, max_attempts,
    created_at, expires_at, status, status_reason, declaration, preview";

// Statements on the administrator's and the caps' paths; each finds its rows
// through an index (see the query-plan test).
const SQL_APPROVE: &str = "UPDATE pending SET stage_state = ?3
    WHERE request_id = ?1 AND stage_index = ?2 AND status = 'pending'";
const SQL_DENY: &str = "UPDATE pending SET status = 'denied', status_reason = ?2
    WHERE request_id = ?1 AND status = 'pending'";
// A TLS client's records are counted by its name too (see [`stored_user`]):
// `?3`/`?2` is `NAME ` (with its space) for a TLS client, else NULL.
const SQL_COUNT_UID_OP: &str = "SELECT count(*) FROM pending WHERE caller_uid = ?1 AND op = ?2
    AND (?3 IS NULL OR substr(caller_user, 1, length(?3)) = ?3)";
const SQL_COUNT_UID: &str = "SELECT count(*) FROM pending WHERE caller_uid = ?1
    AND (?2 IS NULL OR substr(caller_user, 1, length(?2)) = ?2)";

/// What the `caller_user` column keeps: the user name of a Unix caller; for a
/// TLS client (uid [`regent_model::TLS_ID`], which no Unix caller has) its
/// name, certificate serial and address, separated by spaces, so that a
/// record read back is bound to the same client.
fn stored_user(caller: &CallerId) -> Option<String> {
    match &caller.peer {
        regent_model::Peer::Unix => caller.user.clone(),
        regent_model::Peer::Tls {
            name,
            serial,
            address,
        } => Some(format!("{name} {serial} {address}")),
    }
}

/// The caller of a record read back ([`stored_user`]'s inverse).
fn stored_caller(pid: Option<i32>, uid: u32, gid: u32, user: Option<String>) -> CallerId {
    if uid == regent_model::TLS_ID {
        if let Some(text) = &user {
            let mut parts = text.splitn(3, ' ');
            if let (Some(name), Some(serial), Some(Ok(address))) =
                (parts.next(), parts.next(), parts.next().map(str::parse))
            {
                if regent_model::valid_client_name(name) {
                    return CallerId::tls(name.to_string(), serial.to_string(), address);
                }
            }
        }
    }
    CallerId::unix(pid, uid, gid, user)
}

fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("JSON values serialise")
}

fn corrupt(id: &str, what: &str, e: impl std::fmt::Display) -> AuthError {
    AuthError::Corrupt {
        id: id.to_string(),
        reason: format!("{what}: {e}"),
    }
}

/// A row, still undecoded: SQLite errors stay apart from decoding errors.
struct RawRecord {
    text: [String; 10],
    ints: [i64; 7],
    pid: Option<i64>,
    user: Option<String>,
    reason: Option<String>,
    declaration: Option<String>,
    preview: Option<String>,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        // request_id, stage_uid_hash, op, data, display_data, approvers, stages,
        // stage_state, pending_info, status
        text: [
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(9)?,
            r.get(10)?,
            r.get(12)?,
            r.get(13)?,
            r.get(18)?,
        ],
        // caller_uid, caller_gid, stage_index, attempts, max_attempts, created_at, expires_at
        ints: [
            r.get(5)?,
            r.get(6)?,
            r.get(11)?,
            r.get(14)?,
            r.get(15)?,
            r.get(16)?,
            r.get(17)?,
        ],
        pid: r.get(7)?,
        user: r.get(8)?,
        reason: r.get(19)?,
        declaration: r.get(20)?,
        preview: r.get(21)?,
    })
}

fn decode(r: RawRecord) -> Result<PendingRecord> {
    let [request_id, stage_uid_hash, op, data, display_data, approvers, stages, state, info, status] =
        r.text;
    let [uid, gid, index, attempts, max_attempts, created, expires] = r.ints;
    let id = request_id.as_str();
    let json =
        |what: &str, s: &str| serde_json::from_str::<Value>(s).map_err(|e| corrupt(id, what, e));
    Ok(PendingRecord {
        data: json("data", &data)?,
        display_data: json("display_data", &display_data)?,
        caller: stored_caller(
            r.pid.and_then(|p| i32::try_from(p).ok()),
            u32::try_from(uid).map_err(|e| corrupt(id, "caller_uid", e))?,
            u32::try_from(gid).map_err(|e| corrupt(id, "caller_gid", e))?,
            r.user,
        ),
        approvers: serde_json::from_str(&approvers).map_err(|e| corrupt(id, "approvers", e))?,
        stages: serde_json::from_str(&stages).map_err(|e| corrupt(id, "stages", e))?,
        stage_index: usize::try_from(index).map_err(|e| corrupt(id, "stage_index", e))?,
        stage_state: json("stage_state", &state)?,
        pending_info: serde_json::from_str(&info).map_err(|e| corrupt(id, "pending_info", e))?,
        attempts: u32::try_from(attempts).map_err(|e| corrupt(id, "attempts", e))?,
        max_attempts: u32::try_from(max_attempts).map_err(|e| corrupt(id, "max_attempts", e))?,
        created_at: from_ms(created),
        expires_at: from_ms(expires),
        status: RecordStatus::parse(&status).ok_or_else(|| corrupt(id, "status", &status))?,
        status_reason: r.reason,
        declaration: r.declaration,
        preview: r.preview.map(|p| json("preview", &p)).transpose()?,
        stage_uid_hash,
        op,
        request_id,
    })
}

impl PendingStore {
    /// Open (creating root-only if missing) the database at `path`.
    /// The TOTP store of the same file shares its connection (see [`crate::db`]).
    pub fn open(path: &Path) -> Result<PendingStore> {
        Ok(PendingStore {
            db: db::open(path)?,
            path: path.to_path_buf(),
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> db::Guard<'_> {
        self.db.lock()
    }

    /// The shared database (for tests and diagnostics).
    pub fn database(&self) -> &Arc<db::Database> {
        &self.db
    }

    /// Insert a new record; `false` if its request id or uid hash is taken.
    pub fn insert(&self, r: &PendingRecord) -> Result<bool> {
        insert_record(&self.conn(), r)
    }

    /// Insert a new record unless a cap is reached: the counts and the insert are
    /// one transaction, so concurrent requests cannot overshoot. Every stored
    /// record counts (expired ones are purged by the caller first).
    pub fn insert_capped(&self, r: &PendingRecord, caps: &PendingCaps) -> Result<Inserted> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u64> {
            let n: i64 = tx.query_row(sql, p, |row| row.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let uid = i64::from(r.caller.uid);
        let client = r.caller.client().map(|name| format!("{name} "));
        let checks = [
            (
                CapReached::PerUidOp,
                caps.per_uid_op,
                count(SQL_COUNT_UID_OP, &[&uid, &r.op, &client])?,
            ),
            (
                CapReached::PerUid,
                caps.per_uid,
                count(SQL_COUNT_UID, &[&uid, &client])?,
            ),
            (
                CapReached::Total,
                caps.total,
                count("SELECT count(*) FROM pending", &[])?,
            ),
        ];
        if let Some((which, _, _)) = checks.iter().find(|(_, cap, n)| *n >= u64::from(*cap)) {
            return Ok(Inserted::Full(*which));
        }
        let stored = insert_record(&tx, r)?;
        tx.commit()?;
        Ok(if stored {
            Inserted::Stored
        } else {
            Inserted::Taken
        })
    }

    /// One page of the records still waiting (status pending, not expired at
    /// `now`), newest first (in order of insertion within a millisecond), optionally only for the operations in `ops`; and how
    /// many such records there are in all.
    pub fn page(
        &self,
        ops: Option<&[String]>,
        limit: usize,
        now: SystemTime,
    ) -> Result<(Vec<PendingRecord>, u64)> {
        let conn = self.conn();
        let mut filter = String::from("status = 'pending' AND expires_at > ?1");
        let mut args: Vec<&dyn rusqlite::ToSql> = Vec::new();
        let now = to_ms(now);
        args.push(&now);
        if let Some(ops) = ops {
            if ops.is_empty() {
                return Ok((Vec::new(), 0));
            }
            let marks: Vec<String> = (0..ops.len()).map(|i| format!("?{}", i + 2)).collect();
            filter.push_str(&format!(" AND op IN ({})", marks.join(", ")));
            args.extend(ops.iter().map(|o| o as &dyn rusqlite::ToSql));
        }
        let total: i64 = conn.query_row(
            &format!("SELECT count(*) FROM pending WHERE {filter}"),
            args.as_slice(),
            |r| r.get(0),
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM pending WHERE {filter}
             ORDER BY created_at DESC, rowid DESC LIMIT {limit}"
        ))?;
        let raws = stmt
            .query_map(args.as_slice(), raw)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let records = raws.into_iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok((records, u64::try_from(total).unwrap_or(0)))
    }
}

fn insert_record(conn: &Connection, r: &PendingRecord) -> Result<bool> {
    let n = conn.execute(
            &format!("INSERT OR IGNORE INTO pending ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                      ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"),
            params![
                r.request_id,
                r.stage_uid_hash,
                r.op,
                json_text(&r.data),
                json_text(&r.display_data),
                r.caller.uid,
                r.caller.gid,
                r.caller.pid,
                stored_user(&r.caller),
                json_text(&r.approvers),
                json_text(&r.stages),
                r.stage_index as i64,
                json_text(&r.stage_state),
                json_text(&r.pending_info),
                r.attempts,
                r.max_attempts,
                to_ms(r.created_at),
                to_ms(r.expires_at),
                r.status.as_str(),
                r.status_reason,
                r.declaration,
                r.preview.as_ref().map(json_text),
            ],
        )?;
    Ok(n == 1)
}

impl PendingStore {
    fn one(&self, where_clause: &str, key: &str) -> Result<Option<PendingRecord>> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM pending WHERE {where_clause} = ?1"),
                params![key],
                raw,
            )
            .optional()?;
        raw.map(decode).transpose()
    }

    /// The record whose current uid has this hash.
    pub fn by_uid_hash(&self, hash: &str) -> Result<Option<PendingRecord>> {
        self.one("stage_uid_hash", hash)
    }

    /// The record with this request id.
    pub fn by_request_id(&self, request_id: &str) -> Result<Option<PendingRecord>> {
        self.one("request_id", request_id)
    }

    /// Every record, oldest first.
    pub fn list(&self) -> Result<Vec<PendingRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM pending ORDER BY created_at, request_id"
        ))?;
        let raws = stmt
            .query_map([], raw)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(decode).collect()
    }

    /// Move to another stage, consuming the current uid: set a new uid hash, stage
    /// list, index, state and pending response, and reset the attempts. `false`
    /// if the record is gone or its uid already changed.
    #[allow(clippy::too_many_arguments)]
    pub fn advance(
        &self,
        request_id: &str,
        old_hash: &str,
        new_hash: &str,
        stages: &[Stage],
        index: usize,
        state: &Value,
        info: &PendingInfo,
    ) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE pending SET stage_uid_hash = ?3, stages = ?4, stage_index = ?5, stage_state = ?6,
                 pending_info = ?7, attempts = 0
             WHERE request_id = ?1 AND stage_uid_hash = ?2 AND status = 'pending'",
            params![request_id, old_hash, new_hash, json_text(&stages), index as i64, json_text(state), json_text(info)],
        )?;
        Ok(n == 1)
    }

    /// Count a failed attempt at the stage with this uid hash; the new count, or
    /// `None` if the record is gone or has moved on.
    pub fn add_attempt(&self, request_id: &str, hash: &str) -> Result<Option<u32>> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE pending SET attempts = attempts + 1 WHERE request_id = ?1 AND stage_uid_hash = ?2",
            params![request_id, hash],
        )?;
        if n == 0 {
            return Ok(None);
        }
        let a: i64 = conn.query_row(
            "SELECT attempts FROM pending WHERE request_id = ?1",
            params![request_id],
            |r| r.get(0),
        )?;
        Ok(Some(u32::try_from(a).unwrap_or(u32::MAX)))
    }

    /// Mark the record failed (its challenge could not be delivered), if it is
    /// still at the stage with this uid hash.
    pub fn mark_failed(&self, request_id: &str, hash: &str, reason: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE pending SET status = 'failed', status_reason = ?3
             WHERE request_id = ?1 AND stage_uid_hash = ?2 AND status = 'pending'",
            params![request_id, hash, reason],
        )?;
        Ok(n == 1)
    }

    /// Record an approval: set the state of stage `index` and audit it, in one
    /// transaction. `false` if the record is gone, decided or at another stage.
    pub fn approve(&self, index: usize, state: &Value, decision: &Decision) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            SQL_APPROVE,
            params![decision.request_id, index as i64, json_text(state)],
        )?;
        if n == 1 {
            insert_decision(&tx, decision)?;
            tx.commit()?;
        }
        Ok(n == 1)
    }

    /// Record a denial: mark the record denied with the reason and audit it, in
    /// one transaction. `false` if the record is gone or already decided.
    pub fn deny(&self, decision: &Decision) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(SQL_DENY, params![decision.request_id, decision.reason])?;
        if n == 1 {
            insert_decision(&tx, decision)?;
            tx.commit()?;
        }
        Ok(n == 1)
    }

    /// Delete a record; whether it existed.
    pub fn delete(&self, request_id: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "DELETE FROM pending WHERE request_id = ?1",
            params![request_id],
        )? == 1)
    }

    /// Delete a record only if its current uid hash is `hash` (consumes the uid
    /// atomically); whether it did.
    pub fn take(&self, request_id: &str, hash: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "DELETE FROM pending WHERE request_id = ?1 AND stage_uid_hash = ?2",
            params![request_id, hash],
        )? == 1)
    }

    /// Delete every record expired at `now`; how many.
    pub fn purge_expired(&self, now: SystemTime) -> Result<usize> {
        Ok(self.conn().execute(
            "DELETE FROM pending WHERE expires_at <= ?1",
            params![to_ms(now)],
        )?)
    }

    /// The audited decisions, oldest first, for one request or all.
    pub fn decisions(&self, request_id: Option<&str>) -> Result<Vec<Decision>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT request_id, op, caller_uid, caller_user, decision, by_uid, by_user, reason, at
             FROM decisions WHERE ?1 IS NULL OR request_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![request_id], |r| {
            Ok(Decision {
                request_id: r.get(0)?,
                op: r.get(1)?,
                caller_uid: r.get(2)?,
                caller_user: r.get(3)?,
                decision: r.get(4)?,
                by_uid: r.get(5)?,
                by_user: r.get(6)?,
                reason: r.get(7)?,
                at: from_ms(r.get(8)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

fn insert_decision(conn: &Connection, d: &Decision) -> Result<()> {
    conn.execute(
        "INSERT INTO decisions (request_id, op, caller_uid, caller_user, decision, by_uid, by_user, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![d.request_id, d.op, d.caller_uid, d.caller_user, d.decision, d.by_uid, d.by_user, d.reason, to_ms(d.at)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn record(id: &str, uid: &str, expires_in: Duration) -> PendingRecord {
        let now = SystemTime::now();
        PendingRecord {
            request_id: id.into(),
            stage_uid_hash: uid_hash(uid),
            op: "restart".into(),
            data: json!({"service": "nginx"}),
            display_data: json!({"service": "nginx"}),
            caller: CallerId::unix(Some(42), 1000, 1000, Some("alice".into())),
            approvers: vec!["admin@example.org".into()],
            stages: vec![Stage::Email, Stage::Approval],
            stage_index: 0,
            stage_state: json!({"k": 1}),
            pending_info: PendingInfo {
                pending: "email".into(),
                message: "Enter the code".into(),
                expires_at: "2030-01-01T00:00:00Z".into(),
                extra: Default::default(),
            },
            attempts: 0,
            max_attempts: 5,
            created_at: from_ms(to_ms(now)),
            expires_at: from_ms(to_ms(now + expires_in)),
            status: RecordStatus::Pending,
            status_reason: None,
            declaration: Some(declaration_digest(b"test")),
            preview: None,
        }
    }

    #[test]
    fn round_trip_cas_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let s = PendingStore::open(&dir.path().join("p.db")).unwrap();
        let r = record("req1", "uid-one", Duration::from_secs(600));
        assert!(s.insert(&r).unwrap());
        assert!(!s.insert(&r).unwrap(), "duplicate id refused");
        assert_eq!(s.by_uid_hash(&uid_hash("uid-one")).unwrap().unwrap(), r);
        assert_eq!(s.by_request_id("req1").unwrap().unwrap(), r);
        assert!(s.by_uid_hash(&uid_hash("uid-two")).unwrap().is_none());

        assert_eq!(
            s.add_attempt("req1", &uid_hash("uid-one")).unwrap(),
            Some(1)
        );
        assert_eq!(s.add_attempt("req1", &uid_hash("stale")).unwrap(), None);
        let info = r.pending_info.clone();
        assert!(s
            .advance(
                "req1",
                &uid_hash("uid-one"),
                &uid_hash("uid-two"),
                &r.stages,
                1,
                &json!(null),
                &info
            )
            .unwrap());
        assert!(!s
            .advance(
                "req1",
                &uid_hash("uid-one"),
                &uid_hash("uid-3"),
                &r.stages,
                1,
                &json!(null),
                &info
            )
            .unwrap());
        let got = s.by_uid_hash(&uid_hash("uid-two")).unwrap().unwrap();
        assert_eq!(
            (got.stage_index, got.attempts, got.stage()),
            (1, 0, Some(&Stage::Approval))
        );

        let d = Decision {
            request_id: "req1".into(),
            op: "restart".into(),
            caller_uid: 1000,
            caller_user: Some("alice".into()),
            decision: "denied".into(),
            by_uid: 0,
            by_user: Some("root".into()),
            reason: Some("no".into()),
            at: from_ms(to_ms(SystemTime::now())),
        };
        assert!(s.deny(&d).unwrap());
        assert!(!s.deny(&d).unwrap(), "already decided");
        let got = s.by_request_id("req1").unwrap().unwrap();
        assert_eq!(
            (got.status, got.status_reason.as_deref()),
            (RecordStatus::Denied, Some("no"))
        );
        assert_eq!(s.decisions(None).unwrap(), vec![d.clone()]);
        assert_eq!(s.decisions(Some("other")).unwrap(), vec![]);

        let old = record("req2", "uid-old", Duration::ZERO);
        assert!(s.insert(&old).unwrap());
        assert_eq!(
            s.purge_expired(SystemTime::now() + Duration::from_millis(1))
                .unwrap(),
            1
        );
        assert!(s.by_request_id("req2").unwrap().is_none());
        assert_eq!(s.list().unwrap().len(), 1);
        assert!(s.take("req1", &uid_hash("uid-two")).unwrap());
        assert!(s.list().unwrap().is_empty());
    }

    fn plan(s: &PendingStore, sql: &str) -> String {
        let conn = s.conn();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(vec![rusqlite::types::Null; n]),
                |r| r.get::<_, String>(3),
            )
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        rows.join("; ")
    }

    #[test]
    fn lookups_by_id_approve_deny_and_caps_use_indexes_not_scans() {
        let dir = tempfile::tempdir().unwrap();
        let s = PendingStore::open(&dir.path().join("p.db")).unwrap();
        for sql in [
            format!("SELECT {COLUMNS} FROM pending WHERE request_id = ?1"),
            format!("SELECT {COLUMNS} FROM pending WHERE stage_uid_hash = ?1"),
            SQL_APPROVE.to_string(),
            SQL_DENY.to_string(),
            SQL_COUNT_UID_OP.to_string(),
            SQL_COUNT_UID.to_string(),
            "DELETE FROM pending WHERE request_id = ?1 AND stage_uid_hash = ?2".to_string(),
        ] {
            let p = plan(&s, &sql);
            assert!(p.contains("SEARCH"), "{sql}: {p}");
            assert!(!p.contains("SCAN"), "{sql} scans the table: {p}");
        }
    }

    #[test]
    fn caps_refuse_beyond_each_limit_and_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = PendingStore::open(&dir.path().join("p.db")).unwrap();
        let caps = PendingCaps {
            total: 4,
            per_uid: 3,
            per_uid_op: 2,
        };
        let hour = Duration::from_secs(3600);
        let mut n = 0;
        let mut rec = |uid: u32, op: &str| {
            n += 1;
            let mut r = record(&format!("r{n}"), &format!("u{n}"), hour);
            r.caller.uid = uid;
            r.op = op.into();
            r
        };
        assert_eq!(
            s.insert_capped(&rec(1, "a"), &caps).unwrap(),
            Inserted::Stored
        );
        assert_eq!(
            s.insert_capped(&rec(1, "a"), &caps).unwrap(),
            Inserted::Stored
        );
        assert_eq!(
            s.insert_capped(&rec(1, "a"), &caps).unwrap(),
            Inserted::Full(CapReached::PerUidOp)
        );
        assert_eq!(
            s.insert_capped(&rec(1, "b"), &caps).unwrap(),
            Inserted::Stored
        );
        assert_eq!(
            s.insert_capped(&rec(1, "c"), &caps).unwrap(),
            Inserted::Full(CapReached::PerUid)
        );
        assert_eq!(
            s.insert_capped(&rec(2, "a"), &caps).unwrap(),
            Inserted::Stored
        );
        assert_eq!(
            s.insert_capped(&rec(3, "a"), &caps).unwrap(),
            Inserted::Full(CapReached::Total)
        );
        assert_eq!(s.list().unwrap().len(), 4);
        let dup = s.by_request_id("r1").unwrap().unwrap();
        let roomy = PendingCaps {
            total: 100,
            per_uid: 100,
            per_uid_op: 100,
        };
        assert_eq!(s.insert_capped(&dup, &roomy).unwrap(), Inserted::Taken);
    }

    #[test]
    fn a_tls_client_is_kept_by_name_and_capped_per_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = PendingStore::open(&dir.path().join("p.db")).unwrap();
        let caps = PendingCaps {
            total: 100,
            per_uid: 2,
            per_uid_op: 100,
        };
        let hour = Duration::from_secs(3600);
        let mut n = 0;
        let mut rec = |name: &str| {
            n += 1;
            let mut r = record(&format!("t{n}"), &format!("v{n}"), hour);
            r.caller = CallerId::tls(
                name.into(),
                "1A2B".into(),
                "[2001:db8::1]:443".parse().unwrap(),
            );
            r
        };
        for _ in 0..2 {
            assert_eq!(
                s.insert_capped(&rec("panel"), &caps).unwrap(),
                Inserted::Stored
            );
        }
        assert_eq!(
            s.insert_capped(&rec("panel"), &caps).unwrap(),
            Inserted::Full(CapReached::PerUid)
        );
        // Another client (even one whose name extends this one's) has its own count.
        assert_eq!(
            s.insert_capped(&rec("panel2"), &caps).unwrap(),
            Inserted::Stored
        );
        assert_eq!(
            s.insert_capped(&rec("pane"), &caps).unwrap(),
            Inserted::Stored
        );
        assert_eq!(
            s.insert_capped(&rec("pan_l"), &caps).unwrap(),
            Inserted::Stored
        );
        let back = s.by_request_id("t1").unwrap().unwrap().caller;
        assert_eq!(back.peer, rec("panel").caller.peer);
        assert_eq!(back.key(), regent_model::CallerKey::Client("panel".into()));
    }

    #[test]
    fn pages_are_newest_first_filtered_by_operation_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = PendingStore::open(&dir.path().join("p.db")).unwrap();
        let t0 = SystemTime::now();
        for i in 0..5u64 {
            let mut r = record(&format!("r{i}"), &format!("u{i}"), Duration::from_secs(600));
            r.created_at = from_ms(to_ms(t0) + i as i64);
            r.op = if i % 2 == 0 { "even" } else { "odd" }.into();
            s.insert(&r).unwrap();
        }
        let mut expired = record("old", "u-old", Duration::ZERO);
        expired.created_at = from_ms(to_ms(t0) + 100);
        s.insert(&expired).unwrap();
        // The expired one is past; the others are not.
        let later = SystemTime::now() + Duration::from_secs(1);
        let ids = |v: &[PendingRecord]| v.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>();
        let (page, total) = s.page(None, 2, later).unwrap();
        assert_eq!((ids(&page), total), (vec!["r4".into(), "r3".into()], 5));
        let even = ["even".to_string()];
        let (page, total) = s.page(Some(&even), 10, later).unwrap();
        assert_eq!(
            (ids(&page), total),
            (vec!["r4".into(), "r2".into(), "r0".into()], 3)
        );
        let (page, total) = s.page(Some(&[]), 10, later).unwrap();
        assert_eq!((page.len(), total), (0, 0));
    }
}
