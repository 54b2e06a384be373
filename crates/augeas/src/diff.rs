//! Unified diffs of a declared file, with secret values redacted.

use similar::TextDiff;

/// What a redacted secret reads as.
pub const REDACTED: &str = "<redacted>";

/// The unified diff (3 lines of context) from `before` to `after`, both headers
/// naming `file`, every non-empty string of `secrets` replaced by [`REDACTED`].
#[must_use]
pub fn unified(file: &str, before: &str, after: &str, secrets: &[&str]) -> String {
    let diff = TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(file, file)
        .to_string();
    redact(diff, secrets)
}

/// `text` with every non-empty string of `secrets` replaced by [`REDACTED`],
/// longest first (so a secret that contains another is not half shown).
#[must_use]
pub fn redact(mut text: String, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        text = text.replace(s, REDACTED);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_and_redaction() {
        let d = unified(
            "/etc/x",
            "a 1\nb 2\n",
            "a 1\nb hunter22\n",
            &["hunter22", ""],
        );
        assert_eq!(
            d,
            "--- /etc/x\n+++ /etc/x\n@@ -1,2 +1,2 @@\n a 1\n-b 2\n+b <redacted>\n"
        );
        assert_eq!(unified("/etc/x", "a\n", "a\n", &[]), "");
        assert_eq!(redact("xabcx".into(), &["ab", "abc"]), "x<redacted>x");
    }
}
