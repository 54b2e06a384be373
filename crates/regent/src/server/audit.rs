//! The audit trail: one record per request.
//!
//! A record holds the caller's pid, uid and user, the operation, the outcome code,
//! the duration, and the data with secret fields redacted. Never the secret: the
//! pipeline never hands it here.

use crate::identity::Caller;
use regent_proto::Response;
use serde_json::Value;
use std::time::Instant;

/// An audit record being filled in while a request is processed.
pub(crate) struct Audit {
    started: Instant,
    pid: Option<i32>,
    uid: u32,
    user: String,
    op: String,
    data: Option<String>,
    note: Option<String>,
}

impl Audit {
    pub(crate) fn start(caller: &Caller) -> Self {
        Audit {
            started: Instant::now(),
            pid: caller.pid,
            uid: caller.uid,
            user: caller.user_or_uid(),
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
            pid = self.pid,
            uid = self.uid,
            user = %self.user,
            op = %self.op,
            outcome,
            duration_us = micros,
            data = self.data.as_deref(),
            note = self.note.as_deref(),
            "request"
        );
    }
}
