//! `cargo bench -p regent-bench`: the round-trip benchmark (see the crate README).
//!
//! Environment: `REGENT_BENCH_SECS` (measured seconds per figure, default 1),
//! `REGENT_BENCH_ROUNDS` (default 3), `REGENT_SHARED` (the shared/ directory).

use regent_bench::{run, BenchOptions};
use std::path::Path;
use std::time::Duration;

fn env_number(name: &str) -> Option<f64> {
    let v = std::env::var(name).ok()?;
    match v.parse::<f64>() {
        Ok(n) if n > 0.0 => Some(n),
        _ => {
            eprintln!("ignoring {name}={v:?}: not a positive number");
            None
        }
    }
}

fn main() {
    let mut opts = BenchOptions::new(vec![env!("CARGO_BIN_EXE_regent-bench-server").into()]);
    opts.workspace_root = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    if let Some(s) = env_number("REGENT_BENCH_SECS") {
        opts.duration = Duration::from_secs_f64(s);
    }
    if let Some(r) = env_number("REGENT_BENCH_ROUNDS") {
        opts.rounds = r as usize;
    }
    match run(&opts) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("regent-bench: {e}");
            std::process::exit(1);
        }
    }
}
