//! Users and groups as written in a config: a name (`"www-data"`) or a numeric id
//! (`33` or `"33"`). Resolution to ids is I/O and happens elsewhere.

use std::fmt;

/// A user or group, by name or by numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// A name to be resolved through the system's user or group database.
    Name(String),
    /// A numeric uid or gid.
    Id(u32),
}

impl Principal {
    /// Parses `"www-data"` or `"33"`. Names must be non-empty, at most 256 bytes,
    /// and free of whitespace, control characters, `:`, `/` and `,`.
    pub fn parse(text: &str) -> Result<Principal, String> {
        if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
            return text
                .parse::<u32>()
                .ok()
                .and_then(Principal::from_id)
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
        Ok(Principal::Name(text.to_string()))
    }

    /// A numeric id; `u32::MAX` (i.e. -1) is not a valid id.
    #[must_use]
    pub fn from_id(id: u32) -> Option<Principal> {
        (id != u32::MAX).then_some(Principal::Id(id))
    }

    /// True when this principal designates `name` or `id`.
    #[must_use]
    pub fn matches(&self, name: Option<&str>, id: u32) -> bool {
        match self {
            Principal::Id(i) => *i == id,
            Principal::Name(n) => name == Some(n.as_str()),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Name(n) => f.write_str(n),
            Principal::Id(i) => write!(f, "{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_ids() {
        assert_eq!(
            Principal::parse("www-data"),
            Ok(Principal::Name("www-data".into()))
        );
        assert_eq!(Principal::parse("33"), Ok(Principal::Id(33)));
        assert_eq!(Principal::parse("0"), Ok(Principal::Id(0)));
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
            assert!(Principal::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matches_by_name_or_id() {
        assert!(Principal::Id(33).matches(Some("www-data"), 33));
        assert!(!Principal::Id(33).matches(Some("www-data"), 34));
        assert!(Principal::Name("www-data".into()).matches(Some("www-data"), 1));
        assert!(!Principal::Name("www-data".into()).matches(None, 33));
    }
}
