//! End-to-end tests: the real `regent` binary as daemon and as client, real
//! processes, and genuinely unprivileged users created for the purpose.

mod core;
mod pending;
mod privilege;
mod sandbox;
mod security;
mod util;
