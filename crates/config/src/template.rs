//! Command templates: argv arrays whose elements may contain `{placeholders}`.
//!
//! Rules (no shell is ever involved):
//! - Each template element renders to exactly ONE argv element, never split, whatever
//!   the values contain (spaces, quotes, `;`...). An element may mix text and
//!   placeholders, e.g. `"--to={ip}"`, and still renders as one element.
//! - `{name}` is a declared parameter; `{caller.uid}`, `{caller.gid}` and
//!   `{caller.user}` are the caller's kernel identity (a [`Principal`]; `user` is
//!   the uid in decimal when the user database has no name for it);
//!   `{caller.client}` is a TLS client's certificate name (empty for a Unix
//!   peer). `{{` and `}}` are literal braces.
//! - An element that refers to an optional parameter absent from the request is
//!   left out entirely (so `"--limit={n}"` disappears when `n` is not given).
//! - `command[0]` is literal: an absolute path or a bare program name without `/`.

use std::fmt;

use regent_model::Principal;

use crate::error::Error;
use crate::values::Params;

/// One value a template can refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// A declared parameter.
    Param(String),
    /// `{caller.uid}`.
    CallerUid,
    /// `{caller.gid}`.
    CallerGid,
    /// `{caller.user}`.
    CallerUser,
    /// `{caller.client}`: a TLS client's certificate name (empty for a Unix peer).
    CallerClient,
}

impl Placeholder {
    /// True for the placeholders only a Unix peer has: `{caller.uid}`,
    /// `{caller.gid}`, `{caller.user}`.
    #[must_use]
    pub fn is_unix_identity(&self) -> bool {
        matches!(
            self,
            Placeholder::CallerUid | Placeholder::CallerGid | Placeholder::CallerUser
        )
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Param(p) => f.write_str(p),
            Placeholder::CallerUid => f.write_str("caller.uid"),
            Placeholder::CallerGid => f.write_str("caller.gid"),
            Placeholder::CallerUser => f.write_str("caller.user"),
            Placeholder::CallerClient => f.write_str("caller.client"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Hole(Placeholder),
}

/// A parsed command template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    args: Vec<Vec<Piece>>,
}

pub use regent_model::is_valid_param_name;

fn parse_element(s: &str) -> Result<Vec<Piece>, String> {
    if s.contains('\0') {
        return Err("contains a NUL character".into());
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err("unmatched '}' (write '}}' for a literal brace)".into()),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err("unclosed '{' (write '{{' for a literal brace)".into())
                        }
                        Some(ch) => name.push(ch),
                    }
                }
                let hole = match name.as_str() {
                    "caller.uid" => Placeholder::CallerUid,
                    "caller.gid" => Placeholder::CallerGid,
                    "caller.user" => Placeholder::CallerUser,
                    "caller.client" => Placeholder::CallerClient,
                    n if n.starts_with("caller.") => {
                        return Err(format!(
                            "unknown placeholder {{{n}}} (caller has uid, gid, user and client)"
                        ))
                    }
                    n if is_valid_param_name(n) => Placeholder::Param(n.to_string()),
                    n => return Err(format!("invalid placeholder name {{{n}}}")),
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Hole(hole));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

impl Template {
    /// Parses a command array. Checks the syntax of every element and that
    /// `command[0]` is a literal absolute path or a bare name without `/`; it does
    /// not check that parameters are declared (see [`crate::parse`] for that).
    pub fn parse<S: AsRef<str>>(elements: &[S]) -> Result<Template, Error> {
        if elements.is_empty() {
            return Err(Error::Template {
                index: 0,
                reason: "command is empty".into(),
            });
        }
        let mut args = Vec::with_capacity(elements.len());
        for (index, e) in elements.iter().enumerate() {
            let pieces =
                parse_element(e.as_ref()).map_err(|reason| Error::Template { index, reason })?;
            if index == 0 {
                check_program(&pieces).map_err(|reason| Error::Template { index, reason })?;
            }
            args.push(pieces);
        }
        Ok(Template { args })
    }

