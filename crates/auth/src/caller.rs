//! Who is calling: [`CallerId`], this crate's name for `regent_model::Principal`
//! (the store keeps it, mails name it, methods see it).

/// Who is calling, as the kernel (or a TLS certificate) says. A record read back
/// from the store knows the caller's pid, ids and user name, not its groups.
pub type CallerId = regent_model::Principal;

/// The caller's TOTP account: the user name, or `#UID` when it has none; for a
/// TLS client, [`totp_client`] of its name (no Unix user name holds a `:`, the
/// passwd file's separator, so the two never meet).
pub fn totp_user(caller: &CallerId) -> String {
    if let Some(name) = caller.client() {
        return totp_client(name);
    }
    caller
        .user
        .clone()
        .unwrap_or_else(|| format!("#{}", caller.uid))
}

/// The TOTP account of the TLS client `name`: `tls:NAME`.
pub fn totp_client(name: &str) -> String {
    format!("tls:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_accounts_of_users_and_clients_never_meet() {
        let alice = CallerId::unix(None, 1000, 1000, Some("alice".into()));
        assert_eq!(totp_user(&alice), "alice");
        assert_eq!(totp_user(&CallerId::unix(None, 7, 7, None)), "#7");
        let panel = CallerId::tls("alice".into(), "01".into(), "192.0.2.1:1".parse().unwrap());
        assert_eq!(totp_user(&panel), "tls:alice");
        assert_eq!(totp_client("alice"), totp_user(&panel));
        assert_ne!(totp_user(&panel), totp_user(&alice));
    }
}
