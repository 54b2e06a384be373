//! Out-of-channel stages: what a held request waits for before it runs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One out-of-channel stage of a request, named as in `auth = [...]`.
///
/// The three built-in methods have their own variants; a method a library
/// registers under another name is [`Stage::Method`] (its name is checked by
/// [`Stage::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Stage {
    /// A time-based one-time code from the caller's authenticator (`totp`).
    Totp,
    /// A one-time code mailed to the operation's approvers (`email`).
    Email,
    /// An administrator's decision (`approval`).
    Approval,
    /// A method registered by a library under this name.
    Method(MethodName),
}

/// A library method's name: `[a-z][a-z0-9_-]*`, at most 32 characters, not one of
/// the built-ins. Only [`MethodName::new`] (or [`Stage::parse`]) makes one, so a
/// [`Stage::Method`] always names a stage that parses back to itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MethodName(String);

impl MethodName {
    /// `name`, if it is well formed and not a built-in stage's.
    pub fn new(name: &str) -> Result<MethodName, BadStageName> {
        match Stage::parse(name)? {
            Stage::Method(m) => Ok(m),
            _ => Err(BadStageName {
                chars: name.chars().count(),
            }),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stage name that is not `[a-z][a-z0-9_-]*` of at most 32 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadStageName {
    /// How long the refused name was, in characters (the name itself may be
    /// anything a caller or a config file sent, so it is not kept).
    pub chars: usize,
}

impl fmt::Display for BadStageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid stage name of {} characters (expected [a-z][a-z0-9_-]*, at most 32)",
            self.chars
        )
    }
}

impl std::error::Error for BadStageName {}

impl Stage {
    /// The built-in stages, in the order the documentation lists them.
    pub const BUILT_IN: [Stage; 3] = [Stage::Totp, Stage::Email, Stage::Approval];

    /// The stage called `name`: a built-in, or a library method's well-formed name.
    pub fn parse(name: &str) -> Result<Stage, BadStageName> {
        Ok(match name {
            "totp" => Stage::Totp,
            "email" => Stage::Email,
            "approval" => Stage::Approval,
            other => {
                let mut chars = other.chars();
                let well_formed = other.len() <= 32
                    && chars.next().is_some_and(|c| c.is_ascii_lowercase())
                    && chars.all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    });
                if !well_formed {
                    return Err(BadStageName {
                        chars: other.chars().count(),
                    });
                }
                Stage::Method(MethodName(other.to_string()))
            }
        })
    }

    /// The stage's name, as written in `auth = [...]` and on the wire (`pending`).
    pub fn name(&self) -> &str {
        match self {
            Stage::Totp => "totp",
            Stage::Email => "email",
            Stage::Approval => "approval",
            Stage::Method(n) => n.as_str(),
        }
    }

    /// True for the three methods Regent itself provides.
    pub fn is_built_in(&self) -> bool {
        !matches!(self, Stage::Method(_))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for Stage {
    type Error = BadStageName;
    fn try_from(s: String) -> Result<Stage, BadStageName> {
        Stage::parse(&s)
    }
}

impl From<Stage> for String {
    fn from(s: Stage) -> String {
        s.name().to_string()
    }
}

/// The stages of one request, in order, each at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Stages(Vec<Stage>);

impl Stages {
    /// No stage: the request runs at once.
    pub fn none() -> Stages {
        Stages(Vec::new())
    }

    /// Add `stage` at the end unless it is already there; true if added.
    pub fn push(&mut self, stage: Stage) -> bool {
        if self.0.contains(&stage) {
            return false;
        }
        self.0.push(stage);
        true
    }

    /// True when there is no stage.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many stages.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if `stage` is among them.
    pub fn contains(&self, stage: &Stage) -> bool {
        self.0.contains(stage)
    }

    /// The stages in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Stage> {
        self.0.iter()
    }

    /// The stage at `index`.
    pub fn get(&self, index: usize) -> Option<&Stage> {
        self.0.get(index)
    }

    /// The stages as a slice.
    pub fn as_slice(&self) -> &[Stage] {
        &self.0
    }
}

impl FromIterator<Stage> for Stages {
    /// Keeps the first of any repeated stage.
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Stages {
        let mut s = Stages::none();
        for stage in iter {
            s.push(stage);
        }
        s
    }
}

impl<'a> IntoIterator for &'a Stages {
    type Item = &'a Stage;
    type IntoIter = std::slice::Iter<'a, Stage>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_and_library_methods_round_trip_by_name() {
        for s in Stage::BUILT_IN {
            assert_eq!(Stage::parse(s.name()), Ok(s.clone()));
            assert!(s.is_built_in());
        }
        let custom = Stage::parse("yubikey-otp").unwrap();
        assert_eq!(
            custom,
            Stage::Method(MethodName::new("yubikey-otp").unwrap())
        );
        assert!(
            MethodName::new("totp").is_err(),
            "a built-in is not a method name"
        );
        assert!(MethodName::new("YubiKey").is_err());
        assert!(!custom.is_built_in());
        assert_eq!(custom.to_string(), "yubikey-otp");
    }

    #[test]
    fn malformed_names_are_refused_without_echoing_them() {
        for bad in ["", "Totp", "1x", "a b", "e\u{1b}[31m", &"x".repeat(33)] {
            let e = Stage::parse(bad).unwrap_err();
            assert!(!e.to_string().contains(bad) || bad.is_empty(), "{e}");
        }
    }

    #[test]
    fn stages_keep_order_and_drop_repeats() {
        let s: Stages = [Stage::Email, Stage::Approval, Stage::Email]
            .into_iter()
            .collect();
        assert_eq!(s.as_slice(), &[Stage::Email, Stage::Approval]);
        assert_eq!(s.len(), 2);
    }
}
