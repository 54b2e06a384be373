//! # regent-config
//!
//! The daemon face of Regent: privileged operations declared in TOML.
//!
//! This crate is pure: it reads a file (or takes a string), parses and validates
//! it into a typed [`Config`], validates request `data` against an operation's
//! declared parameters ([`validate_data`]) and renders command templates
//! ([`Template::render`]). The only other I/O is the request-time path check
//! ([`check_paths`], [`check_path_no_symlink_escape`]), which is advisory: the
//! daemon hands path parameters to commands as descriptors (see [`PathAccess`]).
//!
//! Errors in a config are all reported at once, each with its line, column and
//! key path ([`Diagnostics`]), what the file contains escaped. The reader has two
//! passes: serde reads the TOML into raw declarations that deny unknown keys
//! ("did you mean" picks from their fields), then the semantic checks build the
//! model.
//!
//! Template rules (no shell anywhere): a template element renders to exactly one
//! argv element; text and placeholders may be mixed inside one element
//! (`"--to={ip}"`), which still renders as one element; `{caller.uid}`,
//! `{caller.gid}` and `{caller.user}` come from the kernel identity; an element
//! referring to an absent optional parameter is left out; secret parameters may
//! only be passed on stdin.
//!
//! **Boundaries.** Owns the TOML schema and what it means: parameter types, templates,
//! diagnostics. The concepts it reads into (accounts, capabilities, `run_as`, the
//! caller a template names, the service limits and their defaults, an operation's
//! auth stages and execution declaration: sandbox, resource limits,
//! `on_unsupported`) are `regent-model`'s, not its own. May import `regent-model` and `regent-proto` only;
//! never `regent-exec`, `regent-auth` or `regent`. Inside, the modules form no cycle:
//! `reader` -> `model` -> `template` -> `values` -> `param`, and `data` (validation)
//! sits beside `reader`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod data;
mod diag;
mod error;
mod examples;
mod model;
mod module;
mod net;
mod param;
mod paths;
mod reader;
mod template;
mod units;
mod values;

use std::path::Path;

pub use data::{check_paths, validate_data, FieldError};
pub use diag::{Diagnostic, Diagnostics};
pub use error::Error;
pub use examples::{demo_config, demo_config_text, example_config};
pub use model::{module_command, SocketDecl};
pub use model::{
    AllowDecl, Config, LogFormat, OperationDecl, OutputMode, ServiceConfig, SmtpDecl, TcpDecl,
    AUTH_METHODS, DEFAULT_COMMAND_PATH, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_OUTPUT,
    DEFAULT_PENDING_TTL, DEFAULT_SOCKET, DEFAULT_STORE, DEFAULT_TIMEOUT,
};
pub use model::{DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_PER_UID, DEFAULT_OP_MAX_PENDING_PER_UID};
pub use module::{module_plan, module_targets, Targets, MAX_TARGETS};
pub use net::{check_hostname, is_public, non_public_reason};
pub use param::{
    check_timezone, IpVersion, ParamKind, ParamSpec, PathAccess, Pattern, ValueKind,
    DEFAULT_STRING_MAX_LEN, ZONEINFO,
};
pub use paths::{check_path_no_symlink_escape, normalize_path, not_found_message, MAX_PATH_LEN};
pub use template::{is_valid_param_name, Placeholder, Template};
pub use units::{parse_duration, parse_mode, parse_size};
pub use values::{ParamValue, Params};

/// The shared vocabulary the config is written in, re-exported for convenience.
pub use regent_model::{Account, Capability, Limits, Principal, RunAs, SmtpSecurity};
pub use regent_model::{ExecDecl, OnUnsupported, ResourceLimits, Sandbox, SandboxAllow};
pub use regent_model::{
    ModuleAccess, ModuleDecl, ModulePlan, ModuleRequest, PackagesAction, PackagesDecl,
    ServiceAction, ServiceBackend, ServiceDecl,
};
pub use regent_model::{Stage, Stages};

/// Largest config file accepted, in bytes.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// Reads, parses and validates the config file at `path`. Errors (including a
/// file that cannot be read) come back as [`Diagnostics`] naming the file.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let file = std::fs::File::open(path).map_err(|e| failure(path, format!("cannot read: {e}")))?;
    load_file(file, path)
}

/// [`load`] from `file`, opened already (by a caller that checked the file it
/// opened); `path` names it in diagnostics.
pub fn load_file(file: std::fs::File, path: &Path) -> Result<Config, Diagnostics> {
    use std::io::Read;
    let too_large = || failure(path, format!("file is larger than {MAX_CONFIG_SIZE} bytes"));
    let unreadable = |e: std::io::Error| failure(path, format!("cannot read: {e}"));
    if file.metadata().map_err(unreadable)?.len() > MAX_CONFIG_SIZE {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(too_large());
    }
    let text =
        String::from_utf8(bytes).map_err(|_| failure(path, "file is not valid UTF-8".into()))?;
    parse(&text, &path.display().to_string())
}

/// One diagnostic about the config file at `path` as a whole.
fn failure(path: &Path, message: String) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        origin: path.display().to_string(),
        location: None,
        path: String::new(),
        message,
    }])
}

/// Parses and validates config text; `origin` names it in diagnostics.
pub fn parse(text: &str, origin: &str) -> Result<Config, Diagnostics> {
    reader::parse_config(text, origin)
}
