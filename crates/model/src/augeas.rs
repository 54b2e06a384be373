//! Configuration files through Augeas, as declared: one lens, one file, and the
//! actions a request applies to that file's tree.
//!
//! Plain data and pure checks (no libaugeas here: `regent-augeas` runs them). A
//! path is relative to the file's tree (`Port`, `Match[1]/Settings/X11Forwarding`,
//! `*[canonical = '{host}']/ipaddr`), and written in a strict subset of Augeas's
//! path language, checked by [`check_path`]:
//!
//! - steps are a label, `*` or `.`, separated by single `/`; never a leading `/`,
//!   `//`, `..`, an axis (`parent::`), a variable (`$x`) or a function other than
//!   `last()` and `label()`, so no expression can name a node outside the file;
//! - a label is ASCII letters, digits and `_ - . + # @ % ~ :` (no whitespace, not
//!   starting with `.`, no `::`);
//! - a predicate is `[N]`, `[last()]` or comparisons `A = B` / `A != B` joined by
//!   `and` / `or`, where each side is a relative path, `.`, `label()`, a number or
//!   a quoted string.
//!
//! A placeholder `{name}` fills exactly one slot, never part of one: a whole label
//! (its value must itself be a plain label: [`check_label_value`]), a whole quoted
//! string in a predicate (no quotes, backslash or control characters:
//! [`check_quoted_value`]), a whole index (`[{n}]`, digits only) or a set value,
//! which may mix text and placeholders (`"{user}@{host}"`) and may hold anything
//! but control characters other than tab ([`check_set_value`]). `{{` and `}}` are
//! literal braces. A value that would change the path's structure is refused, and
//! the expanded path is checked again as a whole ([`AugAction::expand`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest declared or expanded path, in bytes.
pub const MAX_AUG_PATH: usize = 1024;
/// Longest label (a step's name, an inserted label), in bytes.
pub const MAX_AUG_LABEL: usize = 255;
/// Longest value set, in bytes.
pub const MAX_AUG_VALUE: usize = 4096;

/// One declared Augeas file and the actions a request applies to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AugeasDecl {
    /// The lens, as Augeas names it without module autoload: `Sshd.lns`.
    pub lens: String,
    /// The file, absolute: `/etc/ssh/sshd_config`.
    pub file: String,
    /// The actions, in the order they apply.
    pub actions: Vec<AugAction>,
}

/// Where `insert` puts the new node, relative to the node its path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsertPosition {
    /// Before it.
    Before,
    /// After it.
    After,
}

/// One action on the file's tree. Paths are relative to the file's tree; in a
/// declaration they may hold placeholders, once expanded they are plain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugAction {
    /// The value of the one node `path` matches (none if no node does).
    Get {
        /// The node.
        path: String,
    },
    /// The nodes `path` matches, each with its value.
    Match {
        /// The nodes.
        path: String,
    },
    /// Set (creating if missing) the one node `path` matches to `value`.
    Set {
        /// The node.
        path: String,
        /// The value.
        value: String,
    },
    /// Set `sub` under every node `base` matches to `value`.
    Setm {
        /// The nodes.
        base: String,
        /// Relative to each of them.
        sub: String,
        /// The value.
        value: String,
    },
    /// Insert a node labelled `label` before or after the one node `path` matches.
    Insert {
        /// The new node's label.
        label: String,
        /// The existing node.
        path: String,
        /// Before or after it.
        position: InsertPosition,
    },
    /// Move the one node `path` matches to `to` (replacing what is there).
    Move {
        /// The node.
        path: String,
        /// Where it goes.
        to: String,
    },
    /// Remove every node `path` matches, with their children.
    Remove {
        /// The nodes.
        path: String,
    },
}

/// What kind of slot a placeholder fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A whole label: a path step or an inserted label.
    Label,
    /// A whole quoted string in a predicate.
    Quoted,
    /// A whole index in a predicate (`[{n}]`).
    Index,
    /// (Part of) a value set.
    Value,
}

impl Slot {
    /// Checks `value` for this slot (see the module documentation).
    pub fn check(self, value: &str) -> Result<(), String> {
        match self {
            Slot::Label => check_label_value(value),
            Slot::Quoted => check_quoted_value(value),
            Slot::Index => check_index_value(value),
            Slot::Value => check_set_value(value),
        }
    }
}

