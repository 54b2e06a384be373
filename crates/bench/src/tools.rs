//! The bare C reference tools of `shared/bench` (`userver`, `uclient`), found and
//! built with their own `build.sh` into a private temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `shared/` is: `explicit`, else `$REGENT_SHARED`, else `<workspace>/../shared`.
pub fn locate_shared(
    explicit: Option<&Path>,
    workspace_root: Option<&Path>,
) -> Result<PathBuf, String> {
    let candidate = if let Some(p) = explicit {
        p.to_path_buf()
    } else if let Some(p) = std::env::var_os("REGENT_SHARED") {
        PathBuf::from(p)
    } else if let Some(root) = workspace_root {
        root.join("..").join("shared")
    } else {
        return Err(
            "cannot find shared/: set REGENT_SHARED to the directory holding bench/build.sh".into(),
        );
    };
    if candidate.join("bench/build.sh").is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "{} has no bench/build.sh: set REGENT_SHARED to the shared/ directory of the project",
            candidate.display()
        ))
    }
}

/// The built tools; the directory goes away when this is dropped.
pub struct RefTools {
    dir: tempfile::TempDir,
    /// The bare line server.
    pub userver: PathBuf,
    /// The load generator.
    pub uclient: PathBuf,
    /// Times fork+exec+wait of a command.
    pub spawnloop: PathBuf,
}

impl RefTools {
    /// Build the tools from `shared/bench` (needs `sh` and `gcc`).
    pub fn build(shared: &Path) -> Result<RefTools, String> {
        let dir = tempfile::Builder::new()
            .prefix("regent-ref-bench.")
            .tempdir()
            .map_err(|e| format!("creating a directory for the C tools: {e}"))?;
        // The load clients run as unprivileged users: they must reach their binary.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", dir.path().display()))?;
        let script = shared.join("bench/build.sh");
        let out = Command::new("sh")
            .arg(&script)
            .env("BIN", dir.path())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed (is gcc installed?): {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let tools = RefTools {
            userver: dir.path().join("userver"),
            uclient: dir.path().join("uclient"),
            spawnloop: dir.path().join("spawnloop"),
            dir,
        };
        for t in [&tools.userver, &tools.uclient, &tools.spawnloop] {
            if !t.is_file() {
                return Err(format!("{} was not built", t.display()));
            }
        }
        Ok(tools)
    }

    /// The directory holding the tools.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
