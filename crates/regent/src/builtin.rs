//! The service's own operations, under the reserved `regent.` prefix.
//!
//! - `regent.ops`: the operations this caller may call, with descriptions and
//!   parameters. Operations the caller may not call are not listed.

use crate::identity::Caller;
use crate::policy::decide;
use crate::server::audit::Audit;
use crate::server::Shared;
use regent_proto::{ErrorCode, Response};
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) async fn handle(
    shared: &Shared,
    caller: &Arc<Caller>,
    op: &str,
    _data: Value,
    _audit: &mut Audit,
) -> Response {
    match op {
        "regent.ops" => {
            let ops: Vec<Value> = shared
                .registry
                .iter()
                .filter(|(_, e)| decide(e.options.allow.as_ref(), caller).is_allowed())
                .map(|(name, e)| {
                    let info = e.op.info();
                    json!({
                        "name": name,
                        "description": info.description,
                        "params": info.params,
                        "auth": e.options.auth,
                    })
                })
                .collect();
            Response::Done(Value::Array(ops))
        }
        _ => Response::error(ErrorCode::UnknownOperation),
    }
}
