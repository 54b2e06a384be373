//! Regent: let unprivileged programs ask a privileged service to do a fixed set of
//! narrow system tasks, and nothing else.
//!
//! Where to look:
//! - a request is **authenticated, authorized and executed** in
//!   [`server::pipeline`] (see its module docs for the steps);
//! - who the caller is: [`identity`] (kernel credentials, never the client's word),
//!   or over TCP a client certificate ([`server::tls`]);
//! - who may call what: [`policy`] (a pure decision);
//! - writing operations in Rust: [`operation`], registered in a [`registry`];
//! - the wire format: the `regent-proto` crate, re-exported as [`proto`];
//! - calling a service: [`client`];
//! - reloading the daemon's config on SIGHUP: [`reload`] (the swap itself:
//!   [`server::reload`]).
//!
//! **Boundaries.** Owns the service: transports, the pipeline, the policy, the
//! registry, the built-in operations and the client, and the service manager's
//! protocols ([`activation`], [`notify`]). The caller ([`Principal`]) and the
//! connection [`Limits`] are `regent-model`'s. May import `regent-proto`,
//! `regent-model`, `regent-config`, `regent-exec` and `regent-auth`; never `regent-privsep`,
//! `regent-cli` or `regent-bench`.
#![forbid(unsafe_code)]

pub mod activation;
pub mod builtin;
pub mod client;
pub mod command;
pub mod daemon;
pub mod error;
pub mod identity;
pub mod module;
pub mod notify;
pub mod operation;
pub mod policy;
pub mod registry;
pub mod reload;
pub mod server;
pub mod trust;

pub use error::Error;
pub use identity::Caller;
pub use operation::{Authorization, Context, OpError, Operation};
pub use policy::AllowRule;
pub use regent_auth as auth;
pub use regent_config as config;
pub use regent_exec as exec;
pub use regent_model as model;
pub use regent_model::{Account, Principal, Stage, Stages, Verdict};
pub use regent_proto as proto;
pub use registry::OpOptions;
pub use server::{Limits, Service, ShutdownHandle};
