//! `run_as`: the user and group a command runs as (supplementary groups cleared).

use crate::account::Account;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The user (and group) a command runs as.
///
/// A config declares it by name or id; the daemon resolves the names once, at
/// start-up, into [`RunAs::ids`] (a missing user fails the start, not a request).
/// The executor runs only a resolved one ([`RunAs::resolved`]): it does no
/// user-database lookup of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunAs {
    /// The user.
    pub user: Account,
    /// The group; none: the user's primary group.
    pub group: Option<Account>,
}

impl RunAs {
    /// A resolved `run_as`: user `uid`, group `gid`.
    #[must_use]
    pub const fn ids(uid: u32, gid: u32) -> RunAs {
        RunAs {
            user: Account::Id(uid),
            group: Some(Account::Id(gid)),
        }
    }

    /// (uid, gid) when both are numeric ids, as after resolution; `None` while a
    /// name or the user's primary group is still to be looked up, and for the id
    /// `u32::MAX` (-1), which is no id: `setresuid(-1, ...)` leaves the ids as
    /// they are, so a command would run as the service itself.
    #[must_use]
    pub fn resolved(&self) -> Option<(u32, u32)> {
        match (&self.user, &self.group) {
            (Account::Id(uid), Some(Account::Id(gid))) if *uid != u32::MAX && *gid != u32::MAX => {
                Some((*uid, *gid))
            }
            _ => None,
        }
    }
}

impl fmt::Display for RunAs {
    /// `user` or `user:group`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(g) => write!(f, "{}:{g}", self.user),
            None => write!(f, "{}", self.user),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_are_resolved() {
        const NOBODY: RunAs = RunAs::ids(65534, 65534);
        assert_eq!(NOBODY.resolved(), Some((65534, 65534)));
        assert_eq!(NOBODY.to_string(), "65534:65534");
        let named = RunAs {
            user: Account::Name("www-data".into()),
            group: None,
        };
        assert_eq!(named.resolved(), None);
        assert_eq!(named.to_string(), "www-data");
        let no_group = RunAs {
            user: Account::Id(33),
            group: None,
        };
        assert_eq!(
            no_group.resolved(),
            None,
            "the primary group is still to find"
        );
        let named_group = RunAs {
            user: Account::Id(33),
            group: Some(Account::Name("adm".into())),
        };
        assert_eq!(named_group.resolved(), None);
        // -1 is "leave unchanged" to setresuid/setresgid: never a resolved id.
        assert_eq!(RunAs::ids(u32::MAX, 0).resolved(), None);
        assert_eq!(RunAs::ids(0, u32::MAX).resolved(), None);
        assert_eq!(
            RunAs::ids(u32::MAX - 1, 0).resolved(),
            Some((u32::MAX - 1, 0))
        );
    }
}
