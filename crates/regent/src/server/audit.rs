//! The audit trail: one record per request.
//!
//! A record holds the caller's pid, uid and user, the operation, the outcome code,
//! the duration, and the data with secret fields redacted. Never the secret: the
//! pipeline never hands it here.

use crate::identity::Caller;
use regent_proto::Response;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// The caller's user name, or its uid when the user database has none.
struct UserOrUid<'a>(&'a Caller);

impl fmt::Display for UserOrUid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.user {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0.uid),
        }
    }
}

/// An audit record being filled in while a request is processed.
pub(crate) struct Audit {
    started: Instant,
    caller: Arc<Caller>,
    op: String,
    data: Option<String>,
    note: Option<String>,
}

impl Audit {
    pub(crate) fn start(caller: &Arc<Caller>) -> Self {
        Audit {
            started: Instant::now(),
            caller: caller.clone(),
            op: String::new(),
            data: None,
            note: None,
        }
    }

    pub(crate) fn op(&mut self, op: &str) {
        self.op = op.to_string();
    }

    /// Record the (already redacted) data.
    pub(crate) fn data(&mut self, redacted: &Value) {
        if !redacted.is_null() {
            let mut s = redacted.to_string();
            if s.len() > 512 {
                let mut cut = 512;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s.push('…');
            }
            self.data = Some(s);
        }
    }

    /// Why a request was refused, for the log only.
    pub(crate) fn note(&mut self, why: &str) {
        self.note = Some(why.to_string());
    }

    pub(crate) fn finish(self, response: &Response) {
        let outcome = match response {
            Response::Done(_) => "ok",
            Response::Pending { .. } => "pending",
            Response::Error { code: Some(c), .. } => c.as_str(),
            Response::Error { code: None, .. } => "error",
        };
        let micros = self.started.elapsed().as_micros() as u64;
        tracing::info!(
            target: "regent::audit",
            pid = self.caller.pid,
            uid = self.caller.uid,
            user = %UserOrUid(&self.caller),
            op = %self.op,
            outcome,
            duration_us = micros,
            data = self.data.as_deref(),
            note = self.note.as_deref(),
            "request"
        );
    }
}
