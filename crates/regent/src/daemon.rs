//! The daemon face: turn a validated TOML [`Config`] into a running [`Service`].
//!
//! Everything that needs the system (user and group ids, capability names against
//! this kernel) is resolved here, once, at start-up: a config that names a missing
//! user fails to start instead of failing on the first request.

use crate::command::CommandOperation;
use crate::error::Error;
use crate::policy::AllowRule;
use crate::registry::{OpOptions, Registry};
use crate::server::{Exposure, Limits, ServiceBuilder, SharedSecret, SocketEntry, SocketOptions};
use crate::Service;
use nix::unistd::{Group, Uid, User};
use regent_config::{Config, OperationDecl};
use regent_exec::{Capability, ExecPolicy};
use regent_model::{Account, RunAs};
use std::sync::Arc;

/// Resolve a user to (uid, primary gid).
pub fn resolve_user(p: &Account) -> Result<(u32, u32), Error> {
    let user = match p {
        Account::Name(n) => User::from_name(n),
        Account::Id(id) => User::from_uid(Uid::from_raw(*id)),
    }
    .map_err(|e| Error::Config(format!("looking up user {p}: {e}")))?;
    match (user, p) {
        (Some(u), _) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        // A numeric uid without a passwd entry is allowed; its group must be given.
        (None, Account::Id(id)) => Ok((*id, *id)),
        (None, Account::Name(n)) => Err(Error::Config(format!("no such user: {n}"))),
    }
}

/// Resolve a group to its gid.
pub fn resolve_group(p: &Account) -> Result<u32, Error> {
    match p {
        Account::Id(id) => Ok(*id),
        Account::Name(n) => Group::from_name(n)
            .map_err(|e| Error::Config(format!("looking up group {n}: {e}")))?
            .map(|g| g.gid.as_raw())
            .ok_or_else(|| Error::Config(format!("no such group: {n}"))),
    }
}

/// Resolve a declared `run_as` to ids (the user's primary group when it names none).
pub fn resolve_run_as(r: &RunAs) -> Result<RunAs, Error> {
    let (uid, primary) = resolve_user(&r.user)?;
    let gid = match &r.group {
        Some(g) => resolve_group(g)?,
        None => primary,
    };
    Ok(RunAs::ids(uid, gid))
}

/// The execution policy an operation's declaration asks for: its declared
/// [`ExecDecl`](regent_model::ExecDecl) as the executor takes it, with `run_as`
/// resolved to ids, and the operation's `timeout` and `max_output`.
///
/// A module operation runs under what its module needs
/// ([`ModuleDecl::access`](regent_model::ModuleDecl::access)): its
/// capabilities when the operation declares none, its allowances (and the
/// service's own binary) added to a declared sandbox; a module that may not
/// be sandboxed runs without sandbox and limits, and one whose work outlives
/// it (a started service) without `no_new_privs`, keeping its descendants
/// ([`ExecPolicy::keep_descendants`]).
pub fn exec_policy(decl: &OperationDecl) -> Result<ExecPolicy, Error> {
    let mut policy = ExecPolicy {
        timeout: decl.timeout,
        max_output: decl.max_output,
        run_as: decl.exec.run_as.as_ref().map(resolve_run_as).transpose()?,
        ..ExecPolicy::declared(&decl.exec)
    };
    if let Some(module) = &decl.module {
        let access = module.access();
        policy.capabilities = effective_capabilities(decl);
        policy.keep_descendants = access.keep_descendants;
        if access.may_sandbox {
            if let Some(sandbox) = &mut policy.sandbox {
                let program = crate::module::program().map_err(Error::Config)?;
                sandbox.read.push(program.to_path_buf());
                sandbox.read.extend(access.read.iter().cloned());
                sandbox.write.extend(access.write.iter().cloned());
                for name in access.allow.names() {
                    sandbox.allow.set(name);
                }
            }
        } else {
            // What it starts inherits these: none applies.
            policy.sandbox = None;
            policy.limits = regent_model::ResourceLimits::default();
        }
        // What outlives the run would inherit it too.
        policy.no_new_privs = !access.keep_descendants;
    }
    Ok(policy)
}

