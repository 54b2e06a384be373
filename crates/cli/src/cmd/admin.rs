//! `regent pending`, `regent approve ID`, `regent deny ID`: the administrator's
//! side of approval. They go over the service's socket to the reserved
//! `regent.pending/approve/deny` operations, which only root and the configured
//! admin group may use (by kernel identity); every decision is audited.
//! `regent pending` shows the newest `--limit` requests (default 50) and says how
//! many more wait.

use super::call::{connection_failure, fail, report, Target};
use crate::exit;
use regent::client::Outcome;
use serde_json::{json, Value};
use std::process::ExitCode;

/// `regent pending`.
#[derive(clap::Args)]
pub struct PendingArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Show at most this many requests, newest first (the daemon caps it at 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub target: Target,
}

/// `regent approve ID`.
#[derive(clap::Args)]
pub struct ApproveArgs {
    /// The request id shown by `regent pending`.
    pub id: String,
    #[command(flatten)]
    pub target: Target,
}

/// `regent deny ID`.
#[derive(clap::Args)]
pub struct DenyArgs {
    /// The request id shown by `regent pending`.
    pub id: String,
    /// Why (shown to the caller).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

fn admin_call(target: &Target, op: &str, data: Value) -> Result<Outcome, ExitCode> {
    let client = target.client().map_err(|e| fail(e, exit::OTHER))?;
    client.call(op, data).map_err(connection_failure)
}

fn age(created: &str) -> String {
    let Ok(t) = humantime_parse(created) else {
        return "?".into();
    };
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

fn humantime_parse(s: &str) -> Result<std::time::SystemTime, ()> {
    // RFC 3339 "YYYY-MM-DDTHH:MM:SSZ"
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(());
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or(());
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + se;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64))
}

pub fn pending(args: PendingArgs) -> ExitCode {
    let outcome = match admin_call(
        &args.target,
        "regent.pending",
        json!({ "limit": args.limit }),
    ) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match (&outcome, args.json) {
        (Outcome::Done(Value::Object(page)), false) => {
            let empty = Vec::new();
            let list = page
                .get("requests")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            let more = page.get("more").and_then(Value::as_u64).unwrap_or(0);
            if list.is_empty() && more == 0 {
                println!("no pending requests");
            }
            for r in list {
                let caller = &r["caller"];
                let who = caller["user"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| caller["uid"].to_string());
                let stage = r["stage"].as_str().unwrap_or("?");
                let position = match (r["stage_index"].as_u64(), r["stages"].as_array()) {
                    (Some(i), Some(all)) if all.len() > 1 => {
                        format!(" ({} of {})", i + 1, all.len())
                    }
                    _ => String::new(),
                };
                let state = if r["approved"].as_bool() == Some(true) {
                    ", approved: waiting for the caller"
                } else if r["awaiting_approval"].as_bool() == Some(true) {
                    ", awaiting approval"
                } else {
                    ", waiting for the caller's code"
                };
                println_escaped!(
                    "{}  {}  by {} (uid {}, pid {})  age {}  stage {stage}{position}{state}  until {}\n    data: {}",
                    r["request_id"].as_str().unwrap_or("?"),
                    r["op"].as_str().unwrap_or("?"),
                    who,
                    caller["uid"],
                    caller["pid"],
                    age(r["created_at"].as_str().unwrap_or("")),
                    r["expires_at"].as_str().unwrap_or("?"),
                    r["display_data"]
                );
                // What a dry run showed when it was held: the change approved.
                match r["preview"]["diff"].as_str() {
                    Some("") => println!("    change: none"),
                    Some(diff) => {
                        println!("    change (runs only while it still applies as shown):");
                        for line in diff.lines() {
                            println_escaped!("      {line}");
                        }
                    }
                    None => {}
                }
            }
            if more > 0 {
                println!(
                    "... and {more} older request{} (newest first; see more with --limit)",
                    if more == 1 { "" } else { "s" }
                );
            }
            exit::code(exit::OK)
        }
        _ => exit::code(report(&outcome, args.json)),
    }
}

pub fn approve(args: ApproveArgs) -> ExitCode {
    match admin_call(&args.target, "regent.approve", json!({"id": args.id})) {
        Ok(Outcome::Done(_)) => {
            println!("approved {}", args.id);
            exit::code(exit::OK)
        }
        Ok(o) => exit::code(report(&o, false)),
        Err(code) => code,
    }
}

pub fn deny(args: DenyArgs) -> ExitCode {
    match admin_call(
        &args.target,
        "regent.deny",
        json!({"id": args.id, "reason": args.reason}),
    ) {
        Ok(Outcome::Done(_)) => {
            println!("denied {}", args.id);
            exit::code(exit::OK)
        }
        Ok(o) => exit::code(report(&o, false)),
        Err(code) => code,
    }
}
