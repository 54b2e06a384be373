//! Path values: lexical checks (pure) and the request-time symlink check (I/O).
//!
//! A path parameter must be absolute, contain no NUL and no `..` component; `.`
//! components and repeated or trailing slashes are removed lexically. Its `under`
//! prefix is checked component-wise. Symlinks can only be checked against the live
//! filesystem: [`check_path_no_symlink_escape`] resolves them and re-checks the prefix.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::Error;

/// Longest accepted path, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// Lexically normalises an absolute path: removes `.` and empty components; refuses
/// relative paths, `..`, NUL and over-long paths. Does no I/O.
pub fn normalize_path(text: &str) -> Result<PathBuf, String> {
    if text.contains('\0') {
        return Err("must not contain a NUL character".into());
    }
    if text.len() > MAX_PATH_LEN {
        return Err(format!("must be at most {MAX_PATH_LEN} bytes"));
    }
    if !text.starts_with('/') {
        return Err("must be an absolute path".into());
    }
    let mut out = PathBuf::from("/");
    for comp in Path::new(text).components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err("must not contain '..'".into()),
            Component::Normal(c) => out.push(c),
            Component::Prefix(_) => return Err("must be an absolute path".into()),
        }
    }
    Ok(out)
}

/// Checks a (normalised) path against an optional `under` prefix, lexically.
pub(crate) fn check_under(path: &Path, under: Option<&Path>) -> Result<(), String> {
    match under {
        Some(u) if !path.starts_with(u) => Err(format!("must be under {}", u.display())),
        _ => Ok(()),
    }
}

/// The one answer for a path that cannot be used: `not found under <under>` (or
/// `not found`), whether it is missing, escapes `under`, crosses a symlink, or is
/// not permitted, so that a caller learns nothing about files it cannot see.
#[must_use]
pub fn not_found_message(under: Option<&Path>) -> String {
    match under {
        Some(u) => format!("not found under {}", u.display()),
        None => "not found".to_string(),
    }
}

/// The caller-facing reason for a failed [`check_path_no_symlink_escape`]: a path
/// that is not well formed says why; every other failure is
/// [`not_found_message`].
pub(crate) fn refusal(e: &Error, under: Option<&Path>) -> String {
    match e {
        Error::PathInvalid(why) => why.clone(),
        _ => not_found_message(under),
    }
}

/// Request-time check of a path parameter against the live filesystem.
///
/// Advisory: it can be raced; see [`crate::check_paths`].
///
/// Resolves symlinks in the longest existing prefix of `path`, refuses a dangling
/// symlink as the first missing component (a write through it could land
/// anywhere), and re-checks that the resolved path is under the resolved `under`.
/// With `must_exist`, the whole path must exist. Returns the resolved path, which
/// is what the command should receive (it contains no symlinks at check time).
pub fn check_path_no_symlink_escape(
    path: &Path,
    under: Option<&Path>,
    must_exist: bool,
) -> Result<PathBuf, Error> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::PathInvalid("path is not valid UTF-8".into()))?;
    let norm = normalize_path(text).map_err(Error::PathInvalid)?;
    check_under(&norm, under).map_err(|_| Error::PathEscapes)?;
    let resolved = resolve_existing_prefix(&norm, must_exist)?;
    if let Some(u) = under {
        let ru = std::fs::canonicalize(u).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::PathNotFound,
            _ => Error::PathIo(e),
        })?;
        if !resolved.starts_with(&ru) {
            return Err(Error::PathEscapes);
        }
    }
    Ok(resolved)
}

