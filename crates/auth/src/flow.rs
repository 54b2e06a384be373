//! The engine the service calls for operations that need out-of-channel
//! authorization: [`AuthFlow`].
//!
//! - [`AuthFlow::start`] stores the validated request and begins its first stage;
//! - [`AuthFlow::resume`] takes the caller's uid and response, checks the current
//!   stage, and answers with the next stage's pending response, an error, or
//!   [`FlowOutcome::Run`] with exactly the stored operation and data;
//! - [`AuthFlow::list_page`], [`AuthFlow::request_op`], [`AuthFlow::approve`],
//!   [`AuthFlow::deny`] serve the administrator channel: newest first, a page at a
//!   time, requests found by their id (the table's key), never by a scan.
//!
//! [`AuthFlow::start`] holds a request only under the caps of [`FlowOptions`]
//! (in all, per caller uid) and of the request (per caller uid and operation),
//! counted and inserted in one transaction; beyond them it answers `busy`.
//!
//! Every completed stage consumes its uid (compare-and-set in the store) and issues
//! a new one. Unknown, expired, used and foreign uids all answer the same
//! `not_found`. One check runs at a time per request (a concurrent one answers
//! `busy`), so parallel guesses cannot exceed the attempt limit.
//!
//! Store work (SQLite, behind the store's one connection lock) made by `start`,
//! `resume` and the administrator's calls runs on tokio's blocking pool, never on
//! an async worker; steps that must not be split (counting a wrong code and
//! dropping the request at the limit) run in one blocking call.
//!
//! Deliveries (emails) run on a spawned task. `start`/`resume` wait for them up to
//! [`FlowOptions::delivery_wait`]: a failure within that time drops the request and
//! answers `operation_failed`; a later failure marks the record failed, and the next
//! poll with the uid answers `operation_failed`.

use crate::method::{Check, Delivery, MethodError, MethodRegistry, StageContext, StageStart};
use crate::store::{
    uid_hash, CapReached, Decision, Inserted, PendingCaps, PendingRecord, PendingStore,
    RecordStatus,
};
use crate::{random, AuthError, Result};
use regent_proto::{ErrorCode, PendingInfo, Response};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Who is calling, as the kernel (or a TLS certificate) says: the shared
/// [`regent_model::Principal`]. A record read back from the store knows the
/// caller's pid, ids and user name, not its groups.
pub type CallerId = regent_model::Principal;

/// A validated request that needs authorization.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// The operation's name.
    pub op: String,
    /// Its validated data: exactly what will run.
    pub data: Value,
    /// The data with secret parameters redacted, for admins and emails.
    pub display_data: Value,
    /// Who asked.
    pub caller: CallerId,
    /// The stages' method names, in order.
    pub stages: Vec<String>,
    /// How long the request may wait.
    pub ttl: Duration,
    /// Failed attempts after which the request is dropped (0 is taken as 1).
    pub max_attempts: u32,
    /// Approver email addresses.
    pub approvers: Vec<String>,
    /// Requests of this operation one caller uid may have held at once; more
    /// answer `busy` (0 is taken as 1). The service-wide caps are in
    /// [`FlowOptions`].
    pub max_pending_per_uid: u32,
}

/// What the service does next.
#[must_use]
#[derive(Clone, PartialEq)]
pub enum FlowOutcome {
    /// Authorization is complete: run `op` with `data` (the stored data).
    Run {
        /// The operation.
        op: String,
        /// Its data, as validated when the request started.
        data: Value,
        /// The request id, for logs.
        request_id: String,
    },
    /// Answer a pending response.
    Pending {
        /// The uid for the next step.
        uid: String,
        /// The pending information.
        info: PendingInfo,
    },
    /// Answer an error.
    Error {
        /// The code.
        code: ErrorCode,
        /// The sentence.
        message: String,
    },
}

impl fmt::Debug for FlowOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowOutcome::Run { op, request_id, .. } => f
                .debug_struct("Run")
                .field("op", op)
                .field("request_id", request_id)
                .finish_non_exhaustive(),
            FlowOutcome::Pending { info, .. } => f
                .debug_struct("Pending")
                .field("uid", &"<redacted>")
                .field("info", info)
                .finish(),
            FlowOutcome::Error { code, message } => f
                .debug_struct("Error")
                .field("code", code)
                .field("message", message)
                .finish(),
        }
    }
}

