//! `regent check --config FILE`: validate a config and say what each operation
//! will run with, including which sandbox protections the running kernel gives it.

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
    // The same checks `serve` makes before it binds: the socket's directory and
    // the secret file (read and dropped; its mode must grant nothing to others).
    let s = &config.service;
    for socket in s.all_sockets() {
        if let Err(e) = regent::server::listener::check_socket_dir(&socket.path) {
            println!("{}: {e}", args.config.display());
            return ExitCode::from(crate::exit::INVALID);
        }
    }
    if let Err(e) = super::serve::load_secret(&config, false) {
        println!("{}: {e}", args.config.display());
        return ExitCode::from(crate::exit::INVALID);
    }
    println!("{}: OK", args.config.display());
    println!("socket {} (mode {:04o})", s.socket.display(), s.socket_mode);
    for socket in &s.sockets {
        let ops = socket.operations.as_deref().unwrap_or_default().join(", ");
        let admin = if socket.admin { "; admin" } else { "" };
        println!(
            "socket {} (mode {:04o}): {ops}{admin}",
            socket.path.display(),
            socket.mode
        );
    }
    match &s.secret_file {
        Some(p) => println!("secret from {}", p.display()),
        None => println!("no secret file (use --secret-stdin, or run without a secret)"),
    }
    let kernel = regent::exec::KernelSupport::current();
    println!("kernel: {}", kernel.summary());
    for (name, privilege) in described {
        let decl = &config.operations[&name];
        println!("operation {name}: {}", decl.description);
        match &decl.module {
            Some(module) => print_module(module, decl),
            None => println!("    runs: {}", decl.command),
        }
        println!("    privilege: {privilege}");
        // `describe` above resolved the same policy, so this cannot fail here.
        let policy = regent::daemon::exec_policy(decl).ok();
        if let Some(policy) = &policy {
            print_protections(policy, &kernel);
        }
        let runs_as = policy
            .and_then(|p| p.run_as)
            .and_then(|r| r.resolved())
            .map_or(0, |(uid, _)| uid);
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
            // TLS clients only when the operation names some.
            let clients = match allow.clients.is_empty() {
                true => String::new(),
                false => format!(" clients [{}]", allow.clients.join(", ")),
            };
            println!(
                "    callers: users [{}] groups [{}]{clients}",
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
            let stages: Vec<&str> = decl.auth.iter().map(|s| s.name()).collect();
            println!("    requires: {}", stages.join(" then "));
        }
    }
    ExitCode::SUCCESS
}

/// What a module operation may touch, and warnings about a declaration broader
/// than needed.
fn print_module(module: &regent::model::ModuleDecl, decl: &regent::config::OperationDecl) {
    use regent::config::Targets;
    use regent::model::ModuleDecl;
    let (what, kind) = match module {
        ModuleDecl::Service(s) => (format!("service {}", s.action.name()), "units"),
        ModuleDecl::Packages(p) => (format!("packages {}", p.action.name()), "packages"),
        ModuleDecl::Augeas(a) => {
            print_augeas(a, decl);
            return;
        }
    };
    println!("    runs: {what} in `regent-module` (a child process of the service)");
    for (template, targets) in regent::config::module_targets(decl) {
        match targets {
            Targets::Names(names) => println!("    {kind}: {}", names.join(", ")),
            Targets::Open(params) => {
                println!("    {kind}: any {template} its parameters allow");
                println!(
                    "    warning: {template}: {} {} not an enum: any value passing {} check may be named; list the {kind} with type = \"enum\"",
                    params.join(", "),
                    if params.len() == 1 { "is" } else { "are" },
                    if params.len() == 1 { "its" } else { "their" },
                );
            }
        }
    }
    let access = module.access();
    if access.keep_descendants {
        println!("    unconfined: what it starts keeps running after the run and would inherit a sandbox, limits or no_new_privs, so none applies (a timeout still stops the run's whole tree)");
    } else if !access.may_sandbox {
        println!("    confinement: no_new_privs and the run's tree stopped when it ends; no sandbox or limits (the module declares none)");
    }
}

