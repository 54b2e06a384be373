//! `regent module` (hidden): the child process a module operation's work runs
//! in. The daemon starts its own binary this way per request, under the
//! operation's execution policy; nobody else needs to. Reads one
//! [`regent::model::ModuleRequest`] (JSON) on stdin, dispatches on the plan's
//! `module` (`augeas` to regent-augeas, the others to regent-modules), prints
//! one JSON answer on stdout (`{"ok": ...}` or `{"error": {"code", "message"}}`)
//! and exits 0 or 1.

use std::process::ExitCode;

use regent::model::{AugAction, ModulePlan};
use regent_modules::ModuleError;
use serde_json::Value;

/// `regent module`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> ExitCode {
    let answer = regent_modules::read_request(std::io::stdin().lock()).and_then(|request| {
        if let ModulePlan::Augeas {
            lens,
            file,
            actions,
            dry_run,
            expect_hash,
            secrets,
        } = &request.plan
        {
            let opts = regent_augeas::RunOptions {
                root: None,
                dry_run: *dry_run,
                expect_hash: expect_hash.clone(),
                secrets: secrets.clone(),
            };
            return augeas(lens, file, actions, &opts);
        }
        regent_modules::run(&request).unwrap_or_else(|| {
            Err(ModuleError::refused(format!(
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

/// An Augeas plan: its answer as JSON, or why not (`refused` when nothing was
/// attempted: a path or value outside the rules, a file that changed since its
/// diff was shown; `failed` otherwise).
fn augeas(
    lens: &str,
    file: &str,
    actions: &[AugAction],
    opts: &regent_augeas::RunOptions,
) -> Result<Value, ModuleError> {
    match regent_augeas::run(lens, file, actions, opts) {
        Ok(answer) => serde_json::to_value(answer)
            .map_err(|e| ModuleError::failed(format!("encoding the answer: {e}"))),
        Err(e) => Err(match e.kind() {
            "declaration" | "path" | "value" | "changed" => ModuleError::refused(e.to_string()),
            _ => ModuleError::failed(e.to_string()),
        }),
    }
}