/// One placeholder in an action: which field, its name, and the slot it fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AugPlaceholder {
    /// The action's field (`path`, `value`, `to`...).
    pub field: &'static str,
    /// The placeholder's name as written (`port`, `caller.user`).
    pub name: String,
    /// The slot it fills.
    pub slot: Slot,
}

/// An action that failed a check: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AugError {
    /// The action's field (`path`, `value`, `to`...).
    pub field: &'static str,
    /// Why.
    pub message: String,
    /// The placeholder whose value was refused, if that is why.
    pub placeholder: Option<String>,
}

impl AugError {
    fn new(field: &'static str, message: String) -> AugError {
        AugError {
            field,
            message,
            placeholder: None,
        }
    }
}

impl fmt::Display for AugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.placeholder {
            Some(p) => write!(f, "{}: the value of {{{p}}}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for AugError {}

/// Whether a string is a declaration (placeholders allowed) or expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Declared: `{name}` is a placeholder, `{{` and `}}` literal braces.
    Template,
    /// Expanded: no placeholders; braces only inside quoted strings.
    Concrete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Hole(String, Slot),
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.+#@%~:".contains(c)
}

/// Checks a value that fills a whole label: 1 to 255 of ASCII letters, digits and
/// `_ - . + # @ % ~`, not starting with `.`, without `..`.
pub fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("an empty label".into());
    }
    if v.len() > MAX_AUG_LABEL {
        return Err(format!("a label longer than {MAX_AUG_LABEL} bytes"));
    }
    if let Some(c) = v.chars().find(|c| !is_label_char(*c) || *c == ':') {
        return Err(format!(
            "{c:?} in a label (allowed: letters, digits, _ - . + # @ % ~)"
        ));
    }
    if v.starts_with('.') || v.contains("..") {
        return Err("a label starting with '.' or holding '..'".into());
    }
    Ok(())
}

/// Checks a value that fills a whole quoted string: no quote, backslash or
/// control character, at most 4096 bytes.
pub fn check_quoted_value(v: &str) -> Result<(), String> {
    if v.len() > MAX_AUG_VALUE {
        return Err(format!("longer than {MAX_AUG_VALUE} bytes"));
    }
    match v
        .chars()
        .find(|c| matches!(c, '\'' | '"' | '\\') || c.is_control())
    {
        Some(c) => Err(format!("{c:?} in a quoted string")),
        None => Ok(()),
    }
}

/// Checks a value that fills an index: 1 to 9 digits, not 0.
pub fn check_index_value(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("an index must be 1 to 9 digits".into());
    }
    if v.bytes().all(|b| b == b'0') {
        return Err("an index starts at 1".into());
    }
    Ok(())
}

/// Checks a value set: at most 4096 bytes, no control character but tab (a
/// newline could add a line the lens would write).
pub fn check_set_value(v: &str) -> Result<(), String> {
    if v.len() > MAX_AUG_VALUE {
        return Err(format!("a value longer than {MAX_AUG_VALUE} bytes"));
    }
    match v.chars().find(|c| c.is_control() && *c != '\t') {
        Some(c) => Err(format!("{c:?} in a value")),
        None => Ok(()),
    }
}

/// Checks a lens name and returns it as Augeas names it with autoload off:
/// `Sshd` and `Sshd.lns` give `Sshd.lns`, `Module.lens` stays.
pub fn check_lens(name: &str) -> Result<String, String> {
    let (module, lens) = name.split_once('.').unwrap_or((name, "lns"));
    let mut m = module.chars();
    let module_ok = m.next().is_some_and(|c| c.is_ascii_uppercase())
        && m.all(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut l = lens.chars();
    let lens_ok = l.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && l.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !module_ok || !lens_ok || name.len() > 128 {
        return Err(format!(
            "{name:?} is not a lens name (a module such as \"Sshd\", or \"Module.lens\")"
        ));
    }
    Ok(format!("{module}.{lens}"))
}

/// Checks a declared file: absolute, normalized (no `.`, `..` or empty
/// components, no trailing `/`), each component of ASCII letters, digits and
/// `_ - . + @ % ~` not starting with `.` (nothing a glob or an Augeas path would
/// read as syntax: the file is both Augeas's `incl` glob and part of its tree path).
pub fn check_file(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the file must be an absolute path".into());
    };
    if path.len() > 1024 {
        return Err("a path longer than 1024 bytes".into());
    }
    if rest.is_empty() {
        return Err("the file must name a file, not /".into());
    }
    for comp in rest.split('/') {
        if comp.is_empty() {
            return Err("an empty component ('//' or a trailing '/')".into());
        }
        if comp.starts_with('.') {
            return Err(format!("component {comp:?} starts with '.'"));
        }
        if let Some(c) = comp
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_-.+@%~".contains(*c)))
        {
            return Err(format!(
                "{c:?} in the file name (allowed: letters, digits, _ - . + @ % ~)"
            ));
        }
    }
    Ok(())
}

