//! The engine the service calls for operations that need out-of-channel
//! authorization: [`AuthFlow`], the thin async driver of [`crate::machine::step`].
//!
//! - [`AuthFlow::start`] stores the validated request and begins its first stage;
//! - [`AuthFlow::resume`] takes the caller's uid and response, checks the current
//!   stage, and answers with the next stage's pending response, a [`Refusal`], or
//!   [`FlowOutcome::Run`] with exactly the stored operation and data;
//! - [`AuthFlow::list_page`], [`AuthFlow::request_op`], [`AuthFlow::approve`],
//!   [`AuthFlow::deny`] serve the administrator channel: newest first, a page at a
//!   time, requests found by their id (the table's key), never by a scan.
//!
//! Every decision is the machine's; this module does what its effects ask (the
//! store, the TOTP store, mail, library methods, the operation's hook) and feeds
//! the answers back. The server chooses the wire code of each outcome.
//!
//! [`AuthFlow::start`] holds a request only under the caps of [`FlowOptions`]
//! (in all, per caller uid) and of the request (per caller uid and operation),
//! counted and inserted in one transaction; beyond them it answers busy.
//!
//! Every completed stage consumes its uid (compare-and-set in the store) and issues
//! a new one. Unknown, expired, used and foreign uids all answer the same
//! [`Refusal::NotFound`]. One check runs at a time per request (a concurrent one
//! answers busy), so parallel guesses cannot exceed the attempt limit.
//!
//! Store work (SQLite, behind the store's one connection lock) made by `start`,
//! `resume` and the administrator's calls runs on tokio's blocking pool, never on
//! an async worker; steps that must not be split (counting a wrong code and
//! dropping the request at the limit) run in one blocking call.
//!
//! Deliveries (emails) run on a spawned task. `start`/`resume` wait for them up to
//! [`FlowOptions::delivery_wait`]: a failure within that time drops the request and
//! is answered; a later failure marks the record failed, and the next poll with
//! the uid answers it.

pub use crate::caller::CallerId;
use crate::machine::{step, AdminRefusal, Effect, Event};
pub use crate::machine::{Busy, HookDecision, Refusal, MAX_REASON_CHARS};
use crate::method::{Delivery, MethodError, MethodRegistry, StageContext};
use crate::otp::{self, HashedCode};
use crate::store::{
    from_ms, to_ms, uid_hash, CapReached, Decision, Inserted, PendingCaps, PendingRecord,
    PendingStore, RecordStatus,
};
use crate::{email::CodeMail, random, AuthError, Result};
use regent_model::{Stage, Stages};
use regent_proto::PendingInfo;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

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
    /// The stages, in order.
    pub stages: Stages,
    /// How long the request may wait.
    pub ttl: Duration,
    /// Failed attempts after which the request is dropped (0 is taken as 1).
    pub max_attempts: u32,
    /// Approver email addresses.
    pub approvers: Vec<String>,
    /// Requests of this operation one caller uid may have held at once; more
    /// are refused busy (0 is taken as 1). The service-wide caps are in
    /// [`FlowOptions`].
    pub max_pending_per_uid: u32,
    /// The digest of the operation's declaration (see
    /// [`crate::store::declaration_digest`]), stored with the request and given
    /// back by [`FlowOutcome::Run`], so the service runs it only under the
    /// declaration it was held under.
    pub declaration: Option<String>,
    /// What a dry run of the request answered when it was held (see
    /// [`PendingRecord::preview`]): shown to approvers, given back by
    /// [`FlowOutcome::Run`].
    pub preview: Option<Value>,
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
        /// What a dry run showed when it was held ([`StartRequest::preview`]).
        preview: Option<Value>,
        /// The declaration digest the request was held under
        /// ([`StartRequest::declaration`]).
        declaration: Option<String>,
    },
    /// Answer a pending response.
    Pending {
        /// The uid for the next step.
        uid: String,
        /// The pending information.
        info: PendingInfo,
    },
    /// Refuse; the server chooses the wire code.
    Refused(Refusal),
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
            FlowOutcome::Refused(r) => f.debug_tuple("Refused").field(r).finish(),
        }
    }
}

