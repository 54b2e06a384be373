//! The authorization flow as a state machine without I/O: [`step`] takes a held
//! request ([`PendingRecord`]) and an [`Event`], and returns the record as it
//! should now be and the one [`Effect`] the driver ([`crate::flow`]) must carry
//! out: store it, mail a code, ask the TOTP store or a library method, or answer
//! pending, run, or a [`Refusal`]. Where an effect needs an answer (is the user
//! enrolled, was the code right, what did the hook decide), the driver feeds it
//! back as the next event.
//!
//! No clock, randomness, store, mail or log here: the time comes in the events,
//! the email code is drawn by the driver. Each built-in method reads only its
//! own typed [`StageState`]; a library method's JSON is only handed back to it.

use crate::caller::CallerId;
use crate::method::{response_code, Check, MethodError};
use crate::otp::HashedCode;
use crate::state::{ApprovalState, StageState, TotpState};
use crate::store::{to_ms, CapReached, Decision, PendingRecord, RecordStatus};
use crate::totp::TotpCheck;
use regent_model::{CallerKey, Stage, Stages};
use regent_proto::PendingInfo;
use serde_json::{json, Map, Value};
use std::fmt;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// The longest denial reason kept (characters).
pub const MAX_REASON_CHARS: usize = 500;

/// The sentence a failed email sending answers with (no SMTP details).
pub const EMAIL_FAILED_MESSAGE: &str = "The authorization email could not be sent";

/// The sentence of a TOTP stage's pending response.
pub const TOTP_MESSAGE: &str = "Enter the 6-digit code from your authenticator";

/// The sentence answered when a TOTP stage begins for a user with no authenticator.
pub const NOT_ENROLLED_MESSAGE: &str = "This operation needs a TOTP code, and no authenticator \
    is enrolled for you (an administrator runs `regent totp enroll USER`)";

/// Why a request is not (or no longer) answered pending or run. The server
/// chooses the wire code of each; [`fmt::Display`] is the sentence for the
/// caller (no secret, code or internal detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A wrong code: counted; `attempts_left` 0 means the request was dropped.
    WrongCode {
        /// Attempts left before the request is dropped.
        attempts_left: u32,
    },
    /// No such request for this caller: unknown, used, expired or another
    /// user's uid (one answer for all).
    NotFound,
    /// An administrator, the operation or a method refused the request.
    Denied {
        /// The reason given, if any (control characters removed).
        reason: Option<String>,
    },
    /// The caller must wait before trying again (a TOTP user backing off).
    RateLimited {
        /// How long.
        retry_after: Duration,
    },
    /// Too much at once.
    Busy(Busy),
    /// The stage cannot go on: this sentence, or a general one.
    Unavailable(Option<String>),
    /// Something failed inside; details are in the log.
    Internal,
}

/// Why a [`Refusal::Busy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Another step of the same request is being checked.
    InProgress,
    /// A cap on held requests is reached.
    Full {
        /// Which cap.
        which: CapReached,
        /// Its value.
        cap: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::WrongCode { attempts_left: 0 } => {
                f.write_str("Wrong code; too many attempts, the request was dropped")
            }
            Refusal::WrongCode { attempts_left } => write!(
                f,
                "Wrong code ({attempts_left} attempt{} left)",
                if *attempts_left == 1 { "" } else { "s" }
            ),
            Refusal::NotFound => f.write_str("No such pending request"),
            Refusal::Denied { reason: Some(r) } => write!(f, "Denied: {r}"),
            Refusal::Denied { reason: None } => f.write_str("Denied"),
            Refusal::RateLimited { retry_after } => write!(
                f,
                "Too many wrong codes for this user; try again in {} s",
                retry_after.as_secs().max(1)
            ),
            Refusal::Busy(Busy::InProgress) => {
                f.write_str("Another step of this request is in progress")
            }
            Refusal::Busy(Busy::Full { which, cap }) => {
                let what = which.what();
                write!(f, "Too many requests are waiting for authorization {what} (at most {cap}); try again once some are decided")
            }
            Refusal::Unavailable(Some(m)) => f.write_str(m),
            Refusal::Unavailable(None) => f.write_str("The operation failed"),
            Refusal::Internal => f.write_str("Internal error"),
        }
    }
}

impl From<MethodError> for Refusal {
    fn from(e: MethodError) -> Refusal {
        match e {
            MethodError::Unavailable(m) => Refusal::Unavailable(Some(m)),
            MethodError::RateLimited { retry_after } => Refusal::RateLimited { retry_after },
            MethodError::Internal => Refusal::Internal,
        }
    }
}