/// The tree path of a checked file: `/files/etc/hosts`.
#[must_use]
pub fn tree_path(file: &str) -> String {
    format!("/files{file}")
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    mode: Mode,
    pieces: Vec<Piece>,
    text: String,
    depth: usize,
}

/// Predicates nested deeper than this are refused (the parser recurses).
const MAX_NESTING: usize = 8;

impl<'a> Parser<'a> {
    fn new(s: &'a str, mode: Mode) -> Self {
        Parser {
            s,
            i: 0,
            mode,
            pieces: Vec::new(),
            text: String::new(),
            depth: 0,
        }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    fn take(&mut self, c: char) {
        self.bump();
        self.text.push(c);
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.i += lit.len();
            self.text.push_str(lit);
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn hole(&mut self, slot: Slot) -> Result<(), String> {
        // At a '{' that is not '{{'.
        self.bump();
        let end = match self.rest().find('}') {
            Some(end) => end,
            None => return self.err("an unclosed '{'"),
        };
        let name = &self.rest()[..end];
        if !is_placeholder_name(name) {
            return self.err(&format!("invalid placeholder name {{{name}}}"));
        }
        let name = name.to_string();
        self.i += end + 1;
        if !self.text.is_empty() {
            self.pieces
                .push(Piece::Text(std::mem::take(&mut self.text)));
        }
        self.pieces.push(Piece::Hole(name, slot));
        Ok(())
    }

    fn at_hole(&self) -> bool {
        self.mode == Mode::Template && self.peek() == Some('{') && !self.rest().starts_with("{{")
    }

    fn skip_ws(&mut self) {
        while let Some(c @ (' ' | '\t')) = self.peek() {
            self.take(c);
        }
    }

    fn path(&mut self) -> Result<(), String> {
        if self.peek() == Some('/') {
            return self.err("a path relative to the file's tree must not start with '/'");
        }
        loop {
            self.step()?;
            if self.peek() != Some('/') {
                return Ok(());
            }
            self.take('/');
            if self.peek() == Some('/') {
                return self.err("'//'");
            }
        }
    }

    fn step(&mut self) -> Result<(), String> {
        if self.at_hole() {
            self.hole(Slot::Label)?;
        } else if self.peek() == Some('*') {
            self.take('*');
        } else if self.rest().starts_with("..") {
            return self.err("'..' (a path stays inside the file's tree)");
        } else if self.peek() == Some('.') {
            self.take('.');
        } else {
            self.label()?;
        }
        while self.peek() == Some('[') {
            self.predicate()?;
        }
        Ok(())
    }

    fn label(&mut self) -> Result<(), String> {
        let len: usize = self
            .rest()
            .chars()
            .take_while(|c| is_label_char(*c))
            .map(char::len_utf8)
            .sum();
        let label = &self.rest()[..len];
        if label.is_empty() {
            return match self.peek() {
                None => self.err("a missing label"),
                Some(c) => self.err(&format!("{c:?} where a label is expected")),
            };
        }
        if label.contains("::") {
            return self.err("an axis ('::')");
        }
        if label.len() > MAX_AUG_LABEL {
            return self.err(&format!("a label longer than {MAX_AUG_LABEL} bytes"));
        }
        self.eat(label);
        Ok(())
    }

    fn predicate(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err(&format!("predicates nested deeper than {MAX_NESTING}"));
        }
        self.take('[');
        self.skip_ws();
        self.expr()?;
        self.skip_ws();
        if self.peek() != Some(']') {
            return self.err("expected ']'");
        }
        self.take(']');
        self.depth -= 1;
        Ok(())
    }

    fn expr(&mut self) -> Result<(), String> {
        loop {
            self.comparison()?;
            self.skip_ws();
            if self.eat("and ") || self.eat("or ") {
                self.skip_ws();
                continue;
            }
            return Ok(());
        }
    }

    fn comparison(&mut self) -> Result<(), String> {
        self.operand()?;
        self.skip_ws();
        if self.eat("!=") || self.eat("=") {
            self.skip_ws();
            self.operand()?;
        }
        Ok(())
    }

    fn operand(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => self.quoted(q),
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.take(d);
                }
                if self.peek().is_some_and(is_label_char) {
                    return self.err("a label starting with a digit in a predicate");
                }
                Ok(())
            }
            _ if self.at_hole() => self.hole(Slot::Index),
            _ if self.eat("last()") || self.eat("label()") => Ok(()),
            _ => {
                let start = self.i;
                self.path()?;
                if self.s[start..].starts_with("and ") || self.s[start..].starts_with("or ") {
                    return self.err("a missing operand");
                }
                Ok(())
            }
        }
    }

    fn quoted(&mut self, q: char) -> Result<(), String> {
        self.take(q);
        if self.at_hole() {
            self.hole(Slot::Quoted)?;
            if self.peek() != Some(q) {
                return self.err("a placeholder must fill the whole quoted string");
            }
            self.take(q);
            return Ok(());
        }
        loop {
            match self.bump() {
                None => return self.err("an unclosed quote"),
                Some(c) if c == q => {
                    self.text.push(c);
                    return Ok(());
                }
                Some('\\') => return self.err("a backslash in a quoted string"),
                Some(c) if c.is_control() => {
                    return self.err("a control character in a quoted string")
                }
                Some(c @ ('{' | '}')) if self.mode == Mode::Template => {
                    if self.peek() != Some(c) {
                        return self.err(&format!(
                            "a lone {c:?} in a quoted string (write it twice, or make the placeholder the whole string)"
                        ));
                    }
                    self.bump();
                    self.text.push(c);
                }
                Some(c) => self.text.push(c),
            }
        }
    }

    fn finish(mut self) -> Vec<Piece> {
        if !self.text.is_empty() {
            self.pieces.push(Piece::Text(self.text));
        }
        self.pieces
    }
}