impl FlowOutcome {
    /// Whether this outcome is a failure the rate limiter should count for the
    /// caller (a wrong code, an unknown uid, a code sent while the user backs off
    /// from too many wrong ones: a caller looping on codes is then paced).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            FlowOutcome::Refused(
                Refusal::WrongCode { .. } | Refusal::NotFound | Refusal::RateLimited { .. }
            )
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

    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            FlowOutcome::Refused(r) => Some(r),
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
    /// The stage that passed.
    pub stage: &'a Stage,
    /// Its index.
    pub stage_index: usize,
    /// The stages still to come.
    pub remaining: &'a [Stage],
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
    /// What a dry run showed when it was held ([`PendingRecord::preview`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<Value>,
    /// Who asked.
    pub caller: CallerId,
    /// The current stage (none for a corrupt record whose index is past its
    /// stages).
    pub stage: Option<Stage>,
    /// Its index (0-based).
    pub stage_index: usize,
    /// All the stages.
    pub stages: Vec<Stage>,
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

/// The engine. Share it behind an `Arc`; every method takes `&self`.
pub struct AuthFlow {
    store: Arc<PendingStore>,
    methods: MethodRegistry,
    options: FlowOptions,
    /// Requests being checked, shared with every [`AuthFlow::reconfigured`] copy.
    in_flight: Arc<Mutex<HashSet<String>>>,
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

fn context(r: &PendingRecord) -> StageContext<'_> {
    StageContext {
        request_id: &r.request_id,
        op: &r.op,
        display_data: &r.display_data,
        caller: &r.caller,
        approvers: &r.approvers,
        expires_at: r.expires_at,
        stage_index: r.stage_index,
        stage_count: r.stages.len(),
    }
}

/// Where a request is while the driver carries out the machine's effects.
enum Phase<'a> {
    /// A new request, not stored yet.
    Start(PendingCaps),
    /// A held request, found by the hash of the uid the caller presented.
    Resume {
        uid: &'a str,
        hash: String,
        response: &'a Value,
        hook: Option<&'a dyn StageHook>,
    },
}

