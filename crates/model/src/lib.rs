//! Regent's shared vocabulary: one type per concept, used by every layer above.
//!
//! config reads TOML into these types, exec runs under them, auth holds requests in
//! terms of them and the server decides with them. Plain data: no I/O, no async.
//!
//! The concepts: [`Principal`] (who calls: a Unix peer or a TLS client), [`Account`]
//! (a user or group by name or id), [`Capability`], [`RunAs`], [`SmtpSecurity`],
//! [`Limits`] (a service's connection limits and the defaults written once), the
//! execution part of an operation's declaration ([`ExecDecl`]: its [`Sandbox`] and
//! [`SandboxAllow`] opt-ins, [`ResourceLimits`], [`OnUnsupported`]), the system
//! modules' declarations, plans and access ([`ModuleDecl`], [`ModulePlan`],
//! [`ModuleAccess`]; a configuration file edited through Augeas: [`AugeasDecl`],
//! a lens, a file, [`AugAction`]s, in `augeas.rs`), [`Stage`] and [`Verdict`].
//!
//! **Boundaries.** Owns the concepts (principal, account, capability, run-as, smtp,
//! limits, sandbox, resource limits, execution declaration, stage, verdict) and
//! nothing that acts on them. Imports no other Regent crate; depends on serde only.
#![forbid(unsafe_code)]
pub mod stage;
pub mod verdict;

pub mod account;
pub mod capability;
pub mod limits;
pub mod principal;
pub mod run_as;
pub mod smtp;

pub mod augeas;
pub mod exec;
pub mod module;
pub mod param;
pub mod rlimits;
pub mod sandbox;

pub use stage::{BadStageName, MethodName, Stage, Stages};
pub use verdict::Verdict;

pub use account::Account;
pub use capability::{Capability, UnknownCapability};
pub use limits::Limits;
pub use principal::{valid_client_name, CallerKey, Peer, Principal, TLS_ID};
pub use run_as::RunAs;
pub use smtp::SmtpSecurity;

pub use augeas::{AugAction, AugeasDecl, InsertPosition};
pub use exec::{ExecDecl, OnUnsupported};
pub use module::{
    valid_package_name, valid_unit_name, ModuleAccess, ModuleDecl, ModulePlan, ModuleRequest,
    PackagesAction, PackagesDecl, ServiceAction, ServiceBackend, ServiceDecl,
};
pub use param::is_valid_param_name;
pub use rlimits::ResourceLimits;
pub use sandbox::{Sandbox, SandboxAllow};
