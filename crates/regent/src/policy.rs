//! Who may call what: a decision computed from the caller and the rule, no I/O.
//!
//! An operation may carry an [`AllowRule`]: callers matching any listed user or any
//! listed group are allowed; everyone else is denied. An operation without a rule is
//! open to every caller who can reach the socket and holds the secret. Names are
//! compared with the names the user database gave for the caller's kernel ids.

use crate::identity::Caller;

pub use regent_model::Account;

/// Anything that names a user or group: `"www-data"`, `"33"`, `33`.
pub trait ToAccount {
    /// The account.
    fn to_account(self) -> Account;
}

impl ToAccount for &str {
    fn to_account(self) -> Account {
        Account::parse(self).unwrap_or_else(|_| Account::Name(self.to_string()))
    }
}

impl ToAccount for String {
    fn to_account(self) -> Account {
        self.as_str().to_account()
    }
}

impl ToAccount for u32 {
    fn to_account(self) -> Account {
        Account::Id(self)
    }
}

impl ToAccount for Account {
    fn to_account(self) -> Account {
        self
    }
}

/// Users and groups allowed to call an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowRule {
    /// Allowed users.
    pub users: Vec<Account>,
    /// Allowed groups (primary or supplementary membership).
    pub groups: Vec<Account>,
}

impl From<&regent_config::AllowDecl> for AllowRule {
    fn from(d: &regent_config::AllowDecl) -> Self {
        AllowRule {
            users: d.users.clone(),
            groups: d.groups.clone(),
        }
    }
}

impl AllowRule {
    /// A rule allowing these users.
    pub fn users<P: ToAccount>(users: impl IntoIterator<Item = P>) -> Self {
        AllowRule {
            users: users.into_iter().map(ToAccount::to_account).collect(),
            groups: Vec::new(),
        }
    }

    /// A rule allowing these groups.
    pub fn groups<P: ToAccount>(groups: impl IntoIterator<Item = P>) -> Self {
        AllowRule {
            users: Vec::new(),
            groups: groups.into_iter().map(ToAccount::to_account).collect(),
        }
    }

    /// Add groups to a rule.
    pub fn and_groups<P: ToAccount>(mut self, groups: impl IntoIterator<Item = P>) -> Self {
        self.groups
            .extend(groups.into_iter().map(ToAccount::to_account));
        self
    }
}

/// The outcome of a policy check.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The caller may proceed.
    Allow,
    /// The caller may not; the reason is for the log, never for the client.
    Deny(String),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Decide whether `caller` may call an operation guarded by `rule`.
pub fn decide(rule: Option<&AllowRule>, caller: &Caller) -> Decision {
    let Some(rule) = rule else {
        return Decision::Allow;
    };
    let user_match = rule
        .users
        .iter()
        .any(|p| p.matches(caller.user.as_deref(), caller.uid));
    let group_match = rule.groups.iter().any(|p| match p {
        Account::Id(id) => caller.in_group(*id),
        Account::Name(n) => caller.in_group_named(n),
    });
    if user_match || group_match {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "user {} (uid {}) is not among the allowed users or groups",
            caller.user_or_uid(),
            caller.uid
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, user: &str, groups: &[(u32, &str)]) -> Caller {
        Caller {
            peer: regent_model::Peer::Unix,
            pid: Some(42),
            uid,
            gid: groups.first().map(|g| g.0).unwrap_or(uid),
            user: Some(user.into()),
            groups: groups.iter().map(|g| g.0).collect(),
            group_names: groups.iter().map(|g| g.1.to_string()).collect(),
        }
    }

    #[test]
    fn no_rule_allows_everyone() {
        assert_eq!(decide(None, &caller(1000, "alice", &[])), Decision::Allow);
    }

    #[test]
    fn users_by_name_and_by_id() {
        let rule = AllowRule::users(["www-data", "1001"]);
        assert!(decide(Some(&rule), &caller(33, "www-data", &[])).is_allowed());
        assert!(decide(Some(&rule), &caller(1001, "bob", &[])).is_allowed());
        assert!(!decide(Some(&rule), &caller(1000, "alice", &[])).is_allowed());
        // A user *named* like an allowed uid is not that uid.
        assert!(!decide(Some(&rule), &caller(5, "1001", &[])).is_allowed());
    }

    #[test]
    fn groups_by_name_and_by_id_including_supplementary() {
        let rule = AllowRule::groups(["admin"]).and_groups([27u32]);
        assert!(decide(
            Some(&rule),
            &caller(1000, "alice", &[(1000, "alice"), (50, "admin")])
        )
        .is_allowed());
        assert!(decide(
            Some(&rule),
            &caller(1001, "bob", &[(1001, "bob"), (27, "sudo")])
        )
        .is_allowed());
        assert!(!decide(Some(&rule), &caller(1002, "eve", &[(1002, "eve")])).is_allowed());
    }

    #[test]
    fn an_empty_rule_denies_everyone() {
        let rule = AllowRule::default();
        assert!(!decide(Some(&rule), &caller(0, "root", &[(0, "root")])).is_allowed());
    }

    #[test]
    fn deny_reason_names_the_caller() {
        let rule = AllowRule::users(["root"]);
        match decide(Some(&rule), &caller(1000, "alice", &[])) {
            Decision::Deny(r) => assert!(r.contains("alice") && r.contains("1000")),
            Decision::Allow => panic!("allowed"),
        }
    }
}
