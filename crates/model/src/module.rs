//! System modules: an operation that, instead of a `command`, declares typed
//! work (`service = {...}`, `packages = {...}`) which Regent itself carries out.
//!
//! Three shapes:
//! - [`ModuleDecl`]: what the config declares. Its name fields are template
//!   texts (`"{unit}"`, `"app-{name}"`): regent-config checks them against the
//!   declared parameters at load and renders them per request, each into exactly
//!   one name, which must then pass the module's name check
//!   ([`valid_unit_name`], [`valid_package_name`]).
//! - [`ModulePlan`]: one request's expanded work, every name rendered and
//!   checked. The daemon never carries it out itself: it runs its own binary as
//!   `regent-module` under the operation's execution policy, the
//!   [`ModuleRequest`] as one JSON object on stdin, and reads one JSON object
//!   back on stdout: `{"ok": ANSWER}` (exit status 0) or
//!   `{"error": {"code": "failed" | "timeout" | "refused", "message": TEXT}}`
//!   (exit status 1).
//! - [`ModuleAccess`]: what a module's process needs (capabilities, whether the
//!   operation's sandbox may apply, what a sandbox must let through, whether
//!   what it starts may outlive it), the defaults an operation gets when it
//!   declares none.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::augeas::{check_file, check_lens, AugAction, AugeasDecl, Mode};
use crate::capability::Capability;
use crate::sandbox::SandboxAllow;

/// Where Augeas's lenses are (a sandboxed Augeas operation may read them).
pub const AUGEAS_LENSES: &str = "/usr/share/augeas";

/// A module operation's declaration (`service = {...}` or `packages = {...}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "module", rename_all = "snake_case")]
pub enum ModuleDecl {
    /// `service = { unit = "{unit}", action = "restart" }`.
    Service(ServiceDecl),
    /// `packages = { install = ["{package}"] }`.
    Packages(PackagesDecl),
    /// `augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", ... }`.
    Augeas(AugeasDecl),
}

impl ModuleDecl {
    /// The config key that declares it: `service` or `packages`.
    #[must_use]
    pub fn key(&self) -> &'static str {
        match self {
            ModuleDecl::Service(_) => "service",
            ModuleDecl::Packages(_) => "packages",
            ModuleDecl::Augeas(_) => "augeas",
        }
    }

    /// The name templates it declares, in order (none for `augeas`, whose
    /// paths and values are not names: see [`AugeasDecl`]).
    #[must_use]
    pub fn templates(&self) -> Vec<&str> {
        match self {
            ModuleDecl::Service(s) => vec![s.unit.as_str()],
            ModuleDecl::Packages(p) => p.names.iter().map(String::as_str).collect(),
            ModuleDecl::Augeas(_) => Vec::new(),
        }
    }

    /// Whether a request may ask for a dry run: an `augeas` operation that
    /// changes the file (the answer is the diff).
    #[must_use]
    pub fn dry_run(&self) -> bool {
        matches!(self, ModuleDecl::Augeas(a) if a.changes())
    }

    /// What the module's process needs.
    #[must_use]
    pub fn access(&self) -> ModuleAccess {
        // An init script (or a maintainer script) starts daemons that must
        // keep running, unconfined, after the run: no sandbox, no resource
        // limits, no `no_new_privs` (all inherited over fork and exec), the
        // service's full privilege, and no tree kill when the run ends. A
        // `status` starts nothing: its tree is stopped when it ends, and it
        // runs with `no_new_privs`.
        let status = matches!(
            self,
            ModuleDecl::Service(ServiceDecl {
                action: ServiceAction::Status,
                ..
            }) | ModuleDecl::Packages(PackagesDecl {
                action: PackagesAction::Status,
                ..
            })
        );
        match self {
            ModuleDecl::Service(_) | ModuleDecl::Packages(_) => ModuleAccess {
                capabilities: None,
                may_sandbox: false,
                read: Vec::new(),
                write: Vec::new(),
                allow: SandboxAllow::default(),
                keep_descendants: !status,
            },
            // Augeas reads the lenses and the file, and writes a temporary file
            // beside it, then gives it the original's owner and mode (chown and
            // chmod: the sandbox's `metadata` family) and renames it into place:
            // a file of another owner needs CAP_DAC_OVERRIDE, CAP_CHOWN and
            // CAP_FOWNER, and nothing else. It starts nothing.
            ModuleDecl::Augeas(a) => ModuleAccess {
                capabilities: Some(vec![
                    Capability::parse("CAP_CHOWN").expect("a known capability"),
                    Capability::parse("CAP_DAC_OVERRIDE").expect("a known capability"),
                    Capability::parse("CAP_FOWNER").expect("a known capability"),
                ]),
                may_sandbox: true,
                read: vec![PathBuf::from(AUGEAS_LENSES)],
                write: PathBuf::from(&a.file)
                    .parent()
                    .map(PathBuf::from)
                    .into_iter()
                    .collect(),
                allow: SandboxAllow {
                    metadata: true,
                    ..SandboxAllow::default()
                },
                keep_descendants: false,
            },
        }
    }
}

