//! `packages` operations through Debian's apt: install, remove, update
//! (upgrade what is installed) and status of the named packages.
//!
//! Every change is simulated first (`apt-get -s`): a plan that would remove a
//! package (for `remove`: any package not named) is refused before anything
//! is done. Then `apt-get -y` runs non-interactively (`DEBIAN_FRONTEND=
//! noninteractive`, the configuration files kept as they are with
//! `--force-confdef --force-confold`), `--` before the names, waiting for the
//! dpkg lock (`DPkg::Lock::Timeout`) at most the time the run has left: a lock
//! still held then answers `timeout`. Package lists are not refreshed
//! (`apt-get update` is not run). The answer gives the installed versions.
//!
//! Every name must be a package apt knows by exactly that name (a header of
//! `apt-cache policy`), checked before the simulation: apt-get reads a name it
//! does not know as a regular expression (`app.x` installs every package
//! matching it) and a trailing `+` or `-` as "install" or "remove" (`remove
//! app+` would install `app`). A `remove` whose simulation would install or
//! upgrade anything is refused as well.

use std::collections::BTreeMap;

use regent_model::PackagesAction;
use serde_json::{json, Value};

use crate::{Deadline, ModuleError, Output, Tool};

/// `apt-get`.
pub const APT_GET: &str = "/usr/bin/apt-get";

/// Installed and candidate versions of `names` (`None`: not installed / none).
pub fn versions(names: &[String]) -> Result<BTreeMap<String, Value>, ModuleError> {
    let found = policy(names)?;
    Ok(names
        .iter()
        .map(|n| {
            let (installed, candidate) = known_as(&found, n).cloned().unwrap_or_default();
            (
                n.clone(),
                json!({ "installed": installed, "candidate": candidate }),
            )
        })
        .collect())
}

/// The entry of `name` (`PKG` or `PKG:ARCH`) in `apt-cache policy`'s output,
/// when apt knows it by exactly that name (policy heads a native `PKG:ARCH`
/// as `PKG`); `None` when the name would be a pattern to apt.
fn known_as<'a, V>(found: &'a BTreeMap<String, V>, name: &str) -> Option<&'a V> {
    found.get(name).or_else(|| {
        let (pkg, _arch) = name.split_once(':')?;
        found.get(pkg)
    })
}

/// Refuse any of `names` that apt does not know by exactly that name.
fn check_exact(names: &[String]) -> Result<(), ModuleError> {
    let found = policy(names)?;
    match names.iter().find(|n| known_as(&found, n).is_none()) {
        Some(n) => Err(ModuleError::refused(format!(
            "no package is named exactly {n} (apt would read the name as a pattern)"
        ))),
        None => Ok(()),
    }
}

/// `apt-cache policy NAMES`, parsed.
fn policy(names: &[String]) -> Result<Policy, ModuleError> {
    let out = Tool::new("/usr/bin/apt-cache")
        .args(["policy", "--"])
        .args(names)
        .run(None)?;
    if !out.success() {
        return Err(out.failure("apt-cache policy"));
    }
    Ok(parse_policy(&out.stdout))
}

/// `(installed, candidate)` by the package names `apt-cache policy` heads.
type Policy = BTreeMap<String, (Option<String>, Option<String>)>;

/// `apt-cache policy` output: `(installed, candidate)` by package.
fn parse_policy(text: &str) -> Policy {
    let mut found = Policy::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = Some(line.trim_end_matches(':').to_string());
            continue;
        }
        let (Some(name), Some((key, value))) = (&current, line.trim().split_once(": ")) else {
            continue;
        };
        let v = (value != "(none)").then(|| value.to_string());
        let entry = found.entry(name.clone()).or_default();
        match key {
            "Installed" => entry.0 = v,
            "Candidate" => entry.1 = v,
            _ => {}
        }
    }
    found
}

/// `apt-get -s` output: `(removed, installed or upgraded)` package names.
fn parse_simulation(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut installed) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Remv" | "Purg"), Some(p)) => removed.push(p.to_string()),
            (Some("Inst"), Some(p)) => installed.push(p.to_string()),
            _ => {}
        }
    }
    (removed, installed)
}

/// The apt-get arguments of an action (before `--` and the names).
fn verb(action: PackagesAction) -> &'static [&'static str] {
    match action {
        PackagesAction::Install => &["install"],
        PackagesAction::Remove => &["remove"],
        PackagesAction::Update => &["install", "--only-upgrade"],
        PackagesAction::Status => &[],
    }
}

