//! `regent status`: the service's state, for root and administrators (the
//! reserved `regent.status` operation).

use super::call::{connection_failure, fail, report, Target};
use crate::exit;
use regent::client::Outcome;
use serde_json::Value;
use std::process::ExitCode;

/// `regent status`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the service's JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

pub fn run(args: Args) -> ExitCode {
    let client = match args.target.client() {
        Ok(c) => c,
        Err(e) => return fail(e, exit::OTHER),
    };
    let outcome = match client.call("regent.status", Value::Null) {
        Ok(o) => o,
        Err(e) => return connection_failure(e),
    };
    let Outcome::Done(Value::Object(s)) = &outcome else {
        return exit::code(report(&outcome, args.json));
    };
    if args.json {
        return exit::code(report(&outcome, true));
    }
    let get = |k: &str| s.get(k).cloned().unwrap_or(Value::Null);
    let text = |v: Value| match v {
        Value::String(s) => s,
        Value::Null => "unknown".into(),
        other => other.to_string(),
    };
    let features: Vec<String> = get("features")
        .as_array()
        .map(|a| a.iter().map(|f| text(f.clone())).collect())
        .unwrap_or_default();
    println_escaped!(
        "version      {}\nuptime       {}s\nconnections  {} open of {}\noperations   {}\nheld         {}\naudit        {} refusal(s) counted, not yet summarized{}\nfeatures     {}",
        text(get("version")),
        text(get("uptime_seconds")),
        text(get("connections")["open"].clone()),
        text(get("connections")["limit"].clone()),
        text(get("operations")),
        text(get("held_requests")),
        text(get("audit")["refusals_counted"].clone()),
        match get("log").get("queued_bytes") {
            Some(n) => format!("; {n} byte(s) of log records queued"),
            None => String::new(),
        },
        features.join(" ")
    );
    exit::code(exit::OK)
}