    /// Parses one text template (a module's name field, e.g. `"{unit}"` or
    /// `"app-{name}"`): the syntax of one element, with no program rule.
    pub fn parse_text(text: &str) -> Result<Template, String> {
        Ok(Template {
            args: vec![parse_element(text)?],
        })
    }

    /// Renders a one-element template made by [`Template::parse_text`] from
    /// parameters alone (`{caller.*}` renders empty: module templates refuse it);
    /// `None` when it refers to an absent parameter or a secret one.
    #[must_use]
    pub fn render_text(&self, params: &Params) -> Option<String> {
        let mut out = String::new();
        for piece in self.args.first()? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Hole(Placeholder::Param(name)) => match params.get(name) {
                    Some(v) if !v.is_secret() => out.push_str(v.as_str()),
                    _ => return None,
                },
                Piece::Hole(_) => {}
            }
        }
        Some(out)
    }

    /// Every text a one-element template can render to when each of its
    /// parameters takes one of `values(name)`; `None` when a parameter has no
    /// finite list or there would be more than `max` texts.
    #[must_use]
    pub fn expand_text<'a, F>(&self, values: F, max: usize) -> Option<Vec<String>>
    where
        F: Fn(&str) -> Option<&'a [String]>,
    {
        let mut outs = vec![String::new()];
        for piece in self.args.first()? {
            match piece {
                Piece::Text(t) => outs.iter_mut().for_each(|o| o.push_str(t)),
                Piece::Hole(Placeholder::Param(name)) => {
                    let vals = values(name)?;
                    if outs.len().saturating_mul(vals.len()) > max {
                        return None;
                    }
                    outs = outs
                        .iter()
                        .flat_map(|o| vals.iter().map(move |v| format!("{o}{v}")))
                        .collect();
                }
                Piece::Hole(_) => return None,
            }
        }
        Some(outs)
    }

    /// The program (`command[0]`), literal.
    #[must_use]
    pub fn program(&self) -> &str {
        match self.args.first().and_then(|a| a.first()) {
            Some(Piece::Text(t)) => t,
            _ => "",
        }
    }

    /// Number of template elements (argv length when nothing is left out).
    #[must_use]
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Always false for a parsed template (command\[0\] exists).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Every placeholder used, in order, with repeats.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.args.iter().flatten().filter_map(|p| match p {
            Piece::Hole(h) => Some(h),
            Piece::Text(_) => None,
        })
    }

    /// The placeholders used by element `index`.
    pub(crate) fn element_placeholders(&self, index: usize) -> impl Iterator<Item = &Placeholder> {
        self.args[index].iter().filter_map(|p| match p {
            Piece::Hole(h) => Some(h),
            Piece::Text(_) => None,
        })
    }

    /// The placeholders of element `index` that something follows in that element
    /// (more text or another placeholder).
    pub(crate) fn followed_placeholders(&self, index: usize) -> impl Iterator<Item = &Placeholder> {
        let pieces = &self.args[index];
        pieces
            .iter()
            .take(pieces.len().saturating_sub(1))
            .filter_map(|p| match p {
                Piece::Hole(h) => Some(h),
                Piece::Text(_) => None,
            })
    }

    /// Renders argv: one output element per template element, never split; an
    /// element referring to an absent optional parameter is left out. A secret
    /// parameter (which a validated config never puts in argv) renders as
    /// `<redacted>`, so a secret cannot reach argv even through a hand-built template.
    #[must_use]
    pub fn render(&self, params: &Params, caller: &Principal) -> Vec<String> {
        self.render_with(params, caller, |_| None)
    }

    /// Like [`Template::render`], except that a present parameter for which
    /// `replace` returns text renders as that text instead of its value (the daemon
    /// uses it to put `/proc/self/fd/N` where a path parameter goes).
    #[must_use]
    pub fn render_with<F>(&self, params: &Params, caller: &Principal, replace: F) -> Vec<String>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut argv = Vec::with_capacity(self.args.len());
        'elements: for pieces in &self.args {
            let mut out = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Hole(Placeholder::CallerUid) => out.push_str(&caller.uid.to_string()),
                    Piece::Hole(Placeholder::CallerGid) => out.push_str(&caller.gid.to_string()),
                    Piece::Hole(Placeholder::CallerUser) => out.push_str(&caller.user_or_uid()),
                    Piece::Hole(Placeholder::CallerClient) => {
                        out.push_str(caller.client().unwrap_or_default());
                    }
                    Piece::Hole(Placeholder::Param(name)) => match params.get(name) {
                        Some(v) if v.is_secret() => out.push_str("<redacted>"),
                        Some(v) => match replace(name) {
                            Some(text) => out.push_str(&text),
                            None => out.push_str(v.as_str()),
                        },
                        None => continue 'elements,
                    },
                }
            }
            argv.push(out);
        }
        argv
    }
}

