//! `regent`: one command for callers and administrators. Thin over the library:
//! each subcommand parses its arguments into validated settings and calls it.
//!
//! **Boundaries.** Imports `regent` (and what it re-exports) and `regent-proto`, and
//! `rcgen`/`x509-parser` only for `regent tls`'s lab certificates; no policy,
//! parsing of requests or command execution of its own.

#![forbid(unsafe_code)]
// First: its macros replace `println!` and friends in every module below.
#[macro_use]
mod out;
mod cmd;
mod exit;
mod journal;
mod logging;
mod secret;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// Let unprivileged programs ask a privileged service for narrow operations.
#[derive(Parser)]
#[command(name = "regent", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Call an operation on a running service.
    Call(cmd::call::Args),
    /// List the operations this caller may call.
    Ops(cmd::call::OpsArgs),
    /// Run the daemon from a TOML config.
    Serve(cmd::serve::Args),
    /// Validate a config and show what each operation runs with.
    Check(cmd::check::Args),
    /// Start a service with example operations on a temporary socket and call it.
    Demo(cmd::demo::Args),
    /// List requests waiting for out-of-channel authorization (administrators).
    Pending(cmd::admin::PendingArgs),
    /// Approve a waiting request (administrators).
    Approve(cmd::admin::ApproveArgs),
    /// Deny a waiting request (administrators).
    Deny(cmd::admin::DenyArgs),
    /// The service's state: uptime, connections, held requests (administrators).
    Status(cmd::status::Args),
    /// Manage TOTP second factors.
    #[command(subcommand)]
    Totp(cmd::totp::Command),
    /// Make certificates for a lab or a test: a CA, server and client certificates, a CRL.
    #[command(subcommand)]
    Tls(cmd::tls::Command),
    /// Write the man pages, generated from this definition (for packagers).
    #[command(hide = true)]
    Man(cmd::docs::ManArgs),
    /// Write a shell completion script to standard output (for packagers).
    #[command(hide = true)]
    Completions(cmd::docs::CompletionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Call(a) => cmd::call::call(a),
        Command::Ops(a) => cmd::call::ops(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Pending(a) => cmd::admin::pending(a),
        Command::Approve(a) => cmd::admin::approve(a),
        Command::Deny(a) => cmd::admin::deny(a),
        Command::Status(a) => cmd::status::run(a),
        Command::Totp(c) => cmd::totp::run(c),
        Command::Tls(c) => cmd::tls::run(c),
        Command::Man(a) => cmd::docs::man(Cli::command(), a),
        Command::Completions(a) => cmd::docs::completions(Cli::command(), a),
        Command::Demo(a) => {
            logging::init_quiet();
            cmd::demo::run(a)
        }
    }
}
