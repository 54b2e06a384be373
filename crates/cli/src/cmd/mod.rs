//! One module per subcommand.

pub mod call;
pub mod check;
pub mod demo;
pub mod serve;
