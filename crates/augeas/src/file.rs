//! [`AugFile`]: one declared file, loaded with its one lens, and the eight
//! exmachina calls on it (`match`, `get`, `set`, `setm`, `insert`, `move`,
//! `remove`, `save`), every path confined to the file's tree.

use std::path::{Path, PathBuf};

use raugeas::{Augeas, Flags, Position, SaveMode};
use regent_model::augeas::{
    check_file, check_label_value, check_lens, check_path, check_set_value, tree_path, Mode,
};
use regent_model::InsertPosition;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Where the declared file's lens is registered in Augeas's tree.
const XFM: &str = "/augeas/load/Regent";

/// A node a path matched: its path relative to the file's tree and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Relative to the file's tree, as Augeas names it (`ListenAddress[2]`).
    pub path: String,
    /// Its value; none for a node without one.
    pub value: Option<String>,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The files written (the declared file, or none when nothing changed).
    pub files: Vec<String>,
    /// True when a file was written.
    pub changed: bool,
}

/// The change a save would make, not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// The unified diff (empty when nothing would change), secrets redacted.
    pub diff: String,
    /// True when saving would write the file.
    pub changed: bool,
    /// The hash of the file as loaded ([`AugFile::hash`]).
    pub hash: String,
}

/// One declared file and its lens, loaded: nothing else is in the tree (module
/// autoload is off, only this lens is compiled and only this file read).
///
/// Every path is relative to the file's tree and checked by
/// [`regent_model::augeas::check_path`] before Augeas sees it; every node it
/// matches must lie under the file's tree. Changes stay in memory until
/// [`AugFile::save`], which writes the file once (Augeas writes a temporary file
/// beside it and renames it into place) or reports why not: a dropped `AugFile`
/// writes nothing.
pub struct AugFile {
    aug: Augeas,
    lens: String,
    file: String,
    tree: String,
    disk: PathBuf,
    before: Option<Vec<u8>>,
    hash: String,
}

impl std::fmt::Debug for AugFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AugFile")
            .field("lens", &self.lens)
            .field("file", &self.file)
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

fn read(disk: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(disk) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: disk.display().to_string(),
            source,
        }),
    }
}

/// The hash of a file's content as [`AugFile::hash`] gives it: `sha256:` and
/// 64 hex digits (a missing file hashes as empty).
#[must_use]
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::from("sha256:");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Augeas's errors under `/augeas//error`, one line each: where, what, and the
/// line of the file for a parse error. Only the first line of a message is
/// kept, at most 200 bytes: the rest of a `put_failed` message prints the tree
/// (the file's values, which may be secret).
fn tree_errors(aug: &Augeas) -> Vec<String> {
    let nodes = match aug.matches("/augeas//error") {
        Ok(nodes) => nodes,
        Err(e) => return vec![format!("cannot read /augeas//error: {e}")],
    };
    nodes
        .iter()
        .map(|n| {
            let get = |sub: &str| aug.get(format!("{n}/{sub}")).ok().flatten();
            let kind = aug.get(n).ok().flatten().unwrap_or_default();
            let place = n
                .strip_prefix("/augeas")
                .and_then(|p| p.strip_suffix("/error"))
                .unwrap_or(n);
            let place = place.strip_prefix("/files").unwrap_or(place);
            let mut line = format!("{place}: {kind}");
            if let Some(m) = get("message") {
                let first = m.lines().next().unwrap_or_default();
                let mut end = first.len().min(200);
                while !first.is_char_boundary(end) {
                    end -= 1;
                }
                line.push_str(&format!(": {}", &first[..end]));
            }
            if let Some(l) = get("line") {
                line.push_str(&format!(" (line {l})"));
            }
            line
        })
        .collect()
}

/// A lens, compiled once and kept: the part of loading a file that costs
/// (compiling `Sshd.lns` and the modules it uses takes tens of milliseconds;
/// parsing a small file with it, well under one).
///
/// [`Lens::compile`] compiles it without reading any file (Augeas parses an
/// empty text with it); [`Lens::open`] then loads the declared file into this
/// handle. A program serving many requests compiles once and, for each
/// request, forks and opens the file in the child (`regent-module
/// --augeas-worker`): every request starts from the compiled lens and nothing
/// else, and no state of one request reaches the next.
pub struct Lens {
    aug: Augeas,
    lens: String,
    root: Option<PathBuf>,
}