fn check_program(pieces: &[Piece]) -> Result<(), String> {
    let prog = match pieces {
        [Piece::Text(t)] => t.as_str(),
        _ => return Err("the program (command[0]) must not contain placeholders".into()),
    };
    if prog.is_empty() {
        return Err("the program (command[0]) is empty".into());
    }
    if prog.starts_with('/') {
        if prog.ends_with('/') || prog.split('/').any(|c| c == "." || c == "..") {
            return Err("the program path must be a normalised absolute path".into());
        }
        return Ok(());
    }
    if prog.contains('/') {
        return Err(
            "the program must be an absolute path or a bare name without '/' (found in PATH)"
                .into(),
        );
    }
    if prog.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the program name contains whitespace or control characters".into());
    }
    Ok(())
}

impl fmt::Display for Template {
    /// Shows the template as a TOML/JSON array, with placeholders as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, pieces) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => s.push_str(&t.replace('{', "{{").replace('}', "}}")),
                    Piece::Hole(h) => s.push_str(&format!("{{{h}}}")),
                }
            }
            write!(f, "{}", serde_json::Value::String(s))?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(elements: &[&str]) -> (usize, String) {
        match Template::parse(elements) {
            Err(Error::Template { index, reason }) => (index, reason),
            other => panic!("expected a template error for {elements:?}, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_element() {
        assert_eq!(reason(&[]).1, "command is empty");
        assert_eq!(reason(&["ls", "{}"]).0, 1);
        assert!(reason(&["ls", "{}"]).1.contains("invalid placeholder name"));
        assert!(reason(&["ls", "{a b}"])
            .1
            .contains("invalid placeholder name"));
        assert!(reason(&["ls", "{a{b}"]).1.contains("unclosed"));
        assert!(reason(&["ls", "x", "a\0b"]).1.contains("NUL"));
        assert_eq!(reason(&["ls", "x", "a\0b"]).0, 2);
        assert!(reason(&["my prog"]).1.contains("whitespace"));
        assert!(reason(&["/usr/bin/"]).1.contains("normalised"));
        assert!(reason(&["./ls"]).1.contains("absolute path or a bare name"));
        // Escaped braces are literal text, so this program is the literal name "{x}".
        assert_eq!(Template::parse(&["{{x}}"]).unwrap().program(), "{x}");
    }

    #[test]
    fn escapes_and_placeholders() {
        let t = Template::parse(&["printf", "{{{a}}}", "", "{a}{b}", "x{caller.user}y"]).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.program(), "printf");
        let ph: Vec<String> = t.placeholders().map(ToString::to_string).collect();
        assert_eq!(ph, ["a", "a", "b", "caller.user"]);
        let caller = Principal::unix(None, 0, 0, Some("root".into()));
        // No params given: elements using a or b are left out; the empty one stays.
        assert_eq!(
            t.render(&Params::default(), &caller),
            ["printf", "", "xrooty"]
        );
    }

    #[test]
    fn param_names() {
        for ok in ["a", "ip", "service_name", "service-name", "_x", "A1"] {
            assert!(is_valid_param_name(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", "a.b", "a b", "é", &"a".repeat(65)] {
            assert!(!is_valid_param_name(bad), "{bad}");
        }
    }
}
