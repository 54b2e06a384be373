//! System modules as the config declares them: a request's [`ModulePlan`]
//! ([`module_plan`]) and what an operation may touch ([`module_targets`]).

use regent_model::{valid_package_name, valid_unit_name, ModuleDecl, ModulePlan};

use crate::data::FieldError;
use crate::model::OperationDecl;
use crate::param::ParamKind;
use crate::template::{Placeholder, Template};
use crate::values::Params;

/// The most names [`module_targets`] lists for one template.
pub const MAX_TARGETS: usize = 256;

/// What one name template of a module operation may render to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Exactly these names (every placeholder is an `enum`, or there is none).
    Names(Vec<String>),
    /// Any name its open parameters (not `enum`) allow, listed: broader than a
    /// list of names.
    Open(Vec<String>),
}

/// A name template, checked when the config was read (`None` only for a
/// hand-built declaration with a bad one).
fn template(text: &str) -> Option<Template> {
    Template::parse_text(text).ok()
}

fn enum_values<'a>(decl: &'a OperationDecl, name: &str) -> Option<&'a [String]> {
    match decl.params.get(name).map(|p| &p.kind) {
        Some(ParamKind::Enum { values }) => Some(values.as_slice()),
        _ => None,
    }
}

/// For each name template of `decl`'s module, in order, the names it may render
/// to; empty for a command operation.
#[must_use]
pub fn module_targets(decl: &OperationDecl) -> Vec<(String, Targets)> {
    let Some(module) = &decl.module else {
        return Vec::new();
    };
    module
        .templates()
        .into_iter()
        .map(|text| {
            let Some(t) = template(text) else {
                return (text.to_string(), Targets::Open(Vec::new()));
            };
            let targets = match t.expand_text(|n| enum_values(decl, n), MAX_TARGETS) {
                Some(names) => Targets::Names(names),
                None => Targets::Open(
                    t.placeholders()
                        .filter_map(|p| match p {
                            Placeholder::Param(n) if enum_values(decl, n).is_none() => {
                                Some(n.clone())
                            }
                            _ => None,
                        })
                        .collect(),
                ),
            };
            (text.to_string(), targets)
        })
        .collect()
}

/// The names a module's declaration allows when they are a finite list.
fn allowed(decl: &OperationDecl) -> Option<Vec<String>> {
    let mut all = Vec::new();
    for (_, t) in module_targets(decl) {
        match t {
            Targets::Names(n) => all.extend(n),
            Targets::Open(_) => return None,
        }
    }
    all.sort();
    all.dedup();
    Some(all)
}

fn render(
    text: &str,
    params: &Params,
    what: &str,
    ok: fn(&str) -> bool,
) -> Result<String, FieldError> {
    let t = template(text).ok_or_else(|| FieldError {
        field: "data".into(),
        reason: "the declaration's name template is invalid".into(),
    })?;
    let field = t
        .placeholders()
        .find_map(|p| match p {
            Placeholder::Param(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "data".to_string());
    let value = t.render_text(params).ok_or_else(|| FieldError {
        field: field.clone(),
        reason: "is required".into(),
    })?;
    if ok(&value) {
        Ok(value)
    } else {
        Err(FieldError {
            field,
            reason: format!("does not make a valid {what}"),
        })
    }
}

/// The plan of one request of a module operation, from its validated
/// parameters: each name template rendered into exactly one name, which must be
/// a valid unit or package name (else a [`FieldError`] naming the parameter);
/// `None` for a command operation.
pub fn module_plan(
    decl: &OperationDecl,
    params: &Params,
) -> Option<Result<ModulePlan, FieldError>> {
    let module = decl.module.as_ref()?;
    Some(match module {
        ModuleDecl::Service(s) => {
            render(&s.unit, params, "unit name", valid_unit_name).map(|unit| ModulePlan::Service {
                unit,
                action: s.action,
                backend: s.backend,
            })
        }
        ModuleDecl::Packages(p) => p
            .names
            .iter()
            .map(|n| render(n, params, "package name", valid_package_name))
            .collect::<Result<Vec<_>, _>>()
            .map(|names| ModulePlan::Packages {
                action: p.action,
                names,
                allowed: allowed(decl),
            }),
        ModuleDecl::Augeas(a) => augeas_plan(a, params),
    })
}

/// An Augeas declaration's actions expanded with the request's parameters
/// (an action naming an absent optional parameter left out), each value
/// checked for the slot it fills: a refused value is a [`FieldError`] naming
/// its parameter. Secret values go along to be redacted from a diff.
fn augeas_plan(a: &regent_model::AugeasDecl, params: &Params) -> Result<ModulePlan, FieldError> {
    let actions = a
        .expand(|n| params.get(n).map(|v| v.as_str().to_string()))
        .map_err(|(i, e)| FieldError {
            field: e.placeholder.clone().unwrap_or_else(|| "data".into()),
            reason: format!(
                "cannot fill augeas action {} ({}) {}: {}",
                i + 1,
                a.actions[i].name(),
                e.field,
                e.message
            ),
        })?;
    Ok(ModulePlan::Augeas {
        lens: a.lens.clone(),
        file: a.file.clone(),
        actions,
        dry_run: false,
        expect_hash: None,
        secrets: params
            .iter()
            .filter(|(_, v)| v.is_secret())
            .map(|(_, v)| v.as_str().to_string())
            .collect(),
    })
}

/// The names `decl`'s module lists (see [`module_targets`]) that are no valid
/// unit or package name: a declaration naming one could never run.
#[must_use]
pub(crate) fn invalid_targets(decl: &OperationDecl) -> Vec<String> {
    let Some(module) = &decl.module else {
        return Vec::new();
    };
    let ok: fn(&str) -> bool = match module {
        ModuleDecl::Service(_) => valid_unit_name,
        ModuleDecl::Packages(_) => valid_package_name,
        ModuleDecl::Augeas(_) => return Vec::new(),
    };
    module_targets(decl)
        .into_iter()
        .flat_map(|(_, t)| match t {
            Targets::Names(names) => names,
            Targets::Open(_) => Vec::new(),
        })
        .filter(|n| !ok(n))
        .collect()
}