/// The capabilities an operation runs with: its declared ones, else (for a
/// module operation) what its module needs; `None`: the service's own.
pub fn effective_capabilities(decl: &OperationDecl) -> Option<Vec<Capability>> {
    match (&decl.exec.capabilities, &decl.module) {
        (Some(caps), _) => Some(caps.clone()),
        (None, Some(module)) => module.access().capabilities,
        (None, None) => None,
    }
}

/// The options (policy, limits, stages) an operation's declaration asks for.
pub fn op_options(decl: &OperationDecl) -> OpOptions {
    OpOptions {
        allow: decl.allow.as_ref().map(AllowRule::from),
        // The command's own timeout is enforced by the executor, which stops the
        // process tree; the outer limit leaves room for the kill grace.
        timeout: decl.timeout + std::time::Duration::from_secs(5),
        concurrency: decl.exec.concurrency,
        pending_ttl: decl.pending_ttl,
        max_attempts: decl.max_attempts,
        max_pending_per_uid: decl.max_pending_per_uid,
        approvers: decl.approvers.clone(),
        auth: decl.auth.clone(),
        approve: decl.approve.as_ref().map(AllowRule::from),
    }
}

/// The digest of an operation's validated declaration, as a held request keeps
/// it: SHA-256 of a canonical text of everything that decides what runs and who
/// may run or approve it (the command template, parameters, `run_as`,
/// capabilities, sandbox, limits, `allow`/`approve`, stages, time limits) and
/// the `command_path` bare names resolve against. Only the description is left
/// out. The text is the declaration's `Debug` rendering (fields in declaration
/// order, maps sorted): the same for the same declaration in this build.
pub fn declaration_digest(decl: &OperationDecl, command_path: &str) -> String {
    let mut decl = decl.clone();
    decl.description = String::new();
    let canonical = format!("regent-declaration-1\n{command_path:?}\n{decl:?}");
    regent_auth::store::declaration_digest(canonical.as_bytes())
}

/// Build the registry of command operations a config declares, each with its
/// [`declaration_digest`].
pub fn registry(config: &Config) -> Result<Registry, Error> {
    let mut registry = Registry::new();
    if config.operations.values().any(|d| d.module.is_some()) {
        // Resolved once, now: module work runs in this binary.
        crate::module::program().map_err(Error::Config)?;
    }
    for (name, decl) in &config.operations {
        let digest = declaration_digest(decl, &config.service.command_path);
        let mut policy = exec_policy(decl)?;
        // The configured PATH: what bare names are resolved against and what the
        // command runs with.
        policy.command_path = config.service.command_path.clone();
        let op = CommandOperation::new(name, decl.clone(), policy);
        registry.register_declared(name, Arc::new(op), op_options(decl), digest)?;
    }
    Ok(registry)
}

/// The connection limits a config declares.
pub fn limits(config: &Config) -> Limits {
    config.service.limits()
}

/// Build a service from a config and its secret (read by the caller from
/// `secret_file` or stdin).
pub fn service(config: &Config, secret: Option<SharedSecret>) -> Result<Service, Error> {
    service_with(config, secret, None)
}

/// [`service`], with fields the daemon adds to `regent.status` (see
/// [`crate::server::ServiceBuilder::status_extra`]).
pub fn service_with(
    config: &Config,
    secret: Option<SharedSecret>,
    status_extra: Option<crate::server::StatusExtra>,
) -> Result<Service, Error> {
    let mut b = builder(config, secret)?;
    if let Some(extra) = status_extra {
        b = b.status_extra(extra);
    }
    b.build()
}

/// The builder of the service a config describes (what [`service`] builds, and
/// what a reload applies: see [`crate::reload`]).
pub fn builder(config: &Config, secret: Option<SharedSecret>) -> Result<ServiceBuilder, Error> {
    let s = &config.service;
    let owner = s
        .socket_owner
        .as_ref()
        .map(resolve_user)
        .transpose()?
        .map(|(uid, _)| uid);
    let group = s.socket_group.as_ref().map(resolve_group).transpose()?;
    let mut b = Service::builder(&s.socket)
        .mode(s.socket_mode)
        .owner(owner, group)
        .limits(limits(config))
        .registry(registry(config)?)
        .allow_self_approval(s.allow_self_approval)
        .pending_caps(s.max_pending, s.max_pending_per_uid);
    for d in &s.sockets {
        b = b.socket(socket_entry(d)?);
    }
    if let Some(secret) = secret {
        b = b.secret(secret);
    }
    if let Some(g) = &s.admin_group {
        b = b.admin_group(g.clone());
    }
    b = b.admin_clients(s.admin_clients.clone());
    if let Some(t) = &s.tcp {
        b = b.tls(t.clone());
    }
    if let Some(smtp) = &s.smtp {
        b = b.smtp_with_timeout(smtp_config(smtp), smtp.timeout);
    }
    if config.operations.values().any(|d| !d.auth.is_empty()) {
        b = b.pending_store(&s.store);
    }
    Ok(b)
}

