//! `cargo bench -p regent-bench`: the round-trip benchmark (see the crate README).
//!
//! Environment: `REGENT_BENCH_SECS` (measured seconds per figure, default 1),
//! `REGENT_BENCH_ROUNDS` (default 3), `REGENT_BENCH_VARIANTS` (our service's
//! configurations, default `off,devnull`: audit log off|devnull, then `:N` serving
//! threads as the daemon's `threads` key or `:mN` tokio's multi-threaded runtime
//! with N workers), `REGENT_BENCH_SERVER` (another build of
//! `regent-bench-server`, to compare), `REGENT_SHARED` (the shared/ directory).

use regent_bench::{run, BenchOptions, Variant};
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
    let server = std::env::var_os("REGENT_BENCH_SERVER")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_regent-bench-server").into());
    let mut opts = BenchOptions::new(vec![server]);
    opts.workspace_root = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    if let Some(s) = env_number("REGENT_BENCH_SECS") {
        opts.duration = Duration::from_secs_f64(s);
    }
    if let Some(r) = env_number("REGENT_BENCH_ROUNDS") {
        opts.rounds = r as usize;
    }
    if let Ok(list) = std::env::var("REGENT_BENCH_VARIANTS") {
        match Variant::parse_list(&list) {
            Ok(v) => opts.variants = v,
            Err(e) => {
                eprintln!("regent-bench: REGENT_BENCH_VARIANTS: {e}");
                std::process::exit(2);
            }
        }
    }
    match run(&opts) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("regent-bench: {e}");
            std::process::exit(1);
        }
    }
}