/// True for a placeholder name: a parameter name (`[A-Za-z_][A-Za-z0-9_-]*`, at
/// most 64 bytes) or `caller.uid`, `caller.gid`, `caller.user`, `caller.client`.
#[must_use]
pub fn is_placeholder_name(name: &str) -> bool {
    if let Some(field) = name.strip_prefix("caller.") {
        return matches!(field, "uid" | "gid" | "user" | "client");
    }
    crate::param::is_valid_param_name(name)
}

fn parse_path(path: &str, mode: Mode) -> Result<Vec<Piece>, String> {
    if path.is_empty() {
        return Err("an empty path".into());
    }
    if path.len() > MAX_AUG_PATH {
        return Err(format!("a path longer than {MAX_AUG_PATH} bytes"));
    }
    let mut p = Parser::new(path, mode);
    p.path()?;
    if let Some(c) = p.peek() {
        return p.err(&format!("unexpected {c:?}"));
    }
    Ok(p.finish())
}

fn parse_label(label: &str, mode: Mode) -> Result<Vec<Piece>, String> {
    let mut p = Parser::new(label, mode);
    if p.at_hole() {
        p.hole(Slot::Label)?;
        if p.peek().is_some() {
            return Err("a placeholder must fill the whole label".into());
        }
        return Ok(p.finish());
    }
    check_label_value(label)?;
    Ok(vec![Piece::Text(label.to_string())])
}

fn parse_value(value: &str, mode: Mode) -> Result<Vec<Piece>, String> {
    if mode == Mode::Concrete {
        check_set_value(value)?;
        return Ok(vec![Piece::Text(value.to_string())]);
    }
    let mut p = Parser::new(value, mode);
    while let Some(c) = p.peek() {
        if p.at_hole() {
            p.hole(Slot::Value)?;
        } else if c == '}' && !p.rest().starts_with("}}") {
            return p.err("a lone '}' (write '}}')");
        } else if c == '{' || c == '}' {
            p.i += 2;
            p.text.push(c);
        } else {
            p.take(c);
        }
    }
    let pieces = p.finish();
    for piece in &pieces {
        if let Piece::Text(t) = piece {
            check_set_value(t)?;
        }
    }
    Ok(pieces)
}

/// Checks a path relative to the file's tree (see the module documentation) and
/// returns the placeholders it holds with their slots.
pub fn check_path(path: &str, mode: Mode) -> Result<Vec<(String, Slot)>, String> {
    Ok(holes(&parse_path(path, mode)?))
}