impl std::fmt::Debug for Lens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lens")
            .field("lens", &self.lens)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Where [`Lens::compile`] parses its empty text (outside `/files`, removed after).
const WARM: &str = "/regent-compile";

impl Lens {
    /// Starts Augeas for `lens` (`Sshd` or `Sshd.lns`) under `root` (Augeas's
    /// root: a temporary directory in tests; none: `/`), module autoload off.
    /// Nothing is compiled or read yet.
    pub fn new(lens: &str, root: Option<&Path>) -> Result<Lens, Error> {
        let lens = check_lens(lens).map_err(|message| Error::Declaration {
            what: "lens",
            message,
        })?;
        let aug = Augeas::init(
            root.map(Path::as_os_str),
            "",
            Flags::NO_LOAD | Flags::NO_MODULE_AUTOLOAD,
        )
        .map_err(|e| Error::Compile {
            lens: lens.clone(),
            message: e.to_string(),
        })?;
        Ok(Lens {
            aug,
            lens,
            root: root.map(Path::to_path_buf),
        })
    }

    /// The lens, as Augeas names it (`Sshd.lns`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.lens
    }

    /// Compiles the lens now (Augeas compiles it on first use): parses an empty
    /// text with it, outside the file tree, and removes what that left. Fails
    /// when the lens does not exist or does not compile; an empty text the lens
    /// rejects is not a failure (the lens was compiled to find that out).
    pub fn compile(&mut self) -> Result<(), Error> {
        let err = |message: String| Error::Compile {
            lens: self.lens.clone(),
            message,
        };
        let input = format!("{WARM}/text");
        let output = format!("{WARM}/tree");
        self.aug.set(&input, "").map_err(|e| err(e.to_string()))?;
        let stored = self.aug.text_store(&self.lens, &input, &output);
        // A lens that does not exist or does not compile: an error of the call,
        // or under /augeas/text for the output path. A parse error of the empty
        // text is also recorded there, as `parse_failed`: the lens compiled.
        let mut errors: Vec<String> = tree_errors(&self.aug)
            .into_iter()
            .filter(|e| !e.contains("parse_failed"))
            .collect();
        if let Err(e) = stored {
            if errors.is_empty() && !e.to_string().contains("parse") {
                errors.push(e.to_string());
            }
        }
        let _ = self.aug.rm(WARM);
        let _ = self.aug.rm("/augeas/text");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(err(errors.join("; ")))
        }
    }

    /// Loads `file` into this handle with the lens (compiled now if
    /// [`Lens::compile`] was not called). Fails when the lens does not parse
    /// the file. A missing file loads as empty and is created by a save.
    pub fn open(self, file: &str) -> Result<AugFile, Error> {
        let Lens {
            mut aug,
            lens,
            root,
        } = self;
        check_file(file).map_err(|message| Error::Declaration {
            what: "file",
            message,
        })?;
        let disk = match &root {
            Some(r) => r.join(&file[1..]),
            None => PathBuf::from(file),
        };
        let load_err = |message: String| Error::Load {
            file: file.to_string(),
            lens: lens.clone(),
            message,
        };
        let before = read(&disk)?;
        aug.set(format!("{XFM}/lens"), &lens)
            .and_then(|()| aug.set(format!("{XFM}/incl"), file))
            .and_then(|()| aug.load())
            .map_err(|e| load_err(e.to_string()))?;
        let errors = tree_errors(&aug);
        if !errors.is_empty() {
            return Err(load_err(errors.join("; ")));
        }
        // The hash must be of what Augeas parsed: the same bytes before and after.
        if read(&disk)? != before {
            return Err(load_err("the file changed while it was loaded".into()));
        }
        let hash = content_hash(before.as_deref().unwrap_or_default());
        Ok(AugFile {
            aug,
            lens,
            tree: tree_path(file),
            file: file.to_string(),
            disk,
            before,
            hash,
        })
    }
}

