//! The authorization verdict: what happens to a request once its caller and data are known.

use crate::stage::Stages;
use serde::{Deserialize, Serialize};

/// What the policy decided for one request.
///
/// Computed by one pure function in the server (`regent::policy::evaluate`); a
/// failed check is [`Verdict::Deny`], never [`Verdict::Run`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Run the operation now.
    Run,
    /// Hold the request until these out-of-channel stages pass, in order (never empty).
    Hold(Stages),
    /// Refuse it (`permission_denied`); the reason is for the log, never for the caller.
    Deny(String),
}

impl Verdict {
    /// True for [`Verdict::Run`].
    pub fn is_run(&self) -> bool {
        matches!(self, Verdict::Run)
    }

    /// True for [`Verdict::Deny`].
    pub fn is_deny(&self) -> bool {
        matches!(self, Verdict::Deny(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Stage;

    #[test]
    fn only_run_runs() {
        assert!(Verdict::Run.is_run());
        let hold = Verdict::Hold([Stage::Approval].into_iter().collect());
        assert!(!hold.is_run() && !hold.is_deny());
        assert!(Verdict::Deny("no".into()).is_deny());
        assert!(!Verdict::Deny("no".into()).is_run());
    }
}