impl FlowOutcome {
    fn error(code: ErrorCode, message: impl Into<String>) -> FlowOutcome {
        FlowOutcome::Error {
            code,
            message: message.into(),
        }
    }

    fn not_found() -> FlowOutcome {
        FlowOutcome::error(ErrorCode::NotFound, ErrorCode::NotFound.default_message())
    }

    fn internal() -> FlowOutcome {
        FlowOutcome::error(ErrorCode::Internal, ErrorCode::Internal.default_message())
    }

    fn from_method(e: MethodError) -> FlowOutcome {
        FlowOutcome::Error {
            code: e.code,
            message: e.message,
        }
    }

    /// The response to send, or `None` for [`FlowOutcome::Run`] (run the operation).
    pub fn to_response(&self) -> Option<Response> {
        match self {
            FlowOutcome::Run { .. } => None,
            FlowOutcome::Pending { uid, info } => Some(Response::pending(uid.clone(), info)),
            FlowOutcome::Error { code, message } => {
                Some(Response::error_with(*code, message.clone()))
            }
        }
    }

    /// Whether this outcome is a failure the rate limiter should count for the
    /// caller (a wrong code, an unknown uid, a code sent while the user backs off
    /// from too many wrong ones: a caller looping on codes is then paced).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            FlowOutcome::Error {
                code: ErrorCode::AuthFailed | ErrorCode::NotFound | ErrorCode::RateLimited,
                ..
            }
        )
    }

    /// Whether this outcome of [`AuthFlow::resume`] with `uid` says the request is
    /// still waiting at the same stage (an administrator has not decided yet): the
    /// pending response again, with the very uid presented. Any change of stage
    /// issues a new uid, so this is exactly a poll that found nothing new; the
    /// service rate-limits such polls.
    pub fn is_still_waiting(&self, uid: &str) -> bool {
        matches!(self, FlowOutcome::Pending { uid: same, .. } if same == uid)
    }

    /// The error code, if this is an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            FlowOutcome::Error { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What a [`StageHook`] is told after a stage passes.
#[derive(Debug, Clone, Copy)]
pub struct StageReport<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// The operation.
    pub op: &'a str,
    /// Its validated data.
    pub data: &'a Value,
    /// Who asked.
    pub caller: &'a CallerId,
    /// The method of the stage that passed.
    pub stage: &'a str,
    /// Its index.
    pub stage_index: usize,
    /// The stages still to come.
    pub remaining: &'a [String],
}

/// What a hook decides after a stage.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    /// Go on with the remaining stages.
    Continue,
    /// Refuse the request, with an optional reason for the caller.
    Deny(Option<String>),
    /// Replace the remaining stages (empty: the operation runs now).
    ReplaceRemainingStages(Vec<String>),
}

/// Lets the service's operations react after each passed stage (like the Python
/// Regent's `auth_response`). The service passes one hook that dispatches on `op`.
pub trait StageHook: Send + Sync {
    /// Called after a stage passes, before the next begins.
    fn after_stage(&self, report: &StageReport<'_>) -> HookDecision;
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowOptions {
    /// How long `start`/`resume` wait for a delivery (email) before answering
    /// pending anyway; a later failure is answered at the next poll.
    pub delivery_wait: Duration,
    /// Requests held at once in the whole store; more answer `busy`.
    pub max_pending: u32,
    /// Requests one caller uid may have held at once, all operations together;
    /// more answer `busy`.
    pub max_pending_per_uid: u32,
}

/// Defaults of [`FlowOptions::max_pending`] and [`FlowOptions::max_pending_per_uid`].
pub use regent_model::limits::{DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_PER_UID};

impl Default for FlowOptions {
    /// Wait up to 10 s for a delivery; hold at most [`DEFAULT_MAX_PENDING`]
    /// requests, [`DEFAULT_MAX_PENDING_PER_UID`] per caller uid.
    fn default() -> Self {
        FlowOptions {
            delivery_wait: Duration::from_secs(10),
            max_pending: DEFAULT_MAX_PENDING,
            max_pending_per_uid: DEFAULT_MAX_PENDING_PER_UID,
        }
    }
}

/// The most a page of [`AuthFlow::list_page`] holds, in bytes of JSON (besides
/// its first request, always shown).
pub const MAX_PAGE_BYTES: usize = 8 << 20;

/// One page of the requests waiting, newest first ([`AuthFlow::list_page`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingPage {
    /// The requests on this page.
    pub requests: Vec<PendingSummary>,
    /// How many more wait beyond this page.
    pub more: u64,
}

/// A pending request, as `regent pending` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingSummary {
    /// The id to approve or deny.
    pub request_id: String,
    /// The operation.
    pub op: String,
    /// Its data, secret parameters redacted.
    pub display_data: Value,
    /// Who asked.
    pub caller: CallerId,
    /// The current stage's method.
    pub stage: String,
    /// Its index (0-based).
    pub stage_index: usize,
    /// All the stages.
    pub stages: Vec<String>,
    /// Whether the current stage waits for an administrator.
    pub awaiting_approval: bool,
    /// Whether an administrator approved the current stage (the caller has not
    /// polled since).
    pub approved: bool,
    /// Failed attempts at the current stage.
    pub attempts: u32,
    /// When it was made.
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    /// When it expires.
    #[serde(with = "rfc3339")]
    pub expires_at: SystemTime,
}

