//! The semantic pass over `augeas = { lens, file, ... }`: the lens and file,
//! the actions (the shorthands `set`, `remove`, `get`, `match`, or an ordered
//! `actions` array), each path and value checked by regent-model's Augeas rules
//! and each placeholder a declared parameter (a secret one only in a value).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::context::{item, join, Reader};
use super::raw::{RawAugAction, RawAugeas, Table};
use crate::param::{ParamKind, ParamSpec};
use regent_model::augeas::{check_file, check_lens, Mode, Slot};
use regent_model::{AugAction, AugeasDecl, InsertPosition};

/// The shorthand keys, in the order their actions apply.
const SHORTHANDS: [&str; 4] = ["set", "remove", "get", "match"];

/// One action as read, with the span of each of its fields.
struct Read {
    action: AugAction,
    spans: Vec<(&'static str, Range<usize>)>,
    path: String,
}

/// Reads `augeas` at key path `p`, marking the parameters it uses.
pub(super) fn read_augeas(
    r: &mut Reader<'_>,
    v: &Spanned<Table<RawAugeas>>,
    p: &str,
    declared: &BTreeMap<String, Range<usize>>,
    params: &BTreeMap<String, ParamSpec>,
    used: &mut BTreeSet<String>,
) -> Option<AugeasDecl> {
    let t = v.get_ref();
    let at = |k: &str| join(p, k);
    let before = r.errors();
    let lens = match &t.lens {
        Some(l) => check_lens(l.get_ref())
            .map_err(|e| r.err(l.span(), &at("lens"), e))
            .ok(),
        None => {
            r.missing(v.span(), p, "lens");
            None
        }
    };
    let file = match &t.file {
        Some(f) => check_file(f.get_ref())
            .map(|()| f.get_ref().clone())
            .map_err(|e| r.err(f.span(), &at("file"), e))
            .ok(),
        None => {
            r.missing(v.span(), p, "file");
            None
        }
    };

    let mut read: Vec<Read> = Vec::new();
    let shorthand: Vec<(&str, Range<usize>)> = [
        ("set", r.key_of(&t.set, &at("set"))),
        ("remove", r.key_of(&t.remove, &at("remove"))),
        ("get", r.key_of(&t.get, &at("get"))),
        ("match", r.key_of(&t.r#match, &at("match"))),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.map(|s| (k, s)))
    .collect();
    if let Some(actions) = &t.actions {
        for (k, span) in &shorthand {
            r.err(
                span.clone(),
                &at(k),
                format!("'{k}' and 'actions' cannot be used together: put it in actions"),
            );
        }
        for (i, a) in actions.get_ref().iter().enumerate() {
            if let Some(one) = read_action(r, a, &item(&at("actions"), i)) {
                read.push(one);
            }
        }
        if actions.get_ref().is_empty() {
            r.err(actions.span(), &at("actions"), "lists no action");
        }
    } else if shorthand.is_empty() {
        r.err(
            v.span(),
            p,
            format!(
                "needs actions = [...] or at least one of: {}",
                SHORTHANDS.join(", ")
            ),
        );
    } else {
        // `set = { KEY = VALUE }`, in the order written.
        let mut sets: Vec<_> = t.set.iter().flat_map(|s| s.get_ref().iter()).collect();
        sets.sort_by_key(|(k, _)| k.span().start);
        for (k, val) in sets {
            read.push(Read {
                action: AugAction::Set {
                    path: k.get_ref().clone(),
                    value: val.get_ref().clone(),
                },
                spans: vec![("path", k.span()), ("value", val.span())],
                path: join(&at("set"), k.get_ref()),
            });
        }
        let lists = [
            ("remove", &t.remove),
            ("get", &t.get),
            ("match", &t.r#match),
        ];
        for (key, list) in lists {
            for (i, s) in list.iter().flat_map(|l| l.get_ref()).enumerate() {
                let path = s.get_ref().clone();
                let action = match key {
                    "remove" => AugAction::Remove { path },
                    "get" => AugAction::Get { path },
                    _ => AugAction::Match { path },
                };
                read.push(Read {
                    action,
                    spans: vec![("path", s.span())],
                    path: item(&at(key), i),
                });
            }
        }
    }

    let mut actions = Vec::new();
    for one in read {
        let span_of = |field: &str| {
            one.spans
                .iter()
                .find(|(f, _)| *f == field)
                .map_or(v.span(), |(_, s)| s.clone())
        };
        match one.action.check(Mode::Template) {
            Err(e) => r.err(
                span_of(e.field),
                &one.path,
                format!("{}: {}", e.field, e.message),
            ),
            Ok(placeholders) => {
                for ph in placeholders {
                    let span = span_of(ph.field);
                    let name = &ph.name;
                    if !declared.contains_key(name) {
                        r.err(
                            span,
                            &one.path,
                            format!("placeholder {{{name}}} is not a declared parameter (declare params.{name})"),
                        );
                        continue;
                    }
                    used.insert(name.clone());
                    match params.get(name) {
                        Some(spec) if spec.secret && ph.slot != Slot::Value => r.err(
                            span,
                            &one.path,
                            format!("secret parameter '{name}' can only fill a value, not a path or label"),
                        ),
                        Some(spec) if matches!(spec.kind, ParamKind::Path { .. }) => r.err(
                            span,
                            &one.path,
                            format!("path parameter '{name}' cannot be used in augeas (it is opened as a descriptor for commands)"),
                        ),
                        _ => {}
                    }
                }
                actions.push(one.action);
            }
        }
    }
    if r.errors() > before {
        return None;
    }
    Some(AugeasDecl {
        lens: lens?,
        file: file?,
        actions,
    })
}

/// One element of `actions`: exactly one of the action keys, with the keys it
/// takes (`value`, `sub`, `before` or `after`, `to`) and no other.
fn read_action(r: &mut Reader<'_>, a: &Spanned<Table<RawAugAction>>, p: &str) -> Option<Read> {
    let t = a.get_ref();
    let verbs = [
        ("get", &t.get),
        ("match", &t.r#match),
        ("set", &t.set),
        ("setm", &t.setm),
        ("insert", &t.insert),
        ("move", &t.r#move),
        ("remove", &t.remove),
    ];
    let set: Vec<(&str, &Spanned<String>)> = verbs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    let names: Vec<&str> = verbs.iter().map(|(k, _)| *k).collect();
    let (verb, target) = match set.as_slice() {
        [one] => *one,
        [] => {
            r.err(a.span(), p, format!("needs one of: {}", names.join(", ")));
            return None;
        }
        [(first, _), (second, v), ..] => {
            r.err(
                r.key_span(v),
                &join(p, second),
                format!(
                    "an action takes exactly one of {} ('{first}' is set too)",
                    names.join(", ")
                ),
            );
            return None;
        }
    };
    let extras = [
        ("value", &t.value),
        ("sub", &t.sub),
        ("before", &t.before),
        ("after", &t.after),
        ("to", &t.to),
    ];
    let takes: &[&str] = match verb {
        "set" => &["value"],
        "setm" => &["sub", "value"],
        "insert" => &["before", "after"],
        "move" => &["to"],
        _ => &[],
    };
    let mut ok = true;
    for (k, v) in extras {
        if let Some(v) = v.as_ref().filter(|_| !takes.contains(&k)) {
            r.err(
                r.key_span(v),
                &join(p, k),
                format!("'{k}' does not apply to {verb}"),
            );
            ok = false;
        }
    }
    fn need<'v>(
        r: &mut Reader<'_>,
        a: &Spanned<Table<RawAugAction>>,
        p: &str,
        k: &str,
        v: &'v Option<Spanned<String>>,
    ) -> Option<&'v Spanned<String>> {
        if v.is_none() {
            r.missing(a.span(), p, k);
        }
        v.as_ref()
    }
    let s = |v: &Spanned<String>| v.get_ref().clone();
    let target_span = target.span();
    let (action, spans) = match verb {
        "get" => (
            AugAction::Get { path: s(target) },
            vec![("path", target_span)],
        ),
        "match" => (
            AugAction::Match { path: s(target) },
            vec![("path", target_span)],
        ),
        "remove" => (
            AugAction::Remove { path: s(target) },
            vec![("path", target_span)],
        ),
        "set" => {
            let value = need(r, a, p, "value", &t.value)?;
            (
                AugAction::Set {
                    path: s(target),
                    value: s(value),
                },
                vec![("path", target_span), ("value", value.span())],
            )
        }
        "setm" => {
            let (sub, value) = (
                need(r, a, p, "sub", &t.sub),
                need(r, a, p, "value", &t.value),
            );
            let (sub, value) = (sub?, value?);
            (
                AugAction::Setm {
                    base: s(target),
                    sub: s(sub),
                    value: s(value),
                },
                vec![
                    ("base", target_span),
                    ("sub", sub.span()),
                    ("value", value.span()),
                ],
            )
        }
        "move" => {
            let to = need(r, a, p, "to", &t.to)?;
            (
                AugAction::Move {
                    path: s(target),
                    to: s(to),
                },
                vec![("path", target_span), ("to", to.span())],
            )
        }
        _ => {
            let (path, position) = match (&t.before, &t.after) {
                (Some(b), None) => (b, InsertPosition::Before),
                (None, Some(a)) => (a, InsertPosition::After),
                (Some(_), Some(a)) => {
                    r.err(
                        r.key_span(a),
                        &join(p, "after"),
                        "insert takes one of before and after",
                    );
                    return None;
                }
                (None, None) => {
                    r.err(
                        a.span(),
                        p,
                        "insert needs before = PATH or after = PATH (the node the new one goes beside)",
                    );
                    return None;
                }
            };
            (
                AugAction::Insert {
                    label: s(target),
                    path: s(path),
                    position,
                },
                vec![("label", target_span), ("path", path.span())],
            )
        }
    };
    ok.then(|| Read {
        action,
        spans,
        path: p.to_string(),
    })
}
