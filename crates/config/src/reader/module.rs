//! The semantic pass over a module operation's declaration (`service = {...}`,
//! `packages = {...}`; `augeas = {...}` is read by [`super::augeas`]): exactly one of `command` and the modules, each name
//! template filled only by declared, non-secret, non-path parameters, and the
//! keys the module's access rules out.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::context::{item, join, Reader};
use super::raw::{List, RawOperation, RawPackages, RawServiceModule, Table};
use crate::param::{ParamKind, ParamSpec};
use crate::template::{Placeholder, Template};
use regent_model::{
    ModuleDecl, PackagesAction, PackagesDecl, ServiceAction, ServiceBackend, ServiceDecl,
};

/// The keys an operation takes exactly one of: `command` and each module.
pub(super) const ACTION_KEYS: [&str; 4] = ["command", "service", "packages", "augeas"];

/// Which of [`ACTION_KEYS`] the operation at `p` sets, checking it sets exactly
/// one; `None` after reporting the problem.
pub(super) fn action_key(
    r: &mut Reader<'_>,
    t: &RawOperation,
    p: &str,
    name_span: Range<usize>,
) -> Option<&'static str> {
    let spans = [
        r.key_of(&t.command, &join(p, "command")),
        r.key_of(&t.service, &join(p, "service")),
        r.key_of(&t.packages, &join(p, "packages")),
        r.key_of(&t.augeas, &join(p, "augeas")),
    ];
    let set: Vec<(&str, Range<usize>)> = ACTION_KEYS
        .iter()
        .zip(spans)
        .filter_map(|(k, s)| s.map(|s| (*k, s)))
        .collect();
    match set.as_slice() {
        [] => {
            r.missing(name_span, p, "command");
            None
        }
        [(key, _)] => Some(key),
        [(first, _), rest @ ..] => {
            for (key, span) in rest {
                r.err(
                    span.clone(),
                    &join(p, key),
                    format!(
                        "an operation has exactly one of {} ('{first}' is set too)",
                        ACTION_KEYS.join(", ")
                    ),
                );
            }
            None
        }
    }
}

/// Reads the module the operation at `p` declares (`key` is one of the
/// modules of [`ACTION_KEYS`]), marking the parameters its templates use.
pub(super) fn read_module(
    r: &mut Reader<'_>,
    t: &RawOperation,
    p: &str,
    declared: &BTreeMap<String, Range<usize>>,
    params: &BTreeMap<String, ParamSpec>,
    used: &mut BTreeSet<String>,
) -> Option<ModuleDecl> {
    if let Some(v) = &t.augeas {
        let module = ModuleDecl::Augeas(super::augeas::read_augeas(
            r,
            v,
            &join(p, "augeas"),
            declared,
            params,
            used,
        )?);
        check_access(r, t, p, &module);
        return Some(module);
    }
    let mut names = Names {
        declared,
        params,
        used,
    };
    let module = if let Some(v) = &t.service {
        read_service(r, v, &join(p, "service"), &mut names)?
    } else if let Some(v) = &t.packages {
        read_packages(r, v, &join(p, "packages"), &mut names)?
    } else {
        return None;
    };
    check_access(r, t, p, &module);
    Some(module)
}

struct Names<'a> {
    declared: &'a BTreeMap<String, Range<usize>>,
    params: &'a BTreeMap<String, ParamSpec>,
    used: &'a mut BTreeSet<String>,
}

impl Names<'_> {
    /// One name template: its syntax, and each placeholder a declared parameter
    /// that is neither secret nor a path.
    fn template(&mut self, r: &mut Reader<'_>, v: &Spanned<String>, path: &str) -> Option<String> {
        let text = v.get_ref();
        let t = match Template::parse_text(text) {
            Ok(t) => t,
            Err(reason) => {
                r.err(v.span(), path, reason);
                return None;
            }
        };
        let mut ok = true;
        for ph in t.placeholders() {
            let problem = match ph {
                Placeholder::Param(name) if !self.declared.contains_key(name) => format!(
                    "placeholder {{{name}}} is not a declared parameter (declare params.{name}, usually an enum)"
                ),
                Placeholder::Param(name) => {
                    self.used.insert(name.clone());
                    match self.params.get(name) {
                        Some(spec) if spec.secret => {
                            format!("secret parameter '{name}' cannot fill a module's name")
                        }
                        Some(spec) if matches!(spec.kind, ParamKind::Path { .. }) => {
                            format!("path parameter '{name}' cannot fill a module's name")
                        }
                        _ => continue,
                    }
                }
                _ => format!(
                    "{{{ph}}} cannot fill a module's name: use a declared parameter (usually an enum)"
                ),
            };
            r.err(v.span(), path, problem);
            ok = false;
        }
        if text.is_empty() {
            r.err(v.span(), path, "is empty");
            ok = false;
        }
        ok.then(|| text.clone())
    }
}

