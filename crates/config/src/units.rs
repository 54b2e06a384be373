//! Parsing of human-written units: durations (`"10s"`), sizes (`"512M"`) and
//! octal file modes (`"0660"`).

use std::time::Duration;

/// Parses a duration such as `"500ms"`, `"10s"`, `"2m"`, `"1h"` or `"1d"`.
///
/// A unit is required (a bare number is ambiguous). The value must fit in 64 bits
/// of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{t}' has no unit (write e.g. \"{t}s\" or \"{t}ms\")"))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "'{t}' is not a duration (expected e.g. \"500ms\", \"10s\", \"2m\", \"1h\")"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("'{t}' is out of range"))?;
    let ms_per: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "unknown duration unit '{unit}' in '{t}' (expected ms, s, m, h or d)"
            ))
        }
    };
    let ms = n
        .checked_mul(ms_per)
        .ok_or_else(|| format!("'{t}' is out of range"))?;
    Ok(Duration::from_millis(ms))
}

/// Parses a size in bytes such as `"4096"`, `"64K"`, `"512M"`, `"1G"` (binary
/// multiples; `KiB`/`MiB`/`GiB`/`TiB` and a trailing `B` are also accepted).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "'{t}' is not a size (expected e.g. \"4096\", \"64K\", \"512M\", \"1G\")"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("'{t}' is out of range"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KB" | "KiB" | "k" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        "T" | "TB" | "TiB" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit '{unit}' in '{t}' (expected K, M, G or T; binary multiples)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{t}' is out of range"))
}

/// Parses a file mode written in octal (`"0660"`, `"660"`, `"0o660"`), at most `0o777`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(format!(
            "'{t}' is not an octal mode (expected e.g. \"0660\")"
        ));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    check_mode(mode)
}

/// Checks a numeric mode: only permission bits (no setuid, setgid or sticky bit).
pub(crate) fn check_mode(mode: u32) -> Result<u32, String> {
    if mode > 0o777 {
        return Err(format!(
            "mode {mode:o} has bits beyond 0777 (setuid/setgid/sticky make no sense here)"
        ));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 500),
            ("10s", 10_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("0s", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in [
            "10",
            "s",
            "",
            "1.5s",
            "10 s",
            "-1s",
            "10x",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("4096", 4096),
            ("64K", 64 << 10),
            ("512M", 512 << 20),
            ("1G", 1 << 30),
            ("2MiB", 2 << 20),
            ("1T", 1 << 40),
        ];
        for (s, n) in ok {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        for bad in ["", "M", "1.5M", "1X", "-1", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o770"), Ok(0o770));
        for bad in ["", "0868", "4755", "07777", "rw-rw----", "0x660"] {
            assert!(parse_mode(bad).is_err(), "{bad} should be rejected");
        }
    }
}