mod rfc3339 {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(*t))
    }
}

/// The longest denial reason kept (characters).
pub const MAX_REASON_CHARS: usize = 500;

/// The engine. Share it behind an `Arc`; every method takes `&self`.
pub struct AuthFlow {
    store: Arc<PendingStore>,
    methods: MethodRegistry,
    options: FlowOptions,
    in_flight: Mutex<HashSet<String>>,
}

impl fmt::Debug for AuthFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFlow")
            .field("store", &self.store)
            .field("methods", &self.methods)
            .finish()
    }
}

/// Removes a request id from the in-flight set when dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn context<'a>(r: &'a PendingRecord, index: usize, count: usize) -> StageContext<'a> {
    StageContext {
        request_id: &r.request_id,
        op: &r.op,
        display_data: &r.display_data,
        caller: &r.caller,
        approvers: &r.approvers,
        expires_at: r.expires_at,
        stage_index: index,
        stage_count: count,
    }
}

fn pending_info(
    method: &str,
    start: &mut StageStart,
    r: &PendingRecord,
    index: usize,
    count: usize,
) -> PendingInfo {
    let mut extra = std::mem::take(&mut start.extra);
    extra.insert("request_id".into(), json!(r.request_id));
    extra.insert("stage".into(), json!(index + 1));
    extra.insert("stages".into(), json!(count));
    PendingInfo {
        pending: method.to_string(),
        message: std::mem::take(&mut start.message),
        expires_at: humantime::format_rfc3339_seconds(r.expires_at).to_string(),
        extra,
    }
}

fn clean_reason(reason: Option<String>) -> Option<String> {
    reason
        .map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(MAX_REASON_CHARS)
                .collect::<String>()
        })
        .filter(|r| !r.trim().is_empty())
}

fn denied(reason: Option<&str>) -> FlowOutcome {
    match reason {
        Some(r) => FlowOutcome::error(
            ErrorCode::Denied,
            format!("{}: {r}", ErrorCode::Denied.default_message()),
        ),
        None => FlowOutcome::error(ErrorCode::Denied, ErrorCode::Denied.default_message()),
    }
}