/// What a module's process needs: the policy an operation of that module runs
/// under unless it declares its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModuleAccess {
    /// The capabilities it needs when the operation declares none; `None`: the
    /// service's full privilege.
    pub capabilities: Option<Vec<Capability>>,
    /// Whether the operation's `sandbox` and `limits` may apply. `false` when
    /// what the module starts would inherit them (a service started by an init
    /// script): the config refuses `sandbox`, `limits`, `capabilities` and
    /// `run_as` on such an operation.
    pub may_sandbox: bool,
    /// Trees a declared sandbox must also let it read (beside its own binary).
    pub read: Vec<PathBuf>,
    /// Trees a declared sandbox must also let it write.
    pub write: Vec<PathBuf>,
    /// Families a declared sandbox must let through.
    pub allow: SandboxAllow,
    /// Whether the processes the module starts may outlive the run (a started
    /// daemon): when the module's process exits, its leftovers are not stopped;
    /// on timeout its whole tree still is. Such a module also runs without
    /// `no_new_privs` (what it starts would inherit it).
    pub keep_descendants: bool,
}

/// `service = { unit = "...", action = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceDecl {
    /// The unit (or init script) name template, e.g. `"{unit}"`.
    pub unit: String,
    /// What to do.
    pub action: ServiceAction,
    /// Which init system (`backend`, default `auto`).
    pub backend: ServiceBackend,
}

/// Which init system a `service` operation talks to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceBackend {
    /// systemd when it is the init (`/run/systemd/system` exists), else SysV.
    #[default]
    Auto,
    /// Always `systemctl`.
    Systemd,
    /// Always the `/etc/init.d` script, even under systemd.
    Sysv,
}

impl ServiceBackend {
    /// Every backend, in the order the config lists them.
    pub const ALL: [ServiceBackend; 3] = [
        ServiceBackend::Auto,
        ServiceBackend::Systemd,
        ServiceBackend::Sysv,
    ];

    /// The name the config writes.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ServiceBackend::Auto => "auto",
            ServiceBackend::Systemd => "systemd",
            ServiceBackend::Sysv => "sysv",
        }
    }
}

/// What a `service` operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceAction {
    /// Report the state.
    Status,
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Stop, then start.
    Restart,
    /// Reload its configuration.
    Reload,
    /// Start at boot.
    Enable,
    /// Do not start at boot.
    Disable,
}

impl ServiceAction {
    /// Every action, in the order the config lists them.
    pub const ALL: [ServiceAction; 7] = [
        ServiceAction::Status,
        ServiceAction::Start,
        ServiceAction::Stop,
        ServiceAction::Restart,
        ServiceAction::Reload,
        ServiceAction::Enable,
        ServiceAction::Disable,
    ];

    /// The name the config writes (also the `systemctl` verb and the init
    /// script's argument).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ServiceAction::Status => "status",
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Reload => "reload",
            ServiceAction::Enable => "enable",
            ServiceAction::Disable => "disable",
        }
    }
}

/// `packages = { install = [...] }` (or `remove`, `update`, `status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackagesDecl {
    /// What to do.
    pub action: PackagesAction,
    /// The package name templates, e.g. `["{package}"]`.
    pub names: Vec<String>,
}

/// What a `packages` operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackagesAction {
    /// Install (and upgrade if installed).
    Install,
    /// Remove (configuration files are kept).
    Remove,
    /// Upgrade the ones installed to the candidate version; never installs.
    Update,
    /// Report installed and candidate versions.
    Status,
}

impl PackagesAction {
    /// Every action, in the order the config lists them.
    pub const ALL: [PackagesAction; 4] = [
        PackagesAction::Install,
        PackagesAction::Remove,
        PackagesAction::Update,
        PackagesAction::Status,
    ];

    /// The key the config writes.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PackagesAction::Install => "install",
            PackagesAction::Remove => "remove",
            PackagesAction::Update => "update",
            PackagesAction::Status => "status",
        }
    }
}

/// The largest [`ModuleRequest`] (its JSON text) `regent-module` reads: the
/// daemon refuses to send a larger one.
pub const MAX_MODULE_REQUEST: u64 = 1 << 20;

/// One request's work: what `regent-module` reads on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRequest {
    /// The time the run has, in milliseconds (what is left of the operation's
    /// `timeout`): the module sizes its own waits by it (the dpkg lock, a
    /// systemd job) and stops short of it.
    pub timeout_ms: u64,
    /// The expanded work.
    pub plan: ModulePlan,
}

