//! Operations: the library face of Regent, the Rust counterpart of the Python
//! `Operation` class.
//!
//! An operation declares the shape of its `data` as a serde type (a bad field is
//! `invalid_data` naming the field), may check the data further, may decide per
//! request whether out-of-channel authorization is needed, and performs the work.
//!
//! ```
//! use regent::operation::{Context, OpError, Operation};
//!
//! struct WhoAmI;
//! impl Operation for WhoAmI {
//!     type Data = ();
//!     type Output = String;
//!     async fn perform(&self, ctx: Context, _: ()) -> Result<String, OpError> {
//!         Ok(ctx.caller.user_or_uid())
//!     }
//! }
//! ```

use crate::identity::Caller;
use regent_model::{Stage, Stages};
use regent_proto::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// What an operation sees of the request it serves.
#[derive(Debug, Clone)]
pub struct Context {
    /// The caller, from the kernel.
    pub caller: Arc<Caller>,
    /// The operation name the caller asked for.
    pub op: String,
    /// When the operation's time limit runs out.
    pub deadline: Instant,
    /// The request asked for a dry run (only ever set for an operation whose
    /// [`DynOperation::dry_run`] is true): report what would change, change nothing.
    pub dry_run: bool,
    /// For a request that was held for authorization, what a dry run of it
    /// answered when it was held (only for an operation that offers dry runs):
    /// the change the approvers saw. The operation refuses to run when what it
    /// would change is no longer what they saw (for Augeas: the file's hash).
    pub preview: Option<Value>,
}

/// `data` failed validation: which field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidData {
    /// The field path, e.g. `ip` or `rules[2].port`; empty for the whole `data`.
    pub field: String,
    /// Why, without echoing secret values.
    pub reason: String,
}

impl InvalidData {
    /// A validation failure for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        InvalidData {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for InvalidData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "Invalid data: {}", self.reason)
        } else {
            write!(f, "Invalid data: {}: {}", self.field, self.reason)
        }
    }
}

/// How an operation failed. Each becomes an error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// The operation ran and failed (`operation_failed`); the message goes to the client.
    Failed(String),
    /// The data was refused (`invalid_data`).
    Invalid(InvalidData),
    /// The operation ran past its limit and was stopped (`timeout`).
    Timeout,
    /// The caller may not do this after all (`permission_denied`).
    Denied,
    /// The service is at a concurrency limit (`busy`).
    Busy,
    /// A fault in the service; the detail is logged, the client sees only `internal`.
    Internal(String),
}

impl OpError {
    /// `operation_failed` with a message for the client.
    pub fn failed(msg: impl Into<String>) -> Self {
        OpError::Failed(msg.into())
    }

    /// `invalid_data` for a field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        OpError::Invalid(InvalidData::new(field, reason))
    }

    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            OpError::Failed(_) => ErrorCode::OperationFailed,
            OpError::Invalid(_) => ErrorCode::InvalidData,
            OpError::Timeout => ErrorCode::Timeout,
            OpError::Denied => ErrorCode::PermissionDenied,
            OpError::Busy => ErrorCode::Busy,
            OpError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The sentence sent to the client (internal details are not).
    pub fn client_message(&self) -> String {
        match self {
            OpError::Failed(m) => m.clone(),
            OpError::Invalid(i) => i.to_string(),
            other => other.code().default_message().to_string(),
        }
    }
}

impl From<InvalidData> for OpError {
    fn from(i: InvalidData) -> Self {
        OpError::Invalid(i)
    }
}

/// Whether a request may run now.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// Run now.
    Allow,
    /// Refuse (`permission_denied`); the reason is logged only.
    Deny(String),
    /// Hold the request until these out-of-channel stages pass, in order
    /// (after the operation's configured `auth` stages).
    Require(Stages),
}

impl Authorization {
    /// Hold the request until `stages` pass, in order (a repeated stage counts once).
    pub fn require(stages: impl IntoIterator<Item = Stage>) -> Authorization {
        Authorization::Require(stages.into_iter().collect())
    }

    /// The default after a stage: run now if no stage remains, else require the rest.
    pub fn continue_with(remaining: &Stages) -> Authorization {
        if remaining.is_empty() {
            Authorization::Allow
        } else {
            Authorization::Require(remaining.clone())
        }
    }
}

/// Shown by `regent ops`: what an operation is and what it takes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpInfo {
    /// One sentence.
    pub description: String,
    /// The parameters, as a JSON object `{name: {type, ...}}` (free form).
    pub params: Value,
}

/// An operation written in Rust.
pub trait Operation: Send + Sync + 'static {
    /// The shape of `data`. Use `()` for none; `null` and `{}` both fit a struct
    /// whose fields are all optional.
    type Data: DeserializeOwned + Serialize + Send + Sync + 'static;
    /// What the operation returns to the caller.
    type Output: Serialize + Send + 'static;

    /// Description and parameters for `regent ops`.
    fn info(&self) -> OpInfo {
        OpInfo::default()
    }

    /// Checks beyond the types (ranges, formats). Called before anything is held or run.
    fn validate(&self, _data: &Self::Data) -> Result<(), InvalidData> {
        Ok(())
    }

    /// Per request: run now, refuse, or require out-of-channel stages.
    fn authorize(&self, _caller: &Caller, _data: &Self::Data) -> Authorization {
        Authorization::Allow
    }

    /// After a stage passed, with the stages still to come: continue as they are
    /// (the default), deny, or replace the remaining stages (like the Python
    /// `auth_response`). Returning `Allow` runs the operation now.
    fn after_stage(
        &self,
        _caller: &Caller,
        _data: &Self::Data,
        _stage: &Stage,
        remaining: &Stages,
    ) -> Authorization {
        Authorization::continue_with(remaining)
    }

    /// Whether it can do a dry run: `perform` with [`Context::dry_run`] set
    /// reports what it would do and changes nothing (see
    /// [`DynOperation::dry_run`]). Default: no.
    fn dry_run(&self) -> bool {
        false
    }

    /// Do the work.
    fn perform(
        &self,
        ctx: Context,
        data: Self::Data,
    ) -> impl Future<Output = Result<Self::Output, OpError>> + Send;
}