/// What a hook decides after a stage.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    /// Go on with the remaining stages.
    Continue,
    /// Refuse the request, with an optional reason for the caller.
    Deny(Option<String>),
    /// Replace the remaining stages (none: the operation runs now).
    ReplaceRemainingStages(Stages),
    /// The hook cannot decide (the operation is misconfigured, e.g. it named a
    /// malformed stage): the request is dropped as an internal error.
    Fail,
}

/// Why an administrator's decision is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRefusal {
    /// No such request waiting (decided, expired, unknown).
    NotFound,
    /// The current stage is not an approval.
    NotAwaitingApproval {
        /// The current stage.
        stage: String,
    },
    /// Approving one's own request is not allowed here.
    OwnRequest,
}

/// A code sent by the caller, kept zeroized and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(Zeroizing<String>);

impl Code {
    /// The code as sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// What happened to a held request.
#[derive(Debug)]
pub enum Event<'a> {
    /// Begin the current stage (the first one of a new request, or the next).
    Begin,
    /// `totp` begun: whether the caller has an authenticator.
    Enrolled(bool),
    /// `email` begun: the code drawn for it (hashed; the driver mails the clear
    /// one) and its length.
    EmailCode {
        /// The code, salted and hashed.
        hashed: HashedCode,
        /// How many digits it has.
        digits: u32,
    },
    /// A library method begun its stage.
    MethodBegun {
        /// Its state, stored as given.
        state: Value,
        /// The sentence of the pending response.
        message: String,
        /// Extra keys of the pending response.
        extra: Map<String, Value>,
    },
    /// Beginning the stage failed.
    BeginFailed(MethodError),
    /// The caller presented the stage's uid with this response (a code, or a poll).
    Respond {
        /// Who presented it: a uid, or a TLS client by name.
        caller: CallerKey,
        /// The `data` sent with the uid.
        response: &'a Value,
        /// When.
        now: SystemTime,
    },
    /// What the TOTP store said of the code.
    TotpChecked(TotpCheck),
    /// What a library method said of the response.
    MethodChecked(Check),
    /// Checking the response failed.
    CheckFailed(MethodError),
    /// What the operation's hook decided after the stage passed (the driver
    /// has checked that every stage it names is available).
    Hook(HookDecision),
    /// A wrong response was counted (and the request dropped at its limit):
    /// the count, or `None` if the request had gone or moved on.
    Counted(Option<u32>),
    /// An administrator approves.
    Approve {
        /// Who.
        by: &'a CallerId,
        /// Whether approving one's own request is allowed.
        allow_self: bool,
        /// When.
        now: SystemTime,
    },
    /// An administrator denies.
    Deny {
        /// Who.
        by: &'a CallerId,
        /// Why, as given (cleaned here).
        reason: Option<String>,
        /// When.
        now: SystemTime,
    },
}

/// What the driver does next.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask the TOTP store whether `user` is enrolled; answer with [`Event::Enrolled`].
    CheckEnrolled {
        /// The TOTP account.
        user: String,
    },
    /// Draw an email code; answer with [`Event::EmailCode`].
    DrawEmailCode,
    /// Call the library method's `begin`; answer with [`Event::MethodBegun`].
    BeginMethod,
    /// Verify `code` for `user` in the TOTP store; answer with [`Event::TotpChecked`].
    VerifyTotp {
        /// The TOTP account.
        user: String,
        /// The code sent.
        code: Code,
    },
    /// Call the library method's `check` with the stored state and the
    /// response; answer with [`Event::MethodChecked`].
    CheckMethod,
    /// The stage passed: ask the operation's hook; answer with [`Event::Hook`].
    AskHook,
    /// Store the record's (new) stage under a fresh uid and answer its pending
    /// response; then mail the code to the approvers if `mail`.
    Hold {
        /// Whether the email code is to be sent.
        mail: bool,
    },
    /// Nothing new: the same pending response, with the same uid.
    Wait,
    /// Count a wrong response (dropping the request at its limit); answer with
    /// [`Event::Counted`].
    CountFailure,
    /// Consume the request and run it.
    Run,
    /// Consume the request and answer this.
    Close(Refusal),
    /// Delete the (expired) request and answer this.
    Discard(Refusal),
    /// Answer this; the request stays as it was.
    Refuse(Refusal),
    /// Store the approval (the record's new state) with this audit record.
    Approved(Decision),
    /// Store the denial (the record's status) with this audit record.
    Denied(Decision),
    /// Nothing to store (the stage was already approved).
    Unchanged,
    /// Refuse the administrator's decision.
    NotAdmin(AdminRefusal),
}

/// The one transition function: the record after `event`, and what to do.
#[must_use = "the effect is what the driver must do"]
pub fn step(mut record: PendingRecord, event: Event<'_>) -> (PendingRecord, Effect) {
    let effect = transition(&mut record, event);
    (record, effect)
}

