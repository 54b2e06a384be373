//! Holding requests for out-of-channel authorization (wired to regent-auth).

use super::audit::Audit;
use super::Shared;
use crate::identity::Caller;
use crate::operation::Checked;
use crate::registry::Entry;
use regent_proto::{ErrorCode, Response};
use serde_json::Value;
use std::sync::Arc;

impl Shared {
    pub(crate) async fn hold(
        &self,
        _caller: &Arc<Caller>,
        op: &str,
        _entry: &Entry,
        _checked: Checked,
        stages: Vec<String>,
        audit: &mut Audit,
    ) -> Response {
        audit.note(&format!(
            "{op} requires {stages:?} but no pending store is configured"
        ));
        Response::error(ErrorCode::Internal)
    }

    pub(crate) async fn continue_request(
        &self,
        caller: &Arc<Caller>,
        _uid: &str,
        _data: Value,
        _audit: &mut Audit,
    ) -> Response {
        self.limiter.record_failure(&caller.uid);
        Response::error(ErrorCode::NotFound)
    }
}