impl AugFile {
    /// Loads `file` with `lens` (`Sshd` or `Sshd.lns`), under `root` (Augeas's
    /// root: a temporary directory in tests; none: `/`). Fails when the lens does
    /// not exist or does not parse the file. A missing file loads as empty and is
    /// created by a save. The same as [`Lens::new`] then [`Lens::open`].
    pub fn open(lens: &str, file: &str, root: Option<&Path>) -> Result<AugFile, Error> {
        Lens::new(lens, root)?.open(file)
    }

    /// The declared file.
    #[must_use]
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The lens, as Augeas names it (`Sshd.lns`).
    #[must_use]
    pub fn lens(&self) -> &str {
        &self.lens
    }

    /// The hash of the file as loaded ([`content_hash`]).
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    fn full(&self, rel: &str) -> Result<String, Error> {
        check_path(rel, Mode::Concrete).map_err(|message| Error::Path {
            path: rel.to_string(),
            message,
        })?;
        Ok(format!("{}/{rel}", self.tree))
    }

    fn action_err(&self, action: &'static str, path: &str, e: raugeas::Error) -> Error {
        Error::Action {
            file: self.file.clone(),
            action,
            path: path.to_string(),
            message: e.to_string(),
        }
    }

    /// The nodes `rel` matches, as full tree paths, each checked to lie under
    /// the file's tree.
    fn matched(&self, action: &'static str, rel: &str) -> Result<(String, Vec<String>), Error> {
        let full = self.full(rel)?;
        let nodes = self
            .aug
            .matches(&full)
            .map_err(|e| self.action_err(action, rel, e))?;
        let prefix = format!("{}/", self.tree);
        if let Some(node) = nodes.iter().find(|n| !n.starts_with(&prefix)) {
            return Err(Error::Outside {
                path: rel.to_string(),
                node: node.clone(),
                file: self.file.clone(),
            });
        }
        Ok((full, nodes))
    }

    fn one(&self, action: &'static str, rel: &str) -> Result<String, Error> {
        let (full, nodes) = self.matched(action, rel)?;
        match nodes.len() {
            1 => Ok(full),
            n => Err(Error::Action {
                file: self.file.clone(),
                action,
                path: rel.to_string(),
                message: format!("matches {n} nodes, not one"),
            }),
        }
    }

    /// `get`: the value of the node `rel` matches; none when no node does or
    /// it has no value. More than one match is an error.
    pub fn get(&self, rel: &str) -> Result<Option<String>, Error> {
        let (full, nodes) = self.matched("get", rel)?;
        if nodes.is_empty() {
            return Ok(None);
        }
        self.aug
            .get(&full)
            .map_err(|e| self.action_err("get", rel, e))
    }

    /// `match`: every node `rel` matches, with its value, in the file's order.
    pub fn matches(&self, rel: &str) -> Result<Vec<Node>, Error> {
        let (_, nodes) = self.matched("match", rel)?;
        let prefix = format!("{}/", self.tree);
        nodes
            .into_iter()
            .map(|n| {
                let value = self
                    .aug
                    .get(&n)
                    .map_err(|e| self.action_err("match", rel, e))?;
                let path = n[prefix.len()..].to_string();
                Ok(Node { path, value })
            })
            .collect()
    }

    /// `set`: sets the node `rel` matches to `value`, creating it (and missing
    /// parents) when no node matches. More than one match is an error.
    pub fn set(&mut self, rel: &str, value: &str) -> Result<(), Error> {
        check_set_value(value).map_err(|message| Error::Value {
            what: format!("the value of set {rel:?}"),
            message,
        })?;
        let (full, _) = self.matched("set", rel)?;
        self.aug
            .set(&full, value)
            .map_err(|e| self.action_err("set", rel, e))
    }