/// The challenge to send once a begun stage is stored.
#[derive(Default)]
struct Outgoing {
    /// An email code, in clear, for the approvers.
    mail_code: Option<Zeroizing<String>>,
    /// A library method's delivery.
    delivery: Option<Delivery>,
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
            in_flight: Arc::default(),
        })
    }

    /// The same store (its connection, and the set of requests being checked)
    /// with other methods and options: what a configuration reload swaps in. A
    /// request held before keeps its place, and a step in progress on the old
    /// engine still makes a concurrent one on the new engine answer busy.
    pub fn reconfigured(&self, methods: MethodRegistry, options: FlowOptions) -> AuthFlow {
        AuthFlow {
            store: self.store.clone(),
            methods,
            options,
            in_flight: self.in_flight.clone(),
        }
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

    /// Check that every stage, given by name, is a method available here.
    pub fn check_stages<S: AsRef<str>>(&self, stages: &[S]) -> Result<()> {
        for name in stages {
            let name = name.as_ref();
            match Stage::parse(name) {
                Ok(stage) if self.methods.has(&stage) => {}
                _ => return Err(AuthError::UnknownMethod(name.to_string())),
            }
        }
        Ok(())
    }

    fn unavailable<'s>(&self, stages: impl IntoIterator<Item = &'s Stage>) -> Option<&'s Stage> {
        stages.into_iter().find(|s| !self.methods.has(s))
    }

    /// Store a validated request and begin its first stage.
    pub async fn start(&self, req: StartRequest) -> FlowOutcome {
        match self.on_store(|s| s.purge_expired(SystemTime::now())).await {
            Ok(n) if n > 0 => tracing::info!(count = n, "expired pending requests purged"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purging expired requests failed"),
        }
        if let Some(s) = self.unavailable(&req.stages) {
            tracing::error!(op = %req.op, stage = %s, "operation configured with an unknown method");
            return FlowOutcome::Refused(Refusal::Internal);
        }
        let Ok(request_id) = random::new_request_id() else {
            return FlowOutcome::Refused(Refusal::Internal);
        };
        if req.stages.is_empty() {
            return FlowOutcome::Run {
                op: req.op,
                data: req.data,
                request_id,
                preview: req.preview,
                declaration: req.declaration,
            };
        }
        let now = SystemTime::now();
        let caps = PendingCaps {
            total: self.options.max_pending.max(1),
            per_uid: self.options.max_pending_per_uid.max(1),
            per_uid_op: req.max_pending_per_uid.max(1),
        };
        let record = PendingRecord {
            request_id,
            stage_uid_hash: String::new(),
            op: req.op,
            data: req.data,
            display_data: req.display_data,
            caller: req.caller,
            approvers: req.approvers,
            stages: req.stages.iter().cloned().collect(),
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
            created_at: from_ms(to_ms(now)),
            expires_at: from_ms(to_ms(now + req.ttl)),
            status: RecordStatus::Pending,
            status_reason: None,
            declaration: req.declaration,
            preview: req.preview,
        };
        let (record, effect) = step(record, Event::Begin);
        self.drive(Phase::Start(caps), record, effect).await
    }

    /// The operation the held request `uid` of `caller` is for, read without
    /// changing anything; none when no request has that uid, it is another
    /// caller's, or the store failed (then [`AuthFlow::resume`] answers as it
    /// would). For a check the request must pass before it is resumed (and so
    /// perhaps consumed), such as the socket offering its operation.
    pub async fn op_of(&self, uid: &str, caller: &CallerId) -> Option<String> {
        let hash = uid_hash(uid);
        let rec = self.on_store(move |s| s.by_uid_hash(&hash)).await.ok()??;
        rec.caller.same_caller(caller).then_some(rec.op)
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
            Ok(None) => return FlowOutcome::Refused(Refusal::NotFound),
            Err(e) => {
                tracing::error!(error = %e, "pending store lookup failed");
                return FlowOutcome::Refused(Refusal::Internal);
            }
        };
        if !rec.caller.same_caller(caller) {
            tracing::warn!(request_id = %rec.request_id, owner_uid = rec.caller.uid, caller_uid = caller.uid,
                owner_client = rec.caller.client(), caller_client = caller.client(),
                "a uid was presented by another caller");
        }
        let event = Event::Respond {
            caller: caller.key(),
            response: data,
            now: SystemTime::now(),
        };
        let (rec, effect) = step(rec, event);
        match effect {
            Effect::Refuse(r) => return refused(&rec, r),
            Effect::Discard(r) => {
                let id = rec.request_id.clone();
                let _ = self.on_store(move |s| s.delete(&id)).await;
                return FlowOutcome::Refused(r);
            }
            _ => {}
        }
        let Some(_guard) = self.enter(&rec.request_id) else {
            return FlowOutcome::Refused(Refusal::Busy(Busy::InProgress));
        };
        if let Some(stage) = rec.stage().filter(|s| !self.methods.has(s)) {
            if !matches!(effect, Effect::Close(_)) {
                tracing::error!(request_id = %rec.request_id, stage = %stage, "stored stage names an unknown method");
                return FlowOutcome::Refused(Refusal::Internal);
            }
        }
        let phase = Phase::Resume {
            uid,
            hash,
            response: data,
            hook,
        };
        self.drive(phase, rec, effect).await
    }

    /// Carry out the machine's effects until one gives the answer.
    async fn drive(
        &self,
        phase: Phase<'_>,
        mut rec: PendingRecord,
        mut effect: Effect,
    ) -> FlowOutcome {
        let mut out = Outgoing::default();
        loop {
            let event = match effect {
                Effect::CheckEnrolled { user } => {
                    let Some(store) = self.methods.totp_store().cloned() else {
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    let name = user.clone();
                    match on_blocking(move || store.is_enrolled(&name)).await {
                        Ok(enrolled) => {
                            if !enrolled {
                                tracing::warn!(user = %user.escape_debug(), op = %rec.op, "TOTP required but the user is not enrolled");
                            }
                            Event::Enrolled(enrolled)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "TOTP store lookup failed");
                            Event::BeginFailed(MethodError::Internal)
                        }
                    }
                }
                Effect::DrawEmailCode => {
                    let digits = self.methods.email_digits();
                    let drawn = otp::generate(digits)
                        .and_then(|code| HashedCode::new(&code).map(|h| (code, h)));
                    match drawn {
                        Ok((code, hashed)) => {
                            out.mail_code = Some(code);
                            Event::EmailCode { hashed, digits }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot draw an email code");
                            Event::BeginFailed(MethodError::Internal)
                        }
                    }
                }
                Effect::BeginMethod => {
                    let Some(method) = rec.stage().and_then(|s| self.methods.get(s.name())) else {
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    match method.clone().begin(&context(&rec)).await {
                        Ok(mut start) => {
                            out.delivery = start.delivery.take();
                            Event::MethodBegun {
                                state: start.state,
                                message: start.message,
                                extra: start.extra,
                            }
                        }
                        Err(e) => Event::BeginFailed(e),
                    }
                }
                Effect::VerifyTotp { user, code } => {
                    let Some(store) = self.methods.totp_store().cloned() else {
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    match on_blocking(move || store.verify(&user, code.expose())).await {
                        Ok(check) => Event::TotpChecked(check),
                        Err(e) => {
                            tracing::error!(error = %e, "TOTP verification failed");
                            Event::CheckFailed(MethodError::Internal)
                        }
                    }
                }
                Effect::CheckMethod => {
                    let (Phase::Resume { response, .. }, Some(method)) =
                        (&phase, rec.stage().and_then(|s| self.methods.get(s.name())))
                    else {
                        tracing::error!(request_id = %rec.request_id, "stored stage names an unknown method");
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    match method
                        .check(&context(&rec), &rec.stage_state, response)
                        .await
                    {
                        Ok(check) => Event::MethodChecked(check),
                        Err(e) => Event::CheckFailed(e),
                    }
                }
                Effect::AskHook => {
                    let Phase::Resume { hash, hook, .. } = &phase else {
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    let stage = rec.stage().map(Stage::to_string).unwrap_or_default();
                    tracing::info!(request_id = %rec.request_id, stage, "authorization stage passed");
                    let decision = match (hook, rec.stage()) {
                        (Some(hook), Some(stage)) => hook.after_stage(&StageReport {
                            request_id: &rec.request_id,
                            op: &rec.op,
                            data: &rec.data,
                            caller: &rec.caller,
                            stage,
                            stage_index: rec.stage_index,
                            remaining: &rec.stages[rec.stage_index + 1..],
                        }),
                        _ => HookDecision::Continue,
                    };
                    if let HookDecision::ReplaceRemainingStages(rest) = &decision {
                        if let Some(s) = self.unavailable(rest) {
                            tracing::error!(request_id = %rec.request_id, stage = %s, "hook named an unknown method");
                            self.take_logged(&rec.request_id, hash, "misconfigured")
                                .await;
                            return FlowOutcome::Refused(Refusal::Internal);
                        }
                    }
                    Event::Hook(decision)
                }
                Effect::CountFailure => {
                    let Phase::Resume { hash, .. } = &phase else {
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    let (id, h, max) = (rec.request_id.clone(), hash.clone(), rec.max_attempts);
                    // Counting and dropping at the limit are one step: no
                    // cancellation between them can leave a request past its
                    // limit in the store.
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
                        Ok(Some(n)) if n >= max => {
                            tracing::warn!(request_id = %rec.request_id, attempts = n, "attempt limit reached; request dropped");
                            Event::Counted(Some(n))
                        }
                        Ok(n) => {
                            if let Some(n) = n {
                                tracing::info!(request_id = %rec.request_id, attempts = n, "wrong code");
                            }
                            Event::Counted(n)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "counting an attempt failed");
                            return FlowOutcome::Refused(Refusal::Internal);
                        }
                    }
                }
                Effect::Wait => {
                    let Phase::Resume { uid, .. } = &phase else {
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    return FlowOutcome::Pending {
                        uid: uid.to_string(),
                        info: rec.pending_info,
                    };
                }
                Effect::Run => {
                    let Phase::Resume { hash, .. } = &phase else {
                        return FlowOutcome::Refused(Refusal::Internal);
                    };
                    let (id, h) = (rec.request_id.clone(), hash.clone());
                    return match self.on_store(move |s| s.take(&id, &h)).await {
                        Ok(true) => {
                            tracing::info!(request_id = %rec.request_id, op = %rec.op, "authorization complete");
                            FlowOutcome::Run {
                                op: rec.op,
                                data: rec.data,
                                request_id: rec.request_id,
                                preview: rec.preview,
                                declaration: rec.declaration,
                            }
                        }
                        Ok(false) => FlowOutcome::Refused(Refusal::NotFound),
                        Err(e) => {
                            tracing::error!(error = %e, "consuming a request failed");
                            FlowOutcome::Refused(Refusal::Internal)
                        }
                    };
                }
                Effect::Hold { mail } => return self.hold(&phase, rec, mail, out).await,
                Effect::Close(refusal) => {
                    if let Phase::Resume { hash, .. } = &phase {
                        let what = match &refusal {
                            Refusal::Denied { .. } => "denied",
                            _ => "failed",
                        };
                        self.take_logged(&rec.request_id, hash, what).await;
                        if what == "denied" && rec.status == RecordStatus::Pending {
                            tracing::info!(request_id = %rec.request_id, "request denied by its method or operation");
                        }
                    }
                    return refused(&rec, refusal);
                }
                Effect::Discard(refusal) => {
                    let id = rec.request_id.clone();
                    let _ = self.on_store(move |s| s.delete(&id)).await;
                    return FlowOutcome::Refused(refusal);
                }
                Effect::Refuse(refusal) => return refused(&rec, refusal),
                Effect::Approved(_)
                | Effect::Denied(_)
                | Effect::Unchanged
                | Effect::NotAdmin(_) => return FlowOutcome::Refused(Refusal::Internal),
            };
            (rec, effect) = step(rec, event);
        }
    }

    /// Store a begun stage under a fresh uid (a new request, or the next stage
    /// of a held one), send its challenge, and answer pending.
    async fn hold(
        &self,
        phase: &Phase<'_>,
        mut rec: PendingRecord,
        mail: bool,
        out: Outgoing,
    ) -> FlowOutcome {
        let uid = match phase {
            Phase::Start(caps) => match self.insert(&mut rec, *caps).await {
                Ok(uid) => uid,
                Err(refusal) => return FlowOutcome::Refused(refusal),
            },
            Phase::Resume { hash, .. } => {
                let Ok(uid) = random::new_uid() else {
                    return FlowOutcome::Refused(Refusal::Internal);
                };
                rec.stage_uid_hash = uid_hash(&uid);
                let (id, old, new) = (
                    rec.request_id.clone(),
                    hash.clone(),
                    rec.stage_uid_hash.clone(),
                );
                let (stages, index, state, info) = (
                    rec.stages.clone(),
                    rec.stage_index,
                    rec.stage_state.clone(),
                    rec.pending_info.clone(),
                );
                match self
                    .on_store(move |s| s.advance(&id, &old, &new, &stages, index, &state, &info))
                    .await
                {
                    Ok(true) => uid,
                    Ok(false) => return FlowOutcome::Refused(Refusal::NotFound),
                    Err(e) => {
                        tracing::error!(error = %e, "advancing a request failed");
                        return FlowOutcome::Refused(Refusal::Internal);
                    }
                }
            }
        };
        let delivery = match (mail, out.mail_code) {
            (true, Some(code)) => self.mail(&rec, code),
            _ => out.delivery,
        };
        if let Some(d) = delivery {
            if let Some(refusal) = self.deliver(&rec.request_id, &rec.stage_uid_hash, d).await {
                return FlowOutcome::Refused(refusal);
            }
        }
        FlowOutcome::Pending {
            uid,
            info: rec.pending_info,
        }
    }

    /// Insert a new request under the caps, with a fresh uid; its uid, or why not.
    async fn insert(
        &self,
        rec: &mut PendingRecord,
        caps: PendingCaps,
    ) -> std::result::Result<String, Refusal> {
        // A request id collision (40 bits) is retried with a fresh id.
        for attempt in 0..5 {
            if attempt > 0 {
                rec.request_id = random::new_request_id().map_err(|_| Refusal::Internal)?;
                if let Some(v) = rec.pending_info.extra.get_mut("request_id") {
                    *v = json!(rec.request_id);
                }
            }
            let uid = random::new_uid().map_err(|_| Refusal::Internal)?;
            rec.stage_uid_hash = uid_hash(&uid);
            let copy = rec.clone();
            let inserted = self.on_store(move |s| s.insert_capped(&copy, &caps)).await;
            match inserted {
                Ok(Inserted::Stored) => {
                    tracing::info!(request_id = %rec.request_id, op = %rec.op, caller_uid = rec.caller.uid,
                        stages = ?rec.stages.iter().map(Stage::name).collect::<Vec<_>>(), "authorization requested");
                    return Ok(uid);
                }
                Ok(Inserted::Taken) => continue,
                Ok(Inserted::Full(which)) => {
                    let cap = match which {
                        CapReached::PerUidOp => caps.per_uid_op,
                        CapReached::PerUid => caps.per_uid,
                        CapReached::Total => caps.total,
                    };
                    let what = which.what();
                    tracing::warn!(op = %rec.op, caller_uid = rec.caller.uid, cap, "held requests {what} at their cap: request refused");
                    return Err(Refusal::Busy(Busy::Full { which, cap }));
                }
                Err(e) => {
                    tracing::error!(error = %e, "storing a pending request failed");
                    return Err(Refusal::Internal);
                }
            }
        }
        tracing::error!("could not find a free request id");
        Err(Refusal::Internal)
    }

    /// The delivery mailing `code` to the approvers of `rec`.
    fn mail(&self, rec: &PendingRecord, code: Zeroizing<String>) -> Option<Delivery> {
        let mailer = self.methods.mailer()?.clone();
        let to = rec.approvers.clone();
        let (request_id, op, data, caller, expires_at) = (
            rec.request_id.clone(),
            rec.op.clone(),
            rec.display_data.clone(),
            rec.caller.clone(),
            rec.expires_at,
        );
        let preview = rec.preview.clone();
        Some(Box::pin(async move {
            let mail = CodeMail {
                request_id: &request_id,
                op: &op,
                display_data: &data,
                preview: preview.as_ref(),
                caller: &caller,
                expires_at,
                code: &code,
            };
            mailer
                .send_code(&to, &mail)
                .await
                .map_err(|_| MethodError::operation_failed(crate::machine::EMAIL_FAILED_MESSAGE))
        }))
    }

    /// Run a delivery on its own task, waiting up to `delivery_wait` for it. Returns
    /// the refusal to answer if it failed in that time (the request is then dropped).
    async fn deliver(&self, request_id: &str, hash: &str, delivery: Delivery) -> Option<Refusal> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.store.clone();
        let (id, h) = (request_id.to_string(), hash.to_string());
        tokio::spawn(async move {
            let result = delivery.await.map_err(Refusal::from);
            if let Err(e) = &result {
                let reason = e.to_string();
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
            Ok(Ok(Err(refusal))) => refusal,
            Ok(Err(_)) => Refusal::Internal,
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
        on_blocking(move || work(&store)).await
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

    fn summary(&self, r: PendingRecord) -> PendingSummary {
        let awaiting = r.stage() == Some(&Stage::Approval);
        PendingSummary {
            stage: r.stage().cloned(),
            awaiting_approval: awaiting,
            approved: crate::machine::is_approved(&r),
            request_id: r.request_id,
            op: r.op,
            display_data: r.display_data,
            preview: r.preview,
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
        self.decide(request_id, by, |by, now| Event::Approve {
            by,
            allow_self,
            now,
        })
        .await
    }

    /// Deny `request_id` (at any stage), as `by`, with an optional reason that the
    /// caller will see. Audited. The store work runs on the blocking pool.
    pub async fn deny(
        &self,
        request_id: &str,
        by: &CallerId,
        reason: Option<String>,
    ) -> Result<()> {
        self.decide(request_id, by, |by, now| Event::Deny { by, reason, now })
            .await
    }

    /// An administrator's decision: the machine's transition, then the store.
    async fn decide<'b>(
        &self,
        request_id: &str,
        by: &'b CallerId,
        event: impl FnOnce(&'b CallerId, SystemTime) -> Event<'b>,
    ) -> Result<()> {
        let not_found = || AuthError::RequestNotFound(request_id.to_string());
        let id = request_id.to_string();
        let rec = self.on_store(move |s| live_record(s, &id)).await?;
        let (rec, effect) = step(rec, event(by, SystemTime::now()));
        let stored = match effect {
            Effect::Unchanged => return Ok(()),
            Effect::Approved(decision) => {
                let (index, state) = (rec.stage_index, rec.stage_state.clone());
                self.on_store(move |s| s.approve(index, &state, &decision))
                    .await?
            }
            Effect::Denied(decision) => self.on_store(move |s| s.deny(&decision)).await?,
            Effect::NotAdmin(AdminRefusal::NotFound) => return Err(not_found()),
            Effect::NotAdmin(AdminRefusal::NotAwaitingApproval { stage }) => {
                return Err(AuthError::NotAwaitingApproval {
                    request_id: request_id.to_string(),
                    stage,
                })
            }
            Effect::NotAdmin(AdminRefusal::OwnRequest) => {
                tracing::warn!(
                    request_id,
                    by_uid = by.uid,
                    "refused: approving one's own request"
                );
                return Err(AuthError::OwnRequest(request_id.to_string()));
            }
            _ => {
                return Err(AuthError::Corrupt {
                    id: request_id.to_string(),
                    reason: "unreadable approval state".into(),
                })
            }
        };
        if !stored {
            return Err(not_found());
        }
        let what = if rec.status == RecordStatus::Denied {
            "request denied"
        } else {
            "request approved"
        };
        tracing::info!(request_id, op = %rec.op, by_uid = by.uid, "{what}");
        Ok(())
    }

    /// The audited decisions, oldest first, for one request or all. Runs on the
    /// blocking pool.
    pub async fn decisions(&self, request_id: Option<&str>) -> Result<Vec<Decision>> {
        let id = request_id.map(str::to_string);
        self.on_store(move |s| s.decisions(id.as_deref())).await
    }
}

/// The outcome refusing `rec` with `refusal`; an internal one is logged (a
/// stored stage state its method cannot read, or an answer for another stage).
fn refused(rec: &PendingRecord, refusal: Refusal) -> FlowOutcome {
    if refusal == Refusal::Internal {
        let stage = rec.stage().map(Stage::name).unwrap_or("(none)");
        tracing::error!(request_id = %rec.request_id, stage, "the flow refused a request it cannot read");
    }
    FlowOutcome::Refused(refusal)
}

/// Run blocking `work` (SQLite) on tokio's blocking pool. A panic is passed on.
async fn on_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(AuthError::StoreCancelled),
    }
}

/// The record `request_id` if it is still waiting (pending, not expired).
fn live_record(store: &PendingStore, request_id: &str) -> Result<PendingRecord> {
    match store.by_request_id(request_id)? {
        Some(r) if r.status == RecordStatus::Pending && SystemTime::now() < r.expires_at => Ok(r),
        _ => Err(AuthError::RequestNotFound(request_id.to_string())),
    }
}
