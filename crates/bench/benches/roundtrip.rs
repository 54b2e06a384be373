//! `cargo bench -p regent-bench`: the round-trip benchmark (see the crate README).
//!
//! Environment: `REGENT_BENCH_SECS` (measured seconds per figure, default 1),
//! `REGENT_BENCH_ROUNDS` (default 3), `REGENT_BENCH_VARIANTS` (our service's
//! configurations, default `daemon,off`: `daemon` is `regent serve`, the headline;
//! off|devnull the library service's audit log, then `:N` serving
//! threads as the daemon's `threads` key or `:mN` tokio's multi-threaded runtime
//! with N workers), `REGENT_BENCH_SERVER` (another build of
//! `regent-bench-server`, to compare), `REGENT_BENCH_DAEMON` (the `regent`
//! binary; by default target/release/regent: run `cargo build --release -p
//! regent-cli` first),
//! `REGENT_SHARED` (the shared/ directory), `REGENT_BENCH_PARTS` (what to run,
//! comma-separated: `roundtrip` (the Unix-socket figures), `tls` (TLS beside an
//! echo server), `augeas` (one sshd_config change through an `augeas`
//! operation beside `augtool`); default all three).

use regent_bench::{run, BenchOptions, Variant};
use std::path::{Path, PathBuf};
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

/// The `regent` binary: `$REGENT_BENCH_DAEMON`, else the release build beside
/// this program (`cargo build --release -p regent-cli` first: cargo cannot build
/// it from here while it holds the target directory for this bench).
fn daemon_program() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("REGENT_BENCH_DAEMON") {
        return Ok(p.into());
    }
    // This program is target/release/deps/roundtrip-HASH.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let program = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?
        .join("regent");
    if !program.is_file() {
        return Err(format!(
            "{} is missing: run `cargo build --release -p regent-cli` first",
            program.display()
        ));
    }
    Ok(program)
}

/// The parts to run: `$REGENT_BENCH_PARTS`, else all.
fn parts() -> (bool, bool, bool) {
    let Ok(list) = std::env::var("REGENT_BENCH_PARTS") else {
        return (true, true, true);
    };
    let (mut roundtrip, mut tls, mut augeas) = (false, false, false);
    for part in list.split(',').map(str::trim) {
        match part {
            "roundtrip" => roundtrip = true,
            "tls" => tls = true,
            "augeas" => augeas = true,
            other => {
                eprintln!(
                    "regent-bench: REGENT_BENCH_PARTS: roundtrip, tls or augeas, not {other:?}"
                );
                std::process::exit(2);
            }
        }
    }
    (roundtrip, tls, augeas)
}

fn main() {
    let (roundtrip, tls, augeas) = parts();
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
    let daemon_variant = opts
        .variants
        .iter()
        .any(|v| v.audit == regent_bench::AuditLog::Daemon);
    if tls || augeas || (roundtrip && daemon_variant) {
        match daemon_program() {
            Ok(p) => opts.daemon_program = Some(p),
            Err(e) => {
                eprintln!("regent-bench: {e} (or set REGENT_BENCH_DAEMON)");
                std::process::exit(1);
            }
        }
    }
    if roundtrip {
        match run(&opts) {
            Ok(report) => println!("{report}"),
            Err(e) => {
                eprintln!("regent-bench: {e}");
                std::process::exit(1);
            }
        }
    }
    if tls {
        match regent_bench::tls::run(&opts) {
            Ok(lines) => {
                if roundtrip {
                    println!();
                }
                for line in lines {
                    println!("{line}");
                }
            }
            Err(e) => {
                eprintln!("regent-bench: TLS: {e}");
                std::process::exit(1);
            }
        }
    }
    if augeas {
        match regent_bench::augeas::run(&opts) {
            Ok(lines) => {
                if roundtrip || tls {
                    println!();
                }
                for line in lines {
                    println!("{line}");
                }
            }
            Err(e) => {
                eprintln!("regent-bench: Augeas: {e}");
                std::process::exit(1);
            }
        }
    }
}
