//! Showing text a caller sent to a person: on a terminal, in a mail.
//!
//! Text that reaches a person can lie about itself: an escape sequence rewrites the
//! screen, a carriage return overprints a line, U+202E (right-to-left override)
//! shows `txt.exe` as `exe.txt`, a zero-width space makes two different values look
//! the same. [`escape`] makes every such character visible as `\u{XXXX}`:
//!
//! - C0 and C1 controls and DEL (general category Cc), except newline and tab when
//!   the text is shown as several lines ([`Layout::Lines`]);
//! - format characters (Cf: bidirectional overrides and isolates, zero-width
//!   characters, soft hyphen, BOM, tag characters...);
//! - the line and paragraph separators U+2028 and U+2029 (Zl, Zp).
//!
//! Everything else, including every printable character of any script, is kept.
//! A backslash is kept as it is: an escaped character and the same six characters
//! typed literally look alike, but neither hides what the value holds.

use std::borrow::Cow;
use std::fmt::Write as _;

/// How the text is laid out where it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One line: newline and tab are escaped too (a field in a listing, an error
    /// message, a mail subject).
    Line,
    /// Several lines: newline and tab are kept (an operation's output, a mail body).
    Lines,
}

/// Unicode general category Cf (format), Unicode 16.0.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// True for a format character (Unicode category Cf: bidirectional controls,
/// zero-width characters, soft hyphen, BOM, tags...) or a line or paragraph
/// separator (Zl, Zp): characters that are invisible or change how the text
/// around them is shown.
#[must_use]
pub fn is_hidden_format(c: char) -> bool {
    let n = u32::from(c);
    if n == 0x2028 || n == 0x2029 {
        return true;
    }
    FORMAT
        .binary_search_by(|&(lo, hi)| {
            if hi < n {
                std::cmp::Ordering::Less
            } else if lo > n {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// True for a character [`escape`] rewrites in `layout`.
#[must_use]
pub fn needs_escape(c: char, layout: Layout) -> bool {
    match c {
        '\n' | '\t' => layout == Layout::Line,
        c => c.is_control() || is_hidden_format(c),
    }
}

/// `text` with every control, format and separator character written as
/// `\u{XXXX}` (see the module docs); borrowed when nothing needed escaping.
#[must_use]
pub fn escape(text: &str, layout: Layout) -> Cow<'_, str> {
    let Some(first) = text.find(|c| needs_escape(c, layout)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if needs_escape(c, layout) {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for one line.
#[must_use]
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape(text, Layout::Line)
}

/// [`escape`] for text shown as several lines (newline and tab kept).
#[must_use]
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape(text, Layout::Lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_override_and_isolates_are_shown() {
        // "invoice_\u{202e}fdp.exe" shows as "invoice_exe.pdf" on a terminal.
        assert_eq!(
            escape_line("invoice_\u{202e}fdp.exe"),
            "invoice_\\u{202e}fdp.exe"
        );
        assert_eq!(escape_line("a\u{2066}b\u{2069}"), "a\\u{2066}b\\u{2069}");
        assert_eq!(escape_line("\u{200f}"), "\\u{200f}");
    }

    #[test]
    fn zero_width_and_invisible_characters_are_shown() {
        assert_eq!(escape_line("ro\u{200b}ot"), "ro\\u{200b}ot");
        assert_eq!(escape_line("\u{feff}x\u{ad}"), "\\u{feff}x\\u{00ad}");
        assert_eq!(escape_line("\u{2060}"), "\\u{2060}");
        // Tag characters (U+E0000 block) are invisible too.
        assert_eq!(escape_line("a\u{e0041}"), "a\\u{e0041}");
    }

    #[test]
    fn c0_c1_and_del_are_shown() {
        assert_eq!(
            escape_line("\u{1b}[2J\u{1b}]0;title\u{7}"),
            "\\u{001b}[2J\\u{001b}]0;title\\u{0007}"
        );
        // C1 CSI (U+009B) is an escape sequence on its own on some terminals.
        assert_eq!(escape_line("x\u{9b}31m"), "x\\u{009b}31m");
        assert_eq!(escape_line("a\rb\u{7f}\0"), "a\\u{000d}b\\u{007f}\\u{0000}");
        assert_eq!(escape_lines("a\rb"), "a\\u{000d}b");
    }

    #[test]
    fn line_and_paragraph_separators_are_shown() {
        assert_eq!(escape_line("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        assert_eq!(escape_lines("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn newline_and_tab_depend_on_the_layout() {
        assert_eq!(escape_line("a\nb\tc"), "a\\u{000a}b\\u{0009}c");
        assert_eq!(escape_lines("a\nb\tc"), "a\nb\tc");
    }

    #[test]
    fn printable_text_of_any_script_is_kept_and_borrowed() {
        for s in [
            "plain ascii \\ backslash",
            "héllo wörld",
            "مرحبا",
            "日本語",
            "emoji 🎉",
            "",
        ] {
            assert!(matches!(escape_line(s), Cow::Borrowed(_)), "{s}");
            assert_eq!(escape_line(s), s);
        }
    }

    #[test]
    fn the_format_table_is_sorted_and_matches_known_members() {
        assert!(FORMAT.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(FORMAT.iter().all(|&(lo, hi)| lo <= hi));
        for c in [
            '\u{ad}', '\u{61c}', '\u{200b}', '\u{202e}', '\u{2069}', '\u{feff}',
        ] {
            assert!(is_hidden_format(c), "{:x}", u32::from(c));
        }
        for c in [
            'a',
            ' ',
            '\u{a0}',
            '\u{2000}',
            '\u{2070}',
            '\u{fffd}',
            '\u{1f600}',
        ] {
            assert!(!is_hidden_format(c), "{:x}", u32::from(c));
        }
    }
}
