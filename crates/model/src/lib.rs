//! Regent's shared vocabulary: one type per concept, used by every layer above.
//!
//! config reads TOML into these types, exec runs under them, auth holds requests in
//! terms of them and the server decides with them. Plain data: no I/O, no async.
//!
//! **Boundaries.** Owns the concepts (principal, capability, run-as, stage, limits,
//! verdict) and nothing that acts on them. Imports no other Regent crate.
#![forbid(unsafe_code)]
pub mod stage;
pub mod verdict;

pub mod account;
pub mod capability;
pub mod limits;
pub mod principal;
pub mod run_as;
pub mod smtp;

pub use stage::{BadStageName, MethodName, Stage, Stages};
pub use verdict::Verdict;

pub use account::Account;
pub use capability::{Capability, UnknownCapability};
pub use limits::Limits;
pub use principal::{valid_client_name, CallerKey, Peer, Principal, TLS_ID};
pub use run_as::RunAs;
pub use smtp::SmtpSecurity;
