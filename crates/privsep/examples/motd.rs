//! Writing the message of the day through a narrow privileged entrypoint.
//!
//! Run as root: `cargo run -p regent-privsep --example motd -- [PATH] [MESSAGE]`
//! (PATH defaults to /etc/motd). The program forks a helper that runs as `nobody`
//! holding only `CAP_DAC_OVERRIDE`, drops itself to `nobody` with no capability,
//! shows that it can no longer write PATH itself, and writes it through the helper.
//! The entrypoint is narrow: the caller chooses the message, never the file.

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use regent_privsep::{drop_privileges, entrypoints, helper_main, Context, Start};

const NOBODY: u32 = 65534;

static MOTD: Context = Context::new("motd")
    .capabilities(&["CAP_DAC_OVERRIDE"])
    .run_as(NOBODY, NOBODY)
    .timeout(Duration::from_secs(5));

/// Fixed before the helper starts; the unprivileged caller cannot change it.
static MOTD_PATH: OnceLock<String> = OnceLock::new();

entrypoints! {
    context: MOTD;
    registry: static MOTD_ENTRYPOINTS;
    /// Replace the message of the day (at most 4 KiB of printable text).
    fn update_motd(message: String) -> Result<(), String> {
        if message.len() > 4096 {
            return Err("message too long".into());
        }
        if message.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err("message has control characters".into());
        }
        let path = MOTD_PATH.get().ok_or("no motd path")?;
        std::fs::write(path, message).map_err(|e| format!("cannot write {path}: {e}"))
    }
}

fn main() -> ExitCode {
    helper_main(&[&MOTD_ENTRYPOINTS]);
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/etc/motd".into());
    let message = args
        .next()
        .unwrap_or_else(|| "Welcome. This file was written by a privileged helper.\n".into());
    let _ = MOTD_PATH.set(path.clone());

    let helper = match MOTD_ENTRYPOINTS.start(Start::Fork) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("cannot start the helper (run as root): {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = drop_privileges(NOBODY, NOBODY) {
        eprintln!("cannot drop privileges: {e}");
        return ExitCode::FAILURE;
    }
    println!("main process now runs as nobody without capabilities; helper pid {helper}");
    match std::fs::OpenOptions::new().append(true).open(&path) {
        Ok(_) => println!("note: {path} is writable by nobody anyway"),
        Err(e) => println!("main process cannot open {path} for writing: {e}"),
    }
    match update_motd(message) {
        Ok(Ok(())) => {
            println!("wrote {path} through the motd helper");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("the helper refused: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("privileged call failed: {e}");
            ExitCode::FAILURE
        }
    }
}
