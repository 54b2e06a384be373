//! Authorization methods: the [`AuthMethod`] trait a library implements to add
//! its own out-of-channel check, and the [`MethodRegistry`] of a service: the
//! built-ins it has (`approval` always, `totp` with a TOTP store, `email` with a
//! mailer) and the library's methods, by name.
//!
//! The built-ins are not trait objects: their transitions are the pure
//! [`crate::machine::step`], and the engine ([`crate::flow`]) does their I/O with
//! the store and mailer held here. A library method is asked through this trait
//! and keeps its own JSON state, which nothing else reads.

use crate::caller::CallerId;
use crate::email::Mailer;
use crate::otp;
use crate::totp::TotpStore;
use async_trait::async_trait;
use regent_model::Stage;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// Nothing decided yet: the same pending response again.
    Waiting,
    /// Refused, with an optional reason shown to the caller.
    Denied(Option<String>),
}

/// A method's failure, as the caller will be told it (the server picks the wire
/// code): sentences must not carry internal details (log those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodError {
    /// The stage cannot go on (not enrolled, the email could not be sent...):
    /// this sentence is answered (as `operation_failed`).
    Unavailable(String),
    /// The caller must wait this long before trying again (`rate_limited`).
    RateLimited {
        /// How long.
        retry_after: Duration,
    },
    /// Something failed inside; details are in the log (`internal`).
    Internal,
}

impl MethodError {
    /// [`MethodError::Unavailable`] with this sentence.
    pub fn operation_failed(message: impl Into<String>) -> MethodError {
        MethodError::Unavailable(message.into())
    }
    /// [`MethodError::Internal`].
    pub fn internal() -> MethodError {
        MethodError::Internal
    }
}

/// An out-of-channel method added by a library (like the Python Regent's `Auth`
/// class). The built-in `totp`, `email` and `approval` are not of this kind.
#[async_trait]
pub trait AuthMethod: Send + Sync + 'static {
    /// The name stages use: `[a-z][a-z0-9_-]*`, at most 32 characters, not a
    /// built-in's (see [`regent_model::Stage::parse`]).
    fn name(&self) -> &str;

    /// Begin the stage: prepare (and return as [`StageStart::delivery`]) the challenge.
    async fn begin(&self, ctx: &StageContext<'_>) -> Result<StageStart, MethodError>;

    /// Check the caller's `response` (the `data` of the uid request) against the
    /// `state` this method stored at [`AuthMethod::begin`].
    async fn check(
        &self,
        ctx: &StageContext<'_>,
        state: &Value,
        response: &Value,
    ) -> Result<Check, MethodError>;
}

/// The `code` string of a response, if any.
pub fn response_code(response: &Value) -> Option<&str> {
    response.get("code").and_then(Value::as_str)
}

/// The methods a service knows, by name: the built-ins it has the means for and
/// the library's methods.
#[derive(Clone)]
pub struct MethodRegistry {
    totp: Option<Arc<TotpStore>>,
    mailer: Option<Arc<Mailer>>,
    email_digits: u32,
    methods: HashMap<String, Arc<dyn AuthMethod>>,
}

impl Default for MethodRegistry {
    fn default() -> Self {
        MethodRegistry::with_builtins(None, None, otp::MIN_DIGITS)
    }
}

impl fmt::Debug for MethodRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl MethodRegistry {
    /// A registry of `approval` alone.
    pub fn new() -> MethodRegistry {
        MethodRegistry::default()
    }

    /// The built-ins: `approval` always, `totp` with a TOTP store, `email` with a
    /// mailer (codes of `email_digits` digits, 6 to 9).
    pub fn with_builtins(
        totp: Option<Arc<TotpStore>>,
        mailer: Option<Arc<Mailer>>,
        email_digits: u32,
    ) -> Self {
        MethodRegistry {
            totp,
            mailer,
            email_digits: email_digits.clamp(otp::MIN_DIGITS, otp::MAX_DIGITS),
            methods: HashMap::new(),
        }
    }

    /// Add a library method, replacing one of the same name. Returns the method
    /// left out: the one replaced, or `method` itself when its name is a
    /// built-in's or is not a well-formed stage name (logged; it cannot be used).
    pub fn register(&mut self, method: Arc<dyn AuthMethod>) -> Option<Arc<dyn AuthMethod>> {
        match Stage::parse(method.name()) {
            Ok(Stage::Method(name)) => self.methods.insert(name.as_str().to_string(), method),
            Ok(_) => {
                tracing::error!(
                    name = method.name(),
                    "a library method may not take a built-in method's name; not registered"
                );
                Some(method)
            }
            Err(e) => {
                tracing::error!(error = %e, "a library method's name is malformed; not registered");
                Some(method)
            }
        }
    }

    /// Whether `stage` can run here.
    pub fn has(&self, stage: &Stage) -> bool {
        match stage {
            Stage::Approval => true,
            Stage::Totp => self.totp.is_some(),
            Stage::Email => self.mailer.is_some(),
            Stage::Method(name) => self.methods.contains_key(name.as_str()),
        }
    }

    /// The library method called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn AuthMethod>> {
        self.methods.get(name)
    }

    /// The TOTP store, when `totp` is available.
    pub fn totp_store(&self) -> Option<&Arc<TotpStore>> {
        self.totp.as_ref()
    }

    /// The mailer, when `email` is available.
    pub fn mailer(&self) -> Option<&Arc<Mailer>> {
        self.mailer.as_ref()
    }

    /// How many digits an emailed code has.
    pub fn email_digits(&self) -> u32 {
        self.email_digits
    }

    /// The available names, sorted.
    pub fn names(&self) -> Vec<String> {
        let built_in = Stage::BUILT_IN.into_iter().filter(|s| self.has(s));
        let mut v: Vec<String> = built_in.map(String::from).collect();
        v.extend(self.methods.keys().cloned());
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    #[async_trait]
    impl AuthMethod for Named {
        fn name(&self) -> &str {
            self.0
        }
        async fn begin(&self, _: &StageContext<'_>) -> Result<StageStart, MethodError> {
            Err(MethodError::Internal)
        }
        async fn check(
            &self,
            _: &StageContext<'_>,
            _: &Value,
            _: &Value,
        ) -> Result<Check, MethodError> {
            Ok(Check::Failed)
        }
    }

    #[test]
    fn library_methods_take_their_own_well_formed_names_only() {
        let mut r = MethodRegistry::with_builtins(None, None, 6);
        assert!(r.register(Arc::new(Named("yubikey"))).is_none());
        assert!(r.register(Arc::new(Named("yubikey"))).is_some(), "replaced");
        for refused in ["totp", "approval", "Bad Name", ""] {
            let back = r.register(Arc::new(Named(refused)));
            assert_eq!(back.map(|m| m.name().to_string()), Some(refused.into()));
        }
        assert!(r.has(&Stage::Approval));
        assert!(!r.has(&Stage::Totp), "no TOTP store");
        assert!(!r.has(&Stage::Email), "no mailer");
        assert!(r.has(&Stage::parse("yubikey").unwrap()));
        assert_eq!(r.names(), ["approval", "yubikey"]);
    }
}