    /// `setm`: sets `sub` (relative to each node `base` matches) to `value`;
    /// returns how many nodes were set.
    pub fn setm(&mut self, base: &str, sub: &str, value: &str) -> Result<u32, Error> {
        check_set_value(value).map_err(|message| Error::Value {
            what: format!("the value of setm {base:?}"),
            message,
        })?;
        check_path(sub, Mode::Concrete).map_err(|message| Error::Path {
            path: sub.to_string(),
            message,
        })?;
        let (full, _) = self.matched("setm", base)?;
        self.aug
            .setm(&full, sub, value)
            .map_err(|e| self.action_err("setm", base, e))
    }

    /// `insert`: a new node labelled `label`, before or after the one node `rel`
    /// matches.
    pub fn insert(
        &mut self,
        rel: &str,
        label: &str,
        position: InsertPosition,
    ) -> Result<(), Error> {
        check_label_value(label).map_err(|message| Error::Value {
            what: format!("the label inserted at {rel:?}"),
            message,
        })?;
        let full = self.one("insert", rel)?;
        let pos = match position {
            InsertPosition::Before => Position::Before,
            InsertPosition::After => Position::After,
        };
        self.aug
            .insert(&full, label, pos)
            .map_err(|e| self.action_err("insert", rel, e))
    }

    /// `move`: the one node `rel` matches becomes `to` (what `to` held is
    /// replaced).
    pub fn mv(&mut self, rel: &str, to: &str) -> Result<(), Error> {
        let src = self.one("move", rel)?;
        let (dst, _) = self.matched("move", to)?;
        self.aug
            .mv(&src, &dst)
            .map_err(|e| self.action_err("move", rel, e))
    }

    /// `remove`: every node `rel` matches, with its children; returns how many
    /// nodes went.
    pub fn remove(&mut self, rel: &str) -> Result<u32, Error> {
        let (full, _) = self.matched("remove", rel)?;
        self.aug
            .rm(&full)
            .map_err(|e| self.action_err("remove", rel, e))
    }

    fn save_as(&mut self, mode: SaveMode) -> Result<Vec<String>, Error> {
        let save_err = |message: String| Error::Save {
            file: self.file.clone(),
            message,
        };
        self.aug
            .set_save_mode(mode)
            .and_then(|()| self.aug.save())
            .map_err(|e| save_err(e.to_string()))?;
        let errors = tree_errors(&self.aug);
        if !errors.is_empty() {
            return Err(save_err(errors.join("; ")));
        }
        let events = self
            .aug
            .matches("/augeas/events/saved")
            .map_err(|e| save_err(e.to_string()))?;
        let mut files = Vec::new();
        for e in events {
            let tree = self
                .aug
                .get(&e)
                .map_err(|e| save_err(e.to_string()))?
                .unwrap_or_default();
            files.push(tree.strip_prefix("/files").unwrap_or(&tree).to_string());
        }
        Ok(files)
    }

    /// `save`: writes the file if the tree changed. Success only when Augeas
    /// reports no error under `/augeas//error` (its own return value says
    /// success even when the write failed).
    pub fn save(&mut self) -> Result<Saved, Error> {
        let files = self.save_as(SaveMode::Overwrite)?;
        Ok(Saved {
            changed: !files.is_empty(),
            files,
        })
    }

    /// The change [`AugFile::save`] would make, as a unified diff of the file,
    /// without writing it: Augeas renders the file and checks the save (its
    /// no-op mode) but writes nothing. Each non-empty string of `secrets` is
    /// replaced by `<redacted>` in the diff.
    pub fn preview(&mut self, secrets: &[&str]) -> Result<Preview, Error> {
        let would = self.save_as(SaveMode::Noop)?;
        let after = self
            .aug
            .preview(&self.tree)
            .map_err(|e| Error::Save {
                file: self.file.clone(),
                message: e.to_string(),
            })?
            .unwrap_or_default();
        let before = String::from_utf8_lossy(self.before.as_deref().unwrap_or_default());
        let diff = if would.is_empty() {
            String::new()
        } else {
            crate::diff::unified(&self.file, &before, &after, secrets)
        };
        Ok(Preview {
            diff,
            changed: !would.is_empty(),
            hash: self.hash.clone(),
        })
    }
}
