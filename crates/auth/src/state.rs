//! The typed state each built-in method keeps with a held request, and how it is
//! read from and written to the store's JSON (the stored form is unchanged).
//!
//! Each method reads only its own state: the current stage says which of
//! [`StageState`]'s variants the stored JSON is, and nothing else looks inside.

use crate::otp::HashedCode;
use regent_model::Stage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `totp`: whose authenticator answers (stored `{"user": NAME}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpState {
    /// The TOTP account checked.
    pub user: String,
}

/// `approval`: whether (and by whom) an administrator approved the stage
/// (stored `{"approved": false}`, or `{"approved": true, "by_uid", "by_user",
/// "at"}`; a stage stored as `null` is waiting).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    /// Whether an administrator approved.
    #[serde(default)]
    pub approved: bool,
    /// Who approved (uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_uid: Option<u32>,
    /// Who approved (name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_user: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

/// The state of a held request's current stage.
#[derive(Debug, Clone, PartialEq)]
pub enum StageState {
    /// Not begun yet (a request between two stages, never stored as such).
    Unset,
    /// `totp`.
    Totp(TotpState),
    /// `email`: the mailed code, salted and hashed (stored `{"salt", "hash"}`).
    Email(HashedCode),
    /// `approval`.
    Approval(ApprovalState),
    /// A library method's own JSON, given back to it as it stored it.
    Method(Value),
}

impl StageState {
    /// Read the stored `json` of a request whose current stage is `stage`: only
    /// that stage's own form is accepted. The error says what failed (no value
    /// is echoed: the state may hold a hash).
    pub fn read(stage: &Stage, json: &Value) -> Result<StageState, String> {
        fn typed<T: serde::de::DeserializeOwned>(json: &Value) -> Result<T, String> {
            T::deserialize(json).map_err(|e| e.to_string())
        }
        Ok(match stage {
            Stage::Totp => StageState::Totp(typed(json)?),
            Stage::Email => StageState::Email(typed(json)?),
            Stage::Approval if json.is_null() => StageState::Approval(ApprovalState::default()),
            Stage::Approval => StageState::Approval(typed(json)?),
            Stage::Method(_) => StageState::Method(json.clone()),
        })
    }

    /// The JSON stored for this state.
    pub fn to_json(&self) -> Value {
        let json = match self {
            StageState::Unset => Ok(Value::Null),
            StageState::Totp(s) => serde_json::to_value(s),
            StageState::Email(s) => serde_json::to_value(s),
            StageState::Approval(s) => serde_json::to_value(s),
            StageState::Method(v) => Ok(v.clone()),
        };
        json.expect("stage states serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn todays_stored_states_read_back_as_the_stage_s_own_type_and_round_trip() {
        let cases = [
            (Stage::Totp, json!({"user": "alice"})),
            (Stage::Email, json!({"salt": "00ff", "hash": "abcd"})),
            (Stage::Approval, json!({"approved": false})),
            (
                Stage::Approval,
                json!({"approved": true, "by_uid": 0, "by_user": "root", "at": 1_700_000_000_000i64}),
            ),
            (
                Stage::parse("passphrase").unwrap(),
                json!({"any": ["thing"]}),
            ),
        ];
        for (stage, stored) in cases {
            let state = StageState::read(&stage, &stored).unwrap();
            assert_eq!(state.to_json(), stored, "{stage}");
        }
        assert_eq!(
            StageState::read(&Stage::Approval, &Value::Null).unwrap(),
            StageState::Approval(ApprovalState::default())
        );
        // A nameless approver was stored as `"by_user": null`.
        let nameless = json!({"approved": true, "by_uid": 5, "by_user": null, "at": 1});
        let StageState::Approval(a) = StageState::read(&Stage::Approval, &nameless).unwrap() else {
            panic!("not an approval state")
        };
        assert_eq!((a.approved, a.by_uid, a.by_user), (true, Some(5), None));
    }

    #[test]
    fn a_stage_does_not_read_another_method_s_state() {
        let email = json!({"salt": "00ff", "hash": "abcd"});
        assert!(StageState::read(&Stage::Totp, &email).is_err());
        assert!(StageState::read(&Stage::Email, &json!({"user": "alice"})).is_err());
        let err = StageState::read(&Stage::Email, &json!({"salt": 1})).unwrap_err();
        assert!(!err.contains("00ff"), "{err}");
    }
}