/// What an Augeas operation may touch: its file and lens, each action's paths,
/// and warnings about paths broader than needed.
fn print_augeas(a: &regent::model::AugeasDecl, decl: &regent::config::OperationDecl) {
    use regent::config::ParamKind;
    use regent::model::augeas::{check_path, Mode, Slot};
    use regent::model::AugAction;
    // A changed path whose first step is a bare `*`, or filled by a parameter
    // that is not an enum, may name any top-level node.
    let open = |p: &str| -> Option<String> {
        if p == "*" || p.starts_with("*/") {
            return Some("its first step is * without a predicate".into());
        }
        let holes = check_path(p, Mode::Template).ok()?;
        let (name, slot) = holes.first()?;
        if *slot != Slot::Label || !p.starts_with(&format!("{{{name}}}")) {
            return None;
        }
        match decl.params.get(name).map(|s| &s.kind) {
            Some(ParamKind::Enum { .. }) => None,
            _ => Some("filled by a parameter that is not an enum".into()),
        }
    };
    println!("    runs: augeas in `regent-module` (a child process of the service)");
    println!("    file: {} (lens {}, no other)", a.file, a.lens);
    let mut wide = Vec::new();
    for action in &a.actions {
        let line = match action {
            AugAction::Get { path } | AugAction::Match { path } | AugAction::Remove { path } => {
                format!("{} {path}", action.name())
            }
            AugAction::Set { path, value } => format!("set {path} = {value}"),
            AugAction::Setm { base, sub, value } => format!("setm {base} {sub} = {value}"),
            AugAction::Insert {
                label,
                path,
                position,
            } => format!("insert {label} {position:?} {path}").to_lowercase(),
            AugAction::Move { path, to } => format!("move {path} to {to}"),
        };
        println_escaped!("    {line}");
        let paths: Vec<&str> = match action {
            AugAction::Get { path }
            | AugAction::Match { path }
            | AugAction::Remove { path }
            | AugAction::Set { path, .. }
            | AugAction::Insert { path, .. } => vec![path],
            AugAction::Setm { base, .. } => vec![base],
            AugAction::Move { path, to } => vec![path, to],
        };
        for p in paths.into_iter().filter(|_| action.changes()) {
            if let Some(why) = open(p) {
                wide.push(format!("{p}: {why}"));
            }
        }
    }
    for w in wide {
        println_escaped!(
            "    warning: {w}: it may change any top-level node of the file; name the node (a label, or an enum parameter)"
        );
    }
    if a.changes() && decl.auth.is_empty() {
        println!("    dry run: `regent call ... --dry-run` shows the diff");
    } else if a.changes() {
        println!("    dry run: its approvers see the diff in `regent pending` (none for the caller: it is held)");
    }
}

/// The sandbox's protections on this kernel, one per line, and what happens to a
/// run when one is missing.
fn print_protections(policy: &regent::exec::ExecPolicy, kernel: &regent::exec::KernelSupport) {
    let list = regent::exec::sandbox_protections(policy, kernel);
    if list.is_empty() {
        println!("    sandbox: none (no filesystem, metadata, socket, TCP or signal confinement)");
        return;
    }
    println!("    sandbox on this kernel:");
    for p in &list {
        println!("      {}", p.line());
    }
    let missing = list
        .iter()
        .filter(|p| matches!(p.state, regent::exec::ProtectionState::Missing { .. }))
        .count();
    if missing > 0 {
        println!(
            "      => {}",
            match policy.on_unsupported {
                regent::exec::OnUnsupported::Refuse =>
                    "every run is REFUSED on this kernel (on_unsupported = \"refuse\"; allow the feature in sandbox.allow or set on_unsupported = \"warn\")",
                regent::exec::OnUnsupported::Warn =>
                    "runs WITHOUT the missing protections, with a warning (on_unsupported = \"warn\")",
            }
        );
    }
}
