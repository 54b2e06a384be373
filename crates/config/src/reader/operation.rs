//! Reading one `[operations.NAME]` table: command, params, stdin, policy and auth,
//! with the cross-checks between them (placeholders declared, params used, secrets
//! only on stdin).

use super::*;

const OP_KEYS: &[&str] = &[
    "description",
    "command",
    "params",
    "stdin",
    "allow",
    "timeout",
    "output",
    "max_output",
    "auth",
    "approvers",
    "approve",
    "pending_ttl",
    "max_attempts",
    "max_pending_per_uid",
    "run_as",
    "capabilities",
    "sandbox",
    "limits",
    "on_unsupported",
    "concurrency",
];

const ALLOW_KEYS: &[&str] = &["users", "groups"];

pub(super) fn read_operation(
    r: &mut Reader<'_>,
    f: &Field<'_, '_>,
    service: &ServiceConfig,
) -> Option<OperationDecl> {
    let t = r.table(f, OP_KEYS)?;
    let before = r.errors();
    let description = t
        .get("description")
        .and_then(|f| r.string(&f))
        .unwrap_or_default();

    // Parameters first: the command and stdin refer to them.
    let mut params: BTreeMap<String, ParamSpec> = BTreeMap::new();
    let mut param_fields: BTreeMap<String, Range<usize>> = BTreeMap::new();
    if let Some(pf) = t.get("params") {
        if let Some(pt) = r.table(&pf, &[]) {
            for (name, field) in pt.all() {
                if !is_valid_param_name(name) {
                    r.err(
                        field.key_span.clone(),
                        &field.path,
                        format!("invalid parameter name '{name}' (expected [A-Za-z_][A-Za-z0-9_-]*, at most 64 characters)"),
                    );
                    continue;
                }
                param_fields.insert(name.to_string(), field.key_span.clone());
                if let Some(spec) = read_param(r, &field) {
                    params.insert(name.to_string(), spec);
                }
            }
        }
    }

    let mut used: BTreeSet<String> = BTreeSet::new();
    let command = match t.get("command") {
        Some(cf) => read_command(r, &cf, &param_fields, &params, &mut used),
        None => {
            missing(r, &t, "command");
            None
        }
    };

    let stdin = t.get("stdin").and_then(|sf| {
        let name = r.string(&sf)?;
        if !param_fields.contains_key(&name) {
            r.err(
                sf.span(),
                &sf.path,
                format!("stdin names '{name}', which is not a declared parameter"),
            );
            return None;
        }
        if params
            .get(&name)
            .is_some_and(|p| matches!(p.kind, ParamKind::Path { .. }))
        {
            r.err(
                sf.span(),
                &sf.path,
                format!("stdin names the path parameter '{name}': the command would get its name and open it itself, which can be raced; put {{{name}}} in the command, which then gets an open descriptor"),
            );
            return None;
        }
        used.insert(name.clone());
        Some(name)
    });

    for (name, span) in &param_fields {
        if !used.contains(name) {
            r.err(
                span.clone(),
                &join(&join(&t.path, "params"), name),
                format!("parameter '{name}' is declared but used neither in command nor as stdin"),
            );
        }
    }

    let allow = t.get("allow").and_then(|f| read_allow(r, &f));
    let timeout = match t.get("timeout") {
        Some(f) => r.duration(&f, Duration::from_millis(1)),
        None => Some(DEFAULT_TIMEOUT),
    };
    let output = match t.get("output") {
        Some(f) => r.choice(
            &f,
            &[
                ("text", OutputMode::Text),
                ("json", OutputMode::Json),
                ("full", OutputMode::Full),
            ],
        ),
        None => Some(OutputMode::Text),
    };
    let max_output = match t.get("max_output") {
        Some(f) => r
            .size(&f, 1)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        None => Some(DEFAULT_MAX_OUTPUT),
    };

    // Out-of-channel authorization.
    let auth_field = t.get("auth");
    let mut auth = Vec::new();
    if let Some(af) = &auth_field {
        for (m, item) in r.strings(af).unwrap_or_default() {
            if !AUTH_METHODS.contains(&m.as_str()) {
                r.err(
                    item.span(),
                    &item.path,
                    format!(
                        "unknown authorization method '{m}' (expected one of: {})",
                        AUTH_METHODS.join(", ")
                    ),
                );
            } else if auth.contains(&m) {
                r.err(item.span(), &item.path, format!("'{m}' is listed twice"));
            } else {
                auth.push(m);
            }
        }
    }
    let has = |m: &str| auth.iter().any(|a| a == m);
    let mut approvers = Vec::new();
    let approvers_field = t.get("approvers");
    if let Some(apf) = &approvers_field {
        for (a, item) in r.strings(apf).unwrap_or_default() {
            match check_email(&a) {
                Ok(()) => approvers.push(a),
                Err(e) => r.err(item.span(), &item.path, e),
            }
        }
        if !has("email") {
            r.err(
                apf.key_span.clone(),
                &apf.path,
                "approvers receive the codes of the 'email' method, which auth does not list (use 'approve' to say who may approve)",
            );
        }
    }
    if has("email") {
        let af = auth_field.as_ref().expect("auth was read");
        if approvers_field.is_none() {
            r.err(
                af.span(),
                &af.path,
                "the 'email' method needs approvers = [\"someone@example.org\"]",
            );
        }
        if service.smtp.is_none() {
            r.err(
                af.span(),
                &af.path,
                "the 'email' method needs a [service.smtp] table",
            );
        }
    }
    let approve = t.get("approve").and_then(|f| {
        if !has("approval") {
            r.err(
                f.key_span.clone(),
                &f.path,
                "approve only applies to the 'approval' method, which auth does not list",
            );
        }
        read_allow(r, &f)
    });
    let pending_ttl = match t.get("pending_ttl") {
        Some(f) => {
            no_effect_without_auth(r, &f, &auth);
            r.duration(&f, Duration::from_secs(1))
        }
        None => Some(DEFAULT_PENDING_TTL),
    };
    let max_attempts = match t.get("max_attempts") {
        Some(f) => {
            no_effect_without_auth(r, &f, &auth);
            r.int_in(&f, 1, 1000)
        }
        None => Some(DEFAULT_MAX_ATTEMPTS),
    };
    let max_pending_per_uid = match t.get("max_pending_per_uid") {
        Some(f) => {
            no_effect_without_auth(r, &f, &auth);
            r.int_in(&f, 1, 1_000_000)
        }
        None => Some(DEFAULT_OP_MAX_PENDING_PER_UID),
    };

    let exec = read_exec(r, &t);
    t.finish(r);
    if r.errors() != before {
        return None;
    }
    Some(OperationDecl {
        description,
        command: command?,
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
    })
}

