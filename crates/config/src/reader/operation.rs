//! The semantic pass over one `[operations.NAME]` table: command, params, stdin,
//! policy and auth, with the cross-checks between them (placeholders declared,
//! params used, secrets only on stdin).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::context::{item, join, Reader};
use super::raw::{List, RawAllow, RawOperation, Table};
use crate::model::{
    AllowDecl, OperationDecl, OutputMode, ServiceConfig, AUTH_METHODS, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_OUTPUT, DEFAULT_OP_MAX_PENDING_PER_UID, DEFAULT_PENDING_TTL, DEFAULT_TIMEOUT,
};
use crate::net::check_email;
use crate::param::{ParamKind, ParamSpec};
use crate::template::{is_valid_param_name, Placeholder, Template};
use regent_model::{Stage, Stages};

/// Reads the operation at key path `p`, whose name is at `name_span`.
pub(super) fn read_operation(
    r: &mut Reader<'_>,
    p: &str,
    name_span: Range<usize>,
    raw: &Spanned<Table<RawOperation>>,
    service: &ServiceConfig,
) -> Option<OperationDecl> {
    let at = |key: &str| join(p, key);
    let t = raw.get_ref();
    let before = r.errors();
    let description = t
        .description
        .as_ref()
        .map(|v| v.get_ref().clone())
        .unwrap_or_default();

    // Parameters first: the command and stdin refer to them.
    let mut params: BTreeMap<String, ParamSpec> = BTreeMap::new();
    let mut param_keys: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (name, decl) in t.params.iter().flat_map(|v| v.get_ref().iter()) {
        let (name, path) = (name.get_ref(), join(&at("params"), name.get_ref()));
        let key_span = r.key_span(decl);
        if !is_valid_param_name(name) {
            r.err(
                key_span,
                &path,
                format!("invalid parameter name '{name}' (expected [A-Za-z_][A-Za-z0-9_-]*, at most 64 characters)"),
            );
            continue;
        }
        param_keys.insert(name.clone(), key_span);
        if let Some(spec) = super::params::read_param(r, decl, &path) {
            params.insert(name.clone(), spec);
        }
    }

    let mut used: BTreeSet<String> = BTreeSet::new();
    let action = super::module::action_key(r, t, p, name_span.clone());
    let module = action
        .filter(|k| *k != "command")
        .and_then(|_| super::module::read_module(r, t, p, &param_keys, &params, &mut used));
    let command = match (&t.command, action) {
        (Some(v), Some("command")) => {
            read_command(r, v, &at("command"), &param_keys, &params, &mut used)
        }
        (_, Some(_)) if module.is_some() => Some(crate::model::module_command()),
        _ => None,
    };

    let stdin = t.stdin.as_ref().and_then(|v| {
        let name = v.get_ref();
        if !param_keys.contains_key(name) {
            r.err(
                v.span(),
                &at("stdin"),
                format!("stdin names '{name}', which is not a declared parameter"),
            );
            return None;
        }
        if params
            .get(name)
            .is_some_and(|p| matches!(p.kind, ParamKind::Path { .. }))
        {
            r.err(
                v.span(),
                &at("stdin"),
                format!("stdin names the path parameter '{name}': the command would get its name and open it itself, which can be raced; put {{{name}}} in the command, which then gets an open descriptor"),
            );
            return None;
        }
        used.insert(name.clone());
        Some(name.clone())
    });

    for (name, span) in &param_keys {
        // Without exactly one of command and the modules (or with a module
        // refused), nothing uses them.
        let checked = action == Some("command") || module.is_some();
        if checked && !used.contains(name) {
            r.err(
                span.clone(),
                &join(&at("params"), name),
                if module.is_some() {
                    format!("parameter '{name}' is declared but used in no name of the module")
                } else {
                    format!(
                        "parameter '{name}' is declared but used neither in command nor as stdin"
                    )
                },
            );
        }
    }

    let allow = t
        .allow
        .as_ref()
        .and_then(|v| read_allow(r, v, &at("allow")));
    if let (Some(_), Some(cmd), Some(v)) = (&service.tcp, &command, &t.command) {
        // A TLS client has no uid, gid or user name: an operation it may call
        // must not be given one.
        let tls_may_call = allow.as_ref().is_none_or(|a| !a.clients.is_empty());
        let unix_only = cmd
            .placeholders()
            .find(|ph| ph.is_unix_identity())
            .filter(|_| tls_may_call);
        if let Some(ph) = unix_only {
            r.err(
                v.span(),
                &at("command"),
                format!("uses {{{ph}}}, which a TLS client does not have, and TLS clients may call it ([service.tcp] is set and allow does not restrict it to users and groups); use {{caller.client}} or restrict allow"),
            );
        }
    }
    let timeout = match &t.timeout {
        Some(v) => r.duration(v, &at("timeout"), Duration::from_millis(1)),
        None => Some(DEFAULT_TIMEOUT),
    };
    let output = match &t.output {
        Some(v) => r.choice(
            v,
            &at("output"),
            &[
                ("text", OutputMode::Text),
                ("json", OutputMode::Json),
                ("full", OutputMode::Full),
            ],
        ),
        None => Some(OutputMode::Text),
    };
    let max_output = match &t.max_output {
        Some(v) => r
            .size(v, &at("max_output"), 1)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        None => Some(DEFAULT_MAX_OUTPUT),
    };

    // Out-of-channel authorization.
    let mut auth = Stages::none();
    for (i, m) in t.auth.iter().flat_map(|v| v.get_ref()).enumerate() {
        let (path, name) = (item(&at("auth"), i), m.get_ref());
        match Stage::BUILT_IN.iter().find(|s| s.name() == name) {
            None => r.err(
                m.span(),
                &path,
                format!(
                    "unknown authorization method '{name}' (expected one of: {})",
                    AUTH_METHODS.join(", ")
                ),
            ),
            Some(stage) if !auth.push(stage.clone()) => {
                r.err(m.span(), &path, format!("'{name}' is listed twice"));
            }
            Some(_) => {}
        }
    }
    let has = |stage: Stage| auth.contains(&stage);
    let mut approvers = Vec::new();
    let approvers_key = r.key_of(&t.approvers, &at("approvers"));
    for (i, a) in t.approvers.iter().flat_map(|v| v.get_ref()).enumerate() {
        match check_email(a.get_ref()) {
            Ok(()) => approvers.push(a.get_ref().clone()),
            Err(e) => r.err(a.span(), &item(&at("approvers"), i), e),
        }
    }
    if let Some(span) = approvers_key.clone().filter(|_| !has(Stage::Email)) {
        r.err(
            span,
            &at("approvers"),
            "approvers receive the codes of the 'email' method, which auth does not list (use 'approve' to say who may approve)",
        );
    }
    if has(Stage::Email) {
        let span = t.auth.as_ref().map_or(name_span.clone(), Spanned::span);
        if approvers_key.is_none() {
            r.err(
                span.clone(),
                &at("auth"),
                "the 'email' method needs approvers = [\"someone@example.org\"]",
            );
        }
        if service.smtp.is_none() {
            r.err(
                span,
                &at("auth"),
                "the 'email' method needs a [service.smtp] table",
            );
        }
    }
    if let Some(span) = r
        .key_of(&t.approve, &at("approve"))
        .filter(|_| !has(Stage::Approval))
    {
        r.err(
            span,
            &at("approve"),
            "approve only applies to the 'approval' method, which auth does not list",
        );
    }
    let approve = t
        .approve
        .as_ref()
        .and_then(|v| read_allow(r, v, &at("approve")));
    let stage_keys = [
        ("pending_ttl", r.key_of(&t.pending_ttl, &at("pending_ttl"))),
        (
            "max_attempts",
            r.key_of(&t.max_attempts, &at("max_attempts")),
        ),
        (
            "max_pending_per_uid",
            r.key_of(&t.max_pending_per_uid, &at("max_pending_per_uid")),
        ),
    ];
    for (key, span) in stage_keys {
        if let Some(span) = span.filter(|_| auth.is_empty()) {
            r.err(
                span,
                &at(key),
                "has no effect: the operation has no auth stages",
            );
        }
    }
    let pending_ttl = match &t.pending_ttl {
        Some(v) => r.duration(v, &at("pending_ttl"), Duration::from_secs(1)),
        None => Some(DEFAULT_PENDING_TTL),
    };
    let max_attempts = match &t.max_attempts {
        Some(v) => r.int_in(v, &at("max_attempts"), 1, 1000),
        None => Some(DEFAULT_MAX_ATTEMPTS),
    };
    let max_pending_per_uid = match &t.max_pending_per_uid {
        Some(v) => r.int_in(v, &at("max_pending_per_uid"), 1, 1_000_000),
        None => Some(DEFAULT_OP_MAX_PENDING_PER_UID),
    };

    let exec = super::exec::read_exec(r, t, p);
    if r.errors_since(before, p) {
        return None;
    }
    let output = if module.is_some() {
        Some(OutputMode::Json)
    } else {
        output
    };
    let decl = OperationDecl {
        description,
        command: command?,
        module,
        params,
        stdin,
        allow,
        timeout: timeout?,
        output: output?,
        max_output: max_output?,
        auth,
        approvers,
        approve,
        pending_ttl: pending_ttl?,
        max_attempts: max_attempts?,
        max_pending_per_uid: max_pending_per_uid?,
        exec,
    };
    if let Some(module) = &decl.module {
        let bad = crate::module::invalid_targets(&decl);
        if !bad.is_empty() {
            let key = module.key();
            let span = r
                .key_of(&t.service, &at(key))
                .or_else(|| r.key_of(&t.packages, &at(key)));
            let what = if key == "service" { "unit" } else { "package" };
            r.err(
                span.unwrap_or(name_span),
                &at(key),
                format!(
                    "names what is no valid {what} name: {}",
                    bad.iter()
                        .map(|b| format!("{b:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
    }
    Some(decl)
}

fn read_command(
    r: &mut Reader<'_>,
    v: &Spanned<List<String>>,
    path: &str,
    declared: &BTreeMap<String, Range<usize>>,
    params: &BTreeMap<String, ParamSpec>,
    used: &mut BTreeSet<String>,
) -> Option<Template> {
    let items = v.get_ref();
    if items.is_empty() {
        r.err(v.span(), path, "command is empty");
        return None;
    }
    let texts: Vec<&str> = items.iter().map(|s| s.get_ref().as_str()).collect();
    let template = match Template::parse(&texts) {
        Ok(t) => t,
        Err(crate::Error::Template { index, reason }) => {
            r.err(items[index].span(), &item(path, index), reason);
            return None;
        }
        Err(e) => {
            r.err(v.span(), path, e.to_string());
            return None;
        }
    };
    let mut ok = true;
    if let Some(why) = shell_with_params(&template, &texts) {
        r.err(v.span(), path, why);
        ok = false;
    }
    for (i, element) in items.iter().enumerate() {
        let (span, element_path) = (element.span(), item(path, i));
        for ph in template.element_placeholders(i) {
            let Placeholder::Param(name) = ph else {
                continue;
            };
            if !declared.contains_key(name) {
                r.err(
                    span.clone(),
                    &element_path,
                    format!("placeholder {{{name}}} is not a declared parameter (declare params.{name}, or use caller.uid, caller.gid, caller.user)"),
                );
                ok = false;
                continue;
            }
            used.insert(name.clone());
            let is_path = params
                .get(name)
                .is_some_and(|p| matches!(p.kind, ParamKind::Path { .. }));
            if is_path && template.followed_placeholders(i).any(|p| p == ph) {
                r.err(
                    span.clone(),
                    &element_path,
                    format!("path parameter {{{name}}} must end its element: it becomes /proc/self/fd/N, and a name appended to it would be resolved by the command, following symlinks, outside the checks"),
                );
                ok = false;
            }
            if params.get(name).is_some_and(|p| p.secret) {
                r.err(
                    span.clone(),
                    &element_path,
                    format!("secret parameter '{name}' must not appear in the command line (argv is visible to every user); pass it with stdin = \"{name}\""),
                );
                ok = false;
            }
        }
    }
    ok.then_some(template)
}

fn read_allow(r: &mut Reader<'_>, v: &Spanned<Table<RawAllow>>, p: &str) -> Option<AllowDecl> {
    let t = v.get_ref();
    let before = r.errors();
    let users = t
        .users
        .as_ref()
        .and_then(|l| r.principals(l, &join(p, "users")))
        .unwrap_or_default();
    let groups = t
        .groups
        .as_ref()
        .and_then(|l| r.principals(l, &join(p, "groups")))
        .unwrap_or_default();
    let clients = t
        .clients
        .as_ref()
        .and_then(|l| super::service::read_clients(r, l.get_ref(), &join(p, "clients")))
        .unwrap_or_default();
    if r.errors_since(before, p) {
        return None;
    }
    if users.is_empty() && groups.is_empty() && clients.is_empty() {
        r.err(
            v.span(),
            p,
            "lists no users and no groups (and no clients), which would allow nobody",
        );
        return None;
    }
    Some(AllowDecl {
        users,
        groups,
        clients,
    })
}

/// Shells that would interpret a parameter as code when given `-c`.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox",
];

/// Refuses `["sh", "-c", ..., "{param}"]`: a parameter handed to a shell's `-c`
/// would be run as shell code, which is exactly what Regent promises never to do.
fn shell_with_params(t: &Template, texts: &[&str]) -> Option<String> {
    let prog = t.program().rsplit('/').next().unwrap_or_default();
    let uses_param = t.placeholders().any(|p| matches!(p, Placeholder::Param(_)));
    let dash_c = texts[1..].iter().any(|a| {
        a.len() >= 2
            && a.starts_with('-')
            && !a.starts_with("--")
            && a[1..].chars().all(|c| c.is_ascii_alphabetic())
            && a.contains('c')
    });
    (SHELLS.contains(&prog) && dash_c && uses_param).then(|| {
        format!(
            "passing parameters to '{prog} -c' would run them as shell code; \
             call a script with the parameters as its arguments instead"
        )
    })
}
