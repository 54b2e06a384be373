//! One module per subcommand.

pub mod admin;
pub mod call;
pub mod check;
pub mod demo;
pub mod docs;
pub mod serve;
pub mod status;
pub mod tls;
pub mod totp;
