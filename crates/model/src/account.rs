//! A user or group as a config names it: by name (`"www-data"`) or by numeric id
//! (`33` or `"33"`). Turning a name into an id is a user-database lookup (I/O) and
//! happens elsewhere.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A user or group, by name or by numeric id (allow lists, `run_as`, the socket's
/// owner, `admin_group`). Not the caller: that is a [`crate::Principal`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Account {
    /// A name to be resolved through the system's user or group database.
    Name(String),
    /// A numeric uid or gid.
    Id(u32),
}

impl Account {
    /// Parses `"www-data"` or `"33"`. Names must be non-empty, at most 256 bytes,
    /// and free of whitespace, control characters, `:`, `/` and `,`.
    pub fn parse(text: &str) -> Result<Account, String> {
        if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
            return text
                .parse::<u32>()
                .ok()
                .and_then(Account::from_id)
                .ok_or_else(|| format!("id {text} is out of range"));
        }
        if text.is_empty() {
            return Err("empty user or group name".into());
        }
        if text.len() > 256 {
            return Err("user or group name is too long".into());
        }
        if text.starts_with('-')
            || text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ':' | '/' | ','))
        {
            return Err(format!("'{text}' is not a valid user or group name"));
        }
        Ok(Account::Name(text.to_string()))
    }

    /// A numeric id; `u32::MAX` (i.e. -1) is not a valid id.
    #[must_use]
    pub fn from_id(id: u32) -> Option<Account> {
        (id != u32::MAX).then_some(Account::Id(id))
    }

    /// True when this account designates `name` or `id`.
    #[must_use]
    pub fn matches(&self, name: Option<&str>, id: u32) -> bool {
        match self {
            Account::Id(i) => *i == id,
            Account::Name(n) => name == Some(n.as_str()),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Name(n) => f.write_str(n),
            Account::Id(i) => write!(f, "{i}"),
        }
    }
}

impl TryFrom<String> for Account {
    type Error = String;
    fn try_from(text: String) -> Result<Account, String> {
        Account::parse(&text)
    }
}

impl From<Account> for String {
    fn from(a: Account) -> String {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_ids() {
        assert_eq!(
            Account::parse("www-data"),
            Ok(Account::Name("www-data".into()))
        );
        assert_eq!(Account::parse("33"), Ok(Account::Id(33)));
        assert_eq!(Account::parse("0"), Ok(Account::Id(0)));
        for bad in [
            "",
            "a b",
            "a:b",
            "-x",
            "a/b",
            "4294967295",
            "99999999999",
            "a\nb",
        ] {
            assert!(Account::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matches_by_name_or_id() {
        assert!(Account::Id(33).matches(Some("www-data"), 33));
        assert!(!Account::Id(33).matches(Some("www-data"), 34));
        assert!(Account::Name("www-data".into()).matches(Some("www-data"), 1));
        assert!(!Account::Name("www-data".into()).matches(None, 33));
    }

    #[test]
    fn serde_uses_the_config_text() {
        let a: Account = serde_json::from_str("\"33\"").unwrap();
        assert_eq!(a, Account::Id(33));
        assert_eq!(
            serde_json::to_string(&Account::Name("www-data".into())).unwrap(),
            "\"www-data\""
        );
        assert!(serde_json::from_str::<Account>("\"a b\"").is_err());
    }
}