/// A `[[service.sockets]]` entry as the service serves it.
pub fn socket_entry(d: &regent_config::SocketDecl) -> Result<SocketEntry, Error> {
    let mut options = SocketOptions::new(&d.path);
    options.mode = d.mode;
    options.owner = d
        .owner
        .as_ref()
        .map(resolve_user)
        .transpose()?
        .map(|(uid, _)| uid);
    options.group = d.group.as_ref().map(resolve_group).transpose()?;
    let exposure = match &d.operations {
        Some(ops) => Exposure::only(ops.iter().cloned(), d.admin),
        None => Exposure::everything(),
    };
    Ok(SocketEntry::new(options, exposure))
}

/// The mailer's settings from the config's `[service.smtp]`.
pub fn smtp_config(d: &regent_config::SmtpDecl) -> regent_auth::SmtpConfig {
    regent_auth::SmtpConfig {
        host: d.host.clone(),
        port: d.port,
        security: d.security,
        credentials_file: d.credentials_file.clone(),
        from: d.from.clone(),
    }
}

/// One line per operation: the privilege it will run with (for `regent check`).
pub fn describe(config: &Config) -> Result<Vec<(String, String)>, Error> {
    config
        .operations
        .iter()
        .map(|(name, decl)| Ok((name.clone(), regent_exec::describe(&exec_policy(decl)?))))
        .collect()
}

/// The capabilities the daemon must keep for its operations, or `None` when some
/// operation inherits the service's privilege (declares no `capabilities`), in
/// which case nothing can be dropped.
///
/// Besides the union of the operations' capabilities it keeps `CAP_SETPCAP` (a
/// command's bounding set is reduced in the child), `CAP_KILL` (to stop a timed-out
/// tree running as another user), and `CAP_SETUID`/`CAP_SETGID` when an operation
/// runs as another user.
pub fn needed_capabilities(config: &Config) -> Result<Option<Vec<Capability>>, Error> {
    let mut keep: Vec<Capability> = vec![Capability::SETPCAP, Capability::KILL];
    for decl in config.operations.values() {
        let Some(caps) = effective_capabilities(decl) else {
            return Ok(None);
        };
        for cap in caps {
            if !keep.contains(&cap) {
                keep.push(cap);
            }
        }
        if decl.exec.run_as.is_some() {
            for cap in [Capability::SETUID, Capability::SETGID] {
                if !keep.contains(&cap) {
                    keep.push(cap);
                }
            }
        }
    }
    keep.sort_by_key(|c| c.number());
    Ok(Some(keep))
}