fn resolve_existing_prefix(norm: &Path, must_exist: bool) -> Result<PathBuf, Error> {
    let mut missing: Vec<&std::ffi::OsStr> = Vec::new();
    let mut cur = norm;
    loop {
        match std::fs::canonicalize(cur) {
            Ok(real) => {
                if let Some(first) = missing.last() {
                    if must_exist {
                        return Err(Error::PathNotFound);
                    }
                    // canonicalize said "not found" for cur/first: if an entry exists
                    // there anyway, it is a dangling symlink.
                    match std::fs::symlink_metadata(real.join(first)) {
                        Ok(_) => return Err(Error::DanglingSymlink),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::PathIo(e)),
                    }
                }
                let mut out = real;
                for c in missing.iter().rev() {
                    out.push(c);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (cur.parent(), cur.file_name()) else {
                    return Err(Error::PathNotFound);
                };
                missing.push(name);
                cur = parent;
            }
            Err(e) => return Err(Error::PathIo(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn lexical_normalisation() {
        let ok = [
            ("/", "/"),
            ("/srv/x", "/srv/x"),
            ("/srv//x/", "/srv/x"),
            ("/srv/./x/.", "/srv/x"),
            ("/srv/x..y", "/srv/x..y"),
            ("/srv/...", "/srv/..."),
        ];
        for (s, n) in ok {
            assert_eq!(normalize_path(s), Ok(PathBuf::from(n)), "{s}");
        }
        for bad in [
            "",
            "srv/x",
            "./x",
            "/srv/../etc",
            "/srv/x/..",
            "/..",
            "/srv/\0x",
            "~/x",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(normalize_path(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
    }

    #[test]
    fn under_is_component_wise() {
        let u = Path::new("/srv/data");
        assert!(check_under(Path::new("/srv/data"), Some(u)).is_ok());
        assert!(check_under(Path::new("/srv/data/x"), Some(u)).is_ok());
        assert!(check_under(Path::new("/srv/database"), Some(u)).is_err());
        assert!(check_under(Path::new("/srv"), Some(u)).is_err());
        assert!(check_under(Path::new("/etc"), None).is_ok());
    }

    #[test]
    fn symlink_escape_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let under = root.join("under");
        let outside = root.join("outside");
        std::fs::create_dir_all(under.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(under.join("sub/file"), b"x").unwrap();
        std::fs::write(outside.join("secret"), b"x").unwrap();
        symlink(&outside, under.join("evil")).unwrap();
        symlink(under.join("sub"), under.join("good")).unwrap();
        symlink(outside.join("nothing-here"), under.join("dangling")).unwrap();

        let u = Some(under.as_path());
        // Plain file inside.
        assert_eq!(
            check_path_no_symlink_escape(&under.join("sub/file"), u, true).unwrap(),
            under.join("sub/file")
        );
        // Symlink that stays inside resolves to the real path.
        assert_eq!(
            check_path_no_symlink_escape(&under.join("good/file"), u, true).unwrap(),
            under.join("sub/file")
        );
        // Symlink pointing outside, existing or not at the end.
        assert!(matches!(
            check_path_no_symlink_escape(&under.join("evil/secret"), u, true),
            Err(Error::PathEscapes)
        ));
        assert!(matches!(
            check_path_no_symlink_escape(&under.join("evil/new-file"), u, false),
            Err(Error::PathEscapes)
        ));
        // A dangling symlink as the target of a write.
        assert!(matches!(
            check_path_no_symlink_escape(&under.join("dangling"), u, false),
            Err(Error::DanglingSymlink)
        ));
        // Missing files: allowed unless must_exist.
        assert_eq!(
            check_path_no_symlink_escape(&under.join("sub/new/deeper"), u, false).unwrap(),
            under.join("sub/new/deeper")
        );
        assert!(matches!(
            check_path_no_symlink_escape(&under.join("sub/new"), u, true),
            Err(Error::PathNotFound)
        ));
        // Lexical escapes are refused before any I/O.
        assert!(matches!(
            check_path_no_symlink_escape(&outside.join("secret"), u, true),
            Err(Error::PathEscapes)
        ));
        assert!(matches!(
            check_path_no_symlink_escape(&under.join("../outside/secret"), u, true),
            Err(Error::PathInvalid(_))
        ));
        // An `under` that is itself reached through a symlink still works.
        let alias = root.join("alias");
        symlink(&under, &alias).unwrap();
        assert_eq!(
            check_path_no_symlink_escape(&alias.join("sub/file"), Some(&alias), true).unwrap(),
            under.join("sub/file")
        );
    }
}
