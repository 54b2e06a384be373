//! `regent-module`: the process a module operation's work runs in. The daemon
//! starts it, under the operation's execution policy, from beside its own
//! binary (`regent-module` in the same directory, or
//! `../libexec/regent/regent-module`: see `regent::module::program`); nobody
//! else needs to. A binary of its own so that the daemon (`regent serve`)
//! neither links nor maps libaugeas and what it pulls in (libxml2, ICU,
//! libstdc++): none of that code is in the privileged daemon's address space.
//!
//! - `regent-module`: one request. Reads one [`regent::model::ModuleRequest`]
//!   (JSON) on stdin, dispatches on the plan's `module` (`augeas` to
//!   regent-augeas, the others to regent-modules), prints one JSON answer on
//!   stdout (`{"ok": ...}` or `{"error": {"code", "message"}}`) and exits 0 or 1.
//!   Service and package operations run this way, one process per request.
//! - `regent-module --augeas-worker LENS`: many requests, for one Augeas
//!   operation. Compiles the lens once ([`regent_augeas::Lens::compile`]: the
//!   costly part of a load), then reads requests on stdin, one JSON line each,
//!   and answers each with one line on stdout, in order, until end of input.
//!   Each request runs in a fork of this process ([`worker`]): it starts from
//!   the compiled lens and nothing else, and whatever it does (a crash in
//!   libaugeas included) ends with it; the worker stays as it was.
//!
//! **Boundaries.** Imports `regent` (for the model and `regent_exec::sys`'s
//! fork), `regent-modules` and `regent-augeas`; the `regent` binary imports
//! neither of the last two.
#![forbid(unsafe_code)]

use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use regent::exec::sys::{self, Forked};
use regent::model::{AugAction, ModulePlan, ModuleRequest};
use regent_augeas::Lens;
use regent_modules::ModuleError;
use serde_json::Value;

/// Carry out module operations' work (the daemon runs this; plans on stdin).
#[derive(clap::Parser)]
#[command(name = "regent-module", version, about)]
struct Args {
    /// Serve Augeas requests for LENS, one JSON line each, each in a fork of a
    /// process that compiled the lens once (the daemon starts one per Augeas
    /// operation).
    #[arg(long, value_name = "LENS")]
    augeas_worker: Option<String>,
    /// With `--augeas-worker`: the CPU limit of each request's process, in
    /// seconds (the operation's `limits.cpu`, which the daemon does not put on
    /// the long-lived worker itself: it would add up over all its requests).
    #[arg(long, value_name = "SECONDS", requires = "augeas_worker")]
    request_cpu: Option<u64>,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    if let Some(lens) = args.augeas_worker {
        return worker(&lens, args.request_cpu);
    }
    let answer = regent_modules::read_request(std::io::stdin().lock())
        .and_then(|request| dispatch(&request, None));
    ExitCode::from(regent_modules::write_answer(
        std::io::stdout().lock(),
        answer,
    ))
}

/// One request's work; `lens`: a compiled lens to load an Augeas plan's file
/// with, if it is the plan's.
fn dispatch(request: &ModuleRequest, lens: Option<Lens>) -> Result<Value, ModuleError> {
    if let ModulePlan::Augeas {
        lens: name,
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
        let lens = match lens {
            Some(l) if same_lens(l.name(), name) => Ok(l),
            _ => Lens::new(name, None),
        };
        return augeas(lens, file, actions, &opts);
    }
    regent_modules::run(request).unwrap_or_else(|| {
        Err(ModuleError::refused(format!(
            "no module '{}' in this build",
            request.plan.module()
        )))
    })
}

/// `Sshd` and `Sshd.lns` name the same lens.
fn same_lens(a: &str, b: &str) -> bool {
    a.strip_suffix(".lns").unwrap_or(a) == b.strip_suffix(".lns").unwrap_or(b)
}

/// An Augeas plan: its answer as JSON, or why not (`refused` when nothing was
/// attempted: a path or value outside the rules, a file that changed since its
/// diff was shown; `failed` otherwise).
fn augeas(
    lens: Result<Lens, regent_augeas::Error>,
    file: &str,
    actions: &[AugAction],
    opts: &regent_augeas::RunOptions,
) -> Result<Value, ModuleError> {
    match lens.and_then(|lens| regent_augeas::run_with(lens, file, actions, opts)) {
        Ok(answer) => serde_json::to_value(answer)
            .map_err(|e| ModuleError::failed(format!("encoding the answer: {e}"))),
        Err(e) => Err(match e.kind() {
            "declaration" | "path" | "value" | "changed" => ModuleError::refused(e.to_string()),
            _ => ModuleError::failed(e.to_string()),
        }),
    }
}

/// The largest answer a request's process may give (a `match` of a large file).
const MAX_ANSWER: u64 = 64 << 20;

/// `regent-module --augeas-worker LENS`: see the module's head.
///
/// The daemon sends a request only once the previous one is answered, and
/// stops the whole worker (its supervisor kills the tree) when a request
/// outlives its time limit: a hung request holds nothing but this worker.
fn worker(lens: &str, request_cpu: Option<u64>) -> ExitCode {
    // Long-lived, it holds the daemon's request stream (every caller's
    // values, secret ones too) and answers for them: not open to the other
    // processes of its user (`run_as`), which could otherwise trace it or read
    // its memory at leisure. Its forks inherit the flag.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("regent-module: cannot clear the dumpable flag: {e}");
        return ExitCode::FAILURE;
    }
    // A lens that does not compile is not fatal here: each request then starts
    // Augeas afresh and answers the error a one-shot `regent-module` would.
    let mut compiled = match Lens::new(lens, None).and_then(|mut l| l.compile().map(|()| l)) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("regent-module: {e}");
            None
        }
    };
    let mut input = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    loop {
        let mut line = Vec::new();
        let n = match (&mut input)
            .take(regent_modules::MAX_REQUEST + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(e) => {
                eprintln!("regent-module: reading a request: {e}");
                return ExitCode::FAILURE;
            }
        };
        if n == 0 {
            return ExitCode::SUCCESS;
        }
        if line.last() != Some(&b'\n') {
            // Too long, or cut short: answer, and stop (the stream is out of step).
            let e = ModuleError::refused("the request is too large or not one line");
            regent_modules::write_answer(&mut stdout, Err(e));
            return ExitCode::FAILURE;
        }
        let answer = in_child(lens, request_cpu, &mut compiled, &line);
        if stdout
            .write_all(&answer)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The daemon is gone.
            return ExitCode::FAILURE;
        }
    }
}

