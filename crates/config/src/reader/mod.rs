//! The TOML reader: config text into the typed [`Config`], with every problem
//! reported at its line and column under its key path.
//!
//! Two passes:
//! 1. **serde** ([`mod@decode`]): the TOML is deserialised into the raw declaration
//!    structs of [`raw`] (`deny_unknown_fields`, every value `Spanned`). Unknown
//!    keys (with "did you mean", from serde's list of the struct's fields) and
//!    values of the wrong type are reported there, all of them, not just the first.
//!    Each operation, and each parameter table (whose keys depend on its `type`),
//!    is read on its own, from the parsed document.
//! 2. **semantic checks** ([`service`], [`operation`], [`params`], [`exec`]): the
//!    raw declarations become the model types, checking values (ranges,
//!    durations, sizes, paths, names, addresses), parameters, templates and the
//!    rules between keys (placeholders declared, secrets only on stdin...).
//!
//! ## Adding a key
//! 1. Add a field named as the key to its struct in [`raw`] (`Opt<T>`: optional
//!    and located; `T` is `String`, `bool`, `i64`, a `List` or one of the value
//!    types there). The key is now accepted, and suggested for a misspelling.
//! 2. Read it in the semantic pass of its table (e.g. [`service::read_service`])
//!    into the model (a new model field, with its default, if it needs one).
//!
//! Nothing else lists keys. A parameter type's own keys are the fields of its
//! struct in [`raw`] (`param_table!`); a key of another type is refused as not
//! applying to this type.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{Diagnostics, Sink};
use crate::model::{Config, ServiceConfig};

mod augeas;
mod context;
mod decode;
mod exec;
mod module;
mod operation;
mod params;
mod raw;
mod service;

use context::{join, Reader};
use decode::decode;
use raw::{RawConfig, RawOperation, Table};

/// Parses and validates a whole config text.
pub(crate) fn parse_config(text: &str, origin: &str) -> Result<Config, Diagnostics> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut sink = Sink::new(origin, text);
        for e in errors {
            sink.error(
                e.span().unwrap_or(0..0),
                "",
                format!("TOML syntax: {}", e.message()),
            );
        }
        return Err(sink.finish().expect_err("errors were recorded"));
    }
    let span = root.span();
    let tree = Spanned::new(span, DeValue::Table(root.into_inner()));
    let mut r = Reader::new(origin, text, &tree);
    let Some(raw) = decode::<RawConfig>(&mut r, tree.clone(), "", &|_, _| None) else {
        return Err(r.sink.finish().expect_err("errors were recorded"));
    };
    let service = match &raw.service {
        Some(s) => service::read_service(&mut r, s),
        None => ServiceConfig::default(),
    };
    let mut operations = BTreeMap::new();
    for (name, op) in raw.operations.iter().flat_map(|o| o.get_ref().iter()) {
        let path = join("operations", name.get_ref());
        check_op_name(&mut r, name, &path);
        let Some(node) = r.value_at(&op.span()) else {
            // Every value is indexed: never, but never silently either.
            r.err(op.span(), &path, "cannot find this operation's table");
            continue;
        };
        let Some(op) = decode::<Table<RawOperation>>(&mut r, node.clone(), &path, &|_, _| None)
        else {
            continue;
        };
        let op = Spanned::new(node.span(), op);
        if let Some(op) = operation::read_operation(&mut r, &path, name.span(), &op, &service) {
            operations.insert(name.get_ref().clone(), op);
        }
    }
    if let Some(s) = &raw.service {
        let declared: Vec<&str> = raw
            .operations
            .iter()
            .flat_map(|o| o.get_ref().keys())
            .map(|k| k.get_ref().as_str())
            .collect();
        service::check_socket_operations(&mut r, s, &declared);
    }
    r.sink.finish()?;
    Ok(Config {
        service,
        operations,
    })
}

fn check_op_name(r: &mut Reader<'_>, name: &Spanned<String>, path: &str) {
    let n = name.get_ref();
    let valid = n.len() <= 64
        && n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !valid {
        r.err(
            name.span(),
            path,
            format!(
                "invalid operation name '{n}' (expected [a-z0-9][a-z0-9._-]*, at most 64 characters)"
            ),
        );
    } else if n.starts_with("regent.") {
        r.err(
            name.span(),
            path,
            format!(
                "operation name '{n}' is reserved (names starting with 'regent.' belong to Regent)"
            ),
        );
    }
}