/// Drop every capability no configured operation needs, from the effective,
/// permitted, inheritable and bounding sets of this process. Call after binding
/// the socket and opening the store, and before any other thread starts:
/// capabilities belong to threads, so a multi-threaded process is refused.
/// Returns what was kept, for the log.
pub fn drop_service_privileges(config: &Config) -> Result<String, Error> {
    let Some(keep) = needed_capabilities(config)? else {
        let inheriting: Vec<&str> = config
            .operations
            .iter()
            .filter(|(_, d)| effective_capabilities(d).is_none())
            .map(|(n, _)| n.as_str())
            .collect();
        return Ok(format!(
            "keeping the service's full privilege: operation(s) {} declare no `capabilities`",
            inheriting.join(", ")
        ));
    };
    match regent_exec::sys::thread_count() {
        Ok(1) => {}
        Ok(n) => {
            return Err(Error::Unsafe(format!(
                "cannot drop capabilities with {n} threads running"
            )))
        }
        Err(e) => return Err(Error::io("counting threads", e)),
    }
    let held = regent_exec::sys::capget().map_err(|e| Error::io("reading capabilities", e))?;
    let keep: Vec<Capability> = keep
        .into_iter()
        .filter(|c| held.permitted & c.bit() != 0)
        .collect();
    let policy = ExecPolicy {
        capabilities: Some(keep.clone()),
        no_new_privs: false,
        ..ExecPolicy::default()
    };
    let confinement = regent_exec::Confinement::prepare(&policy)
        .map_err(|e| Error::Unsafe(format!("preparing to drop capabilities: {e}")))?;
    confinement.apply().map_err(|f| {
        Error::io(
            format!("dropping capabilities at {}", f.step.as_str()),
            std::io::Error::from_raw_os_error(f.errno),
        )
    })?;
    let names: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    Ok(format!(
        "kept only {}",
        if names.is_empty() {
            "no capabilities".into()
        } else {
            names.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[operations.x]
description = "x"
command = ["/bin/true"]
run_as = "root"
capabilities = ["net_admin"]
"#;

    #[test]
    fn the_defaults_are_written_once() {
        let config = regent_config::parse(CONFIG, "t.toml").unwrap();
        assert_eq!(limits(&config), Limits::default());
        assert_eq!(Limits::default().max_line, regent_proto::DEFAULT_MAX_LINE);
    }

    #[test]
    fn the_declaration_is_what_runs() {
        let config = regent_config::parse(CONFIG, "t.toml").unwrap();
        let policy = exec_policy(&config.operations["x"]).unwrap();
        assert_eq!(policy.run_as, Some(RunAs::ids(0, 0)));
        assert_eq!(policy.capabilities, Some(vec![Capability::NET_ADMIN]));
        let keep = needed_capabilities(&config).unwrap().unwrap();
        for cap in [Capability::NET_ADMIN, Capability::SETUID, Capability::KILL] {
            assert!(keep.contains(&cap), "{cap} kept");
        }
    }

    #[test]
    fn a_module_operation_runs_unconfined_and_its_declaration_is_digested() {
        let op = |action: &str| {
            let text = format!(
                "[operations.s]\ndescription = \"s\"\nservice = {{ unit = \"{{u}}\", action = \"{action}\" }}\nparams.u = {{ type = \"enum\", values = [\"a\"] }}\n"
            );
            regent_config::parse(&text, "t.toml").unwrap().operations["s"].clone()
        };
        let (start, stop) = (op("start"), op("stop"));
        assert_ne!(
            declaration_digest(&start, "/bin"),
            declaration_digest(&stop, "/bin")
        );
        let policy = exec_policy(&start).unwrap();
        assert!(policy.keep_descendants && !policy.no_new_privs);
        assert_eq!((policy.capabilities, policy.sandbox), (None, None));
        // A status starts nothing: no_new_privs, and its tree stopped.
        let policy = exec_policy(&op("status")).unwrap();
        assert!(!policy.keep_descendants && policy.no_new_privs);
    }

    #[test]
    fn the_sandbox_and_limits_run_as_declared() {
        let text = format!(
            "{CONFIG}{}",
            r#"sandbox = { read = ["/usr"], write = ["/tmp"], allow = ["signals", "tcp"] }
limits = { cpu = "1500ms", memory = "64M", open_files = 32 }
on_unsupported = "warn"
timeout = "7s"
"#
        );
        let config = regent_config::parse(&text, "t.toml").unwrap();
        let decl = &config.operations["x"];
        let policy = exec_policy(decl).unwrap();
        let sandbox = policy.sandbox.as_ref().unwrap();
        assert_eq!(Some(sandbox), decl.exec.sandbox.as_ref());
        assert_eq!(sandbox.allow.names(), ["tcp", "signals"]);
        assert_eq!(sandbox.write, [std::path::PathBuf::from("/tmp")]);
        assert_eq!(policy.limits, decl.exec.limits);
        assert_eq!(policy.limits.cpu_seconds(), Some(1));
        assert_eq!(policy.limits.memory, Some(64 << 20));
        assert_eq!(policy.on_unsupported, regent_model::OnUnsupported::Warn);
        assert_eq!(policy.timeout, std::time::Duration::from_secs(7));
        assert!(regent_exec::describe(&policy).contains("allow [tcp, signals]"));
    }
}
