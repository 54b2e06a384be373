//! Sending authorization codes by SMTP (lettre over tokio with rustls).
//!
//! Errors are logged in detail with `tracing` and returned to callers as the bare
//! [`AuthError::MailFailed`]: no SMTP reply or server detail reaches a client. The
//! code itself is never logged.

use crate::caller::CallerId;
use crate::{secret, AuthError, Result};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
pub use regent_model::SmtpSecurity;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// Where and how to send mail.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmtpConfig {
    /// The SMTP server's host name (also the name its certificate must carry).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// Plain, STARTTLS or TLS.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// A root-only file holding the user name on its first line and the password
    /// on its second; none for a server that needs no login.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// The sender, e.g. `Regent <regent@example.org>`.
    pub from: String,
}

/// What a code email says.
#[derive(Debug, Clone, Copy)]
pub struct CodeMail<'a> {
    /// The request id administrators see.
    pub request_id: &'a str,
    /// The operation's name.
    pub op: &'a str,
    /// The request's data, secret parameters already redacted by the caller.
    pub display_data: &'a serde_json::Value,
    /// What a dry run of it showed when it was held: its `diff` (secrets
    /// redacted) is shown as the change the code approves.
    pub preview: Option<&'a serde_json::Value>,
    /// Who asked.
    pub caller: &'a CallerId,
    /// Until when the code is valid.
    pub expires_at: SystemTime,
    /// The code.
    pub code: &'a str,
}

/// Time allowed to connect and send one mail, unless given.
pub use regent_model::smtp::DEFAULT_SMTP_TIMEOUT;

/// An SMTP client for code emails. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
    timeout: Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// Build a mailer; reads and checks the credentials file (it must grant nothing
    /// to the group or others). Does not connect.
    pub fn new(config: &SmtpConfig) -> Result<Mailer> {
        Mailer::with_timeout(config, DEFAULT_SMTP_TIMEOUT)
    }

    /// [`new`](Self::new) with a given time limit for sending one message (the
    /// whole SMTP exchange: a server that accepts and then stalls is given up on).
    pub fn with_timeout(config: &SmtpConfig, timeout: Duration) -> Result<Mailer> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| AuthError::SmtpConfig(format!("sender {:?}: {e}", config.from)))?;
        let bad_host = |e: lettre::transport::smtp::Error| {
            AuthError::SmtpConfig(format!("host {:?}: {e}", config.host))
        };
        let builder = match config.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(bad_host)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(bad_host)?
            }
        };
        let mut builder = builder.port(config.port).timeout(Some(timeout));
        if let Some(path) = &config.credentials_file {
            let raw = secret::read_protected_file(path, 0o077)?;
            let text = std::str::from_utf8(&raw)
                .map_err(|_| AuthError::SmtpConfig(format!("{}: not UTF-8", path.display())))?;
            let mut lines = text.lines();
            let (Some(user), Some(password)) = (lines.next(), lines.next()) else {
                return Err(AuthError::SmtpConfig(format!(
                    "{}: expected two lines, the user name then the password",
                    path.display()
                )));
            };
            let password = Zeroizing::new(password.to_string());
            builder = builder.credentials(Credentials::new(user.to_string(), password.to_string()));
        }
        let server = format!("{}:{} ({:?})", config.host, config.port, config.security);
        Ok(Mailer {
            transport: builder.build(),
            from,
            server,
            timeout,
        })
    }

    /// Send a code email to each of `to`. On failure the details are logged and
    /// [`AuthError::MailFailed`] is returned.
    pub async fn send_code(&self, to: &[String], mail: &CodeMail<'_>) -> Result<()> {
        let message = self.compose(to, mail)?;
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        match sent {
            Ok(Ok(response)) => {
                tracing::info!(
                    request_id = mail.request_id,
                    op = mail.op,
                    recipients = to.len(),
                    code = response.code().to_string(),
                    "authorization code emailed"
                );
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(request_id = mail.request_id, op = mail.op, server = %self.server,
                    error = %e, "sending the authorization email failed");
                Err(AuthError::MailFailed)
            }
            Err(_) => {
                tracing::error!(request_id = mail.request_id, op = mail.op, server = %self.server,
                    timeout = ?self.timeout, "sending the authorization email timed out");
                Err(AuthError::MailFailed)
            }
        }
    }

    fn compose(&self, to: &[String], mail: &CodeMail<'_>) -> Result<Message> {
        if to.is_empty() {
            tracing::error!(
                request_id = mail.request_id,
                op = mail.op,
                "no approver address to email"
            );
            return Err(AuthError::MailFailed);
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(clean(&format!(
                "Regent: authorization code for {} requested by {}",
                mail.op,
                who(mail.caller)
            )))
            .header(ContentType::TEXT_PLAIN);
        for addr in to {
            match addr.parse::<Mailbox>() {
                Ok(mb) => builder = builder.to(mb),
                Err(e) => {
                    tracing::error!(request_id = mail.request_id, address = %addr, error = %e, "invalid approver address");
                    return Err(AuthError::MailFailed);
                }
            }
        }
        builder.body(body(mail).to_string()).map_err(|e| {
            tracing::error!(request_id = mail.request_id, error = %e, "cannot build the authorization email");
            AuthError::MailFailed
        })
    }
}

fn who(caller: &CallerId) -> String {
    match &caller.user {
        Some(u) => u.clone(),
        None => format!("uid {}", caller.uid),
    }
}

/// One line as an approver should read it: control, bidi and invisible characters
/// shown as `\u{XXXX}` (header safety too: no newline survives; lettre encodes
/// the rest).
fn clean(s: &str) -> String {
    regent_proto::text::escape_line(s).into_owned()
}

