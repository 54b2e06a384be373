//! Resolving `argv[0]` to an executable file: absolute paths as given, bare names
//! against the policy's `command_path` (absolute entries only). Relative paths
//! with a `/` are refused (no cwd games).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::ExecError;

fn is_executable_file(p: &Path) -> bool {
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Check the argument vector and find the program it names, a bare name in the
/// directories of `search` (a `PATH`-style list; relative entries are skipped).
pub(crate) fn resolve_program(argv: &[String], search: &str) -> Result<PathBuf, ExecError> {
    let Some(program) = argv.first() else {
        return Err(ExecError::Invalid {
            reason: "empty argv".into(),
        });
    };
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(ExecError::Invalid {
            reason: "an argument contains a NUL byte".into(),
        });
    }
    if program.is_empty() {
        return Err(ExecError::Invalid {
            reason: "empty program name".into(),
        });
    }
    let not_found = || ExecError::NotFound {
        program: program.clone(),
    };
    if program.starts_with('/') {
        let p = PathBuf::from(program);
        return if p.exists() { Ok(p) } else { Err(not_found()) };
    }
    if program.contains('/') {
        return Err(ExecError::Invalid {
            reason: format!("program {program:?} must be an absolute path or a bare name"),
        });
    }
    search
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(program))
        .find(|p| is_executable_file(p))
        .ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FIXED_PATH;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn resolves_and_refuses() {
        let p = resolve_program(&argv(&["cat"]), FIXED_PATH).unwrap();
        assert!(p.is_absolute() && p.ends_with("cat"), "{p:?}");
        assert!(matches!(
            resolve_program(&argv(&["no-such-prog-xyz"]), FIXED_PATH),
            Err(ExecError::NotFound { .. })
        ));
        assert!(matches!(
            resolve_program(&argv(&["/no/such/prog"]), FIXED_PATH),
            Err(ExecError::NotFound { .. })
        ));
        assert!(matches!(
            resolve_program(&argv(&["./cat"]), FIXED_PATH),
            Err(ExecError::Invalid { .. })
        ));
        assert!(matches!(
            resolve_program(&[], FIXED_PATH),
            Err(ExecError::Invalid { .. })
        ));
        assert!(matches!(
            resolve_program(&argv(&["cat", "a\0b"]), FIXED_PATH),
            Err(ExecError::Invalid { .. })
        ));
        // Only the given search path counts; relative entries are skipped.
        assert!(matches!(
            resolve_program(&argv(&["cat"]), "/nonexistent-dir:bin:usr/bin"),
            Err(ExecError::NotFound { .. })
        ));
        let p = resolve_program(&argv(&["cat"]), "/nonexistent-dir:/bin").unwrap();
        assert_eq!(p, Path::new("/bin/cat"));
    }
}