/// Runs one request line in a fork of this process, under `cpu` seconds of
/// CPU; its answer line (one is made up when the child gave none).
fn in_child(name: &str, cpu: Option<u64>, compiled: &mut Option<Lens>, line: &[u8]) -> Vec<u8> {
    let made_up = |e: ModuleError| {
        let mut out = Vec::new();
        regent_modules::write_answer(&mut out, Err(e));
        out
    };
    let (read, write) = match sys::pipe_cloexec() {
        Ok(p) => p,
        Err(e) => return made_up(ModuleError::failed(format!("cannot create a pipe: {e}"))),
    };
    // Its stderr, its own: what a request's process writes there is read for
    // its own failure's message, and never left in the worker's stderr, where
    // the daemon keeps the end for whichever request meets a dead worker next.
    // Never blocks the request's process: what the pipe cannot hold is lost.
    let (err_read, err_write) = match sys::pipe_cloexec().and_then(|(r, w)| {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(std::io::Error::from)?;
        Ok((r, w))
    }) {
        Ok(p) => p,
        Err(e) => return made_up(ModuleError::failed(format!("cannot create a pipe: {e}"))),
    };
    let pid = match sys::fork_single_threaded() {
        Err(e) => return made_up(ModuleError::failed(format!("cannot fork: {e}"))),
        Ok(Forked::Child) => {
            drop(read);
            drop(err_read);
            // This process's copy of the compiled lens: the worker keeps its own.
            let lens = compiled.take();
            let answer = confine_request(write.as_fd(), err_write.as_fd(), cpu)
                .and_then(|()| regent_modules::read_request(line));
            let answer = answer.and_then(|request| {
                // Nothing but what it was started for.
                match &request.plan {
                    ModulePlan::Augeas { lens: named, .. } if same_lens(name, named) => {
                        dispatch(&request, lens)
                    }
                    _ => Err(ModuleError::refused(format!(
                        "this worker runs Augeas plans with the lens {name} only"
                    ))),
                }
            });
            let status = regent_modules::write_answer(std::fs::File::from(write), answer);
            sys::exit_now(i32::from(status));
        }
        Ok(Forked::Parent(pid)) => pid,
    };
    drop(write);
    drop(err_write);
    let mut answer = Vec::new();
    let read_ok = std::fs::File::from(read)
        .take(MAX_ANSWER + 1)
        .read_to_end(&mut answer)
        .is_ok();
    let status = sys::wait_blocking(pid);
    let whole = read_ok
        && (answer.len() as u64) <= MAX_ANSWER
        && answer.last() == Some(&b'\n')
        && !answer[..answer.len() - 1].contains(&b'\n');
    if whole {
        return answer;
    }
    let how = match status.map(std::process::ExitStatus::from_raw) {
        Ok(s) => match (s.signal(), s.code()) {
            (Some(sig), _) => format!("killed by signal {sig}"),
            (None, Some(code)) => format!("exit status {code}"),
            (None, None) => s.to_string(),
        },
        Err(e) => format!("not reaped: {e}"),
    };
    // The process is gone: the pipe holds all that is left of its stderr.
    let mut err = Vec::new();
    let _ = std::fs::File::from(err_read)
        .take(STDERR_KEEP)
        .read_to_end(&mut err);
    let err = String::from_utf8_lossy(&err[err.len().saturating_sub(STDERR_TAIL)..]);
    let err = err.trim();
    made_up(ModuleError::failed(if err.is_empty() {
        format!("the request's process gave no answer ({how})")
    } else {
        format!("the request's process gave no answer ({how}): {err}")
    }))
}

/// How much of a request's process's stderr is read, and how much of its end
/// a failure's message carries.
const STDERR_KEEP: u64 = 64 << 10;
const STDERR_TAIL: usize = 2048;

/// What a request's process does first: its own CPU limit (soft, and the hard
/// one a second later, as the daemon sets them), and no access to the
/// worker's stdin and stdout, the daemon's request stream (a stray write there,
/// a library printing, would be read as this request's answer, and the real
/// one as the next request's): both become `answer`, this request's own pipe
/// (where a stray write spoils this answer only; a read fails). Not
/// `/dev/null`: a sandbox may not grant it. Its stderr becomes `stderr`.
fn confine_request(
    answer: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
    cpu: Option<u64>,
) -> Result<(), ModuleError> {
    use nix::sys::resource::{setrlimit, Resource};
    sys::dup_onto(answer, 0)
        .and_then(|()| sys::dup_onto(answer, 1))
        .and_then(|()| sys::dup_onto(stderr, 2))
        .map_err(|e| ModuleError::failed(format!("cannot detach the request's process: {e}")))?;
    if let Some(s) = cpu {
        setrlimit(Resource::RLIMIT_CPU, s, s.saturating_add(1))
            .map_err(|e| ModuleError::failed(format!("cannot limit the CPU time: {e}")))?;
    }
    Ok(())
}
