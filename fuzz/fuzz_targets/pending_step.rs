//! The next step of a held request: `{"uid": ..., "data": {"code": ...}}` read
//! by the request decoder, the code taken from `data` (`response_code`) and
//! checked as a TOTP code (`verify_code`) and as an emailed code
//! (`HashedCode::verify`), and the uid presented to the pending engine
//! (`AuthFlow::resume`) over a real SQLite store holding one request.
//!
//! Input: 8 bytes of Unix time (little endian), a flags byte (bit 0: present the
//! held request's real uid instead of the one in the line; bit 1: present it as
//! the request's owner rather than another user), a byte choosing the last TOTP
//! step already used, then the request line.
//!
//! Invariants checked:
//! - `verify_code` agrees with a reference computed here from RFC 6238: a code is
//!   accepted only if it is exactly 6 ASCII digits (surrounding whitespace
//!   aside) equal to the code of a step within one of now, newer than the last
//!   used step, and then for the newest such step; a right code for a used step
//!   is a replay; everything else is rejected;
//! - an emailed code matches only itself (surrounding whitespace aside);
//! - a uid that is not the held request's, or the held request's presented by
//!   another user, is refused as not found whatever the data; the owner polling an
//!   approval still awaited gets the same pending answer with the same uid.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use regent_auth::otp::HashedCode;
use regent_auth::totp::{format_code, hotp, step_at, verify_code, TotpCheck, DIGITS, SKEW};
use regent_auth::{method::response_code, AuthFlow, CallerId, FlowOptions, FlowOutcome};
use regent_auth::{MethodRegistry, Refusal, Stage, StartRequest};
use regent_proto::Request;
use serde_json::{json, Value};

/// The RFC 6238 test secret.
const TOTP_SECRET: &[u8] = b"12345678901234567890";
/// The code an approver was mailed.
const EMAIL_CODE: &str = "042042";

struct Held {
    rt: tokio::runtime::Runtime,
    flow: AuthFlow,
    uid: String,
    owner: CallerId,
    email: HashedCode,
    _dir: tempfile::TempDir,
}

fn held() -> &'static Held {
    static H: OnceLock<Held> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let flow = AuthFlow::open(
            &dir.path().join("pending.db"),
            MethodRegistry::with_builtins(None, None, 6),
            FlowOptions::default(),
        )
        .expect("the store opens");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let owner = CallerId::unix(Some(1), 1000, 1000, Some("alice".into()));
        let outcome = rt.block_on(flow.start(StartRequest {
            op: "restart".into(),
            data: json!({"service": "nginx"}),
            display_data: json!({"service": "nginx"}),
            caller: owner.clone(),
            stages: [Stage::Approval].into_iter().collect(),
            ttl: Duration::from_secs(365 * 24 * 3600),
            max_attempts: 5,
            approvers: Vec::new(),
            max_pending_per_uid: 8,
            declaration: None,
            preview: None,
        }));
        let FlowOutcome::Pending { uid, .. } = outcome else {
            panic!("the request was not held: {outcome:?}");
        };
        Held {
            rt,
            flow,
            uid,
            owner,
            email: HashedCode::new(EMAIL_CODE).expect("a hashed code"),
            _dir: dir,
        }
    })
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 10 {
        return;
    }
    let unix = u64::from_le_bytes(input[..8].try_into().unwrap());
    let flags = input[8];
    let now = step_at(unix);
    let used = match input[9] {
        0 => None,
        b => Some((now + u64::from(b % 7)).saturating_sub(3)),
    };
    let line = &input[10..];

    let Ok(request) = Request::parse(line) else {
        return;
    };
    let (uid, data) = match request {
        Request::Continue { uid, data, .. } => (uid, data),
        Request::New { .. } => return,
    };

    if let Some(code) = response_code(&data) {
        assert_eq!(data.get("code").and_then(Value::as_str), Some(code));
        let got = verify_code(TOTP_SECRET, code, unix, used);
        assert_eq!(got, reference_totp(code, now, used), "TOTP verdict");
        let email = held().email.verify(code);
        assert_eq!(email, code.trim() == EMAIL_CODE, "email code verdict");
    } else {
        assert!(!data.get("code").is_some_and(Value::is_string));
    }

    let h = held();
    let presented = if flags & 1 != 0 {
        h.uid.as_str()
    } else {
        uid.as_str()
    };
    let caller = if flags & 2 != 0 {
        h.owner.clone()
    } else {
        CallerId::unix(Some(2), 1001, 1001, Some("mallory".into()))
    };
    let outcome =
        h.rt.block_on(h.flow.resume(presented, &caller, &data, None));
    if presented == h.uid && caller.uid == h.owner.uid {
        assert!(
            outcome.is_still_waiting(&h.uid),
            "the owner's poll changed the request: {outcome:?}"
        );
    } else {
        assert_eq!(
            outcome.refusal(),
            Some(&Refusal::NotFound),
            "a foreign or unknown uid: {outcome:?}"
        );
    }
});

/// RFC 6238 with the service's rules, from scratch.
fn reference_totp(code: &str, now: u64, used: Option<u64>) -> TotpCheck {
    let c = code.trim();
    if c.len() != DIGITS as usize || !c.bytes().all(|b| b.is_ascii_digit()) {
        return TotpCheck::Rejected;
    }
    let matching: Vec<u64> = (now.saturating_sub(SKEW)..=now + SKEW)
        .filter(|&s| format_code(hotp(TOTP_SECRET, s, DIGITS), DIGITS).as_str() == c)
        .collect();
    match matching
        .iter()
        .copied()
        .filter(|&s| used.is_none_or(|u| s > u))
        .max()
    {
        Some(step) => TotpCheck::Accepted { step },
        None if matching.is_empty() => TotpCheck::Rejected,
        None => TotpCheck::Replayed,
    }
}
