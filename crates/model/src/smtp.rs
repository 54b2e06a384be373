//! How the connection to the mail server is secured (`[service.smtp] security`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Time allowed to connect to the mail server and send one mail (`timeout`).
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (default; port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (port 25); only sensible on loopback. Credentials are refused.
    None,
}

impl SmtpSecurity {
    /// The port this kind of connection uses when none is given: 587, 465 or 25.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports() {
        for (text, s, port) in [
            ("\"starttls\"", SmtpSecurity::StartTls, 587),
            ("\"tls\"", SmtpSecurity::Tls, 465),
            ("\"none\"", SmtpSecurity::None, 25),
        ] {
            assert_eq!(serde_json::from_str::<SmtpSecurity>(text).unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), text);
            assert_eq!(s.default_port(), port);
        }
        assert_eq!(SmtpSecurity::default(), SmtpSecurity::StartTls);
        assert!(serde_json::from_str::<SmtpSecurity>("\"ssl\"").is_err());
    }
}
