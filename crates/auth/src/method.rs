//! Authorization methods: the [`AuthMethod`] trait (send the challenge, check the
//! response), the [`MethodRegistry`], and the built-ins `totp`, `email` and
//! `approval`.

use crate::email::{CodeMail, Mailer};
use crate::flow::CallerId;
use crate::otp::{self, HashedCode};
use crate::totp::{TotpCheck, TotpStore};
use async_trait::async_trait;
use regent_proto::ErrorCode;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

/// What a method knows about the request whose stage it handles.
#[derive(Debug, Clone, Copy)]
pub struct StageContext<'a> {
    /// The request id administrators see.
    pub request_id: &'a str,
    /// The operation's name.
    pub op: &'a str,
    /// The request's data with secret parameters redacted (for messages; the
    /// validated data is not given to methods).
    pub display_data: &'a Value,
    /// Who made the request.
    pub caller: &'a CallerId,
    /// The operation's approvers (email addresses).
    pub approvers: &'a [String],
    /// When the request expires.
    pub expires_at: SystemTime,
    /// This stage's position (0-based).
    pub stage_index: usize,
    /// How many stages the request has.
    pub stage_count: usize,
}

/// Work a method wants done once its stage is stored, such as sending an email.
/// The engine runs it on a spawned task (off the request path).
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), MethodError>> + Send + 'static>>;

/// A begun stage.
pub struct StageStart {
    /// State to store with the request (never a clear code or secret).
    pub state: Value,
    /// The sentence shown to the caller in the pending response.
    pub message: String,
    /// Extra keys for the pending response.
    pub extra: Map<String, Value>,
    /// Work to do after the stage is stored, if any.
    pub delivery: Option<Delivery>,
}

impl StageStart {
    /// A stage with this state and message, nothing extra, nothing to deliver.
    pub fn new(state: Value, message: impl Into<String>) -> StageStart {
        StageStart {
            state,
            message: message.into(),
            extra: Map::new(),
            delivery: None,
        }
    }
}

impl fmt::Debug for StageStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageStart")
            .field("message", &self.message)
            .field("delivery", &self.delivery.is_some())
            .finish_non_exhaustive()
    }
}

/// The result of checking a response.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The stage is complete.
    Passed,
    /// A wrong response: counts an attempt.
    Failed,
    /// Nothing decided yet (an approval awaited): the same pending response again.
    Waiting,
    /// Refused, with an optional reason shown to the caller.
    Denied(Option<String>),
}

/// A method's failure, as the caller sees it: a code and a sentence that must not
/// carry internal details (log those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodError {
    /// The error code answered.
    pub code: ErrorCode,
    /// The sentence answered.
    pub message: String,
}

impl MethodError {
    /// `operation_failed` with this sentence.
    pub fn operation_failed(message: impl Into<String>) -> MethodError {
        MethodError {
            code: ErrorCode::OperationFailed,
            message: message.into(),
        }
    }
    /// `internal` with the default sentence.
    pub fn internal() -> MethodError {
        MethodError {
            code: ErrorCode::Internal,
            message: ErrorCode::Internal.default_message().into(),
        }
    }
}

/// An authorization method (like the Python Regent's `Auth` class).
#[async_trait]
pub trait AuthMethod: Send + Sync + 'static {
    /// The name stages use, e.g. `totp`.
    fn name(&self) -> &str;

    /// Whether administrators decide this stage with `approve` (which sets
    /// `"approved": true` in the stage state) rather than the caller.
    fn decided_by_admin(&self) -> bool {
        false
    }

    /// Begin the stage: prepare (and return as [`StageStart::delivery`]) the challenge.
    async fn begin(&self, ctx: &StageContext<'_>) -> Result<StageStart, MethodError>;

    /// Check the caller's `response` (the `data` of the uid request) against the
    /// stored `state`.
    async fn check(
        &self,
        ctx: &StageContext<'_>,
        state: &Value,
        response: &Value,
    ) -> Result<Check, MethodError>;
}

/// The methods a service knows, by name.
#[derive(Clone, Default)]
pub struct MethodRegistry {
    methods: HashMap<String, Arc<dyn AuthMethod>>,
}

