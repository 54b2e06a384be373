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