fn no_effect_without_auth(r: &mut Reader<'_>, f: &Field<'_, '_>, auth: &[String]) {
    if auth.is_empty() {
        r.err(
            f.key_span.clone(),
            &f.path,
            "has no effect: the operation has no auth stages",
        );
    }
}

fn read_command(
    r: &mut Reader<'_>,
    f: &Field<'_, '_>,
    declared: &BTreeMap<String, Range<usize>>,
    params: &BTreeMap<String, ParamSpec>,
    used: &mut BTreeSet<String>,
) -> Option<Template> {
    let items = r.strings(f)?;
    if items.is_empty() {
        r.err(f.span(), &f.path, "command is empty");
        return None;
    }
    let texts: Vec<&str> = items.iter().map(|(s, _)| s.as_str()).collect();
    let template = match Template::parse(&texts) {
        Ok(t) => t,
        Err(crate::Error::Template { index, reason }) => {
            let item = &items[index].1;
            r.err(item.span(), &item.path, reason);
            return None;
        }
        Err(e) => {
            r.err(f.span(), &f.path, e.to_string());
            return None;
        }
    };
    let mut ok = true;
    if let Some(why) = shell_with_params(&template, &texts) {
        r.err(f.span(), &f.path, why);
        ok = false;
    }
    for (i, (_, item)) in items.iter().enumerate() {
        for ph in template.element_placeholders(i) {
            let Placeholder::Param(name) = ph else {
                continue;
            };
            if !declared.contains_key(name) {
                r.err(
                    item.span(),
                    &item.path,
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
                    item.span(),
                    &item.path,
                    format!("path parameter {{{name}}} must end its element: it becomes /proc/self/fd/N, and a name appended to it would be resolved by the command, following symlinks, outside the checks"),
                );
                ok = false;
            }
            if params.get(name).is_some_and(|p| p.secret) {
                r.err(
                    item.span(),
                    &item.path,
                    format!("secret parameter '{name}' must not appear in the command line (argv is visible to every user); pass it with stdin = \"{name}\""),
                );
                ok = false;
            }
        }
    }
    ok.then_some(template)
}

fn read_allow(r: &mut Reader<'_>, f: &Field<'_, '_>) -> Option<AllowDecl> {
    let t = r.table(f, ALLOW_KEYS)?;
    let before = r.errors();
    let users = t
        .get("users")
        .and_then(|f| r.principals(&f))
        .unwrap_or_default();
    let groups = t
        .get("groups")
        .and_then(|f| r.principals(&f))
        .unwrap_or_default();
    t.finish(r);
    if r.errors() != before {
        return None;
    }
    if users.is_empty() && groups.is_empty() {
        r.err(
            f.span(),
            &f.path,
            "lists no users and no groups, which would allow nobody",
        );
        return None;
    }
    Some(AllowDecl { users, groups })
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
