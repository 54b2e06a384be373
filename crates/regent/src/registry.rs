//! The named operations a service offers, with the limits declared next to each.

use crate::operation::{DynOperation, Erased, Operation};
use crate::policy::{AllowRule, OpRule};
use regent_model::{Stage, Stages};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Names starting with this are the service's own (introspection, administration).
pub const RESERVED_PREFIX: &str = "regent.";

/// Limits and policy for one operation.
#[derive(Debug, Clone)]
pub struct OpOptions {
    /// Who may call it; `None` is everyone holding the secret.
    pub allow: Option<AllowRule>,
    /// Wall-clock limit for `perform`.
    pub timeout: Duration,
    /// At most this many running at once; more answer `busy`.
    pub concurrency: Option<usize>,
    /// How long a held request waits for its out-of-channel stages.
    pub pending_ttl: Duration,
    /// Wrong codes allowed before a held request is dropped.
    pub max_attempts: u32,
    /// Requests of this operation one caller uid may have held at once; more
    /// answer `busy` (the service-wide caps are [`crate::server::ServiceBuilder::pending_caps`]).
    pub max_pending_per_uid: u32,
    /// Email addresses for the `email` method.
    pub approvers: Vec<String>,
    /// Stages every request must pass, before those the operation's own
    /// `authorize` adds.
    pub auth: Stages,
    /// Who may approve or deny this operation's held requests. `None`: the
    /// service's administrators (root and the admin group). Root always may.
    pub approve: Option<AllowRule>,
}

impl Default for OpOptions {
    fn default() -> Self {
        OpOptions {
            allow: None,
            timeout: Duration::from_secs(30),
            concurrency: None,
            pending_ttl: Duration::from_secs(600),
            max_attempts: 5,
            max_pending_per_uid: regent_config::DEFAULT_OP_MAX_PENDING_PER_UID,
            approvers: Vec::new(),
            auth: Stages::none(),
            approve: None,
        }
    }
}

impl OpOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Restrict callers.
    pub fn allow(mut self, rule: AllowRule) -> Self {
        self.allow = Some(rule);
        self
    }
    /// Set the time limit.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Limit concurrent runs.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }
    /// Require stages for every request (a repeated stage counts once).
    pub fn auth(mut self, stages: impl IntoIterator<Item = Stage>) -> Self {
        self.auth = stages.into_iter().collect();
        self
    }
    /// Who may approve this operation's held requests (instead of the admin group).
    pub fn approve(mut self, rule: AllowRule) -> Self {
        self.approve = Some(rule);
        self
    }
    /// Email approvers.
    pub fn approvers<S: Into<String>>(mut self, to: impl IntoIterator<Item = S>) -> Self {
        self.approvers = to.into_iter().map(Into::into).collect();
        self
    }
    /// How long held requests live.
    pub fn pending_ttl(mut self, t: Duration) -> Self {
        self.pending_ttl = t;
        self
    }

    /// What the policy weighs of these options ([`crate::policy::evaluate`]).
    pub fn rule(&self) -> OpRule<'_> {
        OpRule {
            allow: self.allow.as_ref(),
            auth: &self.auth,
        }
    }
}

/// One registered operation.
#[derive(Clone)]
pub struct Entry {
    /// The operation.
    pub op: Arc<dyn DynOperation>,
    /// Its options.
    pub options: OpOptions,
    /// Its concurrency gate, if limited.
    pub(crate) gate: Option<Arc<Semaphore>>,
    /// The digest of its declaration ([`Registry::register_declared`]), if it
    /// has one: a held request runs only under the declaration it was held under.
    pub declaration: Option<String>,
}

/// Why a name cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Empty, too long, or with characters outside `[A-Za-z0-9._-]`.
    #[error("invalid operation name {0:?}: use 1-64 characters from A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// Starts with `regent.`.
    #[error(
        "operation name {0:?} is reserved (names starting with 'regent.' are the service's own)"
    )]
    Reserved(String),
    /// Registered twice.
    #[error("operation {0:?} is registered twice")]
    Duplicate(String),
}

/// The operations of a service, by name.
#[derive(Clone, Default)]
pub struct Registry {
    ops: BTreeMap<String, Entry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a Rust operation.
    pub fn register<O: Operation>(
        &mut self,
        name: &str,
        op: O,
        options: OpOptions,
    ) -> Result<(), RegisterError> {
        self.register_dyn(name, Arc::new(Erased(op)), options)
    }

    /// Register an already type-erased operation (e.g. a command operation).
    pub fn register_dyn(
        &mut self,
        name: &str,
        op: Arc<dyn DynOperation>,
        options: OpOptions,
    ) -> Result<(), RegisterError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(RegisterError::BadName(name.to_string()));
        }
        if name.starts_with(RESERVED_PREFIX) {
            return Err(RegisterError::Reserved(name.to_string()));
        }
        if self.ops.contains_key(name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        let gate = options
            .concurrency
            .map(|n| Arc::new(Semaphore::new(n.max(1))));
        self.ops.insert(
            name.to_string(),
            Entry {
                op,
                options,
                gate,
                declaration: None,
            },
        );
        Ok(())
    }

    /// [`Registry::register_dyn`] for an operation made from a declaration (a
    /// config's), with the digest of that declaration
    /// ([`regent_auth::store::declaration_digest`]).
    pub fn register_declared(
        &mut self,
        name: &str,
        op: Arc<dyn DynOperation>,
        options: OpOptions,
        declaration: String,
    ) -> Result<(), RegisterError> {
        self.register_dyn(name, op, options)?;
        if let Some(entry) = self.ops.get_mut(name) {
            entry.declaration = Some(declaration);
        }
        Ok(())
    }

    /// This registry, where an operation whose declaration is the same as in
    /// `running` shares its concurrency gate: across a reload, runs still in
    /// flight under the old configuration count against the new one's limit.
    pub(crate) fn keeping_gates_of(mut self, running: &Registry) -> Registry {
        for (name, entry) in &mut self.ops {
            match running.ops.get(name) {
                Some(old)
                    if entry.declaration.is_some()
                        && old.declaration == entry.declaration
                        && old.options.concurrency == entry.options.concurrency =>
                {
                    entry.gate = old.gate.clone();
                }
                _ => {}
            }
        }
        self
    }

    /// Look an operation up.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.ops.get(name)
    }

    /// All operations, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.ops.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
