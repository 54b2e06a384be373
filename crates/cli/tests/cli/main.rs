//! End-to-end tests: the real `regent` binary as daemon and as client, real
//! processes, and genuinely unprivileged users created for the purpose.

mod core;
mod hostile;
mod pending;
mod privilege;
mod security;
mod util;
