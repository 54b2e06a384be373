//! The semantic pass over the least-privilege keys of an operation: `run_as`,
//! `capabilities`, `sandbox`, `limits`, `on_unsupported`, `concurrency`, into the
//! model's [`ExecDecl`] (the type the executor's policy starts from).

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::context::{item, join, Reader};
use super::raw::{RawLimits, RawOperation, RawRunAs, RawSandbox, Scalar, Table, Who};
use regent_model::{
    Account, Capability, ExecDecl, OnUnsupported, ResourceLimits, RunAs, Sandbox, SandboxAllow,
};

/// Reads the execution policy of the operation `t` at key path `p`.
pub(super) fn read_exec(r: &mut Reader<'_>, t: &RawOperation, p: &str) -> ExecDecl {
    let at = |key: &str| join(p, key);
    let mut e = ExecDecl::default();
    if let Some(v) = &t.run_as {
        e.run_as = read_run_as(r, v, &at("run_as"));
    }
    if let Some(v) = &t.capabilities {
        let mut caps: Vec<Capability> = Vec::new();
        for (i, name) in v.get_ref().iter().enumerate() {
            let path = item(&at("capabilities"), i);
            match Capability::parse(name.get_ref()) {
                Ok(c) if caps.contains(&c) => {
                    r.err(name.span(), &path, format!("{c} is listed twice"));
                }
                Ok(c) => caps.push(c),
                Err(_) => r.err(
                    name.span(),
                    &path,
                    format!(
                        "unknown capability '{}' (expected a Linux capability such as CAP_NET_ADMIN)",
                        name.get_ref()
                    ),
                ),
            }
        }
        e.capabilities = Some(caps);
    }
    if let Some(v) = &t.sandbox {
        e.sandbox = read_sandbox(r, v, &at("sandbox"));
    }
    if let Some(v) = &t.limits {
        e.limits = read_limits(r, v.get_ref(), &at("limits"));
    }
    if let Some(v) = &t.on_unsupported {
        let choices = OnUnsupported::ALL.map(|o| (o.name(), o));
        e.on_unsupported = r
            .choice(v, &at("on_unsupported"), &choices)
            .unwrap_or_default();
    }
    if let Some(v) = &t.concurrency {
        e.concurrency = r.int_in(v, &at("concurrency"), 1, 1_000_000);
    }
    e
}

fn read_limits(r: &mut Reader<'_>, t: &RawLimits, p: &str) -> ResourceLimits {
    let at = |key: &str| join(p, key);
    ResourceLimits {
        cpu: t
            .cpu
            .as_ref()
            .and_then(|v| r.duration(v, &at("cpu"), Duration::from_secs(1))),
        memory: t
            .memory
            .as_ref()
            .and_then(|v| r.size(v, &at("memory"), 1 << 20)),
        open_files: t
            .open_files
            .as_ref()
            .and_then(|v| r.int_in(v, &at("open_files"), 1, 1 << 30)),
        processes: t
            .processes
            .as_ref()
            .and_then(|v| r.int_in(v, &at("processes"), 1, 1 << 30)),
    }
}

fn read_run_as(r: &mut Reader<'_>, v: &Spanned<RawRunAs>, p: &str) -> Option<RunAs> {
    match v.get_ref() {
        RawRunAs::Text(s) => {
            let (u, g) = match s.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (s.as_str(), None),
            };
            let user = Account::parse(u).map_err(|e| r.err(v.span(), p, e)).ok();
            let group = match g {
                Some(g) => Some(Account::parse(g).map_err(|e| r.err(v.span(), p, e)).ok()?),
                None => None,
            };
            Some(RunAs { user: user?, group })
        }
        RawRunAs::Id(n) => Some(RunAs {
            user: r.principal(&Spanned::new(v.span(), Who(Scalar::Int(*n))), p)?,
            group: None,
        }),
        RawRunAs::Table(t) => {
            let user = match &t.user {
                Some(u) => r.principal(u, &join(p, "user")),
                None => {
                    let span = r.key_span(v);
                    r.missing(span, p, "user");
                    None
                }
            };
            let group = t
                .group
                .as_ref()
                .and_then(|g| r.principal(g, &join(p, "group")));
            Some(RunAs { user: user?, group })
        }
    }
}

fn read_sandbox(r: &mut Reader<'_>, v: &Spanned<Table<RawSandbox>>, p: &str) -> Option<Sandbox> {
    let t = v.get_ref();
    let mut paths = |list: &Option<Spanned<Vec<Spanned<String>>>>, key: &str| -> Vec<PathBuf> {
        let path = join(p, key);
        list.iter()
            .flat_map(|l| l.get_ref().iter().enumerate())
            .filter_map(|(i, d)| r.abs_path(d, &item(&path, i)))
            .collect()
    };
    let read = paths(&t.read, "read");
    let write = paths(&t.write, "write");
    let mut allow = SandboxAllow::default();
    for (i, name) in t.allow.iter().flat_map(|l| l.get_ref()).enumerate() {
        let (path, n) = (item(&join(p, "allow"), i), name.get_ref());
        if !SandboxAllow::NAMES.contains(&n.as_str()) {
            r.err(
                name.span(),
                &path,
                format!(
                    "unknown sandbox opt-in '{}' (expected one of: {})",
                    n.escape_debug(),
                    SandboxAllow::NAMES.join(", ")
                ),
            );
        } else if allow.names().contains(&n.as_str()) {
            r.err(name.span(), &path, format!("{n} is listed twice"));
        } else {
            allow.set(n);
        }
    }
    // A list with a refused element is not empty: it was reported already.
    let refused = ["read", "write"]
        .iter()
        .any(|k| r.failed_items.contains(&join(p, k)));
    if read.is_empty() && write.is_empty() && !refused {
        r.err(
            v.span(),
            p,
            "a sandbox with no read or write paths would deny everything (even loading the program)",
        );
        return None;
    }
    Some(Sandbox { read, write, allow })
}
