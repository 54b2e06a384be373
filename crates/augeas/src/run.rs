//! Running a declaration: expand, apply every action, save once (or show the
//! diff), and answer in JSON.

use std::path::PathBuf;

use regent_model::{AugAction, AugeasDecl};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Error;
use crate::file::{AugFile, Lens};

/// How a request runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Augeas's root (tests: a temporary directory); none: `/`.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Show the change as a diff instead of writing it.
    #[serde(default)]
    pub dry_run: bool,
    /// Apply only if the file still has this hash (the one a dry run showed).
    #[serde(default)]
    pub expect_hash: Option<String>,
    /// Values to redact from a diff (the request's secret parameters).
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// The answer to a request.
///
/// `results` holds one entry per `get` (`{"get": PATH, "value": V}`, `null`
/// when no node matched) and per `match` (`{"match": PATH, "nodes": [{"path":
/// P, "value": V}]}`), in the order of the actions. A change answers the files
/// saved (`saved`) and whether anything changed (`changed`); a dry run answers
/// the `diff` it would make and the file's `hash`, saving nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The declared file.
    pub file: String,
    /// True when the file was (or, in a dry run, would be) written.
    pub changed: bool,
    /// The files written.
    pub saved: Vec<String>,
    /// The values `get` and `match` read.
    pub results: Vec<Value>,
    /// A dry run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// A dry run's unified diff (empty when nothing would change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// A dry run's hash of the file ([`crate::content_hash`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// Expands `decl`'s actions with `lookup` (a placeholder's name to its value;
/// none for an absent optional parameter, which leaves the action out) and runs
/// them ([`run`]).
pub fn run_decl<F>(decl: &AugeasDecl, lookup: F, opts: &RunOptions) -> Result<Answer, Error>
where
    F: Fn(&str) -> Option<String>,
{
    let actions = decl.expand(lookup).map_err(|(i, e)| Error::Value {
        what: format!("action {} ({})", i + 1, decl.actions[i].name()),
        message: e.to_string(),
    })?;
    run(&decl.lens, &decl.file, &actions, opts)
}

/// Loads `file` with `lens`, applies `actions` (expanded) in order, then, if
/// any changes the tree, saves once; a dry run shows the diff instead. An
/// action that fails stops the request before anything is written.
pub fn run(
    lens: &str,
    file: &str,
    actions: &[AugAction],
    opts: &RunOptions,
) -> Result<Answer, Error> {
    run_with(Lens::new(lens, opts.root.as_deref())?, file, actions, opts)
}

/// [`run`] with a [`Lens`] already started (and usually compiled: see
/// [`Lens::compile`]); its root is the one it was started with
/// (`opts.root` is not read).
pub fn run_with(
    lens: Lens,
    file: &str,
    actions: &[AugAction],
    opts: &RunOptions,
) -> Result<Answer, Error> {
    let mut f = lens.open(file)?;
    if let Some(expected) = &opts.expect_hash {
        if expected != f.hash() {
            return Err(Error::Changed {
                file: file.to_string(),
                expected: expected.clone(),
                actual: f.hash().to_string(),
            });
        }
    }
    let mut results = Vec::new();
    for a in actions {
        apply(&mut f, a, &mut results)?;
    }
    let mut answer = Answer {
        file: file.to_string(),
        changed: false,
        saved: Vec::new(),
        results,
        dry_run: opts.dry_run,
        diff: None,
        hash: None,
    };
    if opts.dry_run {
        let secrets: Vec<&str> = opts.secrets.iter().map(String::as_str).collect();
        let preview = f.preview(&secrets)?;
        answer.changed = preview.changed;
        answer.diff = Some(preview.diff);
        answer.hash = Some(preview.hash);
    } else if actions.iter().any(AugAction::changes) {
        let saved = f.save()?;
        answer.changed = saved.changed;
        answer.saved = saved.files;
    }
    Ok(answer)
}

fn apply(f: &mut AugFile, a: &AugAction, results: &mut Vec<Value>) -> Result<(), Error> {
    match a {
        AugAction::Get { path } => {
            let value = f.get(path)?;
            results.push(json!({ "get": path, "value": value }));
        }
        AugAction::Match { path } => {
            let nodes = f.matches(path)?;
            results.push(json!({ "match": path, "nodes": nodes }));
        }
        AugAction::Set { path, value } => f.set(path, value)?,
        AugAction::Setm { base, sub, value } => {
            f.setm(base, sub, value)?;
        }
        AugAction::Insert {
            label,
            path,
            position,
        } => f.insert(path, label, *position)?,
        AugAction::Move { path, to } => f.mv(path, to)?,
        AugAction::Remove { path } => {
            f.remove(path)?;
        }
    }
    Ok(())
}