impl AuthFlow {
    /// Open the engine over the store at `store_path` (created root-only if missing).
    pub fn open(
        store_path: &Path,
        methods: MethodRegistry,
        options: FlowOptions,
    ) -> Result<AuthFlow> {
        let store = Arc::new(PendingStore::open(store_path)?);
        Ok(AuthFlow {
            store,
            methods,
            options,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// The underlying store, for tools and tests. Its calls block (SQLite, and a
    /// busy timeout of 5 s while another process writes): not for an event loop,
    /// where the engine's own async methods run them on the blocking pool.
    pub fn store(&self) -> &PendingStore {
        &self.store
    }

    /// The registered methods.
    pub fn methods(&self) -> &MethodRegistry {
        &self.methods
    }

    /// Delete expired requests; how many. Also done by `start` and `list_waiting`.
    /// Runs on the blocking pool.
    pub async fn purge_expired(&self) -> Result<usize> {
        let n = self
            .on_store(|s| s.purge_expired(SystemTime::now()))
            .await?;
        if n > 0 {
            tracing::info!(count = n, "expired pending requests purged");
        }
        Ok(n)
    }

    /// Check that every stage names a registered method.
    pub fn check_stages(&self, stages: &[String]) -> Result<()> {
        match stages.iter().find(|s| self.methods.get(s).is_none()) {
            Some(s) => Err(AuthError::UnknownMethod(s.clone())),
            None => Ok(()),
        }
    }

    /// Store a validated request and begin its first stage.
    pub async fn start(&self, req: StartRequest) -> FlowOutcome {
        match self.on_store(|s| s.purge_expired(SystemTime::now())).await {
            Ok(n) if n > 0 => tracing::info!(count = n, "expired pending requests purged"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purging expired requests failed"),
        }
        if let Err(e) = self.check_stages(&req.stages) {
            tracing::error!(op = %req.op, error = %e, "operation configured with an unknown method");
            return FlowOutcome::internal();
        }
        let now = SystemTime::now();
        let caps = PendingCaps {
            total: self.options.max_pending.max(1),
            per_uid: self.options.max_pending_per_uid.max(1),
            per_uid_op: req.max_pending_per_uid.max(1),
        };
        let mut record = PendingRecord {
            request_id: String::new(),
            stage_uid_hash: String::new(),
            op: req.op,
            data: req.data,
            display_data: req.display_data,
            caller: req.caller,
            approvers: req.approvers,
            stages: req.stages,
            stage_index: 0,
            stage_state: Value::Null,
            pending_info: PendingInfo {
                pending: String::new(),
                message: String::new(),
                expires_at: String::new(),
                extra: Default::default(),
            },
            attempts: 0,
            max_attempts: req.max_attempts.max(1),
            // Whole milliseconds, as stored.
            created_at: crate::store::from_ms(crate::store::to_ms(now)),
            expires_at: crate::store::from_ms(crate::store::to_ms(now + req.ttl)),
            status: RecordStatus::Pending,
            status_reason: None,
        };
        if record.stages.is_empty() {
            let request_id = random::new_request_id().unwrap_or_default();
            return FlowOutcome::Run {
                op: record.op,
                data: record.data,
                request_id,
            };
        }
        let Ok(request_id) = random::new_request_id() else {
            return FlowOutcome::internal();
        };
        record.request_id = request_id;
        let count = record.stages.len();
        let method = self
            .methods
            .get(&record.stages[0])
            .expect("checked above")
            .clone();
        let mut start = match method.begin(&context(&record, 0, count)).await {
            Ok(s) => s,
            Err(e) => return FlowOutcome::from_method(e),
        };
        let delivery = start.delivery.take();
        record.stage_state = start.state.take();
        record.pending_info = pending_info(method.name(), &mut start, &record, 0, count);
        // A request id collision (40 bits) is retried with a fresh id.
        let mut uid = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                let Ok(id) = random::new_request_id() else {
                    return FlowOutcome::internal();
                };
                record.request_id = id;
                if let Some(v) = record.pending_info.extra.get_mut("request_id") {
                    *v = json!(record.request_id);
                }
            }
            let Ok(u) = random::new_uid() else {
                return FlowOutcome::internal();
            };
            record.stage_uid_hash = uid_hash(&u);
            let (inserted, back) = match self
                .on_store(move |s| Ok((s.insert_capped(&record, &caps), record)))
                .await
            {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, "storing a pending request failed");
                    return FlowOutcome::internal();
                }
            };
            record = back;
            match inserted {
                Ok(Inserted::Stored) => {
                    uid = u;
                    break;
                }
                Ok(Inserted::Taken) => continue,
                Ok(Inserted::Full(which)) => {
                    let (what, cap) = match which {
                        CapReached::PerUidOp => {
                            ("for this operation by this user", caps.per_uid_op)
                        }
                        CapReached::PerUid => ("by this user", caps.per_uid),
                        CapReached::Total => ("in all", caps.total),
                    };
                    tracing::warn!(op = %record.op, caller_uid = record.caller.uid, cap, "held requests {what} at their cap: request refused");
                    return FlowOutcome::error(
                        ErrorCode::Busy,
                        format!("Too many requests are waiting for authorization {what} (at most {cap}); try again once some are decided"),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "storing a pending request failed");
                    return FlowOutcome::internal();
                }
            }
        }
        if uid.is_empty() {
            tracing::error!("could not find a free request id");
            return FlowOutcome::internal();
        }
        tracing::info!(request_id = %record.request_id, op = %record.op, caller_uid = record.caller.uid,
            stages = ?record.stages, "authorization requested");
        if let Some(d) = delivery {
            if let Some(err) = self
                .deliver(&record.request_id, &record.stage_uid_hash, d)
                .await
            {
                return err;
            }
        }
        FlowOutcome::Pending {
            uid,
            info: record.pending_info,
        }
    }