fn holes(pieces: &[Piece]) -> Vec<(String, Slot)> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Hole(n, s) => Some((n.clone(), *s)),
            Piece::Text(_) => None,
        })
        .collect()
}

/// How an action's field is read.
#[derive(Clone, Copy)]
enum Kind {
    Path,
    Label,
    Value,
}

fn parse_field(kind: Kind, s: &str, mode: Mode) -> Result<Vec<Piece>, String> {
    match kind {
        Kind::Path => parse_path(s, mode),
        Kind::Label => parse_label(s, mode),
        Kind::Value => parse_value(s, mode),
    }
}

impl AugAction {
    /// The action's name in the config: `get`, `match`, `set`, `setm`, `insert`,
    /// `move`, `remove`.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            AugAction::Get { .. } => "get",
            AugAction::Match { .. } => "match",
            AugAction::Set { .. } => "set",
            AugAction::Setm { .. } => "setm",
            AugAction::Insert { .. } => "insert",
            AugAction::Move { .. } => "move",
            AugAction::Remove { .. } => "remove",
        }
    }

    /// True for an action that changes the tree (all but `get` and `match`).
    #[must_use]
    pub const fn changes(&self) -> bool {
        !matches!(self, AugAction::Get { .. } | AugAction::Match { .. })
    }

    fn fields(&self) -> Vec<(&'static str, Kind, &String)> {
        match self {
            AugAction::Get { path } | AugAction::Match { path } | AugAction::Remove { path } => {
                vec![("path", Kind::Path, path)]
            }
            AugAction::Set { path, value } => {
                vec![("path", Kind::Path, path), ("value", Kind::Value, value)]
            }
            AugAction::Setm { base, sub, value } => vec![
                ("base", Kind::Path, base),
                ("sub", Kind::Path, sub),
                ("value", Kind::Value, value),
            ],
            AugAction::Insert { label, path, .. } => {
                vec![("label", Kind::Label, label), ("path", Kind::Path, path)]
            }
            AugAction::Move { path, to } => {
                vec![("path", Kind::Path, path), ("to", Kind::Path, to)]
            }
        }
    }

    fn fields_mut(&mut self) -> Vec<&mut String> {
        match self {
            AugAction::Get { path } | AugAction::Match { path } | AugAction::Remove { path } => {
                vec![path]
            }
            AugAction::Set { path, value } => vec![path, value],
            AugAction::Setm { base, sub, value } => vec![base, sub, value],
            AugAction::Insert { label, path, .. } => vec![label, path],
            AugAction::Move { path, to } => vec![path, to],
        }
    }

    /// Checks every field in `mode` and returns the placeholders, in order.
    pub fn check(&self, mode: Mode) -> Result<Vec<AugPlaceholder>, AugError> {
        let mut out = Vec::new();
        for (field, kind, s) in self.fields() {
            let pieces =
                parse_field(kind, s, mode).map_err(|message| AugError::new(field, message))?;
            out.extend(
                holes(&pieces)
                    .into_iter()
                    .map(|(name, slot)| AugPlaceholder { field, name, slot }),
            );
        }
        Ok(out)
    }

    /// Fills the placeholders of a declared action with `lookup`'s values. An
    /// action referring to a value `lookup` has not (an absent optional
    /// parameter) is left out (`Ok(None)`). Each value is checked for its slot,
    /// and every expanded field is checked again as a whole ([`Mode::Concrete`]).
    pub fn expand<F>(&self, lookup: F) -> Result<Option<AugAction>, AugError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut out = self.clone();
        let kinds: Vec<(&'static str, Kind)> =
            self.fields().into_iter().map(|(f, k, _)| (f, k)).collect();
        for ((field, kind), s) in kinds.into_iter().zip(out.fields_mut()) {
            let pieces = parse_field(kind, s, Mode::Template)
                .map_err(|message| AugError::new(field, message))?;
            let mut text = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => text.push_str(&t),
                    Piece::Hole(name, slot) => {
                        let Some(value) = lookup(&name) else {
                            return Ok(None);
                        };
                        slot.check(&value).map_err(|message| AugError {
                            field,
                            message,
                            placeholder: Some(name.clone()),
                        })?;
                        text.push_str(&value);
                    }
                }
            }
            parse_field(kind, &text, Mode::Concrete)
                .map_err(|m| AugError::new(field, format!("expanded: {m}")))?;
            *s = text;
        }
        Ok(Some(out))
    }
}

