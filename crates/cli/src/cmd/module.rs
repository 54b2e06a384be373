//! `regent module` (hidden): the child process a module operation's work runs
//! in. The daemon starts its own binary this way per request, under the
//! operation's execution policy; nobody else needs to. Reads one
//! [`regent::model::ModuleRequest`] (JSON) on stdin, dispatches on the plan's
//! `module`, prints one JSON answer on stdout (`{"ok": ...}` or
//! `{"error": {"code", "message"}}`) and exits 0 or 1.

use std::process::ExitCode;

/// `regent module`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> ExitCode {
    let answer = regent_modules::read_request(std::io::stdin().lock()).and_then(|request| {
        regent_modules::run(&request).unwrap_or_else(|| {
            Err(regent_modules::ModuleError::refused(format!(
                "no module '{}' in this build",
                request.plan.module()
            )))
        })
    });
    ExitCode::from(regent_modules::write_answer(
        std::io::stdout().lock(),
        answer,
    ))
}