impl fmt::Debug for MethodRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl MethodRegistry {
    /// An empty registry.
    pub fn new() -> MethodRegistry {
        MethodRegistry::default()
    }

    /// The built-ins: `approval` always, `totp` with a TOTP store, `email` with a
    /// mailer (codes of `email_digits` digits).
    pub fn with_builtins(
        totp: Option<Arc<TotpStore>>,
        mailer: Option<Arc<Mailer>>,
        email_digits: u32,
    ) -> Self {
        let mut r = MethodRegistry::new();
        r.register(Arc::new(ApprovalMethod));
        if let Some(store) = totp {
            r.register(Arc::new(TotpMethod::new(store)));
        }
        if let Some(mailer) = mailer {
            r.register(Arc::new(EmailMethod::new(mailer, email_digits)));
        }
        r
    }

    /// Add a method, replacing (and returning) one of the same name.
    pub fn register(&mut self, method: Arc<dyn AuthMethod>) -> Option<Arc<dyn AuthMethod>> {
        self.methods.insert(method.name().to_string(), method)
    }

    /// The method called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn AuthMethod>> {
        self.methods.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.methods.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// The `code` string of a response, if any.
pub fn response_code(response: &Value) -> Option<&str> {
    response.get("code").and_then(Value::as_str)
}

/// The TOTP account of a caller: the user name, or `#UID` when it has none.
pub fn totp_user(caller: &CallerId) -> String {
    caller
        .user
        .clone()
        .unwrap_or_else(|| format!("#{}", caller.uid))
}

/// `totp`: the caller enters the current code of their authenticator.
#[derive(Debug)]
pub struct TotpMethod {
    store: Arc<TotpStore>,
}

impl TotpMethod {
    /// The method over this store.
    pub fn new(store: Arc<TotpStore>) -> TotpMethod {
        TotpMethod { store }
    }
}

#[async_trait]
impl AuthMethod for TotpMethod {
    fn name(&self) -> &str {
        "totp"
    }

    async fn begin(&self, ctx: &StageContext<'_>) -> Result<StageStart, MethodError> {
        let user = totp_user(ctx.caller);
        // The store shares its connection with the pending store: off the event loop.
        let (store, name) = (self.store.clone(), user.clone());
        let enrolled = tokio::task::spawn_blocking(move || store.is_enrolled(&name))
            .await
            .unwrap_or_else(|_| Err(crate::AuthError::StoreCancelled));
        match enrolled {
            Ok(true) => Ok(StageStart::new(
                json!({ "user": user }),
                "Enter the 6-digit code from your authenticator",
            )),
            Ok(false) => {
                tracing::warn!(user = %user.escape_debug(), op = ctx.op, "TOTP required but the user is not enrolled");
                Err(MethodError::operation_failed(
                    "This operation needs a TOTP code, and no authenticator is enrolled for you \
                     (an administrator runs `regent totp enroll USER`)",
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "TOTP store lookup failed");
                Err(MethodError::internal())
            }
        }
    }

    async fn check(
        &self,
        _ctx: &StageContext<'_>,
        state: &Value,
        response: &Value,
    ) -> Result<Check, MethodError> {
        let Some(user) = state.get("user").and_then(Value::as_str) else {
            tracing::error!("TOTP stage state has no user");
            return Err(MethodError::internal());
        };
        let Some(code) = response_code(response) else {
            return Ok(Check::Failed);
        };
        // The store shares its connection with the pending store: off the event loop.
        let (store, user, code) = (
            self.store.clone(),
            user.to_string(),
            zeroize::Zeroizing::new(code.to_string()),
        );
        let verified = tokio::task::spawn_blocking(move || store.verify(&user, &code))
            .await
            .unwrap_or_else(|_| Err(crate::AuthError::StoreCancelled));
        match verified {
            Ok(TotpCheck::Accepted { .. }) => Ok(Check::Passed),
            Ok(TotpCheck::Rejected | TotpCheck::Replayed | TotpCheck::NotEnrolled) => {
                Ok(Check::Failed)
            }
            Ok(TotpCheck::Locked { retry_after }) => Err(MethodError {
                code: ErrorCode::RateLimited,
                message: format!(
                    "Too many wrong codes for this user; try again in {} s",
                    retry_after.as_secs().max(1)
                ),
            }),
            Err(e) => {
                tracing::error!(error = %e, "TOTP verification failed");
                Err(MethodError::internal())
            }
        }
    }
}

/// `email`: a one-time code is mailed to the approvers, who pass it on to the caller.
#[derive(Debug)]
pub struct EmailMethod {
    mailer: Arc<Mailer>,
    digits: u32,
}

/// The sentence a failed email sending answers with (no SMTP details).
pub const EMAIL_FAILED_MESSAGE: &str = "The authorization email could not be sent";

impl EmailMethod {
    /// The method over this mailer, with codes of `digits` digits (6 to 9).
    pub fn new(mailer: Arc<Mailer>, digits: u32) -> EmailMethod {
        EmailMethod {
            mailer,
            digits: digits.clamp(otp::MIN_DIGITS, otp::MAX_DIGITS),
        }
    }
}

#[async_trait]
impl AuthMethod for EmailMethod {
    fn name(&self) -> &str {
        "email"
    }

