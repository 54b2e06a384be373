//! `regent check --config FILE`: validate a config and say what each operation
//! will run with.

use std::path::PathBuf;
use std::process::ExitCode;

/// `regent check`.
#[derive(clap::Args)]
pub struct Args {
    /// The TOML config.
    #[arg(long, short = 'c', default_value = "/etc/regent/regent.toml")]
    pub config: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    let config = match regent::config::load(&args.config) {
        Ok(c) => c,
        Err(diags) => {
            println!("{diags}");
            println!("{}: {} error(s)", args.config.display(), diags.0.len());
            return ExitCode::from(crate::exit::INVALID);
        }
    };
    // Resolving users, groups and capabilities needs the system: do it as the
    // daemon would, so that `check` passing means `serve` starts.
    let described = match regent::daemon::describe(&config) {
        Ok(d) => d,
        Err(e) => {
            println!("{}: {e}", args.config.display());
            return ExitCode::from(crate::exit::INVALID);
        }
    };
    let s = &config.service;
    println!("{}: OK", args.config.display());
    println!("socket {} (mode {:04o})", s.socket.display(), s.socket_mode);
    match &s.secret_file {
        Some(p) => println!("secret from {}", p.display()),
        None => println!("no secret file (use --secret-stdin, or run without a secret)"),
    }
    for (name, privilege) in described {
        let decl = &config.operations[&name];
        println!("operation {name}: {}", decl.description);
        println!("    runs: {}", decl.command);
        println!("    privilege: {privilege}");
        let runs_as = regent::daemon::exec_policy(&name, decl)
            .ok()
            .and_then(|p| p.run_as)
            .map_or(0, |r| r.uid);
        for (param, spec) in &decl.params {
            if let regent::config::ParamKind::Path {
                under,
                must_exist,
                access,
            } = &spec.kind
            {
                println!(
                    "    path {param}: opened for {access}{} beneath {} by the command's process (no symlinks), passed as /proc/self/fd/N",
                    if *must_exist { "" } else { " (created if missing)" },
                    under
                        .as_deref()
                        .unwrap_or(std::path::Path::new("/"))
                        .display()
                );
                if let Some(why) = under
                    .as_deref()
                    .and_then(|u| regent::exec::untrusted_directory(u, runs_as))
                {
                    println!("    warning: path {param}: every call will be refused: {why}");
                }
            }
        }
        if let Some(allow) = &decl.allow {
            let users: Vec<String> = allow.users.iter().map(|p| p.to_string()).collect();
            let groups: Vec<String> = allow.groups.iter().map(|p| p.to_string()).collect();
            println!(
                "    callers: users [{}] groups [{}]",
                users.join(", "),
                groups.join(", ")
            );
        } else {
            println!(
                "    callers: anyone who can open the socket{}",
                if s.secret_file.is_some() {
                    " and holds the secret"
                } else {
                    ""
                }
            );
        }
        if !decl.auth.is_empty() {
            println!("    requires: {}", decl.auth.join(" then "));
        }
    }
    ExitCode::SUCCESS
}