/// The text of a code email.
pub fn body(mail: &CodeMail<'_>) -> Zeroizing<String> {
    let c = mail.caller;
    let pid = c
        .pid
        .map_or_else(|| "unknown".to_string(), |p| p.to_string());
    // JSON already escapes C0 controls inside strings; bidi, invisible and C1
    // characters are escaped here, so the approver reads the value that will run.
    let data = regent_proto::text::escape_lines(
        &serde_json::to_string_pretty(mail.display_data).unwrap_or_else(|_| "(unprintable)".into()),
    )
    .into_owned();
    let change = match mail
        .preview
        .and_then(|p| p.get("diff"))
        .and_then(serde_json::Value::as_str)
    {
        Some("") => "Change:      none\n".to_string(),
        Some(diff) => format!(
            "Change (what the code approves; refused if it no longer applies as shown):\n{}\n",
            regent_proto::text::escape_lines(diff.trim_end_matches('\n'))
        ),
        None => String::new(),
    };
    Zeroizing::new(format!(
        "A privileged operation is waiting for authorization.\n\
         \n\
         Request:     {request_id}\n\
         Operation:   {op}\n\
         Asked by:    {user} (uid {uid}, gid {gid}, pid {pid})\n\
         Valid until: {until}\n\
         Data:\n{data}\n\
         {change}\
         \n\
         Authorization code: {code}\n\
         \n\
         Give this code to the person who asked only if you expect this request.\n\
         If you do not, ignore this message: the request expires by itself.\n",
        request_id = mail.request_id,
        op = clean(mail.op),
        user = clean(&who(c)),
        uid = c.uid,
        gid = c.gid,
        until = humantime::format_rfc3339_seconds(mail.expires_at),
        code = mail.code,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_says_who_what_until_when_and_the_code() {
        let caller = CallerId::unix(Some(4242), 1000, 100, Some("alice".into()));
        let data = json!({"service": "nginx", "password": "<redacted>"});
        let mail = CodeMail {
            request_id: "abcd1234",
            op: "restart",
            display_data: &data,
            caller: &caller,
            expires_at: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            code: "012345",
            preview: None,
        };
        let b = body(&mail);
        for needle in [
            "abcd1234",
            "restart",
            "alice",
            "uid 1000",
            "pid 4242",
            "nginx",
            "2027-01-15T08:00:00Z",
            "012345",
        ] {
            assert!(b.contains(needle), "{needle} missing from:\n{}", *b);
        }
        assert!(!b.contains("Change"), "no preview, no change shown");
        // A dry run's diff is shown as the change approved, escaped.
        let preview = json!({"diff": "--- /etc/x\n+++ /etc/x\n-Port 22\n+Port 2222\u{1b}[2J\n", "hash": "sha256:00"});
        let b = body(&CodeMail {
            preview: Some(&preview),
            ..mail
        });
        assert!(b.contains("-Port 22\n+Port 2222\\u{001b}[2J\n"), "{}", *b);
        let none = json!({"diff": ""});
        let b = body(&CodeMail {
            preview: Some(&none),
            ..mail
        });
        assert!(b.contains("Change:      none\n"), "{}", *b);
    }

    #[test]
    fn body_shows_control_bidi_and_invisible_characters_escaped() {
        let caller = CallerId::unix(None, 1000, 100, Some("al\u{200b}ice".into()));
        let data = json!({"file": "invoice_\u{202e}fdp.exe", "note": "a\u{9b}31mb\u{2028}c"});
        let mail = CodeMail {
            request_id: "abcd1234",
            op: "re\u{1b}[2Jstart",
            display_data: &data,
            caller: &caller,
            expires_at: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            code: "012345",
            preview: None,
        };
        let b = body(&mail);
        for raw in ['\u{202e}', '\u{200b}', '\u{1b}', '\u{9b}', '\u{2028}'] {
            assert!(
                !b.contains(raw),
                "{:x} reached the mail:\n{}",
                u32::from(raw),
                *b
            );
        }
        for shown in [
            "invoice_\\u{202e}fdp.exe",
            "al\\u{200b}ice",
            "re\\u{001b}[2Jstart",
            "a\\u{009b}31mb\\u{2028}c",
        ] {
            assert!(b.contains(shown), "{shown} missing from:\n{}", *b);
        }
        // The layout's own lines are kept.
        assert!(b.contains("Operation:   re"), "{}", *b);
        assert_eq!(clean("a\nb\u{202e}"), "a\\u{000a}b\\u{202e}");
    }

    #[test]
    fn config_errors_are_clear_and_credentials_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let mut cfg = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            security: SmtpSecurity::None,
            credentials_file: None,
            from: "not an address".into(),
        };
        assert!(matches!(Mailer::new(&cfg), Err(AuthError::SmtpConfig(_))));
        cfg.from = "Regent <regent@example.org>".into();
        Mailer::new(&cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds");
        std::fs::write(&p, "mailer\nhunter2pass\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        cfg.credentials_file = Some(p.clone());
        let err = Mailer::new(&cfg).unwrap_err().to_string();
        assert!(err.contains("creds") && !err.contains("hunter2"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        Mailer::new(&cfg).unwrap();
        std::fs::write(&p, "only-user\n").unwrap();
        assert!(matches!(Mailer::new(&cfg), Err(AuthError::SmtpConfig(_))));
        let parsed: SmtpConfig = serde_json::from_value(json!({
            "host": "smtp.example.org", "port": 587, "security": "starttls", "from": "r@example.org"
        }))
        .unwrap();
        assert_eq!(parsed.security, SmtpSecurity::StartTls);
    }
}
