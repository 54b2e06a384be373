//! Where the CLI gets the socket secret: a file or the environment, never argv.

use std::path::Path;
use zeroize::Zeroizing;

/// Read the secret: `--secret-file` first, then `REGENT_SECRET`. `None` if neither.
pub fn load(file: Option<&Path>) -> Result<Option<Zeroizing<String>>, String> {
    if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
        );
        let trimmed = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string());
        if trimmed.is_empty() {
            return Err(format!("secret file {} is empty", path.display()));
        }
        return Ok(Some(trimmed));
    }
    match std::env::var("REGENT_SECRET") {
        Ok(s) if !s.is_empty() => Ok(Some(Zeroizing::new(s))),
        _ => Ok(None),
    }
}