/// What a simulation would do: `(removed, installed or upgraded)` package names.
fn simulate(
    action: PackagesAction,
    names: &[String],
) -> Result<(Vec<String>, Vec<String>), ModuleError> {
    let out = Tool::new(APT_GET)
        .args(["-s", "-y", "-q", "-o", "Debug::NoLocking=1"])
        .args(verb(action).iter().copied())
        .args(["--"])
        .args(names)
        .run(None)?;
    if !out.success() {
        return Err(out.failure(&format!("apt-get -s {}", action.name())));
    }
    Ok(parse_simulation(&out.stdout))
}

/// Whether apt's error says another process held the dpkg lock (`Could not
/// get lock`, or after `DPkg::Lock::Timeout` only `Unable to acquire the dpkg
/// frontend lock ..., is another process using it?`), not that this one may
/// not take it (`Could not open lock file ... Permission denied` and `...,
/// are you root?`).
#[must_use]
fn lock_held(tail: &str) -> bool {
    tail.contains("Could not get lock") || tail.contains("is another process using it?")
}

fn failure(action: PackagesAction, out: &Output, lock_wait: u64) -> ModuleError {
    if lock_held(&out.tail()) {
        return ModuleError::timeout(format!(
            "the dpkg lock was held by another process for the {lock_wait} s this run could wait"
        ));
    }
    out.failure(&format!("apt-get {}", action.name()))
}

/// Carry out `action` on `names`, each of which must be in `allowed` when it is
/// given (checked before apt runs).
pub fn run(
    action: PackagesAction,
    names: &[String],
    allowed: Option<&[String]>,
    deadline: Deadline,
) -> Result<Value, ModuleError> {
    if let Some(outside) = names
        .iter()
        .find(|n| allowed.is_some_and(|a| !a.contains(n)))
    {
        return Err(ModuleError::refused(format!(
            "package {outside} is not in the declaration"
        )));
    }
    if action == PackagesAction::Status {
        return Ok(json!({ "packages": versions(names)? }));
    }
    check_exact(names)?;
    let (removed, changed) = simulate(action, names)?;
    if action == PackagesAction::Remove && !changed.is_empty() {
        return Err(ModuleError::refused(format!(
            "refused: apt would install or upgrade {} in a removal",
            changed.join(", ")
        )));
    }
    let unasked: Vec<&String> = removed
        .iter()
        .filter(|p| action != PackagesAction::Remove || !names.contains(p))
        .collect();
    if !unasked.is_empty() {
        return Err(ModuleError::refused(format!(
            "refused: apt would also remove {}",
            unasked
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let lock_wait = deadline.remaining().as_secs().max(1);
    let out = Tool::new(APT_GET)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        .args(["-y", "-q"])
        // Beside the simulation's check: abort rather than remove anything.
        .args((action != PackagesAction::Remove).then_some("--no-remove"))
        .args(["-o", &format!("DPkg::Lock::Timeout={lock_wait}")])
        .args(["-o", "Dpkg::Options::=--force-confdef"])
        .args(["-o", "Dpkg::Options::=--force-confold"])
        .args(verb(action).iter().copied())
        .args(["--"])
        .args(names)
        .run(Some(deadline.at()))?;
    if !out.success() {
        return Err(failure(action, &out, lock_wait));
    }
    let mut changed_all = changed;
    changed_all.extend(removed);
    Ok(json!({
        "action": action.name(),
        "changed": changed_all,
        "packages": versions(names)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_outputs() {
        let policy = "hello:\n  Installed: (none)\n  Candidate: 2.10-3\n  Version table:\n     2.10-3 500\nbash:\n  Installed: 5.2.15-2+b8\n  Candidate: 5.2.15-2+b8\n";
        let p = parse_policy(policy);
        assert_eq!(p["hello"], (None, Some("2.10-3".into())));
        assert_eq!(p["bash"].0.as_deref(), Some("5.2.15-2+b8"));
        let sim = "NOTE: This is only a simulation!\nRemv b [1.0]\nInst a (1.0 local [all])\nConf a (1.0 local [all])\n";
        assert_eq!(parse_simulation(sim), (vec!["b".into()], vec!["a".into()]));
        assert!(lock_held("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (python3)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"));
        assert!(lock_held("E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"));
        assert!(!lock_held("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?"));
        // A pattern's policy heads the packages it matches, not the pattern.
        let regex = parse_policy("hello-traditional:\n  Installed: (none)\n  Candidate: 2.10-2\n");
        assert!(known_as(&regex, "hello+").is_none());
        assert!(known_as(&regex, "hello-traditional").is_some());
        assert!(known_as(&p, "bash:amd64").is_some());
        assert!(known_as(&p, "bas.").is_none());
    }
}