    async fn begin(&self, ctx: &StageContext<'_>) -> Result<StageStart, MethodError> {
        if ctx.approvers.is_empty() {
            tracing::error!(
                op = ctx.op,
                "email authorization configured without approvers"
            );
            return Err(MethodError::operation_failed(EMAIL_FAILED_MESSAGE));
        }
        let code = otp::generate(self.digits).map_err(|e| {
            tracing::error!(error = %e, "cannot draw an email code");
            MethodError::internal()
        })?;
        let hashed = HashedCode::new(&code).map_err(|e| {
            tracing::error!(error = %e, "cannot hash an email code");
            MethodError::internal()
        })?;
        let state = serde_json::to_value(&hashed).map_err(|_| MethodError::internal())?;
        let mailer = self.mailer.clone();
        let to = ctx.approvers.to_vec();
        let (request_id, op, data, caller, expires_at) = (
            ctx.request_id.to_string(),
            ctx.op.to_string(),
            ctx.display_data.clone(),
            ctx.caller.clone(),
            ctx.expires_at,
        );
        let delivery: Delivery = Box::pin(async move {
            let mail = CodeMail {
                request_id: &request_id,
                op: &op,
                display_data: &data,
                caller: &caller,
                expires_at,
                code: &code,
            };
            mailer
                .send_code(&to, &mail)
                .await
                .map_err(|_| MethodError::operation_failed(EMAIL_FAILED_MESSAGE))
        });
        let mut start = StageStart::new(
            state,
            format!(
                "Enter the {}-digit code sent by email to the approvers of this operation",
                self.digits
            ),
        );
        start.delivery = Some(delivery);
        Ok(start)
    }

    async fn check(
        &self,
        ctx: &StageContext<'_>,
        state: &Value,
        response: &Value,
    ) -> Result<Check, MethodError> {
        let hashed = otp::from_state(state).map_err(|e| {
            tracing::error!(request_id = ctx.request_id, error = %e, "email stage state unreadable");
            MethodError::internal()
        })?;
        Ok(match response_code(response) {
            Some(code) if hashed.verify(code) => Check::Passed,
            _ => Check::Failed,
        })
    }
}

/// `approval`: an administrator approves (`regent approve ID`) or denies.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalMethod;

#[async_trait]
impl AuthMethod for ApprovalMethod {
    fn name(&self) -> &str {
        "approval"
    }

    fn decided_by_admin(&self) -> bool {
        true
    }

    async fn begin(&self, ctx: &StageContext<'_>) -> Result<StageStart, MethodError> {
        Ok(StageStart::new(
            json!({ "approved": false }),
            format!(
                "Waiting for an administrator to approve request {}",
                ctx.request_id
            ),
        ))
    }

    async fn check(
        &self,
        _ctx: &StageContext<'_>,
        state: &Value,
        _response: &Value,
    ) -> Result<Check, MethodError> {
        Ok(if state.get("approved") == Some(&Value::Bool(true)) {
            Check::Passed
        } else {
            Check::Waiting
        })
    }
}