fn transition(r: &mut PendingRecord, event: Event<'_>) -> Effect {
    let stage = r.stage().cloned();
    match (event, stage) {
        (Event::Begin, _) => begin(r),
        (Event::Enrolled(true), Some(Stage::Totp)) => {
            let state = StageState::Totp(TotpState {
                user: crate::caller::totp_user(&r.caller),
            });
            hold(r, state, TOTP_MESSAGE.into(), Map::new(), false)
        }
        (Event::Enrolled(false), Some(Stage::Totp)) => {
            Effect::Close(Refusal::Unavailable(Some(NOT_ENROLLED_MESSAGE.into())))
        }
        (Event::EmailCode { hashed, digits }, Some(Stage::Email)) => {
            let message = format!(
                "Enter the {digits}-digit code sent by email to the approvers of this operation"
            );
            hold(r, StageState::Email(hashed), message, Map::new(), true)
        }
        (
            Event::MethodBegun {
                state,
                message,
                extra,
            },
            Some(Stage::Method(_)),
        ) => hold(r, StageState::Method(state), message, extra, false),
        (Event::BeginFailed(e), _) => Effect::Close(e.into()),
        (
            Event::Respond {
                caller,
                response,
                now,
            },
            _,
        ) => respond(r, &caller, response, now),
        (Event::TotpChecked(check), Some(Stage::Totp)) => match check {
            TotpCheck::Accepted { .. } => Effect::AskHook,
            TotpCheck::Locked { retry_after } => {
                Effect::Refuse(Refusal::RateLimited { retry_after })
            }
            TotpCheck::Rejected | TotpCheck::Replayed | TotpCheck::NotEnrolled => {
                Effect::CountFailure
            }
        },
        (Event::MethodChecked(check), Some(Stage::Method(_))) => match check {
            Check::Passed => Effect::AskHook,
            Check::Failed => Effect::CountFailure,
            Check::Waiting => Effect::Wait,
            Check::Denied(reason) => Effect::Close(Refusal::Denied {
                reason: clean_reason(reason),
            }),
        },
        (Event::CheckFailed(e), _) => Effect::Refuse(e.into()),
        (Event::Hook(decision), Some(_)) => after_hook(r, decision),
        (Event::Counted(count), _) => Effect::Refuse(match count {
            Some(n) => Refusal::WrongCode {
                attempts_left: r.max_attempts.saturating_sub(n),
            },
            None => Refusal::NotFound,
        }),
        (
            Event::Approve {
                by,
                allow_self,
                now,
            },
            _,
        ) => approve(r, by, allow_self, now),
        (Event::Deny { by, reason, now }, _) => deny(r, by, reason, now),
        // An answer for another stage than the current one: the driver's bug.
        _ => Effect::Refuse(Refusal::Internal),
    }
}

/// Begin the current stage.
fn begin(r: &mut PendingRecord) -> Effect {
    match r.stage() {
        None => Effect::Close(Refusal::Internal),
        Some(Stage::Totp) => Effect::CheckEnrolled {
            user: crate::caller::totp_user(&r.caller),
        },
        Some(Stage::Email) if r.approvers.is_empty() => {
            Effect::Close(Refusal::Unavailable(Some(EMAIL_FAILED_MESSAGE.into())))
        }
        Some(Stage::Email) => Effect::DrawEmailCode,
        Some(Stage::Approval) => {
            let message = format!(
                "Waiting for an administrator to approve request {}",
                r.request_id
            );
            let state = StageState::Approval(ApprovalState::default());
            hold(r, state, message, Map::new(), false)
        }
        Some(Stage::Method(_)) => Effect::BeginMethod,
    }
}

/// The current stage is begun with `state`: store it and answer pending.
fn hold(
    r: &mut PendingRecord,
    state: StageState,
    message: String,
    mut extra: Map<String, Value>,
    mail: bool,
) -> Effect {
    let Some(stage) = r.stage() else {
        return Effect::Close(Refusal::Internal);
    };
    extra.insert("request_id".into(), json!(r.request_id));
    extra.insert("stage".into(), json!(r.stage_index + 1));
    extra.insert("stages".into(), json!(r.stages.len()));
    r.pending_info = PendingInfo {
        pending: stage.name().to_string(),
        message,
        expires_at: humantime::format_rfc3339_seconds(r.expires_at).to_string(),
        extra,
    };
    r.stage_state = state.to_json();
    r.attempts = 0;
    Effect::Hold { mail }
}