fn read_service(
    r: &mut Reader<'_>,
    v: &Spanned<Table<RawServiceModule>>,
    p: &str,
    names: &mut Names<'_>,
) -> Option<ModuleDecl> {
    let t = v.get_ref();
    let span = r.key_span(v);
    let unit = match &t.unit {
        Some(u) => names.template(r, u, &join(p, "unit")),
        None => {
            r.missing(span.clone(), p, "unit");
            None
        }
    };
    let action = match &t.action {
        Some(a) => r.choice(
            a,
            &join(p, "action"),
            &ServiceAction::ALL.map(|a| (a.name(), a)),
        ),
        None => {
            r.missing(span, p, "action");
            None
        }
    };
    let backend = match &t.backend {
        Some(b) => r.choice(
            b,
            &join(p, "backend"),
            &ServiceBackend::ALL.map(|b| (b.name(), b)),
        ),
        None => Some(ServiceBackend::Auto),
    };
    Some(ModuleDecl::Service(ServiceDecl {
        unit: unit?,
        action: action?,
        backend: backend?,
    }))
}

fn read_packages(
    r: &mut Reader<'_>,
    v: &Spanned<Table<RawPackages>>,
    p: &str,
    names: &mut Names<'_>,
) -> Option<ModuleDecl> {
    let t = v.get_ref();
    let lists: [(&Option<Spanned<List<String>>>, PackagesAction); 4] = [
        (&t.install, PackagesAction::Install),
        (&t.remove, PackagesAction::Remove),
        (&t.update, PackagesAction::Update),
        (&t.status, PackagesAction::Status),
    ];
    let set: Vec<_> = lists.iter().filter(|(l, _)| l.is_some()).collect();
    let keys = PackagesAction::ALL.map(PackagesAction::name).join(", ");
    let Some((Some(list), action)) = set.first().map(|(l, a)| (l, *a)) else {
        r.err(
            v.span(),
            p,
            format!("needs one of: {keys} (a list of package names)"),
        );
        return None;
    };
    if let Some((Some(other), a)) = set.get(1).map(|(l, a)| (l, a)) {
        let span = r.key_span(other);
        r.err(
            span,
            &join(p, a.name()),
            format!(
                "takes exactly one of: {keys} ('{}' is set too)",
                action.name()
            ),
        );
        return None;
    }
    let path = join(p, action.name());
    if list.get_ref().is_empty() {
        r.err(list.span(), &path, "names no package");
        return None;
    }
    let mut out = Vec::new();
    for (i, n) in list.get_ref().iter().enumerate() {
        out.push(names.template(r, n, &item(&path, i)));
    }
    Some(ModuleDecl::Packages(PackagesDecl {
        action,
        names: out.into_iter().collect::<Option<Vec<_>>>()?,
    }))
}

/// Refuses the keys a module's access rules out, and keys that mean nothing
/// for a module (`stdin`, `output`).
fn check_access(r: &mut Reader<'_>, t: &RawOperation, p: &str, module: &ModuleDecl) {
    let key = module.key();
    let why = "what it starts (a service, a maintainer script) would inherit it: the module runs with the service's privilege, unconfined";
    let access = module.access();
    let keys = [
        ("sandbox", r.key_of(&t.sandbox, &join(p, "sandbox"))),
        ("limits", r.key_of(&t.limits, &join(p, "limits"))),
        (
            "capabilities",
            r.key_of(&t.capabilities, &join(p, "capabilities")),
        ),
        ("run_as", r.key_of(&t.run_as, &join(p, "run_as"))),
    ];
    if !access.may_sandbox {
        for (k, span) in keys {
            if let Some(span) = span {
                r.err(
                    span,
                    &join(p, k),
                    format!("a {key} operation cannot be confined with {k}: {why}"),
                );
            }
        }
    }
    let fixed = [
        ("stdin", r.key_of(&t.stdin, &join(p, "stdin"))),
        ("output", r.key_of(&t.output, &join(p, "output"))),
    ];
    for (k, span) in fixed {
        if let Some(span) = span {
            r.err(
                span,
                &join(p, k),
                format!("a {key} operation takes its input from its declaration and answers JSON: {k} does not apply"),
            );
        }
    }
}