impl AugeasDecl {
    /// Checks the lens, the file and every action (declared: placeholders allowed).
    /// The error names the action's index, or `None` for the lens or the file.
    pub fn check(&self) -> Result<(), (Option<usize>, AugError)> {
        check_lens(&self.lens).map_err(|m| (None, AugError::new("lens", m)))?;
        check_file(&self.file).map_err(|m| (None, AugError::new("file", m)))?;
        for (i, a) in self.actions.iter().enumerate() {
            a.check(Mode::Template).map_err(|e| (Some(i), e))?;
        }
        Ok(())
    }

    /// Expands every action with `lookup` ([`AugAction::expand`]), leaving out
    /// those that refer to an absent value. The error names the action's index.
    pub fn expand<F>(&self, lookup: F) -> Result<Vec<AugAction>, (usize, AugError)>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut out = Vec::with_capacity(self.actions.len());
        for (i, a) in self.actions.iter().enumerate() {
            if let Some(a) = a.expand(&lookup).map_err(|e| (i, e))? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// True when some action changes the tree.
    #[must_use]
    pub fn changes(&self) -> bool {
        self.actions.iter().any(AugAction::changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> Vec<(String, Slot)> {
        check_path(p, Mode::Template).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn bad(p: &str) -> String {
        check_path(p, Mode::Template).expect_err(p)
    }

    #[test]
    fn accepted_paths() {
        for p in [
            "Port",
            "#comment[last()]",
            "ListenAddress[2]",
            "Match[1]/Settings/X11Forwarding",
            "*[canonical = 'localhost']/ipaddr",
            "*[canonical='a' and alias != \"b\"]/ipaddr",
            "main/server",
            "target[. = 'main']/key",
            "*[label() = 'x' or 1]",
            "net.ipv4.ip_forward",
            "Subsystem/sftp",
            "1/alias[last()]",
        ] {
            assert!(ok(p).is_empty(), "{p}");
        }
        assert_eq!(ok("{key}"), [("key".to_string(), Slot::Label)]);
        assert_eq!(
            ok("*[canonical = '{host}']/alias[{n}]"),
            [
                ("host".to_string(), Slot::Quoted),
                ("n".to_string(), Slot::Index)
            ]
        );
        assert_eq!(ok("Match/{caller.user}")[0].0, "caller.user");
        assert!(ok("*[x = '{{literal}}']").is_empty());
    }

    #[test]
    fn refused_paths() {
        for p in [
            "",
            "/files/etc/shadow",
            "..",
            "Port/../..",
            "a//b",
            "Port/",
            "parent::*",
            "ancestor::x",
            "$x",
            "*[. = $v]",
            "Port[count(/files) = 1]",
            "Port[/files/etc/shadow = 'x']",
            "a b",
            "a[",
            "a[1",
            "a]",
            "a[. = 'x]",
            "Po{rt}",
            "x{key}",
            "{key}x",
            "*['{a}b']",
            "*['a\\'']",
            "{bad name}",
            "{caller.home}",
            "a/b c",
            ".hidden",
            "a(b)",
        ] {
            bad(p);
        }
        let deep = |n: usize| format!("{}1{}", "a[".repeat(n), "]".repeat(n));
        assert!(ok(&deep(8)).is_empty());
        assert!(bad(&deep(9)).contains("nested deeper"));
    }

    #[test]
    fn slot_values() {
        assert!(check_label_value("PermitRootLogin").is_ok());
        assert!(check_label_value("net.ipv4.ip_forward").is_ok());
        assert!(check_label_value("#comment").is_ok());
        for v in [
            "", "a/b", "a[1]", "*", "..", ".", "a..b", "x y", "'", "\"", "a::b", "a:b", "$x",
            "last()",
        ] {
            assert!(check_label_value(v).is_err(), "{v:?}");
        }
        assert!(check_quoted_value("a b/c[*]..").is_ok());
        for v in ["'", "\"", "\\", "a\nb"] {
            assert!(check_quoted_value(v).is_err(), "{v:?}");
        }
        assert!(check_index_value("3").is_ok());
        for v in ["", "0", "-1", "1 ", "last()", "1234567890"] {
            assert!(check_index_value(v).is_err(), "{v:?}");
        }
        assert!(check_set_value("a b\t'\"/[]*..{}").is_ok());
        assert!(check_set_value("yes\nPermitRootLogin yes").is_err());
        assert!(check_set_value(&"x".repeat(MAX_AUG_VALUE + 1)).is_err());
    }

    #[test]
    fn lens_and_file() {
        assert_eq!(check_lens("Sshd").unwrap(), "Sshd.lns");
        assert_eq!(check_lens("Sshd.lns").unwrap(), "Sshd.lns");
        assert_eq!(check_lens("Puppet.lns").unwrap(), "Puppet.lns");
        for l in ["sshd", "@Sshd", "Sshd.", "Sshd.lns.x", "S/x", ""] {
            assert!(check_lens(l).is_err(), "{l}");
        }
        assert!(check_file("/etc/ssh/sshd_config").is_ok());
        for f in [
            "etc/hosts",
            "/",
            "/etc/",
            "/etc//hosts",
            "/etc/../shadow",
            "/etc/./hosts",
            "/etc/*",
            "/etc/host?",
            "/etc/[ab]",
            "/etc/a b",
            "/root/.ssh/config",
        ] {
            assert!(check_file(f).is_err(), "{f}");
        }
    }

    fn lookup(name: &str) -> Option<String> {
        match name {
            "port" => Some("2222".into()),
            "key" => Some("PermitRootLogin".into()),
            "evil" => Some("../../shadow".into()),
            "star" => Some("*".into()),
            "quote" => Some("x' or '1".into()),
            "host" => Some("my host/x".into()),
            "nl" => Some("no\nPermitRootLogin yes".into()),
            "n" => Some("2".into()),
            _ => None,
        }
    }

    fn set(path: &str, value: &str) -> AugAction {
        AugAction::Set {
            path: path.into(),
            value: value.into(),
        }
    }

    #[test]
    fn expansion() {
        let a = set("{key}", "-p {port}").expand(lookup).unwrap().unwrap();
        assert_eq!(a, set("PermitRootLogin", "-p 2222"));
        let a = set("*[canonical = '{host}']/alias[{n}]", "x")
            .expand(lookup)
            .unwrap()
            .unwrap();
        assert_eq!(a, set("*[canonical = 'my host/x']/alias[2]", "x"));
        // An absent value leaves the action out.
        assert_eq!(set("Port", "{absent}").expand(lookup), Ok(None));
        // Values that would change the structure are refused, naming the field.
        for (path, value) in [
            ("{evil}", "x"),
            ("{star}", "x"),
            ("*[a = '{quote}']", "x"),
            ("a[{port}x]", "x"),
            ("Port", "{nl}"),
            ("a[{key}]", "x"),
        ] {
            let e = set(path, value).expand(lookup);
            assert!(e.is_err(), "{path} {value}: {e:?}");
        }
        let e = set("Port", "{nl}").expand(lookup).unwrap_err();
        assert_eq!(e.field, "value");
        // Braces stay literal.
        let a = set("a", "{{x}}").expand(lookup).unwrap().unwrap();
        assert_eq!(a, set("a", "{x}"));
        let a = set("*[a = '{{x}}']", "v").expand(lookup).unwrap().unwrap();
        assert_eq!(a, set("*[a = '{x}']", "v"));
    }

    #[test]
    fn insert_label_and_placeholders() {
        let a = AugAction::Insert {
            label: "{key}".into(),
            path: "Port".into(),
            position: InsertPosition::After,
        };
        let ph = a.check(Mode::Template).unwrap();
        assert_eq!(ph[0].field, "label");
        assert_eq!(ph[0].slot, Slot::Label);
        let bad = AugAction::Insert {
            label: "a/b".into(),
            path: "Port".into(),
            position: InsertPosition::After,
        };
        assert_eq!(bad.check(Mode::Template).unwrap_err().field, "label");
        let decl = AugeasDecl {
            lens: "Sshd".into(),
            file: "/etc/ssh/sshd_config".into(),
            actions: vec![a, set("../x", "1")],
        };
        let (i, e) = decl.check().unwrap_err();
        assert_eq!((i, e.field), (Some(1), "path"));
        let json = serde_json::to_string(&decl.actions[0]).unwrap();
        assert_eq!(
            json,
            r#"{"insert":{"label":"{key}","path":"Port","position":"after"}}"#
        );
    }
}
