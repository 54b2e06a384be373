//! Reading the least-privilege keys of an operation: `run_as`, `capabilities`,
//! `sandbox`, `limits`, `on_unsupported`, `concurrency`.

use super::*;

const RUN_AS_KEYS: &[&str] = &["user", "group"];

const SANDBOX_KEYS: &[&str] = &["read", "write", "allow"];

/// The families `sandbox.allow` may name (`regent_exec::SandboxAllow::NAMES`).
const SANDBOX_ALLOW: &[&str] = &["metadata", "unix", "tcp", "signals"];

const LIMITS_KEYS: &[&str] = &["cpu", "memory", "open_files", "processes"];

pub(super) fn read_exec(r: &mut Reader<'_>, t: &Tbl<'_, '_>) -> ExecDecl {
    let mut e = ExecDecl::default();
    if let Some(f) = t.get("run_as") {
        e.run_as = read_run_as(r, &f);
    }
    if let Some(f) = t.get("capabilities") {
        let mut caps: Vec<Capability> = Vec::new();
        for (name, item) in r.strings(&f).unwrap_or_default() {
            match Capability::parse(&name) {
                Ok(c) if caps.contains(&c) => {
                    r.err(item.span(), &item.path, format!("{c} is listed twice"));
                }
                Ok(c) => caps.push(c),
                Err(_) => r.err(
                    item.span(),
                    &item.path,
                    format!("unknown capability '{name}' (expected a Linux capability such as CAP_NET_ADMIN)"),
                ),
            }
        }
        e.capabilities = Some(caps);
    }
    if let Some(f) = t.get("sandbox") {
        e.sandbox = read_sandbox(r, &f);
    }
    if let Some(f) = t.get("limits") {
        if let Some(lt) = r.table(&f, LIMITS_KEYS) {
            if let Some(f) = lt.get("cpu") {
                e.limits.cpu = r.duration(&f, Duration::from_secs(1));
            }
            if let Some(f) = lt.get("memory") {
                e.limits.memory = r.size(&f, 1 << 20);
            }
            if let Some(f) = lt.get("open_files") {
                e.limits.open_files = r.int_in(&f, 1, 1 << 30);
            }
            if let Some(f) = lt.get("processes") {
                e.limits.processes = r.int_in(&f, 1, 1 << 30);
            }
            lt.finish(r);
        }
    }
    if let Some(f) = t.get("on_unsupported") {
        e.on_unsupported = r
            .choice(
                &f,
                &[
                    ("refuse", OnUnsupported::Refuse),
                    ("warn", OnUnsupported::Warn),
                ],
            )
            .unwrap_or_default();
    }
    if let Some(f) = t.get("concurrency") {
        e.concurrency = r.int_in(&f, 1, 1_000_000);
    }
    e
}

fn read_run_as(r: &mut Reader<'_>, f: &Field<'_, '_>) -> Option<RunAs> {
    match f.value() {
        DeValue::String(s) => {
            let (u, g) = match s.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (s.as_ref(), None),
            };
            let user = Account::parse(u)
                .map_err(|e| r.err(f.span(), &f.path, e))
                .ok();
            let group = match g {
                Some(g) => Some(
                    Account::parse(g)
                        .map_err(|e| r.err(f.span(), &f.path, e))
                        .ok()?,
                ),
                None => None,
            };
            Some(RunAs { user: user?, group })
        }
        DeValue::Integer(_) => Some(RunAs {
            user: r.principal(f)?,
            group: None,
        }),
        DeValue::Table(_) => {
            let t = r.table(f, RUN_AS_KEYS)?;
            let user = match t.get("user") {
                Some(f) => r.principal(&f),
                None => {
                    missing(r, &t, "user");
                    None
                }
            };
            let group = t.get("group").and_then(|f| r.principal(&f));
            t.finish(r);
            Some(RunAs { user: user?, group })
        }
        _ => {
            r.wrong_type(f, "\"user\", \"user:group\", a uid or { user, group }");
            None
        }
    }
}

fn read_sandbox(r: &mut Reader<'_>, f: &Field<'_, '_>) -> Option<SandboxDecl> {
    let t = r.table(f, SANDBOX_KEYS)?;
    let paths = |r: &mut Reader<'_>, key: &str| -> Vec<PathBuf> {
        let Some(f) = t.get(key) else {
            return Vec::new();
        };
        let Some(items) = r.array(&f) else {
            return Vec::new();
        };
        items.iter().filter_map(|i| r.abs_path(i)).collect()
    };
    let read = paths(r, "read");
    let write = paths(r, "write");
    let mut allow: Vec<String> = Vec::new();
    if let Some(f) = t.get("allow") {
        for (name, item) in r.strings(&f).unwrap_or_default() {
            if !SANDBOX_ALLOW.contains(&name.as_str()) {
                r.err(
                    item.span(),
                    &item.path,
                    format!(
                        "unknown sandbox opt-in '{}' (expected one of: {})",
                        name.escape_debug(),
                        SANDBOX_ALLOW.join(", ")
                    ),
                );
            } else if allow.contains(&name) {
                r.err(item.span(), &item.path, format!("{name} is listed twice"));
            } else {
                allow.push(name);
            }
        }
    }
    t.finish(r);
    if read.is_empty() && write.is_empty() {
        r.err(
            f.span(),
            &f.path,
            "a sandbox with no read or write paths would deny everything (even loading the program)",
        );
        return None;
    }
    Some(SandboxDecl { read, write, allow })
}