/// The expanded work of one request: every name rendered and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "module", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModulePlan {
    /// A service action on one unit.
    Service {
        /// The unit (or init script) name, checked by [`valid_unit_name`].
        unit: String,
        /// What to do.
        action: ServiceAction,
        /// Which init system.
        #[serde(default)]
        backend: ServiceBackend,
    },
    /// A package action.
    Packages {
        /// What to do.
        action: PackagesAction,
        /// The packages, each checked by [`valid_package_name`].
        names: Vec<String>,
        /// Every name the declaration allows, when it is a finite list (its
        /// placeholders are all `enum`s): the module refuses any other before
        /// apt runs.
        allowed: Option<Vec<String>>,
    },
    /// Augeas actions on one file: all applied, then saved once.
    Augeas {
        /// The lens, `Sshd.lns`.
        lens: String,
        /// The file.
        file: String,
        /// The actions, expanded (every placeholder filled and checked).
        actions: Vec<AugAction>,
        /// Show the diff instead of saving.
        #[serde(default)]
        dry_run: bool,
        /// Save only if the file still has this hash (the one its approvers
        /// were shown a diff of).
        #[serde(default)]
        expect_hash: Option<String>,
        /// Values to redact from a diff (the request's secret parameters).
        #[serde(default)]
        secrets: Vec<String>,
    },
}

impl ModulePlan {
    /// The module's name: `service` or `packages`.
    #[must_use]
    pub fn module(&self) -> &'static str {
        match self {
            ModulePlan::Service { .. } => "service",
            ModulePlan::Packages { .. } => "packages",
            ModulePlan::Augeas { .. } => "augeas",
        }
    }

    /// Check every name of the plan again (the module's process does, before it
    /// acts); the first problem found.
    pub fn check(&self) -> Result<(), String> {
        match self {
            ModulePlan::Service { unit, .. } => {
                if valid_unit_name(unit) {
                    Ok(())
                } else {
                    Err(format!("not a valid unit name: {unit:?}"))
                }
            }
            ModulePlan::Packages { names, allowed, .. } => {
                if names.is_empty() {
                    return Err("no package named".into());
                }
                for n in names {
                    if !valid_package_name(n) {
                        return Err(format!("not a valid package name: {n:?}"));
                    }
                    if allowed.as_ref().is_some_and(|a| !a.contains(n)) {
                        return Err(format!("package {n:?} is not in the declaration"));
                    }
                }
                Ok(())
            }
            ModulePlan::Augeas {
                lens,
                file,
                actions,
                ..
            } => {
                check_lens(lens)?;
                check_file(file)?;
                for (i, a) in actions.iter().enumerate() {
                    a.check(Mode::Concrete)
                        .map_err(|e| format!("action {} ({}): {e}", i + 1, a.name()))?;
                }
                Ok(())
            }
        }
    }
}

/// True for a unit or init script name: 1 to 255 bytes of ASCII letters,
/// digits and `_ . @ : + -`, starting with a letter or digit, not ending in `.`
/// (so never `/`, whitespace, an option, `.` or `..`).
#[must_use]
pub fn valid_unit_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && !name.ends_with('.')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.@:+-".contains(c))
}

/// True for a Debian package name (policy 5.6.1: lowercase letters, digits,
/// `+ - .`, at least two characters, starting with a letter or digit, at most
/// 128), optionally followed by `:ARCH` (lowercase letters, digits, `-`, not
/// at either end: apt reads a name ending in `-` as "remove it").
#[must_use]
pub fn valid_package_name(name: &str) -> bool {
    let (pkg, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let b = pkg.as_bytes();
    let pkg_ok = b.len() >= 2
        && b.len() <= 128
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.len() <= 32
            && !a.starts_with('-')
            && !a.ends_with('-')
            && a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    });
    pkg_ok && arch_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "nginx",
            "nginx.service",
            "getty@tty1.service",
            "a",
            "x-1_2:3",
        ] {
            assert!(valid_unit_name(ok), "{ok}");
        }
        for bad in ["", "-x", "../x", "a/b", "a b", ".", "x.", "a\nb", "é"] {
            assert!(!valid_unit_name(bad), "{bad}");
        }
        for ok in ["hello", "libc6:amd64", "g++", "0ad", "python3.11"] {
            assert!(valid_package_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "-x",
            "Hello",
            "a b",
            "x:",
            "a/b",
            "x_y",
            "x:AMD",
            "hello:amd64-",
        ] {
            assert!(!valid_package_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_plan_is_checked_against_its_allowlist() {
        let plan = |n: &str| ModulePlan::Packages {
            action: PackagesAction::Install,
            names: vec![n.into()],
            allowed: Some(vec!["hello".into()]),
        };
        assert_eq!(plan("hello").check(), Ok(()));
        assert!(plan("sl")
            .check()
            .unwrap_err()
            .contains("not in the declaration"));
        let json = serde_json::to_string(&ModuleRequest {
            timeout_ms: 5,
            plan: ModulePlan::Service {
                unit: "x".into(),
                action: ServiceAction::Restart,
                backend: ServiceBackend::Auto,
            },
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"timeout_ms":5,"plan":{"module":"service","unit":"x","action":"restart","backend":"auto"}}"#
        );
    }
}