    /// Run a delivery on its own task, waiting up to `delivery_wait` for it. Returns
    /// the error to answer if it failed in that time (the request is then dropped).
    async fn deliver(
        &self,
        request_id: &str,
        hash: &str,
        delivery: Delivery,
    ) -> Option<FlowOutcome> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.store.clone();
        let (id, h) = (request_id.to_string(), hash.to_string());
        tokio::spawn(async move {
            let result = delivery.await;
            if let Err(e) = &result {
                let reason = e.message.clone();
                let marked = tokio::task::spawn_blocking(move || {
                    store.mark_failed(&id, &h, &reason).map_err(|se| (id, se))
                })
                .await;
                if let Ok(Err((id, se))) = marked {
                    tracing::error!(request_id = %id, error = %se, "cannot mark a request failed")
                }
            }
            let _ = tx.send(result);
        });
        let failed = match tokio::time::timeout(self.options.delivery_wait, rx).await {
            Ok(Ok(Ok(()))) => return None,
            Err(_) => {
                tracing::warn!(
                    request_id,
                    "delivery still running; answering pending meanwhile"
                );
                return None;
            }
            Ok(Ok(Err(e))) => FlowOutcome::from_method(e),
            Ok(Err(_)) => FlowOutcome::internal(),
        };
        let id = request_id.to_string();
        if let Err(e) = self.on_store(move |s| s.delete(&id)).await {
            tracing::error!(request_id, error = %e, "cannot drop a failed request");
        }
        Some(failed)
    }

    /// Run `work` on the store on tokio's blocking pool, so that SQLite (and the
    /// store's connection lock, which another request may hold) never stalls an
    /// async worker. A panic in `work` is passed on.
    async fn on_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PendingStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(AuthError::StoreCancelled),
        }
    }

    /// Consume the request's current uid (a final answer), logging a failure.
    async fn take_logged(&self, request_id: &str, hash: &str, what: &str) -> bool {
        let (id, h) = (request_id.to_string(), hash.to_string());
        match self.on_store(move |s| s.take(&id, &h)).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::error!(request_id, error = %e, "cannot drop a {what} request");
                false
            }
        }
    }

    fn enter(&self, request_id: &str) -> Option<InFlight<'_>> {
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(request_id.to_string()).then(|| InFlight {
            set: &self.in_flight,
            id: request_id.to_string(),
        })
    }

    /// Take the caller's next step: `uid` from the last pending response, `data`
    /// its response (e.g. `{"code": "123456"}`), `hook` to let the operation react
    /// after a passed stage.
    pub async fn resume(
        &self,
        uid: &str,
        caller: &CallerId,
        data: &Value,
        hook: Option<&dyn StageHook>,
    ) -> FlowOutcome {
        let hash = uid_hash(uid);
        let h = hash.clone();
        let rec = match self.on_store(move |s| s.by_uid_hash(&h)).await {
            Ok(Some(r)) => r,
            Ok(None) => return FlowOutcome::not_found(),
            Err(e) => {
                tracing::error!(error = %e, "pending store lookup failed");
                return FlowOutcome::internal();
            }
        };
        if rec.caller.uid != caller.uid {
            tracing::warn!(request_id = %rec.request_id, owner_uid = rec.caller.uid, caller_uid = caller.uid,
                "a uid was presented by another user");
            return FlowOutcome::not_found();
        }
        if SystemTime::now() >= rec.expires_at {
            let id = rec.request_id.clone();
            let _ = self.on_store(move |s| s.delete(&id)).await;
            return FlowOutcome::not_found();
        }
        let Some(_guard) = self.enter(&rec.request_id) else {
            return FlowOutcome::error(
                ErrorCode::Busy,
                "Another step of this request is in progress",
            );
        };
        match rec.status {
            RecordStatus::Pending => {}
            RecordStatus::Denied => {
                self.take_logged(&rec.request_id, &hash, "denied").await;
                return denied(rec.status_reason.as_deref());
            }
            RecordStatus::Failed => {
                self.take_logged(&rec.request_id, &hash, "failed").await;
                let msg = rec
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| ErrorCode::OperationFailed.default_message().into());
                return FlowOutcome::error(ErrorCode::OperationFailed, msg);
            }
        }
        let count = rec.stages.len();
        let Some(method) = self.methods.get(rec.stage()).cloned() else {
            tracing::error!(request_id = %rec.request_id, stage = rec.stage(), "stored stage names an unknown method");
            return FlowOutcome::internal();
        };
        let check = method
            .check(
                &context(&rec, rec.stage_index, count),
                &rec.stage_state,
                data,
            )
            .await;
        match check {
            Err(e) => FlowOutcome::from_method(e),
            Ok(Check::Waiting) => FlowOutcome::Pending {
                uid: uid.to_string(),
                info: rec.pending_info,
            },
            Ok(Check::Denied(reason)) => {
                self.take_logged(&rec.request_id, &hash, "denied").await;
                tracing::info!(request_id = %rec.request_id, stage = rec.stage(), "request denied by its method");
                denied(clean_reason(reason).as_deref())
            }
            Ok(Check::Failed) => self.failed_attempt(&rec, &hash).await,
            Ok(Check::Passed) => self.passed(rec, &hash, hook).await,
        }
    }

    async fn failed_attempt(&self, rec: &PendingRecord, hash: &str) -> FlowOutcome {
        let (id, h, max) = (rec.request_id.clone(), hash.to_string(), rec.max_attempts);
        // Counting and dropping at the limit are one step: no cancellation between
        // them can leave a request past its limit in the store.
        let counted = self
            .on_store(move |s| {
                let n = s.add_attempt(&id, &h)?;
                if n.is_some_and(|n| n >= max) {
                    let _ = s.take(&id, &h);
                }
                Ok(n)
            })
            .await;
        match counted {
            Ok(Some(n)) if n >= rec.max_attempts => {
                tracing::warn!(request_id = %rec.request_id, attempts = n, "attempt limit reached; request dropped");
                FlowOutcome::error(
                    ErrorCode::AuthFailed,
                    "Wrong code; too many attempts, the request was dropped",
                )
            }
            Ok(Some(n)) => {
                tracing::info!(request_id = %rec.request_id, attempts = n, "wrong code");
                let left = rec.max_attempts - n;
                FlowOutcome::error(
                    ErrorCode::AuthFailed,
                    format!(
                        "Wrong code ({left} attempt{} left)",
                        if left == 1 { "" } else { "s" }
                    ),
                )
            }
            Ok(None) => FlowOutcome::not_found(),
            Err(e) => {
                tracing::error!(error = %e, "counting an attempt failed");
                FlowOutcome::internal()
            }
        }
    }

    async fn passed(
        &self,
        rec: PendingRecord,
        hash: &str,
        hook: Option<&dyn StageHook>,
    ) -> FlowOutcome {
        let index = rec.stage_index;
        let mut stages = rec.stages.clone();
        tracing::info!(request_id = %rec.request_id, stage = rec.stage(), "authorization stage passed");
        if let Some(hook) = hook {
            let report = StageReport {
                request_id: &rec.request_id,
                op: &rec.op,
                data: &rec.data,
                caller: &rec.caller,
                stage: rec.stage(),
                stage_index: index,
                remaining: &rec.stages[index + 1..],
            };
            match hook.after_stage(&report) {
                HookDecision::Continue => {}
                HookDecision::Deny(reason) => {
                    self.take_logged(&rec.request_id, hash, "denied").await;
                    tracing::info!(request_id = %rec.request_id, "request denied by its operation");
                    return denied(clean_reason(reason).as_deref());
                }
                HookDecision::ReplaceRemainingStages(rest) => {
                    if let Err(e) = self.check_stages(&rest) {
                        tracing::error!(request_id = %rec.request_id, error = %e, "hook named an unknown method");
                        self.take_logged(&rec.request_id, hash, "misconfigured")
                            .await;
                        return FlowOutcome::internal();
                    }
                    stages.truncate(index + 1);
                    stages.extend(rest);
                }
            }
        }
        let next = index + 1;
        if next >= stages.len() {
            let (id, h) = (rec.request_id.clone(), hash.to_string());
            return match self.on_store(move |s| s.take(&id, &h)).await {
                Ok(true) => {
                    tracing::info!(request_id = %rec.request_id, op = %rec.op, "authorization complete");
                    FlowOutcome::Run {
                        op: rec.op,
                        data: rec.data,
                        request_id: rec.request_id,
                    }
                }
                Ok(false) => FlowOutcome::not_found(),
                Err(e) => {
                    tracing::error!(error = %e, "consuming a request failed");
                    FlowOutcome::internal()
                }
            };
        }
        let count = stages.len();
        let method = self.methods.get(&stages[next]).expect("checked").clone();
        let mut start = match method.begin(&context(&rec, next, count)).await {
            Ok(s) => s,
            Err(e) => {
                self.take_logged(&rec.request_id, hash, "failed").await;
                return FlowOutcome::from_method(e);
            }
        };
        let delivery = start.delivery.take();
        let state = start.state.take();
        let info = pending_info(method.name(), &mut start, &rec, next, count);
        let Ok(uid) = random::new_uid() else {
            return FlowOutcome::internal();
        };
        let new_hash = uid_hash(&uid);
        let (id, old, new) = (rec.request_id.clone(), hash.to_string(), new_hash.clone());
        let advanced = self
            .on_store(move |s| {
                let done = s.advance(&id, &old, &new, &stages, next, &state, &info)?;
                Ok((done, info))
            })
            .await;
        let info = match advanced {
            Ok((true, info)) => info,
            Ok((false, _)) => return FlowOutcome::not_found(),
            Err(e) => {
                tracing::error!(error = %e, "advancing a request failed");
                return FlowOutcome::internal();
            }
        };
        if let Some(d) = delivery {
            if let Some(err) = self.deliver(&rec.request_id, &new_hash, d).await {
                return err;
            }
        }
        FlowOutcome::Pending { uid, info }
    }

    fn summary(&self, r: PendingRecord) -> PendingSummary {
        let awaiting = self
            .methods
            .get(r.stage())
            .is_some_and(|m| m.decided_by_admin());
        PendingSummary {
            stage: r.stage().to_string(),
            awaiting_approval: awaiting,
            approved: awaiting && r.stage_state.get("approved") == Some(&Value::Bool(true)),
            request_id: r.request_id,
            op: r.op,
            display_data: r.display_data,
            caller: r.caller,
            stage_index: r.stage_index,
            stages: r.stages,
            attempts: r.attempts,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }

    /// Every request waiting, oldest first (expired ones are purged first). For
    /// tools and tests; the administrator channel pages ([`AuthFlow::list_page`]).
    pub async fn list_waiting(&self) -> Result<Vec<PendingSummary>> {
        let records = self
            .on_store(|s| {
                s.purge_expired(SystemTime::now())?;
                s.list()
            })
            .await?;
        Ok(records
            .into_iter()
            .filter(|r| r.status == RecordStatus::Pending)
            .map(|r| self.summary(r))
            .collect())
    }

    /// The newest `limit` requests waiting (only those of the operations in
    /// `ops`, if given), and how many more there are. Runs on the blocking pool.
    pub async fn list_page(&self, ops: Option<Vec<String>>, limit: usize) -> Result<PendingPage> {
        let (records, total) = self
            .on_store(move |s| {
                let now = SystemTime::now();
                s.purge_expired(now)?;
                s.page(ops.as_deref(), limit, now)
            })
            .await?;
        // A page stays well under a client's response cap (16 MiB) whatever the
        // size of the requests' data: it ends before MAX_PAGE_BYTES, and the rest
        // is counted in `more`. The first request is always shown.
        let mut requests = Vec::with_capacity(records.len());
        let mut bytes = 0usize;
        for r in records {
            let summary = self.summary(r);
            bytes += serde_json::to_vec(&summary).map(|v| v.len()).unwrap_or(0);
            if !requests.is_empty() && bytes > MAX_PAGE_BYTES {
                break;
            }
            requests.push(summary);
        }
        let more = total.saturating_sub(requests.len() as u64);
        Ok(PendingPage { requests, more })
    }

    /// The operation of the live request `request_id` (looked up by its key),
    /// or `None` if there is no such request waiting.
    pub async fn request_op(&self, request_id: &str) -> Result<Option<String>> {
        Ok(self.request_owner(request_id).await?.map(|(op, _)| op))
    }

    /// The operation of the live request `request_id` and who made it (looked up
    /// by its key), or `None` if there is no such request waiting: what the
    /// service's policy weighs before an administrator decides on it.
    pub async fn request_owner(&self, request_id: &str) -> Result<Option<(String, CallerId)>> {
        let id = request_id.to_string();
        match self.on_store(move |s| live_record(s, &id)).await {
            Ok(r) => Ok(Some((r.op, r.caller))),
            Err(AuthError::RequestNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Approve the current (approval) stage of `request_id`, as `by`. Refused when
    /// the request is the approver's own (same uid) unless `allow_self`. Audited.
    /// Who may approve at all is the administrator channel's business. The store
    /// work runs on the blocking pool; the request is found by its key.
    pub async fn approve(&self, request_id: &str, by: &CallerId, allow_self: bool) -> Result<()> {
        let id = request_id.to_string();
        let rec = self.on_store(move |s| live_record(s, &id)).await?;
        let admin_stage = self
            .methods
            .get(rec.stage())
            .is_some_and(|m| m.decided_by_admin());
        if !admin_stage {
            return Err(AuthError::NotAwaitingApproval {
                request_id: request_id.to_string(),
                stage: rec.stage().to_string(),
            });
        }
        if !allow_self && by.uid == rec.caller.uid {
            tracing::warn!(
                request_id,
                by_uid = by.uid,
                "refused: approving one's own request"
            );
            return Err(AuthError::OwnRequest(request_id.to_string()));
        }
        if rec.stage_state.get("approved") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        let now = SystemTime::now();
        let state = json!({
            "approved": true,
            "by_uid": by.uid,
            "by_user": by.user,
            "at": crate::store::to_ms(now),
        });
        let decision = Decision {
            request_id: rec.request_id.clone(),
            op: rec.op.clone(),
            caller_uid: rec.caller.uid,
            caller_user: rec.caller.user.clone(),
            decision: "approved".into(),
            by_uid: by.uid,
            by_user: by.user.clone(),
            reason: None,
            at: now,
        };
        let index = rec.stage_index;
        if !self
            .on_store(move |s| s.approve(index, &state, &decision))
            .await?
        {
            return Err(AuthError::RequestNotFound(request_id.to_string()));
        }
        tracing::info!(request_id, op = %rec.op, by_uid = by.uid, "request approved");
        Ok(())
    }

    /// Deny `request_id` (at any stage), as `by`, with an optional reason that the
    /// caller will see. Audited. The store work runs on the blocking pool.
    pub async fn deny(
        &self,
        request_id: &str,
        by: &CallerId,
        reason: Option<String>,
    ) -> Result<()> {
        let id = request_id.to_string();
        let rec = self.on_store(move |s| live_record(s, &id)).await?;
        let decision = Decision {
            request_id: rec.request_id.clone(),
            op: rec.op.clone(),
            caller_uid: rec.caller.uid,
            caller_user: rec.caller.user.clone(),
            decision: "denied".into(),
            by_uid: by.uid,
            by_user: by.user.clone(),
            reason: clean_reason(reason),
            at: SystemTime::now(),
        };
        if !self.on_store(move |s| s.deny(&decision)).await? {
            return Err(AuthError::RequestNotFound(request_id.to_string()));
        }
        tracing::info!(request_id, op = %rec.op, by_uid = by.uid, "request denied");
        Ok(())
    }

    /// The audited decisions, oldest first, for one request or all. Runs on the
    /// blocking pool.
    pub async fn decisions(&self, request_id: Option<&str>) -> Result<Vec<Decision>> {
        let id = request_id.map(str::to_string);
        self.on_store(move |s| s.decisions(id.as_deref())).await
    }
}

/// The record `request_id` if it is still waiting (pending, not expired).
fn live_record(store: &PendingStore, request_id: &str) -> Result<PendingRecord> {
    match store.by_request_id(request_id)? {
        Some(r) if r.status == RecordStatus::Pending && SystemTime::now() < r.expires_at => Ok(r),
        _ => Err(AuthError::RequestNotFound(request_id.to_string())),
    }
}