fn respond(r: &PendingRecord, caller: &CallerKey, response: &Value, now: SystemTime) -> Effect {
    // Bound to its caller: the same uid, or the same TLS client; never both kinds.
    if r.caller.key() != *caller {
        return Effect::Refuse(Refusal::NotFound);
    }
    if now >= r.expires_at {
        return Effect::Discard(Refusal::NotFound);
    }
    match r.status {
        RecordStatus::Pending => {}
        RecordStatus::Denied => {
            return Effect::Close(Refusal::Denied {
                reason: r.status_reason.clone(),
            })
        }
        RecordStatus::Failed => {
            return Effect::Close(Refusal::Unavailable(r.status_reason.clone()))
        }
    }
    let Some(stage) = r.stage() else {
        return Effect::Refuse(Refusal::Internal);
    };
    let Ok(state) = StageState::read(stage, &r.stage_state) else {
        return Effect::Refuse(Refusal::Internal);
    };
    match (state, response_code(response)) {
        (StageState::Totp(s), Some(code)) => Effect::VerifyTotp {
            user: s.user,
            code: Code(Zeroizing::new(code.to_string())),
        },
        (StageState::Email(h), Some(code)) if h.verify(code) => Effect::AskHook,
        (StageState::Totp(_) | StageState::Email(_), _) => Effect::CountFailure,
        (StageState::Approval(a), _) if a.approved => Effect::AskHook,
        (StageState::Approval(_), _) => Effect::Wait,
        (StageState::Method(_), _) => Effect::CheckMethod,
        (StageState::Unset, _) => Effect::Refuse(Refusal::Internal),
    }
}

fn after_hook(r: &mut PendingRecord, decision: HookDecision) -> Effect {
    match decision {
        HookDecision::Continue => {}
        HookDecision::Deny(reason) => {
            return Effect::Close(Refusal::Denied {
                reason: clean_reason(reason),
            })
        }
        HookDecision::ReplaceRemainingStages(rest) => {
            r.stages.truncate(r.stage_index + 1);
            r.stages.extend(rest.iter().cloned());
        }
        HookDecision::Fail => return Effect::Close(Refusal::Internal),
    }
    let next = r.stage_index + 1;
    if next >= r.stages.len() {
        return Effect::Run;
    }
    r.stage_index = next;
    r.stage_state = StageState::Unset.to_json();
    r.attempts = 0;
    begin(r)
}

/// Whether the request still waits for a decision at `now`.
fn live(r: &PendingRecord, now: SystemTime) -> bool {
    r.status == RecordStatus::Pending && now < r.expires_at
}

/// Who a decision names: a Unix caller's user name, a TLS client as
/// `tls:NAME` (its uid is the placeholder every client shares).
fn decision_name(caller: &CallerId) -> Option<String> {
    match caller.client() {
        Some(name) => Some(crate::caller::totp_client(name)),
        None => caller.user.clone(),
    }
}

fn decision(
    r: &PendingRecord,
    what: &str,
    by: &CallerId,
    reason: Option<String>,
    now: SystemTime,
) -> Decision {
    Decision {
        request_id: r.request_id.clone(),
        op: r.op.clone(),
        caller_uid: r.caller.uid,
        caller_user: decision_name(&r.caller),
        decision: what.into(),
        by_uid: by.uid,
        by_user: decision_name(by),
        reason,
        at: now,
    }
}

fn approve(r: &mut PendingRecord, by: &CallerId, allow_self: bool, now: SystemTime) -> Effect {
    if !live(r, now) {
        return Effect::NotAdmin(AdminRefusal::NotFound);
    }
    match r.stage() {
        Some(Stage::Approval) => {}
        other => {
            return Effect::NotAdmin(AdminRefusal::NotAwaitingApproval {
                stage: other.map(Stage::to_string).unwrap_or_default(),
            })
        }
    }
    // The same caller as the bounds count it: a uid on a Unix socket, a client
    // name over TLS (every TLS client has the same placeholder uid).
    if !allow_self && by.same_caller(&r.caller) {
        return Effect::NotAdmin(AdminRefusal::OwnRequest);
    }
    match StageState::read(&Stage::Approval, &r.stage_state) {
        Ok(StageState::Approval(a)) if a.approved => return Effect::Unchanged,
        Ok(_) => {}
        Err(_) => return Effect::Refuse(Refusal::Internal),
    }
    r.stage_state = StageState::Approval(ApprovalState {
        approved: true,
        by_uid: Some(by.uid),
        by_user: decision_name(by),
        at: Some(to_ms(now)),
    })
    .to_json();
    Effect::Approved(decision(r, "approved", by, None, now))
}

fn deny(r: &mut PendingRecord, by: &CallerId, reason: Option<String>, now: SystemTime) -> Effect {
    if !live(r, now) {
        return Effect::NotAdmin(AdminRefusal::NotFound);
    }
    let reason = clean_reason(reason);
    r.status = RecordStatus::Denied;
    r.status_reason = reason.clone();
    Effect::Denied(decision(r, "denied", by, reason, now))
}