/// A boxed future of an operation's result.
pub type BoxResult = Pin<Box<dyn Future<Output = Result<Value, OpError>> + Send>>;

/// The object-safe form of [`Operation`] the registry stores: data travels as
/// validated, normalised JSON so that what is held and later run is exactly what
/// was validated.
pub trait DynOperation: Send + Sync {
    /// Description and parameters.
    fn info(&self) -> OpInfo;
    /// Validate `data`, returning its normalised JSON and the same with secret
    /// fields redacted (for logs and approvers).
    fn check(&self, data: Value) -> Result<Checked, InvalidData>;
    /// Per-request authorization on checked data.
    fn authorize(&self, caller: &Caller, data: &Value) -> Authorization;
    /// After a stage.
    fn after_stage(
        &self,
        caller: &Caller,
        data: &Value,
        stage: &Stage,
        remaining: &Stages,
    ) -> Authorization;
    /// Perform on checked data.
    fn perform(self: Arc<Self>, ctx: Context, data: Value) -> BoxResult;
    /// Whether it can do a dry run (`"dry_run": true` in a request, advertised
    /// in `regent.ops`): perform with [`Context::dry_run`] set changes nothing.
    /// Others answer such a request `bad_request`.
    fn dry_run(&self) -> bool {
        false
    }
}

/// Validated request data.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The normalised data, exactly what will run.
    pub data: Value,
    /// The data as logs and approvers may see it.
    pub redacted: Value,
}

/// Decode `data` into `T`, naming the failing field.
pub fn decode<T: DeserializeOwned>(data: Value) -> Result<T, InvalidData> {
    let is_null = data.is_null();
    match serde_path_to_error::deserialize::<_, T>(data) {
        Ok(v) => Ok(v),
        Err(e) if is_null => {
            // `null` means "no data": try it as an empty object for structs whose
            // fields are all optional.
            serde_path_to_error::deserialize::<_, T>(Value::Object(Default::default())).map_err(
                |_| {
                    let path = e.path().to_string();
                    InvalidData::new(
                        if path == "." { String::new() } else { path },
                        e.inner().to_string(),
                    )
                },
            )
        }
        Err(e) => {
            let path = e.path().to_string();
            Err(InvalidData::new(
                if path == "." { String::new() } else { path },
                e.inner().to_string(),
            ))
        }
    }
}

/// Adapter from [`Operation`] to [`DynOperation`].
pub(crate) struct Erased<O>(pub O);

impl<O: Operation> Erased<O> {
    fn typed(&self, data: &Value) -> Option<O::Data> {
        decode::<O::Data>(data.clone()).ok()
    }
}

impl<O: Operation> DynOperation for Erased<O> {
    fn info(&self) -> OpInfo {
        self.0.info()
    }

    fn check(&self, data: Value) -> Result<Checked, InvalidData> {
        let typed: O::Data = decode(data)?;
        self.0.validate(&typed)?;
        let data = serde_json::to_value(&typed).map_err(|e| InvalidData::new("", e.to_string()))?;
        Ok(Checked {
            redacted: data.clone(),
            data,
        })
    }

    fn authorize(&self, caller: &Caller, data: &Value) -> Authorization {
        match self.typed(data) {
            Some(d) => self.0.authorize(caller, &d),
            None => Authorization::Deny("data no longer decodes".into()),
        }
    }

    fn after_stage(
        &self,
        caller: &Caller,
        data: &Value,
        stage: &Stage,
        remaining: &Stages,
    ) -> Authorization {
        match self.typed(data) {
            Some(d) => self.0.after_stage(caller, &d, stage, remaining),
            None => Authorization::Deny("data no longer decodes".into()),
        }
    }

    fn dry_run(&self) -> bool {
        self.0.dry_run()
    }

    fn perform(self: Arc<Self>, ctx: Context, data: Value) -> BoxResult {
        Box::pin(async move {
            let typed: O::Data = decode(data)?;
            let out = self.0.perform(ctx, typed).await?;
            serde_json::to_value(out)
                .map_err(|e| OpError::Internal(format!("result does not serialise: {e}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Fw {
        ip: String,
        port: Option<u16>,
    }

    #[test]
    fn decode_names_the_bad_field() {
        let e = decode::<Fw>(json!({"ip": 5})).unwrap_err();
        assert_eq!(e.field, "ip");
        let e = decode::<Fw>(json!({"ip": "1.2.3.4", "port": 70000})).unwrap_err();
        assert_eq!(e.field, "port");
        let e = decode::<Fw>(json!({"ip": "1.2.3.4", "evil": 1})).unwrap_err();
        assert!(e.reason.contains("evil"), "{e}");
        let e = decode::<Fw>(json!({})).unwrap_err();
        assert!(e.reason.contains("ip"), "{e}");
    }

    #[test]
    fn null_means_no_data() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Opt {
            verbose: Option<bool>,
        }
        assert!(decode::<Opt>(Value::Null).unwrap().verbose.is_none());
        decode::<()>(Value::Null).unwrap();
        assert!(decode::<Fw>(Value::Null).is_err());
    }
}
