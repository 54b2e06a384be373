//! Who is calling: [`CallerId`], this crate's name for `regent_model::Principal`
//! (the store keeps it, mails name it, methods see it).

/// Who is calling, as the kernel (or a TLS certificate) says. A record read back
/// from the store knows the caller's pid, ids and user name, not its groups.
pub type CallerId = regent_model::Principal;

/// The caller's TOTP account: the user name, or `#UID` when it has none.
pub fn totp_user(caller: &CallerId) -> String {
    caller
        .user
        .clone()
        .unwrap_or_else(|| format!("#{}", caller.uid))
}