/// A reason as kept: control characters removed, at most [`MAX_REASON_CHARS`],
/// none if blank.
pub fn clean_reason(reason: Option<String>) -> Option<String> {
    reason
        .map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(MAX_REASON_CHARS)
                .collect::<String>()
        })
        .filter(|r| !r.trim().is_empty())
}

/// Whether the record's current stage is an approval that was approved (the
/// caller has not polled since).
pub fn is_approved(r: &PendingRecord) -> bool {
    match r.stage() {
        Some(stage @ Stage::Approval) => matches!(
            StageState::read(stage, &r.stage_state),
            Ok(StageState::Approval(ApprovalState { approved: true, .. }))
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! Every method's transitions, without a store, a clock or a runtime.
    use super::*;
    use crate::store::from_ms;

    const NOW_MS: i64 = 1_800_000_000_000;

    fn now() -> SystemTime {
        from_ms(NOW_MS)
    }

    fn alice() -> CallerId {
        CallerId::unix(Some(42), 1000, 1000, Some("alice".into()))
    }

    fn root() -> CallerId {
        CallerId::unix(None, 0, 0, Some("root".into()))
    }

    fn record(stages: &[Stage]) -> PendingRecord {
        PendingRecord {
            request_id: "req00001".into(),
            stage_uid_hash: "h".into(),
            op: "restart".into(),
            data: json!({"service": "nginx"}),
            display_data: json!({"service": "nginx"}),
            caller: alice(),
            approvers: vec!["admin@example.org".into()],
            stages: stages.to_vec(),
            stage_index: 0,
            stage_state: Value::Null,
            pending_info: PendingInfo {
                pending: String::new(),
                message: String::new(),
                expires_at: String::new(),
                extra: Map::new(),
            },
            attempts: 0,
            max_attempts: 3,
            created_at: now(),
            expires_at: from_ms(NOW_MS + 600_000),
            status: RecordStatus::Pending,
            status_reason: None,
            declaration: None,
            preview: None,
        }
    }

    fn respond(r: PendingRecord, response: &Value) -> (PendingRecord, Effect) {
        let event = Event::Respond {
            caller: CallerKey::Uid(1000),
            response,
            now: now(),
        };
        step(r, event)
    }

    fn code(c: &str) -> Value {
        json!({ "code": c })
    }

    fn begun(stages: &[Stage]) -> PendingRecord {
        let (r, e) = step(record(stages), Event::Begin);
        assert_eq!(e, Effect::Hold { mail: false });
        r
    }

    #[test]
    fn approval_holds_waits_for_an_administrator_and_then_runs() {
        let (r, e) = step(record(&[Stage::Approval]), Event::Begin);
        assert_eq!(e, Effect::Hold { mail: false });
        assert_eq!(r.stage_state, json!({"approved": false}));
        assert_eq!(r.pending_info.pending, "approval");
        assert!(r.pending_info.message.contains("req00001"));
        assert_eq!(r.pending_info.expires_at, "2027-01-15T08:10:00Z");
        assert_eq!(
            (
                &r.pending_info.extra["request_id"],
                &r.pending_info.extra["stage"],
                &r.pending_info.extra["stages"]
            ),
            (&json!("req00001"), &json!(1), &json!(1))
        );
        let (r, e) = respond(r, &Value::Null);
        assert_eq!(e, Effect::Wait, "nobody decided yet");
        assert!(!is_approved(&r));

        let by = root();
        let approve = |r| {
            step(
                r,
                Event::Approve {
                    by: &by,
                    allow_self: false,
                    now: now(),
                },
            )
        };
        let (r, e) = approve(r);
        let Effect::Approved(d) = e else {
            panic!("expected an approval, got {e:?}")
        };
        assert_eq!(
            (d.decision.as_str(), d.by_uid, d.caller_uid, d.at),
            ("approved", 0, 1000, now())
        );
        assert_eq!(
            r.stage_state,
            json!({"approved": true, "by_uid": 0, "by_user": "root", "at": NOW_MS})
        );
        assert!(is_approved(&r));
        let (r, e) = approve(r);
        assert_eq!(e, Effect::Unchanged, "approving twice stores nothing");
        let (r, e) = respond(r, &Value::Null);
        assert_eq!(e, Effect::AskHook);
        let (_, e) = step(r, Event::Hook(HookDecision::Continue));
        assert_eq!(e, Effect::Run);
    }

    #[test]
    fn administrators_are_refused_on_their_own_other_stages_and_gone_requests() {
        let r = begun(&[Stage::Approval]);
        let approve = |r, by: &CallerId, allow_self, at| {
            step(
                r,
                Event::Approve {
                    by,
                    allow_self,
                    now: at,
                },
            )
            .1
        };
        let me = alice();
        assert_eq!(
            approve(r.clone(), &me, false, now()),
            Effect::NotAdmin(AdminRefusal::OwnRequest)
        );
        assert!(matches!(
            approve(r.clone(), &me, true, now()),
            Effect::Approved(_)
        ));
        assert_eq!(
            approve(r.clone(), &root(), false, r.expires_at),
            Effect::NotAdmin(AdminRefusal::NotFound),
            "expired"
        );
        let (totp, _) = step(record(&[Stage::Totp, Stage::Approval]), Event::Begin);
        assert_eq!(
            approve(totp, &root(), false, now()),
            Effect::NotAdmin(AdminRefusal::NotAwaitingApproval {
                stage: "totp".into()
            })
        );
    }

    #[test]
    fn a_tls_client_may_not_approve_its_own_request_and_another_client_may() {
        let addr = "192.0.2.1:4000".parse().unwrap();
        let panel = CallerId::tls("panel".into(), "01".into(), addr);
        let other = CallerId::tls("other".into(), "02".into(), addr);
        let r = PendingRecord {
            caller: panel.clone(),
            ..begun(&[Stage::Approval])
        };
        let approve = |by: &CallerId| {
            step(
                r.clone(),
                Event::Approve {
                    by,
                    allow_self: false,
                    now: now(),
                },
            )
            .1
        };
        assert_eq!(approve(&panel), Effect::NotAdmin(AdminRefusal::OwnRequest));
        let Effect::Approved(d) = approve(&other) else {
            panic!("other may approve panel's request")
        };
        // The decision names both clients, not their shared placeholder uid.
        assert_eq!(
            (d.caller_user.as_deref(), d.by_user.as_deref()),
            (Some("tls:panel"), Some("tls:other"))
        );
        // A Unix caller is never the same caller as a client.
        assert!(matches!(approve(&root()), Effect::Approved(_)));
    }

    #[test]
    fn a_denial_is_audited_then_answered_at_the_next_poll_with_its_reason() {
        let r = begun(&[Stage::Approval]);
        let by = root();
        let deny = |r| {
            step(
                r,
                Event::Deny {
                    by: &by,
                    reason: Some("not\u{1b}[31m now\n".into()),
                    now: now(),
                },
            )
        };
        let (r, e) = deny(r);
        let Effect::Denied(d) = e else {
            panic!("expected a denial, got {e:?}")
        };
        assert_eq!(d.decision, "denied");
        assert_eq!(
            d.reason.as_deref(),
            Some("not[31m now"),
            "control characters removed"
        );
        assert_eq!(r.status, RecordStatus::Denied);
        let (r, e) = deny(r);
        assert_eq!(e, Effect::NotAdmin(AdminRefusal::NotFound), "decided once");
        let (_, e) = respond(r, &Value::Null);
        assert_eq!(
            e,
            Effect::Close(Refusal::Denied {
                reason: Some("not[31m now".into())
            })
        );
    }

    #[test]
    fn totp_asks_the_store_and_counts_every_kind_of_wrong_code() {
        let (r, e) = step(record(&[Stage::Totp]), Event::Begin);
        assert_eq!(
            e,
            Effect::CheckEnrolled {
                user: "alice".into()
            }
        );
        assert_eq!(
            step(r.clone(), Event::Enrolled(false)).1,
            Effect::Close(Refusal::Unavailable(Some(NOT_ENROLLED_MESSAGE.into())))
        );
        let (r, e) = step(r, Event::Enrolled(true));
        assert_eq!(e, Effect::Hold { mail: false });
        assert_eq!(r.stage_state, json!({"user": "alice"}));
        assert_eq!(r.pending_info.pending, "totp");
        assert_eq!(r.pending_info.message, TOTP_MESSAGE);

        assert_eq!(respond(r.clone(), &Value::Null).1, Effect::CountFailure);
        let (r, e) = respond(r, &code("123456"));
        let Effect::VerifyTotp { user, code } = &e else {
            panic!("expected a TOTP check, got {e:?}")
        };
        assert_eq!((user.as_str(), code.expose()), ("alice", "123456"));
        assert!(
            !format!("{e:?}").contains("123456"),
            "the code is not shown"
        );
        let checked = |c| step(r.clone(), Event::TotpChecked(c)).1;
        assert_eq!(checked(TotpCheck::Accepted { step: 9 }), Effect::AskHook);
        for wrong in [
            TotpCheck::Rejected,
            TotpCheck::Replayed,
            TotpCheck::NotEnrolled,
        ] {
            assert_eq!(checked(wrong), Effect::CountFailure, "{wrong:?}");
        }
        let retry_after = Duration::from_secs(30);
        assert_eq!(
            checked(TotpCheck::Locked { retry_after }),
            Effect::Refuse(Refusal::RateLimited { retry_after })
        );

        // A caller with no name has the account `#UID`.
        let mut nameless = record(&[Stage::Totp]);
        nameless.caller.user = None;
        assert_eq!(
            step(nameless, Event::Begin).1,
            Effect::CheckEnrolled {
                user: "#1000".into()
            }
        );
    }

    #[test]
    fn email_is_mailed_once_stored_and_checks_the_hashed_code_itself() {
        let mut lonely = record(&[Stage::Email]);
        lonely.approvers.clear();
        assert_eq!(
            step(lonely, Event::Begin).1,
            Effect::Close(Refusal::Unavailable(Some(EMAIL_FAILED_MESSAGE.into())))
        );
        let (r, e) = step(record(&[Stage::Email]), Event::Begin);
        assert_eq!(e, Effect::DrawEmailCode);
        let hashed = HashedCode::new("04291733").unwrap();
        let (r, e) = step(r, Event::EmailCode { hashed, digits: 8 });
        assert_eq!(e, Effect::Hold { mail: true });
        assert!(r.pending_info.message.contains("8-digit"));
        assert!(r.stage_state.get("hash").is_some());
        assert!(!r.stage_state.to_string().contains("04291733"));

        assert_eq!(respond(r.clone(), &code("04291733")).1, Effect::AskHook);
        assert_eq!(
            respond(r.clone(), &code("04291734")).1,
            Effect::CountFailure
        );
        assert_eq!(respond(r, &json!({})).1, Effect::CountFailure);
    }

    #[test]
    fn a_library_method_is_asked_and_keeps_its_own_state() {
        let passphrase = Stage::parse("passphrase").unwrap();
        let (r, e) = step(record(std::slice::from_ref(&passphrase)), Event::Begin);
        assert_eq!(e, Effect::BeginMethod);
        assert_eq!(
            step(r.clone(), Event::BeginFailed(MethodError::Internal)).1,
            Effect::Close(Refusal::Internal)
        );
        let mut extra = Map::new();
        extra.insert("hint".into(), json!("sesame"));
        let (r, e) = step(
            r,
            Event::MethodBegun {
                state: json!({"mine": [1, 2]}),
                message: "Say the passphrase".into(),
                extra,
            },
        );
        assert_eq!(e, Effect::Hold { mail: false });
        assert_eq!(r.stage_state, json!({"mine": [1, 2]}));
        assert_eq!(r.pending_info.pending, "passphrase");
        assert_eq!(r.pending_info.extra["hint"], "sesame");
        assert_eq!(r.pending_info.extra["request_id"], "req00001");

        let (r, e) = respond(r, &code("x"));
        assert_eq!(e, Effect::CheckMethod);
        let checked = |c| step(r.clone(), Event::MethodChecked(c)).1;
        assert_eq!(checked(Check::Passed), Effect::AskHook);
        assert_eq!(checked(Check::Failed), Effect::CountFailure);
        assert_eq!(checked(Check::Waiting), Effect::Wait);
        assert_eq!(
            checked(Check::Denied(Some(" ".into()))),
            Effect::Close(Refusal::Denied { reason: None }),
            "a blank reason is none"
        );
        let retry_after = Duration::from_secs(2);
        assert_eq!(
            step(
                r.clone(),
                Event::CheckFailed(MethodError::RateLimited { retry_after })
            )
            .1,
            Effect::Refuse(Refusal::RateLimited { retry_after })
        );
        assert_eq!(
            step(r, Event::CheckFailed(MethodError::operation_failed("no"))).1,
            Effect::Refuse(Refusal::Unavailable(Some("no".into())))
        );
    }

    #[test]
    fn foreign_expired_and_failed_requests_are_answered_before_any_method() {
        let r = begun(&[Stage::Approval]);
        let foreign = Event::Respond {
            caller: CallerKey::Uid(1001),
            response: &Value::Null,
            now: now(),
        };
        assert_eq!(
            step(r.clone(), foreign).1,
            Effect::Refuse(Refusal::NotFound)
        );
        // A TLS client is never the Unix caller, whatever its name; and a
        // request a TLS client made answers only that client.
        for other in [
            CallerKey::Client("1000".into()),
            CallerKey::Uid(regent_model::TLS_ID),
        ] {
            let foreign = Event::Respond {
                caller: other,
                response: &Value::Null,
                now: now(),
            };
            assert_eq!(
                step(r.clone(), foreign).1,
                Effect::Refuse(Refusal::NotFound)
            );
        }
        let mut by_client = r.clone();
        by_client.caller =
            CallerId::tls("panel".into(), "10".into(), "192.0.2.1:1".parse().unwrap());
        for (who, refused) in [
            (CallerKey::Client("panel2".into()), true),
            (CallerKey::Uid(regent_model::TLS_ID), true),
            (CallerKey::Client("panel".into()), false),
        ] {
            let event = Event::Respond {
                caller: who.clone(),
                response: &Value::Null,
                now: now(),
            };
            let effect = step(by_client.clone(), event).1;
            assert_eq!(
                effect == Effect::Refuse(Refusal::NotFound),
                refused,
                "{who:?}"
            );
        }
        let late = Event::Respond {
            caller: CallerKey::Uid(1000),
            response: &Value::Null,
            now: r.expires_at,
        };
        assert_eq!(step(r.clone(), late).1, Effect::Discard(Refusal::NotFound));
        let mut failed = r;
        failed.status = RecordStatus::Failed;
        failed.status_reason = Some(EMAIL_FAILED_MESSAGE.into());
        assert_eq!(
            respond(failed, &Value::Null).1,
            Effect::Close(Refusal::Unavailable(Some(EMAIL_FAILED_MESSAGE.into())))
        );
    }

    #[test]
    fn wrong_codes_count_down_to_the_drop() {
        let r = begun(&[Stage::Approval]);
        let counted = |n| step(r.clone(), Event::Counted(n)).1;
        assert_eq!(
            counted(Some(1)),
            Effect::Refuse(Refusal::WrongCode { attempts_left: 2 })
        );
        assert_eq!(
            counted(Some(3)),
            Effect::Refuse(Refusal::WrongCode { attempts_left: 0 })
        );
        assert_eq!(counted(None), Effect::Refuse(Refusal::NotFound));
        assert_eq!(
            Refusal::WrongCode { attempts_left: 1 }.to_string(),
            "Wrong code (1 attempt left)"
        );
        assert_eq!(
            Refusal::WrongCode { attempts_left: 2 }.to_string(),
            "Wrong code (2 attempts left)"
        );
        assert!(Refusal::WrongCode { attempts_left: 0 }
            .to_string()
            .contains("dropped"));
    }

    #[test]
    fn hooks_deny_continue_or_replace_the_stages_still_to_come() {
        let passphrase = Stage::parse("passphrase").unwrap();
        let passed = || {
            let mut r = record(&[passphrase.clone(), Stage::Approval]);
            r.stage_state = json!({"mine": true});
            r.attempts = 2;
            r
        };
        assert_eq!(
            step(
                passed(),
                Event::Hook(HookDecision::Deny(Some("no\n".into())))
            )
            .1,
            Effect::Close(Refusal::Denied {
                reason: Some("no".into())
            })
        );
        // Continue: the next stage begins, with its own fresh state.
        let (r, e) = step(passed(), Event::Hook(HookDecision::Continue));
        assert_eq!(e, Effect::Hold { mail: false });
        assert_eq!((r.stage_index, r.attempts), (1, 0));
        assert_eq!(r.stage_state, json!({"approved": false}));
        assert_eq!(r.pending_info.extra["stage"], json!(2));
        assert_eq!(
            step(passed(), Event::Hook(HookDecision::Fail)).1,
            Effect::Close(Refusal::Internal)
        );
        // None left: run.
        let (_, e) = step(
            passed(),
            Event::Hook(HookDecision::ReplaceRemainingStages(Stages::none())),
        );
        assert_eq!(e, Effect::Run);
        // Replaced, even by a stage already passed: it is asked again.
        let again: Stages = [Stage::Totp, passphrase.clone()].into_iter().collect();
        let (r, e) = step(
            passed(),
            Event::Hook(HookDecision::ReplaceRemainingStages(again)),
        );
        assert_eq!(r.stages, vec![passphrase.clone(), Stage::Totp, passphrase]);
        assert_eq!(
            e,
            Effect::CheckEnrolled {
                user: "alice".into()
            }
        );
    }

    #[test]
    fn no_method_reads_another_method_s_state() {
        // An email stage holding a TOTP state (or a corrupt one) is an internal
        // error, never read as something else.
        let mut r = record(&[Stage::Email]);
        r.stage_state = json!({"user": "alice"});
        assert_eq!(
            respond(r.clone(), &code("1")).1,
            Effect::Refuse(Refusal::Internal)
        );
        let mut r = record(&[Stage::Approval]);
        r.stage_state = json!({"user": "alice", "approved": "yes"});
        assert_eq!(
            respond(r.clone(), &Value::Null).1,
            Effect::Refuse(Refusal::Internal)
        );
        // An answer meant for another stage than the current one is refused.
        let r = begun(&[Stage::Approval]);
        assert_eq!(
            step(
                r.clone(),
                Event::TotpChecked(TotpCheck::Accepted { step: 1 })
            )
            .1,
            Effect::Refuse(Refusal::Internal)
        );
        assert_eq!(
            step(r, Event::MethodChecked(Check::Passed)).1,
            Effect::Refuse(Refusal::Internal)
        );
    }
}
