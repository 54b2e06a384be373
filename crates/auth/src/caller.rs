//! Who is calling: [`CallerId`], the one caller type of this crate (the store
//! keeps it, mails name it, methods see it).

use serde::{Deserialize, Serialize};

/// Who is calling, as the kernel (or a TLS certificate) says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerId {
    /// Unix user id.
    pub uid: u32,
    /// Unix group id.
    pub gid: u32,
    /// Process id, when known.
    pub pid: Option<i32>,
    /// User name, when known.
    pub user: Option<String>,
}

impl CallerId {
    /// The caller's TOTP account: the user name, or `#UID` when it has none.
    pub fn totp_user(&self) -> String {
        self.user
            .clone()
            .unwrap_or_else(|| format!("#{}", self.uid))
    }
}
